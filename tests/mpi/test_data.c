/* data: tokenizer, prep round trips for the three line formats, every
 * malformed-input message, generator determinism and correctness, ranks
 * reading disjoint rows of a shared file, and the collective writer
 * (data_writer_create_comm) against the serial one. */
#include "config.h"
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iftrain/data.h"
#include "mpi_harness.h"

static int rank0(void) {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r == 0;
}
static char dir[256];

static void path(char *out, const char *name) { snprintf(out, 512, "%s/%s", dir, name); }

static void write_text(const char *p, const char *text) {
  if (rank0()) {
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* prep on rank 0, status shared */
static ift_status prep(const char *in, const char *out, data_prep_stats *st) {
  int s = IFT_OK;
  if (rank0()) s = data_prep_jsonl(in, out, st);
  MPI_Bcast(&s, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Bcast(st, sizeof *st, MPI_BYTE, 0, MPI_COMM_WORLD);
  return (ift_status)s;
}

static void test_tokenizer(void) {
  const char s[] = "a\xc3\xa9 1+2";
  int ids[32];
  int n = data_tokenize(ids, 32, s, strlen(s));
  CU_ASSERT_EQUAL(n, (int)strlen(s));
  CU_ASSERT_EQUAL(ids[1], 0xc3);
  char back[64];
  data_detokenize(back, sizeof back, ids, n);
  CU_ASSERT_STRING_EQUAL(back, s);
  int sp[3] = {TOK_BOS, 'x', TOK_EOS};
  data_detokenize(back, sizeof back, sp, 3);
  CU_ASSERT_STRING_EQUAL(back, "<bos>x<eos>");
}

static void expect_row(data_set *d, const char *grp, long i, const char *text_prompt,
                       const char *text_answer) {
  int tok[256], len;
  uint8_t m[256];
  CU_ASSERT_EQUAL_FATAL(data_read_row(d, grp, i, tok, m, 256, &len), IFT_OK);
  int k = 0, ok = 1;
  ok &= tok[k] == TOK_BOS && m[k] == 0;
  k++;
  for (const char *p = text_prompt; *p; p++, k++) ok &= tok[k] == (unsigned char)*p && m[k] == 0;
  ok &= tok[k] == TOK_ASSISTANT && m[k] == 0;
  k++;
  for (const char *p = text_answer; *p; p++, k++) ok &= tok[k] == (unsigned char)*p && m[k] == 1;
  ok &= tok[k] == TOK_EOS && m[k] == 1;
  k++;
  CU_ASSERT(ok);
  CU_ASSERT_EQUAL(len, k);
}

static void test_prep_prompt_response(void) {
  char in[512], out[512];
  path(in, "pr.jsonl");
  path(out, "pr.h5");
  write_text(in, "{\"prompt\":\"2+2=\",\"response\":\"4\"}\n\n{\"prompt\":\"q\\n\\u00e9\", \"response\":\"ans \\\"x\\\"\"}\n");
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_written, 2);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 512), IFT_OK);
  CU_ASSERT_EQUAL(d.n, 2);
  CU_ASSERT_EQUAL(d.has_pairs, 0);
  CU_ASSERT_EQUAL(d.vocab_size, TOK_VOCAB);
  CU_ASSERT_STRING_EQUAL(d.tokenizer, "bytes-v1");
  expect_row(&d, NULL, 0, "2+2=", "4");
  expect_row(&d, NULL, 1, "q\n\xc3\xa9", "ans \"x\"");
  data_close(&d);
}

static void test_prep_pairs(void) {
  char in[512], out[512];
  path(in, "pp.jsonl");
  path(out, "pp.h5");
  write_text(in, "{\"prompt\":\"p1\",\"chosen\":\"good\",\"rejected\":\"bad\"}\n"
                 "{\"prompt\":\"p2\",\"chosen\":\"yes\",\"rejected\":\"no!\"}\n");
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_EQUAL(d.has_pairs, 1);
  expect_row(&d, NULL, 1, "p2", "yes"); /* main rows = prompt + chosen */
  expect_row(&d, "chosen", 0, "p1", "good");
  expect_row(&d, "rejected", 0, "p1", "bad");
  expect_row(&d, "rejected", 1, "p2", "no!");
  data_close(&d);
}

static void test_prep_messages(void) {
  char in[512], out[512];
  path(in, "pm.jsonl");
  path(out, "pm.h5");
  write_text(in, "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U1\"},"
                 "{\"role\":\"assistant\",\"content\":\"A1\"},{\"role\":\"user\",\"content\":\"U2\"},"
                 "{\"role\":\"assistant\",\"content\":\"A2\"}]}\n");
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  int tok[64], len;
  uint8_t m[64];
  data_read_row(&d, NULL, 0, tok, m, 64, &len);
  const int et[] = {TOK_BOS, TOK_SYSTEM, 'S', TOK_USER, 'U', '1', TOK_ASSISTANT, 'A', '1',
                    TOK_USER, 'U', '2', TOK_ASSISTANT, 'A', '2', TOK_EOS};
  const uint8_t em[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1};
  CU_ASSERT_EQUAL(len, 16);
  CU_ASSERT_EQUAL(memcmp(tok, et, sizeof et), 0);
  CU_ASSERT_EQUAL(memcmp(m, em, sizeof em), 0);
  data_close(&d);
}

static void test_prep_malformed(void) {
  char in[512], out[512];
  path(in, "bad.jsonl");
  path(out, "bad.h5");
  write_text(in, "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"a\",\"response\":}\n"
                 "{\"prompt\":\"a\",\"response\":\"b\"}\n[1,2]\n");
  data_prep_stats st = {0};
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_ERR_FORMAT);
  if (rank0()) {
    CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "bad.jsonl:2:"));
    CU_ASSERT_EQUAL(access(out, F_OK), -1); /* nothing written on failure */
  }
  st.skip_bad = 1;
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_skipped, 2);
  CU_ASSERT_EQUAL(st.n_written, 2);
  /* truncation (7 tokens keep one answer token of each row: a set without
   * any would be refused as nothing to train on) */
  st.skip_bad = 0;
  st.max_len = 7;
  path(in, "pr.jsonl");
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_truncated, 2);
  ift_error_quiet(0);
}

