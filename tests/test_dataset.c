/* data sets (include/iftrain/data.h), one rank on MPI_COMM_SELF: rows
 * written with the writer API read back exactly (main rows and pairs,
 * empty rows, attributes); the content hash verifies, and a changed token
 * does not; a truncated file, a file that is not HDF5, token ids beyond
 * vocab_size and a set with no trainable token are refused. */
#define _GNU_SOURCE /* mkdtemp */
#include <hdf5.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "iftrain/data.h"
#include "tmpdir.h"

#define TMPL "/tmp/ift_test_dataset_XXXXXX"
enum { N = 23, MAXLEN = 40 };

/* Row i of group g: length 0 for every 7th row, ids and mask from i. */
static int row(int i, int g, int *tok, uint8_t *m) {
  const int len = i % 7 == 3 ? 0 : 1 + (i * 13 + g * 5) % MAXLEN;
  for (int j = 0; j < len; j++) {
    tok[j] = (i * 31 + j * 7 + g * 11) % TOK_VOCAB;
    m[j] = (j + i + g) % 3 != 0;
  }
  return len;
}

static ift_status write_set(const char *p, int pairs, int vocab) {
  data_writer *w;
  ift_status s = data_writer_create(&w, p, vocab, pairs);
  if (s != IFT_OK) return s;
  int t[3][MAXLEN], len[3];
  uint8_t m[3][MAXLEN];
  for (int i = 0; i < N && s == IFT_OK; i++) {
    for (int g = 0; g < 3; g++) len[g] = row(i, g, t[g], m[g]);
    s = data_writer_add(w, t[0], m[0], len[0], t[1], m[1], pairs ? len[1] : 0, t[2], m[2], pairs ? len[2] : 0);
  }
  if (s != IFT_OK) {
    data_writer_discard(w);
    return s;
  }
  data_writer_attr_str(w, "source", "unit-test");
  data_writer_attr_int(w, "seed", 99);
  return data_writer_close(w);
}

static void test_write_read_back(void) {
  const char *p = ift_tmp_path(TMPL, "rows.h5");
  CU_ASSERT_EQUAL_FATAL(write_set(p, 1, TOK_VOCAB), IFT_OK);
  CU_ASSERT(data_file_is_data_set(p));
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, p, MPI_COMM_SELF, TOK_VOCAB), IFT_OK);
  CU_ASSERT_EQUAL(d.n, N);
  CU_ASSERT_EQUAL(d.vocab_size, TOK_VOCAB);
  CU_ASSERT_EQUAL(d.format_version, DATA_FORMAT_VERSION);
  CU_ASSERT_STRING_EQUAL(d.tokenizer, DATA_TOKENIZER);
  CU_ASSERT(d.has_pairs);
  CU_ASSERT_EQUAL(strlen(d.content_sha256), 64);
  long ntok = 0, ntrain = 0;
  const char *grp[3] = {NULL, "chosen", "rejected"};
  for (int i = 0; i < N; i++)
    for (int g = 0; g < 3; g++) {
      int want[MAXLEN], got[MAXLEN], len = -1;
      uint8_t wm[MAXLEN], gm[MAXLEN];
      const int wl = row(i, g, want, wm);
      CU_ASSERT_EQUAL(data_group_len(&d, grp[g], i), wl);
      CU_ASSERT_EQUAL(data_read_row(&d, grp[g], i, got, gm, MAXLEN, &len), IFT_OK);
      CU_ASSERT_EQUAL(len, wl);
      if (len == wl) {
        CU_ASSERT_EQUAL(memcmp(got, want, sizeof(int) * (size_t)wl), 0);
        CU_ASSERT_EQUAL(memcmp(gm, wm, (size_t)wl), 0);
      }
      if (g == 0) {
        ntok += wl;
        for (int j = 0; j < wl; j++) ntrain += wm[j];
      }
    }
  CU_ASSERT_EQUAL(d.ntokens, ntok);
  CU_ASSERT_EQUAL(d.ntrainable, ntrain);
  /* a capacity below the row's length truncates */
  int got[MAXLEN], len;
  uint8_t gm[MAXLEN];
  CU_ASSERT_EQUAL(data_read_row(&d, NULL, 1, got, gm, 3, &len), IFT_OK);
  CU_ASSERT_EQUAL(len, 3);
  data_close(&d);
}

