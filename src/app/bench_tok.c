/* iftrain bench tok: single-thread encode throughput of the tokenizer
 * module (src/tok) on a JSONL corpus, without JSON parsing, output or
 * process start-up in the timed region -- the C side of issue 16's
 * comparison with the Hugging Face tokenizers library (bench/tok.sh). */
#include "config.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "iftrain/dist.h"
#include "iftrain/tok.h"

static const char tok_bench_help[] =
    "iftrain bench tok — tokenizer encode MB/s and tokens/s on one core\n\n"
    "  --tokenizer=PATH  HF_DIR or tokenizer.json (required)\n"
    "  --corpus=FILE     JSONL with a \"text\" string per line\n"
    "                    (default tests/tok/corpus.jsonl)\n"
    "  --repeat=N        timed passes per mode (default 5)\n"
    "  --warmup=0|1      one untimed pass per mode first (default 1)\n"
    "  --chunk=BYTES     chunk size of the chunks mode (default 65536)\n"
    "  --modes=LIST      lines,chunks (default both)\n"
    "  --add-special     run the post-processor (e.g. BOS) as encode(text, true)\n"
    "  --json            one JSON object per mode\n\n"
    "The corpus is read and parsed once; the tokenizer is loaded once (load time\n"
    "reported). Modes: lines = one tok_encode call per corpus line; chunks = the\n"
    "lines joined with \"\\n\" and cut at the first line end at or after BYTES\n"
    "(as bench/tok_hf.js does), one call per chunk. The passes of the modes are\n"
    "interleaved (lines, chunks, lines, ...) so that load from other processes\n"
    "hits both alike. The warm-up pass of the first mode runs with an empty BPE\n"
    "cache and is reported apart (cold). Per mode: best and median wall MB/s\n"
    "(MB = 10^6 bytes of UTF-8 input), tokens/s of the best pass, MB per CPU\n"
    "second of the pass with the least CPU time (the process's CPU clock: less\n"
    "sensitive to other load than wall time), and CPU / wall seconds of the best\n"
    "pass (below 1 when the process was descheduled).\n"
    "Runs on one process (not under mpirun -n > 1).\n";

typedef struct {
  const char *s;
  size_t n;
} span;

typedef struct {
  const char *name;
  span *in;
  size_t nin, bytes;
  double *wall;           /* wall seconds of each timed pass */
  double best, cpu_of_best; /* the fastest pass (wall) and its CPU seconds */
  double cpu_min;           /* the least CPU seconds of a pass */
  size_t tokens;
  int done;
} mode;

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double round3(double x) { return round(x * 1000) / 1000; }

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The corpus: every line's "text" in one buffer (texts[i] points into it). */
static ift_status read_corpus(const char *path, char **buf, span **texts, size_t *ntexts,
                              size_t *bytes) {
  FILE *f = fopen(path, "rb");
  IFT_REQUIRE(f, IFT_ERR_IO, "give --corpus=FILE.jsonl", "cannot open %s", path);
  char *line = NULL, *all = NULL;
  size_t cap = 0, n = 0, acap = 0, nt = 0, tcap = 0;
  size_t *off = NULL, *len = NULL;
  ssize_t got;
  long ln = 0;
  ift_status st = IFT_OK;
  json_t *o = NULL;
  span *t = NULL;
  while ((got = getline(&line, &cap, f)) >= 0) {
    ln++;
    if (got == 0 || (got == 1 && line[0] == '\n')) continue;
    json_error_t je;
    o = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
    const json_t *tx = json_object_get(o, "text");
    IFT_REQUIRE_GOTO(st, out, json_is_string(tx), IFT_ERR_FORMAT, "each line must be {\"text\": ...}",
                     "%s line %ld: %s", path, ln, o ? "no \"text\" string" : je.text);
    const size_t l = json_string_length(tx);
    if (n + l > acap || nt == tcap) {
      size_t ac = acap ? acap : 1 << 20, tc = tcap ? 2 * tcap : 4096;
      while (ac < n + l) ac *= 2;
      char *a = realloc(all, ac);
      if (a) all = a, acap = ac;
      size_t *p = realloc(off, tc * sizeof *p), *q = p ? realloc(len, tc * sizeof *q) : NULL;
      if (p) off = p;
      if (q) len = q, tcap = tc;
      IFT_REQUIRE_GOTO(st, out, a && p && q, IFT_ERR_NOMEM, NULL, "%s", path);
    }
    memcpy(all + n, json_string_value(tx), l);
    off[nt] = n;
    len[nt++] = l;
    n += l;
    json_decref(o);
    o = NULL;
  }
  IFT_REQUIRE_GOTO(st, out, nt, IFT_ERR_FORMAT, "give a JSONL file of {\"text\": ...} lines", "%s has no lines",
                   path);
  t = malloc(nt * sizeof *t);
  IFT_REQUIRE_GOTO(st, out, t, IFT_ERR_NOMEM, NULL, "%s: %zu lines", path, nt);
  for (size_t i = 0; i < nt; i++) t[i] = (span){all + off[i], len[i]};
  *buf = all;
  all = NULL;
  *texts = t;
  *ntexts = nt;
  *bytes = n;
out:
  json_decref(o);
  free(line);
  fclose(f);
  free(off);
  free(len);
  free(all);
  return st;
}

