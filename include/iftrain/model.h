/* model — Llama-family decoder in fp32: token embedding, RMSNorm, RoPE,
 * causal grouped-query attention, SwiGLU MLP, final RMSNorm, LM head (tied
 * or untied).
 *
 * Written once for tensor parallelism, with TP = 1 as the degenerate case
 * (docs/architecture.md "The rank grid"): every rank holds a shard of every
 * weight (column-parallel QKV and gate/up, row-parallel O and down,
 * vocab-parallel embedding and LM head); with TP = 1 the shards are the
 * whole tensors and every collective is a no-op.  Parameters live in one
 * flat buffer; each tensor has a Hugging Face Llama state-dict name, its
 * global shape [out, in] (row-major) and the shard this rank holds.
 *
 * Token layout: B rows of T tokens, row-major (token t of row b at b*T + t).
 * logp[b*T + t] (t >= 1) is log softmax(logits at position t-1)[tokens[t]]:
 * the model at position t-1 predicts token t; logp[b*T] = 0. */
#ifndef IFTRAIN_MODEL_H
#define IFTRAIN_MODEL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MODEL_ROPE_DEFAULT, MODEL_ROPE_LINEAR, MODEL_ROPE_LLAMA3 } model_rope_type;

/* Hugging Face Llama config.json names. */
typedef struct {
  int vocab_size;
  int hidden_size;
  int intermediate_size;
  int num_hidden_layers;
  int num_attention_heads;
  int num_key_value_heads;
  int max_position_embeddings;
  int tie_word_embeddings;
  double rms_norm_eps;
  double rope_theta;
  /* Width of one attention head; 0: hidden_size / num_attention_heads (the
   * usual Llama layout; Hugging Face's config.json may give another). */
  int head_dim;
  /* RoPE frequency scaling (Hugging Face rope_scaling): none, linear
   * (every inverse frequency divided by factor) or llama3 (long
   * wavelengths divided by factor, short kept, a blend between, given by
   * the low/high frequency factors and the original context length). */
  model_rope_type rope_type;
  double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
  int rope_original_max_position_embeddings;
  /* Mistral's sliding-window attention: 0 = none.  The model computes full
   * causal attention, which is the same within the window: sequences
   * longer than the window are refused. */
  int sliding_window;
  uint64_t init_seed;
} model_config;

/* The head width of C: head_dim, or hidden_size / num_attention_heads. */
int model_head_dim(const model_config *c);
/* RoPE inverse frequencies of C (head_dim / 2 floats), computed in fp32
 * with the operations and roundings of transformers' rope initialisation
 * (default, linear and llama3), so that angles agree with Hugging Face's. */
void model_rope_inv_freq(const model_config *c, float *out);

/* The default model of the shipped job (small, trains in minutes on 2 cores). */
model_config model_config_default(void);
/* The architecture keys in which A (a checkpoint's or file's) differs from
 * B (the configured model), as "key = a (configured b), ..." in OUT
 * (truncated to CAP); the number of differences.  The RoPE scaling factors
 * count only for the scaling type that uses them. */
int model_config_diff(const model_config *a, const model_config *b, char *out, size_t cap);
/* Check the dimensions (and divisibility by tp); IFT_ERR_CONFIG or
 * IFT_ERR_LAYOUT with a hint naming the key to change. */
ift_status model_config_check(const model_config *c, int tp);

/* How a tensor is split over TP ranks: SHARD_2D is one block of the pr x pc
 * grid of the 2D mode (row0/col0/lrows/lcols give it, like the 1D splits). */
typedef enum { SHARD_NONE, SHARD_ROWS, SHARD_COLS, SHARD_2D } model_shard;

