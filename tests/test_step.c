/* step: IFT with γ = 0, λ = 0 equals SFT bit for bit (loss and every
 * gradient); answer-slot replacement; λ = 1 feeds the greedy tokens and
 * scores the true ones; IFT's gradient of a whole micro-batch against
 * float64 finite differences of a float64 reference; packed == unpacked; a
 * tiny model overfits 8 sequences with each optimizer. */
#include <string.h>

#include "harness.h"
#include "iftrain/kern.h"
#include "iftrain/optim.h"
#include "iftrain/step.h"
#include "refmodel.h"

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
  /* the λ = 1 training pass is a forward of x~ scored on the original
   * targets: a plain forward on x~ (which scores x~ itself), its full
   * logits re-scored on the true tokens, gives the pass's log-probs */
  memcpy(lp_alt, w.logp, sizeof lp_alt);
  model_input on_alt = {.tokens = w.alt};
  CU_ASSERT_EQUAL_FATAL(model_forward(m, lp, NULL, &on_alt, B, T, 0), IFT_OK);
  float logits[32];
  int rescored = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t + 1 < T; t++) {
      const int n = b * T + t;
      CU_ASSERT_EQUAL_FATAL(model_logits(m, logits, n), IFT_OK);
      double mx = -INFINITY, z = 0;
      for (int v = 0; v < c.vocab_size; v++) mx = fmax(mx, logits[v]);
      for (int v = 0; v < c.vocab_size; v++) z += exp(logits[v] - mx);
      IFT_ASSERT_CLOSE(lp_alt[n + 1], logits[tok[n + 1]] - mx - log(z), 1e-5, 1e-5);
      rescored += fabsf(lp[n + 1] - lp_alt[n + 1]) > 1e-3f; /* x~ scored on itself differs */
    }
  CU_ASSERT(rescored > 0);
  step_ws_destroy(&w);
  model_destroy(m);
}

/* IFT's gradient of a whole micro-batch through step_microbatch (intuition
 * pass, answer replacement, λ blend, training pass, IFT token weights that
 * are not detached, the 1/n_global scaling, backward) against float64
 * central differences of the loss L(θ) = loss_ift_d(logp_ref(θ; x, x~, λ))
 * of the float64 reference model (tests/refmodel.h).  x~ is held at the
 * intuition pass's greedy tokens: an argmax is piecewise constant, so its
 * derivative is 0 almost everywhere and the gradient is that of the loss
 * with x~ fixed.  Every element of every tensor, on a model small enough
 * to run in about a second. */
static void ift_fd(int embed_grad) {
  enum { FB = 3, FT = 7 };
  model_config c = {.vocab_size = 23, .hidden_size = 16, .intermediate_size = 24,
                    .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                    .max_position_embeddings = FT, .tie_word_embeddings = 0,
                    .rms_norm_eps = 1e-5, .rope_theta = 10000.0, .init_seed = 3};
  int x[FB * FT];
  uint8_t mk[FB * FT];
  for (int b = 0; b < FB; b++)
    for (int t = 0; t < FT; t++) {
      x[b * FT + t] = (int)(rng_uniform(31, (uint64_t)b, (uint64_t)t) * c.vocab_size);
      mk[b * FT + t] = t >= 2 + b; /* prompts of 2-4 tokens */
    }
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &c, MPI_COMM_NULL, FB, FT), IFT_OK);
  refmodel_fd_weights(m, 11);
  float *p = model_params(m);
  const size_t np = model_nparams(m);
  step_ws w;
  CU_ASSERT_EQUAL_FATAL(step_ws_create(&w, FB, FT), IFT_OK);
  const double n_global = 5; /* not FB: the scaling is part of what is checked */
  const float lambda = 0.5f;
  step_cfg ift = {.kind = LOSS_IFT, .ift = loss_ift_defaults(), .embed_grad = embed_grad};
  loss_metrics met = {0};
  model_zero_grads(m);
  CU_ASSERT_EQUAL_FATAL(step_microbatch(m, &w, &met, x, mk, FB, FT, n_global, lambda, &ift, 1), IFT_OK);
  const float *g = model_grads(m);
  int xt[FB * FT], replaced = 0;
  memcpy(xt, w.alt, sizeof xt);
  for (int i = 0; i < FB * FT; i++) replaced += xt[i] != x[i];
  CU_ASSERT(replaced > 0); /* the blend has a second lookup to differentiate */

  refmodel ref;
  refmodel_init(&ref, m);
  double *pd = malloc(sizeof(double) * np), *fd = malloc(sizeof(double) * np), *Ef = NULL;
  double lpd[FB * FT], dl[FB * FT], lws[LOSS_IFT_SCRATCH(FB, FT)];
  CU_ASSERT_FATAL(pd && fd);
  for (size_t i = 0; i < np; i++) pd[i] = p[i];
  if (!embed_grad) { /* the input lookups read a frozen copy of the table */
    const size_t ne = (size_t)c.vocab_size * c.hidden_size;
    Ef = malloc(sizeof(double) * ne);
    CU_ASSERT_PTR_NOT_NULL_FATAL(Ef);
    memcpy(Ef, pd + ref.embed, sizeof(double) * ne);
  }
