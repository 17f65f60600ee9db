/* metrics — the JSON lines of metrics.path and the FLOP accounting of a
 * training run (see metrics.h).
 *
 * A record is one compact JSON object on a line, keys in a fixed order.
 * Each number keeps the precision it has always been written with (loss
 * and nll 6 decimals, lambda 4, flops 5 significant digits, ...): it is
 * rounded through that printf format, and the dump's 15 significant digits
 * give the rounded decimal back, without the trailing zeros ("1.0" rather
 * than "1.0000").  Counts (step, epoch, tokens, restart_count) are
 * integers.  A NaN or infinite value is written as null, so that every line
 * stays valid JSON (a run stops at a non-finite loss or gradient, but a
 * rate over a zero time or an empty step can still be one). */
#include "config.h"
#include "metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iftrain/kern.h"

void metrics_flops_init(metrics_flops *f, const model *m, int seq_len, loss_kind kind, int ranks) {
  f->ift = kind == LOSS_IFT;
  f->per_token = model_forward_flops(m, 1, seq_len) / seq_len * (f->ift ? 4.0 : 3.0);
  f->peak = kern_gemm_peak() * ranks * kern_threads();
  f->run = 0;
}

double metrics_flops_step(metrics_flops *f, float lambda, double tokens, double tokens_per_s) {
  /* IFT with lambda = 0 skips its intuition pass: 3 passes, not 4 */
  const double ftok = f->ift && lambda == 0.0f ? f->per_token * 0.75 : f->per_token;
  f->run += ftok * tokens;
  return tokens_per_s * ftok / (f->peak * 1e9);
}

/* x rounded as printf's fmt writes it; null when not finite. */
static json_t *num(const char *fmt, double x) {
  if (!isfinite(x)) return json_null();
  char b[400]; /* %.6f of the largest double: 309 digits, the point, 6 decimals */
  snprintf(b, sizeof b, fmt, x);
  return json_real(strtod(b, NULL));
}

static json_t *count(double x) { return isfinite(x) ? json_integer((json_int_t)llround(x)) : json_null(); }

/* SLURM_RESTART_COUNT (0 outside Slurm): an integer, or the variable's text
 * as a string should it not be one. */
static json_t *restart_count(void) {
  const char *s = getenv("SLURM_RESTART_COUNT");
  if (!s || !*s) return json_integer(0);
  char *end;
  errno = 0;
  const long long v = strtoll(s, &end, 10);
  return *end || errno ? json_string(s) : json_integer((json_int_t)v);
}

ift_status metrics_open(metrics_file *mf, const char *path) {
  memset(mf, 0, sizeof *mf);
  mf->path = path;
  if (!path[0]) return IFT_OK;
  char d[1024];
  snprintf(d, sizeof d, "%s", path);
  char *slash = strrchr(d, '/');
  if (slash && slash != d) {
    *slash = 0;
    core_mkdir_p(d); /* a failure shows as fopen's */
  }
  mf->f = fopen(path, "a");
  if (!mf->f)
    IFT_FAIL(IFT_ERR_IO, "choose a writable metrics.path (or empty: none)",
             "cannot open metrics.path '%s' for appending: %s", path, strerror(errno));
  return IFT_OK;
}

/* One record as a line, then flushed: a reader (tests, a user's tail -f)
 * sees every step as it ends.  rec is consumed.  Metrics are for tools, not
 * the run: a record that cannot be written (full disk, quota) is reported
 * once and counted, and training goes on. */
static void put(metrics_file *mf, json_t *rec, long step) {
  const int oom = !rec;
  const int bad = oom || json_dumpf(rec, mf->f, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0 ||
                  fputc('\n', mf->f) == EOF || ferror(mf->f) || fflush(mf->f) != 0;
  const int err = errno;
  json_decref(rec);
  if (!bad) return;
  if (!mf->lost++)
    IFT_LOG0("\nwarning: metrics.path '%s': the record of step %ld could not be written (%s); "
             "training goes on, later failures are counted",
             mf->path, step, oom ? "out of memory" : strerror(err));
  clearerr(mf->f);
}

void metrics_put_step(metrics_file *mf, const metrics_step *s) {
  if (!mf->f) return;
  json_t *r = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
                        "step", (json_int_t)s->step, "epoch", (json_int_t)s->epoch,
                        "loss", num("%.6f", s->loss), "nll", num("%.6f", s->nll), "lr", num("%.6g", s->lr),
                        "lambda", num("%.4f", s->lambda), "grad_norm", num("%.5g", s->grad_norm),
                        "tokens", count(s->tokens), "tokens_per_s", num("%.1f", s->tokens_per_s),
                        "fill", num("%.4f", s->fill), "mfu", num("%.4f", s->mfu),
                        "seconds", num("%.4f", s->seconds), "flops", num("%.5g", s->flops),
                        "restart_count", restart_count());
  if (r && s->pref &&
      (json_object_set_new(r, "pref_acc", num("%.4f", s->pref_acc)) ||
       json_object_set_new(r, "margin", num("%.5g", s->margin)))) {
    json_decref(r);
    r = NULL;
  }
  put(mf, r, s->step);
}

void metrics_put_eval(metrics_file *mf, long step, const eval_result *r, double flops) {
  if (!mf->f) return;
  json_t *j = json_pack("{s:I,s:o,s:o,s:o}", "step", (json_int_t)step, "eval_loss", num("%.6f", r->loss),
                        "exact_match", num("%.4f", r->exact), "rouge_l", num("%.4f", r->rouge_l));
  if (j && r->pairs) json_object_set_new(j, "eval_pref_acc", num("%.4f", r->pref_acc));
  if (j) json_object_set_new(j, "flops", num("%.5g", flops));
  put(mf, j, step);
}

void metrics_close(metrics_file *mf) {
  if (!mf->f) return;
  if (fclose(mf->f) != 0 || mf->lost)
    IFT_LOG0("warning: metrics.path '%s': %ld record%s could not be written (disk full or quota?)", mf->path,
             mf->lost ? mf->lost : 1, mf->lost == 1 ? "" : "s");
  mf->f = NULL;
}