/* Build a valid file then damage one thing at a time with the HDF5 API. */
typedef enum { DMG_NO_OFFSETS, DMG_FLOAT_TOKENS, DMG_OFFSET_RANGE, DMG_BIG_ID } damage;
static void make_damaged(const char *p, damage k) {
  if (rank0()) {
    data_writer *w;
    int tok[4] = {TOK_BOS, 'a', 'b', TOK_EOS};
    uint8_t m[4] = {0, 0, 1, 1};
    data_writer_create(&w, p, TOK_VOCAB, 0);
    data_writer_add(w, tok, m, 4, NULL, NULL, 0, NULL, NULL, 0);
    if (k == DMG_BIG_ID) tok[1] = 9999;
    data_writer_add(w, tok, m, 4, NULL, NULL, 0, NULL, NULL, 0);
    data_writer_close(w);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    if (k == DMG_NO_OFFSETS) H5Ldelete(f, "/offsets", H5P_DEFAULT);
    if (k == DMG_FLOAT_TOKENS) {
      H5Ldelete(f, "/tokens", H5P_DEFAULT);
      hsize_t n = 8;
      float z[8] = {0};
      hid_t s = H5Screate_simple(1, &n, NULL);
      hid_t d = H5Dcreate2(f, "/tokens", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
      H5Dclose(d);
      H5Sclose(s);
    }
    if (k == DMG_OFFSET_RANGE) {
      hid_t d = H5Dopen2(f, "/offsets", H5P_DEFAULT);
      int64_t off[3] = {0, 4, 40};
      H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
      H5Dclose(d);
    }
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void expect_open_error(const char *p, int vocab, ift_status code, const char *needle) {
  data_set d;
  ift_error_quiet(1);
  ift_status s = data_open(&d, p, MPI_COMM_WORLD, vocab);
  ift_error_quiet(0);
  CU_ASSERT_EQUAL(s, code);
  if (!strstr(ift_error_last(), needle))
    fprintf(stderr, "\n  message '%s' lacks '%s'", ift_error_last(), needle);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), needle));
  /* every rank reports the same cause, not only the same status */
  char first[1024];
  snprintf(first, sizeof first, "%s", ift_error_last());
  MPI_Bcast(first, sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
  CU_ASSERT_STRING_EQUAL(ift_error_last(), first);
}

static void test_bad_files(void) {
  char p[512];
  path(p, "nonexistent.h5");
  expect_open_error(p, 0, IFT_ERR_IO, "cannot be read");
  path(p, "pr.jsonl");
  expect_open_error(p, 0, IFT_ERR_FORMAT, "is not an HDF5 file");
  path(p, "d1.h5");
  make_damaged(p, DMG_NO_OFFSETS);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "dataset /offsets is missing");
  path(p, "d2.h5");
  make_damaged(p, DMG_FLOAT_TOKENS);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "/tokens is not int32");
  path(p, "d3.h5");
  make_damaged(p, DMG_OFFSET_RANGE);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "/offsets[2] = 40 is out of range");
  path(p, "d4.h5");
  make_damaged(p, DMG_BIG_ID);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "= 9999 is outside the vocabulary");
  path(p, "pr.h5");
  expect_open_error(p, 100, IFT_ERR_FORMAT, "exceeds the model's vocab_size 100");
}

/* ---- text encoding of JSONL strings */

/* prep of `text` fails with the FORMAT status and a message containing
 * every fragment (NULL-terminated list). */
static void expect_prep_error(const char *name, const char *text, size_t len, ...) {
  char in[512], out[512];
  path(in, name);
  path(out, "enc.h5");
  if (rank0()) {
    FILE *f = fopen(in, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  data_prep_stats st = {0};
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_ERR_FORMAT);
  ift_error_quiet(0);
  if (rank0()) {
    va_list ap;
    va_start(ap, len);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
      if (!strstr(ift_error_last(), frag))
        fprintf(stderr, "\n  message '%s' lacks '%s'", ift_error_last(), frag);
      CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), frag));
    }
    va_end(ap);
    CU_ASSERT_EQUAL(access(out, F_OK), -1);
  }
}
#define PREP_ERR(name, lit, ...) expect_prep_error(name, lit, sizeof lit - 1, __VA_ARGS__, (const char *)NULL)

static void test_prep_utf8_errors(void) {
  const char ok[] = "{\"prompt\":\"a\",\"response\":\"b\"}\n";
  /* line 2, the bad byte at column 25 of {"prompt":"a","response":"... */
  PREP_ERR("e1.jsonl", "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"a\",\"response\":\"x\xff\"}\n",
           "e1.jsonl:2:28:", "invalid UTF-8", "0xFF");
  PREP_ERR("e2.jsonl", "{\"prompt\":\"\xc0\xaf\",\"response\":\"b\"}\n", "e2.jsonl:1:12:", "overlong encoding");
  PREP_ERR("e3.jsonl", "{\"prompt\":\"\xe0\x80\xaf\",\"response\":\"b\"}\n", "e3.jsonl:1:12:", "overlong encoding");
  PREP_ERR("e4.jsonl", "{\"prompt\":\"\xed\xa0\x80\",\"response\":\"b\"}\n", "e4.jsonl:1:12:", "encoded surrogate");
  PREP_ERR("e5.jsonl", "{\"prompt\":\"\xf4\x90\x80\x80\",\"response\":\"b\"}\n", "e5.jsonl:1:12:", "past U+10FFFF");
  PREP_ERR("e6.jsonl", "{\"prompt\":\"ab\xe2\x82\",\"response\":\"b\"}\n", "e6.jsonl:1:14:", "truncated sequence");
  PREP_ERR("e7.jsonl", "{\"prompt\":\"\\ud800\",\"response\":\"b\"}\n", "e7.jsonl:1:12:", "lone surrogate \\uD800");
  PREP_ERR("e8.jsonl", "{\"prompt\":\"x\\uDC01y\",\"response\":\"b\"}\n", "e8.jsonl:1:13:", "lone surrogate \\uDC01");
  /* a high surrogate followed by a non-low escape is still lone */
  PREP_ERR("e9.jsonl", "{\"prompt\":\"\\ud83d\\u0041\",\"response\":\"b\"}\n", "e9.jsonl:1:12:", "lone surrogate");
  PREP_ERR("e10.jsonl", "{\"prompt\":\"a\\u0000\",\"response\":\"b\"}\n", "e10.jsonl:1:13:", "NUL (\\u0000)");
  PREP_ERR("e11.jsonl", "{\"prompt\":\"a\0\",\"response\":\"b\"}\n", "e11.jsonl:1:13:", "NUL byte");
  /* a BOM later than the start of the file is not skipped: outside a string it is garbage */
  PREP_ERR("e12.jsonl", "{\"prompt\":\"a\",\"response\":\"b\"}\n\xef\xbb\xbf{\"prompt\":\"a\",\"response\":\"b\"}\n",
           "e12.jsonl:2:1:");
  (void)ok;
  /* --skip-bad skips lines with bad text like any malformed line */
  char in[512], out[512];
  path(in, "skip.jsonl");
  path(out, "skip.h5");
  write_text(in, "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"\\udfff\",\"response\":\"b\"}\n"
                 "{\"prompt\":\"\xff\",\"response\":\"b\"}\n{\"prompt\":\"c\",\"response\":\"d\"}\n");
  data_prep_stats st = {.skip_bad = 1};
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_skipped, 2);
  CU_ASSERT_EQUAL(st.n_written, 2);
}

