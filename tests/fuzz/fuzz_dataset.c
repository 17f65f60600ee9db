/* Fuzz target: the HDF5 data set reader (data_open, data_read_row,
 * data_max_pair_len) on a damaged file.  The input is the whole .h5 file;
 * seeds are small sets made by iftrain prep.  The file is opened without MPI-IO
 * (MPI_COMM_NULL) like a serial reader; rows are read from every group. */
#include "fuzz_common.h"
#include "iftrain/data.h"

static char h5_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(h5_path, sizeof h5_path, "data.h5");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1 << 20)) return 0;
  if (fuzz_write(h5_path, data, size) != 0) return 0;
  data_set d;
  if (data_open(&d, h5_path, MPI_COMM_NULL, TOK_VOCAB) == IFT_OK) {
    enum { CAP = 512 };
    int tok[CAP];
    uint8_t mask[CAP];
    static const char *groups[3] = {NULL, "chosen", "rejected"};
    for (int g = 0; g < (d.has_pairs ? 3 : 1); g++)
      for (long i = 0; i < d.n && i < 8; i++) {
        int len = 0;
        (void)data_group_len(&d, groups[g], i);
        data_read_row(&d, groups[g], i, tok, mask, CAP, &len);
      }
    if (d.n > 0) data_read_row(&d, NULL, d.n - 1, tok, mask, CAP, &(int){0});
    if (d.has_pairs) (void)data_max_pair_len(&d);
    data_close(&d);
  }
  unlink(h5_path);
  return 0;
}
