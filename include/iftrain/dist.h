/* dist — the process grid and its collectives.
 *
 * World ranks form a DP x TP grid: ranks r = dp*TP + tp (TP ranks of one
 * data-parallel replica are neighbours, so on a node they share memory).
 * `dp` communicators join the ranks with the same tp index (gradient
 * all-reduce), `tp` communicators the ranks of one replica (tensor-parallel
 * collectives).  The 2D mode's BLACS grids are built by the model over its TP
 * communicator (dist_blacs_grid).
 *
 * Every MPI call goes through IFT_MPI_CHECK, which names the call, file:line,
 * rank and a hint. */
#ifndef IFTRAIN_DIST_H
#define IFTRAIN_DIST_H

#include <mpi.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The status of an MPI return code: IFT_OK, or IFT_ERR_MPI recorded with
 * the call, file:line, rank, MPI's own message and the hint. */
ift_status dist_mpi_status(int rc, const char *call, const char *file, int line, const char *hint);

#define IFT_MPI_CHECK(call, hint)                                              \
  do {                                                                         \
    if (dist_mpi_status((call), #call, __FILE__, __LINE__, (hint)) != IFT_OK)  \
      return IFT_ERR_MPI;                                                      \
  } while (0)

/* IFT_MPI_CHECK for functions with a cleanup label: sets st, jumps. */
#define IFT_MPI_CHECK_GOTO(st, label, call, hint)                              \
  do {                                                                         \
    if (((st) = dist_mpi_status((call), #call, __FILE__, __LINE__, (hint))) != IFT_OK) \
      goto label;                                                              \
  } while (0)

/* MPI_Init_thread (FUNNELED) with errors returned, not fatal; registers the
 * rank with core.  Idempotent. */
ift_status dist_init(int *argc, char ***argv);
/* Abort every rank with code `code` (a failing rank never leaves the others
 * hanging). */
void dist_abort(int code);
void dist_finalize(void);
int dist_initialized(void);

/* Agreed failure (collective over comm): every rank passes its own status and
 * every rank returns the same one -- the largest failing status, from the
 * lowest rank that has it -- so ranks leave a collective sequence together
 * instead of some waiting forever in the next collective.  A rank that did
 * not fail records (quietly) which rank did, so its exit code matches.
 * Call it after any local work that can fail (I/O, allocation, input checks)
 * and before the next collective that depends on it. */
ift_status dist_agree(ift_status local, MPI_Comm comm);
/* True once dist_agree has returned a failure: every rank knows of it and
 * leaves together, so the process may finalize instead of aborting. */
int dist_failure_agreed(void);
/* st = dist_agree(st, comm); on failure jump to `label` (cleanup). */
#define IFT_AGREE_OR(st, comm, label)                                          \
  do {                                                                         \
    if (((st) = dist_agree((st), (comm))) != IFT_OK) goto label;               \
  } while (0)

typedef struct {
  MPI_Comm world, dp, tp;
  int rank, size;       /* in world */
  int dp_rank, dp_size; /* replica index and count */
  int tp_rank, tp_size; /* shard index and count */
} dist_grid;

/* Split `world` into DP x TP.  Fails with IFT_ERR_LAYOUT (and a hint) when the
 * size is not divisible by tp. */
ift_status dist_grid_create(dist_grid *g, MPI_Comm world, int tp);
void dist_grid_destroy(dist_grid *g);
/* A BLACS context of pr x pc (row-major) over all ranks of `comm`. Release
 * with Cblacs_gridexit. */
ift_status dist_blacs_grid(int *ctx, MPI_Comm comm, int pr, int pc);
/* Global index of local index l in a block-cyclic dimension (block nb, this
 * process iproc of nprocs, source process 0). */
int dist_l2g(int l, int nb, int iproc, int nprocs);

/* Describe the placement of every rank (host, pid, cores it may run on),
 * gathered to rank 0 of `comm` into buf (one line per rank). */
ift_status dist_describe(char *buf, size_t len, MPI_Comm comm);

/* In-place all-reduce that checks the call and adds its wall time to the
 * communication clock (dist_comm_seconds), so benchmarks can split step
 * time into compute and communication. */
ift_status dist_allreduce(void *buf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm);
double dist_comm_seconds(void);
/* Add time spent in other communication (redistribution, all-gather). */
void dist_comm_add(double seconds);
void dist_comm_reset(void);

/* ---- PBLAS helpers (2D mode and benchmarks) */

/* PBLAS's logical block (PILAENV, the k step of psgemm's panel loop): 32 in
 * the reference PBLAS; iftrain supplies its own PILAENV returning this. */
enum { DIST_PBLAS_BLOCK_DEFAULT = 512 };
void dist_set_pblas_block(int nb); /* nb <= 0: the default */
int dist_pblas_block(void);
/* How often PBLAS asked (0 after a psgemm means the library does not call
 * iftrain's PILAENV: it was linked with -Bsymbolic, and the block is 32). */
long dist_pblas_block_queries(void);
/* The block the trainer uses for a model width: hidden / 2 in [64, 512]. */
int dist_pblas_block_for(int hidden);

/* Descriptor of an m x n matrix in mb x nb blocks on BLACS context ctx;
 * *lld_rows and *lcols receive the local (column-major) extents. */
ift_status dist_desc(int desc[9], int *lrows, int *lcols, int m, int n, int mb, int nb,
                     int ctx);
/* C = alpha op(A) op(B) + beta C with PBLAS psgemm on column-major
 * block-cyclic matrices. */
void dist_psgemm(char ta, char tb, int m, int n, int k, float alpha, const float *A,
                 const int *descA, const float *B, const int *descB, float beta,
                 float *C, const int *descC);

#ifdef __cplusplus
}
#endif
#endif
