/* iftrain eval and iftrain generate: a checkpoint's held-out loss and exact
 * match on a data set, and text from a prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/chat.h"
#include "iftrain/ckpt.h"
#include "iftrain/data.h"
#include "iftrain/tok.h"
#include "app_train.h"

const char app_eval_help[] =
    "Held-out loss, greedy exact match and ROUGE-L of a checkpoint on a data set;\n"
    "on a preference data set also the preference accuracy.\n"
    "  iftrain eval --ckpt FILE --data FILE.h5 [--max-samples N] [--max-new-tokens N]\n"
    "               [--micro-batch N] [--tp N [--tp-mode 2d]] [--json] [--no-verify]\n\n"
    "The model config is read from the checkpoint. A row's answer is its first run of\n"
    "loss tokens (in a conversation: the first assistant turn), ending with the end-of-\n"
    "turn token it was prepared with (<eos>, </s>, <|im_end|>, ...); the prompt is what\n"
    "comes before it. Greedy decoding from the prompt runs until that token or\n"
    "--max-new-tokens (default 64). held-out loss: the mean over rows of the answer's\n"
    "mean NLL (nats per token); token_nll: the NLL per answer token over all rows\n"
    "(exp(token_nll): the perplexity). exact match: the greedy answer is the answer, token for\n"
    "token, end of turn included. ROUGE-L: F1 of the longest common subsequence of the\n"
    "greedy answer's and the answer's tokens (end of turn left out), mean over rows.\n"
    "preference accuracy (sets with /chosen and /rejected): fraction of pairs whose\n"
    "chosen answer has the higher summed log-probability under the model.\n"
    "--json: one line {ckpt, data, samples, eval_loss, token_nll, exact_match, rouge_l[, pairs,\n"
    "pref_acc]}.\n"
    "Runs on any number of ranks (rows are split over the replicas; --tp N ranks per\n"
    "replica, as dist.tp / dist.tp_mode). FILE may also be a\n"
    "checkpoint directory (its latest). Every tensor's checksum is verified on load\n"
    "unless --no-verify is given. --micro-batch rows (default 16) are scored and\n"
    "then decoded together with a key/value cache; memory is sized for the data's\n"
    "longest row plus --max-new-tokens. Exit codes: 0 ok, 2 bad input, 1 other failure.\n";

const char app_generate_help[] =
    "Generate text from a checkpoint (or a Hugging Face model directory).\n"
    "  iftrain generate --ckpt FILE --prompt TEXT [--max-new-tokens N] [--tokenizer DIR\n"
    "                   [--chat-template NAME|none]] [--temperature T] [--top-k K] [--seed S]\n"
    "                   [--tp N [--tp-mode 2d]] [--json] [--timing] [--no-verify]\n\n"
    "Tokenizer: a model iftrain built uses its byte tokenizer; the prompt is wrapped\n"
    "as <bos> PROMPT <assistant>, generation stops at <eos>, and PROMPT followed by\n"
    "the generated text is printed.  A model imported from Hugging Face needs\n"
    "--tokenizer DIR, its directory holding tokenizer.json and tokenizer_config.json:\n"
    "the prompt becomes one user message rendered with the model's chat template\n"
    "(add_generation_prompt; --chat-template NAME chooses the format as in prep,\n"
    "none encodes PROMPT as plain text with the tokenizer's special tokens),\n"
    "generation stops at the eos ids (tokenizer_config.json's eos_token,\n"
    "config.json's and generation_config.json's eos_token_id), and the generated\n"
    "text alone is printed (special tokens skipped).  A tokenizer.json other than\n"
    "the one recorded at import (SHA-256) is refused, as is a model that records\n"
    "one when --tokenizer is missing.\n"
    "Sampling: temperature 0 (default) is greedy; otherwise softmax(logits / T),\n"
    "restricted to the K most likely tokens when --top-k K > 0 (ties with the K-th\n"
    "included); --seed S makes it repeatable, the same on any number of ranks.\n"
    "The prompt runs once, filling a key/value cache, then one token per step\n"
    "(in the 2D mode, --tp-mode 2d, every step is a full forward).\n"
    "--tp N: N tensor-parallel ranks per replica (every replica generates the same).\n"
    "--json: one JSON line {prompt_ids, ids (generated, stop token included), text,\n"
    "stop: eos|length|context, timing}.  --timing: prefill and per-token times on\n"
    "stderr, beside one single-token forward (model_decode of one token at position\n"
    "0, median of 9 runs, measured before the prompt; not in the 2D mode).\n"
    "Exit codes: 0 ok, 2 bad input (also a refused tokenizer), 1 other failure.\n";

typedef struct {
  const char *ckpt, *data, *prompt, *tokenizer, *chat_template;
  int max_samples, max_new, mb, json, top_k, no_verify, tp, tp_2d, timing;
  double temperature;
  long seed;
} ev_opts;

static int parse(int argc, char **argv, ev_opts *o, const char *cmd) {
  const int gen = !strcmp(cmd, "generate");
  const char *tp_mode = NULL;
  app_optdef opts[] = {
      APP_STR("ckpt", &o->ckpt),
      APP_STR("data", &o->data),
      APP_STR("prompt", &o->prompt),
      APP_INT("max-samples", &o->max_samples, APP_GE(0)),
      APP_INT("max-new-tokens", &o->max_new, APP_GE(1)),
      APP_INT("micro-batch", &o->mb, APP_GE(1)),
      APP_DOUBLE("temperature", &o->temperature, APP_GE(0)),
      APP_INT("top-k", &o->top_k, APP_GE(0)),
      APP_LONG("seed", &o->seed, APP_GE(0)),
      APP_INT("tp", &o->tp, APP_GE(1)),
      APP_STR("tp-mode", &tp_mode),
      APP_FLAG("json", &o->json),
      APP_FLAG("no-verify", &o->no_verify),
      /* the last three: generate only */
      APP_STR("tokenizer", &o->tokenizer),
      APP_STR("chat-template", &o->chat_template),
      APP_FLAG("timing", &o->timing),
      {0}};
  if (!gen) opts[sizeof opts / sizeof opts[0] - 4] = (app_optdef){0};
  const app_opts spec = {.cmd = cmd, .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (tp_mode) {
    if (strcmp(tp_mode, "1d") && strcmp(tp_mode, "2d")) {
      if (core_rank() == 0) fprintf(stderr, "iftrain %s: --tp-mode = '%s': choose 1d or 2d\n", cmd, tp_mode);
      return APP_EXIT_USAGE;
    }
    o->tp_2d = tp_mode[0] == '2';
  }
  if (!o->ckpt) {
    if (core_rank() == 0) fprintf(stderr, "iftrain %s: --ckpt FILE is required\n", cmd);
    return APP_EXIT_USAGE;
  }
  return 0;
}

