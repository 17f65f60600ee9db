/* iftrain bench ckpt: collective checkpoint write and read bandwidth of a
 * large model, beside a dd write of the same size to the same directory. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/ckpt.h"
#include "app_config.h"
#include "iftrain/dist.h"

static const char ckpt_bench_help[] =
    "iftrain bench ckpt — checkpoint write/read bandwidth vs dd (run under mpirun -n P)\n\n"
    "  --dir=DIR       where to write (default bench/out/ckpt); removed afterwards\n"
    "  --layers=N      decoder layers of the benchmark model (default 10: hidden 1024,\n"
    "                  intermediate 2816, 128 M parameters = 515 MB in float32)\n"
    "  --reps=N        repetitions, best reported (default 2)\n"
    "  --json          one JSON object per result\n\n"
    "The model is split over the ranks with tensor parallelism (each rank writes its\n"
    "hyperslabs collectively); write time includes H5Fflush, close and rename; the dd\n"
    "figure is 'dd bs=8M conv=fsync' of the same size to the same directory.\n";

static double dd_rate(const char *dir, size_t bytes) {
  char cmd[1400];
  size_t mb = (bytes + (8 << 20) - 1) / (8 << 20);
  snprintf(cmd, sizeof cmd, "dd if=/dev/zero of=%s/dd.bin bs=8M count=%zu conv=fsync 2>/dev/null", dir, mb);
  double t0 = core_now();
  if (system(cmd) != 0) return 0;
  double dt = core_now() - t0;
  snprintf(cmd, sizeof cmd, "%s/dd.bin", dir);
  unlink(cmd);
  return mb * 8.0 * 1048576.0 / dt / 1e9;
}

int app_bench_ckpt(int argc, char **argv) {
  const char *dir = "bench/out/ckpt";
  int layers = 10, reps = 2, json = 0;
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_STR("dir", &dir),
      APP_INT("layers", &layers, APP_GE(1)),
      APP_INT("reps", &reps, APP_GE(1)),
      APP_FLAG("json", &json),
      {0}};
  const app_opts spec = {.cmd = "bench ckpt", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (core_rank() == 0) fputs(ckpt_bench_help, stdout);
    return APP_EXIT_OK;
  }
  int P, rank;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  model_config c = model_config_default();
  c.hidden_size = 1024;
  c.intermediate_size = 2816;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 16;
  c.tie_word_embeddings = 0;
  model *m;
  if (model_create(&m, &c, P > 1 ? MPI_COMM_WORLD : MPI_COMM_NULL, 1, 2) != IFT_OK) return APP_EXIT_FAIL;
  model_init_weights(m, 1);
  const size_t bytes = model_nparams_global(m) * sizeof(float);
  if (rank == 0) core_mkdir_p(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  double wbest = 0, rbest = 0;
  ift_status st = IFT_OK;
  char path[1100];
  for (int r = 0; r < reps && st == IFT_OK; r++) {
    ckpt_meta meta = {.step = 1, .dp = 1, .tp = P, .run_id = "bench-ckpt"};
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = core_now();
    st = ckpt_save(dir, 1, m, NULL, &meta, MPI_COMM_WORLD, 0, path);
    double tw = core_now() - t0;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = core_now();
    if (st == IFT_OK) st = ckpt_load(path, m, NULL, NULL, MPI_COMM_WORLD, 0);
    double tr = core_now() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &tw, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &tr, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (bytes / tw / 1e9 > wbest) wbest = bytes / tw / 1e9;
    if (bytes / tr / 1e9 > rbest) rbest = bytes / tr / 1e9;
  }
  double dd = rank == 0 ? dd_rate(dir, bytes) : 0;
  if (rank == 0) {
    char f[1200];
    snprintf(f, sizeof f, "%s/latest", dir);
    unlink(f);
    unlink(path);
    rmdir(dir);
    if (st == IFT_OK) {
      if (json)
        printf("{\"bench\":\"ckpt\",\"ranks\":%d,\"bytes\":%zu,\"write_gb_per_s\":%.3f,"
               "\"read_gb_per_s\":%.3f,\"dd_gb_per_s\":%.3f,\"write_over_dd\":%.3f}\n",
               P, bytes, wbest, rbest, dd, dd > 0 ? wbest / dd : 0);
      else
        printf("ckpt %d rank%s, %.0f MB: write %.3f GB/s, read %.3f GB/s, dd (fsync) %.3f GB/s, "
               "write/dd %.0f%%\n",
               P, P > 1 ? "s" : "", bytes / 1e6, wbest, rbest, dd, dd > 0 ? 100 * wbest / dd : 0);
    }
  }
  model_destroy(m);
  return st == IFT_OK ? APP_EXIT_OK : APP_EXIT_FAIL;
}
