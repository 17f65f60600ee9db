#include "config.h"
/* HDF5 data set files: open + validate (collective, MPI-IO driver), row reads
 * by hyperslab, the serial writer used by prep and the generator, and its
 * collective twin (data_writer_create_comm, parallel HDF5). */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"

static const char REGEN[] = "regenerate the file with iftrain prep";

/* ------------------------------------------------------------ tokenizer */

int data_tokenize(int *out, int cap, const char *s, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n && k < cap; i++) out[k++] = (unsigned char)s[i];
  return k;
}

size_t data_detokenize(char *out, size_t cap, const int *ids, int n) {
  static const char *names[] = {"<pad>", "<bos>", "<eos>", "<system>", "<user>", "<assistant>"};
  size_t k = 0;
  if (cap == 0) return 0;
  for (int i = 0; i < n && k + 1 < cap; i++) {
    if (ids[i] >= 0 && ids[i] < 256) {
      out[k++] = (char)ids[i];
    } else {
      const char *nm = ids[i] >= TOK_PAD && ids[i] < TOK_VOCAB ? names[ids[i] - TOK_PAD] : "<unk>";
      size_t l = strlen(nm);
      if (k + l + 1 > cap) break;
      memcpy(out + k, nm, l);
      k += l;
    }
  }
  out[k] = 0;
  return k;
}

/* ------------------------------------------------------------ reading */

static int dset_check(hid_t f, const char *name, H5T_class_t cls, size_t size, int sign,
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
  IFT_REQUIRE(r >= 0, IFT_ERR_HDF5, REGEN, "cannot read %s", name);
  return IFT_OK;
}

static int attr_long(hid_t f, const char *name, long *v) {
  if (H5Aexists(f, name) <= 0) return -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  herr_t r = H5Aread(a, H5T_NATIVE_LONG, v);
  H5Aclose(a);
  return r < 0 ? -1 : 0;
}

static int attr_string(hid_t f, const char *name, char *out, size_t n) {
  out[0] = 0;
  if (H5Aexists(f, name) <= 0) return -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  int rc = -1;
  if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
    size_t sz = H5Tget_size(t);
    char *tmp = calloc(sz + 1, 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, sz);
    if (tmp && H5Aread(a, mt, tmp) >= 0) {
      snprintf(out, n, "%s", tmp);
      rc = 0;
    }
    H5Tclose(mt);
    free(tmp);
  }
  H5Tclose(t);
  H5Aclose(a);
  return rc;
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
  if ((r = dset_check(f, tn, H5T_INTEGER, 4, 1, &nt)))
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, tn,
             r == 1 ? "missing" : r == 2 ? "not int32" : "not one-dimensional");
  if ((r = dset_check(f, on, H5T_INTEGER, 8, 1, &no)))
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, on,
             r == 1 ? "missing" : r == 2 ? "not int64" : "not one-dimensional");
  if ((r = dset_check(f, mn, H5T_INTEGER, 1, -1, &nm)))
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, mn,
             r == 1 ? "missing" : r == 2 ? "not uint8" : "not one-dimensional");
  if (no < 1) IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s is empty (needs n+1 entries)", path, on);
  if (nm != nt)
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s has %llu entries but %s has %llu", path, mn,
             (unsigned long long)nm, tn, (unsigned long long)nt);
  *off = malloc(sizeof(int64_t) * no);
  if (!*off) IFT_FAIL(IFT_ERR_NOMEM, NULL, "%s: offsets of %llu rows", path, (unsigned long long)no);
  IFT_TRY(read_all_i64(f, on, *off));
  if ((*off)[0] != 0) IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s[0] = %lld, must be 0", path, on, (long long)(*off)[0]);
  for (hsize_t i = 1; i < no; i++) {
    if ((*off)[i] < (*off)[i - 1])
      IFT_FAIL(IFT_ERR_FORMAT, REGEN,
               "%s: %s[%llu] = %lld is less than %s[%llu] = %lld: offsets must not decrease (row %llu)",
               path, on, (unsigned long long)i, (long long)(*off)[i], on, (unsigned long long)(i - 1),
               (long long)(*off)[i - 1], (unsigned long long)(i - 1));
    if ((*off)[i] > (int64_t)nt)
      IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s[%llu] = %lld is out of range (previous %lld, %llu tokens; row %llu)",
               path, on, (unsigned long long)i, (long long)(*off)[i], (long long)(*off)[i - 1],
               (unsigned long long)nt, (unsigned long long)(i - 1));
  }
  if ((*off)[no - 1] != (int64_t)nt)
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s ends at %lld but %s has %llu tokens", path, on,
             (long long)(*off)[no - 1], tn, (unsigned long long)nt);
  *n_out = (long)no - 1;
  if (ntok_out) *ntok_out = (long)nt;
  return IFT_OK;
}

