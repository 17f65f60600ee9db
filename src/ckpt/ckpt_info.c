/* ckpt/ckpt_info — serial inspection of a checkpoint (iftrain ckpt):
 * info, verify, the model-only export, and the fingerprint of its weights
 * (of a Hugging Face directory too). */
#include "config.h"
#include <hdf5.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_int.h"
#include "iftrain/h5attr.h"

static void print_attr(FILE *out, hid_t obj, const char *name, const char *label) {
  if (H5Aexists(obj, name) <= 0) return;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a);
  if (H5Tget_class(t) == H5T_STRING) {
    char *v = ift_h5_attr_dup_str(obj, name);
    if (v) fprintf(out, "  %-24s %s\n", label, v);
    free(v);
  } else if (H5Tget_class(t) == H5T_FLOAT) {
    double v;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) fprintf(out, "  %-24s %g\n", label, v);
  } else {
    long v;
    if (H5Aread(a, H5T_NATIVE_LONG, &v) >= 0) fprintf(out, "  %-24s %ld\n", label, v);
  }
  H5Tclose(t);
  H5Aclose(a);
}

/* The origin attribute, summarised: source, files and their hashes, tokenizer. */
static void print_origin(FILE *out, const char *origin) {
  json_t *o = json_loads(origin, 0, NULL);
  if (!o) {
    fprintf(out, "  %-24s (damaged) %.60s\n", "origin", origin);
    return;
  }
  fprintf(out, "  %-24s %s directory %s\n", "origin",
          json_string_value(json_object_get(o, "format")) ? json_string_value(json_object_get(o, "format")) : "?",
          json_string_value(json_object_get(o, "source")) ? json_string_value(json_object_get(o, "source")) : "?");
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(o, "files"), k, v)
    fprintf(out, "    %-34s sha256 %s\n", k, json_string_value(v) ? json_string_value(v) : "?");
  json_t *t = json_object_get(o, "tokenizer");
  if (json_is_object(t))
    fprintf(out, "  %-24s %s (%s, sha256 %.16s...)\n", "tokenizer",
            json_string_value(json_object_get(t, "class")) ? json_string_value(json_object_get(t, "class")) : "class not given",
            json_string_value(json_object_get(t, "file")) ? json_string_value(json_object_get(t, "file")) : "?",
            json_string_value(json_object_get(t, "sha256")) ? json_string_value(json_object_get(t, "sha256")) : "?");
  else
    fprintf(out, "  %-24s none recorded (the source directory has no tokenizer.json)\n", "tokenizer");
  json_decref(o);
}

ift_status ckpt_info(const char *path, FILE *out, int show_config) {
  model_config c;
  IFT_TRY(ckpt_read_config(path, &c));
  ift_status st = IFT_OK;
  hid_t f = -1, g = -1;
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
  fprintf(out, "%s\n", path);
  if ((g = H5Gopen2(f, "/train", H5P_DEFAULT)) >= 0) {
    print_attr(out, g, "step", "step");
    print_attr(out, g, "epoch", "epoch");
    print_attr(out, g, "layout", "layout (dp x tp)");
    print_attr(out, g, "run_id", "run id");
    print_attr(out, g, "code_version", "written by iftrain");
  }
  fprintf(out, "  model: vocab %d, hidden %d, intermediate %d, %d layers, %d heads (%d KV) of %d, %s head\n",
          c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
          c.num_attention_heads, c.num_key_value_heads, model_head_dim(&c),
          c.tie_word_embeddings ? "tied" : "untied");
  fprintf(out, "  RoPE: theta %g", c.rope_theta);
  if (c.rope_type == MODEL_ROPE_LINEAR) fprintf(out, ", linear scaling x%g", c.rope_factor);
  if (c.rope_type == MODEL_ROPE_LLAMA3)
    fprintf(out, ", llama3 scaling x%g (low %g, high %g, original %d positions)", c.rope_factor,
            c.rope_low_freq_factor, c.rope_high_freq_factor, c.rope_original_max_position_embeddings);
  fprintf(out, "; max positions %d\n", c.max_position_embeddings);
  {
    char *origin = NULL;
    if (ckpt_origin(path, &origin) == IFT_OK && origin) print_origin(out, origin);
    free(origin);
  }
  hid_t go = H5Lexists(f, "/optim", H5P_DEFAULT) > 0 ? H5Gopen2(f, "/optim", H5P_DEFAULT) : -1;
  if (go >= 0) {
    print_attr(out, go, "name", "optimizer");
    print_attr(out, go, "t", "optimizer steps");
    H5Gclose(go);
  } else {
    fprintf(out, "  %-24s none (model only)\n", "optimizer");
  }
  FILE *fp = fopen(path, "rb");
  if (fp) {
    fseek(fp, 0, SEEK_END);
    fprintf(out, "  %-24s %.1f MiB\n", "file size", ftell(fp) / 1048576.0);
    fclose(fp);
  }
  if (show_config && g >= 0) print_attr(out, g, "config", "config:\n");
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  return st;
}

/* Check every tensor of /model and /optim/{m,v}: present, float32, the
 * global shape of the model config, and its stored checksum. */
