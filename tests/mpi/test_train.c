/* train: the global-batch loss of DP = 2 equals DP = 1 (same seed, same
 * global batches) for SFT and IFT; configuration errors name their cause. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/app/app.h"
#include "iftrain/kern.h"
#include "../../src/app/app_train.h"
#include "mpi_harness.h"

static char data_path[256];

static void tiny(app_config *c, loss_kind k) {
  app_config_defaults(c);
  c->model.hidden_size = 32;
  c->model.intermediate_size = 64;
  c->model.num_hidden_layers = 2;
  c->model.num_attention_heads = 4;
  c->model.num_key_value_heads = 2;
  c->train.loss = k;
  c->train.steps = 3;
  c->train.batch_size = 8;
  c->train.micro_batch = 2;
  c->optim.lr = 3e-3;
  snprintf(c->data.train, sizeof c->data.train, "%s", data_path);
  c->data.eval[0] = 0;
  c->ckpt.dir[0] = 0;
}

static void check_dp_equal(loss_kind k) {
  app_config c;
  tiny(&c, k);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  train_result r2, r1;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &r2), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &r1), IFT_OK);
  CU_ASSERT_EQUAL(r1.steps, 3);
  for (int s = 0; s < 3; s++) {
    IFT_ASSERT_CLOSE(r2.loss[s], r1.loss[s], 1e-5, 0);
    CU_ASSERT(r1.loss[s] > 0);
  }
  CU_ASSERT(r1.loss[2] < r1.loss[0]); /* it learns */
}
static void test_dp_sft(void) { check_dp_equal(LOSS_SFT); }
static void test_dp_ift(void) { check_dp_equal(LOSS_IFT); }
static void test_dp_orpo(void) { check_dp_equal(LOSS_ORPO); }
static void test_dp_simpo(void) { check_dp_equal(LOSS_SIMPO); }

/* Packing (train.packing = 1): the losses of the unpacked run on one rank,
 * packed on one rank, on DP 2 and on TP 2 (the packs come from rank 0's
 * scheduler, the same for every layout). */
static void check_packed(loss_kind k) {
  app_config c;
  tiny(&c, k);
  c.train.seq_len = 96; /* 3-4 rows of the arith set per pack */
  c.model.max_position_embeddings = 96;
  train_result un, p1, p2, t2;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &un), IFT_OK);
  c.train.packing = 1;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &p1), IFT_OK);
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &p2), IFT_OK);
  c.dist.tp = 2;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &t2), IFT_OK);
  CU_ASSERT_EQUAL(p1.steps, 3);
  for (int s = 0; s < 3; s++) {
    IFT_ASSERT_CLOSE(p1.loss[s], un.loss[s], 1e-5, 0);
    IFT_ASSERT_CLOSE(p2.loss[s], un.loss[s], 1e-5, 0);
    IFT_ASSERT_CLOSE(t2.loss[s], un.loss[s], 1e-5, 0);
  }
  CU_ASSERT_EQUAL(p1.tokens, un.tokens);
  CU_ASSERT(p1.loss[2] < p1.loss[0]);
}
static void test_packed_ift(void) { check_packed(LOSS_IFT); }
static void test_packed_orpo(void) { check_packed(LOSS_ORPO); }

/* DPO and IPO on a reference cache: the step-0 model as its own reference
 * gives the first loss log 2 (DPO) and (1/(2 beta))^2 (IPO) exactly; DP 2
 * equals DP 1; a cache from another model, a missing cache and a missing
 * reference are refused with their fix. */
