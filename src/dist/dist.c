#include "config.h"
#include "iftrain/dist.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/scalapack.h"

static int g_we_initialised = 0;
static int g_pblas_block = DIST_PBLAS_BLOCK_DEFAULT;

/* PBLAS asks PILAENV for the logical block of its algorithms (the k step of
 * psgemm's panel loop); the reference version returns 32 and invites users to
 * supply their own.  Defined here, it interposes the library's (ScaLAPACK is
 * a shared library without -Bsymbolic): psgemm then works on panels of
 * g_pblas_block instead of 32, which makes its local BLIS GEMMs large enough
 * to run at full speed (bench/README.md). */
int pilaenv_(const int *ictxt, const char *prec);
static long g_pblas_queries = 0;
int pilaenv_(const int *ictxt, const char *prec) {
  (void)ictxt;
  (void)prec;
  g_pblas_queries++;
  return g_pblas_block;
}

void dist_set_pblas_block(int nb) { g_pblas_block = nb > 0 ? nb : DIST_PBLAS_BLOCK_DEFAULT; }
int dist_pblas_block(void) { return g_pblas_block; }
long dist_pblas_block_queries(void) { return g_pblas_queries; }
int dist_pblas_block_for(int hidden) {
  /* measured with bench scaling (TP 2D, 2 ranks): best 64-128 at hidden 128,
   * 256-512 at 512, 512-2048 at 1024 */
  int nb = hidden / 2;
  return nb < 64 ? 64 : nb > 512 ? 512 : nb;
}
static double g_comm_seconds = 0;

double dist_comm_seconds(void) { return g_comm_seconds; }
void dist_comm_reset(void) { g_comm_seconds = 0; }
void dist_comm_add(double seconds) { g_comm_seconds += seconds; }

ift_status dist_allreduce(void *buf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  double t0 = core_now();
  IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, count, type, op, comm),
                "a peer rank failed or the job is out of memory");
  g_comm_seconds += core_now() - t0;
  return IFT_OK;
}

int dist_initialized(void) {
  int flag = 0;
  MPI_Initialized(&flag);
  return flag;
}

ift_status dist_init(int *argc, char ***argv) {
  if (!dist_initialized()) {
    int provided = 0;
    IFT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                  "is the job started with mpirun/srun of the same MPI iftrain was built with?");
    g_we_initialised = 1;
  }
  /* Errors come back as codes so IFT_MPI_CHECK can name the call and rank. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  core_set_rank(rank, size);
  return IFT_OK;
}

void dist_abort(int code) {
  if (dist_initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

ift_status dist_mpi_status(int rc, const char *call, const char *file, int line, const char *hint) {
  if (rc == MPI_SUCCESS) return IFT_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  ift_error_set(IFT_ERR_MPI, file, line, call, hint, "%s", msg);
  return IFT_ERR_MPI;
}

static int g_agreed_failure = 0;
int dist_failure_agreed(void) { return g_agreed_failure; }

ift_status dist_agree(ift_status local, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return local;
  int size = 1;
  if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || size == 1) return local;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  /* MAXLOC on (status, rank): the largest status; among equal statuses
   * MAXLOC keeps the smallest index, i.e. the lowest failing rank. */
  int pair[2] = {(int)local, rank}, res[2] = {0, 0};
  IFT_MPI_CHECK(MPI_Allreduce(pair, res, 1, MPI_2INT, MPI_MAXLOC, comm),
                "an MPI failure while ranks agreed on an error; the job cannot continue");
  if (res[0] != IFT_OK && local == IFT_OK) {
    /* this rank was fine: keep the reason for the exit code, print nothing
     * (the failing rank has printed its message) */
    ift_error_quiet_set((ift_status)res[0], "rank %d failed (%s); this rank stopped with it",
                        res[1], ift_status_str((ift_status)res[0]));
  }
  if (res[0] != IFT_OK) g_agreed_failure = 1;
  return (ift_status)res[0];
}

void dist_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (g_we_initialised && !fin) MPI_Finalize();
}

