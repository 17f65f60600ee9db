/* Frozen Lake: dynamics, the demonstrations, the policy's gradients (finite
 * differences for every method's objective), transition matrices and the
 * success probability. */
#include <stddef.h>
#include <string.h>

#include "harness.h"
#include "iftrain/lake.h"

static void test_dynamics(void) {
  CU_ASSERT_EQUAL(lake_step(0, 0), 0); /* wall: stay */
  CU_ASSERT_EQUAL(lake_step(0, 3), 0);
  CU_ASSERT_EQUAL(lake_step(0, 1), 4);
  CU_ASSERT_EQUAL(lake_step(0, 2), 1);
  CU_ASSERT_EQUAL(lake_step(3, 2), 3);
  CU_ASSERT_EQUAL(lake_step(14, 2), 15);
  CU_ASSERT_EQUAL(lake_step(6, 0), 5); /* into a hole */
  CU_ASSERT_EQUAL(lake_step(9, 3), 5);
  for (int a = 0; a < 4; a++) {
    CU_ASSERT_EQUAL(lake_step(5, a), 5);   /* holes absorb */
    CU_ASSERT_EQUAL(lake_step(15, a), 15); /* goal absorbs */
  }
  int holes = 0;
  for (int s = 0; s < LAKE_N; s++) holes += lake_is_hole(s);
  CU_ASSERT_EQUAL(holes, 4);
  CU_ASSERT(lake_is_hole(5) && lake_is_hole(7) && lake_is_hole(11) && lake_is_hole(12));
  CU_ASSERT(lake_is_terminal(15) && !lake_is_hole(15) && !lake_is_terminal(0));
  int d[LAKE_N];
  lake_distances(d);
  CU_ASSERT_EQUAL(d[0], 6);
  CU_ASSERT_EQUAL(d[14], 1);
  CU_ASSERT_EQUAL(d[5], -1);
  CU_ASSERT_EQUAL(d[10], 2);
  int act[LAKE_N];
  lake_optimal_policy(act);
  CU_ASSERT_EQUAL(act[0], 1);  /* down (4) and right (1) both 5 from G: lowest id */
  CU_ASSERT_EQUAL(act[1], 2);  /* down is a hole */
  CU_ASSERT_EQUAL(act[10], 1); /* down to 14, not left to 9 */
  CU_ASSERT_EQUAL(act[14], 2);
  CU_ASSERT_EQUAL(act[5], 0);  /* terminal */
}

static void check_traj(const lake_traj *t) {
  CU_ASSERT_EQUAL(t->s[0], LAKE_START);
  int s = LAKE_START;
  for (int i = 0; i < t->len; i++) {
    CU_ASSERT_EQUAL(t->s[i], s);
    CU_ASSERT(!lake_is_terminal(s));
    s = lake_step(s, t->a[i]);
  }
  CU_ASSERT_EQUAL(s, LAKE_GOAL);
}

static void test_demos(void) {
  lake_traj g, b;
  lake_demo_optimal(&g);
  lake_demo_suboptimal(&b);
  CU_ASSERT_EQUAL(g.len, 6);
  CU_ASSERT_EQUAL(b.len, 8);
  CU_ASSERT(b.len > g.len);
  check_traj(&g);
  check_traj(&b);
  CU_ASSERT_NOT_EQUAL(g.a[0], b.a[0]); /* they disagree from the start */
}

static void test_gradients(void) {
  lake_traj g, b;
  lake_demo_optimal(&g);
  lake_demo_suboptimal(&b);
  lake_opts o = lake_defaults();
  o.lambda = 0.3;
  lake_mlp p, ref, grad;
  lake_mlp_init(&p, 5, 7);
  lake_mlp_init(&ref, 5, 8);
  for (int m = 0; m < 4; m++) {
    lake_objective((lake_method)m, &o, &p, &ref, &g, &b, &grad);
    /* a sample of every parameter block (every parameter for SFT and IFT below) */
    double *pw[4] = {&p.w1[2][g.s[1]], &p.b1[3], &p.w2[g.a[2]][1], &p.b2[1]};
    double *gw[4] = {&grad.w1[2][g.s[1]], &grad.b1[3], &grad.w2[g.a[2]][1], &grad.b2[1]};
    for (int k = 0; k < 4; k++) {
      const double x = *pw[k], h = 1e-6;
      *pw[k] = x + h;
      double fp = lake_objective((lake_method)m, &o, &p, &ref, &g, &b, NULL);
      *pw[k] = x - h;
      double fm = lake_objective((lake_method)m, &o, &p, &ref, &g, &b, NULL);
      *pw[k] = x;
      IFT_ASSERT_CLOSE(*gw[k], (fp - fm) / (2 * h), 1e-5, 1e-9);
    }
  }
  /* DPO against itself as reference: log 2 */
}

static int greedy_of(const lake_mlp *p, int s) {
  double x[LAKE_N] = {0}, lp[LAKE_A];
  x[s] = 1;
  lake_mlp_logp(p, x, lp);
  int b = 0;
  for (int a = 1; a < LAKE_A; a++)
    if (lp[a] > lp[b]) b = a;
  return b;
}

/* Every parameter of the SFT and IFT objectives; for IFT the blend must be
 * non-trivial (the greedy move from some s_{t-1} misses s_t), else the test
 * would only re-check SFT with IFT weights. */
