/* kern — local compute kernels: BLIS GEMM wrappers, BLIS kernel-set selection
 * and calibration, and the fused elementwise kernels of the model with their
 * backward passes.
 *
 * Conventions
 *  - Activations are row-major: one row per token, N = B*T rows.
 *  - Backward kernels WRITE (=) activation gradients and ACCUMULATE (+=)
 *    parameter gradients (the caller zeroes parameter gradients once a step).
 *  - No kernel allocates memory or prints. */
#ifndef IFTRAIN_KERN_H
#define IFTRAIN_KERN_H

#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- BLIS arch */

/* BLIS 0.9 architecture ids (arch_t) as read from BLIS_ARCH_TYPE. */
enum {
  KERN_ARCH_SKX = 0,
  KERN_ARCH_KNL = 1,
  KERN_ARCH_HASWELL = 3,
  KERN_ARCH_ZEN3 = 6,
  KERN_ARCH_ZEN2 = 7,
  KERN_ARCH_ZEN = 8,
  KERN_ARCH_GENERIC = 25
};

/* Name of an arch id ("skx", "generic", ...), "unknown" otherwise. */
const char *kern_arch_name(int id);
/* Parse a name or a number; -1 if unknown. */
int kern_arch_parse(const char *s);

/* How the kernel set was chosen. */
typedef enum {
  KERN_SEL_ENV,    /* BLIS_ARCH_TYPE was set by the user          */
  KERN_SEL_OPTION, /* --kernels=NAME                              */
  KERN_SEL_CPUID,  /* CPU flags decided                           */
  KERN_SEL_PROBE   /* a calibration run in child processes        */
} kern_sel_how;

/* Decide the BLIS kernel set BEFORE the first BLIS call and export it in
 * BLIS_ARCH_TYPE.  `request` is NULL/"auto", a name, or an id.  Precedence:
 * request != auto > BLIS_ARCH_TYPE in the environment > CPU flags.
 * Must be called before MPI_Init's first BLIS use and before any GEMM. */
ift_status kern_select_arch(const char *request);
/* The id chosen, the id BLIS actually runs (after bli_init), and why. */
int kern_arch_selected(void);
int kern_arch_active(void);
kern_sel_how kern_arch_how(void);
const char *kern_sel_how_str(kern_sel_how h);
/* BLIS's default choice on this CPU if nothing were set (from CPU flags). */
int kern_arch_blis_default(void);

/* Threads used by BLIS inside this rank. */
void kern_set_threads(int n);
int kern_threads(void);
const char *kern_blis_version(void);

/* ---------------------------------------------------------------- GEMM */

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose if t*.
 * lda/ldb/ldc are row strides in elements. */
void kern_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Measured single-core sgemm peak in GFLOP/s (1024^3, best of 16 runs);
 * memoised after the first call.  Used as the MFU denominator.  The
 * environment variable IFT_GEMM_PEAK (GFLOP/s) replaces the measurement. */
double kern_gemm_peak(void);
/* Measure again and keep the larger: a benchmark calls it after its runs
 * so that a start-up measurement slowed by another process does not
 * inflate MFU. */
double kern_gemm_peak_remeasure(void);
double kern_gemm_gflops(int n, int reps, int threads);

/* ---------------------------------------------------------------- RMSNorm */

/* out = x * rstd * w,  rstd = 1/sqrt(mean(x^2) + eps) saved per row. */
void kern_rmsnorm_forward(float *out /* N,C */, float *rstd /* N */,
                          const float *x /* N,C */, const float *w /* C */, int N,
                          int C, float eps);
/* dx = d/dx (written), dw += d/dw. */
void kern_rmsnorm_backward(float *dx /* N,C */, float *dw /* C */,
                           const float *dout /* N,C */, const float *x /* N,C */,
                           const float *w /* C */, const float *rstd /* N */, int N,
                           int C);

/* ---------------------------------------------------------------- RoPE */

/* Hugging Face Llama convention ("rotate_half"): for head dim D, element i
 * (i < D/2) pairs with i + D/2; angle = pos * inv_freq[i] (inv_freq[i] =
 * theta^(-2i/D) without scaling: model_rope_inv_freq).  The angle is
 * rounded to fp32 as Hugging Face computes it, then cos/sin in double,
 * rounded once.  Tables are [T, D/2]. */
