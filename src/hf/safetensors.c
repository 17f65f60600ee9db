/* safetensors reader and writer (include/iftrain/hf.h).
 *
 * The reader accepts exactly what the reference Rust crate accepts
 * (huggingface/safetensors, tensor.rs): header length <= 100 MB and inside
 * the file, a JSON object of entries plus an optional string-to-string
 * "__metadata__", offsets that tile the data buffer from 0 to its end, and
 * end - begin == numel * dtype size.  Every refusal names the file, the
 * tensor and the cause, because a user facing a damaged download needs to
 * know which shard and which tensor to fetch again. */
#include "config.h"
#include "iftrain/hf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code copies it as host floats"
#endif

#define ST_MAX_HEADER 100000000u /* the reference crate's MAX_HEADER_SIZE */

static const struct {
  const char *name;
  size_t size;
} dtypes[HF_DTYPE_COUNT] = {
    [HF_BOOL] = {"BOOL", 1},       [HF_U8] = {"U8", 1},   [HF_I8] = {"I8", 1},
    [HF_F8_E5M2] = {"F8_E5M2", 1}, [HF_F8_E4M3] = {"F8_E4M3", 1},
    [HF_I16] = {"I16", 2},         [HF_U16] = {"U16", 2}, [HF_F16] = {"F16", 2},
    [HF_BF16] = {"BF16", 2},       [HF_I32] = {"I32", 4}, [HF_U32] = {"U32", 4},
    [HF_F32] = {"F32", 4},         [HF_F64] = {"F64", 8}, [HF_I64] = {"I64", 8},
    [HF_U64] = {"U64", 8},
};

const char *hf_dtype_name(hf_dtype d) {
  return (unsigned)d < HF_DTYPE_COUNT ? dtypes[d].name : NULL;
}
size_t hf_dtype_size(hf_dtype d) { return (unsigned)d < HF_DTYPE_COUNT ? dtypes[d].size : 0; }
int hf_dtype_parse(const char *s, hf_dtype *d) {
  for (int i = 0; i < HF_DTYPE_COUNT; i++)
    if (strcmp(s, dtypes[i].name) == 0) {
      *d = (hf_dtype)i;
      return 0;
    }
  return -1;
}

/* ---------------------------------------------------------------- conversions */

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

float hf_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t hf_f32_to_bf16(float x) {
  uint32_t u = f32_bits(x);
  /* A NaN whose payload sits in the low 16 bits would truncate to inf:
   * keep the upper half and set the quiet bit. */
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
  /* Round to nearest, ties to even: add 0x7fff plus the lowest kept bit.
   * The carry may reach the exponent: the largest floats round to inf, as
   * IEEE rounding says. */
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float hf_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | mant << 13); /* inf, NaN */
  if (exp == 0) {
    if (mant == 0) return bits_f32(sign); /* signed zero */
    /* Subnormal mant * 2^-24: normalise so the leading 1 becomes implicit. */
    uint32_t e = 127 - 15 + 1;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      e--;
    }
    return bits_f32(sign | e << 23 | (mant & 0x3ffu) << 13);
  }
  return bits_f32(sign | (exp + 127 - 15) << 23 | mant << 13);
}

/* ---------------------------------------------------------------- reader */

struct hf_st {
  char *path;
  const uint8_t *map; /* whole file */
  size_t size;
  const uint8_t *data; /* data buffer: map + 8 + header length */
  uint64_t data_size;
  json_t *root;       /* owns the tensor names */
  json_t *meta;       /* "__metadata__" object or NULL */
  size_t n;
  hf_st_tensor *t;    /* in offset order */
  int64_t *shapes;    /* every tensor's extents, back to back */
  const hf_st_tensor **by_name; /* t sorted by name (lookup) */
};

/* A header refusal: "PATH: tensor 'NAME': cause" (or "PATH: header: cause"). */
#define ST_BAD(path, tensor, hint, ...)                                        \
  st_fail(IFT_ERR_FORMAT, __FILE__, __LINE__, (path), (tensor), (hint), __VA_ARGS__)

