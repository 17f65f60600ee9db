#include "config.h"
/* The content hash of a data set (data.h "Content hash"): the byte order
 * the writers feed it in (data_hash_le) and its verification against the
 * content_sha256 attribute (data_verify_content, iftrain prep --verify). */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "data_int.h"
#include "iftrain/data.h"
#include "iftrain/h5attr.h"

/* n native integers of `width` bytes (4: int, 8: int64_t, 1: uint8_t) fed to
 * the hash little-endian, so the hash does not depend on the machine. */
void data_hash_le(core_sha256 *h, const void *v, size_t n, size_t width) {
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
  data_hash_le(c->h, buf, (size_t)count, c->width);
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
      IFT_REQUIRE_GOTO(st, out, !data_dset_check(f, name, H5T_INTEGER, widths[k], k == 2 ? -1 : 1, &len),
                       IFT_ERR_FORMAT, DATA_REGEN, "%s: dataset %s is missing or of the wrong type", path, name);
      hash_ctx c = {h, widths[k]};
      IFT_TRY_GOTO(st, out, data_read_blocks(f, path, name, types[k], widths[k], 0, (long)len, hash_block, &c));
    }
  }
  core_sha256_end(h, hex);
  h = NULL;
  IFT_REQUIRE_GOTO(st, out, !ift_h5_attr_get_str(f, "content_sha256", stored, sizeof stored), IFT_ERR_FORMAT,
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

