/* hf: safetensors reader/writer and config.json.
 *
 * Round trips through the writer, the writer's bytes against the reference
 * crate's own serialisation vectors, fp16/bf16 conversions against
 * independent arithmetic, a separate clear error for every malformed header,
 * and config.json: accepted files, every refused key, defaults, the
 * transformers-style output and the RoPE inverse frequencies. */
#include "config.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tmpdir.h"
#include "iftrain/core.h"
#include "iftrain/hf.h"

static const char *tmp_path(const char *name) { return ift_tmp_path("/tmp/ift_test_hf_XXXXXX", name); }

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  CU_ASSERT_FATAL(fp != NULL);
  CU_ASSERT(fwrite(p, 1, n, fp) == n);
  fclose(fp);
}

/* A safetensors file made by hand: length HLEN (the header's own length when
 * HLEN is UINT64_MAX), the header text, then NDATA bytes of DATA. */
static void raw_st(const char *path, const char *hdr, uint64_t hlen, const void *data,
                   size_t ndata) {
  size_t h = strlen(hdr);
  if (hlen == UINT64_MAX) hlen = h;
  uint8_t *buf = calloc(8 + h + ndata + 1, 1);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen >> (8 * i));
  memcpy(buf + 8, hdr, h);
  if (ndata) memcpy(buf + 8 + h, data, ndata);
  write_bytes(path, buf, 8 + h + ndata);
  free(buf);
}

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  *n = (size_t)ftell(fp);
  rewind(fp);
  uint8_t *b = malloc(*n + 1);
  if (fread(b, 1, *n, fp) != *n) *n = 0;
  fclose(fp);
  return b;
}

static int has(const char *needle) {
  int ok = strstr(ift_error_last(), needle) != NULL;
  if (!ok) fprintf(stderr, "\n  error \"%s\" lacks \"%s\"\n", ift_error_last(), needle);
  return ok;
}

static uint32_t bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}
static float flt(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

/* ---------------------------------------------------------------- conversions */

static void test_bf16_rounding(void) {
  static const struct {
    uint32_t in;
    uint16_t out;
  } v[] = {
      {0x3f800000u, 0x3f80}, /* 1.0 exact */
      {0x3f808000u, 0x3f80}, /* tie, kept bit even: down */
      {0x3f818000u, 0x3f82}, /* tie, kept bit odd: up to even */
      {0x3f808001u, 0x3f81}, /* above the tie: up */
      {0x3f807fffu, 0x3f80}, /* below the tie: down */
      {0xbf818000u, 0xbf82}, /* negative tie to even */
      {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
      {0x7f7f7fffu, 0x7f7f}, /* just below: stays finite */
      {0x7f800000u, 0x7f80}, /* inf */
      {0xff800000u, 0xff80}, /* -inf */
      {0x80000000u, 0x8000}, /* -0 */
      {0x00008000u, 0x0000}, /* subnormal tie to even (0) */
      {0x00018000u, 0x0002}, /* subnormal tie to even (2) */
      {0x7fc00000u, 0x7fc0}, /* quiet NaN */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint16_t h = hf_f32_to_bf16(flt(v[i].in));
    if (h != v[i].out) fprintf(stderr, "\n  bf16(0x%08x) = 0x%04x, want 0x%04x\n", v[i].in, h, v[i].out);
    CU_ASSERT_EQUAL(h, v[i].out);
  }
  /* NaNs whose payload lies only in the dropped half stay NaN (not inf) */
  CU_ASSERT(isnan(hf_bf16_to_f32(hf_f32_to_bf16(flt(0x7f800001u)))));
  CU_ASSERT(isnan(hf_bf16_to_f32(hf_f32_to_bf16(flt(0xff800001u)))));
  CU_ASSERT(signbit(hf_bf16_to_f32(hf_f32_to_bf16(flt(0xff800001u)))));
  CU_ASSERT_EQUAL(bits(hf_bf16_to_f32(0x3f82)), 0x3f820000u);

  /* Against independent arithmetic: the nearer of the two bf16 neighbours
   * in double, the even one on a tie, over random finite floats. */
  int bad = 0;
  for (uint64_t i = 0; i < 200000; i++) {
    uint32_t u = philox4x32(7, i, 3).v[0];
    if ((u & 0x7f800000u) == 0x7f800000u) continue;
    if ((u & 0x7fffffffu) >= 0x7f7f8000u) continue; /* rounds to inf: checked above */
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double x = flt(u), dl = fabs(x - flt(lo)), dh = fabs(flt(hi) - x);
    uint32_t want = dl < dh ? lo : dh < dl ? hi : ((lo >> 16) & 1) ? hi : lo;
    bad += ((uint32_t)hf_f32_to_bf16(flt(u)) << 16) != want;
  }
  CU_ASSERT_EQUAL(bad, 0);
}

static void test_f16_values(void) {
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x3c00), 1.0f);
  CU_ASSERT_EQUAL(hf_f16_to_f32(0xc000), -2.0f);
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x3555), 0.333251953125f);
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x7bff), 65504.0f);
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x0001), ldexpf(1, -24)); /* smallest subnormal */
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x03ff), ldexpf(1023, -24)); /* largest subnormal */
  CU_ASSERT_EQUAL(hf_f16_to_f32(0x0400), ldexpf(1, -14));  /* smallest normal */
  CU_ASSERT(isinf(hf_f16_to_f32(0x7c00)) && hf_f16_to_f32(0x7c00) > 0);
  CU_ASSERT(isinf(hf_f16_to_f32(0xfc00)) && hf_f16_to_f32(0xfc00) < 0);
  CU_ASSERT(isnan(hf_f16_to_f32(0x7e00)) && isnan(hf_f16_to_f32(0x7c01)));
  CU_ASSERT(hf_f16_to_f32(0x8000) == 0 && signbit(hf_f16_to_f32(0x8000)));
  /* Every half against sign * (mantissa + implicit) * 2^(exp - bias). */
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    int e = (h >> 10) & 31, m = h & 1023;
    if (e == 31) continue;
    double want = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    if (h & 0x8000) want = -want;
    bad += hf_f16_to_f32((uint16_t)h) != (float)want;
  }
  CU_ASSERT_EQUAL(bad, 0);
}

