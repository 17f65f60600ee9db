/* iftrain bench scaling: tokens/s of training steps for a list of DP x TP
 * layouts and model sizes, strong (fixed global batch) and weak (fixed batch
 * per replica) scaling, with each step's time split into compute,
 * communication and idle (waiting for the slowest rank), as CSV. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "app_config.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"
#include "iftrain/optim.h"
#include "iftrain/step.h"

static const char scaling_help[] =
    "iftrain bench scaling — training-step throughput per rank layout (run under mpirun -n P)\n\n"
    "  --layouts=LIST   DPxTP layouts, e.g. 1x1,2x1,1x2 (default: every DPxTP with DP*TP <= P);\n"
    "                   DPxPRxPC is TP = PR*PC in 2D mode on a PR x PC PBLAS grid, e.g. 1x1x2,1x2x1\n"
    "  --hidden=LIST    model widths (default 128,512); heads = hidden/64 (min 2), KV heads = heads,\n"
    "                   intermediate = 2.75 x hidden, --layers=N layers (default 4)\n"
    "  --mode=LIST      strong (global batch --batch) and/or weak (--batch per replica)\n"
    "  --batch=N        sequences (default 16); --seq=N tokens each (default 64)\n"
    "  --tp-block=N     2D layouts: weights block-cyclic in N x N blocks (default 0: one block per rank)\n"
    "  --pblas-block=N  PBLAS logical block (PILAENV, psgemm's k step; default hidden / 2 in [64, 512]\n"
    "                   as in training; reference PBLAS 32)\n"
    "  --loss=sft|ift   objective (default ift); --steps=N timed steps (default 4)\n"
    "  --csv=FILE       append one CSV row per case (header written when the file is new)\n"
    "  --json           one JSON object per case instead of the table\n\n"
    "Efficiency = tokens/s / (ranks x tokens/s of the 1x1 layout of the same model and mode).\n"
    "compute/comm/idle are per-rank means of the step time: comm is time inside MPI\n"
    "all-reduces (2D: also psgemr2d and all-gathers; psgemm's own messages count as\n"
    "compute), idle is waiting for the slowest rank at the end of the step.\n"
    "Plot with: gnuplot -e \"csv='FILE'\" bench/plot_scaling.gp\n";

typedef struct {
  int dp, tp, pr, pc; /* pr = pc = 0: 1D tensor parallelism */
} layout;

typedef struct {
  double tps, step, compute, comm, idle;
} sres;

/* "DPxTP" (1D) or "DPxPRxPC" (2D) items, comma-separated; count or -1. */
static int parse_layouts(const char *s, layout *out, int n) {
  int k = 0;
  while (*s && k < n) {
    int d[3], m = 0;
    if (app_take_int(&s, &d[m++])) return -1;
    while (*s == 'x' && m < 3) {
      s++;
      if (app_take_int(&s, &d[m++])) return -1;
    }
    if (m == 1 || (m == 3 && d[1] > INT_MAX / d[2])) return -1;
    out[k++] = m == 3 ? (layout){d[0], d[1] * d[2], d[1], d[2]} : (layout){d[0], d[1], 0, 0};
    if (app_take_comma(&s)) return -1;
  }
  return *s ? -1 : k;
}

/* Micro-batch k of this rank's rows of synthetic tokens (step_loader). */
typedef struct {
  int *tok;
  uint8_t *mask;
  int dp_rank, rows, mb, T, global_batch;
} synth;
static ift_status synth_load(void *ctx, int k, step_mb *out, long *ntok, long *slots) {
  const synth *s = ctx;
  const int j0 = k * s->mb, T = s->T, nb = s->rows - j0 < s->mb ? s->rows - j0 : s->mb;
  for (int i = 0; i < nb * T; i++) {
    long row = (long)s->dp_rank * s->rows + j0 + i / T;
    s->tok[i] = (int)(rng_uniform(3, (uint64_t)row, (uint64_t)(i % T)) * 256);
    s->mask[i] = (i % T) >= T / 4;
  }
  *out = (step_mb){.rows = nb, .T = T, .tokens = s->tok, .mask = s->mask, .n_global = s->global_batch};
  *ntok += (long)nb * T;
  *slots += (long)nb * T;
  return IFT_OK;
}

