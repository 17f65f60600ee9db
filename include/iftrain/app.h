/* app — the iftrain subcommands and their shared command-line handling.
 * Every subcommand is `int app_X(int argc, char **argv)` with argv[0] the
 * subcommand name; it returns the process exit code (0 ok, 1 failure,
 * 2 usage error, 3 not implemented in this build). */
#ifndef IFTRAIN_APP_H
#define IFTRAIN_APP_H

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

/* Subcommands. */
int app_info(int argc, char **argv);
int app_bench(int argc, char **argv);
int app_bench_gemm(int argc, char **argv);
int app_bench_step(int argc, char **argv);
int app_bench_ckpt(int argc, char **argv);
int app_bench_scaling(int argc, char **argv);
int app_bench_comm(int argc, char **argv);
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
extern const char app_ckpt_help[];
int app_generate(int argc, char **argv);
extern const char app_eval_help[], app_generate_help[];

#ifdef __cplusplus
}
#endif
#endif
