/* tok — tokenizer.json: load, encode, decode (include/iftrain/tok.h). */
#include "config.h"
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "tok_int.h"

/* ------------------------------------------------------------ components */

typedef enum { NM_NFC, NM_NFKC, NM_NFD, NM_NFKD, NM_PREPEND, NM_REPLACE } nm_kind;
typedef struct {
  nm_kind k;
  char *a, *b;     /* Prepend: a; Replace: literal pattern a (NULL with re), content b */
  pcre2_code *re;
} nm_step;

/* SplitDelimiterBehavior */
typedef enum { SB_REMOVED, SB_ISOLATED, SB_PREV, SB_NEXT, SB_CONTIGUOUS } split_beh;
typedef enum { PT_BYTELEVEL, PT_SPLIT, PT_METASPACE, PT_DIGITS } pt_kind;
typedef enum { PS_ALWAYS, PS_FIRST, PS_NEVER } prepend_scheme;
typedef struct {
  pt_kind k;
  int add_prefix_space, use_regex;      /* ByteLevel */
  pcre2_code *re;                       /* Split (regex) */
  char *lit;                            /* Split (string) */
  split_beh beh;
  int invert;
  char repl[8];                         /* Metaspace replacement (UTF-8) */
  int32_t repl_cp;
  prepend_scheme scheme;
  int split;
  int individual;                       /* Digits */
} pt_step;

typedef enum { DC_BYTELEVEL, DC_BYTEFALLBACK, DC_FUSE, DC_STRIP, DC_REPLACE, DC_METASPACE } dc_kind;
typedef struct {
  dc_kind k;
  int32_t cp;            /* Strip content, Metaspace replacement */
  int start, stop;       /* Strip */
  char *lit, *content;   /* Replace: literal pattern (NULL with re) and content */
  pcre2_code *re;
  prepend_scheme scheme; /* Metaspace */
} dc_step;

typedef struct {
  char *content;
  size_t len;
  char *norm; /* content after the normalizer (normalized tokens) */
  size_t norm_len;
  int id, special, lstrip, rstrip, single_word, normalized;
} added_tok;

struct tok {
  tok_bpe bpe;
  added_tok *added;
  int nadded;
  unsigned char first_byte[2][256]; /* [normalized][b]: an added token starts with b */
  int *added_of_id; /* id -> index in added, -1 */
  nm_step *nm;
  int nnm;
  pt_step *pt;
  int npt;
  dc_step *dc;
  int ndc;
  int has_decoder;
  int *post; /* TemplateProcessing single: ids, -1 for the sequence */
  int npost, has_post;
  int post_trim, post_trim_aps; /* ByteLevel post-processor: trim_offsets, its add_prefix_space */
  int nvocab;
  char sha[65];
  pcre2_code *bl_re; /* ByteLevel's GPT-2 split */
  pcre2_match_data *md;
  pcre2_match_context *mc; /* the match limit of every regex match (find_matches) */
  char bl_char[256][3];
  unsigned char bl_len[256];
  int16_t bl_byte[512]; /* code point -> byte, -1 */
};

/* Return codes of the matching, normalizing, encoding and decoding steps:
 * 0, E_MEM (out of memory, reported at the top) or E_RE (a regex failed,
 * already reported by find_matches). */
enum { E_MEM = -1, E_RE = -2 };

/* ------------------------------------------------------------ load errors */

/* Errors follow core.h's convention (IFT_FAIL / IFT_TRY).  st records a
 * failure reported without leaving (a bad boolean in jbool, a refused regex
 * in compile_re; the first one wins), which the caller checks. */
typedef struct {
  const char *file;
  ift_status st;
} ldctx;

static const char HINT_BAD[] =
    "the file is not a tokenizer.json the Hugging Face tokenizers library writes: re-save it "
    "with tokenizer.save() or take the model's original file";
static const char HINT_UNSUP[] =
    "this build implements the components of Llama-family tokenizers (BPE; ByteLevel, Split, "
    "Metaspace, Digits; NFC/NFKC/NFD/NFKD, Prepend, Replace; TemplateProcessing; ByteLevel, "
    "ByteFallback, Fuse, Strip, Replace, Metaspace decoders)";

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
/* o[k] as a boolean (def when absent or null); another type is recorded in
 * x->st (the first error wins) and checked by the caller. */
static int jbool(ldctx *x, const json_t *o, const char *where, const char *k, int def) {
  const json_t *v = json_object_get(o, k);
  if (v && !json_is_boolean(v) && !json_is_null(v) && x->st == IFT_OK) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "tokenizer.json", HINT_BAD, "%s: %s: \"%s\" is not true or false",
                  x->file, where, k);
    x->st = IFT_ERR_FORMAT;
  }
  return json_is_boolean(v) ? json_is_true(v) : def;
}

/* The library compiles the file's regexes with Oniguruma (Ruby syntax).
 * PCRE2 reads the constructs of real tokenizers alike (checked against the
 * library: \p{..}, \s \d \w with Unicode, lookarounds, (?i), possessive and
 * atomic groups, ^ $ as line anchors with MULTILINE), but some read
 * otherwise: those are refused rather than matched differently.  NULL, or
 * the construct. */
static const char *dialect_trap(const char *p) {
  int cls = 0; /* depth of [...] (Ruby nests them) */
  for (size_t i = 0; p[i]; i++) {
    const char c = p[i];
    if (c == '\\') {
      const char e = p[i + 1];
      if (e == 'h' || e == 'H') return "\\h or \\H (a hex digit in Ruby syntax, horizontal space in PCRE2)";
      if (e == 'Q' || e == 'E') return "\\Q...\\E (no quoting in Ruby syntax)";
      if (e) i++;
      continue;
    }
    if (cls) {
      if (c == '[' && p[i + 1] == ':') { /* [:alpha:] */
        const char *q = strstr(p + i + 2, ":]");
        if (q) i = (size_t)(q - p) + 1;
      } else if (c == '[') {
        return "a [ inside a character class (a nested class in Ruby syntax, a literal [ in PCRE2)";
      } else if (c == '&' && p[i + 1] == '&') {
        return "&& in a character class (an intersection in Ruby syntax, literal in PCRE2)";
      } else if (c == ']') {
        cls--;
      }
      continue;
    }
    if (c == '[') {
      cls = 1;
      if (p[i + 1] == '^') i++;
      if (p[i + 1] == ']') i++; /* a leading ] is literal */
    } else if (c == '(' && p[i + 1] == '*') {
      return "(*VERB) (PCRE2 only)";
    } else if (c == '(' && p[i + 1] == '?') {
      for (size_t j = i + 2; (p[j] >= 'a' && p[j] <= 'z') || (p[j] >= 'A' && p[j] <= 'Z') || p[j] == '-'; j++)
        if (p[j] == 'm' || p[j] == 's') return "the option m or s (m is dot-all in Ruby syntax, s does not exist)";
    }
  }
  return NULL;
}

static pcre2_code *compile_re(ldctx *x, const char *pat, const char *where) {
  int err;
  PCRE2_SIZE off;
  const char *trap = dialect_trap(pat);
  if (trap) {
    ift_error_set(IFT_ERR_UNIMPL, __FILE__, __LINE__, "tokenizer.json", HINT_UNSUP,
                  "%s: %s: regex /%.200s/ uses %s, which the tokenizers library's regex dialect (Oniguruma, Ruby "
                  "syntax) reads otherwise than PCRE2", x->file, where, pat, trap);
    x->st = IFT_ERR_UNIMPL;
    return NULL;
  }
  /* \C (one byte) could split a character: never.  ^ and $ are line anchors
   * in the library's regex dialect (Oniguruma, Ruby syntax): MULTILINE. */
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C | PCRE2_MULTILINE, &err, &off, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    ift_error_set(IFT_ERR_UNIMPL, __FILE__, __LINE__, "tokenizer.json", HINT_UNSUP,
                  "%s: %s: regex /%.200s/ does not compile (PCRE2: %s at offset %zu)", x->file,
                  where, pat, (const char *)msg, (size_t)off);
    x->st = IFT_ERR_UNIMPL;
    return NULL;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* faster when available; optional */
  return re;
}

/* {"String": s} or {"Regex": r} of Split and Replace */
static ift_status load_pattern(ldctx *x, const json_t *p, const char *where, char **lit,
                               pcre2_code **re) {
  const char *s = jstr(p, "String"), *r = jstr(p, "Regex");
  if (s) {
    if (!*s) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: %s: empty pattern", x->file, where);
    *lit = strdup(s);
    if (!*lit) IFT_FAIL(IFT_ERR_NOMEM, NULL, "pattern");
    return IFT_OK;
  }
  if (r) {
    *re = compile_re(x, r, where);
    return *re ? IFT_OK : x->st;
  }
  IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: %s: pattern is neither {\"String\": ...} nor {\"Regex\": ...}",
        x->file, where);
}

static ift_status load_scheme(ldctx *x, const json_t *o, const char *where, prepend_scheme *ps) {
  const char *s = jstr(o, "prepend_scheme");
  if (s) {
    if (!strcmp(s, "first")) *ps = PS_FIRST;
    else if (!strcmp(s, "never")) *ps = PS_NEVER;
    else if (!strcmp(s, "always")) *ps = PS_ALWAYS;
    else IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: %s: unknown prepend_scheme %.40s (always, first, never)", x->file, where, s);
    return IFT_OK;
  }
  *ps = jbool(x, o, where, "add_prefix_space", 1) ? PS_ALWAYS : PS_NEVER; /* older files */
  return x->st;
}

