/* attn — causal self-attention of one (sequence, head), tiled with an online
 * softmax (the FlashAttention algorithm): the T x T probabilities never
 * exist.  The forward keeps the output and one log-sum-exp per row; the
 * backward recomputes the probabilities block by block from them.  Key
 * blocks above the diagonal are skipped.  Row-major operands: row t of q,
 * k, v (leading dimension ld) is position t; o and dO share ldo; the
 * gradients dq, dk, dv have leading dimension ld too.  Not installed: the
 * model's internals. */
#ifndef IFTRAIN_ATTN_H
#define IFTRAIN_ATTN_H

#include <stddef.h>

/* Query and key block rows: 128 x 256 ran at 1.5-2x the rate of 64 x 64 on
 * a Zen 4 core (GEMMs with an inner dimension of one head width are small
 * for BLIS; bigger blocks amortise packing), within the L2 cache. */
enum { ATTN_BQ_DEFAULT = 128, ATTN_BK_DEFAULT = 256 };

/* Floats of scratch the functions below need. */
size_t attn_scratch_floats(void);

/* o = softmax(scale q k^T, causal) v; lse[t] = log sum_j exp(scale q_t.k_j). */
void attn_forward(const float *q, const float *k, const float *v, int ld, float *o, int ldo, float *lse,
                  int T, int D, float scale, float *scratch);

/* Gradients of attn_forward given dO: dq is written, dk and dv are ADDED to
 * (heads sharing a key/value head accumulate; zero them first). */
void attn_backward(const float *q, const float *k, const float *v, int ld, const float *o, const float *dO,
                   int ldo, const float *lse, float *dq, float *dk, float *dv, int T, int D, float scale,
                   float *scratch);

#endif
