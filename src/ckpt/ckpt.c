#define _POSIX_C_SOURCE 200809L
#include "iftrain/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"
#include "iftrain/optim.h"

/* Every HDF5 call that can fail goes through H5CHK: it names the call, the
 * file:line and the rank, and suggests the likely fix. */
#define H5CHK(call, hint)                                                      \
  do {                                                                         \
    if ((call) < 0) {                                                          \
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, #call, (hint),           \
                    "HDF5 call failed on %s", path);                           \
      st = IFT_ERR_HDF5;                                                       \
      goto done;                                                               \
    }                                                                          \
  } while (0)

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Scalar attributes: one writer and one reader for every native type. */
static herr_t attr_scalar(hid_t obj, const char *name, hid_t type, const void *v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = a < 0 ? -1 : H5Awrite(a, type, v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return r;
}
static herr_t attr_int(hid_t obj, const char *name, long v) {
  return attr_scalar(obj, name, H5T_NATIVE_LONG, &v);
}
static herr_t attr_double(hid_t obj, const char *name, double v) {
  return attr_scalar(obj, name, H5T_NATIVE_DOUBLE, &v);
}
static herr_t read_attr(hid_t obj, const char *name, hid_t type, void *v) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t r = H5Aread(a, type, v);
  H5Aclose(a);
  return r;
}
static herr_t read_attr_long(hid_t obj, const char *name, long *v) {
  return read_attr(obj, name, H5T_NATIVE_LONG, v);
}
static herr_t read_attr_double(hid_t obj, const char *name, double *v) {
  return read_attr(obj, name, H5T_NATIVE_DOUBLE, v);
}

static herr_t write_config_attrs(hid_t g, const model_config *c) {
  herr_t r = 0;
  r |= attr_int(g, "vocab_size", c->vocab_size);
  r |= attr_int(g, "hidden_size", c->hidden_size);
  r |= attr_int(g, "intermediate_size", c->intermediate_size);
  r |= attr_int(g, "num_hidden_layers", c->num_hidden_layers);
  r |= attr_int(g, "num_attention_heads", c->num_attention_heads);
  r |= attr_int(g, "num_key_value_heads", c->num_key_value_heads);
  r |= attr_int(g, "max_position_embeddings", c->max_position_embeddings);
  r |= attr_int(g, "tie_word_embeddings", c->tie_word_embeddings);
  r |= attr_double(g, "rms_norm_eps", c->rms_norm_eps);
  r |= attr_double(g, "rope_theta", c->rope_theta);
  r |= ift_h5_attr_str(g, "model_type", "llama");
  r |= ift_h5_attr_str(g, "torch_dtype", "float32");
  return r < 0 ? -1 : 0;
}

/* Shape of one tensor, and the hyperslab of its shard in the global tensor:
 * blocks of blk[] every stride[] (one block unless the 2D layout is
 * block-cyclic); ldims[] is the shard in memory.  HDF5 visits the selection
 * in row-major order, which is the shard's own element order. */
typedef struct {
  int rank;
  hsize_t gdims[2], start[2], stride[2], count[2], blk[2], ldims[2];
} shard_sel;

static void shard_select(const model_tensor *t, shard_sel *s) {
  s->rank = t->cols == 1 ? 1 : 2;
  s->gdims[0] = (hsize_t)t->rows;
  s->gdims[1] = (hsize_t)t->cols;
  s->start[0] = (hsize_t)t->row0;
  s->start[1] = (hsize_t)t->col0;
  s->blk[0] = (hsize_t)t->rblk;
  s->blk[1] = (hsize_t)t->cblk;
  s->count[0] = (hsize_t)(t->lrows / t->rblk);
  s->count[1] = (hsize_t)(t->lcols / t->cblk);
  s->stride[0] = (hsize_t)(t->rstep > t->rblk ? t->rstep : t->rblk);
  s->stride[1] = (hsize_t)(t->cstep > t->cblk ? t->cstep : t->cblk);
  s->ldims[0] = (hsize_t)t->lrows;
  s->ldims[1] = (hsize_t)t->lcols;
}

