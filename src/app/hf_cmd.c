/* iftrain import: a Hugging Face model directory -> an iftrain checkpoint
 * (step 0, weights only), every rank reading its own shards; iftrain export:
 * a checkpoint -> a Hugging Face model directory. */
#include "config.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "iftrain/ckpt.h"
#include "iftrain/data.h"
#include "iftrain/dist.h"

const char app_import_help[] =
    "Import a Hugging Face model directory (config.json + model.safetensors, or the\n"
    "shards of model.safetensors.index.json; F32, BF16 or F16) as a step-0 checkpoint.\n"
    "  iftrain import HF_DIR -o CKPT.h5 [--tp N]\n\n"
    "A directory is also accepted directly wherever a checkpoint is read\n"
    "(train --ckpt.init=HF_DIR, eval/generate --ckpt HF_DIR). Under mpirun each rank\n"
    "reads only the blocks of its own shards (--tp N: tensor-parallel ranks, 1D), so a\n"
    "model larger than one node's memory imports on many. Llama and Mistral models\n"
    "(head_dim, rope_scaling none/linear/llama3); what this build cannot represent\n"
    "(biases, another activation, a sliding window shorter than the context) is\n"
    "refused by name. The checkpoint records the directory and the SHA-256 of its\n"
    "files (iftrain ckpt info shows them; export copies the tokenizer files back).\n"
    "CKPT.h5 must not exist. Exit codes: 0 ok, 2 bad input, 3 not supported yet,\n"
    "1 other failure.\n";

int app_import(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  int tp = 1;
  const app_optdef opts[] = {APP_STR_L(NULL, 'o', &out), APP_INT("tp", &tp, APP_GE(1)), {0}};
  const app_opts spec = {.cmd = "import", .opts = opts, .max_args = 1};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (argc > 1) in = argv[1];
  if (!in || !out) {
    if (core_rank() == 0) fprintf(stderr, "iftrain import: give HF_DIR and -o CKPT.h5\n\n%s", app_import_help);
    return APP_EXIT_USAGE;
  }
  ift_status st = IFT_OK;
  if (!ckpt_is_hf_dir(in)) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "config.json",
                  "give a Hugging Face model directory (it holds config.json and the safetensors)",
                  "'%s' is not a directory with a readable config.json", in);
    st = IFT_ERR_IO;
  } else if (access(out, F_OK) == 0) {
    ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "-o", "remove it first or choose another name",
                  "'%s' exists; import does not overwrite files", out);
    st = IFT_ERR_IO;
  }
  if (st != IFT_OK) return app_exit_code(st);
  dist_grid g;
  model *m = NULL;
  model_config c;
  const double t0 = core_now();
  if ((st = dist_grid_create(&g, MPI_COMM_WORLD, tp)) != IFT_OK) return app_exit_code(st);
  st = ckpt_hf_config(in, &c, NULL);
  if (st == IFT_OK) st = model_create(&m, &c, g.tp, 1, 2);
  st = dist_agree(st, g.world);
  if (st == IFT_OK) st = ckpt_hf_load(in, m, g.world);
  const double t1 = core_now();
  char *origin = NULL;
  if (st == IFT_OK) st = ckpt_origin_shared(in, &origin, g.world);
  ckpt_meta meta = {.step = 0, .dp = g.dp_size, .tp = g.tp_size, .config_text = "", .origin = origin};
  if (st == IFT_OK) st = ckpt_save_file(out, m, NULL, &meta, g.world, g.dp_rank);
  free(origin);
  if (st == IFT_OK && g.rank == 0)
    printf("%s -> %s: %zu parameters, read in %.2f s, written in %.2f s\n", in, out,
           model_nparams_global(m), t1 - t0, core_now() - t1);
  if (m) model_destroy(m);
  dist_grid_destroy(&g);
  return app_exit_code(st);
}

/* ------------------------------------------------------------ export */

const char app_export_help[] =
    "Export a checkpoint as a Hugging Face model directory that transformers, vLLM\n"
    "or llama.cpp's converter load.\n"
    "  iftrain export CKPT -o HF_DIR [--dtype f32|bf16] [--max-shard-size SIZE]\n"
    "                 [--no-tokenizer]\n\n"
    "CKPT is a checkpoint file, a checkpoint directory (its latest) or a model\n"
    "directory. HF_DIR is created (it must not exist) with config.json,\n"
    "generation_config.json and model.safetensors -- or, above --max-shard-size\n"
    "(default 5GB; B, KB, MB, GB are powers of 10, KiB, MiB, GiB of 2),\n"
    "model-0000k-of-0000n.safetensors shards and model.safetensors.index.json.\n"
    "--dtype: f32 (default; import -> export of an F32 model is bit-identical) or\n"
    "bf16 (rounded to nearest even). When the weights came from a Hugging Face\n"
    "directory (iftrain import, train --ckpt.init=HF_DIR), config.json keeps that\n"
    "model's ids and names, and its tokenizer files (tokenizer.json,\n"
    "tokenizer_config.json, special_tokens_map.json, ...) and licence files\n"
    "(LICENSE, NOTICE, USE_POLICY.md, ...) are copied after their SHA-256 is\n"
    "checked against the one recorded at import (--no-tokenizer: skip).\n"
    "The directory is written under HF_DIR.tmp and renamed when complete.\n"
    "Runs on one rank. Exit codes: 0 ok, 2 bad input, 1 other failure.\n";

