/* Test configs shared by the model tests (serial and MPI): head_dim set
 * apart from hidden/heads, with llama3 RoPE scaling. */
#ifndef IFTRAIN_TESTS_LLAMA3_CFG_H
#define IFTRAIN_TESTS_LLAMA3_CFG_H

#include "iftrain/model.h"

/* C with head_dim D and llama3 scaling (factor F, low 1, high 4, ORIG
 * original positions). */
static inline model_config test_llama3(model_config c, int D, double F, int orig) {
  c.head_dim = D;
  c.rope_type = MODEL_ROPE_LLAMA3;
  c.rope_factor = F;
  c.rope_low_freq_factor = 1;
  c.rope_high_freq_factor = 4;
  c.rope_original_max_position_embeddings = orig;
  return c;
}

#endif
