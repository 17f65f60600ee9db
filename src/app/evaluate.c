/* Held-out evaluation of a model (train's periodic evaluation, iftrain
 * eval): answer NLL, greedy exact match, ROUGE-L of the greedy answer, and
 * on preference data sets the preference accuracy.
 *
 * A row's answer is its first run of loss-masked tokens (the prompt is what
 * comes before it; in a multi-turn conversation, the first assistant turn).
 * The run ends with the end-of-turn token the data set was prepared with
 * (<eos> of the byte tokenizer, the chat template's end of turn — Mistral's
 * </s>, ChatML's <|im_end|> — or the tokenizer's EOS), and that token is
 * where the row's greedy generation stops: no list of stop tokens is
 * needed, whatever the tokenizer. */
#include <stdlib.h>
#include <string.h>

#include "iftrain/step.h"
#include "app_train.h"

/* Length of the longest common subsequence of a[0..n) and b[0..m)
 * (row[] holds m + 1 ints of scratch). */
static int lcs_len(const int *a, int n, const int *b, int m, int *row) {
  for (int j = 0; j <= m; j++) row[j] = 0;
  for (int i = 1; i <= n; i++) {
    int diag = 0; /* row[j - 1] of the previous i */
    for (int j = 1; j <= m; j++) {
      const int up = row[j];
      row[j] = a[i - 1] == b[j - 1] ? diag + 1 : (row[j - 1] > up ? row[j - 1] : up);
      diag = up;
    }
  }
  return row[m];
}

double eval_rouge_l(const int *gen, int n, const int *ref, int m) {
  if (n == 0 || m == 0) return n == m ? 1.0 : 0.0;
  /* answers are at most a sequence long: the scratch row fits the stack */
  int small[1024] = {0}, *row = m < 1024 ? small : malloc(sizeof(int) * (size_t)(m + 1));
  if (!row) return 0.0;
  const int l = lcs_len(gen, n, ref, m, row);
  if (row != small) free(row);
  if (l == 0) return 0.0;
  const double p = (double)l / n, r = (double)l / m;
  return 2 * p * r / (p + r);
}

/* NLL, exact match and ROUGE-L of rows [r0, r0 + nb) into sums (row-mean
 * NLL sum, rows, exact, rouge, -, token NLL sum, answer tokens); lp[j] =
 * row j's summed answer log-prob. Collective over the tensor-parallel
 * group: a failure on one of its ranks is agreed before the next
 * collective, so the group stops together. */
static ift_status eval_batch(train_ctx *tc, data_set *d, long r0, int nb, int max_new, double sums[7],
                             double lp[]) {
  const int Tm = tc->cfg.train.seq_len;
  int T;
  long rows[512];
  for (int j = 0; j < nb; j++) rows[j] = r0 + j;
  long ntok = 0;
  /* the replica's ranks agree on its reads before the forward's collectives */
  IFT_TRY(dist_agree(train_load_group(d, NULL, rows, nb, Tm, tc->tok, tc->mask, &T, &ntok), tc->grid.tp));
  /* With the key/value cache (1D layouts) the held-out forward below also
   * fills the cache: every prompt position's keys and values are those of
   * the prompt alone (causal attention), and generation then runs one token
   * per row and step (model_decode); else a full forward per step. */
  int kv = model_kv_supported(tc->m);
  if (kv) IFT_TRY(dist_agree(model_kv_enable(tc->m), tc->grid.tp));
  /* answer NLL: each row's mean (the SFT loss) and the token-weighted one */
  IFT_TRY(step_answer_logp(tc->m, &tc->ws, lp, tc->tok, tc->mask, nb, T));
  for (int j = 0; j < nb; j++) {
    int n = 0;
    for (int t = 0; t < T; t++) n += tc->mask[(size_t)j * T + t] != 0;
    if (n == 0) continue;
    sums[0] += -lp[j] / n;
    sums[1] += 1;
    sums[5] += -lp[j];
    sums[6] += n;
  }
  /* Greedy generation, all rows of the batch together, each until its
   * answer's end-of-turn token or max_new tokens. */
  int plen[512], pos[512], done[512], aend[512], stop[512];
  int maxp = 0;
  for (int j = 0; j < nb; j++) {
    const int *ref = tc->tok + (size_t)j * T;
    const uint8_t *mk = tc->mask + (size_t)j * T;
    int p = 1;
    while (p < T && !mk[p]) p++;
    int e = p;
    while (e < T && mk[e]) e++;
    plen[j] = pos[j] = p;
    aend[j] = e;
    stop[j] = e > p ? ref[e - 1] : -1;
    done[j] = p >= T;
    if (p > maxp) maxp = p;
    memcpy(tc->gen + (size_t)j * Tm, ref, sizeof(int) * (size_t)p);
  }
  int Tg = maxp + max_new < Tm ? maxp + max_new : Tm;
  int nexts[512], dtok[512], dpos[512];
  for (int step = 0; step < max_new; step++) {
    int cur = 0, active = 0;
    for (int j = 0; j < nb; j++)
      if (!done[j]) {
        active = 1;
        if (pos[j] + 1 > cur) cur = pos[j] + 1;
      }
    if (!active || cur > Tg) break;
    if (cur < 2) cur = 2;
    if (!kv) {
      for (int j = 0; j < nb; j++)
        for (int t = pos[j]; t < cur; t++) tc->gen[(size_t)j * Tm + t] = TOK_PAD;
      /* pack rows of stride Tm into [nb, cur] */
      for (int j = 0; j < nb; j++)
        memmove(tc->gtok + (size_t)j * cur, tc->gen + (size_t)j * Tm, sizeof(int) * (size_t)cur);
      model_input in = {.tokens = tc->gtok};
      IFT_TRY(model_forward(tc->m, tc->ws.logp, tc->ws.argmax, &in, nb, cur, 0));
      for (int j = 0; j < nb; j++) nexts[j] = tc->ws.argmax[(size_t)j * cur + pos[j] - 1];
    } else {
      /* each row's last token (the prompt's at step 0, then the one it
       * took) at its position; the cache holds the positions before it.
       * Finished rows decode a pad in place: their results are not used. */
      for (int j = 0; j < nb; j++) {
        dpos[j] = pos[j] - 1 < Tm - 1 ? pos[j] - 1 : Tm - 1;
        dtok[j] = done[j] ? TOK_PAD : tc->gen[(size_t)j * Tm + pos[j] - 1];
      }
      IFT_TRY(model_decode(tc->m, dtok, dpos, nb, nexts));
    }
    for (int j = 0; j < nb; j++) {
      if (done[j]) continue;
      tc->gen[(size_t)j * Tm + pos[j]] = nexts[j];
      pos[j]++;
      if (nexts[j] == stop[j] || pos[j] >= Tg) done[j] = 1;
    }
  }
  for (int j = 0; j < nb; j++) {
    const int alen = aend[j] - plen[j], glen = pos[j] - plen[j];
    if (alen <= 0) continue; /* no answer: counts as neither */
    const int *ref = tc->tok + (size_t)j * T + plen[j], *gen = tc->gen + (size_t)j * Tm + plen[j];
    /* exact: every answer token reproduced, the end-of-turn token included */
    sums[2] += glen == alen && !memcmp(gen, ref, sizeof(int) * (size_t)alen);
    /* ROUGE-L of the answers' tokens without the end-of-turn token */
    const int gl = glen > 0 && gen[glen - 1] == stop[j] ? glen - 1 : glen;
    sums[3] += eval_rouge_l(gen, gl, ref, alen - 1);
  }
  return IFT_OK;
}

