#include "config.h"
/* iftrain prep: JSONL -> HDF5, with the byte-level tokenizer and chat
 * layout of data.h, or a Hugging Face tokenizer.json and the model's chat
 * template (tok.h, chat.h).  Lines are parsed by jansson after a check of
 * their text: strings must be UTF-8 without NUL, because the tokenizer
 * would otherwise train the model on bytes no text contains.
 *
 * The conversion of one line (prep_line) depends only on the line's bytes
 * and its number (line 1 may open with a byte order mark), so a driver can
 * run it over any part of the file; what spans lines (the file's kind:
 * preference pairs or not, the counts, the source hash) is kept by the
 * reader loop in data_prep_jsonl. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "iftrain/chat.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"
#include "iftrain/tok.h"

/* ------------------------------------------------------------ text checks */

typedef struct {
  char *b;
  size_t n, cap;
} buf;

static int buf_put(buf *b, const void *p, size_t k) {
  if (b->n + k + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + k + 1) c *= 2;
    char *q = realloc(b->b, c);
    if (!q) return -1;
    b->b = q;
    b->cap = c;
  }
  memcpy(b->b + b->n, p, k);
  b->n += k;
  b->b[b->n] = 0;
  return 0;
}

static int hex4(const char *p, const char *end, unsigned *v) {
  *v = 0;
  if (end - p < 4) return -1;
  for (int i = 0; i < 4; i++) {
    int c = p[i], d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    *v = *v * 16 + (unsigned)d;
  }
  return 0;
}

/* The three bytes of U+FFFD REPLACEMENT CHARACTER. */
static const char REPLACEMENT[3] = {'\xEF', '\xBF', '\xBD'};

/* A raw byte >= 0x80 at p starts a UTF-8 sequence: its length when it is
 * well formed (the ranges of Unicode Table 3-7, which exclude overlong forms,
 * encoded surrogates and code points past U+10FFFF), else 0 with *bad = the
 * length of its longest ill-formed prefix (>= 1: what one U+FFFD replaces,
 * Unicode's "maximal subpart") and *why the cause. */
static int utf8_seq(const unsigned char *p, const unsigned char *end, int *bad, const char **why) {
  const unsigned c = p[0];
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  int need;
  *why = "truncated sequence";
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0, *why = "overlong encoding";
    if (c == 0xED) hi = 0x9F, *why = "encoded surrogate (U+D800-U+DFFF)";
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90, *why = "overlong encoding";
    if (c == 0xF4) hi = 0x8F, *why = "code point past U+10FFFF";
  } else {
    *bad = 1;
    *why = c < 0xC0   ? "continuation byte without a lead byte"
           : c < 0xC2 ? "overlong encoding"
           : c < 0xF8 ? "code point past U+10FFFF"
                      : "a byte that never occurs in UTF-8";
    return 0;
  }
  for (int k = 1; k <= need; k++) {
    const int cont = p + k < end && p[k] >= 0x80 && p[k] <= 0xBF;
    if (!cont || (k == 1 && (p[k] < lo || p[k] > hi))) {
      /* a continuation byte outside the lead's range keeps the cause named
       * above; a missing one means the sequence was cut short */
      if (!cont) *why = "truncated sequence";
      *bad = k;
      return 0;
    }
  }
  return need + 1;
}

/* What the text check of a line found. */
typedef struct {
  long nfix;     /* bad text found inside strings (replaced under replace) */
  long first;    /* offset of the first problem that stops the line, -1: none */
  char why[160]; /* its cause */
} scan_res;

/* Walks the JSON text of a line as the lexer does (strings and escapes) and
 * copies it to o with every bad piece of string text rewritten: invalid
 * UTF-8 (one piece per maximal ill-formed subpart), a raw NUL, a lone
 * surrogate escape and \u0000.  replace = 1 writes U+FFFD for each (raw
 * bytes, or the escape \uFFFD), and only a NUL outside a string stops the
 * line; replace = 0 writes a placeholder of the same length (x bytes, or
 * \uFFFD), so jansson's positions in the copy are those of the line, and
 * every bad piece stops the line.  Everything else (syntax, control
 * characters, bad UTF-8 outside strings) is left to jansson. */
