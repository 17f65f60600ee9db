#include "config.h"
/* config: every key refuses values outside its range (at load and in
 * app_config_check) naming the key, the value and the range; the INI reader
 * refuses duplicate keys, over-long lines and non-regular files; the strict
 * number parser of the subcommands' options. */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "../src/app/app.h"
#include "../src/app/app_config.h"

static char dir[] = "/tmp/ift_config_XXXXXX";

static void remove_dir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* The suite's scratch directory, made on first use, removed at exit. */
static const char *scratch(void) {
  static int made = 0;
  if (!made && mkdtemp(dir)) {
    made = 1;
    atexit(remove_dir);
  }
  return dir;
}

/* Write TEXT (LEN bytes) to the scratch directory as NAME; its path. */
static const char *write_file(const char *name, const char *text, size_t len) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", scratch(), name);
  FILE *f = fopen(path, "wb");
  if (!f) return path;
  fwrite(text, 1, len, f);
  fclose(f);
  return path;
}
#define WRITE(name, literal) write_file((name), (literal), sizeof(literal) - 1)

/* KEY = VALUE must be refused with IFT_ERR_CONFIG, the message naming the
 * key and containing FRAGMENT, and the configuration left as it was. */
static void refused(const char *key, const char *value, const char *fragment) {
  app_config c, before;
  app_config_defaults(&c);
  memcpy(&before, &c, sizeof c); /* padding too: compared bytewise below */
  ift_status s = app_config_set(&c, key, value);
  int ok = s == IFT_ERR_CONFIG && strstr(ift_error_last(), key) && strstr(ift_error_last(), fragment) &&
           !memcmp(&c, &before, sizeof c);
  if (!ok)
    fprintf(stderr, "\n  %s = '%s': status %d, message '%s' (wanted '%s')\n", key, value, (int)s,
            ift_error_last(), fragment);
  CU_ASSERT(ok);
}

static void accepted(const char *key, const char *value) {
  app_config c;
  app_config_defaults(&c);
  ift_status s = app_config_set(&c, key, value);
  if (s != IFT_OK) fprintf(stderr, "\n  %s = '%s' refused: %s\n", key, value, ift_error_last());
  CU_ASSERT_EQUAL(s, IFT_OK);
  /* what load accepts, the cross-key check accepts too */
  s = app_config_check(&c, 1, 1);
  if (s != IFT_OK) fprintf(stderr, "\n  %s = '%s' fails the check: %s\n", key, value, ift_error_last());
  CU_ASSERT_EQUAL(s, IFT_OK);
}

static void test_negative_counts(void) {
  ift_error_quiet(1);
  refused("train.steps", "-5", "allowed: >= -1");
  refused("train.epochs", "0", "allowed: >= 1");
  refused("train.batch_size", "0", ">= 1");
  refused("train.micro_batch", "-8", ">= 1");
  refused("train.seq_len", "1", ">= 2");
  refused("train.seed", "-1", ">= 0");
  refused("ckpt.every", "-1", ">= 0");
  refused("ckpt.keep", "0", ">= 1");
  refused("metrics.every", "0", ">= 1");
  refused("eval.every", "-500", ">= 0");
  refused("eval.max_samples", "-1", ">= 0");
  refused("eval.max_new_tokens", "0", ">= 1");
  refused("ift.warmup_steps", "-1", ">= 0");
  refused("optim.warmup", "-0.05", ">= 0");
  refused("dist.tp", "0", ">= 1");
  refused("dist.tp_rows", "-1", ">= 0");
  refused("dist.tp_block", "-64", ">= 0");
  refused("dist.pblas_block", "-1", ">= 0");
  refused("model.vocab_size", "0", ">= 1");
  refused("model.hidden_size", "-128", ">= 1");
  refused("model.num_hidden_layers", "0", ">= 1");
  refused("model.num_key_value_heads", "0", ">= 1");
  refused("model.max_position_embeddings", "0", ">= 1");
  ift_error_quiet(0);
}

