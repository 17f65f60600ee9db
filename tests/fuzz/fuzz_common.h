/* Shared set-up of the libFuzzer targets in tests/fuzz/ (see fuzz.sh).
 *
 * Each target defines LLVMFuzzerInitialize and LLVMFuzzerTestOneInput.  The
 * same source links either with libFuzzer (clang -fsanitize=fuzzer: make
 * fuzz) or with replay_main.c (any compiler: make check replays the seeds and
 * the regression inputs under tests/fuzz/seeds/TARGET/).
 *
 * The readers under test take file paths, so every input is written to a
 * per-process scratch file first (in /dev/shm when present).  MPI is
 * initialised once (singleton, no mpirun needed) because the HDF5 readers may
 * open files through the MPI-IO driver. */
#ifndef IFTRAIN_FUZZ_COMMON_H
#define IFTRAIN_FUZZ_COMMON_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/core.h"
#include "iftrain/kern.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

static inline void fuzz_setup(void) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    MPI_Init(NULL, NULL);
    atexit(fuzz_finalize);
  }
  ift_error_quiet(1);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  kern_select_arch(NULL);
}

/* Scratch path NAME for this process: /dev/shm/iftrain-fuzz-PID-NAME. */
static inline const char *fuzz_path(char *buf, size_t n, const char *name) {
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(buf, n, "%s/iftrain-fuzz-%ld-%s", dir, (long)getpid(), name);
  return buf;
}

/* Write data to the scratch file NAME; returns its path (static per name slot). */
static inline int fuzz_write(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  if (size && fwrite(data, 1, size, f) != size) {
    fclose(f);
    return -1;
  }
  return fclose(f);
}

#endif