static int scan_text(const char *s, size_t n, int replace, buf *o, scan_res *r) {
  const char *p = s, *end = s + n;
  int in_str = 0;
  r->nfix = 0;
  r->first = -1;
  r->why[0] = 0;
  o->n = 0;
#define ISSUE(at, hard, ...)                                                   \
  do {                                                                         \
    if ((hard) && r->first < 0) {                                              \
      r->first = (long)((at) - s);                                             \
      snprintf(r->why, sizeof r->why, __VA_ARGS__);                            \
    }                                                                          \
  } while (0)
  while (p < end) {
    const char *at = p;
    const unsigned char c = (unsigned char)*p;
    if (!in_str) {
      if (c == 0) {
        ISSUE(at, 1, "NUL byte outside a string");
        if (buf_put(o, " ", 1)) return -1;
        p++;
        continue;
      }
      if (c == '"') in_str = 1;
      if (buf_put(o, p, 1)) return -1;
      p++;
      continue;
    }
    if (c == '"') {
      in_str = 0;
      if (buf_put(o, p++, 1)) return -1;
    } else if (c == 0) {
      r->nfix++;
      ISSUE(at, !replace, "NUL byte in a string");
      if (buf_put(o, replace ? REPLACEMENT : "x", replace ? 3 : 1)) return -1;
      p++;
    } else if (c >= 0x80) {
      int bad = 0;
      const char *why;
      const int k = utf8_seq((const unsigned char *)p, (const unsigned char *)end, &bad, &why);
      if (k) {
        if (buf_put(o, p, (size_t)k)) return -1;
        p += k;
      } else {
        r->nfix++;
        ISSUE(at, !replace, "invalid UTF-8 (%s) at byte 0x%02X", why, c);
        if (replace ? buf_put(o, REPLACEMENT, 3) : buf_put(o, "xxxx", (size_t)bad)) return -1;
        p += bad;
      }
    } else if (c == '\\' && p + 1 < end && p[1] == 'u') {
      unsigned cp, lo;
      if (hex4(p + 2, end, &cp)) { /* a bad escape: jansson says so */
        if (buf_put(o, p, 2)) return -1;
        p += 2;
        continue;
      }
      if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u' &&
          !hex4(p + 8, end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
        /* UTF-16 surrogates: only a high one directly followed by an escaped
         * low one is a character */
        if (buf_put(o, p, 12)) return -1;
        p += 12;
        continue;
      }
      if (cp == 0 || (cp >= 0xD800 && cp < 0xE000)) {
        r->nfix++;
        if (cp == 0) ISSUE(at, !replace, "NUL (\\u0000) in a string");
        else
          ISSUE(at, !replace, "lone surrogate \\u%04X (%s)", cp,
                cp < 0xDC00 ? "a high surrogate needs a \\uDC00-\\uDFFF escape right after it"
                            : "a low surrogate without a high one before it");
        if (buf_put(o, "\\uFFFD", 6)) return -1;
      } else if (buf_put(o, p, 6)) {
        return -1;
      }
      p += 6;
    } else if (c == '\\' && p + 1 < end) {
      if (buf_put(o, p, 2)) return -1;
      p += 2;
    } else {
      if (buf_put(o, p++, 1)) return -1;
    }
  }
#undef ISSUE
  return 0;
}

/* The 1-based byte column of a jansson error in a text whose positions are
 * those of the line: the start of the token it names ("near 'TOKEN'"), the
 * character after a string when the lexer stopped inside it. */
static long json_error_column(const json_error_t *e) {
  const long pos = e->position;
  if (strstr(e->text, "control character") || strstr(e->text, "unexpected newline")) return pos + 1;
  const char *near = strstr(e->text, " near '");
  const size_t tl = strlen(e->text);
  if (near && tl > 0 && e->text[tl - 1] == '\'') {
    const long len = (long)(e->text + tl - 1 - (near + 7));
    return pos - len + 1 > 0 ? pos - len + 1 : 1;
  }
  return pos > 0 ? pos : 1;
}

/* jansson's message in the words this command used before it. */
static const char *json_error_words(const json_error_t *e) {
  if (strstr(e->text, "end of file expected")) return "trailing characters after the JSON object";
  return e->text;
}

/* ------------------------------------------------------------ rows */

typedef struct {
  int *tok;
  uint8_t *mask;
  int n, cap;
} row;

static int row_push(row *r, int id, uint8_t m) {
  if (r->n == r->cap) {
    int c = r->cap ? 2 * r->cap : 256;
    int *t = realloc(r->tok, sizeof(int) * (size_t)c);
    uint8_t *k = t ? realloc(r->mask, (size_t)c) : NULL;
    if (t) r->tok = t;
    if (!k) return -1;
    r->mask = k;
    r->cap = c;
  }
  r->tok[r->n] = id;
  r->mask[r->n++] = m;
  return 0;
}
static int row_text(row *r, const char *s, size_t n, uint8_t m) {
  for (size_t i = 0; i < n; i++)
    if (row_push(r, (unsigned char)s[i], m)) return -1;
  return 0;
}
static void row_free(row *r) {
  free(r->tok);
  free(r->mask);
  memset(r, 0, sizeof *r);
}
static int truncate_row(row *r, int max_len) {
  if (max_len > 0 && r->n > max_len) {
    r->n = max_len;
    return 1;
  }
  return 0;
}

/* A message list of a line: every element an object with string role and
 * content.  NULL, or the cause. */
static const char *msg_list(const json_t *a, const char *key) {
  static char why[128];
  if (!json_is_array(a) || json_array_size(a) == 0) {
    snprintf(why, sizeof why, "\"%s\" must be a non-empty array of messages", key);
    return why;
  }
  size_t i;
  const json_t *m;
  json_array_foreach(a, i, m) {
    if (!json_is_object(m)) return "each message must be an object";
    if (!json_is_string(json_object_get(m, "role")) || !json_is_string(json_object_get(m, "content")))
      return "each message needs string \"role\" and \"content\"";
  }
  return NULL;
}

static int has_assistant(const json_t *a) {
  size_t i;
  const json_t *m;
  json_array_foreach(a, i, m) if (!strcmp(json_string_value(json_object_get(m, "role")), "assistant")) return 1;
  return 0;
}

/* ---- the byte tokenizer's layouts (data.h) */