ift_status dist_grid_create(dist_grid *g, MPI_Comm world, int tp) {
  memset(g, 0, sizeof *g);
  IFT_MPI_CHECK(MPI_Comm_rank(world, &g->rank), NULL);
  IFT_MPI_CHECK(MPI_Comm_size(world, &g->size), NULL);
  IFT_REQUIRE(tp >= 1, IFT_ERR_LAYOUT, "set dist.tp to a positive number of ranks",
              "dist.tp = %d is not a positive rank count", tp);
  IFT_REQUIRE(g->size % tp == 0, IFT_ERR_LAYOUT,
              "start a multiple of dist.tp ranks, or choose dist.tp dividing the rank count",
              "%d ranks cannot be split into tensor-parallel groups of dist.tp = %d", g->size,
              tp);
  g->tp_size = tp;
  g->dp_size = g->size / tp;
  g->tp_rank = g->rank % tp;
  g->dp_rank = g->rank / tp;
  IFT_MPI_CHECK(MPI_Comm_dup(world, &g->world), NULL);
  IFT_MPI_CHECK(MPI_Comm_split(world, g->dp_rank, g->tp_rank, &g->tp), NULL);
  IFT_MPI_CHECK(MPI_Comm_split(world, g->tp_rank, g->dp_rank, &g->dp), NULL);
  MPI_Comm_set_errhandler(g->world, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(g->tp, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(g->dp, MPI_ERRORS_RETURN);
  return IFT_OK;
}

ift_status dist_blacs_grid(int *ctx, MPI_Comm comm, int pr, int pc) {
  int size;
  IFT_MPI_CHECK(MPI_Comm_size(comm, &size), NULL);
  IFT_REQUIRE(pr >= 1 && pc >= 1 && pr * pc == size, IFT_ERR_LAYOUT,
              "choose pr x pc equal to the communicator size",
              "a %d x %d BLACS grid cannot be laid over %d ranks", pr, pc, size);
  /* A context built from a system handle of `comm` (not the default world
   * context) gives several TP groups disjoint grids in one job. */
  *ctx = Csys2blacs_handle(comm);
  Cblacs_gridinit(ctx, "Row", pr, pc);
  int npr, npc, myr, myc;
  Cblacs_gridinfo(*ctx, &npr, &npc, &myr, &myc);
  IFT_REQUIRE(myr >= 0 && myc >= 0, IFT_ERR_MPI,
              "BLACS could not place this rank; check that ScaLAPACK was built for this MPI",
              "this rank is not part of the %d x %d BLACS grid", pr, pc);
  return IFT_OK;
}

int dist_l2g(int l, int nb, int iproc, int nprocs) {
  return (l / nb) * nb * nprocs + iproc * nb + l % nb;
}

void dist_grid_destroy(dist_grid *g) {
  if (g->tp != MPI_COMM_NULL && g->tp) MPI_Comm_free(&g->tp);
  if (g->dp != MPI_COMM_NULL && g->dp) MPI_Comm_free(&g->dp);
  if (g->world != MPI_COMM_NULL && g->world) MPI_Comm_free(&g->world);
  memset(g, 0, sizeof *g);
}

ift_status dist_describe(char *buf, size_t len, MPI_Comm comm) {
  enum { LINE = 256 };
  int rank, size;
  IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  IFT_MPI_CHECK(MPI_Comm_size(comm, &size), NULL);
  char host[64] = "?";
  gethostname(host, sizeof host - 1);
  cpu_set_t set;
  CPU_ZERO(&set);
  int ncpu = 0;
  char cpus[96] = "";
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    ncpu = CPU_COUNT(&set);
    size_t off = 0;
    for (int c = 0; c < CPU_SETSIZE && off + 8 < sizeof cpus; c++)
      if (CPU_ISSET(c, &set)) off += (size_t)snprintf(cpus + off, sizeof cpus - off, "%s%d", off ? "," : "", c);
  }
  char line[LINE];
  snprintf(line, sizeof line, "rank %d/%d  host %s  pid %ld  cores %d [%s]", rank, size,
           host, (long)getpid(), ncpu, cpus);
  char *all = rank == 0 ? malloc((size_t)size * LINE) : NULL;
  IFT_REQUIRE(rank != 0 || all, IFT_ERR_NOMEM, NULL, "no memory for %d lines", size);
  IFT_MPI_CHECK(MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, comm), NULL);
  if (rank == 0) {
    size_t off = 0;
    buf[0] = 0;
    for (int r = 0; r < size && off < len; r++)
      off += (size_t)snprintf(buf + off, len - off, "  %s\n", all + (size_t)r * LINE);
    free(all);
  }
  return IFT_OK;
}

ift_status dist_desc(int desc[9], int *lrows, int *lcols, int m, int n, int mb, int nb,
                     int ctx) {
  int pr, pc, myr, myc, zero = 0, info = 0;
  Cblacs_gridinfo(ctx, &pr, &pc, &myr, &myc);
  int lr = numroc_(&m, &mb, &myr, &zero, &pr);
  int lc = numroc_(&n, &nb, &myc, &zero, &pc);
  int lld = lr > 1 ? lr : 1;
  descinit_(desc, &m, &n, &mb, &nb, &zero, &zero, &ctx, &lld, &info);
  IFT_REQUIRE(info == 0, IFT_ERR_INTERNAL, "report this as a bug",
              "descinit_ rejected argument %d (m=%d n=%d mb=%d nb=%d)", -info, m, n, mb, nb);
  if (lrows) *lrows = lr;
  if (lcols) *lcols = lc;
  return IFT_OK;
}

void dist_psgemm(char ta, char tb, int m, int n, int k, float alpha, const float *A,
                 const int *descA, const float *B, const int *descB, float beta,
                 float *C, const int *descC) {
  const int one = 1;
  psgemm_(&ta, &tb, &m, &n, &k, &alpha, A, &one, &one, descA, B, &one, &one, descB, &beta,
          C, &one, &one, descC);
}
