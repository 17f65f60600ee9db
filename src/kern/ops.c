/* Fused elementwise kernels of the Llama block with their backward passes.
 *
 * Vectorisation.  Every hot loop walks a row in blocks of W floats whose
 * inner loop has the constant trip count W, followed by a scalar tail that
 * calls the same inline element function.  A constant trip count that is a
 * multiple of every SIMD width lets gcc vectorise at plain -O2 too (its
 * "very cheap" cost model refuses loops that need a runtime epilogue or an
 * alias check), and W independent partial sums break the dependency chain of
 * reductions, which gcc will not reorder itself without -ffast-math.
 *
 * Where an output may alias an input (softmax p/s, softmax ds/dp, CE
 * dlogits/logits) "alias" means the very same array, and the kernel
 * dispatches to a one-pointer in-place row loop; otherwise every pointer of a
 * row loop is a restrict parameter of an inlined helper (gcc honours restrict
 * on parameters through inlining, not reliably on block-scope pointers, and at
 * -O2 it will not add a runtime alias check).
 *
 * Accumulation.  Row reductions add W float lanes over at most CHUNK
 * elements (CHUNK/W terms per lane) and combine lanes and chunks in double:
 * rstd, softmax sums and the CE sum of exponentials stay accurate to a few
 * float ulps for vocabularies of 10^5 and more, at float-SIMD speed.
 *
 * exp.  libm's expf is a call per element and blocks vectorisation, so the
 * softmax, CE and SiLU loops use exp_fast below (Cephes expf scheme: max
 * relative error ~1.2e-7 over its range, checked against double precision through the softmax, CE and SiLU tests of tests/test_kern_ops.c). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "iftrain/kern.h"

enum {
  W = 16,      /* lanes: one AVX-512 or two AVX2 vectors; divides every SIMD width */
  CHUNK = 4096 /* elements per float partial sum before it is folded into double */
};

/* c ? a : b on bit patterns.  A plain ?: on floats next to arithmetic makes
 * gcc sink that arithmetic into a branch arm, and under the default
 * -ftrapping-math it then refuses to if-convert (so to vectorise) the loop;
 * a mask built from the comparison's 0/1 value stays branch-free. */
static inline float select_f(int c, float a, float b) {
  uint32_t ua, ub, r;
  const uint32_t m = -(uint32_t)(c != 0);
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  r = (ua & m) | (ub & ~m);
  float f;
  memcpy(&f, &r, sizeof f);
  return f;
}

/* exp(x) in float arithmetic, branch-free so gcc inlines and vectorises it.
 * Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2 (ln2 split with a 9-bit
 * high part, so n*LN2_HI is exact), the Cephes polynomial of e^r, and 2^n
 * through the exponent bits.  Results that would be subnormal (x < -87.34,
 * e^x < 2^-126) flush to 0; x > 88.376 gives +inf (the true e^x overflows
 * only at 88.72); NaN propagates.  No fma is asked for: -std=c11 turns
 * contraction off and fmaf would be a libm call on baseline x86-64. */
static inline float exp_fast(float x) {
  const float HI = 88.3762626647949f, LO = -87.33654475f;
  const float LOG2E = 1.44269504088896341f;
  const float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
  float xc = select_f(x < HI, x, HI); /* NaN -> HI, patched at the end */
  xc = select_f(xc > LO, xc, LO);
  /* xc*LOG2E + 128.5 > 0, so truncation is floor(y + 1/2): round to nearest
   * without roundf/floorf, which are calls below SSE4.1. */
  const int32_t n = (int32_t)(xc * LOG2E + 128.5f) - 128;
  const float fn = (float)n;
  const float r = (xc - fn * LN2_HI) - fn * LN2_LO;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const uint32_t bits = (uint32_t)(n + 127) << 23; /* n in [-126, 127]: a normal 2^n */
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  float y = p * two_n;
  y = select_f(x >= LO, y, 0.0f); /* also maps NaN to 0 ... */
  return select_f(x <= HI, y, select_f(x > HI, INFINITY, x)); /* ... and back */
}

static inline double lanes_sum(const float *acc) {
  double s = 0.0;
  for (int l = 0; l < W; l++) s += acc[l];
  return s;
}

/* ---------------------------------------------------------------- reductions */

static double dot2(const float *restrict a, const float *restrict b, int n) {
  double tot = 0.0;
  for (int c0 = 0; c0 < n; c0 += CHUNK) {
    const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
    const float *restrict ac = a + c0, *restrict bc = b + c0;
    float acc[W] = {0};
    int j = 0;
    for (; j + W <= m; j += W)
      for (int l = 0; l < W; l++) acc[l] += ac[j + l] * bc[j + l];
    for (; j < m; j++) acc[0] += ac[j] * bc[j];
    tot += lanes_sum(acc);
  }
  return tot;
}

