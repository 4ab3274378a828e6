/* vae_conv_small — the VAE convolution for a few output channels (Cout <= 4)
 * on the CUDA cores: the decoders' last conv to RGB, WanVAE's head (96 -> 3,
 * 3x3x3) and TAEHV's (64 -> 3, 3x3), both at full resolution over every
 * output frame.
 *
 * Why: the tensor-core kernels (vae_conv.cu, vae_conv_mma.cu) tile 64 or
 * more output channels, so with 3 they compute 61 columns of zeros and
 * gather the whole input for it; cuDNN needs Cout % 8 == 0.  Here one thread
 * owns one output pixel and all Cout channels: per tap it reads the input
 * pixel's channel run (16-byte vectors of 8 bf16 or 2 x 4 f32 when Cin is a
 * multiple of 8 and the view aligned, scalars otherwise) and multiplies it
 * with the tap's weights, which the block keeps in shared memory as f32
 * [K][Cout] (every lane of a warp reads the same weight: a broadcast).
 * Neighbouring threads are neighbouring pixels, so the 9 or 27 taps of a
 * warp hit the same lines in L1.  The definition is dit_vae_ops.h's conv
 * (virtual time axis [pad_front zeros, prev, x], any strides and padding,
 * bias, residual, ReLU).
 *
 * Precision: f32 products and accumulation from the stored operands (no
 * rounding of f32 inputs to bf16, unlike the tensor-core kernels), f32
 * epilogue, stored in y's dtype.
 */
#include "vae_cuda.cuh"
#include "vae_conv_mma.cuh"

#include <stdlib.h>
#include <string.h>

#define VS_THREADS 256
#define VS_MAX_COUT 4

typedef struct vs_args {
  const void *x, *prev, *w, *bias, *res;
  void *y;
  int dtx, dtp, dtw, dtb, dtr, dty;
  int vecx, vecp;
  int64_t xs0, ps0, ldw, rs0, ys0;
  int P, H, W, cin;
  int to, ho, wo, cout;
  int kt, kh, kw, st, sh, sw;
  int pad_front, pad_top, pad_left;
  int relu;
} vs_args;

/* acc[co] += sum_j v[j] * ws[(k0 + j) * CO + co] over the channel run of
 * one input pixel (k0 = tap * Cin). */
template <int CO>
__device__ __forceinline__ void
vs_tap (const vs_args &a, const void *base, int dt, int vec, int64_t off,
    const float *ws, int k0, float *acc)
{
  int ci = 0;
  if (vec) {
    for (; ci + 8 <= a.cin; ci += 8) {
      float v[8];
      if (dt == DIT_BF16) {
        const uint4 u = *(const uint4 *) ((const __nv_bfloat16 *) base + off + ci);
        const __nv_bfloat162 *h = (const __nv_bfloat162 *) &u;
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const float2 f = __bfloat1622float2 (h[j]);
          v[2 * j] = f.x;
          v[2 * j + 1] = f.y;
        }
      } else {
        const float4 p = *(const float4 *) ((const float *) base + off + ci);
        const float4 q = *(const float4 *) ((const float *) base + off + ci + 4);
        v[0] = p.x; v[1] = p.y; v[2] = p.z; v[3] = p.w;
        v[4] = q.x; v[5] = q.y; v[6] = q.z; v[7] = q.w;
      }
      const float *wk = ws + (k0 + ci) * CO;
#pragma unroll
      for (int j = 0; j < 8; j++)
#pragma unroll
        for (int co = 0; co < CO; co++)
          acc[co] = fmaf (v[j], wk[j * CO + co], acc[co]);
    }
  }
  for (; ci < a.cin; ci++) {
    const float v = dit_cuda_ld (base, dt, off + ci);
#pragma unroll
    for (int co = 0; co < CO; co++)
      acc[co] = fmaf (v, ws[(k0 + ci) * CO + co], acc[co]);
  }
}

