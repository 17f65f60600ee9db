/* model: whole-model gradient, every element, against float64 central
 * finite differences of a float64 reference model (tests/refmodel.h),
 * GQA and tied / untied heads, tensor naming, deterministic init, causal masking, greedy
 * argmax, and the IFT input blend. */
#include <string.h>

#include "harness.h"
#include "iftrain/kern.h"
#include "iftrain/model.h"
#include "llama3_cfg.h"
#include "refmodel.h"

static model_config tiny(int tied, int kv) {
  model_config c = {.vocab_size = 37, .hidden_size = 16, .intermediate_size = 24,
                    .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = kv,
                    .max_position_embeddings = 16, .tie_word_embeddings = tied,
                    .rms_norm_eps = 1e-5, .rope_theta = 10000.0, .init_seed = 7};
  return c;
}

static void fill_tokens(int *tok, int n, int V, uint64_t seed) {
  for (int i = 0; i < n; i++) tok[i] = (int)(rng_uniform(seed, 0, (uint64_t)i) * V);
}

/* head_dim 6 (not hidden/heads = 4) with llama3 RoPE scaling whose three
 * frequencies fall in the three bands: kept, blended, divided by the factor */
static model_config odd_heads(model_config c) { return test_llama3(c, 6, 8, 512); }

static void check_fd_cfg(model_config cfg, int blend, int embed_grad) {
  const int B = 2, T = 7, tied = cfg.tie_word_embeddings;
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, B, T), IFT_OK);
  refmodel_fd_weights(m, 3);
  float *p = model_params(m);
  const size_t np = model_nparams(m);
  int tok[B * T], alt[B * T];
  fill_tokens(tok, B * T, cfg.vocab_size, 1);
  fill_tokens(alt, B * T, cfg.vocab_size, 2);
  const float lambda = blend ? 0.3f : 0.0f;
  model_input in = {.tokens = tok, .alt = blend ? alt : NULL, .lambda = lambda, .embed_grad = embed_grad};
  float c[B * T], logp[B * T];
  for (int i = 0; i < B * T; i++) c[i] = (i % T) ? (float)rng_normal(4, 0, (uint64_t)i) : 0.0f;
  model_zero_grads(m);
  CU_ASSERT_EQUAL_FATAL(model_forward(m, logp, NULL, &in, B, T, 1), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_backward(m, c, B, T), IFT_OK);
  const float *g = model_grads(m);

  /* The float64 reference on the same weights; with a frozen input table
   * (IFT reference semantics) its lookups read a copy the differences do
   * not perturb, which is the stop-gradient the backward implements. */
  refmodel ref;
  refmodel_init(&ref, m);
  double *pd = malloc(sizeof(double) * np), *Ef = NULL, lpd[B * T];
  CU_ASSERT_PTR_NOT_NULL_FATAL(pd);
  for (size_t i = 0; i < np; i++) pd[i] = p[i];
  if (blend && !embed_grad) {
    const size_t ne = (size_t)cfg.vocab_size * cfg.hidden_size;
    Ef = malloc(sizeof(double) * ne);
    CU_ASSERT_PTR_NOT_NULL_FATAL(Ef);
    memcpy(Ef, pd + ref.embed, sizeof(double) * ne);
  }
  /* the reference is the model: fp32 log-probs agree to float rounding */
  refmodel_logp(&ref, pd, Ef, lpd, tok, in.alt, lambda, B, T);
  double fwd = 0;
  for (int i = 0; i < B * T; i++) fwd = fmax(fwd, fabs(lpd[i] - logp[i]) / (1 + fabs(lpd[i])));
  if (fwd > 1e-5) fprintf(stderr, "\n  forward: fp32 vs float64 relative error %.3g", fwd);
  CU_ASSERT(fwd <= 1e-5);

  /* Every element of every tensor by float64 central differences of
   * L = sum c logp, step h = 1e-5 max(|p|, 0.1): truncation h^2 L'''/6 and
   * rounding 1e-16 L/h are both below 1e-9 relative, so fd is the exact
   * gradient for this purpose.  What is left is the fp32 backward's own
   * rounding: a few ulps (6e-8) through some 40 operations in series,
   * amplified by the conditioning of softmax and RMSNorm at these
   * 20x weights; observed at most ~1e-5 of the tensor's largest gradient.
   * Tolerance: 1e-4 relative + 1e-4 of the tensor's largest |fd| (a few
   * ulps of the gradients summed into that element).  A sign error, a
   * missing term (a dropped residual, a dropped RoPE rotation, an
   * off-by-one in the causal mask) is far above it. */
  double *fd = malloc(sizeof(double) * np);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fd);
  for (size_t j = 0; j < np; j++) {
    const double save = pd[j], h = 1e-5 * (fabs(save) > 0.1 ? fabs(save) : 0.1);
    double lp = 0, lm = 0;
    pd[j] = save + h;
    refmodel_logp(&ref, pd, Ef, lpd, tok, in.alt, lambda, B, T);
    for (int i = 0; i < B * T; i++) lp += (double)c[i] * lpd[i];
    pd[j] = save - h;
    refmodel_logp(&ref, pd, Ef, lpd, tok, in.alt, lambda, B, T);
    for (int i = 0; i < B * T; i++) lm += (double)c[i] * lpd[i];
    pd[j] = save;
    fd[j] = (lp - lm) / (2 * h);
  }
  size_t checked = 0, bad = 0;
  double worst = 0;
  for (int ti = 0; ti < model_ntensors(m); ti++) {
    const model_tensor *t = model_tensor_at(m, ti);
    const size_t n = (size_t)t->lrows * t->lcols;
    double scale = 0;
    for (size_t j = t->offset; j < t->offset + n; j++) scale = fmax(scale, fabs(fd[j]));
    for (size_t j = t->offset; j < t->offset + n; j++) {
      const double err = fabs(fd[j] - g[j]) / (3e-5 * fabs(fd[j]) + 3e-5 * scale + 1e-12);
      if (err > worst) worst = err;
      if (err > 1.0 && bad++ < 10)
        fprintf(stderr, "\n  %s[%zu]: analytic %.9g, finite difference %.9g", t->name,
                j - t->offset, g[j], fd[j]);
      checked++;
    }
  }
  if (getenv("IFT_FD_VERBOSE")) fprintf(stderr, "\n  %zu elements, worst error %.3g of the tolerance", checked, worst);
  CU_ASSERT_EQUAL(checked, np);
  CU_ASSERT_EQUAL(bad, 0);
  /* With the IFT reference semantics the input lookups get no gradient:
   * an untied embedding's gradient is exactly zero. */
  if (blend && !embed_grad && !tied) {
    const model_tensor *e = model_tensor_find(m, "model.embed_tokens.weight");
    int nz = 0;
    for (size_t i = 0; i < (size_t)e->rows * e->cols; i++) nz |= g[e->offset + i] != 0.0f;
    CU_ASSERT_EQUAL(nz, 0);
  }
  free(fd);
  free(Ef);
  free(pd);
  model_destroy(m);
}