static ift_status st_fail(ift_status s, const char *file, int line, const char *path,
                          const char *tensor, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static ift_status st_fail(ift_status s, const char *file, int line, const char *path,
                          const char *tensor, const char *hint, const char *fmt, ...) {
  char cause[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cause, sizeof cause, fmt, ap);
  va_end(ap);
  if (tensor)
    ift_error_set(s, file, line, "safetensors", hint, "%s: tensor '%s': %s", path, tensor, cause);
  else
    ift_error_set(s, file, line, "safetensors", hint, "%s: header: %s", path, cause);
  return s;
}

static const char HINT_DAMAGED[] =
    "the file is damaged or not a safetensors file: download or export it again";

static const char *json_kind(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* A JSON array of non-negative integers into out[] (count in *n). */
static int uint_array(const json_t *a, int64_t *out, size_t *n) {
  if (!json_is_array(a)) return -1;
  for (size_t i = 0; i < json_array_size(a); i++) {
    const json_t *v = json_array_get(a, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    if (out) out[i] = (int64_t)json_integer_value(v);
  }
  *n = json_array_size(a);
  return 0;
}

static ift_status parse_metadata(hf_st *f, const json_t *m) {
  if (json_is_null(m)) return IFT_OK;
  if (!json_is_object(m))
    return ST_BAD(f->path, NULL, HINT_DAMAGED, "\"__metadata__\" is %s, not an object",
                  json_kind(m));
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    if (!json_is_string(v))
      return ST_BAD(f->path, NULL, HINT_DAMAGED, "\"__metadata__\" value of \"%s\" is %s, not a string",
                    k, json_kind(v));
  }
  f->meta = (json_t *)m;
  return IFT_OK;
}

/* Fields of one entry; the shape extents go to SHAPE (room for json's count). */
static ift_status parse_entry(hf_st *f, const char *name, const json_t *e, hf_st_tensor *t,
                              int64_t *shape) {
  if (!json_is_object(e))
    return ST_BAD(f->path, name, HINT_DAMAGED, "entry is %s, not an object", json_kind(e));
  const json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
               *off = json_object_get(e, "data_offsets");
  if (!dt) return ST_BAD(f->path, name, HINT_DAMAGED, "missing \"dtype\"");
  if (!sh) return ST_BAD(f->path, name, HINT_DAMAGED, "missing \"shape\"");
  if (!off) return ST_BAD(f->path, name, HINT_DAMAGED, "missing \"data_offsets\"");
  if (!json_is_string(dt))
    return ST_BAD(f->path, name, HINT_DAMAGED, "\"dtype\" is %s, not a string", json_kind(dt));
  if (hf_dtype_parse(json_string_value(dt), &t->dtype) != 0)
    return ST_BAD(f->path, name, "the file uses a dtype this reader does not know",
                  "unknown dtype \"%s\"", json_string_value(dt));
  size_t nd;
  if (uint_array(sh, shape, &nd) != 0)
    return ST_BAD(f->path, name, HINT_DAMAGED, "\"shape\" is not an array of non-negative integers");
  int64_t o[2];
  size_t no;
  if (!json_is_array(off) || json_array_size(off) != 2 || uint_array(off, o, &no) != 0)
    return ST_BAD(f->path, name, HINT_DAMAGED,
                  "\"data_offsets\" is not an array of two non-negative integers [begin, end]");
  /* numel * size in unsigned 64 bits, refusing overflow like the crate. */
  uint64_t numel = 1;
  for (size_t i = 0; i < nd; i++) {
    uint64_t d = (uint64_t)shape[i];
    if (d && numel > UINT64_MAX / d)
      return ST_BAD(f->path, name, HINT_DAMAGED, "shape overflows 64 bits");
    numel *= d;
  }
  if (numel > (uint64_t)INT64_MAX / 8)
    return ST_BAD(f->path, name, HINT_DAMAGED, "shape overflows 64 bits");
  t->name = name;
  t->ndim = (int)nd;
  t->shape = shape;
  t->numel = (int64_t)numel;
  t->begin = (uint64_t)o[0];
  t->end = (uint64_t)o[1];
  return IFT_OK;
}

static int by_offsets(const void *a, const void *b) {
  const hf_st_tensor *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const hf_st_tensor *const *)a)->name, (*(const hf_st_tensor *const *)b)->name);
}

