/* app — the iftrain subcommands and their shared command-line handling.
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

/* "--name=value" or "--name value" matching; returns the value or NULL.
 * Advances *i when the value is the next argument. */
const char *app_opt(int argc, char **argv, int *i, const char *name);
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
