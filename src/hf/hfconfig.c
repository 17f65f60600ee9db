/* config.json of a Hugging Face Llama / Mistral model (include/iftrain/hf.h).
 *
 * The reader refuses, naming key and value, everything the model cannot
 * represent: importing a model whose config we partly ignored would train
 * and export a different network without a word.  Keys that do not change
 * the function (initializer_range, use_cache, pretraining_tp, ...) are
 * ignored.  The writer produces what transformers' save_pretrained writes:
 * json.dumps(indent=2, sort_keys=True) + "\n", floats in Python's repr. */
#include "config.h"
#include "iftrain/hf.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- reader */

typedef struct {
  const char *path;
  const json_t *obj; /* the object being read (root or rope_scaling) */
  const char *prefix; /* "" or "rope_scaling." for messages */
} cfg_ctx;

/* "PATH: "KEY" = VALUE: cause" with IFT_ERR_CONFIG. */
static ift_status cfg_fail(const cfg_ctx *x, const char *key, const json_t *v, const char *hint,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ift_status cfg_fail(const cfg_ctx *x, const char *key, const json_t *v, const char *hint,
                           const char *fmt, ...) {
  char cause[256], val[72] = "(absent)";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cause, sizeof cause, fmt, ap);
  va_end(ap);
  if (v) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(val, sizeof val, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
  }
  ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "config.json", hint, "%s: \"%s%s\" = %s: %s",
                x->path, x->prefix, key, val, cause);
  return IFT_ERR_CONFIG;
}

static const char HINT_UNSUPPORTED[] =
    "iftrain imports Llama-family models (LlamaForCausalLM, MistralForCausalLM) without biases, "
    "with SiLU MLPs and default, linear or llama3 RoPE";
static const char HINT_BROKEN[] = "config.json is not what transformers writes: repair or re-export it";

/* A key that may be absent (or null, as transformers treats None): *v NULL. */
static const json_t *opt(const cfg_ctx *x, const char *key) {
  const json_t *v = json_object_get(x->obj, key);
  return json_is_null(v) ? NULL : v;
}

/* Integer key in [lo, INT_MAX]; DEF when absent unless required. */
static ift_status get_int(const cfg_ctx *x, const char *key, int required, int def, int lo,
                          int *out) {
  const json_t *v = opt(x, key);
  if (!v) {
    if (required) return cfg_fail(x, key, NULL, HINT_BROKEN, "required key missing");
    *out = def;
    return IFT_OK;
  }
  if (!json_is_integer(v)) return cfg_fail(x, key, v, HINT_BROKEN, "not an integer");
  json_int_t i = json_integer_value(v);
  if (i < lo || i > 2147483647)
    return cfg_fail(x, key, v, HINT_BROKEN, "out of range (allowed: >= %d)", lo);
  *out = (int)i;
  return IFT_OK;
}

