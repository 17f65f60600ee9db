#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "app.h"

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

/* The text of an option as the user spells it: "--max-len" or "-n". */
static void opt_name(char *out, size_t n, const app_optdef *d) {
  if (d->name) snprintf(out, n, "--%s", d->name);
  else snprintf(out, n, "-%c", d->letter);
}

static ift_status opt_store(const app_optdef *d, const char *value) {
  char name[64];
  opt_name(name, sizeof name, d);
  switch (d->type) {
  case APP_OPT_FLAG: *(int *)d->out = 1; break;
  case APP_OPT_STR: *(const char **)d->out = value; break;
  case APP_OPT_STR_OPT: *(const char **)d->out = value ? value : ""; break;
  case APP_OPT_INT: return app_opt_int(name, value, d->range, d->out);
  case APP_OPT_LONG: return app_opt_long(name, value, d->range, d->out);
  case APP_OPT_DOUBLE: return app_opt_double(name, value, d->range, d->out);
  }
  return IFT_OK;
}

/* "--section.key[=value]", as app_config_load takes it. */
static int is_override(const char *a) {
  const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
  return !strncmp(a, "--", 2) && dot && (!eq || dot < eq);
}

enum { OPTS_MAX = 48 };

int app_getopt(const app_opts *spec, int *argc, char **argv) {
  struct option lopts[OPTS_MAX + 1];
  char sopts[2 * OPTS_MAX + 3] = "-:"; /* in order (no permuting, whatever POSIXLY_CORRECT
                                         says), ':' for a missing value */
  int n = 0, ns = 2;
  for (const app_optdef *d = spec->opts; d->name || d->letter; d++, n++) {
    if (n == OPTS_MAX) abort(); /* a table larger than this file allows: a programming error */
    int arg = d->type == APP_OPT_FLAG ? no_argument : d->type == APP_OPT_STR_OPT ? optional_argument
                                                                               : required_argument;
    /* getopt_long returns the table index + 256 for a long option and the
     * letter for a short one; both lead back to d */
    lopts[n] = (struct option){d->name ? d->name : "", arg, NULL, 256 + n};
    if (d->letter) {
      sopts[ns++] = (char)d->letter;
      if (arg == required_argument) sopts[ns++] = ':';
    }
  }
  int nl = 0; /* long options: the ones with a name */
  for (int i = 0; i < n; i++)
    if (lopts[i].name[0]) lopts[nl++] = lopts[i];
  lopts[nl] = (struct option){NULL, 0, NULL, 0};
  sopts[ns] = 0;
  const char *hint_default = spec->hint;
  char hint[160];
  if (!hint_default) {
    snprintf(hint, sizeof hint, "iftrain %s --help", spec->cmd);
    hint_default = hint;
  }
  int keep = 1, args = 0, prev = 1, rc = APP_EXIT_OK;
  optind = 0; /* glibc: start afresh (earlier parses leave state behind) */
  opterr = 0;
  for (int c; rc == APP_EXIT_OK && (c = getopt_long(*argc, argv, sopts, lopts, NULL)) != -1; prev = optind) {
    const app_optdef *d = NULL;
    if (c >= 256) {
      d = &spec->opts[c - 256];
    } else if (c != 1 && c != '?' && c != ':') {
      for (const app_optdef *e = spec->opts; e->name || e->letter; e++)
        if (e->letter == c) d = e;
    }
    if (d) {
      if (opt_store(d, optarg) != IFT_OK) rc = APP_EXIT_USAGE; /* app_opt_* said why */
      continue;
    }
    /* the elements this call consumed: one, or none within "-xyz" */
    const char *a = optind > prev ? argv[optind - 1] : NULL;
    if (c == 1) { /* an argument that is no option */
      if (spec->keep == APP_KEEP_UNKNOWN || ++args <= spec->max_args) {
        argv[keep++] = optarg;
        continue;
      }
      a = optarg;
    } else if (c == '?' && spec->keep == APP_KEEP_UNKNOWN) {
      for (int i = prev; i < optind; i++) argv[keep++] = argv[i];
      continue;
    } else if (c == '?' && spec->keep == APP_KEEP_OVERRIDES && a && is_override(a)) {
      argv[keep++] = argv[optind - 1];
      continue;
    }
    char shown[64];
    if (!a) snprintf(shown, sizeof shown, "-%c", optopt);
    if (core_rank() == 0) {
      if (c == ':')
        fprintf(stderr, "iftrain %s: option '%s' needs a value\n  hint: %s\n", spec->cmd, a ? a : shown,
                hint_default);
      else
        fprintf(stderr, "iftrain %s: unexpected argument '%s'\n  hint: %s\n", spec->cmd, a ? a : shown,
                hint_default);
    }
    rc = APP_EXIT_USAGE;
  }
  if (rc != APP_EXIT_OK) return rc;
  /* after "--": arguments, whatever they look like */
  for (int i = optind; i < *argc; i++) {
    if (spec->keep != APP_KEEP_UNKNOWN && ++args > spec->max_args) {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain %s: unexpected argument '%s'\n  hint: %s\n", spec->cmd, argv[i], hint_default);
      return APP_EXIT_USAGE;
    }
    argv[keep++] = argv[i];
  }
  *argc = keep;
  argv[keep] = NULL;
  return APP_EXIT_OK;
}

int app_bad_option(const char *cmd, const char *name, const char *value) {
  if (core_rank() == 0)
    fprintf(stderr, "iftrain %s: bad option '--%s=%s'\n  hint: iftrain %s --help\n", cmd, name, value, cmd);
  return APP_EXIT_USAGE;
}

int app_parse_global(int *argc, char **argv) {
  memset(&app_g, 0, sizeof app_g);
  app_g.kernels = "auto";
  const app_optdef opts[] = {
      APP_STR("kernels", &app_g.kernels),
      APP_INT("threads", &app_g.threads, APP_IN(1, 1024)),
      APP_FLAG("no-mpi", &app_g.no_mpi),
      APP_FLAG("quiet", &app_g.quiet),
      APP_FLAG("verbose", &app_g.verbose),
      {0}};
  /* the subcommand's own options stay, in their order, for its parse */
  const app_opts spec = {.cmd = argv[0], .opts = opts, .keep = APP_KEEP_UNKNOWN};
  int rc = app_getopt(&spec, argc, argv);
  if (app_g.quiet) core_set_loglevel(IFT_LOG_QUIET);
  if (app_g.verbose) core_set_loglevel(IFT_LOG_DEBUG);
  return rc;
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
