/* fused — one-pass versions of three op chains of the DiT forward and the
 * sampler (kernels/dit_ops.h, "fused ops"):
 *
 *   layernorm_modulate  LayerNorm (no affine) + adaLN modulate
 *   qk_norm_rope        full-width q/k RMSNorm + 3-D RoPE, in place
 *   noise_flow          Philox noise + flow-matching update with re-noise
 *
 * Why: the unfused chain writes an [L, D] intermediate and reads it back
 * (h after LayerNorm, q/k after RMSNorm, the noise latent), a full extra
 * round trip through HBM per op at the 14B shape.
 *
 * Exactness: each kernel reproduces the arithmetic of the CUDA kernels it
 * replaces, including their rounding of the intermediate to the output
 * dtype (done in registers here).  layernorm_modulate and noise_flow give
 * the unfused CUDA chain's bits; qk_norm_rope matches it to the last bit
 * of a fraction of its elements (measured on an H200, see
 * tests/gpu/test_cuda_fused.c; the source is not isolated yet: the PTX of
 * its statistic and rotation has the same shape as norm.cu's and rope.cu's):
 *  - the row statistics use the block reduction of norm.cu with the same
 *    256 threads and the same per-thread column order;
 *  - the elementwise expressions are written exactly as in elementwise.cu,
 *    rope.cu and flow.cu (same candidates for FMA contraction; the f64
 *    flow update uses explicit __dmul_rn/__dadd_rn like flow.cu, so it is
 *    bit-identical to the CPU's f64 flow_step);
 *  - the noise is dit_philox_normal_pair, the header function both
 *    backends' noise ops use (no --use_fast_math anywhere in this build).
 * Layout: x/y are [rows, cols] with strided rows; per-frame shift/scale are
 * [G, cols] views; noise_flow works on contiguous latents by element index.
 */
#include "cuda_common.cuh"
#include "dit_philox.h"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define FUSED_THREADS 256

/* Same reduction as norm.cu's norm_block_sum (bitwise equal results). */
__device__ __forceinline__ float
fused_block_sum (float v, float *red)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads ();
  if (lane == 0)
    red[warp] = v;
  __syncthreads ();
  v = lane < FUSED_THREADS / 32 ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

/* The value an f32 v becomes when stored in dtype dt and loaded again. */
__device__ __forceinline__ float
fused_round (float v, int dt)
{
  switch (dt) {
    case DIT_F32: return v;
    case DIT_BF16: return __bfloat162float (__float2bfloat16_rn (v));
    default: return __half2float (__float2half_rn (v));
  }
}

__global__ void __launch_bounds__ (FUSED_THREADS)
layernorm_modulate_kernel (const void *x, int dtx, int64_t ldx, void *y,
    int dty, int64_t ldy, const void *shift, int dtsh, int64_t ldsh,
    const void *scale, int dtsc, int64_t ldsc, int64_t D, int64_t rpg,
    float eps)
{
  __shared__ float red[FUSED_THREADS / 32];
  const int64_t row = blockIdx.x, g = row / rpg;
  const int64_t xo = row * ldx, yo = row * ldy;
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS)
    s += dit_cuda_ld (x, dtx, xo + c);
  const float mean = fused_block_sum (s, red) / (float) D;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS) {
    float d = dit_cuda_ld (x, dtx, xo + c) - mean;
    q += d * d;
  }
  const float var = fused_block_sum (q, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS) {
    float v = fused_round ((dit_cuda_ld (x, dtx, xo + c) - mean) * rstd, dty);
    float sc = dit_cuda_ld (scale, dtsc, g * ldsc + c);
    float sh = dit_cuda_ld (shift, dtsh, g * ldsh + c);
    dit_cuda_st (y, dty, yo + c, v * (1.0f + sc) + sh);
  }
}

/* Thread t owns columns t, t+256, ... for the statistic (rmsnorm_kernel's
 * order) and pairs t, t+256, ... for the rotation; the barrier inside the
 * reduction separates every read of the row from the first write. */
