/* iftrain bench step: one rank's optimizer step (forward + backward +
 * AdamW, with the IFT intuition pass for IFT) on synthetic tokens, timed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app.h"
#include "app_config.h"
#include "iftrain/kern.h"
#include "iftrain/optim.h"
#include "iftrain/step.h"

static const char step_help[] =
    "iftrain bench step — time forward + backward + optimizer for SFT and IFT\n\n"
    "  --steps=N       timed steps per loss (default 5, after 1 warm-up step; 0: the\n"
    "                  warm-up step alone, timed: memory figures of long sequences)\n"
    "  --loss=LIST     sft,ift (default both)\n"
    "  --json          one JSON object per loss\n"
    "  --section.key=value   model and training keys (iftrain train --help-config);\n"
    "                  defaults here: hidden 512, intermediate 1376, 4 layers, 8 heads,\n"
    "                  8 KV heads, vocab 512, seq_len 256, micro_batch 8, AdamW\n\n"
    "Reports tokens/s, achieved GFLOP/s (model FLOPs: 3x forward for SFT, 4x for IFT),\n"
    "MFU against the single-core sgemm peak (best of 16 runs at start-up and after\n"
    "each loss's run, x threads; IFT_GEMM_PEAK=GFLOP/s fixes it), the\n"
    "IFT/SFT time ratio and memory (parameters, gradients, optimizer state,\n"
    "activations, peak RSS).\n";

typedef struct {
  double seconds, tps, gflops, mfu;
} step_result;

/* The synthetic micro-batch of every step (step_loader). */
typedef struct {
  const int *tok;
  const uint8_t *mask;
  int B, T;
} synth;
static ift_status synth_load(void *ctx, int k, step_mb *mb, long *ntok, long *slots) {
  const synth *s = ctx;
  (void)k;
  *mb = (step_mb){.rows = s->B, .T = s->T, .tokens = s->tok, .mask = s->mask, .n_global = s->B};
  *ntok += (long)s->B * s->T;
  *slots += (long)s->B * s->T;
  return IFT_OK;
}

static ift_status run_one(const app_config *c, loss_kind kind, int steps, step_result *r,
                          size_t *mem) {
  const int B = c->train.micro_batch, T = c->train.seq_len;
  dist_grid g;
  IFT_TRY(dist_grid_create(&g, MPI_COMM_SELF, 1));
  model *m = NULL;
  step_ws w;
  optim_state os;
  step_zero z;
  memset(&w, 0, sizeof w);
  memset(&os, 0, sizeof os);
  memset(&z, 0, sizeof z);
  int *tok = NULL;
  uint8_t *mask = NULL;
  ift_status st = model_create_opt(&m, &c->model, MPI_COMM_NULL, 0, 0, 0, B, T, (model_recompute)c->train.recompute);
  if (st == IFT_OK) {
    model_init_weights(m, c->model.init_seed);
    st = step_ws_create(&w, B, T);
  }
  if (st == IFT_OK) st = optim_create(&os, &c->optim, model_nparams(m));
  if (st == IFT_OK) st = step_zero_create(&z, 0, model_nparams(m), &g);
  tok = malloc(sizeof(int) * (size_t)B * T);
  mask = malloc((size_t)B * T);
  if (st != IFT_OK || !tok || !mask) goto done;
  for (int i = 0; i < B * T; i++) {
    tok[i] = (int)(rng_uniform(1, 0, (uint64_t)i) * c->model.vocab_size);
    mask[i] = (i % T) >= T / 4; /* a quarter prompt, the rest answer */
  }
  step_cfg sc = {.kind = kind, .ift = {.gamma = c->ift.gamma, .side = c->ift.side,
                                       .value = c->ift.value, .norm = c->ift.norm,
                                       .right_mu = c->ift.right_mu},
                 .embed_grad = c->ift.embed_grad};
  synth src = {tok, mask, B, T};
  double t0 = 0;
  for (int s = 0; s <= steps && st == IFT_OK; s++) {
    /* step 0 warms caches and page tables (--steps=0: it is the one timed) */
    if (s == (steps ? 1 : 0)) t0 = core_now();
    /* the step train runs: micro-batch, gradient norm, clipping, optimizer */
    const step_opts so = {.step = s, .nmb = 1, .lambda = (float)c->ift.lambda, .lr = c->optim.lr,
                          .clip = c->optim.clip, .n_global = B};
    step_report rep;
    st = step_optimizer(m, &w, &os, &z, &g, &sc, &so, synth_load, &src, &rep);
  }
  if (st == IFT_OK) {
    double dt = (core_now() - t0) / (steps ? steps : 1);
    double flops = model_forward_flops(m, B, T) * (kind == LOSS_IFT ? 4.0 : 3.0);
    r->seconds = dt;
    r->tps = B * T / dt;
    r->gflops = flops / dt * 1e-9;
    r->mfu = r->gflops / (kern_gemm_peak() * kern_threads());
    mem[0] = model_nparams(m) * sizeof(float);
    mem[1] = mem[0];
    mem[2] = (os.m ? mem[0] : 0) + (os.v ? mem[0] : 0);
    mem[3] = model_activation_bytes(m);
  }
done:
  free(tok);
  free(mask);
  step_zero_destroy(&z);
  optim_destroy(&os);
  step_ws_destroy(&w);
  if (m) model_destroy(m);
  dist_grid_destroy(&g);
  return st;
}

