#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "iftrain/app.h"

app_global app_g;

static const char train_help[] =
    "Train a Llama-family model on an HDF5 data set with IFT, SFT, or a preference\n"
    "loss on its /chosen + /rejected pairs (train.loss = dpo|ipo|orpo|simpo; DPO and IPO\n"
    "need the reference cache of iftrain prep --ref-logp). Recipes: data/recipes/*.ini.\n"
    "  iftrain train [--config FILE] [--section.key=value ...]\n"
    "  iftrain train --help-config      every configuration key with its default\n"
    "  iftrain train --help-config=markdown   the same as the tables of docs/config.md\n\n"
    "Without --config the built-in default job runs (see README). The effective\n"
    "configuration is printed once and stored in every checkpoint. Rank 0 shows a\n"
    "progress line (step, epoch, loss, lambda, tokens/s, MFU, ETA); metrics.path\n"
    "receives one JSON object per step and one per evaluation.\n"
    "A checkpoint directory belongs to one run (<ckpt.dir>/RUN): a new run refuses\n"
    "one that holds another run's checkpoints; --ckpt.resume=auto continues it.\n"
    "Resumes verify every checksum (ckpt.verify), the model and the schedule keys\n"
    "(ckpt.allow_changes=1 to change them). <ckpt.dir>/exit_status records the end.\n"
    "Exit codes: 0 done, 2 bad input, 75 stopped by SIGUSR1/SIGTERM after writing a\n"
    "checkpoint (requeue), 1 other failure (e.g. disk full).\n";
#define eval_help app_eval_help
#define generate_help app_generate_help
#define prep_help app_prep_help
#define ckpt_help app_ckpt_help
static const char bench_help[] =
    "Benchmarks; each prints a table, or one JSON object per result with --json.\n"
    "  iftrain bench gemm [options]    BLIS sgemm GFLOP/s, default vs selected kernels,\n"
    "                                  1 and 2 threads; under mpirun -n 2 (or more) also\n"
    "                                  PBLAS psgemm on 1x2 and 2x1 BLACS grids\n"
    "  iftrain bench step [options]    SFT and IFT optimizer step on one rank: tokens/s,\n"
    "                                  GFLOP/s, MFU, IFT/SFT ratio, memory\n"
    "  iftrain bench scaling [options] tokens/s per DP x TP layout and model size, strong and\n"
    "                                  weak, compute/comm/idle split, CSV (mpirun -n P)\n"
    "  iftrain bench comm [options]    MPI ping-pong and all-reduce sweeps (mpirun -n 2)\n"
    "  iftrain bench ckpt [options]    checkpoint write/read GB/s beside dd (mpirun -n P)\n"
    "  iftrain bench tok --tokenizer HF_DIR [options]\n"
    "                                  tokenizer encode MB/s and tokens/s on one core, one\n"
    "                                  call per corpus line and per 64 KB chunk\n"
    "Run 'iftrain bench NAME --help' for a benchmark's options.\n";
static const char info_help[] =
    "Print versions of iftrain and its libraries, the BLIS kernel set in use and\n"
    "why, whether HDF5 is parallel, and the MPI layout (every rank's host, pid and\n"
    "cores). Run it under mpirun to see the layout of a job.\n"
    "  iftrain info [--kernels=SET] [--threads=N]\n";

const app_cmd app_cmds[] = {
    {"train", "train a model (IFT, SFT, DPO, IPO, ORPO, SimPO)", train_help, app_train, 1},
    {"eval", "evaluate a checkpoint on a data set", eval_help, app_eval, 1},
    {"generate", "generate text from a checkpoint", generate_help, app_generate, 1},
    {"prep", "JSONL -> HDF5 data set; generate the shipped task", prep_help, app_prep, 1},
    {"ckpt", "checkpoint info | verify | convert", ckpt_help, app_ckpt, 1},
    {"import", "Hugging Face model directory -> checkpoint", app_import_help, app_import, 1},
    {"export", "checkpoint -> Hugging Face model directory", app_export_help, app_export, 1},
    {"tokenize", "encode / decode JSONL with a tokenizer.json", app_tokenize_help, app_tokenize, 1},
    {"bench", "benchmarks (gemm, ...)", bench_help, app_bench, 1},
    {"info", "library versions, BLIS kernels, MPI layout", info_help, app_info, 1},
    {"lake", "Frozen Lake: SFT, IFT, DPO, ORPO policies vs the optimal one", app_lake_help, app_lake, 1},
    {NULL, NULL, NULL, NULL, 0}};