/* Number key > 0 (integer or real); DEF when absent unless required. */
static ift_status get_pos(const cfg_ctx *x, const char *key, int required, double def,
                          double *out) {
  const json_t *v = opt(x, key);
  if (!v) {
    if (required) return cfg_fail(x, key, NULL, HINT_BROKEN, "required key missing");
    *out = def;
    return IFT_OK;
  }
  if (!json_is_number(v)) return cfg_fail(x, key, v, HINT_BROKEN, "not a number");
  if (!(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
    return cfg_fail(x, key, v, HINT_BROKEN, "out of range (allowed: > 0)");
  *out = json_number_value(v);
  return IFT_OK;
}

static ift_status get_bool(const cfg_ctx *x, const char *key, int def, int *out) {
  const json_t *v = opt(x, key);
  if (v && !json_is_boolean(v)) return cfg_fail(x, key, v, HINT_BROKEN, "not true or false");
  *out = v ? json_is_true(v) : def;
  return IFT_OK;
}

/* String key copied into out[n]; DEF when absent. */
static ift_status get_str(const cfg_ctx *x, const char *key, const char *def, char *out,
                          size_t n) {
  const json_t *v = opt(x, key);
  if (v && !json_is_string(v)) return cfg_fail(x, key, v, HINT_BROKEN, "not a string");
  const char *s = v ? json_string_value(v) : def;
  if (strlen(s) >= n) return cfg_fail(x, key, v, HINT_UNSUPPORTED, "value not recognised");
  memcpy(out, s, strlen(s) + 1);
  return IFT_OK;
}

/* bos_token_id / eos_token_id: null, an id or a list of ids. */
static ift_status get_ids(const cfg_ctx *x, const char *key, int *ids, int *n, int *is_list) {
  const json_t *v = opt(x, key);
  *n = *is_list = 0;
  if (!v) return IFT_OK;
  if (json_is_integer(v)) return get_int(x, key, 1, 0, 0, &ids[(*n)++]);
  if (!json_is_array(v)) return cfg_fail(x, key, v, HINT_BROKEN, "not a token id or a list of ids");
  if (json_array_size(v) > HF_MAX_TOKEN_IDS)
    return cfg_fail(x, key, v, HINT_UNSUPPORTED, "more than %d ids", HF_MAX_TOKEN_IDS);
  *is_list = 1;
  for (size_t i = 0; i < json_array_size(v); i++) {
    const json_t *e = json_array_get(v, i);
    if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 2147483647)
      return cfg_fail(x, key, v, HINT_BROKEN, "element %zu is not a token id", i);
    ids[(*n)++] = (int)json_integer_value(e);
  }
  return IFT_OK;
}

/* A key whose only representable value is false (attention_bias, mlp_bias). */
static ift_status refuse_true(const cfg_ctx *x, const char *key, const char *what) {
  int b;
  IFT_TRY(get_bool(x, key, 0, &b));
  if (b) return cfg_fail(x, key, opt(x, key), HINT_UNSUPPORTED, "%s are not supported", what);
  return IFT_OK;
}

/* rope_scaling (or transformers 5's rope_parameters, which also holds
 * rope_theta): null, default, linear or llama3. */
static ift_status read_rope(const cfg_ctx *root, const char *key, hf_config *c) {
  const json_t *r = opt(root, key);
  c->rope_scaling.type = HF_ROPE_DEFAULT;
  if (!r) return IFT_OK;
  if (!json_is_object(r)) return cfg_fail(root, key, r, HINT_BROKEN, "not an object or null");
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%s.", key);
  cfg_ctx x = {root->path, r, prefix};
  /* Older files say "type"; transformers reads it when "rope_type" is absent. */
  const char *tk = opt(&x, "rope_type") ? "rope_type" : "type";
  char type[16];
  IFT_TRY(get_str(&x, tk, "default", type, sizeof type));
  if (json_object_get(r, "rope_theta")) IFT_TRY(get_pos(&x, "rope_theta", 1, 0, &c->rope_theta));
  if (strcmp(type, "default") == 0) return IFT_OK;
  if (strcmp(type, "linear") == 0) {
    c->rope_scaling.type = HF_ROPE_LINEAR;
    return get_pos(&x, "factor", 1, 0, &c->rope_scaling.factor);
  }
  if (strcmp(type, "llama3") != 0)
    return cfg_fail(&x, tk, opt(&x, tk), HINT_UNSUPPORTED,
                    "unknown RoPE type (supported: default, linear, llama3)");
  c->rope_scaling.type = HF_ROPE_LLAMA3;
  IFT_TRY(get_pos(&x, "factor", 1, 0, &c->rope_scaling.factor));
  IFT_TRY(get_pos(&x, "low_freq_factor", 1, 0, &c->rope_scaling.low_freq_factor));
  IFT_TRY(get_pos(&x, "high_freq_factor", 1, 0, &c->rope_scaling.high_freq_factor));
  IFT_TRY(get_int(&x, "original_max_position_embeddings", 1, 0, 1,
                  &c->rope_scaling.original_max_position_embeddings));
  if (c->rope_scaling.high_freq_factor <= c->rope_scaling.low_freq_factor)
    return cfg_fail(&x, "high_freq_factor", opt(&x, "high_freq_factor"), HINT_BROKEN,
                    "must be greater than low_freq_factor");
  return IFT_OK;
}

static ift_status read_arch(const cfg_ctx *x, hf_config *c) {
  IFT_TRY(get_str(x, "model_type", "", c->model_type, sizeof c->model_type));
  int mistral = strcmp(c->model_type, "mistral") == 0;
  if (!opt(x, "model_type")) return cfg_fail(x, "model_type", NULL, HINT_BROKEN, "required key missing");
  if (!mistral && strcmp(c->model_type, "llama") != 0)
    return cfg_fail(x, "model_type", opt(x, "model_type"), HINT_UNSUPPORTED,
                    "not a Llama-family model (supported: llama, mistral)");
  snprintf(c->architecture, sizeof c->architecture, "%s",
           mistral ? "MistralForCausalLM" : "LlamaForCausalLM");
  const json_t *a = opt(x, "architectures");
  if (!a) return IFT_OK;
  if (!json_is_array(a) || json_array_size(a) != 1 || !json_is_string(json_array_get(a, 0)))
    return cfg_fail(x, "architectures", a, HINT_BROKEN, "not a list of one class name");
  const char *s = json_string_value(json_array_get(a, 0));
  if (strcmp(s, c->architecture) != 0)
    return cfg_fail(x, "architectures", a, HINT_UNSUPPORTED,
                    "model_type \"%s\" goes with [\"%s\"] (a causal LM with its lm_head)",
                    c->model_type, c->architecture);
  return IFT_OK;
}

static ift_status read_sizes(const cfg_ctx *x, hf_config *c) {
  IFT_TRY(get_int(x, "vocab_size", 1, 0, 1, &c->vocab_size));
  IFT_TRY(get_int(x, "hidden_size", 1, 0, 1, &c->hidden_size));
  IFT_TRY(get_int(x, "intermediate_size", 1, 0, 1, &c->intermediate_size));
  IFT_TRY(get_int(x, "num_hidden_layers", 1, 0, 1, &c->num_hidden_layers));
  IFT_TRY(get_int(x, "num_attention_heads", 1, 0, 1, &c->num_attention_heads));
  IFT_TRY(get_int(x, "max_position_embeddings", 1, 0, 1, &c->max_position_embeddings));
  /* transformers: absent (or null) KV heads = heads, head_dim = hidden / heads */
  IFT_TRY(get_int(x, "num_key_value_heads", 0, c->num_attention_heads, 1, &c->num_key_value_heads));
  IFT_TRY(get_int(x, "head_dim", 0, c->hidden_size / c->num_attention_heads, 1, &c->head_dim));
  if (c->num_attention_heads % c->num_key_value_heads != 0)
    return cfg_fail(x, "num_key_value_heads", opt(x, "num_key_value_heads"), HINT_BROKEN,
                    "does not divide num_attention_heads = %d", c->num_attention_heads);
  if (c->head_dim % 2 != 0)
    return cfg_fail(x, "head_dim", opt(x, "head_dim"), HINT_UNSUPPORTED,
                    "odd head dimension %d (RoPE rotates pairs)", c->head_dim);
  return IFT_OK;
}

static ift_status read_function(const cfg_ctx *x, hf_config *c) {
  char act[16];
  IFT_TRY(get_str(x, "hidden_act", "silu", act, sizeof act));
  if (strcmp(act, "silu") != 0)
    return cfg_fail(x, "hidden_act", opt(x, "hidden_act"), HINT_UNSUPPORTED,
                    "only silu is supported");
  IFT_TRY(refuse_true(x, "attention_bias", "biases on q/k/v/o_proj"));
  IFT_TRY(refuse_true(x, "mlp_bias", "biases on gate/up/down_proj"));
  IFT_TRY(get_pos(x, "rms_norm_eps", 1, 0, &c->rms_norm_eps));
  IFT_TRY(get_pos(x, "rope_theta", 0, 10000.0, &c->rope_theta));
  IFT_TRY(get_bool(x, "tie_word_embeddings", 0, &c->tie_word_embeddings));
  /* Read as is: a window at least the sequence long never masks anything,
   * and the model refuses longer sequences (model.h). */
  IFT_TRY(get_int(x, "sliding_window", 0, 0, 1, &c->sliding_window));
  IFT_TRY(read_rope(x, opt(x, "rope_scaling") ? "rope_scaling" : "rope_parameters", c));
  IFT_TRY(get_ids(x, "bos_token_id", c->bos_token_id, &c->n_bos, &c->bos_is_list));
  IFT_TRY(get_ids(x, "eos_token_id", c->eos_token_id, &c->n_eos, &c->eos_is_list));
  /* transformers 5 writes "dtype" where 4.x wrote "torch_dtype" */
  return get_str(x, opt(x, "torch_dtype") ? "torch_dtype" : "dtype", "", c->torch_dtype,
                 sizeof c->torch_dtype);
}

/* A parsed config.json (ROOT, consumed) into C; NAME for messages. */
static ift_status config_from_json(json_t *root, const char *name, hf_config *c) {
  cfg_ctx x = {name, root, ""};
  ift_status s = IFT_OK;
  IFT_REQUIRE_GOTO(s, done, json_is_object(root), IFT_ERR_CONFIG, HINT_BROKEN, "%s: not a JSON object", name);
  IFT_TRY_GOTO(s, done, read_arch(&x, c));
  IFT_TRY_GOTO(s, done, read_sizes(&x, c));
  IFT_TRY_GOTO(s, done, read_function(&x, c));
done:
  json_decref(root);
  return s;
}

ift_status hf_config_read(const char *dir_or_file, hf_config *c) {
  memset(c, 0, sizeof *c);
  struct stat st;
  char path[4096];
  int isdir = stat(dir_or_file, &st) == 0 && S_ISDIR(st.st_mode);
  int len = snprintf(path, sizeof path, isdir ? "%s/config.json" : "%s", dir_or_file);
  IFT_REQUIRE(len > 0 && (size_t)len < sizeof path, IFT_ERR_ARG, NULL, "path too long: %s",
              dir_or_file);
  IFT_REQUIRE(access(path, R_OK) == 0, IFT_ERR_IO,
              "give a Hugging Face model directory (it holds config.json)", "%s: %s", path,
              strerror(errno));
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  IFT_REQUIRE(root, IFT_ERR_CONFIG, HINT_BROKEN, "%s: line %d: %s", path, jerr.line, jerr.text);
  return config_from_json(root, path, c);
}

ift_status hf_config_parse(const char *text, const char *name, hf_config *c) {
  memset(c, 0, sizeof *c);
  json_error_t jerr;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  IFT_REQUIRE(root, IFT_ERR_CONFIG, HINT_BROKEN, "%s: line %d: %s", name, jerr.line, jerr.text);
  return config_from_json(root, name, c);
}

/* ---------------------------------------------------------------- writer */

/* Python's repr of a float: the shortest digits that read back to X, fixed
 * notation for exponents -4..15 (always with a fraction, "10000.0"),
 * scientific otherwise ("1e-05", "1.5e+16").  (At a power of two Python may
 * pick a shorter string above X than the nearest one below; not met by the
 * values of a config.) */
static void py_float(double x, char *out, size_t n) {
  if (!isfinite(x)) {
    snprintf(out, n, "%s", isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
    return;
  }
  char e[40];
  for (int p = 0; p < 17; p++) {
    snprintf(e, sizeof e, "%.*e", p, x);
    if (strtod(e, NULL) == x) break;
  }
  char digits[24], *d = digits;
  const char *s = e + (e[0] == '-');
  for (; *s != 'e'; s++)
    if (*s != '.') *d++ = *s;
  *d = 0;
  int exp = atoi(s + 1), nd = (int)strlen(digits);
  static const char zeros[] = "0000000000000000";
  const char *sign = signbit(x) ? "-" : "";
  if (exp < -4 || exp >= 16)
    snprintf(out, n, "%s%c%s%.*se%c%02d", sign, digits[0], nd > 1 ? "." : "", nd - 1, digits + 1,
             exp < 0 ? '-' : '+', abs(exp));
  else if (exp < 0)
    snprintf(out, n, "%s0.%.*s%s", sign, -exp - 1, zeros, digits);
  else if (nd > exp + 1)
    snprintf(out, n, "%s%.*s.%s", sign, exp + 1, digits, digits + exp + 1);
  else
    snprintf(out, n, "%s%s%.*s.0", sign, digits, exp + 1 - nd, zeros);
}

typedef struct {
  const char *key;
  char val[320];
} kv_line;

static int by_key(const void *a, const void *b) {
  return strcmp(((const kv_line *)a)->key, ((const kv_line *)b)->key);
}

/* An id, a list of ids (json.dumps indent 2 at depth 1) or null. */
static void ids_json(const int *ids, int n, int is_list, char *out, size_t cap) {
  if (!is_list) {
    if (n) snprintf(out, cap, "%d", ids[0]);
    else snprintf(out, cap, "null");
    return;
  }
  if (!n) {
    snprintf(out, cap, "[]");
    return;
  }
  size_t k = (size_t)snprintf(out, cap, "[");
  for (int i = 0; i < n && k < cap; i++)
    k += (size_t)snprintf(out + k, cap - k, "%s\n    %d", i ? "," : "", ids[i]);
  if (k < cap) snprintf(out + k, cap - k, "\n  ]");
}

static void rope_json(const hf_config *c, char *out, size_t cap) {
  char f[40], lo[40], hi[40];
  py_float(c->rope_scaling.factor, f, sizeof f);
  py_float(c->rope_scaling.low_freq_factor, lo, sizeof lo);
  py_float(c->rope_scaling.high_freq_factor, hi, sizeof hi);
  if (c->rope_scaling.type == HF_ROPE_LINEAR)
    snprintf(out, cap, "{\n    \"factor\": %s,\n    \"rope_type\": \"linear\"\n  }", f);
  else if (c->rope_scaling.type == HF_ROPE_LLAMA3)
    snprintf(out, cap,
             "{\n    \"factor\": %s,\n    \"high_freq_factor\": %s,\n    \"low_freq_factor\": %s,"
             "\n    \"original_max_position_embeddings\": %d,\n    \"rope_type\": \"llama3\"\n  }",
             f, hi, lo, c->rope_scaling.original_max_position_embeddings);
  else
    snprintf(out, cap, "null");
}

ift_status hf_config_write(const char *path, const hf_config *c) {
  int mistral = strcmp(c->model_type, "mistral") == 0;
  IFT_REQUIRE(mistral || strcmp(c->model_type, "llama") == 0, IFT_ERR_ARG, NULL,
              "%s: model_type \"%s\"", path, c->model_type);
  kv_line l[32];
  int n = 0;
#define KV(k, ...) (l[n].key = (k), snprintf(l[n].val, sizeof l[n].val, __VA_ARGS__), n++)
#define KVF(k, x) (l[n].key = (k), py_float((x), l[n].val, sizeof l[n].val), n++)
  KV("architectures", "[\n    \"%s\"\n  ]", mistral ? "MistralForCausalLM" : "LlamaForCausalLM");
  KV("model_type", "\"%s\"", c->model_type);
  KV("vocab_size", "%d", c->vocab_size);
  KV("hidden_size", "%d", c->hidden_size);
  KV("intermediate_size", "%d", c->intermediate_size);
  KV("num_hidden_layers", "%d", c->num_hidden_layers);
  KV("num_attention_heads", "%d", c->num_attention_heads);
  KV("num_key_value_heads", "%d", c->num_key_value_heads);
  KV("head_dim", "%d", c->head_dim);
  KV("max_position_embeddings", "%d", c->max_position_embeddings);
  KV("hidden_act", "\"silu\"");
  KVF("rms_norm_eps", c->rms_norm_eps);
  KVF("rope_theta", c->rope_theta);
  KV("tie_word_embeddings", "%s", c->tie_word_embeddings ? "true" : "false");
  if (c->torch_dtype[0]) KV("torch_dtype", "\"%s\"", c->torch_dtype);
  else KV("torch_dtype", "null");
  KVF("attention_dropout", 0.0);
  KVF("initializer_range", 0.02);
  KV("use_cache", "true");
  l[n].key = "bos_token_id";
  ids_json(c->bos_token_id, c->n_bos, c->bos_is_list, l[n++].val, sizeof l[0].val);
  l[n].key = "eos_token_id";
  ids_json(c->eos_token_id, c->n_eos, c->eos_is_list, l[n++].val, sizeof l[0].val);
  /* MistralConfig has no biases, pretraining_tp or (before 4.4x) rope_scaling,
   * and always a sliding_window. */
  if (!mistral || c->rope_scaling.type != HF_ROPE_DEFAULT) {
    l[n].key = "rope_scaling";
    rope_json(c, l[n++].val, sizeof l[0].val);
  }
  if (mistral) {
    if (c->sliding_window) KV("sliding_window", "%d", c->sliding_window);
    else KV("sliding_window", "null");
  } else {
    KV("attention_bias", "false");
    KV("mlp_bias", "false");
    KV("pretraining_tp", "1");
  }
#undef KV
#undef KVF
  qsort(l, (size_t)n, sizeof *l, by_key);

  char tmp[4096];
  IFT_REQUIRE(snprintf(tmp, sizeof tmp, "%s.tmp", path) < (int)sizeof tmp, IFT_ERR_ARG, NULL,
              "path too long: %s", path);
  FILE *fp = fopen(tmp, "w");
  IFT_REQUIRE(fp, IFT_ERR_IO, "check that the output directory exists and is writable", "%s: %s",
              tmp, strerror(errno));
  int bad = fputs("{\n", fp) < 0;
  for (int i = 0; i < n; i++)
    bad |= fprintf(fp, "  \"%s\": %s%s\n", l[i].key, l[i].val, i + 1 < n ? "," : "") < 0;
  bad |= fputs("}\n", fp) < 0;
  bad |= fflush(fp) != 0 || core_fault("hf_config_write");
  int e = bad ? (errno ? errno : ENOSPC) : 0;
  if (fclose(fp) != 0 && !bad) bad = 1, e = errno;
  if (!bad && rename(tmp, path) != 0) bad = 1, e = errno;
  if (bad) unlink(tmp);
  IFT_REQUIRE(!bad, IFT_ERR_WRITE, "free disk space (or quota) and retry", "writing %s: %s", path,
              strerror(e));
  return IFT_OK;
}