static herr_t shard_hyperslab(hid_t fs, const shard_sel *s) {
  return H5Sselect_hyperslab(fs, H5S_SELECT_SET, s->start, s->stride, s->count, s->blk);
}

/* Order-independent checksum of a tensor: sum over elements of a mix of
 * (global index, bit pattern), mod 2^64, so the shards' partial sums add up
 * to the whole tensor's value whatever the layout. */
uint64_t ckpt_checksum_part(const float *x, int rows, int cols, int row0, int col0, int gcols) {
  /* one multiply-xorshift per element keeps this far below the I/O time
   * (the loop vectorises); it detects any changed, moved or missing value
   * with overwhelming probability, which is what a damage check needs */
  uint64_t s = 0;
  for (int r = 0; r < rows; r++) {
    const uint32_t *b = (const uint32_t *)(const void *)(x + (size_t)r * cols);
    const uint64_t g0 = (uint64_t)(row0 + r) * (uint64_t)gcols + (uint64_t)col0;
    for (int c = 0; c < cols; c++) {
      uint64_t v = ((g0 + (uint64_t)c) * 0x9E3779B97F4A7C15ULL) ^ b[c];
      v *= 0xBF58476D1CE4E5B9ULL;
      s += v ^ (v >> 29);
    }
  }
  return s;
}

/* The checksum terms of one shard (any layout), block row by block row. */
static uint64_t checksum_shard(const model_tensor *t, const float *x) {
  if (t->rstep == 0 && t->cstep == 0)
    return ckpt_checksum_part(x, t->lrows, t->lcols, t->row0, t->col0, t->cols);
  uint64_t s = 0;
  for (int r = 0; r < t->lrows; r++)
    for (int c = 0; c < t->lcols; c += t->cblk)
      s += ckpt_checksum_part(x + (size_t)r * t->lcols + c, 1, t->cblk, model_tensor_grow(t, r),
                              model_tensor_gcol(t, c), t->cols);
  return s;
}

/* Every tensor of the model's layout from `base` (parameters or an optimizer
 * moment laid out like them) into group g, each rank its hyperslab. */
static ift_status write_tensors(hid_t g, const model *m, const float *base, hid_t dxpl, int writer,
                                const char *path, MPI_Comm world) {
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    shard_sel sel;
    shard_select(t, &sel);
    const int mine = writer && (t->shard != SHARD_NONE || model_tp_rank(m) == 0);
    uint64_t sum = mine ? checksum_shard(t, base + t->offset) : 0;
    IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_UINT64_T, MPI_SUM, world), NULL);
    hid_t fs = H5Screate_simple(sel.rank, sel.gdims, NULL);
    hid_t ds = H5Dcreate2(g, t->name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(sel.rank, sel.ldims, NULL);
    herr_t r = 0;
    /* Collective: every rank takes part; one writer per element (replica 0,
     * and for replicated tensors only its TP rank 0), the others with an
     * empty selection. */
    if (ds >= 0) r = attr_scalar(ds, "checksum", H5T_NATIVE_UINT64, &sum);
    if (mine) {
      r |= shard_hyperslab(fs, &sel);
    } else {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
    if (ds < 0 || r < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, base + t->offset) < 0) r = -1;
    H5Sclose(ms);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(fs);
    IFT_REQUIRE(r >= 0, IFT_ERR_HDF5, "check free disk space and quota of ckpt.dir",
                "writing %s to %s failed", t->name, path);
  }
  return IFT_OK;
}

