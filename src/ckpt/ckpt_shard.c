/* ckpt/ckpt_shard — a tensor's shard within the global tensor: the HDF5
 * hyperslab every rank reads or writes, and the order-independent
 * checksums whose per-shard terms add up to the whole tensor's. */
#include "config.h"
#include <hdf5.h>
#include <stdint.h>

#include "ckpt_int.h"

void ckpt_shard_select(const model_tensor *t, ckpt_shard_sel *s) {
  s->rank = t->cols == 1 ? 1 : 2;
  s->gdims[0] = (hsize_t)t->rows;
  s->gdims[1] = (hsize_t)t->cols;
  s->start[0] = (hsize_t)t->row0;
  s->start[1] = (hsize_t)t->col0;
  s->blk[0] = (hsize_t)t->rblk;
  s->blk[1] = (hsize_t)t->cblk;
  s->count[0] = (hsize_t)(t->lrows / t->rblk);
  s->count[1] = (hsize_t)(t->lcols / t->cblk);
  s->stride[0] = (hsize_t)(t->rstep > t->rblk ? t->rstep : t->rblk);
  s->stride[1] = (hsize_t)(t->cstep > t->cblk ? t->cstep : t->cblk);
  s->ldims[0] = (hsize_t)t->lrows;
  s->ldims[1] = (hsize_t)t->lcols;
}

herr_t ckpt_shard_hyperslab(hid_t fs, const ckpt_shard_sel *s) {
  return H5Sselect_hyperslab(fs, H5S_SELECT_SET, s->start, s->stride, s->count, s->blk);
}

/* Order-independent checksum of a tensor: sum over elements of a mix of
 * (global index, bit pattern), mod 2^64, so the shards' partial sums add up
 * to the whole tensor's value whatever the layout. */
uint64_t ckpt_checksum_part(const float *x, int rows, int cols, int row0, int col0, int gcols) {
  /* one multiply-xorshift per element keeps this far below the I/O time
   * (the loop vectorises); it detects any changed, moved or missing value
   * with overwhelming probability, which is what a damage check needs */
  uint64_t s = 0;
  for (int r = 0; r < rows; r++) {
    const uint32_t *b = (const uint32_t *)(const void *)(x + (size_t)r * cols);
    const uint64_t g0 = (uint64_t)(row0 + r) * (uint64_t)gcols + (uint64_t)col0;
    for (int c = 0; c < cols; c++) {
      uint64_t v = ((g0 + (uint64_t)c) * 0x9E3779B97F4A7C15ULL) ^ b[c];
      v *= 0xBF58476D1CE4E5B9ULL;
      s += v ^ (v >> 29);
    }
  }
  return s;
}

/* The checksum terms of one shard (any layout), block row by block row. */
uint64_t ckpt_checksum_shard(const model_tensor *t, const float *x) {
  if (t->rstep == 0 && t->cstep == 0)
    return ckpt_checksum_part(x, t->lrows, t->lcols, t->row0, t->col0, t->cols);
  uint64_t s = 0;
  for (int r = 0; r < t->lrows; r++)
    for (int c = 0; c < t->lcols; c += t->cblk)
      s += ckpt_checksum_part(x + (size_t)r * t->lcols + c, 1, t->cblk, model_tensor_grow(t, r),
                              model_tensor_gcol(t, c), t->cols);
  return s;
}

int ckpt_owns_part(const model *m, const model_tensor *t) {
  return t->shard != SHARD_NONE || model_tp_rank(m) == 0;
}
