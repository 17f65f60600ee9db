# IFT_CHECK_SCALAPACK: ScaLAPACK + PBLAS + BLACS (psgemm_, psgemr2d_, Cblacs_gridinit).
# --with-scalapack=LIBS gives the link flags for sites whose library is named otherwise.
AC_DEFUN([IFT_CHECK_SCALAPACK], [
  AC_ARG_WITH([scalapack],
    [AS_HELP_STRING([--with-scalapack=LIBS],
      [link flags for ScaLAPACK/PBLAS/BLACS (default: try -lscalapack-openmpi, then -lscalapack)])],
    [], [with_scalapack=yes])
  AS_IF([test "x$with_scalapack" = xno], [AC_MSG_ERROR([ScaLAPACK is required (distributed GEMM, redistribution)])])
  ift_save_LIBS="$LIBS"
  SCALAPACK_LIBS=""
  AS_IF([test "x$with_scalapack" != xyes],
    [ift_sl_candidates="$with_scalapack"],
    [ift_sl_candidates="-lscalapack-openmpi -lscalapack"])
  for ift_sl in $ift_sl_candidates; do
    AS_IF([test "x$with_scalapack" != xyes], [ift_sl="$with_scalapack"])
    AC_MSG_CHECKING([for psgemm_ and Cblacs_gridinit with $ift_sl])
    LIBS="$ift_sl $ift_save_LIBS"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[
void psgemm_(const char *, const char *, const int *, const int *, const int *,
             const float *, const float *, const int *, const int *, const int *,
             const float *, const int *, const int *, const int *, const float *,
             float *, const int *, const int *, const int *);
void psgemr2d_(const int *, const int *, const float *, const int *, const int *,
               const int *, float *, const int *, const int *, const int *, const int *);
void Cblacs_gridinit(int *, const char *, int, int);]],
        [[void (*a)(void) = (void (*)(void))psgemm_; void (*b)(void) = (void (*)(void))psgemr2d_;
          void (*c)(void) = (void (*)(void))Cblacs_gridinit; return a == b && b == c;]])],
      [AC_MSG_RESULT([yes]); SCALAPACK_LIBS="$ift_sl"], [AC_MSG_RESULT([no])])
    test -n "$SCALAPACK_LIBS" && break
    test "x$with_scalapack" != xyes && break
  done
  LIBS="$ift_save_LIBS"
  AS_IF([test -z "$SCALAPACK_LIBS"],
    [AC_MSG_ERROR([ScaLAPACK/PBLAS/BLACS not found (psgemm_, psgemr2d_, Cblacs_gridinit).
  fix: apt-get install libscalapack-openmpi-dev (Debian; links -lscalapack-openmpi),
       or --with-scalapack="-L/path -lscalapack" for your site's build])])
  AC_SUBST([SCALAPACK_LIBS])
])
