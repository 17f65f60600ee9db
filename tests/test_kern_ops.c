/* kern elementwise ops: each backward against central finite differences of
 * a double-precision reference of its forward; forward against the same
 * reference; RoPE orthogonality; softmax masking; cross-entropy ties,
 * vocab shards and in-place backward. */
#include <string.h>

#include "harness.h"
#include "iftrain/kern.h"

static double rnd(uint64_t s, uint64_t i) { return rng_normal(99, s, i); }

/* Generic check: analytic = Σ_i c_i d out_i / d in_j computed by the float
 * backward; reference = FD of Σ c·f_double(in). */
typedef double (*ref_fn)(const double *in, const double *c, const void *ctx);

static void fd_check(const char *what, ref_fn f, const void *ctx, double *in, int n,
                     const double *c, const float *analytic) {
  double worst = 0;
  for (int j = 0; j < n; j++) {
    double s = in[j], h = 1e-5;
    in[j] = s + h;
    double p = f(in, c, ctx);
    in[j] = s - h;
    double q = f(in, c, ctx);
    in[j] = s;
    double fd = (p - q) / (2 * h);
    double e = fabs(fd - analytic[j]) / (fabs(fd) + 1e-3);
    if (e > worst) worst = e;
  }
  if (worst > 1e-4) fprintf(stderr, "\n  %s: worst relative error %.3g", what, worst);
  CU_ASSERT(worst <= 1e-4);
}

/* ---- RMSNorm */
typedef struct { int N, C; const double *w; double eps; } rms_ctx;
static double rms_ref(const double *x, const double *c, const void *vctx) {
  const rms_ctx *k = vctx;
  double s = 0;
  for (int n = 0; n < k->N; n++) {
    double ss = 0;
    for (int i = 0; i < k->C; i++) ss += x[n * k->C + i] * x[n * k->C + i];
    double r = 1 / sqrt(ss / k->C + k->eps);
    for (int i = 0; i < k->C; i++) s += c[n * k->C + i] * x[n * k->C + i] * r * k->w[i];
  }
  return s;
}
static double rms_ref_w(const double *w, const double *c, const void *vctx) {
  rms_ctx k = *(const rms_ctx *)vctx;
  const double *x = k.w; /* swapped roles: ctx.w holds x here */
  double s = 0;
  for (int n = 0; n < k.N; n++) {
    double ss = 0;
    for (int i = 0; i < k.C; i++) ss += x[n * k.C + i] * x[n * k.C + i];
    double r = 1 / sqrt(ss / k.C + k.eps);
    for (int i = 0; i < k.C; i++) s += c[n * k.C + i] * x[n * k.C + i] * r * w[i];
  }
  return s;
}

static void test_rmsnorm(void) {
  enum { N = 3, C = 16 };
  double x[N * C], w[C], c[N * C];
  float xf[N * C], wf[C], cf[N * C], out[N * C], rstd[N], dx[N * C], dw[C] = {0};
  for (int i = 0; i < N * C; i++) { x[i] = rnd(1, i); xf[i] = (float)x[i]; c[i] = rnd(2, i); cf[i] = (float)c[i]; }
  for (int i = 0; i < C; i++) { w[i] = 1 + 0.3 * rnd(3, i); wf[i] = (float)w[i]; }
  kern_rmsnorm_forward(out, rstd, xf, wf, N, C, 1e-5f);
  double dot = 0;
  for (int i = 0; i < N * C; i++) dot += c[i] * out[i];
  rms_ctx k = {N, C, w, 1e-5};
  IFT_ASSERT_CLOSE(dot, rms_ref(x, c, &k), 1e-5, 1e-6);
  kern_rmsnorm_backward(dx, dw, cf, xf, wf, rstd, N, C);
  fd_check("rmsnorm dx", rms_ref, &k, x, N * C, c, dx);
  rms_ctx kw = {N, C, x, 1e-5};
  fd_check("rmsnorm dw", rms_ref_w, &kw, w, C, c, dw);
}