static void test_content_hash(void) {
  const char *p = ift_tmp_path(TMPL, "hash.h5"), *q = ift_tmp_path(TMPL, "hash2.h5");
  CU_ASSERT_EQUAL_FATAL(write_set(p, 0, TOK_VOCAB), IFT_OK);
  char hex[65];
  CU_ASSERT_EQUAL(data_verify_content(p, hex), IFT_OK);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, p, MPI_COMM_SELF, 0), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hex, d.content_sha256);
  data_close(&d);
  /* the same rows written again: the same hash (it is of the content) */
  CU_ASSERT_EQUAL_FATAL(write_set(q, 0, TOK_VOCAB), IFT_OK);
  char hex2[65];
  CU_ASSERT_EQUAL(data_verify_content(q, hex2), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hex, hex2);
  /* one token changed in place (HDF5): the stored hash no longer matches */
  hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  hid_t ds = H5Dopen2(f, "/tokens", H5P_DEFAULT), sp = H5Dget_space(ds);
  hsize_t at = 5, one = 1;
  H5Sselect_hyperslab(sp, H5S_SELECT_SET, &at, NULL, &one, NULL);
  hid_t ms = H5Screate_simple(1, &one, NULL);
  int v = 0;
  CU_ASSERT(H5Dread(ds, H5T_NATIVE_INT, ms, sp, H5P_DEFAULT, &v) >= 0);
  v = (v + 1) % TOK_VOCAB;
  CU_ASSERT(H5Dwrite(ds, H5T_NATIVE_INT, ms, sp, H5P_DEFAULT, &v) >= 0);
  H5Sclose(ms), H5Sclose(sp), H5Dclose(ds), H5Fclose(f);
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(data_verify_content(q, hex2), IFT_ERR_FORMAT);
  ift_error_quiet(0);
  CU_ASSERT_STRING_NOT_EQUAL(hex, hex2);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), hex)); /* names the stored hash */
}

static void expect_refused(const char *p, int vocab, const char *frag) {
  data_set d;
  ift_error_quiet(1);
  const ift_status s = data_open(&d, p, MPI_COMM_SELF, vocab);
  ift_error_quiet(0);
  CU_ASSERT_NOT_EQUAL(s, IFT_OK);
  if (s == IFT_OK) data_close(&d);
  if (!strstr(ift_error_last(), frag)) fprintf(stderr, "\n  %s: '%s' lacks '%s'", p, ift_error_last(), frag);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), frag));
}

static void test_bad_files_refused(void) {
  const char *p = ift_tmp_path(TMPL, "good.h5");
  CU_ASSERT_EQUAL_FATAL(write_set(p, 0, TOK_VOCAB), IFT_OK);
  /* truncated to half its size */
  FILE *f = fopen(p, "rb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char buf[1 << 16];
  const size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  CU_ASSERT_FATAL(n > 0 && n < sizeof buf);
  const char *t = ift_tmp_path(TMPL, "trunc.h5");
  f = fopen(t, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fwrite(buf, 1, n / 2, f);
  fclose(f);
  expect_refused(t, 0, "trunc.h5");
  CU_ASSERT(!data_file_is_data_set(t));
  /* not HDF5 at all */
  const char *x = ift_tmp_path(TMPL, "text.h5");
  f = fopen(x, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("{\"prompt\": \"not a data set\"}\n", f);
  fclose(f);
  expect_refused(x, 0, "text.h5");
  CU_ASSERT(!data_file_is_data_set(x));
  /* a model vocabulary smaller than the file's */
  expect_refused(p, 100, "vocab");
  /* a missing file */
  expect_refused(ift_tmp_path(TMPL, "none.h5"), 0, "none.h5");
}

/* Ids the writer accepts but the loader refuses: beyond vocab_size. */
static void test_malformed_content_refused(void) {
  const char *p = ift_tmp_path(TMPL, "ids.h5");
  data_writer *w;
  CU_ASSERT_EQUAL_FATAL(data_writer_create(&w, p, 50, 0), IFT_OK);
  int tok[4] = {1, 2, 3, 4};
  uint8_t m[4] = {0, 1, 1, 1};
  CU_ASSERT_EQUAL(data_writer_add(w, tok, m, 4, NULL, NULL, 0, NULL, NULL, 0), IFT_OK);
  tok[2] = 77; /* >= vocab_size 50 */
  /* the writer stores what it is given; the loader is the check */
  CU_ASSERT_EQUAL(data_writer_add(w, tok, m, 4, NULL, NULL, 0, NULL, NULL, 0), IFT_OK);
  CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  expect_refused(p, 0, "77");
  /* no trainable token at all */
  const char *z = ift_tmp_path(TMPL, "zero.h5");
  CU_ASSERT_EQUAL_FATAL(data_writer_create(&w, z, 50, 0), IFT_OK);
  uint8_t zm[4] = {0, 0, 0, 0};
  tok[2] = 3;
  CU_ASSERT_EQUAL(data_writer_add(w, tok, zm, 4, NULL, NULL, 0, NULL, NULL, 0), IFT_OK);
  CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  expect_refused(z, 0, "nothing to train on");
}

static CU_TestInfo tests[] = {{"writer -> reader: every row, pairs, empty rows, counts", test_write_read_back},
                              {"content hash: verified, same for same rows, a changed token fails", test_content_hash},
                              {"truncated, not HDF5, vocab too large, missing: refused", test_bad_files_refused},
                              {"ids beyond vocab_size, no trainable token: refused", test_malformed_content_refused},
                              CU_TEST_INFO_NULL};

int main(void) {
  MPI_Init(NULL, NULL);
  const int rc = ift_test_run("dataset", tests);
  ift_tmp_remove();
  MPI_Finalize();
  return rc;
}