/* <bos> PROMPT <assistant> RESPONSE <eos> */
static int bytes_pair(row *r, const json_t *prompt, const json_t *resp) {
  r->n = 0;
  return row_push(r, TOK_BOS, 0) | row_text(r, json_string_value(prompt), json_string_length(prompt), 0) |
         row_push(r, TOK_ASSISTANT, 0) | row_text(r, json_string_value(resp), json_string_length(resp), 1) |
         row_push(r, TOK_EOS, 1);
}

/* <bos> TEXT <eos>, loss on TEXT <eos> */
static int bytes_text(row *r, const json_t *text) {
  r->n = 0;
  return row_push(r, TOK_BOS, 0) | row_text(r, json_string_value(text), json_string_length(text), 1) |
         row_push(r, TOK_EOS, 1);
}

/* <bos> {<role> CONTENT}... <eos> over the messages of a then b (either may
 * be NULL); loss on the content of assistant messages of b and the <eos>. */
static int bytes_messages(row *r, const json_t *a, const json_t *b) {
  r->n = 0;
  int e = row_push(r, TOK_BOS, 0);
  for (int part = 0; part < 2; part++) {
    const json_t *l = part ? b : a;
    size_t i;
    const json_t *m;
    json_array_foreach(l, i, m) {
      const char *role = json_string_value(json_object_get(m, "role"));
      const json_t *ct = json_object_get(m, "content");
      const int id = !strcmp(role, "system") ? TOK_SYSTEM : !strcmp(role, "user") ? TOK_USER
                     : !strcmp(role, "assistant") ? TOK_ASSISTANT : -1;
      if (id < 0) return 1;
      e |= row_push(r, id, 0) | row_text(r, json_string_value(ct), json_string_length(ct), part && id == TOK_ASSISTANT);
    }
  }
  return e | row_push(r, TOK_EOS, 1) ? -1 : 0;
}

/* ------------------------------------------------------------ the converter */

typedef struct {
  const data_prep_stats *opt;
  tok *t;                /* NULL: bytes-v1 */
  char tmpl_dir[1100];   /* where tokenizer_config.json is ("" when nowhere) */
  int tmpl_tried;
  ift_status tmpl_st;
  chat_tmpl tmpl;
  int eos;               /* the model's EOS id, -1 when it has none */
  tok_ids ids;
  tok_offs offs;
  buf text, scan;
} prep_ctx;

/* What one line gave. */
typedef struct {
  int pairs;             /* a preference line */
  row r, rc, rr;         /* main rows; chosen and rejected when pairs */
  long nrep;             /* bad text replaced (replace_invalid) */
  int straddle;          /* a token spans the prompt/completion boundary */
  int templated;         /* rendered with the chat template */
  char err[600];         /* a bad line: its cause ... */
  long col;              /* ... and byte column (0: none) */
  int encoding;          /* ... which is bad text */
} prep_out;

static ift_status need_template(prep_ctx *c) {
  if (!c->tmpl_tried) {
    c->tmpl_tried = 1;
    if (!c->tmpl_dir[0]) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "chat template",
                    "give --tokenizer the model directory that holds tokenizer.json and tokenizer_config.json",
                    "conversational lines need the model's chat template, and %s has no "
                    "tokenizer_config.json beside it", c->opt->tokenizer);
      c->tmpl_st = IFT_ERR_CONFIG;
    } else {
      c->tmpl_st = chat_from_config(c->tmpl_dir, c->opt->chat_template, &c->tmpl);
    }
  }
  return c->tmpl_st;
}

/* The template's rendering of the messages of a then b (a may be NULL) and
 * its assistant-only mask, kept on the assistant turns of b.  IFT_OK with
 * o->err set for a conversation the template refuses. */
static ift_status hf_messages(prep_ctx *c, const json_t *a, const json_t *b, row *r, prep_out *o) {
  IFT_TRY(need_template(c));
  const size_t na = a ? json_array_size(a) : 0, nb = json_array_size(b);
  chat_msg *m = malloc((na + nb) * sizeof *m);
  if (!m) return IFT_ERR_NOMEM;
  for (size_t i = 0; i < na + nb; i++) {
    const json_t *e = i < na ? json_array_get(a, i) : json_array_get(b, i - na);
    m[i].role = json_string_value(json_object_get(e, "role"));
    m[i].content = json_string_value(json_object_get(e, "content"));
  }
  chat_out co;
  ift_error_quiet(1); /* a refusal is a bad line, reported with its line number */
  ift_status st = chat_render(&c->tmpl, m, (int)(na + nb), 0, &co);
  ift_error_quiet(0);
  free(m);
  if (st == IFT_ERR_FORMAT) {
    snprintf(o->err, sizeof o->err, "the chat template (%s) refuses the conversation: %s",
             chat_kind_name(c->tmpl.kind), ift_error_last());
    return IFT_OK;
  }
  IFT_TRY(st);
  o->templated = 1;
  /* the spans of a's messages are not trained on: chat_encode marks only
   * those from the first of b's on (spans are in message order) */
  chat_out cb = co;
  while (cb.nspans > 0 && cb.spans[0].message < (int)na) cb.spans++, cb.nspans--;
  uint8_t *mask = NULL;
  c->ids.n = 0;
  st = chat_encode(c->t, &cb, &c->ids, &mask);
  chat_out_free(&co);
  if (st != IFT_OK) {
    free(mask);
    return st;
  }
  r->n = 0;
  int e = 0;
  for (size_t i = 0; i < c->ids.n; i++) e |= row_push(r, c->ids.ids[i], mask[i]);
  free(mask);
  return e ? IFT_ERR_NOMEM : IFT_OK;
}

