/* dit_tp — the tensor-parallel plan of the Wan DiT (Megatron-style, DESIGN
 * §6) and shard loading.
 *
 * Rank r of degree tp holds (n = H/tp heads, Dl = n * head_dim, Fl = ffn/tp):
 *   column-parallel (output rows [r*Dl, (r+1)*Dl) of the [out, in] weight):
 *     self_attn.{q,k,v}, cross_attn.{q,k,v} weight and bias, and the norm_q /
 *     norm_k weights of both attentions (per channel, so sliced the same);
 *     ffn.0 weight and bias with rows [r*Fl, (r+1)*Fl);
 *   row-parallel (input columns of the weight, bias replicated and added once
 *     after the all-reduce): self_attn.o, cross_attn.o (columns [r*Dl, ..)),
 *     ffn.2 (columns [r*Fl, ..));
 *   replicated: everything else (embeddings, norms, modulation, head).
 * The KV cache and the cross-attention K/V are sharded by heads with the
 * projections and never move.  tp in {1, 2, 4, 8} dividing heads and ffn.
 *
 * A shard is loaded without the full model: slices of a mapped safetensors
 * checkpoint are converted straight into the shard's tensors, and synthetic
 * shards take their values from dit_weights_synthetic_fill of the FULL
 * tensor at the sliced indices, so every shard equals the matching part of
 * the single-device weights bit for bit.
 */
#ifndef DIT_TP_H
#define DIT_TP_H

#include "../model/dit_model.h"
#include "../model/dit_weights.h"
#include "dit_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dit_tp_split {
  DIT_TP_REPLICATED = 0,
  DIT_TP_ROWS,     /* dim 0 sliced (column-parallel weight, 1-D vectors) */
  DIT_TP_COLS,     /* dim 1 sliced (row-parallel weight) */
} dit_tp_split;

typedef struct dit_tp_slice {
  dit_tp_split split;
  int64_t begin;   /* first row / column of the full tensor */
  int64_t count;
  dit_param_spec full;   /* the unsliced spec */
} dit_tp_slice;

/* The shard's parameter list (same names, sliced shapes) and how each entry
 * maps onto the full tensor; both malloc'd (free()). */
dit_status dit_tp_shard_specs (const dit_model_config *cfg, int degree,
    int rank, dit_param_spec **specs, dit_tp_slice **slices, size_t *count);

dit_status dit_tp_weights_synthetic (const dit_model_config *cfg, int degree,
    int rank, uint64_t seed, dit_dtype dtype, dit_backend *be,
    dit_weights **out);
/* Checks the whole checkpoint (every key, shape and dtype against the full
 * parameter list) and then reads only this rank's slices. */
dit_status dit_tp_weights_load (const char *path, const dit_model_config *cfg,
    int degree, int rank, dit_dtype dtype, dit_backend *be,
    dit_weights **out);

/* Identity of a weight source for the parity check at join, computed the
 * same way by every rank whatever its shard: FNV-1a over the config, the
 * dtype and either the synthetic seed or (per expected tensor) the name,
 * stored dtype, shape and the first and last 4 KiB of the stored bytes. */
uint64_t dit_tp_fingerprint_synthetic (const dit_model_config *cfg,
    uint64_t seed, dit_dtype dtype);
dit_status dit_tp_fingerprint_file (const char *path,
    const dit_model_config *cfg, dit_dtype dtype, uint64_t *out);
/* Digest of a model config (all fields), for the parity check. */
uint64_t dit_tp_config_digest (const dit_model_config *cfg);

/* A dit_model_tp whose all-reduce goes through `comm` (rank and degree from
 * the comm), overlap on (dit_model_tp.overlap; the caller may turn it
 * off) with the comm's start and wait entries (dit_comm_allreduce_start). */
void dit_tp_from_comm (dit_comm *comm, dit_model_tp *tp);

/* The groups of a mesh of sp * tp ranks (layouts of dit_mesh_config.h):
 * rank r = s * tp + t is tensor-parallel rank t (the shard it loads) of
 * the group of consecutive ranks { s * tp .. s * tp + tp - 1 } and
 * sequence-parallel rank s of { t, t + tp, ... } (SP across groups, TP
 * inside a group).  sp = 1: tensor parallelism over the whole mesh; tp = 1:
 * sequence parallelism over it. */
typedef struct dit_mesh_groups {
  int sp, tp;            /* degrees */
  int sp_rank, tp_rank;  /* this rank's index in each group */
  dit_comm *tp_comm, *sp_comm;   /* the mesh comm or a group view of it */
  dit_comm *views[2];    /* owned views (NULL when the mesh comm is used) */
} dit_mesh_groups;

/* Fills g and the model's plan (all-reduce over the TP group, all-to-all
 * over the SP group, overlap on with their start and wait entries) from
 * the mesh communicator; mesh->size must be sp * tp.  dit_mesh_groups_free releases the views. */
dit_status dit_mesh_groups_create (dit_comm *mesh, int sp, int tp,
    dit_mesh_groups *g, dit_model_tp *plan);
void dit_mesh_groups_free (dit_mesh_groups *g);

#ifdef __cplusplus
}
#endif
#endif
