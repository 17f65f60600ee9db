/* bench/data_write: write throughput of the data set writers.
 *   mpirun -n P bench/data_write serial|comm TOKENS ROW_LEN OUT.h5 [pairs]
 * Rows of ROW_LEN/2 .. 3*ROW_LEN/2 random tokens (random ids of the
 * bytes-v1 vocabulary, random masks) up to TOKENS tokens in all, split
 * evenly by rows over the ranks.  "serial": rank 0 adds every row to the
 * serial writer (run it on 1 rank); "comm": every rank adds its rows to a
 * collective writer over MPI_COMM_WORLD.  Times data_writer_close only (the
 * content hash, the HDF5 writes with deflate, the rename), from a barrier
 * to the slowest rank, and prints MB/s of the raw data (4 bytes per token,
 * 1 mask byte per token, 8 bytes per offset) and the file's size. */
#include "config.h"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iftrain/data.h"
#include "iftrain/dist.h"

static uint64_t next(uint64_t *s) { /* xorshift64*: cheap, deterministic */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != IFT_OK) return 2;
  if (argc < 5) {
    fprintf(stderr, "usage: %s serial|comm TOKENS ROW_LEN OUT.h5 [pairs]\n", argv[0]);
    return 2;
  }
  const int comm = !strcmp(argv[1], "comm"), pairs = argc > 5 && !strcmp(argv[5], "pairs");
  const long tokens = atol(argv[2]), row_len = atol(argv[3]);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long rows = tokens / row_len;
  /* the serial writer is rank 0's alone */
  const long r0 = comm ? rows * rank / size : 0, r1 = comm ? rows * (rank + 1) / size : rank == 0 ? rows : 0;
  data_writer *w = NULL;
  ift_status st = comm ? data_writer_create_comm(&w, argv[4], TOK_VOCAB, pairs, MPI_COMM_WORLD)
                       : rank == 0 ? data_writer_create(&w, argv[4], TOK_VOCAB, pairs) : IFT_OK;
  if (st != IFT_OK) return 1;
  int *tok = malloc(sizeof(int) * (size_t)(2 * row_len));
  uint8_t *mask = malloc((size_t)(2 * row_len));
  long mine = 0;
  for (long i = r0; i < r1 && w; i++) {
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ULL;
    const int len = (int)(row_len / 2 + (long)(next(&s) % (uint64_t)(row_len + 1)));
    for (int j = 0; j < len; j++) {
      const uint64_t x = next(&s);
      tok[j] = (int)(x % TOK_VOCAB);
      mask[j] = (x >> 32) & 1;
    }
    mine += len;
    if (data_writer_add(w, tok, mask, len, tok, mask, len, tok, mask, len / 2) != IFT_OK) return 1;
  }
  long all = 0, nrows = r1 - r0, allrows = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&nrows, &allrows, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  if (w) st = data_writer_close(w);
  double dt = MPI_Wtime() - t0, slowest = dt;
  MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  /* raw bytes: main group, plus chosen (same) and rejected (half) */
  const double groups = pairs ? 2.5 : 1.0;
  const double mb = (groups * 5.0 * (double)all + (pairs ? 3.0 : 1.0) * 8.0 * (double)(allrows + 1)) / 1e6;
  struct stat sb;
  if (rank == 0)
    printf("%s writer, %d rank%s: %ld rows, %ld tokens%s, %.1f MB raw, file %.1f MB: close %.2f s, %.1f MB/s\n",
           comm ? "collective" : "serial", size, size > 1 ? "s" : "", allrows, all, pairs ? " (+pairs)" : "",
           mb, stat(argv[4], &sb) == 0 ? (double)sb.st_size / 1e6 : -1.0, slowest, mb / slowest);
  free(tok);
  free(mask);
  dist_finalize();
  return st == IFT_OK ? 0 : 1;
}
