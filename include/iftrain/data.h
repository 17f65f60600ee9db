/* data — tokenised data sets in HDF5, the built-in byte-level tokenizer,
 * JSONL conversion (iftrain prep) and the generator of the shipped task.
 *
 * File format (one file per split; docs/formats.md "Data sets"):
 *   /tokens     int32  [total tokens]   sequences concatenated
 *   /offsets    int64  [n + 1]          sequence i = tokens[offsets[i] : offsets[i+1]]
 *   /loss_mask  uint8  [total tokens]   1 on response (answer) tokens
 *   /chosen/{tokens,offsets,loss_mask}, /rejected/{...}   optional preference pairs
 *                                       (same row count n; /tokens = prompt+chosen)
 *   /ref_logp   float32 [n, 2]          optional cached reference log-probs
 *                                       (chosen, rejected), attribute "fingerprint"
 *   /prompt_len int32 [n]               optional: tokens of the prompt part of row i
 *   root attributes: format_version (int, 1), tokenizer (string: "bytes-v1",
 *   the byte tokenizer below, or "hf:" + the SHA-256 of a Hugging Face
 *   tokenizer.json), vocab_size (int: TOK_VOCAB, or the tokenizer's
 *   tok_vocab_size), content_sha256 (string, the content hash below),
 *   and from iftrain prep: source (string, path of the JSONL), sha256 (string:
 *   the SOURCE hash, of the JSONL bytes as read), utf8_replaced (int: invalid
 *   UTF-8 sequences, lone surrogates and NULs replaced by U+FFFD under
 *   --replace-invalid, 0 otherwise); with prep --tokenizer also
 *   tokenizer_sha256 (string: SHA-256 of tokenizer.json, 64 hex digits),
 *   chat_template (string: the chat_kind_name the conversational lines were
 *   rendered with, "none" when no line was), tokenizer_source (string: the
 *   --tokenizer path as given); and for generated sets: generator
 *   (string), seed (int).
 *   Training refuses a set whose tokenizer is not the model's (train, eval,
 *   prep --ref-logp: data_check_tokenizer).
 *
 * Content hash ("content_sha256", SHA-256 as 64 hex digits): the data as
 * trained on, independent of HDF5 layout and compression.  Bytes hashed, for
 * the groups "" (main rows), then /chosen and /rejected when present, each
 * in that order: tokens as int32 little-endian, offsets as int64
 * little-endian, loss_mask as bytes.  Files written before this attribute
 * existed have none (data_set.content_sha256 is then "").  /ref_logp is not
 * part of it (a cache derived from the content and a model).
 *
 * Values the loader accepts (data_open): offsets start at 0, never decrease
 * and end at the token count; token ids in [0, vocab_size); loss_mask values
 * 0 or 1 only; at least one loss_mask value 1 among the main rows.
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
#include "iftrain/tok.h"

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
  char tokenizer[80];  /* "bytes-v1" or "hf:" + tokenizer_sha256 */
  char tokenizer_sha256[65]; /* hf sets: SHA-256 of tokenizer.json ("" otherwise) */
  char chat_template[32];    /* hf sets: chat_kind_name or "none" ("" otherwise) */
  char tokenizer_source[1024]; /* hf sets: the --tokenizer path given to prep */
  int has_pairs;       /* /chosen and /rejected present */
  int has_ref_logp;
  int64_t *offsets;    /* n + 1, read at open (small) */
  int64_t *ch_offsets, *rj_offsets; /* when has_pairs */
  float *ref_logp;     /* [n, 2] (chosen, rejected) when has_ref_logp, read at open */
  char ref_fingerprint[80]; /* its "fingerprint" attribute */
  char ref_source[1024];    /* its "reference" attribute (checkpoint path at prep time) */
  char content_sha256[65];  /* stored content hash ("" in files that predate it) */
  long ntrainable;     /* loss_mask values 1 among the main rows (all ranks) */
  int64_t file;        /* hid_t */
} data_set;

