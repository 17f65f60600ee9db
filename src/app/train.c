/* iftrain train: the training job.  Rank 0 schedules (sched), every rank
 * runs its micro-batches (step), gradients are all-reduced over the data-
 * parallel group, clipped by the global norm and applied (optim). */
#include "config.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/ckpt.h"
#include "app_config.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"
#include "iftrain/sched.h"
#include "iftrain/step.h"
#include "app_train.h"
#include "metrics.h"

static int data_len_cb(const void *ctx, long i) { return data_len((const data_set *)ctx, i); }

/* Read rows[0..nb) of the data set into padded [nb, T] buffers; returns T
 * (the longest row, capped at seq_len). */
/* Rows of group (NULL: main rows; "chosen"; "rejected"): groups[j % ngroups]
 * for row j < nb * ngroups, sequence rows[j / ...]: with two groups the
 * first nb rows are chosen answers and the next nb the rejected ones. */
static ift_status load_groups(data_set *d, const char *const *groups, int ngroups, const long *rows,
                              int nb, int seq_len, int *tok, uint8_t *mask, int *T_out, long *ntok) {
  int T = 2;
  for (int g = 0; g < ngroups; g++)
    for (int j = 0; j < nb; j++) {
      int l = data_group_len(d, groups[g], rows[j]);
      if (l > T) T = l;
    }
  if (T > seq_len) T = seq_len;
  for (int j = 0; j < nb * ngroups; j++) {
    int len = 0;
    IFT_TRY(data_read_row(d, groups[j / nb], rows[j % nb], tok + (size_t)j * T, mask + (size_t)j * T, T, &len));
    IFT_REQUIRE(!core_fault("data_read"), IFT_ERR_IO, "injected by IFT_FAULT (a test)",
                "%s: reading row %ld failed", d->path, rows[j % nb]);
    *ntok += len;
    for (int t = len; t < T; t++) {
      tok[(size_t)j * T + t] = TOK_PAD;
      mask[(size_t)j * T + t] = 0;
    }
    mask[(size_t)j * T] = 0; /* position 0 has no prediction */
  }
  *T_out = T;
  return IFT_OK;
}

static ift_status load_rows(data_set *d, const long *rows, int nb, int seq_len, int *tok,
                            uint8_t *mask, int *T_out, long *ntok) {
  static const char *const main_rows[1] = {NULL};
  return load_groups(d, main_rows, 1, rows, nb, seq_len, tok, mask, T_out, ntok);
}

ift_status train_load_group(data_set *d, const char *group, const long *rows, int nb, int seq_len,
                            int *tok, uint8_t *mask, int *T_out, long *ntok) {
  const char *const groups[1] = {group};
  return load_groups(d, groups, 1, rows, nb, seq_len, tok, mask, T_out, ntok);
}

ift_status train_load_pairs(data_set *d, const long *rows, int nb, int seq_len, int *tok,
                            uint8_t *mask, float *ref, int *T_out, long *ntok) {
  static const char *const pair_rows[2] = {"chosen", "rejected"};
  if (ref && d->ref_logp)
    for (int j = 0; j < nb; j++) {
      ref[2 * j] = d->ref_logp[2 * rows[j]];
      ref[2 * j + 1] = d->ref_logp[2 * rows[j] + 1];
    }
  return load_groups(d, pair_rows, 2, rows, nb, seq_len, tok, mask, T_out, ntok);
}

/* Packing: item i's part (0 the row or the chosen answer, 1 the rejected). */
static int part_len_cb(const void *ctx, long i, int part) {
  (void)part;
  return data_len((const data_set *)ctx, i);
}
static int pair_len_cb(const void *ctx, long i, int part) {
  return data_group_len((const data_set *)ctx, part ? "rejected" : "chosen", i);
}

/* Read packs k0..k1 of the plan into rows of T tokens (T = the fullest
 * row): one row per pack, or for pairs the packs' chosen rows then their
 * rejected rows.  Each item's document starts at position 0 (pos) with its
 * first token unmasked; the rest of a row is padding, a document of its
 * own.  docs lists the documents in loss order (pairs: every chosen answer,
 * then every rejected one), ref (pairs, may be NULL) their cached reference
 * log-probs [items, 2]. */