template <int CO>
__global__ void __launch_bounds__ (VS_THREADS)
vs_conv_kernel (vs_args a)
{
  extern __shared__ float vs_w[];      /* [K][CO] */
  const int K = a.kt * a.kh * a.kw * a.cin;
  for (int e = threadIdx.x; e < K * CO; e += VS_THREADS) {
    const int k = e / CO, co = e % CO;
    vs_w[e] = dit_cuda_ld (a.w, a.dtw, (int64_t) co * a.ldw + k);
  }
  __syncthreads ();

  const int64_t hw = (int64_t) a.ho * a.wo;
  const int64_t p = (int64_t) blockIdx.x * VS_THREADS + threadIdx.x;
  if (p >= (int64_t) a.to * hw)
    return;
  const int o = (int) (p / hw);
  const int r = (int) (p - (int64_t) o * hw);
  const int ho = r / a.wo, wo = r % a.wo;
  float acc[CO];
#pragma unroll
  for (int co = 0; co < CO; co++)
    acc[co] = 0.0f;
  for (int dt = 0, tap = 0; dt < a.kt; dt++) {
    const int vt = o * a.st + dt - a.pad_front;
    for (int dh = 0; dh < a.kh; dh++) {
      const int hi = ho * a.sh + dh - a.pad_top;
      for (int dw = 0; dw < a.kw; dw++, tap++) {
        const int wi = wo * a.sw + dw - a.pad_left;
        if (vt < 0 || hi < 0 || hi >= a.H || wi < 0 || wi >= a.W)
          continue;
        const int64_t pix = ((int64_t) hi * a.W + wi) * a.cin;
        if (vt < a.P)
          vs_tap<CO> (a, a.prev, a.dtp, a.vecp, vt * a.ps0 + pix, vs_w,
              tap * a.cin, acc);
        else
          vs_tap<CO> (a, a.x, a.dtx, a.vecx, (vt - a.P) * a.xs0 + pix, vs_w,
              tap * a.cin, acc);
      }
    }
  }
  const int64_t off = (int64_t) r * a.cout;
#pragma unroll
  for (int co = 0; co < CO; co++) {
    float v = acc[co];
    if (a.bias)
      v += dit_cuda_ld (a.bias, a.dtb, co);
    if (a.res)
      v += dit_cuda_ld (a.res, a.dtr, o * a.rs0 + off + co);
    if (a.relu)
      v = fmaxf (v, 0.0f);
    dit_cuda_st (a.y, a.dty, o * a.ys0 + off + co, v);
  }
}

/* ------------------------------------------------------------------------ */

/* 16-byte vectors: bf16 or f32, an aligned base, runs of 8 on multiples of
 * 8 elements. */
static int
vs_vec_ok (const void *base, int dt, int64_t cin, int64_t s0)
{
  if (dt != DIT_BF16 && dt != DIT_F32)
    return 0;
  return (uintptr_t) base % 16 == 0 && cin % 8 == 0 && s0 % 8 == 0;
}

static size_t
vs_smem (const dit_vae_conv_params *p, int64_t cin, int64_t cout)
{
  return (size_t) p->kt * p->kh * p->kw * (size_t) cin * (size_t) cout
      * sizeof (float);
}

int
dit_cuda_vae_conv_small_ok (dit_backend *be, const dit_vae_conv_params *p,
    int64_t cin, int64_t cout)
{
  /* DIT_VAE_CONV_GENERIC forces the generic tensor-core kernel (tests) */
  if (cout < 1 || cout > VS_MAX_COUT || getenv ("DIT_VAE_CONV_GENERIC"))
    return 0;
  return vs_smem (p, cin, cout) <= dit_cuda_impl (be)->smem_optin;
}

template <int CO>
static dit_status
vs_launch (const vs_args &a, size_t smem, cudaStream_t s)
{
  if (smem > 48 * 1024)
    DIT_CUDA_TRY (cudaFuncSetAttribute (vs_conv_kernel<CO>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
  const int64_t npix = (int64_t) a.to * a.ho * a.wo;
  vs_conv_kernel<CO><<<(unsigned) ((npix + VS_THREADS - 1) / VS_THREADS),
      VS_THREADS, smem, s>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vs_conv_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_vae_conv_small (dit_backend *be, const dit_vae_conv_params *p,
    int64_t prev_frames, int64_t to, int64_t ho, int64_t wo)
{
  vs_args a;
  memset (&a, 0, sizeof a);
  const int64_t cin = p->x->shape[3], cout = p->weight->shape[0];
  a.x = p->x->data;
  a.dtx = p->x->dtype;
  a.xs0 = p->x->stride[0];
  a.vecx = vs_vec_ok (a.x, a.dtx, cin, a.xs0);
  if (p->prev) {
    a.prev = p->prev->data;
    a.dtp = p->prev->dtype;
    a.ps0 = p->prev->stride[0];
    a.vecp = vs_vec_ok (a.prev, a.dtp, cin, a.ps0);
  }
  a.w = p->weight->data;
  a.dtw = p->weight->dtype;
  a.ldw = p->weight->stride[0];
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
  a.P = (int) prev_frames;
  a.H = (int) p->x->shape[1];
  a.W = (int) p->x->shape[2];
  a.cin = (int) cin;
  a.to = (int) to;
  a.ho = (int) ho;
  a.wo = (int) wo;
  a.cout = (int) cout;
  a.kt = p->kt; a.kh = p->kh; a.kw = p->kw;
  a.st = p->st > 0 ? p->st : 1;
  a.sh = p->sh > 0 ? p->sh : 1;
  a.sw = p->sw > 0 ? p->sw : 1;
  a.pad_front = p->pad_front;
  a.pad_top = p->pad_top;
  a.pad_left = p->pad_left;
  a.relu = p->relu;
  const size_t smem = vs_smem (p, cin, cout);
  cudaStream_t s = dit_cuda_impl (be)->stream;
  switch (cout) {
    case 1: return vs_launch<1> (a, smem, s);
    case 2: return vs_launch<2> (a, smem, s);
    case 3: return vs_launch<3> (a, smem, s);
    default: return vs_launch<4> (a, smem, s);
  }
}
