/* hfgrad MODEL --tokens R1;R2;... --mask M1;M2;... [--tp N] [--grid PRxPC] [--block NB]
 *        [--ift LAMBDA,GAMMA] [--embed-grad 0|1]
 *
 * The loss and the full gradient of one SFT (or, with --ift, IFT) micro-batch
 * computed by iftrain on the weights of MODEL (a Hugging Face directory or an
 * iftrain checkpoint) through step_microbatch -- the function `train` calls --
 * on the layout of this job: TP ranks per replica (default 1; 1D Megatron
 * splits, or with --grid the 2D mode on a PR x PC BLACS grid, weights in
 * NB x NB blocks block-cyclic when --block NB > 0), the other factor of the
 * job data-parallel.  The B rows are split over the DP replicas in order
 * (B divisible by the replica count), the loss is averaged over all B rows
 * (n_global = B) and the gradients are summed over the replicas as `train`
 * does.  The gradient shards are gathered into global tensors (the shard
 * layout of model_tensor_grow / model_tensor_gcol, block-cyclic included).
 *
 * Rank 0 prints JSON in tests/hf/hfref.py grad's field names: "loss",
 * "tokens", "mask", "grads" {HF name: flat row-major}, with --ift "alt" (the
 * replaced tokens x~ of the intuition pass, every row), plus "layout" and
 * "replica_spread" (the largest difference between TP ranks' copies of a
 * replicated gradient, relative to the tensor's largest entry; 0 expected).
 * For tests/hf/grads.sh.  Exit 0, 2 on bad input, 1 on failure (including
 * TP ranks that disagree on x~). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/ckpt.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"
#include "iftrain/step.h"

enum { MAXN = 1 << 16 };

/* "a,b,c;d,e,f" -> values (row-major), *rows and *cols; -1 on a ragged or bad list */
static int parse_rows(const char *s, int *out, int *rows, int *cols) {
  int n = 0, r = 0, c = 0, c0 = -1;
  const char *p = s;
  while (*p) {
    char *e;
    long v = strtol(p, &e, 10);
    if (e == p || n >= MAXN) return -1;
    out[n++] = (int)v;
    c++;
    p = e;
    if (*p == ',') p++;
    else if (*p == ';' || *p == '\0') {
      if (c0 >= 0 && c != c0) return -1;
      c0 = c;
      c = 0;
      r++;
      if (*p == ';') p++;
    } else
      return -1;
  }
  *rows = r;
  *cols = c0;
  return r > 0 && c0 > 0 ? 0 : -1;
}

static int usage(void) {
  fprintf(stderr, "usage: hfgrad MODEL --tokens R1;R2 --mask M1;M2 [--tp N] [--grid PRxPC] [--block NB]\n"
                  "              [--ift LAMBDA,GAMMA] [--embed-grad 0|1]\n");
  return 2;
}

/* Gather tensor t's gradient shards of every rank of the TP communicator
 * into the global [rows, cols] tensor `out` on TP rank 0: the sum and count
 * over the ranks holding an element (the mean of replicated copies), and
 * their min and max (*spread: how far replicated copies differ, relative to
 * the tensor's largest entry).  buf: 4 rows*cols doubles on every rank,
 * rb: the same on TP rank 0.  Collective over tp; agreed by the caller. */
static ift_status gather(const model_tensor *t, const float *g, MPI_Comm tp, double *buf, double *rb,
                         double *out, double *spread) {
  const size_t n = (size_t)t->rows * t->cols;
  double *sum = buf, *cnt = buf + n, *mn = buf + 2 * n, *mx = buf + 3 * n;
  for (size_t i = 0; i < n; i++) {
    sum[i] = cnt[i] = 0;
    mn[i] = INFINITY;
    mx[i] = -INFINITY;
  }
  for (int r = 0; r < t->lrows; r++)
    for (int c = 0; c < t->lcols; c++) {
      const size_t i = (size_t)model_tensor_grow(t, r) * t->cols + model_tensor_gcol(t, c);
      const double v = g[t->offset + (size_t)r * t->lcols + c];
      sum[i] += v;
      cnt[i] += 1;
      mn[i] = fmin(mn[i], v);
      mx[i] = fmax(mx[i], v);
    }
  IFT_MPI_CHECK(MPI_Reduce(buf, rb, (int)(2 * n), MPI_DOUBLE, MPI_SUM, 0, tp), NULL);
  IFT_MPI_CHECK(MPI_Reduce(mn, rb ? rb + 2 * n : NULL, (int)n, MPI_DOUBLE, MPI_MIN, 0, tp), NULL);
  IFT_MPI_CHECK(MPI_Reduce(mx, rb ? rb + 3 * n : NULL, (int)n, MPI_DOUBLE, MPI_MAX, 0, tp), NULL);
  if (!rb) return IFT_OK;
  double big = 0, sp = 0;
  for (size_t i = 0; i < n; i++) {
    IFT_REQUIRE(rb[n + i] >= 1, IFT_ERR_INTERNAL, "model_tensor_grow/gcol must cover the tensor",
                "%s: element %zu is on no rank's shard", t->name, i);
    out[i] = rb[i] / rb[n + i];
    big = fmax(big, fabs(out[i]));
    sp = fmax(sp, rb[3 * n + i] - rb[2 * n + i]);
  }
  *spread = big > 0 ? sp / big : sp;
  return IFT_OK;
}

