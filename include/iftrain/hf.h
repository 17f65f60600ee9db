/* hf — Hugging Face model files: safetensors and config.json.
 *
 * The foundation of `iftrain import` / `export`: reads and writes the two
 * formats of a Hugging Face model directory, and nothing else.  Depends only
 * on core and jansson (no MPI, model or checkpoint), so each rank can open
 * the files itself and the readers can be fuzzed alone.
 *
 * safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the data buffer (offsets relative to its start).  The
 * reader maps the file read-only and validates the header as the reference
 * Rust crate does; tensor reads convert F32 / BF16 / F16 to fp32 exactly and
 * touch only the pages of the requested block, so a rank can read its shard
 * of a file larger than its memory. */
#ifndef IFTRAIN_HF_H
#define IFTRAIN_HF_H

#include <stddef.h>
#include <stdint.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- safetensors */

/* Element types.  Only F32, F16 and BF16 can be read as fp32; the others are
 * accepted in a header (a file may carry them) and refused when read. */
typedef enum {
  HF_BOOL, HF_U8, HF_I8, HF_F8_E5M2, HF_F8_E4M3, HF_I16, HF_U16, HF_F16, HF_BF16,
  HF_I32, HF_U32, HF_F32, HF_F64, HF_I64, HF_U64,
  HF_DTYPE_COUNT
} hf_dtype;

/* "F32", "BF16", ... (the header's spelling); NULL for an invalid value. */
const char *hf_dtype_name(hf_dtype d);
/* Bytes per element. */
size_t hf_dtype_size(hf_dtype d);
/* Parse a header dtype string; 0 on success, -1 if unknown. */
int hf_dtype_parse(const char *s, hf_dtype *d);

typedef struct {
  const char *name;
  hf_dtype dtype;
  int ndim;
  const int64_t *shape; /* ndim extents (ndim 0: a scalar, one element) */
  int64_t numel;
  uint64_t begin, end;  /* byte offsets in the data buffer */
} hf_st_tensor;

typedef struct hf_st hf_st;

/* Map PATH read-only and validate its header.  IFT_ERR_IO when the file
 * cannot be opened or mapped, IFT_ERR_FORMAT (message: file, tensor, cause)
 * when its contents are wrong. */
ift_status hf_st_open(hf_st **out, const char *path);
void hf_st_close(hf_st *f);

const char *hf_st_path(const hf_st *f);
/* Tensors in data-offset order (the order of the bytes in the file). */
size_t hf_st_count(const hf_st *f);
const hf_st_tensor *hf_st_at(const hf_st *f, size_t i);
/* NULL when the file has no tensor of that name. */
const hf_st_tensor *hf_st_find(const hf_st *f, const char *name);
/* A "__metadata__" value, NULL when absent. */
const char *hf_st_meta(const hf_st *f, const char *key);

/* Read rows r0..r0+nr-1, columns c0..c0+nc-1 of tensor NAME as fp32 into
 * OUT (row i at out + i*ldo, ldo >= nc).  A 2-D tensor [R, C] is read as
 * is; a 1-D tensor [n] as a 1 x n matrix (r0 = 0, nr = 1), so a range of it
 * is (0, 1, c0, nc).  Other ranks: use hf_st_read_all.  IFT_ERR_FORMAT when
 * the tensor is missing, its dtype is not F32/F16/BF16 or its rank is wrong;
 * IFT_ERR_ARG when the block is outside the tensor. */
ift_status hf_st_read_block(const hf_st *f, const char *name, int64_t r0, int64_t nr,
                            int64_t c0, int64_t nc, float *out, int64_t ldo);
/* The whole tensor (any rank) as fp32, row-major: numel floats. */
ift_status hf_st_read_all(const hf_st *f, const char *name, float *out);

/* One tensor to write: fp32 data row-major, stored as DTYPE (HF_F32 or
 * HF_BF16, rounded to nearest even; NaN stays NaN). */
typedef struct {
  const char *name;
  hf_dtype dtype;
  int ndim;
  const int64_t *shape;
  const float *data;
} hf_st_wtensor;

typedef struct {
  const char *key, *value;
} hf_kv;

/* Write a safetensors file as the reference library lays it out: tensors
 * sorted by descending dtype alignment then name, data in that order, the
 * header compact JSON ("__metadata__" first when given) padded with spaces
 * to a multiple of 8 bytes.  Written to PATH.tmp, flushed, fsynced and
 * renamed, so PATH is either the old file or the whole new one.
 * IFT_ERR_ARG for bad input (duplicate names, other dtypes), IFT_ERR_IO when
 * the file cannot be created, IFT_ERR_WRITE when a write fails (disk full). */
ift_status hf_st_write(const char *path, const hf_st_wtensor *t, size_t n, const hf_kv *meta,
                       size_t nmeta);

/* fp32 <-> 16-bit formats (exact up-conversions; BF16 down-conversion rounds
 * to nearest even and keeps NaN a NaN). */
float hf_bf16_to_f32(uint16_t h);
uint16_t hf_f32_to_bf16(float x);
float hf_f16_to_f32(uint16_t h);

/* ---------------------------------------------------------------- config.json */

typedef enum { HF_ROPE_DEFAULT, HF_ROPE_LINEAR, HF_ROPE_LLAMA3 } hf_rope_type;

#define HF_MAX_TOKEN_IDS 8

typedef struct {
  char architecture[32]; /* LlamaForCausalLM | MistralForCausalLM */
  char model_type[16];   /* llama | mistral */
  int vocab_size, hidden_size, intermediate_size, num_hidden_layers;
  int num_attention_heads, num_key_value_heads, head_dim;
  int max_position_embeddings;
  double rms_norm_eps, rope_theta;
  int tie_word_embeddings;
  /* bos/eos: n = 0 when null or absent; *_is_list when the file gave a
   * list (written back the same way). */
  int n_bos, bos_token_id[HF_MAX_TOKEN_IDS], bos_is_list;
  int n_eos, eos_token_id[HF_MAX_TOKEN_IDS], eos_is_list;
  char torch_dtype[16]; /* "float32", "bfloat16", ... ("" when absent) */
  int sliding_window;   /* Mistral: 0 = null/absent */
  struct {
    hf_rope_type type;
    double factor, low_freq_factor, high_freq_factor;
    int original_max_position_embeddings;
  } rope_scaling; /* factors unused (0) for the types that have none */
} hf_config;

/* Read DIR/config.json (or the file itself).  Refuses, naming key and value,
 * whatever the model cannot represent: another architecture, attention or
 * MLP biases, hidden_act other than silu, an unknown rope_type, wrong JSON types, missing keys.
 * IFT_ERR_IO (missing file) or IFT_ERR_CONFIG. */
ift_status hf_config_read(const char *dir_or_file, hf_config *c);
/* The same from config.json's TEXT (NAME names it in messages). */
ift_status hf_config_parse(const char *text, const char *name, hf_config *c);
/* A config as transformers writes it: sorted keys, two-space indent,
 * Python's float spelling. */
ift_status hf_config_write(const char *path, const hf_config *c);

#ifdef __cplusplus
}
#endif
#endif
