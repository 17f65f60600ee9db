/* iftrain prep: JSONL -> HDF5 data set, or generate the shipped task. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/data.h"

const char app_prep_help[] =
    "iftrain prep — make an iftrain HDF5 data set\n\n"
    "  iftrain prep INPUT.jsonl -o OUTPUT.h5 [--tokenizer HF_DIR [--chat-template NAME]]\n"
    "               [--max-len N] [--skip-bad] [--replace-invalid] [--quiet]\n"
    "                                                   (any number of ranks: mpirun -n P\n"
    "                                                   splits the lines and writes together)\n"
    "  iftrain prep --verify FILE.h5\n"
    "  iftrain prep --generate arith [--seed S] [-n N] -o OUTPUT.h5 [--jsonl FILE]\n"
    "  iftrain prep --ref-logp CKPT --data FILE.h5 [--micro-batch N]   (any number of ranks)\n\n"
    "Line formats (one JSON object per line; blank lines are skipped; preference\n"
    "lines cannot be mixed with others in one file):\n"
    "  {\"messages\":[{\"role\",\"content\"},...]}   roles system|user|assistant, multi-turn\n"
    "  {\"prompt\",\"completion\"} or {\"prompt\",\"response\"}   strings, or message lists\n"
    "                                (conversational: loss on the answer's assistant turns)\n"
    "  {\"prompt\",\"chosen\",\"rejected\"}   preference pairs, strings or message lists (the\n"
    "                                prompt's messages, then the answer's); IFT and SFT\n"
    "                                train on prompt+chosen. Whole conversations in\n"
    "                                chosen/rejected without \"prompt\" are refused\n"
    "  {\"text\"}                      plain language modelling: loss on every token\n\n"
    "Without --tokenizer: the byte tokenizer bytes-v1 (ids 0-255 bytes, 256 <pad> 257\n"
    "<bos> 258 <eos> 259 <system> 260 <user> 261 <assistant>) and its layouts:\n"
    "  <bos> PROMPT <assistant> RESPONSE <eos>           loss on RESPONSE <eos>\n"
    "  <bos> <role> CONTENT ... <eos>                    loss on assistant content, <eos>\n"
    "  <bos> TEXT <eos>                                  loss on TEXT <eos>\n"
    "With --tokenizer HF_DIR: the ids of the model's Hugging Face tokenizer.json.\n"
    "  messages and message lists: rendered with the model's chat template (as\n"
    "    transformers' apply_chat_template), loss on the assistant turns' content and\n"
    "    end-of-turn token (TRL's assistant-only loss); a conversation the template\n"
    "    refuses is a malformed line\n"
    "  prompt + answer strings: no template (as TRL): the ids of PROMPT+ANSWER with the\n"
    "    tokenizer's special tokens (BOS), then the EOS (tokenizer_config.json's\n"
    "    eos_token; none without that file); loss on the tokens that start at or after\n"
    "    the end of PROMPT, and the EOS. A token that spans the boundary (the prompt's\n"
    "    last characters merged with the answer's first) counts as prompt: no loss;\n"
    "    such rows are counted in the report\n"
    "  text: its ids with the special tokens, then the EOS; loss on all but a leading\n"
    "    BOS (the first token is never predicted, as in HF language modelling)\n\n"
    "Text must be UTF-8: invalid byte sequences, overlong forms, encoded or lone\n"
    "surrogates (\\uD800-\\uDFFF without its pair) and NUL (raw or \\u0000) stop prep\n"
    "naming FILE:LINE:COLUMN (byte column); escaped surrogate pairs are decoded; a\n"
    "UTF-8 byte order mark at the start of the file is skipped.\n\n"
    "  -o FILE        output data set (written to FILE.tmp, then renamed: a failed prep\n"
    "                 leaves an old FILE as it was). Refused (exit 2): FILE being the\n"
    "                 input itself (any path or link to it), or an existing file that\n"
    "                 is not an iftrain data set\n"
    "  --tokenizer HF_DIR  the model's directory (tokenizer.json, and tokenizer_config.json\n"
    "                 for the chat template and EOS), or a tokenizer.json when no line is\n"
    "                 conversational. The data set records it: attributes tokenizer =\n"
    "                 hf:SHA256, tokenizer_sha256 (of tokenizer.json), chat_template (the\n"
    "                 template used, or none), tokenizer_source (HF_DIR as given),\n"
    "                 vocab_size (the tokenizer's); without it tokenizer = bytes-v1.\n"
    "                 train, eval and --ref-logp refuse a data set whose tokenizer is\n"
    "                 not the model's\n"
    "  --chat-template NAME  the template instead of the one recognised from\n"
    "                 tokenizer_config.json: llama3, llama3-instruct, llama3.1, chatml,\n"
    "                 qwen3, mistral, llama2, mixtral\n"
    "  --max-len N    truncate longer rows to N tokens (counted in the report); a set\n"
    "                 left without any answer token is refused (nothing to train on)\n"
    "  --skip-bad     skip malformed lines (counted) instead of stopping at the first\n"
    "  --replace-invalid  replace each invalid UTF-8 sequence, lone surrogate and NUL\n"
    "                 by U+FFFD instead of stopping; the count is reported and stored\n"
    "                 as the data set attribute utf8_replaced\n"
    "  --quiet        no progress lines (otherwise printed to stderr at most every 2 s\n"
    "                 on long inputs: rows, rows/s, MB/s, percent of the input read)\n"
    "  --verify FILE  recompute the content hash of data set FILE (tokens, offsets,\n"
    "                 loss masks, pair groups) and compare it with its content_sha256\n"
    "                 attribute (written by prep; sha256 is the hash of the source\n"
    "                 JSONL); exit 0 when it matches, 2 when not\n"
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
  const char *in = NULL, *out = NULL, *gen = NULL, *jsonl = NULL, *verify = NULL;
  long n = 1000, seed = 1;
  int mb = 8;
  const char *ref_ckpt = NULL, *data = NULL;
  int quiet = 0;
  data_prep_stats st = {0};
  const app_optdef opts[] = {
      APP_STR_L("output", 'o', &out),
      APP_INT("max-len", &st.max_len, APP_GE(0)),
      APP_FLAG("skip-bad", &st.skip_bad),
      APP_FLAG("replace-invalid", &st.replace_invalid),
      APP_FLAG("quiet", &quiet),
      APP_STR("tokenizer", &st.tokenizer),
      APP_STR("chat-template", &st.chat_template),
      APP_STR("generate", &gen),
      APP_LONG("seed", &seed, APP_GE(0)),
      APP_LONG_L(NULL, 'n', &n, APP_GE(1)),
      APP_STR("jsonl", &jsonl),
      APP_STR("ref-logp", &ref_ckpt),
      APP_STR("data", &data),
      APP_INT("micro-batch", &mb, APP_IN(1, 256)),
      APP_STR("verify", &verify),
      {0}};
  const app_opts spec = {.cmd = "prep", .opts = opts, .max_args = 1};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (argc > 1) in = argv[1];
  if ((st.tokenizer || st.chat_template) && (ref_ckpt || data || verify)) {
    if (core_rank() == 0) fprintf(stderr, "iftrain prep: --tokenizer and --chat-template go with INPUT.jsonl or --generate\n");
    return APP_EXIT_USAGE;
  }
  if (ref_ckpt || data) {
    if (!ref_ckpt || !data || in || gen || out || verify) {
      if (core_rank() == 0)
        fprintf(stderr, "iftrain prep: --ref-logp CKPT needs --data FILE.h5, and no other input or output\n");
      return APP_EXIT_USAGE;
    }
    return app_ref_logp(ref_ckpt, data, (int)mb);
  }
  if (verify) {
    if (in || gen || out) {
      if (core_rank() == 0) fprintf(stderr, "iftrain prep: --verify FILE.h5 takes no other input or output\n");
      return APP_EXIT_USAGE;
    }
    if (core_rank() != 0) return APP_EXIT_OK;
    char hex[65];
    ift_status s = data_verify_content(verify, hex);
    if (s != IFT_OK) return app_exit_code(s);
    printf("%s: content_sha256 %s OK\n", verify, hex);
    return APP_EXIT_OK;
  }
  if (!out || (!in && !gen) || (in && gen)) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain prep: give INPUT.jsonl or --generate NAME, and -o OUTPUT.h5\n\n%s", app_prep_help);
    return APP_EXIT_USAGE;
  }
  /* JSONL: every rank converts its share of the lines and the rows are
   * written collectively; --generate: rank 0 alone */
  if (gen && core_rank() != 0) return APP_EXIT_OK;
  if (gen && jsonl && (!strcmp(jsonl, out) || data_same_file(jsonl, out))) {
    /* the generator would overwrite OUTPUT with JSONL before prep reads it */
    fprintf(stderr, "iftrain prep: --jsonl %s and -o %s are the same file\n"
                    "  hint: keep the JSONL under another name\n", jsonl, out);
    return APP_EXIT_USAGE;
  }
  char tmp[1100];
  if (gen) {
    if (!jsonl) {
      snprintf(tmp, sizeof tmp, "%s.jsonl.tmp", out);
      jsonl = tmp;
    }
    ift_status s = data_generate(gen, jsonl, n, (uint64_t)seed);
    if (s != IFT_OK) {
      if (jsonl == tmp) unlink(tmp);
      return app_exit_code(s);
    }
    in = jsonl;
  }
  st.progress = !quiet && !app_g.quiet; /* --quiet is also the global option */
  ift_status s = gen ? data_prep_jsonl(in, out, &st) : data_prep_jsonl_comm(in, out, &st, MPI_COMM_WORLD);
  if (gen && jsonl == tmp) unlink(tmp);
  if (s != IFT_OK) return app_exit_code(s);
  if (core_rank() != 0) return APP_EXIT_OK;
  printf("prep: %ld lines read, %ld rows written, %ld truncated at --max-len, %ld malformed skipped, "
         "%ld tokens, %.1f MB in %.1f s (%.1f MB/s) -> %s\n",
         st.n_read, st.n_written, st.n_truncated, st.n_skipped, st.n_tokens, st.bytes / 1e6, st.seconds,
         st.seconds > 0 ? st.bytes / 1e6 / st.seconds : 0.0, out);
  if (st.tokenizer)
    printf("prep: tokenizer %s, chat template %s%s\n", st.tokenizer, st.used_template,
           st.chat_template ? " (--chat-template)" : "");
  if (st.n_straddle)
    printf("prep: %ld rows have a token across the prompt/completion boundary (trained as prompt)\n",
           st.n_straddle);
  if (st.replace_invalid)
    printf("prep: %ld invalid UTF-8 sequences, lone surrogates or NULs replaced by U+FFFD "
           "(attribute utf8_replaced)\n", st.n_replaced);
  if (gen) printf("prep: generated task %s, seed %ld, %ld examples\n", gen, seed, n);
  return APP_EXIT_OK;
}

const char *app_app_prep_help(void) { return app_prep_help; }
