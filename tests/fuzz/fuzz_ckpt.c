/* Fuzz target: the checkpoint readers (ckpt_read_config, ckpt_info,
 * ckpt_verify, ckpt_fingerprint, ckpt_load) on a damaged checkpoint file.
 * The input is the whole .h5 file; the seed is a tiny checkpoint from
 * `iftrain train --train.steps=0`.  The readers build a model from the
 * config stored in the file: configs larger than a small budget are only
 * read, not instantiated (a damaged hidden_size of 10^9 is a real
 * allocation, not a bug of the reader). */
#include "fuzz_common.h"
#include "iftrain/ckpt.h"
#include "iftrain/model.h"

static char h5_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(h5_path, sizeof h5_path, "ckpt.h5");
  return 0;
}

static int small_model(const model_config *c) {
  if (c->vocab_size > 4096 || c->hidden_size > 256 || c->intermediate_size > 1024 ||
      c->num_hidden_layers > 8 || c->num_attention_heads > 64 || c->num_key_value_heads > 64 ||
      c->max_position_embeddings > 4096)
    return 0;
  return model_config_check(c, 1) == IFT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1 << 20)) return 0;
  if (fuzz_write(h5_path, data, size) != 0) return 0;
  FILE *devnull = fopen("/dev/null", "w");
  model_config c;
  if (ckpt_read_config(h5_path, &c) == IFT_OK && small_model(&c) && c.max_position_embeddings >= 2) {
    ckpt_info(h5_path, devnull, 1);
    long n = 0;
    ckpt_verify(h5_path, devnull, &n);
    char fp[17];
    ckpt_fingerprint(h5_path, fp);
    model *m = NULL;
    if (model_create(&m, &c, MPI_COMM_NULL, 1, 2) == IFT_OK) {
      ckpt_train_state ts;
      ckpt_load(h5_path, m, NULL, &ts, MPI_COMM_SELF, CKPT_VERIFY);
      ckpt_train_state_free(&ts);
      model_destroy(m);
    }
  }
  if (devnull) fclose(devnull);
  unlink(h5_path);
  return 0;
}
