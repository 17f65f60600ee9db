/* Llama-family decoder, forward and backward, tensor-parallel with TP = 1 as
 * the degenerate case.  Megatron pairing of collectives with adjoints:
 *   column-parallel input (QKV, gate/up, LM head):  identity fwd / all-reduce bwd
 *   row-parallel output (O, down):                  all-reduce fwd / identity bwd
 *   vocab-parallel embedding:                       all-reduce fwd / identity bwd
 *   vocab-parallel cross-entropy:                   max/sum/maxloc all-reduce of row stats */
#include "iftrain/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/dist.h"
#include "iftrain/kern.h"
#include "iftrain/scalapack.h"
#include "attn.h"

enum { HEAD_CHUNK = 256 };

typedef struct {
  float *x_mid, *rstd1, *xn1, *qkv, *alse, *att, *rstd2, *xn2, *gu, *h; /* alse: [B, Hl, T] log-sum-exp */
} layer_acts;

struct model {
  model_config cfg;
  MPI_Comm tp;
  int tp_rank, tp_size;
  int C, H, K, D, F, V, L;     /* global */
  int Hl, Kl, Fl, Vl, v0, Q3;  /* local */
  int Bmax, Tmax;
  int ntensors;
  model_tensor *tensors;
  size_t nparams;
  float *params, *grads;
  model_layer_view *pl, *gl;
  model_view pv, gv;
  /* activations */
  float *xs;        /* (L+1) x [N, C] residual stream */
  layer_acts *acts; /* per layer */
  float *rstdf, *xnf, *lse;
  int *targets;
  float *cosv, *sinv;
  /* scratch */
  float *logits;    /* [HEAD_CHUNK, Vl] */
  float *g, *dtmp, *dxn, *dqkv, *datt, *ascr, *dgu, *dh; /* ascr: attention scratch */
  float *rowstats;  /* [4 N] for TP cross-entropy */
  size_t act_bytes;
  /* 2D mode (pr > 0): BLACS grids over the TP group — ctx2d pr x pc for the
   * weights and GEMM activations, ctxh P x 1 (the attention core's head
   * layout), ctxt 1 x P (tokens, for the gather into the residual stream). */
  int pr, pc, myrow, mycol, ctx2d, ctxh, ctxt;
  int nb;           /* weight block (0: one block per process) */
  size_t fcap;      /* floats of one [F, N] 2D block (or [N, Fl] in 1D) */
  float *s2d;       /* 2D GEMM operands and results */
  int *cnts, *dspl; /* all-gather of token blocks */
  int fwd_B, fwd_T, fwd_kept;
  model_recompute recompute; /* LAYER: one set of layer activations, acts[l] all alias it */
  float *kv;        /* key/value cache [L][2][Bmax][Tmax][Kl D], NULL when not enabled */
  float *kvs;       /* decode scratch: scores of one query [Tmax] */
  model_input fwd_in;
  const int *pos;   /* the current forward's positions (model_input.pos), NULL: t */
};

model_config model_config_default(void) {
  model_config c = {.vocab_size = 264,
                    .hidden_size = 128,
                    .intermediate_size = 344,
                    .num_hidden_layers = 4,
                    .num_attention_heads = 4,
                    .num_key_value_heads = 2,
                    .max_position_embeddings = 64,
                    .tie_word_embeddings = 1,
                    .rms_norm_eps = 1e-5,
                    .rope_theta = 10000.0,
                    .rope_factor = 1.0,
                    .init_seed = 1234};
  return c;
}

int model_head_dim(const model_config *c) {
  return c->head_dim > 0 ? c->head_dim : c->hidden_size / c->num_attention_heads;
}

/* transformers' _compute_default_rope_parameters, _compute_linear_scaling_
 * rope_parameters and _compute_llama3_parameters, operation by operation in
 * fp32 (their tensors are fp32; Python scalars enter as fp32). */
void model_rope_inv_freq(const model_config *c, float *out) {
  const int D = model_head_dim(c), h = D / 2;
  const float f = (float)c->rope_factor;
  const double L = c->rope_original_max_position_embeddings;
  const float lo = (float)c->rope_low_freq_factor;
  const float lo_wl = (float)(L / c->rope_low_freq_factor);  /* longest kept as is (scaled) */
  const float hi_wl = (float)(L / c->rope_high_freq_factor); /* shortest blended */
  for (int i = 0; i < h; i++) {
    const float e = (float)(2 * i) / (float)D;
    float w = 1.0f / (float)pow(c->rope_theta, (double)e);
    if (c->rope_type == MODEL_ROPE_LINEAR) {
      w = w / f;
    } else if (c->rope_type == MODEL_ROPE_LLAMA3) {
      const float wl = (float)(2 * 3.14159265358979323846) / w;
      const float base = wl > lo_wl ? w / f : w;
      if (!(wl < hi_wl) && !(wl > lo_wl)) {
        const float s = ((float)L / wl - lo) / (float)(c->rope_high_freq_factor -
                                                      c->rope_low_freq_factor);
        w = (1.0f - s) * base / f + s * base;
      } else {
        w = base;
      }
    }
    out[i] = w;
  }
}

int model_config_diff(const model_config *a, const model_config *b, char *out, size_t cap) {
  static const char *rt[] = {"default", "linear", "llama3"};
  const char *in[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                      "tie_word_embeddings", "head_dim", "sliding_window",
                      "rope_original_max_position_embeddings"};
  const long iv[][2] = {{a->vocab_size, b->vocab_size},
                        {a->hidden_size, b->hidden_size},
                        {a->intermediate_size, b->intermediate_size},
                        {a->num_hidden_layers, b->num_hidden_layers},
                        {a->num_attention_heads, b->num_attention_heads},
                        {a->num_key_value_heads, b->num_key_value_heads},
                        {a->max_position_embeddings, b->max_position_embeddings},
                        {a->tie_word_embeddings, b->tie_word_embeddings},
                        {model_head_dim(a), model_head_dim(b)},
                        {a->sliding_window, b->sliding_window},
                        {a->rope_original_max_position_embeddings,
                         b->rope_original_max_position_embeddings}};
  const char *dn[] = {"rms_norm_eps", "rope_theta", "rope_factor", "rope_low_freq_factor",
                      "rope_high_freq_factor"};
  const double dv[][2] = {{a->rms_norm_eps, b->rms_norm_eps},
                          {a->rope_theta, b->rope_theta},
                          {a->rope_factor, b->rope_factor},
                          {a->rope_low_freq_factor, b->rope_low_freq_factor},
                          {a->rope_high_freq_factor, b->rope_high_freq_factor}};
  /* the scaling parameters count only for the scaling type that uses them */
  const int r = a->rope_type == b->rope_type ? (int)a->rope_type : MODEL_ROPE_LLAMA3;
  const int nd = r == MODEL_ROPE_DEFAULT ? 2 : r == MODEL_ROPE_LINEAR ? 3 : 5;
  const int ni = r == MODEL_ROPE_LLAMA3 ? 11 : 10;
  int n = 0;
  size_t o = 0;
  if (cap) out[0] = 0;
#define DIFF_PUT(...)                                                                    do {                                                                                     if (o < cap) o += (size_t)snprintf(out + o, cap - o, __VA_ARGS__);                     n++;                                                                                 } while (0)
  if (a->rope_type != b->rope_type)
    DIFF_PUT("rope_type = %s (configured %s)", rt[a->rope_type % 3], rt[b->rope_type % 3]);
  for (int i = 0; i < ni; i++)
    if (iv[i][0] != iv[i][1])
      DIFF_PUT("%s%s = %ld (configured %ld)", n ? ", " : "", in[i], iv[i][0], iv[i][1]);
  for (int i = 0; i < nd; i++)
    if (dv[i][0] != dv[i][1])
      DIFF_PUT("%s%s = %.17g (configured %.17g)", n ? ", " : "", dn[i], dv[i][0], dv[i][1]);
#undef DIFF_PUT
  return n;
}

