/* loss: the IFT test vectors of docs/ift.md (every listed option, weights, row
 * losses and dL/dlogp), finite differences of the exact gradient for every
 * side/value/norm/mu combination, γ = 0 bit-identical to SFT, empty rows. */
#include <string.h>

#include "harness.h"
#include "iftrain/loss.h"

enum { B = 2, T = 6 };
static const uint8_t M[B * T] = {0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 0};
static const double ELL[B * T] = {0, .5, 1, .25, 2, 0, .1, .2, .3, 0, .4, 0};

static double run(loss_ift_opts o, double *d, double *w) {
  double lp[B * T];
  for (int i = 0; i < B * T; i++) lp[i] = -ELL[i];
  double ws[LOSS_IFT_SCRATCH(B, T)];
  return loss_ift_d(d, w, lp, M, B, T, 2.0, &o, ws);
}

static void test_vectors_left_l1(void) {
  loss_ift_opts o = loss_ift_defaults();
  double d[B * T], w[B * T];
  double L = run(o, d, w);
  static const double w_ref[B * T] = {0, 1.281457, 1.149971, 0.812634, 0.755938, 0,
                                      1.277682, 1.193225, 0.952620, 0, 0.576472, 0};
  static const double d_ref[B * T] = {0, -.142397, -.132689, -.061478, -.109480, 0,
                                      -.137967, -.124769, -.110198, 0, -.096347, 0};
  for (int i = 0; i < B * T; i++) {
    IFT_ASSERT_CLOSE(w[i], w_ref[i], 0, 1e-6);
    IFT_ASSERT_CLOSE(d[i], d_ref[i], 0, 1e-6);
  }
  IFT_ASSERT_CLOSE(L, 0.548565, 0, 1e-6);
  /* row losses through a one-row call (n_global = 1) */
  double lp[T], ws[LOSS_IFT_SCRATCH(1, T)];
  for (int t = 0; t < T; t++) lp[t] = -ELL[t];
  IFT_ASSERT_CLOSE(loss_ift_d(NULL, NULL, lp, M, 1, T, 1.0, &o, ws), 0.876434, 0, 1e-6);
  for (int t = 0; t < T; t++) lp[t] = -ELL[T + t];
  IFT_ASSERT_CLOSE(loss_ift_d(NULL, NULL, lp, M + T, 1, T, 1.0, &o, ws), 0.220697, 0, 1e-6);
}

static void test_vectors_options(void) {
  loss_ift_opts o = loss_ift_defaults();
  o.gamma = 1.0;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.538889, 0, 1e-6);
  o = loss_ift_defaults();
  o.norm = IFT_NORM_L2;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.510542, 0, 1e-6);
  o.norm = IFT_NORM_LOG;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.555659, 0, 1e-6);
  o.norm = IFT_NORM_SOFTMAX;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.571293, 0, 1e-6);
  o = loss_ift_defaults();
  o.side = IFT_SIDE_RIGHT;
  o.right_mu = IFT_MU_BATCH;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.434874, 0, 1e-6);
  o.right_mu = IFT_MU_ROW;
  IFT_ASSERT_CLOSE(run(o, NULL, NULL), 0.456137, 0, 1e-6);
}

static void test_vectors_gamma0(void) {
  loss_ift_opts o = loss_ift_defaults();
  o.gamma = 0;
  float lp[B * T], d[B * T], w[B * T];
  for (int i = 0; i < B * T; i++) lp[i] = (float)-ELL[i];
  double L = loss_ift(d, w, NULL, lp, M, B, T, 2.0, &o, NULL); /* γ = 0: no scratch */
  IFT_ASSERT_CLOSE(L, 0.59375, 0, 1e-6);
  for (int i = 0; i < B * T; i++) {
    IFT_ASSERT_CLOSE(d[i], M[i] ? -0.125 : 0.0, 0, 1e-7);
    IFT_ASSERT_CLOSE(w[i], M[i] ? 1.0 : 0.0, 0, 0);
  }
  /* the double core has the same special case */
  double dd[B * T], wd[B * T];
  IFT_ASSERT_CLOSE(run(o, dd, wd), 0.59375, 0, 1e-12);
  for (int i = 0; i < B * T; i++) {
    IFT_ASSERT_CLOSE(dd[i], M[i] ? -0.125 : 0.0, 0, 1e-12);
    IFT_ASSERT_CLOSE(wd[i], M[i] ? 1.0 : 0.0, 0, 0);
  }
}