typedef struct {
  char name[96];     /* HF state-dict name */
  int rows, cols;    /* global shape [out, in]; vectors have cols = 1 */
  int lrows, lcols;  /* this rank's shard */
  int row0, col0;    /* offset of the shard (of its first block) in the global tensor */
  /* The shard is (lrows / rblk) x (lcols / cblk) blocks of rblk x cblk,
   * block (i, j) at global (row0 + i rstep, col0 + j cstep): one block for
   * the 1D splits and the default 2D layout, several for a block-cyclic 2D
   * layout (dist.tp_block). */
  int rblk, cblk, rstep, cstep;
  model_shard shard;
  size_t offset;     /* into the flat parameter buffer */
  int decay;         /* 1 for matrices (weight decay), 0 for norms */
} model_tensor;

/* Global row of local row r and global column of local column c of a shard. */
static inline int model_tensor_grow(const model_tensor *t, int r) {
  return t->row0 + (r / t->rblk) * t->rstep + r % t->rblk;
}
static inline int model_tensor_gcol(const model_tensor *t, int c) {
  return t->col0 + (c / t->cblk) * t->cstep + c % t->cblk;
}

/* Per-layer views into the flat buffers (parameters or gradients). */
typedef struct {
  float *ln1;  /* input_layernorm.weight        [C]                       */
  float *qkv;  /* q_proj, k_proj, v_proj shards, contiguous: [(Hl+2Kl)D, C] */
  float *o;    /* o_proj shard                  [C, Hl*D]                  */
  float *ln2;  /* post_attention_layernorm      [C]                       */
  float *gu;   /* gate_proj, up_proj shards, contiguous: [2Fl, C]          */
  float *down; /* down_proj shard               [C, Fl]                   */
} model_layer_view;

typedef struct {
  float *embed;  /* embed_tokens shard [Vl, C] */
  float *norm;   /* model.norm [C]            */
  float *head;   /* lm_head shard [Vl, C] (== embed when tied) */
  model_layer_view *layers;
} model_view;

typedef struct model model;

/* Build the model for micro-batches of up to B rows of up to T tokens on
 * the TP communicator `tp` (MPI_COMM_SELF or MPI_COMM_NULL for TP = 1).
 * Allocates parameters, gradients and the activation arena once. */
ift_status model_create(model **out, const model_config *cfg, MPI_Comm tp, int B, int T);
/* The same with tensor parallelism in 2D mode (dist.tp_mode = 2d) on a
 * pr x pc BLACS grid over `tp` (pr * pc = TP size; pr = pc = 0: 1D mode),
 * weight blocks of nb (dist.tp_block, below).
 * The block matrices (q/k/v/o, gate/up/down) are distributed over the grid
 * and multiplied with PBLAS psgemm; attention runs head-parallel, the
 * embedding and LM head vocab-parallel, as in 1D. */
ift_status model_create_grid(model **out, const model_config *cfg, MPI_Comm tp, int pr, int pc,
                             int nb, int B, int T);
/* Activation recomputation (train.recompute): NONE keeps every layer's
 * activations from forward to backward; LAYER keeps only each layer's input
 * (the residual stream) and one layer's activations, and recomputes each
 * layer's forward just before its backward (the same arithmetic, so the
 * same gradients bit for bit, at about one more forward of the layers). */
typedef enum { MODEL_RECOMPUTE_NONE, MODEL_RECOMPUTE_LAYER } model_recompute;
ift_status model_create_opt(model **out, const model_config *cfg, MPI_Comm tp, int pr, int pc, int nb,
                            int B, int T, model_recompute rc);
/* nb = 0: one block per process (block = extent / grid dimension, the
 * fastest here); nb > 0: weights block-cyclic in nb x nb blocks (activations
 * keep one block per process).  Grid dimensions (times nb) must divide
 * hidden_size, the KV width and intermediate_size. */
ift_status model_grid_check(const model_config *c, int pr, int pc, int nb);
void model_destroy(model *m);

/* Deterministic initialisation: N(0, 0.02) with o_proj and down_proj scaled
 * by 1/sqrt(2 L), norms 1.  Each global element is drawn from its own
 * counter (seed, tensor, index), so every TP layout gets the same weights. */
void model_init_weights(model *m, uint64_t seed);

