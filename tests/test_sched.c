/* sched: same seed -> same global batches for any DP size, token balance
 * across DP ranks, file order, epoch wrap-around, and the λ schedules. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iftrain/sched.h"

static int lens[1000];
static int len_cb(const void *ctx, long i) {
  (void)ctx;
  return lens[i];
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static void test_same_batches_any_dp(void) {
  for (int i = 0; i < 1000; i++) lens[i] = 5 + (int)(rng_uniform(5, 0, (uint64_t)i) * 60);
  const int batch = 16, dps[3] = {1, 2, 4};
  long ref[40][16];
  for (int k = 0; k < 3; k++) {
    sched s;
    sched_plan p;
    CU_ASSERT_EQUAL_FATAL(sched_create(&s, 1000, batch, dps[k], 77, 1), IFT_OK);
    sched_plan_alloc(&p, batch, dps[k]);
    sched_lambda_cfg lc = {SCHED_LAMBDA_STATIC, 0.2, 0};
    for (int step = 0; step < 40; step++) {
      CU_ASSERT_EQUAL(sched_next(&s, &p, &lc, len_cb, NULL, MPI_COMM_NULL), IFT_OK);
      long sorted[16];
      memcpy(sorted, p.rows, sizeof sorted);
      qsort(sorted, 16, sizeof(long), cmp_long);
      if (k == 0) memcpy(ref[step], sorted, sizeof sorted);
      else CU_ASSERT_EQUAL(memcmp(ref[step], sorted, sizeof sorted), 0);
      /* balance: per-rank token loads differ by at most one row's length */
      long lo = 1L << 40, hi = 0;
      for (int r = 0; r < dps[k]; r++) {
        long load = 0;
        for (int j = 0; j < p.per_rank; j++) load += lens[p.rows[r * p.per_rank + j]];
        lo = load < lo ? load : lo;
        hi = load > hi ? load : hi;
        for (int j = 1; j < p.per_rank; j++) /* longest first within a rank */
          CU_ASSERT(lens[p.rows[r * p.per_rank + j]] <= lens[p.rows[r * p.per_rank + j - 1]]);
      }
      CU_ASSERT(hi - lo <= 65);
    }
    sched_plan_free(&p);
    sched_destroy(&s);
  }
}

static void test_epochs_and_order(void) {
  sched s;
  sched_plan p;
  for (int i = 0; i < 10; i++) lens[i] = 3;
  CU_ASSERT_EQUAL_FATAL(sched_create(&s, 10, 4, 1, 1, 0), IFT_OK);
  sched_plan_alloc(&p, 4, 1);
  sched_lambda_cfg lc = {SCHED_LAMBDA_STATIC, 0.2, 0};
  int seen[10] = {0};
  for (int step = 0; step < 5; step++) { /* 20 rows = 2 epochs of 10 */
    sched_next(&s, &p, &lc, len_cb, NULL, MPI_COMM_NULL);
    for (int j = 0; j < 4; j++) seen[p.rows[j]]++;
    if (step == 0) {
      long sorted[4];
      memcpy(sorted, p.rows, sizeof sorted);
      qsort(sorted, 4, sizeof(long), cmp_long);
      CU_ASSERT(sorted[0] == 0 && sorted[3] == 3); /* file order */
    }
  }
  for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(seen[i], 2);
  CU_ASSERT_EQUAL(s.epoch, 1);
  sched_plan_free(&p);
  sched_destroy(&s);
  /* a shuffled epoch is a permutation and differs from file order */
  CU_ASSERT_EQUAL_FATAL(sched_create(&s, 10, 10, 1, 3, 1), IFT_OK);
  int hit[10] = {0}, moved = 0;
  for (int i = 0; i < 10; i++) {
    hit[s.perm[i]]++;
    moved += s.perm[i] != i;
  }
  for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(hit[i], 1);
  CU_ASSERT(moved > 0);
  sched_destroy(&s);
}

static void test_lambda(void) {
  sched_lambda_cfg st = {SCHED_LAMBDA_STATIC, 0.3, 0};
  CU_ASSERT_EQUAL(sched_lambda(&st, 1, 99), 0.3);
  sched_lambda_cfg li = {SCHED_LAMBDA_LINEAR, 0.2, 100};
  CU_ASSERT_EQUAL(sched_lambda(&li, 1, 0), 0.0);
  IFT_ASSERT_CLOSE(sched_lambda(&li, 1, 50), 0.1, 0, 1e-15);
  CU_ASSERT_EQUAL(sched_lambda(&li, 1, 100), 0.2);
  CU_ASSERT_EQUAL(sched_lambda(&li, 1, 1000), 0.2);
  sched_lambda_cfg no = {SCHED_LAMBDA_NOISE, 0.5, 0};
  double mean = 0, mn = 1, mx = 0;
  for (long k = 0; k < 5000; k++) {
    double l = sched_lambda(&no, 9, k);
    CU_ASSERT(l >= 0 && l <= 1);
    mean += l / 5000;
    mn = l < mn ? l : mn;
    mx = l > mx ? l : mx;
  }
  IFT_ASSERT_CLOSE(mean, 0.5, 0, 0.02); /* λ(1 + 0.5 z) with E z = 0 */
  CU_ASSERT(mn == 0.0 && mx == 1.0);    /* clamped at both ends */
  CU_ASSERT_EQUAL(sched_lambda(&no, 9, 123), sched_lambda(&no, 9, 123)); /* replayable */
  CU_ASSERT_NOT_EQUAL(sched_lambda(&no, 9, 123), sched_lambda(&no, 10, 123));
}

