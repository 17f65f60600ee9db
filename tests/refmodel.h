/* A float64 reference of the model's forward (include/iftrain/model.h), for
 * the finite-difference tests of tests/test_model.c and tests/test_step.c.
 *
 * It reads the parameters from a double copy of the model's flat buffer
 * (same offsets: model_tensor_at gives them) and follows model.h's
 * definition written out plainly: input embedding (or IFT's blend
 * (1-λ)E[x] + λE[x~]), per layer RMSNorm, q/k/v, RoPE (rotate_half pairs
 * (i, i + D/2), angles from model_rope_inv_freq), causal grouped-query
 * attention, o_proj, residual, RMSNorm, SwiGLU MLP, residual; final
 * RMSNorm, LM head (tied or untied), log-softmax at the target token.
 * Being independent of the fp32 kernels, its central differences (step
 * ~1e-5, truncation ~1e-10, rounding ~1e-11 relative) are an exact gradient
 * to test the fp32 backward against.  TP = 1, unpacked rows only; tiny
 * models only (no blocking, O(T^2) attention per head). */
#ifndef IFTRAIN_TESTS_REFMODEL_H
#define IFTRAIN_TESTS_REFMODEL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/model.h"

typedef struct {
  model_config c;
  int C, D, H, K, F, V, L;
  size_t embed, head, norm;              /* offsets of the global tensors */
  size_t ln1[8], q[8], k[8], v[8], o[8], ln2[8], gate[8], up[8], down[8];
  float inv_freq[64];
} refmodel;

/* Weights for finite differences: 20x the 0.02 init, so that every path
 * carries gradient that stands out of float rounding (and greedy tokens
 * differ), and norm weights 1 + 0.3 N(0, 1). */
static inline void refmodel_fd_weights(model *m, uint64_t seed) {
  model_init_weights(m, seed);
  float *p = model_params(m);
  const size_t np = model_nparams(m);
  for (size_t i = 0; i < np; i++) p[i] *= 20.0f;
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    if (t->cols == 1)
      for (int r = 0; r < t->rows; r++) p[t->offset + r] = 1.0f + 0.3f * (float)rng_normal(9, (uint64_t)i, (uint64_t)r);
  }
}

static inline void refmodel_init(refmodel *r, const model *m) {
  memset(r, 0, sizeof *r);
  r->c = *model_cfg(m);
  r->C = r->c.hidden_size;
  r->D = model_head_dim(&r->c);
  r->H = r->c.num_attention_heads;
  r->K = r->c.num_key_value_heads;
  r->F = r->c.intermediate_size;
  r->V = r->c.vocab_size;
  r->L = r->c.num_hidden_layers;
  model_rope_inv_freq(&r->c, r->inv_freq);
  r->embed = model_tensor_find(m, "model.embed_tokens.weight")->offset;
  r->norm = model_tensor_find(m, "model.norm.weight")->offset;
  r->head = r->c.tie_word_embeddings ? r->embed : model_tensor_find(m, "lm_head.weight")->offset;
  char nm[96];
#define REF_T(field, suffix)                                                   \
  snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                    \
  r->field[l] = model_tensor_find(m, nm)->offset
  for (int l = 0; l < r->L && l < 8; l++) {
    REF_T(ln1, "input_layernorm.weight");
    REF_T(q, "self_attn.q_proj.weight");
    REF_T(k, "self_attn.k_proj.weight");
    REF_T(v, "self_attn.v_proj.weight");
    REF_T(o, "self_attn.o_proj.weight");
    REF_T(ln2, "post_attention_layernorm.weight");
    REF_T(gate, "mlp.gate_proj.weight");
    REF_T(up, "mlp.up_proj.weight");
    REF_T(down, "mlp.down_proj.weight");
  }
#undef REF_T
}

/* y[n] = W[n, :] . x for W [rows, cols] row-major */
static inline void ref_matvec(double *y, const double *W, const double *x, int rows, int cols) {
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < cols; j++) s += W[(size_t)i * cols + j] * x[j];
    y[i] = s;
  }
}

static inline void ref_rmsnorm(double *y, const double *x, const double *w, int C, double eps) {
  double s = 0;
  for (int c = 0; c < C; c++) s += x[c] * x[c];
  const double r = 1.0 / sqrt(s / C + eps);
  for (int c = 0; c < C; c++) y[c] = w[c] * x[c] * r;
}

static inline void ref_rope(double *x, int D, int pos, const float *inv_freq) {
  const int h = D / 2;
  for (int i = 0; i < h; i++) {
    const double a = (double)((float)pos * inv_freq[i]); /* the fp32 angle, as HF */
    const double x1 = x[i], x2 = x[i + h], c = cos(a), s = sin(a);
    x[i] = x1 * c - x2 * s;
    x[i + h] = x2 * c + x1 * s;
  }
}

