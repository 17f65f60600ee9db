#include "config.h"
/* The HDF5 and file helpers of h5attr.h, shared by the data sets (data) and
 * the checkpoints (ckpt): attribute readers and the string-attribute
 * writer, and the space reservation made before a collective write. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "iftrain/h5attr.h"

/* ------------------------------------------------------------ attributes */

/* Attribute `name` of obj read as memory type `type` into v (HDF5 converts
 * between integer and float types); -1 when it is absent or the read fails.
 * Checked with H5Aexists first: H5Aopen of a missing attribute would print
 * HDF5's error stack where automatic printing is on. */
static herr_t attr_read(hid_t obj, const char *name, hid_t type, void *v) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t r = H5Aread(a, type, v);
  H5Aclose(a);
  return r < 0 ? -1 : 0;
}

herr_t ift_h5_attr_get_long(hid_t obj, const char *name, long *v) {
  return attr_read(obj, name, H5T_NATIVE_LONG, v);
}

herr_t ift_h5_attr_get_double(hid_t obj, const char *name, double *v) {
  return attr_read(obj, name, H5T_NATIVE_DOUBLE, v);
}

char *ift_h5_attr_dup_str(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return NULL;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
  char *v = NULL;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
    /* read with the stored size; one more byte ends a string stored
     * without its terminating NUL */
    const size_t n = H5Tget_size(t);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    v = calloc(n + 1, 1);
    if (v && H5Aread(a, mt, v) < 0) {
      free(v);
      v = NULL;
    }
    H5Tclose(mt);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return v;
}

herr_t ift_h5_attr_get_str(hid_t obj, const char *name, char *out, size_t n) {
  if (n) out[0] = 0;
  char *v = ift_h5_attr_dup_str(obj, name);
  if (!v) return -1;
  snprintf(out, n, "%s", v);
  free(v);
  return 0;
}

herr_t ift_h5_attr_str(hid_t obj, const char *name, const char *v) {
  hid_t sc = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, t, sc, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = a < 0 ? -1 : H5Awrite(a, t, v);
  if (a >= 0) H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sc);
  return r;
}

/* ------------------------------------------------------------ space */

int ift_fs_reserve(const char *path, double need, int *cannot_create) {
  *cannot_create = 0;
  /* path is the caller's own temporary name: never follow a link planted
   * there (O_TRUNC would empty its target) */
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
  if (fd < 0) {
    *cannot_create = 1;
    return errno;
  }
  int e = need > 9e18 ? EFBIG : fallocate(fd, 0, 0, (off_t)need) ? errno : 0;
  close(fd);
  unlink(path);
  if (e == EOPNOTSUPP || e == ENOSYS) {
    struct statvfs v;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    e = statvfs(slash ? dir : ".", &v) == 0 && (double)v.f_bavail * v.f_frsize < need ? ENOSPC : 0;
  }
  return e;
}