static void shape_str(const hf_st_tensor *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < t->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* The offsets must tile [0, data_size) in order, each tensor exactly its size. */
static ift_status check_layout(hf_st *f) {
  qsort(f->t, f->n, sizeof *f->t, by_offsets);
  uint64_t at = 0;
  for (size_t i = 0; i < f->n; i++) {
    const hf_st_tensor *t = &f->t[i];
    const char *prev = i ? f->t[i - 1].name : NULL;
    if (t->end < t->begin)
      return ST_BAD(f->path, t->name, HINT_DAMAGED, "data_offsets [%llu, %llu]: end before begin",
                    (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->begin < at)
      return ST_BAD(f->path, t->name, HINT_DAMAGED,
                    "data_offsets [%llu, %llu] overlap tensor '%s' (which ends at %llu)",
                    (unsigned long long)t->begin, (unsigned long long)t->end, prev,
                    (unsigned long long)at);
    if (t->begin > at)
      return ST_BAD(f->path, t->name, HINT_DAMAGED,
                    "data_offsets [%llu, %llu] leave a gap: bytes %llu..%llu %s belong to no tensor",
                    (unsigned long long)t->begin, (unsigned long long)t->end,
                    (unsigned long long)at, (unsigned long long)t->begin,
                    prev ? "after the previous tensor" : "at the start of the data");
    uint64_t want = (uint64_t)t->numel * hf_dtype_size(t->dtype);
    if (t->end - t->begin != want) {
      char s[160];
      shape_str(t, s, sizeof s);
      return ST_BAD(f->path, t->name, HINT_DAMAGED,
                    "data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu",
                    (unsigned long long)t->begin, (unsigned long long)t->end,
                    (unsigned long long)(t->end - t->begin), s, hf_dtype_name(t->dtype),
                    (unsigned long long)want);
    }
    at = t->end;
  }
  if (at > f->data_size)
    return ST_BAD(f->path, f->n ? f->t[f->n - 1].name : NULL,
                  "the file is truncated (an interrupted download or copy?): fetch it again",
                  "data ends at byte %llu but the file's data buffer has only %llu bytes "
                  "(file truncated?)",
                  (unsigned long long)at, (unsigned long long)f->data_size);
  if (at < f->data_size)
    return ST_BAD(f->path, NULL, HINT_DAMAGED,
                  "the tensors cover %llu bytes of the %llu-byte data buffer (bytes at the end "
                  "belong to no tensor)",
                  (unsigned long long)at, (unsigned long long)f->data_size);
  return IFT_OK;
}

static ift_status parse_header(hf_st *f) {
  if (f->size < 8)
    return ST_BAD(f->path, NULL, HINT_DAMAGED, "file is %zu bytes, shorter than the 8-byte header length",
                  f->size);
  uint64_t hlen = 0;
  memcpy(&hlen, f->map, 8);
  if (hlen > ST_MAX_HEADER)
    return ST_BAD(f->path, NULL, HINT_DAMAGED, "header length %llu is above the 100 MB limit",
                  (unsigned long long)hlen);
  if (hlen > f->size - 8)
    return ST_BAD(f->path, NULL, "the file is truncated or not a safetensors file",
                  "header length %llu goes beyond the end of the %zu-byte file",
                  (unsigned long long)hlen, f->size);
  f->data = f->map + 8 + hlen;
  f->data_size = f->size - 8 - hlen;

  json_error_t jerr;
  /* Duplicate names are refused (the crate's map cannot hold them); jansson
   * also checks UTF-8 and allows the trailing spaces of the padding. */
  f->root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!f->root)
    return ST_BAD(f->path, NULL, HINT_DAMAGED, "not valid JSON: %s (header byte %d)", jerr.text,
                  jerr.position);
  if (!json_is_object(f->root))
    return ST_BAD(f->path, NULL, HINT_DAMAGED, "JSON is %s, not an object", json_kind(f->root));

  size_t cap = json_object_size(f->root), nshape = 0;
  const char *k;
  json_t *v;
  json_object_foreach(f->root, k, v) {
    if (strcmp(k, "__metadata__") != 0 && json_is_object(v) &&
        json_is_array(json_object_get(v, "shape")))
      nshape += json_array_size(json_object_get(v, "shape"));
  }
  f->t = calloc(cap ? cap : 1, sizeof *f->t);
  f->shapes = calloc(nshape ? nshape : 1, sizeof *f->shapes);
  f->by_name = calloc(cap ? cap : 1, sizeof *f->by_name);
  IFT_REQUIRE(f->t && f->shapes && f->by_name, IFT_ERR_NOMEM, NULL, "%s: header of %zu entries",
              f->path, cap);
  nshape = 0;
  json_object_foreach(f->root, k, v) {
    if (strcmp(k, "__metadata__") == 0) {
      IFT_TRY(parse_metadata(f, v));
      continue;
    }
    IFT_TRY(parse_entry(f, k, v, &f->t[f->n], f->shapes + nshape));
    nshape += (size_t)f->t[f->n].ndim;
    f->n++;
  }
  IFT_TRY(check_layout(f));
  for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
  qsort(f->by_name, f->n, sizeof *f->by_name, by_name);
  return IFT_OK;
}

ift_status hf_st_open(hf_st **out, const char *path) {
  *out = NULL;
  hf_st *f = calloc(1, sizeof *f);
  IFT_REQUIRE(f && (f->path = strdup(path)), IFT_ERR_NOMEM, NULL, "opening %s", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    hf_st_close(f);
    IFT_REQUIRE(0, IFT_ERR_IO, "check the path of the model directory and its permissions",
                "%s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    hf_st_close(f);
    IFT_REQUIRE(0, IFT_ERR_IO, "give the path of a .safetensors file", "%s: not a regular file",
                path);
  }
  f->size = (size_t)st.st_size;
  if (f->size > 0) {
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      close(fd);
      hf_st_close(f);
      IFT_REQUIRE(0, IFT_ERR_IO, "is it a regular file?", "%s: mmap: %s", path, strerror(e));
    }
    f->map = m;
  }
  close(fd); /* the mapping stays valid */
  ift_status s = parse_header(f);
  if (s != IFT_OK) {
    hf_st_close(f);
    return s;
  }
  *out = f;
  return IFT_OK;
}

void hf_st_close(hf_st *f) {
  if (!f) return;
  if (f->map) munmap((void *)f->map, f->size);
  if (f->root) json_decref(f->root);
  free(f->t);
  free(f->shapes);
  free((void *)f->by_name);
  free(f->path);
  free(f);
}

const char *hf_st_path(const hf_st *f) { return f->path; }
size_t hf_st_count(const hf_st *f) { return f->n; }
const hf_st_tensor *hf_st_at(const hf_st *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

const hf_st_tensor *hf_st_find(const hf_st *f, const char *name) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, f->by_name[mid]->name);
    if (c == 0) return f->by_name[mid];
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

const char *hf_st_meta(const hf_st *f, const char *key) {
  return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

static void convert(hf_dtype d, const uint8_t *src, int64_t n, float *out) {
  if (d == HF_F32) {
    memcpy(out, src, (size_t)n * 4);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, src + 2 * i, 2); /* the data buffer need not be aligned */
    out[i] = d == HF_BF16 ? hf_bf16_to_f32(h) : hf_f16_to_f32(h);
  }
}

/* Drop the pages of bytes [lo, hi) of the data buffer from this process once
 * converted: the page cache keeps them, but an import's resident size stays
 * the fp32 copy instead of that plus the mapped file. */
static void release(const hf_st *f, uint64_t lo, uint64_t hi) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)(f->data + lo) & ~(page - 1), b = (uintptr_t)(f->data + hi);
  if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Released in steps of this many bytes, so that even one huge tensor (an
 * embedding of a large vocabulary) never has all its file pages resident. */