/* The ids of PROMPT + ANSWER as one text (add_special: the post-processor's
 * BOS) and the EOS; loss on the tokens that start at or after the end of
 * PROMPT (a token that starts in the prompt and ends in the answer is
 * prompt: o->straddle) and on the EOS.  With prompt NULL (language
 * modelling): loss on every token of the text and the EOS.  Tokens the
 * post-processor adds (empty byte range) are never trained on, except an
 * EOS it appends, which then stands for the one appended here. */
static ift_status hf_plain(prep_ctx *c, const json_t *prompt, const json_t *answer, row *r, prep_out *o) {
  const size_t pl = prompt ? json_string_length(prompt) : 0;
  c->text.n = 0;
  if ((prompt && buf_put(&c->text, json_string_value(prompt), pl)) ||
      buf_put(&c->text, json_string_value(answer), json_string_length(answer)))
    return IFT_ERR_NOMEM;
  c->ids.n = 0;
  c->offs.n = 0;
  ift_error_quiet(1);
  ift_status st = tok_encode_offsets(c->t, c->text.b, c->text.n, 1, &c->ids, &c->offs);
  ift_error_quiet(0);
  if (st == IFT_ERR_ARG) {
    snprintf(o->err, sizeof o->err, "the tokenizer cannot encode the text: %s", ift_error_last());
    return IFT_OK;
  }
  IFT_TRY(st);
  r->n = 0;
  int e = 0;
  for (size_t i = 0; i < c->ids.n; i++) {
    const size_t a = c->offs.o[2 * i], b = c->offs.o[2 * i + 1];
    if (a < pl && b > pl) o->straddle = 1;
    e |= row_push(r, c->ids.ids[i], b > a && a >= pl);
  }
  if (c->eos >= 0) {
    if (r->n > 0 && r->tok[r->n - 1] == c->eos) r->mask[r->n - 1] = 1;
    else e |= row_push(r, c->eos, 1);
  }
  return e ? IFT_ERR_NOMEM : IFT_OK;
}

/* One side of a line: PROMPT + ANSWER as strings (plain) or message lists
 * (conversational, ANSWER's assistant turns trained on); byte layouts
 * without a tokenizer. */
static ift_status side(prep_ctx *c, const json_t *prompt, const json_t *answer, const char *pk,
                       const char *ak, row *r, prep_out *o) {
  if (json_is_string(prompt) && json_is_string(answer)) {
    if (!c->t) return bytes_pair(r, prompt, answer) ? IFT_ERR_NOMEM : IFT_OK;
    return hf_plain(c, prompt, answer, r, o);
  }
  if (!json_is_array(prompt) || !json_is_array(answer)) {
    snprintf(o->err, sizeof o->err,
             "\"%s\" and \"%s\" must both be strings (plain text) or both lists of messages (conversational)", pk, ak);
    return IFT_OK;
  }
  const char *why = msg_list(prompt, pk);
  if (!why) why = msg_list(answer, ak);
  if (!why && !has_assistant(answer)) why = "the answer messages need at least one assistant message";
  if (why) {
    snprintf(o->err, sizeof o->err, "%s", why);
    return IFT_OK;
  }
  if (!c->t) {
    const int e = bytes_messages(r, prompt, answer);
    if (e > 0) snprintf(o->err, sizeof o->err, "role must be system, user or assistant");
    return e < 0 ? IFT_ERR_NOMEM : IFT_OK;
  }
  return hf_messages(c, prompt, answer, r, o);
}

static const char FORMATS[] =
    "expected {\"messages\":[...]}, {\"prompt\",\"completion\"}, {\"prompt\",\"response\"}, "
    "{\"prompt\",\"chosen\",\"rejected\"} or {\"text\"}";

/* The rows of object v (o->err set when the line is bad). */
static ift_status convert(prep_ctx *c, const json_t *v, prep_out *o) {
  const json_t *p = json_object_get(v, "prompt"), *resp = json_object_get(v, "response"),
               *comp = json_object_get(v, "completion"), *ch = json_object_get(v, "chosen"),
               *rj = json_object_get(v, "rejected"), *ms = json_object_get(v, "messages"),
               *tx = json_object_get(v, "text");
  if (ms) {
    const char *why = msg_list(ms, "messages");
    if (!why && !has_assistant(ms)) why = "a conversation needs at least one assistant message";
    if (why) {
      snprintf(o->err, sizeof o->err, "%s", why);
      return IFT_OK;
    }
    if (!c->t) {
      const int e = bytes_messages(&o->r, NULL, ms);
      if (e > 0) snprintf(o->err, sizeof o->err, "role must be system, user or assistant");
      return e < 0 ? IFT_ERR_NOMEM : IFT_OK;
    }
    return hf_messages(c, NULL, ms, &o->r, o);
  }
  if (ch || rj) {
    if (!ch || !rj) {
      snprintf(o->err, sizeof o->err, "a preference line needs both \"chosen\" and \"rejected\"");
      return IFT_OK;
    }
    if (!p) {
      snprintf(o->err, sizeof o->err,
               "{\"chosen\",\"rejected\"} without \"prompt\" (whole conversations, TRL's implicit prompt) "
               "is not supported: move the shared leading messages into \"prompt\" and keep only the "
               "answers in \"chosen\" and \"rejected\"");
      return IFT_OK;
    }
    o->pairs = 1;
    IFT_TRY(side(c, p, ch, "prompt", "chosen", &o->rc, o));
    if (!o->err[0]) IFT_TRY(side(c, p, rj, "prompt", "rejected", &o->rr, o));
    if (o->err[0]) return IFT_OK;
    o->r.n = 0;
    for (int k = 0; k < o->rc.n; k++)
      if (row_push(&o->r, o->rc.tok[k], o->rc.mask[k])) return IFT_ERR_NOMEM;
    return IFT_OK;
  }
  if (p && (resp || comp)) {
    if (resp && comp) {
      snprintf(o->err, sizeof o->err, "give one of \"completion\" and \"response\", not both");
      return IFT_OK;
    }
    return side(c, p, resp ? resp : comp, "prompt", resp ? "response" : "completion", &o->r, o);
  }
  if (tx && !p) {
    if (!json_is_string(tx)) {
      snprintf(o->err, sizeof o->err, "\"text\" must be a string");
      return IFT_OK;
    }
    if (!c->t) return bytes_text(&o->r, tx) ? IFT_ERR_NOMEM : IFT_OK;
    return hf_plain(c, NULL, tx, &o->r, o);
  }
  snprintf(o->err, sizeof o->err, "%s", FORMATS);
  return IFT_OK;
}

