/* Frozen Lake 4x4 and the four training methods of the IFT paper's
 * explainable experiment (include/iftrain/lake.h). */
#include "iftrain/lake.h"

#include "iftrain/optim.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char MAP[LAKE_N + 1] = "SFFFFHFHFFFHHFFG";

int lake_is_hole(int s) { return MAP[s] == 'H'; }
int lake_is_terminal(int s) { return MAP[s] == 'H' || MAP[s] == 'G'; }

int lake_step(int s, int a) {
  if (lake_is_terminal(s)) return s;
  int r = s / 4, c = s % 4;
  switch (a) {
  case 0: c = c > 0 ? c - 1 : c; break;
  case 1: r = r < 3 ? r + 1 : r; break;
  case 2: c = c < 3 ? c + 1 : c; break;
  default: r = r > 0 ? r - 1 : r; break;
  }
  return 4 * r + c;
}

void lake_distances(int dist[LAKE_N]) {
  for (int s = 0; s < LAKE_N; s++) dist[s] = -1;
  dist[LAKE_GOAL] = 0;
  /* relax until nothing changes (16 states: a few sweeps) */
  for (int changed = 1; changed;) {
    changed = 0;
    for (int s = 0; s < LAKE_N; s++) {
      if (lake_is_terminal(s)) continue;
      for (int a = 0; a < LAKE_A; a++) {
        int n = lake_step(s, a);
        if (dist[n] >= 0 && (dist[s] < 0 || dist[n] + 1 < dist[s])) {
          dist[s] = dist[n] + 1;
          changed = 1;
        }
      }
    }
  }
}

void lake_optimal_policy(int act[LAKE_N]) {
  int dist[LAKE_N];
  lake_distances(dist);
  for (int s = 0; s < LAKE_N; s++) {
    act[s] = 0;
    if (lake_is_terminal(s) || dist[s] < 0) continue;
    for (int a = 0; a < LAKE_A; a++)
      if (dist[lake_step(s, a)] == dist[s] - 1) {
        act[s] = a;
        break;
      }
  }
}

static void traj_from_actions(lake_traj *t, const int *acts, int n) {
  int s = LAKE_START;
  t->len = n;
  for (int i = 0; i < n; i++) {
    t->s[i] = s;
    t->a[i] = acts[i];
    s = lake_step(s, acts[i]);
  }
}

void lake_demo_optimal(lake_traj *t) {
  int act[LAKE_N], acts[LAKE_MAXLEN], n = 0;
  lake_optimal_policy(act);
  for (int s = LAKE_START; !lake_is_terminal(s) && n < LAKE_MAXLEN; s = lake_step(s, act[s])) acts[n++] = act[s];
  traj_from_actions(t, acts, n);
}

void lake_demo_suboptimal(lake_traj *t) {
  static const int acts[8] = {2, 2, 1, 1, 0, 1, 2, 2};
  traj_from_actions(t, acts, 8);
}

/* ---------------------------------------------------------------- policy */

/* The parameters as one flat array, in the order of lake_mlp's fields (the
 * rows past H stay 0 and get zero gradients). */
static double *flat(lake_mlp *p, size_t *n) {
  *n = (sizeof(lake_mlp) - offsetof(lake_mlp, w1)) / sizeof(double);
  return &p->w1[0][0];
}

/* The Philox stream of the initial weights (core's rng_uniform, keyed by the
 * seed, addressed by the parameter's place in lake_mlp). */
enum { LAKE_STREAM_INIT = 0x6c616b65 /* "lake" */ };

/* uniform(-bound, bound) for parameter i */
static double init_uniform(uint64_t seed, size_t i, double bound) {
  return (2.0 * rng_uniform(seed, LAKE_STREAM_INIT, (uint64_t)i) - 1.0) * bound;
}