static ift_status load_packs(data_set *d, const sched_plan *p, int k0, int k1, int pairs, int seq_len,
                             int *tok, uint8_t *mask, int *pos, step_doc *docs, int *ndocs, float *ref,
                             int *T_out, long *ntok, long *slots) {
  static const char *const main_g[1] = {NULL}, *const pair_g[2] = {"chosen", "rejected"};
  const char *const *g = pairs ? pair_g : main_g;
  const int P = pairs ? 2 : 1, npk = k1 - k0, nitems = p->pack_first[k1] - p->pack_first[k0];
  int T = 2;
  for (int q = 0; q < P; q++)
    for (int k = k0; k < k1; k++) {
      int used = 0;
      for (int j = p->pack_first[k]; j < p->pack_first[k + 1]; j++) {
        const int l = data_group_len(d, g[q], p->rows[j]);
        used += l < 1 ? 1 : l > seq_len ? seq_len : l;
      }
      T = used > T ? used : T;
    }
  IFT_REQUIRE(T <= seq_len, IFT_ERR_INTERNAL, "report this as a bug", "a pack of %d tokens exceeds %d", T,
              seq_len);
  for (int q = 0; q < P; q++) {
    int item = 0;
    for (int k = k0; k < k1; k++) {
      const size_t r0 = (size_t)(q * npk + k - k0) * T;
      int off = 0;
      for (int j = p->pack_first[k]; j < p->pack_first[k + 1]; j++, item++) {
        int len = 0, cap = T - off < seq_len ? T - off : seq_len;
        IFT_TRY(data_read_row(d, g[q], p->rows[j], tok + r0 + off, mask + r0 + off, cap, &len));
        IFT_REQUIRE(!core_fault("data_read"), IFT_ERR_IO, "injected by IFT_FAULT (a test)",
                    "%s: reading row %ld failed", d->path, p->rows[j]);
        *ntok += len;
        if (len < 1) { /* an empty row: one padding token, no loss */
          tok[r0 + off] = TOK_PAD;
          len = 1;
        }
        mask[r0 + off] = 0; /* a document's first token has no prediction */
        for (int t = 0; t < len; t++) pos[r0 + off + t] = t;
        docs[q * nitems + item] = (step_doc){q * npk + k - k0, off, len};
        if (ref && q == 0) {
          ref[2 * item] = d->ref_logp[2 * p->rows[j]];
          ref[2 * item + 1] = d->ref_logp[2 * p->rows[j] + 1];
        }
        off += len;
      }
      for (int t = off; t < T; t++) {
        tok[r0 + t] = TOK_PAD;
        mask[r0 + t] = 0;
        pos[r0 + t] = t - off;
      }
    }
  }
  *ndocs = P * nitems;
  *T_out = T;
  *slots += (long)P * npk * T;
  return IFT_OK;
}

/* The micro-batches of one optimizer step on this rank (step_loader): its
 * packs of the plan (unpacked: its rows) in groups of micro_batch. */
typedef struct {
  train_ctx *tc;
  const sched_plan *plan;
  int pairs, packing, nmb;
  int *pos;
  step_doc *docs;
  float *ref; /* NULL: the loss needs no reference log-probs */
  step_pack pk;
} step_source;

static ift_status source_load(void *ctx, int k, step_mb *mb, long *ntok, long *slots) {
  step_source *s = ctx;
  train_ctx *tc = s->tc;
  const app_config *cfg = &tc->cfg;
  const sched_plan *p = s->plan;
  const int B = cfg->train.micro_batch, P = s->pairs ? 2 : 1;
  const int k0 = p->rank_first[tc->grid.dp_rank], k1 = p->rank_first[tc->grid.dp_rank + 1];
  const int a = k0 + k * B, nb = a >= k1 ? 0 : (k1 - a < B ? k1 - a : B);
  const long *rows = p->rows + p->pack_first[a];
  int T = 0, nd = 0;
  if (!nb) return IFT_OK;
  if (s->packing) {
    IFT_TRY(load_packs(&tc->train, p, a, a + nb, s->pairs, cfg->train.seq_len, tc->tok, tc->mask, s->pos,
                       s->docs, &nd, s->ref, &T, ntok, slots));
    s->pk = (step_pack){s->pos, s->docs, nd};
  } else {
    if (s->pairs)
      IFT_TRY(train_load_pairs(&tc->train, rows, nb, cfg->train.seq_len, tc->tok, tc->mask, s->ref, &T, ntok));
    else
      IFT_TRY(load_rows(&tc->train, rows, nb, cfg->train.seq_len, tc->tok, tc->mask, &T, ntok));
    *slots += (long)P * nb * T;
  }
  *mb = (step_mb){.rows = P * nb, .T = T, .tokens = tc->tok, .mask = tc->mask,
                  .pk = s->packing ? &s->pk : NULL, .ref = s->ref,
                  .n_global = cfg->ift.reduce_microbatch && !s->pairs
                                  ? (double)nb * s->nmb * tc->grid.dp_size
                                  : (double)cfg->train.batch_size};
  return IFT_OK;
}

/* The preference data checks of train.loss (pairs present; for DPO and IPO a
 * reference cache whose fingerprint is the reference checkpoint's). */
static ift_status check_pref_data(const app_config *cfg, const data_set *d) {
  const char *loss = loss_kind_name(cfg->train.loss);
  IFT_REQUIRE(d->has_pairs, IFT_ERR_CONFIG,
              "preference losses train on pairs: prep a JSONL with prompt/chosen/rejected lines",
              "train.loss = %s: %s has no /chosen and /rejected groups", loss, d->path);
  if (!loss_pref_needs_ref(cfg->train.loss)) return IFT_OK;
  const char *ref = cfg->pref.reference[0] ? cfg->pref.reference : cfg->ckpt.init;
  IFT_REQUIRE(ref[0], IFT_ERR_CONFIG,
              "set ckpt.init (or pref.reference) to the reference checkpoint, e.g. the SFT model",
              "train.loss = %s needs a reference model", loss);
  IFT_REQUIRE(d->has_ref_logp, IFT_ERR_CONFIG, "run: iftrain prep --ref-logp REF.h5 --data DATA.h5",
              "train.loss = %s: %s has no cached reference log-probs (/ref_logp)", loss, d->path);
  const long longest = data_max_pair_len(d);
  IFT_REQUIRE(longest <= cfg->train.seq_len, IFT_ERR_CONFIG,
              "raise train.seq_len: truncated rows would not match the cached reference log-probs",
              "%s: a pair row has %ld tokens, train.seq_len is %d", d->path, longest, cfg->train.seq_len);
  char fp[17];
  IFT_TRY(ckpt_fingerprint(ref, fp));
  IFT_REQUIRE(!strcmp(fp, d->ref_fingerprint), IFT_ERR_CONFIG,
              "recompute the cache for this reference: iftrain prep --ref-logp REF.h5 --data DATA.h5",
              "%s: /ref_logp was computed from another model (fingerprint %s, from '%s') than the "
              "reference %s (fingerprint %s)",
              d->path, d->ref_fingerprint, d->ref_source, ref, fp);
  return IFT_OK;
}

