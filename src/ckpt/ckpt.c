#include "config.h"
#include "iftrain/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <hdf5.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "iftrain/dist.h"
#include "iftrain/h5attr.h"
#include "iftrain/optim.h"

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
/* A string attribute (any stored length) as a malloc'd string; NULL when it
 * is absent or not a string. */
static char *read_attr_str(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return NULL;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
  char *v = NULL;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
    size_t n = H5Tget_size(t);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    v = calloc(n + 1, 1);
    if (v && H5Aread(a, mt, v) < 0) {
      free(v);
      v = NULL;
    }
    H5Tclose(mt);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return v;
}

static const char *const rope_type_names[] = {"default", "linear", "llama3"};

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
  r |= attr_int(g, "head_dim", model_head_dim(c));
  r |= ift_h5_attr_str(g, "rope_type", rope_type_names[c->rope_type]);
  r |= attr_double(g, "rope_factor", c->rope_factor);
  r |= attr_double(g, "rope_low_freq_factor", c->rope_low_freq_factor);
  r |= attr_double(g, "rope_high_freq_factor", c->rope_high_freq_factor);
  r |= attr_int(g, "rope_original_max_position_embeddings",
                c->rope_original_max_position_embeddings);
  r |= attr_int(g, "sliding_window", c->sliding_window);
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

/* Does this rank hold a part of tensor t that no other rank of its replica
 * holds (shards; replicated tensors count on TP rank 0)? */
static int owns_part(const model *m, const model_tensor *t) {
  return t->shard != SHARD_NONE || model_tp_rank(m) == 0;
}

/* The checksums of every tensor of `nbuf` buffers laid out like the model
 * (parameters, optimizer moments), summed over the ranks of replica 0 (the
 * writers) in one all-reduce -- before the file is opened, so that the only
 * collectives while writing are HDF5's own and the failure agreements. */
static ift_status checksums_all(uint64_t *sums, const model *m, const float *const *bufs, int nbuf,
                                int writer, MPI_Comm world) {
  const int nt = model_ntensors(m);
  for (int k = 0; k < nbuf; k++)
    for (int i = 0; i < nt; i++) {
      const model_tensor *t = model_tensor_at(m, i);
      sums[(size_t)k * nt + i] =
          bufs[k] && writer && owns_part(m, t) ? checksum_shard(t, bufs[k] + t->offset) : 0;
    }
  IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, nbuf * nt, MPI_UINT64_T, MPI_SUM, world), NULL);
  return IFT_OK;
}

/* Every tensor of the model's layout from `base` (parameters or an optimizer
 * moment laid out like them) into group g, each rank its hyperslab, with the
 * checksums from checksums_all. */
static ift_status write_tensors(hid_t g, const model *m, const float *base, const uint64_t *sums,
                                hid_t dxpl, int writer, const char *path, MPI_Comm world) {
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    shard_sel sel;
    shard_select(t, &sel);
    const int mine = writer && owns_part(m, t);
    uint64_t sum = sums[i];
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
    if (core_fault("ckpt_write")) r = -1;
    H5Sclose(ms);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(fs);
    /* A full disk or quota fails the write on the ranks whose part did not
     * fit, not on all: agree before the next tensor's collectives, or the
     * ranks that succeeded wait in them forever. */
    ift_status st = IFT_OK;
    if (r < 0) {
      ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "H5Dwrite",
                    "check free disk space and quota of ckpt.dir; the previous checkpoint is intact",
                    "writing %s to %s failed", t->name, path);
      st = IFT_ERR_WRITE;
    }
    IFT_TRY(dist_agree(st, world));
  }
  return IFT_OK;
}

/* The last resort of "nothing hangs": after a failed write (a full disk that
 * reserve_space could not foresee), parallel HDF5 may never return from the
 * collective close.  The close gets CKPT_CLOSE_TIMEOUT seconds (default 60);
 * then the rank removes the partial file, says why, and exits 1, so the job
 * ends instead of burning its allocation.  path == NULL disarms. */
static char g_closing[1200];
static void close_timed_out(int sig) {
  (void)sig;
  static const char msg[] = "iftrain: error: HDF5 did not finish closing a failed checkpoint write; "
                            "exiting with code 1 (the previous checkpoint is intact)\n";
  unlink(g_closing);
  if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
  _exit(1);
}
static void close_watchdog(const char *path) {
  if (!path) {
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    return;
  }
  snprintf(g_closing, sizeof g_closing, "%s", path);
  const char *env = getenv("CKPT_CLOSE_TIMEOUT");
  int sec = env ? atoi(env) : 60;
  signal(SIGALRM, close_timed_out);
  alarm(sec > 0 ? (unsigned)sec : 60);
}