/* read-only aliasing of a and b is allowed under restrict */
static double sum_sq(const float *x, int n) { return dot2(x, x, n); }

static double dot3(const float *restrict a, const float *restrict b, const float *restrict c,
                   int n) {
  double tot = 0.0;
  for (int c0 = 0; c0 < n; c0 += CHUNK) {
    const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
    const float *restrict ac = a + c0, *restrict bc = b + c0, *restrict cc = c + c0;
    float acc[W] = {0};
    int j = 0;
    for (; j + W <= m; j += W)
      for (int l = 0; l < W; l++) acc[l] += ac[j + l] * bc[j + l] * cc[j + l];
    for (; j < m; j++) acc[0] += ac[j] * bc[j] * cc[j];
    tot += lanes_sum(acc);
  }
  return tot;
}

/* max_j scale*x[j] (n >= 1).  NaNs are skipped here; they still poison the
 * sum of exponentials, which is where a caller notices them. */
static float max_scaled(const float *restrict x, int n, float scale) {
  float acc[W];
  for (int l = 0; l < W; l++) acc[l] = -INFINITY;
  int j = 0;
  for (; j + W <= n; j += W)
    for (int l = 0; l < W; l++) {
      const float v = scale * x[j + l];
      acc[l] = v > acc[l] ? v : acc[l];
    }
  for (; j < n; j++) {
    const float v = scale * x[j];
    acc[0] = v > acc[0] ? v : acc[0];
  }
  float m = acc[0];
  for (int l = 1; l < W; l++) m = acc[l] > m ? acc[l] : m;
  return m;
}

/* Lowest j with x[j] == m; blocks are tested with a vectorisable OR first. */
static int first_equal(const float *restrict x, int n, float m) {
  int j = 0;
  for (; j + W <= n; j += W) {
    int hit = 0;
    for (int l = 0; l < W; l++) hit |= x[j + l] == m;
    if (hit) break;
  }
  for (; j < n; j++)
    if (x[j] == m) return j;
  return -1;
}

/* Σ_j exp(x[j] - shift) without writing anything (CE statistics). */
static double sum_exp(const float *restrict x, int n, float shift) {
  double tot = 0.0;
  for (int c0 = 0; c0 < n; c0 += CHUNK) {
    const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
    const float *restrict xc = x + c0;
    float acc[W] = {0};
    int j = 0;
    for (; j + W <= m; j += W)
      for (int l = 0; l < W; l++) acc[l] += exp_fast(xc[j + l] - shift);
    for (; j < m; j++) acc[0] += exp_fast(xc[j] - shift);
    tot += lanes_sum(acc);
  }
  return tot;
}

/* out[j] = mul * exp(a*in[j] - b); returns Σ_j exp(a*in[j] - b).  out may
 * be in (in place), so the pointers are not restrict: the two callers below
 * inline it, where out and in are restrict (exp_row) or one pointer
 * (exp_row_inplace), and either way the loops vectorise without an overlap
 * check.  One body for both: in place and out of place give the same bits. */
static inline __attribute__((always_inline)) double exp_row_body(float *out, const float *in, int n,
                                                                 float a, float b, float mul) {
  double tot = 0.0;
  for (int c0 = 0; c0 < n; c0 += CHUNK) {
    const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
    const float *ic = in + c0;
    float *oc = out + c0;
    float acc[W] = {0};
    int j = 0;
    for (; j + W <= m; j += W)
      for (int l = 0; l < W; l++) {
        const float e = exp_fast(a * ic[j + l] - b);
        acc[l] += e;
        oc[j + l] = mul * e;
      }
    for (; j < m; j++) {
      const float e = exp_fast(a * ic[j] - b);
      acc[0] += e;
      oc[j] = mul * e;
    }
    tot += lanes_sum(acc);
  }
  return tot;
}

static double exp_row(float *restrict out, const float *restrict in, int n, float a, float b,
                      float mul) {
  return exp_row_body(out, in, n, a, b, mul);
}

static double exp_row_inplace(float *x, int n, float a, float b, float mul) {
  return exp_row_body(x, x, n, a, b, mul);
}

static void scale_row(float *restrict x, int n, float k) {
  int j = 0;
  for (; j + W <= n; j += W)
    for (int l = 0; l < W; l++) x[j + l] *= k;
  for (; j < n; j++) x[j] *= k;
}

