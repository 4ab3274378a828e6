/* bench_comm — dit-bench --comm-only: the collectives of one chunk's
 * forward for a mesh layout, timed on their own (no model), so a
 * multi-GPU run measures what the performance model of docs/mesh.md
 * predicts.
 *
 * Ranks are threads of this process, one per mesh device: the CPU comm
 * (host memory, sockets; ranks may share a device) or NCCL (one GPU per
 * rank, device memory).  For a chunk of L = frames * tokens-per-frame
 * tokens of a model of width D and `layers` blocks, in layout sp x tp:
 *   all-reduce (TP group, tp > 1): the [L/sp, D] activations of the three
 *     row-parallel outputs of a block, and the q/k (2 L/sp) and cross q
 *     (L/sp) norm statistics, f32;
 *   all-to-all (SP group, sp > 1): q, k, v and the attention output of a
 *     block, blocks of [L/sp, D/(tp*sp)]; and the head's gather once per
 *     forward ([L/sp, 64] f32 per rank).
 * Each operation is timed on rank 0 from a barrier to its completion
 * (NCCL: dit_comm_flush), median over `reps` after `warmup`; the forward's
 * communication is layers x (3 all-reduces of activations + 2 of
 * statistics + 4 all-to-alls) + the gather, all exposed (no overlap). */
#ifndef BENCH_COMM_H
#define BENCH_COMM_H

#include "dit_mesh_config.h"

typedef struct bench_comm_config {
  dit_model_config model;      /* layers already applied */
  int latent_h, latent_w, frames;
  dit_dtype dtype;             /* activations (bf16 on CUDA, f32 on the CPU) */
  int ranks;
  dit_mesh_layout layout;
  int mesh_tp;
  const char *backend;         /* "cpu" or "cuda" */
  const int *devices;          /* ranks entries */
  int warmup, reps;
} bench_comm_config;

typedef struct bench_comm_result {
  int sp, tp;
  int64_t tokens;              /* L of one chunk */
  double act_bytes;            /* one activation all-reduce per rank */
  double a2a_bytes;            /* one all-to-all's send buffer per rank */
  double allreduce_act_ms;     /* median, one [L/sp, D] all-reduce */
  double allreduce_stats_ms;   /* median, the 2 L/sp + L/sp statistics */
  double alltoall_ms;          /* median, one q/k/v/out all-to-all */
  double gather_ms;            /* median, the head's gather */
  double forward_ms;           /* the forward's communication (formula above) */
} bench_comm_result;

dit_status bench_comm_run (const bench_comm_config *c, bench_comm_result *r);

#endif