/* γ = 0 must be SFT to the bit, in loss, gradient and metrics. */
static void test_gamma0_bitwise_sft(void) {
  enum { BB = 3, TT = 17 };
  float lp[BB * TT], d1[BB * TT], d2[BB * TT];
  uint8_t m[BB * TT];
  for (int i = 0; i < BB * TT; i++) {
    lp[i] = (float)(-3.0 * rng_uniform(3, 0, (uint64_t)i));
    m[i] = (i % TT) > 4 && rng_uniform(3, 1, (uint64_t)i) < 0.8;
  }
  loss_ift_opts o = loss_ift_defaults();
  o.gamma = 0;
  loss_metrics a = {0}, b = {0};
  double L1 = loss_ift(d1, NULL, &a, lp, m, BB, TT, 7.0, &o, NULL); /* γ = 0: no scratch */
  double L2 = loss_sft(d2, &b, lp, m, BB, TT, 7.0);
  CU_ASSERT_EQUAL(memcmp(&L1, &L2, sizeof L1), 0);
  CU_ASSERT_EQUAL(memcmp(d1, d2, sizeof d1), 0);
  CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
}

static void check_fd(loss_ift_opts o) {
  enum { BB = 3, TT = 9 };
  double lp[BB * TT], d[BB * TT], ws[LOSS_IFT_SCRATCH(BB, TT)];
  uint8_t m[BB * TT];
  for (int i = 0; i < BB * TT; i++) {
    lp[i] = -0.05 - 2.0 * rng_uniform(17, 0, (uint64_t)i);
    m[i] = (i % TT) >= 2 && ((i * 7) % 5) != 0;
  }
  loss_ift_d(d, NULL, lp, m, BB, TT, 3.0, &o, ws);
  double worst = 0;
  for (int i = 0; i < BB * TT; i++) {
    const double h = 1e-6;
    double s = lp[i];
    lp[i] = s + h;
    double p = loss_ift_d(NULL, NULL, lp, m, BB, TT, 3.0, &o, ws);
    lp[i] = s - h;
    double q = loss_ift_d(NULL, NULL, lp, m, BB, TT, 3.0, &o, ws);
    lp[i] = s;
    double fd = (p - q) / (2 * h);
    double e = fabs(fd - d[i]) / (fabs(fd) + 1e-6);
    if (e > worst) worst = e;
  }
  if (worst > 1e-6)
    fprintf(stderr, "\n  side %d value %d norm %d mu %d: worst relative error %.3g", o.side,
            o.value, o.norm, o.right_mu, worst);
  CU_ASSERT(worst <= 1e-6);
}

static void test_fd_all_options(void) {
  for (int side = 0; side < 2; side++)
    for (int value = 0; value < 2; value++)
      for (int norm = 0; norm < 4; norm++)
        for (int mu = 0; mu < 2; mu++) {
          if (!side && mu) continue;
          loss_ift_opts o = {.gamma = 0.9, .side = side, .value = value, .norm = norm,
                             .right_mu = mu};
          check_fd(o);
        }
}

static void test_empty_rows_and_metrics(void) {
  float lp[2 * 4] = {0, -1, -2, -3, 0, -1, -1, -1}, d[8];
  uint8_t m[8] = {0, 0, 0, 0, 0, 1, 1, 0};
  loss_metrics met = {0};
  loss_ift_opts o = loss_ift_defaults();
  double ws[LOSS_IFT_SCRATCH(2, 4)];
  double L = loss_ift(d, NULL, &met, lp, m, 2, 4, 2.0, &o, ws);
  for (int t = 0; t < 4; t++) CU_ASSERT_EQUAL(d[t], 0.0f);
  CU_ASSERT_EQUAL(met.rows, 1);
  CU_ASSERT_EQUAL(met.tokens, 2);
  IFT_ASSERT_CLOSE(met.nll_sum, 1.0, 0, 1e-9);
  IFT_ASSERT_CLOSE(L, 0.5, 0, 1e-7); /* equal losses: any weights give the mean */
  IFT_ASSERT_CLOSE(met.loss_sum, 1.0, 0, 1e-7);
}

static void test_kind_names(void) {
  loss_kind k;
  CU_ASSERT_EQUAL(loss_kind_parse("ift", &k), 0);
  CU_ASSERT_EQUAL(k, LOSS_IFT);
  CU_ASSERT_EQUAL(loss_kind_parse("simpo", &k), 0);
  CU_ASSERT_EQUAL(k, LOSS_SIMPO);
  CU_ASSERT_EQUAL(loss_kind_parse("ppo", &k), -1);
  CU_ASSERT_STRING_EQUAL(loss_kind_name(LOSS_ORPO), "orpo");
}