/* ---------------------------------------------------------------- RMSNorm */

/* rstd is computed in double from float-lane partial sums (see top) and
 * rounded once; HF computes mean(x²) and rsqrt in fp32, which agrees to an
 * ulp or two. */
void kern_rmsnorm_forward(float *restrict out, float *restrict rstd, const float *restrict x,
                          const float *restrict w, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *restrict xr = x + (size_t)n * C;
    float *restrict o = out + (size_t)n * C;
    const float r = (float)(1.0 / sqrt(sum_sq(xr, C) / C + (double)eps));
    rstd[n] = r;
    /* HF order: w * (x * rstd), so a float checkpoint gives HF's bits. */
    int c = 0;
    for (; c + W <= C; c += W)
      for (int l = 0; l < W; l++) o[c + l] = w[c + l] * (xr[c + l] * r);
    for (; c < C; c++) o[c] = w[c] * (xr[c] * r);
  }
}

/* y = w ⊙ x·r, r = (mean x² + eps)^-1/2, dr/dx = -r³x/C:
 * dx = r·(w⊙dy) − x·r³/C·Σ(w⊙dy⊙x);  dw += dy⊙x·r summed over rows. */
void kern_rmsnorm_backward(float *restrict dx, float *restrict dw, const float *restrict dout,
                           const float *restrict x, const float *restrict w,
                           const float *restrict rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *restrict xr = x + (size_t)n * C, *restrict dy = dout + (size_t)n * C;
    float *restrict d = dx + (size_t)n * C;
    const float r = rstd[n];
    const float k = (float)(dot3(w, dy, xr, C) * r * r * r / C);
    int c = 0;
    for (; c + W <= C; c += W)
      for (int l = 0; l < W; l++) {
        d[c + l] = r * w[c + l] * dy[c + l] - k * xr[c + l];
        dw[c + l] += dy[c + l] * xr[c + l] * r;
      }
    for (; c < C; c++) {
      d[c] = r * w[c] * dy[c] - k * xr[c];
      dw[c] += dy[c] * xr[c] * r;
    }
  }
}

/* ---------------------------------------------------------------- RoPE */

/* HF computes the angle in fp32: float(pos) * inv_freq rounded to float, and
 * only then cos/sin.  The tables follow the same roundings (cos/sin
 * themselves in double, rounded once), so they agree with HF's up to libm
 * ulps instead of drifting from it by pos * ulp(inv_freq) at long context. */
void kern_rope_table(float *cosv, float *sinv, int T, int D, const float *inv_freq) {
  const int h = D / 2;
  for (int i = 0; i < h; i++)
    for (int t = 0; t < T; t++) {
      const float a = (float)t * inv_freq[i];
      cosv[(size_t)t * h + i] = (float)cos((double)a);
      sinv[(size_t)t * h + i] = (float)sin((double)a);
    }
}

/* rotate_half pairs (x1, x2) = (x[i], x[i + D/2]):
 * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).  With sgn = -1 this is the
 * inverse rotation, which is also the adjoint since rotations are
 * orthogonal.  sgn is a compile-time constant after inlining. */
static inline void rope_head(float *restrict x1, float *restrict x2, const float *restrict cs,
                             const float *restrict sn, int h, float sgn) {
  int i = 0;
  for (; i + W <= h; i += W)
    for (int l = 0; l < W; l++) {
      const float a = x1[i + l], c = x2[i + l], s = sgn * sn[i + l];
      x1[i + l] = a * cs[i + l] - c * s;
      x2[i + l] = c * cs[i + l] + a * s;
    }
  for (; i < h; i++) {
    const float a = x1[i], c = x2[i], s = sgn * sn[i];
    x1[i] = a * cs[i] - c * s;
    x2[i] = c * cs[i] + a * s;
  }
}

static inline void rope_rows(float *x, const float *cosv, const float *sinv, int B, int T, int H,
                             int D, int ld, const int *pos, float sgn) {
  const int h = D / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float *row = x + ((size_t)b * T + t) * ld;
      const size_t p = (size_t)(pos ? pos[(size_t)b * T + t] : t) * h;
      for (int hd = 0; hd < H; hd++)
        rope_head(row + (size_t)hd * D, row + (size_t)hd * D + h, cosv + p, sinv + p, h, sgn);
    }
}

void kern_rope_forward(float *x, const float *cosv, const float *sinv, int B, int T, int H, int D,
                       int ld, const int *pos) {
  rope_rows(x, cosv, sinv, B, T, H, D, ld, pos, 1.0f);
}

