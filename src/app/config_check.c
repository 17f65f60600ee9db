/* config_check — a whole configuration checked before a run: every key's
 * range again (configurations are also built in code), then the cross-key
 * rules (batch over the DP size, sequence length, preference micro-batch,
 * packing, the tensor-parallel layout) and the 2D grid dist.tp_mode = 2d
 * uses (app_tp_grid). */
#include "config.h"
#include "app_config.h"

#include <string.h>

#include "app.h"
#include "config_keys.h"

void app_tp_grid(const app_config *c, int *pr, int *pc) {
  *pr = *pc = 0;
  if (!c->dist.tp_2d) return;
  /* automatic: the most square grid with rows >= columns (on 2 ranks 2 x 1,
   * which bench/README.md measured faster than 1 x 2 for the model's shapes) */
  int r = c->dist.tp_rows;
  if (r <= 0)
    for (int d = 1; d * d <= c->dist.tp; d++)
      if (c->dist.tp % d == 0) r = c->dist.tp / d;
  *pr = r;
  *pc = c->dist.tp / r;
}

/* The stored value of a key against its range: app_config_check sees configs
 * built in code (tests, eval, benchmarks), not only loaded ones. */
static ift_status check_key(const app_config *c, const key_def *k) {
  const char *p = (const char *)c + k->off;
  double v;
  app_range r = k->range;
  switch (k->type) {
  case K_INT: case K_BOOL: v = *(const int *)p; break;
  case K_LONG: v = (double)*(const long *)p; break;
  case K_DOUBLE: v = *(const double *)p; break;
  case K_ENUM:
    v = *(const int *)p;
    r = APP_IN(0, app_cfg_enum_count(k->choices) - 1);
    break;
  case K_STR:
    IFT_REQUIRE(memchr(p, 0, k->len), IFT_ERR_CONFIG, "end the string within its buffer",
                "%s is not terminated within %zu characters", k->key, k->len);
    return IFT_OK;
  default: return IFT_OK; /* every uint64_t is a seed */
  }
  return app_range_check(k->key, v, r, IFT_ERR_CONFIG, k->help);
}

ift_status app_config_check(const app_config *c, int dp, int tp) {
  for (int i = 0; i < app_cfg_nkeys; i++) IFT_TRY(check_key(c, &app_cfg_keys[i]));
  IFT_TRY(model_config_check(&c->model, tp));
  IFT_REQUIRE(c->train.batch_size % dp == 0, IFT_ERR_CONFIG,
              "make train.batch_size a multiple of the data-parallel size",
              "train.batch_size = %d cannot be split over %d data-parallel ranks",
              c->train.batch_size, dp);
  IFT_REQUIRE(c->train.seq_len <= c->model.max_position_embeddings, IFT_ERR_CONFIG,
              "choose 2 <= train.seq_len <= model.max_position_embeddings",
              "train.seq_len = %d (max_position_embeddings %d)", c->train.seq_len,
              c->model.max_position_embeddings);
  IFT_REQUIRE(!loss_is_pref(c->train.loss) || 2 * c->train.micro_batch <= 512, IFT_ERR_CONFIG,
              "train.micro_batch <= 256 for preference losses (each pair is two rows)",
              "train.micro_batch = %d", c->train.micro_batch);
  IFT_REQUIRE(!c->model_tokenizer[0] || !c->ckpt.init[0], IFT_ERR_CONFIG,
              "leave model.tokenizer empty (the model of ckpt.init carries its own tokenizer), or drop "
              "ckpt.init to build a new model with this tokenizer",
              "model.tokenizer = %s names a new model's tokenizer, but ckpt.init = %s starts from an existing model",
              c->model_tokenizer, c->ckpt.init);
  IFT_REQUIRE(!c->train.packing || !c->ift.reduce_microbatch, IFT_ERR_CONFIG,
              "use ift.reduce = global with train.packing = 1",
              "ift.reduce = microbatch averages over a micro-batch's rows, which packing changes");
  IFT_REQUIRE(c->dist.tp_rows == 0 || c->dist.tp % c->dist.tp_rows == 0, IFT_ERR_LAYOUT,
              "set dist.tp_rows to a divisor of dist.tp (0: automatic)",
              "dist.tp_rows = %d does not divide dist.tp = %d", c->dist.tp_rows, c->dist.tp);
  if (c->dist.tp_2d) {
    int pr, pc;
    app_tp_grid(c, &pr, &pc);
    IFT_TRY(model_grid_check(&c->model, pr, pc, c->dist.tp_block));
  }
  return IFT_OK;
}