const app_cmd *app_find(const char *name) {
  for (const app_cmd *c = app_cmds; c->name; c++)
    if (!strcmp(c->name, name)) return c;
  return NULL;
}

void app_print_usage(FILE *f) {
  fprintf(f, "iftrain %s — Intuitive Fine-Tuning trainer for decoder-only LMs (MPI)\n\n",
          PACKAGE_VERSION);
  fprintf(f, "usage: iftrain SUBCOMMAND [options]   (under mpirun/srun for several ranks)\n\n");
  for (const app_cmd *c = app_cmds; c->name; c++) fprintf(f, "  %-9s %s\n", c->name, c->summary);
  fprintf(f, "\n  --version   print the version\n"
             "  --help      this text; 'iftrain SUBCOMMAND --help' for a subcommand\n");
}

void app_print_cmd_help(FILE *f, const app_cmd *c) {
  fprintf(f, "iftrain %s — %s\n\n%s\n%s", c->name, c->summary, c->help, APP_GLOBAL_HELP);
  if (c->run == app_unimplemented)
    fprintf(f, "\nNote: '%s' is not implemented in this build yet.\n", c->name);
}

int app_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

const char *app_opt(int argc, char **argv, int *i, const char *name) {
  const char *a = argv[*i];
  if (strncmp(a, "--", 2)) return NULL;
  size_t n = strlen(name);
  if (strncmp(a + 2, name, n)) return NULL;
  if (a[2 + n] == '=') return a + 3 + n;
  if (a[2 + n] == 0 && *i + 1 < argc) {
    (*i)++;
    return argv[*i];
  }
  return NULL;
}

int app_take_int(const char **s, int *out) {
  /* digits only: strtol alone would also take blanks and a sign */
  if (!isdigit((unsigned char)**s)) return -1;
  char *end;
  errno = 0;
  long v = strtol(*s, &end, 10);
  if (errno || v < 1 || v > INT_MAX) return -1;
  *out = (int)v;
  *s = end;
  return 0;
}

int app_take_comma(const char **s) {
  if (**s != ',') return **s ? -1 : 0;
  ++*s;
  return **s ? 0 : -1; /* "64,128," lacks an item */
}

int app_parse_int_list(const char *s, int *out, int n) {
  int c = 0;
  while (*s && c < n)
    if (app_take_int(&s, &out[c++]) || app_take_comma(&s)) return -1;
  return *s ? -1 : c;
}

int app_range_has(app_range r, double v) {
  return isfinite(v) && (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi);
}

void app_range_str(char *out, size_t n, app_range r) {
  if (isinf(r.lo) && isinf(r.hi)) snprintf(out, n, "%s", "");
  else if (isinf(r.hi)) snprintf(out, n, "%s %.15g", r.lo_open ? ">" : ">=", r.lo);
  else if (isinf(r.lo)) snprintf(out, n, "%s %.15g", r.hi_open ? "<" : "<=", r.hi);
  else snprintf(out, n, "%c%.15g, %.15g%c", r.lo_open ? '(' : '[', r.lo, r.hi, r.hi_open ? ')' : ']');
}

ift_status app_range_check(const char *name, double v, app_range r, ift_status err,
                           const char *about) {
  char allowed[80], hint[128];
  app_range_str(allowed, sizeof allowed, r);
  snprintf(hint, sizeof hint, "%s must be %s%s", name, allowed[0] == '[' || allowed[0] == '(' ? "in " : "",
           allowed);
  IFT_REQUIRE(app_range_has(r, v), err, about ? about : hint, "%s = %.15g is out of range (allowed: %s)", name, v,
              allowed);
  return IFT_OK;
}

