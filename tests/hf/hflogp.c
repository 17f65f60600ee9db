/* hflogp MODEL TOKENS [TP [MASK]]: the per-position log-probabilities iftrain's
 * model gives the token sequence TOKENS (comma list) with the weights of
 * MODEL (a Hugging Face directory or an iftrain checkpoint), on the ranks of
 * the job with TP tensor-parallel ranks (default 1; a 1D split), printed by
 * rank 0 as JSON {"logp": [...]} -- logp[t] = log p(token t | tokens < t),
 * logp[0] = 0, the convention of tests/hf/hfref.py logits.  With MASK (a
 * comma list of 0/1, one run on one rank) also the SFT loss
 * -sum(mask * logp) / sum(mask) and its gradient for every tensor, as
 * "loss" and "grads" {name: [...]} (hfref.py grad's fields).  For the import
 * tests (tests/hf/import.sh).  Exit 0, 2 on bad input, 3 unsupported, 1 on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/ckpt.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: hflogp MODEL TOKENS [TP]\n");
    return 2;
  }
  if (kern_select_arch(NULL) != IFT_OK || dist_init(&argc, &argv) != IFT_OK) return 1;
  int tok[4096], T = 0;
  for (char *p = argv[2]; *p && T < 4096; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
    tok[T++] = atoi(p);
  const int tp = argc > 3 ? atoi(argv[3]) : 1;
  dist_grid g;
  model_config c;
  model *m = NULL;
  float *logp = calloc((size_t)T, sizeof(float));
  ift_status st = dist_grid_create(&g, MPI_COMM_WORLD, tp);
  if (st == IFT_OK) st = ckpt_read_config(argv[1], &c);
  if (st == IFT_OK) st = model_create(&m, &c, g.tp, 1, T);
  if (st == IFT_OK) st = ckpt_load(argv[1], m, NULL, NULL, g.world, CKPT_VERIFY);
  model_input in = {.tokens = tok};
  const int grad = argc > 4;
  float dlogp[4096] = {0};
  if (grad) {
    int n = 0, nm = 0;
    for (char *p = argv[4]; *p && n < T; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
      nm += dlogp[n++] = (float)atoi(p);
    for (int t = 0; t < T; t++) dlogp[t] = nm ? -dlogp[t] / (float)nm : 0.0f;
  }
  if (st == IFT_OK) st = model_forward(m, logp, NULL, &in, 1, T, grad);
  if (st == IFT_OK && grad) {
    model_zero_grads(m);
    st = model_backward(m, dlogp, 1, T);
  }
  if (st == IFT_OK && g.rank == 0) {
    double loss = 0;
    printf("{\"logp\": [");
    for (int t = 0; t < T; t++) {
      printf("%s%.9g", t ? ", " : "", t ? logp[t] : 0.0f);
      if (t) loss += (double)dlogp[t] * logp[t];
    }
    printf("]");
    if (grad) {
      printf(", \"loss\": %.9g, \"grads\": {", loss);
      for (int i = 0; i < model_ntensors(m); i++) {
        const model_tensor *mt = model_tensor_at(m, i);
        const float *gr = model_grads(m) + mt->offset;
        printf("%s\"%s\": [", i ? ", " : "", mt->name);
        for (size_t k = 0; k < (size_t)mt->lrows * mt->lcols; k++) printf("%s%.9g", k ? "," : "", gr[k]);
        printf("]");
      }
      printf("}");
    }
    printf("}\n");
  }
  if (m) model_destroy(m);
  free(logp);
  dist_finalize();
  return st == IFT_OK ? 0 : st == IFT_ERR_UNIMPL ? 3 : st == IFT_ERR_FORMAT || st == IFT_ERR_CONFIG || st == IFT_ERR_IO ? 2 : 1;
}
