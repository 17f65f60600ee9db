/* Fuzz target: the tokenizer (src/tok).  The first byte chooses what the
 * rest is (byte % 3):
 *   0  a tokenizer.json for tok_load; a tokenizer that loads encodes (with
 *      and without the special tokens) and decodes a few fixed texts, the
 *      strings of its first and last ids, and decodes those ids;
 *   1  text, encoded with and without the special tokens and decoded (with
 *      and without skipping them) by each of the four real-layout
 *      tokenizers below; text that is not UTF-8 must be refused, and is then
 *      encoded with each invalid byte replaced by '?';
 *   2  ids (3 bytes each, little-endian, taken modulo the vocabulary size
 *      + 8, less 4: negative ids, holes and ids past the end too), decoded
 *      by each of them.
 * The real-layout tokenizers are tests/fuzz/tok/{gpt2,llama3,mistral,
 * qwen3}.json: the files of tests/tok/data with every component and added
 * token but the vocabulary cut to the first 1000 merges
 * (tests/fuzz/make_seeds.sh), loaded at start-up from $IFT_FUZZ_SRCDIR
 * (fuzz.sh and replay.sh set it).  They are no seeds: mutating 30-60 kB of
 * JSON costs 15-25 ms an input, the small handmade seeds 1 ms.
 * Checked besides the sanitizers (abort: a crash report): every id encode
 * gives is below tok_vocab_size and has a token; the real-layout tokenizers
 * encode all valid text and decode their own ids and every id that has a
 * token. */
#include "fuzz_common.h"
#include "iftrain/tok.h"

static char tj_path[512];

static const char *const REAL[] = {"gpt2", "llama3", "mistral", "qwen3"};
#define NREAL (sizeof REAL / sizeof REAL[0])
static tok *real[NREAL];

static void die(const char *what, const char *name) {
  fprintf(stderr, "fuzz_tok: %s (%s): %s\n", what, name, ift_error_last());
  abort();
}