static void check_fd(int tied, int kv, int blend, int embed_grad) {
  check_fd_cfg(tiny(tied, kv), blend, embed_grad);
}

static void test_fd_untied_gqa(void) { check_fd(0, 2, 0, 1); }
static void test_fd_head_dim_llama3(void) { check_fd_cfg(odd_heads(tiny(0, 2)), 1, 0); }

/* transformers' inverse frequencies for Llama 3.2 1B (head_dim 64, theta
 * 5e5, llama3 factor 32, low 1, high 4, original 8192), float64, from this
 * Python (after transformers' _compute_llama3_parameters):
 *   import math
 *   dim, base, factor, low, high, L = 64, 500000.0, 32.0, 1.0, 4.0, 8192
 *   for w in [1.0 / base ** (i / dim) for i in range(0, dim, 2)]:
 *       wl = 2 * math.pi / w
 *       v = w / factor if wl > L / low else w
 *       if not (wl < L / high) and not (wl > L / low):
 *           s = (L / wl - low) / (high - low); v = (1 - s) * v / factor + s * v
 *       print("%.17g" % v)
 * Entries 0-14 are unchanged, 15-16 blended, 17- divided by 32.  The model
 * computes them in fp32 as transformers does: equal to fp32 rounding. */
static void test_rope_inv_freq(void) {
  static const double want[32] = {
      1, 0.66360123769608848, 0.44036660267178046, 0.29222782257301511,
      0.19392274474868576, 0.12868737343265052, 0.085397100285765609, 0.056669621445291044,
      0.037606030930863933, 0.024955408670558694, 0.016560440080994446, 0.010989528534539826,
      0.0072926647372171085, 0.0048394213457198928, 0.0032114459947525913, 0.001290547928209264,
      0.00042955679655936815, 9.7082878026276702e-05, 1.9461638184831125e-05, 1.2914767187047391e-05,
      8.5702554898814781e-06, 5.6872321504570457e-06, 3.7740542941082826e-06, 2.5044671007024935e-06,
      1.6619674677953091e-06, 1.102883668639601e-06, 7.3187496754404192e-07, 4.8567313430101075e-07,
      3.2229329303788936e-07, 2.1387422816109151e-07, 1.4192720251899592e-07, 9.4183067254349087e-08};
  model_config c = test_llama3(model_config_default(), 0, 32, 8192);
  c.hidden_size = 2048;
  c.num_attention_heads = 32;
  c.rope_theta = 500000.0;
  float w[32];
  model_rope_inv_freq(&c, w);
  for (int i = 0; i < 32; i++) IFT_ASSERT_CLOSE(w[i], want[i], 0, 1e-6);
  /* default and linear: theta^(-2i/D), divided by the factor */
  c.rope_type = MODEL_ROPE_LINEAR;
  c.rope_factor = 4;
  model_rope_inv_freq(&c, w);
  for (int i = 0; i < 32; i++) IFT_ASSERT_CLOSE(w[i], pow(5e5, -i / 32.0) / 4, 0, 1e-6);
  c.rope_type = MODEL_ROPE_DEFAULT;
  c.head_dim = 16; /* explicit: 8 frequencies over 16 */
  model_rope_inv_freq(&c, w);
  for (int i = 0; i < 8; i++) IFT_ASSERT_CLOSE(w[i], pow(5e5, -i / 8.0), 0, 1e-6);
}
static void test_fd_tied_mha(void) { check_fd(1, 4, 0, 1); }
static void test_fd_blend_embed_grad(void) { check_fd(0, 1, 1, 1); }
static void test_fd_blend_frozen(void) { check_fd(0, 2, 1, 0); }