/* ---- RoPE */
static void test_rope(void) {
  enum { B = 2, T = 5, H = 3, D = 8, LD = 30 };
  float cs[T * D / 2], sn[T * D / 2], x[B * T * LD], y[B * T * LD];
  float inv[D / 2];
  for (int i = 0; i < D / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / D);
  kern_rope_table(cs, sn, T, D, inv);
  for (int i = 0; i < B * T * LD; i++) x[i] = (float)rnd(4, i);
  memcpy(y, x, sizeof x);
  kern_rope_forward(y, cs, sn, B, T, H, D, LD, NULL);
  /* position 0 is the identity; columns past H*D untouched */
  for (int i = 0; i < H * D; i++) CU_ASSERT_EQUAL(y[i], x[i]);
  for (int r = 0; r < B * T; r++)
    for (int i = H * D; i < LD; i++) CU_ASSERT_EQUAL(y[r * LD + i], x[r * LD + i]);
  /* HF rotate_half at t = 3, head 1, i = 2: angle 3·10000^(−4/8) */
  double a = 3 * pow(10000.0, -4.0 / 8), x1 = x[3 * LD + D + 2], x2 = x[3 * LD + D + 2 + D / 2];
  IFT_ASSERT_CLOSE(y[3 * LD + D + 2], x1 * cos(a) - x2 * sin(a), 0, 1e-5);
  IFT_ASSERT_CLOSE(y[3 * LD + D + 2 + D / 2], x2 * cos(a) + x1 * sin(a), 0, 1e-5);
  /* backward is the adjoint = inverse of an orthogonal map */
  kern_rope_backward(y, cs, sn, B, T, H, D, LD, NULL);
  for (int i = 0; i < B * T * LD; i++) IFT_ASSERT_CLOSE(y[i], x[i], 0, 1e-5);
  /* explicit positions (packed documents restart at 0): row r rotates as
   * position pos[r] does without them */
  const int pos[B * T] = {0, 1, 2, 0, 1, 4, 3, 0, 1, 2};
  float z[B * T * LD];
  memcpy(y, x, sizeof x);
  kern_rope_forward(y, cs, sn, B, T, H, D, LD, pos);
  for (int r = 0; r < B * T; r++) {
    const int src = (r / T) * T + pos[r]; /* the row of this batch row at that position */
    memcpy(z, x, sizeof x);
    memcpy(z + src * LD, x + r * LD, sizeof(float) * LD);
    kern_rope_forward(z, cs, sn, B, T, H, D, LD, NULL);
    for (int i = 0; i < LD; i++) CU_ASSERT_EQUAL(y[r * LD + i], z[src * LD + i]);
  }
  kern_rope_backward(y, cs, sn, B, T, H, D, LD, pos);
  for (int i = 0; i < B * T * LD; i++) IFT_ASSERT_CLOSE(y[i], x[i], 0, 1e-5);
}

/* ---- SwiGLU */
typedef struct { int N, F; const double *other; int wrt_gate; } sw_ctx;
static double sw_ref(const double *in, const double *c, const void *vctx) {
  const sw_ctx *k = vctx;
  double s = 0;
  for (int i = 0; i < k->N * k->F; i++) {
    double g = k->wrt_gate ? in[i] : k->other[i], u = k->wrt_gate ? k->other[i] : in[i];
    s += c[i] * g / (1 + exp(-g)) * u;
  }
  return s;
}
static void test_swiglu(void) {
  enum { N = 3, F = 10 };
  double g[N * F], u[N * F], c[N * F];
  float gu[N * 2 * F], cf[N * F], out[N * F], dgu[N * 2 * F];
  for (int i = 0; i < N * F; i++) {
    g[i] = 2 * rnd(5, i); u[i] = rnd(6, i); c[i] = rnd(7, i); cf[i] = (float)c[i];
    gu[(i / F) * 2 * F + i % F] = (float)g[i];
    gu[(i / F) * 2 * F + F + i % F] = (float)u[i];
  }
  kern_swiglu_forward(out, gu, gu + F, N, F, 2 * F);
  double dot = 0;
  for (int i = 0; i < N * F; i++) dot += c[i] * out[i];
  sw_ctx kg = {N, F, u, 1}, ku = {N, F, g, 0};
  IFT_ASSERT_CLOSE(dot, sw_ref(g, c, &kg), 1e-5, 1e-6);
  kern_swiglu_backward(dgu, dgu + F, cf, gu, gu + F, N, F, 2 * F);
  float dg[N * F], du[N * F];
  for (int i = 0; i < N * F; i++) { dg[i] = dgu[(i / F) * 2 * F + i % F]; du[i] = dgu[(i / F) * 2 * F + F + i % F]; }
  fd_check("swiglu dgate", sw_ref, &kg, g, N * F, c, dg);
  fd_check("swiglu dup", sw_ref, &ku, u, N * F, c, du);
}