/* Elements [a, b) of the 1-D dataset `name`, read in blocks of up to BLOCK
 * elements of memory type mtype (element size `width`) into buf, each block
 * handed to fn (which returns IFT_OK to go on). */
enum { BLOCK = 1 << 16 };
typedef ift_status (*block_fn)(void *ctx, const void *buf, long first, long count);
static ift_status read_blocks(hid_t f, const char *path, const char *name, hid_t mtype,
                              size_t width, long a, long b, block_fn fn, void *ctx) {
  if (b <= a) return IFT_OK;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  IFT_REQUIRE(d >= 0, IFT_ERR_HDF5, REGEN, "%s: cannot open %s", path, name);
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
    if (t[i] < 0 || t[i] >= c->vocab) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "token id", REGEN,
                    "%s: %s/tokens[%ld] = %d is outside the vocabulary [0, %d) (row %ld)", c->path,
                    c->prefix, first + i, t[i], c->vocab, row_of(c->off, c->n, first + i));
      return IFT_ERR_FORMAT;
    }
  return IFT_OK;
}

static ift_status check_mask(void *ctx, const void *buf, long first, long count) {
  slice_check *c = ctx;
  const uint8_t *m = buf;
  for (long i = 0; i < count; i++) {
    if (m[i] > 1) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "loss mask", REGEN,
                    "%s: row %ld: %s/loss_mask[%ld] = %u; loss mask values must be 0 or 1", c->path,
                    row_of(c->off, c->n, first + i), c->prefix, first + i, (unsigned)m[i]);
      return IFT_ERR_FORMAT;
    }
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
  IFT_TRY(read_blocks(f, path, tn, H5T_NATIVE_INT, sizeof(int), (long)off[r0], (long)off[r1],
                      check_tokens, &c));
  IFT_TRY(read_blocks(f, path, mn, H5T_NATIVE_UINT8, 1, (long)off[r0], (long)off[r1], check_mask, &c));
  *ones = c.ones;
  return IFT_OK;
}

/* dist_agree, then the failing rank's message on every rank: the lowest
 * rank with the agreed status (the one dist_agree picked) broadcasts it, so
 * every rank reports the same cause, not "rank k failed". */
static ift_status agree_message(ift_status local, MPI_Comm comm) {
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
  if (attr_long(f, "format_version", &v) || v != DATA_FORMAT_VERSION)
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: format_version attribute is %s (this build reads %d)", path,
             v ? "unknown" : "missing", DATA_FORMAT_VERSION);
  d->format_version = (int)v;
  if (attr_long(f, "vocab_size", &v) || v <= 0)
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: vocab_size attribute missing or not positive", path);
  d->vocab_size = (int)v;
  if (attr_string(f, "tokenizer", d->tokenizer, sizeof d->tokenizer))
    IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: tokenizer attribute missing", path);
  /* "bytes-v1", or "hf:" + tokenizer_sha256 with the prep --tokenizer attributes */
  const int hf = !strncmp(d->tokenizer, "hf:", 3) && strlen(d->tokenizer) == 67 &&
                 strspn(d->tokenizer + 3, "0123456789abcdef") == 64;
  if (strcmp(d->tokenizer, DATA_TOKENIZER) && !hf)
    IFT_FAIL(IFT_ERR_FORMAT, "prepare the data with iftrain prep (--tokenizer HF_DIR for a Hugging Face model)",
             "%s: tokenizer '%s' is not known to this build (it has %s and hf:SHA256)", path, d->tokenizer,
             DATA_TOKENIZER);
  if (hf) {
    attr_string(f, "tokenizer_sha256", d->tokenizer_sha256, sizeof d->tokenizer_sha256);
    attr_string(f, "chat_template", d->chat_template, sizeof d->chat_template);
    attr_string(f, "tokenizer_source", d->tokenizer_source, sizeof d->tokenizer_source);
    if (strcmp(d->tokenizer_sha256, d->tokenizer + 3))
      IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: tokenizer_sha256 attribute '%s' does not match tokenizer '%s'", path,
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
      IFT_FAIL(IFT_ERR_FORMAT, REGEN, "%s: /chosen has %ld rows and /rejected %ld, /tokens %ld", path, n1, n2, d->n);
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
    if (ok) ok = attr_string(ds, "fingerprint", d->ref_fingerprint, sizeof d->ref_fingerprint) == 0;
    if (ok) attr_string(ds, "reference", d->ref_source, sizeof d->ref_source);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    if (!ok)
      IFT_FAIL(IFT_ERR_FORMAT, fix,
               "%s: /ref_logp must be float32 [%ld, 2] with a fingerprint attribute "
               "(got %llu x %llu)", path, d->n, (unsigned long long)dims[0], (unsigned long long)dims[1]);
  }
  attr_string(f, "content_sha256", d->content_sha256, sizeof d->content_sha256);
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
  if (access(path, R_OK) != 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "data set",
                  "check data.train / data.eval, or create the set with iftrain prep",
                  "data set '%s' cannot be read: %s", path, strerror(errno));
    st = IFT_ERR_IO;
  } else if (H5Fis_hdf5(path) <= 0) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "data set",
                  "convert JSONL with iftrain prep INPUT.jsonl -o OUTPUT.h5",
                  "'%s' is not an HDF5 file (truncated or another format)", path);
    st = IFT_ERR_FORMAT;
  }
  /* a rank that cannot see the file must not leave the others in the
   * collective H5Fopen */
  if ((st = agree_message(st, comm)) != IFT_OK) return st;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  d->file = f;
  if (f < 0) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "H5Fopen", "the file may be truncated; regenerate it",
                  "cannot open '%s' as HDF5", path);
    st = IFT_ERR_FORMAT;
  } else {
    /* every rank reads the same structure, so they normally fail alike; a
     * read error on one rank alone must still not strand the others */
    st = read_header(d, f, path, expect_vocab);
  }
  IFT_TRY_GOTO(st, done, agree_message(st, comm));
  /* One pass over the values, split by rows: each rank reads ntokens/size
   * tokens (int32) and mask bytes per group.  Its own rows may be bad while
   * the others' are fine: agree before the sum (a collective). */
  long ones = 0, total = 0;
  st = check_values(d, comm, &ones);
  IFT_TRY_GOTO(st, done, agree_message(st, comm));
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