static void test_names_and_sizes(void) {
  model_config cfg = tiny(0, 2);
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, 1, 8), IFT_OK);
  const model_tensor *q = model_tensor_find(m, "model.layers.1.self_attn.q_proj.weight");
  const model_tensor *k = model_tensor_find(m, "model.layers.0.self_attn.k_proj.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL(q);
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  CU_ASSERT_EQUAL(q->rows, 16);
  CU_ASSERT_EQUAL(q->cols, 16);
  CU_ASSERT_EQUAL(k->rows, 8); /* 2 kv heads x head dim 4 */
  CU_ASSERT_PTR_NOT_NULL(model_tensor_find(m, "lm_head.weight"));
  CU_ASSERT_PTR_NOT_NULL(model_tensor_find(m, "model.layers.1.mlp.down_proj.weight"));
  CU_ASSERT_PTR_NOT_NULL(model_tensor_find(m, "model.norm.weight"));
  size_t expect = 37 * 16 * 2 + 16 + 2 * (16 + 16 * 16 + 2 * 8 * 16 + 16 * 16 + 16 + 3 * 24 * 16);
  CU_ASSERT_EQUAL(model_nparams(m), expect);
  CU_ASSERT_EQUAL(model_nparams_global(m), expect);
  model_destroy(m);
  cfg.tie_word_embeddings = 1;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, 1, 8), IFT_OK);
  CU_ASSERT_PTR_NULL(model_tensor_find(m, "lm_head.weight"));
  CU_ASSERT_EQUAL(model_nparams(m), expect - 37 * 16);
  model_destroy(m);
}