#define ST_RELEASE_STEP (16u << 20)

/* The tensor NAME, readable as fp32 and of rank 1 or 2 (or any rank when
 * any_rank), or an error naming file, tensor and cause. */
static ift_status readable(const hf_st *f, const char *name, int any_rank,
                           const hf_st_tensor **out) {
  const hf_st_tensor *t = hf_st_find(f, name);
  if (!t)
    return st_fail(IFT_ERR_FORMAT, __FILE__, __LINE__, f->path, name,
                   "the model directory lacks a weight the architecture needs", "no such tensor");
  if (t->dtype != HF_F32 && t->dtype != HF_BF16 && t->dtype != HF_F16)
    return st_fail(IFT_ERR_FORMAT, __FILE__, __LINE__, f->path, name,
                   "only F32, BF16 and F16 weights can be imported (convert the model first)",
                   "dtype %s cannot be read as fp32", hf_dtype_name(t->dtype));
  if (!any_rank && (t->ndim < 1 || t->ndim > 2)) {
    char s[160];
    shape_str(t, s, sizeof s);
    return st_fail(IFT_ERR_FORMAT, __FILE__, __LINE__, f->path, name,
                   "a weight of this shape does not belong to a Llama-family model",
                   "shape %s is not a vector or a matrix", s);
  }
  *out = t;
  return IFT_OK;
}

