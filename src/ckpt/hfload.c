/* ckpt/hfload — a Hugging Face model directory as a source of weights:
 * config.json -> model_config, and every rank reading the blocks of its own
 * shards straight from the safetensors files (one file, or the shards named
 * by model.safetensors.index.json).  Nothing is gathered on one rank, so a
 * model larger than a node loads on many. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iftrain/ckpt.h"
#include "iftrain/dist.h"
#include "iftrain/hf.h"

int ckpt_is_hf_dir(const char *path) {
  struct stat sb;
  char cj[1200];
  snprintf(cj, sizeof cj, "%s/config.json", path);
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && access(cj, R_OK) == 0;
}

ift_status ckpt_hf_config(const char *dir, model_config *c, hf_config *hc_out) {
  hf_config hc;
  IFT_TRY(hf_config_read(dir, &hc));
  if (hc_out) *hc_out = hc;
  *c = model_config_default();
  c->vocab_size = hc.vocab_size;
  c->hidden_size = hc.hidden_size;
  c->intermediate_size = hc.intermediate_size;
  c->num_hidden_layers = hc.num_hidden_layers;
  c->num_attention_heads = hc.num_attention_heads;
  c->num_key_value_heads = hc.num_key_value_heads;
  c->max_position_embeddings = hc.max_position_embeddings;
  c->tie_word_embeddings = hc.tie_word_embeddings;
  c->rms_norm_eps = hc.rms_norm_eps;
  c->rope_theta = hc.rope_theta;
  c->head_dim = hc.head_dim == hc.hidden_size / hc.num_attention_heads &&
                        hc.hidden_size % hc.num_attention_heads == 0
                    ? 0
                    : hc.head_dim;
  c->rope_type = hc.rope_scaling.type == HF_ROPE_LINEAR   ? MODEL_ROPE_LINEAR
                 : hc.rope_scaling.type == HF_ROPE_LLAMA3 ? MODEL_ROPE_LLAMA3
                                                          : MODEL_ROPE_DEFAULT;
  if (c->rope_type != MODEL_ROPE_DEFAULT) c->rope_factor = hc.rope_scaling.factor;
  if (c->rope_type == MODEL_ROPE_LLAMA3) {
    c->rope_low_freq_factor = hc.rope_scaling.low_freq_factor;
    c->rope_high_freq_factor = hc.rope_scaling.high_freq_factor;
    c->rope_original_max_position_embeddings = hc.rope_scaling.original_max_position_embeddings;
  }
  return IFT_OK;
}

/* The safetensors files of a directory: model.safetensors, or the shards of
 * model.safetensors.index.json, each opened (mapped) once. */
typedef struct {
  int n;
  hf_st **files;
  char **names;     /* file names, for the weight map */
  json_t *weights;  /* index weight_map (NULL: one file) */
} st_set;

static void st_set_close(st_set *s) {
  for (int i = 0; i < s->n; i++) {
    if (s->files[i]) hf_st_close(s->files[i]);
    free(s->names[i]);
  }
  free(s->files);
  free(s->names);
  if (s->weights) json_decref(s->weights);
  memset(s, 0, sizeof *s);
}

