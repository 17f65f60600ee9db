#include "config.h"
#include "iftrain/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

static int g_rank = 0, g_size = 1;
static ift_loglevel g_level = IFT_LOG_INFO;
static int g_quiet = 0;
static char g_last[1024];
static ift_status g_last_status = IFT_OK;

const char *ift_status_str(ift_status s) {
  switch (s) {
  case IFT_OK: return "ok";
  case IFT_ERR_ARG: return "bad argument";
  case IFT_ERR_CONFIG: return "configuration error";
  case IFT_ERR_NOMEM: return "out of memory";
  case IFT_ERR_IO: return "I/O error";
  case IFT_ERR_FORMAT: return "bad file format";
  case IFT_ERR_MPI: return "MPI error";
  case IFT_ERR_HDF5: return "HDF5 error";
  case IFT_ERR_NUMERIC: return "numerical error";
  case IFT_ERR_LAYOUT: return "impossible rank layout";
  case IFT_ERR_UNIMPL: return "not implemented";
  case IFT_ERR_INTERNAL: return "internal error";
  case IFT_ERR_WRITE: return "write failed";
  }
  return "unknown status";
}

void core_set_rank(int rank, int size) {
  g_rank = rank;
  g_size = size;
}
int core_rank(void) { return g_rank; }
void core_set_loglevel(ift_loglevel l) { g_level = l; }
ift_loglevel core_loglevel(void) { return g_level; }
void ift_error_quiet(int quiet) { g_quiet = quiet; }
const char *ift_error_last(void) { return g_last; }
ift_status ift_error_last_status(void) { return g_last_status; }

void ift_error_quiet_set(ift_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_last, sizeof g_last, fmt, ap);
  va_end(ap);
  g_last_status = s;
}

void ift_error_set(ift_status s, const char *file, int line, const char *what,
                   const char *hint, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(g_last, sizeof g_last, "%s", msg);
  g_last_status = s;
  if (g_quiet) return;
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  fprintf(stderr, "iftrain: error [rank %d/%d] %s: %s\n  at %s:%d (%s)\n", g_rank,
          g_size, ift_status_str(s), msg, base, line, what);
  if (hint && *hint) fprintf(stderr, "  hint: %s\n", hint);
  fflush(stderr);
}

void ift_log(int all_ranks, ift_loglevel l, const char *fmt, ...) {
  if (l > g_level) return;
  if (!all_ranks && g_rank != 0) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (all_ranks && g_size > 1)
    fprintf(stderr, "[rank %d] %s\n", g_rank, msg);
  else
    fprintf(stderr, "%s\n", msg);
}

/* A 64-byte header before each block records how it was allocated.  Large
 * blocks come straight from mmap: zero pages the kernel backs only when
 * touched, so a buffer that is never written (the gradients of a model that
 * only runs forward: import, eval, export) costs no memory. */
enum { CORE_HDR = 64, CORE_MMAP_MIN = 1 << 20 };
typedef struct {
  size_t total; /* bytes mapped or allocated, header included */
  int mapped;
} core_hdr;

void *core_alloc(size_t bytes) {
  if (bytes == 0) bytes = 64;
  const size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded > SIZE_MAX - CORE_HDR) return NULL;
  const size_t total = rounded + CORE_HDR;
  unsigned char *p;
  if (total >= CORE_MMAP_MIN) {
    p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL; /* mmap's pages are zero */
  } else {
    p = aligned_alloc(64, total);
    if (!p) return NULL;
    memset(p, 0, total);
  }
  core_hdr *h = (core_hdr *)p;
  h->total = total;
  h->mapped = total >= CORE_MMAP_MIN;
  return p + CORE_HDR;
}
void core_free(void *q) {
  if (!q) return;
  unsigned char *p = (unsigned char *)q - CORE_HDR;
  const core_hdr *h = (const core_hdr *)p;
  if (h->mapped) munmap(p, h->total);
  else free(p);
}