#define IFT_FD_LOSS(out)                                                       \
  do {                                                                         \
    refmodel_logp(&ref, pd, Ef, lpd, x, xt, lambda, FB, FT);                   \
    (out) = loss_ift_d(dl, NULL, lpd, mk, FB, FT, n_global, &ift.ift, lws);    \
  } while (0)
  double L0;
  IFT_FD_LOSS(L0);
  IFT_ASSERT_CLOSE(met.loss_sum / n_global, L0, 1e-5, 1e-7);
  /* Step 1e-5 max(|θ|, 0.1): truncation and rounding of the float64
   * differences are below 1e-9 relative.  The fp32 gradient's own rounding
   * (model backward, float dlogp) was observed below 1e-5 of the tensor's
   * largest gradient; tolerance 3e-5 relative + 3e-5 of that largest
   * gradient, as in tests/test_model.c.  Dropping the weights' own
   * derivative (detaching them) or the 1/n_global, or the blend's share of
   * the gradient, is orders of magnitude above it. */
  for (size_t j = 0; j < np; j++) {
    const double save = pd[j], h = 1e-5 * (fabs(save) > 0.1 ? fabs(save) : 0.1);
    double lp, lm;
    pd[j] = save + h;
    IFT_FD_LOSS(lp);
    pd[j] = save - h;
    IFT_FD_LOSS(lm);
    pd[j] = save;
    fd[j] = (lp - lm) / (2 * h);
  }
#undef IFT_FD_LOSS
  size_t bad = 0;
  double worst = 0;
  for (int ti = 0; ti < model_ntensors(m); ti++) {
    const model_tensor *t = model_tensor_at(m, ti);
    const size_t n = (size_t)t->lrows * t->lcols;
    double scale = 0;
    for (size_t j = t->offset; j < t->offset + n; j++) scale = fmax(scale, fabs(fd[j]));
    if (!embed_grad && !strcmp(t->name, "model.embed_tokens.weight")) CU_ASSERT(scale == 0);
    for (size_t j = t->offset; j < t->offset + n; j++) {
      const double err = fabs(fd[j] - g[j]) / (3e-5 * fabs(fd[j]) + 3e-5 * scale + 1e-12);
      worst = fmax(worst, err);
      if (err > 1.0 && bad++ < 10)
        fprintf(stderr, "\n  %s[%zu]: step_microbatch %.9g, finite difference %.9g", t->name,
                j - t->offset, g[j], fd[j]);
    }
  }
  if (getenv("IFT_FD_VERBOSE")) fprintf(stderr, "\n  %zu elements, worst error %.3g of the tolerance", np, worst);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(optim_sqnorm(g, np) > 1e-6);
  free(Ef);
  free(fd);
  free(pd);
  step_ws_destroy(&w);
  model_destroy(m);
}
static void test_ift_fd_embed_grad(void) { ift_fd(1); }
static void test_ift_fd_frozen_lookups(void) { ift_fd(0); }

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
                              {"IFT micro-batch gradient = float64 finite differences (embed_grad 1)",
                               test_ift_fd_embed_grad},
                              {"IFT micro-batch gradient = float64 finite differences (frozen lookups)",
                               test_ift_fd_frozen_lookups},
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
