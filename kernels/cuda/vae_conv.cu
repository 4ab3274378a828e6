/* vae_conv — the one WanVAE convolution on CUDA: an implicit GEMM on the
 * tensor cores (kernels/dit_vae_ops.h gives the exact definition).
 *
 * GEMM view: rows are output pixels (frame, ho, wo), columns output
 * channels, K = taps x Cin with the reordered weight [Cout, kt*kh*kw*Cin].
 * For one tap (dt, dh, dw) the K slice of an output pixel is the contiguous
 * channel run of one input pixel (channels-last), so a block gathers its A
 * tile straight from the frames: row = input pixel of that tap or zeros
 * (outside the frame, inside the front time padding, past Cin).  The time
 * axis is [pad_front zeros, prev (the causal cache), x], so streaming is
 * the same kernel as one pass.
 *
 * Tiling: 64 pixels x 64 output channels per 128-thread block, K steps of
 * 32 channels per tap; the four warps each own a 32 x 32 quarter as 2 x 2
 * WMMA 16x16x16 bf16 fragments with f32 accumulators.  Loads are 16-byte
 * vectors when Cin is a multiple of 8 and the views are aligned, scalar
 * otherwise (Cin = 3 of the first encoder conv).  Epilogue: bias and the
 * optional residual (which may alias y: each element is read, then written,
 * by one thread) added in f32, then the optional ReLU, stored in y's dtype.
 *
 * Precision: operands rounded to bf16 (activations of any dtype, f32 ones
 * included), f32 accumulation, f32 epilogue — bf16 GEMM accuracy against the
 * CPU's f32 conv, which the GPU tests bound by NMSE.
 */
#include "vae_cuda.cuh"
#include "vae_conv_mma.cuh"

#include <mma.h>

#define VC_BM 64
#define VC_BN 64
#define VC_BK 32
#define VC_LDS (VC_BK + 8)
#define VC_LDC (VC_BN + 4)
#define VC_MAX_TAPS 27

typedef struct vae_conv_args {
  const void *x, *prev, *w, *bias, *res;
  void *y;
  int dtx, dtp, dtw, dtb, dtr, dty;
  int vecx, vecp, vecw;
  int64_t xs0, ps0, ldw, rs0, ys0;
  int P, H, W, cin;
  int to, ho, wo, cout;
  int kt, kh, kw, st, sh, sw;
  int pad_front, pad_top, pad_left;
  int relu;
} vae_conv_args;

/* 8 consecutive elements (index i .. i+7, all < limit when `full`) as bf16;
 * elements at or past `limit` read as zero. */