static void test_gradients_all(void) {
  lake_traj g, b;
  lake_demo_optimal(&g);
  lake_demo_suboptimal(&b);
  lake_opts o = lake_defaults();
  lake_mlp p, grad;
  lake_mlp_init(&p, 5, 11);
  int blended = 0;
  for (int t = 1; t < g.len; t++) blended += lake_step(g.s[t - 1], greedy_of(&p, g.s[t - 1])) != g.s[t];
  CU_ASSERT(blended > 0);
  const int ms[2] = {LAKE_SFT, LAKE_IFT};
  for (int k = 0; k < 2; k++) {
    const lake_method m = (lake_method)ms[k];
    lake_objective(m, &o, &p, NULL, &g, &b, &grad);
    double *pw = &p.w1[0][0], *gw = &grad.w1[0][0];
    const size_t n = (sizeof p - offsetof(lake_mlp, w1)) / sizeof(double);
    int checked = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
      /* skip the padding beyond H of the fixed-size arrays */
      const size_t w1n = LAKE_HMAX * LAKE_N, b1n = LAKE_HMAX, w2n = LAKE_A * LAKE_HMAX;
      if (i < w1n ? (int)(i / LAKE_N) >= p.H
                  : i < w1n + b1n ? (int)(i - w1n) >= p.H
                  : i < w1n + b1n + w2n ? (int)((i - w1n - b1n) % LAKE_HMAX) >= p.H : 0)
        continue;
      const double x = pw[i], h = 1e-6;
      pw[i] = x + h;
      const double fp = lake_objective(m, &o, &p, NULL, &g, &b, NULL);
      pw[i] = x - h;
      const double fm = lake_objective(m, &o, &p, NULL, &g, &b, NULL);
      pw[i] = x;
      const double fd = (fp - fm) / (2 * h);
      if (fabs(gw[i] - fd) > 1e-9 + 1e-6 * fabs(fd)) {
        if (bad++ < 5) fprintf(stderr, "\n  %s param %zu: grad %.10g fd %.10g", lake_method_name(m), i, gw[i], fd);
      }
      checked++;
    }
    CU_ASSERT_EQUAL(checked, 5 * LAKE_N + 5 + LAKE_A * 5 + LAKE_A);
    CU_ASSERT_EQUAL(bad, 0);
  }
  /* IFT with lambda = 0 and gamma = 0 is SFT (docs/ift.md) */
  o.lambda = 0;
  o.gamma = 0;
  IFT_ASSERT_CLOSE(lake_objective(LAKE_IFT, &o, &p, NULL, &g, &b, NULL),
                   lake_objective(LAKE_SFT, &o, &p, NULL, &g, &b, NULL), 1e-14, 0);
  IFT_ASSERT_CLOSE(lake_objective(LAKE_DPO, &o, &p, &p, &g, &b, NULL), log(2.0), 1e-12, 0);
}

static void test_transitions(void) {
  double Q[LAKE_N][LAKE_N], P[LAKE_N][LAKE_N];
  lake_transition_optimal(Q);
  CU_ASSERT_EQUAL(lake_mse(Q, Q), 0.0);
  IFT_ASSERT_CLOSE(lake_success(Q, 100), 1.0, 0, 1e-15);
  IFT_ASSERT_CLOSE(lake_success(Q, 5), 0.0, 0, 1e-15); /* 6 moves needed */
  lake_mlp p;
  lake_mlp_init(&p, 8, 3);
  memset(p.w2, 0, sizeof p.w2);
  memset(p.b2, 0, sizeof p.b2); /* uniform policy */
  lake_transition(&p, P);
  for (int s = 0; s < LAKE_N; s++) {
    double r = 0;
    for (int t = 0; t < LAKE_N; t++) r += P[s][t];
    IFT_ASSERT_CLOSE(r, 1.0, 0, 1e-12);
  }
  IFT_ASSERT_CLOSE(P[0][0], 0.5, 0, 1e-12); /* left and up hit the wall */
  const double u = lake_success(P, 100);
  CU_ASSERT(u > 0.0 && u < 1.0);
  CU_ASSERT(lake_mse(P, Q) > 0.0);
}

static void test_training(void) {
  /* SFT on the optimal demonstration learns to walk it greedily */
  lake_opts o = lake_defaults();
  lake_mlp p;
  CU_ASSERT_EQUAL_FATAL(lake_train(LAKE_SFT, &o, 1, &p), IFT_OK);
  CU_ASSERT(lake_greedy_success(&p));
  double Q[LAKE_N][LAKE_N], P[LAKE_N][LAKE_N];
  lake_transition_optimal(Q);
  lake_transition(&p, P);
  CU_ASSERT(lake_success(P, 100) > 0.9);
}

static CU_TestInfo tests[] = {{"dynamics: walls, holes, goal, distances", test_dynamics},
                              {"demonstrations: optimal 6 moves, sub-optimal 8, both reach G", test_demos},
                              {"policy gradients of SFT, IFT, DPO, ORPO by finite differences", test_gradients},
                              {"every parameter of SFT and IFT by finite differences", test_gradients_all},
                              {"transition matrices and success probability", test_transitions},
                              {"SFT learns the optimal walk", test_training},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("lake", tests)
