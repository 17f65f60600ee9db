#define _POSIX_C_SOURCE 200809L
#include "iftrain/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum { K_INT, K_LONG, K_DOUBLE, K_BOOL, K_STR, K_ENUM, K_U64 } key_type;

typedef struct {
  const char *key; /* section.key */
  key_type type;
  size_t off;
  size_t len;          /* K_STR capacity */
  const char *choices; /* K_ENUM: "a|b|c" in enum order */
  const char *help;
} key_def;

#define F(field) offsetof(app_config, field)
#define STR(field) offsetof(app_config, field), sizeof(((app_config *)0)->field)
static const key_def keys[] = {
    {"model.vocab_size", K_INT, F(model.vocab_size), 0, NULL, "vocabulary size (must match the data set)"},
    {"model.hidden_size", K_INT, F(model.hidden_size), 0, NULL, "width C of the residual stream"},
    {"model.intermediate_size", K_INT, F(model.intermediate_size), 0, NULL, "SwiGLU MLP width F"},
    {"model.num_hidden_layers", K_INT, F(model.num_hidden_layers), 0, NULL, "decoder layers"},
    {"model.num_attention_heads", K_INT, F(model.num_attention_heads), 0, NULL, "query heads (head dim = hidden/heads)"},
    {"model.num_key_value_heads", K_INT, F(model.num_key_value_heads), 0, NULL, "key/value heads (grouped-query attention; divides heads)"},
    {"model.rms_norm_eps", K_DOUBLE, F(model.rms_norm_eps), 0, NULL, "RMSNorm epsilon"},
    {"model.rope_theta", K_DOUBLE, F(model.rope_theta), 0, NULL, "RoPE base"},
    {"model.max_position_embeddings", K_INT, F(model.max_position_embeddings), 0, NULL, "longest sequence the model accepts"},
    {"model.tie_word_embeddings", K_BOOL, F(model.tie_word_embeddings), 0, NULL, "1: LM head shares the input embedding"},
    {"model.init_seed", K_U64, F(model.init_seed), 0, NULL, "seed of the weight initialisation"},
    {"train.loss", K_ENUM, F(train.loss), 0, "sft|ift|dpo|ipo|orpo|simpo", "training objective"},
    {"train.steps", K_LONG, F(train.steps), 0, NULL, "optimizer steps (-1: use train.epochs; 0: write step 0 and exit)"},
    {"train.epochs", K_INT, F(train.epochs), 0, NULL, "epochs over data.train when train.steps = -1"},
    {"train.batch_size", K_INT, F(train.batch_size), 0, NULL, "sequences per optimizer step (global, any DP size)"},
    {"train.micro_batch", K_INT, F(train.micro_batch), 0, NULL, "sequences per forward/backward on one rank"},
    {"train.seq_len", K_INT, F(train.seq_len), 0, NULL, "tokens per sequence (longer are truncated, shorter padded)"},
    {"train.seed", K_LONG, F(train.seed), 0, NULL, "seed of shuffling and lambda noise"},
    {"ift.lambda", K_DOUBLE, F(ift.lambda), 0, NULL, "blend weight of the model's own predictions (IFT.md step 4)"},
    {"ift.gamma", K_DOUBLE, F(ift.gamma), 0, NULL, "discount of the token weights; 0 = uniform (SFT weighting)"},
    {"ift.side", K_ENUM, F(ift.side), 0, "left|right", "left: suffix sums (default); right: prefix sums"},
    {"ift.value", K_ENUM, F(ift.value), 0, "loss|mask", "what is discounted: token losses or the answer mask"},
    {"ift.norm", K_ENUM, F(ift.norm), 0, "L1|L2|log|softmax", "transform of the discounted sums before normalising"},
    {"ift.schedule", K_ENUM, F(ift.schedule), 0, "static|linear|noise", "lambda schedule"},
    {"ift.warmup_steps", K_INT, F(ift.warmup_steps), 0, NULL, "linear schedule: steps to ramp lambda from 0"},
    {"ift.embed_grad", K_BOOL, F(ift.embed_grad), 0, NULL, "1: gradient flows into the blended input lookups (extension)"},
    {"ift.right_mu", K_ENUM, F(ift.right_mu), 0, "row|batch", "right side: mu per row (default) or per micro-batch (reference)"},
    {"ift.reduce", K_ENUM, F(ift.reduce_microbatch), 0, "global|microbatch", "loss mean over the global batch, or per micro-batch (reference)"},
    {"pref.beta", K_DOUBLE, F(pref.beta), 0, NULL, "preference losses: beta (0 = default: DPO/IPO .1, ORPO .25, SimPO 2)"},
    {"pref.label_smoothing", K_DOUBLE, F(pref.label_smoothing), 0, NULL, "DPO: label smoothing eps in [0, .5)"},
    {"pref.simpo_gamma_ratio", K_DOUBLE, F(pref.simpo_gamma_ratio), 0, NULL, "SimPO: target margin gamma_s / beta"},
    {"pref.reference", K_STR, STR(pref.reference), NULL, "DPO/IPO: reference checkpoint the cached /ref_logp must come from (empty: ckpt.init)"},
    {"optim.name", K_ENUM, F(optim.kind), 0, "adamw|rmsprop|sgd", "optimizer"},
    {"optim.lr", K_DOUBLE, F(optim.lr), 0, NULL, "peak learning rate"},
    {"optim.weight_decay", K_DOUBLE, F(optim.weight_decay), 0, NULL, "AdamW: decoupled; RMSprop/SGD: L2 (matrices only)"},
    {"optim.beta1", K_DOUBLE, F(optim.beta1), 0, NULL, "AdamW beta1"},
    {"optim.beta2", K_DOUBLE, F(optim.beta2), 0, NULL, "AdamW beta2"},
    {"optim.alpha", K_DOUBLE, F(optim.alpha), 0, NULL, "RMSprop smoothing"},
    {"optim.eps", K_DOUBLE, F(optim.eps), 0, NULL, "added outside the square root"},
    {"optim.momentum", K_DOUBLE, F(optim.momentum), 0, NULL, "RMSprop/SGD momentum"},
    {"optim.clip", K_DOUBLE, F(optim.clip), 0, NULL, "max global gradient norm (0 = off)"},
    {"optim.schedule", K_ENUM, F(optim.schedule), 0, "constant|linear|cosine", "learning-rate schedule after warm-up"},
    {"optim.warmup", K_DOUBLE, F(optim.warmup), 0, NULL, "warm-up: fraction of steps (< 1) or steps (>= 1)"},
    {"optim.zero", K_BOOL, F(optim_zero), 0, NULL, "1: shard optimizer state over data-parallel ranks (ZeRO-1)"},
    {"data.train", K_STR, STR(data.train), NULL, "training data set (HDF5, from iftrain prep)"},
    {"data.eval", K_STR, STR(data.eval), NULL, "held-out data set (HDF5); empty: no evaluation"},
    {"data.shuffle", K_BOOL, F(data.shuffle), 0, NULL, "1: seeded shuffle each epoch; 0: file order"},
    {"ckpt.dir", K_STR, STR(ckpt.dir), NULL, "checkpoint directory"},
    {"ckpt.every", K_INT, F(ckpt.every), 0, NULL, "checkpoint every N steps (0: only at the end)"},
    {"ckpt.keep", K_INT, F(ckpt.keep), 0, NULL, "keep the last K checkpoints"},
    {"ckpt.resume", K_STR, STR(ckpt.resume), NULL, "auto (latest in ckpt.dir, if any) | PATH | none"},
    {"ckpt.init", K_STR, STR(ckpt.init), NULL, "start from the weights of this checkpoint (step 0, fresh optimizer; ignored when resuming)"},
    {"ckpt.verify", K_BOOL, F(ckpt.verify), 0, NULL, "1: check every tensor's checksum when a checkpoint is read (resume, init); 0: skip (faster, unsafe)"},
    {"ckpt.allow_changes", K_BOOL, F(ckpt.allow_changes), 0, NULL, "1: resume even though train.steps or a learning-rate/lambda schedule key differs from the checkpoint's (reported)"},
    {"dist.tp", K_INT, F(dist.tp), 0, NULL, "tensor-parallel ranks per replica (DP = ranks / tp)"},
    {"dist.tp_mode", K_ENUM, F(dist.tp_2d), 0, "1d|2d", "1d: Megatron splits with BLIS; 2d: PBLAS psgemm on a BLACS grid"},
    {"dist.tp_rows", K_INT, F(dist.tp_rows), 0, NULL, "2d: process rows of the grid, dividing dist.tp (0: most square, rows >= columns)"},
    {"dist.pblas_block", K_INT, F(dist.pblas_block), 0, NULL, "2d: PBLAS algorithmic block (psgemm's k step; 0: hidden_size / 2 in [64, 512]; reference PBLAS: 32)"},
    {"dist.tp_block", K_INT, F(dist.tp_block), 0, NULL, "2d: weights block-cyclic in blocks of this size (0: one block per process, fastest here)"},
    {"metrics.path", K_STR, STR(metrics.path), NULL, "JSONL metrics file (empty: none)"},
    {"metrics.every", K_INT, F(metrics.every), 0, NULL, "write a metrics record every N steps"},
    {"eval.every", K_INT, F(eval.every), 0, NULL, "evaluate every N steps (0: only at the end)"},
    {"eval.max_new_tokens", K_INT, F(eval.max_new_tokens), 0, NULL, "generation length for exact match"},
    {"eval.max_samples", K_INT, F(eval.max_samples), 0, NULL, "evaluate on at most N held-out samples (0: all)"},
};
#undef F
#undef STR
enum { NKEYS = sizeof keys / sizeof keys[0] };

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

