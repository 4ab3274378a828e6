/* fp8 — quantize to e4m3, dequantize, LayerNorm into e4m3, and whether a
 * device runs the FP8 ops at all (kernels/dit_ops.h "FP8"; the CPU
 * reference is kernels/cpu/fp8.c, the number rule kernels/dit_fp8.h).
 *
 * quantize_fp8: x [rows, cols] (any 16/32-bit dtype) -> codes + block
 *   scales.  Activation blocks of 128 take one warp per (row, block): each
 *   lane loads 4 consecutive values, one shuffle reduction gives the block's
 *   amax, and each lane stores its 4 codes as one 32-bit word.  Any other
 *   block (a weight's whole row at load time) takes a 256-thread CTA per
 *   (row, block) that reads the block twice (amax, then codes).
 * layernorm_fp8: one 256-thread CTA per row, the statistics as fused.cu's
 *   layernorm_modulate (f32 block sums, two passes), then the row in chunks
 *   of 256 columns: each chunk is two 128-column blocks held by warps 0-3
 *   and 4-7, whose amax is a warp reduction plus 4 values through shared
 *   memory.  Rows of up to 6144 columns (the 14B model's 5120, a multiple
 *   of 128) of an f32 or bf16 x are held in registers instead
 *   (layernorm_fp8_reg_kernel): a warp per 128-column block, four
 *   consecutive columns per lane, so x is read once in vectors, and a
 *   block's amax is one warp reduction.  Every value is quantized from f32,
 *   never rounded to bf16 in between: this is the "scale inside the
 *   producer" of issue 14 — no pass over memory finds an amax or casts.
 * dequantize_fp8: a grid-stride loop over the elements, the code decoded
 *   exactly (e4m3 -> half -> f32) and multiplied by its block's scale in
 *   f32, as the CPU reference does, so both give the same bits.  It runs at
 *   load and re-merge time only (LoRA on FP8 weights), not per forward.
 * The CPU reference sums the LayerNorm statistics in f64; a value on a
 * rounding boundary may get the neighbouring code (test-backend-ops compares
 * dequantized values).
 */
#include "cuda_common.cuh"
#include "fp8.cuh"

#include <stdio.h>

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define FP8_THREADS 256

__device__ __forceinline__ float
fp8_warp_max (float a)
{
  return fp8_group_amax (a, 32);
}

/* One 128-column block held by a warp, four consecutive values v per
 * lane: the block's amax over the warp, its codes as one 32-bit word per
 * lane at dst, and (lane 0) its scale. */
__device__ __forceinline__ void
fp8_store_block128 (const float (&v)[4], uint8_t *dst, float *scale,
    int lane)
{
  float a = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; i++)
    a = fmaxf (a, fabsf (v[i]));
  const float amax = fp8_warp_max (a);
  const float inv = fp8_dev_inv_scale (amax);
  uint32_t word = 0;
#pragma unroll
  for (int i = 0; i < 4; i++)
    word |= (uint32_t) fp8_dev_code (v[i], inv) << (8 * i);
  *(uint32_t *) dst = word;
  if (lane == 0)
    *scale = fp8_dev_scale (amax);
}

/* block == 128: warp w of the CTA owns (row, block) = item blockIdx.x * 8 + w */
__global__ void __launch_bounds__ (FP8_THREADS)
quantize128_kernel (const void *x, int dtx, int64_t ldx, uint8_t *q,
    int64_t ldq, float *scale, int64_t rows, int64_t nblocks)
{
  const int lane = threadIdx.x % 32;
  const int64_t item = (int64_t) blockIdx.x * (FP8_THREADS / 32)
      + threadIdx.x / 32;
  if (item >= rows * nblocks)
    return;
  const int64_t r = item / nblocks, b = item % nblocks;
  const int64_t c = b * 128 + lane * 4;
  float v[4];
#pragma unroll
  for (int i = 0; i < 4; i++)
    v[i] = dit_cuda_ld (x, dtx, r * ldx + c + i);
  fp8_store_block128 (v, q + r * ldq + c, scale + b * rows + r, lane);
}

