#include "config.h"
/* Writing one data set from the ranks of a communicator (parallel HDF5):
 * data_writer_create_comm, and the collective close its writer takes, every
 * rank writing its own rows into the same file. */
#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_int.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"

ift_status data_writer_create_comm(data_writer **w, const char *path, int vocab_size, int pairs,
                                   MPI_Comm comm) {
  *w = NULL;
  IFT_REQUIRE(comm != MPI_COMM_NULL, IFT_ERR_ARG,
              "pass the communicator of the writing ranks, or use data_writer_create on one process",
              "data_writer_create_comm('%s'): the communicator is MPI_COMM_NULL", path);
  /* an allocation failing on one rank must not leave the others in the
   * collective MPI_Comm_dup */
  ift_status st = IFT_OK;
  IFT_TRY_GOTO(st, fail, data_agree_message(data_writer_create(w, path, vocab_size, pairs), comm));
  IFT_MPI_CHECK_GOTO(st, fail, MPI_Comm_dup(comm, &(*w)->comm), NULL);
  return IFT_OK;
fail:
  if (*w) (*w)->comm = MPI_COMM_NULL;
  data_writer_discard(*w);
  *w = NULL;
  return st;
}

/* ------------------------------------------------------------ the collective close
 *
 * data_writer_close of a writer made by data_writer_create_comm, on every
 * rank of its communicator:
 *   1. one all-gather of every rank's row and token counts per group (and a
 *      fingerprint of path, vocab_size, pairs and attributes, which must be
 *      the same everywhere: a rank with other attributes would make other
 *      HDF5 collective calls and hang the rest), from which each rank knows
 *      its global row and token bases, the totals and every other rank's
 *      share;
 *   2. the offsets of each rank shifted in place by its token base;
 *   3. the content hash on rank 0, fed in rank order: rank 0's own arrays,
 *      then each other rank's streamed to it in blocks (hash_stream), so no
 *      rank ever holds more than one block of another's data; broadcast;
 *   4. rank 0 checks that PATH.tmp can be created and the disk takes the
 *      raw size (ift_fs_reserve; a parallel file whose writes fail cannot
 *      be closed reliably);
 *   5. PATH.tmp created with the MPI-IO driver, the datasets of the serial
 *      writer (same types, chunks, deflate: data_dcpl_1d) each written by
 *      collective H5Dwrite calls, every rank its own hyperslab, then the
 *      same root attributes on every rank;
 *   6. the collective close, then rank 0 renames PATH.tmp to PATH (or
 *      removes it on any failure).
 * Every step that can fail on some ranks only ends in data_agree_message
 * before the next collective, so all ranks leave together, with the same
 * status and the failing rank's message.
 *
 * Offsets (n + 1 entries): rank 0 writes entry 0 (= 0) and the ends of its
 * own rows, entries 1..n0; rank r > 0 the ends of its rows, entries
 * rowbase+1 .. rowbase+n_r.  The final entry (n, the token count) is thus
 * written by the last rank that has rows, and by rank 0 (as 0) when no rank
 * has any: no rank has to know it is "last". */

/* Per rank in the all-gather: rows and tokens of the three groups, then the
 * fingerprint. */
enum { NCOUNT = 7 };

static uint64_t writer_fingerprint(const data_writer *w) {
  uint64_t h = core_fnv1a(CORE_FNV_INIT, w->path, strlen(w->path) + 1);
  const int32_t head[2] = {w->vocab, w->pairs};
  h = core_fnv1a(h, head, sizeof head);
  for (int i = 0; i < w->nattr; i++) {
    h = core_fnv1a(h, w->attr_names[i], strlen(w->attr_names[i]) + 1);
    const int64_t v = w->attr_int[i];
    h = w->attr_str[i] ? core_fnv1a(h, w->attr_str[i], strlen(w->attr_str[i]) + 1)
                       : core_fnv1a(h, &v, sizeof v);
  }
  return h;
}