void kern_rope_table(float *cosv /* T,D/2 */, float *sinv /* T,D/2 */, int T, int D,
                     const float *inv_freq /* D/2 */);
/* Rotate in place H heads of dim D in each of B*T rows; head h of row r starts
 * at x + r*ld + h*D.  Position of row r is pos[r] (< the table's T), or r % T
 * when pos is NULL (packed sequences restart positions per document). */
void kern_rope_forward(float *x, const float *cosv, const float *sinv, int B, int T,
                       int H, int D, int ld, const int *pos);
/* Adjoint (inverse rotation) in place: turns d(out) into d(in). */
void kern_rope_backward(float *dx, const float *cosv, const float *sinv, int B, int T,
                        int H, int D, int ld, const int *pos);

/* ---------------------------------------------------------------- SwiGLU */

/* out[r,j] = silu(gate[r,j]) * up[r,j];  gate and up rows have stride ld_in. */
void kern_swiglu_forward(float *out /* N,F */, const float *gate, const float *up,
                         int N, int F, int ld_in);
/* dgate, dup written (stride ld_in); may not alias gate/up. */
void kern_swiglu_backward(float *dgate, float *dup, const float *dout /* N,F */,
                          const float *gate, const float *up, int N, int F, int ld_in);

/* ---------------------------------------------------------------- softmax */

/* Row softmax of scale*s for `rows` rows of stride ld.  Row r uses only its
 * first n_valid = min(cols, valid0 + r + 1) columns (causal; valid0 = cols
 * disables masking); the remaining columns are set to 0.  p may alias s. */
void kern_softmax_forward(float *p, const float *s, int rows, int cols, int ld,
                          float scale, int valid0);
/* ds = scale * p * (dp - sum_j dp_j p_j); ds may alias dp. */
void kern_softmax_backward(float *ds, const float *dp, const float *p, int rows,
                           int cols, int ld, float scale, int valid0);

/* Tiled (online-softmax) attention, one block of scores s [rows, cols]
 * (leading dimension ld) of query rows against a block of keys; row r sees
 * the first n_valid = valid0 + r + 1 columns (all when that exceeds cols).
 * Forward: with the running row max m and sum l of the earlier key blocks
 * (m = -inf, l = 0 before the first), s becomes p = exp(scale*s - m_new)
 * (0 past the valid columns), corr[r] = exp(m_old - m_new) is the factor the
 * output accumulated so far must be multiplied by, and m, l are updated. */
void kern_attn_block_forward(float *s, int rows, int cols, int ld, float scale, int valid0,
                             float *m, float *l, float *corr);
/* Backward: p = exp(scale*s - lse[r]) into s (0 past the valid columns),
 * and dp becomes ds = scale * p * (dp - delta[r]) (delta = rowsum(dO * O)). */
void kern_attn_block_backward(float *s, float *dp, int rows, int cols, int ld, float scale,
                              int valid0, const float *lse, const float *delta);

/* ---------------------------------------------------------------- cross-entropy */

/* Per-row statistics of a (possibly vocab-sharded) logits block holding vocab
 * ids [v0, v0+V).  Outputs per row: max, sum(exp(x - max)), the logit of the
 * target if it lies in this shard (else -INFINITY), and the argmax as a global
 * id (lowest id on ties).  Any output pointer may be NULL. */
void kern_ce_stats(float *rowmax /* N */, float *sumexp /* N */, float *tgt /* N */,
                   int *argmax /* N */, const float *logits /* N,V */,
                   const int *targets /* N */, int N, int V, int ld, int v0);
/* dlogits[r,v] = dlogp[r] * (1[v == target_r] - exp(logits[r,v] - lse[r])).
 * dlogits may alias logits.  Rows with dlogp == 0 are written as zeros. */
void kern_ce_backward(float *dlogits /* N,V */, const float *logits /* N,V */,
                      const float *lse /* N */, const int *targets /* N */,
                      const float *dlogp /* N */, int N, int V, int ld, int v0);

#ifdef __cplusplus
}
#endif
#endif