static void test_intervals(void) {
  ift_error_quiet(1);
  refused("ift.lambda", "1.5", "allowed: [0, 1]");
  refused("ift.lambda", "-0.1", "[0, 1]");
  refused("ift.gamma", "1.01", "[0, 1]");
  refused("pref.label_smoothing", "0.5", "[0, 0.5)");
  refused("pref.label_smoothing", "-0.1", "[0, 0.5)");
  refused("pref.beta", "-1", ">= 0");
  refused("optim.beta1", "1", "[0, 1)");
  refused("optim.beta2", "1.5", "[0, 1)");
  refused("optim.alpha", "-0.5", "[0, 1)");
  refused("optim.momentum", "1", "[0, 1)");
  refused("optim.lr", "0", "> 0");
  refused("optim.lr", "-3e-3", "> 0");
  refused("optim.eps", "0", "> 0");
  refused("optim.clip", "-1", ">= 0");
  refused("optim.weight_decay", "-0.01", ">= 0");
  refused("model.rms_norm_eps", "0", "> 0");
  refused("model.rope_theta", "-10000", "> 0");
  ift_error_quiet(0);
}

static void test_not_numbers(void) {
  ift_error_quiet(1);
  refused("optim.lr", "nan", "not a finite number");
  refused("optim.lr", "inf", "not a finite number");
  refused("ift.lambda", "-Infinity", "not a finite number");
  refused("optim.clip", "1e999", "not a finite number");
  refused("model.hidden_size", "99999999999", "does not fit in a 32-bit integer");
  refused("train.steps", "99999999999999999999", "does not fit in a 64-bit integer");
  refused("model.init_seed", "-1", "not a whole number");
  refused("train.steps", "5x", "'5x' is not a whole number");
  refused("train.steps", "5.0", "not a whole number");
  refused("train.steps", " 5", "not a whole number");
  refused("train.steps", "0x10", "not a whole number");
  refused("optim.lr", "1e-3abc", "'1e-3abc' is not a number");
  refused("optim.lr", "", "empty value");
  refused("train.steps", "", "empty value");
  refused("ckpt.verify", "2", "not a boolean");
  refused("ckpt.allow_changes", "maybe", "not a boolean");
  refused("optim.name", "adam", "not one of");
  ift_error_quiet(0);
}

static void test_boundaries_accepted(void) {
  ift_error_quiet(1);
  accepted("train.steps", "-1");
  accepted("train.steps", "0");
  accepted("train.steps", "9223372036854775807");
  accepted("train.epochs", "1");
  accepted("train.micro_batch", "1");
  accepted("train.seq_len", "2");
  accepted("ift.lambda", "0");
  accepted("ift.lambda", "1");
  accepted("ift.gamma", "0");
  accepted("ift.gamma", "1.0");
  accepted("pref.label_smoothing", "0");
  accepted("pref.label_smoothing", "0.4999");
  accepted("optim.beta1", "0");
  accepted("optim.beta2", "0.999999");
  accepted("optim.lr", "1e-12");
  accepted("optim.lr", "+2E-4");
  accepted("optim.clip", "0");
  accepted("optim.weight_decay", "0");
  accepted("optim.warmup", "0");
  accepted("ckpt.every", "0");
  accepted("ckpt.keep", "1");
  accepted("eval.every", "0");
  accepted("eval.max_samples", "0");
  accepted("ift.warmup_steps", "0");
  accepted("dist.tp_rows", "0");
  accepted("model.init_seed", "18446744073709551615");
  accepted("ckpt.verify", "0");
  accepted("ckpt.verify", "yes");
  accepted("ckpt.allow_changes", "true");
  ift_error_quiet(0);
}

/* Configs built in code meet the same ranges in app_config_check. */
static void test_check_in_code(void) {
  app_config c;
  ift_error_quiet(1);
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_OK);
  c.optim.lr = NAN;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "optim.lr"));
  app_config_defaults(&c);
  c.optim.beta2 = INFINITY;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "optim.beta2"));
  app_config_defaults(&c);
  c.train.batch_size = 0;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "train.batch_size = 0"));
  app_config_defaults(&c);
  c.ckpt.verify = 2;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "ckpt.verify = 2"));
  app_config_defaults(&c);
  c.train.loss = (loss_kind)6; /* one past simpo */
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "train.loss"));
  app_config_defaults(&c);
  memset(c.ckpt.dir, 'x', sizeof c.ckpt.dir);
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "ckpt.dir"));
  ift_error_quiet(0);
}