/* any block: one CTA per (row, block) */
__global__ void __launch_bounds__ (FP8_THREADS)
quantize_kernel (const void *x, int dtx, int64_t ldx, uint8_t *q, int64_t ldq,
    float *scale, int64_t rows, int64_t block)
{
  __shared__ float red[FP8_THREADS / 32];
  const int64_t r = blockIdx.x, b = blockIdx.y;
  const int64_t c0 = b * block;
  float a = 0.0f;
  for (int64_t c = threadIdx.x; c < block; c += FP8_THREADS)
    a = fmaxf (a, fabsf (dit_cuda_ld (x, dtx, r * ldx + c0 + c)));
  a = fp8_warp_max (a);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0)
    red[warp] = a;
  __syncthreads ();
  a = lane < FP8_THREADS / 32 ? red[lane] : 0.0f;
  const float amax = fp8_warp_max (a);
  const float inv = fp8_dev_inv_scale (amax);
  for (int64_t c = threadIdx.x; c < block; c += FP8_THREADS)
    q[r * ldq + c0 + c] = fp8_dev_code (dit_cuda_ld (x, dtx, r * ldx + c0 + c),
        inv);
  if (threadIdx.x == 0)
    scale[b * rows + r] = fp8_dev_scale (amax);
}

__global__ void __launch_bounds__ (FP8_THREADS)
layernorm_fp8_kernel (const void *x, int dtx, int64_t ldx,
    const void *w, int dtw, const void *bias, int dtb,
    const void *shift, int dtsh, int64_t ldsh,
    const void *scale, int dtsc, int64_t ldsc,
    uint8_t *y, int64_t ldy, float *ys, int64_t rows, int64_t D, int64_t rpg,
    float eps)
{
  __shared__ float red[FP8_THREADS / 32];
  __shared__ float bmax[FP8_THREADS / 32];
  const int64_t row = blockIdx.x, g = row / rpg;
  const int64_t xo = row * ldx;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FP8_THREADS)
    s += dit_cuda_ld (x, dtx, xo + c);
  const float mean = dit_block_sum<FP8_THREADS> (s, red) / (float) D;
  float sq = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += FP8_THREADS) {
    float d = dit_cuda_ld (x, dtx, xo + c) - mean;
    sq += d * d;
  }
  const float var = dit_block_sum<FP8_THREADS> (sq, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
  for (int64_t c0 = 0; c0 < D; c0 += FP8_THREADS) {
    const int64_t c = c0 + threadIdx.x;
    const bool ok = c < D;
    float v = 0.0f;
    if (ok) {
      v = (dit_cuda_ld (x, dtx, xo + c) - mean) * rstd;
      if (w)
        v = v * dit_cuda_ld (w, dtw, c) + dit_cuda_ld (bias, dtb, c);
      if (shift)
        v = v * (1.0f + dit_cuda_ld (scale, dtsc, g * ldsc + c))
            + dit_cuda_ld (shift, dtsh, g * ldsh + c);
    }
    const float a = fp8_warp_max (ok ? fabsf (v) : 0.0f);
    if (lane == 0)
      bmax[warp] = a;
    __syncthreads ();
    /* warps 0-3 hold columns [c0, c0 + 128), warps 4-7 the next 128 */
    const int h = warp / 4;
    const float amax = fmaxf (fmaxf (bmax[4 * h], bmax[4 * h + 1]),
        fmaxf (bmax[4 * h + 2], bmax[4 * h + 3]));
    if (ok) {
      y[row * ldy + c] = fp8_dev_code (v, fp8_dev_inv_scale (amax));
      if ((threadIdx.x & 127) == 0)
        ys[(c / 128) * rows + row] = fp8_dev_scale (amax);
    }
    __syncthreads ();   /* bmax is rewritten by the next chunk */
  }
}

