/* optim — optimizers with PyTorch's semantics and defaults, learning-rate
 * schedules and gradient-norm clipping.
 *
 * The optimizer works on a contiguous range of a flat parameter buffer, so
 * the same code serves a full replica and a ZeRO-1 shard (offset, n). */
#ifndef IFTRAIN_OPTIM_H
#define IFTRAIN_OPTIM_H

#include <stddef.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { OPTIM_ADAMW, OPTIM_RMSPROP, OPTIM_SGD } optim_kind;
typedef enum { LR_CONSTANT, LR_LINEAR, LR_COSINE } lr_sched;

typedef struct {
  optim_kind kind;
  double lr;
  double weight_decay; /* AdamW: decoupled; RMSprop/SGD: L2 added to grad (PyTorch) */
  double beta1, beta2; /* AdamW */
  double alpha;        /* RMSprop smoothing (PyTorch default .99) */
  double eps;          /* added outside the square root */
  double momentum;     /* RMSprop, SGD */
  double clip;         /* max global grad norm; 0 = off */
  lr_sched schedule;
  double warmup;       /* < 1: fraction of total steps; >= 1: steps */
} optim_cfg;

/* PyTorch defaults for a kind: AdamW lr 1e-3 betas (.9,.999) eps 1e-8 wd 1e-2;
 * RMSprop lr 1e-2 alpha .99 eps 1e-8 wd 0 momentum 0; SGD lr 1e-3 momentum 0.
 * Schedule constant, warm-up 0, clip 0. */
optim_cfg optim_defaults(optim_kind k);
const char *optim_kind_name(optim_kind k);
int optim_kind_parse(const char *s, optim_kind *out); /* 0 ok, -1 unknown */
const char *lr_sched_name(lr_sched s);
int lr_sched_parse(const char *s, lr_sched *out);

typedef struct {
  optim_cfg cfg;
  size_t n;   /* parameters this state covers */
  long t;     /* optimizer steps taken (AdamW bias correction) */
  float *m;   /* AdamW first moment | SGD/RMSprop momentum buffer (or NULL) */
  float *v;   /* AdamW second moment | RMSprop square average (or NULL) */
} optim_state;

ift_status optim_create(optim_state *s, const optim_cfg *cfg, size_t n);
void optim_destroy(optim_state *s);

/* One update of params[0..n) with grads[0..n) at learning rate lr (already
 * scheduled).  Increments s->t. */
void optim_step(optim_state *s, float *params, const float *grads, double lr);

/* Learning rate at optimizer step `step` (0-based) of `total` steps:
 * linear warm-up from 0 over W steps, then constant / linear decay to 0 /
 * cosine decay to 0 over the remaining steps. */
double optim_lr_at(const optim_cfg *cfg, long step, long total);

/* Sum of squares in double (the caller all-reduces it across ranks). */
double optim_sqnorm(const float *g, size_t n);
/* Clip factor for a global norm: min(1, clip / (norm + 1e-6)) as PyTorch's
 * clip_grad_norm_; 1 when clip == 0. */
double optim_clip_factor(double norm, double clip);
void optim_scale(float *g, size_t n, float s);

#ifdef __cplusplus
}
#endif
#endif
