/* iftrain bench gemm: local BLIS sgemm rates for the selected kernel set and
 * for the set BLIS would pick by itself (measured in a child process, since
 * BLIS fixes its kernels at initialisation), and PBLAS psgemm on 1x2 and 2x1
 * BLACS grids when run on two or more ranks. */
#include "config.h"
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"
#include "iftrain/scalapack.h"

extern char **environ;

static const char gemm_help[] =
    "iftrain bench gemm — sgemm GFLOP/s of BLIS (default vs selected kernels) and\n"
    "PBLAS psgemm (under mpirun -n 2 or more: 1x2 and 2x1 BLACS grids).\n\n"
    "  --sizes=LIST         square sizes m=n=k for sgemm (default 256,512,1024,2048)\n"
    "  --threads-list=LIST  BLIS threads per test (default 1,2; 1 under mpirun)\n"
    "  --psgemm-sizes=LIST  sizes for psgemm (default 1024,2048)\n"
    "  --nb=N               psgemm block size (default 128)\n"
    "  --pblas-block=LIST   PBLAS logical blocks (PILAENV) to compare (default 32,512; 32 = reference PBLAS)\n"
    "  --reps=N             repetitions, best is reported (default 3)\n"
    "  --no-default         skip the runs with BLIS's own default and the generic kernels\n"
    "  --json               one JSON object per result instead of a table\n\n"
    "Columns: grid/pb = BLACS grid / PBLAS logical block; GFLOP/s = 2mnk/time;\n"
    "'x peak1' = rate / single-core peak of the\n"
    "selected kernels (largest 1-thread rate measured here).\n";

typedef struct {
  int sizes[16], nsizes;
  int threads[8], nthreads;
  int psizes[8], npsizes;
  int pblas[8], npblas; /* PBLAS logical blocks (PILAENV) */
  int nb, reps, json, no_default, no_header;
  double peak; /* given to the child so its ratios use the parent's peak */
} gemm_opts;

/* pb: PBLAS logical block of a psgemm row (0 for local gemm rows) */
static void row(const gemm_opts *o, const char *bench, const char *kern, int threads, int ranks,
                const char *grid, int pb, int n, double gf, double peak) {
  if (o->json) {
    printf("{\"bench\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"ranks\":%d,\"grid\":\"%s\","
           "\"pblas_block\":%d,\"m\":%d,\"n\":%d,\"k\":%d,\"gflops\":%.2f,\"frac_peak\":%.4f,"
           "\"peak_gflops\":%.2f}\n",
           bench, kern, threads, ranks, grid, pb, n, n, n, gf, peak > 0 ? gf / peak : 0, peak);
  } else {
    char g[32];
    if (pb) snprintf(g, sizeof g, "%s/%d", grid, pb);
    else snprintf(g, sizeof g, "%s", grid);
    printf("%-7s %-8s %7d %5d %-9s %6d %6d %6d %9.1f %7.2f\n", bench, kern, threads, ranks, g, n,
           n, n, gf, peak > 0 ? gf / peak : 0);
  }
  fflush(stdout);
}

static void header(const gemm_opts *o) {
  if (o->json || o->no_header) return;
  printf("%-7s %-8s %7s %5s %-9s %6s %6s %6s %9s %7s\n", "bench", "kernels", "threads", "ranks",
         "grid/pb", "m", "n", "k", "GFLOP/s", "x peak1");
}

static double local_runs(const gemm_opts *o, int max_threads) {
  const char *kern = kern_arch_name(kern_arch_active());
  double peak = o->peak;
  /* 1-thread rows first: their best is the single-core peak of this set. */
  for (int t = 0; t < o->nthreads; t++) {
    if (o->threads[t] > max_threads) continue;
    for (int s = 0; s < o->nsizes; s++) {
      int n = o->sizes[s];
      int reps = n >= 2048 ? (o->reps < 2 ? o->reps : 2) : o->reps;
      double gf = kern_gemm_gflops(n, reps, o->threads[t]);
      if (o->threads[t] == 1 && o->peak <= 0 && gf > peak) peak = gf;
      row(o, "gemm", kern, o->threads[t], 1, "-", 0, n, gf, peak);
    }
  }
  return peak;
}