/* ---------------------------------------------------------------- round trips */

static void fill(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(seed, 0, i);
}

static void test_roundtrip(void) {
  const char *p = tmp_path("rt.safetensors");
  float b[15], a[4], c[12];
  fill(b, 15, 1);
  fill(a, 4, 2);
  fill(c, 12, 3);
  const int64_t sb[] = {3, 5}, sa[] = {4}, sc[] = {2, 3, 2}, sz[] = {0, 4};
  hf_st_wtensor t[] = {{"b", HF_F32, 2, sb, b},
                       {"a", HF_BF16, 1, sa, a},
                       {"c", HF_F32, 3, sc, c},
                       {"z", HF_F32, 2, sz, NULL},
                       {"s", HF_F32, 0, NULL, a}};
  hf_kv meta[] = {{"format", "pt"}};
  CU_ASSERT_EQUAL_FATAL(hf_st_write(p, t, 5, meta, 1), IFT_OK);
  CU_ASSERT(access(tmp_path("rt.safetensors.tmp"), F_OK) != 0);

  hf_st *f;
  CU_ASSERT_EQUAL_FATAL(hf_st_open(&f, p), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hf_st_meta(f, "format"), "pt");
  CU_ASSERT_PTR_NULL(hf_st_meta(f, "other"));
  /* the crate's order: F32 before BF16, then by name */
  CU_ASSERT_EQUAL_FATAL(hf_st_count(f), 5);
  const char *order[] = {"b", "c", "s", "z", "a"};
  for (size_t i = 0; i < 5; i++) CU_ASSERT_STRING_EQUAL(hf_st_at(f, i)->name, order[i]);
  const hf_st_tensor *tb = hf_st_find(f, "b"), *ta = hf_st_find(f, "a");
  CU_ASSERT_FATAL(tb && ta && !hf_st_find(f, "q"));
  CU_ASSERT(tb->dtype == HF_F32 && tb->ndim == 2 && tb->shape[0] == 3 && tb->shape[1] == 5);
  CU_ASSERT(tb->begin == 0 && tb->end == 60);
  CU_ASSERT(ta->dtype == HF_BF16 && ta->numel == 4 && ta->end - ta->begin == 8);
  CU_ASSERT_EQUAL(hf_st_find(f, "s")->ndim, 0);
  CU_ASSERT_EQUAL(hf_st_find(f, "s")->numel, 1);
  CU_ASSERT_EQUAL(hf_st_find(f, "z")->numel, 0);

  float out[32];
  CU_ASSERT_EQUAL(hf_st_read_all(f, "b", out), IFT_OK);
  CU_ASSERT(memcmp(out, b, sizeof b) == 0); /* F32 bit-exact */
  CU_ASSERT_EQUAL(hf_st_read_all(f, "c", out), IFT_OK);
  CU_ASSERT(memcmp(out, c, sizeof c) == 0);
  CU_ASSERT_EQUAL(hf_st_read_all(f, "a", out), IFT_OK);
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(out[i], hf_bf16_to_f32(hf_f32_to_bf16(a[i])));

  /* a block of the matrix into a wider buffer (ld 7) equals the slice */
  for (int i = 0; i < 32; i++) out[i] = -99;
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 1, 2, 2, 3, out, 7), IFT_OK);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 7; j++)
      CU_ASSERT_EQUAL(out[i * 7 + j], j < 3 ? b[(1 + i) * 5 + 2 + j] : -99);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 0, 3, 4, 1, out, 1), IFT_OK); /* a column */
  for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(out[i], b[i * 5 + 4]);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "a", 0, 1, 1, 2, out, 2), IFT_OK); /* a range of a vector */
  CU_ASSERT(out[0] == hf_bf16_to_f32(hf_f32_to_bf16(a[1])) &&
            out[1] == hf_bf16_to_f32(hf_f32_to_bf16(a[2])));
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 3, 0, 0, 5, out, 5), IFT_OK); /* empty */

  ift_error_quiet(1);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 2, 2, 0, 5, out, 5), IFT_ERR_ARG);
  CU_ASSERT(has("rt.safetensors") && has("'b'") && has("outside the 3 x 5"));
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 0, 1, 1, 5, out, 5), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "b", 0, 1, 0, 5, out, 4), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "a", 1, 1, 0, 1, out, 1), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(hf_st_read_block(f, "c", 0, 1, 0, 1, out, 1), IFT_ERR_FORMAT);
  CU_ASSERT(has("'c'") && has("shape [2, 3, 2] is not a vector or a matrix"));
  CU_ASSERT_EQUAL(hf_st_read_block(f, "lm_head.weight", 0, 1, 0, 1, out, 1), IFT_ERR_FORMAT);
  CU_ASSERT(has("rt.safetensors: tensor 'lm_head.weight': no such tensor"));
  ift_error_quiet(0);
  hf_st_close(f);
}