__global__ void __launch_bounds__ (FUSED_THREADS)
qk_norm_rope_kernel (void *x, int dtx, int64_t ldx, const void *weight,
    int dtw, const void *cos_tab, int dtc, int64_t ldc, const void *sin_tab,
    int dts, int64_t lds, int64_t D, int64_t gh, int64_t gw,
    int64_t frame_offset, float eps)
{
  __shared__ float red[FUSED_THREADS / 32];
  const int64_t r = blockIdx.x;
  const int64_t xo = r * ldx;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS) {
    float v = dit_cuda_ld (x, dtx, xo + c);
    q += v * v;
  }
  const float rs = rsqrtf (fused_block_sum (q, red) / (float) D + eps);
  const int64_t pf = r / (gh * gw) + frame_offset, ph = (r / gw) % gh,
      pw = r % gw;
  for (int64_t j = threadIdx.x; j < D / 2; j += FUSED_THREADS) {
    int i = (int) (j % DIT_ROPE_PAIRS);
    int64_t pos = i < 22 ? pf : (i < 43 ? ph : pw);
    int64_t o = xo + 2 * j;
    float a = dit_cuda_ld (x, dtx, o) * rs;
    float b = dit_cuda_ld (x, dtx, o + 1) * rs;
    a = fused_round (a * dit_cuda_ld (weight, dtw, 2 * j), dtx);
    b = fused_round (b * dit_cuda_ld (weight, dtw, 2 * j + 1), dtx);
    float c = dit_cuda_ld (cos_tab, dtc, pos * ldc + i);
    float s = dit_cuda_ld (sin_tab, dts, pos * lds + i);
    dit_cuda_st (x, dtx, o, a * c - b * s);
    dit_cuda_st (x, dtx, o + 1, a * s + b * c);
  }
}

__device__ __forceinline__ float
noise_flow_one (const void *x, int dtx, const void *v, int dtv, int64_t e,
    float z, double sigma, double sigma_next)
{
  double xv = (double) dit_cuda_ld (x, dtx, e);
  double vv = (double) dit_cuda_ld (v, dtv, e);
  double x0 = __dsub_rn (xv, __dmul_rn (sigma, vv));
  double o = __dadd_rn (__dmul_rn (__dsub_rn (1.0, sigma_next), x0),
      __dmul_rn (sigma_next, (double) z));
  return (float) o;
}