/* Open and validate (every rank of comm).  Fails clearly on: missing file,
 * not HDF5, missing dataset, wrong dtype or rank, offsets not starting at 0 /
 * decreasing / past the end, mask length != token count, tokens outside
 * [0, vocab_size), loss_mask values other than 0 and 1 (naming the row), no
 * trainable token at all ("nothing to train on"), format_version unknown.
 * If expect_vocab > 0 the file's vocab_size must not exceed it
 * (model.vocab_size).
 * Token and mask values are checked once, each rank reading a contiguous
 * slice of the rows (1/size of the file per rank); the ranks agree on the
 * outcome (dist_agree), so all of them return the same status and the same
 * error message (the first bad row's) or none does.  The content hash is
 * read (d->content_sha256) but not recomputed here: that needs every byte on
 * one process -- see data_verify_content. */
ift_status data_open(data_set *d, const char *path, MPI_Comm comm, int expect_vocab);
/* Recompute the content hash of the file at path (serial, reads every
 * dataset once) into hex; IFT_OK when it matches the stored content_sha256,
 * IFT_ERR_FORMAT naming both hashes when it does not, or when the file has
 * none. */
ift_status data_verify_content(const char *path, char hex[65]);
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
 * renamed) and free.  On a writer of data_writer_create_comm: collective,
 * below. */
ift_status data_writer_close(data_writer *w);
/* Free without writing. */
void data_writer_discard(data_writer *w);
/* A writer over the ranks of COMM (every rank calls create, the attribute
 * setters with the same values, and close or discard): each rank adds its
 * own rows in order, and data_writer_close writes all of them collectively
 * with parallel HDF5 into one file, rank 0's rows first, then rank 1's, ...
 * The file equals the one a single writer given every row in that order
 * writes (the same datasets and content_sha256).  A rank may have no rows.
 * Close fails on every rank when it fails on one, and then nothing is
 * written (PATH.tmp, renamed by rank 0 when complete).  Decide together
 * (dist_agree) whether to close or discard. */
ift_status data_writer_create_comm(data_writer **w, const char *path, int vocab_size, int pairs,
                                   MPI_Comm comm);

/* 1 when a and b name the same existing file (same st_dev and st_ino, so
 * also through links or another spelling of the path), else 0.  Writers use
 * it to refuse overwriting their own input. */
int data_same_file(const char *a, const char *b);
/* 1 when path is an HDF5 file with the root attributes and datasets of an
 * iftrain data set (tokenizer, format_version, /tokens, /offsets). */
int data_file_is_data_set(const char *path);

/* The data set at d may train the model whose origin (ckpt_origin JSON,
 * NULL: a model iftrain built, tokenizer bytes-v1) is given; MODEL names it
 * in messages.  IFT_ERR_CONFIG naming both tokenizers (hashes, the data
 * set's tokenizer_source, the model's source directory) when they differ;
 * then IFT_ERR_FORMAT when the set's vocab_size exceeds model_vocab (> 0;
 * data_open's check, made here after the tokenizer's, whose message says
 * more).  A Hugging Face model without a recorded tokenizer is accepted
 * when the vocabulary fits, with a warning on stderr (when warn). */
ift_status data_check_tokenizer(const data_set *d, const char *origin, const char *model, int model_vocab,
                                int warn);
/* The tokenizer of a model from its origin (ckpt_origin JSON or NULL):
 * mtok = DATA_TOKENIZER for a model iftrain built (no origin), "hf:" +
 * tokenizer.json's sha256 for a Hugging Face directory (or a checkpoint
 * imported from one) whose tokenizer was recorded, "" when none was; msrc =
 * the source directory ("" without one). */
void data_origin_tokenizer(const char *origin, char mtok[80], char msrc[1100]);
/* The eos_token of DIR/tokenizer_config.json (a string or an AddedToken
 * object) as an id of t; -1 when dir is "" or the field is absent.
 * IFT_ERR_FORMAT when the file cannot be read as JSON or the token is not
 * one of t's. */
ift_status data_tokenizer_eos(const char *dir, tok *t, int *eos);
/* The same for any special-token field of tokenizer_config.json (key:
 * "bos_token", "eos_token", ...). */
