/* The shipped task "arith": multi-digit addition and subtraction worked out
 * digit by digit, right to left, so every answer is a chain of dependent
 * steps (a wrong carry early derails the rest — the case IFT's token
 * weighting is about).
 *
 *   prompt:   "821+97="
 *   response: "1+7+0=8 2+9+0=11 8+3+1=12 4+0+1=5 =5218"
 *   prompt:   "503-78="
 *   response: "3-8-0=5b 0-7-1=2b 5-0-1=4 =425"
 * Addition steps are "x+y+carry=sum" (carry out = sum >= 10); subtraction
 * steps are "x-y-borrow=digit" with a trailing "b" when the step borrowed.
 * The final "=N" is the answer.  "rejected" is a plausible wrong working:
 * one carry/borrow dropped (or, with none to drop, one digit off by one),
 * propagated consistently to the final answer.
 * Example i of seed s depends only on (s, i): Philox draws addressed by i. */
#include <stdio.h>
#include <string.h>

#include "iftrain/data.h"

/* fault: -1 none; k >= 0 with kind 1 = ignore the carry into step k,
 * kind 2 = result digit of step k off by one. */
static long work(char *out, size_t cap, long a, long b, int sub, int fault, int kind) {
  size_t o = 0;
  int c = 0;
  long ans = 0, place = 1;
  int step = 0;
  while (a > 0 || b > 0 || (!sub && c)) {
    int x = (int)(a % 10), y = (int)(b % 10);
    if (!sub && a == 0 && b == 0) { /* final carry becomes the leading digit */
      ans += c * place;
      break;
    }
    int cin = (step == fault && kind == 1) ? 0 : c, d;
    if (!sub) {
      int s = x + y + cin;
      if (step == fault && kind == 2) s = s % 10 == 9 ? s - 1 : s + 1;
      o += (size_t)snprintf(out + o, cap - o, "%d+%d+%d=%d ", x, y, cin, s);
      d = s % 10;
      c = s >= 10;
    } else {
      int r = x - y - cin;
      int borrow = r < 0;
      if (borrow) r += 10;
      if (step == fault && kind == 2) r = r == 9 ? 8 : r + 1;
      o += (size_t)snprintf(out + o, cap - o, "%d-%d-%d=%d%s ", x, y, cin, r, borrow ? "b" : "");
      d = r;
      c = borrow;
    }
    ans += d * place;
    place *= 10;
    a /= 10;
    b /= 10;
    step++;
  }
  snprintf(out + o, cap - o, "=%ld", ans);
  return ans;
}

/* Steps whose carry/borrow out is 1 (candidates for a dropped carry). */
static int carry_steps(long a, long b, int sub, int *steps) {
  int n = 0, c = 0, k = 0;
  while (a > 0 || b > 0) {
    int x = (int)(a % 10), y = (int)(b % 10);
    c = sub ? (x - y - c < 0) : (x + y + c >= 10);
    if (c && (a >= 10 || b >= 10)) steps[n++] = k + 1; /* the step receiving it */
    a /= 10;
    b /= 10;
    k++;
  }
  return n;
}

static long rnd_digits(uint64_t seed, uint64_t stream, uint64_t i, int nd) {
  long lo = 1;
  for (int k = 1; k < nd; k++) lo *= 10;
  long span = lo * 9;
  return lo + (long)(rng_uniform(seed, stream, i) * (double)span);
}

static void json_line(FILE *f, const char *prompt, const char *good, const char *bad) {
  fprintf(f, "{\"prompt\":\"%s\",\"response\":\"%s\",\"chosen\":\"%s\",\"rejected\":\"%s\"}\n", prompt,
          good, good, bad);
}

ift_status data_generate(const char *name, const char *out_jsonl, long n, uint64_t seed) {
  IFT_REQUIRE(!strcmp(name, "arith"), IFT_ERR_ARG, "the generator knows: arith",
              "unknown generator '%s'", name);
  IFT_REQUIRE(n > 0, IFT_ERR_ARG, "give -n N with N >= 1", "cannot generate %ld examples", n);
  FILE *f = fopen(out_jsonl, "w");
  IFT_REQUIRE(f, IFT_ERR_IO, "check the output directory", "cannot write '%s'", out_jsonl);
  for (long i = 0; i < n; i++) {
    const uint64_t u = (uint64_t)i;
    int sub = rng_uniform(seed, 1, u) < 0.5;
    int da = 2 + (int)(rng_uniform(seed, 2, u) * 2); /* 2..3 digits */
    int db = 1 + (int)(rng_uniform(seed, 3, u) * da);
    long a = rnd_digits(seed, 4, u, da), b = rnd_digits(seed, 5, u, db);
    if (sub && a < b) { long t = a; a = b; b = t; }
    char prompt[64], good[256], bad[256];
    snprintf(prompt, sizeof prompt, "%ld%c%ld=", a, sub ? '-' : '+', b);
    long ans = work(good, sizeof good, a, b, sub, -1, 0);
    int cs[16], nc = carry_steps(a, b, sub, cs);
    long wrong;
    if (nc > 0) {
      int k = cs[(int)(rng_uniform(seed, 6, u) * nc)];
      wrong = work(bad, sizeof bad, a, b, sub, k, 1);
    } else {
      int steps = 0;
      for (long x = a > b ? a : b; x > 0; x /= 10) steps++;
      wrong = work(bad, sizeof bad, a, b, sub, (int)(rng_uniform(seed, 7, u) * steps), 2);
    }
    if (wrong == ans) /* cannot happen by construction; keep the pair distinct anyway */
      work(bad, sizeof bad, a, b, sub, 0, 2);
    json_line(f, prompt, good, bad);
  }
  IFT_REQUIRE(fclose(f) == 0, IFT_ERR_IO, "check free disk space", "writing '%s' failed", out_jsonl);
  return IFT_OK;
}
