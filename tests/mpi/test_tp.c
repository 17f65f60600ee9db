/* Tensor parallelism, 1D (Megatron splits) and 2D (PBLAS on a BLACS grid):
 * with the model sharded over the TP ranks of this job, loss, every gradient
 * shard and IFT's greedy tokens equal one rank's full model; 5 optimizer
 * steps end with equal weights. */
#include <string.h>

#include "iftrain/kern.h"
#include "iftrain/optim.h"
#include "iftrain/step.h"
#include "mpi_harness.h"
#include "../llama3_cfg.h"

enum { B = 3, T = 12 };
static int g_block = 0; /* 2D weight block (0: one block per process) */
static int tok[B * T];
static uint8_t msk[B * T];

static model_config cfg(void) {
  model_config c = {.vocab_size = 64, .hidden_size = 32, .intermediate_size = 48,
                    .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                    .max_position_embeddings = 16, .tie_word_embeddings = 0,
                    .rms_norm_eps = 1e-5, .rope_theta = 10000.0, .init_seed = 1};
  return c;
}

/* max |shard - full[region]| relative to max |full| over every tensor */
static double shard_diff(model *tp, const float *tpbuf, model *one, const float *onebuf) {
  double worst = 0;
  for (int i = 0; i < model_ntensors(tp); i++) {
    const model_tensor *t = model_tensor_at(tp, i), *u = model_tensor_find(one, t->name);
    double mx = 1e-30, d = 0;
    for (int r = 0; r < u->rows * u->cols; r++) mx = fmax(mx, fabs(onebuf[u->offset + (size_t)r]));
    for (int r = 0; r < t->lrows; r++)
      for (int c = 0; c < t->lcols; c++) {
        double a = tpbuf[t->offset + (size_t)r * t->lcols + c];
        double b = onebuf[u->offset + (size_t)model_tensor_grow(t, r) * u->cols +
                          model_tensor_gcol(t, c)];
        d = fmax(d, fabs(a - b));
      }
    if (d / mx > worst) worst = d / mx;
    if (d / mx > 1e-5) fprintf(stderr, "\n  %s differs by %.3g (relative)", t->name, d / mx);
  }
  return worst;
}

/* TP groups of 2 ranks: on 2 ranks TP = 2, on 4 ranks DP 2 x TP 2. */
static MPI_Comm tp_comm(void) {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm c;
  MPI_Comm_split(MPI_COMM_WORLD, r / 2, r, &c);
  return c;
}

/* 2D grids hold every rank of the job; GQA with 4 KV heads so that the
 * head-parallel attention core splits over 4 ranks too. */
static model_config cfg2d(void) {
  model_config c = cfg();
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  return c;
}

/* pr = 0: 1D on TP groups of 2; pr > 0: a pr x pc grid over groups of
 * pr * pc neighbouring ranks (DP x TP when that is less than the job). */
static MPI_Comm make_tp(model **tp, const model_config *c, int pr, int pc, int rows) {
  MPI_Comm tpc;
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  if (pr) MPI_Comm_split(MPI_COMM_WORLD, r / (pr * pc), r, &tpc);
  else tpc = tp_comm();
  CU_ASSERT_EQUAL(model_create_grid(tp, c, tpc, pr, pc, g_block, rows, T), IFT_OK);
  return tpc;
}

/* Fresh gradients of one micro-batch (B rows of t tokens) on both models;
 * their losses agree. */
static void step_both(model *tp, model *one, step_ws *w2, step_ws *w1, const int *tk,
                      const uint8_t *mk, int t, const step_cfg *sc) {
  loss_metrics m1 = {0}, m2 = {0};
  model_zero_grads(tp);
  model_zero_grads(one);
  CU_ASSERT_EQUAL(step_microbatch(one, w1, &m1, tk, mk, B, t, B, 0.5f, sc, 1), IFT_OK);
  CU_ASSERT_EQUAL(step_microbatch(tp, w2, &m2, tk, mk, B, t, B, 0.5f, sc, 1), IFT_OK);
  IFT_ASSERT_CLOSE(m2.loss_sum, m1.loss_sum, 1e-5, 0);
}

