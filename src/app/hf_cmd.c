/* iftrain import: a Hugging Face model directory -> an iftrain checkpoint
 * (step 0, weights only), every rank reading its own shards. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/app.h"
#include "iftrain/ckpt.h"
#include "iftrain/dist.h"

const char app_import_help[] =
    "Import a Hugging Face model directory (config.json + model.safetensors, or the\n"
    "shards of model.safetensors.index.json; F32, BF16 or F16) as a step-0 checkpoint.\n"
    "  iftrain import HF_DIR -o CKPT.h5 [--tp N]\n\n"
    "A directory is also accepted directly wherever a checkpoint is read\n"
    "(train --ckpt.init=HF_DIR, eval/generate --ckpt HF_DIR). Under mpirun each rank\n"
    "reads only the blocks of its own shards (--tp N: tensor-parallel ranks, 1D), so a\n"
    "model larger than one node's memory imports on many. Llama and Mistral models;\n"
    "what this build cannot represent (biases, another activation, a sliding window\n"
    "shorter than the context, head_dim != hidden/heads, rope_scaling) is refused by\n"
    "name. CKPT.h5 must not exist. Exit codes: 0 ok, 2 bad input, 3 not supported\n"
    "yet, 1 other failure.\n";

int app_import(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  int tp = 1;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if ((v = app_opt(argc, argv, &i, "tp"))) {
      if (app_opt_int("--tp", v, APP_GE(1), &tp) != IFT_OK) return APP_EXIT_USAGE;
    } else if (argv[i][0] != '-' && !in) in = argv[i];
    else {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain import: unexpected argument '%s'\n  hint: iftrain import --help\n", argv[i]);
      return APP_EXIT_USAGE;
    }
  }
  if (!in || !out) {
    if (core_rank() == 0) fprintf(stderr, "iftrain import: give HF_DIR and -o CKPT.h5\n\n%s", app_import_help);
    return APP_EXIT_USAGE;
  }
  ift_status st = IFT_OK;
  if (!ckpt_is_hf_dir(in)) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "config.json",
                  "give a Hugging Face model directory (it holds config.json and the safetensors)",
                  "'%s' is not a directory with a readable config.json", in);
    st = IFT_ERR_IO;
  } else if (access(out, F_OK) == 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "-o", "remove it first or choose another name",
                  "'%s' exists; import does not overwrite files", out);
    st = IFT_ERR_IO;
  }
  if (st != IFT_OK) return app_exit_code(st);
  dist_grid g;
  model *m = NULL;
  model_config c;
  const double t0 = core_now();
  if ((st = dist_grid_create(&g, MPI_COMM_WORLD, tp)) != IFT_OK) return app_exit_code(st);
  st = ckpt_hf_config(in, &c, NULL);
  if (st == IFT_OK) st = model_create(&m, &c, g.tp, 1, 2);
  st = dist_agree(st, g.world);
  if (st == IFT_OK) st = ckpt_hf_load(in, m, g.world);
  const double t1 = core_now();
  ckpt_meta meta = {.step = 0, .dp = g.dp_size, .tp = g.tp_size, .config_text = ""};
  if (st == IFT_OK) st = ckpt_save_file(out, m, NULL, &meta, g.world, g.dp_rank);
  if (st == IFT_OK && g.rank == 0)
    printf("%s -> %s: %zu parameters, read in %.2f s, written in %.2f s\n", in, out,
           model_nparams_global(m), t1 - t0, core_now() - t1);
  if (m) model_destroy(m);
  dist_grid_destroy(&g);
  return app_exit_code(st);
}
