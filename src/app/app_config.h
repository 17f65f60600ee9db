/* app_config — the configuration: a header of the app layer (src/app/, not
 * the library's include/: nothing below app reads it) and the contract every
 * tool, script and test uses (every key: docs/config.md, generated from the
 * table in src/app/config.c).  INI
 * files read with inih: [section] headers, key = value, '#' comments, an
 * optional UTF-8 BOM, CRLF lines; on the command line --section.key=value
 * overrides the file.  Every
 * key has a type, a default, an allowed range and a help line (iftrain train
 * --help-config).  Nothing doubtful is accepted: unknown keys (with a "did
 * you mean" hint), a key twice in one file, values outside their range,
 * NaN/Inf, numbers with trailing characters or beyond their C type, lines
 * longer than inih reads whole, and --config paths that are not regular files are all
 * IFT_ERR_CONFIG. */
#ifndef IFTRAIN_APP_CONFIG_H
#define IFTRAIN_APP_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "iftrain/loss.h"
#include "iftrain/model.h"
#include "iftrain/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LAMBDA_STATIC, LAMBDA_LINEAR, LAMBDA_NOISE } lambda_sched;

typedef struct {
  model_config model;
  char model_tokenizer[1024]; /* model.tokenizer: a new model's Hugging Face tokenizer directory */
  struct {
    loss_kind loss;
    long steps;       /* optimizer steps; 0 = write the initial checkpoint and exit */
    int epochs;       /* used when steps < 0 */
    int batch_size;   /* sequences per optimizer step, global */
    int micro_batch;  /* sequences per forward/backward on one rank */
    int seq_len;
    long seed;
    int recompute;    /* model_recompute: 0 none, 1 layer */
    int packing;      /* 1: several rows per sequence of seq_len (sched_pack_cfg) */
  } train;
  struct {
    double lambda, gamma;
    ift_side side;
    ift_value value;
    ift_norm norm;
    lambda_sched schedule;
    int warmup_steps;
    int embed_grad;
    ift_right_mu right_mu;
    int reduce_microbatch; /* ift.reduce = microbatch (reference) */
  } ift;
  struct {
    double beta;              /* 0: the loss's default (docs/ift.md) */
    double label_smoothing;   /* DPO */
    double simpo_gamma_ratio; /* SimPO gamma_s / beta */
    char reference[1024];     /* checkpoint of the reference model (DPO, IPO);
                                 empty: ckpt.init */
  } pref;
  optim_cfg optim;
  int optim_zero;
  struct {
    char train[1024], eval[1024];
    int shuffle;
  } data;
  struct {
    char dir[1024];
    int every, keep;
    char resume[1024];
    char init[1024]; /* start from these weights (fresh optimizer, step 0) */
    int verify;         /* check every tensor's checksum when reading (default 1) */
    int allow_changes;  /* resume although train.steps / a schedule key changed */
  } ckpt;
  struct {
    int tp;
    int tp_2d;
    int tp_rows;  /* 2D grid rows (0: most square) */
    int tp_block; /* 2D weight block (0: one block per process) */
    int pblas_block; /* PBLAS PILAENV block (0: by model width) */
  } dist;
  struct {
    char path[1024];
    int every;
  } metrics;
  struct {
    int every, max_new_tokens, max_samples;
  } eval;
} app_config;

/* Defaults of every key. */
void app_config_defaults(app_config *c);
/* Parse a config file (path NULL: none; "" is a missing file) then apply
 * overrides of the form --section.key=value from argv (other arguments, such
 * as --config=dir/x.ini, are left alone).  Messages name file:line or the
 * option, the key, the value and the allowed range. */
ift_status app_config_load(app_config *c, const char *path, int argc, char **argv);
/* Set one key from text ("section.key", "value"); a refused value leaves the
 * key as it was. */
ift_status app_config_set(app_config *c, const char *key, const char *value);
/* Write the effective configuration as a loadable file. */
void app_config_write(FILE *f, const app_config *c);
/* Documentation of every key with its default (--help-config). */
void app_config_help(FILE *f);
/* The same as a markdown reference, one table per section (docs/config.md;
 * --help-config=markdown). */
void app_config_help_markdown(FILE *f);
/* The pr x pc grid of dist.tp_mode = 2d over the dist.tp ranks of a replica
 * (0 x 0 in 1D mode): pr = dist.tp_rows, or the most square grid with
 * pr >= pc when dist.tp_rows = 0. */
void app_tp_grid(const app_config *c, int *pr, int *pc);
/* Every key's range again (configs are also built in code), then the
 * cross-key checks (batch divisible by the DP size, seq_len within the
 * model's positions, the tensor-parallel layout, ...). */
ift_status app_config_check(const app_config *c, int dp, int tp);

const char *lambda_sched_name(lambda_sched s);
/* The preference options of the configured loss (pref.beta = 0 -> default). */
loss_pref_opts app_config_pref(const app_config *c);

#ifdef __cplusplus
}
#endif
#endif