static ift_status write_file(const char *path, model *m, const optim_state *opt,
                             const ckpt_meta *meta, MPI_Comm world, int writer) {
  ift_status st = IFT_OK;
  hid_t fapl = -1, f = -1, gm = -1, gt = -1, go = -1, dxpl = -1;
  quiet_hdf5();
  H5CHK(fapl = H5Pcreate(H5P_FILE_ACCESS), NULL);
  H5CHK(H5Pset_fapl_mpio(fapl, world, MPI_INFO_NULL), "is HDF5 built with MPI (parallel)?");
  H5CHK(f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
        "check that ckpt.dir is writable and the disk has room");
  H5CHK(gm = H5Gcreate2(f, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL);
  H5CHK(write_config_attrs(gm, model_cfg(m)), NULL);
  H5CHK(dxpl = H5Pcreate(H5P_DATASET_XFER), NULL);
  H5CHK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), NULL);
  if ((st = write_tensors(gm, m, model_params(m), dxpl, writer, path, world)) != IFT_OK) goto done;
  if (opt) {
    /* /optim/<state>/<name>: the optimizer's moments mirror the model */
    H5CHK(go = H5Gcreate2(f, "/optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL);
    H5CHK(ift_h5_attr_str(go, "name", optim_kind_name(opt->cfg.kind)), NULL);
    H5CHK(attr_int(go, "t", opt->t), NULL);
    const float *bufs[2] = {opt->m, opt->v};
    static const char *names[2] = {"m", "v"};
    for (int k = 0; k < 2; k++) {
      if (!bufs[k]) continue;
      hid_t g = H5Gcreate2(go, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5CHK(g, NULL);
      st = write_tensors(g, m, bufs[k], dxpl, writer, path, world);
      H5Gclose(g);
      if (st != IFT_OK) goto done;
    }
  }
  H5CHK(gt = H5Gcreate2(f, "/train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL);
  char layout[64];
  snprintf(layout, sizeof layout, "%d x %d", meta->dp, meta->tp);
  H5CHK(attr_int(gt, "step", meta->step), NULL);
  H5CHK(attr_int(gt, "epoch", meta->epoch), NULL);
  H5CHK(attr_int(gt, "cursor", meta->cursor), NULL);
  H5CHK(attr_int(gt, "format_version", 1), NULL);
  H5CHK(ift_h5_attr_str(gt, "layout", layout), NULL);
  H5CHK(ift_h5_attr_str(gt, "code_version", PACKAGE_VERSION), NULL);
  H5CHK(ift_h5_attr_str(gt, "config", meta->config_text ? meta->config_text : ""), NULL);
  H5CHK(H5Fflush(f, H5F_SCOPE_GLOBAL), "the disk may be full");
done:
  if (gt >= 0) H5Gclose(gt);
  if (go >= 0) H5Gclose(go);
  if (gm >= 0) H5Gclose(gm);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (f >= 0 && H5Fclose(f) < 0 && st == IFT_OK) st = IFT_ERR_HDF5;
  if (fapl >= 0) H5Pclose(fapl);
  return st;
}

static void prune(const char *dir, long step, int keep) {
  if (keep <= 0) return;
  /* Remove every step_N.h5 older than the newest `keep`. */
  long *steps = NULL;
  int n = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    long s;
    char tail[8];
    if (sscanf(e->d_name, "step_%ld.h%7s", &s, tail) == 2 && !strcmp(tail, "5") && s <= step) {
      if (n == cap) {
        cap = cap ? 2 * cap : 16;
        long *ns = realloc(steps, sizeof(long) * (size_t)cap);
        if (!ns) break;
        steps = ns;
      }
      steps[n++] = s;
    }
  }
  closedir(d);
  for (int i = 0; i < n; i++) {
    int newer = 0;
    for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
    if (newer >= keep) {
      char f[1200];
      snprintf(f, sizeof f, "%s/step_%ld.h5", dir, steps[i]);
      unlink(f);
    }
  }
  free(steps);
}

ift_status ckpt_save(const char *dir, int keep, model *m, const optim_state *opt,
                     const ckpt_meta *meta, MPI_Comm world, int dp_rank, char *path_out) {
  int rank;
  IFT_MPI_CHECK(MPI_Comm_rank(world, &rank), NULL);
  int ok = 1;
  if (rank == 0) ok = core_mkdir_p(dir) == 0;
  IFT_MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, 0, world), NULL);
  IFT_REQUIRE(ok, IFT_ERR_IO, "choose a writable ckpt.dir", "cannot create checkpoint directory '%s'",
              dir);
  char fin[1100], tmp[1110];
  snprintf(fin, sizeof fin, "%s/step_%ld.h5", dir, meta->step);
  snprintf(tmp, sizeof tmp, "%s.tmp", fin);
  ift_status st = write_file(tmp, m, opt, meta, world, dp_rank == 0);
  int good = st == IFT_OK, all = 0;
  IFT_MPI_CHECK(MPI_Allreduce(&good, &all, 1, MPI_INT, MPI_MIN, world), NULL);
  if (rank == 0) {
    if (!all) {
      unlink(tmp); /* the previous checkpoint and `latest` stay as they were */
    } else {
      char lt[1110], lf[1100];
      snprintf(lf, sizeof lf, "%s/latest", dir);
      snprintf(lt, sizeof lt, "%s.tmp", lf);
      FILE *f = NULL;
      if (rename(tmp, fin) == 0 && (f = fopen(lt, "w"))) {
        fprintf(f, "step_%ld.h5\n", meta->step);
        if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0) {
          f = NULL;
          if (rename(lt, lf) != 0) all = 0;
        } else all = 0;
        if (f) fclose(f);
      } else {
        all = 0;
      }
      if (all) prune(dir, meta->step, keep);
    }
  }
  IFT_MPI_CHECK(MPI_Bcast(&all, 1, MPI_INT, 0, world), NULL);
  IFT_REQUIRE(all, IFT_ERR_IO, "check free space and permissions of ckpt.dir; the previous checkpoint is intact",
              "checkpoint of step %ld could not be written", meta->step);
  if (path_out) snprintf(path_out, 1100, "%s", fin);
  return IFT_OK;
}