/* Rank 0 feeds the hash with one array of every rank in rank order: its own
 * n[0] elements, then each other rank's n[r], received in blocks of up to
 * HASH_BLOCK elements into scratch.  Elements of `width` bytes, MPI type
 * `type`; `mine` is this rank's part. */
enum { HASH_BLOCK = 1 << 18 };
static ift_status hash_stream(core_sha256 *h, const void *mine, const int64_t *n, size_t width,
                              MPI_Datatype type, void *scratch, int rank, int size, MPI_Comm comm) {
  if (rank == 0) {
    data_hash_le(h, mine, (size_t)n[0], width);
    for (int r = 1; r < size; r++)
      for (int64_t o = 0; o < n[r]; o += HASH_BLOCK) {
        const int c = (int)(n[r] - o < HASH_BLOCK ? n[r] - o : HASH_BLOCK);
        IFT_MPI_CHECK(MPI_Recv(scratch, c, type, r, 0, comm, MPI_STATUS_IGNORE), NULL);
        data_hash_le(h, scratch, (size_t)c, width);
      }
  } else {
    for (int64_t o = 0; o < n[rank]; o += HASH_BLOCK) {
      const int c = (int)(n[rank] - o < HASH_BLOCK ? n[rank] - o : HASH_BLOCK);
      IFT_MPI_CHECK(MPI_Send((const char *)mine + (size_t)o * width, c, type, 0, 0, comm), NULL);
    }
  }
  return IFT_OK;
}

/* Elements per collective H5Dwrite: a rank's part is written in rounds of at
 * most this many (MPI-IO counts are int, and HDF5 converts and compresses a
 * round at a time).  Every rank makes the same number of calls per dataset
 * (the largest part's), a rank with nothing left in a round joining with an
 * empty selection.  IFT_DATA_WRITE_ROUND overrides it (tests exercise
 * several rounds on small sets). */
static int64_t write_round(void) {
  const char *env = getenv("IFT_DATA_WRITE_ROUND");
  const long v = env ? atol(env) : 0;
  return v > 0 ? v : (int64_t)1 << 26;
}

/* One part of a collective dataset: this rank's `count` elements from buf,
 * at `start` of a dataset of `total`; parts[r] is rank r's count. */
typedef struct {
  const char *name;
  hid_t ftype, mtype;
  size_t width;
  const void *buf;
  int64_t start, count, total;
  const int64_t *parts;
} part;

static ift_status write_dataset(hid_t g, const char *group, const part *p, hid_t dxpl,
                                const char *path, int size, MPI_Comm comm) {
  ift_status st = IFT_OK;
  const int64_t round = write_round();
  int64_t rounds = 0;
  for (int r = 0; r < size; r++) {
    const int64_t k = (p->parts[r] + round - 1) / round;
    if (k > rounds) rounds = k;
  }
  hsize_t dim = (hsize_t)p->total;
  hid_t s = H5Screate_simple(1, &dim, NULL), pl = data_dcpl_1d((size_t)p->total);
  hid_t ds = H5Dcreate2(g, p->name, p->ftype, s, H5P_DEFAULT, pl, H5P_DEFAULT);
  H5Pclose(pl);
  H5Sclose(s);
  IFT_REQUIRE_GOTO(st, agree_create, ds >= 0, IFT_ERR_HDF5, "check free disk space of the output directory",
                   "%s: cannot create dataset %s/%s", path, group, p->name);
agree_create:
  if ((st = data_agree_message(st, comm)) != IFT_OK) {
    if (ds >= 0) H5Dclose(ds);
    return st;
  }
  hid_t fs = H5Dget_space(ds);
  const char dummy = 0;
  for (int64_t i = 0; i < rounds; i++) {
    const int64_t a = i * round < p->count ? i * round : p->count;
    const int64_t b = a + round < p->count ? a + round : p->count;
    hsize_t s0 = (hsize_t)(p->start + a), c = (hsize_t)(b - a), one = 1;
    hid_t ms = H5Screate_simple(1, c ? &c : &one, NULL);
    herr_t r = fs < 0 || ms < 0 ? -1 : 0;
    if (r >= 0 && c) {
      r = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s0, NULL, &c, NULL);
    } else if (r >= 0) {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
    /* called even after a local failure: the others are in the same
     * collective write (an empty selection writes nothing) */
    if (r < 0) H5Sselect_none(fs), H5Sselect_none(ms);
    const void *src = c ? (const void *)((const char *)p->buf + (size_t)a * p->width) : (const void *)&dummy;
    if (H5Dwrite(ds, p->mtype, ms, fs, dxpl, src) < 0) r = -1;
    if (core_fault("data_write")) r = -1;
    if (ms >= 0) H5Sclose(ms);
    IFT_REQUIRE_GOTO(st, agree_write, r >= 0, IFT_ERR_WRITE,
                     "check free disk space and quota of the output directory; an existing file there is left as it was",
                     "writing %s/%s[%lld:%lld] to %s.tmp failed", group, p->name,
                     (long long)(p->start + a), (long long)(p->start + b), path);
  agree_write:
    /* a full disk fails the ranks whose part did not fit, not all of them */
    IFT_TRY_GOTO(st, out, data_agree_message(st, comm));
  }
out:
  if (fs >= 0) H5Sclose(fs);
  H5Dclose(ds);
  return st;
}