/* declared in app_train.h */
ift_status app_eval_load(train_ctx *tc, const char *ckpt_arg, const char *eval_data, int mb, int T,
                            int verify, int tp, int tp_2d, char **origin_out) {
  memset(tc, 0, sizeof *tc); /* destroyable even when reading the config fails */
  char ckpt[1100];
  memset(tc, 0, sizeof *tc); /* the caller destroys it, whatever failed */
  app_config c;
  app_config_defaults(&c);
  ift_status st = ckpt_resolve_any(ckpt, sizeof ckpt, ckpt_arg);
  if (st == IFT_OK) st = ckpt_read_config(ckpt, &c.model);
  /* every rank reads the path on its own: agree before train_ctx_create's collectives */
  IFT_TRY(dist_agree(st, MPI_COMM_WORLD));
  c.train.micro_batch = mb;
  c.train.seq_len = T < c.model.max_position_embeddings ? T : c.model.max_position_embeddings;
  c.train.batch_size = mb;
  snprintf(c.data.eval, sizeof c.data.eval, "%s", eval_data ? eval_data : "");
  int size;
  IFT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size), NULL);
  c.train.batch_size = mb * size;
  c.dist.tp = tp > 0 ? tp : 1;
  c.dist.tp_2d = tp_2d;
  /* forward only: one set of layer activations serves every layer (the
   * same results; the memory of a training micro-batch's is not needed) */
  c.train.recompute = MODEL_RECOMPUTE_LAYER;
  IFT_TRY(train_ctx_create(tc, &c, TRAIN_CTX_WEIGHTS_LOADED, MPI_COMM_WORLD));
  IFT_TRY(ckpt_load(ckpt, tc->m, NULL, NULL, tc->grid.world, verify ? CKPT_VERIFY : 0));
  /* the data's tokenizer must be the checkpoint's */
  char *origin = NULL;
  IFT_TRY(ckpt_origin_shared(ckpt, &origin, tc->grid.world));
  st = tc->have_eval ? data_check_tokenizer(&tc->eval, origin, ckpt, c.model.vocab_size, core_rank() == 0) : IFT_OK;
  if (origin_out) *origin_out = origin;
  else free(origin);
  return st;
}