void kern_rope_backward(float *dx, const float *cosv, const float *sinv, int B, int T, int H,
                        int D, int ld, const int *pos) {
  rope_rows(dx, cosv, sinv, B, T, H, D, ld, pos, -1.0f);
}

/* ---------------------------------------------------------------- SwiGLU */

/* σ(g) = 1/(1+e^-g): for g < -88.4 e^-g = inf and σ = 0 exactly, which is
 * the correct float limit (silu(g) = g σ(g) = -0). */
static inline float sigmoid(float g) { return 1.0f / (1.0f + exp_fast(-g)); }

void kern_swiglu_forward(float *restrict out, const float *restrict gate, const float *restrict up,
                         int N, int F, int ld_in) {
  for (int n = 0; n < N; n++) {
    const float *restrict g = gate + (size_t)n * ld_in, *restrict u = up + (size_t)n * ld_in;
    float *restrict o = out + (size_t)n * F;
    int j = 0;
    for (; j + W <= F; j += W)
      for (int l = 0; l < W; l++) o[j + l] = g[j + l] * sigmoid(g[j + l]) * u[j + l];
    for (; j < F; j++) o[j] = g[j] * sigmoid(g[j]) * u[j];
  }
}

/* silu'(g) = σ(g)·(1 + g·(1 − σ(g))) */
void kern_swiglu_backward(float *restrict dgate, float *restrict dup, const float *restrict dout,
                          const float *restrict gate, const float *restrict up, int N, int F,
                          int ld_in) {
  for (int n = 0; n < N; n++) {
    const float *restrict g = gate + (size_t)n * ld_in, *restrict u = up + (size_t)n * ld_in;
    const float *restrict d = dout + (size_t)n * F;
    float *restrict dg = dgate + (size_t)n * ld_in, *restrict du = dup + (size_t)n * ld_in;
    int j = 0;
    for (; j + W <= F; j += W)
      for (int l = 0; l < W; l++) {
        const float gg = g[j + l], s = sigmoid(gg);
        du[j + l] = d[j + l] * gg * s;
        dg[j + l] = d[j + l] * u[j + l] * s * (1.0f + gg * (1.0f - s));
      }
    for (; j < F; j++) {
      const float gg = g[j], s = sigmoid(gg);
      du[j] = d[j] * gg * s;
      dg[j] = d[j] * u[j] * s * (1.0f + gg * (1.0f - s));
    }
  }
}

/* ---------------------------------------------------------------- softmax */

/* Valid columns of row r.  valid0 < 0 can leave a row with none; such a row
 * is written as zeros rather than 0/0. */
static inline int n_valid(int r, int cols, int valid0) {
  const long v = (long)valid0 + r + 1;
  return v < 0 ? 0 : v < cols ? (int)v : cols;
}

void kern_softmax_forward(float *p, const float *s, int rows, int cols, int ld, float scale,
                          int valid0) {
  for (int r = 0; r < rows; r++) {
    const float *sr = s + (size_t)r * ld;
    float *pr = p + (size_t)r * ld;
    const int nv = n_valid(r, cols, valid0);
    if (nv > 0) {
      /* Shift by max(scale*s), not scale*max(s): correct for scale < 0 too. */
      const float m = max_scaled(sr, nv, scale);
      const double tot = pr == sr ? exp_row_inplace(pr, nv, scale, m, 1.0f)
                                  : exp_row(pr, sr, nv, scale, m, 1.0f);
      /* tot >= 1: the maximum contributes exp(0). */
      scale_row(pr, nv, (float)(1.0 / tot));
    }
    for (int j = nv; j < cols; j++) pr[j] = 0.0f;
  }
}

static void softmax_bwd_row(float *restrict ds, const float *restrict dp,
                            const float *restrict p, int n, float scale, float dot) {
  int j = 0;
  for (; j + W <= n; j += W)
    for (int l = 0; l < W; l++) ds[j + l] = scale * p[j + l] * (dp[j + l] - dot);
  for (; j < n; j++) ds[j] = scale * p[j] * (dp[j] - dot);
}

static void softmax_bwd_row_inplace(float *restrict g, const float *restrict p, int n,
                                    float scale, float dot) {
  int j = 0;
  for (; j + W <= n; j += W)
    for (int l = 0; l < W; l++) g[j + l] = scale * p[j + l] * (g[j + l] - dot);
  for (; j < n; j++) g[j] = scale * p[j] * (g[j] - dot);
}

