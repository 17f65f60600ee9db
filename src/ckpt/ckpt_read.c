/* ckpt/ckpt_read — reading checkpoints: each rank its own shards of the
 * global tensors (ckpt_load, any layout), the architecture and /train
 * checks of a resume, the checksum verification of what was read, and the
 * model config and origin stored with a checkpoint. */
#include "config.h"
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_int.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"
#include "iftrain/optim.h"

/* Every tensor of the model's layout into `base`: each rank reads the
 * hyperslab of its own shard of the global tensor (any layout). */
ift_status ckpt_read_tensors(hid_t g, const model *m, float *base, const char *path) {
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    hsize_t fd[2] = {0, 0};
    ckpt_shard_sel sel;
    ckpt_shard_select(t, &sel);
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
      r = ckpt_shard_hyperslab(fs, &sel);
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
  ckpt_quiet_hdf5();
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
  *out = ift_h5_attr_dup_str(gm, "origin");
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
  IFT_REQUIRE_GOTO(st, agree, *out, IFT_ERR_NOMEM, NULL, "origin text");
agree:
  IFT_TRY_GOTO(st, fail, dist_agree(st, comm)); /* one rank's malloc: agreed before the Bcast */
  IFT_MPI_CHECK_GOTO(st, fail, MPI_Bcast(*out, (int)n, MPI_CHAR, 0, comm), NULL);
  return IFT_OK;
fail:
  free(*out);
  *out = NULL;
  return st;
}

ift_status ckpt_read_config(const char *path, model_config *c) {
  if (ckpt_is_hf_dir(path)) return ckpt_hf_config(path, c, NULL);
  hid_t f = -1, gm = -1;
  ift_status st = open_model_group(path, &f, &gm);
  if (st != IFT_OK) goto done;
  st = ckpt_read_model_attrs(gm, c, path);
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
  IFT_TRY(ckpt_read_model_attrs(gm, &s, path));
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
  for (int i = 0; i < 3; i++) {
    IFT_REQUIRE_GOTO(st, out, ift_h5_attr_get_long(gt, keys[i], vals[i]) >= 0, IFT_ERR_FORMAT,
                     "the file is damaged: use an earlier checkpoint", "%s: /train has no attribute %s",
                     path, keys[i]);
    IFT_REQUIRE_GOTO(st, out, *vals[i] >= 0, IFT_ERR_FORMAT, "the file is damaged: use an earlier checkpoint",
                     "%s: /train %s = %ld is negative", path, keys[i], *vals[i]);
  }
  ift_h5_attr_get_str(gt, "run_id", ts->run_id, sizeof ts->run_id);
  ift_h5_attr_get_str(gt, "data_content_sha256", ts->data_hash, sizeof ts->data_hash);
  ts->config_text = ift_h5_attr_dup_str(gt, "config");
out:
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
  ift_status st;
  IFT_TRY_GOTO(st, out, ckpt_read_tensors(g, m, base, path));
  for (int i = 0; i < model_ntensors(m); i++)
    if (!ckpt_stored_checksum(g, model_tensor_at(m, i)->name, &want[i])) *missing = 1;
out:
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
  IFT_REQUIRE_GOTO(st, agree, sums, IFT_ERR_NOMEM, NULL, "checksums of %d tensors", nt);
agree:
  IFT_TRY_GOTO(st, out, dist_agree(st, comm)); /* one rank's calloc: agreed before the Allreduce */
  for (int k = 0; k < nbuf; k++)
    for (int i = 0; i < nt; i++) {
      const model_tensor *t = model_tensor_at(m, i);
      if (bufs[k] && ckpt_owns_part(m, t)) sums[(size_t)k * nt + i] = ckpt_checksum_shard(t, bufs[k] + t->offset);
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
    IFT_REQUIRE(!opt && !ts, IFT_ERR_CONFIG,
                "start from it with --ckpt.init=DIR (resume continues iftrain checkpoints)",
                "%s is a Hugging Face model directory: it has no optimizer state or step to "
                "resume", path);
    return ckpt_hf_load(path, m, comm);
  }
  ift_status st = IFT_OK;
  hid_t fapl = -1, f = -1, gm = -1;
  const int nt = model_ntensors(m);
  uint64_t *want = calloc(3 * (size_t)nt, sizeof(uint64_t));
  int missing = 0;
  char *oname = NULL; /* the optimizer the checkpoint holds */
  if (ts) memset(ts, 0, sizeof *ts);
  ckpt_quiet_hdf5();
  IFT_REQUIRE_GOTO(st, agree, want, IFT_ERR_NOMEM, NULL, "checksums of %d tensors", nt);
  IFT_REQUIRE_GOTO(st, agree, access(path, R_OK) == 0, IFT_ERR_IO, "check the checkpoint path",
                   "checkpoint '%s' does not exist or is unreadable", path);
agree:
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
  if (ts) IFT_TRY_GOTO(st, done, read_train_state(f, ts, path));
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
    oname = ift_h5_attr_dup_str(go, "name");
    long t = -1;
    ift_h5_attr_get_long(go, "t", &t);
    H5Gclose(go);
    opt->t = t;
    IFT_REQUIRE_GOTO(st, done, oname && !strcmp(oname, optim_kind_name(opt->cfg.kind)), IFT_ERR_CONFIG,
                     "resume with the optimizer the run was started with",
                     "%s holds %s state but optim.name = %s", path, oname ? oname : "no",
                     optim_kind_name(opt->cfg.kind));
    IFT_REQUIRE_GOTO(st, done, !ts || t == ts->step, IFT_ERR_FORMAT,
                     "the file is damaged: use an earlier checkpoint",
                     "%s: the optimizer has taken %ld steps but /train step is %ld", path, t, ts->step);
    static const char *groups[2] = {"/optim/m", "/optim/v"};
    float *bufs[2] = {opt->m, opt->v};
    for (int k = 0; k < 2; k++)
      if (bufs[k])
        IFT_TRY_GOTO(st, done, read_group(f, groups[k], m, bufs[k], want + (size_t)(k + 1) * nt, &missing, path));
  }
  IFT_REQUIRE_GOTO(st, done, !missing || !(flags & CKPT_VERIFY), IFT_ERR_FORMAT,
                   "it was not written by iftrain train; load it without verification (ckpt.verify=0 / --no-verify)",
                   "%s: a tensor has no stored checksum", path);
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
  free(oname);
  free(want);
  if (st != IFT_OK && ts) ckpt_train_state_free(ts);
  return st;
}