/* layernorm_fp8_kernel with the row in registers: warp w holds the
 * 128-column blocks w, w + 8, ... (NB of them), lane l four consecutive
 * columns 4l .. 4l + 3 of each, so x is read once with 8- or 16-byte loads
 * all issued up front, a block's amax is one warp reduction (no shared
 * memory, no barrier) and its codes one 32-bit store per lane
 * (fp8_store_block128, as quantize_fp8's).  The
 * statistics are f32 block sums in another order than the streaming
 * kernel's (both are within the CPU reference's rounding).  TX is x's
 * dtype, TP the dtype of weight, bias, shift and scale; the launcher takes
 * this kernel only where D is a multiple of 128 of at most 6144, those
 * parameters agree in dtype and every row is aligned for the vectors. */
template <typename T> struct fp8_vec4;
template <> struct fp8_vec4<float> { typedef float4 type; };
template <> struct fp8_vec4<__nv_bfloat16> { typedef uint2 type; };

__device__ __forceinline__ void
fp8_unpack4 (const float4 &u, float (&v)[4])
{
  v[0] = u.x; v[1] = u.y; v[2] = u.z; v[3] = u.w;
}

__device__ __forceinline__ void
fp8_unpack4 (const uint2 &u, float (&v)[4])
{
  const __nv_bfloat162 lo = *(const __nv_bfloat162 *) &u.x;
  const __nv_bfloat162 hi = *(const __nv_bfloat162 *) &u.y;
  v[0] = __low2float (lo); v[1] = __high2float (lo);
  v[2] = __low2float (hi); v[3] = __high2float (hi);
}

/* Four consecutive values of a T row at element c (aligned: the launcher
 * checked). */
template <typename T>
__device__ __forceinline__ void
fp8_ld4 (const T *p, int c, float (&v)[4])
{
  fp8_unpack4 (*(const typename fp8_vec4<T>::type *) (p + c), v);
}

template <int NB, typename TX, typename TP>
__global__ void __launch_bounds__ (FP8_THREADS)
layernorm_fp8_reg_kernel (const void *xv, int64_t ldx, const void *wv,
    const void *bv, const void *shv, int64_t ldsh, const void *scv,
    int64_t ldsc, uint8_t *y, int64_t ldy, float *ys, int64_t rows,
    int64_t D, int64_t rpg, float eps)
{
  __shared__ float red[FP8_THREADS / 32];
  const int64_t row = blockIdx.x, g = row / rpg;
  const TX *xr = (const TX *) xv + row * ldx;
  const TP *w = (const TP *) wv, *bias = (const TP *) bv;
  const TP *shift = shv ? (const TP *) shv + g * ldsh : NULL;
  const TP *scale = scv ? (const TP *) scv + g * ldsc : NULL;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nblk = (int) (D / 128);
  float v[NB][4];
#pragma unroll
  for (int b = 0; b < NB; b++) {
    const int blk = warp + 8 * b;
    if (blk < nblk) {
      fp8_ld4 (xr, 128 * blk + 4 * lane, v[b]);
    } else {
#pragma unroll
      for (int e = 0; e < 4; e++)
        v[b][e] = 0.0f;
    }
  }
  float s = 0.0f;
#pragma unroll
  for (int b = 0; b < NB; b++)
#pragma unroll
    for (int e = 0; e < 4; e++)
      s += v[b][e];
  const float mean = dit_block_sum<FP8_THREADS> (s, red) / (float) D;
  float sq = 0.0f;
#pragma unroll
  for (int b = 0; b < NB; b++)
    if (warp + 8 * b < nblk)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float d = v[b][e] - mean;
        sq += d * d;
      }
  const float var = dit_block_sum<FP8_THREADS> (sq, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
  uint8_t *yr = y + row * ldy;
#pragma unroll
  for (int b = 0; b < NB; b++) {
    const int blk = warp + 8 * b;
    if (blk >= nblk)
      break;
    const int c = 128 * blk + 4 * lane;
    float u[4], wa[4], ba[4], sha[4], sca[4];
    if (w) {
      fp8_ld4 (w, c, wa);
      fp8_ld4 (bias, c, ba);
    }
    if (shift) {
      fp8_ld4 (shift, c, sha);
      fp8_ld4 (scale, c, sca);
    }
#pragma unroll
    for (int e = 0; e < 4; e++) {
      u[e] = (v[b][e] - mean) * rstd;
      if (w)
        u[e] = u[e] * wa[e] + ba[e];
      if (shift)
        u[e] = u[e] * (1.0f + sca[e]) + sha[e];
    }
    fp8_store_block128 (u, yr + c, ys + (int64_t) blk * rows + row, lane);
  }
}

