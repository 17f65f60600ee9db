/* tok: the tokenizer.json loader, encoder and decoder on small handmade
 * files (the real tokenizers are checked against the Hugging Face library by
 * tests/tok/vectors.sh).
 *
 * Each test writes its tokenizer.json to a temporary directory: malformed
 * files are refused naming the JSON path, unsupported components by name
 * with IFT_ERR_UNIMPL, files whose ids the tokenizers library would not give
 * (added-token ids, duplicate vocabulary ids, template ids outside the
 * vocabulary) are refused, and edge cases of encode and decode (holes in
 * the vocabulary, empty regex matches, a catastrophically backtracking
 * regex, Strip larger than the token, text that gives no id) behave.  The
 * expected ids of the small files were checked with the tokenizers library
 * (npm tokenizers 0.23.2). */
#include "config.h"
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tmpdir.h"
#include "iftrain/core.h"
#include "iftrain/tok.h"

static const char *tmp_path(const char *name) { return ift_tmp_path("/tmp/ift_test_tok_XXXXXX", name); }

static int has(const char *needle) {
  int ok = strstr(ift_error_last(), needle) != NULL;
  if (!ok) fprintf(stderr, "\n  error \"%s\" lacks \"%s\"\n", ift_error_last(), needle);
  return ok;
}

/* JSON written with ' for " (a literal apostrophe is \u0027) */
static json_t *J(const char *s) {
  char *c = strdup(s);
  for (char *p = c; *p; p++)
    if (*p == '\'') *p = '"';
  json_error_t e;
  json_t *j = json_loads(c, JSON_DECODE_ANY, &e);
  if (!j) fprintf(stderr, "\n  bad test JSON: %s: %s\n", c, e.text);
  free(c);
  CU_ASSERT_FATAL(j != NULL);
  return j;
}

/* The small BPE of most tests: a b c ab abc ' ' U+2581 x !, merges a+b, ab+c. */
static json_t *base(void) {
  return J("{'version': '1.0', 'truncation': null, 'padding': null, 'added_tokens': [], 'normalizer': null,"
           " 'pre_tokenizer': null, 'post_processor': null, 'decoder': null,"
           " 'model': {'type': 'BPE', 'dropout': null, 'unk_token': null, 'fuse_unk': false, 'byte_fallback': false,"
           "  'vocab': {'a': 0, 'b': 1, 'c': 2, 'ab': 3, 'abc': 4, ' ': 5, '\u2581': 6, 'x': 7, '!': 8},"
           "  'merges': ['a b', 'ab c']}}");
}

static void set(json_t *root, const char *key, const char *json) { json_object_set_new(root, key, J(json)); }
static void set_model(json_t *root, const char *key, const char *json) {
  json_object_set_new(json_object_get(root, "model"), key, J(json));
}

static const char *write_root(json_t *root) {
  static int n;
  char name[32];
  snprintf(name, sizeof name, "tokenizer-%d.json", n++);
  const char *p = tmp_path(name);
  CU_ASSERT_FATAL(json_dump_file(root, p, JSON_COMPACT) == 0);
  json_decref(root);
  return p;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  CU_ASSERT_FATAL(f != NULL);
  fputs(text, f);
  fclose(f);
}

static tok *load_ok(json_t *root) {
  tok *t = NULL;
  ift_status st = tok_load(&t, write_root(root));
  if (st != IFT_OK) fprintf(stderr, "\n  tok_load: %s\n", ift_error_last());
  CU_ASSERT_FATAL(st == IFT_OK && t != NULL);
  return t;
}

/* tok_load of root must fail with status st and a message naming what */
static int refused(json_t *root, ift_status st, const char *what) {
  tok *t = (tok *)1;
  ift_error_quiet(1);
  const ift_status got = tok_load(&t, write_root(root));
  ift_error_quiet(0);
  if (got != st) fprintf(stderr, "\n  tok_load: status %d, expected %d (%s)\n", (int)got, (int)st, ift_error_last());
  return got == st && t == NULL && has(what);
}

static int enc(tok *t, const char *text, int add_special, const int *want, size_t n) {
  tok_ids v = {0};
  ift_status st = tok_encode(t, text, strlen(text), add_special, &v);
  int ok = st == IFT_OK && v.n == n && (n == 0 || memcmp(v.ids, want, n * sizeof(int)) == 0);
  if (!ok) {
    fprintf(stderr, "\n  encode \"%s\": status %d, ids", text, (int)st);
    for (size_t i = 0; i < v.n; i++) fprintf(stderr, " %d", v.ids[i]);
    fprintf(stderr, "\n");
  }
  tok_ids_free(&v);
  return ok;
}

