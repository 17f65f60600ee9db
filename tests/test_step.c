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

/* Packing: documents packed several to a row (positions restarting, each
 * attending only to itself, padding as a document of its own) give the
 * losses, metrics and gradients of the same documents one per row. */
enum { PT = 20, PR = 3, MAXD = 8 };
typedef struct {
  int n, len[MAXD], row[MAXD], start[MAXD]; /* documents in loss order and where they are packed */
} pack_case;

static double rel_l2(const float *a, const float *b, size_t n) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    s += (double)b[i] * b[i];
  }
  return sqrt(d / (s > 0 ? s : 1));
}

static void packed_vs_unpacked(const pack_case *pc, loss_kind kind) {
  model_config c = tiny();
  int L = 2;
  for (int d = 0; d < pc->n; d++) L = pc->len[d] > L ? pc->len[d] : L;
  const int R = PR > pc->n ? PR : pc->n, Tm = PT > L ? PT : L;
  model *u, *p;
  CU_ASSERT_EQUAL_FATAL(model_create(&u, &c, MPI_COMM_NULL, R, Tm), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_create(&p, &c, MPI_COMM_NULL, R, Tm), IFT_OK);
  model_init_weights(u, 6);
  model_init_weights(p, 6);
  step_ws w;
  CU_ASSERT_EQUAL_FATAL(step_ws_create(&w, R, Tm), IFT_OK);
  int utok[MAXD * PT] = {0}, ptok[PR * PT], pos[PR * PT];
  uint8_t umsk[MAXD * PT] = {0}, pmsk[PR * PT];
  step_doc docs[MAXD];
  for (int i = 0; i < PR * PT; i++) { /* padding: documents of their own, never in the loss */
    ptok[i] = 1;
    pmsk[i] = 0;
    pos[i] = i % PT;
  }
  for (int d = 0; d < pc->n; d++) {
    docs[d] = (step_doc){pc->row[d], pc->start[d], pc->len[d]};
    for (int t = 0; t < pc->len[d]; t++) {
      const int tk = (int)(rng_uniform(23, (uint64_t)d, (uint64_t)t) * 32);
      const uint8_t mk = t >= 2 + d % 3; /* a prompt of 2-4 tokens, then the answer */
      utok[d * L + t] = tk;
      umsk[d * L + t] = mk;
      const int i = pc->row[d] * PT + pc->start[d] + t;
      ptok[i] = tk;
      pmsk[i] = mk;
      pos[i] = t;
    }
    const int e = pc->row[d] * PT + pc->start[d] + pc->len[d]; /* what follows restarts */
    for (int i = e, k = 0; i < (pc->row[d] + 1) * PT && pos[i] != 0; i++) pos[i] = k++;
  }
  step_pack pk = {.pos = pos, .docs = docs, .ndocs = pc->n};
  step_cfg sc = {.kind = kind, .ift = loss_ift_defaults(), .embed_grad = 1, .pref = loss_pref_defaults(kind)};
  loss_metrics mu = {0}, mp = {0};
  model_zero_grads(u);
  model_zero_grads(p);
  if (loss_is_pref(kind)) {
    const float ref[MAXD] = {-9.5f, -12.0f, -7.25f, -11.0f, -8.0f, -10.5f, -6.0f, -13.0f};
    CU_ASSERT_EQUAL(step_pairs(u, &w, &mu, utok, umsk, pc->n / 2, L, ref, 4.0, &sc, 1), IFT_OK);
    CU_ASSERT_EQUAL(step_pairs_packed(p, &w, &mp, ptok, pmsk, PR, PT, &pk, ref, 4.0, &sc, 1), IFT_OK);
  } else {
    CU_ASSERT_EQUAL(step_microbatch(u, &w, &mu, utok, umsk, pc->n, L, 9.0, 0.5f, &sc, 1), IFT_OK);
    CU_ASSERT_EQUAL(step_microbatch_packed(p, &w, &mp, ptok, pmsk, PR, PT, &pk, 9.0, 0.5f, &sc, 1), IFT_OK);
  }
  IFT_ASSERT_CLOSE(mp.loss_sum, mu.loss_sum, 1e-5, 1e-6);
  IFT_ASSERT_CLOSE(mp.nll_sum, mu.nll_sum, 1e-5, 1e-6);
  CU_ASSERT_EQUAL(mp.tokens, mu.tokens);
  CU_ASSERT_EQUAL(mp.rows, mu.rows);
  CU_ASSERT_EQUAL(mp.pref_correct, mu.pref_correct);
  const double e = rel_l2(model_grads(p), model_grads(u), model_nparams(u));
  if (e > 1e-5) fprintf(stderr, "\n  %s packed: gradient relative L2 %.3g", loss_kind_name(kind), e);
  CU_ASSERT(e <= 1e-5);
  CU_ASSERT(optim_sqnorm(model_grads(u), model_nparams(u)) > 1e-8);
  /* the test can fail: the packed rows read as one sequence each (no
   * positions) give other log-probs for every document after a row's first */
  float lp[PR * PT], lq[PR * PT];
  model_input with = {.tokens = ptok, .pos = pos}, without = {.tokens = ptok};
  CU_ASSERT_EQUAL(model_forward(p, lp, NULL, &with, PR, PT, 0), IFT_OK);
  CU_ASSERT_EQUAL(model_forward(p, lq, NULL, &without, PR, PT, 0), IFT_OK);
  for (int d = 0; d < pc->n; d++) {
    const int i = docs[d].row * PT + docs[d].start + 1;
    if (docs[d].start) CU_ASSERT(fabsf(lp[i] - lq[i]) > 1e-4f);
    if (!docs[d].start) IFT_ASSERT_CLOSE(lp[i], lq[i], 1e-6, 1e-6);
  }
  step_ws_destroy(&w);
  model_destroy(u);
  model_destroy(p);
}