static long attr_long_of(const char *p, const char *name) {
  long v = -1;
  if (rank0()) {
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a >= 0) {
      H5Aread(a, H5T_NATIVE_LONG, &v);
      H5Aclose(a);
    }
    H5Fclose(f);
  }
  MPI_Bcast(&v, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  return v;
}

static void test_prep_utf8_valid_and_replaced(void) {
  char in[512], out[512];
  path(in, "u.jsonl");
  path(out, "u.h5");
  /* BOM at the start; an escaped surrogate pair (U+1F600) and raw 2-, 3- and
   * 4-byte characters are kept as their UTF-8 bytes */
  write_text(in, "\xef\xbb\xbf{\"prompt\":\"\\ud83d\\ude00\",\"response\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}\n");
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_written, 1);
  CU_ASSERT_EQUAL(st.n_replaced, 0);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  expect_row(&d, NULL, 0, "\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  data_close(&d);
  CU_ASSERT_EQUAL(attr_long_of(out, "utf8_replaced"), 0);
  /* --replace-invalid: one U+FFFD per maximal ill-formed subpart, lone
   * surrogate escape and NUL; counted over the written rows */
  write_text(in, "{\"prompt\":\"a\\ud800b\",\"response\":\"\xff\xe2\x82\"}\n"
                 "{\"prompt\":\"\\u0000\",\"response\":\"\xc0\xaf\"}\n");
  st.replace_invalid = 1;
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  CU_ASSERT_EQUAL(st.n_replaced, 6); /* D800 | FF | E2 82 | 0000 | C0 | AF */
  CU_ASSERT_EQUAL(attr_long_of(out, "utf8_replaced"), 6);
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  expect_row(&d, NULL, 0, "a\xef\xbf\xbd" "b", "\xef\xbf\xbd\xef\xbf\xbd");
  expect_row(&d, NULL, 1, "\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd");
  data_close(&d);
}

/* ---- content hash */

static void test_content_hash(void) {
  char p[512];
  path(p, "h.h5");
  /* one row, written by the writer: its content_sha256 is the SHA-256 of
   * tokens (int32 LE), offsets (int64 LE), masks -- the documented bytes */
  const int tok[5] = {TOK_BOS, 'a', TOK_ASSISTANT, 'b', TOK_EOS};
  const uint8_t m[5] = {0, 0, 0, 1, 1};
  unsigned char bytes[5 * 4 + 2 * 8 + 5] = {0};
  for (int i = 0; i < 5; i++) {
    bytes[4 * i] = (unsigned char)(tok[i] & 255);
    bytes[4 * i + 1] = (unsigned char)(tok[i] >> 8);
  }
  bytes[20 + 8] = 5; /* offsets {0, 5} */
  memcpy(bytes + 36, m, 5);
  char want[65], got[65];
  CU_ASSERT_EQUAL(core_sha256_hex(bytes, sizeof bytes, want), IFT_OK);
  if (rank0()) {
    data_writer *w;
    data_writer_create(&w, p, TOK_VOCAB, 0);
    data_writer_add(w, tok, m, 5, NULL, NULL, 0, NULL, NULL, 0);
    CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
    CU_ASSERT_EQUAL(data_verify_content(p, got), IFT_OK);
    CU_ASSERT_STRING_EQUAL(got, want);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, p, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_STRING_EQUAL(d.content_sha256, want);
  CU_ASSERT_EQUAL(d.ntrainable, 2);
  data_close(&d);
  /* a prepared preference set verifies (pair groups hashed too) ... */
  char in[512], out[512];
  path(in, "hp.jsonl");
  path(out, "hp.h5");
  write_text(in, "{\"prompt\":\"p\",\"chosen\":\"good\",\"rejected\":\"bad\"}\n");
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  if (rank0()) {
    CU_ASSERT_EQUAL(data_verify_content(out, got), IFT_OK);
    /* ... and a changed token of /rejected (still a valid id) does not */
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/rejected/tokens", H5P_DEFAULT), fs = H5Dget_space(ds);
    hsize_t at = 3, one = 1;
    int x = 'B';
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    H5Dwrite(ds, H5T_NATIVE_INT, ms, fs, H5P_DEFAULT, &x);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(f);
    ift_error_quiet(1);
    CU_ASSERT_EQUAL(data_verify_content(out, got), IFT_ERR_FORMAT);
    ift_error_quiet(0);
    CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "but content_sha256 says"));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- value checks at open */

typedef enum { BAD_NONE, BAD_MASK7, BAD_ZERO, BAD_ID, BAD_CHOSEN_MASK } bad_kind;
/* n rows <bos> a b <eos>, mask 0 0 1 1; row bad_row damaged as `kind`. */
static void write_rows(const char *p, int n, int bad_row, bad_kind kind) {
  if (rank0()) {
    data_writer *w;
    data_writer_create(&w, p, TOK_VOCAB, kind == BAD_CHOSEN_MASK);
    for (int i = 0; i < n; i++) {
      int tok[4] = {TOK_BOS, 'a', 'b', TOK_EOS};
      uint8_t m[4] = {0, 0, 1, 1}, cm[4] = {0, 0, 1, 1};
      if (kind == BAD_ZERO) m[2] = m[3] = 0;
      if (i == bad_row && kind == BAD_MASK7) m[3] = 7;
      if (i == bad_row && kind == BAD_ID) tok[1] = -5;
      if (i == bad_row && kind == BAD_CHOSEN_MASK) cm[2] = 2;
      data_writer_add(w, tok, m, 4, tok, cm, 4, tok, m, 4);
    }
    data_writer_close(w);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_bad_values(void) {
  char p[512];
  path(p, "v1.h5");
  write_rows(p, 5, 1, BAD_MASK7);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "row 1: /loss_mask[7] = 7; loss mask values must be 0 or 1");
  path(p, "v2.h5");
  write_rows(p, 5, -1, BAD_ZERO);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "nothing to train on: none of the 5 rows");
  path(p, "v3.h5");
  write_rows(p, 3, 2, BAD_CHOSEN_MASK);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "row 2: /chosen/loss_mask[10] = 2");
  path(p, "v4.h5");
  write_rows(p, 3, -1, BAD_NONE);
  if (rank0()) { /* offsets {0, 8, 4, 12}: row 1 ends before it starts */
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/offsets", H5P_DEFAULT);
    int64_t off[4] = {0, 8, 4, 12};
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
    H5Dclose(d);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "/offsets[2] = 4 is less than /offsets[1] = 8: offsets must not decrease");
  /* an empty set (no rows) has nothing to train on either */
  path(p, "v5.h5");
  write_rows(p, 0, -1, BAD_NONE);
  expect_open_error(p, 0, IFT_ERR_FORMAT, "nothing to train on");
}