static void spawn_set(const gemm_opts *o, const char *self, double peak, int def) {
  char karg[32], parg[48], sarg[128], targ[64], rarg[32];
  snprintf(karg, sizeof karg, "--kernels=%d", def);
  snprintf(parg, sizeof parg, "--peak=%.6f", peak);
  int off = snprintf(sarg, sizeof sarg, "--sizes=");
  for (int i = 0; i < o->nsizes; i++)
    off += snprintf(sarg + off, sizeof sarg - (size_t)off, "%s%d", i ? "," : "", o->sizes[i]);
  off = snprintf(targ, sizeof targ, "--threads-list=");
  for (int i = 0; i < o->nthreads; i++)
    off += snprintf(targ + off, sizeof targ - (size_t)off, "%s%d", i ? "," : "", o->threads[i]);
  snprintf(rarg, sizeof rarg, "--reps=%d", o->reps);
  char *args[] = {(char *)self, "bench", "gemm", karg, "--no-mpi", "--no-default", "--no-header",
                  parg, sarg, targ, rarg, o->json ? "--json" : NULL, NULL};
  fflush(stdout);
  pid_t pid;
  if (posix_spawn(&pid, self, NULL, NULL, args, environ) != 0) {
    IFT_LOG0("bench gemm: could not start the child for BLIS's default kernels; skipped");
    return;
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    IFT_LOG0("bench gemm: the run with BLIS's default kernels failed (status %d)", st);
}

/* psgemm on a pr x pc grid over the first two ranks of the job. */
static ift_status psgemm_runs(const gemm_opts *o, MPI_Comm comm2, double peak) {
  static const int shapes[2][2] = {{1, 2}, {2, 1}};
  const char *kern = kern_arch_name(kern_arch_active());
  for (int g = 0; g < 2; g++) {
    int ctx, pr = shapes[g][0], pc = shapes[g][1], np, nq, myr, myc;
    IFT_TRY(dist_blacs_grid(&ctx, comm2, pr, pc));
    Cblacs_gridinfo(ctx, &np, &nq, &myr, &myc);
    for (int q = 0; q < o->npblas; q++)
    for (int s = 0; s < o->npsizes; s++) {
      dist_set_pblas_block(o->pblas[q]);
      int n = o->psizes[s], desc[3][9], lr, lc;
      float *buf[3];
      for (int m = 0; m < 3; m++) {
        IFT_TRY(dist_desc(desc[m], &lr, &lc, n, n, o->nb, o->nb, ctx));
        buf[m] = core_alloc(sizeof(float) * (size_t)lr * (size_t)lc);
        IFT_REQUIRE(buf[m], IFT_ERR_NOMEM, "use smaller --psgemm-sizes", "psgemm %d^3", n);
        for (size_t i = 0; i < (size_t)lr * lc; i++) buf[m][i] = (float)((i * 7 + (size_t)m) % 13) * 0.01f;
      }
      double best = 1e30;
      for (int r = 0; r < o->reps; r++) {
        MPI_Barrier(comm2);
        double t0 = core_now();
        dist_psgemm('N', 'N', n, n, n, 1.f, buf[0], desc[0], buf[1], desc[1], 0.f, buf[2], desc[2]);
        MPI_Barrier(comm2);
        double dt = core_now() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm2);
        if (dt < best) best = dt;
      }
      char grid[16];
      snprintf(grid, sizeof grid, "%dx%d", pr, pc);
      if (core_rank() == 0)
        row(o, "psgemm", kern, 1, 2, grid, o->pblas[q], n, 2.0 * n * (double)n * n / best * 1e-9, peak);
      for (int m = 0; m < 3; m++) core_free(buf[m]);
    }
    Cblacs_gridexit(ctx);
  }
  return IFT_OK;
}