/* value of `key` (section.key) in a config text written by app_config_write
 * -> out ("" when absent). */
static void cfg_text_value(const char *text, const char *key, char *out, size_t n) {
  out[0] = 0;
  const char *dot = strchr(key, '.');
  char section[64] = "";
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    size_t len = strcspn(l, "\n");
    if (*l == '[') {
      snprintf(section, sizeof section, "%.*s", (int)(len > 2 ? len - 2 : 0), l + 1);
      continue;
    }
    size_t kl = strlen(dot + 1);
    if (strlen(section) == (size_t)(dot - key) && !strncmp(section, key, (size_t)(dot - key)) &&
        !strncmp(l, dot + 1, kl) && !strncmp(l + kl, " = ", 3)) {
      snprintf(out, n, "%.*s", (int)(len - kl - 3), l + kl + 3);
      return;
    }
  }
}

/* A resume continues the trajectory the checkpoint was on: its position
 * must lie in this data set, and the keys that shape the schedule must be
 * the ones it was written with (each difference named; ckpt.allow_changes
 * lets them through, reported). */
static ift_status check_resume(const app_config *cfg, const char *cfg_text, const char *data_hash,
                               const ckpt_train_state *ts, const char *path, long nrows) {
  IFT_REQUIRE(ts->cursor <= nrows, IFT_ERR_FORMAT,
              "resume with the data set the run was trained on (data.train), or use an earlier checkpoint",
              "%s: /train cursor = %ld lies beyond the %ld rows of %s", path, ts->cursor, nrows,
              cfg->data.train);
  IFT_REQUIRE(nrows == 0 || ts->epoch <= ts->step * (long)cfg->train.batch_size / nrows + 1,
              IFT_ERR_FORMAT, "the file is damaged: use an earlier checkpoint",
              "%s: /train epoch = %ld cannot be reached in %ld steps of %d sequences over %ld rows",
              path, ts->epoch, ts->step, cfg->train.batch_size, nrows);
  static const char *keys[] = {"train.steps", "train.epochs", "train.batch_size", "optim.lr",
                               "optim.schedule", "optim.warmup", "ift.schedule", "ift.lambda",
                               "ift.warmup_steps", "train.seed", "data.shuffle"};
  /* the run's length shapes the learning rate only through a decaying
   * schedule or a warm-up given as a fraction: otherwise extending (or
   * shortening) a run continues the same trajectory */
  const int length_free = cfg->optim.schedule == LR_CONSTANT &&
                          (cfg->optim.warmup == 0 || cfg->optim.warmup >= 1);
  char diff[1024] = "";
  size_t o = 0;
  for (size_t i = 0; ts->config_text && i < sizeof keys / sizeof keys[0]; i++) {
    char was[256], now[256];
    cfg_text_value(ts->config_text, keys[i], was, sizeof was);
    cfg_text_value(cfg_text, keys[i], now, sizeof now);
    if (length_free && !strncmp(keys[i], "train.", 6) && strcmp(keys[i], "train.batch_size") &&
        strcmp(keys[i], "train.seed")) {
      if (was[0] && strcmp(was, now))
        IFT_LOG0("%s %s -> %s on resume (a constant learning rate does not depend on it)", keys[i], was, now);
      continue;
    }
    if (was[0] && strcmp(was, now) && o < sizeof diff - 160)
      o += (size_t)snprintf(diff + o, sizeof diff - o, "%s%s %s -> %s", o ? ", " : "", keys[i], was, now);
  }
  /* the same rows under the same name: a regenerated or edited data set
   * would silently change what the rest of the run trains on */
  if (ts->data_hash[0] && data_hash[0] && strcmp(ts->data_hash, data_hash) && o < sizeof diff - 200)
    o += (size_t)snprintf(diff + o, sizeof diff - o, "%sdata.train contents %.12s... -> %.12s...",
                          o ? ", " : "", ts->data_hash, data_hash);
  if (!o) return IFT_OK;
  IFT_REQUIRE(cfg->ckpt.allow_changes, IFT_ERR_CONFIG,
              "resume with the values the run was started with, or pass --ckpt.allow_changes=1 to "
              "change its schedule from here on",
              "resuming %s with changes to what it was trained with: %s", path, diff);
  IFT_LOG0("warning: resuming with changes (ckpt.allow_changes = 1): %s", diff);
  return IFT_OK;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { g_stop = sig; }
/* the signal that stopped the run after its checkpoint was written (0: the
 * run was not stopped that way -- a failure while a signal was pending is a
 * failure, not a requeue) */
static int g_preempted = 0;

ift_status train_ctx_create(train_ctx *tc, const app_config *cfg, int flags, MPI_Comm comm) {
  const int need_train_data = flags & TRAIN_CTX_TRAIN_DATA;
  memset(tc, 0, sizeof *tc);
  tc->cfg = *cfg;
  IFT_TRY(dist_grid_create(&tc->grid, comm, cfg->dist.tp));
  IFT_TRY(app_config_check(cfg, tc->grid.dp_size, tc->grid.tp_size));
  if (need_train_data) {
    /* the vocab is checked with the tokenizer (data_check_tokenizer) */
    IFT_TRY(data_open(&tc->train, cfg->data.train, tc->grid.world, 0));
    tc->have_train = 1;
  }
  if (cfg->data.eval[0]) {
    IFT_TRY(data_open(&tc->eval, cfg->data.eval, tc->grid.world, 0));
    tc->have_eval = 1;
  }
  /* check_pref_data reads the reference checkpoint on each rank: agree
   * before the collectives that follow (here and in the caller) */
  ift_status st = need_train_data && loss_is_pref(cfg->train.loss) ? check_pref_data(cfg, &tc->train) : IFT_OK;
  if (st == IFT_OK && core_fault("train_setup")) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "train_setup", "injected by IFT_FAULT (a test)",
                  "a rank's setup failed");
    st = IFT_ERR_IO;
  }
  IFT_TRY(dist_agree(st, tc->grid.world));
  const int B = cfg->train.micro_batch, T = cfg->train.seq_len;
  IFT_REQUIRE(B <= 512, IFT_ERR_CONFIG, "train.micro_batch <= 512", "micro-batch %d", B);
  /* a preference micro-batch holds B pairs = 2B rows */
  const int R = need_train_data && loss_is_pref(cfg->train.loss) ? 2 * B : B;
  int pr, pc;
  app_tp_grid(cfg, &pr, &pc);
  dist_set_pblas_block(cfg->dist.pblas_block ? cfg->dist.pblas_block
                                             : dist_pblas_block_for(cfg->model.hidden_size));
  /* no collectives from here on: local failures (memory) are agreed at the end */
  st = model_create_opt(&tc->m, &cfg->model, tc->grid.tp, pr, pc, cfg->dist.tp_block, R, T,
                        (model_recompute)cfg->train.recompute);
  if (st == IFT_OK) {
    /* eval and generate load every weight: no initialisation to overwrite */
    if (!(flags & TRAIN_CTX_WEIGHTS_LOADED)) model_init_weights(tc->m, cfg->model.init_seed);
    st = step_ws_create(&tc->ws, R, T);
  }
  if (st != IFT_OK) return dist_agree(st, tc->grid.world);
  size_t n = (size_t)B * T;
  tc->tok = core_alloc((size_t)R * T * sizeof(int));
  tc->mask = core_alloc((size_t)R * T);
  tc->gen = core_alloc(n * sizeof(int));
  tc->gtok = core_alloc(n * sizeof(int));
  if (!(tc->tok && tc->mask && tc->gen && tc->gtok)) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "core_alloc", NULL, "batch buffers");
    st = IFT_ERR_NOMEM;
  }
  return dist_agree(st, tc->grid.world);
}