static int dec(const tok *t, const int *ids, size_t n, int skip, const char *want) {
  char *s = NULL;
  size_t len = 0;
  ift_status st = tok_decode(t, ids, n, skip, &s, &len);
  int ok = st == IFT_OK && s && len == strlen(want) && memcmp(s, want, len) == 0;
  if (!ok) fprintf(stderr, "\n  decode: status %d, \"%s\", expected \"%s\"\n", (int)st, s ? s : "(null)", want);
  free(s);
  return ok;
}

static ift_status dec_status(const tok *t, const int *ids, size_t n) {
  char *s = (char *)1;
  size_t len = 1;
  ift_error_quiet(1);
  ift_status st = tok_decode(t, ids, n, 0, &s, &len);
  ift_error_quiet(0);
  CU_ASSERT(st == IFT_OK || (s == NULL && len == 0));
  if (st == IFT_OK) free(s);
  return st;
}

#define IDS(...) ((const int[]){__VA_ARGS__}), (sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ the basics */

static void test_base(void) {
  tok *t = load_ok(base());
  CU_ASSERT_EQUAL(tok_vocab_size(t), 9);
  CU_ASSERT_EQUAL(tok_id(t, "abc"), 4);
  CU_ASSERT_EQUAL(tok_id(t, "zz"), -1);
  CU_ASSERT_STRING_EQUAL(tok_token(t, 3), "ab");
  CU_ASSERT_PTR_NULL(tok_token(t, 9));
  CU_ASSERT_PTR_NULL(tok_token(t, -1));
  CU_ASSERT_EQUAL(strlen(tok_sha256(t)), 64);
  CU_ASSERT(enc(t, "abc", 0, IDS(4)));
  CU_ASSERT(enc(t, "cba", 1, IDS(2, 1, 0)));
  CU_ASSERT(enc(t, "ab ab", 0, IDS(3, 5, 3)));
  CU_ASSERT(enc(t, "", 0, NULL, 0));
  /* no decoder: the library joins the tokens with spaces */
  CU_ASSERT(dec(t, IDS(0, 1, 2), 0, "a b c"));
  CU_ASSERT(dec(t, NULL, 0, 0, ""));
  tok_free(t);
}

/* Characters of no token, without unk or byte fallback, give no id (the
 * library drops them); a word that gives no id at all once handed memcpy a
 * NULL source (bpe.c, UBSan). */
static void test_no_id(void) {
  tok *t = load_ok(base());
  CU_ASSERT(enc(t, "<z>", 0, NULL, 0));
  CU_ASSERT(enc(t, "<z>", 0, NULL, 0)); /* the cached word */
  CU_ASSERT(enc(t, "z\xc3\xa9zab", 0, IDS(3)));
  tok_free(t);
}

static void test_bad_text(void) {
  tok *t = load_ok(base());
  tok_ids v = {0};
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(tok_encode(t, "ab\xff", 3, 0, &v), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(tok_encode(t, "\xed\xa0\x80", 3, 0, &v), IFT_ERR_ARG); /* a surrogate */
  ift_error_quiet(0);
  CU_ASSERT(has("not valid UTF-8"));
  CU_ASSERT_EQUAL(v.n, 0);
  /* NUL is a character (of no token here: dropped, and a+b merge) */
  CU_ASSERT_EQUAL(tok_encode(t, "a\0b", 3, 0, &v), IFT_OK);
  CU_ASSERT(v.n == 1 && v.ids[0] == 3);
  tok_ids_free(&v);
  tok_free(t);
}

/* ------------------------------------------------------------ malformed files */

static void test_malformed_json(void) {
  const char *p = tmp_path("broken.json");
  tok *t = NULL;
  ift_error_quiet(1);
  write_text(p, "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,}}}");
  CU_ASSERT_EQUAL(tok_load(&t, p), IFT_ERR_FORMAT);
  CU_ASSERT(has("broken.json") && has("line 2"));
  write_text(p, "");
  CU_ASSERT_EQUAL(tok_load(&t, p), IFT_ERR_FORMAT);
  write_text(p, "[1, 2]");
  CU_ASSERT_EQUAL(tok_load(&t, p), IFT_ERR_FORMAT);
  CU_ASSERT(has("not a JSON object"));
  /* invalid UTF-8 in a vocabulary key: the JSON parser refuses it */
  write_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\xff\": 0}, \"merges\": []}}");
  CU_ASSERT_EQUAL(tok_load(&t, p), IFT_ERR_FORMAT);
  CU_ASSERT(has("byte 0xff"));
  CU_ASSERT_EQUAL(tok_load(&t, tmp_path("absent.json")), IFT_ERR_IO);
  ift_error_quiet(0);
  CU_ASSERT_PTR_NULL(t);
}

