#include "config.h"
/* iftrain tokenize: a tokenizer.json applied to JSONL lines on standard
 * input -- the tool to look at ids when a template or a mask looks wrong,
 * and the one the tokenizer vector tests drive. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "iftrain/chat.h"
#include "iftrain/tok.h"

const char app_tokenize_help[] =
    "Encode or decode JSONL lines with a Hugging Face tokenizer.json.\n"
    "  iftrain tokenize --tokenizer HF_DIR|tokenizer.json [--add-special]\n"
    "                   [--offsets] < {\"text\": ...} lines\n"
    "                   > {\"ids\": [...], \"offsets\": [[start, end], ...]} lines\n"
    "  iftrain tokenize --tokenizer ... --decode [--skip-special]\n"
    "                   < {\"ids\": [...]} lines  > {\"text\": ...} lines\n"
    "  iftrain tokenize --tokenizer HF_DIR --chat [--chat-template NAME]\n"
    "                   [--add-generation-prompt]\n"
    "                   < {\"messages\": [{\"role\", \"content\"}, ...]} lines\n"
    "                   > {\"text\": rendered,\n"
    "                      \"assistant\": [[content start, end, end-of-turn start, end], ...],\n"
    "                      \"ids\": [...], \"mask\": \"0011..\"}\n"
    "                   (byte offsets; ids of the rendering without the post-processor,\n"
    "                   mask: the assistant-only loss mask, one digit per id), or\n"
    "                   {\"error\": ...} when the template refuses\n\n"
    "Ids are those of the Hugging Face tokenizers library (encode(text,\n"
    "add_special_tokens) and decode(ids, skip_special_tokens)). --add-special runs\n"
    "the post-processor (e.g. the BOS); special-token strings in the text are always\n"
    "encoded as their tokens. --offsets adds each id's byte range of the text (the\n"
    "library's offsets, in bytes; (0, 0) for tokens the post-processor adds).\n"
    "One output line per input line, in order; a bad line\n"
    "stops with its line number (exit 2). Runs on one rank.\n"
    "--chat renders each conversation with the model's chat template (recognised\n"
    "from HF_DIR/tokenizer_config.json, or --chat-template llama3, llama3-instruct,\n"
    "llama3.1, chatml, qwen3, mistral, llama2, mixtral) exactly as transformers'\n"
    "apply_chat_template does, with the byte ranges of each assistant turn's content\n"
    "and end-of-turn token, its ids, and the assistant-only loss mask: the tokens\n"
    "from the one holding an assistant turn's first byte to the one holding the last\n"
    "character of its end-of-turn token (transformers' return_assistant_tokens_mask,\n"
    "TRL's assistant_only_loss).\n";

static int fail_line(long ln, const char *what) {
  fprintf(stderr, "iftrain tokenize: standard input line %ld: %s\n", ln, what);
  return APP_EXIT_USAGE;
}

/* One conversation: rendered, encoded, masked.  NULL with *rc set on a
 * bad line. */
static json_t *chat_line(tok *t, const chat_tmpl *ct, const json_t *o, int gen, long ln, int *rc) {
  const json_t *ms = json_object_get(o, "messages");
  if (!json_is_array(ms)) {
    *rc = fail_line(ln, "no \"messages\" list");
    return NULL;
  }
  const size_t n = json_array_size(ms);
  chat_msg *m = calloc(n + 1, sizeof *m);
  if (!m) {
    *rc = 1;
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(ms, i);
    m[i].role = json_string_value(json_object_get(e, "role"));
    m[i].content = json_string_value(json_object_get(e, "content"));
    if (!m[i].role || !m[i].content) {
      free(m);
      *rc = fail_line(ln, "a message without \"role\" and \"content\" strings");
      return NULL;
    }
  }
  chat_out co;
  ift_error_quiet(1); /* a refusal is an output line, not an error of the run */
  ift_status st = chat_render(ct, m, (int)n, gen, &co);
  ift_error_quiet(0);
  free(m);
  if (st == IFT_ERR_FORMAT) return json_pack("{s:s}", "error", ift_error_last());
  if (st != IFT_OK) {
    *rc = app_exit_code(st);
    return NULL;
  }
  json_t *sp = json_array();
  for (int k = 0; k < co.nspans; k++)
    json_array_append_new(sp, json_pack("[IIII]", (json_int_t)co.spans[k].content_a, (json_int_t)co.spans[k].content_b,
                                        (json_int_t)co.spans[k].eot_a, (json_int_t)co.spans[k].eot_b));
  tok_ids ids = {0};
  uint8_t *mask = NULL;
  st = chat_encode(t, &co, &ids, &mask);
  if (st != IFT_OK) {
    json_decref(sp);
    chat_out_free(&co);
    tok_ids_free(&ids);
    *rc = app_exit_code(st);
    return NULL;
  }
  json_t *ja = json_array();
  char *mk = malloc(ids.n + 1);
  for (size_t k = 0; mk && k < ids.n; k++) {
    json_array_append_new(ja, json_integer(ids.ids[k]));
    mk[k] = (char)('0' + mask[k]);
  }
  if (mk) mk[ids.n] = 0;
  json_t *res = mk ? json_pack("{s:s%,s:o,s:o,s:s}", "text", co.text, co.len, "assistant", sp, "ids", ja, "mask", mk) : NULL;
  if (!mk) {
    json_decref(sp);
    json_decref(ja);
    *rc = 1;
  }
  free(mk);
  free(mask);
  tok_ids_free(&ids);
  chat_out_free(&co);
  return res;
}