static void test_ref_cache(void) {
  int rank, pid = (int)getpid();
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  char dir[128], ref[200], other[200], dpath[200], cmd[600];
  snprintf(dir, sizeof dir, "/tmp/iftrain-test-resume-%d-ref", pid);
  snprintf(dpath, sizeof dpath, "%s/pairs.h5", dir);
  app_config c;
  tiny(&c, LOSS_SFT);
  c.train.steps = 0;
  snprintf(c.ckpt.dir, sizeof c.ckpt.dir, "%s/ref", dir);
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK);
  snprintf(ref, sizeof ref, "%s/ref/step_0.h5", dir);
  c.train.steps = 1;
  snprintf(c.ckpt.dir, sizeof c.ckpt.dir, "%s/other", dir);
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK);
  snprintf(other, sizeof other, "%s/other/step_1.h5", dir);
  if (rank == 0) {
    snprintf(cmd, sizeof cmd, "cp %s %s", data_path, dpath);
    CU_ASSERT_EQUAL(system(cmd), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ift_error_quiet(1);
  /* no cache yet */
  tiny(&c, LOSS_DPO);
  snprintf(c.data.train, sizeof c.data.train, "%s", dpath);
  snprintf(c.ckpt.init, sizeof c.ckpt.init, "%s", ref);
  CU_ASSERT_EQUAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_ERR_CONFIG);
  if (rank == 0) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "no cached reference log-probs"));
  CU_ASSERT_EQUAL(app_ref_logp(ref, dpath, 3), 0);
  /* no reference named */
  c.ckpt.init[0] = 0;
  CU_ASSERT_EQUAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_ERR_CONFIG);
  if (rank == 0) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "needs a reference model"));
  /* a reference other than the cache's */
  snprintf(c.ckpt.init, sizeof c.ckpt.init, "%s", ref);
  snprintf(c.pref.reference, sizeof c.pref.reference, "%s", other);
  CU_ASSERT_EQUAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_ERR_CONFIG);
  if (rank == 0) CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "computed from another model"));
  c.pref.reference[0] = 0;
  ift_error_quiet(0);
  for (int k = 0; k < 2; k++) {
    c.train.loss = k ? LOSS_IPO : LOSS_DPO;
    train_result r2, r1;
    CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &r2), IFT_OK);
    CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &r1), IFT_OK);
    IFT_ASSERT_CLOSE(r1.loss[0], k ? 25.0 : log(2.0), 1e-5, 0);
    for (int s = 0; s < 3; s++) IFT_ASSERT_CLOSE(r2.loss[s], r1.loss[s], 1e-5, 0);
    CU_ASSERT(r1.loss[2] < r1.loss[0]);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void run_dir(app_config *c, const char *tag, int steps, const char *resume) {
  int pid = (int)getpid(), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  snprintf(c->ckpt.dir, sizeof c->ckpt.dir, "/tmp/iftrain-test-resume-%d-%s", pid, tag);
  snprintf(c->ckpt.resume, sizeof c->ckpt.resume, "%s", resume);
  c->train.steps = steps;
}

/* N steps, checkpoint, resume, N more == 2N uninterrupted: bit for bit on
 * the same layout (losses, weights, optimizer state), to float tolerance
 * after resharding DP 2 -> DP 1.  A constant learning rate keeps the first
 * N steps of a 2N-step run identical to an N-step run. */
static void check_resume(MPI_Comm comm, const char *tag) {
  app_config c;
  tiny(&c, LOSS_IFT);
  c.train.batch_size = 16; /* 6 steps x 16 rows cross an epoch of 64 */
  c.optim.schedule = LR_CONSTANT;
  c.optim.warmup = 0;
  c.ift.schedule = LAMBDA_NOISE;
  train_result full, part, rest;
  char t1[32], t2[32];
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  /* one-rank runs on every rank at once: each its own directory */
  snprintf(t1, sizeof t1, "%s%d-full", tag, comm == MPI_COMM_SELF ? rank : 0);
  snprintf(t2, sizeof t2, "%s%d-part", tag, comm == MPI_COMM_SELF ? rank : 0);
  run_dir(&c, t1, 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, comm, &full), IFT_OK);
  run_dir(&c, t2, 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, comm, &part), IFT_OK);
  run_dir(&c, t2, 6, "auto");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, comm, &rest), IFT_OK);
  CU_ASSERT_EQUAL(memcmp(part.loss, full.loss, 3 * sizeof(double)), 0);
  CU_ASSERT_EQUAL(memcmp(rest.loss + 3, full.loss + 3, 3 * sizeof(double)), 0);
  CU_ASSERT_EQUAL(rest.state_hash, full.state_hash);
  CU_ASSERT_NOT_EQUAL(part.state_hash, full.state_hash);
  /* a finished run does not train again */
  train_result again;
  CU_ASSERT_EQUAL(train_run(&c, comm, &again), IFT_OK);
  CU_ASSERT_EQUAL(again.steps, 0);
}
static void test_resume_1rank(void) { check_resume(MPI_COMM_SELF, "self"); }
static void test_resume_2ranks(void) { check_resume(MPI_COMM_WORLD, "world"); }

/* written with DP = 2, resumed on one rank: the data order continues and
 * the losses follow the uninterrupted run to float tolerance */
static void test_resume_reshard(void) {
  app_config c;
  tiny(&c, LOSS_IFT);
  c.optim.schedule = LR_CONSTANT;
  c.optim.warmup = 0;
  train_result full, rest;
  run_dir(&c, "rs-full", 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &full), IFT_OK);
  run_dir(&c, "rs-part", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    run_dir(&c, "rs-part", 6, "auto");
    CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &rest), IFT_OK);
    for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], full.loss[s], 1e-5, 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* reshard on load: DP 2 -> TP 2, and TP 2 -> one rank */