/* The reference crate's serialisation tests (safetensors/src/tensor.rs:
 * test_serialization, test_serialization_forced_alignement, test_empty):
 * the same tensors must give the same bytes. */
static void expect_file(const char *path, const char *hdr, size_t pad, const float *x, size_t n) {
  size_t len, h = strlen(hdr);
  uint8_t *got = slurp(path, &len);
  CU_ASSERT_FATAL(got != NULL);
  CU_ASSERT_EQUAL_FATAL(len, 8 + h + pad + 4 * n);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++) hlen |= (uint64_t)got[i] << (8 * i);
  CU_ASSERT_EQUAL(hlen, h + pad);
  CU_ASSERT(memcmp(got + 8, hdr, h) == 0);
  for (size_t i = 0; i < pad; i++) CU_ASSERT_EQUAL(got[8 + h + i], ' ');
  CU_ASSERT(n == 0 || memcmp(got + 8 + h + pad, x, 4 * n) == 0);
  free(got);
}

static void test_writer_bytes(void) {
  const float x[] = {0, 1, 2, 3, 4, 5};
  const int64_t s3[] = {1, 2, 3}, s4[] = {1, 1, 2, 3};
  const char *p = tmp_path("ref.safetensors");
  hf_st_wtensor t = {"attn.0", HF_F32, 3, s3, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &t, 1, NULL, 0), IFT_OK);
  expect_file(p, "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}", 0, x,
              6); /* header length 64 */
  hf_st_wtensor t4 = {"attn0", HF_F32, 4, s4, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &t4, 1, NULL, 0), IFT_OK);
  expect_file(p, "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}", 7, x,
              6); /* 65 + 7 spaces = 72 */
  CU_ASSERT_EQUAL(hf_st_write(p, NULL, 0, NULL, 0), IFT_OK);
  expect_file(p, "{}", 6, NULL, 0);
  hf_kv m = {"framework", "pt"};
  CU_ASSERT_EQUAL(hf_st_write(p, NULL, 0, &m, 1), IFT_OK);
  expect_file(p, "{\"__metadata__\":{\"framework\":\"pt\"}}", 5, NULL, 0);
  hf_st *f;
  CU_ASSERT_EQUAL(hf_st_open(&f, p), IFT_OK); /* no tensors is a valid file */
  CU_ASSERT_EQUAL(hf_st_count(f), 0);
  hf_st_close(f);
}

static void test_writer_errors(void) {
  const float x[] = {1, 2};
  const int64_t s[] = {2}, neg[] = {-2};
  const char *p = tmp_path("werr.safetensors");
  ift_error_quiet(1);
  hf_st_wtensor dup[] = {{"w", HF_F32, 1, s, x}, {"w", HF_BF16, 1, s, x}};
  CU_ASSERT_EQUAL(hf_st_write(p, dup, 2, NULL, 0), IFT_ERR_ARG);
  CU_ASSERT(has("'w' given twice"));
  hf_st_wtensor f16 = {"w", HF_F16, 1, s, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &f16, 1, NULL, 0), IFT_ERR_ARG);
  CU_ASSERT(has("dtype F16"));
  hf_st_wtensor bad = {"w", HF_F32, 1, neg, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &bad, 1, NULL, 0), IFT_ERR_ARG);
  hf_st_wtensor meta = {"__metadata__", HF_F32, 1, s, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &meta, 1, NULL, 0), IFT_ERR_ARG);
  hf_st_wtensor ok = {"w", HF_F32, 1, s, x};
  CU_ASSERT_EQUAL(hf_st_write("/nonexistent-dir/x.safetensors", &ok, 1, NULL, 0), IFT_ERR_IO);
  /* disk full (injected): IFT_ERR_WRITE, nothing left behind */
  setenv("IFT_FAULT", "hf_st_write", 1);
  CU_ASSERT_EQUAL(hf_st_write(p, &ok, 1, NULL, 0), IFT_ERR_WRITE);
  CU_ASSERT(has("No space left on device"));
  unsetenv("IFT_FAULT");
  CU_ASSERT(access(p, F_OK) != 0 && access(tmp_path("werr.safetensors.tmp"), F_OK) != 0);
  ift_error_quiet(0);
}