int app_eval(int argc, char **argv) {
  ev_opts o = {.max_new = 64, .mb = 16};
  int rc = parse(argc, argv, &o, "eval");
  if (rc) return rc;
  if (!o.data) {
    if (core_rank() == 0) fprintf(stderr, "iftrain eval: --data FILE.h5 is required\n");
    return APP_EXIT_USAGE;
  }
  /* the model's buffers and key/value cache for the longest row and its
   * generation, not for max_position_embeddings */
  data_set d;
  long longest = 0;
  ift_status st = data_open(&d, o.data, MPI_COMM_WORLD, 0);
  if (st == IFT_OK) {
    for (long i = 0; i < d.n; i++) longest = data_len(&d, i) > longest ? data_len(&d, i) : longest;
    if (d.has_pairs && data_max_pair_len(&d) > longest) longest = data_max_pair_len(&d);
    data_close(&d);
  } else {
    return app_exit_code(st); /* printed where it happened */
  }
  train_ctx tc;
  st = app_eval_load(&tc, o.ckpt, o.data, o.mb, (int)(longest + o.max_new + 1), !o.no_verify, o.tp, o.tp_2d, NULL);
  eval_result r = {0};
  if (st == IFT_OK) st = train_evaluate(&tc, &tc.eval, o.max_samples, o.max_new, &r);
  train_ctx_destroy(&tc);
  if (st != IFT_OK) return app_exit_code(st);
  if (core_rank() == 0) {
    if (o.json) {
      json_t *j = json_pack("{s:s,s:s,s:I,s:f,s:f,s:f,s:f}", "ckpt", o.ckpt, "data", o.data, "samples",
                            (json_int_t)r.rows, "eval_loss", r.loss, "token_nll", r.token_nll, "exact_match",
                            r.exact, "rouge_l", r.rouge_l);
      if (j && r.pairs) {
        json_object_set_new(j, "pairs", json_integer(r.pairs));
        json_object_set_new(j, "pref_acc", json_real(r.pref_acc));
      }
      if (j) json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
      printf("\n");
      json_decref(j);
    } else {
      printf("%s on %s (%ld samples): held-out loss %.4f (per token %.4f, perplexity %.2f), exact match %.4f, "
             "ROUGE-L %.4f",
             o.ckpt, o.data, r.rows, r.loss, r.token_nll, exp(r.token_nll), r.exact, r.rouge_l);
      if (r.pairs) printf(", preference accuracy %.4f (%ld pairs)", r.pref_acc, r.pairs);
      printf("\n");
    }
  }
  return APP_EXIT_OK;
}

/* ------------------------------------------------------------ generate */

enum { GEN_MAX_EOS = 16 };

/* The tokenizer side of a generation: iftrain's bytes (t = NULL) or the
 * model's own tokenizer, and the ids that end the answer. */
typedef struct {
  tok *t;
  int eos[GEN_MAX_EOS], neos;
} gen_tok;

static void eos_add(gen_tok *g, int id) {
  if (id < 0) return;
  for (int i = 0; i < g->neos; i++)
    if (g->eos[i] == id) return;
  if (g->neos < GEN_MAX_EOS) g->eos[g->neos++] = id;
}

/* eos_token_id of a config object: an id or a list of ids (transformers'
 * generate stops at any of them). */
static void eos_add_json(gen_tok *g, const json_t *cfg) {
  const json_t *e = json_object_get(cfg, "eos_token_id"), *v;
  size_t i;
  if (json_is_integer(e)) eos_add(g, (int)json_integer_value(e));
  else if (json_is_array(e))
    json_array_foreach(e, i, v) if (json_is_integer(v)) eos_add(g, (int)json_integer_value(v));
}

