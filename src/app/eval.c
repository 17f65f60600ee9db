/* iftrain eval and iftrain generate: a checkpoint's held-out loss and exact
 * match on a data set, and text from a prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/app.h"
#include "iftrain/ckpt.h"
#include "iftrain/data.h"
#include "iftrain/train.h"

const char app_eval_help[] =
    "Held-out loss and greedy exact-match accuracy of a checkpoint on a data set.\n"
    "  iftrain eval --ckpt FILE --data FILE.h5 [--max-samples N] [--max-new-tokens N]\n"
    "               [--micro-batch N] [--json] [--no-verify]\n\n"
    "The model config is read from the checkpoint. Exact match: greedy decoding from\n"
    "each row's prompt reproduces every answer token up to and including <eos>.\n"
    "Runs on any number of ranks (rows are split over them). FILE may also be a\n"
    "checkpoint directory (its latest). Every tensor's checksum is verified on load\n"
    "unless --no-verify is given. Exit codes: 0 ok, 2 bad input, 1 other failure.\n";

const char app_generate_help[] =
    "Generate text from a checkpoint.\n"
    "  iftrain generate --ckpt FILE --prompt TEXT [--max-new-tokens N]\n"
    "                   [--temperature T] [--top-k K] [--seed S] [--no-verify]\n\n"
    "The prompt is wrapped in the chat template: <bos> PROMPT <assistant>.\n"
    "temperature 0 (default) is greedy; otherwise softmax(logits / T) sampling,\n"
    "restricted to the K most likely tokens when --top-k is given.\n";

typedef struct {
  const char *ckpt, *data, *prompt;
  int max_samples, max_new, mb, json, top_k, no_verify;
  double temperature;
  long seed;
} ev_opts;

static int parse(int argc, char **argv, ev_opts *o, const char *cmd) {
  ift_status num = IFT_OK; /* a numeric option's value, checked (and reported) by app_opt_* */
  for (int i = 1; i < argc && num == IFT_OK; i++) {
    const char *v;
    if ((v = app_opt(argc, argv, &i, "ckpt"))) o->ckpt = v;
    else if ((v = app_opt(argc, argv, &i, "data"))) o->data = v;
    else if ((v = app_opt(argc, argv, &i, "prompt"))) o->prompt = v;
    else if ((v = app_opt(argc, argv, &i, "max-samples"))) num = app_opt_int("--max-samples", v, APP_GE(0), &o->max_samples);
    else if ((v = app_opt(argc, argv, &i, "max-new-tokens"))) num = app_opt_int("--max-new-tokens", v, APP_GE(1), &o->max_new);
    else if ((v = app_opt(argc, argv, &i, "micro-batch"))) num = app_opt_int("--micro-batch", v, APP_GE(1), &o->mb);
    else if ((v = app_opt(argc, argv, &i, "temperature"))) num = app_opt_double("--temperature", v, APP_GE(0), &o->temperature);
    else if ((v = app_opt(argc, argv, &i, "top-k"))) num = app_opt_int("--top-k", v, APP_GE(0), &o->top_k);
    else if ((v = app_opt(argc, argv, &i, "seed"))) num = app_opt_long("--seed", v, APP_GE(0), &o->seed);
    else if (!strcmp(argv[i], "--json")) o->json = 1;
    else if (!strcmp(argv[i], "--no-verify")) o->no_verify = 1;
    else {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain %s: unexpected argument '%s'\n  hint: iftrain %s --help\n", cmd, argv[i], cmd);
      return APP_EXIT_USAGE;
    }
  }
  if (num != IFT_OK) return APP_EXIT_USAGE;
  if (!o->ckpt) {
    if (core_rank() == 0) fprintf(stderr, "iftrain %s: --ckpt FILE is required\n", cmd);
    return APP_EXIT_USAGE;
  }
  return 0;
}

/* Model from the checkpoint's own config, weights loaded on the ranks of
 * MPI_COMM_WORLD (DP over them). */
