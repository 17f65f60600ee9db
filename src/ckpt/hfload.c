/* ckpt/hfload — a Hugging Face model directory as a source of weights:
 * config.json -> model_config, and every rank reading the blocks of its own
 * shards straight from the safetensors files (one file, or the shards named
 * by model.safetensors.index.json).  Nothing is gathered on one rank, so a
 * model larger than a node loads on many. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iftrain/ckpt.h"
#include "iftrain/dist.h"
#include "iftrain/hf.h"

int ckpt_is_hf_dir(const char *path) {
  struct stat sb;
  char cj[1200];
  snprintf(cj, sizeof cj, "%s/config.json", path);
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && access(cj, R_OK) == 0;
}

ift_status ckpt_hf_config(const char *dir, model_config *c, hf_config *hc_out) {
  hf_config hc;
  IFT_TRY(hf_config_read(dir, &hc));
  if (hc_out) *hc_out = hc;
  *c = model_config_default();
  c->vocab_size = hc.vocab_size;
  c->hidden_size = hc.hidden_size;
  c->intermediate_size = hc.intermediate_size;
  c->num_hidden_layers = hc.num_hidden_layers;
  c->num_attention_heads = hc.num_attention_heads;
  c->num_key_value_heads = hc.num_key_value_heads;
  c->max_position_embeddings = hc.max_position_embeddings;
  c->tie_word_embeddings = hc.tie_word_embeddings;
  c->rms_norm_eps = hc.rms_norm_eps;
  c->rope_theta = hc.rope_theta;
  c->sliding_window = hc.sliding_window;
  c->head_dim = hc.head_dim == hc.hidden_size / hc.num_attention_heads &&
                        hc.hidden_size % hc.num_attention_heads == 0
                    ? 0
                    : hc.head_dim;
  c->rope_type = hc.rope_scaling.type == HF_ROPE_LINEAR   ? MODEL_ROPE_LINEAR
                 : hc.rope_scaling.type == HF_ROPE_LLAMA3 ? MODEL_ROPE_LLAMA3
                                                          : MODEL_ROPE_DEFAULT;
  if (c->rope_type != MODEL_ROPE_DEFAULT) c->rope_factor = hc.rope_scaling.factor;
  if (c->rope_type == MODEL_ROPE_LLAMA3) {
    c->rope_low_freq_factor = hc.rope_scaling.low_freq_factor;
    c->rope_high_freq_factor = hc.rope_scaling.high_freq_factor;
    c->rope_original_max_position_embeddings = hc.rope_scaling.original_max_position_embeddings;
  }
  return IFT_OK;
}

/* The safetensors files of a directory: model.safetensors, or the shards of
 * model.safetensors.index.json, each opened (mapped) once. */
typedef struct {
  int n;
  hf_st **files;
  char **names;     /* file names, for the weight map */
  int *fds;         /* the same files for read-ahead advice (-1: none) */
  off_t *data_off;  /* file offset of each data buffer */
  json_t *weights;  /* index weight_map (NULL: one file) */
} st_set;

static void st_set_close(st_set *s) {
  for (int i = 0; i < s->n; i++) {
    if (s->files[i]) hf_st_close(s->files[i]);
    if (s->fds[i] >= 0) close(s->fds[i]);
    free(s->names[i]);
  }
  free(s->files);
  free(s->names);
  free(s->fds);
  free(s->data_off);
  if (s->weights) json_decref(s->weights);
  memset(s, 0, sizeof *s);
}