static ift_status load_replacement(ldctx *x, const json_t *o, const char *where, int32_t *cp,
                                   char *utf8) {
  const char *r = jstr(o, "replacement");
  int32_t c;
  int l = r ? tok_utf8_next((const unsigned char *)r, strlen(r), &c) : -1;
  if (l < 0 || r[l]) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: %s: replacement must be one character", x->file, where);
  *cp = c;
  if (utf8) memcpy(utf8, r, (size_t)l + 1);
  return IFT_OK;
}

/* ---- normalizer */

static ift_status load_nm(tok *t, ldctx *x, const json_t *n) {
  if (json_is_null(n) || !n) return IFT_OK;
  const char *ty = jstr(n, "type");
  if (!ty) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: normalizer without a type", x->file);
  if (!strcmp(ty, "Sequence")) {
    const json_t *a = json_object_get(n, "normalizers");
    if (!json_is_array(a)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: normalizer Sequence without normalizers", x->file);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) IFT_TRY(load_nm(t, x, v));
    return IFT_OK;
  }
  nm_step s = {0};
  if (!strcmp(ty, "NFC")) s.k = NM_NFC;
  else if (!strcmp(ty, "NFKC")) s.k = NM_NFKC;
  else if (!strcmp(ty, "NFD")) s.k = NM_NFD;
  else if (!strcmp(ty, "NFKD")) s.k = NM_NFKD;
  else if (!strcmp(ty, "Prepend")) {
    s.k = NM_PREPEND;
    const char *p = jstr(n, "prepend");
    if (!p) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: normalizer Prepend without prepend", x->file);
    if (!(s.a = strdup(p))) IFT_FAIL(IFT_ERR_NOMEM, NULL, "normalizer");
  } else if (!strcmp(ty, "Replace")) {
    s.k = NM_REPLACE;
    const char *c = jstr(n, "content");
    if (!c) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: normalizer Replace without content", x->file);
    IFT_TRY(load_pattern(x, json_object_get(n, "pattern"), "normalizer Replace", &s.a, &s.re));
    if (!(s.b = strdup(c))) IFT_FAIL(IFT_ERR_NOMEM, NULL, "normalizer");
  } else {
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: normalizer %s is not supported", x->file, ty);
  }
  nm_step *q = realloc(t->nm, sizeof *q * (size_t)(t->nnm + 1));
  if (!q) IFT_FAIL(IFT_ERR_NOMEM, NULL, "normalizer");
  t->nm = q;
  t->nm[t->nnm++] = s;
  return IFT_OK;
}

/* ---- pre-tokenizer */

static ift_status load_pt(tok *t, ldctx *x, const json_t *n) {
  if (json_is_null(n) || !n) return IFT_OK;
  const char *ty = jstr(n, "type");
  if (!ty) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: pre_tokenizer without a type", x->file);
  if (!strcmp(ty, "Sequence")) {
    const json_t *a = json_object_get(n, "pretokenizers");
    if (!json_is_array(a)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: pre_tokenizer Sequence without pretokenizers", x->file);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) IFT_TRY(load_pt(t, x, v));
    return IFT_OK;
  }
  pt_step s = {0};
  if (!strcmp(ty, "ByteLevel")) {
    s.k = PT_BYTELEVEL;
    s.add_prefix_space = jbool(x, n, "pre_tokenizer ByteLevel", "add_prefix_space", 1);
    s.use_regex = jbool(x, n, "pre_tokenizer ByteLevel", "use_regex", 1);
  } else if (!strcmp(ty, "Split")) {
    s.k = PT_SPLIT;
    const char *b = jstr(n, "behavior");
    if (!b) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: pre_tokenizer Split without behavior", x->file);
    if (!strcmp(b, "Removed")) s.beh = SB_REMOVED;
    else if (!strcmp(b, "Isolated")) s.beh = SB_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) s.beh = SB_PREV;
    else if (!strcmp(b, "MergedWithNext")) s.beh = SB_NEXT;
    else if (!strcmp(b, "Contiguous")) s.beh = SB_CONTIGUOUS;
    else IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: pre_tokenizer Split: unknown behavior %s", x->file, b);
    s.invert = jbool(x, n, "pre_tokenizer Split", "invert", 0);
    if (x->st) return x->st;
    IFT_TRY(load_pattern(x, json_object_get(n, "pattern"), "pre_tokenizer Split", &s.lit, &s.re));
  } else if (!strcmp(ty, "Metaspace")) {
    s.k = PT_METASPACE;
    IFT_TRY(load_replacement(x, n, "pre_tokenizer Metaspace", &s.repl_cp, s.repl));
    IFT_TRY(load_scheme(x, n, "pre_tokenizer Metaspace", &s.scheme));
    s.split = jbool(x, n, "pre_tokenizer Metaspace", "split", 1);
  } else if (!strcmp(ty, "Digits")) {
    s.k = PT_DIGITS;
    s.individual = jbool(x, n, "pre_tokenizer Digits", "individual_digits", 0);
  } else {
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: pre_tokenizer %s is not supported", x->file, ty);
  }
  if (x->st) return x->st; /* a bad boolean; nothing allocated */
  pt_step *q = realloc(t->pt, sizeof *q * (size_t)(t->npt + 1));
  if (!q) IFT_FAIL(IFT_ERR_NOMEM, NULL, "pre_tokenizer");
  t->pt = q;
  t->pt[t->npt++] = s;
  return IFT_OK;
}

/* ---- decoder */

static ift_status load_dc(tok *t, ldctx *x, const json_t *n) {
  if (json_is_null(n) || !n) return IFT_OK;
  t->has_decoder = 1;
  const char *ty = jstr(n, "type");
  if (!ty) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: decoder without a type", x->file);
  if (!strcmp(ty, "Sequence")) {
    const json_t *a = json_object_get(n, "decoders");
    if (!json_is_array(a)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: decoder Sequence without decoders", x->file);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) IFT_TRY(load_dc(t, x, v));
    return IFT_OK;
  }
  dc_step s = {0};
  if (!strcmp(ty, "ByteLevel")) s.k = DC_BYTELEVEL;
  else if (!strcmp(ty, "ByteFallback")) s.k = DC_BYTEFALLBACK;
  else if (!strcmp(ty, "Fuse")) s.k = DC_FUSE;
  else if (!strcmp(ty, "Strip")) {
    s.k = DC_STRIP;
    const char *c = jstr(n, "content");
    int l = c ? tok_utf8_next((const unsigned char *)c, strlen(c), &s.cp) : -1;
    const json_t *a = json_object_get(n, "start"), *b = json_object_get(n, "stop");
    if (l < 0 || c[l] || !json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
        json_integer_value(b) < 0 || json_integer_value(a) > 1 << 20 || json_integer_value(b) > 1 << 20)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: decoder Strip needs one content character and start/stop counts", x->file);
    s.start = (int)json_integer_value(a);
    s.stop = (int)json_integer_value(b);
  } else if (!strcmp(ty, "Replace")) {
    s.k = DC_REPLACE;
    const char *c = jstr(n, "content");
    if (!c) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: decoder Replace without content", x->file);
    IFT_TRY(load_pattern(x, json_object_get(n, "pattern"), "decoder Replace", &s.lit, &s.re));
    if (!(s.content = strdup(c))) IFT_FAIL(IFT_ERR_NOMEM, NULL, "decoder");
  } else if (!strcmp(ty, "Metaspace")) {
    s.k = DC_METASPACE;
    IFT_TRY(load_replacement(x, n, "decoder Metaspace", &s.cp, NULL));
    IFT_TRY(load_scheme(x, n, "decoder Metaspace", &s.scheme));
  } else {
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: decoder %s is not supported", x->file, ty);
  }
  dc_step *q = realloc(t->dc, sizeof *q * (size_t)(t->ndc + 1));
  if (!q) IFT_FAIL(IFT_ERR_NOMEM, NULL, "decoder");
  t->dc = q;
  t->dc[t->ndc++] = s;
  return IFT_OK;
}

/* ---- post-processor: the single-sequence template */

static ift_status load_post(tok *t, ldctx *x, const json_t *n) {
  if (json_is_null(n) || !n) return IFT_OK;
  const char *ty = jstr(n, "type");
  if (!ty) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: post_processor without a type", x->file);
  if (!strcmp(ty, "Sequence")) {
    const json_t *a = json_object_get(n, "processors");
    if (!json_is_array(a)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: post_processor Sequence without processors", x->file);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) IFT_TRY(load_post(t, x, v));
    return IFT_OK;
  }
  if (!strcmp(ty, "ByteLevel")) { /* offsets only: ids unchanged */
    t->post_trim = jbool(x, n, "post_processor ByteLevel", "trim_offsets", 1);
    t->post_trim_aps = jbool(x, n, "post_processor ByteLevel", "add_prefix_space", 1);
    return x->st;
  }
  if (strcmp(ty, "TemplateProcessing"))
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: post_processor %s is not supported", x->file, ty);
  if (t->has_post)
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: two TemplateProcessing post-processors", x->file);
  const json_t *single = json_object_get(n, "single"), *sp = json_object_get(n, "special_tokens");
  if (!json_is_array(single))
    IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: TemplateProcessing without a single template", x->file);
  size_t i;
  const json_t *v;
  json_array_foreach(single, i, v) {
    const json_t *seq = json_object_get(v, "Sequence"), *st = json_object_get(v, "SpecialToken");
    if (seq) {
      const char *id = jstr(seq, "id");
      if (!id || strcmp(id, "A"))
        IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: TemplateProcessing single names sequence %s", x->file, id ? id : "?");
      int *q = realloc(t->post, sizeof *q * (size_t)(t->npost + 1));
      if (!q) IFT_FAIL(IFT_ERR_NOMEM, NULL, "template");
      t->post = q;
      t->post[t->npost++] = -1;
      continue;
    }
    const char *name = st ? jstr(st, "id") : NULL;
    const json_t *ids = name ? json_object_get(json_object_get(sp, name), "ids") : NULL;
    if (!json_is_array(ids))
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: TemplateProcessing: special token %s has no ids in special_tokens",
            x->file, name ? name : "?");
    size_t j;
    const json_t *w;
    json_array_foreach(ids, j, w) {
      if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 1 << 30)
        IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: TemplateProcessing: bad id of %s", x->file, name);
      int *q = realloc(t->post, sizeof *q * (size_t)(t->npost + 1));
      if (!q) IFT_FAIL(IFT_ERR_NOMEM, NULL, "template");
      t->post = q;
      t->post[t->npost++] = (int)json_integer_value(w);
    }
  }
  t->has_post = 1;
  return IFT_OK;
}

/* ---- model */

static ift_status load_model(tok *t, ldctx *x, const json_t *m) {
  tok_bpe *b = &t->bpe;
  const char *ty = jstr(m, "type");
  if (!json_is_object(m)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: no model", x->file);
  if (ty && strcmp(ty, "BPE"))
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: model %s is not supported (BPE only)", x->file, ty);
  const json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
  if (!json_is_object(vocab) || !json_is_array(merges))
    IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model has no vocab object and merges list", x->file);
  const json_t *d = json_object_get(m, "dropout");
  if (d && !json_is_null(d) && json_number_value(d) != 0.0)
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: BPE dropout %g is not supported", x->file, json_number_value(d));
  const char *pre = jstr(m, "continuing_subword_prefix"), *suf = jstr(m, "end_of_word_suffix");
  if ((pre && *pre) || (suf && *suf))
    IFT_FAIL(IFT_ERR_UNIMPL, HINT_UNSUP, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported",
          x->file);
  b->fuse_unk = jbool(x, m, "model", "fuse_unk", 0);
  b->byte_fallback = jbool(x, m, "model", "byte_fallback", 0);
  b->ignore_merges = jbool(x, m, "model", "ignore_merges", 0);
  if (x->st) return x->st;
  const char *k;
  const json_t *v;
  int maxid = -1;
  json_object_foreach((json_t *)vocab, k, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= 1 << 24)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model.vocab[\"%.40s\"] is not an id in [0, 2^24)", x->file, k);
    const int id = (int)json_integer_value(v);
    if (smap_put(&b->vocab, k, strlen(k), id)) IFT_FAIL(IFT_ERR_NOMEM, NULL, "vocab");
    if (id > maxid) maxid = id;
  }
  /* id -> token; two tokens with one id would decode differently from run
   * to run in the library (its reverse map is built from a hash map) */
  t->nvocab = b->nvocab = maxid + 1;
  b->vocab_r = calloc((size_t)b->nvocab + 1, sizeof(char *));
  if (!b->vocab_r) IFT_FAIL(IFT_ERR_NOMEM, NULL, "reverse vocabulary");
  for (size_t j = 0; j < b->vocab.cap; j++) {
    if (!b->vocab.keys[j]) continue;
    const int id = b->vocab.vals[j];
    if (b->vocab_r[id])
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model.vocab gives id %d to both \"%.40s\" and \"%.40s\"", x->file, id,
            b->vocab_r[id], b->vocab.keys[j]);
    if (!(b->vocab_r[id] = strdup(b->vocab.keys[j]))) IFT_FAIL(IFT_ERR_NOMEM, NULL, "reverse vocabulary");
  }
  const char *unk = jstr(m, "unk_token");
  b->unk = -1;
  if (unk && !smap_get(&b->vocab, unk, strlen(unk), &b->unk))
    IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: unk_token %s is not in the vocabulary", x->file, unk);
  for (int i = 0; i < 256; i++) {
    char nm[8];
    snprintf(nm, sizeof nm, "<0x%02X>", i);
    if (!smap_get(&b->vocab, nm, 6, &b->byte_id[i])) b->byte_id[i] = -1;
  }
  size_t i;
  json_array_foreach(merges, i, v) {
    const char *a = NULL, *c = NULL;
    size_t la = 0, lc = 0;
    if (json_is_string(v)) { /* "a b" */
      a = json_string_value(v);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' '))
        IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model.merges[%zu] \"%.40s\" is not two tokens", x->file, i, a);
      la = (size_t)(sp - a);
      c = sp + 1;
      lc = strlen(c);
    } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
               json_is_string(json_array_get(v, 1))) { /* ["a", "b"] */
      a = json_string_value(json_array_get(v, 0));
      c = json_string_value(json_array_get(v, 1));
      la = strlen(a);
      lc = strlen(c);
    } else {
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", x->file, i);
    }
    int ia, ic, im;
    char *ac = malloc(la + lc + 1);
    if (!ac) IFT_FAIL(IFT_ERR_NOMEM, NULL, "merges");
    memcpy(ac, a, la);
    memcpy(ac + la, c, lc);
    ac[la + lc] = 0;
    const int ok = smap_get(&b->vocab, a, la, &ia) && smap_get(&b->vocab, c, lc, &ic) &&
                   smap_get(&b->vocab, ac, la + lc, &im);
    free(ac);
    if (!ok)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: model.merges[%zu]: a token of the merge or its result is not in the vocabulary",
            x->file, i);
    if (pmap_put(&b->merges, ia, ic, (int)i, im)) IFT_FAIL(IFT_ERR_NOMEM, NULL, "merges");
  }
  return IFT_OK;
}

