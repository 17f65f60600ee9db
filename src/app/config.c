/* config — the configuration's key table (every key's type, place in
 * app_config, range and help line), the defaults, and the setting of one key
 * from text: numbers, booleans, strings, enum choices, and the "did you mean"
 * hint for an unknown key.  Reading INI files: config_file.c; writing and
 * documenting: config_help.c; whole-configuration checks: config_check.c
 * (all of them through config_keys.h). */
#include "config.h"
#include "app_config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "config_keys.h"

/* The ranges live here, beside the keys, so that loading, app_config_check
 * and --help-config cannot disagree about them. */
#define F(field) offsetof(app_config, field)
#define KINT(k, field, r, help) {k, K_INT, F(field), 0, NULL, r, help}
#define KLONG(k, field, r, help) {k, K_LONG, F(field), 0, NULL, r, help}
#define KU64(k, field, help) {k, K_U64, F(field), 0, NULL, APP_ANY, help}
#define KDBL(k, field, r, help) {k, K_DOUBLE, F(field), 0, NULL, r, help}
#define KBOOL(k, field, help) {k, K_BOOL, F(field), 0, NULL, APP_IN(0, 1), help}
#define KSTR(k, field, help) {k, K_STR, F(field), sizeof(((app_config *)0)->field), NULL, APP_ANY, help}
#define KENUM(k, field, choices, help) {k, K_ENUM, F(field), 0, choices, APP_ANY, help}
const key_def app_cfg_keys[] = {
    KINT("model.vocab_size", model.vocab_size, APP_GE(1), "vocabulary size (must match the data set)"),
    KINT("model.hidden_size", model.hidden_size, APP_GE(1), "width C of the residual stream"),
    KINT("model.intermediate_size", model.intermediate_size, APP_GE(1), "SwiGLU MLP width F"),
    KINT("model.num_hidden_layers", model.num_hidden_layers, APP_GE(1), "decoder layers"),
    KINT("model.num_attention_heads", model.num_attention_heads, APP_GE(1), "query heads"),
    KINT("model.num_key_value_heads", model.num_key_value_heads, APP_GE(1), "key/value heads (grouped-query attention; divides heads)"),
    KDBL("model.rms_norm_eps", model.rms_norm_eps, APP_GT(0), "RMSNorm epsilon"),
    KINT("model.head_dim", model.head_dim, APP_GE(0), "width of one attention head (0: hidden_size / num_attention_heads)"),
    KDBL("model.rope_theta", model.rope_theta, APP_GT(0), "RoPE base"),
    KENUM("model.rope_type", model.rope_type, "default|linear|llama3", "RoPE frequency scaling (Hugging Face rope_scaling)"),
    KDBL("model.rope_factor", model.rope_factor, APP_GE(1), "linear, llama3: frequencies divided by this factor"),
    KDBL("model.rope_low_freq_factor", model.rope_low_freq_factor, APP_GE(0), "llama3: wavelengths above original/low are scaled"),
    KDBL("model.rope_high_freq_factor", model.rope_high_freq_factor, APP_GE(0), "llama3: wavelengths below original/high are kept"),
    KINT("model.sliding_window", model.sliding_window, APP_GE(0), "Mistral: attention window (0: none); sequences must fit in it"),
    KINT("model.rope_original_max_position_embeddings", model.rope_original_max_position_embeddings, APP_GE(0), "llama3: context length of pretraining"),
    KINT("model.max_position_embeddings", model.max_position_embeddings, APP_GE(1), "longest sequence the model accepts"),
    KBOOL("model.tie_word_embeddings", model.tie_word_embeddings, "1: LM head shares the input embedding"),
    KU64("model.init_seed", model.init_seed, "seed of the weight initialisation"),
    KSTR("model.tokenizer", model_tokenizer, "a new model's Hugging Face tokenizer: the directory of its tokenizer.json (and tokenizer_config.json); recorded in every checkpoint like an imported model's, so prep --tokenizer data, eval, generate and export use it (empty: iftrain's byte tokenizer; not with ckpt.init, whose model has its own)"),
    KENUM("train.loss", train.loss, "sft|ift|dpo|ipo|orpo|simpo", "training objective"),
    KLONG("train.steps", train.steps, APP_GE(-1), "optimizer steps (-1: use train.epochs; 0: write step 0 and exit)"),
    KINT("train.epochs", train.epochs, APP_GE(1), "epochs over data.train when train.steps = -1"),
    KINT("train.batch_size", train.batch_size, APP_GE(1), "sequences per optimizer step (global, a multiple of the DP size)"),
    KINT("train.micro_batch", train.micro_batch, APP_GE(1), "sequences per forward/backward on one rank (<= 256 for preference losses)"),
    KINT("train.seq_len", train.seq_len, APP_GE(2), "tokens per sequence, <= model.max_position_embeddings (longer are truncated, shorter padded)"),
    KLONG("train.seed", train.seed, APP_GE(0), "seed of shuffling and lambda noise"),
    KENUM("train.recompute", train.recompute, "none|layer", "activation recomputation: layer keeps only each layer's input and recomputes the layer in backward (same gradients, less memory, ~1/3 more compute)"),
    KBOOL("train.packing", train.packing, "1: pack several rows into each sequence of train.seq_len (each attends only to itself, positions restart; micro_batch then counts packed sequences; losses as unpacked)"),
    KDBL("ift.lambda", ift.lambda, APP_IN(0, 1), "blend weight of the model's own predictions (docs/ift.md, step 4)"),
    KDBL("ift.gamma", ift.gamma, APP_IN(0, 1), "discount of the token weights; 0 = uniform (SFT weighting)"),
    KENUM("ift.side", ift.side, "left|right", "left: suffix sums (default); right: prefix sums"),
    KENUM("ift.value", ift.value, "loss|mask", "what is discounted: token losses or the answer mask"),
    KENUM("ift.norm", ift.norm, "L1|L2|log|softmax", "transform of the discounted sums before normalising"),
    KENUM("ift.schedule", ift.schedule, "static|linear|noise", "lambda schedule"),
    KINT("ift.warmup_steps", ift.warmup_steps, APP_GE(0), "linear schedule: steps to ramp lambda from 0"),
    KBOOL("ift.embed_grad", ift.embed_grad, "1: gradient flows into the blended input lookups (extension)"),
    KENUM("ift.right_mu", ift.right_mu, "row|batch", "right side: mu per row (default) or per micro-batch (reference)"),
    KENUM("ift.reduce", ift.reduce_microbatch, "global|microbatch", "loss mean over the global batch, or per micro-batch (reference)"),
    KDBL("pref.beta", pref.beta, APP_GE(0), "preference losses: beta (0 = default: DPO/IPO .1, ORPO .25, SimPO 2)"),
    KDBL("pref.label_smoothing", pref.label_smoothing, APP_IN_CO(0, 0.5), "DPO: label smoothing eps"),
    KDBL("pref.simpo_gamma_ratio", pref.simpo_gamma_ratio, APP_GE(0), "SimPO: target margin gamma_s / beta"),
    KSTR("pref.reference", pref.reference, "DPO/IPO: reference checkpoint the cached /ref_logp must come from (empty: ckpt.init)"),
    KENUM("optim.name", optim.kind, "adamw|rmsprop|sgd", "optimizer"),
    KDBL("optim.lr", optim.lr, APP_GT(0), "peak learning rate"),
    KDBL("optim.weight_decay", optim.weight_decay, APP_GE(0), "AdamW: decoupled; RMSprop/SGD: L2 (matrices only)"),
    KDBL("optim.beta1", optim.beta1, APP_IN_CO(0, 1), "AdamW beta1"),
    KDBL("optim.beta2", optim.beta2, APP_IN_CO(0, 1), "AdamW beta2"),
    KDBL("optim.alpha", optim.alpha, APP_IN_CO(0, 1), "RMSprop smoothing"),
    KDBL("optim.eps", optim.eps, APP_GT(0), "added outside the square root"),
    KDBL("optim.momentum", optim.momentum, APP_IN_CO(0, 1), "RMSprop/SGD momentum"),
    KDBL("optim.clip", optim.clip, APP_GE(0), "max global gradient norm (0 = off)"),
    KENUM("optim.schedule", optim.schedule, "constant|linear|cosine", "learning-rate schedule after warm-up"),
    KDBL("optim.warmup", optim.warmup, APP_GE(0), "warm-up: fraction of steps (< 1) or steps (>= 1)"),
    KBOOL("optim.zero", optim_zero, "1: shard optimizer state over data-parallel ranks (ZeRO-1)"),
    KSTR("data.train", data.train, "training data set (HDF5, from iftrain prep)"),
    KSTR("data.eval", data.eval, "held-out data set (HDF5); empty: no evaluation"),
    KBOOL("data.shuffle", data.shuffle, "1: seeded shuffle each epoch; 0: file order"),
    KSTR("ckpt.dir", ckpt.dir, "checkpoint directory"),
    KINT("ckpt.every", ckpt.every, APP_GE(0), "checkpoint every N steps (0: only at the end)"),
    KINT("ckpt.keep", ckpt.keep, APP_GE(1), "keep the last K checkpoints"),
    KSTR("ckpt.resume", ckpt.resume, "auto (latest in ckpt.dir, if any) | PATH | none"),
    KSTR("ckpt.init", ckpt.init, "start from the weights of this checkpoint (step 0, fresh optimizer; ignored when resuming)"),
    KBOOL("ckpt.verify", ckpt.verify, "1: check every tensor's checksum when a checkpoint is read (resume, init); 0: skip (faster, unsafe)"),
    KBOOL("ckpt.allow_changes", ckpt.allow_changes, "1: resume even though train.steps or a learning-rate/lambda schedule key differs from the checkpoint's (reported)"),
    KINT("dist.tp", dist.tp, APP_GE(1), "tensor-parallel ranks per replica (DP = ranks / tp)"),
    KENUM("dist.tp_mode", dist.tp_2d, "1d|2d", "1d: Megatron splits with BLIS; 2d: PBLAS psgemm on a BLACS grid"),
    KINT("dist.tp_rows", dist.tp_rows, APP_GE(0), "2d: process rows of the grid, dividing dist.tp (0: most square, rows >= columns)"),
    KINT("dist.pblas_block", dist.pblas_block, APP_GE(0), "2d: PBLAS algorithmic block (psgemm's k step; 0: hidden_size / 2 in [64, 512]; reference PBLAS: 32)"),
    KINT("dist.tp_block", dist.tp_block, APP_GE(0), "2d: weights block-cyclic in blocks of this size (0: one block per process, fastest here)"),
    KSTR("metrics.path", metrics.path, "JSONL metrics file (empty: none)"),
    KINT("metrics.every", metrics.every, APP_GE(1), "write a metrics record every N steps"),
    KINT("eval.every", eval.every, APP_GE(0), "evaluate every N steps (0: only at the end)"),
    KINT("eval.max_new_tokens", eval.max_new_tokens, APP_GE(1), "generation length for exact match"),
    KINT("eval.max_samples", eval.max_samples, APP_GE(0), "evaluate on at most N held-out samples (0: all)"),
};
#undef F
#undef KINT
#undef KLONG
#undef KU64
#undef KDBL
#undef KBOOL
#undef KSTR
#undef KENUM
const int app_cfg_nkeys = (int)(sizeof app_cfg_keys / sizeof app_cfg_keys[0]);