void train_ctx_destroy(train_ctx *tc) {
  if (tc->m) model_destroy(tc->m);
  step_ws_destroy(&tc->ws);
  core_free(tc->tok);
  core_free(tc->mask);
  core_free(tc->gen);
  core_free(tc->gtok);
  if (tc->have_train) data_close(&tc->train);
  if (tc->have_eval) data_close(&tc->eval);
  dist_grid_destroy(&tc->grid);
}

static void fmt_eta(char *b, size_t n, double s) {
  if (s < 0 || s > 1e7) snprintf(b, n, "--");
  else if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
  else snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* <ckpt.dir>/exit_status: how the run ended, for a wrapper that cannot see
 * the ranks' exit codes (mpirun reports 1 after a SIGTERM although the
 * ranks checkpointed and exited 75).  One line: the exit code, a word, the
 * steps done.  Only in a directory this run claimed. */
static void write_exit_status(const char *dir, int rc, long steps, int sig) {
  char path[1100], tmp[1110];
  snprintf(path, sizeof path, "%s/exit_status", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  const char *word = rc == APP_EXIT_OK ? "done" : rc == APP_EXIT_PREEMPT ? "preempted"
                     : rc == APP_EXIT_USAGE ? "bad-input" : "failed";
  int ok = fprintf(f, "%d %s steps=%ld signal=%d\n", rc, word, steps, sig) > 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

int app_train(int argc, char **argv) {
  const char *cfg_path = NULL, *help_config = NULL;
  const app_optdef opts[] = {APP_STR("config", &cfg_path), APP_STR_OPT("help-config", &help_config), {0}};
  /* the other options are the --section.key=value of app_config_load */
  const app_opts spec = {.cmd = "train", .opts = opts, .keep = APP_KEEP_OVERRIDES,
                         .hint = "options are --config FILE and --section.key=value (iftrain train --help)"};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help_config) {
    if (strcmp(help_config, "") && strcmp(help_config, "markdown")) {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain train: --help-config=%s: give --help-config or --help-config=markdown\n",
                help_config);
      return APP_EXIT_USAGE;
    }
    if (core_rank() == 0) (*help_config ? app_config_help_markdown : app_config_help)(stdout);
    return APP_EXIT_OK;
  }
  app_config cfg;
  app_config_defaults(&cfg);
  if (app_config_load(&cfg, cfg_path, argc - 1, argv + 1) != IFT_OK) return APP_EXIT_USAGE;
  if (cfg.ckpt.init[0]) {
    /* fine-tuning start: the model is the one stored with the initial
     * weights (a checkpoint's /model attributes, a directory's config.json) */
    const uint64_t seed = cfg.model.init_seed;
    char ipath[1100];
    ift_status hs = ckpt_resolve_any(ipath, sizeof ipath, cfg.ckpt.init);
    if (hs == IFT_OK) hs = ckpt_read_config(ipath, &cfg.model);
    if (hs != IFT_OK) return app_exit_code(hs);
    cfg.model.init_seed = seed;
    if (core_rank() == 0) IFT_LOG0("model: from %s (ckpt.init)", ipath);
  }
  train_result res;
  ift_status st = train_run(&cfg, MPI_COMM_WORLD, &res);
  const int rc = st == IFT_OK ? APP_EXIT_OK : g_preempted ? APP_EXIT_PREEMPT : app_exit_code(st);
  if (core_rank() == 0 && res.claimed_dir) write_exit_status(cfg.ckpt.dir, rc, res.steps, g_preempted);
  return rc;
}