typedef void (*layernorm_fp8_fn) (const void *, int64_t, const void *,
    const void *, const void *, int64_t, const void *, int64_t, uint8_t *,
    int64_t, float *, int64_t, int64_t, int64_t, float);

template <typename TX, typename TP>
static layernorm_fp8_fn
layernorm_fp8_reg (int nb)
{
  switch (nb) {
#define LN8(n) case n: return layernorm_fp8_reg_kernel<n, TX, TP>;
    DIT_CUDA_ROW_NB_CASES (LN8)
#undef LN8
    default: return NULL;
  }
}

/* 1 when a [.., ld] row tensor of element size es at p is aligned for
 * 4-element vectors. */
static int
fp8_rows_vec4 (const void *p, int64_t ld, size_t es)
{
  return !p || ((uintptr_t) p % (4 * es) == 0 && (ld * es) % (4 * es) == 0);
}

/* The register kernel for this call, NULL where it does not take it (D
 * not a multiple of 128 or above 6144, an f16 x, parameters of mixed or
 * f16 dtypes, rows not aligned for 4-element vectors). */
static layernorm_fp8_fn
layernorm_fp8_pick (const dit_layernorm_fp8_params *p, int64_t D,
    int64_t ldx, int64_t ldsh, int64_t ldsc, int64_t ldy)
{
  const int nb = dit_cuda_row_nb (D);
  if (D % 128 || !nb)
    return NULL;
  const dit_tensor *par[4] = { p->weight, p->bias, p->shift, p->scale };
  const int64_t ld[4] = { 0, 0, ldsh, ldsc };
  int tp = -1;
  for (int i = 0; i < 4; i++) {
    if (!par[i])
      continue;
    if (tp >= 0 && (int) par[i]->dtype != tp)
      return NULL;
    tp = (int) par[i]->dtype;
  }
  if (tp >= 0 && tp != DIT_F32 && tp != DIT_BF16)
    return NULL;
  const int tx = (int) p->x->dtype;
  if (tx != DIT_F32 && tx != DIT_BF16)
    return NULL;
  const size_t ps = tp == DIT_F32 ? 4 : 2;
  for (int i = 0; i < 4; i++)
    if (par[i] && !fp8_rows_vec4 (par[i]->data, ld[i], ps))
      return NULL;
  if (!fp8_rows_vec4 (p->x->data, ldx, tx == DIT_F32 ? 4 : 2)
      || (uintptr_t) p->y->data % 4 || ldy % 4)
    return NULL;
  if (tx == DIT_F32)
    return tp == DIT_BF16 ? layernorm_fp8_reg<float, __nv_bfloat16> (nb)
        : layernorm_fp8_reg<float, float> (nb);
  return tp == DIT_BF16 ? layernorm_fp8_reg<__nv_bfloat16, __nv_bfloat16> (nb)
      : layernorm_fp8_reg<__nv_bfloat16, float> (nb);
}