static ift_status run_case(const model_config *mc, loss_kind kind, int global_batch, int T, int steps,
                           MPI_Comm sub, const layout *lay, int nb, sres *r) {
  dist_grid g;
  IFT_TRY(dist_grid_create(&g, sub, lay->tp));
  const int rows = global_batch / g.dp_size, mb = rows < 8 ? rows : 8;
  model *m;
  ift_status st = model_create_grid(&m, mc, g.tp, lay->pr, lay->pc, nb, mb, T);
  if (st != IFT_OK) {
    dist_grid_destroy(&g);
    return st;
  }
  model_init_weights(m, 1);
  step_ws w;
  optim_state os;
  step_zero z;
  optim_cfg oc = optim_defaults(OPTIM_ADAMW);
  memset(&os, 0, sizeof os);
  memset(&z, 0, sizeof z);
  st = step_ws_create(&w, mb, T);
  if (st == IFT_OK) st = optim_create(&os, &oc, model_nparams(m));
  if (st == IFT_OK) st = step_zero_create(&z, 0, model_nparams(m), &g);
  int *tok = malloc(sizeof(int) * (size_t)mb * T);
  uint8_t *mask = malloc((size_t)mb * T);
  if (!tok || !mask) st = IFT_ERR_NOMEM;
  step_cfg sc = {.kind = kind, .ift = loss_ift_defaults()};
  synth src = {.tok = tok, .mask = mask, .dp_rank = g.dp_rank, .rows = rows, .mb = mb, .T = T,
               .global_batch = global_batch};
  double t_all = 0, t_comm = 0, t_idle = 0;
  for (int s = 0; s <= steps && st == IFT_OK; s++) {
    MPI_Barrier(sub);
    dist_comm_reset();
    double t0 = core_now();
    /* the step train runs: micro-batches, gradient all-reduce, norm, optimizer */
    const step_opts so = {.step = s, .nmb = (rows + mb - 1) / mb, .lambda = 0.2f, .lr = 1e-4,
                          .n_global = global_batch};
    step_report rep;
    st = step_optimizer(m, &w, &os, &z, &g, &sc, &so, synth_load, &src, &rep);
    double busy = core_now() - t0;
    MPI_Barrier(sub); /* the step ends when the slowest rank is done */
    double total = core_now() - t0;
    if (s > 0) { /* step 0 warms up */
      t_all += total;
      t_comm += dist_comm_seconds();
      t_idle += total - busy;
    }
  }
  double v[3] = {t_all, t_comm, t_idle};
  int n;
  MPI_Comm_size(sub, &n);
  MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_SUM, sub);
  r->step = v[0] / n / steps;
  r->comm = v[1] / n / steps;
  r->idle = v[2] / n / steps;
  r->compute = r->step - r->comm - r->idle;
  r->tps = (double)global_batch * T / r->step;
  free(tok);
  free(mask);
  step_zero_destroy(&z);
  optim_destroy(&os);
  step_ws_destroy(&w);
  model_destroy(m);
  dist_grid_destroy(&g);
  return st;
}

