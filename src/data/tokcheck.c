/* The tokenizer of a data set against the model's (train, eval, prep
 * --ref-logp): ids mean nothing to a model trained on another vocabulary. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "iftrain/data.h"

void data_origin_tokenizer(const char *origin, char mtok[80], char msrc[1100]) {
  snprintf(mtok, 80, "%s", DATA_TOKENIZER);
  msrc[0] = 0;
  json_t *o = origin ? json_loads(origin, 0, NULL) : NULL;
  if (o && json_is_string(json_object_get(o, "format")) &&
      !strcmp(json_string_value(json_object_get(o, "format")), "huggingface")) {
    const char *src = json_string_value(json_object_get(o, "source"));
    snprintf(msrc, 1100, "%s", src ? src : "?");
    const char *sha = json_string_value(json_object_get(json_object_get(o, "tokenizer"), "sha256"));
    if (sha) snprintf(mtok, 80, "hf:%s", sha);
    else mtok[0] = 0;
  }
  if (o) json_decref(o);
}

ift_status data_check_tokenizer(const data_set *d, const char *origin, const char *model, int model_vocab,
                                int warn) {
  char mtok[80], msrc[1100];
  data_origin_tokenizer(origin, mtok, msrc);
  const int dhf = !strncmp(d->tokenizer, "hf:", 3);
  char dsrc[1100] = "";
  if (dhf) snprintf(dsrc, sizeof dsrc, " (prepared with --tokenizer %s)", d->tokenizer_source);
  /* after the tokenizer check, whose message says more than the vocab's */
  const int fits = model_vocab <= 0 || d->vocab_size <= model_vocab;
#define VOCAB_FITS()                                                                              \
  IFT_REQUIRE(fits, IFT_ERR_FORMAT, "set model.vocab_size to at least the data set's vocab_size", \
              "%s: vocab_size %d exceeds the model's vocab_size %d", d->path, d->vocab_size, model_vocab)
  if (!mtok[0]) {
    VOCAB_FITS();
    if (warn)
      fprintf(stderr,
              "iftrain: warning: the model %s (from %s) records no tokenizer (its directory had no "
              "tokenizer.json): %s%s is used on trust; its vocab_size %d fits the model's\n",
              model, msrc, d->path, dsrc, d->vocab_size);
    return IFT_OK;
  }
  if (!strcmp(mtok, d->tokenizer)) {
    VOCAB_FITS();
    return IFT_OK;
  }
#undef VOCAB_FITS
  const int mhf = !strncmp(mtok, "hf:", 3);
  if (mhf && dhf)
    IFT_FAIL(IFT_ERR_CONFIG, "prepare the JSONL again with iftrain prep --tokenizer of the model's directory",
             "%s was tokenized by another tokenizer than the model's: data set tokenizer.json sha256 %s "
             "(tokenizer_source %s), model %s tokenizer.json sha256 %s (source directory %s)",
             d->path, d->tokenizer + 3, d->tokenizer_source, model, mtok + 3, msrc);
  if (mhf)
    IFT_FAIL(IFT_ERR_CONFIG, "prepare the JSONL with iftrain prep --tokenizer of the model's directory",
             "%s holds ids of iftrain's byte tokenizer %s, but the model %s uses the Hugging Face "
             "tokenizer hf:%s (source directory %s)",
             d->path, DATA_TOKENIZER, model, mtok + 3, msrc);
  IFT_FAIL(IFT_ERR_CONFIG,
           "train a Hugging Face model on it (ckpt.init = its directory; a new model: model.tokenizer = "
           "the tokenizer's directory), or prepare the JSONL "
           "without --tokenizer for this model",
           "%s holds ids of the Hugging Face tokenizer %s%s, but the model %s uses iftrain's byte "
           "tokenizer %s",
           d->path, d->tokenizer, dsrc, model, DATA_TOKENIZER);
}