/* ------------------------------------------------------------ content hash */

/* n native integers of `width` bytes (4: int, 8: int64_t, 1: uint8_t) fed to
 * the hash little-endian, so the hash does not depend on the machine. */
static void hash_le(core_sha256 *h, const void *v, size_t n, size_t width) {
  /* On a little-endian host the native bytes are those bytes already (int
   * is 32 bits wherever HDF5's NATIVE_INT is read as int32): hash them in
   * place, at SHA-256's speed instead of a byte at a time -- the writers
   * hash every byte of a set on one rank. */
  const union {
    uint32_t u;
    unsigned char c[4];
  } probe = {1};
  if (probe.c[0] == 1 && (width == 1 || (width == 4 && sizeof(int) == 4) || width == 8)) {
    core_sha256_update(h, v, n * width);
    return;
  }
  unsigned char buf[4096];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const uint64_t x = width == 8 ? (uint64_t)((const int64_t *)v)[i]
                       : width == 4 ? (uint64_t)(uint32_t)((const int *)v)[i]
                                    : ((const uint8_t *)v)[i];
    for (size_t b = 0; b < width; b++) buf[k++] = (unsigned char)(x >> (8 * b));
    if (k > sizeof buf - 8) {
      core_sha256_update(h, buf, k);
      k = 0;
    }
  }
  core_sha256_update(h, buf, k);
}

typedef struct {
  core_sha256 *h;
  size_t width;
} hash_ctx;

static ift_status hash_block(void *ctx, const void *buf, long first, long count) {
  const hash_ctx *c = ctx;
  (void)first;
  hash_le(c->h, buf, (size_t)count, c->width);
  return IFT_OK;
}

/* The groups hashed, in order (data.h "Content hash"). */
static const char *const GROUPS[3] = {"", "/chosen", "/rejected"};