/* 7 documents in 3 rows of 20: 9+5+3 | 12+7 | 6+10, loss order interleaved */
static const pack_case seqs = {7, {9, 12, 5, 7, 3, 6, 10}, {0, 1, 0, 1, 0, 2, 2}, {0, 0, 9, 12, 14, 0, 6}};
/* 3 pairs: chosen 8, 11, 6 and rejected 10, 5, 9 in rows 8+5+6 | 11+9 | 10 */
static const pack_case pairs = {6, {8, 11, 6, 10, 5, 9}, {0, 1, 0, 2, 0, 1}, {0, 0, 13, 0, 8, 11}};
static void test_packed_sft(void) { packed_vs_unpacked(&seqs, LOSS_SFT); }
static void test_packed_ift(void) { packed_vs_unpacked(&seqs, LOSS_IFT); }
static void test_packed_dpo(void) { packed_vs_unpacked(&pairs, LOSS_DPO); }
static void test_packed_simpo(void) { packed_vs_unpacked(&pairs, LOSS_SIMPO); }

static CU_TestInfo tests[] = {{"IFT gamma 0 lambda 0 == SFT bit for bit", test_gamma0_lambda0_is_sft},
                              {"answer slots take the shifted greedy tokens", test_replace_answers},
                              {"lambda 1 feeds exactly the greedy tokens", test_lambda1_feeds_greedy},
                              {"packed == unpacked: SFT", test_packed_sft},
                              {"packed == unpacked: IFT (per-document intuition, weights)", test_packed_ift},
                              {"packed == unpacked: DPO pairs", test_packed_dpo},
                              {"packed == unpacked: SimPO pairs", test_packed_simpo},
                              {"IFT overfits 8 sequences: AdamW", test_overfit_adamw},
                              {"IFT overfits 8 sequences: RMSprop", test_overfit_rmsprop},
                              {"IFT overfits 8 sequences: SGD", test_overfit_sgd},
                              CU_TEST_INFO_NULL};

int main(void) {
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  return ift_test_run("step", tests);
}