static void test_resume_reshard_tp(void) {
  app_config c;
  tiny(&c, LOSS_IFT);
  c.optim.schedule = LR_CONSTANT;
  c.optim.warmup = 0;
  train_result full, rest;
  run_dir(&c, "tp-full", 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &full), IFT_OK);
  run_dir(&c, "tp-a", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK); /* DP 2 */
  run_dir(&c, "tp-a", 6, "auto");
  c.dist.tp = 2;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &rest), IFT_OK); /* TP 2 */
  for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], full.loss[s], 1e-6, 0);
  run_dir(&c, "tp-b", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK); /* TP 2 */
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    c.dist.tp = 1;
    run_dir(&c, "tp-b", 6, "auto");
    CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &rest), IFT_OK); /* one rank */
    for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], full.loss[s], 1e-6, 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* TP 2D through the trainer (weights block-cyclic in 8 x 8 blocks): a 1 x 2
 * grid follows the DP run; its checkpoint resumes on one rank (1D), and a DP
 * checkpoint resumes on a 2 x 1 grid — checkpoints hold global tensors,
 * whatever the layout. */
static void test_tp2d(void) {
  app_config c;
  tiny(&c, LOSS_IFT);
  c.optim.schedule = LR_CONSTANT;
  c.optim.warmup = 0;
  train_result full, part, rest;
  run_dir(&c, "2d-full", 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &full), IFT_OK); /* DP 2 */
  run_dir(&c, "2d-b", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK); /* DP 2 */
  c.dist.tp = 2;
  c.dist.tp_2d = 1;
  c.dist.tp_block = 8; /* block-cyclic weights: strided hyperslabs in the checkpoint */
  c.dist.tp_rows = 0;  /* automatic: 2 x 1 */
  run_dir(&c, "2d-b", 6, "auto");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &rest), IFT_OK); /* 2 x 1 */
  for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], full.loss[s], 1e-5, 0);
  c.dist.tp_rows = 1; /* 1 x 2 */
  run_dir(&c, "2d-a", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &part), IFT_OK);
  for (int s = 0; s < 3; s++) IFT_ASSERT_CLOSE(part.loss[s], full.loss[s], 1e-5, 0);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    c.dist.tp = 1;
    c.dist.tp_2d = 0;
    run_dir(&c, "2d-a", 6, "auto");
    CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_SELF, &rest), IFT_OK); /* one rank */
    for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], full.loss[s], 1e-5, 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* ZeRO-1 gives the run of plain data parallelism; its checkpoints resume
 * bit-exactly and on a layout without ZeRO */
static void test_zero1(void) {
  app_config c;
  tiny(&c, LOSS_IFT);
  c.optim.schedule = LR_CONSTANT;
  c.optim.warmup = 0;
  train_result plain, zero, part, rest;
  run_dir(&c, "z-plain", 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &plain), IFT_OK);
  c.optim_zero = 1;
  run_dir(&c, "z-zero", 6, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &zero), IFT_OK);
  for (int s = 0; s < 6; s++) IFT_ASSERT_CLOSE(zero.loss[s], plain.loss[s], 1e-6, 0);
  run_dir(&c, "z-part", 3, "none");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &part), IFT_OK);
  run_dir(&c, "z-part", 6, "auto");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &rest), IFT_OK);
  CU_ASSERT_EQUAL(memcmp(rest.loss + 3, zero.loss + 3, 3 * sizeof(double)), 0);
  CU_ASSERT_EQUAL(rest.state_hash, zero.state_hash);
  c.optim_zero = 0; /* a ZeRO checkpoint resumes without ZeRO */
  run_dir(&c, "z-part2", 3, "none");
  c.optim_zero = 1;
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, NULL), IFT_OK);
  c.optim_zero = 0;
  run_dir(&c, "z-part2", 6, "auto");
  CU_ASSERT_EQUAL_FATAL(train_run(&c, MPI_COMM_WORLD, &rest), IFT_OK);
  for (int s = 3; s < 6; s++) IFT_ASSERT_CLOSE(rest.loss[s], plain.loss[s], 1e-6, 0);
}