static ift_status write_file(const char *path, model *m, const optim_state *opt,
                             const ckpt_meta *meta, MPI_Comm world, int writer) {
  ift_status st = IFT_OK;
  int agreed = 0; /* st is already known to every rank */
  hid_t fapl = -1, f = -1, gm = -1, gt = -1, go = -1, dxpl = -1;
  const int nt = model_ntensors(m);
  const float *bufs[3] = {model_params(m), opt ? opt->m : NULL, opt ? opt->v : NULL};
  uint64_t *sums = malloc(sizeof(uint64_t) * 3 * (size_t)nt);
  if ((st = dist_agree(sums ? IFT_OK : IFT_ERR_NOMEM, world)) != IFT_OK) {
    free(sums);
    return st;
  }
  if ((st = checksums_all(sums, m, bufs, 3, writer, world)) != IFT_OK) {
    free(sums);
    return st;
  }
  quiet_hdf5();
  IFT_H5_CHECK_GOTO(st, done, fapl = H5Pcreate(H5P_FILE_ACCESS), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Pset_fapl_mpio(fapl, world, MPI_INFO_NULL),
                    "is HDF5 built with MPI (parallel)?", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
                    "check that ckpt.dir is writable and the disk has room", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, gm = H5Gcreate2(f, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL,
                    "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, write_config_attrs(gm, model_cfg(m)), NULL, "HDF5 call failed on %s", path);
  if (meta->origin && meta->origin[0]) IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gm, "origin", meta->origin),
                                                         NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, dxpl = H5Pcreate(H5P_DATASET_XFER), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), NULL,
                    "HDF5 call failed on %s", path);
  if ((st = write_tensors(gm, m, bufs[0], sums, dxpl, writer, path, world)) != IFT_OK) {
    agreed = 1;
    goto done;
  }
  if (opt) {
    /* /optim/<state>/<name>: the optimizer's moments mirror the model */
    IFT_H5_CHECK_GOTO(st, done, go = H5Gcreate2(f, "/optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL,
                      "HDF5 call failed on %s", path);
    IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(go, "name", optim_kind_name(opt->cfg.kind)), NULL,
                      "HDF5 call failed on %s", path);
    IFT_H5_CHECK_GOTO(st, done, attr_int(go, "t", opt->t), NULL, "HDF5 call failed on %s", path);
    static const char *names[3] = {NULL, "m", "v"};
    for (int k = 1; k < 3; k++) {
      if (!bufs[k]) continue;
      hid_t g = H5Gcreate2(go, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      IFT_H5_CHECK_GOTO(st, done, g, NULL, "HDF5 call failed on %s", path);
      st = write_tensors(g, m, bufs[k], sums + (size_t)k * nt, dxpl, writer, path, world);
      H5Gclose(g);
      if (st != IFT_OK) {
        agreed = 1;
        goto done;
      }
    }
  }
  IFT_H5_CHECK_GOTO(st, done, gt = H5Gcreate2(f, "/train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL,
                    "HDF5 call failed on %s", path);
  char layout[64];
  snprintf(layout, sizeof layout, "%d x %d", meta->dp, meta->tp);
  IFT_H5_CHECK_GOTO(st, done, attr_int(gt, "step", meta->step), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, attr_int(gt, "epoch", meta->epoch), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, attr_int(gt, "cursor", meta->cursor), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, attr_int(gt, "format_version", 2), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gt, "run_id", meta->run_id ? meta->run_id : ""), NULL,
                    "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gt, "data_content_sha256", meta->data_hash ? meta->data_hash : ""),
                    NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gt, "layout", layout), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gt, "code_version", PACKAGE_VERSION), NULL,
                    "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ift_h5_attr_str(gt, "config", meta->config_text ? meta->config_text : ""), NULL,
                    "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Fflush(f, H5F_SCOPE_GLOBAL), "the disk may be full",
                    "HDF5 call failed on %s", path);
done:
  /* every rank reaches the collective close together, whoever failed */
  if (!agreed) st = dist_agree(st, world);
  if (st != IFT_OK) close_watchdog(path);
  if (gt >= 0) H5Gclose(gt);
  if (go >= 0) H5Gclose(go);
  if (gm >= 0) H5Gclose(gm);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (f >= 0 && H5Fclose(f) < 0 && st == IFT_OK) {
    ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Fclose", "check free disk space of ckpt.dir",
                  "closing %s failed", path);
    st = IFT_ERR_HDF5;
  }
  if (st != IFT_OK) close_watchdog(NULL);
  if (fapl >= 0) H5Pclose(fapl);
  free(sums);
  return st;
}

/* The run id stored in a checkpoint file ("" when it has none or cannot be
 * read).  Serial. */
static void file_run_id(const char *path, char out[CKPT_RUN_ID_LEN]) {
  out[0] = 0;
  quiet_hdf5();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return;
  hid_t g = H5Lexists(f, "/train", H5P_DEFAULT) > 0 ? H5Gopen2(f, "/train", H5P_DEFAULT) : -1;
  char *v = g >= 0 ? read_attr_str(g, "run_id") : NULL;
  if (v) snprintf(out, CKPT_RUN_ID_LEN, "%s", v);
  free(v);
  if (g >= 0) H5Gclose(g);
  H5Fclose(f);
}