static void eos_add_file(gen_tok *g, const char *dir, const char *name) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  json_t *cfg = access(path, F_OK) == 0 ? json_load_file(path, 0, NULL) : NULL;
  if (cfg) {
    eos_add_json(g, cfg);
    json_decref(cfg);
  }
}

/* The model's own tokenizer from DIR, checked against the one the model
 * was imported with (mtok "hf:SHA", source msrc; "" when none was recorded),
 * the prompt as one user message of the chat template (or plain text with
 * the post-processor for --chat-template none) into seq, the stop ids. */
static ift_status gen_hf_prompt(gen_tok *g, const ev_opts *o, const char *origin, const char *mtok,
                                const char *msrc, int V, tok_ids *ids) {
  IFT_TRY(tok_load(&g->t, o->tokenizer));
  const char *sha = tok_sha256(g->t);
  IFT_REQUIRE(!mtok[0] || !strcmp(mtok + 3, sha), IFT_ERR_CONFIG,
              "pass --tokenizer the model's own directory (the one it was imported from), or import the "
              "model again from a directory holding this tokenizer",
              "--tokenizer %s: its tokenizer.json (sha256 %s) is not the tokenizer the model %s was imported "
              "with (sha256 %s, from %s): the ids would mean other text",
              o->tokenizer, sha, o->ckpt, mtok + 3, msrc);
  if (!mtok[0] && core_loglevel() >= IFT_LOG_INFO)
    fprintf(stderr, "iftrain: warning: the model %s (from %s) records no tokenizer; --tokenizer %s is used on trust\n",
            o->ckpt, msrc, o->tokenizer);
  IFT_REQUIRE(tok_vocab_size(g->t) <= V, IFT_ERR_FORMAT, "pass the model's own tokenizer",
              "--tokenizer %s has ids up to %d, beyond the model's vocab_size %d", o->tokenizer,
              tok_vocab_size(g->t) - 1, V);
  /* the directory of tokenizer_config.json (and config.json), as prep finds it */
  char dir[1100];
  struct stat sb;
  snprintf(dir, sizeof dir, "%s", o->tokenizer);
  if (!(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  char cfgfile[1200];
  snprintf(cfgfile, sizeof cfgfile, "%s/tokenizer_config.json", dir);
  const int have_cfg = access(cfgfile, F_OK) == 0;
  if (o->chat_template && !strcmp(o->chat_template, "none")) {
    IFT_TRY(tok_encode(g->t, o->prompt, strlen(o->prompt), 1, ids));
  } else {
    chat_tmpl tmpl;
    IFT_TRY(chat_from_config(dir, o->chat_template, &tmpl));
    chat_msg msg = {.role = "user", .content = o->prompt};
    chat_out co;
    IFT_TRY(chat_render(&tmpl, &msg, 1, 1, &co));
    uint8_t *mask = NULL;
    ift_status st = chat_encode(g->t, &co, ids, &mask);
    free(mask);
    chat_out_free(&co);
    IFT_TRY(st);
  }
  int e = -1;
  IFT_TRY(data_tokenizer_eos(have_cfg ? dir : "", g->t, &e));
  eos_add(g, e);
  eos_add_file(g, dir, "config.json");
  eos_add_file(g, dir, "generation_config.json");
  json_t *oj = origin ? json_loads(origin, 0, NULL) : NULL;
  if (oj) {
    eos_add_json(g, json_object_get(oj, "config"));
    eos_add_json(g, json_object_get(oj, "token_ids")); /* a new model's (model.tokenizer) */
    json_decref(oj);
  }
  return IFT_OK;
}

/* Rank 0: the prompt's ids (seq, *n of at most cap) and the stop ids, with
 * the tokenizer the model was trained with. */
static ift_status gen_prompt(gen_tok *g, const ev_opts *o, const char *origin, int V, int *seq, int cap,
                             int *n) {
  char mtok[80], msrc[1100];
  data_origin_tokenizer(origin, mtok, msrc);
  if (!o->tokenizer) {
    char hint[1300];
    snprintf(hint, sizeof hint,
             "pass --tokenizer DIR, the model's directory holding tokenizer.json and tokenizer_config.json "
             "(--tokenizer %s if it is still there)", msrc);
    IFT_REQUIRE(strncmp(mtok, "hf:", 3), IFT_ERR_CONFIG, hint,
                "the model %s was imported from %s with its own tokenizer (tokenizer.json sha256 %s): "
                "iftrain's byte tokenizer would give it meaningless ids",
                o->ckpt, msrc, mtok + 3);
    IFT_REQUIRE(!o->chat_template, IFT_ERR_ARG, "give --tokenizer DIR with --chat-template",
                "--chat-template %s needs --tokenizer (the byte tokenizer has its own layout)", o->chat_template);
    *n = 0;
    seq[(*n)++] = TOK_BOS;
    *n += data_tokenize(seq + *n, cap - 2, o->prompt, strlen(o->prompt));
    seq[(*n)++] = TOK_ASSISTANT;
    eos_add(g, TOK_EOS);
    return IFT_OK;
  }
  IFT_REQUIRE(strcmp(mtok, DATA_TOKENIZER), IFT_ERR_CONFIG,
              "drop --tokenizer: this model reads iftrain's byte tokenizer",
              "the model %s was built by iftrain with its byte tokenizer %s: the ids of --tokenizer %s "
              "mean nothing to it",
              o->ckpt, DATA_TOKENIZER, o->tokenizer);
  tok_ids ids = {0};
  ift_status st;
  IFT_TRY_GOTO(st, out, gen_hf_prompt(g, o, origin, mtok, msrc, V, &ids));
  IFT_REQUIRE_GOTO(st, out, (long)ids.n < cap, IFT_ERR_ARG, "shorten the prompt",
                   "the prompt is %zu tokens: no room left in the model's %d positions", ids.n, cap);
  memcpy(seq, ids.ids, sizeof(int) * ids.n);
out:
  *n = (int)ids.n;
  tok_ids_free(&ids);
  return st;
}

/* The K-th largest of a[0..n) (a is reordered): quickselect, O(n). */
static float kth_largest(float *a, int n, int k) {
  int lo = 0, hi = n - 1;
  const int want = k - 1;
  while (lo < hi) {
    const float piv = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] > piv) i++;
      while (a[j] < piv) j--;
      if (i <= j) {
        float t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else break;
  }
  return a[want];
}

/* One draw from softmax(logits / temp) over the top_k largest logits (all
 * when top_k is 0 or >= V; ties with the K-th count in): the uniform number
 * of (seed, step) against the cumulative weights in id order, so every rank
 * (they hold the same gathered logits) draws the same token.  w, tmp: V. */
static int sample(const float *lg, int V, double temp, int top_k, long seed, int step, double *w, float *tmp) {
  float kth = -INFINITY, mx = lg[0];
  if (top_k > 0 && top_k < V) {
    memcpy(tmp, lg, sizeof(float) * (size_t)V);
    kth = kth_largest(tmp, V, top_k);
  }
  for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
  double z = 0;
  for (int v = 0; v < V; v++) z += w[v] = lg[v] >= kth ? exp((lg[v] - mx) / temp) : 0;
  const double u = rng_uniform((uint64_t)seed, 0x67656e, (uint64_t)step) * z;
  double acc = 0;
  int last = 0;
  for (int v = 0; v < V; v++) {
    if (w[v] <= 0) continue;
    acc += w[v];
    last = v;
    if (acc >= u) return v;
  }
  return last;
}

/* One single-token forward: model_decode of seq[0] at position 0 (every
 * weight matrix, the LM head and its argmax, attention over one key),
 * median of 9, in seconds.  Run before the prefill, which overwrites the
 * cache's position 0. */
static double gen_time_one(model *m, int tok0, ift_status *st) {
  double t[9];
  const int pos = 0;
  int next;
  for (int i = 0; i < 9 && *st == IFT_OK; i++) {
    const double t0 = core_now();
    *st = model_decode(m, &tok0, &pos, 1, &next);
    t[i] = core_now() - t0;
  }
  for (int i = 1; i < 9; i++)
    for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
      double x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  return t[4];
}

/* S with every byte that does not begin a valid UTF-8 sequence replaced by
 * U+FFFD (JSON strings are UTF-8; the byte tokenizer can end anywhere). */
static json_t *json_text(const char *s, size_t n) {
  char *o = malloc(3 * n + 1);
  if (!o) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)s[i], d = i + 1 < n ? (unsigned char)s[i + 1] : 0;
    /* the sequence length of a valid lead byte, with the second byte's range
     * (no overlong forms, surrogates or code points past U+10FFFF) */
    int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    const unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (len > 1 && (d < lo || d > hi)) len = 0;
    for (int j = 2; j < len; j++)
      if (i + (size_t)j >= n || ((unsigned char)s[i + (size_t)j] & 0xC0) != 0x80) len = 0;
    if (len == 0 || (c == 0 && len == 1)) {
      memcpy(o + k, "\xEF\xBF\xBD", 3);
      k += 3;
      i++;
    } else {
      memcpy(o + k, s + i, (size_t)len);
      k += (size_t)len;
      i += (size_t)len;
    }
  }
  json_t *j = json_stringn(o, k);
  free(o);
  return j;
}

