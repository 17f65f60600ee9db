/* Tiled causal attention (src/model/attn.c) against a float64 reference of
 * the textbook formula: the output, the log-sum-exp and the gradients of
 * q, k, v, for sequence lengths below, at and across the block size (1,
 * 5, 64, 65, 130, 200, 300, 600: one to several query and key blocks) and
 * head widths 8 and 64; the gradients also by
 * finite differences of the float64 reference (which checks the
 * reference).  Kept: only the output and one log-sum-exp per row; dk and dv
 * are added to, as heads sharing a key/value head need. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/attn.h"
#include "harness.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) { /* xorshift64*, in [-1, 1) */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* float64 reference: o, lse; with dO also dq, dk, dv (all [T, D], ld D) */
static void ref(const double *q, const double *k, const double *v, int T, int D, double scale, double *o,
                double *lse, const double *dO, double *dq, double *dk, double *dv) {
  double *p = malloc(sizeof(double) * (size_t)T), *dp = malloc(sizeof(double) * (size_t)T);
  if (dq) {
    memset(dk, 0, sizeof(double) * (size_t)T * D);
    memset(dv, 0, sizeof(double) * (size_t)T * D);
  }
  for (int i = 0; i < T; i++) {
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j <= i; j++) {
      double s = 0.0;
      for (int d = 0; d < D; d++) s += q[i * D + d] * k[j * D + d];
      p[j] = scale * s;
      mx = p[j] > mx ? p[j] : mx;
    }
    for (int j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
    for (int j = 0; j <= i; j++) p[j] /= sum;
    lse[i] = mx + log(sum);
    for (int d = 0; d < D; d++) {
      double a = 0.0;
      for (int j = 0; j <= i; j++) a += p[j] * v[j * D + d];
      o[i * D + d] = a;
    }
    if (!dq) continue;
    double dot = 0.0;
    for (int j = 0; j <= i; j++) {
      double a = 0.0;
      for (int d = 0; d < D; d++) a += dO[i * D + d] * v[j * D + d];
      dp[j] = a;
      dot += a * p[j];
    }
    for (int d = 0; d < D; d++) dq[i * D + d] = 0.0;
    for (int j = 0; j <= i; j++) {
      const double ds = scale * p[j] * (dp[j] - dot);
      for (int d = 0; d < D; d++) {
        dq[i * D + d] += ds * k[j * D + d];
        dk[j * D + d] += ds * q[i * D + d];
        dv[j * D + d] += p[j] * dO[i * D + d];
      }
    }
  }
  free(p);
  free(dp);
}

static double loss_ref(const double *q, const double *k, const double *v, int T, int D, double scale,
                       const double *dO, double *o, double *lse) {
  ref(q, k, v, T, D, scale, o, lse, NULL, NULL, NULL, NULL);
  double L = 0.0;
  for (int i = 0; i < T * D; i++) L += dO[i] * o[i];
  return L;
}

static double maxrel(const float *a, const double *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num = fmax(num, fabs(a[i] - b[i]));
    den = fmax(den, fabs(b[i]));
  }
  return num / (den > 0 ? den : 1.0);
}

