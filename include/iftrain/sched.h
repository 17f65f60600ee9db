/* sched — the rank-0 batch scheduler (docs/architecture.md, "Layers").
 *
 * Rank 0 decides, for every optimizer step, which sequences form the global
 * batch (seeded per-epoch shuffle, or file order), how they are split over
 * the data-parallel ranks and their micro-batches (token-balanced), and the
 * step's λ; it broadcasts that plan so every rank applies the same one.
 * The global batch of step k depends only on (seed, k, data set), never on
 * the DP size or micro-batch size.  The whole state is (epoch, cursor,
 * step): Philox draws are addressed by counters, so the shuffle and the λ
 * noise replay exactly after a resume. */
#ifndef IFTRAIN_SCHED_H
#define IFTRAIN_SCHED_H

#include <mpi.h>
#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SCHED_LAMBDA_STATIC, SCHED_LAMBDA_LINEAR, SCHED_LAMBDA_NOISE } sched_lambda_kind;

typedef struct {
  sched_lambda_kind kind;
  double lambda;    /* base λ */
  int warmup_steps; /* linear: ramp 0 -> λ over this many optimizer steps */
} sched_lambda_cfg;

/* λ of optimizer step `step` (0-based):
 *   static: λ;  linear: λ·min(1, step / warmup_steps);
 *   noise:  clamp(λ·(1 + 0.5·z_step), 0, 1), z ~ N(0,1) from (seed, step). */
double sched_lambda(const sched_lambda_cfg *c, uint64_t seed, long step);

/* Packing (train.packing): rank 0 puts the global batch's items into packs
 * of at most len tokens per part, first fit by decreasing length, and
 * spreads the packs over the DP ranks by tokens (longest first to the least
 * loaded rank).  An item is one row (parts 1) or a preference pair (parts
 * 2: chosen and rejected; a pack then has a chosen and a rejected row).
 * The packs depend only on the batch, never on the DP size. */
typedef struct {
  int len;   /* tokens per pack row (train.seq_len); 0: no packing */
  int parts; /* 1 or 2 */
  int (*part_len)(const void *ctx, long i, int part); /* item i's part, uncapped */
} sched_pack_cfg;

typedef struct {
  long n;          /* sequences in the data set */
  int batch;       /* global batch (sequences per optimizer step) */
  int dp;          /* data-parallel ranks */
  uint64_t seed;
  int shuffle;
  /* state (checkpointed) */
  long step, epoch, cursor;
  /* the current epoch's order */
  long *perm;
  sched_pack_cfg pack;
} sched;

typedef struct {
  long step;
  long epoch;       /* epoch of the batch's first sequence */
  float lambda;
  int per_rank;     /* batch / dp */
  long *rows;       /* [batch]: rows[r * per_rank + j] = j-th sequence of DP rank r,
                       sorted by decreasing length within a rank (packing:
                       the items of pack k are rows[pack_first[k] ..
                       pack_first[k + 1]), packs in rank order) */
  int npacks;       /* unpacked: batch (one row per pack) */
  int *pack_first;  /* [batch + 1] */
  int *rank_first;  /* [dp + 1]: DP rank r has packs rank_first[r] .. rank_first[r + 1],
                       longest first (unpacked: per_rank each) */
} sched_plan;

ift_status sched_create(sched *s, long n, int batch, int dp, uint64_t seed, int shuffle);
void sched_destroy(sched *s);
/* Pack the batches from now on (sched_create: no packing). */
void sched_set_packing(sched *s, const sched_pack_cfg *pc);
/* Continue from a checkpointed position (the epoch's order is recomputed). */
void sched_restore(sched *s, long step, long epoch, long cursor);
ift_status sched_plan_alloc(sched_plan *p, int batch, int dp);
void sched_plan_free(sched_plan *p);

/* Rank 0 of comm computes step s->step's plan from the sequence lengths
 * (len(i) for i < n) and broadcasts it; every rank advances its state. */
ift_status sched_next(sched *s, sched_plan *p, const sched_lambda_cfg *lc,
                      int (*len)(const void *ctx, long i), const void *ctx, MPI_Comm comm);

#ifdef __cplusplus
}
#endif
#endif