int app_bench_gemm(int argc, char **argv) {
  gemm_opts o = {.sizes = {256, 512, 1024, 2048}, .nsizes = 4, .threads = {1, 2}, .nthreads = 2,
                 .psizes = {1024, 2048}, .npsizes = 2, .pblas = {32, 512}, .npblas = 2, .nb = 128,
                 .reps = 3};
  const char *sizes = NULL, *threads = NULL, *psizes = NULL, *pblas = NULL;
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_STR("sizes", &sizes),
      APP_STR("threads-list", &threads),
      APP_STR("psgemm-sizes", &psizes),
      APP_STR("pblas-block", &pblas),
      APP_INT("nb", &o.nb, APP_GE(1)),
      APP_INT("reps", &o.reps, APP_GE(1)),
      APP_DOUBLE("peak", &o.peak, APP_GE(0)),
      APP_FLAG("json", &o.json),
      APP_FLAG("no-default", &o.no_default),
      APP_FLAG("no-header", &o.no_header),
      {0}};
  const app_opts spec = {.cmd = "bench gemm", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (core_rank() == 0) fputs(gemm_help, stdout);
    return APP_EXIT_OK;
  }
  if (sizes && (o.nsizes = app_parse_int_list(sizes, o.sizes, 16)) <= 0)
    return app_bad_option(spec.cmd, "sizes", sizes);
  if (threads && (o.nthreads = app_parse_int_list(threads, o.threads, 8)) <= 0)
    return app_bad_option(spec.cmd, "threads-list", threads);
  if (psizes && (o.npsizes = app_parse_int_list(psizes, o.psizes, 8)) <= 0)
    return app_bad_option(spec.cmd, "psgemm-sizes", psizes);
  if (pblas && (o.npblas = app_parse_int_list(pblas, o.pblas, 8)) <= 0)
    return app_bad_option(spec.cmd, "pblas-block", pblas);
  const int threads_given = threads != NULL;
  int size = 1, rank = 0;
  if (dist_initialized()) {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
  /* Under mpirun every rank is bound to one core and the others poll in MPI:
   * more BLIS threads than cores per rank would only measure contention. */
  int max_threads = 64;
  if (size > 1 && !threads_given) max_threads = 1;
  double peak = o.peak;
  if (rank == 0) {
    if (!o.no_header && !o.json)
      printf("# BLIS %s: selected kernels %s (%s); BLIS alone would pick %s\n", kern_blis_version(),
             kern_arch_name(kern_arch_active()), kern_sel_how_str(kern_arch_how()),
             kern_arch_name(kern_arch_blis_default()));
    header(&o);
    peak = local_runs(&o, max_threads);
    /* Compare with what BLIS would run by itself and with the portable
     * generic kernels (the baseline the speed-up is quoted against). */
    int others[2] = {kern_arch_blis_default(), KERN_ARCH_GENERIC};
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    for (int i = 0; i < 2 && !o.no_default && n > 0; i++) {
      self[n] = 0;
      if (others[i] == kern_arch_active() || (i == 1 && others[0] == others[1])) continue;
      spawn_set(&o, self, peak, others[i]);
    }
  }
  if (size >= 2) {
    MPI_Bcast(&peak, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Comm comm2;
    MPI_Comm_split(MPI_COMM_WORLD, rank < 2 ? 0 : MPI_UNDEFINED, rank, &comm2);
    if (comm2 != MPI_COMM_NULL) {
      ift_status s = psgemm_runs(&o, comm2, peak);
      MPI_Comm_free(&comm2);
      if (s != IFT_OK) return APP_EXIT_FAIL;
    }
    MPI_Barrier(MPI_COMM_WORLD);
  } else if (rank == 0 && !o.no_header && !o.json) {
    printf("# psgemm: run under 'mpirun -n 2' to measure PBLAS on 1x2 and 2x1 grids\n");
  }
  return APP_EXIT_OK;
}
