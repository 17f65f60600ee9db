/* step_optimizer — one optimizer step as `train` runs it (step.h), and the
 * ZeRO-1 partition it updates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/step.h"

ift_status step_zero_create(step_zero *z, int on, size_t nparams, const dist_grid *g) {
  memset(z, 0, sizeof *z);
  z->on = on && g->dp_size > 1;
  z->n = nparams;
  if (!z->on) return IFT_OK;
  IFT_REQUIRE(nparams < (size_t)1 << 31, IFT_ERR_CONFIG, "use more tensor-parallel ranks",
              "%zu parameters per rank exceed the MPI count range", nparams);
  z->counts = malloc(sizeof(int) * (size_t)g->dp_size);
  z->displs = malloc(sizeof(int) * (size_t)g->dp_size);
  IFT_REQUIRE(z->counts && z->displs, IFT_ERR_NOMEM, NULL, "ZeRO plan");
  size_t per = (nparams / (size_t)g->dp_size + 15) & ~(size_t)15, off = 0;
  for (int r = 0; r < g->dp_size; r++) {
    size_t c = off + per <= nparams ? per : nparams - off;
    z->displs[r] = (int)off;
    z->counts[r] = (int)c;
    off += c;
  }
  z->lo = (size_t)z->displs[g->dp_rank];
  z->n = (size_t)z->counts[g->dp_rank];
  return IFT_OK;
}

void step_zero_destroy(step_zero *z) {
  free(z->counts);
  free(z->displs);
  core_free(z->full_m);
  core_free(z->full_v);
  memset(z, 0, sizeof *z);
}

ift_status step_zero_full_view(step_zero *z, optim_state *opt, optim_state *view, size_t nparams,
                               const dist_grid *grid, int gather) {
  *view = *opt;
  if (!z->on) return IFT_OK;
  view->n = nparams;
  if (opt->m && !z->full_m) z->full_m = core_alloc(nparams * sizeof(float));
  if (opt->v && !z->full_v) z->full_v = core_alloc(nparams * sizeof(float));
  ift_status st = IFT_OK;
  if (!((!opt->m || z->full_m) && (!opt->v || z->full_v)) || core_fault("zero_view")) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "core_alloc", NULL,
                  "optimizer state of %zu parameters for a checkpoint", nparams);
    st = IFT_ERR_NOMEM;
  }
  /* before the gather and the checkpoint's collectives */
  IFT_TRY(dist_agree(st, grid->world));
  MPI_Comm dp = grid->dp;
  view->m = z->full_m;
  view->v = z->full_v;
  if (gather) {
    if (opt->m)
      IFT_MPI_CHECK(MPI_Allgatherv(opt->m, (int)z->n, MPI_FLOAT, z->full_m, z->counts,
                                   z->displs, MPI_FLOAT, dp), NULL);
    if (opt->v)
      IFT_MPI_CHECK(MPI_Allgatherv(opt->v, (int)z->n, MPI_FLOAT, z->full_v, z->counts, z->displs,
                                   MPI_FLOAT, dp), NULL);
  }
  return IFT_OK;
}

/* Squared norm of the gradient slice [lo, lo+n) over the whole grid: TP
 * shards are disjoint and summed over the TP group, replicated tensors
 * (norms) count once; with ZeRO the slices are summed over DP too. */
static ift_status grad_sqnorm(model *m, const dist_grid *g, const step_zero *z, double *out) {
  const float *gr = model_grads(m);
  double s = 0;
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    if (t->shard == SHARD_NONE && g->tp_rank != 0) continue;
    size_t a = t->offset, b = t->offset + (size_t)t->lrows * t->lcols;
    if (a < z->lo) a = z->lo;
    if (b > z->lo + z->n) b = z->lo + z->n;
    if (a < b) s += optim_sqnorm(gr + a, b - a);
  }
  if (g->tp_size > 1) IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, g->tp), NULL);
  if (z->on) IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, g->dp), NULL);
  *out = s;
  return IFT_OK;
}

