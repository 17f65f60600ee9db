/* iftrain prep: JSONL -> HDF5 data set, or generate the shipped task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iftrain/app.h"
#include "iftrain/data.h"

const char app_prep_help[] =
    "iftrain prep — make an iftrain HDF5 data set\n\n"
    "  iftrain prep INPUT.jsonl -o OUTPUT.h5 [--max-len N] [--skip-bad]\n"
    "  iftrain prep --generate arith [--seed S] [-n N] -o OUTPUT.h5 [--jsonl FILE]\n"
    "  iftrain prep --ref-logp CKPT --data FILE.h5 [--micro-batch N]   (any number of ranks)\n\n"
    "Line formats: {\"prompt\",\"response\"}; {\"prompt\",\"chosen\",\"rejected\"} (preference\n"
    "pairs; IFT and SFT train on prompt+chosen); {\"messages\":[{\"role\",\"content\"},...]}\n"
    "with roles system|user|assistant. Chat template (byte tokenizer bytes-v1, ids\n"
    "0-255 bytes, 256 <pad> 257 <bos> 258 <eos> 259 <system> 260 <user> 261 <assistant>):\n"
    "  <bos> PROMPT <assistant> RESPONSE <eos>           loss on RESPONSE <eos>\n"
    "  <bos> <role> CONTENT ... <eos>                    loss on assistant content, <eos>\n\n"
    "  -o FILE        output data set (written to FILE.tmp, then renamed)\n"
    "  --max-len N    truncate longer rows to N tokens (counted in the report)\n"
    "  --skip-bad     skip malformed lines (counted) instead of stopping at the first\n"
    "  --generate T   generate task T (arith: multi-digit + and - worked digit by digit,\n"
    "                 with a correct and a plausible wrong working per prompt)\n"
    "  --seed S, -n N generator seed (default 1) and example count (default 1000)\n"
    "  --jsonl FILE   keep the generated JSONL in FILE\n"
    "  --ref-logp CKPT  score every chosen and rejected answer of --data with the frozen\n"
    "                 reference model CKPT (summed answer log-probs, rows split over the\n"
    "                 ranks) and store them in FILE.h5:/ref_logp with the checkpoint's\n"
    "                 fingerprint; DPO and IPO training refuse a cache from another model\n"
    "  --micro-batch N  pairs per forward for --ref-logp (default 8)\n";

int app_prep(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *gen = NULL, *jsonl = NULL;
  long n = 1000, seed = 1;
  const char *ref_ckpt = NULL, *data = NULL;
  int mb = 8;
  data_prep_stats st = {0};
  ift_status num = IFT_OK; /* a numeric option's value, checked (and reported) by app_opt_* */
  for (int i = 1; i < argc && num == IFT_OK; i++) {
    const char *v;
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if ((v = app_opt(argc, argv, &i, "output"))) out = v;
    else if ((v = app_opt(argc, argv, &i, "max-len"))) num = app_opt_int("--max-len", v, APP_GE(0), &st.max_len);
    else if (!strcmp(argv[i], "--skip-bad")) st.skip_bad = 1;
    else if ((v = app_opt(argc, argv, &i, "generate"))) gen = v;
    else if ((v = app_opt(argc, argv, &i, "seed"))) num = app_opt_long("--seed", v, APP_GE(0), &seed);
    else if (!strcmp(argv[i], "-n") && i + 1 < argc) num = app_opt_long("-n", argv[++i], APP_GE(1), &n);
    else if ((v = app_opt(argc, argv, &i, "jsonl"))) jsonl = v;
    else if ((v = app_opt(argc, argv, &i, "ref-logp"))) ref_ckpt = v;
    else if ((v = app_opt(argc, argv, &i, "data"))) data = v;
    else if ((v = app_opt(argc, argv, &i, "micro-batch"))) num = app_opt_int("--micro-batch", v, APP_IN(1, 256), &mb);
    else if (argv[i][0] != '-' && !in) in = argv[i];
    else {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain prep: unexpected argument '%s'\n  hint: iftrain prep --help\n", argv[i]);
      return APP_EXIT_USAGE;
    }
  }
  if (num != IFT_OK) return APP_EXIT_USAGE;
  if (ref_ckpt || data) {
    if (!ref_ckpt || !data || in || gen || out) {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain prep: --ref-logp CKPT needs --data FILE.h5, and no other input or output\n");
      return APP_EXIT_USAGE;
    }
    return app_ref_logp(ref_ckpt, data, mb);
  }
  if (!out || (!in && !gen) || (in && gen)) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain prep: give INPUT.jsonl or --generate NAME, and -o OUTPUT.h5\n\n%s", app_prep_help);
    return APP_EXIT_USAGE;
  }
  if (core_rank() != 0) return APP_EXIT_OK; /* a serial tool: rank 0 writes */
  char tmp[1100];
  if (gen) {
    if (!jsonl) {
      snprintf(tmp, sizeof tmp, "%s.jsonl.tmp", out);
      jsonl = tmp;
    }
    if (data_generate(gen, jsonl, n, (uint64_t)seed) != IFT_OK) return APP_EXIT_FAIL;
    in = jsonl;
  }
  ift_status s = data_prep_jsonl(in, out, &st);
  if (gen && jsonl == tmp) unlink(tmp);
  if (s != IFT_OK) return s == IFT_ERR_FORMAT || s == IFT_ERR_IO ? APP_EXIT_USAGE : APP_EXIT_FAIL;
  printf("prep: %ld lines read, %ld rows written, %ld truncated at --max-len, %ld malformed skipped -> %s\n",
         st.n_read, st.n_written, st.n_truncated, st.n_skipped, out);
  if (gen) printf("prep: generated task %s, seed %ld, %ld examples\n", gen, seed, n);
  return APP_EXIT_OK;
}

const char *app_app_prep_help(void) { return app_prep_help; }