static ift_status load(train_ctx *tc, const char *ckpt_arg, const char *eval_data, int mb, int T,
                       int verify) {
  memset(tc, 0, sizeof *tc); /* destroyable even when reading the config fails */
  char ckpt[1100];
  memset(tc, 0, sizeof *tc); /* the caller destroys it, whatever failed */
  app_config c;
  app_config_defaults(&c);
  ift_status st = ckpt_resolve_any(ckpt, sizeof ckpt, ckpt_arg);
  if (st == IFT_OK) st = ckpt_read_config(ckpt, &c.model);
  /* every rank reads the path on its own: agree before train_ctx_create's collectives */
  IFT_TRY(dist_agree(st, MPI_COMM_WORLD));
  c.train.micro_batch = mb;
  c.train.seq_len = T < c.model.max_position_embeddings ? T : c.model.max_position_embeddings;
  c.train.batch_size = mb;
  snprintf(c.data.eval, sizeof c.data.eval, "%s", eval_data ? eval_data : "");
  int size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  c.train.batch_size = mb * size;
  IFT_TRY(train_ctx_create(tc, &c, 0, MPI_COMM_WORLD));
  IFT_TRY(ckpt_load(ckpt, tc->m, NULL, NULL, tc->grid.world, verify ? CKPT_VERIFY : 0));
  /* the data's tokenizer must be the checkpoint's */
  char *origin = NULL;
  IFT_TRY(ckpt_origin_shared(ckpt, &origin, tc->grid.world));
  st = tc->have_eval ? data_check_tokenizer(&tc->eval, origin, ckpt, c.model.vocab_size, core_rank() == 0) : IFT_OK;
  free(origin);
  return st;
}

int app_eval(int argc, char **argv) {
  ev_opts o = {.max_new = 64, .mb = 8};
  int rc = parse(argc, argv, &o, "eval");
  if (rc) return rc;
  if (!o.data) {
    if (core_rank() == 0) fprintf(stderr, "iftrain eval: --data FILE.h5 is required\n");
    return APP_EXIT_USAGE;
  }
  train_ctx tc;
  ift_status st = load(&tc, o.ckpt, o.data, o.mb, 1 << 20, !o.no_verify);
  double loss = 0, exact = 0;
  if (st == IFT_OK) st = train_eval(&tc, &tc.eval, o.max_samples, o.max_new, &loss, &exact);
  long n = tc.have_eval ? tc.eval.n : 0;
  train_ctx_destroy(&tc);
  if (st != IFT_OK) return app_exit_code(st);
  if (o.max_samples > 0 && n > o.max_samples) n = o.max_samples;
  if (core_rank() == 0) {
    if (o.json)
      printf("{\"ckpt\":\"%s\",\"data\":\"%s\",\"samples\":%ld,\"eval_loss\":%.6f,\"exact_match\":%.4f}\n",
             o.ckpt, o.data, n, loss, exact);
    else
      printf("%s on %s (%ld samples): held-out loss %.4f, exact match %.4f\n", o.ckpt, o.data, n,
             loss, exact);
  }
  return APP_EXIT_OK;
}

/* iftrain prep --ref-logp: the reference model's summed answer log-probs of
 * every pair, rows split over the ranks (micro-batches of mb pairs), summed
 * into one [n, 2] array, written by rank 0 with the checkpoint's fingerprint. */
