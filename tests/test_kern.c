/* kern (BLIS part): kernel-set choice and precedence, and that every kernel
 * set this CPU can run computes the same sgemm as a naive loop, for every
 * transpose combination and odd shapes.  BLIS fixes its kernel set once per
 * process, so each set is exercised in a forked child before the parent
 * touches BLIS. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "iftrain/kern.h"

static double max_rel_err_vs_naive(void) {
  /* m = 1 takes the matrix-vector path (one token's decode) */
  static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 200}, {257, 129, 64},
                                  {1, 300, 70}, {1, 9, 513}};
  double worst = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
        int arows = ta ? k : m, brows = tb ? n : k;
        float *A = malloc(sizeof(float) * (size_t)arows * lda);
        float *B = malloc(sizeof(float) * (size_t)brows * ldb);
        float *C = malloc(sizeof(float) * (size_t)m * ldc);
        for (int i = 0; i < arows * lda; i++) A[i] = (float)rng_normal(1, (uint64_t)s, (uint64_t)i);
        for (int i = 0; i < brows * ldb; i++) B[i] = (float)rng_normal(2, (uint64_t)s, (uint64_t)i);
        for (int i = 0; i < m * ldc; i++) C[i] = (float)rng_normal(3, (uint64_t)s, (uint64_t)i);
        float *C0 = malloc(sizeof(float) * (size_t)m * ldc);
        memcpy(C0, C, sizeof(float) * (size_t)m * ldc);
        const float alpha = 0.75f, beta = -0.5f;
        kern_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        for (int i = 0; i < m; i++)
          for (int j = 0; j < n; j++) {
            double acc = 0, mag = 0;
            for (int p = 0; p < k; p++) {
              double a = ta ? A[p * lda + i] : A[i * lda + p];
              double b = tb ? B[j * ldb + p] : B[p * ldb + j];
              acc += a * b;
              mag += fabs(a * b);
            }
            double ref = alpha * acc + beta * C0[i * ldc + j];
            double scale = alpha * mag + fabs(beta * C0[i * ldc + j]) + 1e-30;
            double e = fabs(C[i * ldc + j] - ref) / scale;
            if (e > worst) worst = e;
          }
        free(A); free(B); free(C); free(C0);
      }
  }
  return worst;
}

/* Child: select `set`, check BLIS runs it, compare with the naive loop. */
static int run_child(const char *set) {
  pid_t pid = fork();
  if (pid == 0) {
    ift_error_quiet(1);
    if (kern_select_arch(set) != IFT_OK) _exit(3);
    if (kern_arch_active() != kern_arch_selected()) _exit(4);
    _exit(max_rel_err_vs_naive() < 1e-6 ? 0 : 5);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static void test_parse(void) {
  CU_ASSERT_EQUAL(kern_arch_parse("skx"), KERN_ARCH_SKX);
  CU_ASSERT_EQUAL(kern_arch_parse("GENERIC"), KERN_ARCH_GENERIC);
  CU_ASSERT_EQUAL(kern_arch_parse("6"), KERN_ARCH_ZEN3);
  CU_ASSERT_EQUAL(kern_arch_parse("26"), -1); /* BLIS 0.9 aborts on ids >= 26 */
  CU_ASSERT_EQUAL(kern_arch_parse("zen5"), -1);
  CU_ASSERT_STRING_EQUAL(kern_arch_name(KERN_ARCH_HASWELL), "haswell");
}

static void test_precedence(void) {
  ift_error_quiet(1);
  setenv("BLIS_ARCH_TYPE", "25", 1);
  CU_ASSERT_EQUAL(kern_select_arch("auto"), IFT_OK);
  CU_ASSERT_EQUAL(kern_arch_selected(), KERN_ARCH_GENERIC);
  CU_ASSERT_EQUAL(kern_arch_how(), KERN_SEL_ENV);
  CU_ASSERT_EQUAL(kern_select_arch("haswell"), IFT_OK);
  CU_ASSERT_EQUAL(kern_arch_selected(), KERN_ARCH_HASWELL);
  CU_ASSERT_EQUAL(kern_arch_how(), KERN_SEL_OPTION);
  CU_ASSERT_STRING_EQUAL(getenv("BLIS_ARCH_TYPE"), "3");
  CU_ASSERT_EQUAL(kern_select_arch("nonsense"), IFT_ERR_ARG);
  setenv("BLIS_ARCH_TYPE", "99", 1);
  CU_ASSERT_EQUAL(kern_select_arch(NULL), IFT_ERR_ARG);
  unsetenv("BLIS_ARCH_TYPE");
  CU_ASSERT_EQUAL(kern_select_arch(NULL), IFT_OK);
  CU_ASSERT_EQUAL(kern_arch_how(), KERN_SEL_CPUID);
  /* The automatic choice is never the generic set on a CPU with AVX2+FMA,
   * whatever BLIS itself would pick. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    CU_ASSERT_NOT_EQUAL(kern_arch_selected(), KERN_ARCH_GENERIC);
  ift_error_quiet(0);
}

static void test_every_set_matches_naive(void) {
  CU_ASSERT_EQUAL(run_child("auto"), 0);
  CU_ASSERT_EQUAL(run_child("generic"), 0);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    CU_ASSERT_EQUAL(run_child("haswell"), 0);
    CU_ASSERT_EQUAL(run_child("zen3"), 0);
  }
  CU_ASSERT_EQUAL(run_child("probe"), 0);
}

static CU_TestInfo tests[] = {{"arch names parse", test_parse},
                              {"selection precedence option > env > cpuid", test_precedence},
                              {"every kernel set equals a naive loop", test_every_set_matches_naive},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("kern", tests)