/* ---- preference losses: hand values (pc -3, pr -5; reference rc -4, rr -4.5;
 * lengths nc 3, nr 5 for IPO, nc 3, nr 2 for ORPO and SimPO). */
static void test_pref_hand_values(void) {
  loss_pref_opts o = loss_pref_defaults(LOSS_DPO);
  CU_ASSERT_EQUAL(o.beta, 0.1);
  /* DPO: h = (−3+4) − (−5+4.5) = 1.5, z = .15, L = log(1 + e^−.15) */
  loss_pair p = loss_pref_pair(LOSS_DPO, &o, -3, -5, -4, -4.5, 3, 5);
  IFT_ASSERT_CLOSE(p.loss, 0.6209570477895321, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_c, -0.046257015465625044, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_r, 0.046257015465625044, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.margin, 0.15, 1e-12, 0);
  /* label smoothing .1: −.9 log s(z) − .1 log s(−z) = L + .1 z */
  o.label_smoothing = 0.1;
  p = loss_pref_pair(LOSS_DPO, &o, -3, -5, -4, -4.5, 3, 5);
  IFT_ASSERT_CLOSE(p.loss, 0.6359570477895321, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_c, -0.03625701546562504, 1e-12, 0);
  /* IPO: h = 1/3 + .5/5, target 1/(2 .1) = 5 */
  o = loss_pref_defaults(LOSS_IPO);
  p = loss_pref_pair(LOSS_IPO, &o, -3, -5, -4, -4.5, 3, 5);
  IFT_ASSERT_CLOSE(p.loss, 20.854444444444443, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_c, -3.0444444444444443, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_r, 1.8266666666666667, 1e-12, 0);
  /* ORPO (beta .25): mean log-probs −1 and −2.5, no reference */
  o = loss_pref_defaults(LOSS_ORPO);
  CU_ASSERT_EQUAL(o.beta, 0.25);
  p = loss_pref_pair(LOSS_ORPO, &o, -3, -5, 0, 0, 3, 2);
  IFT_ASSERT_CLOSE(p.margin, 1.8730246616450437, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.loss, 1.0357344829990436, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_c, -0.3508922374959198, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_r, 0.018137862920365542, 1e-12, 0);
  /* SimPO (beta 2, gamma_s 1.6): z = 2(−1) − 2(−2.5) − 1.6 = 1.4 */
  o = loss_pref_defaults(LOSS_SIMPO);
  p = loss_pref_pair(LOSS_SIMPO, &o, -3, -5, 123, 456, 3, 2);
  IFT_ASSERT_CLOSE(p.margin, 1.4, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.loss, 0.22041740991845094, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_c, -0.13187740762761221, 1e-12, 0);
  IFT_ASSERT_CLOSE(p.d_r, 0.1978161114414183, 1e-12, 0);
  CU_ASSERT(loss_pref_needs_ref(LOSS_DPO) && loss_pref_needs_ref(LOSS_IPO));
  CU_ASSERT(!loss_pref_needs_ref(LOSS_ORPO) && !loss_pref_needs_ref(LOSS_SIMPO));
  CU_ASSERT(loss_is_pref(LOSS_SIMPO) && !loss_is_pref(LOSS_IFT) && !loss_is_pref(LOSS_SFT));
}

/* Batch loss over [2B, T] rows against central differences of its own value
 * (float inputs, step 1e-3 in double through a copy). */
static void check_pref_fd(loss_kind k, loss_pref_opts o) {
  enum { PB = 2, PT = 5 };
  static const uint8_t pm[2 * PB * PT] = {0, 1, 1, 0, 0,  0, 0, 1, 1, 1,   /* chosen */
                                          0, 1, 1, 1, 0,  0, 1, 0, 0, 0};  /* rejected */
  float lp[2 * PB * PT], d[2 * PB * PT];
  const float ref[2 * PB] = {-2.0f, -2.5f, -1.5f, -0.7f};
  for (int i = 0; i < 2 * PB * PT; i++) lp[i] = -0.2f - 0.37f * (float)((i * 7) % 5);
  const double ng = 3.0;
  loss_metrics met = {0};
  loss_pref(d, &met, lp, pm, PB, PT, loss_pref_needs_ref(k) ? ref : NULL, ng, k, &o);
  CU_ASSERT_EQUAL(met.rows, 2);
  CU_ASSERT_EQUAL(met.tokens, 2 + 3 + 3 + 1);
  for (int i = 0; i < 2 * PB * PT; i++) {
    if (!pm[i]) {
      CU_ASSERT_EQUAL(d[i], 0.0f);
      continue;
    }
    const float h = 1e-2f, x = lp[i];
    lp[i] = x + h;
    double fp = loss_pref(NULL, NULL, lp, pm, PB, PT, loss_pref_needs_ref(k) ? ref : NULL, ng, k, &o);
    lp[i] = x - h;
    double fm = loss_pref(NULL, NULL, lp, pm, PB, PT, loss_pref_needs_ref(k) ? ref : NULL, ng, k, &o);
    lp[i] = x;
    IFT_ASSERT_CLOSE(d[i], (fp - fm) / (2.0 * h), 2e-3, 1e-6);
  }
}

