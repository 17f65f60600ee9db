/* SFT and IFT token-weighted losses (docs/ift.md, "Token weights") with their exact
 * gradients, including the gradient through the weights (not detached).
 *
 * Notation of one row: m mask, ℓ = -logp, n = Σm, v_t = m_t ℓ_t / n (value
 * loss) or m_t / n (value mask).  With raw weights w̃ on the answer and
 * Z = Σ_ans w̃, the row loss is L_b = Σ_ans ℓ_t w̃_t / Z (since w = n w̃/Z).
 * Differentiating, with the w̃ depending on ℓ through the sums:
 *   dL_b/dℓ_k = m_k w̃_k / Z + Σ_ans (ℓ_t − L_b)/Z · dw̃_t/dℓ_k.
 *
 * left:  C_t = m_t Σ_{j≥t} γ^{j−t} v_j, w̃ = f(C) (f = L1|L2|log|softmax);
 *        dC_t/dℓ_k = m_t m_k γ^{k−t}/n (k ≥ t): a discounted PREFIX sum of
 *        a_t = (ℓ_t − L_b) f'(C_t)/Z carries the second term.
 * right: P_t = Σ_{j≤t} γ^{t−j} v_j, u_t = 1/(P_t + μ), w̃ = f(u),
 *        μ = min of P over answer positions (of the row, or of the whole call
 *        with right_mu = batch — the reference; it couples the rows).
 *        dP_t/dℓ_k = m_k γ^{t−k}/n (k ≤ t): a discounted SUFFIX sum of
 *        b_t = −(ℓ_t − L_b) f'(u_t) u_t²/Z, plus (Σ b) · dμ/dℓ through the
 *        position t* that attains the minimum.
 * Normalisation sums over answer positions only (the reference's 1e6 fill
 * of non-answer P only keeps them out of the minimum) — checked against the
 * test vectors of docs/ift.md. */
#include "iftrain/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"sft", "ift", "dpo", "ipo", "orpo", "simpo"};
const char *loss_kind_name(loss_kind k) { return (unsigned)k < 6 ? kind_names[k] : "?"; }
int loss_kind_parse(const char *s, loss_kind *out) {
  for (int i = 0; i < 6; i++)
    if (!strcmp(s, kind_names[i])) {
      *out = (loss_kind)i;
      return 0;
    }
  return -1;
}

loss_ift_opts loss_ift_defaults(void) {
  loss_ift_opts o = {.gamma = 0.95, .side = IFT_SIDE_LEFT, .value = IFT_VALUE_LOSS,
                     .norm = IFT_NORM_L1, .right_mu = IFT_MU_ROW};
  return o;
}

double loss_sft(float *dlogp, loss_metrics *met, const float *logp, const uint8_t *mask, int B,
                int T, double n_global) {
  double total = 0;
  for (int b = 0; b < B; b++) {
    const float *lp = logp + (size_t)b * T;
    const uint8_t *m = mask + (size_t)b * T;
    double n = 0, s = 0;
    for (int t = 0; t < T; t++)
      if (m[t]) {
        n += 1;
        s -= lp[t];
      }
    double Lb = n > 0 ? s / n : 0;
    total += Lb;
    if (met) {
      met->loss_sum += Lb;
      met->nll_sum += Lb;
      met->tokens += n;
      met->rows += n > 0;
    }
    if (dlogp) {
      const float g = n > 0 ? (float)(-1.0 / (n * n_global)) : 0.0f;
      for (int t = 0; t < T; t++) dlogp[(size_t)b * T + t] = m[t] ? g : 0.0f;
    }
  }
  return total / n_global;
}

static double fnorm(ift_norm k, double x) {
  switch (k) {
  case IFT_NORM_L2: return x * x;
  case IFT_NORM_LOG: return log(x + 1.0);
  case IFT_NORM_SOFTMAX: return exp(x);
  case IFT_NORM_L1: break;
  }
  return x;
}
static double fnorm_d(ift_norm k, double x) {
  switch (k) {
  case IFT_NORM_L2: return 2.0 * x;
  case IFT_NORM_LOG: return 1.0 / (x + 1.0);
  case IFT_NORM_SOFTMAX: return exp(x);
  case IFT_NORM_L1: break;
  }
  return 1.0;
}

