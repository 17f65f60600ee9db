/* model.tokenizer: a new model built from the model.* settings with a
 * Hugging Face tokenizer.  The tokenizer becomes the model's origin, as if
 * the model had been imported from a directory holding it: every checkpoint
 * carries the tokenizer's identity (data sets prepared with it are accepted,
 * others refused), eval and generate check --tokenizer against it, and
 * export copies its files and writes its BOS/EOS ids into config.json. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/ckpt.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"
#include "iftrain/tok.h"
#include "app_train.h"

/* Rank 0's part: load the tokenizer, check it fits the vocabulary, find its
 * BOS/EOS ids (tokenizer_config.json), hash its files. */
static ift_status tokenizer_origin(const app_config *cfg, char **origin) {
  const char *dir = cfg->model_tokenizer;
  char file[1100];
  snprintf(file, sizeof file, "%s/tokenizer.json", dir);
  IFT_REQUIRE(access(file, R_OK) == 0, IFT_ERR_CONFIG,
              "give model.tokenizer the directory that holds the tokenizer's tokenizer.json (and "
              "tokenizer_config.json), e.g. a Hugging Face model directory",
              "model.tokenizer %s: no readable %s", dir, file);
  tok *t = NULL;
  IFT_TRY(tok_load(&t, dir));
  ift_status st = IFT_OK;
  const int n = tok_vocab_size(t), V = cfg->model.vocab_size;
  int bos = -1, eos = -1;
  IFT_REQUIRE_GOTO(st, out, n <= V, IFT_ERR_CONFIG,
                   "set model.vocab_size to at least the tokenizer's size (a multiple of 64 or 128 above "
                   "it is common)",
                   "model.tokenizer %s has %d ids (0..%d), more than model.vocab_size = %d", dir, n, n - 1, V);
  char cfgfile[1200];
  snprintf(cfgfile, sizeof cfgfile, "%s/tokenizer_config.json", dir);
  const char *cdir = access(cfgfile, F_OK) == 0 ? dir : "";
  IFT_TRY_GOTO(st, out, data_tokenizer_special(cdir, t, "bos_token", &bos));
  IFT_TRY_GOTO(st, out, data_tokenizer_special(cdir, t, "eos_token", &eos));
  IFT_TRY_GOTO(st, out, ckpt_tokenizer_origin(dir, bos, eos, origin));
out:
  tok_free(t);
  return st;
}

/* Rank 0's part on resume: the checkpoint's tokenizer must be this one. */
static ift_status same_tokenizer(const app_config *cfg, const char *origin, const char *ckpt) {
  char mtok[80], msrc[1100], hex[65];
  data_origin_tokenizer(origin, mtok, msrc);
  char file[1100];
  snprintf(file, sizeof file, "%s/tokenizer.json", cfg->model_tokenizer);
  IFT_TRY(core_sha256_file(file, hex));
  char has[1300];
  if (!strncmp(mtok, "hf:", 3)) snprintf(has, sizeof has, "sha256 %.16s..., from %s", mtok + 3, msrc);
  else if (mtok[0]) snprintf(has, sizeof has, "iftrain's byte tokenizer %s", mtok);
  else snprintf(has, sizeof has, "no tokenizer recorded, from %s", msrc);
  IFT_REQUIRE(!strncmp(mtok, "hf:", 3) && !strcmp(mtok + 3, hex), IFT_ERR_CONFIG,
              "resume with the model.tokenizer the run was started with (or leave it empty: a checkpoint "
              "carries its tokenizer)",
              "model.tokenizer %s (tokenizer.json sha256 %.16s...) is not the tokenizer of %s (%s)",
              cfg->model_tokenizer, hex, ckpt, has);
  return IFT_OK;
}

ift_status train_model_tokenizer(const app_config *cfg, const char *resumed, char **origin, MPI_Comm comm) {
  int rank = 0;
  IFT_MPI_CHECK(MPI_Comm_rank(comm, &rank), NULL);
  ift_status st = IFT_OK;
  if (resumed) {
    if (rank == 0) st = same_tokenizer(cfg, *origin, resumed);
    return dist_agree(st, comm);
  }
  if (rank == 0) st = tokenizer_origin(cfg, origin);
  IFT_TRY(dist_agree(st, comm));
  long n = rank == 0 ? (long)strlen(*origin) + 1 : 0;
  IFT_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG, 0, comm), NULL);
  if (rank != 0) *origin = malloc((size_t)n);
  st = *origin ? IFT_OK : IFT_ERR_NOMEM;
  if (st != IFT_OK) ift_error_set(st, __FILE__, __LINE__, "malloc", NULL, "the tokenizer's origin");
  IFT_TRY(dist_agree(st, comm));
  IFT_MPI_CHECK(MPI_Bcast(*origin, (int)n, MPI_CHAR, 0, comm), NULL);
  return IFT_OK;
}
