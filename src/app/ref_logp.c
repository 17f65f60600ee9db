/* iftrain prep --ref-logp: the reference model's answer log-probs of a
 * preference data set, written into it for DPO's reference cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "iftrain/ckpt.h"
#include "iftrain/data.h"
#include "app_train.h"

/* iftrain prep --ref-logp: the reference model's summed answer log-probs of
 * every pair, rows split over the ranks (micro-batches of mb pairs), summed
 * into one [n, 2] array, written by rank 0 with the checkpoint's fingerprint. */
int app_ref_logp(const char *ckpt, const char *data, int mb) {
  train_ctx tc;
  memset(&tc, 0, sizeof tc); /* destroyable whatever failed */
  char fp[17] = "";
  float *ref = NULL;
  long n = 0;
  const double t0 = core_now();
  const int rank0 = core_rank() == 0; /* in MPI_COMM_WORLD */
  /* rank 0 fingerprints the reference (a Hugging Face directory is read
   * whole for it); agree before the broadcast and load's collectives */
  ift_status st;
  IFT_TRY_GOTO(st, out, dist_agree(rank0 ? ckpt_fingerprint(ckpt, fp) : IFT_OK, MPI_COMM_WORLD));
  IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(fp, sizeof fp, MPI_CHAR, 0, MPI_COMM_WORLD), NULL);
  IFT_TRY_GOTO(st, out, app_eval_load(&tc, ckpt, data, 2 * mb, 1 << 20, 1, 0, 0, NULL));
  /* every rank loaded the same set and model: these checks fail on all or none */
  data_set *d = &tc.eval;
  IFT_REQUIRE_GOTO(st, out, d->has_pairs, IFT_ERR_FORMAT, "prep the set from a JSONL with prompt/chosen/rejected lines",
                   "%s has no /chosen and /rejected pairs", data);
  const int Tm = tc.cfg.train.seq_len;
  const long longest = data_max_pair_len(d);
  IFT_REQUIRE_GOTO(st, out, longest <= Tm, IFT_ERR_FORMAT,
                   "prep the data with --max-len or use a model with more positions",
                   "%s: a pair row has %ld tokens, more than the reference's %d positions", data, longest, Tm);
  n = d->n;
  /* forward FLOPs of every chosen and rejected row (for compute budgets) */
  const double flops = model_forward_flops(tc.m, 1, Tm) / Tm * (double)(d->ch_offsets[n] + d->rj_offsets[n]);
  ref = calloc((size_t)2 * (size_t)(n > 0 ? n : 1), sizeof(float));
  IFT_REQUIRE_GOTO(st, setup, ref, IFT_ERR_NOMEM, NULL, "reference log-probs of %ld pairs", n);
setup: /* a rank's own failure, agreed before the micro-batches' collectives */
  IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
  double sums[1024], t_last = t0;
  long done = 0, rows[256], ntok = 0;
  for (long r0 = (long)tc.grid.dp_rank * mb; r0 < n; r0 += (long)tc.grid.dp_size * mb) {
    const int nb = (int)(n - r0 < mb ? n - r0 : mb);
    int T = 2;
    for (int j = 0; j < nb; j++) rows[j] = r0 + j;
    /* the replica's ranks agree on its reads before the forward's collectives */
    IFT_TRY_GOTO(st, agree,
                 dist_agree(train_load_pairs(d, rows, nb, Tm, tc.tok, tc.mask, NULL, &T, &ntok), tc.grid.tp));
    IFT_TRY_GOTO(st, agree, step_answer_logp(tc.m, &tc.ws, sums, tc.tok, tc.mask, 2 * nb, T));
    if (tc.grid.tp_rank == 0)
      for (int j = 0; j < nb; j++) {
        ref[2 * (r0 + j)] = (float)sums[j];
        ref[2 * (r0 + j) + 1] = (float)sums[nb + j];
      }
    done += nb;
    if (tc.grid.rank == 0 && core_loglevel() >= IFT_LOG_INFO && core_now() - t_last > 10) {
      t_last = core_now();
      fprintf(stderr, "ref-logp: ~%ld / %ld pairs (%.0f s)\n", done * tc.grid.dp_size, n, t_last - t0);
    }
  }
agree: /* every rank took part in the collectives so far; agree on the outcome */
  IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
  IFT_MPI_CHECK_GOTO(st, out, MPI_Allreduce(MPI_IN_PLACE, ref, (int)(2 * n), MPI_FLOAT, MPI_SUM, tc.grid.world),
                     NULL);
  train_ctx_destroy(&tc); /* closes the data set everywhere before rank 0 rewrites it */
  memset(&tc, 0, sizeof tc);
  if (rank0) {
    st = data_write_ref_logp(data, ref, n, fp, ckpt);
    if (st == IFT_OK && core_loglevel() >= IFT_LOG_INFO)
      printf("ref-logp: %ld pairs scored by %s (fingerprint %s) in %.1f s, %.4g FLOPs -> %s:/ref_logp\n",
             n, ckpt, fp, core_now() - t0, flops, data);
  }
out:
  train_ctx_destroy(&tc);
  free(ref);
  /* rank 0's write decides for every rank */
  return dist_agree(st, MPI_COMM_WORLD) != IFT_OK ? APP_EXIT_USAGE : APP_EXIT_OK;
}
