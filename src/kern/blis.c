/* BLIS wrappers and the choice of BLIS kernel set.
 *
 * Debian's BLIS 0.9 recognises AMD families 0x17/0x19 only, so on newer CPUs
 * it falls back to the generic kernels (~5x slower than its AVX-512 "skx"
 * kernels on the same core).  BLIS offers no public call to switch the kernel
 * set; it reads BLIS_ARCH_TYPE once, at its initialisation.  So the choice is
 * made here, before the first BLIS call, and exported in the environment
 * (children such as ScaLAPACK's calls into libblas.so.3 then bind to the same
 * BLIS and the same choice).  See docs/architecture.md, "BLIS kernel set". */
#include "config.h"
#include <blis.h>
#include <cpuid.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iftrain/kern.h"

static int g_selected = -1;
static kern_sel_how g_how = KERN_SEL_CPUID;
static int g_threads = 1;

static const struct {
  int id;
  const char *name;
} arch_names[] = {{KERN_ARCH_SKX, "skx"},         {KERN_ARCH_KNL, "knl"},
                  {KERN_ARCH_HASWELL, "haswell"}, {KERN_ARCH_ZEN3, "zen3"},
                  {KERN_ARCH_ZEN2, "zen2"},       {KERN_ARCH_ZEN, "zen"},
                  {KERN_ARCH_GENERIC, "generic"}};

const char *kern_arch_name(int id) {
  for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
    if (arch_names[i].id == id) return arch_names[i].name;
  return "unknown";
}

int kern_arch_parse(const char *s) {
  if (!s || !*s) return -1;
  if (isdigit((unsigned char)s[0])) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end) return -1;
    return strcmp(kern_arch_name((int)v), "unknown") ? (int)v : -1;
  }
  for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
    if (!strcasecmp(arch_names[i].name, s)) return arch_names[i].id;
  return -1;
}

const char *kern_sel_how_str(kern_sel_how h) {
  switch (h) {
  case KERN_SEL_ENV: return "BLIS_ARCH_TYPE from the environment";
  case KERN_SEL_OPTION: return "--kernels option";
  case KERN_SEL_CPUID: return "CPU flags";
  case KERN_SEL_PROBE: return "calibration probe";
  }
  return "?";
}

static int cpu_has_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
static int cpu_has_avx2fma(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static unsigned cpu_family(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  unsigned fam = (a >> 8) & 0xf;
  if (fam == 0xf) fam += (a >> 20) & 0xff;
  return fam;
}

static int cpu_is_amd(void) {
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
}

/* What BLIS 0.9's own detection picks (bli_cpuid.c): Intel by features,
 * AMD only for the families it knows, generic otherwise. */
int kern_arch_blis_default(void) {
  if (cpu_is_amd()) {
    unsigned f = cpu_family();
    if (f == 0x19 && cpu_has_avx2fma()) return KERN_ARCH_ZEN3;
    if (f == 0x17 && cpu_has_avx2fma()) return KERN_ARCH_ZEN2;
    return KERN_ARCH_GENERIC;
  }
  if (cpu_has_avx512()) return KERN_ARCH_SKX;
  if (cpu_has_avx2fma()) return KERN_ARCH_HASWELL;
  return KERN_ARCH_GENERIC;
}

/* Fastest set the CPU can run, by measurement: on Intel AVX-512 and on AMD
 * Zen 5 (family 0x1A, full-width AVX-512 units) the skx kernels win (Zen 5:
 * skx 137-168 GFLOP/s/core vs zen3 93-96); on Zen 4 (family 0x19, AVX-512
 * executed as two 256-bit halves) the zen3 kernels are as fast or faster
 * (sgemm 2048^3: zen3 106 vs skx 99; 512^3: 104 vs 83).  CPU flags, not a
 * timing, decide, so every rank of a job picks the same set. */
static int arch_from_cpuid(void) {
  if (cpu_is_amd() && cpu_family() == 0x19 && cpu_has_avx2fma()) return KERN_ARCH_ZEN3;
  if (cpu_has_avx512()) return KERN_ARCH_SKX;
  if (cpu_has_avx2fma()) return cpu_is_amd() ? KERN_ARCH_ZEN3 : KERN_ARCH_HASWELL;
  return KERN_ARCH_GENERIC;
}

static double time_sgemm(int n, int reps) {
  float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n),
        *c = malloc(sizeof(float) * (size_t)n * n);
  if (!a || !b || !c) {
    free(a); free(b); free(c);
    return 0;
  }
  for (size_t i = 0; i < (size_t)n * n; i++) {
    a[i] = (float)((i * 7) % 13) * 0.01f;
    b[i] = (float)((i * 5) % 11) * 0.01f;
    c[i] = 0;
  }
  double best = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = core_now();
    kern_sgemm(0, 0, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    double dt = core_now() - t0;
    double gf = 2.0 * n * (double)n * n / dt * 1e-9;
    if (gf > best) best = gf;
  }
  free(a); free(b); free(c);
  return best;
}

/* Measure each candidate kernel set in a child process (BLIS fixes its
 * choice at initialisation, so each set needs a fresh process).  A child
 * that dies (illegal instruction) simply loses. */