ift_status ckpt_resolve(char *out, size_t n, const char *resume, const char *dir) {
  out[0] = 0;
  if (!resume || !*resume || !strcmp(resume, "none")) return IFT_OK;
  if (strcmp(resume, "auto")) {
    IFT_REQUIRE(access(resume, R_OK) == 0, IFT_ERR_IO, "check ckpt.resume",
                "checkpoint '%s' does not exist or is unreadable", resume);
    snprintf(out, n, "%s", resume);
    return IFT_OK;
  }
  char lf[1100], name[512];
  snprintf(lf, sizeof lf, "%s/latest", dir);
  FILE *f = fopen(lf, "r");
  if (!f) return IFT_OK; /* nothing to resume: a fresh start */
  int ok = fgets(name, sizeof name, f) != NULL;
  fclose(f);
  IFT_REQUIRE(ok, IFT_ERR_FORMAT, "delete the empty 'latest' file or pass ckpt.resume=PATH",
              "'%s' is empty", lf);
  name[strcspn(name, "\n")] = 0;
  snprintf(out, n, "%s/%s", dir, name);
  return IFT_OK;
}

/* Every tensor of the model's layout into `base`: each rank reads the
 * hyperslab of its own shard of the global tensor (any layout). */
static ift_status read_tensors(hid_t g, const model *m, float *base, const char *path) {
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    hsize_t fd[2] = {0, 0};
    shard_sel sel;
    shard_select(t, &sel);
    const int rk = sel.rank;
    const hsize_t *gd = sel.gdims;
    hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
    IFT_REQUIRE(ds >= 0, IFT_ERR_FORMAT, "use a checkpoint of this model",
                "%s: tensor %s is missing", path, t->name);
    hid_t fs = H5Dget_space(ds);
    int frk = H5Sget_simple_extent_ndims(fs);
    H5Sget_simple_extent_dims(fs, fd, NULL);
    hid_t ty = H5Dget_type(ds);
    int is_f32 = H5Tget_class(ty) == H5T_FLOAT && H5Tget_size(ty) == 4;
    H5Tclose(ty);
    int shape_ok = frk == rk && fd[0] == gd[0] && (rk == 1 || fd[1] == gd[1]) && is_f32;
    herr_t r = -1;
    if (shape_ok) {
      hid_t ms = H5Screate_simple(rk, sel.ldims, NULL);
      r = shard_hyperslab(fs, &sel);
      if (r >= 0) r = H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, base + t->offset);
      H5Sclose(ms);
    }
    H5Sclose(fs);
    H5Dclose(ds);
    IFT_REQUIRE(shape_ok, IFT_ERR_FORMAT, "use a checkpoint of this model",
                "%s: tensor %s has shape [%llu%s%llu] (%s), expected [%d, %d] float32", path,
                t->name, (unsigned long long)fd[0], rk == 2 ? ", " : "",
                rk == 2 ? (unsigned long long)fd[1] : 0ULL, is_f32 ? "float32" : "not float32",
                t->rows, t->cols);
    IFT_REQUIRE(r >= 0, IFT_ERR_HDF5, "the file may be truncated; use an earlier checkpoint",
                "%s: reading %s failed", path, t->name);
  }
  return IFT_OK;
}

