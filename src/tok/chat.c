/* chat — the chat templates of the supported model families, written out
 * in C from their Jinja sources (include/iftrain/chat.h).  Each renderer
 * follows its template statement by statement; Jinja's `trim` and
 * `.strip()` are Python's str.strip (Python's whitespace set: U+FEFF is not
 * whitespace). */
#include "config.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iftrain/chat.h"
#include "tok_int.h"

static const char *const NAMES[CHAT_KINDS] = {"llama3",  "llama3-instruct", "llama3.1", "chatml",
                                              "qwen3",   "mistral",         "llama2",   "mixtral"};

/* SHA-256 of each family's chat_template text as its model files carry it
 * (tests/tok/chat_templates.json names the sources). */
static const char *const HASHES[CHAT_KINDS] = {
    "b48c47f6443892716176eb200bf4ef108f64e06ca26ed0fa8ebc0a4b3992fcb2",
    "ba03a121d097859c7b5b9cd03af99aafe95275210d2876f642ad9929a150f122",
    "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788",
    "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5",
    "7e995b379ec01747807246483647cd99030abf331653f1119e16d7ac041a3495",
    "e8d5b5a546d3f19df16a5320c614fab05bdc4edd50e850f1afd947b503ea41cf",
    "796853172235ab3aaa4810013ddfe2eab481bda3306dad4f700c00d436eed596"};

const char *chat_kind_name(chat_kind k) { return k >= 0 && k < CHAT_KINDS ? NAMES[k] : "?"; }

int chat_kind_parse(const char *name, chat_kind *k) {
  for (int i = 0; i < CHAT_KINDS; i++)
    if (!strcmp(name, NAMES[i])) {
      *k = (chat_kind)i;
      return 0;
    }
  return -1;
}

ift_status chat_template_hash(const char *text, char out[65]) {
  return core_sha256_hex(text, strlen(text), out);
}