ift_status train_run(const app_config *cfg0, MPI_Comm comm, train_result *res) {
  train_ctx tc;
  if (res) memset(res, 0, sizeof *res);
  ift_status st = train_ctx_create(&tc, cfg0, TRAIN_CTX_TRAIN_DATA, comm);
  if (st != IFT_OK) {
    train_ctx_destroy(&tc);
    return st;
  }
  const app_config *cfg = &tc.cfg;
  const int rank = tc.grid.rank, B = cfg->train.micro_batch;
  signal(SIGUSR1, on_signal);
  signal(SIGTERM, on_signal);
  char *cfg_text = NULL;
  char *origin = NULL; /* where the weights came from: carried into every checkpoint */
  size_t cfg_len = 0;
  FILE *cf = open_memstream(&cfg_text, &cfg_len);
  app_config_write(cf, cfg);
  fclose(cf);
  const int verbose = core_loglevel() >= IFT_LOG_INFO;
  if (rank == 0 && verbose) {
    fprintf(stderr, "# effective configuration\n%s\n", cfg_text);
    int pr, pc;
    model_tp_grid(tc.m, &pr, &pc);
    char mode[96] = "";
    if (pr)
      snprintf(mode, sizeof mode, " (2D: %d x %d PBLAS grid, weight blocks %d, PBLAS block %d)", pr,
               pc, cfg->dist.tp_block, dist_pblas_block());
    IFT_LOG0("iftrain: %d rank%s = %d data-parallel x %d tensor-parallel%s; BLIS %s kernels, %d "
             "thread%s; %zu parameters; activations %.1f MiB/rank",
             tc.grid.size, tc.grid.size > 1 ? "s" : "", tc.grid.dp_size, tc.grid.tp_size, mode,
             kern_arch_name(kern_arch_active()), kern_threads(), kern_threads() > 1 ? "s" : "",
             model_nparams_global(tc.m), model_activation_bytes(tc.m) / 1048576.0);
    const char *job = getenv("SLURM_JOB_ID");
    if (job)
      IFT_LOG0("slurm: job %s, restart count %s", job,
               getenv("SLURM_RESTART_COUNT") ? getenv("SLURM_RESTART_COUNT") : "0");
  }
  long total = cfg->train.steps;
  if (total < 0) total = (long)cfg->train.epochs * tc.train.n / cfg->train.batch_size;
  optim_state opt;
  step_zero zp;
  memset(&zp, 0, sizeof zp);
  memset(&opt, 0, sizeof opt);
  sched sc;
  sched_plan plan;
  memset(&sc, 0, sizeof sc);
  memset(&plan, 0, sizeof plan);
  metrics_file mf = {0};
  int *pos = NULL; /* packed micro-batches: positions, documents; reference log-probs */
  step_doc *docs = NULL;
  float *ref = NULL;
  /* local failures (memory) go to the agreement below with the others */
  st = step_zero_create(&zp, cfg->optim_zero, model_nparams(tc.m), &tc.grid);
  if (st == IFT_OK) st = optim_create(&opt, &cfg->optim, zp.n);
  optim_state oview;
  if (st == IFT_OK)
    st = sched_create(&sc, tc.train.n, cfg->train.batch_size, tc.grid.dp_size,
                      (uint64_t)cfg->train.seed, cfg->data.shuffle);
  if (st == IFT_OK) st = sched_plan_alloc(&plan, cfg->train.batch_size, tc.grid.dp_size);
  if (st == IFT_OK && core_fault("train_alloc")) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "train_alloc", "injected by IFT_FAULT (a test)",
                  "optimizer state");
    st = IFT_ERR_NOMEM; /* one rank's: agreed below */
  }
  if (st == IFT_OK && rank == 0) st = metrics_open(&mf, cfg->metrics.path);
  IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
  step_cfg scfg = {.kind = cfg->train.loss,
                   .ift = {.gamma = cfg->ift.gamma, .side = cfg->ift.side, .value = cfg->ift.value,
                           .norm = cfg->ift.norm, .right_mu = cfg->ift.right_mu},
                   .embed_grad = cfg->ift.embed_grad,
                   .pref = app_config_pref(cfg)};
  const int pairs = loss_is_pref(scfg.kind), packing = cfg->train.packing;
  if (packing) {
    sched_pack_cfg pc = {cfg->train.seq_len, pairs ? 2 : 1, pairs ? pair_len_cb : part_len_cb};
    sched_set_packing(&sc, &pc);
  }
  sched_lambda_cfg lc = {.kind = (sched_lambda_kind)cfg->ift.schedule, .lambda = cfg->ift.lambda,
                         .warmup_steps = cfg->ift.warmup_steps};
  long start = 0;
  char run_id[CKPT_RUN_ID_LEN] = "";
  {
    /* rank 0 decides what to resume, so every rank loads the same file */
    char rpath[1100] = "";
    st = rank == 0 ? ckpt_resolve(rpath, sizeof rpath, cfg->ckpt.resume, cfg->ckpt.dir) : IFT_OK;
    IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
    IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(rpath, sizeof rpath, MPI_CHAR, 0, tc.grid.world), NULL);
    const unsigned lflags = cfg->ckpt.verify ? CKPT_VERIFY : 0;
    if (rpath[0]) {
      /* Same layout: bit-exact continuation; another layout: each rank reads
       * its shards of the global tensors; the data order continues. */
      ckpt_train_state ts;
      IFT_TRY_GOTO(st, out, step_zero_full_view(&zp, &opt, &oview, model_nparams(tc.m), &tc.grid, 0));
      IFT_TRY_GOTO(st, out, ckpt_load(rpath, tc.m, &oview, &ts, tc.grid.world, lflags));
      if ((st = ckpt_origin_shared(rpath, &origin, tc.grid.world)) != IFT_OK) {
        ckpt_train_state_free(&ts);
        goto out;
      }
      st = check_resume(cfg, cfg_text, tc.train.content_sha256, &ts, rpath, tc.train.n);
      snprintf(run_id, sizeof run_id, "%s", ts.run_id);
      ckpt_train_state_free(&ts);
      if (st != IFT_OK) goto out; /* every rank read the same attributes */
      opt.t = oview.t;
      if (zp.on) { /* keep this rank's slice of the moments */
        if (opt.m) memcpy(opt.m, oview.m + zp.lo, zp.n * sizeof(float));
        if (opt.v) memcpy(opt.v, oview.v + zp.lo, zp.n * sizeof(float));
      }
      sched_restore(&sc, ts.step, ts.epoch, ts.cursor);
      start = ts.step;
      IFT_LOG0("resumed from %s at step %ld (epoch %ld)%s", rpath, ts.step, ts.epoch,
               cfg->ckpt.verify ? ", every checksum verified" : ", checksums NOT verified (ckpt.verify = 0)");
    } else if (cfg->ckpt.init[0]) {
      /* fine-tuning start: weights only; optimizer, step and data order fresh */
      char ipath[1100] = "";
      st = rank == 0 ? ckpt_resolve_any(ipath, sizeof ipath, cfg->ckpt.init) : IFT_OK;
      IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
      IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(ipath, sizeof ipath, MPI_CHAR, 0, tc.grid.world), NULL);
      IFT_TRY_GOTO(st, out, ckpt_load(ipath, tc.m, NULL, NULL, tc.grid.world, lflags));
      IFT_TRY_GOTO(st, out, ckpt_origin_shared(ipath, &origin, tc.grid.world));
      IFT_LOG0("initial weights from %s", ipath);
    } else if (cfg->model_tokenizer[0]) {
      IFT_TRY_GOTO(st, out, train_model_tokenizer(cfg, NULL, &origin, tc.grid.world));
      IFT_LOG0("a new model with the tokenizer of %s", cfg->model_tokenizer);
    }
    if (rpath[0] && cfg->model_tokenizer[0])
      IFT_TRY_GOTO(st, out, train_model_tokenizer(cfg, rpath, &origin, tc.grid.world));
    const int resumed = rpath[0] != 0;
    /* the data's tokenizer must be the model's (its origin; none: a model
     * iftrain built, bytes-v1): the same attributes and origin on every rank */
    {
      char model[1200];
      if (rpath[0]) snprintf(model, sizeof model, "%s", rpath);
      else if (cfg->ckpt.init[0]) snprintf(model, sizeof model, "%s", cfg->ckpt.init);
      else if (cfg->model_tokenizer[0])
        snprintf(model, sizeof model, "built from the model.* settings with model.tokenizer %s", cfg->model_tokenizer);
      else snprintf(model, sizeof model, "built from the model.* settings");
      const int V = cfg->model.vocab_size;
      if (tc.have_train) IFT_TRY_GOTO(st, out, data_check_tokenizer(&tc.train, origin, model, V, rank == 0));
      if (tc.have_eval) IFT_TRY_GOTO(st, out, data_check_tokenizer(&tc.eval, origin, model, V, rank == 0));
    }
    if (!run_id[0]) {
      /* a new run (or one resumed from a checkpoint that predates run ids) */
      if (rank == 0) ckpt_new_run_id(run_id);
      IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(run_id, sizeof run_id, MPI_CHAR, 0, tc.grid.world), NULL);
    }
    /* the directory is claimed before any training, so a bad ckpt.dir (or
     * one holding another run) is found now, not at the first save */
    if (cfg->ckpt.dir[0]) {
      IFT_TRY_GOTO(st, out, ckpt_dir_claim(cfg->ckpt.dir, run_id, resumed, tc.grid.world));
      if (res) res->claimed_dir = 1;
    }
    if (resumed && start >= total) {
      IFT_LOG0("the run already reached train.steps = %ld: nothing to do", total);
      goto out;
    }
  }
  if (total == 0) {
    ckpt_meta meta = {.step = 0, .config_text = cfg_text, .dp = tc.grid.dp_size, .tp = tc.grid.tp_size,
                      .run_id = run_id, .data_hash = tc.train.content_sha256, .origin = origin};
    char path[1100];
    IFT_TRY_GOTO(st, out, step_zero_full_view(&zp, &opt, &oview, model_nparams(tc.m), &tc.grid, 1));
    IFT_TRY_GOTO(st, out, ckpt_save(cfg->ckpt.dir, cfg->ckpt.keep, tc.m, &oview, &meta, tc.grid.world,
                                    tc.grid.dp_rank, path));
    IFT_LOG0("train.steps = 0: wrote the initial model to %s", path);
    goto out;
  }
  /* packed micro-batches: positions, documents, reference log-probs of
   * up to a whole batch (unpacked: the micro-batch's pairs) */
  const int P = pairs ? 2 : 1;
  if (packing) {
    pos = malloc(sizeof(int) * (size_t)P * B * cfg->train.seq_len);
    docs = malloc(sizeof(step_doc) * (size_t)P * cfg->train.batch_size);
  }
  ref = malloc(sizeof(float) * 2 * (size_t)(packing ? cfg->train.batch_size : B));
  /* every rank has the same sizes: a failure here is not one rank's alone,
   * but it is agreed all the same (memory differs between nodes) */
  if ((packing && (!pos || !docs)) || !ref) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL, "micro-batch scratch");
    st = IFT_ERR_NOMEM;
  }
  IFT_TRY_GOTO(st, out, dist_agree(st, tc.grid.world));
  metrics_flops flops;
  metrics_flops_init(&flops, tc.m, cfg->train.seq_len, scfg.kind, tc.grid.size);
  double t_start = core_now(), t_last = t_start, tok_since = 0;
  int tty = isatty(2);
  for (long step = start; step < total; step++) {
    double t0 = core_now();
    IFT_TRY_GOTO(st, stopped, sched_next(&sc, &plan, &lc, data_len_cb, &tc.train, tc.grid.world));
    step_source src = {.tc = &tc, .plan = &plan, .pairs = pairs, .packing = packing, .pos = pos,
                       .docs = docs, .ref = loss_pref_needs_ref(scfg.kind) ? ref : NULL};
    /* ranks with fewer micro-batches (packing) still join every agreement */
    for (int r = 0; r < tc.grid.dp_size; r++) {
      const int c = (plan.rank_first[r + 1] - plan.rank_first[r] + B - 1) / B;
      src.nmb = c > src.nmb ? c : src.nmb;
    }
    const float lambda = scfg.kind == LOSS_IFT ? plan.lambda : 0.0f;
    const double lr = optim_lr_at(&cfg->optim, step, total);
    const step_opts so = {.step = step, .nmb = src.nmb, .lambda = lambda, .lr = lr,
                          .clip = cfg->optim.clip, .n_global = cfg->train.batch_size};
    step_report rep;
    IFT_TRY_GOTO(st, stopped, step_optimizer(tc.m, &tc.ws, &opt, &zp, &tc.grid, &scfg, &so, source_load, &src, &rep));
    const double ms[7] = {rep.met.loss_sum, rep.met.nll_sum, rep.met.rows, rep.tokens, rep.met.pref_correct,
                          rep.met.margin_sum, rep.slots};
    const double loss = rep.loss, nll = ms[2] > 0 ? ms[1] / ms[2] : 0;
    if (res) {
      if (step < 64) res->loss[step] = loss;
      res->steps = step + 1;
      res->tokens += ms[3];
    }
    double now = core_now(), dt = now - t0;
    tok_since += ms[3];
    const double tps = ms[3] / dt, mfu = metrics_flops_step(&flops, lambda, ms[3], tps);
    /* real tokens per token slot computed (padding and packing's waste) */
    const double fill = ms[6] > 0 ? ms[3] / ms[6] : 0.0;
    if (rank == 0) {
      if ((step + 1) % (cfg->metrics.every > 0 ? cfg->metrics.every : 1) == 0) {
        const metrics_step rec = {.step = step + 1, .epoch = plan.epoch, .loss = loss, .nll = nll, .lr = lr,
                                  .lambda = lambda, .grad_norm = rep.grad_norm, .tokens = ms[3],
                                  .tokens_per_s = tps, .fill = fill, .mfu = mfu, .seconds = dt,
                                  .flops = flops.run, .pref = pairs && ms[2] > 0,
                                  .pref_acc = ms[2] > 0 ? ms[4] / ms[2] : 0,
                                  .margin = ms[2] > 0 ? ms[5] / ms[2] : 0};
        metrics_put_step(&mf, &rec);
      }
      if (verbose && (tty || now - t_last > 10 || step + 1 == total || step == 0)) {
        char eta[32];
        fmt_eta(eta, sizeof eta, (now - t_start) / (step + 1 - start) * (total - step - 1));
        char acc[40] = "";
        if (pairs && ms[2] > 0) snprintf(acc, sizeof acc, "  pref acc %.2f", ms[4] / ms[2]);
        char fl[24] = "";
        if (packing) snprintf(fl, sizeof fl, "  fill %.2f", fill);
        fprintf(stderr, "%sstep %ld/%ld  epoch %ld  loss %.4f  nll %.4f%s  lambda %.3f  lr %.2e  %.0f tok/s%s  MFU %.0f%%  ETA %s%s",
                tty ? "\r" : "", step + 1, total, plan.epoch, loss, nll, acc, lambda, lr,
                tok_since / (now - t_last), fl, 100 * mfu, eta, tty ? "   " : "\n");
        t_last = now;
        tok_since = 0;
      }
    }
    int do_eval = tc.have_eval && cfg->eval.every > 0 && (step + 1) % cfg->eval.every == 0 && step + 1 < total;
    if (do_eval || (tc.have_eval && step + 1 == total)) {
      eval_result er;
      IFT_TRY_GOTO(st, stopped, train_evaluate(&tc, &tc.eval, cfg->eval.max_samples, cfg->eval.max_new_tokens, &er));
      if (rank == 0 && verbose) {
        fprintf(stderr, "%seval @ step %ld: held-out loss %.4f  exact match %.3f  ROUGE-L %.3f", tty ? "\n" : "",
                step + 1, er.loss, er.exact, er.rouge_l);
        if (er.pairs) fprintf(stderr, "  preference accuracy %.3f", er.pref_acc);
        fprintf(stderr, "\n");
      }
      /* the metrics do not depend on the log level */
      if (rank == 0) metrics_put_eval(&mf, step + 1, &er, flops.run);
      tc.last_exact = er.exact;
      tc.last_eval_loss = er.loss;
    }
    int stop = g_stop;
    IFT_MPI_CHECK_GOTO(st, stopped, MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, tc.grid.world), NULL);
    int do_ckpt = (cfg->ckpt.every > 0 && (step + 1) % cfg->ckpt.every == 0) || step + 1 == total || stop;
    if (do_ckpt && cfg->ckpt.dir[0]) {
      ckpt_meta meta = {.step = step + 1, .epoch = sc.epoch, .cursor = sc.cursor, .config_text = cfg_text, .run_id = run_id, .data_hash = tc.train.content_sha256,
                        .dp = tc.grid.dp_size, .tp = tc.grid.tp_size, .origin = origin};
      IFT_TRY_GOTO(st, stopped, step_zero_full_view(&zp, &opt, &oview, model_nparams(tc.m), &tc.grid, 1));
      IFT_TRY_GOTO(st, stopped, ckpt_save(cfg->ckpt.dir, cfg->ckpt.keep, tc.m, &oview, &meta, tc.grid.world,
                                          tc.grid.dp_rank, NULL));
    }
    if (stop) {
      g_preempted = stop;
      IFT_LOG0("\nsignal %d: checkpoint of step %ld written; exiting with code %d for requeue", stop,
               step + 1, APP_EXIT_PREEMPT);
      st = IFT_ERR_IO; /* not an error: app_train exits APP_EXIT_PREEMPT */
      goto stopped;
    }
  }