loss_pref_opts app_config_pref(const app_config *c) {
  loss_pref_opts o = loss_pref_defaults(c->train.loss);
  if (c->pref.beta > 0) o.beta = c->pref.beta;
  o.label_smoothing = c->pref.label_smoothing;
  o.simpo_gamma_ratio = c->pref.simpo_gamma_ratio;
  return o;
}

const char *lambda_sched_name(lambda_sched s) {
  return s == LAMBDA_LINEAR ? "linear" : s == LAMBDA_NOISE ? "noise" : "static";
}

void app_config_defaults(app_config *c) {
  memset(c, 0, sizeof *c);
  c->model = model_config_default();
  c->train.loss = LOSS_IFT;
  c->train.steps = 1500;
  c->train.epochs = 1;
  c->train.batch_size = 32;
  c->train.micro_batch = 8;
  c->train.seq_len = 64;
  c->train.seed = 1;
  loss_ift_opts io = loss_ift_defaults();
  c->ift.lambda = 0.2;
  c->ift.gamma = io.gamma;
  c->ift.side = io.side;
  c->ift.value = io.value;
  c->ift.norm = io.norm;
  c->ift.right_mu = io.right_mu;
  c->ift.schedule = LAMBDA_STATIC;
  c->ift.warmup_steps = 150;
  c->pref.simpo_gamma_ratio = 0.8;
  c->optim = optim_defaults(OPTIM_ADAMW);
  c->optim.lr = 3e-3;
  c->optim.weight_decay = 0.0;
  c->optim.clip = 1.0;
  c->optim.schedule = LR_COSINE;
  c->optim.warmup = 0.05;
  c->data.shuffle = 1;
  /* the shipped task: from the source tree, else where `make install` put it */
  const char *dd = access("data/arith_train.h5", R_OK) == 0 ? "data" : IFT_PKGDATADIR;
  snprintf(c->data.train, sizeof c->data.train, "%s/arith_train.h5", dd);
  snprintf(c->data.eval, sizeof c->data.eval, "%s/arith_test.h5", dd);
  snprintf(c->ckpt.dir, sizeof c->ckpt.dir, "runs/default");
  c->ckpt.keep = 2;
  snprintf(c->ckpt.resume, sizeof c->ckpt.resume, "none");
  c->ckpt.verify = 1;
  c->dist.tp = 1;
  c->metrics.every = 1;
  c->eval.max_new_tokens = 64;
  c->eval.every = 500;
}