__device__ __forceinline__ void
vae_load8 (const void *base, int dt, int vec, int64_t i, int valid,
    __nv_bfloat16 *dst)
{
  if (vec && valid == 8) {
    if (dt == DIT_BF16) {
      *(uint4 *) dst = *(const uint4 *) ((const __nv_bfloat16 *) base + i);
      return;
    }
    if (dt == DIT_F32) {
      float4 a = *(const float4 *) ((const float *) base + i);
      float4 b = *(const float4 *) ((const float *) base + i + 4);
      __nv_bfloat162 *d2 = (__nv_bfloat162 *) dst;
      d2[0] = __floats2bfloat162_rn (a.x, a.y);
      d2[1] = __floats2bfloat162_rn (a.z, a.w);
      d2[2] = __floats2bfloat162_rn (b.x, b.y);
      d2[3] = __floats2bfloat162_rn (b.z, b.w);
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++)
    dst[j] = __float2bfloat16_rn (j < valid ? dit_cuda_ld (base, dt, i + j)
        : 0.0f);
}

__device__ __forceinline__ void
vae_zero8 (__nv_bfloat16 *dst)
{
  *(uint4 *) dst = make_uint4 (0, 0, 0, 0);
}

__global__ void __launch_bounds__ (128)
vae_conv_kernel (vae_conv_args a)
{
  using namespace nvcuda;
  __shared__ __align__ (32) __nv_bfloat16 As[VC_BM][VC_LDS];
  __shared__ __align__ (32) __nv_bfloat16 Bs[VC_BN][VC_LDS];
  __shared__ __align__ (32) float Cs[VC_BM][VC_LDC];
  __shared__ int rt[VC_BM], rh[VC_BM], rw[VC_BM];

  const int tid = threadIdx.x, warp = tid >> 5;
  const int64_t hw = (int64_t) a.ho * a.wo;
  const int64_t npix = (int64_t) a.to * hw;
  const int64_t pix0 = (int64_t) blockIdx.x * VC_BM;
  const int co0 = blockIdx.y * VC_BN;

  if (tid < VC_BM) {
    int64_t p = pix0 + tid;
    if (p < npix) {
      int64_t o = p / hw, r = p % hw;
      rt[tid] = (int) o;
      rh[tid] = (int) (r / a.wo);
      rw[tid] = (int) (r % a.wo);
    } else {
      rt[tid] = -1;
      rh[tid] = rw[tid] = 0;
    }
  }
  __syncthreads ();

  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::fill_fragment (acc[i][j], 0.0f);

  const int64_t kall = (int64_t) a.kt * a.kh * a.kw * a.cin;
  for (int dt = 0, tap = 0; dt < a.kt; dt++)
    for (int dh = 0; dh < a.kh; dh++)
      for (int dw = 0; dw < a.kw; dw++, tap++)
        for (int ci0 = 0; ci0 < a.cin; ci0 += VC_BK) {
          /* A: 64 pixels x 32 channels = 256 runs of 8, two per thread */
#pragma unroll
          for (int c = tid; c < VC_BM * VC_BK / 8; c += 128) {
            const int r = c >> 2, kc = (c & 3) * 8;
            __nv_bfloat16 *dst = &As[r][kc];
            const int ci = ci0 + kc;
            const int valid = a.cin - ci < 8 ? a.cin - ci : 8;
            const int o = rt[r];
            const int vt = o * a.st + dt - a.pad_front;
            const int hi = rh[r] * a.sh + dh - a.pad_top;
            const int wi = rw[r] * a.sw + dw - a.pad_left;
            if (o < 0 || valid <= 0 || vt < 0 || hi < 0 || hi >= a.H || wi < 0
                || wi >= a.W) {
              vae_zero8 (dst);
              continue;
            }
            const int64_t pix = ((int64_t) hi * a.W + wi) * a.cin + ci;
            if (vt < a.P)
              vae_load8 (a.prev, a.dtp, a.vecp, vt * a.ps0 + pix, valid, dst);
            else
              vae_load8 (a.x, a.dtx, a.vecx, (vt - a.P) * a.xs0 + pix, valid,
                  dst);
          }
          /* B: 64 output channels x 32 K, stored [n][k] (column-major B) */
#pragma unroll
          for (int c = tid; c < VC_BN * VC_BK / 8; c += 128) {
            const int r = c >> 2, kc = (c & 3) * 8;
            __nv_bfloat16 *dst = &Bs[r][kc];
            const int ci = ci0 + kc, co = co0 + r;
            const int valid = a.cin - ci < 8 ? a.cin - ci : 8;
            if (co >= a.cout || valid <= 0) {
              vae_zero8 (dst);
              continue;
            }
            vae_load8 (a.w, a.dtw, a.vecw,
                (int64_t) co * a.ldw + (int64_t) tap * a.cin + ci, valid, dst);
          }
          __syncthreads ();
#pragma unroll
          for (int kk = 0; kk < VC_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16,
                wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16,
                wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++)
              wmma::load_matrix_sync (fa[i], &As[wm + 16 * i][kk], VC_LDS);
#pragma unroll
            for (int j = 0; j < 2; j++)
              wmma::load_matrix_sync (fb[j], &Bs[wn + 16 * j][kk], VC_LDS);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
              for (int j = 0; j < 2; j++)
                wmma::mma_sync (acc[i][j], fa[i], fb[j], acc[i][j]);
          }
          __syncthreads ();
        }
  (void) kall;

#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync (&Cs[wm + 16 * i][wn + 16 * j], acc[i][j],
          VC_LDC, wmma::mem_row_major);
  __syncthreads ();

  for (int e = tid; e < VC_BM * VC_BN; e += 128) {
    const int r = e / VC_BN, c = e % VC_BN, co = co0 + c;
    const int o = rt[r];
    if (o < 0 || co >= a.cout)
      continue;
    const int64_t off = ((int64_t) rh[r] * a.wo + rw[r]) * a.cout + co;
    float v = Cs[r][c];
    if (a.bias)
      v += dit_cuda_ld (a.bias, a.dtb, co);
    if (a.res)
      v += dit_cuda_ld (a.res, a.dtr, o * a.rs0 + off);
    if (a.relu)
      v = fmaxf (v, 0.0f);
    dit_cuda_st (a.y, a.dty, o * a.ys0 + off, v);
  }
}