/* Preference accuracy of pairs [r0, r0 + nb): the summed answer log-prob
 * of the chosen row (lp_chosen: a pair set's main rows are its chosen
 * rows, scored by eval_batch) above the rejected one's. */
static ift_status eval_pairs(train_ctx *tc, data_set *d, long r0, int nb, const double *lp_chosen,
                             double *correct) {
  const int Tm = tc->cfg.train.seq_len;
  long rows[512], ntok = 0;
  double lp[512];
  int T;
  for (int j = 0; j < nb; j++) rows[j] = r0 + j;
  IFT_TRY(dist_agree(train_load_group(d, "rejected", rows, nb, Tm, tc->tok, tc->mask, &T, &ntok), tc->grid.tp));
  IFT_TRY(step_answer_logp(tc->m, &tc->ws, lp, tc->tok, tc->mask, nb, T));
  for (int j = 0; j < nb; j++) *correct += lp_chosen[j] > lp[j];
  return IFT_OK;
}

ift_status train_evaluate(train_ctx *tc, data_set *d, int max_samples, int max_new, eval_result *r) {
  /* Every DP replica evaluates a slice of the held-out rows (and pairs). */
  const int B = tc->cfg.train.micro_batch;
  long n = d->n;
  if (max_samples > 0 && n > max_samples) n = max_samples;
  double sums[7] = {0}; /* row-mean nll sum, rows, exact, rouge, pairs correct, token nll sum, tokens */
  ift_status st = IFT_OK;
  const long stride = (long)tc->grid.dp_size * B;
  double lp[512];
  for (long r0 = (long)tc->grid.dp_rank * B; r0 < n && st == IFT_OK; r0 += stride) {
    const int nb = (int)(n - r0 < B ? n - r0 : B);
    st = eval_batch(tc, d, r0, nb, max_new, sums, lp);
    if (st == IFT_OK && d->has_pairs) st = eval_pairs(tc, d, r0, nb, lp, &sums[4]);
  }
  /* training goes on after an evaluation: no key/value cache (forwards
   * would keep storing into it, and packed micro-batches refuse it) */
  model_kv_disable(tc->m);
  /* replicas evaluate different numbers of batches: agree before the sum */
  IFT_TRY(dist_agree(st, tc->grid.world));
  if (tc->grid.tp_rank != 0) memset(sums, 0, sizeof sums);
  IFT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, 7, MPI_DOUBLE, MPI_SUM, tc->grid.world), NULL);
  memset(r, 0, sizeof *r);
  r->rows = n;
  r->loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
  r->token_nll = sums[6] > 0 ? sums[5] / sums[6] : 0;
  r->exact = n > 0 ? sums[2] / (double)n : 0;
  r->rouge_l = n > 0 ? sums[3] / (double)n : 0;
  r->pairs = d->has_pairs ? n : 0;
  r->pref_acc = d->has_pairs && n > 0 ? sums[4] / (double)n : 0;
  return IFT_OK;
}
