# IFT_PROG_MPICC: choose the MPI C compiler as CC and prove MPI links.
# --with-mpi=PREFIX looks for PREFIX/bin/mpicc; MPICC=... also works.
AC_DEFUN([IFT_PROG_MPICC], [
  AC_ARG_WITH([mpi],
    [AS_HELP_STRING([--with-mpi=PREFIX], [MPI installation prefix (PREFIX/bin/mpicc)])],
    [], [with_mpi=yes])
  AS_IF([test "x$with_mpi" = xno],
    [AC_MSG_ERROR([iftrain is an MPI program; --without-mpi is not supported])])
  AS_IF([test "x$with_mpi" != xyes && test -z "$MPICC"],
    [MPICC="$with_mpi/bin/mpicc"])
  AS_IF([test -z "$MPICC"], [AC_PATH_PROGS([MPICC], [mpicc], [])])
  AS_IF([test -z "$MPICC" || ! test -x "`command -v $MPICC 2>/dev/null || echo $MPICC`"],
    [AC_MSG_ERROR([no MPI C compiler (mpicc) found.
  fix: apt-get install libopenmpi-dev openmpi-bin   (Debian), or load your site's MPI module,
       or pass --with-mpi=PREFIX / MPICC=/path/to/mpicc])])
  CC="$MPICC"
])

# IFT_CHECK_MPI: after AC_PROG_CC, check that MPI_Init links.
AC_DEFUN([IFT_CHECK_MPI], [
  AC_MSG_CHECKING([whether $CC builds MPI programs])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <mpi.h>]],
      [[int v, s; MPI_Init(0, 0); MPI_Get_version(&v, &s); MPI_Finalize();]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([$CC cannot compile and link an MPI program (mpi.h / MPI_Init).
  fix: apt-get install libopenmpi-dev (Debian), or point --with-mpi at a working MPI])])
  AC_PATH_PROGS([MPIRUN], [mpirun mpiexec], [mpirun])
  AC_SUBST([MPIRUN])
])
