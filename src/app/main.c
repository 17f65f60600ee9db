/* iftrain: command-line dispatch only (the subcommands live in src/app). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "app.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"

int main(int argc, char **argv) {
  if (argc < 2 || app_is_help(argv[1])) {
    app_print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? APP_EXIT_USAGE : APP_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("iftrain %s\n", PACKAGE_VERSION);
    return APP_EXIT_OK;
  }
  const app_cmd *cmd = app_find(argv[1]);
  if (!cmd) {
    fprintf(stderr, "iftrain: unknown subcommand '%s'\n  hint: run 'iftrain --help' for the list\n",
            argv[1]);
    return APP_EXIT_USAGE;
  }
  int sargc = argc - 1;
  char **sargv = argv + 1;
  for (int i = 1; i < sargc; i++)
    if (app_is_help(sargv[i]) && !(cmd->run == app_bench && i > 1)) {
      app_print_cmd_help(stdout, cmd);
      return APP_EXIT_OK;
    }
  int rc = app_parse_global(&sargc, sargv);
  if (rc) return rc;
  if (app_g.no_mpi && cmd->run != app_bench) {
    fprintf(stderr, "iftrain %s: --no-mpi is internal to 'iftrain bench'\n"
                    "  hint: run without it (one process starts MPI by itself)\n", cmd->name);
    return APP_EXIT_USAGE;
  }
  /* The kernel set must be in the environment before BLIS initialises. */
  if (kern_select_arch(app_g.kernels) != IFT_OK) return APP_EXIT_USAGE;
  kern_set_threads(app_g.threads > 0 ? app_g.threads : 1);
  if (cmd->needs_mpi && !app_g.no_mpi && dist_init(&argc, &argv) != IFT_OK)
    return APP_EXIT_FAIL;
  rc = cmd->run(sargc, sargv);
  if (cmd->needs_mpi && !app_g.no_mpi) {
    /* A failure that the ranks did not agree on may have left others
     * waiting in a collective: abort the job (the failing rank has printed
     * its reason).  Agreed failures, input errors (every rank sees the same
     * input) and single processes finalize and exit with their code, so no
     * MPI_ABORT banner hides the message. */
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rc == APP_EXIT_FAIL && size > 1 && !dist_failure_agreed()) dist_abort(rc);
    dist_finalize();
  }
  return rc;
}