static void test_config_errors(void) {
  app_config c;
  app_config_defaults(&c);
  ift_error_quiet(1);
  CU_ASSERT_EQUAL(app_config_set(&c, "optim.learning_rate", "1"), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "unknown configuration key 'optim.learning_rate'"));
  CU_ASSERT_EQUAL(app_config_set(&c, "ift.side", "middle"), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "is not one of left|right"));
  CU_ASSERT_EQUAL(app_config_set(&c, "train.steps", "ten"), IFT_ERR_CONFIG);
  CU_ASSERT_EQUAL(app_config_set(&c, "optim.lr", "2e-4"), IFT_OK);
  CU_ASSERT_EQUAL(c.optim.lr, 2e-4);
  c.train.batch_size = 7;
  CU_ASSERT_EQUAL(app_config_check(&c, 2, 1), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "cannot be split over 2 data-parallel ranks"));
  c.train.batch_size = 8;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 3), IFT_ERR_LAYOUT);
  c.dist.tp = 2;
  c.dist.tp_2d = 1;
  c.dist.tp_rows = 3;
  CU_ASSERT_EQUAL(app_config_check(&c, 1, 2), IFT_ERR_LAYOUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), "dist.tp_rows = 3 does not divide dist.tp = 2"));
  int pr, pc;
  c.dist.tp = 4;
  c.dist.tp_rows = 0;
  app_tp_grid(&c, &pr, &pc);
  CU_ASSERT(pr == 2 && pc == 2);
  c.dist.tp = 8;
  app_tp_grid(&c, &pr, &pc);
  CU_ASSERT(pr == 4 && pc == 2);
  c.dist.tp = 1;
  c.dist.tp_2d = 0;
  /* a config file: section header, comment, bad line number */
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  char p[128];
  snprintf(p, sizeof p, "/tmp/iftrain-cfg-%d-%d.ini", (int)getpid(), rank);
  FILE *f = fopen(p, "w");
  fputs("# test\n[train]\nsteps = 5\n[optim]\nname = rmsprop\nlr 0.1\n", f);
  fclose(f);
  app_config_defaults(&c);
  CU_ASSERT_EQUAL(app_config_load(&c, p, 0, NULL), IFT_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ift_error_last(), ":6:"));
  CU_ASSERT_EQUAL(c.train.steps, 5);
  CU_ASSERT_EQUAL(c.optim.kind, OPTIM_RMSPROP);
  unlink(p);
  ift_error_quiet(0);
}

static CU_TestInfo tests[] = {{"DP 2 loss equals DP 1: SFT", test_dp_sft},
                              {"DP 2 loss equals DP 1: IFT", test_dp_ift},
                              {"DP 2 loss equals DP 1: ORPO", test_dp_orpo},
                              {"DP 2 loss equals DP 1: SimPO", test_dp_simpo},
                              {"packed = unpacked on 1 rank, DP 2, TP 2: IFT", test_packed_ift},
                              {"packed = unpacked on 1 rank, DP 2, TP 2: ORPO pairs", test_packed_orpo},
                              {"DPO/IPO reference cache: exact first loss, DP 2 = DP 1, refusals", test_ref_cache},
                              {"configuration errors", test_config_errors},
                              {"resume is bit-exact on 1 rank", test_resume_1rank},
                              {"resume is bit-exact on 2 ranks", test_resume_2ranks},
                              {"resume DP 2 -> 1 rank continues the run", test_resume_reshard},
                              {"resume DP 2 -> TP 2 -> 1 rank (1e-6)", test_resume_reshard_tp},
                              {"ZeRO-1 equals plain DP; its checkpoints resume", test_zero1},
                              {"TP 2D follows DP; 2D <-> 1D checkpoints resume", test_tp2d},
                              CU_TEST_INFO_NULL};

int main(int argc, char **argv) {
  if (kern_select_arch(NULL) != IFT_OK) return 2;
  if (dist_init(&argc, &argv) != IFT_OK) return 2;
  core_set_loglevel(IFT_LOG_QUIET);
  int rank, pid = (int)getpid();
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  snprintf(data_path, sizeof data_path, "/tmp/iftrain-test-train-%d.h5", pid);
  if (rank == 0) {
    char j[300];
    snprintf(j, sizeof j, "%s.jsonl", data_path);
    data_prep_stats st = {0};
    if (data_generate("arith", j, 64, 5) != IFT_OK || data_prep_jsonl(j, data_path, &st) != IFT_OK) return 2;
    unlink(j);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int rc = ift_mpi_test_run(argc, argv, "train", tests);
  if (rank == 0) {
    unlink(data_path);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/iftrain-test-resume-%d-*", pid);
    if (system(cmd)) {}
  }
  return rc;
}
