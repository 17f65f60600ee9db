/* dist: grid splitting, layout errors, and PBLAS psgemm on every BLACS grid
 * shape of the job equal to a local BLIS sgemm of the gathered matrices. */
#include <stdlib.h>
#include <string.h>

#include "iftrain/kern.h"
#include "iftrain/scalapack.h"
#include "mpi_harness.h"

static int world_size(void) {
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

static void test_grid_split(void) {
  int P = world_size();
  for (int tp = 1; tp <= P; tp++) {
    if (P % tp) continue;
    dist_grid g;
    CU_ASSERT_EQUAL_FATAL(dist_grid_create(&g, MPI_COMM_WORLD, tp), IFT_OK);
    CU_ASSERT_EQUAL(g.tp_size * g.dp_size, P);
    CU_ASSERT_EQUAL(g.rank, g.dp_rank * tp + g.tp_rank);
    int n;
    MPI_Comm_size(g.tp, &n);
    CU_ASSERT_EQUAL(n, tp);
    MPI_Comm_size(g.dp, &n);
    CU_ASSERT_EQUAL(n, P / tp);
    /* Every member of my TP group has my dp index. */
    int mine = g.dp_rank, lo, hi;
    MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, g.tp);
    MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, g.tp);
    CU_ASSERT(lo == mine && hi == mine);
    dist_grid_destroy(&g);
  }
}

static void test_grid_impossible(void) {
  int P = world_size();
  dist_grid g;
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(dist_grid_create(&g, MPI_COMM_WORLD, P + 1), IFT_ERR_LAYOUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "cannot be split"));
  CU_ASSERT_EQUAL(dist_grid_create(&g, MPI_COMM_WORLD, 0), IFT_ERR_LAYOUT);
  ift_error_quiet(0);
}

static float gA(int i, int j) { return (float)rng_normal(11, (uint64_t)i, (uint64_t)j); }
static float gB(int i, int j) { return (float)rng_normal(12, (uint64_t)i, (uint64_t)j); }

