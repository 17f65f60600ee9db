#include "iftrain/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/dist.h"

enum { STREAM_SHUFFLE = 0x5348, STREAM_LAMBDA = 0x4c41 };

double sched_lambda(const sched_lambda_cfg *c, uint64_t seed, long step) {
  switch (c->kind) {
  case SCHED_LAMBDA_LINEAR:
    if (c->warmup_steps <= 0 || step >= c->warmup_steps) return c->lambda;
    return c->lambda * (double)step / (double)c->warmup_steps;
  case SCHED_LAMBDA_NOISE: {
    double z = rng_normal(seed, STREAM_LAMBDA, (uint64_t)step);
    double l = c->lambda * (1.0 + 0.5 * z);
    return l < 0 ? 0 : l > 1 ? 1 : l;
  }
  case SCHED_LAMBDA_STATIC: break;
  }
  return c->lambda;
}

/* Fisher-Yates with Philox draws addressed by (epoch, position): the order
 * of an epoch is a pure function of (seed, epoch, n). */
static void make_perm(sched *s) {
  for (long i = 0; i < s->n; i++) s->perm[i] = i;
  if (!s->shuffle) return;
  for (long i = s->n - 1; i > 0; i--) {
    double u = rng_uniform(s->seed, STREAM_SHUFFLE + ((uint64_t)s->epoch << 16), (uint64_t)i);
    long j = (long)(u * (double)(i + 1));
    if (j > i) j = i;
    long t = s->perm[i];
    s->perm[i] = s->perm[j];
    s->perm[j] = t;
  }
}

ift_status sched_create(sched *s, long n, int batch, int dp, uint64_t seed, int shuffle) {
  memset(s, 0, sizeof *s);
  IFT_REQUIRE(n > 0, IFT_ERR_FORMAT, "the training set has no sequences; regenerate it",
              "empty data set");
  IFT_REQUIRE(batch > 0 && dp > 0 && batch % dp == 0, IFT_ERR_CONFIG,
              "make train.batch_size a multiple of the data-parallel size",
              "batch %d over %d data-parallel ranks", batch, dp);
  s->n = n;
  s->batch = batch;
  s->dp = dp;
  s->seed = seed;
  s->shuffle = shuffle;
  s->perm = malloc(sizeof(long) * (size_t)n);
  IFT_REQUIRE(s->perm, IFT_ERR_NOMEM, NULL, "permutation of %ld rows", n);
  make_perm(s);
  return IFT_OK;
}

void sched_set_packing(sched *s, const sched_pack_cfg *pc) { s->pack = *pc; }

void sched_restore(sched *s, long step, long epoch, long cursor) {
  s->step = step;
  s->epoch = epoch;
  s->cursor = cursor;
  make_perm(s);
}

void sched_destroy(sched *s) {
  free(s->perm);
  memset(s, 0, sizeof *s);
}

ift_status sched_plan_alloc(sched_plan *p, int batch, int dp) {
  memset(p, 0, sizeof *p);
  p->per_rank = batch / dp;
  p->rows = malloc(sizeof(long) * (size_t)batch);
  p->pack_first = malloc(sizeof(int) * ((size_t)batch + 1));
  p->rank_first = malloc(sizeof(int) * ((size_t)dp + 1));
  if (!p->rows || !p->pack_first || !p->rank_first) {
    sched_plan_free(p);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "plan of %d rows", batch);
  }
  return IFT_OK;
}
void sched_plan_free(sched_plan *p) {
  free(p->rows);
  free(p->pack_first);
  free(p->rank_first);
  memset(p, 0, sizeof *p);
}

typedef struct {
  long row;
  int len;
} row_len;
static int by_len_desc(const void *a, const void *b) {
  const row_len *x = a, *y = b;
  if (x->len != y->len) return y->len - x->len;
  return x->row < y->row ? -1 : x->row > y->row;
}

/* Rank 0's packing of the batch rl[0..B) (sorted by decreasing total
 * length): first fit into packs, then the packs to the ranks by tokens. */