ift_status ckpt_verify(const char *path, FILE *out, long *ntensors) {
  model_config c;
  IFT_TRY(ckpt_read_config(path, &c));
  model *m;
  IFT_TRY(model_create(&m, &c, MPI_COMM_NULL, 1, 2));
  ift_status st = IFT_OK;
  hid_t f = -1, g = -1;
  long n = 0;
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
  static const char *groups[3] = {"/model", "/optim/m", "/optim/v"};
  for (int k = 0; k < 3; k++) {
    if (k > 0 && H5Lexists(f, "/optim", H5P_DEFAULT) <= 0) break;
    if (k > 0 && H5Lexists(f, groups[k], H5P_DEFAULT) <= 0) continue;
    g = H5Gopen2(f, groups[k], H5P_DEFAULT);
    IFT_TRY_GOTO(st, done, ckpt_read_tensors(g, m, model_params(m), path));
    for (int i = 0; i < model_ntensors(m); i++) {
      const model_tensor *t = model_tensor_at(m, i);
      uint64_t want = 0, have = ckpt_checksum_part(model_params(m) + t->offset, t->rows, t->cols, 0, 0, t->cols);
      const int has = ckpt_stored_checksum(g, t->name, &want);
      n++; /* the failing tensor counts as checked */
      IFT_REQUIRE_GOTO(st, done, has && want == have, IFT_ERR_FORMAT,
                       "the checkpoint is damaged: resume from an earlier one", "%s: tensor %s/%s %s", path,
                       groups[k], t->name, has ? "does not match its checksum" : "has no checksum attribute");
    }
    H5Gclose(g);
    g = -1;
  }
  if (out) fprintf(out, "%s: OK, %ld tensors verified\n", path, n);
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  model_destroy(m);
  if (ntensors) *ntensors = n;
  return st;
}

ift_status ckpt_export_model(const char *path, const char *out_path) {
  ift_status st = IFT_OK;
  hid_t f = -1, o = -1;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
  ckpt_quiet_hdf5();
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, o = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                    "check the output directory", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Ocopy(f, "/model", o, "/model", H5P_DEFAULT, H5P_DEFAULT),
                    "the checkpoint has no /model", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Fclose(o), "check free disk space", "HDF5 call failed on %s", path);
  o = -1;
  IFT_REQUIRE_GOTO(st, done, rename(tmp, out_path) == 0, IFT_ERR_IO, "check the output directory",
                   "cannot rename %s to %s", tmp, out_path);
done:
  if (o >= 0) H5Fclose(o);
  if (f >= 0) H5Fclose(f);
  if (st != IFT_OK) unlink(tmp);
  return st;
}

/* The fingerprint hash of a model config: the keys of the first
 * checkpoints, then head_dim and the RoPE scaling only when they are not
 * the defaults (so the fingerprints of earlier checkpoints do not change). */
static uint64_t config_hash(const model_config *c) {
  char cs[512];
  int cn = snprintf(cs, sizeof cs, "%d %d %d %d %d %d %d %d %.17g %.17g", c->vocab_size,
                    c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                    c->num_attention_heads, c->num_key_value_heads, c->max_position_embeddings,
                    c->tie_word_embeddings, c->rms_norm_eps, c->rope_theta);
  if (model_head_dim(c) * c->num_attention_heads != c->hidden_size ||
      c->rope_type != MODEL_ROPE_DEFAULT)
    cn += snprintf(cs + cn, sizeof cs - (size_t)cn, " %d %d %.17g %.17g %.17g %d", model_head_dim(c),
                   (int)c->rope_type, c->rope_factor, c->rope_low_freq_factor,
                   c->rope_high_freq_factor, c->rope_original_max_position_embeddings);
  if (c->sliding_window) cn += snprintf(cs + cn, sizeof cs - (size_t)cn, " w%d", c->sliding_window);
  return core_fnv1a(CORE_FNV_INIT, cs, (size_t)cn);
}

/* A Hugging Face directory has no stored checksums: its tensors are read
 * (one rank, fp32 as imported) and summed the way a checkpoint stores them,
 * so the directory and its import have the same fingerprint. */
static ift_status hf_fingerprint(const char *dir, const model_config *c, uint64_t *h) {
  model *m;
  IFT_TRY(model_create(&m, c, MPI_COMM_NULL, 1, 2));
  ift_status st;
  IFT_TRY_GOTO(st, done, ckpt_hf_load(dir, m, MPI_COMM_NULL));
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    uint64_t sum =
        ckpt_checksum_part(model_params(m) + t->offset, t->rows, t->cols, 0, 0, t->cols);
    *h = core_fnv1a(*h, t->name, strlen(t->name));
    *h = core_fnv1a(*h, &sum, sizeof sum);
  }
done:
  model_destroy(m);
  return st;
}

ift_status ckpt_fingerprint(const char *path, char out[17]) {
  model_config c;
  IFT_TRY(ckpt_read_config(path, &c));
  uint64_t h = config_hash(&c);
  if (ckpt_is_hf_dir(path)) {
    IFT_TRY(hf_fingerprint(path, &c, &h));
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return IFT_OK;
  }
  model *m;
  IFT_TRY(model_create(&m, &c, MPI_COMM_NULL, 1, 2));
  ift_status st = IFT_OK;
  hid_t f = -1, g = -1;
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, g = H5Gopen2(f, "/model", H5P_DEFAULT),
                    "the file has no /model group: not an iftrain checkpoint", "HDF5 call failed on %s", path);
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    uint64_t sum = 0;
    if (!ckpt_stored_checksum(g, t->name, &sum)) {
      IFT_FAIL_GOTO(st, done, IFT_ERR_FORMAT,
                    "use a checkpoint written by iftrain train (iftrain ckpt verify checks it)",
                    "%s: tensor /model/%s is missing or has no checksum", path, t->name);
    }
    h = core_fnv1a(h, t->name, strlen(t->name));
    h = core_fnv1a(h, &sum, sizeof sum);
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  model_destroy(m);
  return st;
}