static const key_def *find_key(const char *k) {
  for (int i = 0; i < NKEYS; i++)
    if (!strcmp(keys[i].key, k)) return &keys[i];
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
  for (int i = 0; i < NKEYS; i++) {
    int d = edit_distance(k, keys[i].key);
    /* also compare without the section: "lr" -> optim.lr */
    const char *dot = strchr(keys[i].key, '.');
    int d2 = dot ? edit_distance(k, dot + 1) + 1 : 99;
    if (d2 < d) d = d2;
    if (d < bd) {
      bd = d;
      best = keys[i].key;
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

static void enum_name(char *out, size_t n, const char *choices, int idx) {
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

ift_status app_config_set(app_config *c, const char *key, const char *value) {
  const key_def *k = find_key(key);
  char hint[160] = "iftrain train --help-config lists every key";
  const char *near = k ? NULL : closest_key(key);
  if (near) snprintf(hint, sizeof hint, "did you mean '%s'? (iftrain train --help-config lists every key)", near);
  IFT_REQUIRE(k != NULL, IFT_ERR_CONFIG, hint, "unknown configuration key '%s'", key);
  char *p = (char *)c + k->off;
  char *end = NULL;
  errno = 0;
  switch (k->type) {
  case K_INT: case K_LONG: case K_U64: {
    long long v = strtoll(value, &end, 10);
    IFT_REQUIRE(*value && !*end && !errno, IFT_ERR_CONFIG, "give a whole number",
                "%s = '%s' is not an integer", key, value);
    if (k->type == K_INT) {
      IFT_REQUIRE(v >= INT_MIN && v <= INT_MAX, IFT_ERR_CONFIG, "give a smaller number",
                  "%s = %s is out of range", key, value);
      *(int *)p = (int)v;
    } else if (k->type == K_LONG) {
      *(long *)p = (long)v;
    } else {
      *(uint64_t *)p = (uint64_t)v;
    }
    break;
  }
  case K_DOUBLE: {
    double v = strtod(value, &end);
    IFT_REQUIRE(*value && !*end && !errno && v == v, IFT_ERR_CONFIG, "give a number like 0.2 or 1e-3",
                "%s = '%s' is not a number", key, value);
    *(double *)p = v;
    break;
  }
  case K_BOOL: {
    int v = !strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ? 1
            : !strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ? 0
                                                                                            : -1;
    IFT_REQUIRE(v >= 0, IFT_ERR_CONFIG, "give 1 or 0", "%s = '%s' is not a boolean", key, value);
    *(int *)p = v;
    break;
  }
  case K_STR:
    IFT_REQUIRE(strlen(value) < k->len, IFT_ERR_CONFIG, "use a shorter path",
                "%s is longer than %zu characters", key, k->len - 1);
    snprintf(p, k->len, "%s", value);
    break;
  case K_ENUM: {
    int v = enum_index(k->choices, value);
    IFT_REQUIRE(v >= 0, IFT_ERR_CONFIG, k->choices, "%s = '%s' is not one of %s", key, value,
                k->choices);
    *(int *)p = v;
    break;
  }
  }
  return IFT_OK;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

static ift_status load_file(app_config *c, const char *path) {
  FILE *f = fopen(path, "r");
  IFT_REQUIRE(f, IFT_ERR_IO, "check the --config path", "cannot open config file '%s': %s", path,
              strerror(errno));
  char line[2048], section[64] = "";
  int ln = 0;
  ift_status st = IFT_OK;
  while (st == IFT_OK && fgets(line, sizeof line, f)) {
    ln++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = trim(line);
    if (!*s) continue;
    if (*s == '[') {
      char *e = strchr(s, ']');
      if (!e || e[1]) {
        ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "section", "write sections as [name]",
                      "%s:%d: malformed section header '%s'", path, ln, s);
        st = IFT_ERR_CONFIG;
        break;
      }
      *e = 0;
      snprintf(section, sizeof section, "%s", trim(s + 1));
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq || !section[0]) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "key = value",
                    section[0] ? "write 'key = value'" : "put keys under a [section] header",
                    "%s:%d: cannot parse '%s'", path, ln, s);
      st = IFT_ERR_CONFIG;
      break;
    }
    *eq = 0;
    char full[160];
    snprintf(full, sizeof full, "%s.%s", section, trim(s));
    ift_status r = app_config_set(c, full, trim(eq + 1));
    if (r != IFT_OK) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", ift_error_last());
      ift_error_set(r, __FILE__, __LINE__, "config line", "fix the line above",
                    "%s:%d: %s", path, ln, msg);
      st = r;
    }
  }
  fclose(f);
  return st;
}

ift_status app_config_load(app_config *c, const char *path, int argc, char **argv) {
  if (path && *path) IFT_TRY(load_file(c, path));
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) || !strchr(a, '.')) continue;
    const char *eq = strchr(a, '=');
    IFT_REQUIRE(eq, IFT_ERR_CONFIG, "write overrides as --section.key=value",
                "override '%s' has no '='", a);
    char key[160];
    snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
    IFT_TRY(app_config_set(c, key, eq + 1));
  }
  return IFT_OK;
}

