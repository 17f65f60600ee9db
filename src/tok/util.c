/* tok/util — buffers, hash maps and UTF-8 helpers of the tokenizer. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"

/* ------------------------------------------------------------ buffers */

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

int tbuf_put(tbuf *b, const void *p, size_t n) {
  if (grow((void **)&b->s, &b->cap, b->n + n + 1, 1)) return -1;
  if (n) memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = 0;
  return 0;
}
void tbuf_free(tbuf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

int tspans_put(tspans *b, const tspan *p, const tspan *one, size_t n) {
  if (grow((void **)&b->v, &b->cap, b->n + n + 1, sizeof *b->v)) return -1;
  for (size_t i = 0; i < n; i++) b->v[b->n + i] = p ? p[i] : *one;
  b->n += n;
  return 0;
}
void tspans_free(tspans *b) {
  free(b->v);
  memset(b, 0, sizeof *b);
}

int tpieces_add(tpieces *l, const char *s, size_t n, int first, const tspan *org) {
  if (!n) return 0; /* the library drops empty pieces */
  if (grow((void **)&l->p, &l->cap, l->n + 1, sizeof *l->p)) return -1;
  const size_t off = l->text.n;
  if (tbuf_put(&l->text, s, n)) return -1;
  if (org && tspans_put(&l->org, org, NULL, n)) return -1;
  l->p[l->n++] = (tpiece){off, n, first};
  return 0;
}
void tpieces_free(tpieces *l) {
  tbuf_free(&l->text);
  tspans_free(&l->org);
  free(l->p);
  memset(l, 0, sizeof *l);
}

int tok_ids_push(tok_ids *v, int id) {
  if (grow((void **)&v->ids, &v->cap, v->n + 1, sizeof *v->ids)) return -1;
  v->ids[v->n++] = id;
  return 0;
}
void tok_ids_free(tok_ids *v) {
  free(v->ids);
  memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------ hash maps */

static uint64_t hash_bytes(const char *k, size_t n) {
  return core_fnv1a(CORE_FNV_INIT, k, n);
}

static int smap_grow(smap *m) {
  smap g = {0};
  g.cap = m->cap ? m->cap * 2 : 1024;
  g.keys = calloc(g.cap, sizeof *g.keys);
  g.lens = calloc(g.cap, sizeof *g.lens);
  g.vals = calloc(g.cap, sizeof *g.vals);
  if (!g.keys || !g.lens || !g.vals) {
    free(g.keys);
    free(g.lens);
    free(g.vals);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = hash_bytes(m->keys[i], m->lens[i]) & (g.cap - 1);
    while (g.keys[j]) j = (j + 1) & (g.cap - 1);
    g.keys[j] = m->keys[i];
    g.lens[j] = m->lens[i];
    g.vals[j] = m->vals[i];
  }
  g.n = m->n;
  free(m->keys);
  free(m->lens);
  free(m->vals);
  *m = g;
  return 0;
}

int smap_put(smap *m, const char *k, size_t n, int v) {
  if ((m->n + 1) * 2 > m->cap && smap_grow(m)) return -1;
  size_t j = hash_bytes(k, n) & (m->cap - 1);
  while (m->keys[j]) {
    if (m->lens[j] == n && !memcmp(m->keys[j], k, n)) {
      m->vals[j] = v;
      return 0;
    }
    j = (j + 1) & (m->cap - 1);
  }
  char *c = malloc(n + 1);
  if (!c) return -1;
  memcpy(c, k, n);
  c[n] = 0;
  m->keys[j] = c;
  m->lens[j] = (uint32_t)n;
  m->vals[j] = v;
  m->n++;
  return 0;
}

int smap_get(const smap *m, const char *k, size_t n, int *v) {
  if (!m->cap) return 0;
  size_t j = hash_bytes(k, n) & (m->cap - 1);
  while (m->keys[j]) {
    if (m->lens[j] == n && !memcmp(m->keys[j], k, n)) {
      *v = m->vals[j];
      return 1;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return 0;
}

void smap_free(smap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
  free(m->keys);
  free(m->lens);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static int pmap_grow(pmap *m) {
  pmap g = {0};
  g.cap = m->cap ? m->cap * 2 : 1024;
  g.keys = calloc(g.cap, sizeof *g.keys);
  g.rank = malloc(g.cap * sizeof *g.rank);
  g.id = malloc(g.cap * sizeof *g.id);
  if (!g.keys || !g.rank || !g.id) {
    free(g.keys);
    free(g.rank);
    free(g.id);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = mix64(m->keys[i]) & (g.cap - 1);
    while (g.keys[j]) j = (j + 1) & (g.cap - 1);
    g.keys[j] = m->keys[i];
    g.rank[j] = m->rank[i];
    g.id[j] = m->id[i];
  }
  g.n = m->n;
  pmap_free(m);
  *m = g;
  return 0;
}

int pmap_put(pmap *m, int a, int b, int rank, int id) {
  if ((m->n + 1) * 2 > m->cap && pmap_grow(m)) return -1;
  const uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  size_t j = mix64(k) & (m->cap - 1);
  while (m->keys[j] && m->keys[j] != k) j = (j + 1) & (m->cap - 1);
  if (m->keys[j]) return 0; /* the first occurrence of a merge keeps its rank */
  m->keys[j] = k;
  m->rank[j] = rank;
  m->id[j] = id;
  m->n++;
  return 0;
}

int pmap_get(const pmap *m, int a, int b, int *rank, int *id) {
  if (!m->cap) return 0;
  const uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  size_t j = mix64(k) & (m->cap - 1);
  while (m->keys[j]) {
    if (m->keys[j] == k) {
      *rank = m->rank[j];
      *id = m->id[j];
      return 1;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return 0;
}

void pmap_free(pmap *m) {
  free(m->keys);
  free(m->rank);
  free(m->id);
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ UTF-8 */

int tok_utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
  utf8proc_int32_t c;
  utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)(n > 4 ? 4 : n), &c);
  if (k <= 0) return -1;
  *cp = c;
  return (int)k;
}

int tok_utf8_put(int32_t cp, char *out) {
  return (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

int tok_is_space(int32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

int tok_is_word(int32_t c) {
  switch (utf8proc_category(c)) {
  case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
    return 1;
  default:
    return c == 0x200C || c == 0x200D; /* joiners */
  }
}

int tok_is_numeric(int32_t c) {
  const utf8proc_category_t k = utf8proc_category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}