ift_status hf_st_read_block(const hf_st *f, const char *name, int64_t r0, int64_t nr,
                            int64_t c0, int64_t nc, float *out, int64_t ldo) {
  const hf_st_tensor *t;
  IFT_TRY(readable(f, name, 0, &t));
  int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->shape[t->ndim - 1];
  if (r0 < 0 || nr < 0 || r0 > rows - nr || c0 < 0 || nc < 0 || c0 > cols - nc || ldo < nc)
    return st_fail(IFT_ERR_ARG, __FILE__, __LINE__, f->path, name,
                   "a shard of the model does not match the file's tensor (wrong config?)",
                   "block rows %lld+%lld, cols %lld+%lld (ld %lld) is outside the %lld x %lld "
                   "tensor",
                   (long long)r0, (long long)nr, (long long)c0, (long long)nc, (long long)ldo,
                   (long long)rows, (long long)cols);
  if (nr == 0 || nc == 0) return IFT_OK;
  size_t es = hf_dtype_size(t->dtype);
  uint64_t kept = t->begin + (uint64_t)r0 * (uint64_t)cols * es; /* first byte not released */
  for (int64_t i = 0; i < nr; i++) {
    uint64_t row = t->begin + ((uint64_t)(r0 + i) * (uint64_t)cols + (uint64_t)c0) * es;
    convert(t->dtype, f->data + row, nc, out + i * ldo);
    uint64_t end = row + (uint64_t)nc * es;
    if (end - kept >= ST_RELEASE_STEP || i == nr - 1) {
      release(f, kept, end);
      kept = end;
    }
  }
  return IFT_OK;
}

ift_status hf_st_read_all(const hf_st *f, const char *name, float *out) {
  const hf_st_tensor *t;
  IFT_TRY(readable(f, name, 1, &t));
  size_t es = hf_dtype_size(t->dtype);
  int64_t step = ST_RELEASE_STEP / es;
  for (int64_t i = 0; i < t->numel; i += step) {
    int64_t k = t->numel - i < step ? t->numel - i : step;
    convert(t->dtype, f->data + t->begin + (uint64_t)i * es, k, out + i);
    release(f, t->begin + (uint64_t)i * es, t->begin + (uint64_t)(i + k) * es);
  }
  return IFT_OK;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
  const hf_st_wtensor *t;
  uint64_t numel;
} wentry;

/* The crate's order: descending dtype (its enum is in increasing alignment,
 * so the most aligned data comes first and stays aligned), then name. */