ift_status step_optimizer(model *m, step_ws *w, optim_state *opt, step_zero *z, const dist_grid *g,
                          const step_cfg *cfg, const step_opts *o, step_loader load, void *ctx,
                          step_report *rep) {
  memset(rep, 0, sizeof *rep);
  model_zero_grads(m);
  loss_metrics met = {0};
  long ntok = 0, slots = 0;
  ift_status st = IFT_OK;
  for (int k = 0; k < o->nmb && st == IFT_OK; k++) {
    step_mb mb = {0};
    st = load(ctx, k, &mb, &ntok, &slots);
    if (st == IFT_OK && mb.rows) st = step_ws_reserve(w, mb.pk, mb.rows, mb.T);
    /* a read (or scratch) that fails on one rank is agreed before the
     * step's collectives (tensor-parallel forward, gradient reduce) */
    if ((st = dist_agree(st, g->world)) != IFT_OK || !mb.rows) continue;
    if (loss_is_pref(cfg->kind))
      st = step_pairs_packed(m, w, &met, mb.tokens, mb.mask, mb.rows, mb.T, mb.pk, mb.ref, mb.n_global,
                             cfg, 1);
    else
      st = step_microbatch_packed(m, w, &met, mb.tokens, mb.mask, mb.rows, mb.T, mb.pk, mb.n_global,
                                  o->lambda, cfg, 1);
  }
  IFT_TRY(st);
  /* Data-parallel gradient sum (the loss is already the global mean). */
  if (z->on) {
    /* the slice's summed gradient arrives at the start of the buffer */
    IFT_MPI_CHECK(MPI_Reduce_scatter(MPI_IN_PLACE, model_grads(m), z->counts, MPI_FLOAT, MPI_SUM, g->dp),
                  "a rank failed in the gradient reduce-scatter");
    if (z->lo) memmove(model_grads(m) + z->lo, model_grads(m), z->n * sizeof(float));
  } else if (g->dp_size > 1) {
    IFT_TRY(dist_allreduce(model_grads(m), (int)model_nparams(m), MPI_FLOAT, MPI_SUM, g->dp));
  }
  double ms[8] = {met.loss_sum, met.nll_sum, met.rows, met.tokens, met.pref_correct, met.margin_sum,
                  (double)ntok, (double)slots};
  if (g->tp_rank != 0) memset(ms, 0, sizeof ms);
  IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, ms, 8, MPI_DOUBLE, MPI_SUM, g->world), NULL);
  rep->met = (loss_metrics){.loss_sum = ms[0], .nll_sum = ms[1], .rows = ms[2], .tokens = ms[3],
                            .pref_correct = ms[4], .margin_sum = ms[5]};
  rep->tokens = ms[6];
  rep->slots = ms[7];
  rep->loss = ms[0] / o->n_global;
  double sq;
  IFT_TRY(grad_sqnorm(m, g, z, &sq));
  const double gn = rep->grad_norm = sqrt(sq), loss = rep->loss;
  if (!isfinite(loss) || !isfinite(gn)) {
    /* name the first tensor whose gradient is not finite */
    const char *bad = "none (the loss itself)";
    for (int i = 0; i < model_ntensors(m) && isfinite(loss); i++) {
      const model_tensor *t = model_tensor_at(m, i);
      if (!isfinite(optim_sqnorm(model_grads(m) + t->offset, (size_t)t->lrows * t->lcols))) {
        bad = t->name;
        break;
      }
    }
    ift_error_set(IFT_ERR_NUMERIC, __FILE__, __LINE__, "loss",
                  "lower optim.lr or enable optim.clip; the last checkpoint is intact",
                  "step %ld: %s is %s (first non-finite gradient: %s)", o->step + 1,
                  isfinite(loss) ? "gradient norm" : "loss", isnan(isfinite(loss) ? gn : loss) ? "NaN" : "Inf",
                  bad);
    /* loss and norm are all-reduced: every rank is here (agreed, no MPI_ABORT) */
    return dist_agree(IFT_ERR_NUMERIC, g->world);
  }
  const double clipf = optim_clip_factor(gn, o->clip);
  if (clipf < 1.0) optim_scale(model_grads(m) + z->lo, z->n, (float)clipf);
  optim_step(opt, model_params(m) + z->lo, model_grads(m) + z->lo, o->lr);
  if (z->on)
    IFT_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, model_params(m), z->counts, z->displs,
                                 MPI_FLOAT, g->dp),
                  "a rank failed in the parameter all-gather");
  return IFT_OK;
}
