/* tok/bpe — the BPE model of tokenizer.json: a pre-token's characters
 * become ids (or <0xNN> byte ids, or unk), then the pair of lowest merge
 * rank is merged, leftmost first among equal ranks, until no pair of the
 * merge table is left (the library's Word::merge_all with a priority queue
 * of (rank, position)). */
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

typedef struct {
  int c, prev, next, alive, len; /* len: bytes of the word the symbol covers */
} sym;

typedef struct {
  int rank, pos, id;
} cand;

/* min-heap on (rank, pos) */
static void heap_push(cand *h, int *n, cand x) {
  int i = (*n)++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (h[p].rank < x.rank || (h[p].rank == x.rank && h[p].pos <= x.pos)) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}
static cand heap_pop(cand *h, int *n) {
  cand top = h[0], x = h[--(*n)];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    cand best = x;
    if (l < *n && (h[l].rank < best.rank || (h[l].rank == best.rank && h[l].pos < best.pos))) {
      m = l;
      best = h[l];
    }
    if (r < *n && (h[r].rank < best.rank || (h[r].rank == best.rank && h[r].pos < best.pos))) {
      m = r;
      best = h[r];
    }
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  h[i] = x;
  return top;
}

/* The symbols of a word before merging (model.rs merge_word). */
static int initial_symbols(const tok_bpe *m, const char *s, size_t n, sym *out, int *ns) {
  int k = 0, unk = -1, unk_len = 0;
  size_t i = 0;
  while (i < n) {
    int32_t cp;
    int l = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (l < 0) l = 1; /* the pipeline passes valid UTF-8 only */
    int id;
    if (smap_get(&m->vocab, s + i, (size_t)l, &id)) {
      if (unk >= 0) {
        out[k++] = (sym){unk, 0, 0, 1, unk_len};
        unk = -1;
        unk_len = 0;
      }
      out[k++] = (sym){id, 0, 0, 1, l};
    } else {
      int ok = m->byte_fallback;
      for (int b = 0; ok && b < l; b++) ok = m->byte_id[(unsigned char)s[i + b]] >= 0;
      if (ok) {
        for (int b = 0; b < l; b++) out[k++] = (sym){m->byte_id[(unsigned char)s[i + b]], 0, 0, 1, 1};
      } else if (m->unk >= 0) {
        if (unk >= 0 && !m->fuse_unk) {
          out[k++] = (sym){unk, 0, 0, 1, unk_len};
          unk_len = 0;
        }
        unk = m->unk;
        unk_len += l; /* fused: the run of unknown characters */
      }
    }
    i += (size_t)l;
  }
  if (unk >= 0) out[k++] = (sym){unk, 0, 0, 1, unk_len};
  for (int j = 0; j < k; j++) {
    out[j].prev = j - 1;
    out[j].next = j + 1 < k ? j + 1 : -1;
  }
  *ns = k;
  return 0;
}

static int merge_word(const tok_bpe *m, const char *s, size_t n, tok_ids *out, tok_ids *lens) {
  sym *w = malloc(sizeof(sym) * (n + 1)); /* at most one symbol per byte */
  cand *h = malloc(sizeof(cand) * (3 * n + 3)); /* pairs at start + two per merge */
  if (!w || !h) {
    free(w);
    free(h);
    return -1;
  }
  int ns = 0, nh = 0;
  initial_symbols(m, s, n, w, &ns);
  for (int i = 0; i + 1 < ns; i++) {
    int r, id;
    if (pmap_get(&m->merges, w[i].c, w[i + 1].c, &r, &id)) heap_push(h, &nh, (cand){r, i, id});
  }
  while (nh) {
    cand t = heap_pop(h, &nh);
    sym *a = &w[t.pos];
    if (!a->alive || a->next < 0) continue;
    sym *b = &w[a->next];
    int r, id;
    /* an entry made stale by an earlier merge */
    if (!pmap_get(&m->merges, a->c, b->c, &r, &id) || id != t.id) continue;
    a->c = t.id;
    a->len += b->len;
    b->alive = 0;
    a->next = b->next;
    if (b->next >= 0) w[b->next].prev = t.pos;
    if (a->prev >= 0 && pmap_get(&m->merges, w[a->prev].c, a->c, &r, &id))
      heap_push(h, &nh, (cand){r, a->prev, id});
    if (a->next >= 0 && pmap_get(&m->merges, a->c, w[a->next].c, &r, &id))
      heap_push(h, &nh, (cand){r, t.pos, id});
  }
  int rc = 0;
  for (int i = 0; i < ns && !rc; i++)
    if (w[i].alive) rc = tok_ids_push(out, w[i].c) || (lens && tok_ids_push(lens, w[i].len));
  free(w);
  free(h);
  return rc;
}

enum { CACHE_MAX_ENTRIES = 1 << 17, CACHE_MAX_LEN = 256 };

/* The cache holds runs [k, id_1 .. id_k, len_1 .. len_k] (the bytes each id
 * covers, for offsets). */
int tok_bpe_encode(tok_bpe *m, const char *s, size_t n, tok_ids *out, tok_ids *lens) {
  if (!n) return 0;
  int id;
  if (m->ignore_merges && smap_get(&m->vocab, s, n, &id))
    return tok_ids_push(out, id) || (lens && tok_ids_push(lens, (int)n)) ? -1 : 0;
  int at;
  if (smap_get(&m->cache, s, n, &at)) {
    const int k = m->cache_ids[at];
    for (int i = 0; i < k; i++)
      if (tok_ids_push(out, m->cache_ids[at + 1 + i]) || (lens && tok_ids_push(lens, m->cache_ids[at + 1 + k + i])))
        return -1;
    return 0;
  }
  const size_t before = out->n;
  tok_ids own = {0}; /* the lengths, for the cache, when the caller wants none */
  tok_ids *ls = lens ? lens : &own;
  const size_t lbefore = ls->n;
  if (merge_word(m, s, n, out, ls)) {
    tok_ids_free(&own);
    return -1;
  }
  const size_t k = out->n - before;
  if (n < CACHE_MAX_LEN && m->cache.n < CACHE_MAX_ENTRIES) {
    if (m->cache_n + 2 * k + 1 > m->cache_cap) {
      size_t c = m->cache_cap ? m->cache_cap * 2 : 1 << 16;
      while (c < m->cache_n + 2 * k + 1) c *= 2;
      int *q = realloc(m->cache_ids, c * sizeof *q);
      if (!q) {
        tok_ids_free(&own);
        return 0; /* no cache: still correct */
      }
      m->cache_ids = q;
      m->cache_cap = c;
    }
    if (smap_put(&m->cache, s, n, (int)m->cache_n) == 0) {
      m->cache_ids[m->cache_n] = (int)k;
      if (k) { /* k = 0: out->ids may be NULL */
        memcpy(m->cache_ids + m->cache_n + 1, out->ids + before, k * sizeof(int));
        memcpy(m->cache_ids + m->cache_n + 1 + k, ls->ids + lbefore, k * sizeof(int));
      }
      m->cache_n += 2 * k + 1;
    }
  }
  tok_ids_free(&own);
  return 0;
}
void tok_bpe_free(tok_bpe *m) {
  smap_free(&m->vocab);
  if (m->vocab_r)
    for (int i = 0; i < m->nvocab; i++) free(m->vocab_r[i]);
  free(m->vocab_r);
  pmap_free(&m->merges);
  smap_free(&m->cache);
  free(m->cache_ids);
  memset(m, 0, sizeof *m);
}