/* ---- softmax (causal rows) */
typedef struct { int R, C, v0; double scale; } sm_ctx;
static double sm_ref(const double *s, const double *c, const void *vctx) {
  const sm_ctx *k = vctx;
  double tot = 0;
  for (int r = 0; r < k->R; r++) {
    int nv = k->v0 + r + 1 < k->C ? k->v0 + r + 1 : k->C;
    double mx = -1e300, z = 0;
    for (int j = 0; j < nv; j++) mx = fmax(mx, s[r * k->C + j]);
    for (int j = 0; j < nv; j++) z += exp(k->scale * (s[r * k->C + j] - mx));
    for (int j = 0; j < nv; j++) tot += c[r * k->C + j] * exp(k->scale * (s[r * k->C + j] - mx)) / z;
  }
  return tot;
}
static void test_softmax(void) {
  enum { R = 4, C = 7 };
  double s[R * C], c[R * C];
  float sf[R * C], p[R * C], cf[R * C], ds[R * C];
  for (int i = 0; i < R * C; i++) { s[i] = 2 * rnd(8, i); sf[i] = (float)s[i]; c[i] = rnd(9, i); cf[i] = (float)c[i]; }
  kern_softmax_forward(p, sf, R, C, C, 0.7f, 2);
  for (int r = 0; r < R; r++) {
    double sum = 0;
    int nv = 2 + r + 1 < C ? 2 + r + 1 : C;
    for (int j = 0; j < C; j++) sum += p[r * C + j];
    IFT_ASSERT_CLOSE(sum, 1.0, 0, 1e-6);
    for (int j = nv; j < C; j++) CU_ASSERT_EQUAL(p[r * C + j], 0.0f);
  }
  sm_ctx k = {R, C, 2, 0.7};
  kern_softmax_backward(ds, cf, p, R, C, C, 0.7f, 2);
  fd_check("softmax", sm_ref, &k, s, R * C, c, ds);
}

/* ---- cross-entropy */
static void test_ce(void) {
  enum { N = 3, V = 12 };
  float x[N * V], mx[N], se[N], tg[N], lse[N], d1[N * V], d2[N * V], dl[N] = {0.5f, -1.0f, 0.0f};
  int tgt[N] = {3, 11, 0}, am[N];
  for (int i = 0; i < N * V; i++) x[i] = (float)rnd(10, i);
  x[5] = x[7] = 10.0f; /* tie in row 0: the lower id wins */
  kern_ce_stats(mx, se, tg, am, x, tgt, N, V, V, 0);
  CU_ASSERT_EQUAL(am[0], 5);
  for (int n = 0; n < N; n++) {
    double ref = 0, m = -1e30;
    for (int v = 0; v < V; v++) m = fmax(m, x[n * V + v]);
    for (int v = 0; v < V; v++) ref += exp(x[n * V + v] - m);
    lse[n] = mx[n] + logf(se[n]);
    IFT_ASSERT_CLOSE(lse[n], m + log(ref), 0, 1e-5);
    IFT_ASSERT_CLOSE(tg[n], x[n * V + tgt[n]], 0, 0);
  }
  /* two vocab shards merged by logsumexp give the same statistics */
  float m1[N], s1[N], t1[N], m2[N], s2[N], t2[N];
  int a1[N], a2[N];
  kern_ce_stats(m1, s1, t1, a1, x, tgt, N, V / 2, V, 0);
  kern_ce_stats(m2, s2, t2, a2, x + V / 2, tgt, N, V / 2, V, V / 2);
  for (int n = 0; n < N; n++) {
    float m = fmaxf(m1[n], m2[n]);
    float l = m + logf(s1[n] * expf(m1[n] - m) + s2[n] * expf(m2[n] - m));
    IFT_ASSERT_CLOSE(l, lse[n], 0, 1e-5);
    IFT_ASSERT_CLOSE(fmaxf(t1[n], t2[n]), tg[n], 0, 0);
    int am2 = m2[n] > m1[n] ? a2[n] : a1[n];
    CU_ASSERT_EQUAL(am2, am[n]);
  }
  /* backward: d logp_t / d x_v = 1[v=t] − softmax_v; in place = out of place */
  kern_ce_backward(d1, x, lse, tgt, dl, N, V, V, 0);
  memcpy(d2, x, sizeof x);
  kern_ce_backward(d2, d2, lse, tgt, dl, N, V, V, 0);
  CU_ASSERT_EQUAL(memcmp(d1, d2, sizeof d1), 0);
  for (int n = 0; n < N; n++)
    for (int v = 0; v < V; v++) {
      double sm = exp((double)x[n * V + v] - lse[n]);
      IFT_ASSERT_CLOSE(d1[n * V + v], dl[n] * ((v == tgt[n]) - sm), 0, 1e-6);
    }
}

static CU_TestInfo tests[] = {{"rmsnorm forward/backward", test_rmsnorm},
                              {"rope: HF rotate_half, identity at 0, adjoint", test_rope},
                              {"swiglu forward/backward", test_swiglu},
                              {"causal softmax forward/backward", test_softmax},
                              {"cross-entropy stats, shards, backward", test_ce},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("kern_ops", tests)
