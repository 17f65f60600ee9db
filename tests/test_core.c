#include "config.h"
#include <unistd.h>
/* core: error macros, RNG determinism and distribution, aligned buffers. */
#include <string.h>

#include "harness.h"
#include "iftrain/core.h"

static ift_status needs_positive(int x) {
  IFT_REQUIRE(x > 0, IFT_ERR_ARG, "pass a positive number", "x = %d is not positive", x);
  return IFT_OK;
}
static int reached_after_try = 0;
static ift_status chain(int x) {
  IFT_TRY(needs_positive(x));
  reached_after_try = 1;
  return IFT_OK;
}

static void test_require_returns_and_records(void) {
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(needs_positive(3), IFT_OK);
  CU_ASSERT_EQUAL(needs_positive(-2), IFT_ERR_ARG);
  CU_ASSERT_STRING_EQUAL(ift_error_last(), "x = -2 is not positive");
  ift_error_quiet(0);
}

static void test_try_propagates(void) {
  ift_error_quiet(1);
  reached_after_try = 0;
  CU_ASSERT_EQUAL(chain(-1), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(reached_after_try, 0);
  CU_ASSERT_EQUAL(chain(1), IFT_OK);
  CU_ASSERT_EQUAL(reached_after_try, 1);
  ift_error_quiet(0);
}

static void test_error_message_has_location_and_hint(void) {
  /* Capture stderr in a temp file and check the printed form. */
  char path[] = "/tmp/ift_core_errXXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  fflush(stderr);
  FILE *saved = fdopen(dup(fileno(stderr)), "w");
  dup2(fd, fileno(stderr));
  core_set_rank(3, 4);
  needs_positive(0);
  fflush(stderr);
  dup2(fileno(saved), fileno(stderr));
  core_set_rank(0, 1);
  FILE *f = fopen(path, "r");
  char text[1024] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  unlink(path);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "rank 3/4"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_core.c:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "hint: pass a positive number"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "x = 0 is not positive"));
}

static void test_philox_known_answer(void) {
  /* Random123's published known-answer test for philox4x32-10: counter
   * and key all zero -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8. */
  philox_out o = philox4x32(0, 0, 0);
  CU_ASSERT_EQUAL(o.v[0], 0x6627e8d5u);
  CU_ASSERT_EQUAL(o.v[1], 0xe169c58du);
  CU_ASSERT_EQUAL(o.v[2], 0xbc57ac4cu);
  CU_ASSERT_EQUAL(o.v[3], 0x9b00dbd8u);
}

static void test_rng_moments(void) {
  double s = 0, s2 = 0, su = 0;
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    double z = rng_normal(42, 7, (uint64_t)i);
    s += z;
    s2 += z * z;
    double u = rng_uniform(42, 8, (uint64_t)i);
    CU_ASSERT(u > 0 && u < 1);
    su += u;
  }
  IFT_ASSERT_CLOSE(s / n, 0.0, 0, 0.01);
  IFT_ASSERT_CLOSE(s2 / n, 1.0, 0, 0.015);
  IFT_ASSERT_CLOSE(su / n, 0.5, 0, 0.005);
  /* Addressable: the same (key, stream, index) is the same number. */
  CU_ASSERT_EQUAL(rng_normal(1, 2, 3), rng_normal(1, 2, 3));
  CU_ASSERT_NOT_EQUAL(rng_normal(1, 2, 3), rng_normal(1, 2, 4));
}

static void test_alloc_aligned_zeroed(void) {
  unsigned char *p = core_alloc(1000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL((uintptr_t)p % 64, 0);
  int nz = 0;
  for (int i = 0; i < 1000; i++) nz |= p[i];
  CU_ASSERT_EQUAL(nz, 0);
  core_free(p);
}

static void test_fnv(void) {
  /* FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (reference value). */
  CU_ASSERT_EQUAL(core_fnv1a(CORE_FNV_INIT, "a", 1), 0xaf63dc4c8601ec8cULL);
}

/* FIPS 180-4 examples and a file read in chunks (a 2.5 MiB file of 'a'
 * crosses the 1 MiB read size; its digest from coreutils' sha256sum). */
static void test_sha256(void) {
  char hex[65];
  CU_ASSERT_EQUAL(core_sha256_hex("abc", 3, hex), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CU_ASSERT_EQUAL(core_sha256_hex("", 0, hex), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  core_sha256 *h;
  CU_ASSERT_EQUAL_FATAL(core_sha256_begin(&h), IFT_OK);
  for (const char *p = m; *p; p += 7) core_sha256_update(h, p, strlen(p) < 7 ? strlen(p) : 7);
  core_sha256_end(h, hex);
  CU_ASSERT_STRING_EQUAL(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  core_sha256_end(NULL, hex);
  CU_ASSERT_STRING_EQUAL(hex, "");
  char path[] = "/tmp/iftrain-sha-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  for (int i = 0; i < 5 * 512 * 1024; i++) fputc('a', f);
  fclose(f);
  char cmd[128], want[65] = "";
  snprintf(cmd, sizeof cmd, "sha256sum %s", path);
  FILE *p = popen(cmd, "r");
  CU_ASSERT_FATAL(p && fscanf(p, "%64s", want) == 1);
  pclose(p);
  CU_ASSERT_EQUAL(core_sha256_file(path, hex), IFT_OK);
  CU_ASSERT_STRING_EQUAL(hex, want);
  unlink(path);
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(core_sha256_file(path, hex), IFT_ERR_IO);
  ift_error_quiet(0);
}

static CU_TestInfo tests[] = {{"IFT_REQUIRE returns and records", test_require_returns_and_records},
                              {"IFT_TRY propagates", test_try_propagates},
                              {"error message: rank, file:line, hint", test_error_message_has_location_and_hint},
                              {"philox4x32-10 known answer", test_philox_known_answer},
                              {"rng moments and addressability", test_rng_moments},
                              {"core_alloc aligned and zeroed", test_alloc_aligned_zeroed},
                              {"fnv1a reference", test_fnv},
                              {"SHA-256: FIPS 180-4 examples, streaming, files", test_sha256},
                              CU_TEST_INFO_NULL};
IFT_TEST_MAIN("core", tests)
