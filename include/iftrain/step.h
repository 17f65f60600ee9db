/* step — one micro-batch of a training objective on the model: the passes
 * each loss needs, the loss, and the backward (docs/ift.md "One IFT micro-batch").
 * Gradients ACCUMULATE into the model's gradient buffer, scaled so that the
 * sum over micro-batches and data-parallel ranks is the gradient of the
 * global-batch mean. */
#ifndef IFTRAIN_STEP_H
#define IFTRAIN_STEP_H

#include <stdint.h>

#include "iftrain/dist.h"
#include "iftrain/loss.h"
#include "iftrain/model.h"
#include "iftrain/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  loss_kind kind;      /* any loss_kind (preference kinds: step_pairs) */
  loss_ift_opts ift;   /* weighting options */
  int embed_grad;      /* ift.embed_grad */
  loss_pref_opts pref; /* DPO, IPO, ORPO, SimPO */
} step_cfg;

/* Scratch of one micro-batch, allocated once (the packed losses' document
 * view grows on demand). */
typedef struct {
  int B, T;
  float *logp, *dlogp;
  int *argmax, *alt;
  size_t vcap;           /* floats of the document view */
  float *vlogp, *vdlogp; /* [documents, longest document] */
  uint8_t *vmask;
  size_t lcap;   /* doubles of the IFT loss's scratch */
  double *lscr;  /* LOSS_IFT_SCRATCH of the largest view */
} step_ws;

/* One document of a packed micro-batch: tokens [start, start + len) of row
 * `row`. */
typedef struct {
  int row, start, len;
} step_doc;

/* A packed micro-batch (train.packing): several documents per row, each
 * with positions restarting at 0 (model_input.pos) and attending only to
 * itself.  The losses see the documents as the rows they would be
 * unpacked, in the order of docs: for SFT and IFT one per sequence, for the
 * preference losses the n chosen answers then the n rejected ones (pair i =
 * docs i and n + i).  Every per-sequence quantity of docs/ift.md (λ blend, token
 * weights, normalisation) is per document. */
typedef struct {
  const int *pos; /* B,T */
  const step_doc *docs;
  int ndocs;
} step_pack;

ift_status step_ws_create(step_ws *w, int B, int T);
/* Grow the scratch a micro-batch of B x T (packed: pk) needs beyond the
 * fixed buffers (the packed loss view, the IFT loss's scratch), so that a
 * rank short of memory fails before the micro-batch's collectives, where
 * the failure can be agreed; the step functions call it too (a no-op then). */
ift_status step_ws_reserve(step_ws *w, const step_pack *pk, int B, int T);
void step_ws_destroy(step_ws *w);

/* IFT steps 1-3: from the greedy predictions of the intuition pass
 * (argmax[b,t] predicts token t+1) build x~: answer slots take the
 * prediction of the previous position, prompt slots keep their token. */
void step_replace_answers(int *alt /* B,T */, const int *tokens, const int *argmax,
                          const uint8_t *mask, int B, int T);

/* Run the objective on B rows of T tokens and accumulate gradients
 * (backward = 0: forward and loss only, e.g. evaluation).  n_global is the
 * number of sequences the loss is averaged over (global batch).  lambda is
 * this step's λ (from the scheduler).  Metrics are added into *met. */
ift_status step_microbatch(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                           const uint8_t *mask, int B, int T, double n_global, float lambda,
                           const step_cfg *cfg, int backward);
/* The same on packed rows (pk NULL: unpacked, = step_microbatch). */
ift_status step_microbatch_packed(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                                  const uint8_t *mask, int B, int T, const step_pack *pk,
                                  double n_global, float lambda, const step_cfg *cfg, int backward);

/* Preference objectives on B pairs: tokens and mask are [2B, T] (rows
 * 0..B-1 prompt + chosen answer, rows B..2B-1 prompt + rejected answer),
 * ref [B, 2] the cached reference log-probs (NULL for ORPO and SimPO).  One
 * forward (and backward) over the 2B rows; w needs room for 2B rows and the
 * model's activations for 2B rows.  n_global = pairs in the global batch. */
