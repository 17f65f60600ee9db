/* Internals of the tokenizer module shared by its files (not installed). */
#ifndef IFTRAIN_TOK_INT_H
#define IFTRAIN_TOK_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "iftrain/tok.h"

/* ------------------------------------------------------------ buffers */

/* A growable byte string. */
typedef struct {
  char *s;
  size_t n, cap;
} tbuf;
int tbuf_put(tbuf *b, const void *p, size_t n); /* 0, or -1 when out of memory */
void tbuf_free(tbuf *b);

/* The origin of one byte of a working string: the byte range [a, b) of
 * the original text it comes from (whole characters: the library's
 * alignments).  Tracked only when offsets are asked for (tok_encode_offsets). */
typedef struct {
  size_t a, b;
} tspan;
typedef struct {
  tspan *v;
  size_t n, cap;
} tspans;
/* Append n spans: copies of p[0..n), or n copies of *one when p is NULL. */
int tspans_put(tspans *b, const tspan *p, const tspan *one, size_t n);
void tspans_free(tspans *b);

/* A list of pieces: each a byte range of one shared buffer, with a flag
 * saying whether the piece starts at offset 0 of the original text (for
 * Metaspace's prepend_scheme "first"), and when tracked (org non-NULL on
 * adding) the origin of every byte in org, parallel to text. */
typedef struct {
  size_t off, len;
  int first;
} tpiece;
typedef struct {
  tbuf text;
  tspans org;
  tpiece *p;
  size_t n, cap;
} tpieces;
/* org: the origins of s[0..n), or NULL when untracked. */
int tpieces_add(tpieces *l, const char *s, size_t n, int first, const tspan *org);
void tpieces_free(tpieces *l);

/* ------------------------------------------------------------ hash maps */

/* string -> int, open addressing; keys are copied into the map. */
typedef struct {
  char **keys;
  uint32_t *lens;
  int *vals;
  size_t cap, n;
} smap;
int smap_put(smap *m, const char *k, size_t n, int v); /* replaces; -1 out of memory */
int smap_get(const smap *m, const char *k, size_t n, int *v); /* 1 found */
void smap_free(smap *m);

/* (id, id) -> (rank, merged id) of the BPE merges. */
typedef struct {
  uint64_t *keys; /* (a << 32 | b) + 1; 0 = empty */
  int *rank, *id;
  size_t cap, n;
} pmap;
int pmap_put(pmap *m, int a, int b, int rank, int id);
int pmap_get(const pmap *m, int a, int b, int *rank, int *id);
void pmap_free(pmap *m);

/* ------------------------------------------------------------ UTF-8 */

/* Decode one code point at s[0..n): its length (1-4), or -1 when invalid. */
int tok_utf8_next(const unsigned char *s, size_t n, int32_t *cp);
/* Append cp as UTF-8 (1-4 bytes) to out; the length. */
int tok_utf8_put(int32_t cp, char *out);
/* Unicode White_Space (Rust's char::is_whitespace, regex \s). */
int tok_is_space(int32_t cp);
/* Rust regex \w (Unicode word character). */
int tok_is_word(int32_t cp);
/* Rust char::is_numeric (general categories Nd, Nl, No). */
int tok_is_numeric(int32_t cp);

/* ------------------------------------------------------------ the BPE model */

typedef struct {
  smap vocab;           /* token -> id */
  char **vocab_r;       /* id -> token (NULL for unused ids) */
  int nvocab;           /* 1 + largest id */
  pmap merges;
  int unk;              /* unk id, -1 when none */
  int fuse_unk, byte_fallback, ignore_merges;
  int byte_id[256];     /* <0xNN> ids (-1 when absent) */
  smap cache;           /* piece -> index into cache_ids (offset), bounded */
  int *cache_ids;       /* [len, id, id, ...] runs */
  size_t cache_n, cache_cap;
} tok_bpe;

/* Append the ids of one pre-token (a UTF-8 piece) to out, and when lens is
 * not NULL the bytes of the piece each id covers; 0 or -1 (memory). */
int tok_bpe_encode(tok_bpe *m, const char *s, size_t n, tok_ids *out, tok_ids *lens);
void tok_bpe_free(tok_bpe *m);


#endif
