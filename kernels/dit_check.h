/* dit_check — parameter validation shared by every backend.
 *
 * An op's parameter struct is its whole contract (dit_ops.h,
 * dit_vae_ops.h), so whether a call is valid does not depend on which
 * backend runs it: shapes must agree, tensors must live on the backend's
 * device, views must fold into rows of contiguous columns.  Each backend's
 * op entry calls the checker of its op here first, with its own device, and
 * gets the validated views back (rows, columns and row stride of every
 * tensor), so a CPU and a CUDA backend refuse the same mistake with the
 * same message.  What only one backend cares about (32-bit launch grids,
 * the kernel's supported dtypes, scratch limits) stays in the backend.
 *
 * Messages name the op and the tensor ("gemm: x has 64 columns but w has
 * 128"); every checker returns DIT_ERR_INVALID (DIT_ERR_UNSUPPORTED for an
 * unknown dtype) with the message set.
 */
#ifndef DIT_CHECK_H
#define DIT_CHECK_H

#include "dit_ops.h"
#include "dit_vae_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor viewed as rows of contiguous columns: leading dimensions fold
 * into rows when their strides allow it (a KV-cache slice, a column block
 * of a fused projection).  ld is the row stride in elements. */
typedef struct dit_rows {
  char *data;
  dit_dtype dtype;
  int64_t rows, cols;
  int64_t ld;
} dit_rows;

/* ---- tensors ------------------------------------------------------------- */

/* Non-NULL, on `dev`, a known dtype, 1..4 dimensions, no negative extent,
 * data unless empty. */
dit_status dit_check_tensor (dit_device dev, const char *op, const char *name,
    const dit_tensor *t);
/* dit_check_tensor, then the rows view. */
dit_status dit_check_rows (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, dit_rows *v);
/* dit_check_rows, and exactly rows x cols. */
dit_status dit_check_rows_shape (dit_device dev, const char *op,
    const char *name, const dit_tensor *t, int64_t rows, int64_t cols,
    dit_rows *v);
/* A contiguous vector of n elements (any shape with numel n). */
dit_status dit_check_vector (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t n, dit_rows *v);
/* A per-group table [G, cols] for `rows` rows in groups of rows_per_group
 * (modulation shift/scale/gate): G must cover every group. */
dit_status dit_check_groups (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t rows, int64_t cols, int64_t rows_per_group,
    dit_rows *v);
/* An FP8 pair (dit_ops.h, "FP8"): codes q [rows, cols] of dtype f8e4m3 with
 * contiguous columns, viewed as rows (v->dtype f8e4m3), and `scale`, a
 * contiguous f32 tensor on `dev` of exactly (cols / block) * rows elements;
 * block must divide cols.  *scale_data (may be NULL) gets the scales. */
dit_status dit_check_fp8_rows (dit_device dev, const char *op,
    const char *name, const dit_tensor *q, const dit_tensor *scale,
    int64_t block, dit_rows *v, float **scale_data);
/* A VAE frame tensor [T, H, W, C] with contiguous frames (stride[0] free);
 * writes its dims. */
dit_status dit_check_frames (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t dims[4]);

/* ---- DiT ops ------------------------------------------------------------- */

typedef struct dit_gemm_dims {
  dit_rows x, w, y, bias;     /* bias.data NULL without a bias */
  dit_rows gate;              /* [G, N]; gate.data NULL without a gate */
  dit_rows addend;            /* [M, N]; addend.data NULL without one */
  int64_t M, N, K;
} dit_gemm_dims;
dit_status dit_check_gemm (dit_device dev, const dit_gemm_params *p,
    dit_gemm_dims *d);

/* Row ops: x, y of one shape and their per-column or per-group operands. */
typedef struct dit_row_dims {
  dit_rows x, y;
  dit_rows a, b;              /* layernorm weight, bias; rmsnorm weight;
                                 modulate shift, scale; residual gate (a) */
} dit_row_dims;
dit_status dit_check_layernorm (dit_device dev, const dit_layernorm_params *p,
    dit_row_dims *d);