static ift_status st_set_add(st_set *s, const char *dir, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->names[i], name)) return IFT_OK;
  IFT_REQUIRE(!strchr(name, '/') && strcmp(name, "..") && strcmp(name, "."), IFT_ERR_FORMAT,
              "the index may name only files of its own directory",
              "%s/model.safetensors.index.json names the file '%s'", dir, name);
  hf_st **f = realloc(s->files, sizeof *f * (size_t)(s->n + 1));
  IFT_REQUIRE(f, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->files = f;
  char **nm = realloc(s->names, sizeof *nm * (size_t)(s->n + 1));
  IFT_REQUIRE(nm, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->names = nm;
  int *fd = realloc(s->fds, sizeof *fd * (size_t)(s->n + 1));
  IFT_REQUIRE(fd, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->fds = fd;
  off_t *off = realloc(s->data_off, sizeof *off * (size_t)(s->n + 1));
  IFT_REQUIRE(off, IFT_ERR_NOMEM, NULL, "safetensors file list");
  s->data_off = off;
  s->names[s->n] = strdup(name);
  s->files[s->n] = NULL;
  s->fds[s->n] = -1;
  s->data_off[s->n] = 0;
  IFT_REQUIRE(s->names[s->n], IFT_ERR_NOMEM, NULL, "file name");
  s->n++;
  char path[1400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  /* A descriptor for read-ahead advice (below; without it the reads are the
   * same, only not advised).  The header first, so that parsing it through
   * the mapping reads no window of tensor data around it. */
  const int d = open(path, O_RDONLY | O_CLOEXEC);
  uint64_t hlen = 0;
  if (d >= 0 && pread(d, &hlen, 8, 0) == 8 && hlen < (1u << 30))
    posix_fadvise(d, 0, (off_t)(8 + hlen), POSIX_FADV_WILLNEED);
  hf_st *opened;
  ift_status st = hf_st_open(&opened, path);
  if (st != IFT_OK) {
    if (d >= 0) close(d);
    return st;
  }
  s->files[s->n - 1] = opened;
  /* The tensors tile the data buffer, which ends the file: it starts at
   * size - (end of the last tensor). */
  struct stat sb;
  const size_t nt = hf_st_count(opened);
  if (d >= 0 && fstat(d, &sb) == 0) {
    s->fds[s->n - 1] = d;
    s->data_off[s->n - 1] = sb.st_size - (off_t)(nt ? hf_st_at(opened, nt - 1)->end : 0);
  } else if (d >= 0) {
    close(d);
  }
  return IFT_OK;
}

static ift_status st_set_open(st_set *s, const char *dir) {
  memset(s, 0, sizeof *s);
  char idx[1200];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  if (access(idx, F_OK) != 0) return st_set_add(s, dir, "model.safetensors");
  json_error_t err;
  json_t *root = json_load_file(idx, JSON_REJECT_DUPLICATES, &err);
  IFT_REQUIRE(root, IFT_ERR_FORMAT, "the index must be the JSON Hugging Face writes",
              "%s:%d: %s", idx, err.line, err.text);
  json_t *wm = json_object_get(root, "weight_map");
  if (json_is_object(wm)) s->weights = json_incref(wm);
  json_decref(root);
  IFT_REQUIRE(s->weights, IFT_ERR_FORMAT, "the index must hold a \"weight_map\" object",
              "%s has no weight_map object", idx);
  const char *key;
  json_t *v;
  json_object_foreach(s->weights, key, v) {
    IFT_REQUIRE(json_is_string(v), IFT_ERR_FORMAT, "weight_map values are file names",
                "%s: weight_map[\"%s\"] is not a string", idx, key);
    IFT_TRY(st_set_add(s, dir, json_string_value(v)));
  }
  return IFT_OK;
}

/* The file holding tensor `name` (and its index in the set). */
static ift_status st_set_find(const st_set *s, const char *dir, const char *name, hf_st **out,
                              int *idx) {
  const char *file = "model.safetensors";
  if (s->weights) {
    json_t *v = json_object_get(s->weights, name);
    IFT_REQUIRE(v, IFT_ERR_FORMAT, "use a complete model directory",
                "%s/model.safetensors.index.json has no tensor %s", dir, name);
    file = json_string_value(v);
  }
  *out = NULL;
  for (int i = 0; i < s->n && !*out; i++)
    if (!strcmp(s->names[i], file)) *out = s->files[i], *idx = i;
  IFT_REQUIRE(*out && hf_st_find(*out, name), IFT_ERR_FORMAT, "use a complete model directory",
              "%s/%s has no tensor %s", dir, file, name);
  return IFT_OK;
}

/* Read-ahead of exactly this rank's bytes.  The files are mapped, and a
 * fault on a page that is not in the page cache makes the kernel read a
 * window around it (read_ahead_kb of the device: 8 MB on this machine's
 * virtio disk, often more on parallel file systems) and then asynchronously
 * beyond it, across the edges of this rank's rows and over the other ranks'
 * parts of small tensors: under TP 2 each rank of a 1.25 GB F32 model read
 * 78 % of the files, where the pages holding its own elements are 55 %
 * (bench/import.sh, layout tp2sep).  Asking for the bytes of a chunk of rows
 * (posix_fadvise WILLNEED) before touching them puts them in the page
 * cache, so the faults find them and read nothing around (60 %); the next
 * chunk is asked for before this one is converted, so reading overlaps
 * converting.  A column shard (o_proj, down_proj) is asked for as the span
 * of its rows, the other ranks' columns included, unless the gap between
 * its row slices reaches HF_ROW_ADVICE: smaller holes cost less read than
 * skipped.  WILLNEED reads at most max(read-ahead, largest I/O) per call; a
 * chunk beyond that falls back to the faults' own (then small) windows. */
#define HF_CHUNK (4u << 20)     /* bytes of source rows per advice and read */
#define HF_ROW_ADVICE (64u << 10) /* a gap between row slices this large is not read */

static void advise_rows(int fd, off_t base, const hf_st_tensor *ht, int64_t r0, int64_t nr,
                        int64_t c0, int64_t nc) {
  if (fd < 0 || nr <= 0) return;
  const int64_t es = (int64_t)hf_dtype_size(ht->dtype), cols = ht->shape[ht->ndim - 1];
  const off_t t0 = base + (off_t)ht->begin;
  if ((cols - nc) * es >= (int64_t)HF_ROW_ADVICE) {
    for (int64_t r = r0; r < r0 + nr; r++)
      posix_fadvise(fd, t0 + (off_t)((r * cols + c0) * es), (off_t)(nc * es), POSIX_FADV_WILLNEED);
  } else {
    const off_t a = t0 + (off_t)((r0 * cols + c0) * es);
    const off_t b = t0 + (off_t)(((r0 + nr - 1) * cols + c0 + nc) * es);
    posix_fadvise(fd, a, b - a, POSIX_FADV_WILLNEED);
  }
}

/* This rank's shard of tensor t: its blocks, each read in place, in chunks
 * of rows advised one chunk ahead. */
static ift_status read_shard(const hf_st *f, int fd, off_t base, const model_tensor *t, float *dst,
                             const char *dir) {
  const hf_st_tensor *ht = hf_st_find(f, t->name);
  const int vec = t->cols == 1;
  char have[80] = "[]", want[32];
  if (ht->ndim == 1) snprintf(have, sizeof have, "[%lld]", (long long)ht->shape[0]);
  else if (ht->ndim > 1)
    snprintf(have, sizeof have, "[%lld, %lld%s]", (long long)ht->shape[0], (long long)ht->shape[1],
             ht->ndim > 2 ? ", ..." : "");
  if (vec) snprintf(want, sizeof want, "[%d]", t->rows);
  else snprintf(want, sizeof want, "[%d, %d]", t->rows, t->cols);
  IFT_REQUIRE(ht->ndim == (vec ? 1 : 2) && ht->shape[0] == t->rows && (vec || ht->shape[1] == t->cols),
              IFT_ERR_FORMAT, "the weights must match config.json",
              "%s: tensor %s has shape %s, config.json implies %s", dir, t->name, have, want);
  const int rstep = t->rstep > t->rblk ? t->rstep : t->rblk, cstep = t->cstep > t->cblk ? t->cstep : t->cblk;
  for (int i = 0; i < t->lrows / t->rblk; i++)
    for (int j = 0; j < t->lcols / t->cblk; j++) {
      float *out = dst + (size_t)i * t->rblk * t->lcols + (size_t)j * t->cblk;
      const int64_t r0 = t->row0 + (int64_t)i * rstep, c0 = t->col0 + (int64_t)j * cstep;
      /* a vector is read as a 1 x n matrix: its rows are the block's columns */
      if (vec) {
        advise_rows(fd, base, ht, 0, 1, r0, t->rblk);
        IFT_TRY(hf_st_read_block(f, t->name, 0, 1, r0, t->rblk, out, t->rblk));
        continue;
      }
      const int64_t row_bytes = (int64_t)t->cols * (int64_t)hf_dtype_size(ht->dtype);
      const int64_t step = row_bytes >= (int64_t)HF_CHUNK ? 1 : (int64_t)HF_CHUNK / row_bytes;
      advise_rows(fd, base, ht, r0, step < t->rblk ? step : t->rblk, c0, t->cblk);
      for (int64_t a = 0; a < t->rblk; a += step) {
        const int64_t n = t->rblk - a < step ? t->rblk - a : step;
        const int64_t next = t->rblk - a - n < step ? t->rblk - a - n : step;
        advise_rows(fd, base, ht, r0 + a + n, next, c0, t->cblk);
        IFT_TRY(hf_st_read_block(f, t->name, r0 + a, n, c0, t->cblk, out + (size_t)a * t->lcols,
                                 t->lcols));
      }
    }
  return IFT_OK;
}

ift_status ckpt_hf_load(const char *dir, model *m, MPI_Comm comm) {
  model_config c;
  st_set s;
  memset(&s, 0, sizeof s);
  ift_status st = IFT_OK;
  char diff[1024];
  IFT_TRY_GOTO(st, done, ckpt_hf_config(dir, &c, NULL));
  /* the configured model must be the directory's: name every difference */
  if (model_config_diff(&c, model_cfg(m), diff, sizeof diff))
    IFT_FAIL_GOTO(st, done, IFT_ERR_CONFIG, "leave the [model] section at the directory's config.json",
                  "%s/config.json describes another model: %s", dir, diff);
  IFT_TRY_GOTO(st, done, st_set_open(&s, dir));
  for (int i = 0; i < model_ntensors(m); i++) {
    const model_tensor *t = model_tensor_at(m, i);
    hf_st *f = NULL;
    int k = 0;
    IFT_TRY_GOTO(st, done, st_set_find(&s, dir, t->name, &f, &k));
    IFT_TRY_GOTO(st, done, read_shard(f, s.fds[k], s.data_off[k], t, model_params(m) + t->offset, dir));
  }
done:
  st_set_close(&s);
  /* every rank read its own shards: one agreement, no collective before */
  return dist_agree(st, comm);
}

/* ------------------------------------------------------------ origin */

/* Files of a model directory that define the model or its tokenizer (the
 * origin hashes them; export copies the tokenizer ones and the licence). */
static const char *const TOKENIZER_FILES[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json"};
enum { N_TOKENIZER_FILES = sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0] };

/* The terms the model or tokenizer is distributed under: they travel with
 * the tokenizer files, so that an exported model carries its licence. */
static const char *const LICENCE_FILES[] = {"LICENSE",   "LICENSE.txt", "LICENSE.md", "LICENCE",
                                            "LICENCE.txt", "LICENCE.md", "NOTICE",     "NOTICE.txt",
                                            "NOTICE.md", "USE_POLICY.md"};
enum { N_LICENCE_FILES = sizeof LICENCE_FILES / sizeof LICENCE_FILES[0] };

static int in_list(const char *name, const char *const *list, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(name, list[i])) return 1;
  return 0;
}

/* a file export copies (and a new model's origin holds): a tokenizer file or a licence */
static int exported_file(const char *name) {
  return in_list(name, TOKENIZER_FILES, N_TOKENIZER_FILES) || in_list(name, LICENCE_FILES, N_LICENCE_FILES);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static int origin_file(const char *name) {
  return exported_file(name) || !strcmp(name, "config.json") ||
         !strcmp(name, "generation_config.json") || ends_with(name, ".safetensors") ||
         !strcmp(name, "model.safetensors.index.json");
}

/* The origin of directory DIR: the hashes of its model and tokenizer files,
 * the tokenizer's identity, and either config.json (ids == NULL: an imported
 * model's directory, config.json required) or the token ids a new model
 * takes from its tokenizer (ids: {"bos_token_id", "eos_token_id"}, kept as
 * "token_ids"; a tokenizer's directory, tokenizer.json required). */
static ift_status hf_origin(const char *dir, json_t *ids, char **out) {
  *out = NULL;
  char abs[PATH_MAX];
  IFT_REQUIRE(realpath(dir, abs), IFT_ERR_IO, "check the model directory",
              "cannot resolve '%s': %s", dir, strerror(errno));
  DIR *d = opendir(abs);
  IFT_REQUIRE(d, IFT_ERR_IO, "check the model directory", "cannot list '%s': %s", abs,
              strerror(errno));
  ift_status st = IFT_OK;
  json_t *root = json_object(), *files = json_object(), *tok = json_null(), *cj;
  char cp[PATH_MAX + 32];
  const char *th;
  struct dirent *e;
  IFT_REQUIRE_GOTO(st, done, root && files, IFT_ERR_NOMEM, NULL, "origin of %s", abs);
  while ((e = readdir(d))) {
    /* a new model's tokenizer: its files and licence alone (the directory may be a model's) */
    if (ids ? !exported_file(e->d_name) : !origin_file(e->d_name)) continue;
    char p[PATH_MAX + 256], hex[65];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", abs, e->d_name);
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    IFT_TRY_GOTO(st, done, core_sha256_file(p, hex));
    IFT_REQUIRE_GOTO(st, done, !json_object_set_new(files, e->d_name, json_string(hex)), IFT_ERR_NOMEM,
                     NULL, "origin of %s", abs);
  }
  th = json_string_value(json_object_get(files, "tokenizer.json"));
  if (th) {
    /* the tokenizer's identity: its file's hash and the class that loads it */
    char tc[PATH_MAX + 32];
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", abs);
    /* as reals: model_max_length is often 1e30, too big an integer for jansson */
    json_t *cfg = json_load_file(tc, JSON_DECODE_INT_AS_REAL, NULL);
    json_t *cls = cfg ? json_object_get(cfg, "tokenizer_class") : NULL;
    tok = json_pack("{s:O?,s:s,s:s}", "class", json_is_string(cls) ? cls : NULL, "file",
                    "tokenizer.json", "sha256", th);
    if (cfg) json_decref(cfg);
    IFT_REQUIRE_GOTO(st, done, tok, IFT_ERR_NOMEM, NULL, "origin of %s", abs);
  }
  if (ids) {
    IFT_REQUIRE_GOTO(st, done, th, IFT_ERR_CONFIG,
                     "give model.tokenizer the directory of a Hugging Face tokenizer (its tokenizer.json)",
                     "%s has no tokenizer.json", abs);
    IFT_REQUIRE_GOTO(st, done, !json_object_set(root, "token_ids", ids), IFT_ERR_NOMEM, NULL, "origin of %s", abs);
  } else {
    /* config.json itself, so that export can write back what iftrain does not
     * model (bos/eos ids, architecture name, ...) after the source is gone */
    snprintf(cp, sizeof cp, "%s/config.json", abs);
    cj = json_load_file(cp, 0, NULL);
    IFT_REQUIRE_GOTO(st, done, cj, IFT_ERR_CONFIG, "repair config.json", "%s cannot be read as JSON", cp);
    IFT_REQUIRE_GOTO(st, done, !json_object_set_new(root, "config", cj), IFT_ERR_NOMEM, NULL, "origin of %s", abs);
  }
  IFT_REQUIRE_GOTO(st, done,
                   !json_object_set_new(root, "format", json_string("huggingface")) &&
                       !json_object_set_new(root, "source", json_string(abs)) &&
                       !json_object_set(root, "files", files) && !json_object_set(root, "tokenizer", tok),
                   IFT_ERR_NOMEM, NULL, "origin of %s", abs);
  *out = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
  IFT_REQUIRE_GOTO(st, done, *out, IFT_ERR_NOMEM, NULL, "origin of %s", abs);
done:
  closedir(d);
  if (tok) json_decref(tok);
  if (files) json_decref(files);
  if (root) json_decref(root);
  return st;
}

ift_status ckpt_hf_origin(const char *dir, char **out) { return hf_origin(dir, NULL, out); }

ift_status ckpt_tokenizer_origin(const char *dir, int bos, int eos, char **out) {
  json_t *ids = json_object();
  IFT_REQUIRE(ids, IFT_ERR_NOMEM, NULL, "origin of %s", dir);
  if (bos >= 0) json_object_set_new(ids, "bos_token_id", json_integer(bos));
  if (eos >= 0) json_object_set_new(ids, "eos_token_id", json_integer(eos));
  ift_status st = hf_origin(dir, ids, out);
  json_decref(ids);
  return st;
}

/* Copy SRC to DST (created, not overwritten: the export directory is new). */
static ift_status copy_file(const char *src, const char *dst) {
  FILE *in = fopen(src, "rb");
  IFT_REQUIRE(in, IFT_ERR_IO, "restore the source directory", "cannot open '%s': %s", src,
              strerror(errno));
  int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  FILE *o = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!o) {
    const int e = errno;
    if (fd >= 0) close(fd);
    fclose(in);
    IFT_REQUIRE(0, IFT_ERR_IO, "check the output directory", "cannot create '%s': %s", dst,
                strerror(e));
  }
  char buf[1 << 16];
  size_t n;
  int bad = 0;
  while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, o) != n;
  bad |= ferror(in) || fflush(o) != 0 || fsync(fileno(o)) != 0;
  const int e = errno;
  bad |= fclose(o) != 0;
  fclose(in);
  if (bad) unlink(dst);
  IFT_REQUIRE(!bad, IFT_ERR_WRITE, "free disk space and retry", "copying %s to %s: %s", src, dst,
              strerror(e));
  return IFT_OK;
}

ift_status ckpt_origin_copy_tokenizer(const char *origin, const char *dir, int *ncopied) {
  *ncopied = 0;
  if (!origin || !origin[0]) return IFT_OK;
  json_t *root = json_loads(origin, 0, NULL);
  IFT_REQUIRE(root, IFT_ERR_FORMAT, "the checkpoint's /model origin attribute is damaged",
              "cannot parse the origin '%.80s'", origin);
  const char *src = json_string_value(json_object_get(root, "source"));
  json_t *files = json_object_get(root, "files");
  ift_status st = IFT_OK;
  const char *const hint_gone =
      "restore the model directory the checkpoint was imported from, or export "
      "with --no-tokenizer and copy the tokenizer and licence files yourself";
  const char *const hint_changed =
      "restore the file the model was imported with, or export with "
      "--no-tokenizer and copy the right tokenizer and licence files yourself";
  if (!src || !json_is_object(files)) {
    json_decref(root);
    return IFT_OK; /* not imported from a directory */
  }
  const char *name;
  json_t *v;
  /* check every file before copying any: all or nothing */
  for (int pass = 0; pass < 2; pass++)
    json_object_foreach(files, name, v) {
      if (!exported_file(name)) continue;
      char sp[PATH_MAX + 256], dp[PATH_MAX + 256], hex[65];
      snprintf(sp, sizeof sp, "%s/%s", src, name);
      if (pass == 0) {
        if (core_sha256_file(sp, hex) != IFT_OK)
          IFT_FAIL_GOTO(st, done, IFT_ERR_FORMAT, hint_gone, "file %s of the source model is gone", sp);
        IFT_REQUIRE_GOTO(st, done, json_is_string(v) && !strcmp(hex, json_string_value(v)), IFT_ERR_FORMAT,
                         hint_changed, "%s changed since the import (SHA-256 %s, recorded %s)", sp, hex,
                         json_is_string(v) ? json_string_value(v) : "?");
      } else {
        snprintf(dp, sizeof dp, "%s/%s", dir, name);
        IFT_TRY_GOTO(st, done, copy_file(sp, dp));
        (*ncopied)++;
      }
    }
done:
  json_decref(root);
  return st;
}