/* ---- added tokens */

static int normalize(const tok *t, const char *s, size_t n, const tspan *org, tbuf *out, tspans *oorg);

/* The library does not take the ids of added_tokens from the file: it
 * numbers each token (in file order) with its id in model.vocab, else with
 * the next id after the vocabulary's entries and the added tokens before it,
 * and skips empty and repeated contents.  A file whose ids differ from that
 * numbering (which the library never writes) is refused: its ids would not
 * be the library's. */
static ift_status load_added_list(tok *t, ldctx *x, const json_t *a, smap *seen) {
  const tok_bpe *b = &t->bpe;
  const int vlen = (int)b->vocab.n;
  int maxadded = -1;
  size_t i;
  const json_t *v;
  json_array_foreach(a, i, v) {
    const char *c = jstr(v, "content");
    const json_t *jid = json_object_get(v, "id");
    if (!c) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens[%zu] has no \"content\" string", x->file, i);
    if (!*c)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens[%zu] has an empty content (the tokenizers library ignores it)",
            x->file, i);
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) >= 1 << 24)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens[%zu] \"%.40s\" has no id in [0, 2^24)", x->file, i, c);
    const size_t len = strlen(c);
    const int id = (int)json_integer_value(jid);
    int j, vid;
    if (smap_get(seen, c, len, &j))
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens[%zu] repeats \"%.40s\" of added_tokens[%d]", x->file, i, c, j);
    if (smap_put(seen, c, len, (int)i)) IFT_FAIL(IFT_ERR_NOMEM, NULL, "added tokens");
    const int in_vocab = smap_get(&b->vocab, c, len, &vid);
    const int expect = in_vocab ? vid : maxadded >= vlen ? maxadded + 1 : vlen;
    if (id != expect)
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD,
            "%s: added_tokens[%zu] \"%.40s\" has id %d but the tokenizers library gives it id %d (%s)", x->file, i, c,
            id, expect, in_vocab ? "its id in model.vocab" : "the next id after model.vocab and the added tokens before it");
    if (!in_vocab && id < b->nvocab && b->vocab_r[id])
      IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens[%zu] \"%.40s\" has id %d, the id of model.vocab's \"%.40s\"",
            x->file, i, c, id, b->vocab_r[id]);
    if (id > maxadded) maxadded = id;
    char where[40];
    snprintf(where, sizeof where, "added_tokens[%zu]", i);
    added_tok *k = &t->added[t->nadded++];
    k->content = strdup(c);
    if (!k->content) IFT_FAIL(IFT_ERR_NOMEM, NULL, "added tokens");
    k->len = len;
    k->id = id;
    k->special = jbool(x, v, where, "special", 0);
    k->lstrip = jbool(x, v, where, "lstrip", 0);
    k->rstrip = jbool(x, v, where, "rstrip", 0);
    k->single_word = jbool(x, v, where, "single_word", 0);
    k->normalized = jbool(x, v, where, "normalized", !k->special);
    if (x->st) return x->st;
    if (k->id + 1 > t->nvocab) t->nvocab = k->id + 1;
  }
  return IFT_OK;
}

static ift_status load_added(tok *t, ldctx *x, const json_t *a) {
  if (!a || json_is_null(a)) return IFT_OK;
  if (!json_is_array(a)) IFT_FAIL(IFT_ERR_FORMAT, HINT_BAD, "%s: added_tokens is not a list", x->file);
  t->added = calloc(json_array_size(a) + 1, sizeof *t->added);
  if (!t->added) IFT_FAIL(IFT_ERR_NOMEM, NULL, "added tokens");
  smap seen = {0};
  const ift_status st = load_added_list(t, x, a, &seen);
  smap_free(&seen);
  return st;
}