static void test_file_errors_name_line(void) {
  app_config c;
  ift_error_quiet(1);
  app_config_defaults(&c);
  const char *p = WRITE("range.ini", "[train]\nsteps = 10\n\n[optim]\nbeta2 = 1.5\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "range.ini:5: optim.beta2 = 1.5 is out of range"));
  app_config_defaults(&c);
  p = WRITE("garbage.ini", "[train]\nsteps = 5x\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "garbage.ini:2: train.steps = '5x'"));
  ift_error_quiet(0);
}

static void test_duplicate_keys(void) {
  app_config c;
  ift_error_quiet(1);
  app_config_defaults(&c);
  const char *p = WRITE("dup.ini", "[train]\nsteps = 3\n# again\n[optim]\nlr = 1e-3\n[train]\nsteps = 4\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "dup.ini:7: train.steps is set twice, on lines 2 and 7"));
  /* the file once and the command line once: the command line wins */
  p = WRITE("once.ini", "[train]\nsteps = 3\n");
  char a0[] = "--train.steps=4", a1[] = "--config=dir/x.ini", *argv[] = {a0, a1};
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, p, 2, argv), IFT_OK);
  CU_ASSERT_EQUAL(c.train.steps, 4);
  ift_error_quiet(0);
}

/* What app_config_write stores (in every checkpoint) loads back unchanged. */
static void test_written_config_loads(void) {
  app_config c, back;
  app_config_defaults(&c);
  c.train.steps = -1;
  c.optim.lr = 2e-4;
  c.ift.lambda = 1;
  c.model.init_seed = UINT64_MAX;
  const char *p = write_file("written.ini", "", 0);
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  app_config_write(f, &c);
  fclose(f);
  app_config_defaults(&back);
  CU_ASSERT_EQUAL(app_config_load(&back, p, 0, NULL), IFT_OK);
  CU_ASSERT(back.train.steps == -1 && back.optim.lr == 2e-4 && back.ift.lambda == 1 &&
            back.model.init_seed == UINT64_MAX);
}

static void test_bom_accepted(void) {
  app_config c;
  app_config_defaults(&c);
  const char *p = WRITE("bom.ini", "\xEF\xBB\xBF[train]\r\nsteps = 7\r\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_OK);
  CU_ASSERT_EQUAL(c.train.steps, 7);
  /* only at the start of the file */
  ift_error_quiet(1);
  p = WRITE("bom2.ini", "[train]\n\xEF\xBB\xBFsteps = 7\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  ift_error_quiet(0);
}

static void test_not_a_regular_file(void) {
  app_config c;
  char fifo[256], missing[256];
  ift_error_quiet(1);
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, scratch(), 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "is a directory, not a regular file"));
  snprintf(fifo, sizeof fifo, "%s/fifo", scratch());
  CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
  /* must not block waiting for a writer */
  CU_ASSERT_EQUAL(app_config_load(&c, fifo, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "is a FIFO, not a regular file"));
  unlink(fifo);
  snprintf(missing, sizeof missing, "%s/missing.ini", scratch());
  CU_ASSERT_EQUAL(app_config_load(&c, missing, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "missing.ini"));
  CU_ASSERT_EQUAL(app_config_load(&c, "", 0, NULL), IFT_ERR_CONFIG);
  ift_error_quiet(0);
}

static void test_long_line_and_nul(void) {
  app_config c;
  static char text[16384];
  ift_error_quiet(1);
  /* a comment is dropped whole, however long, and nothing in it is read ... */
  int n = snprintf(text, sizeof text, "[metrics]\n# %*s\npath = m.jsonl # %*severy = 0\n", 4000, "", 5000, "");
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, write_file("ok.ini", text, (size_t)n), 0, NULL), IFT_OK);
  CU_ASSERT_STRING_EQUAL(c.metrics.path, "m.jsonl");
  CU_ASSERT_EQUAL(c.metrics.every, 1);
  /* ... a value of 180 characters is read whole ... */
  n = snprintf(text, sizeof text, "[metrics]\npath = %0180d\n", 7);
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, write_file("180.ini", text, (size_t)n), 0, NULL), IFT_OK);
  CU_ASSERT_EQUAL(strlen(c.metrics.path), 180);
  CU_ASSERT_EQUAL(c.metrics.path[179], '7');
  /* ... a line longer than the INI reader takes is refused, not read in
   * pieces (the second piece would be a line "every = 0"), and so is one too
   * long to read at all; the command line still takes such a value */
  n = snprintf(text, sizeof text, "[metrics]\npath = x%*s\nevery = 0\n", 300, "every = 0");
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, write_file("long.ini", text, (size_t)n), 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "long.ini:2: line is longer than the"));
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "characters a line of a config file may have"));
  CU_ASSERT_STRING_EQUAL(c.metrics.path, "");
  CU_ASSERT_EQUAL(c.metrics.every, 1);
  n = snprintf(text, sizeof text, "[metrics]\n\npath = %05000d\n", 7);
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, write_file("long2.ini", text, (size_t)n), 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "long2.ini:3: line is longer than 4095 characters"));
  n = snprintf(text, sizeof text, "--metrics.path=%0900d", 7);
  char *argv[] = {text};
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, NULL, 1, argv), IFT_OK);
  CU_ASSERT_EQUAL(strlen(c.metrics.path), 900);
  app_config_defaults(&c);
  const char *p = WRITE("nul.ini", "[train]\nsteps = 5\0 7\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "nul.ini:2: line contains a NUL byte"));
  ift_error_quiet(0);
}

