#include "iftrain/step.h"

#include <string.h>

ift_status step_ws_create(step_ws *w, int B, int T) {
  memset(w, 0, sizeof *w);
  size_t n = (size_t)B * T;
  w->B = B;
  w->T = T;
  w->logp = core_alloc(n * sizeof(float));
  w->dlogp = core_alloc(n * sizeof(float));
  w->argmax = core_alloc(n * sizeof(int));
  w->alt = core_alloc(n * sizeof(int));
  IFT_REQUIRE(w->logp && w->dlogp && w->argmax && w->alt, IFT_ERR_NOMEM, NULL,
              "micro-batch scratch %d x %d", B, T);
  return IFT_OK;
}

void step_ws_destroy(step_ws *w) {
  core_free(w->vlogp);
  core_free(w->vdlogp);
  core_free(w->vmask);
  core_free(w->logp);
  core_free(w->dlogp);
  core_free(w->argmax);
  core_free(w->alt);
  core_free(w->lscr);
  memset(w, 0, sizeof *w);
}

void step_replace_answers(int *alt, const int *tokens, const int *argmax, const uint8_t *mask,
                          int B, int T) {
  for (int b = 0; b < B; b++) {
    const size_t r = (size_t)b * T;
    alt[r] = tokens[r]; /* x'[b,0] = x[b,0] */
    for (int t = 1; t < T; t++) alt[r + t] = mask[r + t] ? argmax[r + t - 1] : tokens[r + t];
  }
}

/* What a loss reads and writes: the micro-batch's rows, or (packed) its
 * documents gathered into rows of their own, so every loss runs unchanged
 * and a packed document is the row it would be unpacked. */
typedef struct {
  const float *logp;
  const uint8_t *mask;
  float *dlogp; /* NULL: forward only */
  int B, T;
} loss_view;

/* The loss view's shape: the rows, or (packed) the documents and the
 * longest of them, each checked to be a document of the micro-batch. */
static ift_status view_shape(const step_pack *pk, int B, int T, int *vb, int *vt) {
  *vb = B;
  *vt = T;
  if (!pk) return IFT_OK;
  int L = 2;
  for (int d = 0; d < pk->ndocs; d++) {
    const step_doc *dc = &pk->docs[d];
    IFT_REQUIRE(dc->row >= 0 && dc->row < B && dc->start >= 0 && dc->len >= 1 && dc->start + dc->len <= T &&
                    pk->pos[(size_t)dc->row * T + dc->start] == 0,
                IFT_ERR_INTERNAL, "report this as a bug",
                "packed document %d (row %d, tokens %d + %d) is not a document of the %d x %d micro-batch", d,
                dc->row, dc->start, dc->len, B, T);
    if (dc->len > L) L = dc->len;
  }
  *vb = pk->ndocs;
  *vt = L;
  return IFT_OK;
}

ift_status step_ws_reserve(step_ws *w, const step_pack *pk, int B, int T) {
  int vb, vt;
  IFT_TRY(view_shape(pk, B, T, &vb, &vt));
  const size_t need = (size_t)vb * vt;
  if (pk && (need > w->vcap || core_fault("step_scratch"))) {
    core_free(w->vlogp);
    core_free(w->vdlogp);
    core_free(w->vmask);
    w->vlogp = core_alloc(need * sizeof(float));
    w->vdlogp = core_alloc(need * sizeof(float));
    w->vmask = core_alloc(need);
    w->vcap = w->vlogp && w->vdlogp && w->vmask && !core_fault("step_scratch") ? need : 0;
    IFT_REQUIRE(w->vcap, IFT_ERR_NOMEM, NULL, "the packed documents' loss view (%d x %d)", vb, vt);
  }
  /* the IFT loss's scratch: a packed micro-batch's documents can outnumber its rows */
  const size_t lneed = LOSS_IFT_SCRATCH(vb, vt);
  if (lneed > w->lcap) {
    core_free(w->lscr);
    w->lscr = core_alloc(lneed * sizeof(double));
    w->lcap = w->lscr ? lneed : 0;
    IFT_REQUIRE(w->lscr, IFT_ERR_NOMEM, NULL, "the IFT loss's scratch (%d x %d)", vb, vt);
  }
  return IFT_OK;
}