static void print_rows(const char *name, const int *v, int B, int T) {
  printf(", \"%s\": [", name);
  for (int b = 0; b < B; b++) {
    printf("%s[", b ? ", " : "");
    for (int t = 0; t < T; t++) printf("%s%d", t ? "," : "", v[(size_t)b * T + t]);
    printf("]");
  }
  printf("]");
}

typedef struct {
  const char *path;
  int tp, pr, pc, nb, ift, embed_grad, B, T;
  double lambda, gamma;
  const int *tok;
  const uint8_t *mask;
} job;

/* Everything after MPI is up; every failure is agreed before the next collective. */
static ift_status run(const job *j, dist_grid *g) {
  model_config c;
  model *m = NULL;
  step_ws w = {0};
  loss_metrics met = {0};
  int *alls = NULL, *mk = NULL;
  double *gl = NULL, *buf = NULL, *rb = NULL;
  const int B = j->B, T = j->T;
  ift_status st = IFT_OK;
  if (B % g->dp_size) {
    ift_error_set(IFT_ERR_ARG, __FILE__, __LINE__, "hfgrad", "give a multiple of the replicas",
                  "%d rows over %d data-parallel replicas", B, g->dp_size);
    st = IFT_ERR_ARG;
  }
  const int Bl = B / g->dp_size, row0 = g->dp_rank * Bl;
  if (st == IFT_OK) st = ckpt_read_config(j->path, &c);
  if (st == IFT_OK && j->pr) st = model_grid_check(&c, j->pr, j->pc, j->nb);
  if (st == IFT_OK) {
    dist_set_pblas_block(dist_pblas_block_for(c.hidden_size)); /* as train does */
    st = model_create_grid(&m, &c, g->tp, j->pr, j->pc, j->nb, Bl, T);
  }
  if (st == IFT_OK) st = step_ws_create(&w, Bl, T);
  IFT_AGREE_OR(st, g->world, out);
  st = ckpt_load(j->path, m, NULL, NULL, g->world, CKPT_VERIFY);
  IFT_AGREE_OR(st, g->world, out);

  step_cfg sc = {.kind = j->ift ? LOSS_IFT : LOSS_SFT, .ift = loss_ift_defaults(),
                 .embed_grad = j->embed_grad};
  sc.ift.gamma = j->gamma;
  model_zero_grads(m);
  st = step_microbatch(m, &w, &met, j->tok + (size_t)row0 * T, j->mask + (size_t)row0 * T, Bl, T,
                       (double)B, (float)j->lambda, &sc, 1);
  IFT_AGREE_OR(st, g->world, out);
  /* data-parallel gradient sum, as train does (the loss is already the global mean) */
  if (g->dp_size > 1) {
    st = dist_allreduce(model_grads(m), (int)model_nparams(m), MPI_FLOAT, MPI_SUM, g->dp);
    IFT_AGREE_OR(st, g->world, out);
  }
  double loss = g->tp_rank == 0 ? met.loss_sum : 0;
  st = dist_allreduce(&loss, 1, MPI_DOUBLE, MPI_SUM, g->world);
  IFT_AGREE_OR(st, g->world, out);
  loss /= B;
  /* x~ of every row from every rank (TP ranks of a replica must agree) */
  alls = malloc(sizeof(int) * (size_t)g->size * Bl * T);
  mk = malloc(sizeof(int) * (size_t)B * T);
  if (!alls || !mk) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL, "x~ of %d ranks", g->size);
    st = IFT_ERR_NOMEM;
  }
  IFT_AGREE_OR(st, g->world, out);
  if (j->ift) {
    IFT_MPI_CHECK_GOTO(st, out, MPI_Gather(w.alt, Bl * T, MPI_INT, alls, Bl * T, MPI_INT, 0, g->world), NULL);
    if (g->rank == 0)
      for (int r = 0; r < g->size && st == IFT_OK; r++)
        if (memcmp(alls + (size_t)r * Bl * T, alls + (size_t)(r - r % j->tp) * Bl * T,
                   sizeof(int) * (size_t)Bl * T)) {
          ift_error_set(IFT_ERR_INTERNAL, __FILE__, __LINE__, "hfgrad", NULL,
                        "rank %d's intuition tokens differ from its TP rank 0's", r);
          st = IFT_ERR_INTERNAL;
        }
    IFT_AGREE_OR(st, g->world, out);
  }
  if (g->rank == 0) {
    printf("{\"layout\": {\"ranks\": %d, \"tp\": %d, \"dp\": %d, \"grid\": [%d, %d], \"block\": %d}",
           g->size, g->tp_size, g->dp_size, j->pr, j->pc, j->nb);
    printf(", \"loss\": %.10g", loss);
    print_rows("tokens", j->tok, B, T);
    for (int i = 0; i < B * T; i++) mk[i] = j->mask[i];
    print_rows("mask", mk, B, T);
    if (j->ift) {
      printf(", \"ift\": {\"lambda\": %.9g, \"gamma\": %.9g, \"embed_grad\": %d}", j->lambda, j->gamma,
             j->embed_grad);
      /* replica d's rows are on world rank d * tp, in order */
      for (int d = 0; d < g->dp_size; d++)
        memcpy(mk + (size_t)d * Bl * T, alls + (size_t)d * j->tp * Bl * T, sizeof(int) * (size_t)Bl * T);
      print_rows("alt", mk, B, T);
    }
    printf(", \"grads\": {");
  }
  /* gradients: each replica's TP ranks gather to their TP rank 0 (the
   * replicas hold the same sums); world rank 0 prints */
  double spread = 0;
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    const size_t n = (size_t)t->rows * t->cols;
    double sp = 0;
    gl = malloc(n * sizeof(double));
    buf = malloc(4 * n * sizeof(double));
    rb = g->tp_rank == 0 ? malloc(4 * n * sizeof(double)) : NULL;
    if (!gl || !buf || (g->tp_rank == 0 && !rb)) {
      ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL, "gather buffers of %s", t->name);
      st = IFT_ERR_NOMEM;
    }
    IFT_AGREE_OR(st, g->world, out);
    st = gather(t, model_grads(m), g->tp, buf, rb, gl, &sp);
    IFT_AGREE_OR(st, g->world, out);
    if (g->rank == 0) {
      spread = fmax(spread, sp);
      printf("%s\"%s\": [", i ? ", " : "", t->name);
      for (size_t k = 0; k < n; k++) printf("%s%.9g", k ? "," : "", gl[k]);
      printf("]");
    }
    free(gl);
    free(buf);
    free(rb);
    gl = buf = rb = NULL;
  }
  if (g->rank == 0) printf("}, \"replica_spread\": %.3g}\n", spread);