/* The syntax of the files: blanks anywhere, '#' comments anywhere (';' too
 * at the start of a line), an indented line is a line of its own; what is
 * not a header nor key = value is refused naming file:line. */
static void test_syntax(void) {
  app_config c;
  ift_error_quiet(1);
  app_config_defaults(&c);
  const char *p = WRITE("syn.ini", "# header\n  [ train ]  \n\tsteps=9#nine\n  seed = 4\n; a comment\n"
                                   "[optim]\nlr =3e-4   \nname= sgd\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_OK);
  CU_ASSERT(c.train.steps == 9 && c.train.seed == 4 && c.optim.lr == 3e-4 && c.optim.kind == OPTIM_SGD);
  static const struct {
    const char *text, *msg;
  } bad[] = {
      {"[train]\nsteps 5\n", "bad.ini:2: cannot parse 'steps 5'"},
      {"steps = 5\n", "bad.ini:1: cannot parse 'steps = 5'"},
      {"[train\nsteps = 5\n", "bad.ini:1: malformed section header '[train'"},
      {"[train] x\nsteps = 5\n", "bad.ini:1: malformed section header '[train] x'"},
      {"[train]\nstep = 5\n", "bad.ini:2: unknown configuration key 'train.step'"},
      {"[ ]\nsteps = 5\n", "bad.ini:2: cannot parse 'steps = 5'"},
      {"[train]\n  steps = 5\n  seed = -1\n", "bad.ini:3: train.seed = -1 is out of range"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    app_config_defaults(&c);
    p = write_file("bad.ini", bad[i].text, strlen(bad[i].text));
    CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
    if (!strstr(ift_error_last(), bad[i].msg))
      fprintf(stderr, "\n  '%s': message '%s' (wanted '%s')\n", bad[i].text, ift_error_last(), bad[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), bad[i].msg));
  }
  /* did you mean, in a file too */
  app_config_defaults(&c);
  p = WRITE("near.ini", "[optim]\nlearning_rate = 1e-3\n");
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "near.ini:2: unknown configuration key 'optim.learning_rate'"));
  ift_error_quiet(0);
}

static void test_command_line_overrides(void) {
  app_config c;
  ift_error_quiet(1);
  char a0[] = "--train.steps=5x", a1[] = "--optim.lr=1e-3abc", a2[] = "--optim.lr=",
       a3[] = "--train.steps=-5", a4[] = "--optim.beta2=1.5";
  char *bad[] = {a0, a1, a2, a3, a4};
  const char *frag[] = {"train.steps = '5x'", "optim.lr = '1e-3abc'", "optim.lr has an empty value",
                        "train.steps = -5", "optim.beta2 = 1.5"};
  for (int i = 0; i < 5; i++) {
    app_config_defaults(&c);
    CU_ASSERT_EQUAL(app_config_load(&c, NULL, 1, &bad[i]), IFT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), frag[i]));
  }
  ift_error_quiet(0);
}