/* step_N.h5 -> N (>= 0), else -1. */
static long step_of_name(const char *name) {
  long s;
  char tail[8];
  int used = 0;
  if (sscanf(name, "step_%ld.h%7s%n", &s, tail, &used) == 2 && !strcmp(tail, "5") &&
      name[used] == 0 && s >= 0)
    return s;
  return -1;
}

static void prune(const char *dir, long step, int keep, const char *run_id) {
  if (keep <= 0 || !run_id || !run_id[0]) return;
  /* Remove every step_N.h5 of this run older than its newest `keep`; a file
   * of another run (or without a run id) is never this run's to delete, nor
   * counted among the kept. */
  long *steps = NULL;
  int n = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    long s = step_of_name(e->d_name);
    char f[1400], id[CKPT_RUN_ID_LEN] = "";
    if (s >= 0 && s <= step) {
      snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
      file_run_id(f, id);
    }
    if (id[0] && !strcmp(id, run_id)) {
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

/* Make sure the file system will take `need` bytes before HDF5 writes
 * (ift_fs_reserve: a parallel HDF5 file whose writes fail with ENOSPC or
 * EDQUOT cannot be closed reliably). */
static ift_status reserve_space(const char *path, double need) {
  if (core_fault("ckpt_no_reserve")) return IFT_OK; /* tests reach the close watchdog */
  int cannot_create = 0;
  const int e = ift_fs_reserve(path, need, &cannot_create);
  IFT_REQUIRE(!cannot_create, IFT_ERR_WRITE, "check the permissions of ckpt.dir", "cannot create %s: %s",
              path, strerror(e));
  IFT_REQUIRE(!e, IFT_ERR_WRITE,
              "free space (or raise the quota) in ckpt.dir, or lower ckpt.keep; the previous checkpoint is intact",
              "ckpt.dir cannot take the %.1f MiB of %s: %s", need / 1048576.0, path, strerror(e));
  return IFT_OK;
}

ift_status ckpt_save_file(const char *path, model *m, const optim_state *opt,
                          const ckpt_meta *meta, MPI_Comm world, int dp_rank) {
  int rank;
  IFT_MPI_CHECK(MPI_Comm_rank(world, &rank), NULL);
  char tmp[1110];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  const int nbuf = 1 + (opt && opt->m) + (opt && opt->v);
  const double need = (double)model_nparams_global(m) * sizeof(float) * nbuf +
                      8192.0 * model_ntensors(m) * nbuf + 1048576.0;
  IFT_TRY(dist_agree(rank == 0 ? reserve_space(tmp, need) : IFT_OK, world));
  ift_status st = write_file(tmp, m, opt, meta, world, dp_rank == 0);
  /* the close may fail on some ranks only: agree, then rank 0 renames */
  st = dist_agree(st, world);
  if (rank == 0) {
    if (st == IFT_OK && rename(tmp, path) != 0) {
      ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "rename", "check the permissions of the directory",
                    "cannot rename %s to %s: %s", tmp, path, strerror(errno));
      st = IFT_ERR_WRITE;
    }
    if (st != IFT_OK) unlink(tmp); /* the previous file at path stays as it was */
  }
  return dist_agree(st, world);
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
  char fin[1100];
  snprintf(fin, sizeof fin, "%s/step_%ld.h5", dir, meta->step);
  ift_status st = IFT_OK;
  if (rank == 0 && meta->run_id && meta->run_id[0] && access(fin, F_OK) == 0) {
    /* a step_N.h5 already there that this run did not write (copied in, or
     * of a run before run ids) is not this run's to replace */
    char id[CKPT_RUN_ID_LEN];
    file_run_id(fin, id);
    if (strcmp(id, meta->run_id)) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "ckpt_save",
                    "move that file out of ckpt.dir (or choose a new ckpt.dir); it was not changed",
                    "%s exists and is not a checkpoint of this run: not overwriting it", fin);
      st = IFT_ERR_CONFIG;
    }
  }
  IFT_TRY(dist_agree(st, world));
  IFT_TRY(ckpt_save_file(fin, m, opt, meta, world, dp_rank));
  int all = 1;
  if (rank == 0) {
    /* the new checkpoint is complete: point `latest` at it, then rotate */
    char lt[1110], lf[1100];
    snprintf(lf, sizeof lf, "%s/latest", dir);
    snprintf(lt, sizeof lt, "%s.tmp", lf);
    FILE *f = fopen(lt, "w");
    all = f && fprintf(f, "step_%ld.h5\n", meta->step) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) all = 0;
    if (all && rename(lt, lf) != 0) all = 0;
    if (all) prune(dir, meta->step, keep, meta->run_id);
  }
  if (!all)
    ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "latest",
                  "check free space and permissions of ckpt.dir; the previous checkpoint is intact",
                  "the pointer %s/latest to step %ld could not be written", dir, meta->step);
  /* rank 0 alone wrote the pointer: an agreement, so the job ends without MPI_ABORT */
  IFT_TRY(dist_agree(all ? IFT_OK : IFT_ERR_WRITE, world));
  if (path_out) snprintf(path_out, 1100, "%s", fin);
  return IFT_OK;
}