/* The rows are split over the ranks for the value checks: a bad row that only
 * the last rank reads (or only the first) still fails every rank, with the
 * same status and message, and nobody waits in a collective. */
static void test_bad_rows_of_one_rank(void) {
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  char p[512], needle[128];
  const int n = 4 * P;
  path(p, "r1.h5");
  write_rows(p, n, n - 1, BAD_MASK7); /* in the last rank's slice */
  snprintf(needle, sizeof needle, "row %d: /loss_mask[%d] = 7", n - 1, 4 * (n - 1) + 3);
  expect_open_error(p, 0, IFT_ERR_FORMAT, needle);
  path(p, "r2.h5");
  write_rows(p, n, 0, BAD_ID); /* in rank 0's slice */
  expect_open_error(p, 0, IFT_ERR_FORMAT, "/tokens[1] = -5 is outside the vocabulary [0, 262) (row 0)");
  /* after the failures the same communicator still works: a good open */
  path(p, "r3.h5");
  write_rows(p, n, -1, BAD_NONE);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, p, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_EQUAL(d.ntrainable, 2L * n);
  data_close(&d);
}

/* ---- prep never destroys its input or an old output */

static void read_file(const char *p, char *buf, size_t cap, size_t *n) {
  FILE *f = fopen(p, "rb");
  *n = f ? fread(buf, 1, cap, f) : 0;
  if (f) fclose(f);
}

static void test_prep_refuses_overwrite(void) {
  char in[512], alias[600], other[512], out[512], tmp[600];
  path(in, "src.jsonl");
  path(other, "other.jsonl");
  path(out, "keep.h5");
  snprintf(alias, sizeof alias, "%s/./src.jsonl", dir);
  const char text[] = "{\"prompt\":\"a\",\"response\":\"b\"}\n";
  write_text(in, text);
  write_text(other, text);
  data_prep_stats st = {0};
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(prep(in, in, &st), IFT_ERR_ARG);
  if (rank0()) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "is the input"));
  CU_ASSERT_EQUAL(prep(in, alias, &st), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(prep(alias, in, &st), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(prep(in, other, &st), IFT_ERR_ARG); /* exists, not a data set */
  if (rank0()) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "is not an iftrain data set"));
  ift_error_quiet(0);
  char buf[256];
  size_t nb = 0;
  if (rank0()) {
    read_file(in, buf, sizeof buf, &nb);
    CU_ASSERT(nb == sizeof text - 1 && !memcmp(buf, text, nb));
    read_file(other, buf, sizeof buf, &nb);
    CU_ASSERT(nb == sizeof text - 1 && !memcmp(buf, text, nb));
  }
  /* an old data set is replaced by a good prep, and kept by a failed one */
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_OK);
  write_text(other, "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"c\",\"response\":\"d\"}\n{\"x\":1}\n");
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(prep(other, out, &st), IFT_ERR_FORMAT);
  /* a prep left with no answer token is refused too (nothing to train on) */
  st.max_len = 2;
  CU_ASSERT_EQUAL(prep(in, out, &st), IFT_ERR_FORMAT);
  if (rank0()) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "nothing to train on"));
  ift_error_quiet(0);
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  if (rank0()) CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_EQUAL(d.n, 1);
  data_close(&d);
}

static long parse_answer(const char *resp) {
  const char *eq = strrchr(resp, '=');
  return eq ? atol(eq + 1) : -1;
}