/* "5GB", "500MB", "2GiB", "1000000" -> bytes (as transformers reads them) */
static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !(v > 0)) return -1;
  static const struct { const char *u; double f; } units[] = {
      {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
      {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  char u[8] = "";
  size_t k = 0;
  for (; end[k] && k < sizeof u - 1; k++) u[k] = (char)toupper((unsigned char)end[k]);
  if (end[k]) return -1;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (!strcmp(u, units[i].u)) {
      *out = (uint64_t)(v * units[i].f);
      return *out ? 0 : -1;
    }
  return -1;
}

/* The hf_config of the export: the source model's config.json (kept in the
 * checkpoint's origin) for what iftrain does not model -- architecture name,
 * bos/eos ids, sliding window -- and every architecture key from C. */
static ift_status export_config(const model_config *c, const char *origin, int bf16,
                                hf_config *hc) {
  memset(hc, 0, sizeof *hc);
  json_t *o = origin ? json_loads(origin, 0, NULL) : NULL;
  json_t *cj = o ? json_object_get(o, "config") : NULL;
  char *text = cj ? json_dumps(cj, 0) : NULL;
  ift_status st = text ? hf_config_parse(text, "the source config.json (checkpoint origin)", hc) : IFT_OK;
  free(text);
  /* a new model with a Hugging Face tokenizer (model.tokenizer): its ids */
  json_t *ids = o && !cj ? json_object_get(o, "token_ids") : NULL;
  const json_t *bos = json_object_get(ids, "bos_token_id"), *eos = json_object_get(ids, "eos_token_id");
  if (json_is_integer(bos)) hc->bos_token_id[hc->n_bos++] = (int)json_integer_value(bos);
  if (json_is_integer(eos)) hc->eos_token_id[hc->n_eos++] = (int)json_integer_value(eos);
  const int have_ids = ids != NULL;
  if (o) json_decref(o);
  IFT_TRY(st);
  if (!cj) {
    snprintf(hc->architecture, sizeof hc->architecture, "LlamaForCausalLM");
    snprintf(hc->model_type, sizeof hc->model_type, "llama");
    if (c->sliding_window) { /* only Mistral's config has a window */
      snprintf(hc->architecture, sizeof hc->architecture, "MistralForCausalLM");
      snprintf(hc->model_type, sizeof hc->model_type, "mistral");
    }
    if (!have_ids && c->vocab_size >= TOK_VOCAB) { /* iftrain's byte tokenizer */
      hc->n_bos = hc->n_eos = 1;
      hc->bos_token_id[0] = TOK_BOS;
      hc->eos_token_id[0] = TOK_EOS;
    }
  }
  hc->vocab_size = c->vocab_size;
  hc->hidden_size = c->hidden_size;
  hc->intermediate_size = c->intermediate_size;
  hc->num_hidden_layers = c->num_hidden_layers;
  hc->num_attention_heads = c->num_attention_heads;
  hc->num_key_value_heads = c->num_key_value_heads;
  hc->head_dim = model_head_dim(c);
  hc->max_position_embeddings = c->max_position_embeddings;
  hc->rms_norm_eps = c->rms_norm_eps;
  hc->rope_theta = c->rope_theta;
  hc->tie_word_embeddings = c->tie_word_embeddings;
  hc->sliding_window = c->sliding_window;
  snprintf(hc->torch_dtype, sizeof hc->torch_dtype, "%s", bf16 ? "bfloat16" : "float32");
  memset(&hc->rope_scaling, 0, sizeof hc->rope_scaling);
  hc->rope_scaling.type = c->rope_type == MODEL_ROPE_LINEAR   ? HF_ROPE_LINEAR
                          : c->rope_type == MODEL_ROPE_LLAMA3 ? HF_ROPE_LLAMA3
                                                              : HF_ROPE_DEFAULT;
  if (c->rope_type != MODEL_ROPE_DEFAULT) hc->rope_scaling.factor = c->rope_factor;
  if (c->rope_type == MODEL_ROPE_LLAMA3) {
    hc->rope_scaling.low_freq_factor = c->rope_low_freq_factor;
    hc->rope_scaling.high_freq_factor = c->rope_high_freq_factor;
    hc->rope_scaling.original_max_position_embeddings = c->rope_original_max_position_embeddings;
  }
  return IFT_OK;
}

/* JSON as transformers writes it: sorted keys, 2-space indent, final newline */
static int dump_json(const json_t *j, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int bad = json_dumpf(j, f, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 || fputc('\n', f) == EOF;
  bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  return bad ? -1 : 0;
}

/* generation_config.json as transformers writes it for a config */
static ift_status write_generation_config(const char *path, const hf_config *hc) {
  json_t *g = json_object(), *ids[2] = {NULL, NULL};
  const int *v[2] = {hc->bos_token_id, hc->eos_token_id}, n[2] = {hc->n_bos, hc->n_eos};
  const int list[2] = {hc->bos_is_list, hc->eos_is_list};
  for (int k = 0; k < 2; k++) {
    if (!n[k]) continue;
    if (n[k] == 1 && !list[k]) {
      ids[k] = json_integer(v[k][0]);
    } else {
      ids[k] = json_array();
      for (int i = 0; i < n[k]; i++) json_array_append_new(ids[k], json_integer(v[k][i]));
    }
  }
  json_object_set_new(g, "_from_model_config", json_true());
  if (ids[0]) json_object_set_new(g, "bos_token_id", ids[0]);
  if (ids[1]) json_object_set_new(g, "eos_token_id", ids[1]);
  int bad = dump_json(g, path) != 0;
  json_decref(g);
  IFT_REQUIRE(!bad, IFT_ERR_WRITE, "check free disk space", "cannot write %s", path);
  return IFT_OK;
}

typedef struct {
  const char *ckpt, *out;
  int bf16, no_tokenizer;
  uint64_t max_shard;
} export_opts;

/* The tensors of the model as safetensors entries (vectors 1-D, matrices
 * [out, in]), in model order; shape storage in shapes[2 i .. 2 i + 1]. */
static void export_tensors(model *m, int bf16, hf_st_wtensor *t, int64_t *shapes) {
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *mt = model_tensor_at(m, i);
    shapes[2 * i] = mt->rows;
    shapes[2 * i + 1] = mt->cols;
    t[i] = (hf_st_wtensor){.name = mt->name, .dtype = bf16 ? HF_BF16 : HF_F32,
                           .ndim = mt->cols == 1 ? 1 : 2, .shape = shapes + 2 * i,
                           .data = model_params(m) + mt->offset};
  }
}

static ift_status export_weights(model *m, const export_opts *o, const char *dir, int *nfiles) {
  const int n = model_ntensors(m);
  hf_st_wtensor *t = calloc((size_t)n, sizeof *t);
  int64_t *shapes = calloc((size_t)n * 2, sizeof *shapes);
  int *shard = calloc((size_t)n, sizeof *shard);
  uint64_t total = 0;
  int ns = 0;
  json_t *map = NULL;
  ift_status st = IFT_OK;
  IFT_REQUIRE_GOTO(st, out, t && shapes && shard, IFT_ERR_NOMEM, NULL, "tensor list");
  export_tensors(m, o->bf16, t, shapes);
  /* transformers' split: in model order, a new shard when the next tensor
   * would push the current one past the limit (a larger tensor alone) */
  uint64_t cur = 0;
  for (int i = 0; i < n; i++) {
    const uint64_t b = (uint64_t)shapes[2 * i] * (uint64_t)shapes[2 * i + 1] * (o->bf16 ? 2u : 4u);
    if (i == 0 || (cur > 0 && cur + b > o->max_shard)) {
      ns++;
      cur = 0;
    }
    shard[i] = ns - 1;
    cur += b;
    total += b;
  }
  static const hf_kv meta[] = {{"format", "pt"}};
  map = json_object();
  for (int s = 0; s < ns; s++) {
    char name[64], path[4200];
    if (ns == 1) snprintf(name, sizeof name, "model.safetensors");
    else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, ns);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int first = -1, cnt = 0;
    for (int i = 0; i < n; i++)
      if (shard[i] == s) {
        if (first < 0) first = i;
        cnt++;
        json_object_set_new(map, t[i].name, json_string(name));
      }
    IFT_TRY_GOTO(st, out, hf_st_write(path, t + first, (size_t)cnt, meta, 1));
  }
  if (ns > 1) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_t *idx = json_pack("{s:{s:I},s:O}", "metadata", "total_size", (json_int_t)total,
                            "weight_map", map);
    const int written = idx && dump_json(idx, path) == 0;
    json_decref(idx);
    IFT_REQUIRE_GOTO(st, out, written, IFT_ERR_WRITE, "check free disk space", "cannot write %s", path);
  }
out:
  json_decref(map);
  *nfiles = ns;
  free(t);
  free(shapes);
  free(shard);
  return st;
}