/* s as printable ASCII (others as \xNN), at most about 60 characters: user
 * files such as `latest` may hold anything, and the terminal must not get it raw. */
static void escape_text(char *out, size_t n, const char *s) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 8 < n && o < 60; p++) {
    if (*p >= 0x20 && *p < 0x7f)
      out[o++] = (char)*p;
    else
      o += (size_t)snprintf(out + o, n - o, "\\x%02x", *p);
  }
  if (o + 4 < n && *s && strlen(s) > o) o += (size_t)snprintf(out + o, n - o, "...");
  out[o < n ? o : n - 1] = 0;
}

/* <dir>/latest -> the checkpoint it names (a step_N.h5 of dir that exists). */
static ift_status read_latest(char *out, size_t n, const char *lf, const char *dir) {
  char name[512] = "";
  FILE *f = fopen(lf, "r");
  IFT_REQUIRE(f, IFT_ERR_IO, "check the permissions of the checkpoint directory",
              "cannot read '%s': %s", lf, strerror(errno));
  int ok = fgets(name, sizeof name, f) != NULL;
  fclose(f);
  IFT_REQUIRE(ok, IFT_ERR_FORMAT, "delete the empty 'latest' file (the newest step_N.h5 is then used) or pass ckpt.resume=PATH",
              "'%s' is empty", lf);
  name[strcspn(name, "\n")] = 0;
  char shown[96];
  escape_text(shown, sizeof shown, name);
  IFT_REQUIRE(step_of_name(name) >= 0, IFT_ERR_FORMAT,
              "delete the damaged 'latest' file (the newest step_N.h5 is then used) or pass ckpt.resume=PATH",
              "'%s' does not name a checkpoint (it holds \"%s\", expected step_N.h5)", lf, shown);
  snprintf(out, n, "%s/%s", dir, name);
  IFT_REQUIRE(access(out, R_OK) == 0, IFT_ERR_IO,
              "the checkpoint was deleted: delete 'latest' to use the newest remaining step_N.h5, or pass ckpt.resume=PATH",
              "'%s' names %s, which is missing or unreadable", lf, out);
  return IFT_OK;
}

/* The newest step_N.h5 in dir, or -1. */
static long newest_step(const char *dir) {
  long best = -1;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    long s = step_of_name(e->d_name);
    if (s > best) best = s;
  }
  closedir(d);
  return best;
}

ift_status ckpt_resolve(char *out, size_t n, const char *resume, const char *dir) {
  out[0] = 0;
  if (!resume || !*resume || !strcmp(resume, "none")) return IFT_OK;
  if (strcmp(resume, "auto")) return ckpt_resolve_any(out, n, resume);
  char lf[1100];
  snprintf(lf, sizeof lf, "%s/latest", dir);
  if (access(lf, F_OK) == 0) return read_latest(out, n, lf, dir);
  /* No pointer (deleted by hand, or lost): checkpoints are renamed into
   * place only when complete, so the newest step_N.h5 is the one to take --
   * starting afresh beside it would rotate it away. */
  long best = newest_step(dir);
  if (best >= 0) {
    snprintf(out, n, "%s/step_%ld.h5", dir, best);
    IFT_LOG0("%s has no 'latest' pointer: resuming from its newest checkpoint %s", dir, out);
  }
  return IFT_OK;
}

ift_status ckpt_resolve_any(char *out, size_t n, const char *path) {
  struct stat sb;
  IFT_REQUIRE(stat(path, &sb) == 0, IFT_ERR_IO, "check the checkpoint path",
              "checkpoint '%s' does not exist: %s", path, strerror(errno));
  if (ckpt_is_hf_dir(path)) {
    snprintf(out, n, "%s", path);
    return IFT_OK;
  }
  if (S_ISDIR(sb.st_mode)) {
    char lf[1100];
    snprintf(lf, sizeof lf, "%s/latest", path);
    if (access(lf, F_OK) == 0) return read_latest(out, n, lf, path);
    long best = newest_step(path);
    IFT_REQUIRE(best >= 0, IFT_ERR_IO, "name a checkpoint file or a checkpoint directory of iftrain train",
                "directory '%s' holds no checkpoint (no 'latest', no step_N.h5)", path);
    snprintf(out, n, "%s/step_%ld.h5", path, best);
    return IFT_OK;
  }
  const char *base = strrchr(path, '/');
  if (!strcmp(base ? base + 1 : path, "latest")) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%.*s", base ? (int)(base - path) : 1, base ? path : ".");
    return read_latest(out, n, path, dir);
  }
  IFT_REQUIRE(access(path, R_OK) == 0, IFT_ERR_IO, "check the permissions of the checkpoint",
              "checkpoint '%s' is unreadable: %s", path, strerror(errno));
  snprintf(out, n, "%s", path);
  return IFT_OK;
}