int app_bench_step(int argc, char **argv) {
  int steps = 5, json = 0, do_sft = 1, do_ift = 1;
  app_config c;
  app_config_defaults(&c);
  c.model.hidden_size = 512;
  c.model.intermediate_size = 1376;
  c.model.num_hidden_layers = 4;
  c.model.num_attention_heads = 8;
  c.model.num_key_value_heads = 8;
  c.model.vocab_size = 512;
  c.model.max_position_embeddings = 1024;
  c.model.tie_word_embeddings = 0;
  c.train.seq_len = 256;
  c.train.micro_batch = 8;
  c.optim = optim_defaults(OPTIM_ADAMW);
  c.optim.clip = 1.0;
  const char *loss = NULL;
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_INT("steps", &steps, APP_GE(0)),
      APP_STR("loss", &loss),
      APP_FLAG("json", &json),
      {0}};
  /* and --section.key=value: the configuration of the benchmarked model */
  const app_opts spec = {.cmd = "bench step", .opts = opts, .keep = APP_KEEP_OVERRIDES};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (core_rank() == 0) fputs(step_help, stdout);
    return APP_EXIT_OK;
  }
  if (app_config_load(&c, NULL, argc - 1, argv + 1) != IFT_OK) return APP_EXIT_USAGE;
  if (loss) {
    do_sft = strstr(loss, "sft") != NULL;
    do_ift = strstr(loss, "ift") != NULL;
  }
  if (core_rank() != 0) return APP_EXIT_OK; /* a single-rank benchmark */
  double peak = kern_gemm_peak();
  step_result res[2];
  size_t mem[4] = {0, 0, 0, 0};
  const loss_kind kinds[2] = {LOSS_SFT, LOSS_IFT};
  const int on[2] = {do_sft, do_ift};
  if (!json)
    printf("# model: hidden %d, intermediate %d, %d layers, %d heads (%d KV), vocab %d; "
           "batch %d x %d tokens; %s; BLIS %s, %d thread%s; sgemm peak %.1f GFLOP/s/core\n",
           c.model.hidden_size, c.model.intermediate_size, c.model.num_hidden_layers,
           c.model.num_attention_heads, c.model.num_key_value_heads, c.model.vocab_size,
           c.train.micro_batch, c.train.seq_len, optim_kind_name(c.optim.kind),
           kern_arch_name(kern_arch_active()), kern_threads(), kern_threads() > 1 ? "s" : "", peak);
  if (!json) printf("%-5s %10s %12s %10s %7s\n", "loss", "s/step", "tokens/s", "GFLOP/s", "MFU");
  for (int k = 0; k < 2; k++) {
    if (!on[k]) continue;
    if (run_one(&c, kinds[k], steps, &res[k], mem) != IFT_OK) return APP_EXIT_FAIL;
    /* the peak again after the run: the best of all measurements */
    peak = kern_gemm_peak_remeasure();
    res[k].mfu = res[k].gflops / (peak * kern_threads());
    if (json)
      printf("{\"bench\":\"step\",\"loss\":\"%s\",\"hidden\":%d,\"layers\":%d,\"seq_len\":%d,"
             "\"micro_batch\":%d,\"threads\":%d,\"kernels\":\"%s\",\"seconds\":%.5f,"
             "\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"mfu\":%.4f,\"peak_gflops\":%.2f}\n",
             loss_kind_name(kinds[k]), c.model.hidden_size, c.model.num_hidden_layers,
             c.train.seq_len, c.train.micro_batch, kern_threads(), kern_arch_name(kern_arch_active()),
             res[k].seconds, res[k].tps, res[k].gflops, res[k].mfu, peak);
    else
      printf("%-5s %10.4f %12.1f %10.1f %6.1f%%\n", loss_kind_name(kinds[k]), res[k].seconds,
             res[k].tps, res[k].gflops, 100 * res[k].mfu);
    fflush(stdout);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  if (!json) {
    if (do_sft && do_ift) printf("IFT/SFT time ratio: %.3f\n", res[1].seconds / res[0].seconds);
    printf("memory: parameters %.1f MiB, gradients %.1f MiB, optimizer state %.1f MiB, "
           "activations %.1f MiB (%.0f bytes per token), peak RSS %.1f MiB\n",
           mem[0] / 1048576.0, mem[1] / 1048576.0, mem[2] / 1048576.0, mem[3] / 1048576.0,
           (double)mem[3] / ((double)c.train.micro_batch * c.train.seq_len), ru.ru_maxrss / 1024.0);
    printf("MFU against the sgemm peak %.1f GFLOP/s/core: the best of the measurements at start-up and "
           "after each run (IFT_GEMM_PEAK sets it)\n", peak);
  } else if (do_sft && do_ift) {
    printf("{\"bench\":\"step\",\"ift_over_sft\":%.4f,\"param_bytes\":%zu,\"activation_bytes\":%zu,"
           "\"peak_rss_bytes\":%ld}\n",
           res[1].seconds / res[0].seconds, mem[0], mem[3], ru.ru_maxrss * 1024L);
  }
  return APP_EXIT_OK;
}
