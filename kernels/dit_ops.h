/* dit_ops — the DiT op set: parameter structs and dispatch.
 *
 * Each op is a plain parameter struct (tensors, sizes, scalars) handed to a
 * backend's op table.  The struct is the whole contract between the model
 * and a kernel; CPU (kernels/cpu/) and CUDA (kernels/cuda/) implement the
 * same structs.  Conventions shared by all ops:
 *
 *  - Activations are 2-D [rows, cols] views; rows may be strided, columns are
 *    contiguous.  A "token matrix" is [L, D] with token order (f, h, w).
 *  - Inputs and outputs may be f32, bf16 or f16 (independently); arithmetic is
 *    f32 (f64 where the reference uses it: time sinusoid, scheduler).
 *  - Outputs are passed in; nothing is allocated.  In-place is allowed only
 *    where an op says so.
 *  - Per-frame vectors (modulation shift/scale/gate) are [G, D] views with
 *    `rows_per_group` token rows sharing one vector (G = frames, rows = F*fs).
 */
#ifndef DIT_OPS_H
#define DIT_OPS_H

#include "dit_status.h"
#include "dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_backend dit_backend;

typedef enum dit_act {
  DIT_ACT_NONE = 0,
  DIT_ACT_GELU_TANH = 1,
  DIT_ACT_SILU = 2,
} dit_act;

/* y[M,N] = gate[g] ⊙ act(x[M,K] · w[N,K]ᵀ + bias[N]) (+ y if accumulate),
 * g = r / rows_per_group for row r.
 * w is an nn.Linear weight ([out, in], row-major).  bias may be NULL; its
 * dtype need not be y's (a bf16 bias into an f32 y is the patch embedding,
 * the head and every residual-folded projection).
 * gate (optional, NULL = 1): [G, N] with strided rows, G = ceil(M /
 * rows_per_group) — the adaLN gate of a residual branch, so that
 * "x += gate ⊙ (h Wᵀ + b)" is one GEMM with accumulate = 1 into the f32
 * residual stream instead of a GEMM and a residual pass.  Epilogue order:
 * + bias, act, × gate, + old y, one rounding to y's dtype.
 * scratch (optional, only read with a gate): an [M, N] buffer a backend may
 * use when its GEMM cannot apply the gate in the epilogue: it then writes
 * act(x wᵀ + bias) there (rounded to scratch's dtype) and adds gate ⊙
 * scratch to y in a second pass.  Without a scratch such a backend runs a
 * slow exact kernel.
 * addend (optional): an [M, N] matrix (any float dtype, strided rows) added
 * to the product ahead of the bias and the activation:
 *   y = gate ⊙ act(x wᵀ + addend + bias) (+ y if accumulate).
 * It may be y itself (the same view) when accumulate is 0: each element is
 * read before it is written.  This is how a live LoRA on the side path
 * reaches a layer whose activation must see it (GELU(h Wᵀ + s·u Bᵀ + b)):
 * the low-rank product goes into y first and the layer's GEMM adds it in
 * its epilogue (cuBLASLt's C operand), so no separate pass reads y again.
 * (Most live-LoRA layers fold instead: x and w with R more columns,
 * model/dit_lora.h, dit_lora_side.) */
typedef struct dit_gemm_params {
  const dit_tensor *x;
  const dit_tensor *w;
  const dit_tensor *bias;
  dit_tensor *y;
  dit_act act;
  int accumulate;
  const dit_tensor *gate;
  int64_t rows_per_group;
  dit_tensor *scratch;
  const dit_tensor *addend;
} dit_gemm_params;

/* y = (x - mean) / sqrt(var + eps) [* weight + bias] over the last dim.
 * weight and bias are both NULL (no affine) or both set.  In-place allowed. */
typedef struct dit_layernorm_params {
  const dit_tensor *x;
  const dit_tensor *weight;
  const dit_tensor *bias;
  dit_tensor *y;
  float eps;
} dit_layernorm_params;

