#define _POSIX_C_SOURCE 200809L
/* HDF5 data set files: open + validate (collective, MPI-IO driver), row reads
 * by hyperslab, and the serial writer used by prep and the generator. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/h5attr.h"

#define FAIL(code, hint, ...)                                                  \
  do {                                                                         \
    ift_error_set((code), __FILE__, __LINE__, "data set", (hint), __VA_ARGS__); \
    st = (code);                                                               \
    goto done;                                                                 \
  } while (0)

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
  ift_status st = IFT_OK;
  char tn[96], on[96], mn[96];
  snprintf(tn, sizeof tn, "%s/tokens", prefix);
  snprintf(on, sizeof on, "%s/offsets", prefix);
  snprintf(mn, sizeof mn, "%s/loss_mask", prefix);
  hsize_t nt = 0, no = 0, nm = 0;
  int r;
  if ((r = dset_check(f, tn, H5T_INTEGER, 4, 1, &nt)))
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, tn,
         r == 1 ? "missing" : r == 2 ? "not int32" : "not one-dimensional");
  if ((r = dset_check(f, on, H5T_INTEGER, 8, 1, &no)))
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, on,
         r == 1 ? "missing" : r == 2 ? "not int64" : "not one-dimensional");
  if ((r = dset_check(f, mn, H5T_INTEGER, 1, -1, &nm)))
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: dataset %s is %s", path, mn,
         r == 1 ? "missing" : r == 2 ? "not uint8" : "not one-dimensional");
  if (no < 1) FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s is empty (needs n+1 entries)", path, on);
  if (nm != nt)
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s has %llu entries but %s has %llu", path, mn,
         (unsigned long long)nm, tn, (unsigned long long)nt);
  *off = malloc(sizeof(int64_t) * no);
  if (!*off) FAIL(IFT_ERR_NOMEM, NULL, "%s: offsets of %llu rows", path, (unsigned long long)no);
  if ((st = read_all_i64(f, on, *off)) != IFT_OK) goto done;
  if ((*off)[0] != 0) FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s[0] = %lld, must be 0", path, on, (long long)(*off)[0]);
  for (hsize_t i = 1; i < no; i++)
    if ((*off)[i] < (*off)[i - 1] || (*off)[i] > (int64_t)nt)
      FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s[%llu] = %lld is out of range (previous %lld, %llu tokens)",
           path, on, (unsigned long long)i, (long long)(*off)[i], (long long)(*off)[i - 1],
           (unsigned long long)nt);
  if ((*off)[no - 1] != (int64_t)nt)
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: %s ends at %lld but %s has %llu tokens", path, on,
         (long long)(*off)[no - 1], tn, (unsigned long long)nt);
  *n_out = (long)no - 1;
  *ntok_out = (long)nt;
done:
  return st;
}

/* Token ids must lie in [0, vocab): checked once at open, in blocks. */
static ift_status check_ids(hid_t f, const char *path, const char *name, long ntok, int vocab) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  IFT_REQUIRE(d >= 0, IFT_ERR_HDF5, REGEN, "%s: cannot open %s", path, name);
  enum { BLK = 1 << 16 };
  int *buf = malloc(sizeof(int) * BLK);
  hid_t fs = H5Dget_space(d);
  ift_status st = IFT_OK;
  for (long o = 0; o < ntok && st == IFT_OK && buf; o += BLK) {
    hsize_t s0 = (hsize_t)o, cnt = (hsize_t)(ntok - o < BLK ? ntok - o : BLK);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s0, NULL, &cnt, NULL);
    if (H5Dread(d, H5T_NATIVE_INT, ms, fs, H5P_DEFAULT, buf) < 0) {
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, "H5Dread", "the file may be truncated",
                    "%s: reading %s failed", path, name);
      st = IFT_ERR_HDF5;
    }
    for (hsize_t i = 0; i < cnt && st == IFT_OK; i++)
      if (buf[i] < 0 || buf[i] >= vocab) {
        ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "token id", REGEN,
                      "%s: %s[%lld] = %d is outside the vocabulary [0, %d)", path, name,
                      (long long)(o + (long)i), buf[i], vocab);
        st = IFT_ERR_FORMAT;
      }
    H5Sclose(ms);
  }
  free(buf);
  H5Sclose(fs);
  H5Dclose(d);
  return st;
}