/* ---------------------------------------------------------------- bad files */

/* Open PATH expecting IFT_ERR_FORMAT with the file and every NEEDLE named. */
static void expect_bad(const char *path, const char *n1, const char *n2) {
  hf_st *f = (hf_st *)1;
  CU_ASSERT_EQUAL(hf_st_open(&f, path), IFT_ERR_FORMAT);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT(has(path));
  if (n1) CU_ASSERT(has(n1));
  if (n2) CU_ASSERT(has(n2));
}

static void bad_header(const char *hdr, size_t ndata, const char *n1, const char *n2) {
  static uint8_t zeros[64];
  const char *p = tmp_path("bad.safetensors");
  raw_st(p, hdr, UINT64_MAX, zeros, ndata);
  expect_bad(p, n1, n2);
}

#define E(name, dt, sh, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":[" #b "," #e "]}"

static void test_bad_files(void) {
  const char *p = tmp_path("bad.safetensors");
  ift_error_quiet(1);
  write_bytes(p, "", 0);
  expect_bad(p, "0 bytes, shorter than the 8-byte header length", NULL);
  write_bytes(p, "\x10\0\0\0", 4);
  expect_bad(p, "4 bytes, shorter", NULL);
  raw_st(p, "{}      ", 100, NULL, 0);
  expect_bad(p, "header length 100 goes beyond the end of the 16-byte file", NULL);
  raw_st(p, "{}      ", 100000001, NULL, 0);
  expect_bad(p, "above the 100 MB limit", NULL);

  bad_header("{\"a\":", 0, "not valid JSON", NULL);
  bad_header("{\"a\xff\":1}", 0, "not valid JSON", "decode byte 0xff");
  bad_header("[1, 2]", 0, "JSON is an array, not an object", NULL);
  bad_header("{\"a\":3}", 0, "tensor 'a': entry is an integer, not an object", NULL);
  bad_header("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'", "missing \"dtype\"");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "'a'", "missing \"shape\"");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'a'", "missing \"data_offsets\"");
  bad_header("{" E("a", "F32", "[2]", 0, 8) ",\"b\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[8,16]}}",
             16, "'b'", "\"dtype\" is an integer, not a string");
  bad_header("{" E("a", "F128", "[2]", 0, 8) "}", 8, "'a'", "unknown dtype \"F128\"");
  bad_header("{" E("a", "F32", "\"2\"", 0, 8) "}", 8, "'a'", "\"shape\" is not an array");
  bad_header("{" E("a", "F32", "[-2]", 0, 8) "}", 8, "'a'", "non-negative integers");
  bad_header("{" E("a", "F32", "[2.0]", 0, 8) "}", 8, "'a'", "\"shape\" is not an array");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "'a'",
             "two non-negative integers");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0-8\"}}", 8, "'a'",
             "\"data_offsets\" is not an array");
  bad_header("{" E("a", "F32", "[4611686018427387904,4611686018427387904]", 0, 8) "}", 8, "'a'",
             "overflows");
  bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 4, 12) "}", 12, "'b'",
             "[4, 12] overlap tensor 'a' (which ends at 8)");
  bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 12, 20) "}", 20, "'b'",
             "gap: bytes 8..12");
  bad_header("{" E("a", "F32", "[2]", 4, 12) "}", 12, "'a'", "at the start of the data");
  bad_header("{" E("a", "F32", "[2]", 8, 0) "}", 8, "'a'", "end before begin");
  bad_header("{" E("a", "F32", "[3]", 0, 8) "}", 8, "'a'",
             "[0, 8] hold 8 bytes but shape [3] of F32 needs 12");
  bad_header("{" E("a", "F32", "[4]", 0, 16) "}", 8, "'a'",
             "data ends at byte 16 but the file's data buffer has only 8 bytes");
  bad_header("{" E("a", "F32", "[2]", 0, 8) "}", 12, "cover 8 bytes of the 12-byte data buffer", NULL);
  bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("a", "F32", "[2]", 8, 16) "}", 16,
             "duplicate object key", "\"a\"");
  bad_header("{\"__metadata__\":{\"format\":1}," E("a", "F32", "[2]", 0, 8) "}", 8,
             "\"__metadata__\" value of \"format\" is an integer", NULL);
  bad_header("{\"__metadata__\":[]}", 0, "\"__metadata__\" is an array", NULL);

  /* a truncated download: the writer's file cut short */
  float x[64] = {0};
  const int64_t s[] = {8, 8};
  hf_st_wtensor t = {"model.embed_tokens.weight", HF_F32, 2, s, x};
  CU_ASSERT_EQUAL(hf_st_write(p, &t, 1, NULL, 0), IFT_OK);
  CU_ASSERT_EQUAL(truncate(p, 200), 0);
  expect_bad(p, "tensor 'model.embed_tokens.weight'", "truncated");

  hf_st *f;
  CU_ASSERT_EQUAL(hf_st_open(&f, tmp_path("missing.safetensors")), IFT_ERR_IO);
  CU_ASSERT(has("missing.safetensors") && has("No such file"));
  CU_ASSERT_EQUAL(hf_st_open(&f, g_dir), IFT_ERR_IO);
  CU_ASSERT(has("not a regular file"));
  ift_error_quiet(0);
}