ift_status step_pairs(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                      const uint8_t *mask, int B, int T, const float *ref, double n_global,
                      const step_cfg *cfg, int backward);
/* The same on R packed rows holding 2 * pk->ndocs / 2 documents (pk NULL:
 * unpacked, R = 2B). */
ift_status step_pairs_packed(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                             const uint8_t *mask, int R, int T, const step_pack *pk, const float *ref,
                             double n_global, const step_cfg *cfg, int backward);

/* Forward only: the summed answer log-prob of each of R rows (out[R]). */
ift_status step_answer_logp(model *m, step_ws *w, double *out, const int *tokens,
                            const uint8_t *mask, int R, int T);

/* ------------------------------------------------- one optimizer step
 * The step `train` runs — micro-batches, data-parallel gradient reduce,
 * gradient norm and clipping, optimizer, ZeRO-1 — as one function that the
 * benchmarks (bench step, bench scaling) call too. */

/* ZeRO-1 (optim.zero = 1): data-parallel rank r owns the slice
 * [displs[r], displs[r] + counts[r]) of the flat parameter buffer; it keeps
 * the optimizer state of that slice only, receives the gradient of that
 * slice by a reduce-scatter and broadcasts its updated parameters by an
 * all-gather (the same traffic as one all-reduce).  Without ZeRO the slice
 * is the whole buffer. */
typedef struct {
  int on;
  size_t lo, n; /* this rank's slice */
  int *counts, *displs;
  float *full_m, *full_v; /* whole-buffer optimizer moments, for checkpoints */
} step_zero;

ift_status step_zero_create(step_zero *z, int on, size_t nparams, const dist_grid *g);
void step_zero_destroy(step_zero *z);
/* The whole-buffer view of a sliced optimizer state (checkpoint I/O):
 * gather = 1 fills it from every rank's slice. */
ift_status step_zero_full_view(step_zero *z, optim_state *opt, optim_state *view, size_t nparams,
                               const dist_grid *grid, int gather);

/* One micro-batch as the caller's loader delivers it. */
typedef struct {
  int rows, T;          /* model rows (pairs: 2 per pair unpacked) and tokens; rows 0: none here */
  const int *tokens;
  const uint8_t *mask;
  const step_pack *pk;  /* NULL: unpacked */
  const float *ref;     /* pairs: reference log-probs or NULL */
  double n_global;      /* sequences (pairs) the loss is averaged over */
} step_mb;

/* Load micro-batch k (< nmb) of this rank; rows = 0 when this rank has
 * fewer.  *ntok and *slots accumulate real tokens and token slots.  A
 * failure is agreed over the world before the step's collectives. */
typedef ift_status (*step_loader)(void *ctx, int k, step_mb *mb, long *ntok, long *slots);

typedef struct {
  long step;          /* 0-based, for messages */
  int nmb;            /* micro-batches of the step (the most any rank has) */
  float lambda;       /* IFT's λ of the step */
  double lr, clip;    /* clip <= 0: none */
  double n_global;    /* global batch: the loss mean's denominator */
} step_opts;

typedef struct {
  loss_metrics met;   /* summed over the grid (each TP group once) */
  double tokens, slots; /* real tokens and token slots computed, summed */
  double loss;        /* met.loss_sum / n_global */
  double grad_norm;   /* before clipping */
} step_report;

/* Zero the gradients, run nmb micro-batches from load, reduce the gradient
 * over the data-parallel ranks (z: reduce-scatter of the slices), the
 * gradient norm over the grid, refuse a non-finite loss or norm (naming the
 * first tensor with a non-finite gradient; every rank returns
 * IFT_ERR_NUMERIC, nothing updated), clip, optimizer step on the slice,
 * all-gather the slices. */
ift_status step_optimizer(model *m, step_ws *w, optim_state *opt, step_zero *z, const dist_grid *g,
                          const step_cfg *cfg, const step_opts *o, step_loader load, void *ctx,
                          step_report *rep);

#ifdef __cplusplus
}
#endif
#endif
