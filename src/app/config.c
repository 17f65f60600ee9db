#include "config.h"
#include "iftrain/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <ini.h>

#include "iftrain/app.h"

typedef enum { K_INT, K_LONG, K_DOUBLE, K_BOOL, K_STR, K_ENUM, K_U64 } key_type;

typedef struct {
  const char *key; /* section.key */
  key_type type;
  size_t off;
  size_t len;          /* K_STR capacity */
  const char *choices; /* K_ENUM: "a|b|c" in enum order */
  app_range range;     /* numbers: refused outside it, at load and in app_config_check */
  const char *help;
} key_def;

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
static const key_def keys[] = {
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

static int enum_count(const char *choices) {
  int n = 1;
  for (const char *p = choices; *p; p++) n += *p == '|';
  return n;
}

/* WHERE prefixes every message ("file:line: " for a config file, "" for the
 * command line), so an error is printed once, already naming its origin. */
static ift_status set_key(app_config *c, const char *where, const char *key, const char *value) {
  const key_def *k = find_key(key);
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
  return set_key(c, "", key, value);
}

/* The most characters before a line's '#' comment that are read (a comment
 * may be of any length); inih then takes lines that fit its buffer, whose
 * size it tells the reader (198 characters and a newline as Debian builds
 * it: INI_MAX_LINE 200). */
enum { RAW_MAX_CHARS = 4095 };

static const char *file_kind(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* A regular file opened for reading.  O_NONBLOCK: opening a FIFO must not
 * wait for a writer before fstat can refuse it. */
static ift_status open_config(const char *path, FILE **out) {
  const char *hint = "--config must name a regular file (an INI file; iftrain train --help)";
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  IFT_REQUIRE(fd >= 0, IFT_ERR_CONFIG, hint, "cannot open config file '%s': %s", path,
              strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) sb.st_mode = 0;
  int regular = S_ISREG(sb.st_mode);
  FILE *f = regular ? fdopen(fd, "r") : NULL;
  int fdopen_errno = errno;
  if (!f) close(fd);
  IFT_REQUIRE(regular, IFT_ERR_CONFIG, hint, "config file '%s' is %s, not a regular file", path,
              file_kind(sb.st_mode));
  IFT_REQUIRE(f, IFT_ERR_IO, hint, "cannot read config file '%s': %s", path, strerror(fdopen_errno));
  *out = f;
  return IFT_OK;
}

/* The state of one file's parse: inih (ini_parse_stream) splits sections,
 * keys and values; the reader below hands it one whole line per call and
 * refuses what inih would split, misread or let through silently. */
typedef struct {
  app_config *c;
  FILE *f;
  const char *path;
  int line;              /* of the line inih is parsing */
  int sections;          /* [section] headers seen */
  ift_status st;         /* the first error; the reader then ends the parse */
  char where[1100];      /* "path:line: " */
  char raw[RAW_MAX_CHARS + 1];
  int first_line[NKEYS]; /* the line that set each key, to refuse a second one */
} ini_state;

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

/* The next line of the file into s->raw without its newline and its '#'
 * comment (a '#' anywhere starts one, as always in iftrain's files; inih
 * would take only ';' after a blank); *got = 0 at the end of the file. */
static ift_status read_line(ini_state *s, int *got) {
  size_t n = 0;
  int ch, comment = 0, any = 0;
  snprintf(s->where, sizeof s->where, "%s:%d: ", s->path, s->line + 1);
  while ((ch = getc(s->f)) != EOF && ch != '\n') {
    any = 1;
    IFT_REQUIRE(ch != 0, IFT_ERR_CONFIG, "is this a text file? (--config takes an INI file)",
                "%sline contains a NUL byte", s->where);
    comment |= ch == '#';
    if (comment) continue;
    IFT_REQUIRE(n < RAW_MAX_CHARS, IFT_ERR_CONFIG, "shorten it, or set the value on the command line",
                "%sline is longer than %d characters", s->where, RAW_MAX_CHARS);
    s->raw[n++] = (char)ch;
  }
  s->raw[n] = 0;
  IFT_REQUIRE(!ferror(s->f), IFT_ERR_IO, "check the file system", "%sread error: %s", s->where,
              strerror(errno));
  *got = ch != EOF || any;
  s->line += *got;
  return IFT_OK;
}

/* A line that inih would take otherwise than iftrain always has: a section
 * header with text after its ']' (inih ignores that text), or a line that is
 * neither a header nor key = value (inih would report only its number). */
static ift_status check_syntax(ini_state *s, const char *t) {
  if (*t == ';') return IFT_OK; /* inih's comment */
  if (*t == '[') {
    const char *e = strchr(t, ']');
    IFT_REQUIRE(e && !e[1], IFT_ERR_CONFIG, "write sections as [name]", "%smalformed section header '%s'",
                s->where, t);
    s->sections++;
    return IFT_OK;
  }
  IFT_REQUIRE(!*t || (strchr(t, '=') && s->sections), IFT_ERR_CONFIG,
              s->sections ? "write 'key = value'" : "put keys under a [section] header",
              "%scannot parse '%s'", s->where, t);
  return IFT_OK;
}

/* The next line for inih's buffer of num bytes, trimmed and without its
 * comment, so that inih never sees a continuation line (an indented one) nor
 * a line longer than its buffer, which it would read in pieces. */
static ift_status next_line(ini_state *s, char *out, int num, int *got) {
  IFT_TRY(read_line(s, got));
  if (!*got) return IFT_OK;
  /* editors on Windows start UTF-8 files with a byte order mark */
  char *t = s->raw;
  if (s->line == 1 && !strncmp(t, "\xEF\xBB\xBF", 3)) t += 3;
  t = trim(t);
  size_t n = strlen(t);
  IFT_REQUIRE(n + 2 <= (size_t)num, IFT_ERR_CONFIG,
              "set a longer value on the command line (--section.key=value), which takes up to 1023 characters",
              "%sline is longer than the %d characters a line of a config file may have (comments aside)",
              s->where, num - 2);
  IFT_TRY(check_syntax(s, t));
  if (*t == '[') { /* "[ train ]" names [train]: inih would keep the blanks */
    t[n - 1] = 0;
    char *name = trim(t + 1);
    *--name = '[';
    n = strlen(name);
    memcpy(name + n, "]", 2);
    t = name;
    n++;
  }
  memcpy(out, t, n);
  memcpy(out + n, "\n", 2); /* the line and its newline, as fgets reads it */
  return IFT_OK;
}

/* One key = value of line s->line. */
static ift_status handle_key(ini_state *s, const char *section, const char *name, const char *value) {
  IFT_REQUIRE(*section, IFT_ERR_CONFIG, "put keys under a [section] header with a name",
              "%scannot parse '%s = %s'", s->where, name, value);
  char full[160];
  snprintf(full, sizeof full, "%s.%s", section, name);
  const key_def *k = find_key(full);
  if (k) {
    /* two values for one key in a file is a mistake whichever wins; the
     * command line is the place to override */
    int *seen = &s->first_line[k - keys];
    IFT_REQUIRE(!*seen, IFT_ERR_CONFIG, "keep one of the two lines (override on the command line instead)",
                "%s%s is set twice, on lines %d and %d", s->where, full, *seen, s->line);
    *seen = s->line;
  }
  return set_key(s->c, s->where, full, value);
}

/* inih's reader (fgets' contract) and handler; an error ends the parse. */
static char *ini_reader_cb(char *str, int num, void *stream) {
  ini_state *s = stream;
  int got = 0;
  if (s->st == IFT_OK) s->st = next_line(s, str, num, &got);
  return s->st == IFT_OK && got ? str : NULL;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value) {
  ini_state *s = user;
  if (s->st == IFT_OK) s->st = handle_key(s, section, name, value);
  return s->st == IFT_OK;
}

static ift_status parse_file(ini_state *s) {
  int bad = ini_parse_stream(ini_reader_cb, s, ini_handler_cb, s);
  IFT_TRY(s->st);
  /* a line that check_syntax let through and inih did not */
  IFT_REQUIRE(!bad, IFT_ERR_CONFIG, "write [section] headers and 'key = value' lines",
              "%s:%d: cannot parse this line", s->path, bad);
  return IFT_OK;
}

static ift_status load_file(app_config *c, const char *path) {
  FILE *f;
  IFT_TRY(open_config(path, &f));
  ini_state *s = malloc(sizeof *s);
  if (!s) fclose(f);
  IFT_REQUIRE(s, IFT_ERR_NOMEM, NULL, "cannot read config file '%s': out of memory", path);
  *s = (ini_state){.c = c, .f = f, .path = path};
  ift_status st = parse_file(s);
  free(s);
  fclose(f);
  return st;
}

ift_status app_config_load(app_config *c, const char *path, int argc, char **argv) {
  if (path) IFT_TRY(load_file(c, path));
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    /* an override is --section.key[=value]; --config=dir/x.ini is not one */
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) || !dot || (eq && eq < dot)) continue;
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
    char v[1100], range[80] = "";
    value_str(v, sizeof v, &d, &keys[i]);
    if (keys[i].type != K_BOOL) app_range_str(range, sizeof range, keys[i].range);
    fprintf(f, "  %-24s %s\n  %-24s default: %s%s%s%s%s\n", dot + 1, keys[i].help, "",
            v[0] ? v : "(empty)", keys[i].choices ? "   choices: " : "",
            keys[i].choices ? keys[i].choices : "", range[0] ? "   allowed: " : "", range);
  }
}