/* a value of the wrong JSON type is refused naming its place in the file */
static void test_bad_types(void) {
  json_t *r = base();
  json_object_set_new(r, "model", json_string("BPE"));
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "no model"));
  r = base();
  set_model(r, "vocab", "{'a': 0, 'b': '1'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.vocab[\"b\"]"));
  r = base();
  set_model(r, "vocab", "{'a': 0, 'b': 16777216}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.vocab[\"b\"] is not an id in [0, 2^24)"));
  r = base();
  set_model(r, "merges", "['a b', 7]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.merges[1]"));
  r = base();
  set_model(r, "merges", "['a b c']");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.merges[0] \"a b c\" is not two tokens"));
  r = base();
  set_model(r, "merges", "[['a', 'b', 'c']]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.merges[0]"));
  r = base();
  set_model(r, "byte_fallback", "'yes'");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model: \"byte_fallback\" is not true or false"));
  r = base();
  set(r, "added_tokens", "{'<s>': 9}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens is not a list"));
  r = base();
  set(r, "added_tokens", "[{'id': 9}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] has no \"content\""));
  r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': '<s>', 'special': 1}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0]: \"special\" is not true or false"));
  r = base();
  set(r, "added_tokens", "[{'id': -1, 'content': '<s>'}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] \"<s>\" has no id"));
  r = base();
  set(r, "normalizer", "{'type': 'Sequence', 'normalizers': {}}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "normalizer Sequence without normalizers"));
  r = base();
  set(r, "normalizer", "[]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "normalizer without a type"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'ByteLevel', 'add_prefix_space': 'no'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "pre_tokenizer ByteLevel: \"add_prefix_space\""));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': 'a'}, 'behavior': 'Joined'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "unknown behavior Joined"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': 'a', 'behavior': 'Isolated'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "pre_tokenizer Split: pattern is neither"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'sometimes'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "unknown prepend_scheme sometimes"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Metaspace', 'replacement': 'ab'}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "replacement must be one character"));
  r = base();
  set(r, "decoder", "{'type': 'Strip', 'content': ' ', 'start': 1}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "decoder Strip"));
  r = base();
  set(r, "post_processor", "{'type': 'TemplateProcessing', 'single': [{'SpecialToken': {'id': '<s>'}}], "
                           "'special_tokens': {}}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "special token <s> has no ids"));
}

/* unsupported components are refused by name, never approximated */
static void test_unsupported(void) {
  json_t *r = base();
  set(r, "normalizer", "{'type': 'Sequence', 'normalizers': [{'type': 'NFC'}, {'type': 'Lowercase'}]}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "normalizer Lowercase is not supported"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Whitespace'}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "pre_tokenizer Whitespace is not supported"));
  r = base();
  set_model(r, "type", "'WordPiece'");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "model WordPiece is not supported"));
  r = base();
  set_model(r, "dropout", "0.1");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "dropout"));
  r = base();
  set_model(r, "continuing_subword_prefix", "'##'");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "continuing_subword_prefix"));
  r = base();
  set(r, "decoder", "{'type': 'WordPiece', 'prefix': '##'}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "decoder WordPiece is not supported"));
  r = base();
  set(r, "post_processor", "{'type': 'BertProcessing', 'sep': ['[SEP]', 1], 'cls': ['[CLS]', 0]}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "post_processor BertProcessing is not supported"));
  r = base();
  set(r, "truncation", "{'max_length': 8}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "truncation"));
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '(a'}, 'behavior': 'Isolated'}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "regex /(a/ does not compile"));
  /* \C matches one byte, which could split a character */
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '\\\\C'}, 'behavior': 'Isolated'}");
  CU_ASSERT(refused(r, IFT_ERR_UNIMPL, "regex /\\C/ does not compile"));
  /* constructs the library's regex dialect (Oniguruma, Ruby syntax) reads
   * otherwise than PCRE2: refused, not matched differently */
  static const char *const traps[][2] = {
      {"\\\\h+", "\\h or \\H"},         {"a(?m).b", "the option m or s"},
      {"(?s:a.b)", "the option m or s"},    {"[a[b]c]", "a [ inside a character class"},
      {"[a-c&&[^b]]", "&& in a character"}, {"\\\\Qa.b\\\\E", "\\Q...\\E"},
      {"(*UTF)a", "(*VERB)"}};
  for (size_t i = 0; i < sizeof traps / sizeof *traps; i++) {
    char pt[256];
    snprintf(pt, sizeof pt, "{'type': 'Split', 'pattern': {'Regex': '%s'}, 'behavior': 'Isolated'}", traps[i][0]);
    r = base();
    set(r, "pre_tokenizer", pt);
    CU_ASSERT(refused(r, IFT_ERR_UNIMPL, traps[i][1]));
  }
  /* and what reads alike stays: [:alpha:], [\]], (?i), escaped brackets */
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '(?i:[[:alpha:]\\\\]]|\\\\[x)'}, 'behavior': 'Isolated'}");
  tok_free(load_ok(r));
}