static ift_status finish_added(tok *t, ldctx *x) {
  t->added_of_id = malloc(sizeof(int) * ((size_t)t->nvocab + 1));
  if (!t->added_of_id) IFT_FAIL(IFT_ERR_NOMEM, NULL, "added tokens");
  for (int i = 0; i < t->nvocab; i++) t->added_of_id[i] = -1;
  for (int i = 0; i < t->nadded; i++) {
    added_tok *k = &t->added[i];
    t->added_of_id[k->id] = i;
    t->first_byte[0][(unsigned char)k->content[0]] |= !k->normalized;
    if (k->normalized) { /* matched in normalized text: in its normalized form */
      tbuf b = {0};
      const int rc = normalize(t, k->content, k->len, NULL, &b, NULL);
      if (rc == E_RE) return ift_error_last_status(); /* reported */
      if (rc) IFT_FAIL(IFT_ERR_NOMEM, NULL, "%s: normalizing added token %s", x->file, k->content);
      k->norm = b.s ? b.s : strdup("");
      k->norm_len = b.n;
      if (!k->norm) IFT_FAIL(IFT_ERR_NOMEM, NULL, "added tokens");
      if (k->norm_len) t->first_byte[1][(unsigned char)k->norm[0]] = 1;
    }
  }
  return IFT_OK;
}

static void bytelevel_tables(tok *t) {
  int bs[256], n = 0, isin[256] = {0};
  for (int b = '!'; b <= '~'; b++) bs[n++] = b;
  for (int b = 0xA1; b <= 0xAC; b++) bs[n++] = b;
  for (int b = 0xAE; b <= 0xFF; b++) bs[n++] = b;
  int32_t cs[256];
  for (int i = 0; i < n; i++) {
    cs[i] = bs[i];
    isin[bs[i]] = 1;
  }
  int extra = 0;
  for (int b = 0; b < 256; b++)
    if (!isin[b]) {
      bs[n] = b;
      cs[n++] = 256 + extra++;
    }
  for (int i = 0; i < 512; i++) t->bl_byte[i] = -1;
  for (int i = 0; i < 256; i++) {
    t->bl_len[bs[i]] = (unsigned char)tok_utf8_put(cs[i], t->bl_char[bs[i]]);
    t->bl_byte[cs[i]] = (int16_t)bs[i];
  }
}

ift_status tok_load(tok **out, const char *path) {
  *out = NULL;
  char file[4200];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/tokenizer.json", path);
  else snprintf(file, sizeof file, "%s", path);
  ldctx x = {file, IFT_OK};
  char sha[65];
  IFT_TRY(core_sha256_file(file, sha));
  /* read whole, then parse from memory: json_load_file reads a character
   * at a time (a third of the load time of a 9 MB file) */
  FILE *fp = fopen(file, "rb");
  IFT_REQUIRE(fp, IFT_ERR_IO, "check the path", "cannot open '%s': %s", file, strerror(errno));
  tbuf raw = {0};
  char chunk[1 << 16];
  size_t got;
  int rd = 0;
  while (!rd && (got = fread(chunk, 1, sizeof chunk, fp)) > 0) rd = tbuf_put(&raw, chunk, got);
  const int ioerr = ferror(fp);
  fclose(fp);
  if (rd || ioerr) {
    tbuf_free(&raw);
    IFT_REQUIRE(0, rd ? IFT_ERR_NOMEM : IFT_ERR_IO, "check the file", "reading '%s' failed", file);
  }
  json_error_t je;
  json_t *root = json_loadb(raw.s ? raw.s : "", raw.n, 0, &je);
  tbuf_free(&raw);
  IFT_REQUIRE(root, IFT_ERR_FORMAT, HINT_BAD, "%s: line %d column %d: %s", file, je.line, je.column, je.text);
  tok *t = calloc(1, sizeof *t);
  if (!t) {
    json_decref(root);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "tokenizer");
  }
  memcpy(t->sha, sha, sizeof sha);
  bytelevel_tables(t);
  ift_status st = IFT_OK;
  {
    /* first: finish_added normalizes the added tokens, maybe with a regex */
    int err;
    PCRE2_SIZE off;
    static const char gpt2[] =
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    t->bl_re = pcre2_compile((PCRE2_SPTR)gpt2, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (t->bl_re) pcre2_jit_compile(t->bl_re, PCRE2_JIT_COMPLETE);
    t->md = pcre2_match_data_create(16, NULL);
    t->mc = pcre2_match_context_create(NULL);
    /* the interpreter's backtracking memory (the JIT has its own stack) */
    if (t->mc) pcre2_set_heap_limit(t->mc, 256 * 1024); /* KiB */
    IFT_REQUIRE_GOTO(st, done, t->bl_re && t->md && t->mc, IFT_ERR_NOMEM, NULL, "ByteLevel regex");
  }
  IFT_REQUIRE_GOTO(st, done, json_is_object(root), IFT_ERR_FORMAT, HINT_BAD, "%s: not a JSON object", file);
  const json_t *tr = json_object_get(root, "truncation");
  IFT_REQUIRE_GOTO(st, done, !tr || json_is_null(tr), IFT_ERR_UNIMPL,
                   "set \"truncation\": null in the file (iftrain truncates with prep --max-len)",
                   "%s: truncation is set; iftrain does not truncate inside the tokenizer", file);
  IFT_TRY_GOTO(st, done, load_model(t, &x, json_object_get(root, "model")));
  IFT_TRY_GOTO(st, done, load_nm(t, &x, json_object_get(root, "normalizer")));
  IFT_TRY_GOTO(st, done, load_pt(t, &x, json_object_get(root, "pre_tokenizer")));
  IFT_TRY_GOTO(st, done, load_post(t, &x, json_object_get(root, "post_processor")));
  IFT_TRY_GOTO(st, done, load_dc(t, &x, json_object_get(root, "decoder")));
  IFT_TRY_GOTO(st, done, load_added(t, &x, json_object_get(root, "added_tokens")));
  IFT_TRY_GOTO(st, done, finish_added(t, &x));
  /* every id encode gives is decodable: the template's too */
  for (int i = 0; i < t->npost; i++)
    if (t->post[i] >= 0 && !tok_token(t, t->post[i]))
      IFT_FAIL_GOTO(st, done, IFT_ERR_FORMAT, HINT_BAD,
                    "%s: post_processor TemplateProcessing: id %d is not in the vocabulary (size %d)", file, t->post[i],
                    t->nvocab);
done:
  json_decref(root);
  if (st) {
    tok_free(t);
    return st;
  }
  *out = t;
  return IFT_OK;
}

void tok_free(tok *t) {
  if (!t) return;
  tok_bpe_free(&t->bpe);
  for (int i = 0; i < t->nadded; i++) {
    free(t->added[i].content);
    free(t->added[i].norm);
  }
  free(t->added);
  free(t->added_of_id);
  for (int i = 0; i < t->nnm; i++) {
    free(t->nm[i].a);
    free(t->nm[i].b);
    pcre2_code_free(t->nm[i].re);
  }
  free(t->nm);
  for (int i = 0; i < t->npt; i++) {
    pcre2_code_free(t->pt[i].re);
    free(t->pt[i].lit);
  }
  free(t->pt);
  for (int i = 0; i < t->ndc; i++) {
    pcre2_code_free(t->dc[i].re);
    free(t->dc[i].lit);
    free(t->dc[i].content);
  }
  free(t->dc);
  free(t->post);
  pcre2_code_free(t->bl_re);
  pcre2_match_data_free(t->md);
  pcre2_match_context_free(t->mc);
  free(t);
}

int tok_vocab_size(const tok *t) { return t->nvocab; }
const char *tok_sha256(const tok *t) { return t->sha; }

int tok_id(const tok *t, const char *s) {
  const size_t n = strlen(s);
  for (int i = 0; i < t->nadded; i++)
    if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
  int id;
  return smap_get(&t->bpe.vocab, s, n, &id) ? id : -1;
}

const char *tok_token(const tok *t, int id) {
  if (id < 0 || id >= t->nvocab) return NULL;
  if (t->added_of_id[id] >= 0) return t->added[t->added_of_id[id]].content;
  return id < t->bpe.nvocab ? t->bpe.vocab_r[id] : NULL;
}

int tok_is_special(const tok *t, int id) {
  return id >= 0 && id < t->nvocab && t->added_of_id[id] >= 0 && t->added[t->added_of_id[id]].special;
}

/* ------------------------------------------------------------ matching */

/* Every match of RE (or of the literal LIT) in s[0..n), as the library's
 * find_matches: (start, end, is_match) ranges covering s, in order. */
typedef struct {
  size_t a, b;
  int m;
} range;
typedef struct {
  range *r;
  size_t n, cap;
} ranges;

static int ranges_add(ranges *l, size_t a, size_t b, int m) {
  if (l->n == l->cap) {
    size_t c = l->cap ? 2 * l->cap : 64;
    range *q = realloc(l->r, c * sizeof *q);
    if (!q) return -1;
    l->r = q;
    l->cap = c;
  }
  l->r[l->n++] = (range){a, b, m};
  return 0;
}

/* PCRE2's match limit (backtracking steps from one start position): the
 * library's default plus two per byte of the subject.  The real split
 * patterns take at most about one step per byte (a long whitespace run under
 * \s*[\r\n]+); a catastrophically backtracking pattern stops at the limit
 * with an error instead of running for hours, and the piece is never split
 * silently wrong. */
#define RE_LIMIT_BASE 10000000u
static uint32_t re_limit(size_t n) {
  const uint64_t l = RE_LIMIT_BASE + 2 * (uint64_t)n;
  return l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
}

