# IFT_CHECK_CUNIT: CUnit for `make check`.  --with-cunit=PREFIX; --without-cunit
# builds iftrain without its test suites (make check then says so and fails).
AC_DEFUN([IFT_CHECK_CUNIT], [
  AC_ARG_WITH([cunit],
    [AS_HELP_STRING([--with-cunit=PREFIX], [CUnit prefix for the test suites (--without-cunit: no tests)])],
    [], [with_cunit=yes])
  CUNIT_CFLAGS=""; CUNIT_LIBS=""; have_cunit=no
  AS_IF([test "x$with_cunit" != xno], [
    AS_IF([test "x$with_cunit" != xyes],
      [CUNIT_CFLAGS="-I$with_cunit/include"; CUNIT_LIBS="-L$with_cunit/lib -Wl,-rpath,$with_cunit/lib"])
    ift_save_CPPFLAGS="$CPPFLAGS"; ift_save_LIBS="$LIBS"
    CPPFLAGS="$CUNIT_CFLAGS $CPPFLAGS"; LIBS="$CUNIT_LIBS -lcunit $LIBS"
    AC_CHECK_HEADER([CUnit/CUnit.h], [
      AC_MSG_CHECKING([for CU_initialize_registry in -lcunit])
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <CUnit/CUnit.h>]], [[CU_initialize_registry();]])],
        [AC_MSG_RESULT([yes]); have_cunit=yes], [AC_MSG_RESULT([no])])])
    CPPFLAGS="$ift_save_CPPFLAGS"; LIBS="$ift_save_LIBS"
    AS_IF([test "x$have_cunit" = xno],
      [AC_MSG_ERROR([CUnit not found (needed by make check).
  fix: apt-get install libcunit1-dev (Debian), --with-cunit=PREFIX, or --without-cunit to build without tests])])
    CUNIT_LIBS="$CUNIT_LIBS -lcunit"])
  AC_SUBST([CUNIT_CFLAGS])
  AC_SUBST([CUNIT_LIBS])
  AM_CONDITIONAL([HAVE_CUNIT], [test "x$have_cunit" = xyes])
])