out:
  free(gl);
  free(buf);
  free(rb);
  free(alls);
  free(mk);
  step_ws_destroy(&w);
  if (m) model_destroy(m);
  return st;
}

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') return usage();
  job j = {.path = argv[1], .tp = 1};
  const char *tok_s = NULL, *mask_s = NULL, *grid_s = NULL, *ift_s = NULL;
  for (int i = 2; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    if (!strcmp(a, "--tokens")) tok_s = v;
    else if (!strcmp(a, "--mask")) mask_s = v;
    else if (!strcmp(a, "--tp")) j.tp = atoi(v);
    else if (!strcmp(a, "--grid")) grid_s = v;
    else if (!strcmp(a, "--block")) j.nb = atoi(v);
    else if (!strcmp(a, "--ift")) ift_s = v;
    else if (!strcmp(a, "--embed-grad")) j.embed_grad = atoi(v);
    else return usage();
  }
  static int tok[MAXN], mk[MAXN];
  static uint8_t mask[MAXN];
  int Bm, Tm;
  j.ift = ift_s != NULL;
  if (!tok_s || !mask_s || parse_rows(tok_s, tok, &j.B, &j.T) || parse_rows(mask_s, mk, &Bm, &Tm) ||
      Bm != j.B || Tm != j.T || j.tp < 1 || j.nb < 0 ||
      (grid_s && (sscanf(grid_s, "%dx%d", &j.pr, &j.pc) != 2 || j.pr < 1 || j.pc < 1 || j.pr * j.pc != j.tp)) ||
      (ift_s && (sscanf(ift_s, "%lf,%lf", &j.lambda, &j.gamma) != 2 || j.lambda < 0 || j.lambda > 1 ||
                 j.gamma < 0 || j.gamma > 1)))
    return usage();
  for (int i = 0; i < j.B * j.T; i++) mask[i] = (uint8_t)(mk[i] != 0);
  j.tok = tok;
  j.mask = mask;
  if (kern_select_arch(NULL) != IFT_OK || dist_init(&argc, &argv) != IFT_OK) return 1;
  dist_grid g;
  ift_status st = dist_grid_create(&g, MPI_COMM_WORLD, j.tp);
  if (st == IFT_OK) {
    st = run(&j, &g);
    dist_grid_destroy(&g);
  }
  dist_finalize();
  return st == IFT_OK ? 0 : st == IFT_ERR_UNIMPL || st == IFT_ERR_FORMAT || st == IFT_ERR_CONFIG ||
                                    st == IFT_ERR_IO || st == IFT_ERR_ARG || st == IFT_ERR_LAYOUT ? 2 : 1;
}