ift_status data_verify_content(const char *path, char hex[65]) {
  hex[0] = 0;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  IFT_REQUIRE(f >= 0, IFT_ERR_FORMAT, "check the path; regenerate it with iftrain prep",
              "cannot open '%s' as HDF5", path);
  char stored[65];
  core_sha256 *h = NULL;
  ift_status st = IFT_OK;
  IFT_TRY_GOTO(st, out, core_sha256_begin(&h));
  const int groups = H5Lexists(f, "/chosen", H5P_DEFAULT) > 0 ? 3 : 1;
  for (int g = 0; g < groups; g++) {
    static const char *const names[3] = {"tokens", "offsets", "loss_mask"};
    const hid_t types[3] = {H5T_NATIVE_INT, H5T_NATIVE_INT64, H5T_NATIVE_UINT8};
    const size_t widths[3] = {sizeof(int), sizeof(int64_t), 1};
    for (int k = 0; k < 3; k++) {
      char name[96];
      hsize_t len = 0;
      snprintf(name, sizeof name, "%s/%s", GROUPS[g], names[k]);
      IFT_REQUIRE_GOTO(st, out, !dset_check(f, name, H5T_INTEGER, widths[k], k == 2 ? -1 : 1, &len),
                       IFT_ERR_FORMAT, REGEN, "%s: dataset %s is missing or of the wrong type", path, name);
      hash_ctx c = {h, widths[k]};
      IFT_TRY_GOTO(st, out, read_blocks(f, path, name, types[k], widths[k], 0, (long)len, hash_block, &c));
    }
  }
  core_sha256_end(h, hex);
  h = NULL;
  IFT_REQUIRE_GOTO(st, out, !attr_string(f, "content_sha256", stored, sizeof stored), IFT_ERR_FORMAT,
                   "the file predates content hashes: regenerate it with iftrain prep",
                   "%s has no content_sha256 attribute (its content hashes to %s)", path, hex);
  IFT_REQUIRE_GOTO(st, out, !strcmp(stored, hex), IFT_ERR_FORMAT,
                   "the file was changed or damaged after it was written: regenerate it with iftrain prep",
                   "%s: content hashes to %s but content_sha256 says %s", path, hex, stored);
out:
  if (h) { /* the hashing failed: no hash */
    core_sha256_end(h, hex);
    hex[0] = 0;
  }
  H5Fclose(f);
  return st;
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

/* ------------------------------------------------------------ writing */

typedef struct {
  int *tok;
  uint8_t *mask;
  int64_t *off;
  size_t ntok, captok, nrow, caprow;
} triple;

struct data_writer {
  char path[1024];
  int vocab, pairs;
  triple t[3];
  char attr_names[16][32];
  char *attr_str[16];
  long attr_int[16];
  int nattr;
  /* MPI_COMM_NULL for the serial writer; else a duplicate of the caller's
   * communicator, so the messages of the hash stream (close_comm) can never
   * be matched by receives of the caller's own */
  MPI_Comm comm;
};

static int triple_add(triple *t, const int *tok, const uint8_t *mask, int len) {
  if (t->nrow + 2 > t->caprow) {
    size_t c = t->caprow ? 2 * t->caprow : 1024;
    int64_t *o = realloc(t->off, c * sizeof *o);
    if (!o) return -1;
    t->off = o;
    t->caprow = c;
  }
  if (t->ntok + (size_t)len > t->captok) {
    size_t c = t->captok ? 2 * t->captok : 65536;
    while (c < t->ntok + (size_t)len) c *= 2;
    int *a = realloc(t->tok, c * sizeof *a);
    uint8_t *b = a ? realloc(t->mask, c) : NULL;
    if (a) t->tok = a;
    if (!b) return -1;
    t->mask = b;
    t->captok = c;
  }
  if (t->nrow == 0) t->off[0] = 0;
  memcpy(t->tok + t->ntok, tok, sizeof(int) * (size_t)len);
  memcpy(t->mask + t->ntok, mask, (size_t)len);
  t->ntok += (size_t)len;
  t->off[++t->nrow] = (int64_t)t->ntok;
  return 0;
}

ift_status data_writer_create(data_writer **w, const char *path, int vocab_size, int pairs) {
  *w = calloc(1, sizeof **w);
  IFT_REQUIRE(*w, IFT_ERR_NOMEM, NULL, "writer");
  snprintf((*w)->path, sizeof (*w)->path, "%s", path);
  (*w)->vocab = vocab_size;
  (*w)->pairs = pairs;
  (*w)->comm = MPI_COMM_NULL;
  return IFT_OK;
}

ift_status data_writer_create_comm(data_writer **w, const char *path, int vocab_size, int pairs,
                                   MPI_Comm comm) {
  *w = NULL;
  IFT_REQUIRE(comm != MPI_COMM_NULL, IFT_ERR_ARG,
              "pass the communicator of the writing ranks, or use data_writer_create on one process",
              "data_writer_create_comm('%s'): the communicator is MPI_COMM_NULL", path);
  /* an allocation failing on one rank must not leave the others in the
   * collective MPI_Comm_dup */
  ift_status st = IFT_OK;
  IFT_TRY_GOTO(st, fail, agree_message(data_writer_create(w, path, vocab_size, pairs), comm));
  IFT_MPI_CHECK_GOTO(st, fail, MPI_Comm_dup(comm, &(*w)->comm), NULL);
  return IFT_OK;
fail:
  if (*w) (*w)->comm = MPI_COMM_NULL;
  data_writer_discard(*w);
  *w = NULL;
  return st;
}

ift_status data_writer_add(data_writer *w, const int *tok, const uint8_t *mask, int len,
                           const int *ctok, const uint8_t *cmask, int clen, const int *rtok,
                           const uint8_t *rmask, int rlen) {
  int bad = triple_add(&w->t[0], tok, mask, len);
  if (w->pairs) bad |= triple_add(&w->t[1], ctok, cmask, clen) | triple_add(&w->t[2], rtok, rmask, rlen);
  IFT_REQUIRE(!bad, IFT_ERR_NOMEM, NULL, "data set rows in memory");
  return IFT_OK;
}

static void set_attr(data_writer *w, const char *name, const char *s, long v) {
  int i = 0;
  while (i < w->nattr && strcmp(w->attr_names[i], name)) i++;
  if (i == 16) return;
  if (i == w->nattr) w->nattr++;
  snprintf(w->attr_names[i], 32, "%s", name);
  free(w->attr_str[i]);
  w->attr_str[i] = s ? strdup(s) : NULL;
  w->attr_int[i] = v;
}
void data_writer_attr_str(data_writer *w, const char *name, const char *value) { set_attr(w, name, value, 0); }
void data_writer_attr_int(data_writer *w, const char *name, long value) { set_attr(w, name, NULL, value); }

/* The creation properties of a 1-D dataset of n elements, one function for
 * both writers so that they make the same layout: chunks of up to 64 Ki
 * elements compressed with deflate (level 4); an empty dataset stays
 * contiguous (a chunk needs a size > 0).  Parallel HDF5 (>= 1.10.2) writes
 * filtered chunks collectively, so the collective writer keeps the
 * compression. */
enum { CHUNK = 65536 };
static hid_t dcpl_1d(size_t n) {
  hsize_t chunk = n < CHUNK ? (n ? n : 1) : CHUNK;
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  if (n > 0) {
    H5Pset_chunk(p, 1, &chunk);
    H5Pset_deflate(p, 4);
  }
  return p;
}

static herr_t write_1d(hid_t g, const char *name, hid_t ftype, hid_t mtype, const void *buf, size_t n) {
  hsize_t dim = n;
  hid_t s = H5Screate_simple(1, &dim, NULL);
  hid_t p = dcpl_1d(n);
  hid_t d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, p, H5P_DEFAULT);
  herr_t r = d < 0 ? -1 : (n ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0);
  if (d >= 0) H5Dclose(d);
  H5Pclose(p);
  H5Sclose(s);
  return r;
}