static void test_bad_configs(void) {
  ift_error_quiet(1);
  model *m;
  model_config c = tiny(0, 3); /* 4 heads not a multiple of 3 kv heads */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_CONFIG);
  c = tiny(0, 2);
  c.hidden_size = 18; /* head dim 4.5 */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_CONFIG);
  c = tiny(0, 2);
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 17), IFT_ERR_CONFIG); /* > max positions */
  c = odd_heads(tiny(0, 2));
  c.head_dim = 5; /* RoPE needs pairs */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_CONFIG);
  c = odd_heads(tiny(0, 2));
  c.rope_high_freq_factor = 1; /* not above low */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_CONFIG);
  c = odd_heads(tiny(0, 2));
  c.rope_original_max_position_embeddings = 0;
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_CONFIG);
  c = odd_heads(tiny(0, 2));
  c.hidden_size = 18; /* not a multiple of the heads: fine with an explicit head_dim */
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_OK);
  CU_ASSERT_EQUAL(model_tensor_find(m, "model.layers.0.self_attn.q_proj.weight")->rows, 24);
  CU_ASSERT_EQUAL(model_tensor_find(m, "model.layers.0.self_attn.o_proj.weight")->cols, 24);
  CU_ASSERT_EQUAL(model_tensor_find(m, "model.layers.0.self_attn.k_proj.weight")->rows, 12);
  model_destroy(m);
  c = tiny(0, 2);
  c.vocab_size = 1 << 20; /* embedding of 2^32 elements: beyond int indexing */
  c.hidden_size = 1 << 12;
  CU_ASSERT_EQUAL(model_config_check(&c, 1), IFT_ERR_CONFIG);
  c = tiny(0, 2);
  c.head_dim = 1 << 30; /* (H + 2K) D would overflow int */
  CU_ASSERT_EQUAL(model_config_check(&c, 1), IFT_ERR_CONFIG);
  c = tiny(0, 2);
  CU_ASSERT_EQUAL(model_config_check(&c, 3), IFT_ERR_LAYOUT);
  CU_ASSERT_EQUAL(model_config_check(&c, 8), IFT_ERR_LAYOUT);
  ift_error_quiet(0);
}

static void test_init_deterministic(void) {
  model_config cfg = tiny(1, 2);
  model *a, *b;
  CU_ASSERT_EQUAL_FATAL(model_create(&a, &cfg, MPI_COMM_NULL, 1, 8), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_create(&b, &cfg, MPI_COMM_NULL, 2, 4), IFT_OK);
  model_init_weights(a, 11);
  model_init_weights(b, 11);
  CU_ASSERT_EQUAL(memcmp(model_params(a), model_params(b), model_nparams(a) * sizeof(float)), 0);
  model_init_weights(b, 12);
  CU_ASSERT_NOT_EQUAL(memcmp(model_params(a), model_params(b), model_nparams(a) * sizeof(float)), 0);
  /* std 0.02 for matrices, 0.02/sqrt(2L) for o_proj */
  const model_tensor *e = model_tensor_find(a, "model.embed_tokens.weight");
  const model_tensor *o = model_tensor_find(a, "model.layers.0.self_attn.o_proj.weight");
  double se = 0, so = 0;
  for (int i = 0; i < e->rows * e->cols; i++) se += pow(model_params(a)[e->offset + (size_t)i], 2);
  for (int i = 0; i < o->rows * o->cols; i++) so += pow(model_params(a)[o->offset + (size_t)i], 2);
  IFT_ASSERT_CLOSE(sqrt(se / (e->rows * e->cols)), 0.02, 0.1, 0);
  IFT_ASSERT_CLOSE(sqrt(so / (o->rows * o->cols)), 0.01, 0.15, 0);
  model_destroy(a);
  model_destroy(b);
}

/* Changing a later token never changes earlier log-probs (causal mask), and
 * a row's results do not depend on the other rows of the micro-batch. */
static void test_causal_and_row_independent(void) {
  const int B = 2, T = 12;
  model_config cfg = tiny(0, 2);
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(m, 5);
  float *p = model_params(m);
  for (size_t i = 0; i < model_nparams(m); i++) p[i] *= 10.0f;
  int tok[B * T];
  fill_tokens(tok, B * T, cfg.vocab_size, 8);
  float a[B * T], b[B * T];
  model_input in = {.tokens = tok};
  model_forward(m, a, NULL, &in, B, T, 0);
  tok[9] = (tok[9] + 1) % cfg.vocab_size;       /* row 0, position 9 */
  tok[T + 3] = (tok[T + 3] + 5) % cfg.vocab_size; /* row 1, position 3 */
  model_forward(m, b, NULL, &in, B, T, 0);
  for (int t = 0; t < 9; t++) CU_ASSERT_EQUAL(a[t], b[t]);
  CU_ASSERT_NOT_EQUAL(a[9], b[9]);
  CU_ASSERT_NOT_EQUAL(a[11], b[11]);
  for (int t = 0; t < 3; t++) CU_ASSERT_EQUAL(a[T + t], b[T + t]);
  model_destroy(m);
}