__global__ void
dequantize_kernel (const uint8_t *q, int64_t ldq, const float *scale,
    int64_t block, void *y, int dty, int64_t ldy, int64_t rows, int64_t cols)
{
  DIT_CUDA_GRID_LOOP (i, rows * cols) {
    const int64_t r = i / cols, c = i % cols;
    const float v = fp8_dev_decode (q[r * ldq + c]) * scale[(c / block) * rows + r];
    dit_cuda_st (y, dty, r * ldy + c, v);
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

dit_status
dit_cuda_launch_quantize_fp8 (cudaStream_t s, const void *x, int dtx,
    int64_t ldx, void *q, float *scale, int64_t rows, int64_t cols,
    int64_t block)
{
  if (rows == 0 || cols == 0)
    return DIT_OK;
  if (block == 128 && ((uintptr_t) q % 4) == 0) {
    const int64_t items = rows * (cols / 128);
    const int64_t ctas = (items + FP8_THREADS / 32 - 1) / (FP8_THREADS / 32);
    if (ctas > 0x7fffffff)
      return dit_error (DIT_ERR_INVALID, "quantize_fp8: %lld rows too many",
          (long long) rows);
    quantize128_kernel<<<(unsigned) ctas, FP8_THREADS, 0, s>>> (x, dtx, ldx,
        (uint8_t *) q, cols, scale, rows, cols / 128);
    DIT_CUDA_CHECK_LAUNCH ("quantize128_kernel");
    return DIT_OK;
  }
  if (rows > 0x7fffffff || cols / block > 65535)
    return dit_error (DIT_ERR_INVALID, "quantize_fp8: grid %lld x %lld too "
        "large", (long long) rows, (long long) (cols / block));
  dim3 grid ((unsigned) rows, (unsigned) (cols / block));
  quantize_kernel<<<grid, FP8_THREADS, 0, s>>> (x, dtx, ldx, (uint8_t *) q,
      cols, scale, rows, block);
  DIT_CUDA_CHECK_LAUNCH ("quantize_kernel");
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* ops */

dit_status
dit_cuda_fp8_check (dit_backend *be)
{
  dit_cuda_backend *cb = dit_cuda_impl (be);
  if (cb->cc_major > 8 || (cb->cc_major == 8 && cb->cc_minor >= 9))
    return DIT_OK;
  return dit_error (DIT_ERR_UNSUPPORTED, "fp8: CUDA device %d '%s' has "
      "compute capability %d.%d; FP8 (e4m3) needs the tensor cores of compute "
      "capability 8.9 or newer (Ada, Hopper, Blackwell): use dtype bf16",
      cb->device, cb->device_name, cb->cc_major, cb->cc_minor);
}

dit_status
dit_cuda_quantize_fp8 (dit_backend *be, const dit_quantize_fp8_params *p)
{
  const char *op = "quantize_fp8";
  int64_t R, C, ldx, Rq, Cq, ldq;
  DIT_TRY (dit_cuda_fp8_check (be));
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &R, &C, &ldx));
  DIT_TRY (dit_cuda_fp8_rows (op, "q", p->q, p->scale, p->block, &Rq, &Cq, &ldq));
  if (Rq != R || Cq != C)
    return dit_error (DIT_ERR_INVALID, "%s: q is [%lld, %lld] but x is "
        "[%lld, %lld]", op, (long long) Rq, (long long) Cq, (long long) R,
        (long long) C);
  if (ldq != C && R > 1)
    return dit_error (DIT_ERR_INVALID, "%s: q must have contiguous rows", op);
  return dit_cuda_launch_quantize_fp8 (dit_cuda_impl (be)->stream, p->x->data,
      p->x->dtype, ldx, p->q->data, (float *) p->scale->data, R, C, p->block);
}

dit_status
dit_cuda_dequantize_fp8 (dit_backend *be, const dit_dequantize_fp8_params *p)
{
  dit_rows qv, yv;
  DIT_TRY (dit_check_dequantize_fp8 (DIT_DEVICE_CUDA, p, &qv, &yv, NULL));
  const int64_t R = qv.rows, C = qv.cols, ldq = qv.ld, ldy = yv.ld;
  if (R == 0 || C == 0)
    return DIT_OK;
  dequantize_kernel<<<dit_cuda_grid_1d (R * C, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> ((const uint8_t *) p->q->data, ldq,
      (const float *) p->scale->data, p->block, p->y->data, p->y->dtype, ldy,
      R, C);
  DIT_CUDA_CHECK_LAUNCH ("dequantize_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_layernorm_fp8 (dit_backend *be, const dit_layernorm_fp8_params *p)
{
  const char *op = "layernorm_fp8";
  int64_t R, D, ldx, Ry, Dy, ldy, G, Dg, ldsh = 0, ldsc = 0;
  DIT_TRY (dit_cuda_fp8_check (be));
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &R, &D, &ldx));
  DIT_TRY (dit_cuda_fp8_rows (op, "y", p->y, p->y_scale, p->block, &Ry, &Dy,
      &ldy));
  if (Ry != R || Dy != D)
    return dit_error (DIT_ERR_INVALID, "%s: y is [%lld, %lld] but x is "
        "[%lld, %lld]", op, (long long) Ry, (long long) Dy, (long long) R,
        (long long) D);
  if (p->block != 128)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: blocks of %lld columns (the "
        "CUDA kernel quantizes in blocks of 128)", op, (long long) p->block);
  if ((p->weight == NULL) != (p->bias == NULL)
      || (p->shift == NULL) != (p->scale == NULL))
    return dit_error (DIT_ERR_INVALID, "%s: weight/bias and shift/scale come "
        "in pairs", op);
  if (p->weight) {
    DIT_TRY (dit_cuda_check_vector (op, "weight", p->weight, D));
    DIT_TRY (dit_cuda_check_vector (op, "bias", p->bias, D));
  }
  if (p->shift) {
    if (p->rows_per_group <= 0)
      return dit_error (DIT_ERR_INVALID, "%s: rows_per_group %lld", op,
          (long long) p->rows_per_group);
    DIT_TRY (dit_cuda_rows (op, "shift", p->shift, &G, &Dg, &ldsh));
    int64_t need = R > 0 ? (R - 1) / p->rows_per_group + 1 : 0;
    if (Dg != D || G < need)
      return dit_error (DIT_ERR_INVALID, "%s: shift is [%lld, %lld], [%lld, "
          "%lld] needed", op, (long long) G, (long long) Dg, (long long) need,
          (long long) D);
    DIT_TRY (dit_cuda_rows (op, "scale", p->scale, &G, &Dg, &ldsc));
    if (Dg != D || G < need)
      return dit_error (DIT_ERR_INVALID, "%s: scale is [%lld, %lld], [%lld, "
          "%lld] needed", op, (long long) G, (long long) Dg, (long long) need,
          (long long) D);
  }
  if (R == 0 || D == 0)
    return DIT_OK;
  if (R > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: %lld rows", op, (long long) R);
  const layernorm_fp8_fn reg = layernorm_fp8_pick (p, D, ldx, ldsh, ldsc,
      ldy);
  if (reg) {
    reg<<<(unsigned) R, FP8_THREADS, 0, dit_cuda_impl (be)->stream>>> (
        p->x->data, ldx, p->weight ? p->weight->data : NULL,
        p->bias ? p->bias->data : NULL, p->shift ? p->shift->data : NULL,
        ldsh, p->scale ? p->scale->data : NULL, ldsc,
        (uint8_t *) p->y->data, ldy, (float *) p->y_scale->data, R, D,
        p->shift ? p->rows_per_group : 1, p->eps);
    DIT_CUDA_CHECK_LAUNCH ("layernorm_fp8_reg_kernel");
    return DIT_OK;
  }
  layernorm_fp8_kernel<<<(unsigned) R, FP8_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->weight ? p->weight->data : NULL, p->weight ? (int) p->weight->dtype : 0,
      p->bias ? p->bias->data : NULL, p->bias ? (int) p->bias->dtype : 0,
      p->shift ? p->shift->data : NULL, p->shift ? (int) p->shift->dtype : 0,
      ldsh, p->scale ? p->scale->data : NULL,
      p->scale ? (int) p->scale->dtype : 0, ldsc, (uint8_t *) p->y->data, ldy,
      (float *) p->y_scale->data, R, D, p->shift ? p->rows_per_group : 1,
      p->eps);
  DIT_CUDA_CHECK_LAUNCH ("layernorm_fp8_kernel");
  return DIT_OK;
}
