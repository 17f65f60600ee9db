/* config keys (src/app/app_config.h): the defaults of docs/config.md,
 * a key of every type (integer, number, choice, string, 0 or 1) set from a
 * command-line override and from a file (the override winning), a refused
 * value of every type naming the key and leaving it as it was, and the "did
 * you mean" hint of an unknown key.  (tests/test_config.c: every range,
 * the INI reader's refusals.) */
#define _GNU_SOURCE /* mkdtemp */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "../src/app/app_config.h"
#include "tmpdir.h"

#define TMPL "/tmp/ift_test_config_keys_XXXXXX"

static void test_defaults(void) {
  app_config c;
  memset(&c, 0x5a, sizeof c); /* every default must be written, not left */
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(c.train.loss, LOSS_IFT);
  CU_ASSERT_EQUAL(c.train.steps, 1500);
  CU_ASSERT_EQUAL(c.train.batch_size, 32);
  CU_ASSERT_EQUAL(c.train.seed, 1);
  CU_ASSERT_EQUAL(c.train.packing, 0);
  IFT_ASSERT_CLOSE(c.ift.lambda, 0.2, 0, 0);
  IFT_ASSERT_CLOSE(c.ift.gamma, 0.95, 0, 0);
  CU_ASSERT_EQUAL(c.ift.side, IFT_SIDE_LEFT);
  CU_ASSERT_EQUAL(c.ift.schedule, LAMBDA_STATIC);
  CU_ASSERT_EQUAL(c.ift.embed_grad, 0);
  CU_ASSERT_EQUAL(c.optim.kind, OPTIM_ADAMW);
  IFT_ASSERT_CLOSE(c.optim.lr, 0.003, 0, 0);
  IFT_ASSERT_CLOSE(c.optim.beta2, 0.999, 0, 0);
  CU_ASSERT_EQUAL(c.data.shuffle, 1);
  CU_ASSERT_STRING_EQUAL(c.ckpt.dir, "runs/default");
  CU_ASSERT_EQUAL(c.ckpt.keep, 2);
  CU_ASSERT_EQUAL(c.ckpt.verify, 1);
  const size_t n = strlen(c.data.train);
  CU_ASSERT(n >= strlen("arith_train.h5") && !strcmp(c.data.train + n - strlen("arith_train.h5"), "arith_train.h5"));
  /* the defaults pass every check, on one rank */
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_OK);
}

/* One key of each type from the command line. */
static void test_override_each_type(void) {
  app_config c;
  app_config_defaults(&c);
  char *argv[] = {"iftrain", "--train.steps=7",     /* integer */
                  "--optim.lr=2.5e-4",              /* number */
                  "--train.loss=sft",               /* choice */
                  "--ift.side=right",               /* choice (another enum) */
                  "--data.train=/x/y z.h5",         /* string */
                  "--data.shuffle=0",               /* 0 or 1 */
                  "positional", NULL};              /* not a key: left alone */
  CU_ASSERT_EQUAL_FATAL(app_config_load(&c, NULL, 8, argv), IFT_OK);
  CU_ASSERT_EQUAL(c.train.steps, 7);
  IFT_ASSERT_CLOSE(c.optim.lr, 2.5e-4, 0, 0);
  CU_ASSERT_EQUAL(c.train.loss, LOSS_SFT);
  CU_ASSERT_EQUAL(c.ift.side, IFT_SIDE_RIGHT);
  CU_ASSERT_STRING_EQUAL(c.data.train, "/x/y z.h5");
  CU_ASSERT_EQUAL(c.data.shuffle, 0);
  /* untouched keys keep their defaults */
  CU_ASSERT_EQUAL(c.train.batch_size, 32);
  CU_ASSERT_EQUAL(c.optim.kind, OPTIM_ADAMW);
}

/* A file sets keys, the command line overrides the file. */
static void test_file_then_override(void) {
  const char *p = ift_tmp_path(TMPL, "a.ini");
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("# comment\n[train]\nsteps = 3\nloss = dpo\n\n[ift]\ngamma = 0.5\n[optim]\nname = sgd\n", f);
  fclose(f);
  app_config c;
  app_config_defaults(&c);
  char *argv[] = {"iftrain", "--train.steps=9", NULL};
  CU_ASSERT_EQUAL_FATAL(app_config_load(&c, p, 2, argv), IFT_OK);
  CU_ASSERT_EQUAL(c.train.steps, 9);
  CU_ASSERT_EQUAL(c.train.loss, LOSS_DPO);
  IFT_ASSERT_CLOSE(c.ift.gamma, 0.5, 0, 0);
  CU_ASSERT_EQUAL(c.optim.kind, OPTIM_SGD);
}