/* y = x * rsqrt(mean(x²) + eps) * weight over the full last dim (the
 * Wan q/k norm: statistic over all D channels, before the head split).
 * In-place allowed. */
typedef struct dit_rmsnorm_params {
  const dit_tensor *x;
  const dit_tensor *weight;
  dit_tensor *y;
  float eps;
} dit_rmsnorm_params;

/* adaLN: y[r] = x[r] * (1 + scale[g]) + shift[g], g = r / rows_per_group.
 * In-place allowed. */
typedef struct dit_modulate_params {
  const dit_tensor *x;
  const dit_tensor *shift; /* [G, D] */
  const dit_tensor *scale; /* [G, D] */
  dit_tensor *y;
  int64_t rows_per_group;
} dit_modulate_params;

/* Gated residual: x[r] += gate[g] * y[r], g = r / rows_per_group.
 * gate may be NULL (plain residual add). */
typedef struct dit_residual_params {
  dit_tensor *x;
  const dit_tensor *y;
  const dit_tensor *gate; /* [G, D] or NULL */
  int64_t rows_per_group;
} dit_residual_params;

/* y[i] = a[i] + b[i % numel(b)] over contiguous buffers (numel(a) must be a
 * multiple of numel(b)).  Used to add the modulation table to e0. */
typedef struct dit_add_params {
  const dit_tensor *a;
  const dit_tensor *b;
  dit_tensor *y;
} dit_add_params;

/* y = act(x) elementwise (SiLU or GELU-tanh).  In-place allowed. */
typedef struct dit_unary_params {
  const dit_tensor *x;
  dit_tensor *y;
  dit_act act;
} dit_unary_params;

/* y = x with dtype conversion; any 2-D strides.  Shapes must match. */
typedef struct dit_copy_params {
  const dit_tensor *x;
  dit_tensor *y;
} dit_copy_params;

/* 3-D RoPE in place on x [L, heads*head_dim] (head_dim = 128, 64 pairs).
 * Token r has grid position (f, h, w) = (r / (gh*gw), (r / gw) % gh, r % gw);
 * pair i of every head rotates by angle table row:
 *   i <  22: row f + frame_offset,   22 <= i < 43: row h,   i >= 43: row w
 * cos/sin are [1024, 64] f32 tables from dit_rope_table_fill (the angle for
 * pair i at position p is p * omega_i, with the temporal omegas for i < 22
 * and the spatial ones otherwise).  Pairs are interleaved (x[2i], x[2i+1]). */
typedef struct dit_rope_params {
  dit_tensor *x;
  const dit_tensor *cos;
  const dit_tensor *sin;
  int heads;
  int64_t grid_f, grid_h, grid_w;
  int64_t frame_offset;
} dit_rope_params;

#define DIT_ROPE_POSITIONS 1024
#define DIT_ROPE_PAIRS 64
/* Fill host f32 tables [1024, 64] in f64 math (spec §2.6). */
void dit_rope_table_fill (float *cos_tab, float *sin_tab);

/* o[L, H*d] = softmax(q kᵀ * scale + bias) v per head.
 *  q: [L, H*d], k and v: [N, H*d] (head h owns columns [h*d, (h+1)*d)).
 *  bias: keys j in [bias_begin, bias_end) get + log_bias added to their logits
 *        (scope's kv_cache_attention_bias); empty range = no bias.
 *  causal_block > 0: block-causal — query r (absolute position q_pos0 + r in
 *        key space) sees keys j < (floor((q_pos0 + r) / causal_block) + 1) *
 *        causal_block; 0 = every query sees all N keys.
 *  pos_bias (optional, umT5): a [num_buckets, heads] table; query r and key j
 *        get + pos_bias[bucket(j - (q_pos0 + r)), h] added to their logit, with
 *        the T5 relative-position bucket of kernels/dit_t5_bucket.h
 *        (num_buckets, max_distance, bidirectional).  NULL = none.
 *  key_len > 0: keys j >= key_len are masked (padded prompts); 0 = all keys.
 * Backends route pos_bias / key_len cases to their general kernel. */