/* Greedy argmax is consistent with the log-probs: feeding the argmax as
 * the next target gives the largest log-prob; λ = 1 with x~ equals a plain
 * forward of x~ in everything that does not depend on the targets. */
static void test_argmax_and_blend(void) {
  const int B = 1, T = 10;
  model_config cfg = tiny(0, 2);
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(m, 6);
  float *p = model_params(m);
  for (size_t i = 0; i < model_nparams(m); i++) p[i] *= 15.0f;
  int tok[T], am[T], am2[T], alt[T];
  fill_tokens(tok, T, cfg.vocab_size, 3);
  float lp[T], lp2[T];
  model_input in = {.tokens = tok};
  model_forward(m, lp, am, &in, B, T, 0);
  for (int t = 0; t + 1 < T; t++) {
    int save = tok[t + 1];
    float best = -1e30f;
    int besti = -1;
    for (int v = 0; v < cfg.vocab_size; v++) {
      tok[t + 1] = v;
      model_forward(m, lp2, NULL, &in, B, T, 0);
      if (lp2[t + 1] > best) { best = lp2[t + 1]; besti = v; }
    }
    tok[t + 1] = save;
    CU_ASSERT_EQUAL(am[t], besti);
  }
  fill_tokens(alt, T, cfg.vocab_size, 4);
  model_input blend = {.tokens = tok, .alt = alt, .lambda = 1.0f};
  model_input plain_alt = {.tokens = alt};
  model_forward(m, lp, am, &blend, B, T, 0);
  model_forward(m, lp2, am2, &plain_alt, B, T, 0);
  CU_ASSERT_EQUAL(memcmp(am, am2, sizeof am), 0);
  model_destroy(m);
}

/* Allocation failures of model_create: the parameter buffers (a model far
 * larger than memory), the tensor table (an absurd layer count) and the
 * activation arena (an absurd micro-batch x sequence).  Each must return
 * IFT_ERR_NOMEM cleanly: regression for a NULL dereference of the tensor
 * table, a use after free of the parameter count in the error message and
 * (by review) a double free of the arena.  Under the sanitizer build
 * (--enable-sanitizers) ASan must return NULL for these requests instead of
 * aborting: see __asan_default_options below. */
static void test_alloc_failures(void) {
  ift_error_quiet(1);
  model *m = (model *)1;
  model_config c = tiny(0, 2);
  c.hidden_size = 16384;
  c.intermediate_size = 16384;
  c.num_hidden_layers = 1000; /* ~1.5e12 parameters (each tensor within int indexing) */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_NOMEM);
  CU_ASSERT_PTR_NULL(m);
  c = tiny(0, 2);
  c.num_hidden_layers = 230000000; /* tensor table of ~300 GB */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 1, 8), IFT_ERR_NOMEM);
  CU_ASSERT_PTR_NULL(m);
  c = tiny(0, 2);
  c.max_position_embeddings = 1 << 16; /* attention probabilities of 512 x 4 x 2^32 floats */
  CU_ASSERT_EQUAL(model_create(&m, &c, MPI_COMM_NULL, 512, 1 << 16), IFT_ERR_NOMEM);
  CU_ASSERT_PTR_NULL(m);
  ift_error_quiet(0);
}

/* AddressSanitizer reads its defaults here (ignored without ASan): huge
 * requests return NULL, as they do from glibc, so the failure paths above run. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* train.recompute = layer: the same log-probs and gradients, bit for bit,
 * as keeping every layer's activations (3 layers, sequences across two
 * attention blocks, an IFT blend), and less activation memory. */