static herr_t write_triple(hid_t g, const triple *t) {
  int64_t zero = 0;
  herr_t r = write_1d(g, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT, t->tok, t->ntok);
  r |= write_1d(g, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, t->nrow ? t->off : &zero, t->nrow + 1);
  r |= write_1d(g, "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, t->mask, t->ntok);
  return r < 0 ? -1 : 0;
}

/* The root attributes: format_version, vocab_size, tokenizer, then the
 * ones set with data_writer_attr_* (content_sha256 among them).  The
 * collective writer calls this on every rank with the same values
 * (attribute creation is a collective metadata operation of parallel
 * HDF5). */
static herr_t write_root_attrs(hid_t f, const data_writer *w) {
  herr_t r = 0;
  long fv = DATA_FORMAT_VERSION, vs = w->vocab;
  hid_t sc = H5Screate(H5S_SCALAR);
  /* "tokenizer" is bytes-v1 unless set (prep --tokenizer: hf:SHA256) */
  const char *tk = DATA_TOKENIZER;
  for (int i = 0; i < w->nattr; i++)
    if (!strcmp(w->attr_names[i], "tokenizer") && w->attr_str[i]) tk = w->attr_str[i];
  for (int i = -3; i < w->nattr; i++) {
    if (i >= 0 && !strcmp(w->attr_names[i], "tokenizer")) continue;
    const char *name = i == -3 ? "format_version" : i == -2 ? "vocab_size" : i == -1 ? "tokenizer" : w->attr_names[i];
    const char *s = i == -1 ? tk : i >= 0 ? w->attr_str[i] : NULL;
    long v = i == -3 ? fv : i == -2 ? vs : i >= 0 ? w->attr_int[i] : 0;
    hid_t t = s ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_STD_I64LE);
    if (s) H5Tset_size(t, strlen(s) + 1);
    hid_t a = H5Acreate2(f, name, t, sc, H5P_DEFAULT, H5P_DEFAULT);
    r |= a < 0 ? -1 : s ? H5Awrite(a, t, s) : H5Awrite(a, H5T_NATIVE_LONG, &v);
    if (a >= 0) H5Aclose(a);
    H5Tclose(t);
  }
  H5Sclose(sc);
  return r < 0 ? -1 : 0;
}

static ift_status close_comm(data_writer *w);