/* The lines joined with '\n', cut at the first line end at or after CHUNK
 * bytes (counting each line's '\n'), as bench/tok_hf.js cuts them. */
static ift_status make_chunks(const span *t, size_t nt, size_t chunk, char **buf, span **out,
                              size_t *nout, size_t *bytes) {
  size_t total = 0;
  for (size_t i = 0; i < nt; i++) total += t[i].n + 1;
  char *b = malloc(total ? total : 1);
  span *c = malloc((nt ? nt : 1) * sizeof *c);
  if (!b || !c) {
    free(b);
    free(c);
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "chunks of %zu bytes", total);
  }
  size_t at = 0, nc = 0, start = 0, acc = 0, sum = 0;
  for (size_t i = 0; i < nt; i++) {
    if (at > start) b[at++] = '\n';
    memcpy(b + at, t[i].s, t[i].n);
    at += t[i].n;
    acc += t[i].n + 1;
    if (acc >= chunk || i + 1 == nt) {
      c[nc++] = (span){b + start, at - start};
      sum += at - start;
      start = at;
      acc = 0;
    }
  }
  *buf = b;
  *out = c;
  *nout = nc;
  *bytes = sum;
  return IFT_OK;
}

/* One pass over a mode's inputs: wall and CPU seconds, tokens. */
static ift_status pass(tok *t, const mode *m, int add_special, tok_ids *ids, double *wall,
                       double *cpu, size_t *tokens) {
  size_t ntok = 0;
  const double c0 = cpu_now(), t0 = core_now();
  for (size_t i = 0; i < m->nin; i++) {
    ids->n = 0;
    IFT_TRY(tok_encode(t, m->in[i].s, m->in[i].n, add_special, ids));
    ntok += ids->n;
  }
  *wall = core_now() - t0;
  *cpu = cpu_now() - c0;
  *tokens = ntok;
  return IFT_OK;
}

