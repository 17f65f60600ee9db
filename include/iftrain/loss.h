/* loss — training objectives on per-token log-probabilities.
 *
 * Every loss takes the log-probability of each target token, logp[b*T + t]
 * (the model at position t-1 predicting token t; position 0 has no
 * prediction and must have mask 0), and the response mask m[b*T + t] (1 on
 * answer tokens).  It returns the loss CONTRIBUTION of its B rows to the
 * global-batch mean, i.e. sum_b L_b / n_global, and writes
 * dlogp = d(contribution)/d(logp), so one model backward serves every loss
 * and the sum over micro-batches and DP ranks is the exact global gradient.
 *
 * The math is done in double; inputs and outputs are float (the model's).
 * Reference: docs/ift.md (section names below refer to it). */
#ifndef IFTRAIN_LOSS_H
#define IFTRAIN_LOSS_H

#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOSS_SFT, LOSS_IFT, LOSS_DPO, LOSS_IPO, LOSS_ORPO, LOSS_SIMPO } loss_kind;
const char *loss_kind_name(loss_kind k);
int loss_kind_parse(const char *s, loss_kind *out); /* 0 ok, -1 unknown */

typedef enum { IFT_SIDE_LEFT, IFT_SIDE_RIGHT } ift_side;
typedef enum { IFT_VALUE_LOSS, IFT_VALUE_MASK } ift_value;
typedef enum { IFT_NORM_L1, IFT_NORM_L2, IFT_NORM_LOG, IFT_NORM_SOFTMAX } ift_norm;
typedef enum { IFT_MU_ROW, IFT_MU_BATCH } ift_right_mu;

typedef struct {
  double gamma;          /* discount; 0 = uniform weights (SFT weighting) */
  ift_side side;         /* left (suffix sums, default) | right (prefix sums) */
  ift_value value;       /* loss (default) | mask */
  ift_norm norm;         /* L1 (default) | L2 | log | softmax */
  ift_right_mu right_mu; /* row (default) | batch (reference) */
} loss_ift_opts;

/* Defaults of docs/ift.md: gamma .95, left, loss, L1, mu per row. */
loss_ift_opts loss_ift_defaults(void);

/* Metrics of one call (sums over its rows; the caller reduces). */
typedef struct {
  double loss_sum;     /* sum_b L_b (not divided by n_global) */
  double nll_sum;      /* sum_b mean answer NLL of row b (the SFT loss) */
  double tokens;       /* answer tokens */
  double rows;         /* rows with at least one answer token */
  double pref_correct; /* preference losses: pairs whose margin is > 0 */
  double margin_sum;   /* preference losses: sum of the pairs' margins */
} loss_metrics;

/* SFT: L_b = sum_t m ℓ / n_b.  Returns sum_b L_b / n_global.  dlogp may be
 * NULL (forward only). */
double loss_sft(float *dlogp /* B,T */, loss_metrics *met, const float *logp /* B,T */,
                const uint8_t *mask /* B,T */, int B, int T, double n_global);

/* IFT token-weighted loss (docs/ift.md "Token weights").  Weights are not detached: the
 * gradient flows through them.  gamma == 0 calls loss_sft (bit-identical).
 * w_out, if not NULL, receives the weights w[b,t] (0 off the answer).
 * With right_mu = batch the rows are coupled through mu, so call it with a
 * whole micro-batch.  scratch: LOSS_IFT_SCRATCH(B, T) doubles owned by the
 * caller (step_ws holds them for a training step; unused when gamma == 0),
 * so the loss allocates nothing and cannot fail. */
#define LOSS_IFT_SCRATCH(B, T) (6 * (size_t)(B) * (size_t)(T) + 3 * (size_t)(B))
double loss_ift(float *dlogp /* B,T */, float *w_out /* B,T */, loss_metrics *met,
                const float *logp /* B,T */, const uint8_t *mask /* B,T */, int B,
                int T, double n_global, const loss_ift_opts *o, double *scratch);

/* Double-precision core of loss_ift (tests, finite differences, Frozen
 * Lake); same semantics, including gamma == 0 = uniform weights, and the
 * same scratch (LOSS_IFT_SCRATCH(B, T) doubles). */
double loss_ift_d(double *dlogp, double *w_out, const double *logp,
                  const uint8_t *mask, int B, int T, double n_global,
                  const loss_ift_opts *o, double *scratch);

/* ---- preference objectives (docs/ift.md "The preference losses").  A pair is
 * scored by the summed answer log-probs of its chosen and rejected answers
 * under the policy (pc, pr) and the frozen reference (rc, rr; DPO and IPO
 * only) and by the answer lengths (nc, nr tokens):
 *   DPO    h = (pc - rc) - (pr - rr), z = beta h,
 *          L = -(1-eps) log s(z) - eps log s(-z)     (eps: label smoothing)
 *   IPO    h = (pc - rc)/nc - (pr - rr)/nr, L = (h - 1/(2 beta))^2
 *   ORPO   a = p/n (mean log-prob), lo(a) = a - log(1 - e^a),
 *          z = lo(ac) - lo(ar), L = -ac + beta (-log s(z))
 *   SimPO  z = beta pc/nc - beta pr/nr - gamma_s, gamma_s = ratio beta,
 *          L = -log s(z)
 * (s = logistic sigmoid).  Every L depends on the log-probs only through
 * pc and pr, so dL/dlogp[t] = m[t] dL/dpc on the chosen row (dL/dpr on the
 * rejected one). */
typedef struct {
  double beta;              /* DPO .1, IPO .1, ORPO .25, SimPO 2 (loss_pref_defaults) */
  double label_smoothing;   /* DPO: eps in [0, .5) */
  double simpo_gamma_ratio; /* SimPO: gamma_s / beta (.8) */
} loss_pref_opts;

/* docs/ift.md defaults of kind k (a preference kind). */
loss_pref_opts loss_pref_defaults(loss_kind k);
/* 1 for DPO and IPO (they need reference log-probs). */
int loss_pref_needs_ref(loss_kind k);
/* 1 for DPO, IPO, ORPO, SimPO. */
int loss_is_pref(loss_kind k);

typedef struct {
  double loss;     /* L of the pair */
  double d_c, d_r; /* dL/dpc, dL/dpr */
  double margin;   /* the implicit reward margin (> 0: chosen preferred):
                      DPO beta h, IPO h, ORPO z, SimPO z */
} loss_pair;

/* One pair, in double.  nc, nr > 0. */
loss_pair loss_pref_pair(loss_kind k, const loss_pref_opts *o, double pc, double pr, double rc,
                         double rr, double nc, double nr);

/* B pairs: logp and mask are [2B, T], rows 0..B-1 the chosen answers and
 * rows B..2B-1 the rejected ones (row b pairs with row B + b); ref is [B, 2]
 * (chosen, rejected) summed reference log-probs (NULL for ORPO and SimPO).
 * Returns sum_b L_b / n_global and writes dlogp (may be NULL), [2B, T].
 * Pairs with an empty chosen or rejected answer contribute nothing.
 * Metrics: loss_sum, nll_sum (mean answer NLL of the chosen row), tokens
 * (both rows), rows (pairs), pref_correct, margin_sum. */
double loss_pref(float *dlogp, loss_metrics *met, const float *logp, const uint8_t *mask, int B,
                 int T, const float *ref, double n_global, loss_kind k, const loss_pref_opts *o);

/* Summed answer log-probs of each row of a [R, T] batch (out[R]). */
void loss_answer_logp(double *out, const float *logp, const uint8_t *mask, int R, int T);

#ifdef __cplusplus
}
#endif
#endif