ift_status model_config_check(const model_config *c, int tp) {
  IFT_REQUIRE(c->vocab_size > 0 && c->hidden_size > 0 && c->intermediate_size > 0 &&
                  c->num_hidden_layers > 0 && c->num_attention_heads > 0 &&
                  c->num_key_value_heads > 0 && c->max_position_embeddings > 0,
              IFT_ERR_CONFIG, "set every [model] size to a positive integer",
              "model dimensions must be positive (vocab %d hidden %d intermediate %d layers %d "
              "heads %d kv heads %d positions %d)",
              c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
              c->num_attention_heads, c->num_key_value_heads, c->max_position_embeddings);
  {
    /* every tensor's extent and element count must fit the int indexing
     * of the kernels (a config.json or override with absurd sizes) */
    const int64_t D = model_head_dim(c) > 0 ? model_head_dim(c) : 1;
    const int64_t C = c->hidden_size, V = c->vocab_size, F = c->intermediate_size;
    const int64_t QKV = ((int64_t)c->num_attention_heads + 2 * (int64_t)c->num_key_value_heads) * D;
    const int64_t big = QKV * C > V * C ? QKV * C : V * C, bigf = 2 * F * C;
    IFT_REQUIRE(c->head_dim <= 1 << 20 && big <= INT32_MAX && bigf <= INT32_MAX, IFT_ERR_CONFIG, "use a model whose tensors have fewer than 2^31 elements each",
                "a tensor of this model would have %lld elements (hidden %d, vocab %d, "
                "intermediate %d, q/k/v rows %lld)",
                (long long)(big > bigf ? big : bigf), c->hidden_size, c->vocab_size,
                c->intermediate_size, (long long)QKV);
  }
  IFT_REQUIRE(c->head_dim >= 0, IFT_ERR_CONFIG,
              "model.head_dim: 0 (hidden_size / num_attention_heads) or a positive width",
              "head_dim %d is negative", c->head_dim);
  IFT_REQUIRE(c->head_dim || c->hidden_size % c->num_attention_heads == 0, IFT_ERR_CONFIG,
              "make model.hidden_size a multiple of model.num_attention_heads, or set model.head_dim",
              "hidden_size %d is not divisible by num_attention_heads %d", c->hidden_size,
              c->num_attention_heads);
  IFT_REQUIRE(model_head_dim(c) % 2 == 0, IFT_ERR_CONFIG,
              "RoPE rotates pairs: choose an even head dimension (model.head_dim, or hidden_size / "
              "num_attention_heads)",
              "head dimension %d is odd", model_head_dim(c));
  {
    const int r = (int)c->rope_type;
    const double f = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    IFT_REQUIRE(r >= MODEL_ROPE_DEFAULT && r <= MODEL_ROPE_LLAMA3, IFT_ERR_CONFIG,
                "model.rope_type is default, linear or llama3", "rope type %d", r);
    IFT_REQUIRE(r == MODEL_ROPE_DEFAULT || f >= 1, IFT_ERR_CONFIG,
                "model.rope_factor >= 1 for linear and llama3 RoPE scaling", "rope_factor %g", f);
    IFT_REQUIRE(r != MODEL_ROPE_LLAMA3 || (lo > 0 && hi > lo &&
                                           c->rope_original_max_position_embeddings > 0),
                IFT_ERR_CONFIG,
                "llama3 RoPE scaling needs 0 < model.rope_low_freq_factor < "
                "model.rope_high_freq_factor and model.rope_original_max_position_embeddings > 0",
                "low %g high %g original positions %d", lo, hi,
                c->rope_original_max_position_embeddings);
  }
  IFT_REQUIRE(c->num_attention_heads % c->num_key_value_heads == 0, IFT_ERR_CONFIG,
              "make num_attention_heads a multiple of num_key_value_heads",
              "num_attention_heads %d is not a multiple of num_key_value_heads %d",
              c->num_attention_heads, c->num_key_value_heads);
  IFT_REQUIRE(c->rms_norm_eps > 0 && c->rope_theta > 0, IFT_ERR_CONFIG,
              "model.rms_norm_eps and model.rope_theta must be positive",
              "rms_norm_eps %g rope_theta %g", c->rms_norm_eps, c->rope_theta);
  IFT_REQUIRE(tp <= c->num_attention_heads, IFT_ERR_LAYOUT,
              "use dist.tp <= model.num_attention_heads",
              "dist.tp = %d exceeds the %d attention heads", tp, c->num_attention_heads);
  IFT_REQUIRE(c->num_attention_heads % tp == 0 && c->num_key_value_heads % tp == 0,
              IFT_ERR_LAYOUT, "choose dist.tp dividing both head counts",
              "dist.tp = %d does not divide num_attention_heads %d and num_key_value_heads %d",
              tp, c->num_attention_heads, c->num_key_value_heads);
  IFT_REQUIRE(c->intermediate_size % tp == 0, IFT_ERR_LAYOUT,
              "choose dist.tp dividing model.intermediate_size",
              "dist.tp = %d does not divide intermediate_size %d", tp, c->intermediate_size);
  IFT_REQUIRE(c->vocab_size % tp == 0, IFT_ERR_LAYOUT,
              "choose dist.tp dividing model.vocab_size (or pad the vocabulary)",
              "dist.tp = %d does not divide vocab_size %d", tp, c->vocab_size);
  return IFT_OK;
}

/* ------------------------------------------------------------ tensors */