ift_status ckpt_read_config(const char *path, model_config *c) {
  ift_status st = IFT_OK;
  hid_t f = -1, gm = -1;
  quiet_hdf5();
  IFT_REQUIRE(access(path, R_OK) == 0, IFT_ERR_IO, "check the checkpoint path",
              "checkpoint '%s' does not exist or is unreadable", path);
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
        "the file is not HDF5 or is truncated; use an earlier checkpoint");
  H5CHK(gm = H5Gopen2(f, "/model", H5P_DEFAULT), "the file has no /model group: not an iftrain checkpoint");
  *c = model_config_default();
  long v[8];
  static const char *ik[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                             "num_attention_heads", "num_key_value_heads",
                             "max_position_embeddings", "tie_word_embeddings"};
  for (int i = 0; i < 8; i++) H5CHK(read_attr_long(gm, ik[i], &v[i]), "the checkpoint lacks its model config");
  c->vocab_size = (int)v[0];
  c->hidden_size = (int)v[1];
  c->intermediate_size = (int)v[2];
  c->num_hidden_layers = (int)v[3];
  c->num_attention_heads = (int)v[4];
  c->num_key_value_heads = (int)v[5];
  c->max_position_embeddings = (int)v[6];
  c->tie_word_embeddings = (int)v[7];
  H5CHK(read_attr_double(gm, "rms_norm_eps", &c->rms_norm_eps), NULL);
  H5CHK(read_attr_double(gm, "rope_theta", &c->rope_theta), NULL);
done:
  if (gm >= 0) H5Gclose(gm);
  if (f >= 0) H5Fclose(f);
  return st;
}