ift_status data_writer_close(data_writer *w) {
  if (w->comm != MPI_COMM_NULL) return close_comm(w);
  ift_status st = IFT_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* the content hash of the rows as written (data.h), from the buffers:
   * costs one pass over memory, no read back */
  core_sha256 *h = NULL;
  if ((st = core_sha256_begin(&h)) != IFT_OK) {
    data_writer_discard(w);
    return st;
  }
  for (int g = 0; g < (w->pairs ? 3 : 1); g++) {
    const triple *t = &w->t[g];
    const int64_t zero = 0;
    hash_le(h, t->tok, t->ntok, sizeof(int));
    hash_le(h, t->nrow ? t->off : &zero, t->nrow + 1, sizeof(int64_t));
    hash_le(h, t->mask, t->ntok, 1);
  }
  char hex[65];
  core_sha256_end(h, hex);
  set_attr(w, "content_sha256", hex, 0);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", w->path);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) IFT_FAIL_GOTO(st, done, IFT_ERR_IO, "check that the output directory exists and is writable", "cannot create '%s'", tmp);
  herr_t r = write_triple(f, &w->t[0]);
  if (w->pairs) {
    hid_t gc = H5Gcreate2(f, "chosen", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gr = H5Gcreate2(f, "rejected", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    r |= write_triple(gc, &w->t[1]) | write_triple(gr, &w->t[2]);
    H5Gclose(gc);
    H5Gclose(gr);
  }
  r |= write_root_attrs(f, w);
  if (H5Fclose(f) < 0 || r < 0) {
    unlink(tmp);
    IFT_FAIL_GOTO(st, done, IFT_ERR_IO, "check free disk space", "writing '%s' failed", w->path);
  }
  if (rename(tmp, w->path) != 0)
    IFT_FAIL_GOTO(st, done, IFT_ERR_IO, "check permissions of the output directory", "cannot rename %s to %s", tmp, w->path);
done:
  data_writer_discard(w);
  return st;
}

void data_writer_discard(data_writer *w) {
  if (!w) return;
  for (int k = 0; k < 3; k++) {
    free(w->t[k].tok);
    free(w->t[k].mask);
    free(w->t[k].off);
  }
  for (int i = 0; i < w->nattr; i++) free(w->attr_str[i]);
  if (w->comm != MPI_COMM_NULL) MPI_Comm_free(&w->comm); /* collective: every rank discards */
  free(w);
}

/* ------------------------------------------------------------ collective writing
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
 *      writer (same types, chunks, deflate: dcpl_1d) each written by
 *      collective H5Dwrite calls, every rank its own hyperslab, then the
 *      same root attributes on every rank;
 *   6. the collective close, then rank 0 renames PATH.tmp to PATH (or
 *      removes it on any failure).
 * Every step that can fail on some ranks only ends in agree_message before
 * the next collective, so all ranks leave together, with the same status
 * and the failing rank's message.
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
    hash_le(h, mine, (size_t)n[0], width);
    for (int r = 1; r < size; r++)
      for (int64_t o = 0; o < n[r]; o += HASH_BLOCK) {
        const int c = (int)(n[r] - o < HASH_BLOCK ? n[r] - o : HASH_BLOCK);
        IFT_MPI_CHECK(MPI_Recv(scratch, c, type, r, 0, comm, MPI_STATUS_IGNORE), NULL);
        hash_le(h, scratch, (size_t)c, width);
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
  hid_t s = H5Screate_simple(1, &dim, NULL), pl = dcpl_1d((size_t)p->total);
  hid_t ds = H5Dcreate2(g, p->name, p->ftype, s, H5P_DEFAULT, pl, H5P_DEFAULT);
  H5Pclose(pl);
  H5Sclose(s);
  if (ds < 0) {
    ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Dcreate2", "check free disk space of the output directory",
                  "%s: cannot create dataset %s/%s", path, group, p->name);
    st = IFT_ERR_HDF5;
  }
  if ((st = agree_message(st, comm)) != IFT_OK) {
    if (ds >= 0) H5Dclose(ds);
    return st;
  }
  hid_t fs = H5Dget_space(ds);
  const char dummy = 0;
  for (int64_t i = 0; i < rounds && st == IFT_OK; i++) {
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
    if (r < 0) {
      ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "H5Dwrite",
                    "check free disk space and quota of the output directory; an existing file there is left as it was",
                    "writing %s/%s[%lld:%lld] to %s.tmp failed", group, p->name,
                    (long long)(p->start + a), (long long)(p->start + b), path);
      st = IFT_ERR_WRITE;
    }
    /* a full disk fails the ranks whose part did not fit, not all of them */
    st = agree_message(st, comm);
  }
  if (fs >= 0) H5Sclose(fs);
  H5Dclose(ds);
  return st;
}