ift_status data_writer_close_comm(data_writer *w) {
  ift_status st = IFT_OK;
  const MPI_Comm comm = w->comm;
  int rank = 0, size = 1, created = 0;
  hid_t fapl = -1, dxpl = -1, f = -1;
  int64_t *cnt = NULL, *parts = NULL;
  void *scratch = NULL;
  core_sha256 *h = NULL;
  char tmp[1100], hex[65] = "";
  const int ng = w->pairs ? 3 : 1;
  snprintf(tmp, sizeof tmp, "%s.tmp", w->path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  IFT_MPI_CHECK_GOTO(st, out, MPI_Comm_rank(comm, &rank), NULL);
  IFT_MPI_CHECK_GOTO(st, out, MPI_Comm_size(comm, &size), NULL);

  /* 1. counts and fingerprints of every rank */
  cnt = malloc(sizeof(int64_t) * (size_t)size * NCOUNT);
  parts = malloc(sizeof(int64_t) * (size_t)size);
  if (rank == 0) scratch = malloc(HASH_BLOCK * sizeof(int64_t));
  IFT_REQUIRE_GOTO(st, agree_alloc, cnt && parts && (rank != 0 || scratch), IFT_ERR_NOMEM, NULL,
                   "%s: the row counts of %d ranks and a hash buffer", w->path, size);
  if (rank == 0) IFT_TRY_GOTO(st, agree_alloc, core_sha256_begin(&h));
agree_alloc:
  IFT_TRY_GOTO(st, out, data_agree_message(st, comm));
  int64_t mine[NCOUNT];
  for (int g = 0; g < 3; g++) {
    mine[2 * g] = (int64_t)w->t[g].nrow;
    mine[2 * g + 1] = (int64_t)w->t[g].ntok;
  }
  mine[6] = (int64_t)writer_fingerprint(w);
  IFT_MPI_CHECK_GOTO(st, out, MPI_Allgather(mine, NCOUNT, MPI_INT64_T, cnt, NCOUNT, MPI_INT64_T, comm), NULL);
  for (int r = 1; r < size; r++)
    if (cnt[r * NCOUNT + 6] != cnt[6]) {
      /* every rank sees the same counts: rank 0 says it, the others keep it */
      const char *fmt = "%s: rank %d's data set writer has another path, vocab_size, pairs or "
                        "root attributes than rank 0's";
      if (rank == 0)
        ift_error_set(IFT_ERR_ARG, __FILE__, __LINE__, "data_writer_create_comm",
                      "call data_writer_create_comm and data_writer_attr_* with the same values on every rank",
                      fmt, w->path, r);
      else
        ift_error_quiet_set(IFT_ERR_ARG, fmt, w->path, r);
      st = IFT_ERR_ARG;
      goto out;
    }
  int64_t rowbase[3] = {0}, tokbase[3] = {0}, rows[3] = {0}, toks[3] = {0};
  for (int g = 0; g < 3; g++)
    for (int r = 0; r < size; r++) {
      if (r < rank) {
        rowbase[g] += cnt[r * NCOUNT + 2 * g];
        tokbase[g] += cnt[r * NCOUNT + 2 * g + 1];
      }
      rows[g] += cnt[r * NCOUNT + 2 * g];
      toks[g] += cnt[r * NCOUNT + 2 * g + 1];
    }

  /* 2. offsets in global token numbering (rank 0's off[0] = 0 stays) */
  for (int g = 0; g < ng; g++)
    for (size_t i = 1; i <= w->t[g].nrow; i++) w->t[g].off[i] += tokbase[g];

  /* 3. the content hash, in the serial writer's order: per group tokens,
   * offsets, masks, each over the ranks in order (a failure is an MPI
   * one: the job cannot go on anyway) */
  const int64_t zero = 0;
  for (int g = 0; g < ng; g++) {
    const triple *t = &w->t[g];
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    IFT_TRY_GOTO(st, out, hash_stream(h, t->tok, parts, sizeof(int), MPI_INT, scratch, rank, size, comm));
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g] + (r == 0);
    const int64_t *off = rank == 0 ? (t->nrow ? t->off : &zero) : t->nrow ? t->off + 1 : NULL;
    IFT_TRY_GOTO(st, out, hash_stream(h, off, parts, sizeof(int64_t), MPI_INT64_T, scratch, rank, size, comm));
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    IFT_TRY_GOTO(st, out, hash_stream(h, t->mask, parts, 1, MPI_UINT8_T, scratch, rank, size, comm));
  }
  if (rank == 0) {
    core_sha256_end(h, hex);
    h = NULL;
  }
  IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(hex, sizeof hex, MPI_CHAR, 0, comm), NULL);
  data_writer_set_attr(w, "content_sha256", hex, 0);

  /* 4. the file can be created and the disk takes it (raw size, a little
   * for deflate's worst case and the chunk index, 1 MiB of metadata) */
  double need = 1048576.0;
  for (int g = 0; g < ng; g++)
    need += 1.01 * (5.0 * (double)toks[g] + 8.0 * (double)(rows[g] + 1)) +
            512.0 * (3.0 + 2.0 * (double)toks[g] / DATA_CHUNK + (double)rows[g] / DATA_CHUNK);
  if (rank == 0) {
    int cannot_create = 0;
    const int e = ift_fs_reserve(tmp, need, &cannot_create);
    IFT_REQUIRE_GOTO(st, agree_space, !cannot_create, IFT_ERR_IO,
                     "check that the output directory exists and is writable", "cannot create '%s': %s", tmp,
                     strerror(e));
    IFT_REQUIRE_GOTO(st, agree_space, !e, IFT_ERR_WRITE,
                     "free space (or raise the quota) in the output directory, or write elsewhere",
                     "the disk cannot take the %.1f MiB of '%s': %s", need / 1048576.0, tmp, strerror(e));
  }