/* Accepted: other dtypes (refused only when read), trailing spaces, a null
 * __metadata__, tensors listed out of offset order, unaligned data. */
static void test_other_dtypes_and_layouts(void) {
  const char *p = tmp_path("i32.safetensors");
  uint8_t data[16] = {0};
  raw_st(p, "{\"__metadata__\":null," E("n", "I32", "[2]", 8, 16) "," E("m", "F32", "[2]", 0, 8) "}   ",
         UINT64_MAX, data, 16);
  hf_st *f;
  CU_ASSERT_EQUAL_FATAL(hf_st_open(&f, p), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hf_st_at(f, 0)->name, "m");
  CU_ASSERT_EQUAL(hf_st_find(f, "n")->dtype, HF_I32);
  float out[2];
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(hf_st_read_all(f, "n", out), IFT_ERR_FORMAT);
  CU_ASSERT(has("i32.safetensors: tensor 'n': dtype I32 cannot be read as fp32"));
  ift_error_quiet(0);
  CU_ASSERT_EQUAL(hf_st_read_all(f, "m", out), IFT_OK);
  hf_st_close(f);
}

/* F16 data (HF's writer for F16 is not ours: a file made by hand). */
static void test_f16_file(void) {
  const char *p = tmp_path("f16.safetensors");
  const uint16_t h[6] = {0x3c00, 0x0001, 0x7bff, 0xfc00, 0x7e00, 0x8000};
  /* an odd header length (trailing spaces are allowed) leaves the data
   * unaligned on purpose */
  char hdr[80] = "{" E("h", "F16", "[2,3]", 0, 12) "}";
  if (strlen(hdr) % 2 == 0) strcat(hdr, " ");
  raw_st(p, hdr, UINT64_MAX, h, 12);
  hf_st *f;
  CU_ASSERT_EQUAL_FATAL(hf_st_open(&f, p), IFT_OK);
  float all[6], blk[2];
  CU_ASSERT_EQUAL(hf_st_read_all(f, "h", all), IFT_OK);
  CU_ASSERT(all[0] == 1.0f && all[1] == ldexpf(1, -24) && all[2] == 65504.0f);
  CU_ASSERT(isinf(all[3]) && all[3] < 0 && isnan(all[4]) && all[5] == 0 && signbit(all[5]));
  CU_ASSERT_EQUAL(hf_st_read_block(f, "h", 0, 2, 2, 1, blk, 1), IFT_OK);
  CU_ASSERT(blk[0] == 65504.0f && blk[1] == 0 && signbit(blk[1]));
  hf_st_close(f);
}

/* ---------------------------------------------------------------- config.json */