/* One line (LEN bytes, number LN) -> its rows in o, or o->err (a bad line,
 * with o->col and o->encoding) or blank (*blank = 1).  A status other than
 * IFT_OK stops the whole prep (out of memory, the chat template). */
static ift_status prep_line(prep_ctx *c, const char *line, size_t len, long ln, prep_out *o, int *blank) {
  o->pairs = o->straddle = o->templated = o->encoding = 0;
  o->err[0] = 0;
  o->col = 0;
  o->nrep = 0;
  o->r.n = o->rc.n = o->rr.n = 0;
  size_t skip = 0;
  /* a UTF-8 byte order mark (EF BB BF) may open the file; columns still
   * count it, as they are byte columns of the file's line */
  if (ln == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) skip = 3;
  const char *s = line + skip;
  const size_t n = len - skip;
  size_t k = 0;
  while (k < n && isspace((unsigned char)s[k])) k++;
  *blank = k == n;
  if (*blank) return IFT_OK;
  scan_res sr;
  if (scan_text(s, n, c->opt->replace_invalid, &c->scan, &sr)) return IFT_ERR_NOMEM;
  json_error_t je;
  /* the text as jansson reads it: the line, or its copy with bad text replaced */
  json_t *v = sr.first < 0 ? json_loadb(sr.nfix ? c->scan.b : s, sr.nfix ? c->scan.n : n, JSON_DECODE_ANY, &je)
                           : NULL;
  if (!v) {
    /* columns from a copy of the line's length (placeholders for bad text):
     * a syntax error before the first bad text is reported first */
    long col = 0;
    const char *what = NULL;
    if (sr.first < 0 && !sr.nfix) {
      col = json_error_column(&je);
      what = json_error_words(&je);
    } else {
      scan_res ph;
      if (scan_text(s, n, 0, &c->scan, &ph)) return IFT_ERR_NOMEM;
      json_t *pv = json_loadb(c->scan.b, c->scan.n, JSON_DECODE_ANY, &je);
      if (!pv && (sr.first < 0 || json_error_column(&je) <= sr.first)) {
        col = json_error_column(&je);
        /* the token jansson quotes may hold placeholders: leave it out */
        char *near = strstr(je.text, " near '");
        if (near) *near = 0;
        what = json_error_words(&je);
      }
      json_decref(pv);
      if (!what && sr.first >= 0) {
        col = sr.first + 1;
        what = sr.why;
        o->encoding = 1;
      }
      if (!what) { /* jansson refuses the replaced text but not the placeholders: cannot happen */
        col = 1;
        what = "malformed JSON";
      }
    }
    o->col = col + (long)skip;
    snprintf(o->err, sizeof o->err, "%s", what);
    return IFT_OK;
  }
  o->nrep = sr.nfix;
  ift_status st = IFT_OK;
  if (!json_is_object(v)) snprintf(o->err, sizeof o->err, "each line must be a JSON object");
  else st = convert(c, v, o);
  json_decref(v);
  return st;
}

ift_status data_tokenizer_special(const char *dir, tok *t, const char *key, int *id) {
  *id = -1;
  if (!dir[0]) return IFT_OK;
  char file[1200];
  snprintf(file, sizeof file, "%s/tokenizer_config.json", dir);
  json_error_t je;
  json_t *cfg = json_load_file(file, JSON_DECODE_INT_AS_REAL, &je);
  IFT_REQUIRE(cfg, IFT_ERR_FORMAT, "repair the file (it must be JSON)", "%s: %s", file, je.text);
  const json_t *e = json_object_get(cfg, key);
  if (json_is_object(e)) e = json_object_get(e, "content");
  ift_status st = IFT_OK;
  if (json_is_string(e) && (*id = tok_id(t, json_string_value(e))) < 0) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, key, "repair tokenizer_config.json",
                  "%s: %s '%s' is not a token of the tokenizer", file, key, json_string_value(e));
    st = IFT_ERR_FORMAT;
  }
  json_decref(cfg);
  return st;
}