__global__ void
noise_flow_kernel (const void *x, int dtx, const void *v, int dtv, void *out,
    int dto, int64_t n, uint64_t seed, uint64_t stream, double sigma,
    double sigma_next)
{
  DIT_CUDA_GRID_LOOP (p, (n + 1) / 2) {
    float z0, z1;
    dit_philox_normal_pair (seed, stream, (uint64_t) p, &z0, &z1);
    /* both loads of a pair happen before its stores: out may alias x */
    float o0 = noise_flow_one (x, dtx, v, dtv, 2 * p, z0, sigma, sigma_next);
    if (2 * p + 1 < n) {
      float o1 = noise_flow_one (x, dtx, v, dtv, 2 * p + 1, z1, sigma,
          sigma_next);
      dit_cuda_st (out, dto, 2 * p + 1, o1);
    }
    dit_cuda_st (out, dto, 2 * p, o0);
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

static dit_status
fused_group_vec (const char *op, const char *name, const dit_tensor *t,
    int64_t groups, int64_t cols, int64_t *ld)
{
  int64_t r, c;
  DIT_TRY (dit_cuda_rows (op, name, t, &r, &c, ld));
  if (r < groups || c != cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s is [%lld, %lld], need at "
        "least [%lld, %lld]", op, name, (long long) r, (long long) c,
        (long long) groups, (long long) cols);
  return DIT_OK;
}

dit_status
dit_cuda_layernorm_modulate (dit_backend *be,
    const dit_layernorm_modulate_params *p)
{
  const char *op = "layernorm_modulate";
  int64_t rows, D, ldx, ry, dy, ldy, ldsh, ldsc;
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &rows, &D, &ldx));
  DIT_TRY (dit_cuda_rows (op, "y", p->y, &ry, &dy, &ldy));
  if (ry != rows || dy != D)
    return dit_error (DIT_ERR_INVALID, "%s: y is [%lld, %lld] but x is "
        "[%lld, %lld]", op, (long long) ry, (long long) dy, (long long) rows,
        (long long) D);
  if (p->rows_per_group <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: rows_per_group %lld must be "
        "positive", op, (long long) p->rows_per_group);
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: %lld rows is too many", op,
        (long long) rows);
  if (!(p->eps >= 0.0f))
    return dit_error (DIT_ERR_INVALID, "%s: eps %g is negative or NaN", op,
        (double) p->eps);
  int64_t groups = (rows + p->rows_per_group - 1) / p->rows_per_group;
  DIT_TRY (fused_group_vec (op, "shift", p->shift, groups, D, &ldsh));
  DIT_TRY (fused_group_vec (op, "scale", p->scale, groups, D, &ldsc));
  if (rows == 0 || D == 0)
    return DIT_OK;
  layernorm_modulate_kernel<<<(unsigned) rows, FUSED_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy, p->shift->data, p->shift->dtype, ldsh,
      p->scale->data, p->scale->dtype, ldsc, D, p->rows_per_group, p->eps);
  DIT_CUDA_CHECK_LAUNCH ("layernorm_modulate_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_qk_norm_rope (dit_backend *be, const dit_qk_norm_rope_params *p)
{
  const char *op = "qk_norm_rope";
  int64_t rows, cols, ldx, crows, ccols, ldc, srows, scols, lds;
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &rows, &cols, &ldx));
  DIT_TRY (dit_cuda_check_vector (op, "weight", p->weight, cols));
  DIT_TRY (dit_cuda_rows (op, "cos", p->cos, &crows, &ccols, &ldc));
  DIT_TRY (dit_cuda_rows (op, "sin", p->sin, &srows, &scols, &lds));
  if (ccols != DIT_ROPE_PAIRS || scols != DIT_ROPE_PAIRS || srows != crows)
    return dit_error (DIT_ERR_INVALID, "%s: cos is [%lld, %lld] and sin "
        "[%lld, %lld], two [P, %d] tables expected", op, (long long) crows,
        (long long) ccols, (long long) srows, (long long) scols,
        DIT_ROPE_PAIRS);
  if (p->heads <= 0 || cols != (int64_t) p->heads * 2 * DIT_ROPE_PAIRS)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld columns but %d heads "
        "of 128 need %lld", op, (long long) cols, p->heads,
        (long long) p->heads * 2 * DIT_ROPE_PAIRS);
  if (p->grid_f < 0 || p->grid_h <= 0 || p->grid_w <= 0
      || p->frame_offset < 0 || p->grid_f * p->grid_h * p->grid_w != rows)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld rows but the grid is "
        "%lld x %lld x %lld (frame offset %lld)", op, (long long) rows,
        (long long) p->grid_f, (long long) p->grid_h, (long long) p->grid_w,
        (long long) p->frame_offset);
  if (!(p->eps >= 0.0f))
    return dit_error (DIT_ERR_INVALID, "%s: eps %g is negative or NaN", op,
        (double) p->eps);
  if (rows == 0)
    return DIT_OK;
  int64_t maxpos = p->grid_f - 1 + p->frame_offset;
  if (p->grid_h - 1 > maxpos)
    maxpos = p->grid_h - 1;
  if (p->grid_w - 1 > maxpos)
    maxpos = p->grid_w - 1;
  if (maxpos >= crows || rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: position %lld is outside the "
        "%lld-row table or %lld rows is too many", op, (long long) maxpos,
        (long long) crows, (long long) rows);
  qk_norm_rope_kernel<<<(unsigned) rows, FUSED_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->weight->data, p->weight->dtype, p->cos->data, p->cos->dtype, ldc,
      p->sin->data, p->sin->dtype, lds, cols, p->grid_h, p->grid_w,
      p->frame_offset, p->eps);
  DIT_CUDA_CHECK_LAUNCH ("qk_norm_rope_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_noise_flow (dit_backend *be, const dit_noise_flow_params *p)
{
  const char *op = "noise_flow";
  const dit_tensor *t[3] = { p->x, p->v, p->out };
  const char *names[3] = { "x", "v", "out" };
  for (int i = 0; i < 3; i++) {
    DIT_TRY (dit_cuda_check_tensor (op, names[i], t[i]));
    if (!dit_tensor_is_contiguous (t[i]))
      return dit_error (DIT_ERR_INVALID, "%s: %s must be contiguous", op,
          names[i]);
  }
  int64_t n = dit_tensor_numel (p->x);
  if (dit_tensor_numel (p->v) != n || dit_tensor_numel (p->out) != n)
    return dit_error (DIT_ERR_INVALID, "%s: x, v and out have %lld, %lld "
        "and %lld elements", op, (long long) n,
        (long long) dit_tensor_numel (p->v),
        (long long) dit_tensor_numel (p->out));
  if (n == 0)
    return DIT_OK;
  noise_flow_kernel<<<dit_cuda_grid_1d ((n + 1) / 2, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, p->v->data,
      p->v->dtype, p->out->data, p->out->dtype, n, p->seed, p->stream,
      p->sigma, p->sigma_next);
  DIT_CUDA_CHECK_LAUNCH ("noise_flow_kernel");
  return DIT_OK;
}
