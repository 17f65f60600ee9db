#include "config.h"
/* Reading HDF5 data sets: data_open (collective, MPI-IO driver) with the
 * checks of the structure and of every value, row reads by hyperslab,
 * and the file identity checks (data_same_file, data_file_is_data_set).
 * The content hash is verified in content.c, sets are written in writer.c
 * and writer_comm.c. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_int.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"

/* ------------------------------------------------------------ structure */

/* data_int.h */
int data_dset_check(hid_t f, const char *name, H5T_class_t cls, size_t size, int sign,
                    hsize_t *len) {
  /* 0 ok, 1 missing, 2 wrong type, 3 wrong rank */
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return 1;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return 1;
  hid_t t = H5Dget_type(d), s = H5Dget_space(d);
  int rc = 0;
  if (H5Tget_class(t) != cls || H5Tget_size(t) != size ||
      (cls == H5T_INTEGER && sign >= 0 && (H5Tget_sign(t) == H5T_SGN_2) != sign))
    rc = 2;
  else if (H5Sget_simple_extent_ndims(s) != 1)
    rc = 3;
  else
    H5Sget_simple_extent_dims(s, len, NULL);
  H5Tclose(t);
  H5Sclose(s);
  H5Dclose(d);
  return rc;
}

static ift_status read_all_i64(hid_t f, const char *name, int64_t *buf) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  herr_t r = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  if (d >= 0) H5Dclose(d);
  IFT_REQUIRE(r >= 0, IFT_ERR_HDF5, DATA_REGEN, "cannot read %s", name);
  return IFT_OK;
}

/* Validate one (tokens, offsets, loss_mask) triple under prefix ("" or
 * "/chosen" ...); reads the offsets into *off. */
static ift_status open_triple(hid_t f, const char *path, const char *prefix, int64_t **off,
                              long *n_out, long *ntok_out) {
  char tn[96], on[96], mn[96];
  snprintf(tn, sizeof tn, "%s/tokens", prefix);
  snprintf(on, sizeof on, "%s/offsets", prefix);
  snprintf(mn, sizeof mn, "%s/loss_mask", prefix);
  hsize_t nt = 0, no = 0, nm = 0;
  int r;
  if ((r = data_dset_check(f, tn, H5T_INTEGER, 4, 1, &nt)))
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: dataset %s is %s", path, tn,
             r == 1 ? "missing" : r == 2 ? "not int32" : "not one-dimensional");
  if ((r = data_dset_check(f, on, H5T_INTEGER, 8, 1, &no)))
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: dataset %s is %s", path, on,
             r == 1 ? "missing" : r == 2 ? "not int64" : "not one-dimensional");
  if ((r = data_dset_check(f, mn, H5T_INTEGER, 1, -1, &nm)))
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: dataset %s is %s", path, mn,
             r == 1 ? "missing" : r == 2 ? "not uint8" : "not one-dimensional");
  if (no < 1) IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: %s is empty (needs n+1 entries)", path, on);
  if (nm != nt)
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: %s has %llu entries but %s has %llu", path, mn,
             (unsigned long long)nm, tn, (unsigned long long)nt);
  *off = malloc(sizeof(int64_t) * no);
  if (!*off) IFT_FAIL(IFT_ERR_NOMEM, NULL, "%s: offsets of %llu rows", path, (unsigned long long)no);
  IFT_TRY(read_all_i64(f, on, *off));
  if ((*off)[0] != 0) IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: %s[0] = %lld, must be 0", path, on, (long long)(*off)[0]);
  for (hsize_t i = 1; i < no; i++) {
    if ((*off)[i] < (*off)[i - 1])
      IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN,
               "%s: %s[%llu] = %lld is less than %s[%llu] = %lld: offsets must not decrease (row %llu)",
               path, on, (unsigned long long)i, (long long)(*off)[i], on, (unsigned long long)(i - 1),
               (long long)(*off)[i - 1], (unsigned long long)(i - 1));
    if ((*off)[i] > (int64_t)nt)
      IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: %s[%llu] = %lld is out of range (previous %lld, %llu tokens; row %llu)",
               path, on, (unsigned long long)i, (long long)(*off)[i], (long long)(*off)[i - 1],
               (unsigned long long)nt, (unsigned long long)(i - 1));
  }
  if ((*off)[no - 1] != (int64_t)nt)
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: %s ends at %lld but %s has %llu tokens", path, on,
             (long long)(*off)[no - 1], tn, (unsigned long long)nt);
  *n_out = (long)no - 1;
  if (ntok_out) *ntok_out = (long)nt;
  return IFT_OK;
}

