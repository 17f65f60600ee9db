/* train — the training job behind `iftrain train` and `iftrain eval`
 * (app layer): rank grid, data sets, model, scheduler, optimizer. */
#ifndef IFTRAIN_APP_TRAIN_H
#define IFTRAIN_APP_TRAIN_H

#include "app_config.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/model.h"
#include "iftrain/step.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  app_config cfg;
  dist_grid grid;
  data_set train, eval;
  int have_train, have_eval;
  model *m;
  step_ws ws;
  int *tok, *gen, *gtok;
  uint8_t *mask;
  double last_exact, last_eval_loss;
} train_ctx;

/* What train_ctx_create sets up besides grid, held-out data, model and scratch. */
enum {
  TRAIN_CTX_TRAIN_DATA = 1,    /* open data.train */
  TRAIN_CTX_WEIGHTS_LOADED = 2 /* the caller loads every weight: skip model.init_seed's initialisation */
};
/* Grid, data sets (data.train with TRAIN_CTX_TRAIN_DATA), model (initialised
 * from model.init_seed unless TRAIN_CTX_WEIGHTS_LOADED), scratch. */
ift_status train_ctx_create(train_ctx *tc, const app_config *cfg, int flags, MPI_Comm comm);
void train_ctx_destroy(train_ctx *tc);
/* A context for a checkpoint's forward passes (eval, generate, prep
 * --ref-logp; src/app/eval.c): the model from the checkpoint's own config,
 * its weights loaded (verified with verify) on the ranks of MPI_COMM_WORLD,
 * DP over them (tp ranks per replica, 2D with tp_2d), eval_data (or NULL)
 * as the held-out set, micro-batch mb, sequences of at most T tokens.  The
 * caller destroys tc whatever failed; *origin_out (or NULL) gets the
 * checkpoint's origin, freed by the caller. */
ift_status app_eval_load(train_ctx *tc, const char *ckpt_arg, const char *eval_data, int mb, int T,
                         int verify, int tp, int tp_2d, char **origin_out);

/* Held-out evaluation (src/app/evaluate.c) of up to max_samples rows of d
 * (0 = all). A row's answer is its first run of loss-masked tokens; greedy
 * decoding from the prompt before it runs until the answer's own last
 * (end-of-turn) token or max_new tokens. */
typedef struct {
  long rows;       /* rows evaluated */
  double loss;      /* mean over rows of the row's mean answer NLL */
  double token_nll; /* answer NLL per token over all rows (exp: the perplexity) */
  double exact;    /* fraction of rows whose greedy answer is the answer, end of turn included */
  double rouge_l;  /* mean ROUGE-L F1 over tokens of greedy answer against answer (end of turn left out) */
  long pairs;      /* pairs scored (data sets with /chosen and /rejected; else 0) */
  double pref_acc; /* fraction of pairs whose chosen answer has the higher summed log-prob */
} eval_result;
ift_status train_evaluate(train_ctx *tc, data_set *d, int max_samples, int max_new, eval_result *r);
/* ROUGE-L F1 of token sequences gen[0..n) and ref[0..m) (LCS-based; 1 when
 * both are empty). */
double eval_rouge_l(const int *gen, int n, const int *ref, int m);

/* Read rows[0..nb) of group (NULL: the main rows; "chosen"; "rejected") into
 * padded [nb, T] buffers (position 0 masked), T = the longest row capped at
 * seq_len; *ntok accumulates the tokens read. */
ift_status train_load_group(data_set *d, const char *group, const long *rows, int nb, int seq_len,
                            int *tok, uint8_t *mask, int *T_out, long *ntok);

/* Read the pairs rows[0..nb) into padded [2nb, T] buffers (chosen rows
 * first, then rejected; position 0 masked), T = the longest row capped at
 * seq_len; ref (may be NULL) receives their cached reference log-probs
 * [nb, 2]; *ntok accumulates the tokens read. */
ift_status train_load_pairs(data_set *d, const long *rows, int nb, int seq_len, int *tok,
                            uint8_t *mask, float *ref, int *T_out, long *ntok);

/* model.tokenizer (src/app/model_tok.c), collective over comm.  A new model
 * (resumed NULL): *origin = the tokenizer's origin (ckpt_tokenizer_origin;
 * refused when its ids do not fit model.vocab_size).  A resumed one
 * (resumed = its checkpoint, *origin = the checkpoint's): refused unless the
 * checkpoint's tokenizer is this one. */
ift_status train_model_tokenizer(const app_config *cfg, const char *resumed, char **origin, MPI_Comm comm);

/* What a run reports back (tests, benchmarks). */
typedef struct {
  long steps;
  double loss[64];  /* global-batch loss of the first 64 steps */
  double exact, eval_loss;
  double seconds, tokens;
  uint64_t state_hash; /* FNV-1a of this rank's parameters and optimizer state at the end */
  int claimed_dir;     /* ckpt.dir was claimed for this run (it may hold exit_status) */
} train_result;

/* The whole training run of a configuration on the ranks of comm
 * (res may be NULL). */
ift_status train_run(const app_config *cfg, MPI_Comm comm, train_result *res);

#ifdef __cplusplus
}
#endif
#endif