double core_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Philox4x32-10 (Salmon et al., SC'11): 10 rounds of a multiply-xor bijection,
 * key schedule by the Weyl constants. */
philox_out philox4x32(uint64_t counter_hi, uint64_t counter_lo, uint64_t key) {
  uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
  uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  philox_out o = {{c0, c1, c2, c3}};
  return o;
}

double rng_uniform(uint64_t key, uint64_t stream, uint64_t index) {
  philox_out o = philox4x32(stream, index, key);
  uint64_t bits = ((uint64_t)o.v[0] << 21) ^ ((uint64_t)o.v[1] >> 11); /* 53 bits */
  bits &= (1ULL << 53) - 1;
  return ((double)bits + 0.5) / 9007199254740992.0;
}

double rng_normal(uint64_t key, uint64_t stream, uint64_t index) {
  /* Box-Muller on two independent uniforms of the same counter. */
  philox_out o = philox4x32(stream, index, key);
  uint64_t a = (((uint64_t)o.v[0] << 32) | o.v[1]) >> 11;
  uint64_t b = (((uint64_t)o.v[2] << 32) | o.v[3]) >> 11;
  double u1 = ((double)a + 0.5) / 9007199254740992.0;
  double u2 = ((double)b + 0.5) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

int core_fault(const char *name) {
  const char *env = getenv("IFT_FAULT");
  if (!env || !*env) return 0;
  const size_t n = strlen(name);
  for (const char *p = env; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
    if (strncmp(p, name, n)) continue;
    if (p[n] == 0 || p[n] == ',') return 1;
    if (p[n] == '@' && atoi(p + n + 1) == g_rank) return 1;
  }
  return 0;
}

uint64_t core_fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

int core_mkdir_p(const char *dir) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0775) && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0775) && errno != EEXIST ? -1 : 0;
}

/* ---------------------------------------------------------------- SHA-256 */

struct core_sha256 {
  EVP_MD_CTX *ctx;
  int bad; /* an update failed: end gives "" */
};

ift_status core_sha256_begin(core_sha256 **h) {
  core_sha256 *s = calloc(1, sizeof *s);
  if (s) s->ctx = EVP_MD_CTX_new();
  if (!s || !s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
    if (s) EVP_MD_CTX_free(s->ctx);
    free(s);
    *h = NULL;
    IFT_REQUIRE(0, IFT_ERR_NOMEM, NULL, "cannot start a SHA-256 digest");
  }
  *h = s;
  return IFT_OK;
}

void core_sha256_update(core_sha256 *h, const void *data, size_t n) {
  if (h && n && EVP_DigestUpdate(h->ctx, data, n) != 1) h->bad = 1;
}

void core_sha256_end(core_sha256 *h, char out[65]) {
  unsigned char md[32];
  unsigned int len = 0;
  out[0] = 0;
  if (!h) return;
  if (!h->bad && EVP_DigestFinal_ex(h->ctx, md, &len) == 1 && len == 32)
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  EVP_MD_CTX_free(h->ctx);
  free(h);
}

ift_status core_sha256_hex(const void *data, size_t n, char out[65]) {
  core_sha256 *h;
  out[0] = 0;
  IFT_TRY(core_sha256_begin(&h));
  core_sha256_update(h, data, n);
  core_sha256_end(h, out);
  return out[0] ? IFT_OK : IFT_ERR_INTERNAL;
}

ift_status core_sha256_file(const char *path, char out[65]) {
  out[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  IFT_REQUIRE(fd >= 0, IFT_ERR_IO, "check that the file exists and is readable",
              "cannot open '%s': %s", path, strerror(errno));
  core_sha256 *h;
  ift_status st = core_sha256_begin(&h);
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = st == IFT_OK ? malloc(CHUNK) : NULL;
  if (st == IFT_OK && !buf) {
    ift_error_set(IFT_ERR_NOMEM, __FILE__, __LINE__, "malloc", NULL, "hash buffer");
    st = IFT_ERR_NOMEM;
  }
  while (st == IFT_OK) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ift_error_set(IFT_ERR_IO, __FILE__, __LINE__, "read", "check the file and the disk",
                    "reading '%s': %s", path, strerror(errno));
      st = IFT_ERR_IO;
    }
    if (n <= 0) break;
    core_sha256_update(h, buf, (size_t)n);
  }
  free(buf);
  close(fd);
  char hex[65];
  core_sha256_end(h, hex);
  if (st == IFT_OK) {
    IFT_REQUIRE(hex[0], IFT_ERR_INTERNAL, "report this as a bug", "SHA-256 of '%s' failed", path);
    memcpy(out, hex, 65);
  }
  return st;
}