double loss_ift_d(double *dlogp, double *w_out, const double *logp, const uint8_t *mask, int B,
                  int T, double n_global, const loss_ift_opts *o, double *scratch) {
  const size_t N = (size_t)B * T;
  if (o->gamma == 0.0) {
    /* docs/ift.md: γ = 0 is uniform (SFT) weighting — a special case, not the
     * limit of the formula (which would weight each token by its own loss) */
    double total = 0;
    for (int b = 0; b < B; b++) {
      const double *lp = logp + (size_t)b * T;
      const uint8_t *m = mask + (size_t)b * T;
      double n = 0, sum = 0;
      for (int t = 0; t < T; t++)
        if (m[t]) {
          n += 1;
          sum -= lp[t];
        }
      total += n > 0 ? sum / n : 0;
      for (int t = 0; t < T; t++) {
        if (dlogp) dlogp[(size_t)b * T + t] = m[t] && n > 0 ? -1.0 / (n * n_global) : 0.0;
        if (w_out) w_out[(size_t)b * T + t] = m[t] ? 1.0 : 0.0;
      }
    }
    return total / n_global;
  }
  double *s = scratch; /* 3N + 3B of LOSS_IFT_SCRATCH */
  double *acc = s;             /* C (left) or P (right) */
  double *wt = s + N;          /* raw weights w̃ */
  double *aux = s + 2 * N;     /* a_t or b_t, then their discounted sums */
  double *rowL = s + 3 * N, *rowZ = rowL + B, *rowN = rowZ + B;
  const double g = o->gamma;
  const int right = o->side == IFT_SIDE_RIGHT, vloss = o->value == IFT_VALUE_LOSS;
  /* discounted sums and μ */
  double mu_batch = INFINITY;
  long argmu_batch = -1;
  for (int b = 0; b < B; b++) {
    const double *lp = logp + (size_t)b * T;
    const uint8_t *m = mask + (size_t)b * T;
    double *c = acc + (size_t)b * T;
    double n = 0;
    for (int t = 0; t < T; t++) n += m[t];
    rowN[b] = n;
    if (n == 0) continue;
    if (!right) {
      double run = 0;
      for (int t = T - 1; t >= 0; t--) {
        double v = m[t] ? (vloss ? -lp[t] : 1.0) / n : 0.0;
        run = v + g * run;
        c[t] = m[t] ? run : 0.0;
      }
    } else {
      double run = 0;
      for (int t = 0; t < T; t++) {
        double v = m[t] ? (vloss ? -lp[t] : 1.0) / n : 0.0;
        run = v + g * run;
        c[t] = run;
        if (m[t] && run < mu_batch) {
          mu_batch = run;
          argmu_batch = (long)b * T + t;
        }
      }
    }
  }
  double total = 0, sum_b_batch = 0;
  for (int b = 0; b < B; b++) {
    const double *lp = logp + (size_t)b * T;
    const uint8_t *m = mask + (size_t)b * T;
    const double *c = acc + (size_t)b * T;
    double *w = wt + (size_t)b * T, *a = aux + (size_t)b * T;
    const double n = rowN[b];
    rowL[b] = rowZ[b] = 0;
    if (n == 0) {
      for (int t = 0; t < T; t++) w[t] = a[t] = 0;
      continue;
    }
    double mu = 0;
    long tstar = -1;
    if (right) {
      if (o->right_mu == IFT_MU_BATCH) {
        mu = mu_batch;
      } else {
        mu = INFINITY;
        for (int t = 0; t < T; t++)
          if (m[t] && c[t] < mu) {
            mu = c[t];
            tstar = t;
          }
      }
    }
    double Z = 0, num = 0;
    for (int t = 0; t < T; t++) {
      if (!m[t]) {
        w[t] = 0;
        continue;
      }
      double x = right ? 1.0 / (c[t] + mu) : c[t];
      w[t] = fnorm(o->norm, x);
      Z += w[t];
      num += -lp[t] * w[t];
    }
    const double L = num / Z;
    rowL[b] = L;
    rowZ[b] = Z;
    total += L;
    /* a_t (left) or b_t (right) */
    double sum_b = 0;
    for (int t = 0; t < T; t++) {
      if (!m[t] || (!vloss && !right)) {
        a[t] = 0;
        continue;
      }
      double lt = -lp[t];
      if (!right) {
        a[t] = (lt - L) * fnorm_d(o->norm, c[t]) / Z;
      } else {
        double u = 1.0 / (c[t] + mu);
        a[t] = -(lt - L) * fnorm_d(o->norm, u) * u * u / Z;
        sum_b += a[t];
      }
    }
    if (right && vloss) {
      if (o->right_mu == IFT_MU_BATCH) sum_b_batch += sum_b;
      else if (tstar >= 0) {
        /* dμ/dℓ_k = m_k γ^{t*−k}/n for k ≤ t*, folded into b at t* */
        a[tstar] += sum_b;
      }
    }
    if (right && !vloss) for (int t = 0; t < T; t++) a[t] = 0;
    if (w_out)
      for (int t = 0; t < T; t++) w_out[(size_t)b * T + t] = m[t] ? n * w[t] / Z : 0.0;
  }
  if (right && vloss && o->right_mu == IFT_MU_BATCH && argmu_batch >= 0)
    aux[argmu_batch] += sum_b_batch;
  if (dlogp) {
    for (int b = 0; b < B; b++) {
      const uint8_t *m = mask + (size_t)b * T;
      const double *w = wt + (size_t)b * T, *a = aux + (size_t)b * T;
      double *d = dlogp + (size_t)b * T;
      const double n = rowN[b], Z = rowZ[b];
      if (n == 0) {
        for (int t = 0; t < T; t++) d[t] = 0;
        continue;
      }
      double run = 0;
      if (!right) {
        for (int t = 0; t < T; t++) {
          run = a[t] + g * run; /* Σ_{t'≤k} γ^{k−t'} a_t' */
          d[t] = m[t] ? -(w[t] / Z + (vloss ? run / n : 0.0)) / n_global : 0.0;
        }
      } else {
        for (int t = T - 1; t >= 0; t--) {
          run = a[t] + g * run; /* Σ_{t'≥k} γ^{t'−k} b_t' */
          d[t] = m[t] ? -(w[t] / Z + run / n) / n_global : 0.0;
        }
      }
    }
  }
  return total / n_global;
}

