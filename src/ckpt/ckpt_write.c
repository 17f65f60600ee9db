/* ckpt/ckpt_write — one checkpoint file written collectively with parallel
 * HDF5 (ckpt_save_file): space reserved first, checksums all-reduced before
 * the file is opened, every tensor's failure agreed before the next
 * collective, and a watchdog on the close of a failed write. */
#include "config.h"
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_int.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"
#include "iftrain/optim.h"

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
          bufs[k] && writer && ckpt_owns_part(m, t) ? ckpt_checksum_shard(t, bufs[k] + t->offset) : 0;
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
    ckpt_shard_sel sel;
    ckpt_shard_select(t, &sel);
    const int mine = writer && ckpt_owns_part(m, t);
    hid_t fs = H5Screate_simple(sel.rank, sel.gdims, NULL);
    hid_t ds = H5Dcreate2(g, t->name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(sel.rank, sel.ldims, NULL);
    herr_t r = 0;
    /* Collective: every rank takes part; one writer per element (replica 0,
     * and for replicated tensors only its TP rank 0), the others with an
     * empty selection. */
    if (ds >= 0) r = ckpt_attr_checksum(ds, sums[i]);
    if (mine) {
      r |= ckpt_shard_hyperslab(fs, &sel);
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
    IFT_REQUIRE_GOTO(st, agree, r >= 0, IFT_ERR_WRITE,
                     "check free disk space and quota of ckpt.dir; the previous checkpoint is intact",
                     "writing %s to %s failed", t->name, path);
  agree:
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
  ckpt_quiet_hdf5();
  IFT_H5_CHECK_GOTO(st, done, fapl = H5Pcreate(H5P_FILE_ACCESS), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, H5Pset_fapl_mpio(fapl, world, MPI_INFO_NULL),
                    "is HDF5 built with MPI (parallel)?", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
                    "check that ckpt.dir is writable and the disk has room", "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, gm = H5Gcreate2(f, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), NULL,
                    "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ckpt_write_config_attrs(gm, model_cfg(m)), NULL, "HDF5 call failed on %s", path);
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
    IFT_H5_CHECK_GOTO(st, done, ckpt_attr_int(go, "t", opt->t), NULL, "HDF5 call failed on %s", path);
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
  IFT_H5_CHECK_GOTO(st, done, ckpt_attr_int(gt, "step", meta->step), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ckpt_attr_int(gt, "epoch", meta->epoch), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ckpt_attr_int(gt, "cursor", meta->cursor), NULL, "HDF5 call failed on %s", path);
  IFT_H5_CHECK_GOTO(st, done, ckpt_attr_int(gt, "format_version", 2), NULL, "HDF5 call failed on %s", path);
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
  /* the close is collective (every rank, whoever failed); its own failure
   * counts only when nothing failed before */
  if (f >= 0 && st != IFT_OK)
    H5Fclose(f);
  else if (f >= 0)
    IFT_H5_CHECK_GOTO(st, closed, H5Fclose(f), "check free disk space of ckpt.dir", "closing %s failed", path);
closed:
  if (st != IFT_OK) close_watchdog(NULL);
  if (fapl >= 0) H5Pclose(fapl);
  free(sums);
  return st;
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
  IFT_TRY_GOTO(st, out, dist_agree(st, world));
  if (rank == 0)
    IFT_REQUIRE_GOTO(st, out, rename(tmp, path) == 0, IFT_ERR_WRITE, "check the permissions of the directory",
                     "cannot rename %s to %s: %s", tmp, path, strerror(errno));
out:
  if (rank == 0 && st != IFT_OK) unlink(tmp); /* the previous file at path stays as it was */
  return dist_agree(st, world);
}
