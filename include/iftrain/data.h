/* data — tokenised data sets in HDF5, the built-in byte-level tokenizer,
 * JSONL conversion (iftrain prep) and the generator of the shipped task.
 *
 * File format (one file per split; DESIGN.md "Data set file"):
 *   /tokens     int32  [total tokens]   sequences concatenated
 *   /offsets    int64  [n + 1]          sequence i = tokens[offsets[i] : offsets[i+1]]
 *   /loss_mask  uint8  [total tokens]   1 on response (answer) tokens
 *   /chosen/{tokens,offsets,loss_mask}, /rejected/{...}   optional preference pairs
 *                                       (same row count n; /tokens = prompt+chosen)
 *   /ref_logp   float32 [n, 2]          optional cached reference log-probs
 *                                       (chosen, rejected), attribute "fingerprint"
 *   /prompt_len int32 [n]               optional: tokens of the prompt part of row i
 *   root attributes: format_version (int, 1), tokenizer (string, "bytes-v1"),
 *   vocab_size (int), source (string), sha256 (string, of the source JSONL),
 *   and for generated sets: generator (string), seed (int).
 *
 * Readers open the file with the MPI-IO driver on a communicator (every rank
 * of it calls data_open) and read only the rows they need by hyperslab
 * selection. */
#ifndef IFTRAIN_DATA_H
#define IFTRAIN_DATA_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- byte-level tokenizer "bytes-v1": ids 0..255 are bytes, then specials. */
enum {
  TOK_PAD = 256,
  TOK_BOS = 257,
  TOK_EOS = 258,
  TOK_SYSTEM = 259,
  TOK_USER = 260,
  TOK_ASSISTANT = 261,
  TOK_VOCAB = 262 /* smallest vocab_size a model needs for this tokenizer */
};
#define DATA_TOKENIZER "bytes-v1"
#define DATA_FORMAT_VERSION 1

/* Bytes of s -> ids; returns the count (at most cap). */
int data_tokenize(int *out, int cap, const char *s, size_t n);
/* ids -> text; specials are written as <pad> <bos> <eos> <system> <user>
 * <assistant>.  Returns the length written (NUL-terminated, truncated to cap). */
size_t data_detokenize(char *out, size_t cap, const int *ids, int n);

/* A sequence being assembled: prompt tokens (mask 0) then answer (mask 1).
 * Layout of every example (documented chat template):
 *   prompt/response:  <bos> PROMPT <assistant> RESPONSE <eos>
 *     mask 1 on RESPONSE and <eos>
 *   messages:         <bos> {<system>|<user>|<assistant>} CONTENT ... <eos>
 *     mask 1 on the content of assistant turns and the final <eos>
 *     (the role token of a turn is prompt). */

typedef struct {
  char path[1024];
  long n;              /* sequences */
  long ntokens;
  int vocab_size;
  int format_version;
  char tokenizer[32];
  int has_pairs;       /* /chosen and /rejected present */
  int has_ref_logp;
  int64_t *offsets;    /* n + 1, read at open (small) */
  int64_t *ch_offsets, *rj_offsets; /* when has_pairs */
  float *ref_logp;     /* [n, 2] (chosen, rejected) when has_ref_logp, read at open */
  char ref_fingerprint[80]; /* its "fingerprint" attribute */
  char ref_source[1024];    /* its "reference" attribute (checkpoint path at prep time) */
  int64_t file;        /* hid_t */
} data_set;

/* Open and validate (every rank of comm).  Fails clearly on: missing file,
 * not HDF5, missing dataset, wrong dtype or rank, offsets not starting at 0 /
 * not increasing / past the end, mask length != token count, tokens outside
 * [0, vocab_size), format_version unknown.  If expect_vocab > 0 the file's
 * vocab_size must not exceed it (model.vocab_size). */
ift_status data_open(data_set *d, const char *path, MPI_Comm comm, int expect_vocab);
void data_close(data_set *d);
/* Length of row i (tokens). */
int data_len(const data_set *d, long i);
/* Length of row i of group NULL (main rows), "chosen" or "rejected"
 * (0 when the set has no such group). */
int data_group_len(const data_set *d, const char *group, long i);
/* Longest chosen or rejected row (0 without pairs). */
long data_max_pair_len(const data_set *d);
/* Read row i (independent I/O, hyperslab) into tokens/mask (capacity cap;
 * longer rows are truncated to cap); *len receives the count.  group is
 * NULL (main rows), "chosen" or "rejected". */
ift_status data_read_row(data_set *d, const char *group, long i, int *tokens, uint8_t *mask,
                         int cap, int *len);

/* Store the reference log-probs [n, 2] of every pair in /ref_logp with the
 * reference checkpoint's fingerprint (and its path, for messages).  Serial,
 * on one process, with the file closed everywhere else: the file is copied to
 * PATH.tmp, the dataset (re)written there, and the copy renamed over PATH,
 * so an interrupted write leaves the original intact. */
ift_status data_write_ref_logp(const char *path, const float *ref, long n,
                               const char *fingerprint, const char *reference);

/* ---- writing (iftrain prep, generator, tests) */
typedef struct data_writer data_writer;
/* Create a file for up to any number of rows (buffers grow); pairs = 1 adds
 * /chosen and /rejected. */
ift_status data_writer_create(data_writer **w, const char *path, int vocab_size, int pairs);
/* Append a row: main tokens/mask, and when pairs: chosen and rejected rows. */
ift_status data_writer_add(data_writer *w, const int *tok, const uint8_t *mask, int len,
                           const int *ctok, const uint8_t *cmask, int clen, const int *rtok,
                           const uint8_t *rmask, int rlen);
/* Set a string or int root attribute before closing. */
void data_writer_attr_str(data_writer *w, const char *name, const char *value);
void data_writer_attr_int(data_writer *w, const char *name, long value);
/* Write everything (serial HDF5 calls on the calling rank; to PATH.tmp, then
 * renamed) and free. */
ift_status data_writer_close(data_writer *w);
/* Free without writing. */
void data_writer_discard(data_writer *w);
/* SHA-256 of a buffer as 64 hex digits. */
void data_sha256_hex(const void *data, size_t n, char out[65]);

/* ---- iftrain prep */
typedef struct {
  int max_len;      /* truncate rows longer than this (0 = no limit) */
  int skip_bad;     /* skip malformed lines instead of stopping */
  long n_read, n_written, n_truncated, n_skipped;
} data_prep_stats;
/* JSONL -> HDF5.  Line formats: {"prompt","response"}, {"prompt","chosen",
 * "rejected"} (main rows = prompt + chosen), {"messages":[{"role","content"}]}.
 * A malformed line stops with its line number (or is skipped). */
ift_status data_prep_jsonl(const char *in, const char *out, data_prep_stats *st);

/* ---- the shipped task generator */
/* Write JSONL of `n` examples of task `name` ("arith": multi-digit addition
 * and subtraction worked out digit by digit) with seed `seed`: each line has
 * prompt, response (= chosen, correct) and rejected (plausible wrong
 * working: a dropped carry/borrow). */
ift_status data_generate(const char *name, const char *out_jsonl, long n, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