const key_def *app_cfg_find_key(const char *k) {
  for (int i = 0; i < app_cfg_nkeys; i++)
    if (!strcmp(app_cfg_keys[i].key, k)) return &app_cfg_keys[i];
  return NULL;
}

static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int c = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[la][lb];
}

static const char *closest_key(const char *k) {
  /* names other trainers use for the same knob */
  static const char *const synonyms[][2] = {
      {"learning_rate", "optim.lr"},        {"max_grad_norm", "optim.clip"},
      {"lr_scheduler_type", "optim.schedule"}, {"warmup_ratio", "optim.warmup"},
      {"per_device_train_batch_size", "train.micro_batch"}, {"num_train_epochs", "train.epochs"},
      {"max_steps", "train.steps"},          {"max_length", "train.seq_len"},
      {"tensor_parallel", "dist.tp"},        {"output_dir", "ckpt.dir"}};
  const char *dot = strrchr(k, '.');
  const char *tail = dot ? dot + 1 : k;
  for (size_t i = 0; i < sizeof synonyms / sizeof synonyms[0]; i++)
    if (!strcasecmp(tail, synonyms[i][0])) return synonyms[i][1];
  const char *best = NULL;
  int bd = 1 << 30;
  for (int i = 0; i < app_cfg_nkeys; i++) {
    int d = edit_distance(k, app_cfg_keys[i].key);
    /* also compare without the section: "lr" -> optim.lr */
    const char *dot = strchr(app_cfg_keys[i].key, '.');
    int d2 = dot ? edit_distance(k, dot + 1) + 1 : 99;
    if (d2 < d) d = d2;
    if (d < bd) {
      bd = d;
      best = app_cfg_keys[i].key;
    }
  }
  return bd <= 4 ? best : NULL;
}