static int find_matches(const tok *t, const pcre2_code *re, const char *lit, const char *where, const char *s,
                        size_t n, ranges *out) {
  out->n = 0;
  if (!n) return ranges_add(out, 0, 0, 0) ? E_MEM : 0;
  size_t prev = 0, at = 0, nmatch = 0;
  const size_t ll = lit ? strlen(lit) : 0;
  if (re) pcre2_set_match_limit(t->mc, re_limit(n));
  /* PCRE2 checks the UTF-8 of the subject from the start offset to its end
   * on every call: once is enough (quadratic time on a long text otherwise;
   * every later start offset is a character boundary: no \C) */
  uint32_t opt = 0;
  while (at <= n) {
    size_t ms, me;
    if (lit) {
      const char *f = NULL;
      for (size_t i = at; i + ll <= n; i++)
        if (!memcmp(s + i, lit, ll)) {
          f = s + i;
          break;
        }
      if (!f) break;
      ms = (size_t)(f - s);
      me = ms + ll;
    } else {
      int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, opt, t->md, t->mc);
      /* JIT's stack is small: the interpreter, with its heap, takes over */
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, opt | PCRE2_NO_JIT, t->md, t->mc);
      opt = PCRE2_NO_UTF_CHECK;
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        ift_error_set(IFT_ERR_ARG, __FILE__, __LINE__, "pcre2",
                      "a regex that backtracks this much is not one of a real tokenizer: check the file's patterns",
                      "tokenizer.json %s: the regex failed at byte %zu of a %zu-byte piece of text (PCRE2: %s; "
                      "match limit %u)", where, at, n, (const char *)msg, (unsigned)re_limit(n));
        return E_RE;
      }
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
      ms = ov[0];
      me = ov[1];
    }
    /* the library's regex iterator (onig's find_iter) skips an empty match
     * at the end of the previous match */
    const int skip = me == ms && me == prev && nmatch;
    if (!skip) {
      if (prev != ms && ranges_add(out, prev, ms, 0)) return E_MEM;
      if (ranges_add(out, ms, me, 1)) return E_MEM;
      prev = me;
      nmatch++;
    }
    if (me == ms) { /* an empty match: step over one character */
      int32_t cp;
      int l = me < n ? tok_utf8_next((const unsigned char *)s + me, n - me, &cp) : 1;
      at = me + (size_t)(l > 0 ? l : 1);
    } else {
      at = me;
    }
  }
  if (prev != n && ranges_add(out, prev, n, 0)) return E_MEM;
  return 0;
}

