/* data: tokenizer, prep round trips for the three line formats, every
 * malformed-input message, generator determinism and correctness, and
 * ranks reading disjoint rows of a shared file. */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
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
  /* truncation */
  st.skip_bad = 0;
  st.max_len = 4;
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

/* Each rank reads a disjoint subset of the rows of one shared file. */
static void test_disjoint_reads(void) {
  char in[512], out[512];
  path(in, "many.jsonl");
  path(out, "many.h5");
  if (rank0()) data_generate("arith", in, 37, 4);
  MPI_Barrier(MPI_COMM_WORLD);
  data_prep_stats st = {0};
  CU_ASSERT_EQUAL_FATAL(prep(in, out, &st), IFT_OK);
  data_set d;
  CU_ASSERT_EQUAL_FATAL(data_open(&d, out, MPI_COMM_WORLD, 0), IFT_OK);
  int r, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  /* checksum of (row, tokens, mask) over my rows, summed over ranks */
  unsigned long long mine = 0, all = 0, ref = 0;
  int tok[256], len;
  uint8_t m[256];
  for (long i = 0; i < d.n; i++) {
    data_read_row(&d, NULL, i, tok, m, 256, &len);
    unsigned long long h = core_fnv1a(core_fnv1a(CORE_FNV_INIT + (unsigned long long)i, tok, sizeof(int) * (size_t)len), m, (size_t)len);
    ref += h;
    if (i % P == r) mine += h;
  }
  MPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  CU_ASSERT_EQUAL(all, ref);
  CU_ASSERT_EQUAL(d.n, 37);
  data_close(&d);
}

static CU_TestInfo tests[] = {{"tokenizer round trip", test_tokenizer},
                              {"prep prompt/response round trip", test_prep_prompt_response},
                              {"prep preference pairs round trip", test_prep_pairs},
                              {"prep chat messages and template", test_prep_messages},
                              {"prep malformed lines, skip-bad, truncation", test_prep_malformed},
                              {"bad data set files name their cause", test_bad_files},
                              {"arith generator deterministic and correct", test_generator},
                              {"ranks read disjoint rows of one file", test_disjoint_reads},
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