/* head_dim 12 (hidden/heads is 8 and 4): H*D is wider than hidden_size,
 * with llama3 RoPE scaling (frequencies in all three bands) */
static int g_wide_heads;
static model_config widen(model_config c) {
  return g_wide_heads ? test_llama3(c, 12, 8, 512) : c;
}

static void compare(loss_kind kind, int tied, int pr, int pc) {
  model_config c = widen(pr ? cfg2d() : cfg());
  c.tie_word_embeddings = tied;
  model *tp = NULL, *one;
  MPI_Comm tpc = make_tp(&tp, &c, pr, pc, B);
  if (!tp) {
    MPI_Comm_free(&tpc);
    return;
  }
  CU_ASSERT_EQUAL_FATAL(model_create(&one, &c, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(tp, 9);
  model_init_weights(one, 9);
  CU_ASSERT(shard_diff(tp, model_params(tp), one, model_params(one)) == 0.0);
  for (size_t i = 0; i < model_nparams(tp); i++) model_params(tp)[i] *= 2;
  for (size_t i = 0; i < model_nparams(one); i++) model_params(one)[i] *= 2;
  step_ws w1, w2;
  step_ws_create(&w1, B, T);
  step_ws_create(&w2, B, T);
  step_cfg sc = {.kind = kind, .ift = loss_ift_defaults(), .embed_grad = 1};
  /* SGD with momentum: AdamW's per-element normalisation turns rounding-
   * level differences of near-zero gradients into O(lr) weight changes, which
   * says nothing about the sharding. */
  optim_cfg oc = optim_defaults(OPTIM_SGD);
  oc.momentum = 0.9;
  optim_state o1, o2;
  optim_create(&o1, &oc, model_nparams(one));
  optim_create(&o2, &oc, model_nparams(tp));
  /* A micro-batch smaller than planned, B x (T - 1) = 33 tokens: uneven
   * token blocks over the grid columns (17 + 16) and the gather (9,9,9,6). */
  {
    const int T2 = T - 1;
    int t2[B * T];
    uint8_t k2[B * T];
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T2; t++) {
        t2[b * T2 + t] = tok[b * T + t];
        k2[b * T2 + t] = msk[b * T + t];
      }
    step_both(tp, one, &w2, &w1, t2, k2, T2, &sc);
    CU_ASSERT(shard_diff(tp, model_grads(tp), one, model_grads(one)) <= 1e-5);
  }
  for (int s = 0; s < 5; s++) {
    step_both(tp, one, &w2, &w1, tok, msk, T, &sc);
    if (kind == LOSS_IFT) CU_ASSERT_EQUAL(memcmp(w1.alt, w2.alt, sizeof(int) * B * T), 0);
    if (s == 0) CU_ASSERT(shard_diff(tp, model_grads(tp), one, model_grads(one)) <= 1e-5);
    optim_step(&o1, model_params(one), model_grads(one), 0.1);
    optim_step(&o2, model_params(tp), model_grads(tp), 0.1);
  }
  CU_ASSERT(shard_diff(tp, model_params(tp), one, model_params(one)) <= 1e-5);
  /* greedy tokens of the vocab-parallel argmax */
  int a1[B * T], a2[B * T];
  model_input in = {.tokens = tok};
  model_forward(one, w1.logp, a1, &in, B, T, 0);
  model_forward(tp, w2.logp, a2, &in, B, T, 0);
  CU_ASSERT_EQUAL(memcmp(a1, a2, sizeof a1), 0);
  optim_destroy(&o1);
  optim_destroy(&o2);
  step_ws_destroy(&w1);
  step_ws_destroy(&w2);
  model_destroy(tp);
  model_destroy(one);
  MPI_Comm_free(&tpc);
}

/* Preference losses: B pairs = 2B rows (chosen = the test rows, rejected =
 * the same prompts with other answer tokens), loss and every gradient shard
 * of the TP model equal one rank's. */
static void compare_pref(loss_kind kind, int pr, int pc) {
  model_config c = pr ? cfg2d() : cfg();
  model *tp = NULL, *one;
  MPI_Comm tpc = make_tp(&tp, &c, pr, pc, 2 * B);
  if (!tp) {
    MPI_Comm_free(&tpc);
    return;
  }
  CU_ASSERT_EQUAL_FATAL(model_create(&one, &c, MPI_COMM_NULL, 2 * B, T), IFT_OK);
  model_init_weights(tp, 4);
  model_init_weights(one, 4);
  step_ws w1, w2;
  step_ws_create(&w1, 2 * B, T);
  step_ws_create(&w2, 2 * B, T);
  int pt[2 * B * T];
  uint8_t pm[2 * B * T];
  memcpy(pt, tok, sizeof tok);
  memcpy(pm, msk, sizeof msk);
  for (int i = 0; i < B * T; i++) {
    pt[B * T + i] = msk[i] ? (tok[i] * 7 + 3) % 64 : tok[i];
    pm[B * T + i] = msk[i];
  }
  const float ref[2 * B] = {-30.f, -33.f, -28.f, -35.f, -31.f, -29.f};
  step_cfg sc = {.kind = kind, .pref = loss_pref_defaults(kind)};
  loss_metrics m1 = {0}, m2 = {0};
  model_zero_grads(tp);
  model_zero_grads(one);
  CU_ASSERT_EQUAL(step_pairs(one, &w1, &m1, pt, pm, B, T, ref, B, &sc, 1), IFT_OK);
  CU_ASSERT_EQUAL(step_pairs(tp, &w2, &m2, pt, pm, B, T, ref, B, &sc, 1), IFT_OK);
  IFT_ASSERT_CLOSE(m2.loss_sum, m1.loss_sum, 1e-5, 0);
  CU_ASSERT(m1.rows == B && m1.loss_sum > 0);
  CU_ASSERT(shard_diff(tp, model_grads(tp), one, model_grads(one)) <= 1e-5);
  step_ws_destroy(&w1);
  step_ws_destroy(&w2);
  model_destroy(tp);
  model_destroy(one);
  MPI_Comm_free(&tpc);
}
static void test_dpo(void) { compare_pref(LOSS_DPO, 0, 0); }
static void test_ipo_orpo_simpo(void) {
  compare_pref(LOSS_IPO, 0, 0);
  compare_pref(LOSS_ORPO, 0, 0);
  compare_pref(LOSS_SIMPO, 0, 0);
}

static void test_sft_untied(void) { compare(LOSS_SFT, 0, 0, 0); }
static void test_ift_untied(void) { compare(LOSS_IFT, 0, 0, 0); }
static void test_ift_tied(void) { compare(LOSS_IFT, 1, 0, 0); }

/* Every pr x pc grid of TP = 2 and TP = all ranks: on 2 ranks 1x2, 2x1;
 * on 4 ranks DP 2 x (1x2, 2x1) and 1x4, 2x2, 4x1. */
static void each_grid(void (*f)(int pr, int pc)) {
  int P, r;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  for (int tp = 2; tp <= P; tp *= 2)
    for (int pr = 1; pr <= tp; pr++)
      if (tp % pr == 0) {
        f(pr, tp / pr);
        if (r == 0) fprintf(stderr, " [%s%dx%d]", tp < P ? "DP x " : "", pr, tp / pr);
      }
}
static void sft2d(int pr, int pc) { compare(LOSS_SFT, 0, pr, pc); }
static void ift2d(int pr, int pc) {
  compare(LOSS_IFT, 0, pr, pc);
  compare(LOSS_IFT, 1, pr, pc);
}
static void dpo2d(int pr, int pc) { compare_pref(LOSS_DPO, pr, pc); }
static void test_2d_sft(void) { each_grid(sft2d); }
/* block-cyclic weights: blocks of 8 (several blocks per rank on every grid) */
static void test_2d_cyclic(void) {
  g_block = 8;
  each_grid(sft2d);
  each_grid(ift2d);
  each_grid(dpo2d);
  g_block = 0;
}
static void test_2d_ift(void) { each_grid(ift2d); }
static void test_wide_heads(void) {
  g_wide_heads = 1;
  compare(LOSS_IFT, 0, 0, 0);
  each_grid(ift2d);
  g_wide_heads = 0;
}
static void test_2d_dpo(void) { each_grid(dpo2d); }

/* (Divisibility of the matrices by the grid follows from the 1D checks:
 * heads, KV heads and intermediate_size divisible by P = pr * pc.) */
static void test_2d_impossible(void) {
  model_config c = cfg2d();
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  model *m;
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(model_create_grid(&m, &c, MPI_COMM_WORLD, 3, 1, 0, B, T), IFT_ERR_LAYOUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "does not hold"));
  CU_ASSERT_EQUAL(model_create_grid(&m, &c, MPI_COMM_WORLD, P, 0, 0, B, T), IFT_ERR_LAYOUT);
  c.intermediate_size = 6 * P + 2; /* 2 + a multiple of P: not divisible for P = 4 */
  if (P == 4) CU_ASSERT_EQUAL(model_create_grid(&m, &c, MPI_COMM_WORLD, 2, 2, 0, B, T), IFT_ERR_LAYOUT);
  c = cfg2d(); /* KV width 32 is not a multiple of 2 x 32 */
  CU_ASSERT_EQUAL(model_create_grid(&m, &c, MPI_COMM_WORLD, P, 1, 32, B, T), IFT_ERR_LAYOUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "with blocks of 32 does not divide"));
  ift_error_quiet(0);
}

