/* app — the iftrain subcommands and their shared command-line handling (a
 * header of the app layer, beside its sources: no library module includes it).
 * Every subcommand is `int app_X(int argc, char **argv)` with argv[0] the
 * subcommand name; it returns the process exit code (0 ok, 1 failure,
 * 2 usage error, 3 not implemented in this build). */
#ifndef IFTRAIN_APP_H
#define IFTRAIN_APP_H

#include <math.h>
#include <stdio.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* APP_EXIT_PREEMPT (75, EX_TEMPFAIL): a SIGUSR1/SIGTERM stopped the run after
 * a checkpoint was written; a batch script requeues on it. */
enum { APP_EXIT_OK = 0, APP_EXIT_FAIL = 1, APP_EXIT_USAGE = 2, APP_EXIT_UNIMPL = 3,
       APP_EXIT_PREEMPT = 75 };

typedef struct {
  const char *name;
  const char *summary;
  const char *help; /* full --help text after the usage line */
  int (*run)(int argc, char **argv);
  int needs_mpi;
} app_cmd;

/* The subcommand table (NULL-terminated). */
extern const app_cmd app_cmds[];
const app_cmd *app_find(const char *name);
void app_print_usage(FILE *f);
void app_print_cmd_help(FILE *f, const app_cmd *c);

/* Options shared by every subcommand; parsed (and removed from argv) before
 * MPI starts, because the BLIS kernel set must be fixed before BLIS runs. */
typedef struct {
  const char *kernels; /* --kernels=auto|probe|NAME|ID */
  int threads;         /* --threads=N (BLIS threads per rank), 0 = default 1 */
  int no_mpi;          /* --no-mpi: internal, run without MPI_Init */
  int quiet, verbose;
} app_global;
extern app_global app_g;
#define APP_GLOBAL_HELP                                                        \
  "Options of every subcommand:\n"                                             \
  "  --kernels=SET    BLIS kernel set: auto (default: fastest this CPU runs),\n" \
  "                   probe (time each in a child), skx, haswell, zen3, zen2,\n" \
  "                   zen, generic, or a BLIS_ARCH_TYPE id. BLIS_ARCH_TYPE in\n" \
  "                   the environment is honoured when this is auto.\n"        \
  "  --threads=N      BLIS threads per rank (default 1; with mpirun use\n"     \
  "                   --bind-to none when N > 1)\n"                            \
  "  --quiet | --verbose\n"                                                    \
  "  -h, --help       this text\n"

/* The exit code of a failed status, the same for every subcommand: input
 * errors (configuration, arguments, missing or malformed files, impossible
 * layouts) 2, not implemented 3, anything else (write failures, numerical
 * or MPI errors) 1. */
int app_exit_code(ift_status st);

/* Strip global options from argv (in place); returns 0 or APP_EXIT_USAGE. */
int app_parse_global(int *argc, char **argv);

int app_is_help(const char *a);
/* Parse a comma list of positive ints into out (max n); count or -1. */
int app_parse_int_list(const char *s, int *out, int n);
/* List parsing steps: a positive int (digits only, fits an int) at *s, and
 * the comma after an item or the end; each advances *s, 0 or -1. */
int app_take_int(const char **s, int *out);
int app_take_comma(const char **s);

/* Allowed values of a number: lo..hi, either end open or infinite.  One type
 * for configuration keys and command-line options, so both state their ranges
 * the same way in errors and help. */
typedef struct {
  double lo, hi;
  int lo_open, hi_open;
} app_range;
#define APP_ANY ((app_range){-INFINITY, INFINITY, 0, 0})
#define APP_GE(a) ((app_range){(a), INFINITY, 0, 0})
#define APP_GT(a) ((app_range){(a), INFINITY, 1, 0})
#define APP_IN(a, b) ((app_range){(a), (b), 0, 0})    /* [a, b] */
#define APP_IN_CO(a, b) ((app_range){(a), (b), 0, 1}) /* [a, b) */

int app_range_has(app_range r, double v);
/* ">= 1", "> 0", "[0, 1)", "" (any value) */
void app_range_str(char *out, size_t n, app_range r);
/* ERR naming NAME, the value and the range unless V is in R (finite); the
 * hint is ABOUT (what the value means) or, if NULL, the range again. */
ift_status app_range_check(const char *name, double v, app_range r, ift_status err,
                           const char *about);

typedef enum { APP_NUM_INT, APP_NUM_LONG, APP_NUM_U64, APP_NUM_DOUBLE } app_num_type;
/* Strict number: TEXT is entirely a decimal integer (or, for doubles, a finite
 * strtod number) that fits TYPE and lies in R; stored in *OUT (an int, long,
 * uint64_t or double).  Otherwise ERR with a message naming NAME and TEXT and
 * nothing stored; ABOUT as in app_range_check.  atoi("5x") = 5 is the garbage this refuses. */
ift_status app_parse_number(const char *name, const char *text, app_num_type type, app_range r,
                            ift_status err, const char *about, void *out);
/* Numeric options of the subcommands (NAME as the user spells it, "--seed"):
 * IFT_ERR_ARG on a bad value; the caller exits APP_EXIT_USAGE. */