static void value_str(char *out, size_t n, const app_config *c, const key_def *k) {
  const char *p = (const char *)c + k->off;
  switch (k->type) {
  case K_INT: case K_BOOL: snprintf(out, n, "%d", *(const int *)p); break;
  case K_LONG: snprintf(out, n, "%ld", *(const long *)p); break;
  case K_U64: snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
  case K_DOUBLE: snprintf(out, n, "%.17g", *(const double *)p); break;
  case K_STR: snprintf(out, n, "%s", p); break;
  case K_ENUM: enum_name(out, n, k->choices, *(const int *)p); break;
  }
}

void app_config_write(FILE *f, const app_config *c) {
  char section[32] = "";
  for (int i = 0; i < NKEYS; i++) {
    const char *dot = strchr(keys[i].key, '.');
    if (strncmp(section, keys[i].key, (size_t)(dot - keys[i].key)) || section[dot - keys[i].key]) {
      snprintf(section, sizeof section, "%.*s", (int)(dot - keys[i].key), keys[i].key);
      fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
    }
    char v[1100];
    value_str(v, sizeof v, c, &keys[i]);
    fprintf(f, "%s = %s\n", dot + 1, v);
  }
}

void app_config_help(FILE *f) {
  app_config d;
  app_config_defaults(&d);
  fprintf(f, "Configuration keys (file: [section] then key = value; command line: "
             "--section.key=value)\n");
  char section[32] = "";
  for (int i = 0; i < NKEYS; i++) {
    const char *dot = strchr(keys[i].key, '.');
    if (strncmp(section, keys[i].key, (size_t)(dot - keys[i].key)) || section[dot - keys[i].key]) {
      snprintf(section, sizeof section, "%.*s", (int)(dot - keys[i].key), keys[i].key);
      fprintf(f, "\n[%s]\n", section);
    }
    char v[1100];
    value_str(v, sizeof v, &d, &keys[i]);
    fprintf(f, "  %-24s %s\n  %-24s default: %s%s%s\n", dot + 1, keys[i].help, "", v[0] ? v : "(empty)",
            keys[i].choices ? "   choices: " : "", keys[i].choices ? keys[i].choices : "");
  }
}

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

