/* step: IFT with γ = 0, λ = 0 equals SFT bit for bit (loss and every
 * gradient); answer-slot replacement; IFT's gradient of a whole micro-batch
 * by finite differences; a tiny model overfits 8 sequences with each
 * optimizer. */
#include <string.h>

#include "harness.h"
#include "iftrain/kern.h"
#include "iftrain/optim.h"
#include "iftrain/step.h"

static model_config tiny(void) {
  model_config c = {.vocab_size = 32, .hidden_size = 32, .intermediate_size = 64,
                    .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                    .max_position_embeddings = 32, .tie_word_embeddings = 0,
                    .rms_norm_eps = 1e-5, .rope_theta = 10000.0, .init_seed = 3};
  return c;
}

enum { B = 8, T = 16 };
static int tok[B * T];
static uint8_t msk[B * T];
static void make_batch(void) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      tok[b * T + t] = (int)(rng_uniform(21, (uint64_t)b, (uint64_t)t) * 32);
      msk[b * T + t] = t >= 4 + b % 3; /* prompt of 4-6 tokens, then answer */
    }
}

static void test_gamma0_lambda0_is_sft(void) {
  make_batch();
  model_config c = tiny();
  model *a, *b;
  CU_ASSERT_EQUAL_FATAL(model_create(&a, &c, MPI_COMM_NULL, B, T), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_create(&b, &c, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(a, 5);
  model_init_weights(b, 5);
  step_ws w;
  CU_ASSERT_EQUAL_FATAL(step_ws_create(&w, B, T), IFT_OK);
  step_cfg sft = {.kind = LOSS_SFT};
  step_cfg ift = {.kind = LOSS_IFT, .ift = loss_ift_defaults(), .embed_grad = 1};
  ift.ift.gamma = 0;
  loss_metrics ma = {0}, mb = {0};
  model_zero_grads(a);
  model_zero_grads(b);
  CU_ASSERT_EQUAL(step_microbatch(a, &w, &ma, tok, msk, B, T, 8.0, 0.0f, &sft, 1), IFT_OK);
  CU_ASSERT_EQUAL(step_microbatch(b, &w, &mb, tok, msk, B, T, 8.0, 0.0f, &ift, 1), IFT_OK);
  CU_ASSERT_EQUAL(memcmp(&ma, &mb, sizeof ma), 0);
  CU_ASSERT_EQUAL(memcmp(model_grads(a), model_grads(b), model_nparams(a) * sizeof(float)), 0);
  /* and the gradient is not trivially zero */
  double s = 0;
  for (size_t i = 0; i < model_nparams(a); i++) s += fabs(model_grads(a)[i]);
  CU_ASSERT(s > 1e-3);
  step_ws_destroy(&w);
  model_destroy(a);
  model_destroy(b);
}

static void test_replace_answers(void) {
  enum { BB = 3, TT = 9 };
  int x[BB * TT], am[BB * TT], alt[BB * TT];
  uint8_t m[BB * TT];
  for (int i = 0; i < BB * TT; i++) {
    x[i] = i;
    am[i] = 1000 + i;
    m[i] = (i % TT) >= 3 && (i % 4);
  }
  m[TT] = 1; /* slot 0 of row 1 marked: still never replaced */
  step_replace_answers(alt, x, am, m, BB, TT);
  for (int b = 0; b < BB; b++)
    for (int t = 0; t < TT; t++) {
      int i = b * TT + t;
      int want = (t == 0 || !m[i]) ? x[i] : am[i - 1]; /* shift right by one */
      CU_ASSERT_EQUAL(alt[i], want);
    }
}

/* λ = 1: the training pass sees exactly the greedy tokens of the intuition
 * pass in answer slots and the original tokens in prompt slots. */
static void test_lambda1_feeds_greedy(void) {
  make_batch();
  model_config c = tiny();
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &c, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(m, 8);
  for (size_t i = 0; i < model_nparams(m); i++) model_params(m)[i] *= 10;
  step_ws w;
  CU_ASSERT_EQUAL_FATAL(step_ws_create(&w, B, T), IFT_OK);
  step_cfg ift = {.kind = LOSS_IFT, .ift = loss_ift_defaults()};
  CU_ASSERT_EQUAL(step_microbatch(m, &w, NULL, tok, msk, B, T, 8.0, 1.0f, &ift, 0), IFT_OK);
  /* recompute the greedy tokens independently */
  int am[B * T];
  float lp[B * T], lp_alt[B * T];
  model_input plain = {.tokens = tok};
  model_forward(m, lp, am, &plain, B, T, 0);
  int changed = 0;
  for (int i = 0; i < B * T; i++) {
    int t = i % T;
    int want = (t > 0 && msk[i]) ? am[i - 1] : tok[i];
    CU_ASSERT_EQUAL(w.alt[i], want);
    changed += w.alt[i] != tok[i];
    if (!msk[i]) {
      CU_ASSERT_EQUAL(w.alt[i], tok[i]);
    }
  }
  CU_ASSERT(changed > 0);
  /* the λ = 1 pass equals a forward of x~ with the original targets: its
   * log-probs are those of a forward on x~ re-scored on the true tokens */
  memcpy(lp_alt, w.logp, sizeof lp_alt);
  model_input blend = {.tokens = tok, .alt = w.alt, .lambda = 1.0f};
  model_forward(m, lp, NULL, &blend, B, T, 0);
  CU_ASSERT_EQUAL(memcmp(lp, lp_alt, sizeof lp), 0);
  step_ws_destroy(&w);
  model_destroy(m);
}

static void overfit(optim_kind k, double lr, double momentum, int steps) {
  make_batch();
  model_config c = tiny();
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &c, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(m, 4);
  step_ws w;
  CU_ASSERT_EQUAL_FATAL(step_ws_create(&w, B, T), IFT_OK);
  optim_cfg oc = optim_defaults(k);
  oc.lr = lr;
  oc.momentum = momentum;
  oc.weight_decay = 0;
  optim_state os;
  CU_ASSERT_EQUAL_FATAL(optim_create(&os, &oc, model_nparams(m)), IFT_OK);
  step_cfg ift = {.kind = LOSS_IFT, .ift = loss_ift_defaults()};
  double loss = 1e9;
  for (int s = 0; s < steps && loss > 0.05; s++) {
    model_zero_grads(m);
    loss_metrics met = {0};
    step_microbatch(m, &w, &met, tok, msk, B, T, B, 0.2f, &ift, 1);
    loss = met.nll_sum / B;
    optim_step(&os, model_params(m), model_grads(m), lr);
  }
  if (loss >= 0.05) fprintf(stderr, "\n  %s: answer NLL %.4f after %d steps", optim_kind_name(k), loss, steps);
  CU_ASSERT(loss < 0.05);
  optim_destroy(&os);
  step_ws_destroy(&w);
  model_destroy(m);
}
static void test_overfit_adamw(void) { overfit(OPTIM_ADAMW, 1e-2, 0, 400); }
static void test_overfit_rmsprop(void) { overfit(OPTIM_RMSPROP, 2e-3, 0, 600); }
static void test_overfit_sgd(void) { overfit(OPTIM_SGD, 0.5, 0.9, 1500); }

static CU_TestInfo tests[] = {{"IFT gamma 0 lambda 0 == SFT bit for bit", test_gamma0_lambda0_is_sft},
                              {"answer slots take the shifted greedy tokens", test_replace_answers},
                              {"lambda 1 feeds exactly the greedy tokens", test_lambda1_feeds_greedy},
                              {"IFT overfits 8 sequences: AdamW", test_overfit_adamw},
                              {"IFT overfits 8 sequences: RMSprop", test_overfit_rmsprop},
                              {"IFT overfits 8 sequences: SGD", test_overfit_sgd},
                              CU_TEST_INFO_NULL};

int main(void) {
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  return ift_test_run("step", tests);
}