typedef struct dit_attn_params {
  const dit_tensor *q;
  const dit_tensor *k;
  const dit_tensor *v;
  dit_tensor *o;
  int heads;
  int head_dim;
  float scale;
  int64_t bias_begin, bias_end;
  float log_bias;
  int64_t causal_block;
  int64_t q_pos0;
  const dit_tensor *pos_bias;
  int num_buckets, max_distance, bidirectional;
  int64_t key_len;
  /* FP8 output (see "FP8" below): when o is f8e4m3, o_scale [heads, L] f32
   * receives one scale per (query row, head), computed from that row's
   * normalised f32 output of the head, and o the e4m3 codes.  NULL for a
   * bf16/f16/f32 o. */
  dit_tensor *o_scale;
} dit_attn_params;

/* Patch embedding gather: latent [C, F, H, W] -> tokens [F*(H/2)*(W/2), C*4]
 * with column index c*4 + q*2 + r for pixel (2h+q, 2w+r) (channel slowest). */
typedef struct dit_patchify_params {
  const dit_tensor *latent;
  dit_tensor *tokens;
} dit_patchify_params;

/* Unpatchify: tokens [F*(H/2)*(W/2), 4*C] -> latent [C, F, H, W] with
 * column index (q*2 + r)*C + c (channel fastest). */
typedef struct dit_unpatchify_params {
  const dit_tensor *tokens;
  dit_tensor *latent;
} dit_unpatchify_params;

/* Sinusoidal time embedding, f64 math: y[n, 2*half] with
 * y[n, j] = cos(t[n] * 10000^(-j/half)), y[n, half + j] = sin(...). */
typedef struct dit_timestep_params {
  const double *t; /* host array of n timesteps */
  int64_t n;
  dit_tensor *y;   /* [n, 2*half] */
} dit_timestep_params;

/* Flow-matching update, f64 math per element:
 *   x0 = x - sigma * v
 *   if noise: out = (1 - sigma_next) * x0 + sigma_next * noise   else out = x0
 * x0_out (optional) receives x0.  out may alias x. */
typedef struct dit_flow_step_params {
  const dit_tensor *x;
  const dit_tensor *v;
  const dit_tensor *noise; /* NULL: no re-noise */
  dit_tensor *x0_out;      /* may be NULL */
  dit_tensor *out;         /* may be NULL when noise is NULL */
  double sigma;
  double sigma_next;
} dit_flow_step_params;

/* Standard normal noise from Philox4x32-10 (kernels/dit_philox.h defines
 * the stream): y[i] = dit_philox_normal (seed, stream, i). */
typedef struct dit_noise_params {
  dit_tensor *y; /* contiguous */
  uint64_t seed;
  uint64_t stream;  /* which draw (chunk, step) */
} dit_noise_params;

/* Tensor-parallel RMSNorm (the Wan q/k norm spans all D channels, which a
 * head-sharded rank holds only part of), in two parts around one all-reduce:
 *   sumsq:  ss[r] = Σ_i x[r, i]² over this rank's columns, f32 (ss is a
 *           contiguous f32 vector of at least rows elements);
 *   apply:  y[r, i] = x[r, i] * rsqrt(ss[r] / total_cols + eps) * weight[i]
 *           with ss the all-reduced total and total_cols the full width D.
 * In-place allowed for apply.  CPU in kernels/cpu/tp.c, CUDA in
 * kernels/cuda/tp.cu; backend vtable entries rmsnorm_sumsq/apply. */
typedef struct dit_rmsnorm_sumsq_params {
  const dit_tensor *x;
  dit_tensor *sumsq;
} dit_rmsnorm_sumsq_params;

typedef struct dit_rmsnorm_apply_params {
  const dit_tensor *x;
  const dit_tensor *sumsq;
  const dit_tensor *weight;
  dit_tensor *y;
  int64_t total_cols;
  float eps;
} dit_rmsnorm_apply_params;