static void test_recompute_layer(void) {
  const int B = 2, T = 70;
  model_config cfg = tiny(0, 2);
  cfg.num_hidden_layers = 3;
  cfg.max_position_embeddings = 128;
  model *a, *b;
  CU_ASSERT_EQUAL_FATAL(model_create_opt(&a, &cfg, MPI_COMM_NULL, 0, 0, 0, B, T, MODEL_RECOMPUTE_NONE), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_create_opt(&b, &cfg, MPI_COMM_NULL, 0, 0, 0, B, T, MODEL_RECOMPUTE_LAYER), IFT_OK);
  CU_ASSERT(model_activation_bytes(b) < model_activation_bytes(a));
  model_init_weights(a, 5);
  model_init_weights(b, 5);
  int tok[B * T], alt[B * T];
  fill_tokens(tok, B * T, cfg.vocab_size, 1);
  fill_tokens(alt, B * T, cfg.vocab_size, 2);
  model_input in = {.tokens = tok, .alt = alt, .lambda = 0.3f, .embed_grad = 1};
  float c[B * T], la[B * T], lb[B * T];
  for (int i = 0; i < B * T; i++) c[i] = (i % T) ? (float)rng_normal(4, 0, (uint64_t)i) : 0.0f;
  for (int rep = 0; rep < 2; rep++) { /* twice: gradients accumulate alike */
    CU_ASSERT_EQUAL_FATAL(model_forward(a, la, NULL, &in, B, T, 1), IFT_OK);
    CU_ASSERT_EQUAL_FATAL(model_backward(a, c, B, T), IFT_OK);
    CU_ASSERT_EQUAL_FATAL(model_forward(b, lb, NULL, &in, B, T, 1), IFT_OK);
    CU_ASSERT_EQUAL_FATAL(model_backward(b, c, B, T), IFT_OK);
    CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
    CU_ASSERT_EQUAL(memcmp(model_grads(a), model_grads(b), model_nparams(a) * sizeof(float)), 0);
  }
  double gn = 0;
  for (size_t i = 0; i < model_nparams(a); i++) gn += fabs(model_grads(a)[i]);
  CU_ASSERT(gn > 0); /* a gradient to compare */
  model_destroy(a);
  model_destroy(b);
}

/* Greedy generation with the key/value cache (a forward of the prompts,
 * then model_decode one token per row) gives the tokens full forwards of
 * the growing rows give: 2 rows with prompts of 5 and 11 tokens, 24 new
 * tokens each, sequences across a query block; GQA, untied head.  Weights
 * are scaled up so that the greedy choices are not near ties. */
static void test_kv_decode(void) {
  const int B = 2, T = 48, P[2] = {5, 11}, NEW = 24;
  model_config cfg = tiny(0, 2);
  cfg.max_position_embeddings = 64;
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, B, T), IFT_OK);
  model_init_weights(m, 21);
  float *p = model_params(m);
  for (size_t i = 0; i < model_nparams(m); i++) p[i] *= 10.0f;
  int full[2][48], kv[2][48], buf[2 * 48], am[2 * 48];
  float logp[2 * 48];
  for (int b = 0; b < B; b++) {
    fill_tokens(full[b], P[b], cfg.vocab_size, 30 + (uint64_t)b);
    memcpy(kv[b], full[b], sizeof(int) * (size_t)P[b]);
  }
  /* reference: a full forward of both rows (padded) per step */
  for (int s = 0; s < NEW; s++) {
    const int len = P[1] + s + 1;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < len; t++) buf[b * len + t] = t < P[b] + s ? full[b][t] : 0;
    model_input in = {.tokens = buf};
    CU_ASSERT_EQUAL_FATAL(model_forward(m, logp, am, &in, B, len, 0), IFT_OK);
    for (int b = 0; b < B; b++) full[b][P[b] + s] = am[b * len + P[b] + s - 1];
  }
  /* the cache: the prompts' forward (row 0 padded), then decode */
  CU_ASSERT_EQUAL_FATAL(model_kv_enable(m), IFT_OK);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < P[1]; t++) buf[b * P[1] + t] = t < P[b] ? kv[b][t] : 0;
  model_input in = {.tokens = buf};
  CU_ASSERT_EQUAL_FATAL(model_forward(m, logp, am, &in, B, P[1], 0), IFT_OK);
  int tok[2], pos[2], next[2];
  for (int s = 0; s < NEW; s++) {
    for (int b = 0; b < B; b++) {
      pos[b] = P[b] + s - 1;
      tok[b] = kv[b][pos[b]];
    }
    CU_ASSERT_EQUAL_FATAL(model_decode(m, tok, pos, B, next), IFT_OK);
    for (int b = 0; b < B; b++) kv[b][P[b] + s] = next[b];
  }
  for (int b = 0; b < B; b++) CU_ASSERT_EQUAL(memcmp(full[b], kv[b], sizeof(int) * (size_t)(P[b] + NEW)), 0);
  int distinct = 0; /* the generated tokens vary: a comparison worth making */
  for (int s = 1; s < NEW; s++) distinct += full[0][P[0] + s] != full[0][P[0]];
  CU_ASSERT(distinct > 0);
  /* a position outside the planned length is refused */
  pos[0] = T;
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(model_decode(m, tok, pos, B, next), IFT_ERR_ARG);
  ift_error_quiet(0);
  model_destroy(m);
}