int app_bench_scaling(int argc, char **argv) {
  layout lays[32];
  int nl = 0, hid[8] = {128, 512}, nh = 2, layers = 4, batch = 16, T = 64, steps = 4, json = 0, nb = 0, pblas = 0;
  int strong = 1, weak = 1;
  loss_kind kind = LOSS_IFT;
  const char *csv = NULL;
  int P, rank;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const char *layouts = NULL, *hidden = NULL, *loss = NULL, *mode = NULL;
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_STR("layouts", &layouts),
      APP_STR("hidden", &hidden),
      APP_INT("layers", &layers, APP_GE(1)),
      APP_INT("batch", &batch, APP_GE(1)),
      APP_INT("seq", &T, APP_GE(2)),
      APP_INT("steps", &steps, APP_GE(1)),
      APP_INT("tp-block", &nb, APP_GE(0)),
      APP_INT("pblas-block", &pblas, APP_GE(1)),
      APP_STR("csv", &csv),
      APP_STR("loss", &loss),
      APP_STR("mode", &mode),
      APP_FLAG("json", &json),
      {0}};
  const app_opts spec = {.cmd = "bench scaling", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (rank == 0) fputs(scaling_help, stdout);
    return APP_EXIT_OK;
  }
  if (layouts && (nl = parse_layouts(layouts, lays, 32)) <= 0) return app_bad_option(spec.cmd, "layouts", layouts);
  if (hidden && (nh = app_parse_int_list(hidden, hid, 8)) <= 0) return app_bad_option(spec.cmd, "hidden", hidden);
  if (loss && (loss_kind_parse(loss, &kind) || (kind != LOSS_SFT && kind != LOSS_IFT)))
    return app_bad_option(spec.cmd, "loss", loss);
  if (mode) {
    strong = strstr(mode, "strong") != NULL;
    weak = strstr(mode, "weak") != NULL;
    if (!strong && !weak) return app_bad_option(spec.cmd, "mode", mode);
  }
  if (nl == 0) /* every DP x TP that fits, 1x1 first (the efficiency base) */
    for (int n = 1; n <= P; n++)
      for (int t = 1; t <= n; t++)
        if (n % t == 0 && nl < 32) lays[nl++] = (layout){n / t, t, 0, 0};
  FILE *out = NULL;
  if (rank == 0 && csv) {
    FILE *probe = fopen(csv, "r");
    int fresh = !probe;
    if (probe) fclose(probe);
    out = fopen(csv, "a");
    if (!out) {
      fprintf(stderr, "iftrain bench scaling: cannot write %s\n", csv);
      return APP_EXIT_USAGE;
    }
    if (fresh)
      fprintf(out, "mode,loss,hidden,layers,dp,tp,ranks,global_batch,seq,tokens_per_s,step_s,compute_s,"
                   "comm_s,idle_s,efficiency,kernels,tp_grid\n");
  }
  if (rank == 0 && !json)
    printf("%-6s %6s %5s %3s %3s %8s %7s %12s %9s %9s %9s %9s %6s\n", "mode", "hidden", "batch", "dp",
           "tp", "2d", "ranks", "tokens/s", "step s", "compute", "comm", "idle", "eff");
  for (int h = 0; h < nh; h++) {
    model_config mc = model_config_default();
    mc.hidden_size = hid[h];
    mc.intermediate_size = (int)(2.75 * hid[h]) / 8 * 8;
    mc.num_attention_heads = hid[h] / 64 < 2 ? 2 : hid[h] / 64;
    mc.num_key_value_heads = mc.num_attention_heads;
    mc.num_hidden_layers = layers;
    mc.max_position_embeddings = T;
    dist_set_pblas_block(pblas ? pblas : dist_pblas_block_for(hid[h]));
    for (int mode = 0; mode < 2; mode++) {
      if ((mode == 0 && !strong) || (mode == 1 && !weak)) continue;
      double base = 0;
      for (int l = 0; l < nl; l++) {
        int n = lays[l].dp * lays[l].tp;
        if (n > P) continue;
        int gb = mode == 0 ? batch : batch * lays[l].dp;
        if (gb % lays[l].dp) continue;
        MPI_Comm sub;
        MPI_Comm_split(MPI_COMM_WORLD, rank < n ? 0 : MPI_UNDEFINED, rank, &sub);
        sres r = {0, 0, 0, 0, 0};
        int ok = 1;
        if (sub != MPI_COMM_NULL) {
          ift_error_quiet(rank != 0);
          ok = run_case(&mc, kind, gb, T, steps, sub, &lays[l], nb, &r) == IFT_OK;
          ift_error_quiet(0);
          MPI_Comm_free(&sub);
        }
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(&r, sizeof r / sizeof(double), MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (!ok) continue; /* layout cannot hold this model: reported by rank 0 */
        if (n == 1) base = r.tps;
        double eff = base > 0 ? r.tps / (n * base) : 0;
        const char *mname = mode == 0 ? "strong" : "weak";
        char grid[24] = "1d";
        if (lays[l].pr && nb) snprintf(grid, sizeof grid, "%dx%d/b%d", lays[l].pr, lays[l].pc, nb);
        else if (lays[l].pr) snprintf(grid, sizeof grid, "%dx%d", lays[l].pr, lays[l].pc);
        if (rank == 0) {
          if (json)
            printf("{\"bench\":\"scaling\",\"mode\":\"%s\",\"loss\":\"%s\",\"hidden\":%d,\"layers\":%d,\"dp\":%d,"
                   "\"tp\":%d,\"ranks\":%d,\"global_batch\":%d,\"seq\":%d,\"tokens_per_s\":%.1f,\"seconds\":%.5f,"
                   "\"compute_seconds\":%.5f,\"comm_seconds\":%.5f,\"idle_seconds\":%.5f,\"efficiency\":%.4f,"
                   "\"tp_grid\":\"%s\"}\n",
                   mname, loss_kind_name(kind), hid[h], layers, lays[l].dp, lays[l].tp, n, gb, T, r.tps,
                   r.step, r.compute, r.comm, r.idle, eff, grid);
          else
            printf("%-6s %6d %5d %3d %3d %8s %7d %12.1f %9.4f %9.4f %9.4f %9.4f %5.0f%%\n", mname, hid[h],
                   gb, lays[l].dp, lays[l].tp, grid, n, r.tps, r.step, r.compute, r.comm, r.idle,
                   100 * eff);
          if (out)
            fprintf(out, "%s,%s,%d,%d,%d,%d,%d,%d,%d,%.1f,%.5f,%.5f,%.5f,%.5f,%.4f,%s,%s\n", mname,
                    loss_kind_name(kind), hid[h], layers, lays[l].dp, lays[l].tp, n, gb, T, r.tps, r.step,
                    r.compute, r.comm, r.idle, eff, kern_arch_name(kern_arch_active()), grid);
          fflush(stdout);
        }
      }
    }
  }
  if (out) fclose(out);
  return APP_EXIT_OK;
}
