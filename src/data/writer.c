#include "config.h"
/* Writing data sets on one process: data_writer keeps the rows in memory
 * and data_writer_close writes PATH.tmp (chunked, deflate), hashes the
 * content and renames it to PATH; the collective close of a writer made by
 * data_writer_create_comm is in writer_comm.c.  Also /ref_logp, written
 * into a copy of an existing set (data_write_ref_logp). */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_int.h"
#include "iftrain/data.h"
#include "iftrain/h5attr.h"

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

ift_status data_writer_add(data_writer *w, const int *tok, const uint8_t *mask, int len,
                           const int *ctok, const uint8_t *cmask, int clen, const int *rtok,
                           const uint8_t *rmask, int rlen) {
  int bad = triple_add(&w->t[0], tok, mask, len);
  if (w->pairs) bad |= triple_add(&w->t[1], ctok, cmask, clen) | triple_add(&w->t[2], rtok, rmask, rlen);
  IFT_REQUIRE(!bad, IFT_ERR_NOMEM, NULL, "data set rows in memory");
  return IFT_OK;
}

void data_writer_set_attr(data_writer *w, const char *name, const char *s, long v) {
  int i = 0;
  while (i < w->nattr && strcmp(w->attr_names[i], name)) i++;
  if (i == 16) return;
  if (i == w->nattr) w->nattr++;
  snprintf(w->attr_names[i], 32, "%s", name);
  free(w->attr_str[i]);
  w->attr_str[i] = s ? strdup(s) : NULL;
  w->attr_int[i] = v;
}
void data_writer_attr_str(data_writer *w, const char *name, const char *value) {
  data_writer_set_attr(w, name, value, 0);
}
void data_writer_attr_int(data_writer *w, const char *name, long value) {
  data_writer_set_attr(w, name, NULL, value);
}

/* The creation properties of a 1-D dataset of n elements, one function for
 * both writers so that they make the same layout: chunks of up to 64 Ki
 * elements compressed with deflate (level 4); an empty dataset stays
 * contiguous (a chunk needs a size > 0).  Parallel HDF5 (>= 1.10.2) writes
 * filtered chunks collectively, so the collective writer keeps the
 * compression. */
hid_t data_dcpl_1d(size_t n) {
  hsize_t chunk = n < DATA_CHUNK ? (n ? n : 1) : DATA_CHUNK;
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
  hid_t p = data_dcpl_1d(n);
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
herr_t data_write_root_attrs(hid_t f, const data_writer *w) {
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

ift_status data_writer_close(data_writer *w) {
  if (w->comm != MPI_COMM_NULL) return data_writer_close_comm(w);
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
    data_hash_le(h, t->tok, t->ntok, sizeof(int));
    data_hash_le(h, t->nrow ? t->off : &zero, t->nrow + 1, sizeof(int64_t));
    data_hash_le(h, t->mask, t->ntok, 1);
  }
  char hex[65];
  core_sha256_end(h, hex);
  data_writer_set_attr(w, "content_sha256", hex, 0);
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
  r |= data_write_root_attrs(f, w);
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
