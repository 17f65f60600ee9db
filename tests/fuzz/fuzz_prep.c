/* Fuzz target: the JSONL reader of `iftrain prep` (data_prep_jsonl: the JSON
 * line parser, the row builders and the HDF5 writer).  Byte 0 selects the
 * options (bit 0: skip_bad; bits 1-3: max_len 0 or 4..28); the rest is the
 * JSONL file.  A successful prep is read back with data_open: the set must
 * hold exactly the rows written. */
#include "fuzz_common.h"
#include "iftrain/data.h"

static char in_path[512], out_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(in_path, sizeof in_path, "prep.jsonl");
  fuzz_path(out_path, sizeof out_path, "prep.h5");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  data_prep_stats st = {.skip_bad = data[0] & 1, .max_len = ((data[0] >> 1) & 7) * 4};
  if (fuzz_write(in_path, data + 1, size - 1) != 0) return 0;
  unlink(out_path);
  if (data_prep_jsonl(in_path, out_path, &st) == IFT_OK) {
    data_set d;
    if (data_open(&d, out_path, MPI_COMM_NULL, 0) != IFT_OK) {
      fprintf(stderr, "fuzz_prep: prep succeeded but its output does not open\n");
      abort();
    }
    if (d.n != st.n_written) {
      fprintf(stderr, "fuzz_prep: %ld rows written, %ld in the set\n", st.n_written, d.n);
      abort();
    }
    int tok[4096];
    uint8_t mask[4096];
    for (long i = 0; i < d.n && i < 4; i++) {
      int len = 0;
      if (data_read_row(&d, NULL, i, tok, mask, 4096, &len) != IFT_OK && data_len(&d, i) <= 4096) {
        fprintf(stderr, "fuzz_prep: row %ld of a fresh set does not read back\n", i);
        abort();
      }
    }
    data_close(&d);
  }
  unlink(in_path);
  unlink(out_path);
  return 0;
}
