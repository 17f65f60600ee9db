/* iftrain ckpt info | verify | convert */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "iftrain/ckpt.h"
#include "iftrain/data.h"

const char app_ckpt_help[] =
    "Inspect, verify or convert checkpoints.\n"
    "  iftrain ckpt info CKPT [--config]     step, layout, run id, model, optimizer, size\n"
    "                                        (--config: the stored effective config)\n"
    "  iftrain ckpt verify CKPT              every tensor's presence, dtype, global shape\n"
    "                                        and checksum; exit 2 naming the first damaged one\n"
    "  iftrain ckpt convert CKPT -o OUT [--model-only] [--dtype float32] [--no-verify]\n"
    "                                        export /model only (for inference) after verifying\n"
    "                                        every checksum; float32 is the only precision\n"
    "CKPT is a checkpoint file, a checkpoint directory (its 'latest'), or a 'latest' file.\n"
    "Exit codes: 0 ok, 2 missing or damaged input, 3 not available, 1 other failure.\n";

int app_ckpt(int argc, char **argv) {
  const char *out = NULL, *dtype = "float32";
  int show_config = 0, model_only = 0, no_verify = 0;
  const app_optdef opts[] = {
      APP_FLAG("config", &show_config),
      APP_FLAG("model-only", &model_only),
      APP_FLAG("no-verify", &no_verify),
      APP_STR_L(NULL, 'o', &out),
      APP_STR("dtype", &dtype),
      {0}};
  const app_opts spec = {.cmd = "ckpt", .opts = opts, .max_args = 2};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (argc < 3) {
    if (core_rank() == 0) fprintf(stderr, "iftrain ckpt: give info|verify|convert and a FILE\n\n%s", app_ckpt_help);
    return APP_EXIT_USAGE;
  }
  const char *verb = argv[1], *file = argv[2];
  const int verify = !no_verify;
  if (core_rank() != 0) return APP_EXIT_OK; /* a serial tool */
  char path[1100];
  ift_status st = ckpt_resolve_any(path, sizeof path, file);
  if (st != IFT_OK) return app_exit_code(st);
  file = path;
  if (!strcmp(verb, "info")) {
    st = ckpt_info(file, stdout, show_config);
  } else if (!strcmp(verb, "verify")) {
    st = ckpt_verify(file, stdout, NULL);
  } else if (!strcmp(verb, "convert")) {
    if (!out) {
      fprintf(stderr, "iftrain ckpt convert: -o OUT is required\n");
      return APP_EXIT_USAGE;
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (data_same_file(file, out) || data_same_file(file, tmp)) {
      /* the export writes OUT.tmp and renames it over OUT: the full
       * checkpoint would be replaced by its /model alone */
      fprintf(stderr, "iftrain ckpt convert: -o %s is the input checkpoint %s itself; refusing to overwrite it\n"
                      "  hint: export to a new file, e.g. -o model.h5 (the checkpoint was not changed)\n",
              out, file);
      return APP_EXIT_USAGE;
    }
    if (strcmp(dtype, "float32")) {
      fprintf(stderr, "iftrain ckpt convert: --dtype %s is not available in this build (float32 only)\n", dtype);
      return APP_EXIT_UNIMPL;
    }
    if (!model_only) {
      fprintf(stderr, "iftrain ckpt convert: only --model-only export is available in this build\n");
      return APP_EXIT_UNIMPL;
    }
    st = verify ? ckpt_verify(file, NULL, NULL) : IFT_OK;
    if (st == IFT_OK) st = ckpt_export_model(file, out);
    if (st == IFT_OK) printf("%s: /model exported to %s\n", file, out);
  } else {
    fprintf(stderr, "iftrain ckpt: unknown action '%s' (info, verify, convert)\n", verb);
    return APP_EXIT_USAGE;
  }
  return app_exit_code(st);
}