/* model_logits: the full logits of a forward's row give its log-probs
 * (log_softmax at the target) and its argmax; after a decode with next =
 * NULL they are those of the full forward at that position. */
static void test_logits(void) {
  const int T = 12, P = 7;
  model_config cfg = tiny(0, 2);
  cfg.max_position_embeddings = 16;
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &cfg, MPI_COMM_NULL, 1, T), IFT_OK);
  model_init_weights(m, 5);
  float *p = model_params(m);
  for (size_t i = 0; i < model_nparams(m); i++) p[i] *= 10.0f;
  const int V = cfg.vocab_size;
  int tk[12], am[12];
  float logp[12], *lg = malloc(sizeof(float) * (size_t)V), *ld = malloc(sizeof(float) * (size_t)V);
  fill_tokens(tk, T, V, 77);
  model_input in = {.tokens = tk};
  CU_ASSERT_EQUAL_FATAL(model_forward(m, logp, am, &in, 1, T, 0), IFT_OK);
  for (int t = 0; t + 1 < T; t++) {
    CU_ASSERT_EQUAL_FATAL(model_logits(m, lg, t), IFT_OK);
    double mx = -INFINITY, z = 0;
    int k = 0;
    for (int v = 0; v < V; v++) {
      if (lg[v] > lg[k]) k = v;
      mx = fmax(mx, lg[v]);
    }
    for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
    CU_ASSERT_DOUBLE_EQUAL(lg[tk[t + 1]] - mx - log(z), logp[t + 1], 1e-4);
    CU_ASSERT_EQUAL(k, am[t]);
  }
  /* the last position's logits, again through the cache */
  CU_ASSERT_EQUAL_FATAL(model_logits(m, lg, P - 1), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_kv_enable(m), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_forward(m, logp, NULL, &in, 1, P - 1, 0), IFT_OK);
  const int pos = P - 1;
  CU_ASSERT_EQUAL_FATAL(model_decode(m, &tk[pos], &pos, 1, NULL), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_logits(m, ld, 0), IFT_OK);
  double d = 0, big = 0;
  for (int v = 0; v < V; v++) {
    d = fmax(d, fabs(ld[v] - lg[v]));
    big = fmax(big, fabs(lg[v]));
  }
  CU_ASSERT(big > 1.0); /* logits of some size: a comparison worth making */
  CU_ASSERT(d < 1e-4 * big);
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(model_logits(m, lg, T), IFT_ERR_ARG);
  ift_error_quiet(0);
  free(lg);
  free(ld);
  model_destroy(m);
}

static CU_TestInfo tests[] = {
    {"allocation failures return IFT_ERR_NOMEM", test_alloc_failures},
    {"tensor names and parameter count", test_names_and_sizes},
    {"invalid model configs are refused", test_bad_configs},
    {"deterministic init, std 0.02 and 0.02/sqrt(2L)", test_init_deterministic},
    {"finite differences: untied, GQA", test_fd_untied_gqa},
    {"finite differences: head_dim 6 != hidden/heads, llama3 RoPE, IFT blend", test_fd_head_dim_llama3},
    {"RoPE inverse frequencies: llama3 (Llama 3.2), linear, default", test_rope_inv_freq},
    {"finite differences: tied, MHA", test_fd_tied_mha},
    {"finite differences: IFT blend, embed_grad = 1", test_fd_blend_embed_grad},
    {"finite differences: IFT blend, frozen input table", test_fd_blend_frozen},
    {"causal and row-independent", test_causal_and_row_independent},
    {"greedy argmax and lambda = 1 blend", test_argmax_and_blend},
    {"recompute = layer: bit-identical log-probs and gradients", test_recompute_layer},
    {"KV-cache decode = full-forward greedy generation", test_kv_decode},
    {"model_logits: log-probs and argmax of a forward, the same through the cache", test_logits},
    CU_TEST_INFO_NULL};

int main(void) {
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  return ift_test_run("model", tests);
}