void ckpt_new_run_id(char out[CKPT_RUN_ID_LEN]) {
  uint64_t r[2] = {0, 0};
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(r, sizeof r, 1, f) != 1) {
    /* no urandom: time and pid still separate two runs */
    r[0] = core_fnv1a(CORE_FNV_INIT, &(double){core_now()}, sizeof(double));
    r[1] = core_fnv1a(r[0], &(pid_t){getpid()}, sizeof(pid_t));
  }
  if (f) fclose(f);
  snprintf(out, CKPT_RUN_ID_LEN, "%016llx%016llx", (unsigned long long)r[0], (unsigned long long)r[1]);
}

/* Rank 0's part of ckpt_dir_claim. */
static ift_status dir_claim_local(const char *dir, const char *run_id, int resumed) {
  IFT_REQUIRE(core_mkdir_p(dir) == 0, IFT_ERR_IO, "choose a writable ckpt.dir",
              "cannot create checkpoint directory '%s': %s", dir, strerror(errno));
  char rf[1100], owner[CKPT_RUN_ID_LEN] = "";
  snprintf(rf, sizeof rf, "%s/RUN", dir);
  FILE *f = fopen(rf, "r");
  if (f) {
    if (!fgets(owner, sizeof owner, f)) owner[0] = 0;
    fclose(f);
    owner[strcspn(owner, "\n")] = 0;
  }
  /* checkpoints that are not this run's: a RUN file of another run, or (no
   * RUN file, from before run ids) any step_N.h5 whose run id differs */
  long foreign = -1;
  if (!owner[0]) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      long s = step_of_name(e->d_name);
      if (s < 0) continue;
      char p[1400], id[CKPT_RUN_ID_LEN];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      file_run_id(p, id);
      if ((id[0] ? strcmp(id, run_id) != 0 : !resumed) && s > foreign) foreign = s;
    }
    if (d) closedir(d);
  }
  char shown[96];
  escape_text(shown, sizeof shown, owner);
  IFT_REQUIRE(!owner[0] || !strcmp(owner, run_id), IFT_ERR_CONFIG,
              "resume that run with --ckpt.resume=auto, or choose a new --ckpt.dir; nothing was deleted",
              "ckpt.dir '%s' belongs to another run (run id %s in %s)", dir, shown, rf);
  IFT_REQUIRE(foreign < 0, IFT_ERR_CONFIG,
              "resume that run with --ckpt.resume=auto, or choose a new --ckpt.dir; nothing was deleted",
              "ckpt.dir '%s' holds checkpoints of another run (newest: step_%ld.h5)", dir, foreign);
  if (owner[0]) return IFT_OK;
  /* RUN is written like `latest` (temporary file, fsync, rename), which
   * also proves that the directory takes files */
  char tmp[1110];
  snprintf(tmp, sizeof tmp, "%s.tmp", rf);
  f = fopen(tmp, "w");
  int ok = f && fprintf(f, "%s\n", run_id) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (f && fclose(f) != 0) ok = 0;
  if (ok && rename(tmp, rf) != 0) ok = 0;
  const int e = ok ? 0 : errno;
  if (!ok) unlink(tmp);
  IFT_REQUIRE(ok, IFT_ERR_IO, "choose a writable ckpt.dir with free space", "cannot write %s: %s",
              rf, strerror(e));
  return IFT_OK;
}

ift_status ckpt_dir_claim(const char *dir, const char *run_id, int resumed, MPI_Comm comm) {
  int rank = 0;
  IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  return dist_agree(rank == 0 ? dir_claim_local(dir, run_id, resumed) : IFT_OK, comm);
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
      if (core_fault("ckpt_read")) r = -1;
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

/* Open a checkpoint file read-only (serial) and its /model group. */
static ift_status open_model_group(const char *path, hid_t *fp, hid_t *gmp) {
  ift_status st = IFT_OK;
  hid_t f = -1, gm = -1;
  quiet_hdf5();
  IFT_REQUIRE(access(path, R_OK) == 0, IFT_ERR_IO, "check the checkpoint path",
              "checkpoint '%s' does not exist or is unreadable", path);
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated; use an earlier checkpoint", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, gm = H5Gopen2(f, "/model", H5P_DEFAULT),
                    "the file has no /model group: not an iftrain checkpoint", "HDF5 call failed on %s", path);
done:
  *fp = f;
  *gmp = gm;
  return st == IFT_ERR_HDF5 ? IFT_ERR_FORMAT : st;
}

ift_status ckpt_origin(const char *path, char **out) {
  *out = NULL;
  if (ckpt_is_hf_dir(path)) return ckpt_hf_origin(path, out);
  hid_t f = -1, gm = -1;
  ift_status st = open_model_group(path, &f, &gm);
  if (st != IFT_OK) goto done;
  *out = read_attr_str(gm, "origin");
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT;
  if (gm >= 0) H5Gclose(gm);
  if (f >= 0) H5Fclose(f);
  return st;
}