/* ------------------------------------------------------------------------ */

dit_status
dit_cuda_vae_check_frames (const dit_tensor *t, const char *op,
    const char *name, int64_t dims[4])
{
  return dit_check_frames (DIT_DEVICE_CUDA, op, name, t, dims);
}

/* 16-byte vector loads are safe when the base is 16-byte aligned and every
 * run of 8 starts on a multiple of 8 elements (Cin, strides). */
static int
vae_vec_ok (const void *base, int dt, int64_t cin, int64_t s0)
{
  if (dt != DIT_BF16 && dt != DIT_F32)
    return 0;
  return ((uintptr_t) base % 16) == 0 && cin % 8 == 0 && s0 % 8 == 0;
}

dit_status
dit_cuda_vae_conv (dit_backend *be, const dit_vae_conv_params *p)
{
  dit_vae_conv_dims d;
  DIT_TRY (dit_check_vae_conv (DIT_DEVICE_CUDA, p, VC_MAX_TAPS, &d));
  const int64_t *xd = d.x, *pd = d.prev;
  const int st = d.st, sh = d.sh, sw = d.sw;
  const int64_t cin = d.cin, cout = d.cout;
  const int64_t to = d.to, ho = d.ho, wo = d.wo;
  const dit_tensor *w = p->weight;
  if (xd[1] * xd[2] * cin > INT32_MAX || to * ho * wo / VC_BM > INT32_MAX)
    return dit_error (DIT_ERR_INVALID, "vae conv: frames too large");

  if (dit_cuda_vae_conv_small_ok (be, p, cin, cout))
    return dit_cuda_vae_conv_small (be, p, pd[0], to, ho, wo);
  if (dit_cuda_vae_conv_cudnn_usable (p, cin, cout)) {
    const dit_status st = dit_cuda_vae_conv_cudnn (be, p, pd[0], to, ho, wo);
    if (st != DIT_ERR_UNSUPPORTED)
      return st;
    dit_clear_error ();   /* no cuDNN plan for this shape: own kernels */
  }
  const int bn = dit_cuda_vae_conv_mma_block_n (p, cin, cout);
  if (bn)
    return dit_cuda_vae_conv_mma (be, p, bn, (int) pd[0], to, ho, wo);

  vae_conv_args a;
  memset (&a, 0, sizeof a);
  a.x = p->x->data;
  a.dtx = p->x->dtype;
  a.xs0 = p->x->stride[0];
  a.vecx = vae_vec_ok (a.x, a.dtx, cin, a.xs0);
  if (p->prev) {
    a.prev = p->prev->data;
    a.dtp = p->prev->dtype;
    a.ps0 = p->prev->stride[0];
    a.vecp = vae_vec_ok (a.prev, a.dtp, cin, a.ps0);
  }
  a.w = w->data;
  a.dtw = w->dtype;
  a.ldw = w->stride[0];
  a.vecw = vae_vec_ok (a.w, a.dtw, cin, a.ldw);
  if (p->bias) {
    a.bias = p->bias->data;
    a.dtb = p->bias->dtype;
  }
  if (p->residual) {
    a.res = p->residual->data;
    a.dtr = p->residual->dtype;
    a.rs0 = p->residual->stride[0];
  }
  a.y = p->y->data;
  a.dty = p->y->dtype;
  a.ys0 = p->y->stride[0];
  a.P = (int) pd[0];
  a.H = (int) xd[1];
  a.W = (int) xd[2];
  a.cin = (int) cin;
  a.to = (int) to;
  a.ho = (int) ho;
  a.wo = (int) wo;
  a.cout = (int) cout;
  a.kt = p->kt; a.kh = p->kh; a.kw = p->kw;
  a.st = st; a.sh = sh; a.sw = sw;
  a.pad_front = p->pad_front;
  a.pad_top = p->pad_top;
  a.pad_left = p->pad_left;
  a.relu = p->relu;

  dim3 grid ((unsigned) ((to * ho * wo + VC_BM - 1) / VC_BM),
      (unsigned) ((cout + VC_BN - 1) / VC_BN));
  if (grid.y > 65535)
    return dit_error (DIT_ERR_INVALID, "vae conv: %lld output channels",
        (long long) cout);
  vae_conv_kernel<<<grid, 128, 0, dit_cuda_impl (be)->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vae_conv_kernel");
  return DIT_OK;
}