static void add_tensor(model *m, const char *name, int rows, int cols, model_shard sh, int decay) {
  model_tensor *t = &m->tensors[m->ntensors++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->rows = rows;
  t->cols = cols;
  t->shard = sh;
  t->decay = decay;
  t->lrows = sh == SHARD_ROWS ? rows / m->tp_size : rows;
  t->lcols = sh == SHARD_COLS ? cols / m->tp_size : cols;
  t->row0 = sh == SHARD_ROWS ? m->tp_rank * t->lrows : 0;
  t->col0 = sh == SHARD_COLS ? m->tp_rank * t->lcols : 0;
  t->rblk = t->lrows > 0 ? t->lrows : 1;
  t->cblk = t->lcols > 0 ? t->lcols : 1;
  t->rstep = t->cstep = 0;
  if (sh == SHARD_2D) {
    /* The HF [out, in] matrix read column-major is W' (in x out): in over
     * the pr process rows, out over the pc process columns, block-cyclic in
     * nb x nb blocks, or one block each (nb = 0). */
    t->lcols = cols / m->pr;
    t->lrows = rows / m->pc;
    t->cblk = m->nb ? m->nb : t->lcols;
    t->rblk = m->nb ? m->nb : t->lrows;
    t->col0 = m->myrow * t->cblk;
    t->row0 = m->mycol * t->rblk;
    t->cstep = t->cblk * m->pr;
    t->rstep = t->rblk * m->pc;
  }
  t->offset = m->nparams;
  m->nparams += (size_t)t->lrows * t->lcols;
}

static void build_tensors(model *m) {
  const int C = m->C, D = m->D;
  /* 1D: column-parallel in, row-parallel out; 2D: every block matrix on the grid */
  const model_shard cp = m->pr ? SHARD_2D : SHARD_ROWS, rp = m->pr ? SHARD_2D : SHARD_COLS;
  m->tensors = calloc((size_t)9 * (size_t)m->L + 3, sizeof(model_tensor));
  if (!m->tensors) return; /* model_create_grid reports it */
  add_tensor(m, "model.embed_tokens.weight", m->V, C, SHARD_ROWS, 1);
  char nm[96];
  for (int l = 0; l < m->L; l++) {
#define T_(suffix, r, c, sh, dec)                                              \
  snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                    \
  add_tensor(m, nm, r, c, sh, dec)
    T_("input_layernorm.weight", C, 1, SHARD_NONE, 0);
    /* q, k, v shards are adjacent: one GEMM computes all three. */
    T_("self_attn.q_proj.weight", m->H * D, C, cp, 1);
    T_("self_attn.k_proj.weight", m->K * D, C, cp, 1);
    T_("self_attn.v_proj.weight", m->K * D, C, cp, 1);
    T_("self_attn.o_proj.weight", C, m->H * D, rp, 1);
    T_("post_attention_layernorm.weight", C, 1, SHARD_NONE, 0);
    T_("mlp.gate_proj.weight", m->F, C, cp, 1);
    T_("mlp.up_proj.weight", m->F, C, cp, 1);
    T_("mlp.down_proj.weight", C, m->F, rp, 1);
#undef T_
  }
  add_tensor(m, "model.norm.weight", C, 1, SHARD_NONE, 0);
  if (!m->cfg.tie_word_embeddings) add_tensor(m, "lm_head.weight", m->V, C, SHARD_ROWS, 1);
}

static model_view make_view(model *m, float *base, model_layer_view *lv) {
  model_view v;
  v.embed = base + m->tensors[0].offset;
  for (int l = 0; l < m->L; l++) {
    const model_tensor *t = &m->tensors[1 + 9 * l];
    lv[l].ln1 = base + t[0].offset;
    lv[l].qkv = base + t[1].offset;
    lv[l].o = base + t[4].offset;
    lv[l].ln2 = base + t[5].offset;
    lv[l].gu = base + t[6].offset;
    lv[l].down = base + t[8].offset;
  }
  v.norm = base + m->tensors[1 + 9 * m->L].offset;
  v.head = m->cfg.tie_word_embeddings ? v.embed : base + m->tensors[2 + 9 * m->L].offset;
  v.layers = lv;
  return v;
}

/* ------------------------------------------------------------ create */

static float *arena_take(float **cur, size_t n) {
  float *p = *cur;
  *cur += (n + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */
  return p;
}

ift_status model_grid_check(const model_config *c, int pr, int pc, int nb) {
  const int D = model_head_dim(c), KD = c->num_key_value_heads * D;
  const int dims[4] = {c->hidden_size, KD, c->intermediate_size, c->num_attention_heads * D};
  const char *names[4] = {"hidden_size", "num_key_value_heads x head dimension",
                          "intermediate_size", "num_attention_heads x head dimension"};
  IFT_REQUIRE(pr >= 1 && pc >= 1, IFT_ERR_LAYOUT, "dist.tp_rows must divide dist.tp",
              "a %d x %d process grid is empty", pr, pc);
  IFT_REQUIRE(nb >= 0, IFT_ERR_CONFIG, "dist.tp_block >= 0 (0: one block per process)",
              "dist.tp_block = %d", nb);
  const int b = nb > 0 ? nb : 1;
  for (int i = 0; i < 4; i++)
    IFT_REQUIRE(dims[i] % (b * pr) == 0 && dims[i] % (b * pc) == 0, IFT_ERR_LAYOUT,
                "choose dist.tp_rows (grid rows; columns = dist.tp / rows) and dist.tp_block so "
                "that block x rows and block x columns divide every matrix dimension, or use "
                "dist.tp_mode = 1d",
                "the 2D grid %d x %d with blocks of %d does not divide %s = %d", pr, pc, b,
                names[i], dims[i]);
  return IFT_OK;
}

ift_status model_create(model **out, const model_config *cfg, MPI_Comm tp, int B, int T) {
  return model_create_grid(out, cfg, tp, 0, 0, 0, B, T);
}

/* The three BLACS grids of the 2D mode over the TP group. */
static ift_status grid_setup(model *m, MPI_Comm tp, int pr, int pc) {
  MPI_Comm comm = tp == MPI_COMM_NULL ? MPI_COMM_SELF : tp;
  const int P = m->tp_size;
  m->ctx2d = m->ctxh = m->ctxt = -1;
  IFT_TRY(dist_blacs_grid(&m->ctx2d, comm, pr, pc));
  IFT_TRY(dist_blacs_grid(&m->ctxh, comm, P, 1));
  IFT_TRY(dist_blacs_grid(&m->ctxt, comm, 1, P));
  int npr, npc;
  Cblacs_gridinfo(m->ctx2d, &npr, &npc, &m->myrow, &m->mycol);
  m->pr = pr;
  m->pc = pc;
  m->cnts = calloc((size_t)2 * P, sizeof(int));
  IFT_REQUIRE(m->cnts, IFT_ERR_NOMEM, NULL, "gather counts");
  m->dspl = m->cnts + P;
  return IFT_OK;
}

ift_status model_create_grid(model **out, const model_config *cfg, MPI_Comm tp, int pr, int pc,
                             int nb, int B, int T) {
  return model_create_opt(out, cfg, tp, pr, pc, nb, B, T, MODEL_RECOMPUTE_NONE);
}

ift_status model_create_opt(model **out, const model_config *cfg, MPI_Comm tp, int pr, int pc, int nb,
                            int B, int T, model_recompute rc) {
  *out = NULL;
  int tps = 1, tpr = 0;
  if (tp != MPI_COMM_NULL) {
    IFT_MPI_CHECK(MPI_Comm_size(tp, &tps), NULL);
    IFT_MPI_CHECK(MPI_Comm_rank(tp, &tpr), NULL);
  }
  IFT_TRY(model_config_check(cfg, tps));
  if (pr || pc) {
    IFT_REQUIRE(pr >= 1 && pc >= 1 && pr * pc == tps, IFT_ERR_LAYOUT,
                "choose dist.tp_rows dividing dist.tp (grid dist.tp_rows x dist.tp / dist.tp_rows)",
                "a %d x %d process grid does not hold the %d tensor-parallel ranks", pr, pc, tps);
    IFT_TRY(model_grid_check(cfg, pr, pc, nb));
  }
  IFT_REQUIRE(B > 0 && T > 1, IFT_ERR_CONFIG, "train.micro_batch >= 1 and train.seq_len >= 2",
              "micro-batch %d x sequence length %d", B, T);
  IFT_REQUIRE(!cfg->sliding_window || T <= cfg->sliding_window, IFT_ERR_UNIMPL,
              "lower train.seq_len (or the generation length) to the window: sliding-window "
              "attention is not implemented, and within the window it is full causal attention",
              "sequence length %d exceeds the model's sliding_window %d", T, cfg->sliding_window);
  IFT_REQUIRE(T <= cfg->max_position_embeddings, IFT_ERR_CONFIG,
              "lower train.seq_len or raise model.max_position_embeddings",
              "sequence length %d exceeds max_position_embeddings %d", T,
              cfg->max_position_embeddings);
  model *m = calloc(1, sizeof *m);
  IFT_REQUIRE(m, IFT_ERR_NOMEM, NULL, "model struct");
  m->cfg = *cfg;
  m->tp = tps > 1 ? tp : MPI_COMM_NULL;
  m->tp_size = tps;
  m->tp_rank = tpr;
  m->C = cfg->hidden_size;
  m->H = cfg->num_attention_heads;
  m->K = cfg->num_key_value_heads;
  m->D = model_head_dim(cfg);
  m->F = cfg->intermediate_size;
  m->V = cfg->vocab_size;
  m->L = cfg->num_hidden_layers;
  m->Hl = m->H / tps;
  m->Kl = m->K / tps;
  m->Fl = m->F / tps;
  m->Vl = m->V / tps;
  m->v0 = tpr * m->Vl;
  m->Q3 = (m->Hl + 2 * m->Kl) * m->D;
  m->Bmax = B;
  m->Tmax = T;
  m->recompute = rc;
  m->ctx2d = m->ctxh = m->ctxt = -1;
  m->nb = pr ? nb : 0;
  if (pr) {
    ift_status st = grid_setup(m, tp, pr, pc);
    if (st != IFT_OK) {
      model_destroy(m);
      return st;
    }
  }
  build_tensors(m);
  m->params = core_alloc(sizeof(float) * m->nparams);
  m->grads = core_alloc(sizeof(float) * m->nparams);
  m->pl = calloc((size_t)m->L, sizeof(model_layer_view));
  m->gl = calloc((size_t)m->L, sizeof(model_layer_view));
  m->acts = calloc((size_t)m->L, sizeof(layer_acts));
  if (!m->tensors || !m->params || !m->grads || !m->pl || !m->gl || !m->acts) {
    const size_t nparams = m->nparams; /* read before m is freed */
    model_destroy(m);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, "use a smaller model or more TP ranks",
                "cannot allocate %zu parameters", nparams);
  }
  m->pv = make_view(m, m->params, m->pl);
  m->gv = make_view(m, m->grads, m->gl);

  /* One activation arena, sized once from the shapes. */
  const size_t N = (size_t)B * T, C = (size_t)m->C, Q3 = (size_t)m->Q3, HD = (size_t)m->Hl * m->D;
  /* [N, Fl] in 1D; in 2D the F x N block of this rank (tokens in ceil(N/pc) blocks) */
  const size_t tokb = pr ? (N + (size_t)pc - 1) / (size_t)pc : 0;
  size_t fcap = N * (size_t)m->Fl;
  if (pr && (size_t)(m->F / pr) * tokb > fcap) fcap = (size_t)(m->F / pr) * tokb;
  m->fcap = fcap;
  const size_t CH = C > (size_t)m->H * m->D ? C : (size_t)m->H * m->D; /* widest of C, H*D */
  const size_t scap = pr ? (3 * CH / (size_t)pr + 2 * (size_t)m->K * m->D / (size_t)pr) * tokb : 0;
  /* per layer: x_mid, rstd1, qkv, the attention's log-sum-exp, att, rstd2,
   * gate/up; the normalised inputs xn1, xn2 and the SwiGLU product h are
   * recomputed in backward (cheap), so one set serves every layer */
  size_t per_layer = N * C /* x_mid */ + N + N * Q3 + (size_t)B * m->Hl * T + N * HD + N + 2 * fcap + 16 * 8;
  const size_t shared = 2 * N * C + fcap + 16 * 3;
  const size_t nsets = rc == MODEL_RECOMPUTE_LAYER ? 1 : (size_t)m->L; /* sets of layer activations */
  size_t total = (size_t)(m->L + 1) * N * C + nsets * per_layer + shared + N + N * C + N +
                 (size_t)T * m->D + (size_t)HEAD_CHUNK * m->Vl +
                 /* scratch */ 3 * N * C + N * Q3 + N * HD + attn_scratch_floats() + 2 * fcap + fcap + scap +
                 4 * N + 16 * 42;
  total += N; /* targets (int, same size as float) */
  float *arena = core_alloc(sizeof(float) * total);
  if (!arena) {
    model_destroy(m);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, "lower train.micro_batch or train.seq_len",
                "cannot allocate %.1f MiB of activations", total * 4.0 / 1048576);
  }
  m->act_bytes = total * sizeof(float);
  float *cur = arena;
  m->xs = arena_take(&cur, (size_t)(m->L + 1) * N * C);
  float *xn1 = arena_take(&cur, N * C), *xn2 = arena_take(&cur, N * C), *h = arena_take(&cur, fcap);
  for (int l = 0; l < m->L; l++) {
    layer_acts *a = &m->acts[l];
    if ((size_t)l >= nsets) {
      *a = m->acts[0];
      continue;
    }
    a->x_mid = arena_take(&cur, N * C);
    a->rstd1 = arena_take(&cur, N);
    a->xn1 = xn1;
    a->qkv = arena_take(&cur, N * Q3);
    a->alse = arena_take(&cur, (size_t)B * m->Hl * T);
    a->att = arena_take(&cur, N * HD);
    a->rstd2 = arena_take(&cur, N);
    a->xn2 = xn2;
    a->gu = arena_take(&cur, 2 * fcap);
    a->h = h;
  }
  m->rstdf = arena_take(&cur, N);
  m->xnf = arena_take(&cur, N * C);
  m->lse = arena_take(&cur, N);
  m->targets = (int *)arena_take(&cur, N);
  m->cosv = arena_take(&cur, (size_t)T * m->D / 2);
  m->sinv = arena_take(&cur, (size_t)T * m->D / 2);
  m->logits = arena_take(&cur, (size_t)HEAD_CHUNK * m->Vl);
  m->g = arena_take(&cur, N * C);
  m->dtmp = arena_take(&cur, N * C);
  m->dxn = arena_take(&cur, N * C);
  m->dqkv = arena_take(&cur, N * Q3);
  m->datt = arena_take(&cur, N * HD);
  m->ascr = arena_take(&cur, attn_scratch_floats());
  m->dgu = arena_take(&cur, 2 * fcap);
  m->dh = arena_take(&cur, fcap);
  m->s2d = arena_take(&cur, scap);
  m->rowstats = arena_take(&cur, 4 * N);
  if ((size_t)(cur - arena) > total) {
    model_destroy(m); /* frees the arena (m->xs) */
    IFT_REQUIRE(0, IFT_ERR_INTERNAL, "report this as a bug", "activation arena undersized");
  }
  {
    float *inv = malloc(sizeof(float) * (size_t)(m->D / 2));
    if (!inv) {
      model_destroy(m);
      IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "RoPE frequencies");
    }
    model_rope_inv_freq(cfg, inv);
    kern_rope_table(m->cosv, m->sinv, T, m->D, inv);
    free(inv);
  }
  *out = m;
  return IFT_OK;
}