const model_config *model_cfg(const model *m);
int model_tp_rank(const model *m);
int model_tp_size(const model *m);
/* 2D grid of the model (0 x 0 in 1D mode). */
void model_tp_grid(const model *m, int *pr, int *pc);
size_t model_nparams(const model *m); /* local (this rank's shard) */
size_t model_nparams_global(const model *m);
float *model_params(model *m);
float *model_grads(model *m);
int model_ntensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);
const model_tensor *model_tensor_find(const model *m, const char *name);
model_view model_params_view(model *m);
model_view model_grads_view(model *m);
/* Bytes of the activation arena (for the memory report). */
size_t model_activation_bytes(const model *m);
/* FLOPs of one forward over B x T tokens (matmuls incl. causal attention). */
double model_forward_flops(const model *m, int B, int T);

/* Input embedding of a forward pass: tokens, or for IFT the blend
 * (1-lambda) E[tokens] + lambda E[alt] with alt = the replaced tokens. */
typedef struct {
  const int *tokens;  /* B,T: inputs and (shifted) targets */
  const int *alt;     /* B,T or NULL: IFT's x~ */
  float lambda;       /* blend weight of alt */
  int embed_grad;     /* 0: no gradient into the input lookups (IFT
                         reference: frozen copy of the table) */
  const int *pos;     /* B,T or NULL: packed rows — position of each token in
                         its document (0 starts a document; a document
                         attends only to itself); NULL: t.  Must stay valid
                         until model_backward. */
} model_input;

/* Forward.  logp (B,T) receives per-token target log-probs (see top).
 * argmax (B,T), if not NULL, receives the greedy prediction at each
 * position (ties -> lowest id; under TP the global argmax).  With
 * keep = 0 no activations are kept for backward (intuition pass). */
ift_status model_forward(model *m, float *logp, int *argmax, const model_input *in, int B,
                         int T, int keep);
/* Backward of the last keep = 1 forward, given dlogp (B,T) = dL/dlogp;
 * ACCUMULATES into the gradient buffer. */
ift_status model_backward(model *m, const float *dlogp, int B, int T);

/* ---- generation with a key/value cache (1D layouts: TP 1 and 1D TP)
 * model_kv_enable allocates the cache (layers x B x T x key/value heads x
 * head width, twice) for the model's planned B x T; IFT_ERR_UNIMPL in the 2D
 * mode (generation then runs full forwards).  While enabled, every
 * model_forward also stores each layer's keys (after RoPE) and values of
 * all its positions (the prefill).  model_decode then runs one new token
 * per row: row b's token tok[b] at position pos[b] (< T; the cache holds
 * that row's positions 0 .. pos[b] - 1 from the prefill or earlier decodes),
 * its keys and values go into the cache at pos[b], and next[b] is the
 * greedy next token (ties -> lowest id; under TP the global argmax), the
 * same as model_forward's argmax at that position up to float rounding. */
ift_status model_kv_enable(model *m);
/* Free the cache: forwards store no keys and values again (training after
 * an evaluation; packed inputs are refused while the cache is on). */
void model_kv_disable(model *m);
/* 1 when model_kv_enable can work in this layout (not the 2D mode). */
int model_kv_supported(const model *m);
ift_status model_decode(model *m, const int *tok, const int *pos, int B, int *next);
/* With next = NULL model_decode skips the greedy head: model_logits then
 * gives the distribution of each row.
 * model_logits: the full next-token logits (V floats, every rank gets all
 * of them: the vocab-parallel shards gathered over TP) of row n of the last
 * model_forward (n = b*T + t: position t of row b predicts t + 1) or
 * model_decode (n = b).  One [1, C] x [C, V/TP] product and an all-gather;
 * works in every layout, the 2D mode included.  A collective over the TP
 * ranks. */
ift_status model_logits(model *m, float *logits /* V */, int n);

void model_zero_grads(model *m);

#ifdef __cplusplus
}
#endif
#endif
