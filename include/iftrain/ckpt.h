/* ckpt — checkpoints in one HDF5 file each, written collectively by every
 * rank with parallel HDF5 (docs/formats.md "Checkpoints").
 *
 *   /model/<HF name>   float32, GLOBAL shape [out, in] (vectors [n]); each
 *                      tensor-parallel shard is written by the ranks of data-
 *                      parallel replica 0 as a hyperslab; attributes of /model
 *                      carry the model config under HF config.json names.
 *                      "origin" (when known): JSON text naming the Hugging Face
 *                      directory the weights were imported from, the SHA-256
 *                      of its files and the tokenizer's identity (ckpt_origin).
 *   /train             attributes: step, epoch, cursor, run_id, format_version,
 *                      config (text), layout ("dp x tp"), code_version.
 *
 * A checkpoint directory belongs to one run: <dir>/RUN names its run id, and
 * every checkpoint carries it; a fresh run refuses a directory of another
 * run, and rotation deletes only checkpoints of the run that writes.
 *
 * Writes go to <dir>/step_N.h5.tmp, are flushed and closed, renamed to
 * step_N.h5, then <dir>/latest (a one-line file naming the checkpoint) is
 * replaced atomically (write latest.tmp, rename); the last ckpt.keep are
 * kept.  An interrupted write leaves the previous checkpoint valid. */
#ifndef IFTRAIN_CKPT_H
#define IFTRAIN_CKPT_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "iftrain/core.h"
#include "iftrain/hf.h"
#include "iftrain/model.h"
#include "iftrain/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CKPT_RUN_ID_LEN = 33 }; /* 32 hex digits + NUL */

typedef struct {
  long step, epoch, cursor;  /* optimizer steps done; scheduler position */
  const char *config_text;   /* effective config (may be NULL) */
  int dp, tp;                /* layout written with */
  const char *run_id;        /* the run's identity (may be NULL: none) */
  const char *data_hash;     /* content_sha256 of the training data set (may be NULL) */
  const char *origin;        /* where the weights came from (ckpt_origin; may be NULL) */
} ckpt_meta;

/* What a resume restores besides the tensors (ckpt_load with ts != NULL,
 * which requires a complete /train group). */
typedef struct {
  long step, epoch, cursor;
  char run_id[CKPT_RUN_ID_LEN]; /* "" in checkpoints written before run ids */
  char data_hash[65];           /* content_sha256 of the data trained on ("" if unknown) */
  char *config_text;            /* the config the run wrote (free with ckpt_train_state_free) */
} ckpt_train_state;
void ckpt_train_state_free(ckpt_train_state *ts);

/* ckpt_load flags: CKPT_VERIFY checks every tensor read against its stored
 * checksum (the sum over all ranks' shards). */
enum { CKPT_VERIFY = 1 };

/* Collective over `world`; the data-parallel replica index selects who
 * writes (dp_rank 0).  opt (may be NULL) adds /optim/{m,v}/<name> and the
 * step count t.  *path_out (optional, size >= 1100) receives the file. */
ift_status ckpt_save(const char *dir, int keep, model *m, const optim_state *opt,
                     const ckpt_meta *meta, MPI_Comm world, int dp_rank, char *path_out);
/* One checkpoint file at `path` (via path.tmp, renamed when every rank
 * wrote its part; space reserved first), without `latest` or rotation:
 * iftrain import.  Collective over world, agreed. */
ift_status ckpt_save_file(const char *path, model *m, const optim_state *opt,
                          const ckpt_meta *meta, MPI_Comm world, int dp_rank);
/* Read /model into the model's shard (any layout: each rank reads its own
 * hyperslab), and when opt / ts are not NULL the optimizer state and the
 * scheduler position (range-checked).  Checks every architecture key of the
 * model config, every shape, and with CKPT_VERIFY every checksum.  Collective
 * over comm: a failure on any rank is agreed, so every rank returns it. */
ift_status ckpt_load(const char *path, model *m, optim_state *opt, ckpt_train_state *ts,
                     MPI_Comm comm, unsigned flags);
/* A new random run id (32 hex digits). */
void ckpt_new_run_id(char out[CKPT_RUN_ID_LEN]);
/* Claim `dir` for run `run_id` (collective over comm; rank 0 does the file
 * work): create it, refuse it when it holds another run's checkpoints (a
 * fresh run must not overwrite them) or its RUN file names another run,
 * write <dir>/RUN, and check that a file can be written there -- before any
 * training, so a bad ckpt.dir is found at once, not at the first save.
 * `resumed`: the run continues a checkpoint, so checkpoints without a run
 * id (written before run ids existed) are its own. */
