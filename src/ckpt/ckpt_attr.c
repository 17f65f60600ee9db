/* ckpt/ckpt_attr — the HDF5 attributes of checkpoint files: the scalar
 * attribute writers (the readers are h5attr.h's), a tensor's stored
 * checksum, and the model config as the attributes of /model in both
 * directions (one table of RoPE type names,
 * so what is written is what is read). */
#include "config.h"
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_int.h"
#include "iftrain/h5attr.h"

void ckpt_quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Scalar attributes: one writer for every native type. */
static herr_t attr_scalar(hid_t obj, const char *name, hid_t type, const void *v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = a < 0 ? -1 : H5Awrite(a, type, v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return r;
}
herr_t ckpt_attr_int(hid_t obj, const char *name, long v) {
  return attr_scalar(obj, name, H5T_NATIVE_LONG, &v);
}
static herr_t attr_double(hid_t obj, const char *name, double v) {
  return attr_scalar(obj, name, H5T_NATIVE_DOUBLE, &v);
}
/* (The readers of long, double and string attributes are h5attr.h's.) */
static herr_t read_attr(hid_t obj, const char *name, hid_t type, void *v) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t r = H5Aread(a, type, v);
  H5Aclose(a);
  return r;
}
/* A tensor's stored checksum is the uint64 attribute "checksum" of its data
 * set (the sum of ckpt_checksum_part over the whole tensor). */
herr_t ckpt_attr_checksum(hid_t ds, uint64_t sum) {
  return attr_scalar(ds, "checksum", H5T_NATIVE_UINT64, &sum);
}
int ckpt_stored_checksum(hid_t g, const char *name, uint64_t *sum) {
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  const int has = ds >= 0 && read_attr(ds, "checksum", H5T_NATIVE_UINT64, sum) >= 0;
  if (ds >= 0) H5Dclose(ds);
  return has;
}

static const char *const rope_type_names[] = {"default", "linear", "llama3"};

herr_t ckpt_write_config_attrs(hid_t g, const model_config *c) {
  herr_t r = 0;
  r |= ckpt_attr_int(g, "vocab_size", c->vocab_size);
  r |= ckpt_attr_int(g, "hidden_size", c->hidden_size);
  r |= ckpt_attr_int(g, "intermediate_size", c->intermediate_size);
  r |= ckpt_attr_int(g, "num_hidden_layers", c->num_hidden_layers);
  r |= ckpt_attr_int(g, "num_attention_heads", c->num_attention_heads);
  r |= ckpt_attr_int(g, "num_key_value_heads", c->num_key_value_heads);
  r |= ckpt_attr_int(g, "max_position_embeddings", c->max_position_embeddings);
  r |= ckpt_attr_int(g, "tie_word_embeddings", c->tie_word_embeddings);
  r |= attr_double(g, "rms_norm_eps", c->rms_norm_eps);
  r |= attr_double(g, "rope_theta", c->rope_theta);
  r |= ckpt_attr_int(g, "head_dim", model_head_dim(c));
  r |= ift_h5_attr_str(g, "rope_type", rope_type_names[c->rope_type]);
  r |= attr_double(g, "rope_factor", c->rope_factor);
  r |= attr_double(g, "rope_low_freq_factor", c->rope_low_freq_factor);
  r |= attr_double(g, "rope_high_freq_factor", c->rope_high_freq_factor);
  r |= ckpt_attr_int(g, "rope_original_max_position_embeddings",
                     c->rope_original_max_position_embeddings);
  r |= ckpt_attr_int(g, "sliding_window", c->sliding_window);
  r |= ift_h5_attr_str(g, "model_type", "llama");
  r |= ift_h5_attr_str(g, "torch_dtype", "float32");
  return r < 0 ? -1 : 0;
}

/* The model config in the attributes of /model.  The keys of the first
 * checkpoints are required; head_dim and the RoPE scaling (added with the
 * Hugging Face import) default to hidden/heads and no scaling. */
ift_status ckpt_read_model_attrs(hid_t gm, model_config *c, const char *path) {
  *c = model_config_default();
  static const char *ik[] = {"vocab_size", "hidden_size", "intermediate_size",
                             "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                             "max_position_embeddings", "tie_word_embeddings"};
  int *iv[] = {&c->vocab_size, &c->hidden_size, &c->intermediate_size, &c->num_hidden_layers,
               &c->num_attention_heads, &c->num_key_value_heads, &c->max_position_embeddings,
               &c->tie_word_embeddings};
  static const char *dk[] = {"rms_norm_eps", "rope_theta"};
  double *dv[] = {&c->rms_norm_eps, &c->rope_theta};
  for (int i = 0; i < 8 + 2; i++) {
    const char *k = i < 8 ? ik[i] : dk[i - 8];
    long v = 0;
    herr_t r = i < 8 ? ift_h5_attr_get_long(gm, k, &v) : ift_h5_attr_get_double(gm, k, dv[i - 8]);
    IFT_REQUIRE(r >= 0, IFT_ERR_FORMAT, "the checkpoint lacks its model config: use one written by iftrain",
                "%s: /model has no attribute %s", path, k);
    if (i < 8) *iv[i] = (int)v;
  }
  static const char *ok[] = {"head_dim", "rope_original_max_position_embeddings",
                             "sliding_window"};
  int *ov[] = {&c->head_dim, &c->rope_original_max_position_embeddings, &c->sliding_window};
  for (int i = 0; i < 3; i++) {
    long v = 0;
    if (H5Aexists(gm, ok[i]) > 0) {
      IFT_REQUIRE(ift_h5_attr_get_long(gm, ok[i], &v) >= 0, IFT_ERR_FORMAT, "use an earlier checkpoint",
                  "%s: /model attribute %s is unreadable", path, ok[i]);
      *ov[i] = (int)v;
    }
  }
  static const char *odk[] = {"rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"};
  double *odv[] = {&c->rope_factor, &c->rope_low_freq_factor, &c->rope_high_freq_factor};
  for (int i = 0; i < 3; i++)
    if (H5Aexists(gm, odk[i]) > 0)
      IFT_REQUIRE(ift_h5_attr_get_double(gm, odk[i], odv[i]) >= 0, IFT_ERR_FORMAT,
                  "use an earlier checkpoint", "%s: /model attribute %s is unreadable", path,
                  odk[i]);
  char *rt = ift_h5_attr_dup_str(gm, "rope_type");
  if (rt) {
    int k = -1;
    char name[48];
    snprintf(name, sizeof name, "%s", rt);
    free(rt);
    for (int i = 0; i < 3; i++)
      if (strcmp(name, rope_type_names[i]) == 0) k = i;
    IFT_REQUIRE(k >= 0, IFT_ERR_FORMAT, "use a checkpoint written by this iftrain",
                "%s: /model rope_type '%s' is not default, linear or llama3", path, name);
    c->rope_type = (model_rope_type)k;
  }
  return IFT_OK;
}