static int enum_index(const char *choices, const char *v) {
  int idx = 0;
  const char *p = choices;
  size_t lv = strlen(v);
  while (*p) {
    const char *e = strchr(p, '|');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == lv && !strncasecmp(p, v, n)) return idx;
    idx++;
    if (!e) break;
    p = e + 1;
  }
  return -1;
}

void app_cfg_enum_name(char *out, size_t n, const char *choices, int idx) {
  const char *p = choices;
  for (int i = 0; i < idx && p; i++) {
    p = strchr(p, '|');
    if (p) p++;
  }
  if (!p) {
    snprintf(out, n, "?");
    return;
  }
  size_t l = strcspn(p, "|");
  snprintf(out, n, "%.*s", (int)l, p);
}

int app_cfg_enum_count(const char *choices) {
  int n = 1;
  for (const char *p = choices; *p; p++) n += *p == '|';
  return n;
}

/* WHERE prefixes every message ("file:line: " for a config file, "" for the
 * command line), so an error is printed once, already naming its origin. */
ift_status app_cfg_set_key(app_config *c, const char *where, const char *key, const char *value) {
  const key_def *k = app_cfg_find_key(key);
  char hint[160] = "iftrain train --help-config lists every key";
  const char *near = k ? NULL : closest_key(key);
  if (near) snprintf(hint, sizeof hint, "did you mean '%s'? (iftrain train --help-config lists every key)", near);
  IFT_REQUIRE(k != NULL, IFT_ERR_CONFIG, hint, "%sunknown configuration key '%s'", where, key);
  char name[256];
  snprintf(name, sizeof name, "%s%s", where, key);
  char *p = (char *)c + k->off;
  switch (k->type) {
  case K_INT: case K_LONG: case K_U64: case K_DOUBLE: {
    static const app_num_type num[] = {[K_INT] = APP_NUM_INT, [K_LONG] = APP_NUM_LONG,
                                       [K_U64] = APP_NUM_U64, [K_DOUBLE] = APP_NUM_DOUBLE};
    return app_parse_number(name, value, num[k->type], k->range, IFT_ERR_CONFIG, k->help, p);
  }
  case K_BOOL: {
    int v = !strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ? 1
            : !strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ? 0
                                                                                            : -1;
    IFT_REQUIRE(v >= 0, IFT_ERR_CONFIG, "give 1 or 0", "%s = '%s' is not a boolean", name, value);
    *(int *)p = v;
    break;
  }
  case K_STR:
    IFT_REQUIRE(strlen(value) < k->len, IFT_ERR_CONFIG, "use a shorter path",
                "%s is longer than %zu characters", name, k->len - 1);
    snprintf(p, k->len, "%s", value);
    break;
  case K_ENUM: {
    int v = enum_index(k->choices, value);
    IFT_REQUIRE(v >= 0, IFT_ERR_CONFIG, k->choices, "%s = '%s' is not one of %s", name, value,
                k->choices);
    *(int *)p = v;
    break;
  }
  }
  return IFT_OK;
}

ift_status app_config_set(app_config *c, const char *key, const char *value) {
  return app_cfg_set_key(c, "", key, value);
}