/* data_int.h: elements [a, b) of the 1-D dataset `name`, read in blocks of
 * up to BLOCK elements into one buffer, each block handed to fn. */
enum { BLOCK = 1 << 16 };
ift_status data_read_blocks(hid_t f, const char *path, const char *name, hid_t mtype,
                            size_t width, long a, long b, data_block_fn fn, void *ctx) {
  if (b <= a) return IFT_OK;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  IFT_REQUIRE(d >= 0, IFT_ERR_HDF5, DATA_REGEN, "%s: cannot open %s", path, name);
  ift_status st = IFT_OK;
  hid_t fs = H5Dget_space(d), ms = -1;
  void *buf = malloc(width * BLOCK);
  IFT_REQUIRE_GOTO(st, out, buf, IFT_ERR_NOMEM, NULL, "%s: a read buffer for %s", path, name);
  for (long o = a; o < b; o += BLOCK) {
    hsize_t s0 = (hsize_t)o, cnt = (hsize_t)(b - o < BLOCK ? b - o : BLOCK);
    ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s0, NULL, &cnt, NULL);
    IFT_H5_CHECK_GOTO(st, out, H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf),
                      "the file may be truncated; regenerate it", "%s: reading %s[%ld:%ld] failed", path,
                      name, o, o + (long)cnt);
    H5Sclose(ms);
    ms = -1;
    IFT_TRY_GOTO(st, out, fn(ctx, buf, o, (long)cnt));
  }
out:
  if (ms >= 0) H5Sclose(ms);
  free(buf);
  H5Sclose(fs);
  H5Dclose(d);
  return st;
}