static const char LLAMA32[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,\n"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009],\n"
    " \"head_dim\": 64, \"hidden_act\": \"silu\", \"hidden_size\": 2048, \"initializer_range\": 0.02,\n"
    " \"intermediate_size\": 8192, \"max_position_embeddings\": 131072, \"mlp_bias\": false,\n"
    " \"model_type\": \"llama\", \"num_attention_heads\": 32, \"num_hidden_layers\": 16,\n"
    " \"num_key_value_heads\": 8, \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05,\n"
    " \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,\n"
    "   \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},\n"
    " \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\",\n"
    " \"transformers_version\": \"4.45.0.dev0\", \"use_cache\": true, \"vocab_size\": 128256}\n";

static const char MISTRAL[] =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,\n"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"intermediate_size\": 14336,\n"
    " \"max_position_embeddings\": 32768, \"model_type\": \"mistral\", \"num_attention_heads\": 32,\n"
    " \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05,\n"
    " \"rope_theta\": 1000000.0, \"sliding_window\": null, \"tie_word_embeddings\": false,\n"
    " \"torch_dtype\": \"bfloat16\", \"vocab_size\": 32768}\n";

/* A TinyLlama-like config in its oldest form: no num_key_value_heads,
 * head_dim, rope_theta or tie_word_embeddings. */
static const char OLD[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 688,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 1000,"
    " \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-6}";

static const char *cfg_file(const char *text) {
  const char *p = tmp_path("config.json");
  write_bytes(p, text, strlen(text));
  return p;
}

/* TEXT with the first FROM replaced by TO. */
static const char *patched(const char *text, const char *from, const char *to) {
  static char buf[4096];
  const char *at = strstr(text, from);
  if (!at) abort();
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  return buf;
}

static void test_config_good(void) {
  hf_config c;
  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(LLAMA32), &c), IFT_OK);
  CU_ASSERT_STRING_EQUAL(c.architecture, "LlamaForCausalLM");
  CU_ASSERT(c.vocab_size == 128256 && c.hidden_size == 2048 && c.intermediate_size == 8192);
  CU_ASSERT(c.num_hidden_layers == 16 && c.num_attention_heads == 32 && c.num_key_value_heads == 8);
  CU_ASSERT(c.head_dim == 64 && c.max_position_embeddings == 131072 && c.tie_word_embeddings);
  CU_ASSERT(c.rms_norm_eps == 1e-5 && c.rope_theta == 500000.0);
  CU_ASSERT(c.n_bos == 1 && !c.bos_is_list && c.bos_token_id[0] == 128000);
  CU_ASSERT(c.n_eos == 3 && c.eos_is_list && c.eos_token_id[2] == 128009);
  CU_ASSERT_STRING_EQUAL(c.torch_dtype, "bfloat16");
  CU_ASSERT(c.rope_scaling.type == HF_ROPE_LLAMA3 && c.rope_scaling.factor == 32.0);
  CU_ASSERT(c.rope_scaling.low_freq_factor == 1.0 && c.rope_scaling.high_freq_factor == 4.0);
  CU_ASSERT_EQUAL(c.rope_scaling.original_max_position_embeddings, 8192);

  /* the directory works as well as the file */
  CU_ASSERT_EQUAL_FATAL(hf_config_read(g_dir, &c), IFT_OK);
  CU_ASSERT_EQUAL(c.vocab_size, 128256);

  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(MISTRAL), &c), IFT_OK);
  CU_ASSERT_STRING_EQUAL(c.architecture, "MistralForCausalLM");
  CU_ASSERT(c.sliding_window == 0 && c.rope_scaling.type == HF_ROPE_DEFAULT && !c.tie_word_embeddings);
  CU_ASSERT(c.head_dim == 128 && c.rope_theta == 1e6 && c.n_eos == 1 && !c.eos_is_list);
  /* a window as long as the context masks nothing */
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(MISTRAL, "null", "32768")), &c), IFT_OK);
  CU_ASSERT_EQUAL(c.sliding_window, 32768);

  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(OLD), &c), IFT_OK);
  CU_ASSERT(c.num_key_value_heads == 8 && c.head_dim == 32 && c.rope_theta == 10000.0);
  CU_ASSERT(!c.tie_word_embeddings && c.n_bos == 0 && c.n_eos == 0 && c.torch_dtype[0] == 0);
  CU_ASSERT_EQUAL(c.rope_scaling.type, HF_ROPE_DEFAULT);
  /* null means absent, as in transformers */
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab", "\"num_key_value_heads\": null, \"vocab")), &c),
                  IFT_OK);
  CU_ASSERT_EQUAL(c.num_key_value_heads, 8);
  /* head_dim that differs from hidden / heads */
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab", "\"head_dim\": 64, \"vocab")), &c), IFT_OK);
  CU_ASSERT_EQUAL(c.head_dim, 64);
  /* old files say "type"; rope_scaling null and "default" are no scaling */
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab",
                                                  "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}, \"vocab")),
                                 &c),
                  IFT_OK);
  CU_ASSERT(c.rope_scaling.type == HF_ROPE_LINEAR && c.rope_scaling.factor == 2.0);
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab", "\"rope_scaling\": null, \"vocab")), &c), IFT_OK);
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab", "\"rope_scaling\": {\"rope_type\": \"default\"}, \"vocab")), &c),
                  IFT_OK);
  CU_ASSERT_EQUAL(c.rope_scaling.type, HF_ROPE_DEFAULT);
  /* transformers 5: rope_parameters carries theta and scaling, "dtype" */
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(OLD, "\"vocab",
                                                  "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5e5},"
                                                  " \"dtype\": \"float32\", \"vocab")),
                                 &c),
                  IFT_OK);
  CU_ASSERT(c.rope_theta == 5e5 && strcmp(c.torch_dtype, "float32") == 0);
}