static void test_generator(void) {
  char a[512], b[512];
  path(a, "g1.jsonl");
  path(b, "g2.jsonl");
  if (rank0()) {
    CU_ASSERT_EQUAL(data_generate("arith", a, 50, 9), IFT_OK);
    CU_ASSERT_EQUAL(data_generate("arith", b, 100, 9), IFT_OK);
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    char la[512], lb[512];
    int same = 1, n = 0, correct = 0, distinct = 0;
    while (fgets(la, sizeof la, fa)) {
      CU_ASSERT_PTR_NOT_NULL_FATAL(fgets(lb, sizeof lb, fb));
      same &= !strcmp(la, lb); /* example i independent of n */
      n++;
      long x, y;
      char op;
      CU_ASSERT_EQUAL(sscanf(la, "{\"prompt\":\"%ld%c%ld=", &x, &op, &y), 3);
      char *ch = strstr(la, "\"chosen\":\""), *rj = strstr(la, "\"rejected\":\"");
      char good[256], bad[256];
      sscanf(ch + 10, "%255[^\"]", good);
      sscanf(rj + 12, "%255[^\"]", bad);
      correct += parse_answer(good) == (op == '+' ? x + y : x - y);
      distinct += strcmp(good, bad) != 0 && parse_answer(good) != parse_answer(bad);
    }
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(n, 50);
    CU_ASSERT_EQUAL(correct, 50);
    CU_ASSERT_EQUAL(distinct, 50);
    fclose(fa);
    fclose(fb);
    CU_ASSERT_EQUAL(data_generate("arith", b, 50, 9), IFT_OK);
    FILE *f1 = fopen(a, "rb"), *f2 = fopen(b, "rb");
    char x1[1 << 14], x2[1 << 14];
    size_t n1 = fread(x1, 1, sizeof x1, f1), n2 = fread(x2, 1, sizeof x2, f2);
    CU_ASSERT(n1 == n2 && !memcmp(x1, x2, n1)); /* same seed, same bytes */
    fclose(f1);
    fclose(f2);
    ift_error_quiet(1);
    CU_ASSERT_EQUAL(data_generate("nonsense", a, 5, 1), IFT_ERR_ARG);
    ift_error_quiet(0);
  }
}

/* ---- the collective writer (data_writer_create_comm) */

enum { ROW_MAX = 300 };
/* Row i of group grp (0 main, 1 chosen, 2 rejected) of a random set: about
 * one row in six empty, ids over the whole vocabulary, random masks. */
static int gen_row(uint64_t seed, long i, int grp, int *tok, uint8_t *m) {
  const double u = rng_uniform(seed, (uint64_t)grp, (uint64_t)i);
  const int len = u < 1.0 / 6 ? 0 : 1 + (int)(rng_uniform(seed, 3 + (uint64_t)grp, (uint64_t)i) * (ROW_MAX - 1));
  for (int j = 0; j < len; j++) {
    const uint64_t at = (uint64_t)i * ROW_MAX + (uint64_t)j;
    tok[j] = (int)(rng_uniform(seed, 6 + (uint64_t)grp, at) * TOK_VOCAB);
    m[j] = rng_uniform(seed, 9 + (uint64_t)grp, at) < 0.5;
  }
  return len;
}

/* Add rows [a, b) of the random set to w. */
static ift_status add_rows(data_writer *w, uint64_t seed, long a, long b, int pairs) {
  int t[3][ROW_MAX], len[3];
  uint8_t m[3][ROW_MAX];
  for (long i = a; i < b; i++) {
    for (int g = 0; g < (pairs ? 3 : 1); g++) len[g] = gen_row(seed, i, g, t[g], m[g]);
    ift_status s = data_writer_add(w, t[0], m[0], len[0], t[1], m[1], pairs ? len[1] : 0, t[2], m[2],
                                   pairs ? len[2] : 0);
    if (s != IFT_OK) return s;
  }
  return IFT_OK;
}

/* Each rank reads only its own rows of one shared file (row i on rank
 * i % P, odd ranks backwards) and checks each against what was written;
 * together the ranks read every row exactly once. */