int app_bench_tok(int argc, char **argv) {
  const char *path = NULL, *corpus = "tests/tok/corpus.jsonl";
  int repeat = 5, warmup = 1, json = 0, add_special = 0, do_lines = 1, do_chunks = 1;
  long chunk = 65536;
  const char *modes_arg = NULL;
  int help = 0;
  const app_optdef opts[] = {
      APP_HELP(&help),
      APP_STR("tokenizer", &path),
      APP_STR("corpus", &corpus),
      APP_INT("repeat", &repeat, APP_GE(1)),
      APP_INT("warmup", &warmup, APP_IN(0, 1)),
      APP_LONG("chunk", &chunk, APP_GE(1)),
      APP_STR("modes", &modes_arg),
      APP_FLAG("add-special", &add_special),
      APP_FLAG("json", &json),
      {0}};
  const app_opts spec = {.cmd = "bench tok", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (help) {
    if (core_rank() == 0) fputs(tok_bench_help, stdout);
    return APP_EXIT_OK;
  }
  if (modes_arg) {
    do_lines = do_chunks = 0;
    for (const char *s = modes_arg; *s;) {
      const size_t l = strcspn(s, ",");
      if (l == 5 && !strncmp(s, "lines", 5)) do_lines = 1;
      else if (l == 6 && !strncmp(s, "chunks", 6)) do_chunks = 1;
      else {
        if (core_rank() == 0) fprintf(stderr, "iftrain bench tok: --modes: '%.*s' is not lines or chunks\n", (int)l, s);
        return APP_EXIT_USAGE;
      }
      s += l + (s[l] == ',');
    }
    if (!do_lines && !do_chunks) {
      if (core_rank() == 0) fprintf(stderr, "iftrain bench tok: --modes is empty\n");
      return APP_EXIT_USAGE;
    }
  }
  int size = 1;
  if (!app_g.no_mpi) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain bench tok: a single-core benchmark; run it without mpirun (%d ranks)\n", size);
    return APP_EXIT_USAGE;
  }
  if (!path) {
    fprintf(stderr, "iftrain bench tok: give --tokenizer HF_DIR (or a tokenizer.json)\n  hint: iftrain bench tok --help\n");
    return APP_EXIT_USAGE;
  }

  char *cbuf = NULL, *kbuf = NULL;
  span *lines = NULL, *chunks = NULL;
  size_t nlines = 0, lbytes = 0, nchunks = 0, kbytes = 0;
  ift_status st = read_corpus(corpus, &cbuf, &lines, &nlines, &lbytes);
  if (st != IFT_OK) return app_exit_code(st);
  st = make_chunks(lines, nlines, (size_t)chunk, &kbuf, &chunks, &nchunks, &kbytes);
  tok *t = NULL;
  double load_s = 0;
  if (st == IFT_OK) {
    const double t0 = core_now();
    st = tok_load(&t, path);
    load_s = core_now() - t0;
  }
  mode modes[2] = {
      {.name = "lines", .in = lines, .nin = nlines, .bytes = lbytes, .best = 1e300, .cpu_min = 1e300, .done = !do_lines},
      {.name = "chunks", .in = chunks, .nin = nchunks, .bytes = kbytes, .best = 1e300, .cpu_min = 1e300, .done = !do_chunks}};
  const int first = do_lines ? 0 : 1; /* the mode of the cold pass */
  double cold_wall = 0;
  tok_ids ids = {0};
  for (int k = 0; k < 2 && st == IFT_OK; k++)
    if (!(modes[k].wall = calloc((size_t)repeat, sizeof(double)))) st = IFT_ERR_NOMEM;
  /* warm-up: one pass of each mode; the first runs with an empty BPE cache */
  for (int k = 0; k < 2 && st == IFT_OK && warmup; k++) {
    if (modes[k].done) continue;
    double w, c;
    size_t n;
    st = pass(t, &modes[k], add_special, &ids, &w, &c, &n);
    if (k == first) cold_wall = w;
  }
  for (int r = 0; r < repeat && st == IFT_OK; r++)
    for (int k = 0; k < 2 && st == IFT_OK; k++) {
      mode *m = &modes[k];
      if (m->done) continue;
      double c;
      st = pass(t, m, add_special, &ids, &m->wall[r], &c, &m->tokens);
      if (m->wall[r] < m->best) m->best = m->wall[r], m->cpu_of_best = c;
      if (c < m->cpu_min) m->cpu_min = c;
    }
  if (st == IFT_OK) {
    const double cold_mb = cold_wall > 0 ? modes[first].bytes / 1e6 / cold_wall : 0;
    if (!json) {
      printf("# %s (sha256 %.12s, vocab %d): load %.3f s; corpus %s: %zu lines, %zu bytes; "
             "%zu chunks of >= %ld bytes; %d passes%s",
             path, tok_sha256(t), tok_vocab_size(t), load_s, corpus, nlines, lbytes, nchunks, chunk,
             repeat, add_special ? "; add_special" : "");
      if (warmup) printf("; cold first %s pass %.2f MB/s", modes[first].name, cold_mb);
      printf("\n%-7s %8s %10s %12s %12s %10s %8s\n", "mode", "calls", "best MB/s", "median MB/s",
             "tokens/s", "MB/cpu-s", "cpu/wall");
    }
    for (int k = 0; k < 2; k++) {
      mode *m = &modes[k];
      if (m->done) continue;
      qsort(m->wall, (size_t)repeat, sizeof(double), cmp_double);
      const double best = m->best, mb = m->bytes / 1e6;
      const double med = repeat % 2 ? m->wall[repeat / 2] : 0.5 * (m->wall[repeat / 2 - 1] + m->wall[repeat / 2]);
      if (json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:b,s:f,s:o,s:f,s:f,s:f,s:f,s:f}",
                              "bench", "tok", "tokenizer", path, "sha256", tok_sha256(t), "corpus", corpus,
                              "mode", m->name, "calls", (json_int_t)m->nin, "bytes", (json_int_t)m->bytes,
                              "tokens", (json_int_t)m->tokens, "passes", repeat, "add_special", add_special,
                              "load_s", round3(load_s),
                              "cold_mb_per_s", warmup && k == first ? json_real(round3(cold_mb)) : json_null(),
                              "mb_per_s", round3(mb / best), "median_mb_per_s", round3(mb / med),
                              "tokens_per_s", round(m->tokens / best), "cpu_mb_per_s", round3(mb / m->cpu_min),
                              "cpu_over_wall", round3(m->cpu_of_best / best));
        char *js = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) : NULL;
        if (js) printf("%s\n", js);
        free(js);
        json_decref(o);
      } else {
        printf("%-7s %8zu %10.2f %12.2f %12.0f %10.2f %8.2f\n", m->name, m->nin, mb / best, mb / med,
               m->tokens / best, mb / m->cpu_min, m->cpu_of_best / best);
      }
    }
    fflush(stdout);
  }
  free(modes[0].wall);
  free(modes[1].wall);
  tok_ids_free(&ids);
  tok_free(t);
  free(lines);
  free(chunks);
  free(cbuf);
  free(kbuf);
  return st == IFT_OK ? APP_EXIT_OK : app_exit_code(st);
}