/* ------------------------------------------------------------ ids */

static void test_merges_absent(void) {
  json_t *r = base();
  set_model(r, "merges", "['a b', 'a x']");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.merges[1]: a token of the merge or its result is not in the vocabulary"));
  r = base();
  set_model(r, "merges", "[['a', 'b'], ['b', 'c']]"); /* "bc" is not a token */
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.merges[1]"));
  r = base();
  set_model(r, "merges", "[['ab', 'c'], ['a', 'b']]"); /* the pair form; ab+c ranks first */
  tok *t = load_ok(r);
  CU_ASSERT(enc(t, "abc", 0, IDS(4)));
  tok_free(t);
  r = base();
  set_model(r, "unk_token", "'<unk>'");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "unk_token <unk> is not in the vocabulary"));
}

/* Two tokens with one id would decode differently from run to run in the
 * library (its reverse map comes from a hash map). */
static void test_duplicate_ids(void) {
  json_t *r = base();
  set_model(r, "vocab", "{'a': 0, 'b': 0, 'ab': 1}");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "model.vocab gives id 0 to both"));
}

/* Holes in the ids: the vocabulary size is 1 + the largest id; a hole has
 * no token and cannot be decoded. */
static void test_holes(void) {
  json_t *r = base();
  set_model(r, "vocab", "{'a': 0, 'b': 5, 'ab': 7}");
  set_model(r, "merges", "['a b']");
  tok *t = load_ok(r);
  CU_ASSERT_EQUAL(tok_vocab_size(t), 8);
  CU_ASSERT_PTR_NULL(tok_token(t, 3));
  CU_ASSERT(enc(t, "abab", 0, IDS(7, 7)));
  CU_ASSERT(enc(t, "cba", 0, IDS(5, 0)));
  CU_ASSERT(dec(t, IDS(7, 0), 0, "ab a"));
  CU_ASSERT_EQUAL(dec_status(t, IDS(3)), IFT_ERR_ARG);
  CU_ASSERT(has("id 3 is not in the vocabulary (size 8, and no token has this id)"));
  CU_ASSERT_EQUAL(dec_status(t, IDS(0, 8)), IFT_ERR_ARG);
  CU_ASSERT(has("id 8 is not in the vocabulary (size 8)"));
  CU_ASSERT_EQUAL(dec_status(t, IDS(-1)), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(dec_status(t, IDS(1 << 30)), IFT_ERR_ARG);
  tok_free(t);
}

/* The library numbers added tokens itself (their id in the vocabulary, else
 * the next id after the vocabulary and the added tokens before them): a
 * file with other ids is refused, as are empty and repeated contents. */
static void test_added_ids(void) {
  json_t *r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': '<s>', 'special': true}, {'id': 10, 'content': '</s>', 'special': true},"
                         " {'id': 4, 'content': 'abc'}, {'id': 11, 'content': 'xx', 'normalized': true}]");
  tok *t = load_ok(r);
  CU_ASSERT_EQUAL(tok_vocab_size(t), 12);
  CU_ASSERT(tok_is_special(t, 9) && tok_is_special(t, 10) && !tok_is_special(t, 4) && !tok_is_special(t, 11));
  CU_ASSERT_EQUAL(tok_id(t, "</s>"), 10);
  CU_ASSERT(enc(t, "<s>abxxc</s>", 0, IDS(9, 3, 11, 2, 10)));
  CU_ASSERT(dec(t, IDS(9, 3, 11, 10), 0, "<s> ab xx </s>"));
  CU_ASSERT(dec(t, IDS(9, 3, 11, 10), 1, "ab xx"));
  tok_free(t);

  r = base();
  set(r, "added_tokens", "[{'id': 10, 'content': '<s>', 'special': true}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] \"<s>\" has id 10 but the tokenizers library gives it id 9"));
  r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': 'abc'}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] \"abc\" has id 9 but the tokenizers library gives it id 4 "
                                       "(its id in model.vocab)"));
  r = base();
  set(r, "added_tokens", "[{'id': 10, 'content': '</s>'}, {'id': 9, 'content': '<s>'}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] \"</s>\" has id 10"));
  r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': '<s>'}, {'id': 10, 'content': '<s>'}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[1] repeats \"<s>\" of added_tokens[0]"));
  r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': ''}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[0] has an empty content"));
  /* holes: the library numbers after the 3 entries, onto a vocabulary id */
  r = base();
  set_model(r, "vocab", "{'a': 0, 'b': 5, 'ab': 7}");
  set_model(r, "merges", "['a b']");
  set(r, "added_tokens", "[{'id': 3, 'content': '<s>'}, {'id': 4, 'content': '</s>'}, {'id': 5, 'content': '<x>'}]");
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "added_tokens[2] \"<x>\" has id 5, the id of model.vocab's \"b\""));
  /* no vocabulary: added tokens from 0 */
  r = base();
  set_model(r, "vocab", "{}");
  set_model(r, "merges", "[]");
  set(r, "added_tokens", "[{'id': 0, 'content': '<x>'}, {'id': 1, 'content': '<y>'}]");
  t = load_ok(r);
  CU_ASSERT(enc(t, "a<x>b<y>c", 0, IDS(0, 1)));
  tok_free(t);
}