static void gen_print(const gen_tok *g, const ev_opts *o, const int *seq, int start, int n, const char *stop,
                      const double *tm, ift_status *st) {
  int end = n;
  if (!strcmp(stop, "eos")) end--;
  char *text = NULL;
  size_t len = 0;
  if (g->t) {
    *st = tok_decode(g->t, seq + start, (size_t)(end - start), 1, &text, &len);
    if (*st != IFT_OK) return;
  } else {
    size_t cap = 8 * (size_t)(end - start) + 64;
    text = malloc(cap);
    if (!text) {
      *st = IFT_ERR_NOMEM;
      return;
    }
    len = data_detokenize(text, cap, seq + start, end - start);
  }
  if (o->json) {
    json_t *p = json_array(), *ids = json_array();
    for (int i = 0; i < start; i++) json_array_append_new(p, json_integer(seq[i]));
    for (int i = start; i < n; i++) json_array_append_new(ids, json_integer(seq[i]));
    json_t *j = json_pack("{s:o,s:o,s:o,s:s}", "prompt_ids", p, "ids", ids, "text",
                          json_text(text, len), "stop", stop);
    if (j && o->timing)
      json_object_set_new(j, "timing",
                          json_pack("{s:i,s:f,s:i,s:f,s:f}", "prompt_tokens", start, "prefill_s", tm[0],
                                    "decode_tokens", n - start - 1, "decode_ms_per_token", tm[1],
                                    "single_token_forward_ms", tm[2]));
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (out) printf("%s\n", out);
    else {
      ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "jansson", NULL, "the JSON line of the result");
      *st = IFT_ERR_NOMEM;
    }
    free(out);
    if (j) json_decref(j);
  } else if (g->t) {
    printf("%.*s\n", (int)len, text);
  } else {
    printf("%s%.*s\n", o->prompt, (int)len, text);
  }
  free(text);
}

