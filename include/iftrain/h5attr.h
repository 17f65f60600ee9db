/* h5attr — the HDF5 and file helpers shared by the data sets (data) and the
 * checkpoints (ckpt): the HDF5 check of the error convention (core.h), the
 * attribute readers, the one string-attribute writer, and the space
 * reservation made before a collective (parallel HDF5) write.  Defined in
 * src/data/h5util.c. */
#ifndef IFTRAIN_H5ATTR_H
#define IFTRAIN_H5ATTR_H

#include <hdf5.h>

#include "iftrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An HDF5 call whose negative return (herr_t or hid_t) is a failure:
 * IFT_ERR_HDF5 recorded with the call, file:line, the cause (fmt, naming the
 * file) and the hint.  The _GOTO form sets st and jumps to label (core.h).
 * A failure that means something else (a missing file: IFT_ERR_IO, a file
 * that is not what it should be: IFT_ERR_FORMAT) is an IFT_REQUIRE on the
 * call's result instead. */
#define IFT_H5_CHECK(call, hint, ...)                                          \
  do {                                                                         \
    if ((call) < 0) {                                                          \
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, #call, (hint), __VA_ARGS__); \
      return IFT_ERR_HDF5;                                                     \
    }                                                                          \
  } while (0)

#define IFT_H5_CHECK_GOTO(st, label, call, hint, ...)                          \
  do {                                                                         \
    if ((call) < 0) {                                                          \
      ift_error_set(IFT_ERR_HDF5, __FILE__, __LINE__, #call, (hint), __VA_ARGS__); \
      (st) = IFT_ERR_HDF5;                                                     \
      goto label;                                                              \
    }                                                                          \
  } while (0)

/* Scalar string attribute `name` = v on obj (an existing one is replaced);
 * negative on failure. */
herr_t ift_h5_attr_str(hid_t obj, const char *name, const char *v);

/* Attribute `name` of obj read into *v as a long / a double (HDF5 converts
 * from any integer or float type it is stored as); 0, or negative when obj
 * has no such attribute or it cannot be read as one (*v then unchanged or
 * undefined). */
herr_t ift_h5_attr_get_long(hid_t obj, const char *name, long *v);
herr_t ift_h5_attr_get_double(hid_t obj, const char *name, double *v);

/* String attribute `name` of obj (fixed-length, any stored length) as a
 * malloc'd NUL-terminated string the caller frees; NULL when it is absent,
 * not a fixed-length string, or cannot be read or allocated. */
char *ift_h5_attr_dup_str(hid_t obj, const char *name);

/* The same string into out[0..n) (truncated to n - 1 bytes); 0, or negative
 * on the failures of ift_h5_attr_dup_str, with out = "". */
herr_t ift_h5_attr_get_str(hid_t obj, const char *name, char *out, size_t n);

/* Make sure the file system will take `need` bytes at `path` before a
 * parallel HDF5 file is written there: a parallel file whose writes fail
 * with ENOSPC or EDQUOT cannot be closed reliably (its ranks leave the
 * close's internal collectives at different points and wait for each other
 * forever).  Creates `path` (an existing file or link there is removed
 * first: it is the caller's own temporary name), takes the space with
 * fallocate (which also meets quotas), and removes the file again; where
 * fallocate is not supported the free space is compared instead.  Returns 0
 * or the errno of the failure; *cannot_create is set to 1 when `path`
 * itself could not be created (missing or read-only directory), else 0. */
int ift_fs_reserve(const char *path, double need, int *cannot_create);

#ifdef __cplusplus
}
#endif
#endif
