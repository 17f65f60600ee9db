#define _POSIX_C_SOURCE 200809L
/* iftrain prep: JSONL -> HDF5 with the byte-level tokenizer and the chat
 * template of data.h, SHA-256 (of the source here; the data set writer uses
 * the same code for the content hash), and validation of the text: strings
 * must be UTF-8 without NUL, because the byte tokenizer would otherwise
 * train the model on bytes no text contains. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/data.h"

/* ------------------------------------------------------------ minimal JSON */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jval {
  jtype t;
  char *key;  /* member name inside an object */
  char *s;    /* string (UTF-8, NUL-terminated; may contain NUL -> slen) */
  size_t slen;
  struct jval *child, *next;
} jval;

typedef struct {
  const char *p, *end;
  const char *err;
  const char *errat;  /* where the error is (NULL: at p) */
  char msg[128];      /* err when it needs a value (a byte, an escape) */
  int replace;        /* replace invalid text by U+FFFD instead of failing */
  long nrep;          /* replacements made on this line */
} jparser;

static void jfree(jval *v) {
  while (v) {
    jval *n = v->next;
    jfree(v->child);
    free(v->key);
    free(v->s);
    free(v);
    v = n;
  }
}

static void jws(jparser *j) {
  while (j->p < j->end && isspace((unsigned char)*j->p)) j->p++;
}

static int put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
  o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
  return 4;
}

static int hex4(const char *p, unsigned *v) {
  *v = 0;
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

/* Bad text inside a string at `at`: replaced by U+FFFD and counted under
 * --replace-invalid (returns 1, *q advanced), else the error `what` (0). */
static int bad_text(jparser *j, const char *at, char **q, const char *what) {
  if (j->replace) {
    memcpy(*q, REPLACEMENT, 3);
    *q += 3;
    j->nrep++;
    return 1;
  }
  snprintf(j->msg, sizeof j->msg, "%s", what);
  j->err = j->msg;
  j->errat = at;
  return 0;
}

static char *jstring(jparser *j, size_t *len) {
  if (j->p >= j->end || *j->p != '"') { j->err = "expected a string"; return NULL; }
  j->p++;
  /* room for every input byte becoming a 3-byte U+FFFD */
  char *o = malloc(3 * (size_t)(j->end - j->p) + 4), *q = o;
  if (!o) { j->err = "out of memory"; return NULL; }
  while (j->p < j->end && *j->p != '"') {
    const char *at = j->p;
    unsigned char c = (unsigned char)*j->p++;
    if (c == 0) {
      if (!bad_text(j, at, &q, "NUL byte in a string")) goto fail;
      continue;
    }
    if (c < 0x20) {
      j->err = "control character in string (escape it, e.g. \\n)";
      j->errat = at;
      goto fail;
    }
    if (c >= 0x80) {
      int bad = 0;
      const char *why;
      int k = utf8_seq((const unsigned char *)at, (const unsigned char *)j->end, &bad, &why);
      if (k) {
        memcpy(q, at, (size_t)k);
        q += k;
        j->p = at + k;
      } else {
        char what[96];
        snprintf(what, sizeof what, "invalid UTF-8 (%s) at byte 0x%02X", why, c);
        if (!bad_text(j, at, &q, what)) goto fail;
        j->p = at + bad;
      }
      continue;
    }
    if (c != '\\') { *q++ = (char)c; continue; }
    if (j->p >= j->end) break;
    char e = *j->p++;
    switch (e) {
    case '"': *q++ = '"'; break;
    case '\\': *q++ = '\\'; break;
    case '/': *q++ = '/'; break;
    case 'b': *q++ = '\b'; break;
    case 'f': *q++ = '\f'; break;
    case 'n': *q++ = '\n'; break;
    case 'r': *q++ = '\r'; break;
    case 't': *q++ = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (j->end - j->p < 4 || hex4(j->p, &cp)) { j->err = "bad \\u escape"; j->errat = at; goto fail; }
      j->p += 4;
      if (cp == 0) {
        if (!bad_text(j, at, &q, "NUL (\\u0000) in a string")) goto fail;
        break;
      }
      if (cp >= 0xD800 && cp < 0xE000) {
        /* UTF-16 surrogates: only a high one (D800-DBFF) directly followed
         * by an escaped low one (DC00-DFFF) is a character */
        if (cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' &&
            !hex4(j->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          j->p += 6;
        } else {
          char what[96];
          snprintf(what, sizeof what, "lone surrogate \\u%04X (%s)", cp,
                   cp < 0xDC00 ? "a high surrogate needs a \\uDC00-\\uDFFF escape right after it"
                               : "a low surrogate without a high one before it");
          if (!bad_text(j, at, &q, what)) goto fail;
          break;
        }
      }
      q += put_utf8(q, cp);
      break;
    }
    default: j->err = "bad escape in string"; j->errat = at; goto fail;
    }
  }
  if (j->p >= j->end) { j->err = "unterminated string"; goto fail; }
  j->p++;
  *q = 0;
  *len = (size_t)(q - o);
  return o;
fail:
  free(o);
  return NULL;
}

static jval *jvalue(jparser *j, int depth) {
  jws(j);
  if (j->p >= j->end) { j->err = "unexpected end of line"; return NULL; }
  if (depth > 32) { j->err = "nesting too deep"; return NULL; }
  jval *v = calloc(1, sizeof *v);
  if (!v) { j->err = "out of memory"; return NULL; }
  char c = *j->p;
  if (c == '"') {
    v->t = J_STR;
    if (!(v->s = jstring(j, &v->slen))) { free(v); return NULL; }
  } else if (c == '{' || c == '[') {
    v->t = c == '{' ? J_OBJ : J_ARR;
    char close = c == '{' ? '}' : ']';
    j->p++;
    jws(j);
    jval **tail = &v->child;
    if (j->p < j->end && *j->p == close) { j->p++; return v; }
    for (;;) {
      char *key = NULL;
      size_t kl;
      if (v->t == J_OBJ) {
        jws(j);
        if (!(key = jstring(j, &kl))) { jfree(v); return NULL; }
        jws(j);
        if (j->p >= j->end || *j->p != ':') { j->err = "expected ':'"; free(key); jfree(v); return NULL; }
        j->p++;
      }
      jval *e = jvalue(j, depth + 1);
      if (!e) { free(key); jfree(v); return NULL; }
      e->key = key;
      *tail = e;
      tail = &e->next;
      jws(j);
      if (j->p < j->end && *j->p == ',') { j->p++; continue; }
      if (j->p < j->end && *j->p == close) { j->p++; break; }
      j->err = v->t == J_OBJ ? "expected ',' or '}'" : "expected ',' or ']'";
      jfree(v);
      return NULL;
    }
  } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
    v->t = J_BOOL;
    j->p += *j->p == 't' ? 4 : 5;
  } else if (!strncmp(j->p, "null", 4)) {
    v->t = J_NULL;
    j->p += 4;
  } else if (c == '-' || isdigit((unsigned char)c)) {
    char *e;
    strtod(j->p, &e);
    if (e == j->p) { j->err = "bad number"; free(v); return NULL; }
    v->t = J_NUM;
    j->p = e;
  } else {
    j->err = "unexpected character";
    free(v);
    return NULL;
  }
  return v;
}

