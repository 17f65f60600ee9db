/* The held-out metrics' arithmetic (src/app/evaluate.c): ROUGE-L F1 of token
 * sequences against a longest common subsequence found another way (plain
 * recursion with a memo), on hand-made cases and 300 random pairs.  The
 * metrics of whole evaluations (exact match, ROUGE-L, preference accuracy on
 * a model whose greedy answers are known) are checked by tests/hf/eval.sh. */
#include <stdlib.h>
#include <string.h>

#include "../src/app/app_train.h"
#include "harness.h"

enum { MAXN = 24 };
static int memo[MAXN + 1][MAXN + 1];

static int lcs_rec(const int *a, int n, const int *b, int m) {
  if (n == 0 || m == 0) return 0;
  int *c = &memo[n][m];
  if (*c >= 0) return *c;
  if (a[n - 1] == b[m - 1]) return *c = 1 + lcs_rec(a, n - 1, b, m - 1);
  const int x = lcs_rec(a, n - 1, b, m), y = lcs_rec(a, n, b, m - 1);
  return *c = x > y ? x : y;
}

static double rouge_ref(const int *a, int n, const int *b, int m) {
  if (n == 0 || m == 0) return n == m ? 1.0 : 0.0;
  memset(memo, -1, sizeof memo);
  const int l = lcs_rec(a, n, b, m);
  return l ? 2.0 * l / (n + m) : 0.0; /* 2PR/(P+R) with P = l/n, R = l/m */
}

static void test_cases(void) {
  const int a[] = {1, 2, 3, 4}, b[] = {1, 3, 4, 5, 6}, c[] = {7, 8};
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 4, a, 4), 1.0, 1e-15, 0);
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 4, c, 2), 0.0, 0, 0);
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 4, b, 5), 2.0 * 3 / 9, 1e-15, 0); /* LCS 1 3 4 */
  IFT_ASSERT_CLOSE(eval_rouge_l(b, 5, a, 4), 2.0 * 3 / 9, 1e-15, 0); /* symmetric */
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 0, b, 0), 1.0, 0, 0);             /* both empty */
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 0, b, 5), 0.0, 0, 0);
  IFT_ASSERT_CLOSE(eval_rouge_l(a, 4, b, 0), 0.0, 0, 0);
  const int r[] = {5, 5, 5}, s[] = {5};
  IFT_ASSERT_CLOSE(eval_rouge_l(r, 3, s, 1), 2.0 * 1 / 4, 1e-15, 0); /* a repeat matches once */
}

static void test_random(void) {
  srand(7);
  int a[MAXN], b[MAXN], worst = 0;
  for (int it = 0; it < 300; it++) {
    const int n = rand() % (MAXN + 1), m = rand() % (MAXN + 1), v = 2 + rand() % 6;
    for (int i = 0; i < n; i++) a[i] = rand() % v;
    for (int j = 0; j < m; j++) b[j] = rand() % v;
    const double got = eval_rouge_l(a, n, b, m), want = rouge_ref(a, n, b, m);
    if (fabs(got - want) > 1e-12) worst++;
  }
  CU_ASSERT_EQUAL(worst, 0);
}

static CU_TestInfo tests[] = {{"ROUGE-L of hand-made token sequences", test_cases},
                              {"ROUGE-L = F1 of a recursive LCS on 300 random pairs", test_random},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("eval", tests)