/* C = A^T B style shapes exercise transposes too. */
static void check_psgemm(int pr, int pc, char ta, int m, int n, int k, int nb) {
  int ctx;
  CU_ASSERT_EQUAL_FATAL(dist_blacs_grid(&ctx, MPI_COMM_WORLD, pr, pc), IFT_OK);
  int np, nq, myr, myc;
  Cblacs_gridinfo(ctx, &np, &nq, &myr, &myc);
  int ar = ta == 'T' ? k : m, ac = ta == 'T' ? m : k;
  int dA[9], dB[9], dC[9], lrA, lcA, lrB, lcB, lrC, lcC;
  CU_ASSERT_EQUAL_FATAL(dist_desc(dA, &lrA, &lcA, ar, ac, nb, nb, ctx), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(dist_desc(dB, &lrB, &lcB, k, n, nb, nb, ctx), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(dist_desc(dC, &lrC, &lcC, m, n, nb, nb, ctx), IFT_OK);
  float *A = core_alloc(sizeof(float) * (size_t)(lrA * lcA + 1));
  float *B = core_alloc(sizeof(float) * (size_t)(lrB * lcB + 1));
  float *C = core_alloc(sizeof(float) * (size_t)(lrC * lcC + 1));
  /* Local pieces are column-major with leading dimension lr. */
  for (int j = 0; j < lcA; j++)
    for (int i = 0; i < lrA; i++)
      A[i + j * lrA] = gA(dist_l2g(i, nb, myr, np), dist_l2g(j, nb, myc, nq));
  for (int j = 0; j < lcB; j++)
    for (int i = 0; i < lrB; i++)
      B[i + j * lrB] = gB(dist_l2g(i, nb, myr, np), dist_l2g(j, nb, myc, nq));
  dist_psgemm(ta, 'N', m, n, k, 1.f, A, dA, B, dB, 0.f, C, dC);
  /* Reference: the whole product on this rank with BLIS (row-major). */
  float *RA = malloc(sizeof(float) * (size_t)ar * ac), *RB = malloc(sizeof(float) * (size_t)k * n),
        *RC = malloc(sizeof(float) * (size_t)m * n);
  for (int i = 0; i < ar; i++)
    for (int j = 0; j < ac; j++) RA[i * ac + j] = gA(i, j);
  for (int i = 0; i < k; i++)
    for (int j = 0; j < n; j++) RB[i * n + j] = gB(i, j);
  kern_sgemm(ta == 'T', 0, m, n, k, 1.f, RA, ac, RB, n, 0.f, RC, n);
  double worst = 0;
  for (int j = 0; j < lcC; j++)
    for (int i = 0; i < lrC; i++) {
      int gi = dist_l2g(i, nb, myr, np), gj = dist_l2g(j, nb, myc, nq);
      double e = fabs(C[i + j * lrC] - RC[gi * n + gj]);
      if (e > worst) worst = e;
    }
  /* Entries are sums of k products of N(0,1): |C| ~ sqrt(k); different
   * summation order only. */
  IFT_ASSERT_CLOSE(worst, 0.0, 0, 2e-6 * k);
  free(RA); free(RB); free(RC);
  core_free(A); core_free(B); core_free(C);
  Cblacs_gridexit(ctx);
}

/* iftrain's PILAENV replaces the reference one inside PBLAS: psgemm asks it
 * for its block, and the result is right for any block. */
static void test_pblas_block(void) {
  long q0 = dist_pblas_block_queries();
  int P = world_size();
  dist_set_pblas_block(8);
  check_psgemm(P, 1, 'N', 96, 80, 112, 16);
  CU_ASSERT(dist_pblas_block_queries() > q0);
  dist_set_pblas_block(1000);
  check_psgemm(1, P, 'T', 70, 45, 33, 8);
  dist_set_pblas_block(0);
  CU_ASSERT_EQUAL(dist_pblas_block(), DIST_PBLAS_BLOCK_DEFAULT);
  CU_ASSERT_EQUAL(dist_pblas_block_for(128), 64);
  CU_ASSERT_EQUAL(dist_pblas_block_for(512), 256);
  CU_ASSERT_EQUAL(dist_pblas_block_for(4096), 512);
}

static void test_psgemm_equals_local(void) {
  int P = world_size();
  for (int pr = 1; pr <= P; pr++) {
    if (P % pr) continue;
    int pc = P / pr;
    check_psgemm(pr, pc, 'N', 96, 80, 112, 16);
    check_psgemm(pr, pc, 'T', 70, 45, 33, 8);
    check_psgemm(pr, pc, 'N', 200, 130, 64, 64);
  }
}

/* dist_agree: one failing rank (any rank, any status) makes every rank
 * return the same status; the lowest rank wins among equal failures, and
 * the largest status among different ones. */
static void test_agree(void) {
  int P = world_size(), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  CU_ASSERT_EQUAL(dist_agree(IFT_OK, MPI_COMM_WORLD), IFT_OK);
  ift_error_quiet(1);
  for (int bad = 0; bad < P; bad++) {
    ift_status st = dist_agree(rank == bad ? IFT_ERR_IO : IFT_OK, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(st, IFT_ERR_IO);
    if (rank != bad) {
      CU_ASSERT_EQUAL(ift_error_last_status(), IFT_ERR_IO);
      char want[64];
      snprintf(want, sizeof want, "rank %d failed", bad);
      CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), want));
    }
  }
  /* two different failures: the larger status on every rank */
  ift_status mine = rank == 0 ? IFT_ERR_ARG : rank == P - 1 ? IFT_ERR_HDF5 : IFT_OK;
  CU_ASSERT_EQUAL(dist_agree(mine, MPI_COMM_WORLD), P > 1 ? IFT_ERR_HDF5 : IFT_ERR_ARG);
  ift_error_quiet(0);
  /* a lone rank (or COMM_NULL) keeps its own status without communicating */
  CU_ASSERT_EQUAL(dist_agree(IFT_ERR_FORMAT, MPI_COMM_NULL), IFT_ERR_FORMAT);
  CU_ASSERT_EQUAL(dist_agree(IFT_ERR_FORMAT, MPI_COMM_SELF), IFT_ERR_FORMAT);
}

static CU_TestInfo tests[] = {{"DP x TP split", test_grid_split},
                              {"failures are agreed by every rank", test_agree},
                              {"PBLAS calls iftrain's PILAENV; any block is exact", test_pblas_block},
                              {"impossible layouts are refused", test_grid_impossible},
                              {"psgemm equals local sgemm on every grid", test_psgemm_equals_local},
                              CU_TEST_INFO_NULL};

int main(int argc, char **argv) {
  /* The kernel set must be chosen before BLIS (and ScaLAPACK's BLAS) runs. */
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  return ift_mpi_test_run(argc, argv, "dist", tests);
}