static void test_pref_fd(void) {
  loss_pref_opts o = loss_pref_defaults(LOSS_DPO);
  o.beta = 0.7; /* make the sigmoid curve visible at these scales */
  check_pref_fd(LOSS_DPO, o);
  o.label_smoothing = 0.2;
  check_pref_fd(LOSS_DPO, o);
  o = loss_pref_defaults(LOSS_IPO);
  check_pref_fd(LOSS_IPO, o);
  o = loss_pref_defaults(LOSS_ORPO);
  check_pref_fd(LOSS_ORPO, o);
  o = loss_pref_defaults(LOSS_SIMPO);
  check_pref_fd(LOSS_SIMPO, o);
}

/* Empty answers contribute nothing; the sums of loss_answer_logp; the batch
 * loss equals the mean of the pair losses. */
static void test_pref_batch(void) {
  enum { PT = 4 };
  const uint8_t pm[4 * PT] = {0, 1, 1, 0, 0, 0, 0, 0, /* chosen: row 1 empty */
                              0, 1, 0, 0, 0, 1, 1, 1};
  const float lp[4 * PT] = {0, -1, -2, 0, 0, 0, 0, 0, 0, -0.5f, 0, 0, 0, -1, -1, -1};
  double sums[4];
  loss_answer_logp(sums, lp, pm, 4, PT);
  CU_ASSERT_EQUAL(sums[0], -3.0);
  CU_ASSERT_EQUAL(sums[1], 0.0);
  CU_ASSERT_EQUAL(sums[2], -0.5);
  CU_ASSERT_EQUAL(sums[3], -3.0);
  loss_pref_opts o = loss_pref_defaults(LOSS_SIMPO);
  loss_metrics met = {0};
  float d[4 * PT];
  double L = loss_pref(d, &met, lp, pm, 2, PT, NULL, 2.0, LOSS_SIMPO, &o);
  loss_pair p = loss_pref_pair(LOSS_SIMPO, &o, -3, -0.5, 0, 0, 2, 1);
  IFT_ASSERT_CLOSE(L, p.loss / 2.0, 1e-12, 0);
  CU_ASSERT_EQUAL(met.rows, 1);
  CU_ASSERT_EQUAL(met.pref_correct, p.margin > 0);
  for (int t = 0; t < PT; t++) CU_ASSERT_EQUAL(d[PT + t], 0.0f);      /* empty pair */
  for (int t = 0; t < PT; t++) CU_ASSERT_EQUAL(d[3 * PT + t], 0.0f);
  IFT_ASSERT_CLOSE(d[1], p.d_c / 2.0, 1e-6, 0);
  IFT_ASSERT_CLOSE(d[2 * PT + 1], p.d_r / 2.0, 1e-6, 0);
}

static CU_TestInfo tests[] = {{"docs/ift.md vectors: left/loss/L1 weights, L_b, L, dL/dlogp", test_vectors_left_l1},
                              {"docs/ift.md vectors: gamma 1, L2, log, softmax, right batch/row mu", test_vectors_options},
                              {"docs/ift.md vectors: gamma 0 uniform", test_vectors_gamma0},
                              {"gamma 0 is SFT bit for bit", test_gamma0_bitwise_sft},
                              {"finite differences, every option", test_fd_all_options},
                              {"empty rows and metrics", test_empty_rows_and_metrics},
                              {"loss kind names", test_kind_names},
                              {"preference losses: hand values (DPO, label smoothing, IPO, ORPO, SimPO)", test_pref_hand_values},
                              {"preference losses: finite differences", test_pref_fd},
                              {"preference losses: batch, empty answers, answer sums", test_pref_batch},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("loss", tests)