/* ---- fused ops (optional; see dit_backend.h) ----------------------------
 * Each one does the work of an unfused chain of the ops above in one pass
 * and keeps that chain's intermediate rounding (the intermediate is rounded
 * to the output dtype in registers instead of being stored), so a backend
 * that has them computes what the chain computes up to f32 rounding.  A
 * backend without them reports supports () = 0 and the caller runs the
 * chain. */

/* LayerNorm without affine, then adaLN modulate:
 *   h = round_y ((x - mean) / sqrt(var + eps))
 *   y[r] = h * (1 + scale[g]) + shift[g],  g = r / rows_per_group
 * = dit_layernorm (x -> y, no weight) followed by dit_modulate in place on y.
 * In-place allowed. */
typedef struct dit_layernorm_modulate_params {
  const dit_tensor *x;
  const dit_tensor *shift; /* [G, D] */
  const dit_tensor *scale; /* [G, D] */
  dit_tensor *y;
  int64_t rows_per_group;
  float eps;
} dit_layernorm_modulate_params;

/* Full-width RMSNorm then 3-D RoPE, in place on x [L, heads*128]:
 * = dit_rmsnorm (x -> x, weight) followed by dit_rope (x, ...), same
 * position rule and tables as dit_rope_params. */
typedef struct dit_qk_norm_rope_params {
  dit_tensor *x;
  const dit_tensor *weight;
  const dit_tensor *cos;
  const dit_tensor *sin;
  int heads;
  int64_t grid_f, grid_h, grid_w;
  int64_t frame_offset;
  float eps;
} dit_qk_norm_rope_params;

/* Philox noise + flow-matching update with re-noise, f64 per element:
 *   n   = dit_philox_normal (seed, stream, i)        (the f32 normal)
 *   out = (1 - sigma_next) * (x - sigma * v) + sigma_next * n
 * = dit_noise into an f32 buffer followed by dit_flow_step with that noise.
 * x, v and out are contiguous with equal element counts; out may alias x. */
typedef struct dit_noise_flow_params {
  const dit_tensor *x;
  const dit_tensor *v;
  dit_tensor *out;
  uint64_t seed;
  uint64_t stream;
  double sigma;
  double sigma_next;
} dit_noise_flow_params;

/* ---- FP8 (e4m3) ------------------------------------------------------------
 * An FP8 matrix is a pair: codes q [rows, cols] of dtype f8e4m3 and f32
 * scales [cols / block, rows], block-major (the scale of row r and column
 * block b is scale[b * rows + r], the layout cuBLASLt's VEC128 mode reads),
 * with value (r, c) = q[r, c] * scale[c / block, r].  Codes and scales
 * follow the rule of kernels/dit_fp8.h.
 *  - weights: block = cols, one scale per output channel (scale is [1, N]);
 *  - activations: block = DIT_FP8_BLOCK (128): one scale per token and 128
 *    channels, which is one attention head, so every producer can compute
 *    its scales from what it holds (an attention CTA sees one head, a GEMM
 *    epilogue tile 128 columns); finer than a per-token scale, never
 *    coarser.
 * Scale tensors are contiguous views of exactly rows * cols / block floats.
 * The producers below quantize the f32 value they computed (no rounding to
 * a 16-bit type in between). */

/* q, scale = quantize(x) per (row, block of `block` columns).  block must
 * divide cols.  Used for weights at load time (block = cols), and wherever an
 * activation comes from a producer that cannot quantize itself. */
typedef struct dit_quantize_fp8_params {
  const dit_tensor *x;    /* [rows, cols] f32/bf16/f16, strided rows */
  dit_tensor *q;          /* [rows, cols] f8e4m3, contiguous */
  dit_tensor *scale;      /* [cols / block, rows] f32 */
  int64_t block;
} dit_quantize_fp8_params;