void model_destroy(model *m) {
  if (!m) return;
  core_free(m->xs); /* the arena starts with xs */
  core_free(m->params);
  core_free(m->grads);
  free(m->tensors);
  free(m->pl);
  free(m->gl);
  free(m->acts);
  free(m->cnts);
  core_free(m->kv);
  free(m->kvs);
  if (m->ctx2d >= 0) Cblacs_gridexit(m->ctx2d);
  if (m->ctxh >= 0) Cblacs_gridexit(m->ctxh);
  if (m->ctxt >= 0) Cblacs_gridexit(m->ctxt);
  free(m);
}

void model_init_weights(model *m, uint64_t seed) {
  const double std = 0.02, out_std = 0.02 / sqrt(2.0 * m->L);
  for (int i = 0; i < m->ntensors; i++) {
    const model_tensor *t = &m->tensors[i];
    float *p = m->params + t->offset;
    if (t->cols == 1) {
      for (int r = 0; r < t->lrows; r++) p[r] = 1.0f;
      continue;
    }
    int is_out = strstr(t->name, "o_proj") || strstr(t->name, "down_proj");
    double s = is_out ? out_std : std;
    for (int r = 0; r < t->lrows; r++)
      for (int c = 0; c < t->lcols; c++) {
        uint64_t gidx = (uint64_t)model_tensor_grow(t, r) * (uint64_t)t->cols +
                        (uint64_t)model_tensor_gcol(t, c);
        p[(size_t)r * t->lcols + c] = (float)(s * rng_normal(seed, (uint64_t)i, gidx));
      }
  }
}

const model_config *model_cfg(const model *m) { return &m->cfg; }
int model_tp_rank(const model *m) { return m->tp_rank; }
int model_tp_size(const model *m) { return m->tp_size; }
void model_tp_grid(const model *m, int *pr, int *pc) {
  *pr = m->pr;
  *pc = m->pc;
}
size_t model_nparams(const model *m) { return m->nparams; }
size_t model_nparams_global(const model *m) {
  size_t n = 0;
  for (int i = 0; i < m->ntensors; i++) n += (size_t)m->tensors[i].rows * m->tensors[i].cols;
  return n;
}
float *model_params(model *m) { return m->params; }
float *model_grads(model *m) { return m->grads; }
int model_ntensors(const model *m) { return m->ntensors; }
const model_tensor *model_tensor_at(const model *m, int i) { return &m->tensors[i]; }
const model_tensor *model_tensor_find(const model *m, const char *name) {
  for (int i = 0; i < m->ntensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}
model_view model_params_view(model *m) { return m->pv; }
model_view model_grads_view(model *m) { return m->gv; }
size_t model_activation_bytes(const model *m) { return m->act_bytes; }
void model_zero_grads(model *m) { memset(m->grads, 0, sizeof(float) * m->nparams); }

double model_forward_flops(const model *m, int B, int T) {
  const double C = m->C, H = m->H, K = m->K, D = m->D, F = m->F, V = m->V;
  const double tavg = (T + 1) / 2.0; /* causal: keys per query on average */
  double per_tok = m->L * (2 * C * (H + 2 * K) * D + 2 * H * D * C + 2 * C * 2 * F + 2 * F * C +
                           2 * 2 * H * D * tavg) +
                   2 * C * V;
  return per_tok * B * T;
}

/* ------------------------------------------------------------ collectives */

static ift_status tp_sum(model *m, float *buf, size_t n) {
  if (m->tp == MPI_COMM_NULL) return IFT_OK;
  return dist_allreduce(buf, (int)n, MPI_FLOAT, MPI_SUM, m->tp);
}


/* ------------------------------------------------------------ 2D mode
 *
 * dist.tp_mode = 2d.  The seven block matrices of a layer live on the
 * pr x pc BLACS grid (SHARD_2D: one block per process, or block-cyclic in
 * nb x nb blocks, see add_tensor); each GEMM is one PBLAS psgemm on 2D
 * activations (features x tokens, features over the process rows, tokens over
 * the process columns).  The residual stream, the norms and the embedding/
 * head stay as in 1D (replicated / vocab-parallel), so the block boundaries
 * are:
 *   replicated -> 2D:  free (each rank's block is a strided view, lld = C);
 *                      adjoint: the gather below;
 *   2D -> replicated:  psgemr2d to token blocks (1 x P grid) + all-gather;
 *                      adjoint: the free view (every rank holds the same
 *                      upstream gradient, as for 1D's row-parallel output);
 *   2D <-> head layout (P x 1 grid, the attention core of 1D mode):
 *                      psgemr2d both ways. */

static void desc_fill(int d[DESC_LEN], int M, int N, int mb, int nb, int ctx, int lld) {
  d[DESC_DTYPE] = 1;
  d[DESC_CTXT] = ctx;
  d[DESC_M] = M;
  d[DESC_N] = N;
  d[DESC_MB] = mb > 0 ? mb : 1;
  d[DESC_NB] = nb > 0 ? nb : 1;
  d[DESC_RSRC] = 0;
  d[DESC_CSRC] = 0;
  d[DESC_LLD] = lld > 1 ? lld : 1;
}

static int tok_block(const model *m, int N) { return (N + m->pc - 1) / m->pc; }

/* Tokens (2D columns) this rank holds of N. */
static int tok_local(const model *m, int N) {
  const int nb = tok_block(m, N), c0 = m->mycol * nb;
  return c0 >= N ? 0 : (N - c0 < nb ? N - c0 : nb);
}

/* M x N 2D activation with leading dimension lld. */
static void desc_act(const model *m, int d[DESC_LEN], int M, int N, int lld) {
  desc_fill(d, M, N, M / m->pr, tok_block(m, N), m->ctx2d, lld);
}

/* This rank's block of a replicated row-major [N, M] buffer (= column-major
 * M x N, leading dimension M), described by desc_act(.., M). */
static const float *act_view(const model *m, const float *buf, int M, int N) {
  size_t c0 = (size_t)m->mycol * (size_t)tok_block(m, N);
  if (c0 >= (size_t)N) c0 = 0;
  return buf + c0 * (size_t)M + (size_t)m->myrow * (size_t)(M / m->pr);
}

/* W' = the [out, in] tensor read column-major (in x out). */
static void desc_weight(const model *m, int d[DESC_LEN], const model_tensor *t) {
  desc_fill(d, t->cols, t->rows, t->cblk, t->rblk, m->ctx2d, t->lcols);
}

/* Head layout: M x N with features in blocks of mb over the P x 1 grid. */
static void desc_head(const model *m, int d[DESC_LEN], int M, int N, int mb, int lld) {
  desc_fill(d, M, N, mb, N, m->ctxh, lld);
}

static void redist(const model *m, int M, int N, const float *a, const int *da, float *b,
                   const int *db) {
  const int one = 1;
  double t0 = core_now();
  psgemr2d_(&M, &N, a, &one, &one, da, b, &one, &one, db, &m->ctx2d);
  dist_comm_add(core_now() - t0);
}

/* 2D C x N (desc dz) -> replicated row-major [N, C] on every TP rank. */
static ift_status gather_rows(model *m, const float *z, const int *dz, float *dst, int N) {
  const int C = m->C, P = m->tp_size, nb = (N + P - 1) / P;
  int dt[DESC_LEN];
  desc_fill(dt, C, N, C, nb, m->ctxt, C);
  size_t t0 = (size_t)m->tp_rank * (size_t)nb;
  if (t0 >= (size_t)N) t0 = 0;
  redist(m, C, N, z, dz, dst + t0 * (size_t)C, dt);
  if (m->tp == MPI_COMM_NULL) return IFT_OK;
  for (int r = 0; r < P; r++) {
    int a = r * nb < N ? r * nb : N, b = a + nb < N ? a + nb : N;
    m->dspl[r] = a * C;
    m->cnts[r] = (b - a) * C;
  }
  double t1 = core_now();
  IFT_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, dst, m->cnts, m->dspl,
                               MPI_FLOAT, m->tp),
                "a peer rank failed or the job is out of memory");
  dist_comm_add(core_now() - t1);
  return IFT_OK;
}