static ift_status pack_plan(const sched *s, sched_plan *p, const row_len *rl, const void *ctx) {
  const int B = s->batch, P = s->pack.parts, cap = s->pack.len;
  int *used = calloc((size_t)B * P, sizeof(int)), *of = malloc(sizeof(int) * (size_t)B);
  int *cnt = calloc((size_t)B, sizeof(int)), *order = malloc(sizeof(int) * (size_t)B);
  long *load = calloc((size_t)s->dp, sizeof(long)), *tok = calloc((size_t)B, sizeof(long));
  int *rank = malloc(sizeof(int) * (size_t)B), *first = calloc((size_t)B + 1, sizeof(int));
  int *items = malloc(sizeof(int) * (size_t)B);
  ift_status st = IFT_OK;
  IFT_REQUIRE_GOTO(st, out, used && of && cnt && order && load && tok && rank && first && items, IFT_ERR_NOMEM,
                   NULL, "packing plan (%d rows)", B);
  int np = 0;
  for (int j = 0; j < B; j++) {
    int l[2];
    for (int q = 0; q < P; q++) {
      l[q] = s->pack.part_len(ctx, rl[j].row, q);
      l[q] = l[q] < 1 ? 1 : l[q] > cap ? cap : l[q]; /* longer rows are truncated, as unpacked */
    }
    int k = 0;
    for (; k < np; k++) {
      int fits = 1;
      for (int q = 0; q < P; q++) fits &= used[(size_t)k * P + q] + l[q] <= cap;
      if (fits) break;
    }
    if (k == np) np++;
    for (int q = 0; q < P; q++) {
      used[(size_t)k * P + q] += l[q];
      tok[k] += l[q];
    }
    of[j] = k;
    cnt[k]++;
  }
  /* packs by decreasing tokens (stable), each to the least loaded rank */
  for (int k = 0; k < np; k++) order[k] = k;
  for (int a = 1; a < np; a++)
    for (int b = a; b > 0 && tok[order[b]] > tok[order[b - 1]]; b--) {
      int t = order[b];
      order[b] = order[b - 1];
      order[b - 1] = t;
    }
  int *nr = calloc((size_t)s->dp, sizeof(int));
  if (!nr) {
    st = IFT_ERR_NOMEM;
    goto out;
  }
  for (int a = 0; a < np; a++) {
    int best = 0;
    for (int r = 1; r < s->dp; r++)
      if (load[r] < load[best]) best = r;
    rank[order[a]] = best;
    load[best] += tok[order[a]];
    nr[best]++;
  }
  /* output order: rank, then pack (longest first), then items as placed */
  p->rank_first[0] = 0;
  for (int r = 0; r < s->dp; r++) p->rank_first[r + 1] = p->rank_first[r] + nr[r];
  free(nr);
  for (int k = 0; k < np; k++) first[k + 1] = first[k] + cnt[k];
  memset(cnt, 0, sizeof(int) * (size_t)np);
  for (int j = 0; j < B; j++) items[first[of[j]] + cnt[of[j]]++] = j;
  int slot = 0, kk = 0;
  p->pack_first[0] = 0;
  for (int r = 0; r < s->dp; r++)
    for (int a = 0; a < np; a++) {
      const int k = order[a];
      if (rank[k] != r) continue;
      for (int i = first[k]; i < first[k + 1]; i++) p->rows[slot++] = rl[items[i]].row;
      p->pack_first[++kk] = slot;
    }
  p->npacks = np;
out:
  free(used);
  free(of);
  free(cnt);
  free(order);
  free(load);
  free(tok);
  free(rank);
  free(first);
  free(items);
  return st;
}

ift_status sched_next(sched *s, sched_plan *p, const sched_lambda_cfg *lc,
                      int (*len)(const void *ctx, long i), const void *ctx, MPI_Comm comm) {
  int rank = 0;
  if (comm != MPI_COMM_NULL) IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  const int B = s->batch, per = B / s->dp;
  p->per_rank = per;
  p->step = s->step;
  p->epoch = s->epoch;
  /* Every rank walks the same cursor so the state stays identical; only
   * rank 0's assignment is used (broadcast below). */
  row_len *rl = core_fault("sched_alloc") ? NULL : malloc(sizeof(row_len) * (size_t)B);
  long *load = calloc((size_t)s->dp, sizeof(long));
  int *cnt = calloc((size_t)s->dp, sizeof(int));
  ift_status st = IFT_OK;
  if (!rl || !load || !cnt) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL,
                  "scratch of the batch plan (%d rows)", B);
    st = IFT_ERR_NOMEM;
  }
  /* one rank short of memory must not leave the others in the broadcast */
  if (comm != MPI_COMM_NULL) st = dist_agree(st, comm);
  if (st != IFT_OK) {
    free(rl);
    free(load);
    free(cnt);
    return st;
  }
  for (int j = 0; j < B; j++) {
    if (s->cursor >= s->n) {
      s->epoch++;
      s->cursor = 0;
      make_perm(s);
    }
    rl[j].row = s->perm[s->cursor++];
    rl[j].len = len ? len(ctx, rl[j].row) : 1;
    if (s->pack.len > 0) { /* packing: first fit by decreasing packed size */
      rl[j].len = 0;
      for (int q = 0; q < s->pack.parts; q++) {
        const int l = s->pack.part_len(ctx, rl[j].row, q);
        rl[j].len += l < 1 ? 1 : l > s->pack.len ? s->pack.len : l;
      }
    }
  }
  if (rank == 0 && s->pack.len > 0) {
    qsort(rl, (size_t)B, sizeof *rl, by_len_desc);
    st = pack_plan(s, p, rl, ctx);
    p->lambda = (float)sched_lambda(lc, s->seed, s->step);
  } else if (rank == 0) {
    /* Longest first to the least-loaded rank with room: balances tokens
     * (LPT), each rank gets exactly `per` sequences. */
    qsort(rl, (size_t)B, sizeof *rl, by_len_desc);
    for (int j = 0; j < B; j++) {
      int best = -1;
      for (int r = 0; r < s->dp; r++)
        if (cnt[r] < per && (best < 0 || load[r] < load[best])) best = r;
      p->rows[best * per + cnt[best]++] = rl[j].row;
      load[best] += rl[j].len;
    }
    p->lambda = (float)sched_lambda(lc, s->seed, s->step);
    p->npacks = B;
    for (int j = 0; j <= B; j++) p->pack_first[j] = j;
    for (int r = 0; r <= s->dp; r++) p->rank_first[r] = r * per;
  }
  free(rl);
  free(load);
  free(cnt);
  if (comm != MPI_COMM_NULL) {
    IFT_TRY(dist_agree(st, comm));
    IFT_MPI_CHECK(MPI_Bcast(p->rows, B, MPI_LONG, 0, comm), "a rank died before the step began");
    IFT_MPI_CHECK(MPI_Bcast(&p->lambda, 1, MPI_FLOAT, 0, comm), NULL);
    IFT_MPI_CHECK(MPI_Bcast(&p->npacks, 1, MPI_INT, 0, comm), NULL);
    IFT_MPI_CHECK(MPI_Bcast(p->pack_first, p->npacks + 1, MPI_INT, 0, comm), NULL);
    IFT_MPI_CHECK(MPI_Bcast(p->rank_first, s->dp + 1, MPI_INT, 0, comm), NULL);
  } else
    IFT_TRY(st);
  s->step++;
  return IFT_OK;
}