static ift_status view_open(step_ws *w, const step_pack *pk, const uint8_t *mask, int B, int T,
                            int backward, loss_view *v) {
  IFT_TRY(step_ws_reserve(w, pk, B, T)); /* nothing to do when the caller reserved */
  if (!pk) {
    *v = (loss_view){w->logp, mask, backward ? w->dlogp : NULL, B, T};
    return IFT_OK;
  }
  int vb, L;
  IFT_TRY(view_shape(pk, B, T, &vb, &L));
  for (int d = 0; d < pk->ndocs; d++) {
    const step_doc *dc = &pk->docs[d];
    const size_t src = (size_t)dc->row * T + dc->start, dst = (size_t)d * L;
    memcpy(w->vlogp + dst, w->logp + src, sizeof(float) * dc->len);
    memcpy(w->vmask + dst, mask + src, dc->len);
    w->vmask[dst] = 0; /* a document's first token has no prediction */
    memset(w->vlogp + dst + dc->len, 0, sizeof(float) * (size_t)(L - dc->len));
    memset(w->vmask + dst + dc->len, 0, (size_t)(L - dc->len));
  }
  *v = (loss_view){w->vlogp, w->vmask, backward ? w->vdlogp : NULL, vb, L};
  return IFT_OK;
}

/* The loss's gradient back to the packed rows (nothing to do unpacked). */
static void view_close(step_ws *w, const step_pack *pk, const loss_view *v, int B, int T) {
  if (!pk || !v->dlogp) return;
  memset(w->dlogp, 0, sizeof(float) * (size_t)B * T);
  for (int d = 0; d < pk->ndocs; d++) {
    const step_doc *dc = &pk->docs[d];
    memcpy(w->dlogp + (size_t)dc->row * T + dc->start, v->dlogp + (size_t)d * v->T, sizeof(float) * dc->len);
  }
}

static void metrics_add(loss_metrics *met, const loss_metrics *mb) {
  if (!met) return;
  met->loss_sum += mb->loss_sum;
  met->nll_sum += mb->nll_sum;
  met->tokens += mb->tokens;
  met->rows += mb->rows;
  met->pref_correct += mb->pref_correct;
  met->margin_sum += mb->margin_sum;
}

ift_status step_microbatch(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                           const uint8_t *mask, int B, int T, double n_global, float lambda,
                           const step_cfg *cfg, int backward) {
  return step_microbatch_packed(m, w, met, tokens, mask, B, T, NULL, n_global, lambda, cfg, backward);
}