ift_status ckpt_origin_shared(const char *path, char **out, MPI_Comm comm) {
  int rank = 0;
  *out = NULL;
  if (comm != MPI_COMM_NULL) IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  ift_status st = rank == 0 ? ckpt_origin(path, out) : IFT_OK;
  IFT_TRY(dist_agree(st, comm));
  if (comm == MPI_COMM_NULL) return IFT_OK;
  long n = rank == 0 && *out ? (long)strlen(*out) + 1 : 0;
  IFT_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG, 0, comm), NULL);
  if (!n) return IFT_OK;
  if (rank != 0) *out = malloc((size_t)n);
  st = *out ? IFT_OK : IFT_ERR_NOMEM;
  if (st != IFT_OK) ift_error_set(st, __FILE__, __LINE__, "malloc", NULL, "origin text");
  IFT_TRY_GOTO(st, fail, dist_agree(st, comm)); /* one rank's malloc: agreed before the Bcast */
  IFT_MPI_CHECK_GOTO(st, fail, MPI_Bcast(*out, (int)n, MPI_CHAR, 0, comm), NULL);
  return IFT_OK;
fail:
  free(*out);
  *out = NULL;
  return st;
}

/* The model config in the attributes of /model.  The keys of the first
 * checkpoints are required; head_dim and the RoPE scaling (added with the
 * Hugging Face import) default to hidden/heads and no scaling. */
static ift_status read_model_attrs(hid_t gm, model_config *c, const char *path) {
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
    herr_t r = i < 8 ? read_attr_long(gm, k, &v) : read_attr_double(gm, k, dv[i - 8]);
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
      IFT_REQUIRE(read_attr_long(gm, ok[i], &v) >= 0, IFT_ERR_FORMAT, "use an earlier checkpoint",
                  "%s: /model attribute %s is unreadable", path, ok[i]);
      *ov[i] = (int)v;
    }
  }
  static const char *odk[] = {"rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"};
  double *odv[] = {&c->rope_factor, &c->rope_low_freq_factor, &c->rope_high_freq_factor};
  for (int i = 0; i < 3; i++)
    if (H5Aexists(gm, odk[i]) > 0)
      IFT_REQUIRE(read_attr_double(gm, odk[i], odv[i]) >= 0, IFT_ERR_FORMAT,
                  "use an earlier checkpoint", "%s: /model attribute %s is unreadable", path,
                  odk[i]);
  char *rt = read_attr_str(gm, "rope_type");
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

ift_status ckpt_read_config(const char *path, model_config *c) {
  if (ckpt_is_hf_dir(path)) return ckpt_hf_config(path, c, NULL);
  hid_t f = -1, gm = -1;
  ift_status st = open_model_group(path, &f, &gm);
  if (st != IFT_OK) goto done;
  st = read_model_attrs(gm, c, path);
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
  if (gm >= 0) H5Gclose(gm);
  if (f >= 0) H5Fclose(f);
  return st;
}

void ckpt_train_state_free(ckpt_train_state *ts) {
  if (!ts) return;
  free(ts->config_text);
  ts->config_text = NULL;
}

/* Every architecture key of the configured model against the checkpoint's
 * /model attributes; all differences are named in one message. */
static ift_status check_arch(hid_t gm, const model_config *c, const char *path) {
  model_config s;
  char diff[1024];
  IFT_TRY(read_model_attrs(gm, &s, path));
  IFT_REQUIRE(!model_config_diff(&s, c, diff, sizeof diff), IFT_ERR_CONFIG,
              "use the [model] section the checkpoint was trained with",
              "%s: the checkpoint's model differs: %s", path, diff);
  return IFT_OK;
}

/* /train of a checkpoint to resume: present, complete and in range. */
static ift_status read_train_state(hid_t f, ckpt_train_state *ts, const char *path) {
  IFT_REQUIRE(H5Lexists(f, "/train", H5P_DEFAULT) > 0, IFT_ERR_FORMAT,
              "resume from a checkpoint of iftrain train, or start a new run from these weights with ckpt.init",
              "%s has no /train group: it cannot be resumed", path);
  hid_t gt = H5Gopen2(f, "/train", H5P_DEFAULT);
  IFT_REQUIRE(gt >= 0, IFT_ERR_FORMAT, "the file is damaged: use an earlier checkpoint",
              "%s: cannot open /train", path);
  static const char *keys[3] = {"step", "epoch", "cursor"};
  long *vals[3] = {&ts->step, &ts->epoch, &ts->cursor};
  ift_status st = IFT_OK;
  for (int i = 0; i < 3 && st == IFT_OK; i++) {
    if (read_attr_long(gt, keys[i], vals[i]) < 0) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, keys[i],
                    "the file is damaged: use an earlier checkpoint",
                    "%s: /train has no attribute %s", path, keys[i]);
      st = IFT_ERR_FORMAT;
    } else if (*vals[i] < 0) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, keys[i],
                    "the file is damaged: use an earlier checkpoint",
                    "%s: /train %s = %ld is negative", path, keys[i], *vals[i]);
      st = IFT_ERR_FORMAT;
    }
  }
  char *id = read_attr_str(gt, "run_id"), *dh = read_attr_str(gt, "data_content_sha256");
  snprintf(ts->run_id, sizeof ts->run_id, "%s", id ? id : "");
  snprintf(ts->data_hash, sizeof ts->data_hash, "%s", dh ? dh : "");
  free(id);
  free(dh);
  ts->config_text = read_attr_str(gt, "config");
  H5Gclose(gt);
  return st;
}