/* every id encode gives can be decoded: the template's too */
static void test_template_ids(void) {
  static const char post[] = "{'type': 'TemplateProcessing', 'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}},"
                             " {'Sequence': {'id': 'A', 'type_id': 0}}], 'pair': [],"
                             " 'special_tokens': {'<s>': {'id': '<s>', 'ids': [%d], 'tokens': ['<s>']}}}";
  char buf[512];
  json_t *r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': '<s>', 'special': true}]");
  snprintf(buf, sizeof buf, post, 99);
  set(r, "post_processor", buf);
  CU_ASSERT(refused(r, IFT_ERR_FORMAT, "post_processor TemplateProcessing: id 99 is not in the vocabulary (size 10)"));
  r = base();
  set(r, "added_tokens", "[{'id': 9, 'content': '<s>', 'special': true}]");
  snprintf(buf, sizeof buf, post, 9);
  set(r, "post_processor", buf);
  tok *t = load_ok(r);
  CU_ASSERT(enc(t, "ab", 1, IDS(9, 3)));
  CU_ASSERT(enc(t, "", 1, IDS(9)));
  CU_ASSERT(enc(t, "ab", 0, IDS(3)));
  tok_free(t);
}

/* ------------------------------------------------------------ regexes */

/* A pattern that matches the empty string splits between characters, as
 * the library's find_matches does. */
static void test_empty_matches(void) {
  json_t *r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': ''}, 'behavior': 'Isolated', 'invert': false}");
  tok *t = load_ok(r);
  CU_ASSERT(enc(t, "abc", 0, IDS(0, 1, 2)));
  CU_ASSERT(enc(t, "ab ab", 0, IDS(0, 1, 5, 0, 1)));
  CU_ASSERT(enc(t, "\xe2\x96\x81" "a", 0, IDS(6, 0)));
  tok_free(t);
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': 'b*'}, 'behavior': 'Removed', 'invert': false}");
  t = load_ok(r);
  CU_ASSERT(enc(t, "abbc", 0, IDS(0, 2)));
  tok_free(t);
  /* no empty match right where the previous match ended (onig's find_iter):
   * "a*" on "cab" matches at 0, "a", 3 -- not at 2, which once split "ab" */
  r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': 'a*'}, 'behavior': 'MergedWithNext', 'invert': false}");
  t = load_ok(r);
  CU_ASSERT(enc(t, "cab", 0, IDS(2, 3)));
  CU_ASSERT(enc(t, "cabcab", 0, IDS(2, 3, 2, 3)));
  tok_free(t);
}

