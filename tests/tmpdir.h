/* A temporary directory per test program, made on first use (mkdtemp: the
 * including file includes config.h first, AC_USE_SYSTEM_EXTENSIONS).  Shared by the
 * serial suites that write files (test_hf, test_tok). */
#ifndef IFTRAIN_TESTS_TMPDIR_H
#define IFTRAIN_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The directory ("" before the first ift_tmp_path). */
static char g_dir[64];

/* TEMPLATE/NAME: the directory from TEMPLATE (e.g.
 * "/tmp/ift_test_tok_XXXXXX") on the first call; the last 4 results stay
 * valid. */
static const char *ift_tmp_path(const char *tmpl, const char *name) {
  static char buf[4][256];
  static int k;
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    if (!mkdtemp(g_dir)) abort();
  }
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

/* Remove the directory and what the tests left in it (at the end of main). */
static inline void ift_tmp_remove(void) {
  if (!g_dir[0]) return;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

#endif