/* bos_token / eos_token: a string or an AddedToken object {"content": ...} */
static void token_string(const json_t *cfg, const char *key, char *out, size_t cap) {
  const json_t *v = json_object_get(cfg, key);
  if (json_is_object(v)) v = json_object_get(v, "content");
  snprintf(out, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

ift_status chat_from_config(const char *path, const char *force, chat_tmpl *t) {
  memset(t, 0, sizeof *t);
  char file[4200];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/tokenizer_config.json", path);
  else snprintf(file, sizeof file, "%s", path);
  json_error_t je;
  /* model_max_length is often 1e30 written as an integer: read numbers as reals */
  json_t *cfg = json_load_file(file, JSON_DECODE_INT_AS_REAL, &je);
  IFT_REQUIRE(cfg, stat(file, &sb) == 0 ? IFT_ERR_FORMAT : IFT_ERR_IO,
              "give the model directory holding tokenizer_config.json (or choose the format with --chat-template)",
              "%s: %s", file, je.text);
  token_string(cfg, "bos_token", t->bos, sizeof t->bos);
  token_string(cfg, "eos_token", t->eos, sizeof t->eos);
  const json_t *ct = json_object_get(cfg, "chat_template");
  if (json_is_array(ct)) { /* [{"name": "default", "template": ...}, ...] */
    size_t i;
    const json_t *v;
    const json_t *def = NULL;
    json_array_foreach(ct, i, v) if (!strcmp(json_string_value(json_object_get(v, "name")) ? json_string_value(json_object_get(v, "name")) : "", "default")) def = json_object_get(v, "template");
    ct = def;
  }
  ift_status st = IFT_OK;
  if (force) {
    IFT_REQUIRE_GOTO(st, out, !chat_kind_parse(force, &t->kind), IFT_ERR_CONFIG,
                     "choose llama3, llama3-instruct, llama3.1, chatml, qwen3, mistral, llama2 or mixtral",
                     "unknown chat template '%s'", force);
  } else {
    IFT_REQUIRE_GOTO(st, out, json_is_string(ct), IFT_ERR_CONFIG,
                     "choose the format with --chat-template=NAME (llama3, llama3-instruct, llama3.1, "
                     "chatml, qwen3, mistral, llama2, mixtral)",
                     "%s has no chat_template", file);
    char h[65];
    IFT_TRY_GOTO(st, out, chat_template_hash(json_string_value(ct), h));
    int k = -1;
    for (int i = 0; i < CHAT_KINDS; i++)
      if (!strcmp(h, HASHES[i])) k = i;
    if (k < 0) {
      const char *s = json_string_value(ct);
      const char *guess = strstr(s, "<|start_header_id|>") ? " (it looks like a Llama 3 template)"
                          : strstr(s, "<|im_start|>")      ? " (it looks like ChatML)"
                          : strstr(s, "[INST]")            ? " (it looks like an [INST] template)"
                                                           : "";
      IFT_FAIL_GOTO(st, out, IFT_ERR_CONFIG,
                    "if the model's format is one of these, choose it with --chat-template=NAME: "
                    "llama3, llama3-instruct, llama3.1, chatml, qwen3, mistral, llama2, mixtral "
                    "(check a rendering with iftrain prep --show)",
                    "%s: chat_template (sha256 %.16s...) is not one this build renders%s", file, h, guess);
    }
    t->kind = (chat_kind)k;
  }
out:
  json_decref(cfg);
  return st;
}

void chat_out_free(chat_out *o) {
  free(o->text);
  free(o->spans);
  memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------ rendering */

typedef struct {
  tbuf b;
  chat_out *o;
  int oom;
} rctx;

static void put(rctx *r, const char *s, size_t n) {
  if (!r->oom && tbuf_put(&r->b, s, n)) r->oom = 1;
}
static void puts_(rctx *r, const char *s) { put(r, s, strlen(s)); }

/* Python's str.isspace set */
static int py_space(int32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

/* str.strip / lstrip / rstrip: of whitespace (only_nl = 0) or of '\n'. */
static void strip(const char **s, size_t *n, int left, int right, int only_nl) {
  const char *p = *s;
  size_t len = *n;
  while (left && len) {
    int32_t c;
    int l = tok_utf8_next((const unsigned char *)p, len, &c);
    if (l < 0 || !(only_nl ? c == '\n' : py_space(c))) break;
    p += l;
    len -= (size_t)l;
  }
  while (right && len) {
    size_t q = len - 1;
    while (q > 0 && ((unsigned char)p[q] & 0xC0) == 0x80) q--;
    int32_t c;
    if (tok_utf8_next((const unsigned char *)p + q, len - q, &c) < 0 || !(only_nl ? c == '\n' : py_space(c))) break;
    len = q;
  }
  *s = p;
  *n = len;
}

static void add_span(rctx *r, chat_span sp) {
  chat_span *q = realloc(r->o->spans, sizeof *q * (size_t)(r->o->nspans + 1));
  if (!q) {
    r->oom = 1;
    return;
  }
  r->o->spans = q;
  r->o->spans[r->o->nspans++] = sp;
}

/* An assistant turn: its content, then the end-of-turn string. */
static void assistant(rctx *r, int msg, const char *c, size_t n, const char *eot) {
  chat_span sp = {.message = msg, .content_a = r->b.n};
  put(r, c, n);
  sp.content_b = sp.eot_a = r->b.n;
  puts_(r, eot);
  sp.eot_b = r->b.n;
  add_span(r, sp);
}

/* A leading system message: its content (NULL without) and the index of
 * the first other message. */
static int leading_system(const chat_msg *m, int n, const char **sys) {
  *sys = n && !strcmp(m[0].role, "system") ? m[0].content : NULL;
  return *sys ? 1 : 0;
}

static ift_status refuse(const char *msg) {
  IFT_FAIL(IFT_ERR_FORMAT, "fix the conversation's roles in the data (the model's template refuses it)", "%s",
           msg);
}

static int is(const chat_msg *m, const char *role) { return !strcmp(m->role, role); }

/* One Llama 3 turn: header with the role, the content trimmed, <|eot_id|>. */
static void llama3_turn(rctx *r, const chat_msg *m, int i) {
  puts_(r, "<|start_header_id|>");
  puts_(r, m[i].role);
  puts_(r, "<|end_header_id|>\n\n");
  const char *c = m[i].content;
  size_t l = strlen(c);
  strip(&c, &l, 1, 1, 0);
  if (is(&m[i], "assistant")) assistant(r, i, c, l, "<|eot_id|>");
  else {
    put(r, c, l);
    puts_(r, "<|eot_id|>");
  }
}

/* Llama 3 (base and Instruct): '<|start_header_id|>' + role +
 * '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>', BOS before the
 * first; the base config's closes with the assistant header always. */
static void r_llama3(rctx *r, const chat_tmpl *t, const chat_msg *m, int n, int gen, int always) {
  for (int i = 0; i < n; i++) {
    if (i == 0) puts_(r, t->bos);
    llama3_turn(r, m, i);
  }
  if (gen || always) puts_(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Llama 3.1 Instruct without tools: a system block with the knowledge and
 * today's dates (the template's defaults) and the system message. */
static void r_llama31(rctx *r, const chat_tmpl *t, const chat_msg *m, int n, int gen) {
  puts_(r, t->bos);
  int i0 = 0;
  const char *sys = "";
  size_t ls = 0;
  if (n && is(&m[0], "system")) {
    sys = m[0].content;
    ls = strlen(sys);
    strip(&sys, &ls, 1, 1, 0);
    i0 = 1;
  }
  puts_(r, "<|start_header_id|>system<|end_header_id|>\n\n");
  puts_(r, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
  put(r, sys, ls);
  puts_(r, "<|eot_id|>");
  for (int i = i0; i < n; i++) {
    llama3_turn(r, m, i);
  }
  if (gen) puts_(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* SmolLM2's ChatML: a default system prompt when the first message is not
 * one; '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'. */
static void r_chatml(rctx *r, const chat_msg *m, int n, int gen) {
  for (int i = 0; i < n; i++) {
    if (i == 0 && !is(&m[0], "system"))
      puts_(r, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n");
    puts_(r, "<|im_start|>");
    puts_(r, m[i].role);
    puts_(r, "\n");
    if (is(&m[i], "assistant")) assistant(r, i, m[i].content, strlen(m[i].content), "<|im_end|>");
    else {
      puts_(r, m[i].content);
      puts_(r, "<|im_end|>");
    }
    puts_(r, "\n");
  }
  if (gen) puts_(r, "<|im_start|>assistant\n");
}

static const char *find_last(const char *s, size_t n, const char *pat, size_t pl) {
  const char *last = NULL;
  for (size_t i = 0; i + pl <= n; i++)
    if (!memcmp(s + i, pat, pl)) last = s + i;
  return last;
}
static const char *find_first(const char *s, size_t n, const char *pat, size_t pl) {
  for (size_t i = 0; i + pl <= n; i++)
    if (!memcmp(s + i, pat, pl)) return s + i;
  return NULL;
}

/* Qwen3 without tools: ChatML; an assistant answer after the last user
 * query gets a <think> block (empty unless the content carries one). */
static void r_qwen3(rctx *r, const chat_msg *m, int n, int gen) {
  if (n && is(&m[0], "system")) {
    puts_(r, "<|im_start|>system\n");
    puts_(r, m[0].content);
    puts_(r, "<|im_end|>\n");
  }
  int last_query = n - 1, multi_step = 1;
  for (int i = n - 1; i >= 0; i--) {
    const char *c = m[i].content;
    const size_t l = strlen(c);
    const int tool_resp = l >= 15 && !strncmp(c, "<tool_response>", 15) && l >= 16 &&
                          !strcmp(c + l - 16, "</tool_response>");
    if (multi_step && is(&m[i], "user") && !tool_resp) {
      multi_step = 0;
      last_query = i;
    }
  }
  for (int i = 0; i < n; i++) {
    if (is(&m[i], "user") || (is(&m[i], "system") && i != 0)) {
      puts_(r, "<|im_start|>");
      puts_(r, m[i].role);
      puts_(r, "\n");
      puts_(r, m[i].content);
      puts_(r, "<|im_end|>\n");
    } else if (is(&m[i], "assistant")) {
      const char *all = m[i].content, *c = all;
      size_t la = strlen(all), lc = la;
      const char *rs = "";
      size_t lr = 0;
      const char *close = find_first(all, la, "</think>", 8);
      if (close) {
        /* content = split('</think>')[-1].lstrip('\n');
         * reasoning = split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        const char *lastc = find_last(all, la, "</think>", 8);
        c = lastc + 8;
        lc = la - (size_t)(c - all);
        strip(&c, &lc, 1, 0, 1);
        rs = all;
        lr = (size_t)(close - all);
        strip(&rs, &lr, 0, 1, 1);
        const char *open = find_last(rs, lr, "<think>", 7);
        if (open) {
          lr -= (size_t)(open + 7 - rs);
          rs = open + 7;
        }
        strip(&rs, &lr, 1, 0, 1);
      }
      puts_(r, "<|im_start|>assistant\n");
      if (i > last_query && (i == n - 1 || lr)) {
        strip(&rs, &lr, 1, 1, 1);
        puts_(r, "<think>\n");
        put(r, rs, lr);
        puts_(r, "\n</think>\n\n");
        strip(&c, &lc, 1, 0, 1);
      }
      assistant(r, i, c, lc, "<|im_end|>");
      puts_(r, "\n");
    }
  }
  if (gen) puts_(r, "<|im_start|>assistant\n");
}

/* Mistral-7B-Instruct: BOS, then '[INST] ' + user + ' [/INST]' and
 * assistant + eos + ' ', strictly alternating from a user turn. */
static ift_status r_mistral(rctx *r, const chat_tmpl *t, const chat_msg *m, int n) {
  puts_(r, t->bos);
  for (int i = 0; i < n; i++) {
    if (is(&m[i], "user") != (i % 2 == 0))
      return refuse("Conversation roles must alternate user/assistant/user/assistant/...");
    if (is(&m[i], "user")) {
      puts_(r, "[INST] ");
      puts_(r, m[i].content);
      puts_(r, " [/INST]");
    } else if (is(&m[i], "assistant")) {
      assistant(r, i, m[i].content, strlen(m[i].content), t->eos);
      puts_(r, " ");
    } else {
      return refuse("Only user and assistant roles are supported!");
    }
  }
  return IFT_OK;
}

/* Llama-2-chat: the system message inside the first user turn's
 * <<SYS>> block; each user turn BOS + '[INST] ' + strip + ' [/INST]', each
 * answer ' ' + strip + ' ' + eos. */
static ift_status r_llama2(rctx *r, const chat_tmpl *t, const chat_msg *m, int n) {
  const char *sys;
  const int i0 = leading_system(m, n, &sys);
  tbuf tmp = {0};
  for (int i = i0; i < n; i++) {
    const int k = i - i0;
    if (is(&m[i], "user") != (k % 2 == 0)) {
      tbuf_free(&tmp);
      return refuse("Conversation roles must alternate user/assistant/user/assistant/...");
    }
    tmp.n = 0;
    if (k == 0 && sys) {
      if (tbuf_put(&tmp, "<<SYS>>\n", 8) || tbuf_put(&tmp, sys, strlen(sys)) ||
          tbuf_put(&tmp, "\n<</SYS>>\n\n", 11))
        r->oom = 1;
    }
    if (tbuf_put(&tmp, m[i].content, strlen(m[i].content))) r->oom = 1;
    if (r->oom) break;
    const char *c = tmp.s;
    size_t l = tmp.n;
    strip(&c, &l, 1, 1, 0);
    if (is(&m[i], "user")) {
      puts_(r, t->bos);
      puts_(r, "[INST] ");
      put(r, c, l);
      puts_(r, " [/INST]");
    } else if (is(&m[i], "assistant")) {
      puts_(r, " ");
      /* the answer, then ' ' + eos: the end of turn is the eos */
      chat_span sp = {.message = i, .content_a = r->b.n};
      put(r, c, l);
      sp.content_b = r->b.n;
      puts_(r, " ");
      sp.eot_a = r->b.n;
      puts_(r, t->eos);
      sp.eot_b = r->b.n;
      add_span(r, sp);
    }
  }
  tbuf_free(&tmp);
  return IFT_OK;
}

/* Mixtral-Instruct: BOS, ' [INST] ' (+ system + '\n\n' in the first) +
 * user + ' [/INST]', ' ' + answer + eos. */
static ift_status r_mixtral(rctx *r, const chat_tmpl *t, const chat_msg *m, int n) {
  const char *sys;
  const int i0 = leading_system(m, n, &sys);
  puts_(r, t->bos);
  for (int i = i0; i < n; i++) {
    const int k = i - i0;
    if (is(&m[i], "user") != (k % 2 == 0))
      return refuse("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...");
    if (is(&m[i], "user")) {
      puts_(r, " [INST] ");
      if (k == 0 && sys) {
        puts_(r, sys);
        puts_(r, "\n\n");
      }
      puts_(r, m[i].content);
      puts_(r, " [/INST]");
    } else if (is(&m[i], "assistant")) {
      puts_(r, " ");
      assistant(r, i, m[i].content, strlen(m[i].content), t->eos);
    } else {
      return refuse("Only user and assistant roles are supported, with the exception of an initial optional system message!");
    }
  }
  return IFT_OK;
}

ift_status chat_render(const chat_tmpl *t, const chat_msg *m, int n, int gen, chat_out *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n; i++)
    IFT_REQUIRE(m[i].role && m[i].content && (is(&m[i], "system") || is(&m[i], "user") || is(&m[i], "assistant")),
                IFT_ERR_FORMAT, "roles are system, user and assistant",
                "message %d has role '%s'", i, m[i].role ? m[i].role : "(none)");
  rctx r = {.o = out};
  ift_status st = IFT_OK;
  switch (t->kind) {
  case CHAT_LLAMA3: r_llama3(&r, t, m, n, gen, 1); break;
  case CHAT_LLAMA3_INSTRUCT: r_llama3(&r, t, m, n, gen, 0); break;
  case CHAT_LLAMA3_1: r_llama31(&r, t, m, n, gen); break;
  case CHAT_CHATML: r_chatml(&r, m, n, gen); break;
  case CHAT_QWEN3: r_qwen3(&r, m, n, gen); break;
  case CHAT_MISTRAL: st = r_mistral(&r, t, m, n); break;
  case CHAT_LLAMA2: st = r_llama2(&r, t, m, n); break;
  case CHAT_MIXTRAL: st = r_mixtral(&r, t, m, n); break;
  default:
    IFT_FAIL_GOTO(st, fail, IFT_ERR_ARG, "report this as a bug", "unknown chat template kind %d", (int)t->kind);
  }
  if (st != IFT_OK) goto fail; /* a renderer's refusal, recorded */
  if (!r.oom && !r.b.s) r.oom = tbuf_put(&r.b, "", 0) != 0;
  IFT_REQUIRE_GOTO(st, fail, !r.oom, IFT_ERR_NOMEM, NULL, "rendering %d messages", n);
  out->text = r.b.s;
  out->len = r.b.n;
  return IFT_OK;
fail:
  tbuf_free(&r.b);
  chat_out_free(out);
  return st;
}

ift_status chat_encode(tok *t, const chat_out *r, tok_ids *ids, uint8_t **mask) {
  *mask = NULL;
  tok_offs of = {0};
  const size_t base = ids->n;
  IFT_TRY(tok_encode_offsets(t, r->text, r->len, 0, ids, &of));
  const size_t n = ids->n;
  uint8_t *m = calloc(n ? n : 1, 1);
  if (!m) {
    tok_offs_free(&of);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "a mask of %zu tokens", n);
  }
  for (int i = 0; i < r->nspans; i++) {
    const chat_span *s = &r->spans[i];
    const size_t a = s->content_a, b = s->eot_b > s->eot_a ? s->eot_b : s->content_b;
    if (b <= a) continue;
    /* transformers: char_to_token(start) .. char_to_token(end - 1), the
     * last character's token; no token at the start ends the marking */
    const long t0 = tok_offs_find(&of, a);
    if (t0 < 0) break;
    size_t x = b - 1;
    while (x > a && ((unsigned char)r->text[x] & 0xC0) == 0x80) x--;
    const long t1 = tok_offs_find(&of, x);
    const size_t end = t1 > 0 ? (size_t)t1 + 1 : of.n; /* `end_token + 1 if end_token else len` */
    for (size_t k = (size_t)t0; k < end; k++) m[base + k] = 1;
  }
  tok_offs_free(&of);
  *mask = m;
  return IFT_OK;
}