static void one(int T, int D) {
  const int ld = 3 * D + 5, ldo = D + 3; /* strided, as in the fused qkv rows */
  const size_t n = (size_t)T * D;
  double *q = malloc(sizeof(double) * n * 10);
  double *k = q + n, *v = k + n, *dO = v + n, *o = dO + n, *lse = o + n, *dq = lse + n, *dk = dq + n,
         *dv = dk + n, *tmp = dv + n;
  float *qkv = calloc((size_t)T * ld, sizeof(float)), *fo = calloc((size_t)T * ldo, sizeof(float));
  float *fdO = calloc((size_t)T * ldo, sizeof(float)), *flse = calloc((size_t)T, sizeof(float));
  float *g = calloc((size_t)T * ld, sizeof(float)), *scr = malloc(sizeof(float) * attn_scratch_floats());
  const double scale = 1.0 / sqrt((double)D);
  for (size_t i = 0; i < n; i++) {
    /* scores of a few units: a peaked softmax, as in trained models */
    q[i] = 2.0 * urand();
    k[i] = 2.0 * urand();
    v[i] = urand();
    dO[i] = urand();
  }
  for (int t = 0; t < T; t++)
    for (int d = 0; d < D; d++) { /* the float inputs, and the reference on exactly them */
      qkv[t * ld + d] = (float)q[t * D + d];
      qkv[t * ld + D + d] = (float)k[t * D + d];
      qkv[t * ld + 2 * D + 1 + d] = (float)v[t * D + d];
      fdO[t * ldo + d] = (float)dO[t * D + d];
      q[t * D + d] = qkv[t * ld + d];
      k[t * D + d] = qkv[t * ld + D + d];
      v[t * D + d] = qkv[t * ld + 2 * D + 1 + d];
      dO[t * D + d] = fdO[t * ldo + d];
    }
  ref(q, k, v, T, D, scale, o, lse, dO, dq, dk, dv);
  attn_forward(qkv, qkv + D, qkv + 2 * D + 1, ld, fo, ldo, flse, T, D, (float)scale, scr);
  float *of = calloc(n, sizeof(float));
  for (int t = 0; t < T; t++)
    for (int d = 0; d < D; d++) of[t * D + d] = fo[t * ldo + d];
  const double eo = maxrel(of, o, n), el = maxrel(flse, lse, (size_t)T);
  /* dk, dv are added to: start them at 1 and take it off after */
  for (int t = 0; t < T; t++)
    for (int d = 0; d < D; d++) g[t * ld + D + d] = g[t * ld + 2 * D + 1 + d] = 1.0f;
  attn_backward(qkv, qkv + D, qkv + 2 * D + 1, ld, fo, fdO, ldo, flse, g, g + D, g + 2 * D + 1, T, D,
                (float)scale, scr);
  float *gq = calloc(n * 3, sizeof(float)), *gk = gq + n, *gv = gk + n;
  for (int t = 0; t < T; t++)
    for (int d = 0; d < D; d++) {
      gq[t * D + d] = g[t * ld + d];
      gk[t * D + d] = g[t * ld + D + d] - 1.0f;
      gv[t * D + d] = g[t * ld + 2 * D + 1 + d] - 1.0f;
    }
  const double eq = maxrel(gq, dq, n), ek = maxrel(gk, dk, n), ev = maxrel(gv, dv, n);
  printf("\n    T %3d D %2d: max rel. error out %.1e lse %.1e dq %.1e dk %.1e dv %.1e", T, D, eo, el, eq, ek, ev);
  CU_ASSERT(eo < 1e-5 && el < 1e-5);
  CU_ASSERT(eq < 5e-5 && ek < 5e-5 && ev < 5e-5);
  /* the reference's gradients by central differences (a few elements) */
  double worst = 0.0;
  for (int s = 0; s < 6; s++) {
    double *x = s % 3 == 0 ? q : s % 3 == 1 ? k : v, *gx = s % 3 == 0 ? dq : s % 3 == 1 ? dk : dv;
    const size_t i = (size_t)((urand() + 1.0) / 2.0 * (double)n) % n;
    const double h = 1e-6, x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss_ref(q, k, v, T, D, scale, dO, o, tmp);
    x[i] = x0 - h;
    const double lm = loss_ref(q, k, v, T, D, scale, dO, o, tmp);
    x[i] = x0;
    const double fd = (lp - lm) / (2 * h);
    worst = fmax(worst, fabs(fd - gx[i]) / (fabs(gx[i]) + 1e-3));
  }
  CU_ASSERT(worst < 1e-5);
  free(q);
  free(qkv);
  free(fo);
  free(fdO);
  free(flse);
  free(g);
  free(scr);
  free(of);
  free(gq);
}

static void test_attn(void) {
  static const int Ts[] = {1, 5, 64, 65, 130, 200, 300, 600};
  for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) {
    one(Ts[i], 8);
    one(Ts[i], 64);
  }
}

/* A changed kernel (no causal mask, a wrong rescale) must show: the last
 * row's output against the mean of all values when scores are equal. */
static void test_uniform(void) {
  const int T = 150, D = 4, ld = 3 * D;
  float *qkv = calloc((size_t)T * ld, sizeof(float)), *o = calloc((size_t)T * D, sizeof(float));
  float *lse = calloc((size_t)T, sizeof(float)), *scr = malloc(sizeof(float) * attn_scratch_floats());
  for (int t = 0; t < T; t++) qkv[t * ld + 2 * D] = (float)t; /* q = k = 0: uniform over the prefix */
  attn_forward(qkv, qkv + D, qkv + 2 * D, ld, o, D, lse, T, D, 0.5f, scr);
  for (int t = 0; t < T; t++) {
    IFT_ASSERT_CLOSE(o[t * D], t / 2.0, 1e-5, 1e-5); /* mean of 0..t */
    IFT_ASSERT_CLOSE(lse[t], log(t + 1.0), 1e-5, 1e-6);
  }
  free(qkv);
  free(o);
  free(lse);
  free(scr);
}

static CU_TestInfo tests[] = {{"tiled attention = float64 reference (out, lse, dq, dk, dv; FD)", test_attn},
                              {"uniform scores: the mean of the causal prefix", test_uniform},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("attn", tests)