ift_status app_parse_number(const char *name, const char *text, app_num_type type, app_range r,
                            ift_status err, const char *about, void *out) {
  static const char *const what[] = {[APP_NUM_INT] = "a whole number", [APP_NUM_LONG] = "a whole number",
                                     [APP_NUM_U64] = "a whole number >= 0", [APP_NUM_DOUBLE] = "a number"};
  static const char *const example[] = {[APP_NUM_INT] = "e.g. 64", [APP_NUM_LONG] = "e.g. 1500",
                                        [APP_NUM_U64] = "e.g. 1234", [APP_NUM_DOUBLE] = "e.g. 0.9 or 3e-4"};
  char hint[128];
  snprintf(hint, sizeof hint, "give %s (%s), nothing before or after it", what[type], example[type]);
  IFT_REQUIRE(*text, err, hint, "%s has an empty value", name);
  /* strto* skip leading blanks and stop at the first stray character; both
   * would let "5x" or " 5" through, so the text must be the number exactly */
  int sign_ok = type != APP_NUM_U64 || *text != '-';
  char *end = NULL;
  errno = 0;
  double v;
  long long ll = 0;
  unsigned long long ull = 0;
  if (type == APP_NUM_DOUBLE) v = strtod(text, &end);
  else if (type == APP_NUM_U64) v = (double)(ull = strtoull(text, &end, 10));
  else v = (double)(ll = strtoll(text, &end, 10));
  IFT_REQUIRE(!isspace((unsigned char)*text) && sign_ok && end != text && !*end, err, hint,
              "%s = '%s' is not %s", name, text, what[type]);
  if (type == APP_NUM_DOUBLE) {
    /* an underflow to 0 or a denormal is still a number; the range decides */
    IFT_REQUIRE(isfinite(v), err, hint, "%s = '%s' is not a finite number", name, text);
  } else {
    IFT_REQUIRE(errno != ERANGE, err, hint, "%s = %s does not fit in a 64-bit integer", name, text);
  }
  /* the range before the C type: "allowed: [1, 1024]" says more than "too large" */
  IFT_TRY(app_range_check(name, v, r, err, about));
  if (type == APP_NUM_INT || type == APP_NUM_LONG) {
    static const long long lo[] = {[APP_NUM_INT] = INT_MIN, [APP_NUM_LONG] = LONG_MIN};
    static const long long hi[] = {[APP_NUM_INT] = INT_MAX, [APP_NUM_LONG] = LONG_MAX};
    IFT_REQUIRE(ll >= lo[type] && ll <= hi[type], err, hint, "%s = %s does not fit in a %s", name,
                text, type == APP_NUM_INT ? "32-bit integer" : "long integer");
  }
  switch (type) {
  case APP_NUM_INT: *(int *)out = (int)ll; break;
  case APP_NUM_LONG: *(long *)out = (long)ll; break;
  case APP_NUM_U64: *(uint64_t *)out = (uint64_t)ull; break;
  case APP_NUM_DOUBLE: *(double *)out = v; break;
  }
  return IFT_OK;
}

ift_status app_opt_int(const char *name, const char *value, app_range r, int *out) {
  return app_parse_number(name, value, APP_NUM_INT, r, IFT_ERR_ARG, NULL, out);
}
ift_status app_opt_long(const char *name, const char *value, app_range r, long *out) {
  return app_parse_number(name, value, APP_NUM_LONG, r, IFT_ERR_ARG, NULL, out);
}
ift_status app_opt_double(const char *name, const char *value, app_range r, double *out) {
  return app_parse_number(name, value, APP_NUM_DOUBLE, r, IFT_ERR_ARG, NULL, out);
}

int app_parse_global(int *argc, char **argv) {
  memset(&app_g, 0, sizeof app_g);
  app_g.kernels = "auto";
  int out = 0;
  for (int i = 0; i < *argc; i++) {
    const char *v;
    int j = i;
    if ((v = app_opt(*argc, argv, &j, "kernels"))) {
      app_g.kernels = v;
      i = j;
      continue;
    }
    if ((v = app_opt(*argc, argv, &j, "threads"))) {
      if (app_opt_int("--threads", v, APP_IN(1, 1024), &app_g.threads) != IFT_OK) return APP_EXIT_USAGE;
      i = j;
      continue;
    }
    if (!strcmp(argv[i], "--no-mpi")) { app_g.no_mpi = 1; continue; }
    if (!strcmp(argv[i], "--quiet")) { app_g.quiet = 1; core_set_loglevel(IFT_LOG_QUIET); continue; }
    if (!strcmp(argv[i], "--verbose")) { app_g.verbose = 1; core_set_loglevel(IFT_LOG_DEBUG); continue; }
    argv[out++] = argv[i];
  }
  *argc = out;
  argv[out] = NULL;
  return 0;
}

int app_unimplemented(int argc, char **argv) {
  (void)argc;
  if (core_rank() == 0)
    fprintf(stderr,
            "iftrain %s: not implemented in this build yet.\n"
            "  hint: 'iftrain --help' lists what this build can do\n",
            argv[0]);
  return APP_EXIT_UNIMPL;
}

int app_exit_code(ift_status st) {
  switch (st) {
  case IFT_OK: return APP_EXIT_OK;
  case IFT_ERR_ARG: case IFT_ERR_CONFIG: case IFT_ERR_LAYOUT: case IFT_ERR_FORMAT: case IFT_ERR_IO:
    return APP_EXIT_USAGE;
  case IFT_ERR_UNIMPL: return APP_EXIT_UNIMPL;
  default: return APP_EXIT_FAIL;
  }
}
