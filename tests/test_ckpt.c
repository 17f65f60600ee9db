/* ckpt (include/iftrain/ckpt.h), one rank on MPI_COMM_SELF: a save/load
 * round trip is bit-exact (weights, optimizer moments and step, the /train
 * state); ckpt_verify and a verified load find one flipped bit in a
 * tensor's data and name the tensor; ckpt.keep keeps the newest of the run;
 * `latest` names the newest; ckpt_resolve and ckpt_resolve_any of "auto",
 * "none", a directory, a `latest` file and a missing directory. */
#define _GNU_SOURCE /* memmem, mkdtemp */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "iftrain/ckpt.h"
#include "iftrain/optim.h"
#include "tmpdir.h"

#define TMPL "/tmp/ift_test_ckpt_XXXXXX"

static model_config tiny(void) {
  model_config c = model_config_default();
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 16;
  c.tie_word_embeddings = 0;
  return c;
}

/* Values that only a bit-exact path keeps: random normals at every scale,
 * a negative zero, a subnormal. */
static void fill(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(rng_normal(seed, 0, i) * pow(10.0, (double)(int)(rng_uniform(seed, 1, i) * 12) - 6));
  x[0] = -0.0f;
  x[1] = 1e-40f;
}

static const char *cfg_text = "[train]\nsteps = 5\n";

/* A model and AdamW state filled with fill(); saved to DIR as step `step`. */
static ift_status save_step(const char *dir, int keep, long step, const char *run_id, uint64_t seed,
                            char *path) {
  model_config c = tiny();
  model *m;
  if (model_create(&m, &c, MPI_COMM_NULL, 1, 4) != IFT_OK) return IFT_ERR_NOMEM;
  fill(model_params(m), model_nparams(m), seed);
  optim_cfg oc = optim_defaults(OPTIM_ADAMW);
  optim_state os;
  ift_status s = optim_create(&os, &oc, model_nparams(m));
  if (s == IFT_OK) {
    fill(os.m, model_nparams(m), seed + 1);
    fill(os.v, model_nparams(m), seed + 2);
    for (size_t i = 0; i < model_nparams(m); i++) os.v[i] = fabsf(os.v[i]);
    os.t = step; /* ckpt_load checks it against /train step */
    ckpt_meta meta = {.step = step, .epoch = 1, .cursor = 42, .config_text = cfg_text, .dp = 1, .tp = 1,
                      .run_id = run_id, .data_hash = "ab12"};
    s = ckpt_save(dir, keep, m, &os, &meta, MPI_COMM_SELF, 0, path);
    optim_destroy(&os);
  }
  model_destroy(m);
  return s;
}