double loss_ift(float *dlogp, float *w_out, loss_metrics *met, const float *logp,
                const uint8_t *mask, int B, int T, double n_global, const loss_ift_opts *o,
                double *scratch) {
  if (o->gamma == 0.0) {
    /* γ = 0 is uniform weighting — a special case in the reference, not the
     * limit of the formula — and is SFT bit for bit. */
    double r = loss_sft(dlogp, met, logp, mask, B, T, n_global);
    if (w_out)
      for (size_t i = 0; i < (size_t)B * T; i++) w_out[i] = mask[i] ? 1.0f : 0.0f;
    return r;
  }
  const size_t N = (size_t)B * T;
  /* double copies, then loss_ift_d's scratch */
  double *buf = scratch;
  double *lp = buf, *d = buf + N, *w = buf + 2 * N;
  for (size_t i = 0; i < N; i++) lp[i] = logp[i];
  double r = loss_ift_d(dlogp ? d : NULL, w_out ? w : NULL, lp, mask, B, T, n_global, o, buf + 3 * N);
  if (dlogp)
    for (size_t i = 0; i < N; i++) dlogp[i] = (float)d[i];
  if (w_out)
    for (size_t i = 0; i < N; i++) w_out[i] = (float)w[i];
  if (met) {
    for (int b = 0; b < B; b++) {
      double n = 0, s = 0;
      for (int t = 0; t < T; t++)
        if (mask[(size_t)b * T + t]) {
          n++;
          s -= lp[(size_t)b * T + t];
        }
      met->nll_sum += n > 0 ? s / n : 0;
      met->tokens += n;
      met->rows += n > 0;
    }
    met->loss_sum += r * n_global;
  }
  return r;
}

/* ---- preference objectives */

int loss_is_pref(loss_kind k) {
  return k == LOSS_DPO || k == LOSS_IPO || k == LOSS_ORPO || k == LOSS_SIMPO;
}
int loss_pref_needs_ref(loss_kind k) { return k == LOSS_DPO || k == LOSS_IPO; }

loss_pref_opts loss_pref_defaults(loss_kind k) {
  loss_pref_opts o = {.beta = 0.1, .label_smoothing = 0.0, .simpo_gamma_ratio = 0.8};
  if (k == LOSS_ORPO) o.beta = 0.25;
  if (k == LOSS_SIMPO) o.beta = 2.0;
  return o;
}

