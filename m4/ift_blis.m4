# IFT_CHECK_BLIS: BLIS typed API (blis.h, bli_sgemm).  --with-blis=PREFIX.
AC_DEFUN([IFT_CHECK_BLIS], [
  AC_ARG_WITH([blis],
    [AS_HELP_STRING([--with-blis=PREFIX], [BLIS installation prefix (include/blis.h, lib/libblis)])],
    [], [with_blis=yes])
  AS_IF([test "x$with_blis" = xno], [AC_MSG_ERROR([BLIS is required (local GEMM kernels)])])
  AS_IF([test "x$with_blis" != xyes],
    [CPPFLAGS="$CPPFLAGS -I$with_blis/include -I$with_blis/include/blis"
     LDFLAGS="$LDFLAGS -L$with_blis/lib -Wl,-rpath,$with_blis/lib"])
  AC_CHECK_HEADER([blis.h], [],
    [AC_MSG_ERROR([blis.h not found.
  fix: apt-get install libblis-openmp-dev (Debian), or --with-blis=PREFIX])])
  AC_SEARCH_LIBS([bli_sgemm], [blis blis-mt], [],
    [AC_MSG_ERROR([no library provides bli_sgemm (BLIS).
  fix: apt-get install libblis-openmp-dev (Debian), or --with-blis=PREFIX])])
  AC_MSG_CHECKING([BLIS version])
  AC_RUN_IFELSE([AC_LANG_PROGRAM([[#include <blis.h>
#include <stdio.h>]], [[FILE *f = fopen("conftest.blisver", "w"); if (!f) return 1;
      fprintf(f, "%s", bli_info_get_version_str()); fclose(f);]])],
    [ift_blis_version=`cat conftest.blisver`], [ift_blis_version=unknown],
    [ift_blis_version="cross-compiling"])
  AC_MSG_RESULT([$ift_blis_version])
])