static void test_impossible(void) {
  model_config c = cfg();
  c.num_key_value_heads = 1; /* cannot be split over 2+ ranks */
  model *m;
  MPI_Comm tpc = tp_comm();
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(model_create(&m, &c, tpc, B, T), IFT_ERR_LAYOUT);
  MPI_Comm_free(&tpc);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "does not divide"));
  ift_error_quiet(0);
}

static CU_TestInfo tests[] = {{"TP: SFT loss, gradients, 5 steps equal one rank", test_sft_untied},
                              {"TP: IFT loss, gradients, greedy tokens, 5 steps", test_ift_untied},
                              {"TP: IFT with tied embeddings", test_ift_tied},
                              {"TP: DPO loss and gradients equal one rank", test_dpo},
                              {"TP: IPO, ORPO, SimPO loss and gradients equal one rank", test_ipo_orpo_simpo},
                              {"TP: impossible head split refused", test_impossible},
                              {"TP 2D: SFT loss, gradients, 5 steps on every grid", test_2d_sft},
                              {"TP 2D: IFT (untied, tied) on every grid", test_2d_ift},
                              {"TP 2D: DPO loss and gradients on every grid", test_2d_dpo},
                              {"TP 2D block-cyclic weights (8 x 8): SFT, IFT, DPO on every grid", test_2d_cyclic},
                              {"TP 2D: grids that do not divide the model refused", test_2d_impossible},
                              {"TP 1D, 2D: IFT with head_dim 12 (H*D > hidden), llama3 RoPE", test_wide_heads},
                              CU_TEST_INFO_NULL};

int main(int argc, char **argv) {
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  for (int i = 0; i < B * T; i++) {
    tok[i] = (int)(rng_uniform(2, 0, (uint64_t)i) * 64);
    msk[i] = (i % T) >= 3;
  }
  return ift_mpi_test_run(argc, argv, "tp", tests);
}
