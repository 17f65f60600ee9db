/* Internals of the checkpoint module shared by its files (not installed):
 * the attribute writers, the stored checksum and the model config as /model
 * attributes (ckpt_attr.c; the attribute readers are h5attr.h's), a
 * tensor's shard in the global tensor with its checksums (ckpt_shard.c),
 * and the tensor reader that ckpt_load and ckpt_verify share
 * (ckpt_read.c). */
#ifndef IFTRAIN_CKPT_INT_H
#define IFTRAIN_CKPT_INT_H

#include <hdf5.h>
#include <stdint.h>

#include "iftrain/ckpt.h"

/* ------------------------------------------------------------ attributes */

/* HDF5 prints nothing itself: every failure is reported through the error
 * convention (h5attr.h). */
void ckpt_quiet_hdf5(void);
/* Scalar attribute `name` = v on obj (created: it must not exist yet);
 * negative on failure. */
herr_t ckpt_attr_int(hid_t obj, const char *name, long v);
/* The stored checksum of a tensor: written on its data set ds, read from
 * the data set `name` of group g (1 when it is there, else 0). */
herr_t ckpt_attr_checksum(hid_t ds, uint64_t sum);
int ckpt_stored_checksum(hid_t g, const char *name, uint64_t *sum);

/* The model config as attributes of /model (HF config.json names), and
 * back: the keys of the first checkpoints are required, the later ones
 * default (see ckpt_attr.c). */
herr_t ckpt_write_config_attrs(hid_t g, const model_config *c);
ift_status ckpt_read_model_attrs(hid_t gm, model_config *c, const char *path);

/* ------------------------------------------------------------ shards */

/* Shape of one tensor, and the hyperslab of its shard in the global tensor:
 * blocks of blk[] every stride[] (one block unless the 2D layout is
 * block-cyclic); ldims[] is the shard in memory.  HDF5 visits the selection
 * in row-major order, which is the shard's own element order. */
typedef struct {
  int rank;
  hsize_t gdims[2], start[2], stride[2], count[2], blk[2], ldims[2];
} ckpt_shard_sel;
void ckpt_shard_select(const model_tensor *t, ckpt_shard_sel *s);
/* Select s's shard in the file space fs of the global tensor. */
herr_t ckpt_shard_hyperslab(hid_t fs, const ckpt_shard_sel *s);
/* The checksum terms of one shard (any layout); the shards' terms add up to
 * ckpt_checksum_part of the whole tensor. */
uint64_t ckpt_checksum_shard(const model_tensor *t, const float *x);
/* Does this rank hold a part of tensor t that no other rank of its replica
 * holds (shards; replicated tensors count on TP rank 0)? */
int ckpt_owns_part(const model *m, const model_tensor *t);

/* ------------------------------------------------------------ reading */

/* Every tensor of the model's layout from group g into `base`: each rank
 * reads the hyperslab of its own shard (any layout); a missing tensor or a
 * wrong shape or dtype is an IFT_ERR_FORMAT naming it.  Not collective. */
ift_status ckpt_read_tensors(hid_t g, const model *m, float *base, const char *path);

#endif