/* Read tensors of group `gname` into base and their stored checksums into want
 * (missing checksum: want stays 0 and *missing is set). */
static ift_status read_group(hid_t f, const char *gname, const model *m, float *base,
                             uint64_t *want, int *missing, const char *path) {
  hid_t g = H5Lexists(f, gname, H5P_DEFAULT) > 0 ? H5Gopen2(f, gname, H5P_DEFAULT) : -1;
  IFT_REQUIRE(g >= 0, IFT_ERR_FORMAT, "resume from a checkpoint written by iftrain train (it has /optim)",
              "%s has no %s", path, gname);
  ift_status st = read_tensors(g, m, base, path);
  for (int i = 0; i < model_ntensors(m) && st == IFT_OK; i++) {
    hid_t ds = H5Dopen2(g, model_tensor_at(m, i)->name, H5P_DEFAULT);
    if (ds < 0 || read_attr(ds, "checksum", H5T_NATIVE_UINT64, &want[i]) < 0) *missing = 1;
    if (ds >= 0) H5Dclose(ds);
  }
  H5Gclose(g);
  return st;
}

/* Compare the checksums of what every rank read with the stored ones: each
 * replica's shards sum to a tensor's checksum, so the sum over all ranks is
 * (number of replicas) x stored.  Collective. */
static ift_status verify_read(const model *m, float *const *bufs, const uint64_t *want, int nbuf,
                              const char *const *gnames, MPI_Comm comm, const char *path) {
  const int nt = model_ntensors(m);
  int size = 1;
  if (comm != MPI_COMM_NULL) IFT_MPI_CHECK(MPI_Comm_size(comm, &size), NULL);
  const uint64_t replicas = (uint64_t)(size / model_tp_size(m));
  uint64_t *sums = calloc((size_t)nbuf * nt, sizeof(uint64_t));
  ift_status st = IFT_OK;
  if (!sums) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "calloc", NULL, "checksums of %d tensors", nt);
    st = IFT_ERR_NOMEM;
  }
  IFT_TRY_GOTO(st, out, dist_agree(st, comm)); /* one rank's calloc: agreed before the Allreduce */
  for (int k = 0; k < nbuf; k++)
    for (int i = 0; i < nt; i++) {
      const model_tensor *t = model_tensor_at(m, i);
      if (bufs[k] && owns_part(m, t)) sums[(size_t)k * nt + i] = checksum_shard(t, bufs[k] + t->offset);
    }
  if (comm != MPI_COMM_NULL && size > 1)
    IFT_MPI_CHECK_GOTO(st, out, MPI_Allreduce(MPI_IN_PLACE, sums, nbuf * nt, MPI_UINT64_T, MPI_SUM, comm), NULL);
  /* the same sums on every rank: every rank fails alike */
  for (int k = 0; k < nbuf; k++)
    for (int i = 0; i < nt && bufs[k]; i++)
      if (sums[(size_t)k * nt + i] != want[(size_t)k * nt + i] * replicas)
        IFT_FAIL_GOTO(st, out, IFT_ERR_FORMAT,
                      "the checkpoint is damaged: use an earlier one (or ckpt.verify=0 / --no-verify "
                      "to load it anyway)",
                      "%s: tensor %s/%s does not match its stored checksum", path, gnames[k],
                      model_tensor_at(m, i)->name);
out:
  free(sums);
  return st;
}