/* logp[b*T + t] of B rows of T tokens (logp[b*T] = 0), with parameters p
 * (the model's layout, in double) and the input lookups from table E (NULL:
 * the live embedding of p; a frozen copy models the stop-gradient of
 * model_input.embed_grad = 0).  alt NULL: no blend. */
static inline void refmodel_logp(const refmodel *r, const double *p, const double *E, double *logp,
                                 const int *tok, const int *alt, double lambda, int B, int T) {
  const int C = r->C, D = r->D, H = r->H, K = r->K, F = r->F, V = r->V, G = H / K;
  const double eps = r->c.rms_norm_eps;
  if (!E) E = p + r->embed;
  double *x = malloc(sizeof(double) * (size_t)T * C), *xn = malloc(sizeof(double) * (size_t)T * C);
  double *q = malloc(sizeof(double) * (size_t)T * H * D), *k = malloc(sizeof(double) * (size_t)T * K * D);
  double *v = malloc(sizeof(double) * (size_t)T * K * D), *att = malloc(sizeof(double) * (size_t)H * D);
  double *gu = malloc(sizeof(double) * 2 * (size_t)F), *y = malloc(sizeof(double) * (size_t)C);
  double *lg = malloc(sizeof(double) * (size_t)V), *sc = malloc(sizeof(double) * (size_t)T);
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      const int n = b * T + t;
      for (int c = 0; c < C; c++)
        x[(size_t)t * C + c] = alt ? (1.0 - lambda) * E[(size_t)tok[n] * C + c] + lambda * E[(size_t)alt[n] * C + c]
                                   : E[(size_t)tok[n] * C + c];
    }
    for (int l = 0; l < r->L; l++) {
      for (int t = 0; t < T; t++) {
        ref_rmsnorm(xn + (size_t)t * C, x + (size_t)t * C, p + r->ln1[l], C, eps);
        ref_matvec(q + (size_t)t * H * D, p + r->q[l], xn + (size_t)t * C, H * D, C);
        ref_matvec(k + (size_t)t * K * D, p + r->k[l], xn + (size_t)t * C, K * D, C);
        ref_matvec(v + (size_t)t * K * D, p + r->v[l], xn + (size_t)t * C, K * D, C);
        for (int h = 0; h < H; h++) ref_rope(q + ((size_t)t * H + h) * D, D, t, r->inv_freq);
        for (int h = 0; h < K; h++) ref_rope(k + ((size_t)t * K + h) * D, D, t, r->inv_freq);
      }
      for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
          const double *qh = q + ((size_t)t * H + h) * D;
          double mx = -INFINITY, z = 0;
          for (int s = 0; s <= t; s++) {
            const double *kh = k + ((size_t)s * K + h / G) * D;
            double d = 0;
            for (int i = 0; i < D; i++) d += qh[i] * kh[i];
            sc[s] = d / sqrt((double)D);
            if (sc[s] > mx) mx = sc[s];
          }
          for (int s = 0; s <= t; s++) z += (sc[s] = exp(sc[s] - mx));
          for (int i = 0; i < D; i++) {
            double o = 0;
            for (int s = 0; s <= t; s++) o += sc[s] * v[((size_t)s * K + h / G) * D + i];
            att[(size_t)h * D + i] = o / z;
          }
        }
        ref_matvec(y, p + r->o[l], att, C, H * D);
        for (int c = 0; c < C; c++) x[(size_t)t * C + c] += y[c];
      }
      for (int t = 0; t < T; t++) {
        double *xt = x + (size_t)t * C;
        ref_rmsnorm(xn, xt, p + r->ln2[l], C, eps);
        ref_matvec(gu, p + r->gate[l], xn, F, C);
        ref_matvec(gu + F, p + r->up[l], xn, F, C);
        for (int f = 0; f < F; f++) gu[f] = gu[f] / (1.0 + exp(-gu[f])) * gu[F + f];
        ref_matvec(y, p + r->down[l], gu, C, F);
        for (int c = 0; c < C; c++) xt[c] += y[c];
      }
    }
    logp[(size_t)b * T] = 0;
    for (int t = 0; t + 1 < T; t++) {
      ref_rmsnorm(xn, x + (size_t)t * C, p + r->norm, C, eps);
      ref_matvec(lg, p + r->head, xn, V, C);
      double mx = -INFINITY, z = 0;
      for (int i = 0; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
      for (int i = 0; i < V; i++) z += exp(lg[i] - mx);
      logp[(size_t)b * T + t + 1] = lg[tok[b * T + t + 1]] - mx - log(z);
    }
  }
  free(x), free(xn), free(q), free(k), free(v), free(att), free(gu), free(y), free(lg), free(sc);
}

#endif
