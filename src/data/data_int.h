/* Internals of the data module shared by its files (not installed): the
 * structure checks, block reads and agreed failures of the reader
 * (reader.c), the byte order of the content hash (content.c), and the state
 * of a data set writer, which the serial writer (writer.c) and the
 * collective one (writer_comm.c) share. */
#ifndef IFTRAIN_DATA_INT_H
#define IFTRAIN_DATA_INT_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "iftrain/core.h"
#include "iftrain/data.h"

/* The hint of a file that is not what prep writes. */
#define DATA_REGEN "regenerate the file with iftrain prep"

/* ------------------------------------------------------------ reader.c */

/* Whether `name` in f is a 1-D dataset of class cls and element size
 * `size` (and for integers, when sign >= 0, signed iff sign): 0 yes, with
 * its length in *len; 1 missing, 2 wrong type, 3 wrong rank. */
int data_dset_check(hid_t f, const char *name, H5T_class_t cls, size_t size, int sign,
                    hsize_t *len);

/* Elements [a, b) of the 1-D dataset `name` of f (file `path`), read in
 * blocks of memory type mtype (element size `width`), each block handed to
 * fn, which returns IFT_OK to go on. */
typedef ift_status (*data_block_fn)(void *ctx, const void *buf, long first, long count);
ift_status data_read_blocks(hid_t f, const char *path, const char *name, hid_t mtype,
                            size_t width, long a, long b, data_block_fn fn, void *ctx);

/* dist_agree over comm (MPI_COMM_NULL: none), and every rank then reports
 * the failing rank's message. */
ift_status data_agree_message(ift_status local, MPI_Comm comm);

/* ------------------------------------------------------------ content.c */

/* n native integers of `width` bytes (4, 8 or 1) fed to h little-endian. */
void data_hash_le(core_sha256 *h, const void *v, size_t n, size_t width);

/* ------------------------------------------------------------ writer.c */

/* One group's rows in memory: tokens and masks of all rows, and the
 * offsets (nrow + 1 entries once a row is added). */
typedef struct {
  int *tok;
  uint8_t *mask;
  int64_t *off;
  size_t ntok, captok, nrow, caprow;
} triple;

struct data_writer {
  char path[1024];
  int vocab, pairs;
  triple t[3];
  char attr_names[16][32];
  char *attr_str[16];
  long attr_int[16];
  int nattr;
  /* MPI_COMM_NULL for the serial writer; else a duplicate of the caller's
   * communicator, so the messages of the hash stream (writer_comm.c) can
   * never be matched by receives of the caller's own */
  MPI_Comm comm;
};

/* Elements per chunk of a written dataset (data_dcpl_1d). */
enum { DATA_CHUNK = 65536 };

/* Root attribute `name`: the string s, or the integer v when s is NULL. */
void data_writer_set_attr(data_writer *w, const char *name, const char *s, long v);
/* The dataset creation properties of both writers (one layout). */
hid_t data_dcpl_1d(size_t n);
/* The root attributes of the file; negative on failure. */
herr_t data_write_root_attrs(hid_t f, const data_writer *w);

/* ------------------------------------------------------------ writer_comm.c */

/* data_writer_close of a writer made by data_writer_create_comm. */
ift_status data_writer_close_comm(data_writer *w);

#endif