static int write_order(const void *a, const void *b) {
  const hf_st_wtensor *x = ((const wentry *)a)->t, *y = ((const wentry *)b)->t;
  if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
  return strcmp(x->name, y->name);
}

static ift_status check_wtensors(const char *path, const hf_st_wtensor *t, size_t n, wentry *w) {
  for (size_t i = 0; i < n; i++) {
    const char *nm = t[i].name ? t[i].name : "(null)";
    IFT_REQUIRE(t[i].name && strcmp(t[i].name, "__metadata__") != 0, IFT_ERR_ARG, NULL,
                "%s: tensor '%s': not a usable tensor name", path, nm);
    IFT_REQUIRE(t[i].dtype == HF_F32 || t[i].dtype == HF_BF16, IFT_ERR_ARG,
                "the writer stores F32 or BF16", "%s: tensor '%s': dtype %s", path, nm,
                hf_dtype_name(t[i].dtype) ? hf_dtype_name(t[i].dtype) : "invalid");
    IFT_REQUIRE(t[i].ndim >= 0 && (t[i].ndim == 0 || t[i].shape), IFT_ERR_ARG, NULL,
                "%s: tensor '%s': ndim %d", path, nm, t[i].ndim);
    uint64_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) {
      IFT_REQUIRE(t[i].shape[d] >= 0 && (t[i].shape[d] == 0 ||
                                         numel <= (uint64_t)INT64_MAX / 8 / (uint64_t)t[i].shape[d]),
                  IFT_ERR_ARG, NULL, "%s: tensor '%s': extent %lld of dimension %d", path, nm,
                  (long long)t[i].shape[d], d);
      numel *= (uint64_t)t[i].shape[d];
    }
    IFT_REQUIRE(numel == 0 || t[i].data, IFT_ERR_ARG, NULL, "%s: tensor '%s': no data", path, nm);
    w[i].t = &t[i];
    w[i].numel = numel;
  }
  qsort(w, n, sizeof *w, write_order);
  return IFT_OK;
}

/* One entry {"dtype", "shape", "data_offsets"} (keys in the crate's order). */
static json_t *entry_json(const hf_st_wtensor *t, uint64_t begin, uint64_t end) {
  json_t *sh = json_array();
  for (int d = 0; sh && d < t->ndim; d++)
    if (json_array_append_new(sh, json_integer(t->shape[d])) != 0) {
      json_decref(sh);
      return NULL;
    }
  if (!sh) return NULL;
  return json_pack("{s:s, s:o, s:[I,I]}", "dtype", hf_dtype_name(t->dtype), "shape", sh,
                   "data_offsets", (json_int_t)begin, (json_int_t)end);
}

/* Compact JSON, padded with spaces to a multiple of 8 (data stays aligned). */
static ift_status build_header(const char *path, const wentry *w, size_t n, const hf_kv *meta,
                               size_t nmeta, char **out, size_t *len) {
  json_t *root = json_object(), *m = nmeta ? json_object() : NULL;
  IFT_REQUIRE(root && (m || !nmeta) && (!m || json_object_set_new(root, "__metadata__", m) == 0),
              IFT_ERR_NOMEM, NULL, "%s: header", path);
  const char *bad = NULL, *what = NULL;
  for (size_t i = 0; i < nmeta && !bad; i++)
    if (!meta[i].key || !meta[i].value || json_object_get(m, meta[i].key) ||
        json_object_set_new(m, meta[i].key, json_string(meta[i].value)) != 0)
      bad = meta[i].key ? meta[i].key : "(null)", what = "metadata key";
  uint64_t at = 0;
  for (size_t i = 0; i < n && !bad; i++) {
    uint64_t nb = w[i].numel * hf_dtype_size(w[i].t->dtype);
    if (json_object_get(root, w[i].t->name) ||
        json_object_set_new(root, w[i].t->name, entry_json(w[i].t, at, at + nb)) != 0)
      bad = w[i].t->name, what = "tensor";
    at += nb;
  }
  char *s = bad ? NULL : json_dumps(root, JSON_COMPACT);
  json_decref(root);
  IFT_REQUIRE(!bad, IFT_ERR_ARG, "names must be distinct UTF-8 strings", "%s: %s '%s' given twice or not valid UTF-8",
              path, what, bad);
  IFT_REQUIRE(s, IFT_ERR_NOMEM, NULL, "%s: header", path);
  size_t l = strlen(s), pad = (8 - l % 8) % 8;
  char *p = realloc(s, l + pad + 1);
  if (!p) free(s);
  IFT_REQUIRE(p, IFT_ERR_NOMEM, NULL, "%s: header of %zu bytes", path, l);
  memset(p + l, ' ', pad);
  p[l + pad] = 0;
  *out = p;
  *len = l + pad;
  return IFT_OK;
}