ift_status ckpt_dir_claim(const char *dir, const char *run_id, int resumed, MPI_Comm comm);
/* Where the weights at PATH came from, as JSON text in *out (malloc'd; NULL
 * when unknown): for a Hugging Face directory
 *   {"format": "huggingface", "source": absolute path,
 *    "files": {name: sha256, ...}  (config, weights, tokenizer and chat files),
 *    "config": config.json's object,
 *    "tokenizer": {"class": tokenizer_config.json's tokenizer_class or null,
 *                  "file": "tokenizer.json", "sha256": ...} or null}
 * for a checkpoint the /model "origin" it carries (NULL if none).  Serial;
 * hashes every listed file (about 1 GB/s). */
ift_status ckpt_origin(const char *path, char **out);
/* The same computed by rank 0 of comm and broadcast (failures agreed). */
ift_status ckpt_origin_shared(const char *path, char **out, MPI_Comm comm);
/* The origin's tokenizer and chat files (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, tokenizer.model, ...) and licence files (LICENSE,
 * NOTICE, USE_POLICY.md, ...) copied from its source
 * directory into DIR after checking each file's recorded SHA-256; a file
 * missing or changed since the import is an IFT_ERR_FORMAT naming it.
 * *ncopied: files copied (0 when the origin is not a directory). */
ift_status ckpt_origin_copy_tokenizer(const char *origin, const char *dir, int *ncopied);

/* The model config stored with a checkpoint (HF config.json names). */
ift_status ckpt_read_config(const char *path, model_config *c);
/* Print step, layout, model config, optimizer, size (and the stored
 * config text with show_config). */
ift_status ckpt_info(const char *path, FILE *out, int show_config);
/* Check every tensor's presence, dtype, global shape and checksum; the
 * first damaged tensor is named in the error. */
ift_status ckpt_verify(const char *path, FILE *out, long *ntensors);
/* Write only /model (for inference) to out_path (via out_path.tmp). */
ift_status ckpt_export_model(const char *path, const char *out_path);
/* Fingerprint of a checkpoint's model (16 hex digits in out[17]): a hash of
 * the model config and every /model tensor's name and stored checksum, so
 * it identifies the weights without reading them.  Of a Hugging Face
 * directory: the same hash over the checksums of its tensors read as fp32,
 * so a directory and its import have the same fingerprint.  Serial,
 * read-only. */
ift_status ckpt_fingerprint(const char *path, char out[17]);
/* Checksum of a shard: sums over shards give the whole tensor's. */
uint64_t ckpt_checksum_part(const float *x, int rows, int cols, int row0, int col0, int gcols);
/* Resolve "auto" (latest in dir, if any), a path, or "none" -> path or "".
 * With "auto" and no `latest`, the newest step_N.h5 of dir is taken. */
ift_status ckpt_resolve(char *out, size_t n, const char *resume, const char *dir);
/* A checkpoint named by the user: a file, a directory (its latest), or a
 * `latest` pointer file -> the checkpoint file. */
ift_status ckpt_resolve_any(char *out, size_t n, const char *path);

/* ---- Hugging Face model directories (src/ckpt/hfload.c): wherever a
 * checkpoint is read, a directory with config.json and safetensors weights
 * is accepted too (weights only: no optimizer state, no /train). */
int ckpt_is_hf_dir(const char *path);
/* config.json -> model config (hc, if not NULL, receives the whole of it);
 * IFT_ERR_UNIMPL names what this build's model cannot represent. */
ift_status ckpt_hf_config(const char *dir, model_config *c, hf_config *hc);
/* Every rank reads the blocks of its own shards from the safetensors files
 * (F32, BF16, F16 -> fp32 exactly); collective over comm (agreed). */
ift_status ckpt_hf_load(const char *dir, model *m, MPI_Comm comm);
/* ckpt_origin of a directory (serial). */
ift_status ckpt_hf_origin(const char *dir, char **out);
/* The origin of a new model whose tokenizer is the Hugging Face tokenizer in
 * DIR (model.tokenizer): its tokenizer files' hashes and the tokenizer's
 * identity as for an import, and the BOS/EOS ids export writes into
 * config.json (-1: none). */
ift_status ckpt_tokenizer_origin(const char *dir, int bos, int eos, char **out);

#ifdef __cplusplus
}
#endif
#endif