int app_generate(int argc, char **argv) {
  ev_opts o = {.max_new = 64, .mb = 1};
  int rc = parse(argc, argv, &o, "generate");
  if (rc) return rc;
  if (!o.prompt) {
    if (core_rank() == 0) fprintf(stderr, "iftrain generate: --prompt TEXT is required\n");
    return APP_EXIT_USAGE;
  }
  if (o.chat_template && !o.tokenizer) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain generate: --chat-template needs --tokenizer DIR (the byte tokenizer has its own layout)\n");
    return APP_EXIT_USAGE;
  }
  train_ctx tc;
  char *origin = NULL;
  ift_status st = app_eval_load(&tc, o.ckpt, NULL, 1, 1 << 20, !o.no_verify, o.tp, o.tp_2d, &origin);
  if (st != IFT_OK) {
    free(origin);
    train_ctx_destroy(&tc);
    return app_exit_code(st);
  }
  const int Tm = tc.cfg.train.seq_len, V = tc.cfg.model.vocab_size;
  int *seq = tc.gen, n = 0;
  gen_tok g = {0};
  /* rank 0 reads the tokenizer and says what is wrong; the others follow */
  st = dist_agree(core_rank() == 0 ? gen_prompt(&g, &o, origin, V, seq, Tm, &n) : IFT_OK, MPI_COMM_WORLD);
  free(origin);
  int hdr[3] = {n, g.neos, g.t != NULL};
  if (st == IFT_OK)
    st = dist_mpi_status(MPI_Bcast(hdr, 3, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast", __FILE__, __LINE__, NULL);
  n = hdr[0];
  g.neos = hdr[1];
  if (st == IFT_OK)
    st = dist_mpi_status(MPI_Bcast(seq, n, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast", __FILE__, __LINE__, NULL);
  if (st == IFT_OK)
    st = dist_mpi_status(MPI_Bcast(g.eos, GEN_MAX_EOS, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast", __FILE__,
                         __LINE__, NULL);
  const int start = n, greedy = o.temperature <= 0;
  const int pad = hdr[2] ? 0 : TOK_PAD; /* an id after the last: causal, so it changes nothing */
  /* With T > 0 the next token's distribution comes from the full logits of
   * the last position (model_logits): one LM head product per token. */
  float *lg = greedy ? NULL : malloc(sizeof(float) * (size_t)V * 2);
  double *w = greedy ? NULL : malloc(sizeof(double) * (size_t)V);
  if (!greedy && (!lg || !w) && st == IFT_OK) st = IFT_ERR_NOMEM;
  const int kv = model_kv_supported(tc.m); /* 2D mode: full forwards */
  if (kv && st == IFT_OK) st = model_kv_enable(tc.m);
  double tm[3] = {0, 0, 0};
  if (o.timing && kv && st == IFT_OK) tm[2] = 1e3 * gen_time_one(tc.m, seq[0], &st);
  const double t0 = core_now();
  const char *stop = "length";
  for (int step = 0; step < o.max_new && st == IFT_OK; step++) {
    if (n >= Tm) {
      stop = "context";
      break;
    }
    int next = 0;
    const int T = n + 1 > 2 ? n + 1 : 2;
    if (kv && step > 0) {
      /* the key/value cache holds positions 0 .. n - 2: decode the last token */
      const int p = n - 1;
      st = model_decode(tc.m, &seq[p], &p, 1, greedy ? &next : NULL);
      if (st == IFT_OK && !greedy) st = model_logits(tc.m, lg, 0);
    } else {
      /* a full forward (the prompt's, which fills the cache when kv) */
      seq[n] = pad;
      model_input in = {.tokens = seq};
      st = model_forward(tc.m, tc.ws.logp, greedy ? tc.ws.argmax : NULL, &in, 1, T, 0);
      if (st == IFT_OK && greedy) next = tc.ws.argmax[n - 1];
      if (st == IFT_OK && !greedy) st = model_logits(tc.m, lg, n - 1);
      if (step == 0) tm[0] = core_now() - t0;
    }
    if (st == IFT_OK && !greedy) next = sample(lg, V, o.temperature, o.top_k, o.seed, step, w, lg + V);
    seq[n++] = next;
    int end = 0;
    for (int i = 0; i < g.neos; i++) end |= next == g.eos[i];
    if (end) {
      stop = "eos";
      break;
    }
  }
  const int steps = n - start;
  if (steps > 1) tm[1] = 1e3 * (core_now() - t0 - tm[0]) / (steps - 1);
  free(lg);
  free(w);
  if (st == IFT_OK && core_rank() == 0) {
    if (o.timing) {
      fprintf(stderr, "generate: prefill of %d tokens %.1f ms; %d tokens after it %.2f ms/token", start,
              1e3 * tm[0], steps > 1 ? steps - 1 : 0, tm[1]);
      if (kv)
        fprintf(stderr, "; single-token forward %.2f ms (decode at position 0, median of 9); ratio %.2f\n",
                tm[2], tm[2] > 0 ? tm[1] / tm[2] : 0.0);
      else
        fprintf(stderr, " (2D mode: full forwards)\n");
    }
    gen_print(&g, &o, seq, start, n, stop, tm, &st);
  }
  if (g.t) tok_free(g.t);
  train_ctx_destroy(&tc);
  return app_exit_code(st);
}