static void test_option_numbers(void) {
  int i = 0;
  long l = 0;
  double d = 0;
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(app_opt_int("--max-len", "abc", APP_GE(0), &i), IFT_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "--max-len = 'abc' is not a whole number"));
  CU_ASSERT_EQUAL(app_opt_int("--max-len", "12", APP_GE(0), &i), IFT_OK);
  CU_ASSERT_EQUAL(i, 12);
  CU_ASSERT_EQUAL(app_opt_int("--max-len", "-1", APP_GE(0), &i), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(i, 12);
  CU_ASSERT_EQUAL(app_opt_int("--seeds", "1001", APP_IN(1, 1000), &i), IFT_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "allowed: [1, 1000]"));
  CU_ASSERT_EQUAL(app_opt_int("--reps", "3000000000", APP_GE(1), &i), IFT_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "does not fit"));
  CU_ASSERT_EQUAL(app_opt_long("-n", "3000000000", APP_GE(1), &l), IFT_OK);
  CU_ASSERT_EQUAL(l, 3000000000L);
  CU_ASSERT_EQUAL(app_opt_long("-n", "12 ", APP_GE(1), &l), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(app_opt_double("--temperature", "0.7", APP_GE(0), &d), IFT_OK);
  CU_ASSERT_EQUAL(d, 0.7);
  CU_ASSERT_EQUAL(app_opt_double("--lr", "0", APP_GT(0), &d), IFT_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "--lr = 0 is out of range (allowed: > 0)"));
  CU_ASSERT_EQUAL(app_opt_double("--lr", "nan", APP_GT(0), &d), IFT_ERR_ARG);
  CU_ASSERT_EQUAL(d, 0.7);
  ift_error_quiet(0);
}

/* app_getopt: what every subcommand's options go through. */
static int getopt_on(const app_opts *spec, int n, const char *const *args, char **out) {
  static char buf[16][64];
  char *argv[17];
  for (int i = 0; i < n; i++) {
    snprintf(buf[i], sizeof buf[i], "%s", args[i]);
    argv[i] = buf[i];
  }
  argv[n] = NULL;
  int argc = n;
  int rc = app_getopt(spec, &argc, argv);
  for (int i = 0; i < argc; i++) out[i] = argv[i];
  out[argc] = NULL;
  return rc ? -1 : argc;
}

static void test_getopt(void) {
  const char *o = NULL, *name = NULL;
  int flag = 0, k = 0;
  long n = 0;
  double x = 0;
  const app_optdef opts[] = {APP_STR_L("output", 'o', &o), APP_STR("name", &name), APP_FLAG("json", &flag),
                             APP_INT("k", &k, APP_IN(1, 9)), APP_LONG_L(NULL, 'n', &n, APP_GE(1)),
                             APP_DOUBLE("lr", &x, APP_GT(0)), {0}};
  app_opts spec = {.cmd = "test", .opts = opts, .max_args = 2};
  char *rest[17];
  ift_error_quiet(1);
  /* both spellings, short options with and without a blank, arguments anywhere */
  const char *a1[] = {"test", "in1", "--output=x.h5", "--name", "N", "--json", "-n", "12", "--k=3", "in2", "--lr", "0.5"};
  CU_ASSERT_EQUAL(getopt_on(&spec, 12, a1, rest), 3);
  CU_ASSERT(!strcmp(o, "x.h5") && !strcmp(name, "N") && flag == 1 && n == 12 && k == 3 && x == 0.5);
  CU_ASSERT(!strcmp(rest[0], "test") && !strcmp(rest[1], "in1") && !strcmp(rest[2], "in2"));
  const char *a2[] = {"test", "-oy.h5", "-n7", "--", "--json"};
  CU_ASSERT_EQUAL(getopt_on(&spec, 5, a2, rest), 2);
  CU_ASSERT(!strcmp(o, "y.h5") && n == 7 && !strcmp(rest[1], "--json"));
  /* usage errors: unknown option, missing value, a flag with a value, a
   * number out of range or with garbage, one argument too many */
  const char *bad[][4] = {{"test", "--bogus"}, {"test", "--name"}, {"test", "--json=1"}, {"test", "--k=10"},
                          {"test", "-n", "5x"}, {"test", "a", "b", "c"}, {"test", "--train.steps=5"}};
  const int nbad[] = {2, 2, 2, 2, 3, 4, 2};
  for (int i = 0; i < 7; i++) CU_ASSERT_EQUAL(getopt_on(&spec, nbad[i], bad[i], rest), -1);
  CU_ASSERT_EQUAL(k, 3); /* a refused value leaves the option as it was */
  /* configuration overrides kept, in order, beside the options */
  spec.keep = APP_KEEP_OVERRIDES;
  spec.max_args = 0;
  const char *a3[] = {"train", "--train.steps=5", "--json", "--optim.lr=1e-3"};
  CU_ASSERT_EQUAL(getopt_on(&spec, 4, a3, rest), 3);
  CU_ASSERT(!strcmp(rest[1], "--train.steps=5") && !strcmp(rest[2], "--optim.lr=1e-3"));
  const char *a4[] = {"train", "--config=dir/x.ini"};
  CU_ASSERT_EQUAL(getopt_on(&spec, 2, a4, rest), -1);
  /* every unknown argument kept, in order (the global options' pass) */
  spec.keep = APP_KEEP_UNKNOWN;
  const char *a5[] = {"eval", "--ckpt", "c.h5", "--json", "-xy", "--seed=-1", "-o", "z"};
  o = NULL;
  CU_ASSERT_EQUAL_FATAL(getopt_on(&spec, 8, a5, rest), 5);
  CU_ASSERT(!strcmp(rest[1], "--ckpt") && !strcmp(rest[2], "c.h5") && !strcmp(rest[3], "-xy") &&
            !strcmp(rest[4], "--seed=-1") && o && !strcmp(o, "z"));
  ift_error_quiet(0);
}