static int arch_from_probe(void) {
  int cands[4], nc = 0;
  if (cpu_has_avx512()) cands[nc++] = KERN_ARCH_SKX;
  if (cpu_has_avx2fma()) {
    cands[nc++] = KERN_ARCH_ZEN3;
    cands[nc++] = KERN_ARCH_HASWELL;
  }
  cands[nc++] = KERN_ARCH_GENERIC;
  int best = KERN_ARCH_GENERIC;
  double best_gf = -1;
  for (int i = 0; i < nc; i++) {
    int fd[2];
    if (pipe(fd)) continue;
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      char v[16];
      snprintf(v, sizeof v, "%d", cands[i]);
      setenv("BLIS_ARCH_TYPE", v, 1);
      bli_thread_set_num_threads(1);
      double gf = time_sgemm(384, 3);
      if (write(fd[1], &gf, sizeof gf) != sizeof gf) _exit(1);
      _exit(0);
    }
    close(fd[1]);
    double gf = -1;
    if (pid > 0) {
      if (read(fd[0], &gf, sizeof gf) != sizeof gf) gf = -1;
      waitpid(pid, NULL, 0);
    }
    close(fd[0]);
    if (gf > best_gf) {
      best_gf = gf;
      best = cands[i];
    }
  }
  return best;
}

ift_status kern_select_arch(const char *request) {
  const char *env = getenv("BLIS_ARCH_TYPE");
  if (request && *request && strcmp(request, "auto") && strcmp(request, "probe")) {
    int id = kern_arch_parse(request);
    IFT_REQUIRE(id >= 0, IFT_ERR_ARG,
                "use one of auto, probe, skx, haswell, zen3, zen2, zen, knl, generic (or a BLIS id)",
                "unknown BLIS kernel set '%s'", request);
    g_selected = id;
    g_how = KERN_SEL_OPTION;
  } else if (request && !strcmp(request, "probe")) {
    g_selected = arch_from_probe();
    g_how = KERN_SEL_PROBE;
  } else if (env && *env) {
    int id = kern_arch_parse(env);
    IFT_REQUIRE(id >= 0, IFT_ERR_ARG,
                "unset BLIS_ARCH_TYPE or give a BLIS 0.9 id: 0 skx, 3 haswell, 6 zen3, 25 generic",
                "BLIS_ARCH_TYPE='%s' is not a kernel set BLIS 0.9 knows (ids >= 26 abort BLIS)", env);
    g_selected = id;
    g_how = KERN_SEL_ENV;
  } else {
    g_selected = arch_from_cpuid();
    g_how = KERN_SEL_CPUID;
  }
  if (g_selected == KERN_ARCH_SKX || g_selected == KERN_ARCH_KNL)
    IFT_REQUIRE(cpu_has_avx512(), IFT_ERR_ARG, "choose --kernels=auto on this CPU",
                "kernel set %s needs AVX-512, which this CPU lacks", kern_arch_name(g_selected));
  char v[16];
  snprintf(v, sizeof v, "%d", g_selected);
  setenv("BLIS_ARCH_TYPE", v, 1);
  return IFT_OK;
}

int kern_arch_selected(void) { return g_selected; }
kern_sel_how kern_arch_how(void) { return g_how; }

int kern_arch_active(void) {
  bli_init();
  return (int)bli_arch_query_id();
}

void kern_set_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  bli_thread_set_num_threads(n);
}
int kern_threads(void) { return g_threads; }
const char *kern_blis_version(void) { return bli_info_get_version_str(); }

void kern_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (m == 1) {
    /* one row (a decoded token): c = alpha op(B)^T a + beta c as a
     * matrix-vector product, which streams op(B) once; sgemm would pack
     * all of it first (the 49152 x 576 LM head: 58 ms against 13 ms) */
    bli_sgemv(tb ? BLIS_NO_TRANSPOSE : BLIS_TRANSPOSE, BLIS_NO_CONJUGATE, tb ? n : k, tb ? k : n, &alpha,
              (float *)B, ldb, 1, (float *)A, ta ? lda : 1, &beta, C, 1);
    return;
  }
  bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            m, n, k, &alpha, (float *)A, lda, 1, (float *)B, ldb, 1, &beta, C, ldc, 1);
}

double kern_gemm_gflops(int n, int reps, int threads) {
  int saved = g_threads;
  kern_set_threads(threads);
  double gf = time_sgemm(n, reps);
  kern_set_threads(saved);
  return gf;
}

/* The peak is the best of many short runs (a run that shares its core
 * with another process only lowers its own figure), kept as the maximum
 * over every measurement of the process; IFT_GEMM_PEAK (GFLOP/s) fixes it,
 * e.g. to a figure of `iftrain bench gemm` on a quiet node. */
static double g_peak;

static double peak_env(void) {
  const char *e = getenv("IFT_GEMM_PEAK");
  char *end;
  const double v = e ? strtod(e, &end) : 0;
  return e && end != e && v > 0 ? v : 0;
}

double kern_gemm_peak(void) {
  if (g_peak <= 0) g_peak = peak_env();
  if (g_peak <= 0) g_peak = kern_gemm_gflops(1024, 16, 1);
  return g_peak;
}

double kern_gemm_peak_remeasure(void) {
  if (peak_env() > 0) return kern_gemm_peak();
  const double p = kern_gemm_gflops(1024, 16, 1);
  if (p > g_peak) g_peak = p;
  return g_peak;
}