/* Y (out x N) = W'^T X (X: in x N). */
static void mm2d_forward(model *m, const model_tensor *t, const float *X, const int *dX, float *Y,
                         const int *dY, int N) {
  int dW[DESC_LEN];
  desc_weight(m, dW, t);
  dist_psgemm('T', 'N', t->rows, N, t->cols, 1.0f, m->params + t->offset, dW, X, dX, 0.0f, Y, dY);
}

/* dX (in x N) = W' dY + beta dX;  dW' += X dY^T. */
static void mm2d_backward(model *m, const model_tensor *t, const float *X, const int *dX,
                          const float *dY, const int *ddY, float *gX, const int *dgX, float beta,
                          int N) {
  int dW[DESC_LEN];
  desc_weight(m, dW, t);
  dist_psgemm('N', 'N', t->cols, N, t->rows, 1.0f, m->params + t->offset, dW, dY, ddY, beta, gX,
              dgX);
  dist_psgemm('N', 'T', t->cols, t->rows, N, 1.0f, X, dX, dY, ddY, 1.0f, m->grads + t->offset, dW);
}

/* ------------------------------------------------------------ forward */

static void embed_forward(model *m, float *x0, const model_input *in, int N) {
  const int C = m->C, v0 = m->v0, Vl = m->Vl;
  const float *E = m->pv.embed;
  const float a = 1.0f - in->lambda, b = in->lambda;
  for (int n = 0; n < N; n++) {
    float *dst = x0 + (size_t)n * C;
    int t0 = in->tokens[n] - v0;
    const float *e0 = (t0 >= 0 && t0 < Vl) ? E + (size_t)t0 * C : NULL;
    if (!in->alt) {
      if (e0) memcpy(dst, e0, sizeof(float) * C);
      else memset(dst, 0, sizeof(float) * C);
      continue;
    }
    int t1 = in->alt[n] - v0;
    const float *e1 = (t1 >= 0 && t1 < Vl) ? E + (size_t)t1 * C : NULL;
    /* (1-λ)E[x] + λE[x~], each term only where its id is in this shard; with
     * λ = 0 this is exactly E[x] (1·e + 0·e' = e), the SFT input. */
    for (int c = 0; c < C; c++) dst[c] = (e0 ? a * e0[c] : 0.0f) + (e1 ? b * e1[c] : 0.0f);
  }
}

/* The attention core of every local head (attn.c): q, k, v of head h and
 * its key/value head h / G in the fused qkv rows. */
/* The next document of a row: [*t0, return) with positions restarting at 0
 * (packed sequences); the whole row when pos is NULL. */
static int doc_end(const int *pos, int T, int t0) {
  int t1 = t0 + 1;
  if (pos)
    while (t1 < T && pos[t1] != 0) t1++;
  else
    t1 = T;
  return t1;
}

/* Every document of every row attends only to itself: attention runs per
 * document (its causal blocks only; nothing across documents is computed). */
static void attention_forward(model *m, layer_acts *a, int B, int T) {
  const int D = m->D, Q3 = m->Q3, HD = m->Hl * m->D, G = m->Hl / m->Kl;
  const float scale = 1.0f / sqrtf((float)D);
  for (int b = 0; b < B; b++) {
    const int *pos = m->pos ? m->pos + (size_t)b * T : NULL;
    for (int t0 = 0, t1; t0 < T; t0 = t1) {
      t1 = doc_end(pos, T, t0);
      const float *qkv = a->qkv + ((size_t)b * T + t0) * Q3;
      for (int h = 0; h < m->Hl; h++) {
        const int g = h / G;
        attn_forward(qkv + (size_t)h * D, qkv + (size_t)(m->Hl + g) * D, qkv + (size_t)(m->Hl + m->Kl + g) * D,
                     Q3, a->att + ((size_t)b * T + t0) * HD + (size_t)h * D, HD,
                     a->alse + ((size_t)b * m->Hl + h) * T + t0, t1 - t0, D, scale, m->ascr);
      }
    }
  }
}


/* Shapes and descriptors shared by a 2D layer's forward and backward. */
typedef struct {
  int M[3], mb[3];  /* q, k, v: rows (features), head-layout block */
  size_t off[3];    /* q, k, v offsets in the fused head-layout rows */
  int dXr[DESC_LEN]; /* C x N view into a replicated [N, C] buffer */
  int dZ[DESC_LEN];  /* C x N 2D block of its own */
  int dF[DESC_LEN];  /* F x N 2D block */
} plan2d;

static void plan2d_make(const model *m, int N, plan2d *p) {
  const int D = m->D, C = m->C;
  p->M[0] = m->H * D;
  p->M[1] = p->M[2] = m->K * D;
  p->mb[0] = m->Hl * D;
  p->mb[1] = p->mb[2] = m->Kl * D;
  p->off[0] = 0;
  p->off[1] = (size_t)m->Hl * D;
  p->off[2] = (size_t)(m->Hl + m->Kl) * D;
  desc_act(m, p->dXr, C, N, C);
  desc_act(m, p->dZ, C, N, C / m->pr);
  desc_act(m, p->dF, m->F, N, m->F / m->pr);
}

static ift_status layer_forward_2d(model *m, int l, const float *x, float *y, int B, int T) {
  const int N = B * T, C = m->C, HD = m->H * m->D, F = m->F;
  const model_tensor *t = &m->tensors[1 + 9 * l]; /* +1 q +2 k +3 v +4 o +6 gate +7 up +8 down */
  const model_layer_view *w = &m->pl[l];
  layer_acts *a = &m->acts[l];
  const float eps = (float)m->cfg.rms_norm_eps;
  plan2d p;
  plan2d_make(m, N, &p);
  const int *M = p.M, *mb = p.mb, *dXr = p.dXr, *dZ = p.dZ, *dF = p.dF;
  const size_t *off = p.off;
  int dY[DESC_LEN], dH[DESC_LEN], dA[DESC_LEN];
  kern_rmsnorm_forward(a->xn1, a->rstd1, x, w->ln1, N, C, eps);
  const float *xv = act_view(m, a->xn1, C, N);
  for (int j = 0; j < 3; j++) { /* q, k, v in 2D, then to the attention heads */
    desc_act(m, dY, M[j], N, M[j] / m->pr);
    mm2d_forward(m, &t[1 + j], xv, dXr, m->s2d, dY, N);
    desc_head(m, dH, M[j], N, mb[j], m->Q3);
    redist(m, M[j], N, m->s2d, dY, a->qkv + off[j], dH);
  }
  kern_rope_forward(a->qkv, m->cosv, m->sinv, B, T, m->Hl + m->Kl, m->D, m->Q3, m->pos);
  attention_forward(m, a, B, T);
  float *att2 = m->s2d, *z2 = m->s2d + (size_t)(HD / m->pr) * tok_block(m, N);
  desc_head(m, dH, HD, N, m->Hl * m->D, m->Hl * m->D);
  desc_act(m, dA, HD, N, HD / m->pr);
  redist(m, HD, N, a->att, dH, att2, dA);
  mm2d_forward(m, &t[4], att2, dA, z2, dZ, N);
  IFT_TRY(gather_rows(m, z2, dZ, a->x_mid, N));
  for (size_t i = 0; i < (size_t)N * C; i++) a->x_mid[i] += x[i];
  kern_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, w->ln2, N, C, eps);
  const float *xv2 = act_view(m, a->xn2, C, N);
  float *G = a->gu, *U = a->gu + m->fcap;
  mm2d_forward(m, &t[6], xv2, dXr, G, dF, N);
  mm2d_forward(m, &t[7], xv2, dXr, U, dF, N);
  const int nl = F / m->pr * tok_local(m, N); /* the blocks are contiguous */
  if (nl) kern_swiglu_forward(a->h, G, U, 1, nl, nl);
  mm2d_forward(m, &t[8], a->h, dF, z2, dZ, N);
  IFT_TRY(gather_rows(m, z2, dZ, y, N));
  for (size_t i = 0; i < (size_t)N * C; i++) y[i] += a->x_mid[i];
  return IFT_OK;
}

/* The rest of a 1D layer after attention, for N tokens: output projection
 * (row-parallel: all-reduce), residual, RMSNorm, SwiGLU MLP, residual.
 * a->att holds the attention output; y receives the layer's output. */