ift_status ckpt_load(const char *path, model *m, optim_state *opt, ckpt_train_state *ts,
                     MPI_Comm comm) {
  ift_status st = IFT_OK;
  hid_t fapl = -1, f = -1, gm = -1, gt = -1;
  quiet_hdf5();
  IFT_REQUIRE(access(path, R_OK) == 0, IFT_ERR_IO, "check the checkpoint path",
              "checkpoint '%s' does not exist or is unreadable", path);
  H5CHK(fapl = H5Pcreate(H5P_FILE_ACCESS), NULL);
  H5CHK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), NULL);
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, fapl),
        "the file is not HDF5 or is truncated; use an earlier checkpoint");
  H5CHK(gm = H5Gopen2(f, "/model", H5P_DEFAULT), "the file has no /model group: not an iftrain checkpoint");
  const model_config *c = model_cfg(m);
  static const char *ikeys[] = {"vocab_size", "hidden_size", "intermediate_size",
                                "num_hidden_layers", "num_attention_heads",
                                "num_key_value_heads", "tie_word_embeddings"};
  const int ivals[] = {c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                       c->num_attention_heads, c->num_key_value_heads, c->tie_word_embeddings};
  for (int i = 0; i < 7; i++) {
    long v = 0;
    H5CHK(read_attr_long(gm, ikeys[i], &v), "the checkpoint lacks its model config attributes");
    if (v != ivals[i]) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "model config",
                    "use the [model] section the checkpoint was trained with",
                    "%s: checkpoint has %s = %ld, the configured model %d", path, ikeys[i], v,
                    ivals[i]);
      st = IFT_ERR_FORMAT;
      goto done;
    }
  }
  double eps;
  H5CHK(read_attr_double(gm, "rms_norm_eps", &eps), NULL);
  if ((st = read_tensors(gm, m, model_params(m), path)) != IFT_OK) goto done;
  if ((gt = H5Gopen2(f, "/train", H5P_DEFAULT)) >= 0 && ts) {
    read_attr_long(gt, "step", &ts->step);
    read_attr_long(gt, "epoch", &ts->epoch);
    read_attr_long(gt, "cursor", &ts->cursor);
  }
  if (opt) {
    /* resume needs the optimizer moments the run had */
    hid_t go = H5Gopen2(f, "/optim", H5P_DEFAULT);
    if (go < 0) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "/optim",
                    "resume from a checkpoint written by iftrain train (it has /optim)",
                    "%s has no optimizer state to resume from", path);
      st = IFT_ERR_FORMAT;
      goto done;
    }
    char name[32] = "";
    long t = 0;
    hid_t a = H5Aopen(go, "name", H5P_DEFAULT);
    if (a >= 0) {
      hid_t ty = H5Tcopy(H5T_C_S1);
      H5Tset_size(ty, sizeof name - 1);
      H5Aread(a, ty, name);
      H5Tclose(ty);
      H5Aclose(a);
    }
    read_attr_long(go, "t", &t);
    if (strcmp(name, optim_kind_name(opt->cfg.kind))) {
      H5Gclose(go);
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "optim.name",
                    "resume with the optimizer the run was started with",
                    "%s holds %s state but optim.name = %s", path, name, optim_kind_name(opt->cfg.kind));
      st = IFT_ERR_FORMAT;
      goto done;
    }
    opt->t = t;
    float *bufs[2] = {opt->m, opt->v};
    static const char *names[2] = {"m", "v"};
    for (int k = 0; k < 2 && st == IFT_OK; k++) {
      if (!bufs[k]) continue;
      hid_t g = H5Gopen2(go, names[k], H5P_DEFAULT);
      if (g < 0) {
        ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "/optim", "use a checkpoint of this run",
                      "%s lacks /optim/%s", path, names[k]);
        st = IFT_ERR_FORMAT;
      } else {
        st = read_tensors(g, m, bufs[k], path);
        H5Gclose(g);
      }
    }
    H5Gclose(go);
  }
done:
  if (gt >= 0) H5Gclose(gt);
  if (gm >= 0) H5Gclose(gm);
  if (f >= 0) H5Fclose(f);
  if (fapl >= 0) H5Pclose(fapl);
  return st;
}

/* ------------------------------------------------------------ inspection */

