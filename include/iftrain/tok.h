/* tok — a Hugging Face tokenizer.json in C: the ids the `tokenizers`
 * library gives, for the Llama family's tokenizers.
 *
 * Encode runs the library's pipeline: added tokens are split out first
 * (those with normalized = false on the raw text, then the others on the
 * normalized pieces; leftmost-longest matches, lstrip / rstrip /
 * single_word), the normalizer (NFC, NFKC, NFD, NFKD, Prepend, Replace,
 * Sequence), the pre-tokenizer (ByteLevel, Split with the file's
 * own regex compiled by PCRE2 with Unicode properties, Metaspace, Digits,
 * Sequence), the BPE model (merges by rank, ignore_merges, byte_fallback,
 * unk / fuse_unk) and with add_special the post-processor
 * (TemplateProcessing, ByteLevel, Sequence).  Decode runs the decoder
 * (ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence).
 * A component the file names but this module does not implement is refused
 * at load with its name: nothing is approximated.
 *
 * A tok is read-only after load except for its BPE cache and its regex
 * match data (encode and decode): use one per thread. */
#ifndef IFTRAIN_TOK_H
#define IFTRAIN_TOK_H

#include <stddef.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tok tok;

/* Load PATH: a tokenizer.json, or a directory holding one.  IFT_ERR_IO when
 * it cannot be read, IFT_ERR_FORMAT (naming the file and the JSON path) when
 * it is malformed or its ids are not those the library would give (added
 * tokens numbered otherwise, two tokens with one id, template ids outside
 * the vocabulary), IFT_ERR_UNIMPL naming an unsupported component. */
ift_status tok_load(tok **out, const char *path);
void tok_free(tok *t);

/* 1 + the largest id of the vocabulary and the added tokens. */
int tok_vocab_size(const tok *t);
/* The id of a token string (added tokens first), -1 when none. */
int tok_id(const tok *t, const char *token);
/* The string of an id (an added token's content), NULL when none. */
const char *tok_token(const tok *t, int id);
/* 1 when id is an added token marked special. */
int tok_is_special(const tok *t, int id);
/* SHA-256 of the tokenizer.json bytes (64 hex digits). */
const char *tok_sha256(const tok *t);

/* A growable id list. */
typedef struct {
  int *ids;
  size_t n, cap;
} tok_ids;
void tok_ids_free(tok_ids *v);
/* Append one id; 0, or -1 when out of memory. */
int tok_ids_push(tok_ids *v, int id);

/* Append the ids of TEXT (LEN bytes of UTF-8) to OUT; add_special runs the
 * post-processor (e.g. the BOS of TemplateProcessing).  Every id is below
 * tok_vocab_size and decodable.  IFT_ERR_ARG when TEXT is not valid UTF-8,
 * or when a regex of the file exceeds PCRE2's match limit on it (a
 * catastrophically backtracking pattern: the error names the component). */
ift_status tok_encode(tok *t, const char *text, size_t len, int add_special, tok_ids *out);
/* Byte ranges of the text, one per id: o[2*i], o[2*i+1] for the i-th id
 * appended by tok_encode_offsets. */
typedef struct {
  size_t *o;
  size_t n, cap; /* n ranges (2*n values) */
} tok_offs;
void tok_offs_free(tok_offs *v);
/* tok_encode that also appends, for every id it appends, the byte range
 * [a, b) of TEXT the id comes from: the library's Encoding offsets in bytes
 * (its char offsets widened to whole characters).  An added token covers
 * its match with the whitespace lstrip / rstrip took; a token of part of a
 * character (byte-level, <0xNN>) covers the character; a character a
 * normalizer or pre-tokenizer inserted (Prepend, Metaspace's or ByteLevel's
 * prefix) belongs to the character it precedes; a replaced run (Replace, a
 * changed NFC cluster) covers the run; ids the post-processor adds are
 * (0, 0).  ByteLevel's trim_offsets is applied as the library applies it. */
ift_status tok_encode_offsets(tok *t, const char *text, size_t len, int add_special, tok_ids *out,
                              tok_offs *offs);
/* The first id (from index 0) whose range holds byte x, -1 when none: the
 * library's Encoding.char_to_token. */
long tok_offs_find(const tok_offs *v, size_t x);

/* The text of N ids (malloc'd, NUL-terminated, *len bytes) as the
 * library's decode(ids, skip_special_tokens) gives it.  IFT_ERR_ARG for an
 * id outside the vocabulary or of a hole in it (the library decodes those
 * to nothing), or a decoder regex over its match limit. */
ift_status tok_decode(const tok *t, const int *ids, size_t n, int skip_special, char **text,
                      size_t *len);

#ifdef __cplusplus
}
#endif
#endif