/* A refused value: IFT_ERR_CONFIG, the message names the key and the
 * fragment, the key keeps its value. */
static void refused(const char *key, const char *value, const char *frag) {
  app_config c, before;
  app_config_defaults(&c);
  before = c;
  ift_error_quiet(1);
  const ift_status s = app_config_set(&c, key, value);
  ift_error_quiet(0);
  CU_ASSERT_EQUAL(s, IFT_ERR_CONFIG);
  const char *msg = ift_error_last();
  if (!strstr(msg, key) || !strstr(msg, frag))
    fprintf(stderr, "\n  %s = %s: message '%s' lacks '%s'", key, value, msg, frag);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, key));
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, frag));
  CU_ASSERT_EQUAL(memcmp(&c, &before, sizeof c), 0);
}

static void test_range_errors_each_type(void) {
  refused("train.steps", "-2", "out of range (allowed: >= -1)");
  refused("train.batch_size", "0", "out of range");
  refused("optim.lr", "0", "out of range");
  refused("optim.beta2", "1", "out of range (allowed: [0, 1))");
  refused("ift.lambda", "1.5", "out of range");
  refused("optim.lr", "1e-3x", "is not a number");
  refused("train.loss", "rlhf", "rlhf");
  refused("data.shuffle", "2", "data.shuffle");
  /* and what the override path gives for the same */
  app_config c;
  app_config_defaults(&c);
  char *argv[] = {"iftrain", "--ift.gamma=-0.1", NULL};
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(app_config_load(&c, NULL, 2, argv), IFT_ERR_CONFIG);
  ift_error_quiet(0);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "ift.gamma"));
}

/* The hint of an error is printed (stderr), not kept: app_config_load
 * with stderr captured; what it printed in OUT. */
static ift_status load_captured(app_config *c, const char *path, int argc, char **argv, char *out, size_t cap) {
  const char *p = ift_tmp_path(TMPL, "stderr.txt");
  fflush(stderr);
  const int saved = dup(2), fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  const ift_status s = app_config_load(c, path, argc, argv);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  out[0] = 0;
  FILE *f = fopen(p, "r");
  if (f) {
    out[fread(out, 1, cap - 1, f)] = 0;
    fclose(f);
  }
  return s;
}

static void expect_hint(const char *opt, const char *near) {
  app_config c;
  app_config_defaults(&c);
  char *argv[] = {"iftrain", (char *)opt, NULL}, err[2048], want[128];
  CU_ASSERT_EQUAL(load_captured(&c, NULL, 2, argv, err, sizeof err), IFT_ERR_CONFIG);
  snprintf(want, sizeof want, "did you mean '%s'", near);
  if (!strstr(err, want)) fprintf(stderr, "\n  %s: '%s' lacks \"%s\"", opt, err, want);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

static void test_did_you_mean(void) {
  expect_hint("--optim.learning_rate=1", "optim.lr");
  expect_hint("--train.step=5", "train.steps");
  expect_hint("--trian.steps=5", "train.steps");
  expect_hint("--ift.gama=0.5", "ift.gamma");
  /* nothing near: refused without a guess */
  app_config c;
  app_config_defaults(&c);
  char *argv[] = {"iftrain", "--zzzz.qqqqqq=1", NULL}, err[2048];
  CU_ASSERT_EQUAL(load_captured(&c, NULL, 2, argv, err, sizeof err), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "zzzz.qqqqqq"));
  CU_ASSERT_PTR_NULL(strstr(err, "did you mean"));
  /* in a file, with its line */
  const char *p = ift_tmp_path(TMPL, "typo.ini");
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("[optim]\nlr = 0.01\nwieght_decay = 0.1\n", f);
  fclose(f);
  CU_ASSERT_EQUAL(load_captured(&c, p, 0, NULL, err, sizeof err), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "typo.ini:3"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "did you mean 'optim.weight_decay'"));
}

static CU_TestInfo tests[] = {{"defaults of docs/config.md", test_defaults},
                              {"override: integer, number, choice, string, 0 or 1", test_override_each_type},
                              {"file, then the command line wins", test_file_then_override},
                              {"refused values of every type name the key, keep the value", test_range_errors_each_type},
                              {"unknown keys: did you mean", test_did_you_mean},
                              CU_TEST_INFO_NULL};

int main(void) {
  const int rc = ift_test_run("config keys", tests);
  if (g_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
  }
  return rc;
}