ift_status data_open(data_set *d, const char *path, MPI_Comm comm, int expect_vocab) {
  memset(d, 0, sizeof *d);
  d->file = -1;
  ift_status st = IFT_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(d->path, sizeof d->path, "%s", path);
  if (access(path, R_OK) != 0)
    FAIL(IFT_ERR_IO, "check data.train / data.eval, or create the set with iftrain prep",
         "data set '%s' cannot be read: %s", path, strerror(errno));
  if (H5Fis_hdf5(path) <= 0)
    FAIL(IFT_ERR_FORMAT, "convert JSONL with iftrain prep INPUT.jsonl -o OUTPUT.h5",
         "'%s' is not an HDF5 file (truncated or another format)", path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) FAIL(IFT_ERR_FORMAT, "the file may be truncated; regenerate it", "cannot open '%s' as HDF5", path);
  d->file = f;
  long v = 0;
  if (attr_long(f, "format_version", &v) || v != DATA_FORMAT_VERSION)
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: format_version attribute is %s (this build reads %d)", path,
         v ? "unknown" : "missing", DATA_FORMAT_VERSION);
  d->format_version = (int)v;
  if (attr_long(f, "vocab_size", &v) || v <= 0)
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: vocab_size attribute missing or not positive", path);
  d->vocab_size = (int)v;
  if (attr_string(f, "tokenizer", d->tokenizer, sizeof d->tokenizer))
    FAIL(IFT_ERR_FORMAT, REGEN, "%s: tokenizer attribute missing", path);
  if (strcmp(d->tokenizer, DATA_TOKENIZER))
    FAIL(IFT_ERR_FORMAT, "prepare the data with this build's tokenizer (iftrain prep)",
         "%s: tokenizer '%s' is not known to this build (it has %s)", path, d->tokenizer, DATA_TOKENIZER);
  if (expect_vocab > 0 && d->vocab_size > expect_vocab)
    FAIL(IFT_ERR_FORMAT, "set model.vocab_size to at least the data set's vocab_size",
         "%s: vocab_size %d exceeds the model's vocab_size %d", path, d->vocab_size, expect_vocab);
  if ((st = open_triple(f, path, "", &d->offsets, &d->n, &d->ntokens)) != IFT_OK) goto done;
  if ((st = check_ids(f, path, "/tokens", d->ntokens, d->vocab_size)) != IFT_OK) goto done;
  d->has_pairs = H5Lexists(f, "/chosen", H5P_DEFAULT) > 0 && H5Lexists(f, "/rejected", H5P_DEFAULT) > 0;
  if (d->has_pairs) {
    long n1, n2, t1, t2;
    if ((st = open_triple(f, path, "/chosen", &d->ch_offsets, &n1, &t1)) != IFT_OK) goto done;
    if ((st = open_triple(f, path, "/rejected", &d->rj_offsets, &n2, &t2)) != IFT_OK) goto done;
    if (n1 != d->n || n2 != d->n)
      FAIL(IFT_ERR_FORMAT, REGEN, "%s: /chosen has %ld rows and /rejected %ld, /tokens %ld", path, n1, n2, d->n);
    if ((st = check_ids(f, path, "/chosen/tokens", t1, d->vocab_size)) != IFT_OK) goto done;
    if ((st = check_ids(f, path, "/rejected/tokens", t2, d->vocab_size)) != IFT_OK) goto done;
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
      FAIL(IFT_ERR_FORMAT, fix,
           "%s: /ref_logp must be float32 [%ld, 2] with a fingerprint attribute "
           "(got %llu x %llu)", path, d->n, (unsigned long long)dims[0], (unsigned long long)dims[1]);
  }
done:
  if (st != IFT_OK) data_close(d);
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
  return IFT_OK;
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

static herr_t write_1d(hid_t g, const char *name, hid_t ftype, hid_t mtype, const void *buf, size_t n) {
  hsize_t dim = n, chunk = n < 65536 ? (n ? n : 1) : 65536;
  hid_t s = H5Screate_simple(1, &dim, NULL);
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  if (n > 0) {
    H5Pset_chunk(p, 1, &chunk);
    H5Pset_deflate(p, 4);
  }
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

ift_status data_writer_close(data_writer *w) {
  ift_status st = IFT_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", w->path);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) FAIL(IFT_ERR_IO, "check that the output directory exists and is writable", "cannot create '%s'", tmp);
  herr_t r = write_triple(f, &w->t[0]);
  if (w->pairs) {
    hid_t gc = H5Gcreate2(f, "chosen", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gr = H5Gcreate2(f, "rejected", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    r |= write_triple(gc, &w->t[1]) | write_triple(gr, &w->t[2]);
    H5Gclose(gc);
    H5Gclose(gr);
  }
  long fv = DATA_FORMAT_VERSION, vs = w->vocab;
  hid_t sc = H5Screate(H5S_SCALAR);
  for (int i = -3; i < w->nattr; i++) {
    const char *name = i == -3 ? "format_version" : i == -2 ? "vocab_size" : i == -1 ? "tokenizer" : w->attr_names[i];
    const char *s = i == -1 ? DATA_TOKENIZER : i >= 0 ? w->attr_str[i] : NULL;
    long v = i == -3 ? fv : i == -2 ? vs : i >= 0 ? w->attr_int[i] : 0;
    hid_t t = s ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_STD_I64LE);
    if (s) H5Tset_size(t, strlen(s) + 1);
    hid_t a = H5Acreate2(f, name, t, sc, H5P_DEFAULT, H5P_DEFAULT);
    r |= a < 0 ? -1 : s ? H5Awrite(a, t, s) : H5Awrite(a, H5T_NATIVE_LONG, &v);
    if (a >= 0) H5Aclose(a);
    H5Tclose(t);
  }
  H5Sclose(sc);
  if (H5Fclose(f) < 0 || r < 0) {
    unlink(tmp);
    FAIL(IFT_ERR_IO, "check free disk space", "writing '%s' failed", w->path);
  }
  if (rename(tmp, w->path) != 0)
    FAIL(IFT_ERR_IO, "check permissions of the output directory", "cannot rename %s to %s", tmp, w->path);
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
  free(w);
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

ift_status data_write_ref_logp(const char *path, const float *ref, long n, const char *fingerprint,
                               const char *reference) {
  ift_status st = IFT_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (copy_file(path, tmp) != 0) {
    unlink(tmp);
    FAIL(IFT_ERR_IO, "check free disk space and that the data directory is writable",
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
    FAIL(IFT_ERR_IO, "check free disk space; the data set was left unchanged",
         "writing /ref_logp into a copy of %s failed", path);
  }
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    FAIL(IFT_ERR_IO, "check permissions of the data directory", "cannot rename %s to %s", tmp, path);
  }
done:
  return st;
}
