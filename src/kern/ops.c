/* Fused elementwise kernels of the Llama block with their backward passes.
 * Inner loops are plain float loops over restrict pointers so the compiler
 * vectorises them; row reductions accumulate in float lanes (vectorised) and
 * combine in double where the result feeds a division (rstd, softmax sums). */
#include <math.h>
#include <string.h>

#include "iftrain/kern.h"

/* ---------------------------------------------------------------- RMSNorm */

void kern_rmsnorm_forward(float *restrict out, float *restrict rstd, const float *restrict x,
                          const float *restrict w, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    float *o = out + (size_t)n * C;
    float ss = 0.0f;
    for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
    float r = (float)(1.0 / sqrt((double)ss / C + eps));
    rstd[n] = r;
    for (int c = 0; c < C; c++) o[c] = xr[c] * r * w[c];
  }
}

/* y = w ⊙ x·r, r = (mean x² + eps)^-1/2:
 * dx = r·(w⊙dy) − x·r³/C·Σ(w⊙dy⊙x);  dw += Σ_n dy⊙x·r */
void kern_rmsnorm_backward(float *restrict dx, float *restrict dw, const float *restrict dout,
                           const float *restrict x, const float *restrict w,
                           const float *restrict rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *d = dx + (size_t)n * C;
    const float r = rstd[n];
    float dot = 0.0f;
    for (int c = 0; c < C; c++) dot += w[c] * dy[c] * xr[c];
    const float k = dot * r * r * r / (float)C;
    for (int c = 0; c < C; c++) {
      d[c] = r * w[c] * dy[c] - k * xr[c];
      dw[c] += dy[c] * xr[c] * r;
    }
  }
}

/* ---------------------------------------------------------------- RoPE */

void kern_rope_table(float *cosv, float *sinv, int T, int D, double theta) {
  const int h = D / 2;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < h; i++) {
      double inv = pow(theta, -2.0 * i / D);
      double a = (double)t * inv;
      cosv[(size_t)t * h + i] = (float)cos(a);
      sinv[(size_t)t * h + i] = (float)sin(a);
    }
}

/* (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin); sign = -1 gives the
 * inverse rotation, which is the adjoint (rotations are orthogonal). */
static void rope_apply(float *x, const float *cosv, const float *sinv, int B, int T, int H, int D,
                       int ld, float sign) {
  const int h = D / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float *restrict cs = cosv + (size_t)t * h, *restrict sn = sinv + (size_t)t * h;
      float *row = x + ((size_t)b * T + t) * ld;
      for (int hd = 0; hd < H; hd++) {
        float *restrict x1 = row + (size_t)hd * D, *restrict x2 = x1 + h;
        for (int i = 0; i < h; i++) {
          float a = x1[i], c = x2[i], s = sign * sn[i];
          x1[i] = a * cs[i] - c * s;
          x2[i] = c * cs[i] + a * s;
        }
      }
    }
}

void kern_rope_forward(float *x, const float *cosv, const float *sinv, int B, int T, int H, int D,
                       int ld) {
  rope_apply(x, cosv, sinv, B, T, H, D, ld, 1.0f);
}
void kern_rope_backward(float *dx, const float *cosv, const float *sinv, int B, int T, int H,
                        int D, int ld) {
  rope_apply(dx, cosv, sinv, B, T, H, D, ld, -1.0f);
}

/* ---------------------------------------------------------------- SwiGLU */

void kern_swiglu_forward(float *restrict out, const float *restrict gate, const float *restrict up,
                         int N, int F, int ld_in) {
  for (int n = 0; n < N; n++) {
    const float *g = gate + (size_t)n * ld_in, *u = up + (size_t)n * ld_in;
    float *o = out + (size_t)n * F;
    for (int j = 0; j < F; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
  }
}

/* silu(g) = g σ(g), silu'(g) = σ(g) (1 + g (1 − σ(g))) */
void kern_swiglu_backward(float *restrict dgate, float *restrict dup, const float *restrict dout,
                          const float *restrict gate, const float *restrict up, int N, int F,
                          int ld_in) {
  for (int n = 0; n < N; n++) {
    const float *g = gate + (size_t)n * ld_in, *u = up + (size_t)n * ld_in, *d = dout + (size_t)n * F;
    float *dg = dgate + (size_t)n * ld_in, *du = dup + (size_t)n * ld_in;
    for (int j = 0; j < F; j++) {
      float s = 1.0f / (1.0f + expf(-g[j]));
      du[j] = d[j] * g[j] * s;
      dg[j] = d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    }
  }
}

/* ---------------------------------------------------------------- softmax */

void kern_softmax_forward(float *p, const float *s, int rows, int cols, int ld, float scale,
                          int valid0) {
  for (int r = 0; r < rows; r++) {
    const float *sr = s + (size_t)r * ld;
    float *pr = p + (size_t)r * ld;
    int nv = valid0 + r + 1 < cols ? valid0 + r + 1 : cols;
    float mx = -INFINITY;
    for (int j = 0; j < nv; j++) mx = sr[j] > mx ? sr[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < nv; j++) {
      float e = expf(scale * (sr[j] - mx));
      pr[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < nv; j++) pr[j] *= inv;
    for (int j = nv; j < cols; j++) pr[j] = 0.0f;
  }
}

void kern_softmax_backward(float *ds, const float *dp, const float *p, int rows, int cols, int ld,
                           float scale, int valid0) {
  for (int r = 0; r < rows; r++) {
    const float *dpr = dp + (size_t)r * ld, *pr = p + (size_t)r * ld;
    float *dsr = ds + (size_t)r * ld;
    int nv = valid0 + r + 1 < cols ? valid0 + r + 1 : cols;
    float dot = 0.0f;
    for (int j = 0; j < nv; j++) dot += dpr[j] * pr[j];
    for (int j = 0; j < nv; j++) dsr[j] = scale * pr[j] * (dpr[j] - dot);
    for (int j = nv; j < cols; j++) dsr[j] = 0.0f;
  }
}

/* ---------------------------------------------------------------- cross-entropy */

void kern_ce_stats(float *rowmax, float *sumexp, float *tgt, int *argmax, const float *logits,
                   const int *targets, int N, int V, int ld, int v0) {
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * ld;
    float mx = x[0];
    int am = 0;
    /* strict > keeps the lowest id on ties */
    for (int v = 1; v < V; v++)
      if (x[v] > mx) {
        mx = x[v];
        am = v;
      }
    if (rowmax) rowmax[n] = mx;
    if (argmax) argmax[n] = am + v0;
    if (sumexp) {
      float s = 0.0f;
      for (int v = 0; v < V; v++) s += expf(x[v] - mx);
      sumexp[n] = s;
    }
    if (tgt) {
      int t = targets ? targets[n] - v0 : -1;
      tgt[n] = (t >= 0 && t < V) ? x[t] : -INFINITY;
    }
  }
}

void kern_ce_backward(float *dlogits, const float *logits, const float *lse, const int *targets,
                      const float *dlogp, int N, int V, int ld, int v0) {
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * ld;
    float *d = dlogits + (size_t)n * ld;
    const float g = dlogp[n], l = lse[n];
    if (g == 0.0f) {
      memset(d, 0, sizeof(float) * (size_t)V);
      continue;
    }
    for (int v = 0; v < V; v++) d[v] = -g * expf(x[v] - l);
    int t = targets[n] - v0;
    if (t >= 0 && t < V) d[t] += g;
  }
}