static void free_real(void) {
  for (size_t i = 0; i < NREAL; i++) tok_free(real[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  ift_error_quiet(1); /* no MPI: the tokenizer does not use it */
  fuzz_path(tj_path, sizeof tj_path, "tokenizer.json");
  const char *src = getenv("IFT_FUZZ_SRCDIR");
  if (!src) {
    fprintf(stderr, "fuzz_tok: set IFT_FUZZ_SRCDIR to the source tree (tests/fuzz/tok/*.json are its tokenizers)\n");
    abort();
  }
  for (size_t i = 0; i < NREAL; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/tests/fuzz/tok/%s.json", src, REAL[i]);
    if (tok_load(&real[i], p) != IFT_OK) die("the tokenizer does not load", p);
  }
  atexit(free_real);
  return 0;
}

/* every id below the vocabulary size and with a token */
static void check_ids(const tok *t, const tok_ids *v, const char *name) {
  for (size_t i = 0; i < v->n; i++)
    if (v->ids[i] < 0 || v->ids[i] >= tok_vocab_size(t) || !tok_token(t, v->ids[i])) {
      fprintf(stderr, "fuzz_tok: %s: encode gave id %d (vocabulary size %d) without a token\n", name, v->ids[i],
              tok_vocab_size(t));
      abort();
    }
}

/* May a call fail?  ANY: yes; NEVER: no (abort); REGEX: only on the match
 * limit of a regex of the file (a fuzzed file's patterns may backtrack
 * catastrophically). */
enum { ANY, NEVER, REGEX };
static void fail(int must_work, const char *what, const char *name) {
  if (must_work == NEVER || (must_work == REGEX && !strstr(ift_error_last(), "the regex failed"))) die(what, name);
}

/* decode with and without skipping the special tokens */
static void decode(const tok *t, const int *ids, size_t n, int must_work, const char *name) {
  for (int skip = 0; skip < 2; skip++) {
    char *s = NULL;
    size_t len = 0;
    if (tok_decode(t, ids, n, skip, &s, &len) != IFT_OK) {
      fail(must_work, "decode failed", name);
      continue;
    }
    if (!s || s[len] != 0) die("decode gave no NUL-terminated text", name);
    free(s);
  }
}

/* encode (both modes), check, decode (valid UTF-8 text) */
static void encode(tok *t, const char *text, size_t n, int must_work, const char *name) {
  for (int special = 0; special < 2; special++) {
    tok_ids v = {0};
    if (tok_encode(t, text, n, special, &v) == IFT_OK) {
      check_ids(t, &v, name);
      decode(t, v.ids, v.n, must_work, name);
      /* with offsets: the same ids, one range per id, inside the text, on
       * character boundaries */
      tok_ids w = {0};
      tok_offs o = {0};
      if (tok_encode_offsets(t, text, n, special, &w, &o) != IFT_OK) die("encode with offsets failed", name);
      if (w.n != v.n || o.n != w.n || (w.n && memcmp(w.ids, v.ids, w.n * sizeof *w.ids)))
        die("encode with offsets gave other ids", name);
      for (size_t i = 0; i < o.n; i++) {
        const size_t a = o.o[2 * i], b = o.o[2 * i + 1];
        if (a > b || b > n || (a < n && ((unsigned char)text[a] & 0xC0) == 0x80) ||
            (b < n && ((unsigned char)text[b] & 0xC0) == 0x80))
          die("an offset outside the text or inside a character", name);
      }
      tok_ids_free(&w);
      tok_offs_free(&o);
    } else {
      fail(must_work, "encode failed", name);
    }
    tok_ids_free(&v);
  }
}

/* '?' for every byte that does not start a valid UTF-8 sequence (as
 * tok_encode checks it: no surrogates, nothing above U+10FFFF) */
static size_t sanitize(const uint8_t *s, size_t n, char *out) {
  size_t i = 0, k = 0;
  while (i < n) {
    const uint8_t b = s[i];
    int need = b < 0x80 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
    int ok = need >= 0 && i + (size_t)need < n;
    for (int j = 1; ok && j <= need; j++) ok = (s[i + j] & 0xC0) == 0x80;
    if (ok && need >= 2) {
      const uint8_t c = s[i + 1];
      ok = !(b == 0xE0 && c < 0xA0) && !(b == 0xED && c > 0x9F) && !(b == 0xF0 && c < 0x90) && !(b == 0xF4 && c > 0x8F);
    }
    if (!ok) {
      out[k++] = '?';
      i++;
      continue;
    }
    memcpy(out + k, s + i, (size_t)need + 1);
    k += (size_t)need + 1;
    i += (size_t)need + 1;
  }
  out[k] = 0;
  return k;
}

static const char *const TEXTS[] = {
    "Hello world",
    "",
    " <s> [INST] x </s>[/INST]<unk>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|><think>\n\n</think>",
    "1234567 don't I'LL\r\n\r\n   \t x  y\xc2\xa0\xe2\x80\x83z",
    "\xc3\xa9 \xc3\xb1 caf\x65\xcc\x81 \xef\xac\x81 \xe2\x91\xa0 \xf0\x9f\x98\x80\xf0\x9f\x8f\xbd \xe2\x96\x81\xe2\x96\x81x",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9 <0x41>",
};

static void loaded(tok *t) {
  for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++) encode(t, TEXTS[i], strlen(TEXTS[i]), REGEX, "fuzzed file");
  /* the strings of the first and last 64 ids (the added tokens are usually
   * last), as one text, and those ids decoded */
  const int nv = tok_vocab_size(t);
  char text[8192];
  size_t n = 0;
  int ids[128], k = 0;
  for (int j = 0; j < nv && k < 128; j = j == 63 && nv - 64 > 64 ? nv - 64 : j + 1) {
    const char *s = tok_token(t, j);
    if (!s) continue;
    ids[k++] = j;
    const size_t l = strlen(s);
    if (n + l + 1 < sizeof text) {
      memcpy(text + n, s, l);
      n += l;
      if (j % 3) text[n++] = ' '; /* and some tokens side by side */
    }
  }
  encode(t, text, n, REGEX, "fuzzed file");
  decode(t, ids, (size_t)k, REGEX, "fuzzed file");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  const uint8_t *p = data + 1;
  const size_t n = size - 1;
  switch (data[0] % 3) {
  case 0: {
    if (fuzz_write(tj_path, p, n) != 0) return 0;
    tok *t = NULL;
    if (tok_load(&t, tj_path) == IFT_OK) {
      loaded(t);
      tok_free(t);
    }
    unlink(tj_path);
    break;
  }
  case 1: {
    char *text = malloc(n + 1);
    if (!text) return 0;
    const size_t m = sanitize(p, n, text);
    for (size_t i = 0; i < NREAL; i++) {
      if (m != n || memcmp(text, p, n)) { /* not UTF-8: refused, then the '?' version */
        tok_ids v = {0};
        if (tok_encode(real[i], (const char *)p, n, 0, &v) != IFT_ERR_ARG || v.n) die("bad UTF-8 not refused", REAL[i]);
        tok_ids_free(&v);
      }
      encode(real[i], text, m, NEVER, REAL[i]);
    }
    tok_id(real[0], text);
    free(text);
    break;
  }
  default: {
    const size_t k = n / 3;
    int *ids = malloc(sizeof(int) * (k + 1));
    if (!ids) return 0;
    for (size_t i = 0; i < NREAL; i++) {
      const uint32_t mod = (uint32_t)tok_vocab_size(real[i]) + 8;
      int all = 1;
      for (size_t j = 0; j < k; j++) {
        const uint32_t v = (uint32_t)p[3 * j] | (uint32_t)p[3 * j + 1] << 8 | (uint32_t)p[3 * j + 2] << 16;
        ids[j] = (int)(v % mod) - 4;
        all = all && tok_token(real[i], ids[j]);
      }
      decode(real[i], ids, k, all ? NEVER : ANY, REAL[i]);
    }
    free(ids);
  }
  }
  return 0;
}