/* Each refusal: IFT_ERR_CONFIG naming the key and the value. */
static void refused(const char *text, const char *key, const char *value) {
  hf_config c;
  CU_ASSERT_EQUAL(hf_config_read(cfg_file(text), &c), IFT_ERR_CONFIG);
  CU_ASSERT(has("config.json"));
  if (key) CU_ASSERT(has(key));
  if (value) CU_ASSERT(has(value));
}

static void test_config_refused(void) {
  ift_error_quiet(1);
  refused(patched(LLAMA32, "\"attention_bias\": false", "\"attention_bias\": true"),
          "\"attention_bias\" = true", "biases");
  refused(patched(LLAMA32, "\"mlp_bias\": false", "\"mlp_bias\": true"), "\"mlp_bias\" = true", NULL);
  refused(patched(LLAMA32, "\"silu\"", "\"gelu\""), "\"hidden_act\" = \"gelu\"", "only silu");
  {
    /* a window is read as is (the model refuses longer sequences) */
    hf_config c;
    CU_ASSERT_EQUAL(hf_config_read(cfg_file(patched(MISTRAL, "null", "4096")), &c), IFT_OK);
    CU_ASSERT_EQUAL(c.sliding_window, 4096);
  }
  refused(patched(MISTRAL, "null", "0"), "\"sliding_window\" = 0", NULL);
  refused(patched(LLAMA32, "\"llama3\"", "\"yarn\""), "\"rope_scaling.rope_type\" = \"yarn\"",
          "unknown RoPE type");
  refused(patched(LLAMA32, "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\""),
          "\"model_type\" = \"qwen2\"", NULL);
  refused(patched(LLAMA32, "LlamaForCausalLM", "LlamaModel"), "\"architectures\" = [\"LlamaModel\"]",
          NULL);
  refused(patched(LLAMA32, "\"vocab_size\": 128256", "\"vocab_size\": \"128256\""),
          "\"vocab_size\" = \"128256\"", "not an integer");
  refused(patched(LLAMA32, "\"hidden_size\": 2048", "\"hidden_size\": 2048.5"), "\"hidden_size\" = 2048.5",
          "not an integer");
  refused(patched(LLAMA32, "\"hidden_size\": 2048,", ""), "\"hidden_size\" = (absent)", "required key missing");
  refused(patched(LLAMA32, "\"num_hidden_layers\": 16", "\"num_hidden_layers\": 0"),
          "\"num_hidden_layers\" = 0", "out of range");
  refused(patched(LLAMA32, "\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
          "\"num_key_value_heads\" = 5", "does not divide");
  refused(patched(LLAMA32, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": \"yes\""),
          "\"tie_word_embeddings\" = \"yes\"", "not true or false");
  refused(patched(LLAMA32, "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1"), "\"rms_norm_eps\" = -1", NULL);
  refused(patched(LLAMA32, "\"low_freq_factor\": 1.0,", ""), "\"rope_scaling.low_freq_factor\" = (absent)",
          NULL);
  refused(patched(LLAMA32, "\"rope_scaling\": {", "\"rope_scaling\": 3, \"x\": {"), "\"rope_scaling\" = 3",
          NULL);
  refused(patched(LLAMA32, "\"bos_token_id\": 128000", "\"bos_token_id\": \"<s>\""),
          "\"bos_token_id\" = \"<s>\"", NULL);
  refused(patched(LLAMA32, "[128001, 128008, 128009]", "[1, -2]"), "\"eos_token_id\" = [1,-2]", NULL);
  refused(patched(OLD, "\"vocab", "\"head_dim\": 33, \"vocab"), "\"head_dim\" = 33", "odd");
  refused(patched(LLAMA32, "\"bos_token_id\": 128000", "\"bos_token_id\": 1, \"bos_token_id\": 2"),
          "duplicate", NULL);
  refused("{\"model_type\": ", NULL, NULL);
  refused("[]", "not a JSON object", NULL);
  hf_config c;
  CU_ASSERT_EQUAL(hf_config_read(tmp_path("no-such-dir"), &c), IFT_ERR_IO);
  ift_error_quiet(0);
}

/* What transformers' save_pretrained writes for the Llama-3.2 config. */
static const char LLAMA32_OUT[] =
    "{\n"
    "  \"architectures\": [\n"
    "    \"LlamaForCausalLM\"\n"
    "  ],\n"
    "  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 128000,\n"
    "  \"eos_token_id\": [\n"
    "    128001,\n"
    "    128008,\n"
    "    128009\n"
    "  ],\n"
    "  \"head_dim\": 64,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 2048,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 8192,\n"
    "  \"max_position_embeddings\": 131072,\n"
    "  \"mlp_bias\": false,\n"
    "  \"model_type\": \"llama\",\n"
    "  \"num_attention_heads\": 32,\n"
    "  \"num_hidden_layers\": 16,\n"
    "  \"num_key_value_heads\": 8,\n"
    "  \"pretraining_tp\": 1,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_scaling\": {\n"
    "    \"factor\": 32.0,\n"
    "    \"high_freq_factor\": 4.0,\n"
    "    \"low_freq_factor\": 1.0,\n"
    "    \"original_max_position_embeddings\": 8192,\n"
    "    \"rope_type\": \"llama3\"\n"
    "  },\n"
    "  \"rope_theta\": 500000.0,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 128256\n"
    "}\n";

static void test_config_write(void) {
  hf_config c, d;
  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(LLAMA32), &c), IFT_OK);
  const char *out = tmp_path("out.json");
  CU_ASSERT_EQUAL_FATAL(hf_config_write(out, &c), IFT_OK);
  size_t n = 0;
  char *text = (char *)slurp(out, &n);
  CU_ASSERT_FATAL(text != NULL);
  text[n] = 0;
  if (strcmp(text, LLAMA32_OUT) != 0) fprintf(stderr, "\n%s", text);
  CU_ASSERT_STRING_EQUAL(text, LLAMA32_OUT);
  free(text);
  CU_ASSERT_EQUAL(hf_config_read(out, &d), IFT_OK);
  CU_ASSERT(memcmp(&c, &d, sizeof c) == 0);

  /* Mistral: sliding_window null, no rope_scaling, no bias keys */
  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(MISTRAL), &c), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(hf_config_write(out, &c), IFT_OK);
  text = (char *)slurp(out, &n);
  text[n] = 0;
  CU_ASSERT(strstr(text, "  \"sliding_window\": null,\n") && strstr(text, "  \"rope_theta\": 1000000.0,\n"));
  CU_ASSERT(strstr(text, "  \"eos_token_id\": 2,\n") && !strstr(text, "rope_scaling"));
  CU_ASSERT(!strstr(text, "attention_bias") && !strstr(text, "pretraining_tp"));
  free(text);
  CU_ASSERT_EQUAL(hf_config_read(out, &d), IFT_OK);
  CU_ASSERT(memcmp(&c, &d, sizeof c) == 0);

  /* Python's float spelling of other values */
  CU_ASSERT_EQUAL_FATAL(hf_config_read(cfg_file(OLD), &c), IFT_OK);
  c.rms_norm_eps = 1.5e-7;
  c.rope_theta = 1e16;
  c.rope_scaling.type = HF_ROPE_LINEAR;
  c.rope_scaling.factor = 0.25;
  CU_ASSERT_EQUAL_FATAL(hf_config_write(out, &c), IFT_OK);
  text = (char *)slurp(out, &n);
  text[n] = 0;
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"rms_norm_eps\": 1.5e-07,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"rope_theta\": 1e+16,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"rope_scaling\": {\n    \"factor\": 0.25,\n    \"rope_type\": \"linear\"\n  },"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"bos_token_id\": null,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"torch_dtype\": null,"));
  free(text);
  CU_ASSERT_EQUAL(hf_config_read(out, &d), IFT_OK);
  CU_ASSERT(memcmp(&c, &d, sizeof c) == 0);

  ift_error_quiet(1);
  setenv("IFT_FAULT", "hf_config_write", 1);
  CU_ASSERT_EQUAL(hf_config_write(out, &c), IFT_ERR_WRITE);
  unsetenv("IFT_FAULT");
  CU_ASSERT(access(tmp_path("out.json.tmp"), F_OK) != 0);
  ift_error_quiet(0);
}