agree_space:
  IFT_TRY_GOTO(st, out, data_agree_message(st, comm));

  /* 5. the file, collectively */
  created = 1;
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  IFT_REQUIRE_GOTO(st, agree_file, fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0,
                   IFT_ERR_HDF5, "is HDF5 built with MPI (parallel)?", "%s: cannot set up the MPI-IO file driver",
                   tmp);
  IFT_REQUIRE_GOTO(st, agree_file, (f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) >= 0, IFT_ERR_IO,
                   "check that the output directory exists and is writable on every rank's node",
                   "cannot create '%s' with the MPI-IO driver", tmp);
agree_file:
  if ((st = data_agree_message(st, comm)) != IFT_OK) {
    /* a rank that did create it cannot close it: the close is collective
     * over ranks that have no file.  The handle is left open (rank 0
     * removes the file); the caller ends the job with the error. */
    f = -1;
    goto out;
  }
  dxpl = H5Pcreate(H5P_DATASET_XFER);
  IFT_REQUIRE_GOTO(st, agree_dxpl, dxpl >= 0 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) >= 0,
                   IFT_ERR_HDF5, "is HDF5 built with MPI (parallel)?", "%s: cannot set up collective transfers",
                   tmp);
agree_dxpl:
  IFT_TRY_GOTO(st, close, data_agree_message(st, comm));
  static const char *const group_names[3] = {"", "chosen", "rejected"};
  for (int g = 0; g < ng; g++) {
    const triple *t = &w->t[g];
    int64_t *op = NULL;
    hid_t grp = g ? H5Gcreate2(f, group_names[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : f;
    IFT_REQUIRE_GOTO(st, agree_group, grp >= 0, IFT_ERR_HDF5, "check free disk space of the output directory",
                     "%s: cannot create group /%s", tmp, group_names[g]);
  agree_group:
    IFT_TRY_GOTO(st, group_done, data_agree_message(st, comm));
    char gname[16];
    snprintf(gname, sizeof gname, "%s%s", g ? "/" : "", group_names[g]);
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    const part tp = {"tokens", H5T_STD_I32LE, H5T_NATIVE_INT, sizeof(int), t->tok,
                     tokbase[g], (int64_t)t->ntok, toks[g], parts};
    const part mp = {"loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, t->mask,
                     tokbase[g], (int64_t)t->ntok, toks[g], parts};
    IFT_TRY_GOTO(st, group_done, write_dataset(grp, gname, &tp, dxpl, w->path, size, comm));
    IFT_TRY_GOTO(st, group_done, write_dataset(grp, gname, &mp, dxpl, w->path, size, comm));
    op = malloc(sizeof(int64_t) * (size_t)size);
    IFT_TRY_GOTO(st, group_done, data_agree_message(op ? IFT_OK : IFT_ERR_NOMEM, comm));
    for (int r = 0; r < size; r++) op[r] = cnt[r * NCOUNT + 2 * g] + (r == 0);
    const void *ob = rank == 0 ? (t->nrow ? t->off : &zero) : t->nrow ? t->off + 1 : NULL;
    const part offp = {"offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), ob,
                       rank == 0 ? 0 : rowbase[g] + 1, op[rank], rows[g] + 1, op};
    st = write_dataset(grp, gname, &offp, dxpl, w->path, size, comm);
  group_done:
    free(op);
    if (g && grp >= 0) H5Gclose(grp);
    if (st != IFT_OK) goto close;
  }
  IFT_REQUIRE_GOTO(st, agree_attrs, data_write_root_attrs(f, w) >= 0, IFT_ERR_HDF5,
                   "check free disk space of the output directory", "%s: cannot write the root attributes", tmp);
agree_attrs:
  st = data_agree_message(st, comm);
close:
  /* 6. every rank reaches the collective close together, whoever failed */
  if (dxpl >= 0) H5Pclose(dxpl);
  /* the close's own failure counts only when nothing failed before */
  const herr_t closed = H5Fclose(f);
  f = -1;
  if (st == IFT_OK)
    IFT_REQUIRE_GOTO(st, agree_close, closed >= 0, IFT_ERR_WRITE, "check free disk space of the output directory",
                     "closing '%s' failed", tmp);
agree_close:
  IFT_TRY_GOTO(st, agree_rename, data_agree_message(st, comm));
  if (rank == 0)
    IFT_REQUIRE_GOTO(st, agree_rename, rename(tmp, w->path) == 0, IFT_ERR_IO,
                     "check permissions of the output directory", "cannot rename %s to %s: %s", tmp, w->path,
                     strerror(errno));
agree_rename:
  st = data_agree_message(st, comm);
out:
  /* nothing of a failed write is left behind; an older PATH stays */
  if (rank == 0 && st != IFT_OK && created) unlink(tmp);
  if (fapl >= 0) H5Pclose(fapl);
  if (h) core_sha256_end(h, hex);
  free(scratch);
  free(parts);
  free(cnt);
  data_writer_discard(w);
  return st;
}