static ift_status st_set_add(st_set *s, const char *dir, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->names[i], name)) return IFT_OK;
  IFT_REQUIRE(!strchr(name, '/') && strcmp(name, "..") && strcmp(name, "."), IFT_ERR_FORMAT,
              "the index may name only files of its own directory",
              "%s/model.safetensors.index.json names the file '%s'", dir, name);
  hf_st **f = realloc(s->files, sizeof *f * (size_t)(s->n + 1));
  IFT_REQUIRE(f, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->files = f;
  char **nm = realloc(s->names, sizeof *nm * (size_t)(s->n + 1));
  IFT_REQUIRE(nm, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->names = nm;
  s->names[s->n] = strdup(name);
  s->files[s->n] = NULL;
  IFT_REQUIRE(s->names[s->n], IFT_ERR_NOMEM, NULL, "file name");
  s->n++;
  char path[1400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return hf_st_open(&s->files[s->n - 1], path);
}

static ift_status st_set_open(st_set *s, const char *dir) {
  memset(s, 0, sizeof *s);
  char idx[1200];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  if (access(idx, F_OK) != 0) return st_set_add(s, dir, "model.safetensors");
  json_error_t err;
  json_t *root = json_load_file(idx, JSON_REJECT_DUPLICATES, &err);
  IFT_REQUIRE(root, IFT_ERR_FORMAT, "the index must be the JSON Hugging Face writes",
              "%s:%d: %s", idx, err.line, err.text);
  json_t *wm = json_object_get(root, "weight_map");
  if (json_is_object(wm)) s->weights = json_incref(wm);
  json_decref(root);
  IFT_REQUIRE(s->weights, IFT_ERR_FORMAT, "the index must hold a \"weight_map\" object",
              "%s has no weight_map object", idx);
  const char *key;
  json_t *v;
  json_object_foreach(s->weights, key, v) {
    IFT_REQUIRE(json_is_string(v), IFT_ERR_FORMAT, "weight_map values are file names",
                "%s: weight_map[\"%s\"] is not a string", idx, key);
    IFT_TRY(st_set_add(s, dir, json_string_value(v)));
  }
  return IFT_OK;
}

/* The file holding tensor `name`. */
static ift_status st_set_find(const st_set *s, const char *dir, const char *name, hf_st **out) {
  const char *file = "model.safetensors";
  if (s->weights) {
    json_t *v = json_object_get(s->weights, name);
    IFT_REQUIRE(v, IFT_ERR_FORMAT, "use a complete model directory",
                "%s/model.safetensors.index.json has no tensor %s", dir, name);
    file = json_string_value(v);
  }
  *out = NULL;
  for (int i = 0; i < s->n && !*out; i++)
    if (!strcmp(s->names[i], file)) *out = s->files[i];
  IFT_REQUIRE(*out && hf_st_find(*out, name), IFT_ERR_FORMAT, "use a complete model directory",
              "%s/%s has no tensor %s", dir, file, name);
  return IFT_OK;
}

/* This rank's shard of tensor t: its blocks, each read in place. */
static ift_status read_shard(const hf_st *f, const model_tensor *t, float *dst, const char *dir) {
  const hf_st_tensor *ht = hf_st_find(f, t->name);
  const int vec = t->cols == 1;
  IFT_REQUIRE(ht->ndim == (vec ? 1 : 2) && ht->shape[0] == t->rows && (vec || ht->shape[1] == t->cols),
              IFT_ERR_FORMAT, "the weights must match config.json",
              "%s: tensor %s has shape [%lld%s%lld], config.json implies [%d, %d]", dir, t->name,
              (long long)ht->shape[0], ht->ndim > 1 ? ", " : "",
              ht->ndim > 1 ? (long long)ht->shape[1] : 0LL, t->rows, t->cols);
  const int rstep = t->rstep > t->rblk ? t->rstep : t->rblk, cstep = t->cstep > t->cblk ? t->cstep : t->cblk;
  for (int i = 0; i < t->lrows / t->rblk; i++)
    for (int j = 0; j < t->lcols / t->cblk; j++) {
      float *out = dst + (size_t)i * t->rblk * t->lcols + (size_t)j * t->cblk;
      const int64_t r0 = t->row0 + (int64_t)i * rstep, c0 = t->col0 + (int64_t)j * cstep;
      /* a vector is read as a 1 x n matrix: its rows are the block's columns */
      if (vec)
        IFT_TRY(hf_st_read_block(f, t->name, 0, 1, r0, t->rblk, out, t->rblk));
      else
        IFT_TRY(hf_st_read_block(f, t->name, r0, t->rblk, c0, t->cblk, out, t->lcols));
    }
  return IFT_OK;
}

ift_status ckpt_hf_load(const char *dir, model *m, MPI_Comm comm) {
  model_config c;
  st_set s;
  memset(&s, 0, sizeof s);
  ift_status st = ckpt_hf_config(dir, &c, NULL);
  if (st == IFT_OK) {
    /* the configured model must be the directory's: name every difference */
    char diff[1024];
    if (model_config_diff(&c, model_cfg(m), diff, sizeof diff)) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "model config",
                    "leave the [model] section at the directory's config.json",
                    "%s/config.json describes another model: %s", dir, diff);
      st = IFT_ERR_CONFIG;
    }
  }
  if (st == IFT_OK) st = st_set_open(&s, dir);
  for (int i = 0; i < model_ntensors(m) && st == IFT_OK; i++) {
    const model_tensor *t = model_tensor_at(m, i);
    hf_st *f = NULL;
    st = st_set_find(&s, dir, t->name, &f);
    if (st == IFT_OK) st = read_shard(f, t, model_params(m) + t->offset, dir);
  }
  st_set_close(&s);
  /* every rank read its own shards: one agreement, no collective before */
  return dist_agree(st, comm);
}
