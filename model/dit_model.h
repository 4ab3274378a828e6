/* dit_model — one forward pass of the causal Wan2.1 DiT over a chunk of
 * latent frames, against a KV cache (spec §2.2–§2.6, §4.1–§4.4, §4.8).
 *
 * The model holds pointers to its weights (bound by name once), the
 * per-prompt cross-attention K/V, the self-attention KV cache and every
 * activation buffer, all allocated at creation for the largest call
 * (max_frames latent frames), so a forward allocates nothing.
 *
 * Precision: weights and activations in the configured dtype (f32 for the
 * reference tests, bf16 on GPUs); the residual stream, the time embedding
 * and the modulation vectors are kept in f32 (as the official inference
 * does), every op accumulates in f32.
 */
#ifndef DIT_MODEL_H
#define DIT_MODEL_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_model dit_model;

/* cache_rows: capacity of the self-attention KV cache in tokens. */
dit_status dit_model_create (const dit_model_config *cfg,
    const dit_weights *weights, dit_backend *be, dit_dtype dtype,
    int grid_h, int grid_w, int max_frames, int64_t cache_rows,
    dit_model **out);
void dit_model_free (dit_model *m);

/* Tensor parallelism (Megatron-style, plan in mesh/dit_tp.h): a rank holds
 * heads [rank*H/degree, (rank+1)*H/degree) and FFN columns likewise, so the
 * weights it is given are that shard (dit_tp_shard_specs names the shapes).
 * `allreduce` sums `count` elements of `dtype` at `data` (memory of the
 * model's backend) in place over the group, giving every rank the same
 * bits; it is called 5 times per block (fused q/k norm statistics, self-
 * attention out, cross-attention q norm statistics, cross-attention out,
 * FFN out) and once per layer by set_context.  degree 1 (or tp NULL in
 * dit_model_create) is the single-device model. */
typedef dit_status (*dit_allreduce_fn) (void *user, void *data, int64_t count,
    dit_dtype dtype);

/* All-to-all over the sequence-parallel group: `send` holds sp blocks of
 * block_bytes (block j for member j), `recv` receives block j from member
 * j; both in the model's backend memory. */
typedef dit_status (*dit_alltoall_fn) (void *user, const void *send,
    void *recv, size_t block_bytes);

typedef struct dit_model_tp {
  int degree;
  int rank;
  dit_allreduce_fn allreduce;
  void *user;
  /* 1: allreduce only enqueues work on the backend's stream (NCCL), so
   * forwards holding it can be recorded as graphs (dit_generator_set_graphs) */
  int stream_ordered;
  /* Sequence parallelism (Ulysses; 0 or 1 = none).  Every rank of the
   * sequence-parallel group holds the same weights (the TP shard above, or
   * all of them) and runs the projections, norms, modulation, FFN and head
   * on its tokens, rows [sp_rank * L / sp_degree, +L / sp_degree) of each
   * forward (global positions for the per-frame modulation and RoPE).
   * Self-attention: q, k, v go token-sharded -> head-sharded through one
   * all-to-all each (heads_local / sp_degree heads of all L tokens: the KV
   * cache holds those heads), and the attention output comes back by one
   * more; cross-attention needs no communication.  The head's output is
   * gathered by an all-to-all of this rank's rows, so every rank returns
   * the whole velocity.  Hybrid: degree > 1 and sp_degree > 1, allreduce
   * over the tensor-parallel group and alltoall over the sequence-parallel
   * one.  sp_degree * degree must divide the heads and sp_degree every
   * forward's token count. */
  int sp_degree;
  int sp_rank;
  dit_alltoall_fn alltoall;
  void *sp_user;
  /* 1: issue the collectives in the overlapped order (docs/mesh.md,
   * "Overlap"): TP row-parallel outputs in two token halves, the first
   * half's all-reduce issued before the second half's GEMM and its
   * residual added while the second half's all-reduce runs; the q/k norm
   * statistics all-reduce issued before the v projection; SP k and v
   * exchanged before the q projection, and self-attention in two head
   * halves, the first half's output exchange issued before the second
   * half's attention.  Every op is the same op on the same data as with
   * 0, only the order differs, so on a synchronous comm (CPU) both give
   * the same bits. */
  int overlap;
  /* Overlap entry points (optional; NULL: allreduce / alltoall above,
   * complete when they return, and no wait).  A start issues the
   * collective beside the compute (slot 0..3); wait(user, slot) makes the
   * compute wait for it: all-reduces get the TP user, all-to-alls sp_user
   * (dit_comm_allreduce_start, mesh/dit_comm.h). */
  dit_status (*allreduce_start) (void *user, void *data, int64_t count,
      dit_dtype dtype, int slot);
  dit_status (*alltoall_start) (void *user, const void *send, void *recv,
      size_t block_bytes, int slot);
  dit_status (*wait) (void *user, int slot);
} dit_model_tp;