static ift_status close_comm(data_writer *w) {
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
  if (!cnt || !parts || (rank == 0 && !scratch)) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL,
                  "%s: the row counts of %d ranks and a hash buffer", w->path, size);
    st = IFT_ERR_NOMEM;
  }
  if (st == IFT_OK && rank == 0) st = core_sha256_begin(&h);
  IFT_TRY_GOTO(st, out, agree_message(st, comm));
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
   * offsets, masks, each over the ranks in order */
  const int64_t zero = 0;
  for (int g = 0; g < ng && st == IFT_OK; g++) {
    const triple *t = &w->t[g];
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    st = hash_stream(h, t->tok, parts, sizeof(int), MPI_INT, scratch, rank, size, comm);
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g] + (r == 0);
    const int64_t *off = rank == 0 ? (t->nrow ? t->off : &zero) : t->nrow ? t->off + 1 : NULL;
    if (st == IFT_OK) st = hash_stream(h, off, parts, sizeof(int64_t), MPI_INT64_T, scratch, rank, size, comm);
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    if (st == IFT_OK) st = hash_stream(h, t->mask, parts, 1, MPI_UINT8_T, scratch, rank, size, comm);
  }
  if (st != IFT_OK) goto out; /* an MPI failure: the job cannot go on anyway */
  if (rank == 0) {
    core_sha256_end(h, hex);
    h = NULL;
  }
  IFT_MPI_CHECK_GOTO(st, out, MPI_Bcast(hex, sizeof hex, MPI_CHAR, 0, comm), NULL);
  set_attr(w, "content_sha256", hex, 0);

  /* 4. the file can be created and the disk takes it (raw size, a little
   * for deflate's worst case and the chunk index, 1 MiB of metadata) */
  double need = 1048576.0;
  for (int g = 0; g < ng; g++)
    need += 1.01 * (5.0 * (double)toks[g] + 8.0 * (double)(rows[g] + 1)) +
            512.0 * (3.0 + 2.0 * (double)toks[g] / CHUNK + (double)rows[g] / CHUNK);
  if (rank == 0) {
    int cannot_create = 0;
    const int e = ift_fs_reserve(tmp, need, &cannot_create);
    if (cannot_create) {
      ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "open", "check that the output directory exists and is writable",
                    "cannot create '%s': %s", tmp, strerror(e));
      st = IFT_ERR_IO;
    } else if (e) {
      ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "fallocate",
                    "free space (or raise the quota) in the output directory, or write elsewhere",
                    "the disk cannot take the %.1f MiB of '%s': %s", need / 1048576.0, tmp, strerror(e));
      st = IFT_ERR_WRITE;
    }
  }
  IFT_TRY_GOTO(st, out, agree_message(st, comm));

  /* 5. the file, collectively */
  created = 1;
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
    ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Pset_fapl_mpio", "is HDF5 built with MPI (parallel)?",
                  "%s: cannot set up the MPI-IO file driver", tmp);
    st = IFT_ERR_HDF5;
  } else if ((f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "H5Fcreate",
                  "check that the output directory exists and is writable on every rank's node",
                  "cannot create '%s' with the MPI-IO driver", tmp);
    st = IFT_ERR_IO;
  }
  if ((st = agree_message(st, comm)) != IFT_OK) {
    /* a rank that did create it cannot close it: the close is collective
     * over ranks that have no file.  The handle is left open (rank 0
     * removes the file); the caller ends the job with the error. */
    f = -1;
    goto out;
  }
  dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
    ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Pset_dxpl_mpio", "is HDF5 built with MPI (parallel)?",
                  "%s: cannot set up collective transfers", tmp);
    st = IFT_ERR_HDF5;
  }
  IFT_TRY_GOTO(st, close, agree_message(st, comm));
  static const char *const group_names[3] = {"", "chosen", "rejected"};
  for (int g = 0; g < ng && st == IFT_OK; g++) {
    const triple *t = &w->t[g];
    hid_t grp = g ? H5Gcreate2(f, group_names[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : f;
    if (grp < 0) {
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Gcreate2", "check free disk space of the output directory",
                    "%s: cannot create group /%s", tmp, group_names[g]);
      st = IFT_ERR_HDF5;
    }
    if ((st = agree_message(st, comm)) != IFT_OK) {
      if (g && grp >= 0) H5Gclose(grp);
      break;
    }
    char gname[16];
    snprintf(gname, sizeof gname, "%s%s", g ? "/" : "", group_names[g]);
    for (int r = 0; r < size; r++) parts[r] = cnt[r * NCOUNT + 2 * g + 1];
    const part tp = {"tokens", H5T_STD_I32LE, H5T_NATIVE_INT, sizeof(int), t->tok,
                     tokbase[g], (int64_t)t->ntok, toks[g], parts};
    const part mp = {"loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, t->mask,
                     tokbase[g], (int64_t)t->ntok, toks[g], parts};
    st = write_dataset(grp, gname, &tp, dxpl, w->path, size, comm);
    if (st == IFT_OK) st = write_dataset(grp, gname, &mp, dxpl, w->path, size, comm);
    if (st == IFT_OK) {
      int64_t *op = malloc(sizeof(int64_t) * (size_t)size);
      if ((st = agree_message(op ? IFT_OK : IFT_ERR_NOMEM, comm)) == IFT_OK) {
        for (int r = 0; r < size; r++) op[r] = cnt[r * NCOUNT + 2 * g] + (r == 0);
        const void *ob = rank == 0 ? (t->nrow ? t->off : &zero) : t->nrow ? t->off + 1 : NULL;
        const part offp = {"offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), ob,
                           rank == 0 ? 0 : rowbase[g] + 1, op[rank], rows[g] + 1, op};
        st = write_dataset(grp, gname, &offp, dxpl, w->path, size, comm);
      }
      free(op);
    }
    if (g) H5Gclose(grp);
  }
  if (st == IFT_OK) {
    if (write_root_attrs(f, w) < 0) {
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Acreate2", "check free disk space of the output directory",
                    "%s: cannot write the root attributes", tmp);
      st = IFT_ERR_HDF5;
    }
    st = agree_message(st, comm);
  }
