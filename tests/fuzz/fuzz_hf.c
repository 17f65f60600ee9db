/* Fuzz target: the Hugging Face readers.  The first byte chooses what the
 * rest is (byte % 3):
 *   0  a safetensors file: header validation, then every tensor read whole
 *      and as a corner block (src/hf/safetensors.c);
 *   1  a config.json: hf_config_read; a config that loads is written back and
 *      read again, and its RoPE frequencies computed (src/hf/hfconfig.c);
 *   2  a whole model directory, its files separated by HF_SEP:
 *        config.json HF_SEP model.safetensors.index.json HF_SEP
 *        model-00001-of-00002.safetensors HF_SEP
 *        model-00002-of-00002.safetensors HF_SEP model.safetensors
 *      (an empty or missing part: no such file).  It is read as a checkpoint
 *      is: ckpt_read_config, then a model of that config loaded from it by
 *      ckpt_load -- the index's weight map, the shard set and every rank's
 *      block reads of src/ckpt/hfload.c.  Configs larger than a small budget
 *      are only read (a hidden_size of 10^9 is a real allocation, not a bug
 *      of the reader). */
#include <sys/stat.h>

#include "fuzz_common.h"
#include "iftrain/ckpt.h"
#include "iftrain/hf.h"
#include "iftrain/model.h"

#define HF_SEP "\n@@iftrain-fuzz-file@@\n"

static char st_path[512], cj_path[512], dir_path[512];

static const char *const dir_files[] = {
    "config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors", "model.safetensors"};
#define N_DIR_FILES (sizeof dir_files / sizeof dir_files[0])

static void remove_dir(void) { rmdir(dir_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(st_path, sizeof st_path, "model.safetensors");
  fuzz_path(cj_path, sizeof cj_path, "config.json");
  fuzz_path(dir_path, sizeof dir_path, "hfdir");
  mkdir(dir_path, 0700);
  atexit(remove_dir);
  return 0;
}

static void read_tensors(const hf_st *f) {
  for (size_t i = 0; i < hf_st_count(f); i++) {
    const hf_st_tensor *t = hf_st_at(f, i);
    if (t->numel > (1 << 20)) continue;
    float *buf = malloc(sizeof(float) * (size_t)(t->numel + 1));
    if (!buf) continue;
    hf_st_read_all(f, t->name, buf);
    if (t->ndim == 2 && t->shape[0] > 0 && t->shape[1] > 0)
      hf_st_read_block(f, t->name, t->shape[0] - 1, 1, 0, t->shape[1], buf, t->shape[1]);
    free(buf);
  }
}

static int small_model(const model_config *c) {
  if (c->vocab_size > 4096 || c->hidden_size > 256 || c->intermediate_size > 1024 ||
      c->num_hidden_layers > 8 || c->num_attention_heads > 64 || c->num_key_value_heads > 64 ||
      c->max_position_embeddings < 2)
    return 0;
  return model_config_check(c, 1) == IFT_OK;
}

static void one_dir(const uint8_t *data, size_t size) {
  char path[N_DIR_FILES][640];
  const size_t nsep = sizeof HF_SEP - 1;
  size_t at = 0;
  for (size_t k = 0; k < N_DIR_FILES; k++) {
    snprintf(path[k], sizeof path[k], "%s/%s", dir_path, dir_files[k]);
    size_t end = at;
    while (end < size && !(size - end >= nsep && memcmp(data + end, HF_SEP, nsep) == 0)) end++;
    if (end > at) fuzz_write(path[k], data + at, end - at);
    at = end < size ? end + nsep : size;
  }
  model_config c;
  if (ckpt_read_config(dir_path, &c) == IFT_OK && small_model(&c)) {
    model *m = NULL;
    if (model_create(&m, &c, MPI_COMM_NULL, 1, 2) == IFT_OK) {
      ckpt_load(dir_path, m, NULL, NULL, MPI_COMM_SELF, CKPT_VERIFY);
      model_destroy(m);
    }
  }
  for (size_t k = 0; k < N_DIR_FILES; k++) unlink(path[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  switch (data[0] % 3) {
  case 0: {
    if (fuzz_write(st_path, data + 1, size - 1) != 0) return 0;
    hf_st *f = NULL;
    if (hf_st_open(&f, st_path) == IFT_OK) {
      read_tensors(f);
      hf_st_close(f);
    }
    unlink(st_path);
    break;
  }
  case 1: {
    if (fuzz_write(cj_path, data + 1, size - 1) != 0) return 0;
    hf_config c;
    if (hf_config_read(cj_path, &c) == IFT_OK && c.head_dim > 0 && c.head_dim < (1 << 16)) {
      if (hf_config_write(cj_path, &c) == IFT_OK) hf_config_read(cj_path, &c);
    }
    unlink(cj_path);
    break;
  }
  default:
    one_dir(data + 1, size - 1);
  }
  return 0;
}