/* A catastrophically backtracking Split regex stops at PCRE2's match limit
 * with an error naming it, instead of hanging or splitting silently wrong;
 * the same tokenizer still encodes the texts it can. */
static void test_regex_limit(void) {
  json_t *r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '(\\\\w+)+\\\\s'}, 'behavior': 'Isolated', "
                          "'invert': false}");
  tok *t = load_ok(r);
  CU_ASSERT(enc(t, "xa byz a b", 0, IDS(7, 0, 5, 1, 5, 0, 5, 1)));
  char text[64];
  memset(text, 'a', 40);
  strcpy(text + 40, "!");
  tok_ids v = {0};
  const double t0 = now();
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(tok_encode(t, text, strlen(text), 0, &v), IFT_ERR_ARG);
  ift_error_quiet(0);
  CU_ASSERT(now() - t0 < 60);
  CU_ASSERT(has("pre_tokenizer Split") && has("match limit"));
  CU_ASSERT_EQUAL(v.n, 0);
  CU_ASSERT(enc(t, "ab c", 0, IDS(3, 5, 2)));
  tok_ids_free(&v);
  tok_free(t);
}

/* ^ and $ are line anchors in the library's regex dialect (PCRE2_MULTILINE):
 * "^a|c$" Removed takes both lines' a and c. */
static void test_line_anchors(void) {
  json_t *r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '^a|c$'}, 'behavior': 'Removed', 'invert': false}");
  tok *t = load_ok(r);
  CU_ASSERT(enc(t, "abc\nabc", 0, IDS(1, 1)));
  CU_ASSERT(enc(t, "xabc abc", 0, IDS(7, 4, 5, 3)));
  tok_free(t);
}

/* Many matches in one long text: PCRE2 once checked the UTF-8 of the rest
 * of the text at every match (quadratic: minutes for 1 MB). */
static void test_long_text(void) {
  json_t *r = base();
  set(r, "pre_tokenizer", "{'type': 'Split', 'pattern': {'Regex': '\\\\p{L}{1,2}'}, 'behavior': 'Isolated', "
                          "'invert': false}");
  tok *t = load_ok(r);
  const size_t n = 1 << 20;
  char *text = malloc(n + 1);
  for (size_t i = 0; i < n; i++) text[i] = "ab"[i % 2];
  text[n] = 0;
  tok_ids v = {0};
  const double t0 = now();
  CU_ASSERT_EQUAL(tok_encode(t, text, n, 0, &v), IFT_OK);
  const double dt = now() - t0;
  if (dt > 30) fprintf(stderr, "\n  1 MB in %.1f s\n", dt);
  CU_ASSERT(dt < 30);
  CU_ASSERT(v.n == n / 2 && v.ids[0] == 3 && v.ids[v.n - 1] == 3);
  tok_ids_free(&v);
  free(text);
  tok_free(t);
}

/* Added tokens with normalized = true are matched in their normalized form,
 * which a Replace normalizer with a regex once computed before the regex
 * could run (no match data yet at load): "a b" never matched. */
static void test_normalized_added(void) {
  for (int k = 0; k < 2; k++) {
    json_t *r = base();
    set(r, "normalizer", k ? "{'type': 'Replace', 'pattern': {'Regex': ' '}, 'content': '\u2581'}"
                           : "{'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'}");
    set(r, "added_tokens", "[{'id': 9, 'content': 'a b', 'special': false, 'normalized': true}]");
    tok *t = load_ok(r);
    CU_ASSERT(enc(t, "xa byz a b", 0, IDS(7, 9, 6, 9)));
    tok_free(t);
  }
}

/* ------------------------------------------------------------ decoders */

/* Strip with start and stop larger than the token (the library's own
 * decoder panics on some of these; the characters present are stripped). */
static void test_strip(void) {
  json_t *r = base();
  set(r, "decoder", "{'type': 'Strip', 'content': 'a', 'start': 5, 'stop': 9}");
  tok *t = load_ok(r);
  CU_ASSERT(dec(t, IDS(4), 0, "bc"));
  CU_ASSERT(dec(t, IDS(0), 0, ""));
  CU_ASSERT(dec(t, IDS(0, 1, 0), 0, "b"));
  CU_ASSERT(dec(t, IDS(3, 5, 3), 0, "b b"));
  tok_free(t);
}