close:
  /* 6. every rank reaches the collective close together, whoever failed */
  if (dxpl >= 0) H5Pclose(dxpl);
  if (H5Fclose(f) < 0 && st == IFT_OK) {
    ift_error_set(IFT_ERR_WRITE, __FILE__, __LINE__, "H5Fclose", "check free disk space of the output directory",
                  "closing '%s' failed", tmp);
    st = IFT_ERR_WRITE;
  }
  f = -1;
  st = agree_message(st, comm);
  if (rank == 0 && st == IFT_OK && rename(tmp, w->path) != 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "rename", "check permissions of the output directory",
                  "cannot rename %s to %s: %s", tmp, w->path, strerror(errno));
    st = IFT_ERR_IO;
  }
  st = agree_message(st, comm);
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

/* ------------------------------------------------------------ /ref_logp */

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
  int rc = a && b ? 0 : -1;
  char buf[1 << 16];
  size_t k;
  while (rc == 0 && (k = fread(buf, 1, sizeof buf, a)) > 0)
    if (fwrite(buf, 1, k, b) != k) rc = -1;
  if (a && ferror(a)) rc = -1;
  if (a) fclose(a);
  if (b && fclose(b) != 0) rc = -1;
  return rc;
}

herr_t ift_h5_attr_str(hid_t obj, const char *name, const char *v) {
  hid_t sc = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, t, sc, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = a < 0 ? -1 : H5Awrite(a, t, v);
  if (a >= 0) H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sc);
  return r;
}

int ift_fs_reserve(const char *path, double need, int *cannot_create) {
  *cannot_create = 0;
  /* path is the caller's own temporary name: never follow a link planted
   * there (O_TRUNC would empty its target) */
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
  if (fd < 0) {
    *cannot_create = 1;
    return errno;
  }
  int e = need > 9e18 ? EFBIG : fallocate(fd, 0, 0, (off_t)need) ? errno : 0;
  close(fd);
  unlink(path);
  if (e == EOPNOTSUPP || e == ENOSYS) {
    struct statvfs v;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    e = statvfs(slash ? dir : ".", &v) == 0 && (double)v.f_bavail * v.f_frsize < need ? ENOSPC : 0;
  }
  return e;
}

ift_status data_write_ref_logp(const char *path, const float *ref, long n, const char *fingerprint,
                               const char *reference) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (copy_file(path, tmp) != 0) {
    unlink(tmp);
    IFT_FAIL(IFT_ERR_IO, "check free disk space and that the data directory is writable",
             "cannot copy %s to %s: %s", path, tmp, strerror(errno));
  }
  hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
  herr_t r = f < 0 ? -1 : 0;
  if (r >= 0 && H5Lexists(f, "/ref_logp", H5P_DEFAULT) > 0) r = H5Ldelete(f, "/ref_logp", H5P_DEFAULT);
  hsize_t dims[2] = {(hsize_t)n, 2};
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t ds = r < 0 ? -1 : H5Dcreate2(f, "/ref_logp", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  r = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ref);
  if (r >= 0) r = ift_h5_attr_str(ds, "fingerprint", fingerprint);
  if (r >= 0) r = ift_h5_attr_str(ds, "reference", reference ? reference : "");
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  if (f >= 0 && H5Fclose(f) < 0) r = -1;
  if (r < 0) {
    unlink(tmp);
    IFT_FAIL(IFT_ERR_IO, "check free disk space; the data set was left unchanged",
             "writing /ref_logp into a copy of %s failed", path);
  }
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    IFT_FAIL(IFT_ERR_IO, "check permissions of the data directory", "cannot rename %s to %s", tmp, path);
  }
  return IFT_OK;
}