int app_ref_logp(const char *ckpt, const char *data, int mb) {
  train_ctx tc;
  memset(&tc, 0, sizeof tc); /* destroyable when the fingerprint fails before load */
  char fp[17] = "";
  /* rank 0 fingerprints the reference (a Hugging Face directory is read
   * whole for it); agree before the broadcast and load's collectives */
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  ift_status st = dist_agree(rank == 0 ? ckpt_fingerprint(ckpt, fp) : IFT_OK, MPI_COMM_WORLD);
  if (st == IFT_OK)
    st = dist_mpi_status(MPI_Bcast(fp, sizeof fp, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast",
                         __FILE__, __LINE__, NULL);
  if (st == IFT_OK) st = load(&tc, ckpt, data, 2 * mb, 1 << 20, 1);
  float *ref = NULL;
  long n = 0, longest = 0;
  double t0 = core_now(), t_last = t0, flops = 0;
  if (st == IFT_OK && !tc.eval.has_pairs) {
    ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "--data",
                  "prep the set from a JSONL with prompt/chosen/rejected lines",
                  "%s has no /chosen and /rejected pairs", data);
    st = IFT_ERR_FORMAT;
  }
  if (st == IFT_OK) {
    data_set *d = &tc.eval;
    n = d->n;
    ref = calloc((size_t)2 * (size_t)(n > 0 ? n : 1), sizeof(float));
    if (!ref) st = IFT_ERR_NOMEM;
    const int Tm = tc.cfg.train.seq_len;
    longest = data_max_pair_len(d);
    /* forward FLOPs of every chosen and rejected row (for compute budgets) */
    flops = model_forward_flops(tc.m, 1, Tm) / Tm *
            (double)(d->ch_offsets[n] + d->rj_offsets[n]);
    if (st == IFT_OK && longest > Tm) {
      ift_error_set(IFT_ERR_FORMAT, __FILE__, __LINE__, "--data",
                    "prep the data with --max-len or use a model with more positions",
                    "%s: a pair row has %ld tokens, more than the reference's %d positions", data, longest, Tm);
      st = IFT_ERR_FORMAT;
    }
    double sums[1024];
    long done = 0, rows[256], ntok = 0;
    for (long r0 = (long)tc.grid.dp_rank * mb; r0 < n && st == IFT_OK; r0 += (long)tc.grid.dp_size * mb) {
      const int nb = (int)(n - r0 < mb ? n - r0 : mb);
      int T = 2;
      for (int j = 0; j < nb; j++) rows[j] = r0 + j;
      /* the replica's ranks agree on its reads before the forward's collectives */
      st = dist_agree(train_load_pairs(d, rows, nb, Tm, tc.tok, tc.mask, NULL, &T, &ntok), tc.grid.tp);
      if (st == IFT_OK) st = step_answer_logp(tc.m, &tc.ws, sums, tc.tok, tc.mask, 2 * nb, T);
      if (st == IFT_OK && tc.grid.tp_rank == 0)
        for (int j = 0; j < nb; j++) {
          ref[2 * (r0 + j)] = (float)sums[j];
          ref[2 * (r0 + j) + 1] = (float)sums[nb + j];
        }
      done += nb;
      if (tc.grid.rank == 0 && core_loglevel() >= IFT_LOG_INFO && core_now() - t_last > 10) {
        t_last = core_now();
        fprintf(stderr, "ref-logp: ~%ld / %ld pairs (%.0f s)\n", done * tc.grid.dp_size, n, t_last - t0);
      }
    }
  }
  /* every rank took part in the collectives so far; agree on the outcome */
  int bad = st != IFT_OK, anybad = bad;
  if (tc.m) MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, tc.grid.world);
  if (!anybad && ref)
    MPI_Allreduce(MPI_IN_PLACE, ref, (int)(2 * n), MPI_FLOAT, MPI_SUM, tc.grid.world);
  const int rank0 = core_rank() == 0;
  if (tc.m) train_ctx_destroy(&tc); /* closes the data set everywhere before rank 0 rewrites it */
  if (!anybad && rank0) {
    st = data_write_ref_logp(data, ref, n, fp, ckpt);
    if (st == IFT_OK && core_loglevel() >= IFT_LOG_INFO)
      printf("ref-logp: %ld pairs scored by %s (fingerprint %s) in %.1f s, %.4g FLOPs -> %s:/ref_logp\n",
             n, ckpt, fp, core_now() - t0, flops, data);
  }
  free(ref);
  int rc = st != IFT_OK || anybad;
  MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return rc ? APP_EXIT_USAGE : APP_EXIT_OK;
}