ift_status data_tokenizer_special(const char *dir, tok *t, const char *key, int *id);

/* ---- iftrain prep */
typedef struct {
  int max_len;      /* truncate rows longer than this (0 = no limit) */
  int skip_bad;     /* skip malformed lines instead of stopping */
  int replace_invalid; /* replace bad UTF-8 / lone surrogates / NUL by U+FFFD */
  const char *tokenizer;     /* NULL: bytes-v1; else a Hugging Face directory or tokenizer.json */
  const char *chat_template; /* NULL: recognised from tokenizer_config.json; else a chat_kind_name */
  int progress;     /* print progress to stderr (at most every 2 s) */
  long n_read, n_written, n_truncated, n_skipped;
  long n_replaced;  /* sequences replaced under replace_invalid (written rows) */
  long n_tokens;    /* tokens of the main rows written */
  long n_straddle;  /* plain prompt/completion rows with a token across the boundary */
  long long bytes;  /* input bytes read */
  double seconds;   /* time reading and converting */
  char used_template[32]; /* --tokenizer: the chat template used, or "none" */
} data_prep_stats;
/* JSONL -> HDF5.  Without a tokenizer (bytes-v1), line formats:
 * {"prompt","response"} and {"prompt","completion"}, {"prompt","chosen",
 * "rejected"} (main rows = prompt + chosen), {"messages":[{"role","content"}]},
 * the conversational forms of the first two (message lists: the layout of
 * "messages", loss on the answer's assistant contents), and {"text"}
 * (<bos> TEXT <eos>, loss on TEXT <eos>).
 * With st->tokenizer, the ids are the Hugging Face tokenizer's:
 *   {"messages"}: chat_render with the model's template, chat_encode's
 *     ids and assistant-only mask;
 *   {"prompt", "completion"|"response"} and {"prompt","chosen","rejected"}
 *     as message lists: prompt + answer messages rendered as one
 *     conversation, loss on the answer's assistant turns only;
 *   the same as strings (no template, as TRL): tok_encode(prompt + answer,
 *     add_special) + the EOS of tokenizer_config.json when there is one;
 *     loss on the tokens starting at or after the prompt's end (a token
 *     across the boundary is prompt, counted in n_straddle) and the EOS;
 *   {"text"}: tok_encode(text, add_special) + EOS, loss on all but what the
 *     post-processor puts before the text (the BOS: never a target).
 *   A conversation the template refuses is a bad line.
 * Every string must be valid UTF-8: invalid byte sequences, overlong forms,
 * encoded surrogates, code points past U+10FFFF, lone \uD800-\uDFFF escapes
 * and NUL (raw or \u0000) are errors (or, with replace_invalid, each is
 * replaced by U+FFFD and counted); escaped surrogate pairs decode to their
 * code point.  A UTF-8 byte order mark at the start of the file is skipped.
 * A malformed line stops with "FILE:LINE:COLUMN: cause" (COLUMN in bytes,
 * 1-based) or is skipped with skip_bad.  Refused with IFT_ERR_ARG before
 * reading anything: out being the input itself (also through another path
 * or a link), or an existing file that is not an iftrain data set.  The old
 * out is replaced only when the new one is complete (OUT.tmp, renamed).
 * No trainable token in the result (every answer truncated away by max_len)
 * is IFT_ERR_FORMAT. */
ift_status data_prep_jsonl(const char *in, const char *out, data_prep_stats *st);
/* The same on every rank of comm (collective): the file is cut into one
 * byte range per rank (a line belongs to the rank where it starts), each
 * rank converts its lines, and the rows are written collectively
 * (data_writer_create_comm) in file order: the same data set as one rank
 * writes.  The first bad line of the file is the one reported; st's counts
 * are the totals over the ranks; progress is printed by rank 0 for its
 * share.  data_prep_jsonl is this on MPI_COMM_SELF. */
ift_status data_prep_jsonl_comm(const char *in, const char *out, data_prep_stats *st, MPI_Comm comm);

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
