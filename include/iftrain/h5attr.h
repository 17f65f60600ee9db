/* h5attr — the one HDF5 string-attribute writer shared by the data set
 * writer (data) and the checkpoint writer (ckpt). */
#ifndef IFTRAIN_H5ATTR_H
#define IFTRAIN_H5ATTR_H

#include <hdf5.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Scalar string attribute `name` = v on obj (an existing one is replaced);
 * negative on failure. */
herr_t ift_h5_attr_str(hid_t obj, const char *name, const char *v);

#ifdef __cplusplus
}
#endif
#endif