/* A GPT-2 layout: ByteLevel pre-tokenizer (its own regex), decoder and
 * post-processor, the 256 byte characters as ids 0-255 and a few merges. */
static json_t *byte_level(void) {
  int bs[256], n = 0, in[256] = {0};
  for (int b = '!'; b <= '~'; b++) bs[n++] = b;
  for (int b = 0xA1; b <= 0xAC; b++) bs[n++] = b;
  for (int b = 0xAE; b <= 0xFF; b++) bs[n++] = b;
  for (int i = 0; i < n; i++) in[bs[i]] = 1;
  int cp[256], extra = 0;
  for (int i = 0; i < n; i++) cp[bs[i]] = bs[i];
  for (int b = 0; b < 256; b++)
    if (!in[b]) cp[b] = 256 + extra++;
  json_t *r = base(), *v = json_object();
  for (int b = 0; b < 256; b++) {
    char u[8];
    int l = cp[b] < 0x80 ? (u[0] = (char)cp[b], 1) : (u[0] = (char)(0xC0 | cp[b] >> 6), u[1] = (char)(0x80 | (cp[b] & 63)), 2);
    u[l] = 0;
    json_object_set_new(v, u, json_integer(b));
  }
  static const char *const merges[] = {"\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d", "\xc4\xa0wor ld",
                                       "H e",        "l l", "He ll",          "Hell o"};
  json_t *m = json_array();
  for (size_t i = 0; i < sizeof merges / sizeof *merges; i++) {
    char ab[32];
    const char *sp = strchr(merges[i], ' ');
    snprintf(ab, sizeof ab, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
    json_object_set_new(v, ab, json_integer(256 + (int)i));
    json_array_append_new(m, json_string(merges[i]));
  }
  json_object_set_new(json_object_get(r, "model"), "vocab", v);
  json_object_set_new(json_object_get(r, "model"), "merges", m);
  set(r, "added_tokens", "[{'id': 265, 'content': '<|end|>', 'special': true}]");
  set(r, "pre_tokenizer", "{'type': 'ByteLevel', 'add_prefix_space': false, 'trim_offsets': true, 'use_regex': true}");
  set(r, "post_processor", "{'type': 'ByteLevel', 'add_prefix_space': true, 'trim_offsets': false, 'use_regex': true}");
  set(r, "decoder", "{'type': 'ByteLevel', 'add_prefix_space': true, 'trim_offsets': true, 'use_regex': true}");
  return r;
}

static void test_byte_level(void) {
  tok *t = load_ok(byte_level());
  CU_ASSERT_EQUAL(tok_vocab_size(t), 266);
  CU_ASSERT(enc(t, "Hello world", 1, IDS(264, 260)));
  static const char text[] = "Hello world \xf0\x9f\x98\x80<|end|>\nx";
  CU_ASSERT(enc(t, text, 0, IDS(264, 260, 32, 240, 159, 152, 128, 265, 10, 120)));
  CU_ASSERT(dec(t, IDS(264, 260, 32, 240, 159, 152, 128, 265, 10, 120), 0, text));
  CU_ASSERT(dec(t, IDS(264, 260, 32, 240, 159, 152, 128, 265, 10, 120), 1, "Hello world \xf0\x9f\x98\x80\nx"));
  /* bytes of half a character decode to U+FFFD, as the library's from_utf8_lossy */
  CU_ASSERT(dec(t, IDS(72, 240, 159, 105), 0, "H\xef\xbf\xbdi"));
  tok_free(t);
}

/* A Mistral / Llama 2 layout: Prepend + Replace normalizers, byte_fallback,
 * unk with fuse_unk, TemplateProcessing with <s>, and the Replace,
 * ByteFallback, Fuse, Strip decoders. */
static json_t *sentencepiece(void) {
  json_t *r = base(), *v = json_object();
  json_object_set_new(v, "<unk>", json_integer(0));
  json_object_set_new(v, "<s>", json_integer(1));
  json_object_set_new(v, "</s>", json_integer(2));
  for (int b = 0; b < 256; b++) {
    char nm[8];
    snprintf(nm, sizeof nm, "<0x%02X>", b);
    json_object_set_new(v, nm, json_integer(3 + b));
  }
  static const char *const toks[] = {"\xe2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "\xe2\x96\x81h", "ll",
                                     "\xe2\x96\x81w", "or", "\xe2\x96\x81hell", "\xe2\x96\x81wor", "ld",
                                     "\xe2\x96\x81world", "\xe2\x96\x81he", "\xe2\x96\x81hel"};
  for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) json_object_set_new(v, toks[i], json_integer(259 + (int)i));
  json_object_set_new(json_object_get(r, "model"), "vocab", v);
  set_model(r, "merges", "['\u2581 h', 'l l', '\u2581 w', 'o r', '\u2581h e', '\u2581he l', '\u2581hel l', "
                         "'\u2581wor ld', '\u2581w or', 'l d']");
  set_model(r, "unk_token", "'<unk>'");
  set_model(r, "fuse_unk", "true");
  set_model(r, "byte_fallback", "true");
  set(r, "added_tokens", "[{'id': 0, 'content': '<unk>', 'special': true}, {'id': 1, 'content': '<s>', 'special': true},"
                         " {'id': 2, 'content': '</s>', 'special': true}]");
  set(r, "normalizer", "{'type': 'Sequence', 'normalizers': [{'type': 'Prepend', 'prepend': '\u2581'},"
                       " {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'}]}");
  set(r, "post_processor", "{'type': 'TemplateProcessing', 'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}},"
                           " {'Sequence': {'id': 'A', 'type_id': 0}}], 'pair': [],"
                           " 'special_tokens': {'<s>': {'id': '<s>', 'ids': [1], 'tokens': ['<s>']}}}");
  set(r, "decoder", "{'type': 'Sequence', 'decoders': [{'type': 'Replace', 'pattern': {'String': '\u2581'}, "
                    "'content': ' '}, {'type': 'ByteFallback'}, {'type': 'Fuse'}, "
                    "{'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]}");
  return r;
}