/* Split s by the ranges with the delimiter behaviour (NormalizedString::split). */
static int split_ranges(ranges *r, split_beh beh, const char *s, const tspan *org, int first, tpieces *out) {
  /* merge according to behaviour: kept ranges are written to r in place */
  size_t k = 0;
  int prevm = 0;
  if (beh == SB_NEXT) { /* folded from the right */
    range *tmp = malloc(sizeof(range) * (r->n ? r->n : 1));
    if (!tmp) return -1;
    size_t m = 0;
    for (size_t i = r->n; i-- > 0;) {
      range x = r->r[i];
      if (x.m && !prevm && m) tmp[m - 1].a = x.a;
      else tmp[m++] = (range){x.a, x.b, 0};
      prevm = x.m;
    }
    for (size_t i = 0; i < m; i++) r->r[i] = tmp[m - 1 - i];
    k = m;
    free(tmp);
  } else {
    for (size_t i = 0; i < r->n; i++) {
      range x = r->r[i];
      switch (beh) {
      case SB_ISOLATED: r->r[k++] = (range){x.a, x.b, 0}; break;
      case SB_REMOVED: r->r[k++] = x; break;
      case SB_CONTIGUOUS:
        if (x.m == prevm && k) r->r[k - 1].b = x.b;
        else r->r[k++] = (range){x.a, x.b, 0};
        break;
      case SB_PREV:
        if (x.m && !prevm && k) r->r[k - 1].b = x.b;
        else r->r[k++] = (range){x.a, x.b, 0};
        break;
      default: break;
      }
      prevm = x.m;
    }
  }
  for (size_t i = 0; i < k; i++) {
    if (r->r[i].m) continue; /* Removed */
    if (tpieces_add(out, s + r->r[i].a, r->r[i].b - r->r[i].a, first && r->r[i].a == 0, org ? org + r->r[i].a : NULL))
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ normalizer */

/* Replace every match by content; with org (origins of s), the origins of
 * the result in oorg: a replacement covers the characters it replaced (an
 * empty match: the character after it, or before it at the end). */
static int replace_all(const tok *t, const char *lit, const pcre2_code *re, const char *where,
                       const char *content, const char *s, size_t n, const tspan *org, tbuf *out,
                       tspans *oorg) {
  ranges r = {0};
  int rc = find_matches(t, re, lit, where, s, n, &r);
  const size_t lc = strlen(content);
  for (size_t i = 0; !rc && i < r.n; i++) {
    const range x = r.r[i];
    rc = x.m ? tbuf_put(out, content, lc) : tbuf_put(out, s + x.a, x.b - x.a);
    if (rc || !org || !n) continue;
    if (!x.m) {
      rc = tspans_put(oorg, org + x.a, NULL, x.b - x.a);
    } else {
      const tspan sp = x.b > x.a ? (tspan){org[x.a].a, org[x.b - 1].b} : org[x.a < n ? x.a : n - 1];
      rc = tspans_put(oorg, NULL, &sp, lc);
    }
  }
  if (!rc && !out->s) rc = tbuf_put(out, "", 0);
  free(r.r);
  return rc;
}

/* utf8proc_map of s[0..n) with options fl: its length, the result in *o
 * (malloc'd), or -1. */
static long nf_map(const char *s, size_t n, int fl, utf8proc_uint8_t **o) {
  *o = NULL;
  const utf8proc_ssize_t l = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, o, (utf8proc_option_t)fl);
  if (l < 0) {
    free(*o);
    *o = NULL;
  }
  return (long)l;
}

static size_t count_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

/* The origins of one piece's normalization o[0..l) (the piece: one starter
 * and the non-starters after it), as the library aligns its
 * normalization's output (unicode-normalization-alignments): when every
 * character normalizes alone to its part of o (unchanged, a singleton, a
 * decomposition), each output character belongs to the character it came
 * from; else (a composition) the first output character belongs to the
 * starter, the composed characters lose theirs, and the rest follow by
 * position from the end; else the whole piece. */
static int unicode_piece_org(const char *s, size_t n, const tspan *org, int fl, const char *o, size_t l,
                             tspans *oorg) {
  const size_t start = oorg->n;
  size_t i = 0, got = 0;
  while (i < n) {
    int32_t cp;
    int cl = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (cl <= 0) cl = 1;
    utf8proc_uint8_t *c;
    const long m = nf_map(s + i, (size_t)cl, fl, &c);
    if (m < 0) return -1;
    const int same = got + (size_t)m <= l && !memcmp(o + got, c, (size_t)m);
    free(c);
    if (!same) break;
    if (tspans_put(oorg, NULL, &org[i], (size_t)m)) return -1;
    got += (size_t)m;
    i += (size_t)cl;
  }
  if (i == n && got == l) return 0;
  oorg->n = start;
  const size_t ni = count_chars(s, n), no = count_chars(o, l);
  if (no > ni) {
    const tspan all = {org[0].a, org[n - 1].b};
    return tspans_put(oorg, NULL, &all, l);
  }
  /* output character q (q >= 1) <- input character q + (ni - no) */
  size_t in_at = 0, q = 0;
  for (size_t j = 0; j < l; q++) {
    int32_t cp;
    int ol = tok_utf8_next((const unsigned char *)o + j, l - j, &cp);
    if (ol <= 0) ol = 1;
    if (q == 1)
      for (size_t skip = 0; skip < ni - no; skip++) /* the characters composed into the starter */
        in_at += (size_t)tok_utf8_next((const unsigned char *)s + in_at, n - in_at, &cp);
    if (tspans_put(oorg, NULL, &org[in_at], (size_t)ol)) return -1;
    if (in_at < n) {
      int il = tok_utf8_next((const unsigned char *)s + in_at, n - in_at, &cp);
      if (q + 1 < no) in_at += (size_t)(il > 0 ? il : 1);
    }
    j += (size_t)ol;
  }
  return 0;
}

/* The origins of a Unicode normalization's result res[0..rn): the text is
 * cut before every starter (combining class 0) and each piece normalized
 * alone (unicode_piece_org); when the pieces' results do not make the whole
 * result (a composition across the cut), every byte covers the whole text. */
static int unicode_org(const char *s, size_t n, const tspan *org, int fl, const char *res, size_t rn,
                       tspans *oorg) {
  const size_t start = oorg->n;
  size_t i = 0, got = 0;
  int ok = 1;
  while (i < n && ok) {
    size_t j = i;
    utf8proc_uint8_t *o = NULL;
    long l = 0;
    /* a piece, or a few (a Hangul syllable composes from three starters) */
    for (int pieces = 0; pieces < 8 && j < n; pieces++) {
      do { /* one starter and the non-starters after it */
        int32_t cp;
        int cl = tok_utf8_next((const unsigned char *)s + j, n - j, &cp);
        j += (size_t)(cl > 0 ? cl : 1);
        if (j < n && tok_utf8_next((const unsigned char *)s + j, n - j, &cp) > 0 &&
            utf8proc_get_property(cp)->combining_class == 0)
          break;
      } while (j < n);
      free(o);
      l = nf_map(s + i, j - i, fl, &o);
      if (l < 0) return -1;
      ok = got + (size_t)l <= rn && !memcmp(res + got, o, (size_t)l);
      if (ok) break;
    }
    int rc = 0;
    if (ok) {
      if ((size_t)l == j - i && !memcmp(o, s + i, j - i)) rc = tspans_put(oorg, org + i, NULL, j - i);
      else rc = unicode_piece_org(s + i, j - i, org + i, fl, (const char *)o, (size_t)l, oorg);
    }
    free(o);
    if (rc) return -1;
    got += (size_t)l;
    i = j;
  }
  if (ok && got == rn) return 0;
  oorg->n = start;
  const tspan all = {org[0].a, org[n - 1].b};
  return tspans_put(oorg, NULL, &all, rn);
}

/* 0, E_MEM or E_RE.  With org (the origins of s), the origins of out in
 * oorg. */
static int normalize(const tok *t, const char *s, size_t n, const tspan *org, tbuf *out, tspans *oorg) {
  tbuf cur = {0};
  tspans co = {0};
  if (tbuf_put(&cur, s, n) || (org && tspans_put(&co, org, NULL, n))) {
    tbuf_free(&cur);
    tspans_free(&co);
    return E_MEM;
  }
  for (int i = 0; i < t->nnm; i++) {
    const nm_step *k = &t->nm[i];
    tbuf nx = {0};
    tspans no = {0};
    int rc = 0;
    switch (k->k) {
    case NM_NFC: case NM_NFKC: case NM_NFD: case NM_NFKD: {
      int fl = UTF8PROC_STABLE;
      fl |= (k->k == NM_NFC || k->k == NM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
      if (k->k == NM_NFKC || k->k == NM_NFKD) fl |= UTF8PROC_COMPAT;
      utf8proc_uint8_t *o = NULL;
      utf8proc_ssize_t l = cur.n ? utf8proc_map((const utf8proc_uint8_t *)cur.s, (utf8proc_ssize_t)cur.n, &o, (utf8proc_option_t)fl) : 0;
      rc = l < 0 ? E_MEM : tbuf_put(&nx, o ? (const char *)o : "", (size_t)l);
      if (!rc && org && cur.n) {
        if ((size_t)l == cur.n && !memcmp(o, cur.s, cur.n)) rc = tspans_put(&no, co.v, NULL, cur.n);
        else rc = unicode_org(cur.s, cur.n, co.v, fl, nx.s, nx.n, &no) ? E_MEM : 0;
      }
      free(o);
      break;
    }
    case NM_PREPEND: /* the prefix belongs to the first character (NormalizedString::prepend) */
      rc = cur.n ? tbuf_put(&nx, k->a, strlen(k->a)) : 0;
      if (!rc && org && cur.n) rc = tspans_put(&no, NULL, &co.v[0], strlen(k->a));
      if (!rc) rc = tbuf_put(&nx, cur.s, cur.n);
      if (!rc && org) rc = tspans_put(&no, co.v, NULL, cur.n);
      break;
    case NM_REPLACE:
      rc = replace_all(t, k->a, k->re, "normalizer Replace", k->b, cur.s, cur.n, org ? co.v : NULL, &nx, &no);
      break;
    }
    tbuf_free(&cur);
    tspans_free(&co);
    if (rc) {
      tbuf_free(&nx);
      tspans_free(&no);
      return rc;
    }
    cur = nx;
    co = no;
  }
  *out = cur;
  if (oorg) *oorg = co;
  else tspans_free(&co);
  return 0;
}

/* ------------------------------------------------------------ pre-tokenizer */

/* Each byte as its ByteLevel character; with org, every byte of a character
 * has the origin of the byte it stands for. */
static int bytelevel_map(const tok *t, const char *s, size_t n, const tspan *org, tbuf *out, tspans *oorg) {
  for (size_t i = 0; i < n; i++) {
    const unsigned char b = (unsigned char)s[i];
    if (tbuf_put(out, t->bl_char[b], t->bl_len[b])) return -1;
    if (org && tspans_put(oorg, NULL, &org[i], t->bl_len[b])) return -1;
  }
  return 0;
}

/* One pre-tokenizer over the pieces of in, into out (origins carried when
 * in tracks them: a prefix a step inserts belongs to the piece's first
 * character, as NormalizedString::prepend aligns it). */
static int pretok_step(const tok *t, const pt_step *k, const tpieces *in, tpieces *out) {
  ranges r = {0};
  tbuf tmp = {0};
  tspans to = {0};
  const int track = in->org.v != NULL;
  int rc = 0;
  for (size_t i = 0; i < in->n && !rc; i++) {
    const char *s = in->text.s + in->p[i].off;
    const tspan *o = track ? in->org.v + in->p[i].off : NULL;
    const size_t n = in->p[i].len;
    const int first = in->p[i].first;
    tmp.n = 0;
    to.n = 0;
    switch (k->k) {
    case PT_BYTELEVEL: {
      if (k->add_prefix_space && (n == 0 || s[0] != ' ')) {
        rc = tbuf_put(&tmp, " ", 1);
        if (!rc && o && n) rc = tspans_put(&to, NULL, &o[0], 1);
      }
      if (!rc) rc = tbuf_put(&tmp, s, n);
      if (!rc && o) rc = tspans_put(&to, o, NULL, n);
      const tspan *tor = o && to.n == tmp.n ? to.v : NULL;
      tpieces parts = {0};
      if (!rc && k->use_regex) {
        rc = find_matches(t, t->bl_re, NULL, "pre_tokenizer ByteLevel", tmp.s, tmp.n, &r);
        if (!rc) rc = split_ranges(&r, SB_ISOLATED, tmp.s, tor, first, &parts);
      } else if (!rc) {
        rc = tpieces_add(&parts, tmp.s, tmp.n, first, tor);
      }
      tbuf mapped = {0};
      tspans mo = {0};
      for (size_t j = 0; j < parts.n && !rc; j++) {
        mapped.n = 0;
        mo.n = 0;
        rc = bytelevel_map(t, parts.text.s + parts.p[j].off, parts.p[j].len, tor ? parts.org.v + parts.p[j].off : NULL,
                           &mapped, &mo);
        if (!rc) rc = tpieces_add(out, mapped.s, mapped.n, parts.p[j].first, tor ? mo.v : NULL);
      }
      tbuf_free(&mapped);
      tspans_free(&mo);
      tpieces_free(&parts);
      break;
    }
    case PT_SPLIT:
      rc = find_matches(t, k->re, k->lit, "pre_tokenizer Split", s, n, &r);
      if (!rc && k->invert)
        for (size_t j = 0; j < r.n; j++) r.r[j].m = !r.r[j].m;
      if (!rc) rc = split_ranges(&r, k->beh, s, o, first, out);
      break;
    case PT_METASPACE: {
      const size_t lr = strlen(k->repl);
      /* ' ' -> replacement, then the prefix */
      tbuf rep = {0};
      tspans ro = {0};
      for (size_t j = 0; j < n && !rc; j++) {
        rc = s[j] == ' ' ? tbuf_put(&rep, k->repl, lr) : tbuf_put(&rep, s + j, 1);
        if (!rc && o) rc = tspans_put(&ro, NULL, &o[j], s[j] == ' ' ? lr : 1);
      }
      const int starts_after = rep.n >= lr && !memcmp(rep.s, k->repl, lr);
      if (!rc && !starts_after && (k->scheme == PS_ALWAYS || (k->scheme == PS_FIRST && first))) {
        rc = tbuf_put(&tmp, k->repl, lr);
        if (!rc && o && n) rc = tspans_put(&to, NULL, &o[0], lr);
      }
      if (!rc) rc = tbuf_put(&tmp, rep.s ? rep.s : "", rep.n);
      if (!rc && o) rc = tspans_put(&to, ro.v, NULL, ro.n);
      tbuf_free(&rep);
      tspans_free(&ro);
      const tspan *tor = o && to.n == tmp.n ? to.v : NULL;
      if (!rc && k->split) {
        rc = find_matches(t, NULL, k->repl, "pre_tokenizer Metaspace", tmp.s, tmp.n, &r);
        if (!rc) rc = split_ranges(&r, SB_NEXT, tmp.s, tor, first, out);
      } else if (!rc) {
        rc = tpieces_add(out, tmp.s, tmp.n, first, tor);
      }
      break;
    }
    case PT_DIGITS: {
      r.n = 0;
      size_t j = 0, prev = 0;
      while (j < n && !rc) {
        int32_t cp;
        int l = tok_utf8_next((const unsigned char *)s + j, n - j, &cp);
        if (l < 0) l = 1;
        if (tok_is_numeric(cp)) {
          if (prev != j) rc = ranges_add(&r, prev, j, 0);
          if (!rc) rc = ranges_add(&r, j, j + (size_t)l, 1);
          prev = j + (size_t)l;
        }
        j += (size_t)l;
      }
      if (!rc && prev != n) rc = ranges_add(&r, prev, n, 0);
      if (!rc) rc = split_ranges(&r, k->individual ? SB_ISOLATED : SB_CONTIGUOUS, s, o, first, out);
      break;
    }
    }
  }
  free(r.r);
  tbuf_free(&tmp);
  tspans_free(&to);
  return rc;
}

/* ------------------------------------------------------------ encode */

/* Leftmost-longest matches of the added tokens (normalized set or not) in
 * s, with single_word / lstrip / rstrip, as AddedVocabulary::find_matches:
 * appends pieces (ids[i] = token id or -1 for text) to out. */
static int split_added(const tok *t, int normalized, const char *s, size_t n, const tspan *org, int first,
                       tpieces *out, tok_ids *kinds) {
  size_t start_off = 0, i = 0;
  while (i < n) {
    if (!t->first_byte[normalized][(unsigned char)s[i]]) {
      i++;
      continue;
    }
    int best = -1;
    size_t blen = 0;
    for (int a = 0; a < t->nadded; a++) {
      const added_tok *k = &t->added[a];
      if (k->normalized != normalized) continue;
      const char *c = normalized ? k->norm : k->content;
      const size_t l = normalized ? k->norm_len : k->len;
      if (l && l > blen && l <= n - i && !memcmp(s + i, c, l)) {
        best = a;
        blen = l;
      }
    }
    if (best < 0) {
      i++;
      continue;
    }
    const added_tok *k = &t->added[best];
    size_t ms = i, me = i + blen;
    i = me; /* the next search starts after this match even when it is discarded */
    if (k->single_word) {
      int32_t cp;
      int ok_l = 1, ok_r = 1;
      if (ms > 0) { /* the character before */
        size_t j = ms - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        if (tok_utf8_next((const unsigned char *)s + j, ms - j, &cp) > 0 && tok_is_word(cp)) ok_l = 0;
      }
      if (me < n && tok_utf8_next((const unsigned char *)s + me, n - me, &cp) > 0 && tok_is_word(cp)) ok_r = 0;
      if (!ok_l || !ok_r) continue;
    }
    if (k->lstrip) {
      size_t j = ms;
      while (j > 0) {
        size_t q = j - 1;
        while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
        int32_t cp;
        if (tok_utf8_next((const unsigned char *)s + q, j - q, &cp) <= 0 || !tok_is_space(cp)) break;
        j = q;
      }
      ms = j > start_off ? j : start_off;
    }
    if (k->rstrip) {
      int32_t cp;
      int l;
      while (me < n && (l = tok_utf8_next((const unsigned char *)s + me, n - me, &cp)) > 0 && tok_is_space(cp))
        me += (size_t)l;
      i = me;
    }
    if (start_off < ms) {
      if (tpieces_add(out, s + start_off, ms - start_off, first && start_off == 0, org ? org + start_off : NULL) ||
          tok_ids_push(kinds, -1))
        return -1;
    }
    if (tpieces_add(out, s + ms, me - ms, 0, org ? org + ms : NULL) || tok_ids_push(kinds, k->id)) return -1;
    start_off = me;
  }
  if (start_off < n || n == 0) {
    if (n == 0) return 0;
    if (tpieces_add(out, s + start_off, n - start_off, first && start_off == 0, org ? org + start_off : NULL) ||
        tok_ids_push(kinds, -1))
      return -1;
  }
  return 0;
}

/* Append the origin of a token covering bytes [a, b) of a tracked piece. */
static int offs_push(tspans *offs, const tspan *org, size_t a, size_t b) {
  const tspan sp = b > a ? (tspan){org[a].a, org[b - 1].b} : (tspan){0, 0};
  return tspans_put(offs, NULL, &sp, 1);
}

/* The ids of one text piece between raw added tokens (with their origins in
 * offs when org is given). */
static int encode_text(tok *t, const char *s, size_t n, const tspan *org, int first, tok_ids *out, tspans *offs) {
  /* normalize, then the normalized added tokens, then pre-tokenize + BPE */
  tbuf norm = {0};
  tspans norg = {0};
  int rc = normalize(t, s, n, org, &norm, org ? &norg : NULL);
  if (rc) return rc;
  tpieces segs = {0};
  tok_ids kinds = {0}, lens = {0};
  rc = split_added(t, 1, norm.s ? norm.s : "", norm.n, org ? norg.v : NULL, first, &segs, &kinds);
  for (size_t i = 0; i < segs.n && !rc; i++) {
    const tspan *so = org ? segs.org.v + segs.p[i].off : NULL;
    if (kinds.ids[i] >= 0) {
      rc = tok_ids_push(out, kinds.ids[i]);
      if (!rc && org) rc = offs_push(offs, so, 0, segs.p[i].len);
      continue;
    }
    tpieces cur = {0};
    rc = tpieces_add(&cur, segs.text.s + segs.p[i].off, segs.p[i].len, segs.p[i].first, so);
    for (int k = 0; k < t->npt && !rc; k++) {
      tpieces nx = {0};
      rc = pretok_step(t, &t->pt[k], &cur, &nx);
      tpieces_free(&cur);
      cur = nx;
    }
    for (size_t j = 0; j < cur.n && !rc; j++) {
      lens.n = 0;
      rc = tok_bpe_encode(&t->bpe, cur.text.s + cur.p[j].off, cur.p[j].len, out, org ? &lens : NULL);
      for (size_t q = 0, at = cur.p[j].off; org && !rc && q < lens.n; at += (size_t)lens.ids[q++])
        rc = offs_push(offs, cur.org.v, at, at + (size_t)lens.ids[q]);
    }
    tpieces_free(&cur);
  }
  tpieces_free(&segs);
  tok_ids_free(&kinds);
  tok_ids_free(&lens);
  tbuf_free(&norm);
  tspans_free(&norg);
  return rc;
}

/* ByteLevel's trim_offsets (process_offsets): a token's leading and
 * trailing spaces (Ġ or white space) are taken out of its range, except the
 * one space add_prefix_space put before the first token. */
static void trim_offsets(const tok *t, const int *ids, tspan *o, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *s = tok_token(t, ids[i]);
    if (!s) continue;
    const size_t len = strlen(s);
    size_t lead = 0, trail = 0, j = 0;
    int32_t cp;
    int l;
    int all = 1;
    while (j < len && (l = tok_utf8_next((const unsigned char *)s + j, len - j, &cp)) > 0) {
      if (cp == 0x120 || tok_is_space(cp)) {
        if (all) lead++;
        trail++;
      } else {
        all = 0;
        trail = 0;
      }
      j += (size_t)l;
    }
    if (lead && (i == 0 || o[i].a == 0) && t->post_trim_aps && lead == 1) lead = 0;
    if (lead) o[i].a = o[i].a + lead < o[i].b ? o[i].a + lead : o[i].b;
    if (trail && o[i].b >= trail) o[i].b = o[i].b - trail > o[i].a ? o[i].b - trail : o[i].a;
  }
}

/* Encode; origins of the ids in offs when offs is not NULL. */
static ift_status encode(tok *t, const char *text, size_t len, int add_special, tok_ids *out, tspans *offs) {
  IFT_REQUIRE(utf8proc_decompose((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, NULL, 0, 0) >= 0 || len == 0,
              IFT_ERR_ARG, "give UTF-8 text", "the text to encode is not valid UTF-8");
  tok_ids seq = {0};
  tpieces segs = {0};
  tok_ids kinds = {0};
  tspans org = {0}, so = {0};
  int rc = 0;
  /* every byte starts as the character it is part of */
  for (size_t i = 0; offs && i < len && !rc;) {
    int32_t cp;
    int l = tok_utf8_next((const unsigned char *)text + i, len - i, &cp);
    if (l <= 0) l = 1;
    const tspan sp = {i, i + (size_t)l};
    rc = tspans_put(&org, NULL, &sp, (size_t)l);
    i += (size_t)l;
  }
  if (!rc) rc = split_added(t, 0, text, len, offs ? org.v : NULL, 1, &segs, &kinds);
  for (size_t i = 0; i < segs.n && !rc; i++) {
    const tspan *po = offs ? segs.org.v + segs.p[i].off : NULL;
    if (kinds.ids[i] >= 0) {
      rc = tok_ids_push(&seq, kinds.ids[i]);
      if (!rc && offs) rc = offs_push(&so, po, 0, segs.p[i].len);
    } else {
      rc = encode_text(t, segs.text.s + segs.p[i].off, segs.p[i].len, po, segs.p[i].first, &seq, offs ? &so : NULL);
    }
  }
  tpieces_free(&segs);
  tok_ids_free(&kinds);
  tspans_free(&org);
  if (!rc && offs && t->post_trim) trim_offsets(t, seq.ids, so.v, seq.n);
  static const tspan none = {0, 0};
  if (!rc) {
    if (add_special && t->has_post) {
      for (int i = 0; i < t->npost && !rc; i++)
        if (t->post[i] < 0) {
          for (size_t j = 0; j < seq.n && !rc; j++) rc = tok_ids_push(out, seq.ids[j]);
          if (!rc && offs) rc = tspans_put(offs, so.v, NULL, seq.n);
        } else {
          rc = tok_ids_push(out, t->post[i]);
          if (!rc && offs) rc = tspans_put(offs, NULL, &none, 1);
        }
    } else {
      for (size_t j = 0; j < seq.n && !rc; j++) rc = tok_ids_push(out, seq.ids[j]);
      if (!rc && offs) rc = tspans_put(offs, so.v, NULL, seq.n);
    }
  }
  tok_ids_free(&seq);
  tspans_free(&so);
  if (rc == E_RE) return IFT_ERR_ARG; /* reported by find_matches */
  IFT_REQUIRE(!rc, IFT_ERR_NOMEM, NULL, "encoding %zu bytes", len);
  return IFT_OK;
}

ift_status tok_encode(tok *t, const char *text, size_t len, int add_special, tok_ids *out) {
  return encode(t, text, len, add_special, out, NULL);
}

ift_status tok_encode_offsets(tok *t, const char *text, size_t len, int add_special, tok_ids *out,
                              tok_offs *offs) {
  tspans o = {0};
  const size_t before = out->n;
  ift_status st;
  IFT_TRY_GOTO(st, end, encode(t, text, len, add_special, out, &o));
  /* a step lost track: a bug, never silently wrong offsets */
  IFT_REQUIRE_GOTO(st, end, o.n == out->n - before, IFT_ERR_INTERNAL, "report this with the text",
                   "%zu offsets for %zu ids", o.n, out->n - before);
  size_t need = 2 * (offs->n + o.n);
  if (need > offs->cap) {
    size_t c = offs->cap ? offs->cap : 64;
    while (c < need) c *= 2;
    size_t *q = realloc(offs->o, c * sizeof *q);
    IFT_REQUIRE_GOTO(st, end, q, IFT_ERR_NOMEM, NULL, "offsets of %zu ids", o.n);
    offs->o = q;
    offs->cap = c;
  }
  for (size_t i = 0; i < o.n; i++) {
    offs->o[2 * (offs->n + i)] = o.v[i].a;
    offs->o[2 * (offs->n + i) + 1] = o.v[i].b;
  }
  offs->n += o.n;
end:
  tspans_free(&o);
  return st;
}

void tok_offs_free(tok_offs *v) {
  free(v->o);
  memset(v, 0, sizeof *v);
}

long tok_offs_find(const tok_offs *v, size_t x) {
  for (size_t i = 0; i < v->n; i++)
    if (v->o[2 * i] <= x && x < v->o[2 * i + 1]) return (long)i;
  return -1;
}

/* ------------------------------------------------------------ decode */

typedef struct {
  tbuf *v;
  size_t n, cap;
} tlist;

static int tlist_add(tlist *l, const char *s, size_t n) {
  if (l->n == l->cap) {
    size_t c = l->cap ? 2 * l->cap : 64;
    tbuf *q = realloc(l->v, c * sizeof *q);
    if (!q) return -1;
    l->v = q;
    l->cap = c;
  }
  tbuf b = {0};
  if (tbuf_put(&b, s, n)) return -1;
  l->v[l->n++] = b;
  return 0;
}
static void tlist_free(tlist *l) {
  for (size_t i = 0; i < l->n; i++) tbuf_free(&l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* Rust's String::from_utf8_lossy: each maximal invalid subpart -> U+FFFD. */
static int utf8_lossy(const unsigned char *s, size_t n, tbuf *out) {
  static const char rep[] = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < n) {
    const unsigned char b = s[i];
    int need = b < 0x80 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
    if (need == 0) {
      if (tbuf_put(out, s + i, 1)) return -1;
      i++;
      continue;
    }
    size_t k = 1;
    if (need > 0) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (b == 0xE0) lo = 0xA0;
      else if (b == 0xED) hi = 0x9F;
      else if (b == 0xF0) lo = 0x90;
      else if (b == 0xF4) hi = 0x8F;
      while ((int)k <= need && i + k < n) {
        const unsigned char c = s[i + k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
        k++;
      }
      if ((int)k == need + 1) {
        if (tbuf_put(out, s + i, k)) return -1;
        i += k;
        continue;
      }
    }
    if (tbuf_put(out, rep, 3)) return -1;
    i += k;
  }
  return out->s ? 0 : tbuf_put(out, "", 0);
}

static int valid_utf8(const unsigned char *s, size_t n) {
  tbuf b = {0};
  int ok = utf8_lossy(s, n, &b) == 0 && b.n == n && (!n || !memcmp(b.s, s, n));
  tbuf_free(&b);
  return ok;
}

static int decode_step(const tok *t, const dc_step *k, tlist *in, tlist *out) {
  int rc = 0;
  switch (k->k) {
  case DC_BYTELEVEL: {
    tbuf bytes = {0}, s = {0};
    for (size_t i = 0; i < in->n && !rc; i++) {
      const tbuf *tk = &in->v[i];
      /* every character must map to a byte, else the token's own bytes */
      tbuf mapped = {0};
      int all = 1;
      for (size_t j = 0; j < tk->n && all && !rc;) {
        int32_t cp;
        int l = tok_utf8_next((const unsigned char *)tk->s + j, tk->n - j, &cp);
        if (l < 0 || cp >= 512 || t->bl_byte[cp] < 0) {
          all = 0;
          break;
        }
        const char b = (char)t->bl_byte[cp];
        rc = tbuf_put(&mapped, &b, 1);
        j += (size_t)l;
      }
      if (!rc) rc = all ? tbuf_put(&bytes, mapped.s ? mapped.s : "", mapped.n) : tbuf_put(&bytes, tk->s, tk->n);
      tbuf_free(&mapped);
    }
    if (!rc) rc = utf8_lossy((const unsigned char *)(bytes.s ? bytes.s : ""), bytes.n, &s);
    if (!rc) rc = tlist_add(out, s.s, s.n);
    tbuf_free(&bytes);
    tbuf_free(&s);
    break;
  }
  case DC_BYTEFALLBACK: {
    tbuf pend = {0};
    for (size_t i = 0; i <= in->n && !rc; i++) {
      const tbuf *tk = i < in->n ? &in->v[i] : NULL;
      unsigned v;
      char hex[3];
      int isbyte = tk && tk->n == 6 && !memcmp(tk->s, "<0x", 3) && tk->s[5] == '>' &&
                   (memcpy(hex, tk->s + 3, 2), hex[2] = 0, sscanf(hex, "%2x", &v) == 1) &&
                   strspn(hex, "0123456789abcdefABCDEF") == 2;
      if (isbyte) {
        const char b = (char)v;
        rc = tbuf_put(&pend, &b, 1);
        continue;
      }
      if (pend.n) {
        if (valid_utf8((const unsigned char *)pend.s, pend.n)) rc = tlist_add(out, pend.s, pend.n);
        else
          for (size_t j = 0; j < pend.n && !rc; j++) rc = tlist_add(out, "\xEF\xBF\xBD", 3);
        pend.n = 0;
      }
      if (tk && !rc) rc = tlist_add(out, tk->s, tk->n);
    }
    tbuf_free(&pend);
    break;
  }
  case DC_FUSE: {
    tbuf all = {0};
    for (size_t i = 0; i < in->n && !rc; i++) rc = tbuf_put(&all, in->v[i].s, in->v[i].n);
    if (!rc) rc = tlist_add(out, all.s ? all.s : "", all.n);
    tbuf_free(&all);
    break;
  }
  case DC_STRIP:
    for (size_t i = 0; i < in->n && !rc; i++) {
      const tbuf *tk = &in->v[i];
      /* character positions */
      size_t nc = 0, *pos = malloc(sizeof(size_t) * (tk->n + 1));
      int32_t *cps = malloc(sizeof(int32_t) * (tk->n + 1));
      if (!pos || !cps) rc = -1;
      for (size_t j = 0; !rc && j < tk->n;) {
        int l = tok_utf8_next((const unsigned char *)tk->s + j, tk->n - j, &cps[nc]);
        if (l < 0) l = 1;
        pos[nc++] = j;
        j += (size_t)l;
      }
      if (!rc) {
        pos[nc] = tk->n;
        size_t a = 0, b = nc;
        for (size_t j = 0; j < (size_t)k->start && j < nc && cps[j] == k->cp; j++) a = j + 1;
        for (size_t j = 0; j < (size_t)k->stop && j < nc; j++) {
          size_t q = nc - j - 1;
          if (cps[q] != k->cp) break;
          b = q;
        }
        if (b < a) b = a;
        rc = tlist_add(out, tk->s + pos[a], pos[b] - pos[a]);
      }
      free(pos);
      free(cps);
    }
    break;
  case DC_REPLACE:
    for (size_t i = 0; i < in->n && !rc; i++) {
      tbuf o = {0};
      rc = replace_all(t, k->lit, k->re, "decoder Replace", k->content, in->v[i].s ? in->v[i].s : "", in->v[i].n,
                       NULL, &o, NULL);
      if (!rc) rc = tlist_add(out, o.s, o.n);
      tbuf_free(&o);
    }
    break;
  case DC_METASPACE:
    for (size_t i = 0; i < in->n && !rc; i++) {
      const tbuf *tk = &in->v[i];
      tbuf o = {0};
      for (size_t j = 0; j < tk->n && !rc;) {
        int32_t cp;
        int l = tok_utf8_next((const unsigned char *)tk->s + j, tk->n - j, &cp);
        if (l < 0) l = 1;
        if (l > 0 && cp == k->cp) {
          if (!(i == 0 && k->scheme != PS_NEVER)) rc = tbuf_put(&o, " ", 1);
        } else {
          rc = tbuf_put(&o, tk->s + j, (size_t)l);
        }
        j += (size_t)l;
      }
      if (!rc) rc = tlist_add(out, o.s ? o.s : "", o.n);
      tbuf_free(&o);
    }
    break;
  }
  return rc;
}

ift_status tok_decode(const tok *t, const int *ids, size_t n, int skip_special, char **text,
                      size_t *len) {
  *text = NULL;
  *len = 0;
  tlist cur = {0};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *s = tok_token(t, ids[i]);
    if (!s) {
      tlist_free(&cur);
      IFT_REQUIRE(0, IFT_ERR_ARG, "ids must come from this tokenizer",
                  "id %d is not in the vocabulary (size %d%s)", ids[i], t->nvocab,
                  ids[i] >= 0 && ids[i] < t->nvocab ? ", and no token has this id" : "");
    }
    if (skip_special && tok_is_special(t, ids[i])) continue;
    rc = tlist_add(&cur, s, strlen(s));
  }
  for (int k = 0; k < t->ndc && !rc; k++) {
    tlist nx = {0};
    rc = decode_step(t, &t->dc[k], &cur, &nx);
    tlist_free(&cur);
    cur = nx;
  }
  tbuf all = {0};
  for (size_t i = 0; i < cur.n && !rc; i++) {
    if (!t->has_decoder && i && tbuf_put(&all, " ", 1)) rc = -1;
    if (!rc) rc = tbuf_put(&all, cur.v[i].s, cur.v[i].n);
  }
  if (!rc && !all.s) rc = tbuf_put(&all, "", 0);
  tlist_free(&cur);
  if (rc) {
    tbuf_free(&all);
    if (rc == E_RE) return IFT_ERR_ARG; /* reported by find_matches */
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "decoding %zu ids", n);
  }
  *text = all.s;
  *len = all.n;
  return IFT_OK;
}