static void test_disjoint_reads(void) {
  enum { NROWS = 37 };
  const uint64_t seed = 77;
  char p[512];
  path(p, "disjoint.h5");
  int r, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  if (rank0()) {
    data_writer *w;
    CU_ASSERT_EQUAL_FATAL(data_writer_create(&w, p, TOK_VOCAB, 0), IFT_OK);
    CU_ASSERT_EQUAL(add_rows(w, seed, 0, NROWS, 0), IFT_OK);
    CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, p, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_EQUAL(d.n, NROWS);
  int seen[NROWS] = {0}, count[NROWS] = {0}, mine = 0, wrong = 0;
  int tok[ROW_MAX], want[ROW_MAX], len;
  uint8_t m[ROW_MAX], wm[ROW_MAX];
  for (long k = 0; k < NROWS; k++) {
    const long i = r % 2 ? NROWS - 1 - k : k;
    if (i % P != r) continue;
    const int wl = gen_row(seed, i, 0, want, wm);
    CU_ASSERT_EQUAL(data_read_row(&d, NULL, i, tok, m, ROW_MAX, &len), IFT_OK);
    CU_ASSERT_EQUAL(data_len(&d, i), wl);
    if (len != wl || memcmp(tok, want, sizeof(int) * (size_t)wl) || memcmp(m, wm, (size_t)wl)) {
      wrong++;
      fprintf(stderr, "\n  rank %d: row %ld differs from the one written", r, i);
    }
    seen[i] = 1;
    mine++;
  }
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT(mine >= NROWS / P && mine <= NROWS / P + 1); /* its share, no more */
  MPI_Allreduce(seen, count, NROWS, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  for (int i = 0; i < NROWS; i++) CU_ASSERT_EQUAL(count[i], 1);
  data_close(&d);
}

static void set_user_attrs(data_writer *w) {
  data_writer_attr_str(w, "source", "collective-test.jsonl");
  data_writer_attr_int(w, "seed", 1234567890123L);
}

/* The random set of sum(counts) rows: rank r adds counts[r] of them in
 * order to a collective writer of `pc`; rank 0 alone writes them all with
 * the serial writer to `ps`.  Returns the collective close's status. */
static ift_status write_both(const char *ps, const char *pc, uint64_t seed, int pairs, const long *counts) {
  int r, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  long base = 0, total = 0;
  for (int k = 0; k < P; k++) {
    if (k < r) base += counts[k];
    total += counts[k];
  }
  if (rank0() && ps) {
    data_writer *w;
    CU_ASSERT_EQUAL_FATAL(data_writer_create(&w, ps, TOK_VOCAB, pairs), IFT_OK);
    CU_ASSERT_EQUAL(add_rows(w, seed, 0, total, pairs), IFT_OK);
    set_user_attrs(w);
    CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  }
  data_writer *w;
  CU_ASSERT_EQUAL_FATAL(data_writer_create_comm(&w, pc, TOK_VOCAB, pairs, MPI_COMM_WORLD), IFT_OK);
  CU_ASSERT_EQUAL(add_rows(w, seed, base, base + counts[r], pairs), IFT_OK);
  set_user_attrs(w);
  ift_status s = data_writer_close(w);
  MPI_Barrier(MPI_COMM_WORLD);
  return s;
}

static void read_attr_str(hid_t f, const char *name, char *out, size_t n) {
  out[0] = 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  if (a < 0) return;
  hid_t t = H5Aget_type(a);
  char buf[1024] = "";
  if (H5Tget_size(t) < sizeof buf) H5Aread(a, t, buf);
  snprintf(out, n, "%s", buf);
  H5Tclose(t);
  H5Aclose(a);
}

/* Rank 0: the two files have the same root attributes, and every dataset
 * the same type, size and creation properties (chunk, filters). */
static void same_layout(const char *a, const char *b, int pairs) {
  hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
  CU_ASSERT_FATAL(fa >= 0 && fb >= 0);
  static const char *const names[9] = {"/tokens", "/offsets", "/loss_mask",
                                       "/chosen/tokens", "/chosen/offsets", "/chosen/loss_mask",
                                       "/rejected/tokens", "/rejected/offsets", "/rejected/loss_mask"};
  for (int k = 0; k < 9; k++) {
    const int want = k < 3 || pairs;
    CU_ASSERT_EQUAL(H5Lexists(fa, "/chosen", H5P_DEFAULT) > 0, pairs);
    CU_ASSERT_EQUAL(H5Lexists(fb, "/chosen", H5P_DEFAULT) > 0, pairs);
    if (!want) continue;
    hid_t da = H5Dopen2(fa, names[k], H5P_DEFAULT), db = H5Dopen2(fb, names[k], H5P_DEFAULT);
    CU_ASSERT_FATAL(da >= 0 && db >= 0);
    hid_t ta = H5Dget_type(da), tb = H5Dget_type(db);
    CU_ASSERT(H5Tequal(ta, tb) > 0);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    hsize_t na = 0, nb = 0;
    H5Sget_simple_extent_dims(sa, &na, NULL);
    H5Sget_simple_extent_dims(sb, &nb, NULL);
    CU_ASSERT_EQUAL(na, nb);
    hid_t pa = H5Dget_create_plist(da), pb = H5Dget_create_plist(db);
    CU_ASSERT_EQUAL(H5Pget_layout(pa), H5Pget_layout(pb));
    CU_ASSERT_EQUAL(H5Pget_nfilters(pa), H5Pget_nfilters(pb));
    if (H5Pget_layout(pa) == H5D_CHUNKED && H5Pget_layout(pb) == H5D_CHUNKED) {
      hsize_t ca = 0, cb = 0;
      H5Pget_chunk(pa, 1, &ca);
      H5Pget_chunk(pb, 1, &cb);
      CU_ASSERT_EQUAL(ca, cb);
    }
    H5Pclose(pa);
    H5Pclose(pb);
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Dclose(da);
    H5Dclose(db);
  }
  static const char *const attrs[5] = {"tokenizer", "content_sha256", "source", "format_version", "vocab_size"};
  for (int k = 0; k < 5; k++) {
    char va[128], vb[128];
    if (k < 3) {
      read_attr_str(fa, attrs[k], va, sizeof va);
      read_attr_str(fb, attrs[k], vb, sizeof vb);
      CU_ASSERT(va[0] != 0);
      CU_ASSERT_STRING_EQUAL(va, vb);
    }
  }
  long sa = 0, sb = 0;
  hid_t aa = H5Aopen(fa, "seed", H5P_DEFAULT), ab = H5Aopen(fb, "seed", H5P_DEFAULT);
  CU_ASSERT_FATAL(aa >= 0 && ab >= 0);
  H5Aread(aa, H5T_NATIVE_LONG, &sa);
  H5Aread(ab, H5T_NATIVE_LONG, &sb);
  CU_ASSERT_EQUAL(sa, 1234567890123L);
  CU_ASSERT_EQUAL(sb, 1234567890123L);
  H5Aclose(aa);
  H5Aclose(ab);
  H5Fclose(fa);
  H5Fclose(fb);
}

/* The collective file pc holds exactly the random set (compared with the
 * generator, not with the other file), verifies, opens, and equals the
 * serial file ps: same content_sha256, offsets, layout and attributes. */
static void expect_same(const char *ps, const char *pc, uint64_t seed, int pairs, long total) {
  char hs[65] = "", hc[65] = "";
  if (rank0()) {
    CU_ASSERT_EQUAL(data_verify_content(ps, hs), IFT_OK);
    CU_ASSERT_EQUAL(data_verify_content(pc, hc), IFT_OK);
    CU_ASSERT_EQUAL(strlen(hc), 64);
    CU_ASSERT_STRING_EQUAL(hs, hc);
    same_layout(ps, pc, pairs);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  data_set s, c;
  CU_ASSERT_EQUAL_FATAL(data_open(&s, ps, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(data_open(&c, pc, MPI_COMM_WORLD, 0), IFT_OK);
  CU_ASSERT_STRING_EQUAL(s.content_sha256, c.content_sha256);
  CU_ASSERT_EQUAL(c.n, total);
  CU_ASSERT_EQUAL(c.n, s.n);
  CU_ASSERT_EQUAL(c.ntokens, s.ntokens);
  CU_ASSERT_EQUAL(c.ntrainable, s.ntrainable);
  CU_ASSERT_EQUAL(c.has_pairs, pairs);
  CU_ASSERT_EQUAL(c.vocab_size, TOK_VOCAB);
  CU_ASSERT(c.n == s.n && !memcmp(c.offsets, s.offsets, sizeof(int64_t) * (size_t)(c.n + 1)));
  if (pairs && c.has_pairs && s.has_pairs && c.n == s.n) {
    CU_ASSERT(!memcmp(c.ch_offsets, s.ch_offsets, sizeof(int64_t) * (size_t)(c.n + 1)));
    CU_ASSERT(!memcmp(c.rj_offsets, s.rj_offsets, sizeof(int64_t) * (size_t)(c.n + 1)));
  }
  static const char *const groups[3] = {NULL, "chosen", "rejected"};
  long bad = 0, empty = 0;
  for (long i = 0; i < c.n; i++)
    for (int g = 0; g < (pairs ? 3 : 1); g++) {
      int want[ROW_MAX], got[ROW_MAX], len = -1;
      uint8_t wm[ROW_MAX], gm[ROW_MAX];
      const int n = gen_row(seed, i, g, want, wm);
      empty += n == 0;
      if (data_read_row(&c, groups[g], i, got, gm, ROW_MAX, &len) != IFT_OK || len != n ||
          memcmp(want, got, sizeof(int) * (size_t)n) || memcmp(wm, gm, (size_t)n))
        bad++;
    }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(c.n < 50 || empty > 0); /* a set of many rows has empty ones */
  data_close(&s);
  data_close(&c);
}

static void gone(const char *p) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  if (rank0()) {
    CU_ASSERT_EQUAL(access(p, F_OK), -1);
    CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
  }
}

/* Rows spread unevenly over the ranks, several chunks of 64 Ki tokens (so
 * chunks are shared by ranks), the last rank (without pairs) or rank 0
 * (with pairs) holding no row at all. */
static void test_comm_writer_equals_serial(void) {
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  long counts[16] = {0}, total = 0;
  for (int pairs = 0; pairs < 2; pairs++) {
    for (int k = 0; k < P; k++) counts[k] = 150 + 211 * k;
    counts[pairs ? 0 : P - 1] = 0;
    total = 0;
    for (int k = 0; k < P; k++) total += counts[k];
    char ps[512], pc[512];
    path(ps, pairs ? "cw_s_pairs.h5" : "cw_s.h5");
    path(pc, pairs ? "cw_c_pairs.h5" : "cw_c.h5");
    CU_ASSERT_EQUAL(write_both(ps, pc, 11 + (uint64_t)pairs, pairs, counts), IFT_OK);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", pc);
    if (rank0()) CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
    expect_same(ps, pc, 11 + (uint64_t)pairs, pairs, total);
  }
}

/* A few rows per rank written in rounds of 7 elements (many collective
 * H5Dwrite calls per dataset, ranks running out of rounds at different
 * times); a set with one row on one rank only; a set with no rows at all
 * (the file is not trainable, but it is written and hashes alike). */
static void test_comm_writer_rounds_and_edges(void) {
  int P, r;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  long counts[16] = {0};
  char ps[512], pc[512];
  for (int k = 0; k < P; k++) counts[k] = 1 + 3 * k;
  path(ps, "cr_s.h5");
  path(pc, "cr_c.h5");
  setenv("IFT_DATA_WRITE_ROUND", "7", 1);
  ift_status s = write_both(ps, pc, 21, 1, counts);
  unsetenv("IFT_DATA_WRITE_ROUND");
  CU_ASSERT_EQUAL(s, IFT_OK);
  long total = 0;
  for (int k = 0; k < P; k++) total += counts[k];
  /* seed 21's rows must have a trainable token for data_open */
  expect_same(ps, pc, 21, 1, total);
  /* one row, on the last rank; seed 5's row 0 is long and has a 1 */
  memset(counts, 0, sizeof counts);
  counts[P - 1] = 1;
  path(ps, "c1_s.h5");
  path(pc, "c1_c.h5");
  CU_ASSERT_EQUAL(write_both(ps, pc, 5, 0, counts), IFT_OK);
  expect_same(ps, pc, 5, 0, 1);
  /* nothing anywhere */
  memset(counts, 0, sizeof counts);
  path(ps, "c0_s.h5");
  path(pc, "c0_c.h5");
  CU_ASSERT_EQUAL(write_both(ps, pc, 5, 1, counts), IFT_OK);
  if (rank0()) {
    char hs[65], hc[65];
    CU_ASSERT_EQUAL(data_verify_content(ps, hs), IFT_OK);
    CU_ASSERT_EQUAL(data_verify_content(pc, hc), IFT_OK);
    CU_ASSERT_STRING_EQUAL(hs, hc);
    same_layout(ps, pc, 1);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* MPI_COMM_SELF: every rank writes its own file alone with the collective
 * writer, and it equals the serial writer's, byte for byte of content. */
static void test_comm_writer_self(void) {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  char ps[512], pc[512], name[64];
  snprintf(name, sizeof name, "self_s_%d.h5", r);
  path(ps, name);
  snprintf(name, sizeof name, "self_c_%d.h5", r);
  path(pc, name);
  const uint64_t seed = 31 + (uint64_t)r;
  data_writer *w;
  CU_ASSERT_EQUAL_FATAL(data_writer_create(&w, ps, TOK_VOCAB, 1), IFT_OK);
  CU_ASSERT_EQUAL(add_rows(w, seed, 0, 40, 1), IFT_OK);
  set_user_attrs(w);
  CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(data_writer_create_comm(&w, pc, TOK_VOCAB, 1, MPI_COMM_SELF), IFT_OK);
  CU_ASSERT_EQUAL(add_rows(w, seed, 0, 40, 1), IFT_OK);
  set_user_attrs(w);
  CU_ASSERT_EQUAL(data_writer_close(w), IFT_OK);
  char hs[65], hc[65];
  CU_ASSERT_EQUAL(data_verify_content(ps, hs), IFT_OK);
  CU_ASSERT_EQUAL(data_verify_content(pc, hc), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hs, hc);
  same_layout(ps, pc, 1);
  data_set s, c;
  CU_ASSERT_EQUAL_FATAL(data_open(&s, ps, MPI_COMM_SELF, 0), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(data_open(&c, pc, MPI_COMM_SELF, 0), IFT_OK);
  CU_ASSERT_EQUAL(c.n, 40);
  CU_ASSERT(!memcmp(c.offsets, s.offsets, sizeof(int64_t) * 41));
  CU_ASSERT(!memcmp(c.rj_offsets, s.rj_offsets, sizeof(int64_t) * 41));
  data_close(&s);
  data_close(&c);
  MPI_Barrier(MPI_COMM_WORLD);
}

/* Every rank returns the same error and message; nothing is written (no
 * PATH, no PATH.tmp), an older PATH is kept, and nobody hangs. */
static void expect_all_fail(ift_status s, ift_status want, const char *needle) {
  CU_ASSERT_EQUAL(s, want);
  if (!strstr(ift_error_last(), needle)) fprintf(stderr, "\n  message '%s' lacks '%s'", ift_error_last(), needle);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), needle));
  char first[1024];
  snprintf(first, sizeof first, "%s", ift_error_last());
  MPI_Bcast(first, sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
  CU_ASSERT_STRING_EQUAL(ift_error_last(), first);
}

static void test_comm_writer_failures(void) {
  int P, r;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  long counts[16];
  for (int k = 0; k < P; k++) counts[k] = 20 + k;
  char p[512], tmp[600];
  /* a directory that does not exist */
  path(p, "no/such/dir/x.h5");
  ift_error_quiet(1);
  expect_all_fail(write_both(NULL, p, 3, 1, counts), IFT_ERR_IO, "cannot create");
  ift_error_quiet(0);
  gone(p);
  /* one rank's write fails (the last rank's, injected after its part of a
   * collective H5Dwrite): an older file at PATH stays as it was */
  path(p, "fail.h5");
  CU_ASSERT_EQUAL(write_both(NULL, p, 3, 0, counts), IFT_OK);
  char before[65] = "", after[65] = "";
  if (rank0()) CU_ASSERT_EQUAL(data_verify_content(p, before), IFT_OK);
  char fault[64];
  snprintf(fault, sizeof fault, "data_write@%d", P - 1);
  setenv("IFT_FAULT", fault, 1);
  ift_error_quiet(1);
  expect_all_fail(write_both(NULL, p, 4, 1, counts), IFT_ERR_WRITE, "fail.h5.tmp failed");
  ift_error_quiet(0);
  unsetenv("IFT_FAULT");
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  if (rank0()) {
    CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
    CU_ASSERT_EQUAL(data_verify_content(p, after), IFT_OK);
    CU_ASSERT_STRING_EQUAL(before, after);
  }
  /* ranks that disagree on the attributes (they would make different
   * collective HDF5 calls): refused on every rank before any file */
  path(p, "mismatch.h5");
  data_writer *w;
  CU_ASSERT_EQUAL_FATAL(data_writer_create_comm(&w, p, TOK_VOCAB, 0, MPI_COMM_WORLD), IFT_OK);
  CU_ASSERT_EQUAL(add_rows(w, 3, r, r + 1, 0), IFT_OK);
  if (r == P - 1) data_writer_attr_int(w, "extra", 1);
  ift_error_quiet(1);
  expect_all_fail(data_writer_close(w), IFT_ERR_ARG, "root attributes than rank 0's");
  ift_error_quiet(0);
  MPI_Barrier(MPI_COMM_WORLD);
  gone(p);
  /* a discarded collective writer writes nothing, and the communicator
   * still works afterwards (a good write) */
  CU_ASSERT_EQUAL_FATAL(data_writer_create_comm(&w, p, TOK_VOCAB, 0, MPI_COMM_WORLD), IFT_OK);
  data_writer_discard(w);
  MPI_Barrier(MPI_COMM_WORLD);
  gone(p);
  CU_ASSERT_EQUAL(write_both(NULL, p, 3, 0, counts), IFT_OK);
  if (rank0()) CU_ASSERT_EQUAL(data_verify_content(p, after), IFT_OK);
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(data_writer_create_comm(&w, p, TOK_VOCAB, 0, MPI_COMM_NULL), IFT_ERR_ARG);
  ift_error_quiet(0);
  CU_ASSERT_PTR_NULL(w);
}

static CU_TestInfo tests[] = {{"tokenizer round trip", test_tokenizer},
                              {"prep prompt/response round trip", test_prep_prompt_response},
                              {"prep preference pairs round trip", test_prep_pairs},
                              {"prep chat messages and template", test_prep_messages},
                              {"prep malformed lines, skip-bad, truncation", test_prep_malformed},
                              {"bad data set files name their cause", test_bad_files},
                              {"prep: invalid UTF-8, lone surrogates, NUL name line:column", test_prep_utf8_errors},
                              {"prep: BOM, surrogate pairs, --replace-invalid count", test_prep_utf8_valid_and_replaced},
                              {"content_sha256 written, documented bytes, verified", test_content_hash},
                              {"open rejects bad masks, no trainable token, decreasing offsets", test_bad_values},
                              {"bad rows of one rank fail every rank alike", test_bad_rows_of_one_rank},
                              {"prep refuses in-place and foreign outputs, keeps old output", test_prep_refuses_overwrite},
                              {"arith generator deterministic and correct", test_generator},
                              {"ranks read disjoint rows of one file", test_disjoint_reads},
                              {"collective writer: same file as the serial writer", test_comm_writer_equals_serial},
                              {"collective writer: many write rounds, one row, no rows", test_comm_writer_rounds_and_edges},
                              {"collective writer on MPI_COMM_SELF equals the serial writer", test_comm_writer_self},
                              {"collective writer: failures on every rank, nothing left", test_comm_writer_failures},
                              CU_TEST_INFO_NULL};

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != IFT_OK) return 2;
  int pid = (int)getpid();
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  snprintf(dir, sizeof dir, "/tmp/iftrain-test-data-%d", pid);
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  if (r == 0) mkdir(dir, 0755);
  MPI_Barrier(MPI_COMM_WORLD);
  int rc = ift_mpi_test_run(argc, argv, "data", tests);
  if (r == 0) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
  }
  return rc;
}