static void test_sentencepiece(void) {
  tok *t = load_ok(sentencepiece());
  CU_ASSERT(enc(t, "Hello world", 1, IDS(1, 259, 75, 261, 268, 263, 274)));
  CU_ASSERT(enc(t, "hello world h\xc3\xa9llo", 0, IDS(275, 268, 263, 274, 267, 198, 172, 268, 263)));
  CU_ASSERT(enc(t, " <s>hello</s>", 0, IDS(259, 259, 1, 275, 268, 263, 2)));
  CU_ASSERT(enc(t, "", 1, IDS(1)));
  CU_ASSERT(dec(t, IDS(1, 259, 75, 261, 268, 263, 274), 0, "<s> Hello world"));
  CU_ASSERT(dec(t, IDS(275, 268, 263, 274, 267, 198, 172, 268, 263), 0, "hello world h\xc3\xa9llo"));
  /* a byte sequence that is not UTF-8: one U+FFFD per byte */
  CU_ASSERT(dec(t, IDS(267, 198, 267), 0, "h\xef\xbf\xbd h"));
  tok_free(t);
}

static void test_cleanup(void) {
  if (g_dir[0] && !getenv("TEST_TOK_KEEP")) { /* TEST_TOK_KEEP=1 keeps the files */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    CU_ASSERT(system(cmd) == 0);
  }
}

static CU_TestInfo tests[] = {
    {"a small BPE: ids, tokens, encode, decode", test_base},
    {"text of no token gives no id", test_no_id},
    {"text that is not UTF-8 is refused", test_bad_text},
    {"malformed JSON is refused with its line", test_malformed_json},
    {"a value of the wrong type is refused naming its JSON path", test_bad_types},
    {"unsupported components are refused by name (IFT_ERR_UNIMPL)", test_unsupported},
    {"merges of tokens not in the vocabulary are refused", test_merges_absent},
    {"two tokens with one id are refused", test_duplicate_ids},
    {"holes in the ids: decode of a hole is IFT_ERR_ARG", test_holes},
    {"added tokens: the library's ids or refused", test_added_ids},
    {"template ids must be tokens", test_template_ids},
    {"a regex that matches the empty string", test_empty_matches},
    {"a catastrophically backtracking regex stops with an error", test_regex_limit},
    {"^ and $ match at line ends, as in the library", test_line_anchors},
    {"1 MB of text with many regex matches in linear time", test_long_text},
    {"normalized added tokens under a regex Replace normalizer", test_normalized_added},
    {"Strip with start and stop larger than the token", test_strip},
    {"a byte-level BPE (GPT-2 layout)", test_byte_level},
    {"a SentencePiece-style BPE (Mistral layout)", test_sentencepiece},
    {"cleanup", test_cleanup},
    CU_TEST_INFO_NULL};

IFT_TEST_MAIN("tok", tests)
