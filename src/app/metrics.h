/* metrics — what a training run reports (app layer, private to
 * src/app/train.c): the JSON lines of metrics.path, one object per step
 * and one per evaluation, and the FLOP accounting behind their mfu and
 * flops.  The records are built with jansson (src/app/metrics.c). */
#ifndef IFTRAIN_APP_METRICS_H
#define IFTRAIN_APP_METRICS_H

#include <stdio.h>

#include "app_train.h"
#include "iftrain/loss.h"
#include "iftrain/model.h"

/* ---- FLOP accounting (MFU and the records' flops) */
typedef struct {
  double per_token; /* training FLOPs per real token of a step: 3 forward
                       passes' worth (forward + backward), IFT 4 (its
                       intuition forward); pairs: of both rows, the
                       reference being cached */
  int ift;          /* IFT: with lambda = 0 the intuition pass is skipped */
  double peak;      /* GFLOP/s of the job: GEMM peak x threads x ranks */
  double run;       /* this run's training FLOPs so far */
} metrics_flops;

void metrics_flops_init(metrics_flops *f, const model *m, int seq_len, loss_kind kind, int ranks);
/* Count a step of `tokens` real tokens at `tokens_per_s`; returns its MFU
 * (model FLOPs utilisation, 0..1). */
double metrics_flops_step(metrics_flops *f, float lambda, double tokens, double tokens_per_s);

/* ---- records */
typedef struct {
  long step, epoch; /* step: the number of steps done (1 after the first) */
  double loss, nll, lr, lambda, grad_norm, tokens, tokens_per_s, fill, mfu, seconds, flops;
  int pref;                /* pref_acc and margin follow (pairs with rows) */
  double pref_acc, margin;
} metrics_step;

/* The metrics file of rank 0 (f NULL: none). */
typedef struct {
  FILE *f;
  const char *path;
  long lost; /* records that could not be written */
} metrics_file;

/* Open path for appending (creating its directory); an unwritable path is
 * IFT_ERR_IO, recorded.  An empty path: no file, IFT_OK. */
ift_status metrics_open(metrics_file *mf, const char *path);
/* Append a step's record, or an evaluation's (eval_loss, exact_match,
 * rouge_l, pref_acc on pair sets, flops).  A record that cannot be written (full disk) is counted, the
 * first one reported; training goes on.  No-ops without a file. */
void metrics_put_step(metrics_file *mf, const metrics_step *s);
void metrics_put_eval(metrics_file *mf, long step, const eval_result *r, double flops);
/* Close; warns when records were lost. */
void metrics_close(metrics_file *mf);

#endif