static ift_status layer_tail_1d(model *m, int l, const float *x, float *y, int N) {
  const int C = m->C, HD = m->Hl * m->D, Fl = m->Fl;
  const model_layer_view *w = &m->pl[l];
  layer_acts *a = &m->acts[l];
  const float eps = (float)m->cfg.rms_norm_eps;
  kern_sgemm(0, 1, N, C, HD, 1.0f, a->att, HD, w->o, HD, 0.0f, a->x_mid, C);
  IFT_TRY(tp_sum(m, a->x_mid, (size_t)N * C));
  for (size_t i = 0; i < (size_t)N * C; i++) a->x_mid[i] += x[i];
  kern_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, w->ln2, N, C, eps);
  kern_sgemm(0, 1, N, 2 * Fl, C, 1.0f, a->xn2, C, w->gu, C, 0.0f, a->gu, 2 * Fl);
  kern_swiglu_forward(a->h, a->gu, a->gu + Fl, N, Fl, 2 * Fl);
  kern_sgemm(0, 1, N, C, Fl, 1.0f, a->h, Fl, w->down, Fl, 0.0f, y, C);
  IFT_TRY(tp_sum(m, y, (size_t)N * C));
  for (size_t i = 0; i < (size_t)N * C; i++) y[i] += a->x_mid[i];
  return IFT_OK;
}

static ift_status layer_forward(model *m, int l, const float *x, float *y, int B, int T) {
  if (m->pr) return layer_forward_2d(m, l, x, y, B, T);
  const int N = B * T, C = m->C, Q3 = m->Q3;
  const model_layer_view *w = &m->pl[l];
  layer_acts *a = &m->acts[l];
  const float eps = (float)m->cfg.rms_norm_eps;
  kern_rmsnorm_forward(a->xn1, a->rstd1, x, w->ln1, N, C, eps);
  kern_sgemm(0, 1, N, Q3, C, 1.0f, a->xn1, C, w->qkv, C, 0.0f, a->qkv, Q3);
  kern_rope_forward(a->qkv, m->cosv, m->sinv, B, T, m->Hl + m->Kl, m->D, Q3, m->pos);
  attention_forward(m, a, B, T);
  return layer_tail_1d(m, l, x, y, N);
}

/* Log-probs (and argmax) of the LM head in chunks of rows, so the full
 * [N, V] logits never exist; lse is kept for the backward. */
static ift_status head_forward(model *m, float *logp, int *argmax, int B, int T) {
  const int N = B * T, C = m->C, Vl = m->Vl;
  float *mx = m->rowstats, *se = mx + N, *tg = se + N;
  for (int n0 = 0; n0 < N; n0 += HEAD_CHUNK) {
    int nc = n0 + HEAD_CHUNK < N ? HEAD_CHUNK : N - n0;
    kern_sgemm(0, 1, nc, Vl, C, 1.0f, m->xnf + (size_t)n0 * C, C, m->pv.head, C, 0.0f,
               m->logits, Vl);
    kern_ce_stats(mx + n0, se + n0, tg + n0, argmax ? argmax + n0 : NULL, m->logits,
                  m->targets + n0, nc, Vl, Vl, m->v0);
  }
  if (m->tp != MPI_COMM_NULL) {
    /* Vocab-parallel softmax: global max, then each shard's sum rescaled to
     * it; the target logit lives on one shard (-inf elsewhere). */
    float *gmx = m->dtmp; /* scratch of >= N floats */
    memcpy(gmx, mx, sizeof(float) * (size_t)N);
    IFT_TRY(dist_allreduce(gmx, N, MPI_FLOAT, MPI_MAX, m->tp));
    for (int n = 0; n < N; n++) se[n] *= expf(mx[n] - gmx[n]);
    IFT_TRY(dist_allreduce(se, N, MPI_FLOAT, MPI_SUM, m->tp));
    IFT_TRY(dist_allreduce(tg, N, MPI_FLOAT, MPI_MAX, m->tp));
    if (argmax) {
      /* MPI_MAXLOC breaks ties by the lower index: lowest token id wins, as
       * on one rank. */
      struct { float v; int i; } *pairs = (void *)m->dxn;
      for (int n = 0; n < N; n++) {
        pairs[n].v = mx[n];
        pairs[n].i = argmax[n];
      }
      IFT_TRY(dist_allreduce(pairs, N, MPI_FLOAT_INT, MPI_MAXLOC, m->tp));
      for (int n = 0; n < N; n++) argmax[n] = pairs[n].i;
    }
    memcpy(mx, gmx, sizeof(float) * N);
  }
  for (int b = 0; b < B; b++) {
    logp[(size_t)b * T] = 0.0f;
    for (int t = 0; t < T; t++) {
      int n = b * T + t;
      m->lse[n] = mx[n] + logf(se[n]);
      if (t + 1 < T) logp[n + 1] = tg[n] - m->lse[n];
    }
  }
  return IFT_OK;
}

/* ------------------------------------------------------------ KV cache */

static size_t kv_row(const model *m) { return (size_t)m->Kl * m->D; }
/* keys (kind 0) or values (1) of layer l, row b, position t */
static float *kv_at(const model *m, int l, int kind, int b, int t) {
  return m->kv + ((((size_t)l * 2 + kind) * m->Bmax + b) * m->Tmax + t) * kv_row(m);
}

/* The keys (after RoPE) and values of layer l's last forward into the cache. */
static void kv_store(model *m, int l, int B, int T) {
  const layer_acts *a = &m->acts[l];
  const size_t kd = kv_row(m);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float *row = a->qkv + ((size_t)b * T + t) * m->Q3;
      memcpy(kv_at(m, l, 0, b, t), row + (size_t)m->Hl * m->D, sizeof(float) * kd);
      memcpy(kv_at(m, l, 1, b, t), row + (size_t)(m->Hl + m->Kl) * m->D, sizeof(float) * kd);
    }
}

int model_kv_supported(const model *m) { return !m->pr; }

ift_status model_kv_enable(model *m) {
  if (m->kv) return IFT_OK;
  IFT_REQUIRE(!m->pr, IFT_ERR_UNIMPL, "generation runs full forwards in the 2D mode",
              "the key/value cache is implemented for the 1D layouts only");
  const size_t n = (size_t)m->L * 2 * m->Bmax * m->Tmax * kv_row(m);
  m->kv = core_alloc(sizeof(float) * n);
  m->kvs = malloc(sizeof(float) * (size_t)m->Tmax);
  if (!m->kv || !m->kvs || core_fault("kv_alloc")) {
    core_free(m->kv);
    free(m->kvs);
    m->kv = NULL;
    m->kvs = NULL;
    IFT_REQUIRE(0, IFT_ERR_NOMEM, "generate with a smaller micro-batch or sequence length",
                "cannot allocate a key/value cache of %.1f MiB", n * 4.0 / 1048576);
  }
  return IFT_OK;
}

void model_kv_disable(model *m) {
  core_free(m->kv);
  free(m->kvs);
  m->kv = NULL;
  m->kvs = NULL;
}

/* One decoder layer for B single tokens at positions pos (1D layouts):
 * the layer's activation buffers serve as scratch. */
static ift_status layer_decode(model *m, int l, const float *x, float *y, const int *pos, int B) {
  const int C = m->C, Q3 = m->Q3, D = m->D, HD = m->Hl * D, G = m->Hl / m->Kl, h2 = D / 2;
  const model_layer_view *w = &m->pl[l];
  layer_acts *a = &m->acts[l];
  const float eps = (float)m->cfg.rms_norm_eps, scale = 1.0f / sqrtf((float)D);
  kern_rmsnorm_forward(a->xn1, a->rstd1, x, w->ln1, B, C, eps);
  kern_sgemm(0, 1, B, Q3, C, 1.0f, a->xn1, C, w->qkv, C, 0.0f, a->qkv, Q3);
  for (int b = 0; b < B; b++) {
    float *q = a->qkv + (size_t)b * Q3;
    const int p = pos[b];
    kern_rope_forward(q, m->cosv + (size_t)p * h2, m->sinv + (size_t)p * h2, 1, 1, m->Hl + m->Kl, D, Q3, NULL);
    memcpy(kv_at(m, l, 0, b, p), q + HD, sizeof(float) * kv_row(m));
    memcpy(kv_at(m, l, 1, b, p), q + HD + (size_t)m->Kl * D, sizeof(float) * kv_row(m));
    const int n = p + 1, ldk = (int)kv_row(m);
    /* one query against n cached keys: loops, not GEMM calls (a BLIS call
     * costs more than these few thousand flops) */
    for (int h = 0; h < m->Hl; h++) {
      const int g = h / G;
      const float *qh = q + (size_t)h * D, *K = kv_at(m, l, 0, b, 0) + (size_t)g * D,
                  *V = kv_at(m, l, 1, b, 0) + (size_t)g * D;
      for (int j = 0; j < n; j++) {
        const float *kj = K + (size_t)j * ldk;
        float acc = 0.0f;
        for (int d = 0; d < D; d++) acc += qh[d] * kj[d];
        m->kvs[j] = acc;
      }
      kern_softmax_forward(m->kvs, m->kvs, 1, n, n, scale, n - 1);
      float *o = a->att + (size_t)b * HD + (size_t)h * D;
      for (int d = 0; d < D; d++) o[d] = 0.0f;
      for (int j = 0; j < n; j++) {
        const float pj = m->kvs[j], *vj = V + (size_t)j * ldk;
        for (int d = 0; d < D; d++) o[d] += pj * vj[d];
      }
    }
  }
  return layer_tail_1d(m, l, x, y, B);
}

