/* attn — tiled causal attention with an online softmax (attn.h).
 *
 * Forward, per query block [r0, r1): for the key blocks [c0, c0 + kb) with
 * c0 < r1 (the blocks above the diagonal are never computed), S = q k^T,
 * then kern_attn_block_forward turns S into exp(scale S - m) with the
 * running row max m, rescales the running sum l, and gives the factor by
 * which the output accumulated so far is rescaled before O += P v.  At the
 * end O /= l and lse = m + log l.
 *
 * Backward, per query block: delta = rowsum(dO * O); per key block, P is
 * recomputed as exp(scale q k^T - lse), dP = dO v^T, dS = scale P (dP -
 * delta), and dv += P^T dO, dq += dS k, dk += dS^T q. */
#include "attn.h"

#include <math.h>
#include <string.h>

#include "iftrain/kern.h"

#ifndef ATTN_BQ /* -D for block-size experiments */
#define ATTN_BQ ATTN_BQ_DEFAULT
#endif
#ifndef ATTN_BK
#define ATTN_BK ATTN_BK_DEFAULT
#endif
enum { BQ = ATTN_BQ, BK = ATTN_BK };

size_t attn_scratch_floats(void) { return 2 * (size_t)BQ * BK + 4 * (size_t)BQ; }

void attn_forward(const float *q, const float *k, const float *v, int ld, float *o, int ldo, float *lse,
                  int T, int D, float scale, float *scratch) {
  float *S = scratch, *m = S + 2 * (size_t)BQ * BK, *l = m + BQ, *corr = l + BQ;
  for (int r0 = 0; r0 < T; r0 += BQ) {
    const int r1 = r0 + BQ < T ? r0 + BQ : T, rb = r1 - r0;
    float *O = o + (size_t)r0 * ldo;
    for (int r = 0; r < rb; r++) {
      m[r] = -INFINITY;
      l[r] = 0.0f;
    }
    for (int c0 = 0; c0 < r1; c0 += BK) {
      const int kb = c0 + BK < r1 ? BK : r1 - c0;
      kern_sgemm(0, 1, rb, kb, D, 1.0f, q + (size_t)r0 * ld, ld, k + (size_t)c0 * ld, ld, 0.0f, S, BK);
      kern_attn_block_forward(S, rb, kb, BK, scale, r0 - c0, m, l, corr);
      if (c0) /* the output so far, to the new row maxima */
        for (int r = 0; r < rb; r++) {
          float *orow = O + (size_t)r * ldo;
          const float f = corr[r];
          for (int d = 0; d < D; d++) orow[d] *= f;
        }
      kern_sgemm(0, 0, rb, D, kb, 1.0f, S, BK, v + (size_t)c0 * ld, ld, c0 ? 1.0f : 0.0f, O, ldo);
    }
    for (int r = 0; r < rb; r++) {
      float *orow = O + (size_t)r * ldo;
      const float f = 1.0f / l[r]; /* l >= 1: the maximum contributes exp(0) */
      for (int d = 0; d < D; d++) orow[d] *= f;
      lse[r0 + r] = m[r] + logf(l[r]);
    }
  }
}

void attn_backward(const float *q, const float *k, const float *v, int ld, const float *o, const float *dO,
                   int ldo, const float *lse, float *dq, float *dk, float *dv, int T, int D, float scale,
                   float *scratch) {
  float *S = scratch, *dS = S + (size_t)BQ * BK, *delta = dS + (size_t)BQ * BK;
  for (int r0 = 0; r0 < T; r0 += BQ) {
    const int r1 = r0 + BQ < T ? r0 + BQ : T, rb = r1 - r0;
    const float *dOb = dO + (size_t)r0 * ldo;
    for (int r = 0; r < rb; r++) {
      const float *a = dOb + (size_t)r * ldo, *b = o + (size_t)(r0 + r) * ldo;
      double s = 0.0;
      for (int d = 0; d < D; d++) s += (double)a[d] * b[d];
      delta[r] = (float)s;
    }
    for (int c0 = 0; c0 < r1; c0 += BK) {
      const int kb = c0 + BK < r1 ? BK : r1 - c0;
      kern_sgemm(0, 1, rb, kb, D, 1.0f, q + (size_t)r0 * ld, ld, k + (size_t)c0 * ld, ld, 0.0f, S, BK);
      kern_sgemm(0, 1, rb, kb, D, 1.0f, dOb, ldo, v + (size_t)c0 * ld, ld, 0.0f, dS, BK);
      kern_attn_block_backward(S, dS, rb, kb, BK, scale, r0 - c0, lse + r0, delta);
      kern_sgemm(1, 0, kb, D, rb, 1.0f, S, BK, dOb, ldo, 1.0f, dv + (size_t)c0 * ld, ld);
      kern_sgemm(0, 0, rb, D, kb, 1.0f, dS, BK, k + (size_t)c0 * ld, ld, c0 ? 1.0f : 0.0f, dq + (size_t)r0 * ld, ld);
      kern_sgemm(1, 0, kb, D, rb, 1.0f, dS, BK, q + (size_t)r0 * ld, ld, 1.0f, dk + (size_t)c0 * ld, ld);
    }
  }
}