ift_status app_opt_int(const char *name, const char *value, app_range r, int *out);
ift_status app_opt_long(const char *name, const char *value, app_range r, long *out);
ift_status app_opt_double(const char *name, const char *value, app_range r, double *out);

/* A subcommand's options for app_getopt: the long name ("max-len", without
 * "--"; NULL for a short option only), the letter of a short option (-o;
 * 0: none), what it takes and where it goes.  Numbers are range-checked by
 * app_opt_int / app_opt_long / app_opt_double. */
typedef enum {
  APP_OPT_FLAG,    /* int set to 1 */
  APP_OPT_STR,     /* const char * (points into argv) */
  APP_OPT_STR_OPT, /* const char *: the value of --name=value, "" for --name alone */
  APP_OPT_INT,     /* int in range */
  APP_OPT_LONG,    /* long in range */
  APP_OPT_DOUBLE   /* double in range (finite) */
} app_opt_type;
typedef struct {
  const char *name;
  int letter;
  app_opt_type type;
  void *out;
  app_range range;
} app_optdef;
/* Table entries; OUT must point to the type named above (the compiler checks
 * it: a pointer of another type makes the conditional a warning, an error
 * with --enable-werror).  The _L forms also have a short option. */
#define APP_OUT_(T, p) ((void *)(1 ? (p) : (T *)0))
#define APP_FLAG(name, out) {(name), 0, APP_OPT_FLAG, APP_OUT_(int, out), APP_ANY}
#define APP_HELP(out) {"help", 'h', APP_OPT_FLAG, APP_OUT_(int, out), APP_ANY} /* -h, --help */
#define APP_STR(name, out) APP_STR_L(name, 0, out)
#define APP_STR_L(name, letter, out) {(name), (letter), APP_OPT_STR, APP_OUT_(const char *, out), APP_ANY}
#define APP_STR_OPT(name, out) {(name), 0, APP_OPT_STR_OPT, APP_OUT_(const char *, out), APP_ANY}
#define APP_INT(name, out, r) {(name), 0, APP_OPT_INT, APP_OUT_(int, out), r}
#define APP_LONG(name, out, r) APP_LONG_L(name, 0, out, r)
#define APP_LONG_L(name, letter, out, r) {(name), (letter), APP_OPT_LONG, APP_OUT_(long, out), r}
#define APP_DOUBLE(name, out, r) {(name), 0, APP_OPT_DOUBLE, APP_OUT_(double, out), r}

/* What app_getopt keeps besides the subcommand's own options. */
enum {
  APP_KEEP_ARGS,      /* up to max_args arguments that are no options */
  APP_KEEP_OVERRIDES, /* those and --section.key=value (app_config_load's overrides) */
  APP_KEEP_UNKNOWN    /* every argument it does not know, in order (app_parse_global) */
};
typedef struct {
  const char *cmd;          /* "bench gemm": named in messages */
  const app_optdef *opts;   /* ended by {0} */
  int keep;                 /* APP_KEEP_* */
  int max_args;             /* arguments that are no options */
  const char *hint;         /* of a usage error; NULL: "iftrain CMD --help" */
} app_opts;
/* Parse the options of argv[1..*argc-1] with getopt_long: --name=value,
 * --name value, -o value, -ovalue; a unique prefix of a long name is that
 * option; "--" ends the options.  The arguments kept (SPEC->keep) are left
 * in argv[1..*argc-1] in their order.  An unknown option, a missing value,
 * a value out of range or too many arguments is reported (rank 0) with a
 * hint naming `iftrain CMD --help`, and returns APP_EXIT_USAGE; else 0. */
int app_getopt(const app_opts *spec, int *argc, char **argv);
/* A value app_getopt took and the subcommand then refused (a list, a
 * choice): "iftrain CMD: bad option '--NAME=VALUE'" with the hint (rank 0);
 * APP_EXIT_USAGE. */
int app_bad_option(const char *cmd, const char *name, const char *value);

/* Subcommands. */
int app_info(int argc, char **argv);
int app_bench(int argc, char **argv);
int app_bench_gemm(int argc, char **argv);
int app_bench_step(int argc, char **argv);
int app_bench_ckpt(int argc, char **argv);
int app_bench_scaling(int argc, char **argv);
int app_bench_comm(int argc, char **argv);
int app_bench_tok(int argc, char **argv);
int app_unimplemented(int argc, char **argv);
int app_train(int argc, char **argv);
int app_prep(int argc, char **argv);
int app_lake(int argc, char **argv);
extern const char app_lake_help[];
/* iftrain prep --ref-logp CKPT --data FILE (collective over MPI_COMM_WORLD). */
int app_ref_logp(const char *ckpt, const char *data, int mb);
extern const char app_prep_help[];
int app_eval(int argc, char **argv);
int app_ckpt(int argc, char **argv);
int app_import(int argc, char **argv);
extern const char app_import_help[];
int app_export(int argc, char **argv);
extern const char app_export_help[];
int app_tokenize(int argc, char **argv);
extern const char app_tokenize_help[];
extern const char app_ckpt_help[];
int app_generate(int argc, char **argv);
extern const char app_eval_help[], app_generate_help[];

#ifdef __cplusplus
}
#endif
#endif