ift_status app_config_check(const app_config *c, int dp, int tp) {
  IFT_TRY(model_config_check(&c->model, tp));
  IFT_REQUIRE(c->train.micro_batch >= 1 && c->train.batch_size >= 1, IFT_ERR_CONFIG,
              "train.batch_size and train.micro_batch must be >= 1", "batch %d micro-batch %d",
              c->train.batch_size, c->train.micro_batch);
  IFT_REQUIRE(c->train.batch_size % dp == 0, IFT_ERR_CONFIG,
              "make train.batch_size a multiple of the data-parallel size",
              "train.batch_size = %d cannot be split over %d data-parallel ranks",
              c->train.batch_size, dp);
  IFT_REQUIRE(c->train.seq_len >= 2 && c->train.seq_len <= c->model.max_position_embeddings,
              IFT_ERR_CONFIG, "choose 2 <= train.seq_len <= model.max_position_embeddings",
              "train.seq_len = %d (max_position_embeddings %d)", c->train.seq_len,
              c->model.max_position_embeddings);
  IFT_REQUIRE(c->ift.lambda >= 0 && c->ift.lambda <= 1, IFT_ERR_CONFIG,
              "ift.lambda is a blend weight in [0, 1]", "ift.lambda = %g", c->ift.lambda);
  IFT_REQUIRE(c->ift.gamma >= 0 && c->ift.gamma <= 1, IFT_ERR_CONFIG,
              "ift.gamma is a discount in [0, 1]", "ift.gamma = %g", c->ift.gamma);
  IFT_REQUIRE(c->optim.lr > 0, IFT_ERR_CONFIG, "optim.lr must be positive", "optim.lr = %g",
              c->optim.lr);
  IFT_REQUIRE(c->optim.clip >= 0, IFT_ERR_CONFIG, "optim.clip = 0 turns clipping off",
              "optim.clip = %g is negative", c->optim.clip);
  IFT_REQUIRE(c->pref.beta >= 0, IFT_ERR_CONFIG, "pref.beta > 0 (0 = the loss's default)",
              "pref.beta = %g", c->pref.beta);
  IFT_REQUIRE(c->pref.label_smoothing >= 0 && c->pref.label_smoothing < 0.5, IFT_ERR_CONFIG,
              "pref.label_smoothing is a probability in [0, 0.5)", "pref.label_smoothing = %g",
              c->pref.label_smoothing);
  IFT_REQUIRE(!loss_is_pref(c->train.loss) || 2 * c->train.micro_batch <= 512, IFT_ERR_CONFIG,
              "train.micro_batch <= 256 for preference losses (each pair is two rows)",
              "train.micro_batch = %d", c->train.micro_batch);
  IFT_REQUIRE(c->dist.tp >= 1, IFT_ERR_LAYOUT, "dist.tp >= 1", "dist.tp = %d", c->dist.tp);
  IFT_REQUIRE(c->dist.pblas_block >= 0, IFT_ERR_CONFIG, "dist.pblas_block >= 0 (0: by model width)",
              "dist.pblas_block = %d", c->dist.pblas_block);
  IFT_REQUIRE(c->dist.tp_rows >= 0 && (c->dist.tp_rows == 0 || c->dist.tp % c->dist.tp_rows == 0),
              IFT_ERR_LAYOUT, "set dist.tp_rows to a divisor of dist.tp (0: automatic)",
              "dist.tp_rows = %d does not divide dist.tp = %d", c->dist.tp_rows, c->dist.tp);
  if (c->dist.tp_2d) {
    int pr, pc;
    app_tp_grid(c, &pr, &pc);
    IFT_TRY(model_grid_check(&c->model, pr, pc, c->dist.tp_block));
  }
  IFT_REQUIRE(c->train.steps >= 0 || c->train.epochs >= 1, IFT_ERR_CONFIG,
              "with train.steps = -1 set train.epochs >= 1", "train.epochs = %d",
              c->train.epochs);
  return IFT_OK;
}
