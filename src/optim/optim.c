/* Optimizers with PyTorch 1.13 semantics (torch.optim.AdamW, RMSprop, SGD),
 * learning-rate schedules and clip factors. */
#include "iftrain/optim.h"

#include <math.h>
#include <string.h>

optim_cfg optim_defaults(optim_kind k) {
  optim_cfg c;
  memset(&c, 0, sizeof c);
  c.kind = k;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.alpha = 0.99;
  c.eps = 1e-8;
  c.schedule = LR_CONSTANT;
  switch (k) {
  case OPTIM_ADAMW: c.lr = 1e-3; c.weight_decay = 1e-2; break;
  case OPTIM_RMSPROP: c.lr = 1e-2; break;
  case OPTIM_SGD: c.lr = 1e-3; break;
  }
  return c;
}

static const char *const kind_names[] = {"adamw", "rmsprop", "sgd"};
static const char *const sched_names[] = {"constant", "linear", "cosine"};
const char *optim_kind_name(optim_kind k) { return (unsigned)k < 3 ? kind_names[k] : "?"; }
const char *lr_sched_name(lr_sched s) { return (unsigned)s < 3 ? sched_names[s] : "?"; }
int optim_kind_parse(const char *s, optim_kind *out) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, kind_names[i])) { *out = (optim_kind)i; return 0; }
  return -1;
}
int lr_sched_parse(const char *s, lr_sched *out) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, sched_names[i])) { *out = (lr_sched)i; return 0; }
  return -1;
}

ift_status optim_create(optim_state *s, const optim_cfg *cfg, size_t n) {
  memset(s, 0, sizeof *s);
  s->cfg = *cfg;
  s->n = n;
  int need_m = cfg->kind == OPTIM_ADAMW || cfg->momentum != 0.0;
  int need_v = cfg->kind != OPTIM_SGD;
  if (need_m) s->m = core_alloc(n * sizeof(float));
  if (need_v) s->v = core_alloc(n * sizeof(float));
  IFT_REQUIRE((!need_m || s->m) && (!need_v || s->v), IFT_ERR_NOMEM,
              "use optim.zero = 1 or more ranks", "no memory for the state of %zu parameters", n);
  return IFT_OK;
}

void optim_destroy(optim_state *s) {
  core_free(s->m);
  core_free(s->v);
  memset(s, 0, sizeof *s);
}

void optim_step(optim_state *s, float *restrict p, const float *restrict g, double lr) {
  const size_t n = s->n;
  const optim_cfg *c = &s->cfg;
  float *restrict m = s->m, *restrict v = s->v;
  s->t++;
  switch (c->kind) {
  case OPTIM_ADAMW: {
    /* p ← p(1 − lr·wd); m,v ← EMA; p ← p − lr·m̂/(√v̂ + eps) */
    const float decay = (float)(1.0 - lr * c->weight_decay);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const double bc1 = 1.0 - pow(c->beta1, (double)s->t), bc2 = 1.0 - pow(c->beta2, (double)s->t);
    const float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2)), eps = (float)c->eps;
    for (size_t i = 0; i < n; i++) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] = p[i] * decay - step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
    break;
  }
  case OPTIM_RMSPROP: {
    /* g ← g + wd·p; v ← αv + (1−α)g²; p ← p − lr·g/(√v + eps) (momentum:
     * buf ← μ·buf + g/(√v + eps), p ← p − lr·buf) */
    const float a = (float)c->alpha, wd = (float)c->weight_decay, eps = (float)c->eps;
    const float mu = (float)c->momentum, flr = (float)lr;
    for (size_t i = 0; i < n; i++) {
      float gi = g[i] + wd * p[i];
      v[i] = a * v[i] + (1.0f - a) * gi * gi;
      float u = gi / (sqrtf(v[i]) + eps);
      if (m) {
        m[i] = mu * m[i] + u;
        u = m[i];
      }
      p[i] -= flr * u;
    }
    break;
  }
  case OPTIM_SGD: {
    /* g ← g + wd·p; buf ← μ·buf + g (buf = g on the first step); p ← p − lr·buf */
    const float wd = (float)c->weight_decay, mu = (float)c->momentum, flr = (float)lr;
    const int first = s->t == 1;
    for (size_t i = 0; i < n; i++) {
      float gi = g[i] + wd * p[i];
      if (m) {
        m[i] = first ? gi : mu * m[i] + gi;
        gi = m[i];
      }
      p[i] -= flr * gi;
    }
    break;
  }
  }
}

double optim_lr_at(const optim_cfg *c, long step, long total) {
  long W = c->warmup < 1.0 ? (long)llround(c->warmup * (double)total) : (long)llround(c->warmup);
  if (step < W) return c->lr * (double)(step + 1) / (double)W;
  long rest = total - W;
  if (rest <= 0) return c->lr;
  double prog = (double)(step - W) / (double)rest;
  if (prog > 1) prog = 1;
  switch (c->schedule) {
  case LR_LINEAR: return c->lr * (1.0 - prog);
  case LR_COSINE: return c->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * prog));
  case LR_CONSTANT: break;
  }
  return c->lr;
}

double optim_sqnorm(const float *g, size_t n) {
  /* float lanes in blocks, summed in double: vectorised and accurate */
  double s = 0;
  for (size_t i = 0; i < n; i += 4096) {
    size_t e = i + 4096 < n ? i + 4096 : n;
    float b = 0.0f;
    for (size_t j = i; j < e; j++) b += g[j] * g[j];
    s += b;
  }
  return s;
}

double optim_clip_factor(double norm, double clip) {
  if (clip <= 0) return 1.0;
  double f = clip / (norm + 1e-6);
  return f < 1.0 ? f : 1.0;
}

void optim_scale(float *g, size_t n, float s) {
  for (size_t i = 0; i < n; i++) g[i] *= s;
}