static void cleanup_dir(void) {
  if (!g_dir[0]) return;
  const char *names[] = {"rt.safetensors", "ref.safetensors", "werr.safetensors", "bad.safetensors",
                         "i32.safetensors", "f16.safetensors", "config.json", "out.json"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
  rmdir(g_dir);
}

static void test_cleanup(void) { cleanup_dir(); }

static CU_TestInfo tests[] = {
    {"bf16 rounds to nearest even, NaN stays NaN", test_bf16_rounding},
    {"f16 to fp32 exact for all 65536 values", test_f16_values},
    {"safetensors write/read round trip, blocks equal slices", test_roundtrip},
    {"writer bytes equal the reference crate's vectors", test_writer_bytes},
    {"writer refuses bad input, disk full gives IFT_ERR_WRITE", test_writer_errors},
    {"every malformed safetensors file has its own error", test_bad_files},
    {"other dtypes refused only when read; any offset order", test_other_dtypes_and_layouts},
    {"F16 file read exactly, unaligned data", test_f16_file},
    {"config.json: llama, mistral, defaults of old files", test_config_good},
    {"config.json: every unsupported key refused by name and value", test_config_refused},
    {"config.json written as transformers writes it", test_config_write},
    {"cleanup", test_cleanup},
    CU_TEST_INFO_NULL};

IFT_TEST_MAIN("hf", tests)