static void print_attr(FILE *out, hid_t obj, const char *name, const char *label) {
  if (H5Aexists(obj, name) <= 0) return;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a);
  if (H5Tget_class(t) == H5T_STRING) {
    size_t n = H5Tget_size(t);
    char *v = calloc(n + 1, 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    if (v && H5Aread(a, mt, v) >= 0) fprintf(out, "  %-24s %s\n", label, v);
    H5Tclose(mt);
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

ift_status ckpt_info(const char *path, FILE *out, int show_config) {
  model_config c;
  IFT_TRY(ckpt_read_config(path, &c));
  ift_status st = IFT_OK;
  hid_t f = -1, g = -1;
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "the file is not HDF5 or is truncated");
  fprintf(out, "%s\n", path);
  if ((g = H5Gopen2(f, "/train", H5P_DEFAULT)) >= 0) {
    print_attr(out, g, "step", "step");
    print_attr(out, g, "epoch", "epoch");
    print_attr(out, g, "layout", "layout (dp x tp)");
    print_attr(out, g, "code_version", "written by iftrain");
  }
  fprintf(out, "  model: vocab %d, hidden %d, intermediate %d, %d layers, %d heads (%d KV), %s head\n",
          c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
          c.num_attention_heads, c.num_key_value_heads, c.tie_word_embeddings ? "tied" : "untied");
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
  hid_t f = -1;
  long n = 0;
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "the file is not HDF5 or is truncated");
  static const char *groups[3] = {"/model", "/optim/m", "/optim/v"};
  for (int k = 0; k < 3 && st == IFT_OK; k++) {
    if (k > 0 && H5Lexists(f, "/optim", H5P_DEFAULT) <= 0) break;
    if (k > 0 && H5Lexists(f, groups[k], H5P_DEFAULT) <= 0) continue;
    hid_t g = H5Gopen2(f, groups[k], H5P_DEFAULT);
    if ((st = read_tensors(g, m, model_params(m), path)) == IFT_OK) {
      for (int i = 0; i < model_ntensors(m) && st == IFT_OK; i++) {
        const model_tensor *t = model_tensor_at(m, i);
        uint64_t want = 0, have = ckpt_checksum_part(model_params(m) + t->offset, t->rows, t->cols, 0, 0, t->cols);
        hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
        int has = ds >= 0 && read_attr(ds, "checksum", H5T_NATIVE_UINT64, &want) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (!has || want != have) {
          ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "checksum",
                        "the checkpoint is damaged: resume from an earlier one",
                        "%s: tensor %s/%s %s", path, groups[k], t->name,
                        has ? "does not match its checksum" : "has no checksum attribute");
          st = IFT_ERR_FORMAT;
        }
        n++;
      }
    }
    H5Gclose(g);
  }
  if (st == IFT_OK && out) fprintf(out, "%s: OK, %ld tensors verified\n", path, n);
done:
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
  quiet_hdf5();
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "the file is not HDF5 or is truncated");
  H5CHK(o = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "check the output directory");
  H5CHK(H5Ocopy(f, "/model", o, "/model", H5P_DEFAULT, H5P_DEFAULT), "the checkpoint has no /model");
  H5CHK(H5Fclose(o), "check free disk space");
  o = -1;
  if (rename(tmp, out_path) != 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "rename", "check the output directory",
                  "cannot rename %s to %s", tmp, out_path);
    st = IFT_ERR_IO;
  }
done:
  if (o >= 0) H5Fclose(o);
  if (f >= 0) H5Fclose(f);
  if (st != IFT_OK) unlink(tmp);
  return st;
}

ift_status ckpt_fingerprint(const char *path, char out[17]) {
  model_config c;
  IFT_TRY(ckpt_read_config(path, &c));
  model *m;
  IFT_TRY(model_create(&m, &c, MPI_COMM_NULL, 1, 2));
  ift_status st = IFT_OK;
  hid_t f = -1, g = -1;
  H5CHK(f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "the file is not HDF5 or is truncated");
  H5CHK(g = H5Gopen2(f, "/model", H5P_DEFAULT), "the file has no /model group: not an iftrain checkpoint");
  char cs[256];
  int cn = snprintf(cs, sizeof cs, "%d %d %d %d %d %d %d %d %.17g %.17g", c.vocab_size, c.hidden_size,
                    c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
                    c.num_key_value_heads, c.max_position_embeddings, c.tie_word_embeddings,
                    c.rms_norm_eps, c.rope_theta);
  uint64_t h = core_fnv1a(CORE_FNV_INIT, cs, (size_t)cn);
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    uint64_t sum = 0;
    hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
    int has = ds >= 0 && read_attr(ds, "checksum", H5T_NATIVE_UINT64, &sum) >= 0;
    if (ds >= 0) H5Dclose(ds);
    if (!has) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "checksum",
                    "use a checkpoint written by iftrain train (iftrain ckpt verify checks it)",
                    "%s: tensor /model/%s is missing or has no checksum", path, t->name);
      st = IFT_ERR_FORMAT;
      goto done;
    }
    h = core_fnv1a(h, t->name, strlen(t->name));
    h = core_fnv1a(h, &sum, sizeof sum);
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
done:
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  model_destroy(m);
  return st;
}