int app_generate(int argc, char **argv) {
  ev_opts o = {.max_new = 64, .mb = 1};
  int rc = parse(argc, argv, &o, "generate");
  if (rc) return rc;
  if (!o.prompt) {
    if (core_rank() == 0) fprintf(stderr, "iftrain generate: --prompt TEXT is required\n");
    return APP_EXIT_USAGE;
  }
  train_ctx tc;
  ift_status st = load(&tc, o.ckpt, NULL, 1, 1 << 20, !o.no_verify);
  if (st != IFT_OK) {
    train_ctx_destroy(&tc);
    return app_exit_code(st);
  }
  const int Tm = tc.cfg.train.seq_len, V = tc.cfg.model.vocab_size;
  int *seq = tc.gen, n = 0;
  seq[n++] = TOK_BOS;
  n += data_tokenize(seq + n, Tm - 2, o.prompt, strlen(o.prompt));
  seq[n++] = TOK_ASSISTANT;
  const int start = n;
  /* The model returns log-probs of given targets, so with T > 0 the
   * distribution at the last position is read by scoring every candidate id
   * as the next token: V forwards of one short row, fine for the byte-level
   * vocabulary of this build. */
  float *scores = malloc(sizeof(float) * (size_t)V);
  const int kv = o.temperature <= 0 && model_kv_supported(tc.m); /* 2D mode: full forwards */
  if (kv) st = model_kv_enable(tc.m);
  for (int step = 0; step < o.max_new && n < Tm && st == IFT_OK; step++) {
    int next;
    int T = n + 1 > 2 ? n + 1 : 2;
    if (o.temperature <= 0 && kv && step > 0) {
      /* the key/value cache holds positions 0 .. n - 2: decode the last token */
      const int p = n - 1;
      st = model_decode(tc.m, &seq[p], &p, 1, &next);
    } else if (o.temperature <= 0) {
      /* a full forward (the prompt's, which fills the cache when kv) */
      seq[n] = TOK_PAD;
      model_input in = {.tokens = seq};
      st = model_forward(tc.m, tc.ws.logp, tc.ws.argmax, &in, 1, T, 0);
      next = tc.ws.argmax[n - 1];
    } else {
      for (int v = 0; v < V && st == IFT_OK; v++) {
        seq[n] = v;
        model_input in = {.tokens = seq};
        st = model_forward(tc.m, tc.ws.logp, NULL, &in, 1, T, 0);
        scores[v] = tc.ws.logp[n];
      }
      /* top-k filter then sample from softmax(logp / T) */
      double mx = -INFINITY;
      for (int v = 0; v < V; v++) mx = scores[v] > mx ? scores[v] : mx;
      float kth = -INFINITY;
      if (o.top_k > 0 && o.top_k < V) {
        float *tmp = malloc(sizeof(float) * (size_t)V);
        memcpy(tmp, scores, sizeof(float) * (size_t)V);
        for (int k = 0; k < o.top_k; k++) { /* partial selection */
          int b = k;
          for (int v = k + 1; v < V; v++) if (tmp[v] > tmp[b]) b = v;
          float t = tmp[k]; tmp[k] = tmp[b]; tmp[b] = t;
        }
        kth = tmp[o.top_k - 1];
        free(tmp);
      }
      double z = 0;
      for (int v = 0; v < V; v++) z += scores[v] >= kth ? exp((scores[v] - mx) / o.temperature) : 0;
      double u = rng_uniform((uint64_t)o.seed, 0x67656e, (uint64_t)step) * z, acc = 0;
      next = V - 1;
      for (int v = 0; v < V; v++) {
        acc += scores[v] >= kth ? exp((scores[v] - mx) / o.temperature) : 0;
        if (acc >= u) { next = v; break; }
      }
    }
    seq[n++] = next;
    if (next == TOK_EOS) break;
  }
  free(scores);
  if (st == IFT_OK && core_rank() == 0) {
    char text[4096];
    int end = n;
    if (end > start && seq[end - 1] == TOK_EOS) end--;
    data_detokenize(text, sizeof text, seq + start, end - start);
    printf("%s%s\n", o.prompt, text);
  }
  train_ctx_destroy(&tc);
  return app_exit_code(st);
}