static const jval *jget(const jval *obj, const char *key) {
  for (const jval *c = obj->child; c; c = c->next)
    if (c->key && !strcmp(c->key, key)) return c;
  return NULL;
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
/* <bos> PROMPT <assistant> RESPONSE <eos> */
static int row_pair(row *r, const jval *prompt, const jval *resp) {
  r->n = 0;
  return row_push(r, TOK_BOS, 0) | row_text(r, prompt->s, prompt->slen, 0) |
         row_push(r, TOK_ASSISTANT, 0) | row_text(r, resp->s, resp->slen, 1) | row_push(r, TOK_EOS, 1);
}

static const char *row_messages(row *r, const jval *msgs) {
  r->n = 0;
  if (msgs->t != J_ARR || !msgs->child) return "\"messages\" must be a non-empty array";
  if (row_push(r, TOK_BOS, 0)) return "out of memory";
  int any_assistant = 0;
  for (const jval *m = msgs->child; m; m = m->next) {
    if (m->t != J_OBJ) return "each message must be an object";
    const jval *role = jget(m, "role"), *content = jget(m, "content");
    if (!role || role->t != J_STR || !content || content->t != J_STR)
      return "each message needs string \"role\" and \"content\"";
    int tok = !strcmp(role->s, "system") ? TOK_SYSTEM : !strcmp(role->s, "user") ? TOK_USER
              : !strcmp(role->s, "assistant") ? TOK_ASSISTANT : -1;
    if (tok < 0) return "role must be system, user or assistant";
    uint8_t mk = tok == TOK_ASSISTANT;
    any_assistant |= mk;
    if (row_push(r, tok, 0) || row_text(r, content->s, content->slen, mk)) return "out of memory";
  }
  if (!any_assistant) return "a conversation needs at least one assistant message";
  return row_push(r, TOK_EOS, 1) ? "out of memory" : NULL;
}

static int truncate_row(row *r, int max_len) {
  if (max_len > 0 && r->n > max_len) {
    r->n = max_len;
    return 1;
  }
  return 0;
}

/* Refuse an output that would destroy something: the input itself (compared
 * by device and inode, so another spelling of the path or a hard or symbolic
 * link is caught too; also as OUT.tmp, the file written first), or an
 * existing file that is not an iftrain data set (a JSONL, a checkpoint). */
static ift_status check_output(const char *in, const char *out) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  IFT_REQUIRE(!data_same_file(in, out) && !data_same_file(in, tmp), IFT_ERR_ARG,
              "write the data set to a new file, e.g. -o NAME.h5; the input was not changed",
              "the output '%s' is the input '%s' itself: preparing it in place would destroy it",
              out, in);
  IFT_REQUIRE(access(out, F_OK) != 0 || data_file_is_data_set(out), IFT_ERR_ARG,
              "choose another -o, or remove the file first if it should go",
              "the output '%s' exists and is not an iftrain data set: refusing to overwrite it",
              out);
  return IFT_OK;
}

