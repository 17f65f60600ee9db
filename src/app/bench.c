#include <stdio.h>
#include <string.h>

#include "app.h"

static const struct {
  const char *name;
  int (*run)(int, char **);
  const char *summary;
} benches[] = {
    {"gemm", app_bench_gemm, "BLIS sgemm and PBLAS psgemm GFLOP/s"},
    {"comm", app_bench_comm, "MPI ping-pong and all-reduce sweeps (alpha-beta model input)"},
    {"ckpt", app_bench_ckpt, "checkpoint write/read GB/s beside dd"},
    {"scaling", app_bench_scaling, "tokens/s per DP x TP layout, strong and weak, time split"},
    {"step", app_bench_step, "SFT and IFT optimizer step: tokens/s, GFLOP/s, MFU, memory"},
    {"tok", app_bench_tok, "tokenizer.json encode MB/s and tokens/s on one core"},
};

int app_bench(int argc, char **argv) {
  if (argc < 2) {
    if (core_rank() == 0) {
      fprintf(stderr, "iftrain bench: which benchmark?\n");
      for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        fprintf(stderr, "  %-8s %s\n", benches[i].name, benches[i].summary);
    }
    return APP_EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
    if (!strcmp(argv[1], benches[i].name)) return benches[i].run(argc - 1, argv + 1);
  if (core_rank() == 0)
    fprintf(stderr, "iftrain bench: unknown benchmark '%s'\n  hint: iftrain bench --help\n", argv[1]);
  return APP_EXIT_USAGE;
}