/* A table cell: '|' would end the cell, so it is escaped. */
static void md_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', f);
    fputc(*s, f);
  }
}

void app_config_help_markdown(FILE *f) {
  static const char *const type_name[] = {[K_INT] = "integer", [K_LONG] = "integer", [K_DOUBLE] = "number",
                                          [K_BOOL] = "0 or 1", [K_STR] = "string", [K_ENUM] = "choice",
                                          [K_U64] = "integer >= 0"};
  app_config d;
  app_config_defaults(&d);
  fprintf(f, "<!-- Generated by `iftrain train --help-config=markdown` (make config-doc) from the key\n"
             "     table of src/app/config.c; tests/config_doc.sh fails when this file differs. -->\n"
             "# Configuration reference\n\n"
             "Every key of `iftrain train` (and of the tools that read a training configuration).\n"
             "In a file: `[section]` then `key = value`, `#` starts a comment; on the command line:\n"
             "`--section.key=value`, which overrides the file. Unknown keys, a key set twice in one\n"
             "file and values outside the allowed range are refused (exit code 2), and so are lines\n"
             "longer than the INI reader (inih) takes whole: 198 characters as Debian builds it,\n"
             "comments aside; a longer value goes on the command line. Defaults are those\n"
             "of a run started in the source tree (an installed `iftrain` finds the shipped data in\n"
             "its data directory instead of `data/`).\n");
  char section[32] = "";
  for (int i = 0; i < NKEYS; i++) {
    const key_def *k = &keys[i];
    const char *dot = strchr(k->key, '.');
    if (strncmp(section, k->key, (size_t)(dot - k->key)) || section[dot - k->key]) {
      snprintf(section, sizeof section, "%.*s", (int)(dot - k->key), k->key);
      fprintf(f, "\n## [%s]\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n",
              section);
    }
    char v[1100], range[80] = "";
    if (k->type == K_DOUBLE) snprintf(v, sizeof v, "%.15g", *(const double *)((const char *)&d + k->off));
    else value_str(v, sizeof v, &d, k);
    if (k->type == K_ENUM) snprintf(range, sizeof range, "%s", k->choices);
    else if (k->type != K_BOOL) app_range_str(range, sizeof range, k->range);
    fprintf(f, "| `%s` | %s | %s%s%s | ", k->key, type_name[k->type], v[0] ? "`" : "(empty)", v,
            v[0] ? "`" : "");
    md_cell(f, range);
    fputs(" | ", f);
    md_cell(f, k->help);
    fputs(" |\n", f);
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
    r = APP_IN(0, enum_count(k->choices) - 1);
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
  for (int i = 0; i < NKEYS; i++) IFT_TRY(check_key(c, &keys[i]));
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