ift_status data_prep_jsonl(const char *in, const char *out, data_prep_stats *st) {
  st->n_read = st->n_written = st->n_truncated = st->n_skipped = st->n_replaced = 0;
  IFT_TRY(check_output(in, out));
  FILE *f = fopen(in, "rb");
  IFT_REQUIRE(f, IFT_ERR_IO, "check the input path", "cannot open '%s': %s", in, strerror(errno));
  data_writer *w = NULL;
  int pairs = -1;
  row r = {0}, rc = {0}, rr = {0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long ln = 0, trainable = 0;
  core_sha256 *sh = NULL;
  ift_status status = core_sha256_begin(&sh);
  while ((len = getline(&line, &cap, f)) >= 0 && status == IFT_OK) {
    ln++;
    core_sha256_update(sh, line, (size_t)len);
    jparser j = {.p = line, .end = line + len, .replace = st->replace_invalid};
    /* a UTF-8 byte order mark (EF BB BF) may open the file; columns still
     * count it, as they are byte columns of the file's line */
    if (ln == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) j.p += 3;
    jws(&j);
    if (j.p == j.end) continue; /* blank line */
    st->n_read++;
    const char *err = NULL;
    long col = 0; /* byte column of a syntax or encoding error, 1-based */
    int encoding = 0; /* the error is bad UTF-8, a lone surrogate or a NUL */
    jval *v = jvalue(&j, 0);
    if (!v) {
      err = j.err;
      encoding = j.err == j.msg;
      col = (long)((j.errat ? j.errat : j.p) - line) + 1;
    } else {
      jws(&j);
      if (j.p != j.end) {
        err = *j.p ? "trailing characters after the JSON object" : "NUL byte outside a string";
        encoding = !*j.p;
        col = (long)(j.p - line) + 1;
      } else if (v->t != J_OBJ) {
        err = "each line must be a JSON object";
      }
    }
    int is_pair = 0;
    if (!err) {
      const jval *p = jget(v, "prompt"), *resp = jget(v, "response"), *ch = jget(v, "chosen"),
                 *rj = jget(v, "rejected"), *ms = jget(v, "messages");
      if (ms) {
        err = row_messages(&r, ms);
      } else if (p && ch && rj) {
        if (p->t != J_STR || ch->t != J_STR || rj->t != J_STR) err = "prompt, chosen and rejected must be strings";
        else {
          is_pair = 1;
          row_pair(&r, p, ch);
          row_pair(&rc, p, ch);
          row_pair(&rr, p, rj);
        }
      } else if (p && resp) {
        if (p->t != J_STR || resp->t != J_STR) err = "prompt and response must be strings";
        else row_pair(&r, p, resp);
      } else {
        err = "expected {\"prompt\",\"response\"}, {\"prompt\",\"chosen\",\"rejected\"} or {\"messages\":[...]}";
      }
    }
    if (!err && pairs >= 0 && pairs != is_pair)
      err = "preference lines (prompt/chosen/rejected) cannot be mixed with other lines in one file";
    jfree(v);
    if (err) {
      if (st->skip_bad) {
        st->n_skipped++;
        continue;
      }
      char where[32] = "";
      if (col) snprintf(where, sizeof where, ":%ld", col);
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "JSONL line",
                    encoding ? "fix the text (it must be valid UTF-8 without NUL), pass "
                               "--replace-invalid to replace it by U+FFFD, or --skip-bad to skip the line"
                             : "fix the line, or pass --skip-bad to skip malformed lines",
                    "%s:%ld%s: %s", in, ln, where, err);
      status = IFT_ERR_FORMAT;
      break;
    }
    if (pairs < 0) {
      pairs = is_pair;
      if ((status = data_writer_create(&w, out, TOK_VOCAB, pairs)) != IFT_OK) break;
    }
    int t = truncate_row(&r, st->max_len);
    if (is_pair) t |= truncate_row(&rc, st->max_len) | truncate_row(&rr, st->max_len);
    st->n_truncated += t;
    for (int k = 0; k < r.n; k++) trainable += r.mask[k];
    st->n_replaced += j.nrep;
    status = data_writer_add(w, r.tok, r.mask, r.n, rc.tok, rc.mask, rc.n, rr.tok, rr.mask, rr.n);
    st->n_written++;
  }
  fclose(f);
  free(line);
  free(r.tok); free(r.mask); free(rc.tok); free(rc.mask); free(rr.tok); free(rr.mask);
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
  char hex[65];
  core_sha256_end(sh, hex);
  if (status != IFT_OK) {
    data_writer_discard(w); /* nothing is written: the output stays as it was */
    return status;
  }
  data_writer_attr_str(w, "source", in);
  data_writer_attr_str(w, "sha256", hex); /* the source hash; the writer adds content_sha256 */
  data_writer_attr_int(w, "utf8_replaced", st->n_replaced);
  return data_writer_close(w);
}