ift_status data_tokenizer_eos(const char *dir, tok *t, int *eos) {
  return data_tokenizer_special(dir, t, "eos_token", eos);
}

/* ------------------------------------------------------------ the file */

/* Refuse an output that would destroy something: the input itself (compared
 * by device and inode, so another spelling of the path or a hard or symbolic
 * link is caught too; also as the file written first, OUT.tmp), or an
 * existing file that is not an iftrain data set (a
 * JSONL, a checkpoint). */
static ift_status check_output(const char *in, const char *out) {
  static const char *const SUFFIX[] = {"", ".tmp"};
  for (int i = 0; i < 2; i++) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s%s", out, SUFFIX[i]);
    IFT_REQUIRE(!data_same_file(in, tmp), IFT_ERR_ARG,
                "write the data set to a new file, e.g. -o NAME.h5; the input was not changed",
                "the output '%s' is the input '%s' itself: preparing it in place would destroy it",
                tmp, in);
  }
  IFT_REQUIRE(access(out, F_OK) != 0 || data_file_is_data_set(out), IFT_ERR_ARG,
              "choose another -o, or remove the file first if it should go",
              "the output '%s' exists and is not an iftrain data set: refusing to overwrite it",
              out);
  return IFT_OK;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The loaded tokenizer and where its tokenizer_config.json is. */
static ift_status ctx_open(prep_ctx *c, const data_prep_stats *st) {
  memset(c, 0, sizeof *c);
  c->opt = st;
  c->eos = -1;
  if (!st->tokenizer) {
    IFT_REQUIRE(!st->chat_template, IFT_ERR_ARG, "give --tokenizer HF_DIR with --chat-template",
                "--chat-template %s needs --tokenizer (the byte tokenizer has its own layout)", st->chat_template);
    return IFT_OK;
  }
  IFT_TRY(tok_load(&c->t, st->tokenizer));
  struct stat sb;
  char cfg[1200];
  if (stat(st->tokenizer, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(c->tmpl_dir, sizeof c->tmpl_dir, "%s", st->tokenizer);
  } else {
    char copy[1100];
    snprintf(copy, sizeof copy, "%s", st->tokenizer);
    snprintf(c->tmpl_dir, sizeof c->tmpl_dir, "%s", dirname(copy));
  }
  snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", c->tmpl_dir);
  if (access(cfg, F_OK) != 0) c->tmpl_dir[0] = 0;
  return data_tokenizer_eos(c->tmpl_dir, c->t, &c->eos);
}

static void ctx_close(prep_ctx *c) {
  if (c->t) tok_free(c->t);
  tok_ids_free(&c->ids);
  tok_offs_free(&c->offs);
  free(c->text.b);
  free(c->scan.b);
}

/* The first byte of the first line starting at or after `at` (a line starts
 * at 0 or after a '\n'). */
static ift_status line_start(FILE *f, const char *in, long long at, long long size, long long *out) {
  *out = at <= 0 ? 0 : size;
  if (at <= 0 || at >= size) return IFT_OK;
  IFT_REQUIRE(fseeko(f, (off_t)(at - 1), SEEK_SET) == 0, IFT_ERR_IO, "check the input file", "cannot seek in '%s': %s",
              in, strerror(errno));
  int ch;
  for (long long p = at - 1; (ch = getc(f)) != EOF; p++)
    if (ch == '\n') {
      *out = p + 1;
      break;
    }
  return IFT_OK;
}

/* '\n' in bytes [a, b) of f. */
static ift_status count_lines(FILE *f, const char *in, long long a, long long b, long *n) {
  *n = 0;
  IFT_REQUIRE(fseeko(f, (off_t)a, SEEK_SET) == 0, IFT_ERR_IO, "check the input file", "cannot seek in '%s': %s", in,
              strerror(errno));
  char buf[1 << 16];
  while (a < b) {
    const size_t want = b - a < (long long)sizeof buf ? (size_t)(b - a) : sizeof buf;
    const size_t got = fread(buf, 1, want, f);
    IFT_REQUIRE(got > 0, IFT_ERR_IO, "check the input file (did it change while being read?)",
                "cannot read '%s' at byte %lld", in, a);
    for (const char *p = buf, *e = buf + got; (p = memchr(p, '\n', (size_t)(e - p))); p++) (*n)++;
    a += (long long)got;
  }
  return IFT_OK;
}

/* SHA-256 of the whole file (the source hash). */
static ift_status hash_file(const char *in, char hex[65]) {
  FILE *f = fopen(in, "rb");
  IFT_REQUIRE(f, IFT_ERR_IO, "check the input path", "cannot open '%s': %s", in, strerror(errno));
  core_sha256 *h = NULL;
  ift_status st;
  IFT_TRY_GOTO(st, out, core_sha256_begin(&h));
  char buf[1 << 16];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) core_sha256_update(h, buf, got);
  core_sha256_end(h, hex);
  IFT_REQUIRE_GOTO(st, out, !ferror(f), IFT_ERR_IO, "check the input file", "reading '%s' failed", in);
out:
  fclose(f);
  return st;
}

/* The first bad line of a rank: reported by the rank holding the first one
 * in the file, after the ranks agreed (so one message, the serial one). */
typedef struct {
  long ln; /* 0: none */
  const char *hint;
  char msg[1400];
} bad_line;