/* DIT_ERR_INVALID naming the heads and tokens unless the sequence-parallel
 * degree sp (with tensor-parallel degree tp inside it) divides the heads
 * and each count of tokens in `tokens` (n entries, e.g. a chunk's and its
 * context's). */
dit_status dit_model_sp_check (const dit_model_config *cfg, int sp, int tp,
    const int64_t *tokens, int n);

/* DIT_ERR_INVALID with a clear message unless degree is 1, 2, 4 or 8 and
 * divides the heads and the FFN width of cfg. */
dit_status dit_model_tp_check (const dit_model_config *cfg, int degree);

dit_status dit_model_create_tp (const dit_model_config *cfg,
    const dit_weights *weights, dit_backend *be, dit_dtype dtype,
    int grid_h, int grid_w, int max_frames, int64_t cache_rows,
    const dit_model_tp *tp, dit_model **out);

/* Text embeddings [rows, text_dim] -> zero-padded to text_len, embedded, and
 * each layer's cross-attention K/V computed and kept. */
dit_status dit_model_set_context (dit_model *m, const dit_tensor *embeds);

/* How a forward uses the KV cache. */
typedef struct dit_forward_args {
  const dit_tensor *x;     /* latent [16, F, 2*grid_h, 2*grid_w] */
  const double *t;         /* F timesteps */
  int frame_offset;        /* RoPE temporal start */
  int64_t cache_row;       /* this chunk's K/V go to rows [cache_row, +L) */
  int64_t causal_block;    /* 0 = full attention over [0, cache_row + L) */
  int64_t bias_begin, bias_end;
  float log_bias;
  dit_tensor *v_out;       /* [16, F, H, W], may be NULL (recompute) */
} dit_forward_args;

dit_status dit_model_forward (dit_model *m, const dit_forward_args *a);

/* Use the backend's fused ops where it has them (default 1); 0 runs the
 * unfused op chains everywhere (for comparisons and benchmarks). */
void dit_model_set_fused (dit_model *m, int enable);

/* This rank's token rows of a forward of L tokens (sequence parallelism;
 * otherwise [0, L)). */
void dit_model_token_rows (const dit_model *m, int64_t L, int64_t *first,
    int64_t *count);

/* Fold the residual adds into the GEMMs that make each branch (default 1:
 * x += gate ⊙ (h Wᵀ + b) as one accumulating GEMM, dit_gemm_params); 0
 * runs the GEMM into a scratch and a residual pass (the path before the
 * fold, kept for comparisons; tensor parallelism always takes it). */
void dit_model_set_gemm_fold (dit_model *m, int enable);

/* LoRA (model/dit_lora.h): bind the live LoRAs of `s` (NULL or a
 * merge-mode state: none) to the layers they target — folded into their
 * GEMMs, the activation buffers that feed them made again with spare
 * columns for u = x Aᵀ when the widest rank changed — and recompute what
 * the model derived from its weights (the modulation table, the prompt's
 * cross-attention K/V).  Call after every dit_lora_state_apply, in either
 * mode.  DIT_ERR_UNSUPPORTED when a live LoRA targets an FP8 layer. */
struct dit_lora_state;
dit_status dit_model_set_lora (dit_model *m, const struct dit_lora_state *s);

int64_t dit_model_tokens_per_frame (const dit_model *m);
/* FLOPs of one forward (spec §7.1) for L query tokens over N keys. */
double dit_model_forward_flops (const dit_model_config *cfg, int64_t L, int64_t N);

#ifdef __cplusplus
}
#endif
#endif