/* Remove DIR and the files in it (the unfinished export). */
static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static ift_status export_run(const export_opts *o) {
  char path[1100], tmp[1100];
  IFT_TRY(ckpt_resolve_any(path, sizeof path, o->ckpt));
  IFT_REQUIRE(access(o->out, F_OK) != 0, IFT_ERR_IO, "remove it first or choose another name",
              "'%s' exists; export creates a new directory and does not overwrite", o->out);
  snprintf(tmp, sizeof tmp, "%s.tmp", o->out);
  const double t0 = core_now();
  model_config c;
  model *m = NULL;
  char *origin = NULL;
  IFT_TRY(ckpt_read_config(path, &c));
  IFT_TRY(model_create(&m, &c, MPI_COMM_NULL, 1, 2));
  ift_status st;
  hf_config hc;
  int nfiles = 0, ntok = 0;
  char p[1200];
  IFT_TRY_GOTO(st, out, ckpt_load(path, m, NULL, NULL, MPI_COMM_NULL, CKPT_VERIFY));
  IFT_TRY_GOTO(st, out, ckpt_origin(path, &origin));
  IFT_TRY_GOTO(st, out, export_config(&c, origin, o->bf16, &hc));
  remove_tree(tmp); /* a leftover of an interrupted export */
  if (mkdir(tmp, 0755) != 0)
    IFT_FAIL_GOTO(st, out, IFT_ERR_IO, "check the parent directory", "cannot create '%s': %s", tmp,
                  strerror(errno));
  snprintf(p, sizeof p, "%s/config.json", tmp);
  IFT_TRY_GOTO(st, out, hf_config_write(p, &hc));
  snprintf(p, sizeof p, "%s/generation_config.json", tmp);
  IFT_TRY_GOTO(st, out, write_generation_config(p, &hc));
  IFT_TRY_GOTO(st, out, export_weights(m, o, tmp, &nfiles));
  if (!o->no_tokenizer) IFT_TRY_GOTO(st, out, ckpt_origin_copy_tokenizer(origin, tmp, &ntok));
  int fd = open(tmp, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  if (rename(tmp, o->out) != 0)
    IFT_FAIL_GOTO(st, out, IFT_ERR_IO, "check the output path", "cannot rename %s to %s: %s", tmp, o->out,
                  strerror(errno));
  printf("%s -> %s: %d tensors (%zu parameters, %s) in %d safetensors file%s, %d tokenizer/licence "
         "file%s%s, %.2f s\n",
         path, o->out, model_ntensors(m), model_nparams_global(m), o->bf16 ? "bf16" : "f32",
         nfiles, nfiles == 1 ? "" : "s", ntok, ntok == 1 ? "" : "s",
         origin ? "" : " (no origin recorded: config.json from the model alone)",
         core_now() - t0);
out:
  if (st != IFT_OK) remove_tree(tmp); /* the unfinished export */
  free(origin);
  model_destroy(m);
  return st;
}

int app_export(int argc, char **argv) {
  export_opts o = {.max_shard = 5000000000ull};
  const char *dtype = NULL, *shard = NULL;
  const app_optdef opts[] = {
      APP_STR_L(NULL, 'o', &o.out),
      APP_FLAG("no-tokenizer", &o.no_tokenizer),
      APP_STR("dtype", &dtype),
      APP_STR("max-shard-size", &shard),
      {0}};
  const app_opts spec = {.cmd = "export", .opts = opts, .max_args = 1};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  if (argc > 1) o.ckpt = argv[1];
  if (dtype) {
    if (strcmp(dtype, "f32") && strcmp(dtype, "bf16")) {
      if (core_rank() == 0) fprintf(stderr, "iftrain export: --dtype is f32 or bf16, not '%s'\n", dtype);
      return APP_EXIT_USAGE;
    }
    o.bf16 = !strcmp(dtype, "bf16");
  }
  if (shard && parse_size(shard, &o.max_shard)) {
    if (core_rank() == 0)
      fprintf(stderr, "iftrain export: --max-shard-size '%s' is not a size\n"
                      "  hint: bytes, or a number with B, KB, MB, GB (10^3 steps) or KiB, "
                      "MiB, GiB (2^10 steps), e.g. 5GB\n", shard);
    return APP_EXIT_USAGE;
  }
  if (!o.ckpt || !o.out) {
    if (core_rank() == 0) fprintf(stderr, "iftrain export: give CKPT and -o HF_DIR\n\n%s", app_export_help);
    return APP_EXIT_USAGE;
  }
  /* serial: rank 0 exports, the others wait for its result */
  ift_status st = core_rank() == 0 ? export_run(&o) : IFT_OK;
  return app_exit_code(dist_agree(st, MPI_COMM_WORLD));
}