static void test_round_trip_bit_exact(void) {
  const char *dir = ift_tmp_path(TMPL, "rt");
  char run[CKPT_RUN_ID_LEN], path[1100];
  ckpt_new_run_id(run);
  CU_ASSERT_EQUAL_FATAL(ckpt_dir_claim(dir, run, 0, MPI_COMM_SELF), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(save_step(dir, 0, 5, run, 11, path), IFT_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(path, "step_5.h5"));

  /* what was saved, again (fill is deterministic) */
  model_config c = tiny();
  model *want, *got;
  CU_ASSERT_EQUAL_FATAL(model_create(&want, &c, MPI_COMM_NULL, 1, 4), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(model_create(&got, &c, MPI_COMM_NULL, 1, 4), IFT_OK);
  const size_t n = model_nparams(want);
  fill(model_params(want), n, 11);
  model_init_weights(got, 5);
  CU_ASSERT_NOT_EQUAL(memcmp(model_params(got), model_params(want), n * sizeof(float)), 0);
  optim_cfg oc = optim_defaults(OPTIM_ADAMW);
  optim_state os;
  CU_ASSERT_EQUAL_FATAL(optim_create(&os, &oc, n), IFT_OK);
  ckpt_train_state ts = {0};
  CU_ASSERT_EQUAL_FATAL(ckpt_load(path, got, &os, &ts, MPI_COMM_SELF, CKPT_VERIFY), IFT_OK);
  CU_ASSERT_EQUAL(memcmp(model_params(got), model_params(want), n * sizeof(float)), 0);
  float *x = malloc(n * sizeof(float));
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  fill(x, n, 12);
  CU_ASSERT_EQUAL(memcmp(os.m, x, n * sizeof(float)), 0);
  fill(x, n, 13);
  for (size_t i = 0; i < n; i++) x[i] = fabsf(x[i]);
  CU_ASSERT_EQUAL(memcmp(os.v, x, n * sizeof(float)), 0);
  CU_ASSERT_EQUAL(os.t, 5);
  CU_ASSERT_EQUAL(ts.step, 5);
  CU_ASSERT_EQUAL(ts.epoch, 1);
  CU_ASSERT_EQUAL(ts.cursor, 42);
  CU_ASSERT_STRING_EQUAL(ts.run_id, run);
  CU_ASSERT_STRING_EQUAL(ts.data_hash, "ab12");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ts.config_text);
  CU_ASSERT_STRING_EQUAL(ts.config_text, cfg_text);
  /* the stored model config reads back */
  model_config rc;
  CU_ASSERT_EQUAL(ckpt_read_config(path, &rc), IFT_OK);
  char diff[256];
  CU_ASSERT_EQUAL(model_config_diff(&rc, &c, diff, sizeof diff), 0);
  ckpt_train_state_free(&ts);
  free(x);
  optim_destroy(&os);
  model_destroy(want);
  model_destroy(got);
}

static int read_all(const char *p, char **buf, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  *buf = malloc(*n);
  size_t r = *buf ? fread(*buf, 1, *n, f) : 0;
  fclose(f);
  return r == *n ? 0 : -1;
}

static int write_all(const char *p, const char *buf, size_t n) {
  FILE *f = fopen(p, "wb");
  if (!f) return -1;
  size_t w = fwrite(buf, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

/* One bit flipped inside lm_head.weight's stored floats (found in the file
 * by its bytes): verify and a verified load refuse it naming the tensor; an
 * unverified load reads the flipped value. */
static void test_flipped_bit_detected(void) {
  const char *dir = ift_tmp_path(TMPL, "flip");
  char run[CKPT_RUN_ID_LEN], path[1100];
  ckpt_new_run_id(run);
  CU_ASSERT_EQUAL_FATAL(ckpt_dir_claim(dir, run, 0, MPI_COMM_SELF), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(save_step(dir, 0, 1, run, 21, path), IFT_OK);
  long nt = 0;
  FILE *devnull = fopen("/dev/null", "w");
  CU_ASSERT_EQUAL(ckpt_verify(path, devnull, &nt), IFT_OK);

  model_config c = tiny();
  model *m;
  CU_ASSERT_EQUAL_FATAL(model_create(&m, &c, MPI_COMM_NULL, 1, 4), IFT_OK);
  CU_ASSERT(nt >= model_ntensors(m));
  fill(model_params(m), model_nparams(m), 21);
  const model_tensor *t = model_tensor_find(m, "lm_head.weight");
  const size_t at = 100; /* an element inside the tensor */
  const float *needle = model_params(m) + t->offset + at;
  char *buf = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(read_all(path, &buf, &n), 0);
  char *hit = memmem(buf, n, needle, 16 * sizeof(float));
  CU_ASSERT_PTR_NOT_NULL_FATAL(hit); /* stored raw, little-endian */
  CU_ASSERT_PTR_NULL(memmem(hit + 1, n - (size_t)(hit + 1 - buf), needle, 16 * sizeof(float)));
  hit[1] ^= 0x10; /* a mantissa bit of element `at` */
  char bad[1200];
  snprintf(bad, sizeof bad, "%s/bad.h5", dir);
  CU_ASSERT_EQUAL_FATAL(write_all(bad, buf, n), 0);
  free(buf);

  ift_error_quiet(1);
  CU_ASSERT_EQUAL(ckpt_verify(bad, devnull, &nt), IFT_ERR_FORMAT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "lm_head.weight"));
  CU_ASSERT_NOT_EQUAL(ckpt_load(bad, m, NULL, NULL, MPI_COMM_SELF, CKPT_VERIFY), IFT_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "lm_head.weight"));
  ift_error_quiet(0);
  /* without CKPT_VERIFY the flipped value is what is read */
  model_init_weights(m, 1);
  CU_ASSERT_EQUAL(ckpt_load(bad, m, NULL, NULL, MPI_COMM_SELF, 0), IFT_OK);
  float want[2];
  float *all = malloc(model_nparams(m) * sizeof(float));
  CU_ASSERT_PTR_NOT_NULL_FATAL(all);
  fill(all, model_nparams(m), 21);
  memcpy(want, all + t->offset + at, sizeof want);
  CU_ASSERT_NOT_EQUAL(memcmp(model_params(m) + t->offset + at, want, sizeof(float)), 0);
  CU_ASSERT_EQUAL(memcmp(model_params(m) + t->offset + at + 1, want + 1, sizeof(float)), 0);
  /* every other element is intact */
  all[t->offset + at] = model_params(m)[t->offset + at];
  CU_ASSERT_EQUAL(memcmp(model_params(m), all, model_nparams(m) * sizeof(float)), 0);
  free(all);
  fclose(devnull);
  model_destroy(m);
}

static int exists(const char *dir, const char *name) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

/* keep = 2: after steps 1..4 only 3 and 4 remain; latest names step 4. */
static void test_keep_and_latest(void) {
  const char *dir = ift_tmp_path(TMPL, "keep");
  char run[CKPT_RUN_ID_LEN], path[1100];
  ckpt_new_run_id(run);
  CU_ASSERT_EQUAL_FATAL(ckpt_dir_claim(dir, run, 0, MPI_COMM_SELF), IFT_OK);
  for (long s = 1; s <= 4; s++) {
    CU_ASSERT_EQUAL_FATAL(save_step(dir, 2, s, run, 30 + (uint64_t)s, path), IFT_OK);
    CU_ASSERT(exists(dir, "latest"));
  }
  CU_ASSERT(!exists(dir, "step_1.h5"));
  CU_ASSERT(!exists(dir, "step_2.h5"));
  CU_ASSERT(exists(dir, "step_3.h5"));
  CU_ASSERT(exists(dir, "step_4.h5"));
  CU_ASSERT(!exists(dir, "step_4.h5.tmp"));
  CU_ASSERT(!exists(dir, "latest.tmp"));
  char lp[1200], *buf = NULL;
  size_t n = 0;
  snprintf(lp, sizeof lp, "%s/latest", dir);
  CU_ASSERT_EQUAL_FATAL(read_all(lp, &buf, &n), 0);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  const char *base = buf;
  for (size_t i = 0; i < n; i++) /* latest may name the file with or without its directory */
    if (buf[i] == '/') base = buf + i + 1;
  CU_ASSERT_EQUAL(n - (size_t)(base - buf), strlen("step_4.h5"));
  CU_ASSERT_EQUAL(strncmp(base, "step_4.h5", strlen("step_4.h5")), 0);
  free(buf);
  /* keep = 0 keeps everything */
  CU_ASSERT_EQUAL_FATAL(save_step(dir, 0, 5, run, 35, path), IFT_OK);
  CU_ASSERT(exists(dir, "step_3.h5") && exists(dir, "step_4.h5") && exists(dir, "step_5.h5"));
}

static void expect_resolved(const char *got, const char *dir, const char *name) {
  char want[1200];
  snprintf(want, sizeof want, "%s/%s", dir, name);
  if (strcmp(got, want)) fprintf(stderr, "\n  resolved '%s', expected '%s'", got, want);
  CU_ASSERT_STRING_EQUAL(got, want);
}

/* auto, none, a path, a directory (its latest), a `latest` file; without
 * `latest` the newest step by number (step_10 after step_9). */
static void test_resolve(void) {
  const char *dir = ift_tmp_path(TMPL, "res");
  char run[CKPT_RUN_ID_LEN], path[1100], out[1200], p[1200];
  ckpt_new_run_id(run);
  CU_ASSERT_EQUAL_FATAL(ckpt_dir_claim(dir, run, 0, MPI_COMM_SELF), IFT_OK);
  CU_ASSERT_EQUAL(ckpt_resolve(out, sizeof out, "auto", dir), IFT_OK);
  CU_ASSERT_STRING_EQUAL(out, ""); /* nothing to resume: a fresh run */
  CU_ASSERT_EQUAL_FATAL(save_step(dir, 0, 9, run, 41, path), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(save_step(dir, 0, 10, run, 42, path), IFT_OK);
  CU_ASSERT_EQUAL(ckpt_resolve(out, sizeof out, "auto", dir), IFT_OK);
  expect_resolved(out, dir, "step_10.h5");
  CU_ASSERT_EQUAL(ckpt_resolve(out, sizeof out, "none", dir), IFT_OK);
  CU_ASSERT_STRING_EQUAL(out, "");
  snprintf(p, sizeof p, "%s/step_9.h5", dir);
  CU_ASSERT_EQUAL(ckpt_resolve(out, sizeof out, p, dir), IFT_OK);
  CU_ASSERT_STRING_EQUAL(out, p);
  CU_ASSERT_EQUAL(ckpt_resolve_any(out, sizeof out, dir), IFT_OK);
  expect_resolved(out, dir, "step_10.h5");
  snprintf(p, sizeof p, "%s/latest", dir);
  CU_ASSERT_EQUAL(ckpt_resolve_any(out, sizeof out, p), IFT_OK);
  expect_resolved(out, dir, "step_10.h5");
  /* a latest that points at step 9 is followed, not the newest file */
  CU_ASSERT_EQUAL_FATAL(write_all(p, "step_9.h5\n", 10), 0);
  CU_ASSERT_EQUAL(ckpt_resolve_any(out, sizeof out, dir), IFT_OK);
  expect_resolved(out, dir, "step_9.h5");
  /* no latest: the newest by step number */
  CU_ASSERT_EQUAL_FATAL(unlink(p), 0);
  CU_ASSERT_EQUAL(ckpt_resolve(out, sizeof out, "auto", dir), IFT_OK);
  expect_resolved(out, dir, "step_10.h5");
  /* a directory without checkpoints, and one that does not exist */
  const char *empty = ift_tmp_path(TMPL, "empty");
  CU_ASSERT_EQUAL_FATAL(mkdir(empty, 0755), 0);
  ift_error_quiet(1);
  CU_ASSERT_NOT_EQUAL(ckpt_resolve_any(out, sizeof out, empty), IFT_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "holds no checkpoint"));
  CU_ASSERT_NOT_EQUAL(ckpt_resolve_any(out, sizeof out, ift_tmp_path(TMPL, "missing")), IFT_OK);
  ift_error_quiet(0);
}

static CU_TestInfo tests[] = {{"save/load round trip is bit-exact (weights, moments, /train)", test_round_trip_bit_exact},
                              {"one flipped bit: verify and a verified load name the tensor", test_flipped_bit_detected},
                              {"ckpt.keep keeps the newest; latest names the newest", test_keep_and_latest},
                              {"resolve: auto, none, a path, a directory, a latest file", test_resolve},
                              CU_TEST_INFO_NULL};

int main(void) {
  MPI_Init(NULL, NULL);
  const int rc = ift_test_run("ckpt", tests);
  ift_tmp_remove();
  MPI_Finalize();
  return rc;
}
