/* iftrain lake: the Frozen Lake experiment of the IFT paper (src/lake). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "iftrain/lake.h"

const char app_lake_help[] =
    "The IFT paper's explainable experiment: Frozen Lake 4x4 (SFFF/FHFH/FFFH/HFFG,\n"
    "deterministic moves), a 2-layer MLP policy over one-hot states trained from one\n"
    "optimal (6 moves) and one sub-optimal (8 moves) demonstration with SFT and IFT\n"
    "(optimal demonstration only), SFT -> DPO (the SFT policy is the reference) and ORPO\n"
    "(both demonstrations as a preference pair). Reports, over seeds, the mean squared\n"
    "distance of the learned state transition matrix to the optimal policy's (rows of\n"
    "the 11 non-terminal states), the probability of reaching G within 100 moves, and\n"
    "how many greedy policies reach G.\n"
    "  iftrain lake [--methods=sft,ift,dpo,orpo] [--seeds=N] [--steps=N] [--hidden=H]\n"
    "               [--lr=X] [--lambda=X] [--gamma=X] [--beta=X] [--beta-dpo=X]\n"
    "               [--beta-orpo=X] [--out=FILE.md]\n"
    "--methods picks and orders the methods (default all four); --beta is --beta-dpo.\n"
    "Defaults: 10 seeds, 300 Adam steps (DPO: 300 SFT + 300 DPO), hidden 32, lr 1e-2,\n"
    "lambda 0.2, gamma 0.95, beta 0.1 (DPO) and 0.25 (ORPO). Serial: rank 0 computes.\n";

static void mean_std(const double *v, int n, double *m, double *s) {
  double a = 0, b = 0;
  for (int i = 0; i < n; i++) a += v[i];
  a /= n;
  for (int i = 0; i < n; i++) b += (v[i] - a) * (v[i] - a);
  *m = a;
  *s = n > 1 ? sqrt(b / (n - 1)) : 0;
}

/* "sft,ift,..." -> method ids in the given order, no repeats; count or -1. */
static int parse_methods(const char *s, int out[4]) {
  int n = 0;
  while (*s) {
    size_t k = strcspn(s, ",");
    int m = -1;
    for (int j = 0; j < 4; j++) {
      const char *nm = lake_method_name((lake_method)j);
      size_t c = 0;
      while (c < k && nm[c] && tolower((unsigned char)s[c]) == tolower((unsigned char)nm[c])) c++;
      if (c == k && !nm[k]) m = j;
    }
    for (int j = 0; j < n; j++)
      if (out[j] == m) m = -1;
    if (m < 0 || n == 4) return -1;
    out[n++] = m;
    s += k;
    if (*s == ',' && *++s == 0) return -1;
  }
  return n ? n : -1;
}

int app_lake(int argc, char **argv) {
  lake_opts o = lake_defaults();
  int seeds = 10;
  const char *out = NULL;
  int meth[4] = {LAKE_SFT, LAKE_IFT, LAKE_DPO, LAKE_ORPO}, nmeth = 4;
  const char *methods = NULL;
  const app_optdef opts[] = {
      APP_INT("seeds", &seeds, APP_IN(1, 1000)),
      APP_INT("steps", &o.steps, APP_GE(0)),
      APP_INT("hidden", &o.hidden, APP_IN(1, LAKE_HMAX)),
      APP_DOUBLE("lr", &o.lr, APP_GT(0)),
      APP_DOUBLE("lambda", &o.lambda, APP_IN(0, 1)),
      APP_DOUBLE("gamma", &o.gamma, APP_IN(0, 1)),
      APP_DOUBLE("beta-dpo", &o.beta_dpo, APP_GT(0)),
      APP_DOUBLE("beta", &o.beta_dpo, APP_GT(0)),
      APP_STR("methods", &methods),
      APP_DOUBLE("beta-orpo", &o.beta_orpo, APP_GE(0)),
      APP_STR("out", &out),
      {0}};
  const app_opts spec = {.cmd = "lake", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (methods && (nmeth = parse_methods(methods, meth)) < 0) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain lake: --methods=%s: not a list of sft, ift, dpo, orpo\n"
                      "  hint: e.g. --methods=sft,ift\n", methods);
    return APP_EXIT_USAGE;
  }
  if (core_rank() != 0) return APP_EXIT_OK;
  FILE *f = out ? fopen(out, "w") : stdout;
  if (!f) {
    fprintf(stderr, "iftrain lake: cannot write %s\n", out);
    return APP_EXIT_USAGE;
  }
  double Q[LAKE_N][LAKE_N], P[LAKE_N][LAKE_N];
  lake_transition_optimal(Q);
  double *mse = malloc(sizeof(double) * (size_t)seeds), *suc = malloc(sizeof(double) * (size_t)seeds);
  double mm[4], ms[4];
  fprintf(f, "Frozen Lake 4x4, %d seeds, %d steps, hidden %d, lr %g, lambda %g, gamma %g, beta DPO %g ORPO %g\n\n",
          seeds, o.steps, o.hidden, o.lr, o.lambda, o.gamma, o.beta_dpo, o.beta_orpo);
  fprintf(f, "| method | transition MSE to optimal (mean ± std) | P(reach G in 100 moves) | greedy reaches G |\n");
  fprintf(f, "|---|---|---|---|\n");
  for (int k = 0; k < nmeth; k++) {
    const int m = meth[k];
    int greedy_ok = 0;
    for (int s = 0; s < seeds; s++) {
      lake_mlp p;
      const ift_status st = lake_train((lake_method)m, &o, (uint64_t)s + 1, &p);
      if (st != IFT_OK) {
        free(mse);
        free(suc);
        if (out) fclose(f);
        return app_exit_code(st);
      }
      lake_transition(&p, P);
      mse[s] = lake_mse(P, Q);
      suc[s] = lake_success(P, 100);
      greedy_ok += lake_greedy_success(&p);
    }
    double sm, ss;
    mean_std(mse, seeds, &mm[k], &ms[k]);
    mean_std(suc, seeds, &sm, &ss);
    fprintf(f, "| %s | %.4f ± %.4f | %.3f ± %.3f | %d / %d |\n", lake_method_name((lake_method)m), mm[k],
            ms[k], sm, ss, greedy_ok, seeds);
    fflush(f);
  }
  int order[4] = {0, 1, 2, 3}; /* indices into meth[] */
  for (int i = 0; i < nmeth; i++)
    for (int j = i + 1; j < nmeth; j++)
      if (mm[order[j]] < mm[order[i]]) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
  fprintf(f, "\nranking by distance to the optimal transition matrix (closest first): ");
  for (int i = 0; i < nmeth; i++)
    fprintf(f, "%s%s", lake_method_name((lake_method)meth[order[i]]), i < nmeth - 1 ? " > " : "\n");
  free(mse);
  free(suc);
  if (out) {
    fclose(f);
    printf("lake: results in %s\n", out);
  }
  return APP_EXIT_OK;
}