void kern_attn_block_forward(float *s, int rows, int cols, int ld, float scale, int valid0,
                             float *m, float *l, float *corr) {
  for (int r = 0; r < rows; r++) {
    float *sr = s + (size_t)r * ld;
    const int nv = n_valid(r, cols, valid0);
    const float mb = nv > 0 ? max_scaled(sr, nv, scale) : -INFINITY;
    const float mn = mb > m[r] ? mb : m[r];
    if (mn == -INFINITY) { /* nothing seen yet (cannot happen with valid0 >= 0) */
      corr[r] = 1.0f;
      for (int j = 0; j < cols; j++) sr[j] = 0.0f;
      continue;
    }
    corr[r] = m[r] == -INFINITY ? 0.0f : exp_fast(m[r] - mn);
    const double tot = nv > 0 ? exp_row_inplace(sr, nv, scale, mn, 1.0f) : 0.0;
    for (int j = nv; j < cols; j++) sr[j] = 0.0f;
    l[r] = l[r] * corr[r] + (float)tot;
    m[r] = mn;
  }
}

void kern_attn_block_backward(float *s, float *dp, int rows, int cols, int ld, float scale,
                              int valid0, const float *lse, const float *delta) {
  for (int r = 0; r < rows; r++) {
    float *sr = s + (size_t)r * ld, *dr = dp + (size_t)r * ld;
    const int nv = n_valid(r, cols, valid0);
    if (nv > 0) {
      exp_row_inplace(sr, nv, scale, lse[r], 1.0f);
      softmax_bwd_row_inplace(dr, sr, nv, scale, delta[r]);
    }
    for (int j = nv > 0 ? nv : 0; j < cols; j++) sr[j] = dr[j] = 0.0f;
  }
}

void kern_softmax_backward(float *ds, const float *dp, const float *p, int rows, int cols, int ld,
                           float scale, int valid0) {
  for (int r = 0; r < rows; r++) {
    const float *dpr = dp + (size_t)r * ld, *pr = p + (size_t)r * ld;
    float *dsr = ds + (size_t)r * ld;
    const int nv = n_valid(r, cols, valid0);
    const float dot = (float)dot2(dpr, pr, nv);
    if (dsr == dpr)
      softmax_bwd_row_inplace(dsr, pr, nv, scale, dot);
    else
      softmax_bwd_row(dsr, dpr, pr, nv, scale, dot);
    for (int j = nv; j < cols; j++) dsr[j] = 0.0f;
  }
}

/* ---------------------------------------------------------------- cross-entropy */

/* With V = 0 (an empty shard) a row reports max = -inf, sumexp = 0,
 * argmax = -1, so any merge by max / logsumexp ignores it. */
void kern_ce_stats(float *rowmax, float *sumexp, float *tgt, int *argmax, const float *logits,
                   const int *targets, int N, int V, int ld, int v0) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = logits + (size_t)n * ld;
    const float mx = V > 0 ? max_scaled(x, V, 1.0f) : -INFINITY;
    if (rowmax) rowmax[n] = mx;
    if (argmax) {
      /* First occurrence of the max = lowest id on ties, within the shard;
       * merging shards by (max, lower global id) keeps the rule global. */
      const int j = V > 0 ? first_equal(x, V, mx) : -1;
      argmax[n] = j >= 0 ? j + v0 : -1;
    }
    if (sumexp) sumexp[n] = V > 0 ? (float)sum_exp(x, V, mx) : 0.0f;
    if (tgt) {
      const int t = targets ? targets[n] - v0 : -1;
      tgt[n] = t >= 0 && t < V ? x[t] : -INFINITY;
    }
  }
}

/* The target logit is read before an in-place row is overwritten, and both
 * paths do the same arithmetic, so in place and out of place give the same
 * bits.  The target gets dlogp·(1 − p_t) rather than −dlogp·p_t + dlogp. */
void kern_ce_backward(float *dlogits, const float *logits, const float *lse, const int *targets,
                      const float *dlogp, int N, int V, int ld, int v0) {
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * ld;
    float *d = dlogits + (size_t)n * ld;
    const float g = dlogp[n], ls = lse[n];
    if (g == 0.0f) {
      memset(d, 0, sizeof(float) * (size_t)(V > 0 ? V : 0));
      continue;
    }
    const int t = targets[n] - v0;
    const int own = t >= 0 && t < V;
    const float xt = own ? x[t] : 0.0f;
    if (d == x)
      exp_row_inplace(d, V, 1.0f, ls, -g);
    else
      exp_row(d, x, V, 1.0f, ls, -g);
    if (own) d[t] = g * (1.0f - exp_fast(xt - ls));
  }
}
