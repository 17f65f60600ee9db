/* optim: updates against values worked out by hand (PyTorch 1.13 formulas),
 * defaults, schedules, clipping, and convergence on a quadratic. */
#include "harness.h"
#include "iftrain/optim.h"

static void test_adamw_by_hand(void) {
  optim_cfg c = optim_defaults(OPTIM_ADAMW); /* lr 1e-3, wd 1e-2 */
  c.lr = 0.1;
  optim_state s;
  CU_ASSERT_EQUAL_FATAL(optim_create(&s, &c, 1), IFT_OK);
  float p = 1.0f, g = 0.5f;
  /* step 1: p = 1·(1 − 0.1·0.01) = 0.999; m = 0.05, v = 0.00025;
   * m̂ = 0.5, v̂ = 0.25 → p −= 0.1·0.5/(0.5 + 1e-8) → 0.899 */
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 0.899, 0, 1e-6);
  /* step 2 with g = −1: p = 0.899·0.999 = 0.898101; m = 0.045 − 0.1 = −0.055;
   * v = 0.00024975 + 0.001 = 0.00124975; m̂ = −0.055/0.19 = −0.289474;
   * v̂ = 0.00124975/0.001999 = 0.625188 → √ = 0.790688;
   * p += 0.1·0.289474/0.790688 = 0.036610 → 0.934711 */
  g = -1.0f;
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 0.934711, 0, 2e-6);
  optim_destroy(&s);
}

static void test_rmsprop_by_hand(void) {
  optim_cfg c = optim_defaults(OPTIM_RMSPROP);
  CU_ASSERT_EQUAL(c.alpha, 0.99);
  CU_ASSERT_EQUAL(c.lr, 1e-2);
  optim_state s;
  CU_ASSERT_EQUAL_FATAL(optim_create(&s, &c, 1), IFT_OK);
  float p = 2.0f, g = 1.0f;
  /* v = 0.01 → √v = 0.1; p −= 0.01·1/(0.1 + 1e-8) = 0.1 → 1.9 */
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 1.9, 0, 1e-6);
  /* v = 0.0099 + 0.0004 = 0.0103 with g = 0.2 → p −= 0.01·0.2/0.101489 */
  g = 0.2f;
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 1.9 - 0.002 / sqrt(0.0103), 0, 1e-6);
  optim_destroy(&s);
  /* momentum and L2 weight decay */
  c.momentum = 0.5;
  c.weight_decay = 0.1;
  CU_ASSERT_EQUAL_FATAL(optim_create(&s, &c, 1), IFT_OK);
  p = 1.0f;
  g = 0.9f; /* g + wd·p = 1.0 → v = 0.01, u = 10 → buf = 10, p = 1 − 0.1 = 0.9 */
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 0.9, 0, 1e-6);
  g = 0.91f; /* g' = 1.0 → v = 0.0199, u = 1/0.141067 = 7.08881; buf = 5 + 7.08881 */
  optim_step(&s, &p, &g, c.lr);
  IFT_ASSERT_CLOSE(p, 0.9 - 0.01 * (5.0 + 1.0 / sqrt(0.0199)), 0, 1e-5);
  optim_destroy(&s);
}

static void test_sgd_by_hand(void) {
  optim_cfg c = optim_defaults(OPTIM_SGD);
  c.lr = 0.1;
  c.momentum = 0.9;
  optim_state s;
  CU_ASSERT_EQUAL_FATAL(optim_create(&s, &c, 1), IFT_OK);
  float p = 1.0f, g = 1.0f;
  optim_step(&s, &p, &g, c.lr); /* buf = g = 1 → 0.9 */
  IFT_ASSERT_CLOSE(p, 0.9, 0, 1e-7);
  optim_step(&s, &p, &g, c.lr); /* buf = 1.9 → 0.71 */
  IFT_ASSERT_CLOSE(p, 0.71, 0, 1e-6);
  optim_destroy(&s);
}

static void test_defaults(void) {
  optim_cfg a = optim_defaults(OPTIM_ADAMW);
  CU_ASSERT_EQUAL(a.lr, 1e-3);
  CU_ASSERT_EQUAL(a.beta1, 0.9);
  CU_ASSERT_EQUAL(a.beta2, 0.999);
  CU_ASSERT_EQUAL(a.eps, 1e-8);
  CU_ASSERT_EQUAL(a.weight_decay, 1e-2);
  optim_kind k;
  CU_ASSERT_EQUAL(optim_kind_parse("rmsprop", &k), 0);
  CU_ASSERT_EQUAL(k, OPTIM_RMSPROP);
  CU_ASSERT_EQUAL(optim_kind_parse("adam", &k), -1);
}

static void test_schedules(void) {
  optim_cfg c = optim_defaults(OPTIM_ADAMW);
  c.lr = 1.0;
  c.warmup = 0.1; /* 10 of 100 steps */
  c.schedule = LR_COSINE;
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 0, 100), 0.1, 0, 1e-12);
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 9, 100), 1.0, 0, 1e-12);
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 10, 100), 1.0, 0, 1e-12);
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 55, 100), 0.5, 0, 1e-12);
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 100, 100), 0.0, 0, 1e-12);
  c.schedule = LR_LINEAR;
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 55, 100), 0.5, 0, 1e-12);
  c.schedule = LR_CONSTANT;
  c.warmup = 4; /* steps */
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 1, 100), 0.5, 0, 1e-12);
  IFT_ASSERT_CLOSE(optim_lr_at(&c, 80, 100), 1.0, 0, 1e-12);
}

static void test_clip(void) {
  CU_ASSERT_EQUAL(optim_clip_factor(5.0, 0.0), 1.0);
  CU_ASSERT_EQUAL(optim_clip_factor(0.5, 1.0), 1.0);
  IFT_ASSERT_CLOSE(optim_clip_factor(4.0, 1.0), 1.0 / (4.0 + 1e-6), 0, 1e-15);
  float g[3] = {3, 4, 0};
  IFT_ASSERT_CLOSE(optim_sqnorm(g, 3), 25.0, 0, 0);
}

static void test_quadratic(void) {
  for (int k = 0; k < 3; k++) {
    optim_cfg c = optim_defaults((optim_kind)k);
    c.lr = k == OPTIM_RMSPROP ? 0.01 : 0.05;
    c.weight_decay = 0;
    if (k == OPTIM_SGD) c.momentum = 0.9;
    optim_state s;
    CU_ASSERT_EQUAL_FATAL(optim_create(&s, &c, 4), IFT_OK);
    float p[4] = {1, -2, 3, 0.5f}, g[4];
    const float target[4] = {0.25f, 0.5f, -1.0f, 2.0f};
    for (int it = 0; it < 3000; it++) {
      for (int i = 0; i < 4; i++) g[i] = (float)(i + 1) * (p[i] - target[i]);
      optim_step(&s, p, g, optim_lr_at(&c, it, 3000));
    }
    for (int i = 0; i < 4; i++) IFT_ASSERT_CLOSE(p[i], target[i], 0, 2e-2);
    optim_destroy(&s);
  }
}

static CU_TestInfo tests[] = {{"AdamW by hand", test_adamw_by_hand},
                              {"RMSprop by hand (plain, momentum, L2)", test_rmsprop_by_hand},
                              {"SGD momentum by hand", test_sgd_by_hand},
                              {"PyTorch defaults", test_defaults},
                              {"warm-up, cosine, linear, constant", test_schedules},
                              {"clip factor and squared norm", test_clip},
                              {"each optimizer minimises a quadratic", test_quadratic},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("optim", tests)