static void test_int_lists(void) {
  int v[4];
  CU_ASSERT_EQUAL(app_parse_int_list("64,128", v, 4), 2);
  CU_ASSERT(v[0] == 64 && v[1] == 128);
  CU_ASSERT_EQUAL(app_parse_int_list("64,128,", v, 4), -1);
  CU_ASSERT_EQUAL(app_parse_int_list("64, 128", v, 4), -1);
  CU_ASSERT_EQUAL(app_parse_int_list("+64", v, 4), -1);
  CU_ASSERT_EQUAL(app_parse_int_list("0", v, 4), -1);
  CU_ASSERT_EQUAL(app_parse_int_list("99999999999", v, 4), -1);
  CU_ASSERT_EQUAL(app_parse_int_list("1,2,3,4,5", v, 4), -1); /* not cut to 4 */
}

static void test_range_text(void) {
  char s[64];
  app_range_str(s, sizeof s, APP_GE(1));
  CU_ASSERT_STRING_EQUAL(s, ">= 1");
  app_range_str(s, sizeof s, APP_GT(0));
  CU_ASSERT_STRING_EQUAL(s, "> 0");
  app_range_str(s, sizeof s, APP_IN_CO(0, 0.5));
  CU_ASSERT_STRING_EQUAL(s, "[0, 0.5)");
  app_range_str(s, sizeof s, APP_ANY);
  CU_ASSERT_STRING_EQUAL(s, "");
  CU_ASSERT(app_range_has(APP_IN(0, 1), 1) && !app_range_has(APP_IN_CO(0, 1), 1));
  CU_ASSERT(!app_range_has(APP_ANY, NAN) && !app_range_has(APP_ANY, INFINITY));
}

static CU_TestInfo tests[] = {{"negative counts refused, key and range named", test_negative_counts},
                              {"probabilities and positive reals outside their intervals", test_intervals},
                              {"NaN, Inf, overflow, trailing garbage, empty values", test_not_numbers},
                              {"boundary values accepted", test_boundaries_accepted},
                              {"app_config_check refuses bad values set in code", test_check_in_code},
                              {"errors in a file name file:line and key", test_file_errors_name_line},
                              {"duplicate keys name both lines; file + command line is fine", test_duplicate_keys},
                              {"a written config loads back", test_written_config_loads},
                              {"UTF-8 BOM accepted", test_bom_accepted},
                              {"directory, FIFO, missing file refused", test_not_a_regular_file},
                              {"long comments read, over-long lines and NUL bytes refused", test_long_line_and_nul},
                              {"INI syntax: blanks, comments, malformed lines", test_syntax},
                              {"command-line overrides with garbage refused", test_command_line_overrides},
                              {"strict numeric options", test_option_numbers},
                              {"options through getopt_long: spellings, errors, kept arguments", test_getopt},
                              {"comma lists of positive ints", test_int_lists},
                              {"range text", test_range_text},
                              CU_TEST_INFO_NULL};

IFT_TEST_MAIN("config", tests)
