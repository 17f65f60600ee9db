/* Fuzz target: the Hugging Face readers of the hf module.  The first byte
 * chooses the file: even -> the rest is a safetensors file (header
 * validation, then every tensor read whole and as a corner block), odd -> the
 * rest is a config.json (hf_config_read; a config that loads is written back
 * and read again, and its RoPE frequencies computed). */
#include "fuzz_common.h"
#include "iftrain/hf.h"

static char st_path[512], cj_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(st_path, sizeof st_path, "model.safetensors");
  fuzz_path(cj_path, sizeof cj_path, "config.json");
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  if (data[0] % 2 == 0) {
    if (fuzz_write(st_path, data + 1, size - 1) != 0) return 0;
    hf_st *f = NULL;
    if (hf_st_open(&f, st_path) == IFT_OK) {
      read_tensors(f);
      hf_st_close(f);
    }
    unlink(st_path);
  } else {
    if (fuzz_write(cj_path, data + 1, size - 1) != 0) return 0;
    hf_config c;
    if (hf_config_read(cj_path, &c) == IFT_OK && c.head_dim > 0 && c.head_dim < (1 << 16)) {
      if (hf_config_write(cj_path, &c) == IFT_OK) hf_config_read(cj_path, &c);
    }
    unlink(cj_path);
  }
  return 0;
}
