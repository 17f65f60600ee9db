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
  core_free(w->logp);
  core_free(w->dlogp);
  core_free(w->argmax);
  core_free(w->alt);
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

ift_status step_microbatch(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                           const uint8_t *mask, int B, int T, double n_global, float lambda,
                           const step_cfg *cfg, int backward) {
  IFT_REQUIRE(B <= w->B && T <= w->T, IFT_ERR_INTERNAL, "report this as a bug",
              "micro-batch %d x %d exceeds its scratch %d x %d", B, T, w->B, w->T);
  model_input in = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1};
  loss_metrics mb = {0};
  if (cfg->kind == LOSS_IFT) {
    in.alt = w->alt;
    in.lambda = lambda;
    in.embed_grad = cfg->embed_grad;
    if (lambda > 0.0f) {
      /* Intuition pass: no gradient, no activations kept. */
      model_input plain = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1};
      IFT_TRY(model_forward(m, w->logp, w->argmax, &plain, B, T, 0));
      step_replace_answers(w->alt, tokens, w->argmax, mask, B, T);
    } else {
      /* λ = 0 blends nothing in: skip the pass, x~ = x. */
      memcpy(w->alt, tokens, sizeof(int) * (size_t)B * T);
    }
    IFT_TRY(model_forward(m, w->logp, NULL, &in, B, T, backward));
    loss_ift(backward ? w->dlogp : NULL, NULL, &mb, w->logp, mask, B, T, n_global, &cfg->ift);
  } else {
    IFT_REQUIRE(cfg->kind == LOSS_SFT, IFT_ERR_ARG,
                "preference losses train on /chosen and /rejected pairs (train.loss = dpo|ipo|orpo|simpo)",
                "step_microbatch handles sft and ift, not %s", loss_kind_name(cfg->kind));
    IFT_TRY(model_forward(m, w->logp, NULL, &in, B, T, backward));
    loss_sft(backward ? w->dlogp : NULL, &mb, w->logp, mask, B, T, n_global);
  }
  if (met) {
    met->loss_sum += mb.loss_sum;
    met->nll_sum += mb.nll_sum;
    met->tokens += mb.tokens;
    met->rows += mb.rows;
  }
  if (backward) IFT_TRY(model_backward(m, w->dlogp, B, T));
  return IFT_OK;
}

ift_status step_pairs(model *m, step_ws *w, loss_metrics *met, const int *tokens,
                      const uint8_t *mask, int B, int T, const float *ref, double n_global,
                      const step_cfg *cfg, int backward) {
  IFT_REQUIRE(2 * B <= w->B && T <= w->T, IFT_ERR_INTERNAL, "report this as a bug",
              "%d pairs x %d tokens exceed the scratch %d x %d", B, T, w->B, w->T);
  IFT_REQUIRE(loss_is_pref(cfg->kind), IFT_ERR_ARG, "report this as a bug",
              "step_pairs handles preference losses, not %s", loss_kind_name(cfg->kind));
  IFT_REQUIRE(ref || !loss_pref_needs_ref(cfg->kind), IFT_ERR_ARG,
              "compute them with iftrain prep --ref-logp CKPT --data FILE",
              "train.loss = %s needs reference log-probs", loss_kind_name(cfg->kind));
  model_input in = {.tokens = tokens, .alt = NULL, .lambda = 0.0f, .embed_grad = 1};
  IFT_TRY(model_forward(m, w->logp, NULL, &in, 2 * B, T, backward));
  loss_metrics mb = {0};
  loss_pref(backward ? w->dlogp : NULL, &mb, w->logp, mask, B, T, ref, n_global, cfg->kind, &cfg->pref);
  if (met) {
    met->loss_sum += mb.loss_sum;
    met->nll_sum += mb.nll_sum;
    met->tokens += mb.tokens;
    met->rows += mb.rows;
    met->pref_correct += mb.pref_correct;
    met->margin_sum += mb.margin_sum;
  }
  if (backward) IFT_TRY(model_backward(m, w->dlogp, 2 * B, T));
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