/* y = dequantize(q, scale): y[r, c] = q[r, c] · scale[c / block, r],
 * computed in f32 and rounded once to y's dtype (f32/bf16/f16; y rows may
 * be strided).  Exact in f32 (an e4m3 code times an f32 scale), so
 * dit_quantize_fp8 of the result gives the codes back.  A merged LoRA on
 * FP8 weights: dequantize(W), add s·B A, quantize again with fresh scales
 * (block = cols for a weight). */
typedef struct dit_dequantize_fp8_params {
  const dit_tensor *q;      /* [rows, cols] f8e4m3, contiguous columns */
  const dit_tensor *scale;  /* [cols / block, rows] f32 */
  int64_t block;
  dit_tensor *y;            /* [rows, cols] f32/bf16/f16 */
} dit_dequantize_fp8_params;

/* LayerNorm, optional affine, optional adaLN modulate, quantized:
 *   v = (x - mean) / sqrt(var + eps)
 *   v = v * weight + bias                          (when weight/bias set)
 *   v = v * (1 + scale[g]) + shift[g], g = r / rows_per_group (when set)
 *   y, y_scale = quantize(v) with blocks of `block` columns (f32 v).
 * The self-attention and FFN inputs (no affine, modulate) and the cross-
 * attention input (affine norm3, no modulate). */
typedef struct dit_layernorm_fp8_params {
  const dit_tensor *x;      /* [rows, D] */
  const dit_tensor *weight; /* [D] or NULL (with bias) */
  const dit_tensor *bias;
  const dit_tensor *shift;  /* [G, D] or NULL (with scale) */
  const dit_tensor *scale;
  int64_t rows_per_group;
  float eps;
  dit_tensor *y;            /* [rows, D] f8e4m3 */
  dit_tensor *y_scale;      /* [D / block, rows] f32 */
  int64_t block;
} dit_layernorm_fp8_params;

/* The FP8 linear layer:
 *   acc[m, n] = Σ_b x_scale[b, m] · (Σ_{k in block b} x[m, k] w[n, k])
 *   v[m, n]   = act(acc[m, n] · w_scale[n] + bias[n])
 * each block sum exact-order f32 (the tensor cores' FP8 products are exact;
 * the per-block f32 promotion is DeepSeek-V3's recipe against their short
 * accumulator).  x: f8e4m3 [M, K] with x_scale [K / x_block, M]; w: f8e4m3
 * [N, K] (an nn.Linear weight) with w_scale [N] (block = K); bias [N] any
 * float dtype or NULL; act NONE or GELU_TANH.
 * Output: y f32/bf16/f16 [M, N] (rows may be strided) = v rounded, or y
 * f8e4m3 [M, N] with y_scale [N / y_block, M] = quantize(v) (the FFN-up
 * output feeding FFN-down).  For a 16/32-bit y the residual epilogue of
 * dit_gemm_params applies too: v × gate[r / rows_per_group] (gate NULL = 1)
 * then + y (accumulate), one rounding: "x += gate ⊙ (h Wᵀ + b)" into the
 * f32 residual stream.  scratch (optional, [M, N] bf16): a buffer a backend
 * may use to finish an FP8 output or the residual epilogue in two passes. */
typedef struct dit_gemm_fp8_params {
  const dit_tensor *x;
  const dit_tensor *x_scale;
  int64_t x_block;
  const dit_tensor *w;
  const dit_tensor *w_scale;
  const dit_tensor *bias;
  dit_tensor *y;
  dit_tensor *y_scale;      /* f8 y only */
  int64_t y_block;          /* f8 y only */
  dit_act act;
  dit_tensor *scratch;
  int accumulate;           /* 16/32-bit y only */
  const dit_tensor *gate;   /* [G, N] or NULL; 16/32-bit y only */
  int64_t rows_per_group;
} dit_gemm_fp8_params;

dit_status dit_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p);
dit_status dit_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p);

#ifdef __cplusplus
}
#endif
#endif
