/* Frozen Lake: dynamics, the demonstrations, the policy's gradients (finite
 * differences for every method's objective), transition matrices and the
 * success probability. */
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
    /* a sample of every parameter block */
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
  lake_train(LAKE_SFT, &o, 1, &p);
  CU_ASSERT(lake_greedy_success(&p));
  double Q[LAKE_N][LAKE_N], P[LAKE_N][LAKE_N];
  lake_transition_optimal(Q);
  lake_transition(&p, P);
  CU_ASSERT(lake_success(P, 100) > 0.9);
}

static CU_TestInfo tests[] = {{"dynamics: walls, holes, goal, distances", test_dynamics},
                              {"demonstrations: optimal 6 moves, sub-optimal 8, both reach G", test_demos},
                              {"policy gradients of SFT, IFT, DPO, ORPO by finite differences", test_gradients},
                              {"transition matrices and success probability", test_transitions},
                              {"SFT learns the optimal walk", test_training},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("lake", tests)