void lake_mlp_init(lake_mlp *p, int H, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->H = H < 1 ? 1 : H > LAKE_HMAX ? LAKE_HMAX : H;
  size_t n;
  const double *base = flat(p, &n);
#define AT(field) ((size_t)(&(field) - base))
  /* uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch.nn.Linear */
  const double b1 = 1.0 / sqrt((double)LAKE_N), b2 = 1.0 / sqrt((double)p->H);
  for (int h = 0; h < p->H; h++) {
    for (int i = 0; i < LAKE_N; i++) p->w1[h][i] = init_uniform(seed, AT(p->w1[h][i]), b1);
    p->b1[h] = init_uniform(seed, AT(p->b1[h]), b1);
  }
  for (int a = 0; a < LAKE_A; a++) {
    for (int h = 0; h < p->H; h++) p->w2[a][h] = init_uniform(seed, AT(p->w2[a][h]), b2);
    p->b2[a] = init_uniform(seed, AT(p->b2[a]), b2);
  }
#undef AT
}

static void forward(const lake_mlp *p, const double x[LAKE_N], double h[LAKE_HMAX], double logp[LAKE_A]) {
  for (int k = 0; k < p->H; k++) {
    double z = p->b1[k];
    for (int i = 0; i < LAKE_N; i++) z += p->w1[k][i] * x[i];
    h[k] = tanh(z);
  }
  double mx = -INFINITY, z[LAKE_A];
  for (int a = 0; a < LAKE_A; a++) {
    z[a] = p->b2[a];
    for (int k = 0; k < p->H; k++) z[a] += p->w2[a][k] * h[k];
    mx = fmax(mx, z[a]);
  }
  double se = 0;
  for (int a = 0; a < LAKE_A; a++) se += exp(z[a] - mx);
  for (int a = 0; a < LAKE_A; a++) logp[a] = z[a] - mx - log(se);
}

void lake_mlp_logp(const lake_mlp *p, const double x[LAKE_N], double logp[LAKE_A]) {
  double h[LAKE_HMAX];
  forward(p, x, h, logp);
}

void lake_mlp_backward(const lake_mlp *p, lake_mlp *g, const double x[LAKE_N], const double dlogp[LAKE_A]) {
  double h[LAKE_HMAX], logp[LAKE_A], dz[LAKE_A], csum = 0;
  forward(p, x, h, logp);
  for (int a = 0; a < LAKE_A; a++) csum += dlogp[a];
  for (int a = 0; a < LAKE_A; a++) dz[a] = dlogp[a] - csum * exp(logp[a]);
  for (int k = 0; k < p->H; k++) {
    double dh = 0;
    for (int a = 0; a < LAKE_A; a++) {
      g->w2[a][k] += dz[a] * h[k];
      dh += dz[a] * p->w2[a][k];
    }
    const double du = dh * (1.0 - h[k] * h[k]);
    g->b1[k] += du;
    for (int i = 0; i < LAKE_N; i++) g->w1[k][i] += du * x[i];
  }
  for (int a = 0; a < LAKE_A; a++) g->b2[a] += dz[a];
}

/* ---------------------------------------------------------------- methods */

static const char *const method_names[] = {"SFT", "IFT", "DPO", "ORPO"};
const char *lake_method_name(lake_method m) { return (unsigned)m < 4 ? method_names[m] : "?"; }

lake_opts lake_defaults(void) {
  lake_opts o = {.steps = 300, .hidden = 32, .lr = 1e-2, .lambda = 0.2, .gamma = 0.95,
                 .beta_dpo = 0.1, .beta_orpo = 0.25};
  return o;
}

static void onehot(double x[LAKE_N], int s) {
  memset(x, 0, sizeof(double) * LAKE_N);
  x[s] = 1.0;
}

static int greedy(const lake_mlp *p, int s) {
  double x[LAKE_N], lp[LAKE_A];
  onehot(x, s);
  lake_mlp_logp(p, x, lp);
  int b = 0;
  for (int a = 1; a < LAKE_A; a++)
    if (lp[a] > lp[b]) b = a;
  return b;
}

