/* iftrain bench comm: MPI ping-pong latency/bandwidth and MPI_Allreduce
 * time over message sizes — the measurements the α–β performance model in
 * bench/perf_model.py is fitted to. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "iftrain/dist.h"

static const char comm_help[] =
    "iftrain bench comm — ping-pong and all-reduce sweeps (run under mpirun -n 2 or more)\n\n"
    "  --max-bytes=N   largest message (default 67108864)\n"
    "  --reps=N        repetitions per size, the fastest is reported (default 20)\n"
    "  --json          one JSON object per measurement\n\n"
    "pingpong: ranks 0 and 1, one-way time = round trip / 2; allreduce: MPI_SUM of\n"
    "floats over all ranks, time of the slowest rank.\n";

int app_bench_comm(int argc, char **argv) {
  long maxb = 64L << 20;
  int reps = 20, json = 0, rank, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_LONG("max-bytes", &maxb, APP_IN(4, INT_MAX)), /* an MPI count */
      APP_INT("reps", &reps, APP_GE(1)),
      APP_FLAG("json", &json),
      {0}};
  const app_opts spec = {.cmd = "bench comm", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (rank == 0) fputs(comm_help, stdout);
    return APP_EXIT_OK;
  }
  if (P < 2) {
    if (rank == 0) fprintf(stderr, "iftrain bench comm: run under mpirun -n 2 (or more)\n");
    return APP_EXIT_USAGE;
  }
  char *buf = core_alloc((size_t)maxb), *buf2 = core_alloc((size_t)maxb);
  if (!buf || !buf2) return APP_EXIT_FAIL;
  if (rank == 0 && !json) printf("%-10s %12s %12s %10s\n", "bench", "bytes", "seconds", "GB/s");
  for (long n = 4; n <= maxb; n *= 4) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = core_now();
      if (rank == 0) {
        MPI_Send(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
        MPI_Recv(buf2, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      } else if (rank == 1) {
        MPI_Recv(buf2, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
      }
      double dt = (core_now() - t0) / 2;
      if (dt < best) best = dt;
    }
    if (rank == 0) {
      if (json) printf("{\"bench\":\"pingpong\",\"bytes\":%ld,\"seconds\":%.9f,\"gb_per_s\":%.4f}\n", n, best, n / best / 1e9);
      else printf("%-10s %12ld %12.3e %10.3f\n", "pingpong", n, best, n / best / 1e9);
    }
  }
  for (long n = 4; n <= maxb; n *= 4) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = core_now();
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)(n / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double dt = core_now() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (dt < best) best = dt;
    }
    if (rank == 0) {
      if (json)
        printf("{\"bench\":\"allreduce\",\"ranks\":%d,\"bytes\":%ld,\"seconds\":%.9f,\"gb_per_s\":%.4f}\n", P, n, best, n / best / 1e9);
      else printf("%-10s %12ld %12.3e %10.3f\n", "allreduce", n, best, n / best / 1e9);
    }
  }
  core_free(buf);
  core_free(buf2);
  return APP_EXIT_OK;
}