/* log s(z) without overflow, and s(z). */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }
static double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + exp(-z));
  const double e = exp(z);
  return e / (1.0 + e);
}

loss_pair loss_pref_pair(loss_kind k, const loss_pref_opts *o, double pc, double pr, double rc,
                         double rr, double nc, double nr) {
  loss_pair r = {0, 0, 0, 0};
  const double beta = o->beta;
  switch (k) {
  case LOSS_DPO: {
    const double eps = o->label_smoothing, z = beta * ((pc - rc) - (pr - rr));
    r.loss = -(1.0 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z);
    const double dz = sigmoid(z) - (1.0 - eps);
    r.d_c = beta * dz;
    r.d_r = -beta * dz;
    r.margin = z;
    break;
  }
  case LOSS_IPO: {
    const double h = (pc - rc) / nc - (pr - rr) / nr, e = h - 1.0 / (2.0 * beta);
    r.loss = e * e;
    r.d_c = 2.0 * e / nc;
    r.d_r = -2.0 * e / nr;
    r.margin = h;
    break;
  }
  case LOSS_ORPO: {
    /* log-odds of the mean log-prob a < 0: a - log(1 - e^a), with
     * log(1 - e^a) = log(-expm1(a)); d lo/da = 1/(1 - e^a) = -1/expm1(a). */
    const double ac = pc / nc, ar = pr / nr;
    const double omc = -expm1(ac), omr = -expm1(ar);
    const double z = (ac - log(omc)) - (ar - log(omr));
    r.loss = -ac - beta * log_sigmoid(z);
    const double dz = -beta * (1.0 - sigmoid(z));
    r.d_c = (-1.0 + dz / omc) / nc;
    r.d_r = (-dz / omr) / nr;
    r.margin = z;
    break;
  }
  case LOSS_SIMPO: {
    const double z = beta * pc / nc - beta * pr / nr - o->simpo_gamma_ratio * beta;
    r.loss = -log_sigmoid(z);
    const double dz = -(1.0 - sigmoid(z));
    r.d_c = beta * dz / nc;
    r.d_r = -beta * dz / nr;
    r.margin = z;
    break;
  }
  default: break;
  }
  return r;
}

void loss_answer_logp(double *out, const float *logp, const uint8_t *mask, int R, int T) {
  for (int b = 0; b < R; b++) {
    double s = 0;
    for (int t = 0; t < T; t++)
      if (mask[(size_t)b * T + t]) s += logp[(size_t)b * T + t];
    out[b] = s;
  }
}

double loss_pref(float *dlogp, loss_metrics *met, const float *logp, const uint8_t *mask, int B,
                 int T, const float *ref, double n_global, loss_kind k, const loss_pref_opts *o) {
  double total = 0;
  for (int b = 0; b < B; b++) {
    const size_t rc_ = (size_t)b * T, rr_ = (size_t)(B + b) * T;
    double pc = 0, pr = 0, nc = 0, nr = 0;
    for (int t = 0; t < T; t++) {
      if (mask[rc_ + t]) {
        pc += logp[rc_ + t];
        nc += 1;
      }
      if (mask[rr_ + t]) {
        pr += logp[rr_ + t];
        nr += 1;
      }
    }
    loss_pair p = {0, 0, 0, 0};
    const int ok = nc > 0 && nr > 0;
    if (ok)
      p = loss_pref_pair(k, o, pc, pr, ref ? ref[2 * b] : 0.0, ref ? ref[2 * b + 1] : 0.0, nc, nr);
    total += p.loss;
    if (met && ok) {
      met->loss_sum += p.loss;
      met->nll_sum += -pc / nc;
      met->tokens += nc + nr;
      met->rows += 1;
      met->pref_correct += p.margin > 0;
      met->margin_sum += p.margin;
    }
    if (dlogp) {
      const float gc = (float)(p.d_c / n_global), gr = (float)(p.d_r / n_global);
      for (int t = 0; t < T; t++) {
        dlogp[rc_ + t] = mask[rc_ + t] ? gc : 0.0f;
        dlogp[rr_ + t] = mask[rr_ + t] ? gr : 0.0f;
      }
    }
  }
  return total / n_global;
}