/* Summed log-prob of a trajectory's actions on one-hot states; with g, adds
 * coef * its gradient. */
static double traj_logp(const lake_mlp *p, const lake_traj *t, lake_mlp *g, double coef) {
  double s = 0, x[LAKE_N], lp[LAKE_A];
  for (int i = 0; i < t->len; i++) {
    onehot(x, t->s[i]);
    lake_mlp_logp(p, x, lp);
    s += lp[t->a[i]];
    if (g) {
      double d[LAKE_A] = {0, 0, 0, 0};
      d[t->a[i]] = coef;
      lake_mlp_backward(p, g, x, d);
    }
  }
  return s;
}

double lake_objective(lake_method m, const lake_opts *o, const lake_mlp *p, const lake_mlp *ref,
                      const lake_traj *good, const lake_traj *bad, lake_mlp *g) {
  if (g) {
    memset(g, 0, sizeof *g);
    g->H = p->H;
  }
  const int L = good->len;
  switch (m) {
  case LAKE_SFT: return -traj_logp(p, good, g, -1.0 / L) / L;
  case LAKE_IFT: {
    /* intuition pass: greedy action at s_{t-1} and where it leads */
    double lp[LAKE_MAXLEN + 1] = {0}, dl[LAKE_MAXLEN + 1], X[LAKE_MAXLEN][LAKE_N], q[LAKE_A];
    uint8_t mask[LAKE_MAXLEN + 1] = {0};
    for (int t = 0; t < L; t++) {
      const int alt = t == 0 ? good->s[0] : lake_step(good->s[t - 1], greedy(p, good->s[t - 1]));
      memset(X[t], 0, sizeof X[t]);
      X[t][good->s[t]] += 1.0 - o->lambda;
      X[t][alt] += o->lambda;
      lake_mlp_logp(p, X[t], q);
      lp[t + 1] = q[good->a[t]];
      mask[t + 1] = 1;
    }
    loss_ift_opts io = loss_ift_defaults();
    io.gamma = o->gamma;
    double ws[LOSS_IFT_SCRATCH(1, LAKE_MAXLEN + 1)];
    const double Lv = loss_ift_d(dl, NULL, lp, mask, 1, L + 1, 1.0, &io, ws); /* γ 0: uniform */
    if (g)
      for (int t = 0; t < L; t++) {
        double d[LAKE_A] = {0, 0, 0, 0};
        d[good->a[t]] = dl[t + 1];
        lake_mlp_backward(p, g, X[t], d);
      }
    return Lv;
  }
  case LAKE_DPO:
  case LAKE_ORPO: {
    loss_pref_opts po = loss_pref_defaults(m == LAKE_DPO ? LOSS_DPO : LOSS_ORPO);
    po.beta = m == LAKE_DPO ? o->beta_dpo : o->beta_orpo;
    const double pc = traj_logp(p, good, NULL, 0), pr = traj_logp(p, bad, NULL, 0);
    const double rc = m == LAKE_DPO ? traj_logp(ref, good, NULL, 0) : 0;
    const double rr = m == LAKE_DPO ? traj_logp(ref, bad, NULL, 0) : 0;
    loss_pair r = loss_pref_pair(m == LAKE_DPO ? LOSS_DPO : LOSS_ORPO, &po, pc, pr, rc, rr, good->len, bad->len);
    if (g) {
      traj_logp(p, good, g, r.d_c);
      traj_logp(p, bad, g, r.d_r);
    }
    return r.loss;
  }
  }
  return 0;
}

/* o->steps steps of Adam (optim's AdamW without weight decay, PyTorch's
 * betas and eps) on the float copy of the parameters that optim works on;
 * the MLP takes the updated values back after each step. */