ift_status ckpt_load(const char *path, model *m, optim_state *opt, ckpt_train_state *ts,
                     MPI_Comm comm, unsigned flags) {
  if (ckpt_is_hf_dir(path)) {
    /* weights only: a fine-tuning start (ckpt.init), eval or generate */
    ift_status hs = IFT_OK;
    if (opt || ts) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "ckpt.resume",
                    "start from it with --ckpt.init=DIR (resume continues iftrain checkpoints)",
                    "%s is a Hugging Face model directory: it has no optimizer state or step to "
                    "resume", path);
      hs = IFT_ERR_CONFIG;
    }
    return hs == IFT_OK ? ckpt_hf_load(path, m, comm) : hs;
  }
  ift_status st = IFT_OK;
  hid_t fapl = -1, f = -1, gm = -1;
  const int nt = model_ntensors(m);
  uint64_t *want = calloc(3 * (size_t)nt, sizeof(uint64_t));
  int missing = 0;
  if (ts) memset(ts, 0, sizeof *ts);
  quiet_hdf5();
  if (!want) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "calloc", NULL, "checksums of %d tensors", nt);
    st = IFT_ERR_NOMEM;
  } else if (access(path, R_OK) != 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "access", "check the checkpoint path",
                  "checkpoint '%s' does not exist or is unreadable", path);
    st = IFT_ERR_IO;
  }
  /* the open is collective: every rank must know that every rank may open */
  IFT_TRY_GOTO(st, out, dist_agree(st, comm));
  IFT_H5_CHECK_GOTO(st, done, fapl = H5Pcreate(H5P_FILE_ACCESS), NULL, "HDF5 call failed on %s", path);
  if (comm != MPI_COMM_NULL) IFT_H5_CHECK_GOTO(st, done, H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), NULL,
                                               "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, fapl),
                    "the file is not HDF5 or is truncated; use an earlier checkpoint", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, gm = H5Gopen2(f, "/model", H5P_DEFAULT),
                    "the file has no /model group: not an iftrain checkpoint", "HDF5 call failed on %s", path);
  /* From here on every read is this rank's own (no collective until the
   * checksums): a failure on one rank is agreed before the all-reduce. */
  IFT_TRY_GOTO(st, done, check_arch(gm, model_cfg(m), path));
  if (ts && (st = read_train_state(f, ts, path)) != IFT_OK) goto done;
  IFT_TRY_GOTO(st, done, read_group(f, "/model", m, model_params(m), want, &missing, path));
  if (opt) {
    /* resume needs the optimizer moments the run had */
    hid_t go = H5Lexists(f, "/optim", H5P_DEFAULT) > 0 ? H5Gopen2(f, "/optim", H5P_DEFAULT) : -1;
    if (go < 0) {
      IFT_FAIL_GOTO(st, done, IFT_ERR_FORMAT,
                    "resume from a checkpoint written by iftrain train (it has /optim), or start a "
                    "new run from its weights with ckpt.init",
                    "%s has no optimizer state to resume from", path);
    }
    char *name = read_attr_str(go, "name");
    long t = -1;
    read_attr_long(go, "t", &t);
    H5Gclose(go);
    if (!name || strcmp(name, optim_kind_name(opt->cfg.kind))) {
      ift_error_set(IFT_ERR_CONFIG, __FILE__, __LINE__, "optim.name",
                    "resume with the optimizer the run was started with",
                    "%s holds %s state but optim.name = %s", path, name ? name : "no",
                    optim_kind_name(opt->cfg.kind));
      st = IFT_ERR_CONFIG;
    } else if (ts && t != ts->step) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "/optim t",
                    "the file is damaged: use an earlier checkpoint",
                    "%s: the optimizer has taken %ld steps but /train step is %ld", path, t, ts->step);
      st = IFT_ERR_FORMAT;
    }
    free(name);
    opt->t = t;
    static const char *groups[2] = {"/optim/m", "/optim/v"};
    float *bufs[2] = {opt->m, opt->v};
    for (int k = 0; k < 2 && st == IFT_OK; k++)
      if (bufs[k]) st = read_group(f, groups[k], m, bufs[k], want + (size_t)(k + 1) * nt, &missing, path);
  }
  if (st == IFT_OK && missing && (flags & CKPT_VERIFY)) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "checksum",
                  "it was not written by iftrain train; load it without verification (ckpt.verify=0 / --no-verify)",
                  "%s: a tensor has no stored checksum", path);
    st = IFT_ERR_FORMAT;
  }
done:
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
  if ((st = dist_agree(st, comm)) == IFT_OK && (flags & CKPT_VERIFY)) {
    static const char *gnames[3] = {"/model", "/optim/m", "/optim/v"};
    float *bufs[3] = {model_params(m), opt ? opt->m : NULL, opt ? opt->v : NULL};
    st = verify_read(m, bufs, want, 3, gnames, comm, path);
  }
  if (gm >= 0) H5Gclose(gm);
  if (f >= 0) H5Fclose(f);
  if (fapl >= 0) H5Pclose(fapl);
out:
  free(want);
  if (st != IFT_OK && ts) ckpt_train_state_free(ts);
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
  hid_t f = -1;
  long n = 0;
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
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
  if (st == IFT_ERR_HDF5) st = IFT_ERR_FORMAT; /* a file HDF5 cannot read is malformed input */
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
  IFT_H5_CHECK_GOTO(st, done, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
                    "the file is not HDF5 or is truncated", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, o = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                    "check the output directory", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Ocopy(f, "/model", o, "/model", H5P_DEFAULT, H5P_DEFAULT),
                    "the checkpoint has no /model", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Fclose(o), "check free disk space", "HDF5 call failed on %s", path);
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
  ift_status st = ckpt_hf_load(dir, m, MPI_COMM_NULL);
  for (int i = 0; st == IFT_OK && i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    uint64_t sum =
        ckpt_checksum_part(model_params(m) + t->offset, t->rows, t->cols, 0, 0, t->cols);
    *h = core_fnv1a(*h, t->name, strlen(t->name));
    *h = core_fnv1a(*h, &sum, sizeof sum);
  }
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
    hid_t ds = H5Dopen2(g, t->name, H5P_DEFAULT);
    int has = ds >= 0 && read_attr(ds, "checksum", H5T_NATIVE_UINT64, &sum) >= 0;
    if (ds >= 0) H5Dclose(ds);
    if (!has) {
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