/* fwrite that fails (errno set) on a short write or an injected fault. */
static int put(FILE *fp, const void *p, size_t n) {
  if (core_fault("hf_st_write")) {
    errno = ENOSPC;
    return -1;
  }
  return fwrite(p, 1, n, fp) == n ? 0 : -1;
}

static int put_tensor(FILE *fp, const wentry *w) {
  const float *x = w->t->data;
  if (w->t->dtype == HF_F32) return w->numel ? put(fp, x, (size_t)w->numel * 4) : 0;
  enum { CHUNK = 8192 };
  uint16_t buf[CHUNK];
  for (uint64_t i = 0; i < w->numel; i += CHUNK) {
    size_t k = w->numel - i < CHUNK ? (size_t)(w->numel - i) : CHUNK;
    for (size_t j = 0; j < k; j++) buf[j] = hf_f32_to_bf16(x[i + j]);
    if (put(fp, buf, 2 * k) != 0) return -1;
  }
  return 0;
}

static ift_status write_file(const char *tmp, const char *hdr, size_t hlen, const wentry *w,
                             size_t n) {
  FILE *fp = fopen(tmp, "wb");
  IFT_REQUIRE(fp, IFT_ERR_IO, "check that the output directory exists and is writable",
              "%s: %s", tmp, strerror(errno));
  uint64_t le = hlen; /* little-endian host (checked above) */
  int r = put(fp, &le, 8) || put(fp, hdr, hlen);
  for (size_t i = 0; i < n && !r; i++) r = put_tensor(fp, &w[i]);
  if (!r) r = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
  int e = errno;
  if (fclose(fp) != 0 && !r) {
    r = 1;
    e = errno;
  }
  IFT_REQUIRE(!r, IFT_ERR_WRITE, "free disk space (or quota) for the exported model and retry",
              "writing %s: %s", tmp, strerror(e));
  return IFT_OK;
}

ift_status hf_st_write(const char *path, const hf_st_wtensor *t, size_t n, const hf_kv *meta,
                       size_t nmeta) {
  wentry *w = calloc(n ? n : 1, sizeof *w);
  char *tmp = malloc(strlen(path) + 5), *hdr = NULL;
  size_t hlen = 0;
  ift_status s = IFT_OK;
  IFT_REQUIRE_GOTO(s, done, w && tmp, IFT_ERR_NOMEM, NULL, "%s: writer tables", path);
  sprintf(tmp, "%s.tmp", path);
  IFT_TRY_GOTO(s, done, check_wtensors(path, t, n, w));
  IFT_TRY_GOTO(s, done, build_header(path, w, n, meta, nmeta, &hdr, &hlen));
  if ((s = write_file(tmp, hdr, hlen, w, n)) != IFT_OK) {
    unlink(tmp); /* the partial file */
    goto done;
  }
  if (rename(tmp, path) != 0) {
    const int e = errno;
    unlink(tmp);
    IFT_FAIL_GOTO(s, done, IFT_ERR_WRITE, "check the output directory", "renaming %s to %s: %s", tmp, path,
                  strerror(e));
  }
done:
  free(w);
  free(tmp);
  free(hdr);
  return s;
}