stopped: /* the loop's end, normal or not: the result still describes the state reached */
  if (res) {
    res->state_hash = core_fnv1a(CORE_FNV_INIT, model_params(tc.m), model_nparams(tc.m) * sizeof(float));
    if (opt.m) res->state_hash = core_fnv1a(res->state_hash, opt.m, opt.n * sizeof(float));
    if (opt.v) res->state_hash = core_fnv1a(res->state_hash, opt.v, opt.n * sizeof(float));
    res->seconds = core_now() - t_start;
    res->exact = tc.last_exact;
    res->eval_loss = tc.last_eval_loss;
  }
  if (st == IFT_OK && rank == 0 && verbose) {
    double el = core_now() - t_start;
    IFT_LOG0("%sdone: %ld steps in %.1f s%s", tty ? "\n" : "", total, el, "");
    if (tc.have_eval) printf("final exact match: %.4f  held-out loss: %.4f\n", tc.last_exact, tc.last_eval_loss);
  }
out:
  free(pos);
  free(docs);
  free(ref);
  metrics_close(&mf);
  free(cfg_text);
  free(origin);
  optim_destroy(&opt);
  step_zero_destroy(&zp);
  sched_destroy(&sc);
  sched_plan_free(&plan);
  train_ctx_destroy(&tc);
  return st;
}