/* Packing: every item once, each pack row within the length, the same packs
 * for DP 1, 2, 4 (the plan depends only on the batch), ranks balanced. */
static int part_cb(const void *ctx, long i, int part) {
  (void)ctx;
  return part ? lens[i] / 2 + 3 : lens[i];
}
static void test_packing(void) {
  for (int i = 0; i < 1000; i++) lens[i] = 20 + (int)(rng_uniform(9, 0, (uint64_t)i) * 1980);
  lens[17] = 5000; /* longer than a pack: truncated, alone */
  enum { BATCH = 32, CAP = 2048 };
  for (int parts = 1; parts <= 2; parts++) {
    long ref[20][BATCH];
    uint64_t refsig[20];
    const int dps[3] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
      sched s;
      sched_plan p;
      CU_ASSERT_EQUAL_FATAL(sched_create(&s, 1000, BATCH, dps[k], 5, 1), IFT_OK);
      sched_pack_cfg pc = {CAP, parts, part_cb};
      sched_set_packing(&s, &pc);
      CU_ASSERT_EQUAL_FATAL(sched_plan_alloc(&p, BATCH, dps[k]), IFT_OK);
      sched_lambda_cfg lc = {SCHED_LAMBDA_STATIC, 0.2, 0};
      for (int step = 0; step < 20; step++) {
        CU_ASSERT_EQUAL_FATAL(sched_next(&s, &p, &lc, len_cb, NULL, MPI_COMM_NULL), IFT_OK);
        CU_ASSERT(p.npacks >= 1 && p.npacks < BATCH);
        CU_ASSERT_EQUAL(p.pack_first[0], 0);
        CU_ASSERT_EQUAL(p.pack_first[p.npacks], BATCH);
        CU_ASSERT_EQUAL(p.rank_first[0], 0);
        CU_ASSERT_EQUAL(p.rank_first[dps[k]], p.npacks);
        long tot = 0, lo = 1L << 40, hi = 0, biggest = 0;
        uint64_t sig = 0; /* wraps: unsigned */
        for (int q = 0; q < p.npacks; q++) {
          long used[2] = {0, 0};
          uint64_t h = 0;
          for (int j = p.pack_first[q]; j < p.pack_first[q + 1]; j++) {
            for (int t = 0; t < parts; t++) {
              int l = part_cb(NULL, p.rows[j], t);
              used[t] += l < CAP ? l : CAP;
            }
            h = h * 1000003u + (uint64_t)p.rows[j] + 1u; /* the pack's items, in order */
          }
          for (int t = 0; t < parts; t++) CU_ASSERT(used[t] <= CAP);
          biggest = used[0] + used[1] > biggest ? used[0] + used[1] : biggest;
          sig += h * h; /* order-free signature of the set of packs */
          tot += p.pack_first[q + 1] - p.pack_first[q];
        }
        CU_ASSERT_EQUAL(tot, BATCH);
        long sorted[BATCH];
        memcpy(sorted, p.rows, sizeof sorted);
        qsort(sorted, BATCH, sizeof(long), cmp_long);
        for (int j = 1; j < BATCH; j++) CU_ASSERT(sorted[j] != sorted[j - 1]);
        for (int r = 0; r < dps[k]; r++) {
          long load = 0;
          for (int q = p.rank_first[r]; q < p.rank_first[r + 1]; q++)
            for (int j = p.pack_first[q]; j < p.pack_first[q + 1]; j++)
              for (int t = 0; t < parts; t++) {
                int l = part_cb(NULL, p.rows[j], t);
                load += l < CAP ? l : CAP;
              }
          lo = load < lo ? load : lo;
          hi = load > hi ? load : hi;
        }
        CU_ASSERT(hi - lo <= biggest); /* LPT: within one pack */
        if (k == 0) {
          memcpy(ref[step], sorted, sizeof sorted);
          refsig[step] = sig;
        } else {
          CU_ASSERT_EQUAL(memcmp(ref[step], sorted, sizeof sorted), 0);
          CU_ASSERT_EQUAL(refsig[step], sig);
        }
      }
      sched_plan_free(&p);
      sched_destroy(&s);
    }
  }
}

static CU_TestInfo tests[] = {{"same global batches for DP 1, 2, 4; balanced", test_same_batches_any_dp},
                              {"file order, epochs, shuffle permutation", test_epochs_and_order},
                              {"lambda schedules static, linear, noise", test_lambda},
                              {"packing: items once, rows within length, same packs for any DP", test_packing},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("sched", tests)