int app_tokenize(int argc, char **argv) {
  const char *path = NULL;
  int add_special = 0, decode = 0, skip_special = 0, chat = 0, gen = 0, offsets = 0;
  const char *force = NULL;
  const app_optdef opts[] = {
      APP_FLAG("add-special", &add_special),
      APP_FLAG("decode", &decode),
      APP_FLAG("skip-special", &skip_special),
      APP_FLAG("chat", &chat),
      APP_FLAG("add-generation-prompt", &gen),
      APP_FLAG("offsets", &offsets),
      APP_STR("chat-template", &force),
      APP_STR("tokenizer", &path),
      {0}};
  const app_opts spec = {.cmd = "tokenize", .opts = opts};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (force) chat = 1;
  if (!path) {
    fprintf(stderr, "iftrain tokenize: give --tokenizer HF_DIR (or a tokenizer.json)\n\n%s", app_tokenize_help);
    return APP_EXIT_USAGE;
  }
  tok *t;
  ift_status st = tok_load(&t, path);
  if (st != IFT_OK) return app_exit_code(st);
  chat_tmpl ct;
  if (chat && (st = chat_from_config(path, force, &ct)) != IFT_OK) {
    tok_free(t);
    return app_exit_code(st);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long ln = 0;
  int rc = APP_EXIT_OK;
  tok_ids ids = {0};
  tok_offs of = {0};
  while (rc == APP_EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0) {
    ln++;
    json_error_t je;
    json_t *o = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &je);
    json_t *out = NULL;
    if (!json_is_object(o)) {
      rc = fail_line(ln, o ? "not a JSON object" : je.text);
    } else if (chat) {
      out = chat_line(t, &ct, o, gen, ln, &rc);
    } else if (!decode) {
      const json_t *tx = json_object_get(o, "text");
      if (!json_is_string(tx)) {
        rc = fail_line(ln, "no \"text\" string");
      } else {
        ids.n = 0;
        of.n = 0;
        st = offsets ? tok_encode_offsets(t, json_string_value(tx), json_string_length(tx), add_special, &ids, &of)
                     : tok_encode(t, json_string_value(tx), json_string_length(tx), add_special, &ids);
        if (st != IFT_OK) {
          fprintf(stderr, "iftrain tokenize: standard input line %ld: cannot encode the text\n", ln);
          rc = app_exit_code(st);
        } else {
          json_t *a = json_array();
          for (size_t i = 0; i < ids.n; i++) json_array_append_new(a, json_integer(ids.ids[i]));
          out = json_pack("{s:o}", "ids", a);
          if (offsets) {
            json_t *b = json_array();
            for (size_t i = 0; i < of.n; i++)
              json_array_append_new(b, json_pack("[II]", (json_int_t)of.o[2 * i], (json_int_t)of.o[2 * i + 1]));
            json_object_set_new(out, "offsets", b);
          }
        }
      }
    } else {
      const json_t *a = json_object_get(o, "ids");
      size_t i;
      const json_t *v;
      ids.n = 0;
      if (!json_is_array(a)) rc = fail_line(ln, "no \"ids\" list");
      json_array_foreach(a, i, v) {
        if (rc == APP_EXIT_OK && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 30)) rc = fail_line(ln, "an id is not a non-negative integer");
        if (rc == APP_EXIT_OK && tok_ids_push(&ids, (int)json_integer_value(v))) rc = 1;
      }
      char *text = NULL;
      size_t len = 0;
      if (rc == APP_EXIT_OK) {
        st = tok_decode(t, ids.ids, ids.n, skip_special, &text, &len);
        if (st != IFT_OK) {
          fprintf(stderr, "iftrain tokenize: standard input line %ld: cannot decode the ids\n", ln);
          rc = app_exit_code(st);
        } else {
          out = json_pack("{s:s%}", "text", text, len);
        }
      }
      free(text);
    }
    if (out) {
      char *s = json_dumps(out, JSON_COMPACT);
      if (s) printf("%s\n", s);
      else rc = 1;
      free(s);
      json_decref(out);
    } else if (rc == APP_EXIT_OK) {
      rc = fail_line(ln, "cannot write the result as JSON");
    }
    if (o) json_decref(o);
  }
  free(line);
  tok_ids_free(&ids);
  tok_offs_free(&of);
  tok_free(t);
  if (fflush(stdout) != 0) rc = 1;
  return rc;
}
