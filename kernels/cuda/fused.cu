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
  const float mean = dit_block_sum<FUSED_THREADS> (s, red) / (float) D;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS) {
    float d = dit_cuda_ld (x, dtx, xo + c) - mean;
    q += d * d;
  }
  const float var = dit_block_sum<FUSED_THREADS> (q, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
  for (int64_t c = threadIdx.x; c < D; c += FUSED_THREADS) {
    float v = fused_round ((dit_cuda_ld (x, dtx, xo + c) - mean) * rstd, dty);
    float sc = dit_cuda_ld (scale, dtsc, g * ldsc + c);
    float sh = dit_cuda_ld (shift, dtsh, g * ldsh + c);
    dit_cuda_st (y, dty, yo + c, v * (1.0f + sc) + sh);
  }
}

/* layernorm_modulate_kernel with the row in registers (4 NB columns per
 * thread, NB = dit_cuda_row_nb): x is read once with all its loads in flight;
 * the statistics, the rounding and the modulation are the streaming
 * kernel's in the same order, so both give the same bits.  x is f32 (the
 * residual stream); TP is the dtype of shift and scale, TY of y. */
__device__ __forceinline__ float
fused_round_t (float v, float *)
{
  return v;
}

__device__ __forceinline__ float
fused_round_t (float v, __nv_bfloat16 *)
{
  return __bfloat162float (__float2bfloat16_rn (v));
}

__device__ __forceinline__ void
fused_store_t (float *p, float v)
{
  *p = v;
}

__device__ __forceinline__ void
fused_store_t (__nv_bfloat16 *p, float v)
{
  *p = __float2bfloat16_rn (v);
}

template <int NB, typename TP, typename TY>
__global__ void __launch_bounds__ (FUSED_THREADS)
layernorm_modulate_reg_kernel (const float *x, int64_t ldx, void *y,
    int64_t ldy, const void *shift, int64_t ldsh, const void *scale,
    int64_t ldsc, int64_t D, int64_t rpg, float eps)
{
  __shared__ float red[FUSED_THREADS / 32];
  const int64_t row = blockIdx.x, g = row / rpg;
  const float *xr = x + row * ldx;
  TY *yr = (TY *) y + row * ldy;
  const TP *sh = (const TP *) shift + g * ldsh;
  const TP *sc = (const TP *) scale + g * ldsc;
  constexpr int NJ = 4 * NB;   /* columns t, t + 256, ... of thread t */
  const int t = threadIdx.x;
  const int nv = (int) ((D - t + FUSED_THREADS - 1) / FUSED_THREADS);
  float v[NJ];
#pragma unroll
  for (int j = 0; j < NJ; j++)
    v[j] = j < nv ? xr[t + FUSED_THREADS * j] : 0.0f;
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < NJ; j++)
    if (j < nv)
      s += v[j];
  const float mean = dit_block_sum<FUSED_THREADS> (s, red) / (float) D;
  float q = 0.0f;
#pragma unroll
  for (int j = 0; j < NJ; j++)
    if (j < nv) {
      float d = v[j] - mean;
      q += d * d;
    }
  const float var = dit_block_sum<FUSED_THREADS> (q, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
#pragma unroll
  for (int j = 0; j < NJ; j++) {
    if (j >= nv)
      break;
    const int c = t + FUSED_THREADS * j;
    float u = fused_round_t ((v[j] - mean) * rstd, (TY *) 0);
    float scv = dit_cuda_to_f32 (sc[c]);
    float shv = dit_cuda_to_f32 (sh[c]);
    fused_store_t (yr + c, u * (1.0f + scv) + shv);
  }
}

typedef void (*layernorm_modulate_fn) (const float *, int64_t, void *,
    int64_t, const void *, int64_t, const void *, int64_t, int64_t, int64_t,
    float);

template <typename TP, typename TY>
static layernorm_modulate_fn
layernorm_modulate_reg (int nb)
{
  switch (nb) {
#define LNM(n) case n: return layernorm_modulate_reg_kernel<n, TP, TY>;
    DIT_CUDA_ROW_NB_CASES (LNM)
#undef LNM
    default: return NULL;
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
  const float rs = rsqrtf (dit_block_sum<FUSED_THREADS> (q, red) / (float) D
      + eps);
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

dit_status
dit_cuda_layernorm_modulate (dit_backend *be,
    const dit_layernorm_modulate_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_layernorm_modulate (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, D = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  const int64_t ldsh = d.a.ld, ldsc = d.b.ld;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "layernorm_modulate: %lld rows is too "
        "many", (long long) rows);
  if (rows == 0 || D == 0)
    return DIT_OK;
  const int nb = dit_cuda_row_nb (D);
  const int tp = p->shift->dtype, ty = p->y->dtype;
  layernorm_modulate_fn reg = NULL;
  if (nb && p->x->dtype == DIT_F32 && p->scale->dtype == tp
      && (tp == DIT_F32 || tp == DIT_BF16) && (ty == DIT_F32 || ty == DIT_BF16))
    reg = tp == DIT_F32
        ? (ty == DIT_F32 ? layernorm_modulate_reg<float, float> (nb)
            : layernorm_modulate_reg<float, __nv_bfloat16> (nb))
        : (ty == DIT_F32 ? layernorm_modulate_reg<__nv_bfloat16, float> (nb)
            : layernorm_modulate_reg<__nv_bfloat16, __nv_bfloat16> (nb));
  if (reg) {
    reg<<<(unsigned) rows, FUSED_THREADS, 0, dit_cuda_impl (be)->stream>>> (
        (const float *) p->x->data, ldx, p->y->data, ldy, p->shift->data,
        ldsh, p->scale->data, ldsc, D, p->rows_per_group, p->eps);
    DIT_CUDA_CHECK_LAUNCH ("layernorm_modulate_reg_kernel");
    return DIT_OK;
  }
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
  dit_rope_dims d;
  DIT_TRY (dit_check_qk_norm_rope (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, cols = d.x.cols, ldx = d.x.ld;
  const int64_t ldc = d.cos.ld, lds = d.sin.ld;
  if (rows == 0)
    return DIT_OK;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "qk_norm_rope: %lld rows is too many",
        (long long) rows);
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
  int64_t n;
  DIT_TRY (dit_check_noise_flow (DIT_DEVICE_CUDA, p, &n));
  if (n == 0)
    return DIT_OK;
  noise_flow_kernel<<<dit_cuda_grid_1d ((n + 1) / 2, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, p->v->data,
      p->v->dtype, p->out->data, p->out->dtype, n, p->seed, p->stream,
      p->sigma, p->sigma_next);
  DIT_CUDA_CHECK_LAUNCH ("noise_flow_kernel");
  return DIT_OK;
}