/* Reduce a long over comm. */
static ift_status sum_long(long *v, int n, MPI_Comm comm) {
  IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_LONG, MPI_SUM, comm), "a peer rank failed");
  return IFT_OK;
}

ift_status data_prep_jsonl_comm(const char *in, const char *out, data_prep_stats *st, MPI_Comm comm) {
  int rank = 0, P = 1;
  IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  IFT_MPI_CHECK(MPI_Comm_size(comm, &P), NULL);
  st->n_read = st->n_written = st->n_truncated = st->n_skipped = st->n_replaced = 0;
  st->n_tokens = st->n_straddle = 0;
  st->bytes = 0;
  st->seconds = 0;
  st->used_template[0] = 0;
  ift_status status = rank == 0 ? check_output(in, out) : IFT_OK;
  IFT_TRY(dist_agree(status, comm));
  FILE *f = fopen(in, "rb");
  status = f ? IFT_OK : IFT_ERR_IO;
  if (!f) ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, in, "check the input path", "cannot open '%s': %s", in, strerror(errno));
  IFT_TRY(dist_agree(status, comm));
  prep_ctx c;
  status = ctx_open(&c, st);
  /* this rank's lines: those starting in [size r / P, size (r + 1) / P) */
  struct stat sb;
  const long long size = fstat(fileno(f), &sb) == 0 ? (long long)sb.st_size : 0;
  long long a = 0, b = size;
  long before = 0; /* lines before a */
  if (status == IFT_OK) status = line_start(f, in, size * rank / P, size, &a);
  if (status == IFT_OK) status = line_start(f, in, size * (rank + 1) / P, size, &b);
  if (status == IFT_OK && P > 1) status = count_lines(f, in, a, b, &before);
  if (status == IFT_OK && fseeko(f, (off_t)a, SEEK_SET) != 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, in, "check the input file", "cannot seek in '%s'", in);
    status = IFT_ERR_IO;
  }
  status = dist_agree(status, comm);
  if (status == IFT_OK && P > 1) {
    long n = before;
    before = 0;
    if (MPI_Exscan(&n, &before, 1, MPI_LONG, MPI_SUM, comm) != MPI_SUCCESS) status = IFT_ERR_MPI;
    if (rank == 0) before = 0; /* undefined on rank 0 */
  }
  if (status != IFT_OK) {
    ctx_close(&c);
    fclose(f);
    return status;
  }
  const double t0 = now_s();
  double last = t0;
  prep_out o;
  memset(&o, 0, sizeof o);
  bad_line bad = {0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long ln = before, trainable = 0, good_ln = 0;
  int templated = 0, have = 0; /* have: o holds this rank's first good line, not yet added */
  long long pos = a;
  int kind = -1; /* pairs of the file: of its first good line */
  data_writer *w = NULL;
  /* two phases: up to this rank's first good line, then (the file's kind
   * agreed and the writer created on every rank) the rest */
  for (int phase = 0; phase < 2 && status == IFT_OK; phase++) {
    if (phase == 1) {
      /* the kind of the file's first good line: of the lowest rank that has one */
      struct {
        long ln;
        int rank;
      } mine = {have ? good_ln : LONG_MAX, rank}, first;
      if (MPI_Allreduce(&mine, &first, 1, MPI_LONG_INT, MPI_MINLOC, comm) != MPI_SUCCESS) {
        status = IFT_ERR_MPI;
        break;
      }
      kind = have ? o.pairs : -1;
      if (MPI_Bcast(&kind, 1, MPI_INT, first.rank, comm) != MPI_SUCCESS) {
        status = IFT_ERR_MPI;
        break;
      }
      if (first.ln == LONG_MAX) break; /* no usable line anywhere */
      status = data_writer_create_comm(&w, out, c.t ? tok_vocab_size(c.t) : TOK_VOCAB, kind, comm);
      if (status != IFT_OK) break;
    }
    while (status == IFT_OK && !bad.ln) {
      int got;
      if (phase == 1 && have) { /* the line read in phase 0 */
        have = 0;
        got = 1;
      } else {
        got = 0;
        if (pos >= b || (len = getline(&line, &cap, f)) < 0) break;
        pos += len;
        ln++;
        st->bytes += len;
        if (st->progress && rank == 0 && (ln & 255) == 0) {
          const double t = now_s();
          if (t - last >= 2) {
            last = t;
            fprintf(stderr, "prep: %ld rows, %.0f rows/s, %.1f MB/s, %.0f%% of %s%s\n", st->n_written,
                    st->n_written / (t - t0), st->bytes / 1e6 / (t - t0),
                    b > a ? 100.0 * (double)(pos - a) / (double)(b - a) : 100.0, P > 1 ? "rank 0's share of " : "",
                    in);
          }
        }
        int blank;
        if ((status = prep_line(&c, line, (size_t)len, ln, &o, &blank)) != IFT_OK) break;
        if (blank) continue;
        st->n_read++;
        got = 1;
      }
      if (!o.err[0] && kind >= 0 && kind != o.pairs)
        snprintf(o.err, sizeof o.err,
                 "preference lines (prompt/chosen/rejected) cannot be mixed with other lines in one file");
      if (o.err[0]) {
        if (st->skip_bad) {
          st->n_skipped++;
          continue;
        }
        char where[32] = "";
        if (o.col) snprintf(where, sizeof where, ":%ld", o.col);
        bad.ln = ln;
        bad.hint = o.encoding ? "fix the text (it must be valid UTF-8 without NUL), pass "
                                "--replace-invalid to replace it by U+FFFD, or --skip-bad to skip the line"
                              : "fix the line, or pass --skip-bad to skip malformed lines";
        snprintf(bad.msg, sizeof bad.msg, "%s:%ld%s: %s", in, ln, where, o.err);
        break;
      }
      if (phase == 0) { /* keep it for phase 1 */
        have = got;
        good_ln = ln;
        break;
      }
      int t = truncate_row(&o.r, st->max_len);
      if (o.pairs) t |= truncate_row(&o.rc, st->max_len) | truncate_row(&o.rr, st->max_len);
      st->n_truncated += t;
      for (int k = 0; k < o.r.n; k++) trainable += o.r.mask[k];
      st->n_replaced += o.nrep;
      st->n_straddle += o.straddle;
      st->n_tokens += o.r.n;
      templated |= o.templated;
      status = data_writer_add(w, o.r.tok, o.r.mask, o.r.n, o.rc.tok, o.rc.mask, o.rc.n, o.rr.tok, o.rr.mask, o.rr.n);
      st->n_written++;
    }
    status = dist_agree(status, comm);
  }
  st->seconds = now_s() - t0;
  fclose(f);
  free(line);
  row_free(&o.r);
  row_free(&o.rc);
  row_free(&o.rr);
  /* the first bad line of the file: the lowest rank with one */
  if (status == IFT_OK) {
    struct {
      long ln;
      int rank;
    } mine = {bad.ln ? bad.ln : LONG_MAX, rank}, first;
    if (MPI_Allreduce(&mine, &first, 1, MPI_LONG_INT, MPI_MINLOC, comm) != MPI_SUCCESS) status = IFT_ERR_MPI;
    else if (first.ln != LONG_MAX) {
      if (rank == first.rank) ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "JSONL line", bad.hint, "%s", bad.msg);
      else ift_error_quiet_set(IFT_ERR_FORMAT, "%s: line %ld is malformed (rank %d reported it)", in, first.ln, first.rank);
      status = IFT_ERR_FORMAT;
    }
  }
  long sums[9] = {st->n_read, st->n_written, st->n_truncated, st->n_skipped, st->n_replaced,
                  st->n_tokens, st->n_straddle, trainable, templated};
  if (status == IFT_OK && P > 1 && (status = sum_long(sums, 9, comm)) == IFT_OK) {
    st->n_read = sums[0], st->n_written = sums[1], st->n_truncated = sums[2], st->n_skipped = sums[3];
    st->n_replaced = sums[4], st->n_tokens = sums[5], st->n_straddle = sums[6], trainable = sums[7];
    templated = sums[8] > 0;
    long long by = st->bytes;
    if (MPI_Allreduce(&by, &st->bytes, 1, MPI_LONG_LONG, MPI_SUM, comm) != MPI_SUCCESS) status = IFT_ERR_MPI;
  }
  if (status == IFT_OK && !w) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "input", "give a JSONL file with one example per line",
                  "%s has no usable examples", in);
    status = IFT_ERR_FORMAT;
  }
  if (status == IFT_OK && trainable == 0) {
    /* the loader would refuse it (data_open): say so now, with the likely cause */
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "loss mask",
                  "raise --max-len above the prompt lengths, or check the responses are not empty",
                  "%s: nothing to train on: no row keeps an answer token (%ld rows, %ld truncated at --max-len %d)",
                  in, st->n_written, st->n_truncated, st->max_len);
    status = IFT_ERR_FORMAT;
  }
  /* a rank whose lines needed no template has not read it: the
   * attributes must be the same on every rank */
  if (status == IFT_OK && c.t && templated) status = dist_agree(need_template(&c), comm);
  char hex[65] = "";
  if (status == IFT_OK) {
    status = rank == 0 ? hash_file(in, hex) : IFT_OK;
    status = dist_agree(status, comm);
    if (status == IFT_OK && P > 1 && MPI_Bcast(hex, 65, MPI_CHAR, 0, comm) != MPI_SUCCESS) status = IFT_ERR_MPI;
  }
  if (status != IFT_OK) {
    data_writer_discard(w); /* nothing is written: the output stays as it was */
    ctx_close(&c);
    return status;
  }
  data_writer_attr_str(w, "source", in);
  data_writer_attr_str(w, "sha256", hex); /* the source hash; the writer adds content_sha256 */
  data_writer_attr_int(w, "utf8_replaced", st->n_replaced);
  if (c.t) {
    char ident[80];
    snprintf(ident, sizeof ident, "hf:%s", tok_sha256(c.t));
    snprintf(st->used_template, sizeof st->used_template, "%s", templated ? chat_kind_name(c.tmpl.kind) : "none");
    data_writer_attr_str(w, "tokenizer", ident);
    data_writer_attr_str(w, "tokenizer_sha256", tok_sha256(c.t));
    data_writer_attr_str(w, "chat_template", st->used_template);
    data_writer_attr_str(w, "tokenizer_source", st->tokenizer);
  }
  ctx_close(&c);
  const double tw = now_s();
  status = data_writer_close(w);
  st->seconds += now_s() - tw;
  return status;
}

ift_status data_prep_jsonl(const char *in, const char *out, data_prep_stats *st) {
  return data_prep_jsonl_comm(in, out, st, MPI_COMM_SELF);
}