ift_status step_microbatch_packed(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                                  const uint8_t *mask, int B, int T, const step_pack *pk,
                                  double n_global, float lambda, const step_cfg *cfg, int backward) {
  IFT_REQUIRE(B <= w->B && T <= w->T, IFT_ERR_INTERNAL, "report this as a bug",
              "micro-batch %d x %d exceeds its scratch %d x %d", B, T, w->B, w->T);
  const int *pos = pk ? pk->pos : NULL;
  model_input in = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1, .pos = pos};
  loss_metrics mb = {0};
  loss_view v;
  if (cfg->kind == LOSS_IFT) {
    in.alt = w->alt;
    in.lambda = lambda;
    in.embed_grad = cfg->embed_grad;
    if (lambda > 0.0f) {
      /* Intuition pass: no gradient, no activations kept. */
      model_input plain = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1, .pos = pos};
      IFT_TRY(model_forward(m, w->logp, w->argmax, &plain, B, T, 0));
      /* a packed document's first token has mask 0: it keeps its token */
      step_replace_answers(w->alt, tokens, w->argmax, mask, B, T);
    } else {
      /* λ = 0 blends nothing in: skip the pass, x~ = x. */
      memcpy(w->alt, tokens, sizeof(int) * (size_t)B * T);
    }
    IFT_TRY(model_forward(m, w->logp, NULL, &in, B, T, backward));
    IFT_TRY(view_open(w, pk, mask, B, T, backward, &v));
    loss_ift(v.dlogp, NULL, &mb, v.logp, v.mask, v.B, v.T, n_global, &cfg->ift, w->lscr);
  } else {
    IFT_REQUIRE(cfg->kind == LOSS_SFT, IFT_ERR_ARG,
                "preference losses train on /chosen and /rejected pairs (train.loss = dpo|ipo|orpo|simpo)",
                "step_microbatch handles sft and ift, not %s", loss_kind_name(cfg->kind));
    IFT_TRY(model_forward(m, w->logp, NULL, &in, B, T, backward));
    IFT_TRY(view_open(w, pk, mask, B, T, backward, &v));
    loss_sft(v.dlogp, &mb, v.logp, v.mask, v.B, v.T, n_global);
  }
  view_close(w, pk, &v, B, T);
  metrics_add(met, &mb);
  if (backward) IFT_TRY(model_backward(m, w->dlogp, B, T));
  return IFT_OK;
}

ift_status step_pairs(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                      const uint8_t *mask, int B, int T, const float *ref, double n_global,
                      const step_cfg *cfg, int backward) {
  return step_pairs_packed(m, w, met, tokens, mask, 2 * B, T, NULL, ref, n_global, cfg, backward);
}

ift_status step_pairs_packed(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                             const uint8_t *mask, int R, int T, const step_pack *pk, const float *ref,
                             double n_global, const step_cfg *cfg, int backward) {
  IFT_REQUIRE(R <= w->B && T <= w->T, IFT_ERR_INTERNAL, "report this as a bug",
              "%d rows x %d tokens exceed the scratch %d x %d", R, T, w->B, w->T);
  IFT_REQUIRE(loss_is_pref(cfg->kind), IFT_ERR_ARG, "report this as a bug",
              "step_pairs handles preference losses, not %s", loss_kind_name(cfg->kind));
  IFT_REQUIRE(ref || !loss_pref_needs_ref(cfg->kind), IFT_ERR_ARG,
              "compute them with iftrain prep --ref-logp CKPT --data FILE",
              "train.loss = %s needs reference log-probs", loss_kind_name(cfg->kind));
  IFT_REQUIRE(pk ? pk->ndocs % 2 == 0 : R % 2 == 0, IFT_ERR_INTERNAL, "report this as a bug",
              "pairs need an even number of answers, not %d", pk ? pk->ndocs : R);
  model_input in = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1, .pos = pk ? pk->pos : NULL};
  IFT_TRY(model_forward(m, w->logp, NULL, &in, R, T, backward));
  loss_view v;
  IFT_TRY(view_open(w, pk, mask, R, T, backward, &v));
  loss_metrics mb = {0};
  loss_pref(v.dlogp, &mb, v.logp, v.mask, v.B / 2, v.T, ref, n_global, cfg->kind, &cfg->pref);
  view_close(w, pk, &v, R, T);
  metrics_add(met, &mb);
  if (backward) IFT_TRY(model_backward(m, w->dlogp, R, T));
  return IFT_OK;
}

ift_status step_answer_logp(model *m, step_ws *w, double *out, const int *tokens,
                            const uint8_t *mask, int R, int T) {
  IFT_REQUIRE(R <= w->B && T <= w->T, IFT_ERR_INTERNAL, "report this as a bug",
              "%d rows x %d tokens exceed the scratch %d x %d", R, T, w->B, w->T);
  model_input in = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1};
  IFT_TRY(model_forward(m, w->logp, NULL, &in, R, T, 0));
  loss_answer_logp(out, w->logp, mask, R, T);
  return IFT_OK;
}