/* Row holding token t, given offsets off[0..n] (binary search). */
static long row_of(const int64_t *off, long n, long t) {
  long lo = 0, hi = n - 1;
  while (lo < hi) {
    long mid = lo + (hi - lo + 1) / 2;
    if (off[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Value checks of one group's slice: token ids in [0, vocab), loss mask
 * values 0 or 1, and the count of 1s (trainable tokens). */
typedef struct {
  const char *path, *prefix;
  const int64_t *off;
  long n;
  int vocab;
  long ones;
} slice_check;

static ift_status check_tokens(void *ctx, const void *buf, long first, long count) {
  const slice_check *c = ctx;
  const int *t = buf;
  for (long i = 0; i < count; i++)
    IFT_REQUIRE(t[i] >= 0 && t[i] < c->vocab, IFT_ERR_FORMAT, DATA_REGEN,
                "%s: %s/tokens[%ld] = %d is outside the vocabulary [0, %d) (row %ld)", c->path, c->prefix,
                first + i, t[i], c->vocab, row_of(c->off, c->n, first + i));
  return IFT_OK;
}

static ift_status check_mask(void *ctx, const void *buf, long first, long count) {
  slice_check *c = ctx;
  const uint8_t *m = buf;
  for (long i = 0; i < count; i++) {
    IFT_REQUIRE(m[i] <= 1, IFT_ERR_FORMAT, DATA_REGEN,
                "%s: row %ld: %s/loss_mask[%ld] = %u; loss mask values must be 0 or 1", c->path,
                row_of(c->off, c->n, first + i), c->prefix, first + i, (unsigned)m[i]);
    c->ones += m[i];
  }
  return IFT_OK;
}

/* Rows [r0, r1) of the group at prefix: the tokens, then the masks (one
 * pass each); a slice with a bad token and a bad mask names the token. */
static ift_status check_slice(hid_t f, const char *path, const char *prefix, const int64_t *off,
                              long n, int vocab, long r0, long r1, long *ones) {
  slice_check c = {path, prefix, off, n, vocab, 0};
  char tn[96], mn[96];
  snprintf(tn, sizeof tn, "%s/tokens", prefix);
  snprintf(mn, sizeof mn, "%s/loss_mask", prefix);
  IFT_TRY(data_read_blocks(f, path, tn, H5T_NATIVE_INT, sizeof(int), (long)off[r0], (long)off[r1],
                           check_tokens, &c));
  IFT_TRY(data_read_blocks(f, path, mn, H5T_NATIVE_UINT8, 1, (long)off[r0], (long)off[r1], check_mask, &c));
  *ones = c.ones;
  return IFT_OK;
}

/* dist_agree, then the failing rank's message on every rank: the lowest
 * rank with the agreed status (the one dist_agree picked) broadcasts it, so
 * every rank reports the same cause, not "rank k failed". */
ift_status data_agree_message(ift_status local, MPI_Comm comm) {
  const ift_status all = dist_agree(local, comm);
  int size = 1, rank = 0;
  if (all == IFT_OK || comm == MPI_COMM_NULL) return all;
  IFT_MPI_CHECK(MPI_Comm_size(comm, &size), NULL);
  if (size == 1) return all;
  IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  int me = local == all ? rank : size, src = size;
  IFT_MPI_CHECK(MPI_Allreduce(&me, &src, 1, MPI_INT, MPI_MIN, comm), NULL);
  if (src == size) return all; /* the agreement itself failed (an MPI error) */
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", ift_error_last());
  IFT_MPI_CHECK(MPI_Bcast(msg, sizeof msg, MPI_CHAR, src, comm), NULL);
  if (rank != src) ift_error_quiet_set(all, "%s", msg); /* src printed it */
  return all;
}

/* The file's structure (attributes, datasets, offsets, /ref_logp): the same
 * reads on every rank. */
static ift_status read_header(data_set *d, hid_t f, const char *path, int expect_vocab) {
  long v = 0;
  if (ift_h5_attr_get_long(f, "format_version", &v) || v != DATA_FORMAT_VERSION)
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: format_version attribute is %s (this build reads %d)", path,
             v ? "unknown" : "missing", DATA_FORMAT_VERSION);
  d->format_version = (int)v;
  if (ift_h5_attr_get_long(f, "vocab_size", &v) || v <= 0)
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: vocab_size attribute missing or not positive", path);
  d->vocab_size = (int)v;
  if (ift_h5_attr_get_str(f, "tokenizer", d->tokenizer, sizeof d->tokenizer))
    IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: tokenizer attribute missing", path);
  /* "bytes-v1", or "hf:" + tokenizer_sha256 with the prep --tokenizer attributes */
  const int hf = !strncmp(d->tokenizer, "hf:", 3) && strlen(d->tokenizer) == 67 &&
                 strspn(d->tokenizer + 3, "0123456789abcdef") == 64;
  if (strcmp(d->tokenizer, DATA_TOKENIZER) && !hf)
    IFT_FAIL(IFT_ERR_FORMAT, "prepare the data with iftrain prep (--tokenizer HF_DIR for a Hugging Face model)",
             "%s: tokenizer '%s' is not known to this build (it has %s and hf:SHA256)", path, d->tokenizer,
             DATA_TOKENIZER);
  if (hf) {
    ift_h5_attr_get_str(f, "tokenizer_sha256", d->tokenizer_sha256, sizeof d->tokenizer_sha256);
    ift_h5_attr_get_str(f, "chat_template", d->chat_template, sizeof d->chat_template);
    ift_h5_attr_get_str(f, "tokenizer_source", d->tokenizer_source, sizeof d->tokenizer_source);
    if (strcmp(d->tokenizer_sha256, d->tokenizer + 3))
      IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: tokenizer_sha256 attribute '%s' does not match tokenizer '%s'", path,
               d->tokenizer_sha256, d->tokenizer);
  }
  if (expect_vocab > 0 && d->vocab_size > expect_vocab)
    IFT_FAIL(IFT_ERR_FORMAT, "set model.vocab_size to at least the data set's vocab_size",
             "%s: vocab_size %d exceeds the model's vocab_size %d", path, d->vocab_size, expect_vocab);
  IFT_TRY(open_triple(f, path, "", &d->offsets, &d->n, &d->ntokens));
  d->has_pairs = H5Lexists(f, "/chosen", H5P_DEFAULT) > 0 && H5Lexists(f, "/rejected", H5P_DEFAULT) > 0;
  if (d->has_pairs) {
    long n1, n2;
    IFT_TRY(open_triple(f, path, "/chosen", &d->ch_offsets, &n1, NULL));
    IFT_TRY(open_triple(f, path, "/rejected", &d->rj_offsets, &n2, NULL));
    if (n1 != d->n || n2 != d->n)
      IFT_FAIL(IFT_ERR_FORMAT, DATA_REGEN, "%s: /chosen has %ld rows and /rejected %ld, /tokens %ld", path, n1, n2, d->n);
  }
  d->has_ref_logp = H5Lexists(f, "/ref_logp", H5P_DEFAULT) > 0;
  if (d->has_ref_logp) {
    const char *fix = "recompute it: iftrain prep --ref-logp CKPT --data FILE";
    hid_t ds = H5Dopen2(f, "/ref_logp", H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds), ty = ds < 0 ? -1 : H5Dget_type(ds);
    hsize_t dims[2] = {0, 0};
    int ok = ds >= 0 && H5Sget_simple_extent_ndims(sp) == 2 && H5Tget_class(ty) == H5T_FLOAT &&
             H5Tget_size(ty) == 4;
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    ok = ok && dims[0] == (hsize_t)d->n && dims[1] == 2;
    if (ok) d->ref_logp = malloc(sizeof(float) * 2 * (size_t)(d->n > 0 ? d->n : 1));
    ok = ok && d->ref_logp &&
         H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->ref_logp) >= 0;
    if (ok) ok = ift_h5_attr_get_str(ds, "fingerprint", d->ref_fingerprint, sizeof d->ref_fingerprint) == 0;
    if (ok) ift_h5_attr_get_str(ds, "reference", d->ref_source, sizeof d->ref_source);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    if (!ok)
      IFT_FAIL(IFT_ERR_FORMAT, fix,
               "%s: /ref_logp must be float32 [%ld, 2] with a fingerprint attribute "
               "(got %llu x %llu)", path, d->n, (unsigned long long)dims[0], (unsigned long long)dims[1]);
  }
  ift_h5_attr_get_str(f, "content_sha256", d->content_sha256, sizeof d->content_sha256);
  return IFT_OK;
}

/* Token and mask values, this rank's contiguous slice of the rows of every
 * group; *ones receives its main rows' trainable tokens. */
static ift_status check_values(data_set *d, MPI_Comm comm, long *ones) {
  int rank = 0, size = 1;
  if (comm != MPI_COMM_NULL) {
    IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
    IFT_MPI_CHECK(MPI_Comm_size(comm, &size), NULL);
  }
  const hid_t f = (hid_t)d->file;
  const long r0 = (long)((int64_t)d->n * rank / size), r1 = (long)((int64_t)d->n * (rank + 1) / size);
  long unused;
  IFT_TRY(check_slice(f, d->path, "", d->offsets, d->n, d->vocab_size, r0, r1, ones));
  if (d->has_pairs) {
    IFT_TRY(check_slice(f, d->path, "/chosen", d->ch_offsets, d->n, d->vocab_size, r0, r1, &unused));
    IFT_TRY(check_slice(f, d->path, "/rejected", d->rj_offsets, d->n, d->vocab_size, r0, r1, &unused));
  }
  return IFT_OK;
}

ift_status data_open(data_set *d, const char *path, MPI_Comm comm, int expect_vocab) {
  memset(d, 0, sizeof *d);
  d->file = -1;
  ift_status st = IFT_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(d->path, sizeof d->path, "%s", path);
  IFT_REQUIRE_GOTO(st, agree, access(path, R_OK) == 0, IFT_ERR_IO,
                   "check data.train / data.eval, or create the set with iftrain prep",
                   "data set '%s' cannot be read: %s", path, strerror(errno));
  IFT_REQUIRE_GOTO(st, agree, H5Fis_hdf5(path) > 0, IFT_ERR_FORMAT,
                   "convert JSONL with iftrain prep INPUT.jsonl -o OUTPUT.h5",
                   "'%s' is not an HDF5 file (truncated or another format)", path);
agree:
  /* a rank that cannot see the file must not leave the others in the
   * collective H5Fopen */
  IFT_TRY(data_agree_message(st, comm));
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  d->file = f;
  IFT_REQUIRE_GOTO(st, header_read, f >= 0, IFT_ERR_FORMAT, "the file may be truncated; regenerate it",
                   "cannot open '%s' as HDF5", path);
  /* every rank reads the same structure, so they normally fail alike; a
   * read error on one rank alone must still not strand the others */
  st = read_header(d, f, path, expect_vocab);
header_read:
  IFT_TRY_GOTO(st, done, data_agree_message(st, comm));
  /* One pass over the values, split by rows: each rank reads ntokens/size
   * tokens (int32) and mask bytes per group.  Its own rows may be bad while
   * the others' are fine: agree before the sum (a collective). */
  long ones = 0, total = 0;
  st = check_values(d, comm, &ones);
  IFT_TRY_GOTO(st, done, data_agree_message(st, comm));
  total = ones;
  if (comm != MPI_COMM_NULL) /* the trainable tokens of every rank's rows */
    IFT_MPI_CHECK_GOTO(st, done, MPI_Allreduce(&ones, &total, 1, MPI_LONG, MPI_SUM, comm), NULL);
  d->ntrainable = total;
  if (total == 0) {
    /* known on every rank alike: rank 0 prints it, the others only keep it */
    int rank = 0;
    if (comm != MPI_COMM_NULL) IFT_MPI_CHECK_GOTO(st, done, MPI_Comm_rank(comm, &rank), NULL);
    const char *fmt = "%s: nothing to train on: none of the %ld rows has a trainable token (loss_mask 1)";
    if (rank == 0)
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "loss mask",
                    "every loss_mask value is 0: check the responses are not empty and --max-len "
                    "keeps them; regenerate the file with iftrain prep",
                    fmt, path, d->n);
    else
      ift_error_quiet_set(IFT_ERR_FORMAT, fmt, path, d->n);
    st = IFT_ERR_FORMAT;
  }
done:
  if (st != IFT_OK) data_close(d); /* collective H5Fclose: every rank is here, having agreed */
  return st;
}