dit_status dit_check_rmsnorm (dit_device dev, const dit_rmsnorm_params *p,
    dit_row_dims *d);
dit_status dit_check_modulate (dit_device dev, const dit_modulate_params *p,
    dit_row_dims *d);
dit_status dit_check_residual (dit_device dev, const dit_residual_params *p,
    dit_row_dims *d);
dit_status dit_check_unary (dit_device dev, const dit_unary_params *p,
    dit_row_dims *d);
/* add: numel(a) = numel(y), a multiple of numel(b) (unless empty). */
dit_status dit_check_add (dit_device dev, const dit_add_params *p,
    int64_t *n, int64_t *nb);
/* copy: the same shape (any strides), or equally sized contiguous buffers
 * (*reshape = 1). */
dit_status dit_check_copy (dit_device dev, const dit_copy_params *p,
    int *reshape);

/* rope and the fused q/k norm + rope: x [grid tokens, heads * 128], the
 * two [P, 64] tables reaching every position. */
typedef struct dit_rope_dims {
  dit_rows x, cos, sin, weight;   /* weight: qk_norm_rope only */
} dit_rope_dims;
dit_status dit_check_rope (dit_device dev, const dit_rope_params *p,
    dit_rope_dims *d);

/* attention; the bias range comes back clamped to the keys (empty = none). */
typedef struct dit_attn_dims {
  dit_rows q, k, v, o;
  float *o_scale;             /* an f8e4m3 o: one scale per (row, head) */
  int64_t L, N;
  int64_t bias_begin, bias_end;
} dit_attn_dims;
dit_status dit_check_attention (dit_device dev, const dit_attn_params *p,
    dit_attn_dims *d);

/* flow_step: x, v and the optional noise, x0_out, out of one shape. */
typedef struct dit_flow_dims {
  dit_rows x, v, noise, x0, out;  /* .data NULL where the tensor is NULL */
} dit_flow_dims;
dit_status dit_check_flow_step (dit_device dev, const dit_flow_step_params *p,
    dit_flow_dims *d);
dit_status dit_check_noise (dit_device dev, const dit_noise_params *p);

/* dequantize_fp8: the FP8 pair q/scale and y of q's shape in a float
 * dtype (f32, bf16, f16). */
dit_status dit_check_dequantize_fp8 (dit_device dev,
    const dit_dequantize_fp8_params *p, dit_rows *q, dit_rows *y,
    float **scale_data);

/* Tensor-parallel RMSNorm halves: sumsq a contiguous f32 vector covering
 * the rows; apply's total width at least the shard's columns. */
dit_status dit_check_rmsnorm_sumsq (dit_device dev,
    const dit_rmsnorm_sumsq_params *p, dit_rows *x);
dit_status dit_check_rmsnorm_apply (dit_device dev,
    const dit_rmsnorm_apply_params *p, dit_row_dims *d);

/* ---- fused ops ----------------------------------------------------------- */

dit_status dit_check_layernorm_modulate (dit_device dev,
    const dit_layernorm_modulate_params *p, dit_row_dims *d);
dit_status dit_check_qk_norm_rope (dit_device dev,
    const dit_qk_norm_rope_params *p, dit_rope_dims *d);
/* x, v and out contiguous with one element count (*n). */
dit_status dit_check_noise_flow (dit_device dev,
    const dit_noise_flow_params *p, int64_t *n);

/* ---- VAE ops ------------------------------------------------------------- */

/* The conv's geometry: dims of x, prev (zeros without), y and the output
 * extents; weight [Cout, K] with contiguous rows, bias of Cout values,
 * residual of y's shape.  max_taps bounds kt * kh * kw (the backend's
 * kernel limit). */
typedef struct dit_vae_conv_dims {
  int64_t x[4], prev[4], y[4];
  int st, sh, sw;             /* strides, 0 read as 1 */
  int64_t to, ho, wo, cin, cout, k;
} dit_vae_conv_dims;
dit_status dit_check_vae_conv (dit_device dev, const dit_vae_conv_params *p,
    int max_taps, dit_vae_conv_dims *d);

#ifdef __cplusplus
}
#endif
#endif