static ift_status adam_run(lake_method m, const lake_opts *o, lake_mlp *p, const lake_mlp *ref,
                           const lake_traj *good, const lake_traj *bad) {
  static lake_mlp g; /* serial tool */
  static float pf[sizeof(lake_mlp) / sizeof(double)], gf[sizeof(lake_mlp) / sizeof(double)];
  size_t n;
  double *w = flat(p, &n);
  const double *gg = flat(&g, &n);
  optim_cfg cfg = optim_defaults(OPTIM_ADAMW);
  cfg.lr = o->lr;
  cfg.weight_decay = 0.0;
  optim_state st;
  IFT_TRY(optim_create(&st, &cfg, n));
  for (size_t i = 0; i < n; i++) w[i] = pf[i] = (float)w[i];
  for (int k = 0; k < o->steps; k++) {
    lake_objective(m, o, p, ref, good, bad, &g);
    for (size_t i = 0; i < n; i++) gf[i] = (float)gg[i];
    optim_step(&st, pf, gf, cfg.lr);
    for (size_t i = 0; i < n; i++) w[i] = pf[i];
  }
  optim_destroy(&st);
  return IFT_OK;
}

ift_status lake_train(lake_method m, const lake_opts *o, uint64_t seed, lake_mlp *out) {
  lake_traj good, bad;
  lake_demo_optimal(&good);
  lake_demo_suboptimal(&bad);
  lake_mlp_init(out, o->hidden, seed);
  if (m != LAKE_DPO) return adam_run(m, o, out, NULL, &good, &bad);
  static lake_mlp ref;
  IFT_TRY(adam_run(LAKE_SFT, o, out, NULL, &good, &bad));
  ref = *out;
  return adam_run(LAKE_DPO, o, out, &ref, &good, &bad);
}

/* ---------------------------------------------------------------- metrics */

void lake_transition(const lake_mlp *p, double P[LAKE_N][LAKE_N]) {
  memset(P, 0, sizeof(double) * LAKE_N * LAKE_N);
  for (int s = 0; s < LAKE_N; s++) {
    if (lake_is_terminal(s)) {
      P[s][s] = 1.0;
      continue;
    }
    double x[LAKE_N], lp[LAKE_A];
    onehot(x, s);
    lake_mlp_logp(p, x, lp);
    for (int a = 0; a < LAKE_A; a++) P[s][lake_step(s, a)] += exp(lp[a]);
  }
}

void lake_transition_optimal(double P[LAKE_N][LAKE_N]) {
  int act[LAKE_N];
  lake_optimal_policy(act);
  memset(P, 0, sizeof(double) * LAKE_N * LAKE_N);
  for (int s = 0; s < LAKE_N; s++) P[s][lake_is_terminal(s) ? s : lake_step(s, act[s])] = 1.0;
}

double lake_mse(double P[LAKE_N][LAKE_N], double Q[LAKE_N][LAKE_N]) {
  double s = 0;
  int n = 0;
  for (int i = 0; i < LAKE_N; i++) {
    if (lake_is_terminal(i)) continue;
    for (int j = 0; j < LAKE_N; j++) {
      const double d = P[i][j] - Q[i][j];
      s += d * d;
      n++;
    }
  }
  return s / n;
}

double lake_success(double P[LAKE_N][LAKE_N], int horizon) {
  double d[LAKE_N] = {0}, e[LAKE_N];
  d[LAKE_START] = 1.0;
  for (int k = 0; k < horizon; k++) {
    memset(e, 0, sizeof e);
    for (int i = 0; i < LAKE_N; i++)
      for (int j = 0; j < LAKE_N; j++) e[j] += d[i] * P[i][j];
    memcpy(d, e, sizeof d);
  }
  return d[LAKE_GOAL];
}

int lake_greedy_success(const lake_mlp *p) {
  int s = LAKE_START;
  for (int k = 0; k < 16 && !lake_is_terminal(s); k++) s = lake_step(s, greedy(p, s));
  return s == LAKE_GOAL;
}
