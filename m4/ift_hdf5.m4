# IFT_CHECK_PHDF5: parallel HDF5 (H5Pset_fapl_mpio, H5_HAVE_PARALLEL).
# --with-hdf5=PREFIX, or pkg-config hdf5-openmpi (Debian), or h5pcc -showconfig.
# A serial HDF5 is rejected: checkpoints are written collectively.
AC_DEFUN([IFT_CHECK_PHDF5], [
  AC_ARG_WITH([hdf5],
    [AS_HELP_STRING([--with-hdf5=PREFIX], [parallel HDF5 installation prefix (include/hdf5.h, lib/libhdf5)])],
    [], [with_hdf5=yes])
  AS_IF([test "x$with_hdf5" = xno], [AC_MSG_ERROR([parallel HDF5 is required (data sets, checkpoints)])])
  HDF5_CFLAGS=""; HDF5_LIBS=""
  AS_IF([test "x$with_hdf5" != xyes],
    [HDF5_CFLAGS="-I$with_hdf5/include"; HDF5_LIBS="-L$with_hdf5/lib -Wl,-rpath,$with_hdf5/lib -lhdf5"],
    [PKG_CHECK_EXISTS([hdf5-openmpi],
       [HDF5_CFLAGS=`$PKG_CONFIG --cflags hdf5-openmpi`; HDF5_LIBS=`$PKG_CONFIG --libs hdf5-openmpi`],
       [HDF5_LIBS="-lhdf5"])])
  ift_save_CPPFLAGS="$CPPFLAGS"; ift_save_LIBS="$LIBS"
  CPPFLAGS="$HDF5_CFLAGS $CPPFLAGS"; LIBS="$HDF5_LIBS $LIBS"
  AC_CHECK_HEADER([hdf5.h], [],
    [AC_MSG_ERROR([hdf5.h not found.
  fix: apt-get install libhdf5-openmpi-dev (Debian), or --with-hdf5=PREFIX of a parallel HDF5])])
  AC_MSG_CHECKING([whether HDF5 is parallel (H5_HAVE_PARALLEL)])
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <hdf5.h>
#ifndef H5_HAVE_PARALLEL
#error serial HDF5
#endif]], [[]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([the HDF5 found is SERIAL (H5_HAVE_PARALLEL is not defined); iftrain writes checkpoints collectively and needs parallel HDF5.
  fix: apt-get install libhdf5-openmpi-dev (Debian), or --with-hdf5=PREFIX of an MPI-enabled HDF5])])
  AC_MSG_CHECKING([for H5Pset_fapl_mpio])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <hdf5.h>]],
      [[hid_t p = H5Pcreate(H5P_FILE_ACCESS); H5Pset_fapl_mpio(p, MPI_COMM_WORLD, MPI_INFO_NULL); H5Pclose(p);]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([cannot link a parallel HDF5 program (H5Pset_fapl_mpio) with HDF5_LIBS="$HDF5_LIBS".
  fix: apt-get install libhdf5-openmpi-dev (Debian), or --with-hdf5=PREFIX])])
  AC_MSG_CHECKING([HDF5 version])
  AC_COMPUTE_INT([ift_h5maj], [H5_VERS_MAJOR], [[#include <hdf5.h>]], [ift_h5maj=0])
  AC_COMPUTE_INT([ift_h5min], [H5_VERS_MINOR], [[#include <hdf5.h>]], [ift_h5min=0])
  AC_COMPUTE_INT([ift_h5rel], [H5_VERS_RELEASE], [[#include <hdf5.h>]], [ift_h5rel=0])
  ift_hdf5_version="$ift_h5maj.$ift_h5min.$ift_h5rel (parallel)"
  AC_MSG_RESULT([$ift_hdf5_version])
  CPPFLAGS="$ift_save_CPPFLAGS"; LIBS="$ift_save_LIBS"
  AC_SUBST([HDF5_CFLAGS])
  AC_SUBST([HDF5_LIBS])
])