ift_status model_decode(model *m, const int *tok, const int *pos, int B, int *next) {
  IFT_REQUIRE(m->kv, IFT_ERR_INTERNAL, "call model_kv_enable and a prefill forward first",
              "model_decode without a key/value cache");
  IFT_REQUIRE(B >= 1 && B <= m->Bmax, IFT_ERR_ARG, "decode at most the planned micro-batch",
              "decode of %d rows exceeds the planned %d", B, m->Bmax);
  const int C = m->C, Vl = m->Vl;
  for (int b = 0; b < B; b++) {
    IFT_REQUIRE(pos[b] >= 0 && pos[b] < m->Tmax, IFT_ERR_ARG, "generate within the planned sequence length",
                "decode position %d of row %d is outside [0, %d)", pos[b], b, m->Tmax);
    IFT_REQUIRE(tok[b] >= 0 && tok[b] < m->V, IFT_ERR_FORMAT, "the tokens must be in the vocabulary",
                "token id %d of row %d is outside the vocabulary [0, %d)", tok[b], b, m->V);
  }
  /* the residual stream of B tokens in two [B, C] buffers of the arena */
  float *x = m->g, *y = m->dtmp;
  model_input in = {.tokens = tok};
  embed_forward(m, x, &in, B);
  IFT_TRY(tp_sum(m, x, (size_t)B * C));
  for (int l = 0; l < m->L; l++) {
    IFT_TRY(layer_decode(m, l, x, y, pos, B));
    float *t = x;
    x = y;
    y = t;
  }
  kern_rmsnorm_forward(m->xnf, m->rstdf, x, m->pv.norm, B, C, (float)m->cfg.rms_norm_eps);
  if (!next) return IFT_OK; /* model_logits reads the rows */
  /* greedy: the largest logit, the lowest id on ties (as kern_ce_stats) */
  struct {
    float v;
    int i;
  } *best = (void *)m->dxn;
  for (int b0 = 0; b0 < B; b0 += HEAD_CHUNK) {
    const int nc = b0 + HEAD_CHUNK < B ? HEAD_CHUNK : B - b0;
    kern_sgemm(0, 1, nc, Vl, C, 1.0f, m->xnf + (size_t)b0 * C, C, m->pv.head, C, 0.0f, m->logits, Vl);
    for (int r = 0; r < nc; r++) {
      const float *lg = m->logits + (size_t)r * Vl;
      int k = 0;
      for (int v = 1; v < Vl; v++)
        if (lg[v] > lg[k]) k = v;
      best[b0 + r].v = lg[k];
      best[b0 + r].i = m->v0 + k;
    }
  }
  if (m->tp != MPI_COMM_NULL) IFT_TRY(dist_allreduce(best, B, MPI_FLOAT_INT, MPI_MAXLOC, m->tp));
  for (int b = 0; b < B; b++) next[b] = best[b].i;
  return IFT_OK;
}

ift_status model_logits(model *m, float *logits, int n) {
  IFT_REQUIRE(n >= 0 && n < m->Bmax * m->Tmax, IFT_ERR_ARG, "ask for a row of the last forward or decode",
              "logits of row %d: the model holds at most %d rows", n, m->Bmax * m->Tmax);
  const int C = m->C, Vl = m->Vl;
  /* this rank's vocabulary shard [v0, v0 + Vl), v0 = tp rank x Vl: an
   * all-gather in tp rank order puts every shard in its place */
  kern_sgemm(0, 1, 1, Vl, C, 1.0f, m->xnf + (size_t)n * C, C, m->pv.head, C, 0.0f, m->logits, Vl);
  if (m->tp == MPI_COMM_NULL) {
    memcpy(logits, m->logits, sizeof(float) * (size_t)Vl);
    return IFT_OK;
  }
  return dist_mpi_status(MPI_Allgather(m->logits, Vl, MPI_FLOAT, logits, Vl, MPI_FLOAT, m->tp),
                         "MPI_Allgather", __FILE__, __LINE__, NULL);
}

ift_status model_forward(model *m, float *logp, int *argmax, const model_input *in, int B, int T,
                         int keep) {
  IFT_REQUIRE(B >= 1 && B <= m->Bmax && T >= 2 && T <= m->Tmax, IFT_ERR_ARG,
              "the micro-batch must fit the shapes the model was created for",
              "forward of %d x %d exceeds the planned %d x %d", B, T, m->Bmax, m->Tmax);
  const int N = B * T, C = m->C;
  for (int n = 0; n < N; n++) {
    IFT_REQUIRE(in->tokens[n] >= 0 && in->tokens[n] < m->V, IFT_ERR_FORMAT,
                "the data set's vocabulary must match model.vocab_size",
                "token id %d at position %d is outside the vocabulary [0, %d)", in->tokens[n], n,
                m->V);
    m->targets[n] = (n % T) + 1 < T ? in->tokens[n + 1] : -1;
  }
  if (in->pos) {
    /* packed documents: each starts at position 0 and counts up by one */
    IFT_REQUIRE(!m->kv, IFT_ERR_ARG, "generate from unpacked rows",
                "the key/value cache holds whole rows, not packed documents");
    for (int n = 0; n < N; n++)
      IFT_REQUIRE(in->pos[n] == (n % T == 0 ? 0 : in->pos[n]) &&
                      (in->pos[n] == 0 || in->pos[n] == in->pos[n - 1] + 1),
                  IFT_ERR_INTERNAL, "report this as a bug",
                  "packed position %d at token %d of row %d: documents start at 0 and count up by one",
                  in->pos[n], n % T, n / T);
  }
  m->pos = in->pos;
  embed_forward(m, m->xs, in, N);
  IFT_TRY(tp_sum(m, m->xs, (size_t)N * C));
  for (int l = 0; l < m->L; l++) {
    IFT_TRY(layer_forward(m, l, m->xs + (size_t)l * N * C, m->xs + (size_t)(l + 1) * N * C, B, T));
    if (m->kv) kv_store(m, l, B, T);
  }
  kern_rmsnorm_forward(m->xnf, m->rstdf, m->xs + (size_t)m->L * N * C, m->pv.norm, N, C,
                       (float)m->cfg.rms_norm_eps);
  IFT_TRY(head_forward(m, logp, argmax, B, T));
  m->fwd_B = B;
  m->fwd_T = T;
  m->fwd_kept = keep;
  m->fwd_in = *in;
  return IFT_OK;
}

/* ------------------------------------------------------------ backward */

static void attention_backward(model *m, layer_acts *a, int B, int T) {
  const int D = m->D, Q3 = m->Q3, HD = m->Hl * m->D, G = m->Hl / m->Kl;
  const float scale = 1.0f / sqrtf((float)D);
  const int N = B * T;
  /* K and V gradients accumulate over the G query heads sharing them. */
  for (int n = 0; n < N; n++)
    memset(m->dqkv + (size_t)n * Q3 + (size_t)m->Hl * D, 0, sizeof(float) * 2 * m->Kl * D);
  for (int b = 0; b < B; b++) {
    const int *pos = m->pos ? m->pos + (size_t)b * T : NULL;
    for (int t0 = 0, t1; t0 < T; t0 = t1) {
      t1 = doc_end(pos, T, t0);
      const size_t rowb = ((size_t)b * T + t0) * Q3, rowa = ((size_t)b * T + t0) * HD;
      const float *qkv = a->qkv + rowb;
      float *d = m->dqkv + rowb;
      for (int h = 0; h < m->Hl; h++) {
        const int g = h / G;
        const size_t oq = (size_t)h * D, ok = (size_t)(m->Hl + g) * D, ov = (size_t)(m->Hl + m->Kl + g) * D;
        attn_backward(qkv + oq, qkv + ok, qkv + ov, Q3, a->att + rowa + oq, m->datt + rowa + oq, HD,
                      a->alse + ((size_t)b * m->Hl + h) * T + t0, d + oq, d + ok, d + ov, t1 - t0, D, scale,
                      m->ascr);
      }
    }
  }
}


