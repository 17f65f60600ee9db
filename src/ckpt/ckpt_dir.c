/* ckpt/ckpt_dir — the checkpoint directory of a run: ckpt_save (step_N.h5,
 * the `latest` pointer, rotation of this run's files), run ids and the
 * RUN claim, and resolving "auto", a directory or a `latest` file to a
 * checkpoint. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_int.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"

/* The run id stored in a checkpoint file ("" when it has none or cannot be
 * read).  Serial. */
static void file_run_id(const char *path, char out[CKPT_RUN_ID_LEN]) {
  out[0] = 0;
  ckpt_quiet_hdf5();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return;
  hid_t g = H5Lexists(f, "/train", H5P_DEFAULT) > 0 ? H5Gopen2(f, "/train", H5P_DEFAULT) : -1;
  if (g >= 0) {
    ift_h5_attr_get_str(g, "run_id", out, CKPT_RUN_ID_LEN);
    H5Gclose(g);
  }
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
    IFT_REQUIRE_GOTO(st, agree, !strcmp(id, meta->run_id), IFT_ERR_CONFIG,
                     "move that file out of ckpt.dir (or choose a new ckpt.dir); it was not changed",
                     "%s exists and is not a checkpoint of this run: not overwriting it", fin);
  }
agree:
  IFT_TRY(dist_agree(st, world));
  IFT_TRY(ckpt_save_file(fin, m, opt, meta, world, dp_rank));
  if (rank == 0) {
    /* the new checkpoint is complete: point `latest` at it, then rotate */
    char lt[1110], lf[1100];
    snprintf(lf, sizeof lf, "%s/latest", dir);
    snprintf(lt, sizeof lt, "%s.tmp", lf);
    FILE *f = fopen(lt, "w");
    int all = f && fprintf(f, "step_%ld.h5\n", meta->step) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) all = 0;
    if (all && rename(lt, lf) != 0) all = 0;
    IFT_REQUIRE_GOTO(st, pointed, all, IFT_ERR_WRITE,
                     "check free space and permissions of ckpt.dir; the previous checkpoint is intact",
                     "the pointer %s/latest to step %ld could not be written", dir, meta->step);
    prune(dir, meta->step, keep, meta->run_id);
  }
pointed:
  /* rank 0 alone wrote the pointer: an agreement, so the job ends without MPI_ABORT */
  IFT_TRY(dist_agree(st, world));
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