void data_close(data_set *d) {
  if (d->file >= 0) H5Fclose((hid_t)d->file);
  free(d->offsets);
  free(d->ch_offsets);
  free(d->rj_offsets);
  free(d->ref_logp);
  d->ref_logp = NULL;
  d->offsets = d->ch_offsets = d->rj_offsets = NULL;
  d->file = -1;
}

int data_len(const data_set *d, long i) { return (int)(d->offsets[i + 1] - d->offsets[i]); }

static const int64_t *group_offsets(const data_set *d, const char *group) {
  return !group ? d->offsets : !strcmp(group, "chosen") ? d->ch_offsets : d->rj_offsets;
}

int data_group_len(const data_set *d, const char *group, long i) {
  const int64_t *off = group_offsets(d, group);
  return off ? (int)(off[i + 1] - off[i]) : 0;
}

long data_max_pair_len(const data_set *d) {
  long longest = 0;
  for (long i = 0; d->has_pairs && i < d->n; i++) {
    const long a = data_group_len(d, "chosen", i), b = data_group_len(d, "rejected", i);
    if (a > longest) longest = a;
    if (b > longest) longest = b;
  }
  return longest;
}

ift_status data_read_row(data_set *d, const char *group, long i, int *tokens, uint8_t *mask,
                         int cap, int *len) {
  IFT_REQUIRE(i >= 0 && i < d->n, IFT_ERR_ARG, "report this as a bug", "row %ld of %ld", i, d->n);
  const int64_t *off = group_offsets(d, group);
  IFT_REQUIRE(off, IFT_ERR_FORMAT, "train preference losses on a file with /chosen and /rejected",
              "%s has no /%s group", d->path, group ? group : "");
  int64_t a = off[i], b = off[i + 1];
  int n = (int)(b - a < cap ? b - a : cap);
  *len = n;
  if (n == 0) return IFT_OK;
  char tn[64], mn[64];
  snprintf(tn, sizeof tn, "%s%s/tokens", group ? "/" : "", group ? group : "");
  snprintf(mn, sizeof mn, "%s%s/loss_mask", group ? "/" : "", group ? group : "");
  hsize_t s0 = (hsize_t)a, cnt = (hsize_t)n;
  hid_t ms = H5Screate_simple(1, &cnt, NULL);
  herr_t r = 0;
  for (int k = 0; k < 2 && r >= 0; k++) {
    hid_t ds = H5Dopen2((hid_t)d->file, k ? mn : tn, H5P_DEFAULT);
    hid_t fs = ds < 0 ? -1 : H5Dget_space(ds);
    r = ds < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s0, NULL, &cnt, NULL);
    if (r >= 0)
      r = k ? H5Dread(ds, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, mask)
            : H5Dread(ds, H5T_NATIVE_INT, ms, fs, H5P_DEFAULT, tokens);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
  }
  H5Sclose(ms);
  IFT_REQUIRE(r >= 0, IFT_ERR_HDF5, "the file may be truncated; regenerate it",
              "%s: reading row %ld failed", d->path, i);
  return IFT_OK;
}

/* ------------------------------------------------------------ file identity */

int data_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int data_file_is_data_set(const char *path) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0) return 0;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return 0;
  const int yes = H5Aexists(f, "tokenizer") > 0 && H5Aexists(f, "format_version") > 0 &&
                  H5Lexists(f, "/tokens", H5P_DEFAULT) > 0 && H5Lexists(f, "/offsets", H5P_DEFAULT) > 0;
  H5Fclose(f);
  return yes;
}