static ift_status layer_backward_2d(model *m, int l, const float *x, float *g, int B, int T) {
  const int N = B * T, C = m->C, HD = m->H * m->D, F = m->F;
  const model_tensor *t = &m->tensors[1 + 9 * l];
  const model_layer_view *w = &m->pl[l], *dw = &m->gl[l];
  layer_acts *a = &m->acts[l];
  plan2d p;
  plan2d_make(m, N, &p);
  const int *M = p.M, *mb = p.mb, *dXr = p.dXr, *dZ = p.dZ, *dF = p.dF;
  const size_t *off = p.off;
  int dY[DESC_LEN], dH[DESC_LEN], dA[DESC_LEN];
  /* s2d holds two operands one after the other: the first of up to max(C, H*D) rows */
  const size_t capC = (size_t)((C > HD ? C : HD) / m->pr) * tok_block(m, N);
  const float *gv = act_view(m, g, C, N); /* dL/dy, this rank's 2D block */
  /* the normalised inputs and the SwiGLU product again (one set serves all layers) */
  const float eps = (float)m->cfg.rms_norm_eps;
  kern_rmsnorm_forward(a->xn1, a->rstd1, x, w->ln1, N, C, eps);
  kern_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, w->ln2, N, C, eps);
  /* MLP */
  const float *xv2 = act_view(m, a->xn2, C, N);
  const float *G = a->gu, *U = a->gu + m->fcap;
  const int nl = F / m->pr * tok_local(m, N);
  if (nl) kern_swiglu_forward(a->h, G, U, 1, nl, nl);
  float *dG = m->dgu, *dU = m->dgu + m->fcap, *dx = m->s2d;
  mm2d_backward(m, &t[8], a->h, dF, gv, dXr, m->dh, dF, 0.0f, N);
  if (nl) kern_swiglu_backward(dG, dU, m->dh, G, U, 1, nl, nl);
  mm2d_backward(m, &t[6], xv2, dXr, dG, dF, dx, dZ, 0.0f, N);
  mm2d_backward(m, &t[7], xv2, dXr, dU, dF, dx, dZ, 1.0f, N);
  IFT_TRY(gather_rows(m, dx, dZ, m->dxn, N));
  kern_rmsnorm_backward(m->dtmp, dw->ln2, m->dxn, a->x_mid, w->ln2, a->rstd2, N, C);
  for (size_t i = 0; i < (size_t)N * C; i++) g[i] += m->dtmp[i];
  /* Attention output projection (g now holds dL/dx_mid) */
  float *att2 = m->s2d, *datt2 = m->s2d + capC;
  desc_head(m, dH, HD, N, m->Hl * m->D, m->Hl * m->D);
  desc_act(m, dA, HD, N, HD / m->pr);
  redist(m, HD, N, a->att, dH, att2, dA);
  mm2d_backward(m, &t[4], att2, dA, gv, dXr, datt2, dA, 0.0f, N);
  redist(m, HD, N, datt2, dA, m->datt, dH);
  attention_backward(m, a, B, T);
  kern_rope_backward(m->dqkv, m->cosv, m->sinv, B, T, m->Hl + m->Kl, m->D, m->Q3, m->pos);
  const float *xv = act_view(m, a->xn1, C, N);
  float *dy = m->s2d + capC;
  for (int j = 0; j < 3; j++) {
    desc_head(m, dH, M[j], N, mb[j], m->Q3);
    desc_act(m, dY, M[j], N, M[j] / m->pr);
    redist(m, M[j], N, m->dqkv + off[j], dH, dy, dY);
    mm2d_backward(m, &t[1 + j], xv, dXr, dy, dY, dx, dZ, j ? 1.0f : 0.0f, N);
  }
  IFT_TRY(gather_rows(m, dx, dZ, m->dxn, N));
  kern_rmsnorm_backward(m->dtmp, dw->ln1, m->dxn, x, w->ln1, a->rstd1, N, C);
  for (size_t i = 0; i < (size_t)N * C; i++) g[i] += m->dtmp[i];
  return IFT_OK;
}

/* g holds dL/d(layer output) on entry and dL/d(layer input) on exit. */
static ift_status layer_backward(model *m, int l, const float *x, float *g, int B, int T) {
  if (m->pr) return layer_backward_2d(m, l, x, g, B, T);
  const int N = B * T, C = m->C, Q3 = m->Q3, HD = m->Hl * m->D, Fl = m->Fl;
  const model_layer_view *w = &m->pl[l], *dw = &m->gl[l];
  layer_acts *a = &m->acts[l];
  /* the normalised inputs and the SwiGLU product again (one set serves all
   * layers): the same arithmetic, the same bits */
  const float eps = (float)m->cfg.rms_norm_eps;
  kern_rmsnorm_forward(a->xn1, a->rstd1, x, w->ln1, N, C, eps);
  kern_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, w->ln2, N, C, eps);
  kern_swiglu_forward(a->h, a->gu, a->gu + Fl, N, Fl, 2 * Fl);
  /* MLP: y = x_mid + down(swiglu(gu(norm(x_mid)))) */
  kern_sgemm(0, 0, N, Fl, C, 1.0f, g, C, w->down, Fl, 0.0f, m->dh, Fl);
  kern_sgemm(1, 0, C, Fl, N, 1.0f, g, C, a->h, Fl, 1.0f, dw->down, Fl);
  kern_swiglu_backward(m->dgu, m->dgu + Fl, m->dh, a->gu, a->gu + Fl, N, Fl, 2 * Fl);
  kern_sgemm(0, 0, N, C, 2 * Fl, 1.0f, m->dgu, 2 * Fl, w->gu, C, 0.0f, m->dxn, C);
  kern_sgemm(1, 0, 2 * Fl, C, N, 1.0f, m->dgu, 2 * Fl, a->xn2, C, 1.0f, dw->gu, C);
  IFT_TRY(tp_sum(m, m->dxn, (size_t)N * C));
  kern_rmsnorm_backward(m->dtmp, dw->ln2, m->dxn, a->x_mid, w->ln2, a->rstd2, N, C);
  for (size_t i = 0; i < (size_t)N * C; i++) g[i] += m->dtmp[i];
  /* Attention: x_mid = x + o(attn(rope(qkv(norm(x))))) */
  kern_sgemm(0, 0, N, HD, C, 1.0f, g, C, w->o, HD, 0.0f, m->datt, HD);
  kern_sgemm(1, 0, C, HD, N, 1.0f, g, C, a->att, HD, 1.0f, dw->o, HD);
  attention_backward(m, a, B, T);
  kern_rope_backward(m->dqkv, m->cosv, m->sinv, B, T, m->Hl + m->Kl, m->D, Q3, m->pos);
  kern_sgemm(0, 0, N, C, Q3, 1.0f, m->dqkv, Q3, w->qkv, C, 0.0f, m->dxn, C);
  kern_sgemm(1, 0, Q3, C, N, 1.0f, m->dqkv, Q3, a->xn1, C, 1.0f, dw->qkv, C);
  IFT_TRY(tp_sum(m, m->dxn, (size_t)N * C));
  kern_rmsnorm_backward(m->dtmp, dw->ln1, m->dxn, x, w->ln1, a->rstd1, N, C);
  for (size_t i = 0; i < (size_t)N * C; i++) g[i] += m->dtmp[i];
  return IFT_OK;
}

ift_status model_backward(model *m, const float *dlogp, int B, int T) {
  IFT_REQUIRE(m->fwd_kept && m->fwd_B == B && m->fwd_T == T, IFT_ERR_INTERNAL,
              "call model_forward with keep = 1 on the same shapes first",
              "backward of %d x %d without a matching kept forward", B, T);
  const int N = B * T, C = m->C, Vl = m->Vl;
  /* Per-position upstream gradient: position t carries dlogp of token t+1. */
  float *dl = m->rowstats;
  for (int n = 0; n < N; n++) dl[n] = (n % T) + 1 < T ? dlogp[n + 1] : 0.0f;
  for (int n0 = 0; n0 < N; n0 += HEAD_CHUNK) {
    int nc = n0 + HEAD_CHUNK < N ? HEAD_CHUNK : N - n0;
    const float *xc = m->xnf + (size_t)n0 * C;
    /* Recompute the chunk's logits (cheaper than keeping [N, V]). */
    kern_sgemm(0, 1, nc, Vl, C, 1.0f, xc, C, m->pv.head, C, 0.0f, m->logits, Vl);
    kern_ce_backward(m->logits, m->logits, m->lse + n0, m->targets + n0, dl + n0, nc, Vl, Vl,
                     m->v0);
    kern_sgemm(0, 0, nc, C, Vl, 1.0f, m->logits, Vl, m->pv.head, C, 0.0f, m->dxn + (size_t)n0 * C,
               C);
    kern_sgemm(1, 0, Vl, C, nc, 1.0f, m->logits, Vl, xc, C, 1.0f, m->gv.head, C);
  }
  IFT_TRY(tp_sum(m, m->dxn, (size_t)N * C));
  kern_rmsnorm_backward(m->g, m->gv.norm, m->dxn, m->xs + (size_t)m->L * N * C, m->pv.norm,
                        m->rstdf, N, C);
  for (int l = m->L - 1; l >= 0; l--) {
    const float *x = m->xs + (size_t)l * N * C;
    /* recompute: the layer's activations again, from its kept input (its
     * output, rewritten, is the same bits) */
    if (m->recompute == MODEL_RECOMPUTE_LAYER && l < m->L - 1) IFT_TRY(layer_forward(m, l, x, m->xs + (size_t)(l + 1) * N * C, B, T));
    IFT_TRY(layer_backward(m, l, x, m->g, B, T));
  }
  /* Embedding (vocab-parallel: each shard takes the rows of its ids). */
  const model_input *in = &m->fwd_in;
  if (in->alt && !in->embed_grad) return IFT_OK; /* reference IFT: frozen input table */
  const float a = in->alt ? 1.0f - in->lambda : 1.0f, bl = in->lambda;
  for (int n = 0; n < N; n++) {
    const float *gn = m->g + (size_t)n * C;
    int t0 = in->tokens[n] - m->v0;
    if (t0 >= 0 && t0 < Vl) {
      float *d = m->gv.embed + (size_t)t0 * C;
      if (in->alt) for (int c = 0; c < C; c++) d[c] += a * gn[c];
      else for (int c = 0; c < C; c++) d[c] += gn[c];
    }
    if (in->alt) {
      int t1 = in->alt[n] - m->v0;
      if (t1 >= 0 && t1 < Vl) {
        float *d = m->gv.embed + (size_t)t1 * C;
        for (int c = 0; c < C; c++) d[c] += bl * gn[c];
      }
    }
  }
  return IFT_OK;
}
