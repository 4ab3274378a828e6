/* vae_conv_mma — the fast path of the WanVAE convolution on CUDA: the same
 * implicit GEMM as vae_conv.cu (rows = output pixels, columns = output
 * channels, K = taps x Cin, A gathered per tap straight from channels-last
 * frames), written for the shapes that carry the VAE's time: bf16 frames
 * and weights, Cin a multiple of 32 (96, 192, 384), Cout a multiple of 64,
 * 96 or 128.
 *
 * Why a second kernel: the generic one (one shared-memory stage, WMMA,
 * 64 x 64 tiles, synchronous loads) keeps the tensor cores idle while it
 * waits on the gathers; this one streams the gathers with cp.async through
 * a 4-stage shared-memory ring (zero-fill for padding and out-of-frame
 * taps, so no branch touches shared memory), feeds mma.sync m16n8k16 from
 * ldmatrix, and uses 128-pixel x BN-channel tiles on 8 warps (4 along the
 * pixels x 2 along the channels; BN = 128, 96 or 64 so that Cout = 384,
 * 192 and 96 are covered without idle columns).
 *
 * K order: tap-major, then 32-channel slices, the order of the reordered
 * weight [Cout, kt*kh*kw*Cin]; one K step = one tap x 32 channels, i.e. 64
 * contiguous bytes of one input pixel per row.  Shared rows are padded to
 * 40 elements (80 bytes) so the 8 rows of every ldmatrix phase fall in
 * distinct banks.
 *
 * Epilogue: bias and the optional residual (which may alias y: each element
 * is read, then written, by one thread) added in f32, then the optional
 * ReLU, stored in y's dtype.
 * Precision: bf16 operands, f32 accumulation — the same arithmetic as the
 * generic kernel up to the summation order; both are checked against the
 * CPU's f32 conv by tests/gpu/test_cuda_vae.c.
 */
#include "vae_cuda.cuh"
#include "vae_conv_mma.cuh"
#include "mma_sync.cuh"

#include <stdlib.h>
#include <string.h>

#define VM_BM 128
#define VM_BK 32
#define VM_LDS 40
#define VM_STAGES 4
#define VM_THREADS 256

struct vm_args {
  const __nv_bfloat16 *x, *prev, *w;
  const void *bias, *res;
  void *y;
  int dtb, dtr, dty;
  int64_t xs0, ps0, ldw, rs0, ys0;
  int P, H, W, cin;
  int to, ho, wo, cout;
  int kt, kh, kw, st, sh, sw;
  int pad_front, pad_top, pad_left;
  int relu;
};

/* Activation gathers go through L1 (.ca): the 27 taps of neighbouring
 * output pixels read the same input pixels, so most of them hit L1 instead
 * of L2; weights are read once per block and bypass it (.cg). */
template <int BM, int BN>
__global__ void __launch_bounds__ (VM_THREADS, 2)
vm_conv_kernel (vm_args a)
{
  constexpr int WM = BM / 4;          /* pixels per warp */
  constexpr int MI = WM / 16;         /* m16 blocks per warp */
  constexpr int RA = BM / 64;         /* A rows gathered per thread */
  constexpr int WN = BN / 2;          /* channels per warp */
  constexpr int NB = WN / 8;          /* n8 blocks per warp (even) */
  extern __shared__ __align__ (16) __nv_bfloat16 vm_smem[];
  __nv_bfloat16 *As = vm_smem;                              /* [S][BM][LDS] */
  __nv_bfloat16 *Bs = vm_smem + VM_STAGES * BM * VM_LDS;    /* [S][BN][LDS] */

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t hw = (int64_t) a.ho * a.wo;
  const int64_t npix = (int64_t) a.to * hw;
  const int64_t pix0 = (int64_t) blockIdx.x * BM;
  const int co0 = blockIdx.y * BN;

  /* A gathers: this thread copies 16-byte chunk `ac` of rows ar + 64 i. */
  const int ac = tid & 3, ar = tid >> 2;
  int rt0[RA], rh0[RA], rw0[RA];
#pragma unroll
  for (int i = 0; i < RA; i++) {
    int64_t p = pix0 + ar + 64 * i;
    if (p < npix) {
      int64_t o = p / hw, r = p % hw;
      rt0[i] = (int) o * a.st - a.pad_front;
      rh0[i] = (int) (r / a.wo) * a.sh - a.pad_top;
      rw0[i] = (int) (r % a.wo) * a.sw - a.pad_left;
    } else {
      rt0[i] = -1 << 28;   /* never a valid frame */
      rh0[i] = rw0[i] = 0;
    }
  }
  const int slices = a.cin / VM_BK;
  const int ktiles = a.kt * a.kh * a.kw * slices;

  /* Loads are issued in K order exactly once, so the tap and slice of the
   * next one are counters, not divisions; offsets fit in 32 bits (checked
   * on the host). */
  int l_slice = 0, l_dw = 0, l_dh = 0, l_dt = 0, l_wofs = 0;
  auto load_stage = [&] (int stage) {
    const int ci = l_slice * VM_BK + ac * 8;
    __nv_bfloat16 *as = As + stage * BM * VM_LDS;
#pragma unroll
    for (int i = 0; i < RA; i++) {
      const int vt = rt0[i] + l_dt, hi = rh0[i] + l_dh, wi = rw0[i] + l_dw;
      const bool ok = vt >= 0 && (unsigned) hi < (unsigned) a.H
          && (unsigned) wi < (unsigned) a.W;
      const __nv_bfloat16 *src = a.x;   /* any valid address when !ok */
      if (ok) {
        const int pix = (hi * a.W + wi) * a.cin + ci;
        src = vt < a.P ? a.prev + (vt * (int) a.ps0 + pix)
            : a.x + ((vt - a.P) * (int) a.xs0 + pix);
      }
      ptx_cp_async16_ca (as + (ar + 64 * i) * VM_LDS + ac * 8, src, ok ? 16 : 0);
    }
    __nv_bfloat16 *bs = Bs + stage * BN * VM_LDS;
#pragma unroll
    for (int c = tid; c < BN * 4; c += VM_THREADS) {
      const int n = c >> 2, kc = (c & 3) * 8;
      ptx_cp_async16_cg (bs + n * VM_LDS + kc, a.w + ((co0 + n) * (int) a.ldw + l_wofs
              + kc), 16);
    }
    l_wofs += VM_BK;
    if (++l_slice == slices) {
      l_slice = 0;
      if (++l_dw == a.kw) {
        l_dw = 0;
        if (++l_dh == a.kh) {
          l_dh = 0;
          l_dt++;
        }
      }
    }
  };

  float acc[MI][NB][4];
#pragma unroll
  for (int i = 0; i < MI; i++)
#pragma unroll
    for (int j = 0; j < NB; j++)
#pragma unroll
      for (int k = 0; k < 4; k++)
        acc[i][j][k] = 0.0f;

#pragma unroll
  for (int s = 0; s < VM_STAGES - 1; s++) {
    if (s < ktiles)
      load_stage (s);
    ptx_cp_commit ();
  }

  const int wm = (warp & 3) * WM, wn = (warp >> 2) * WN;
  for (int kti = 0; kti < ktiles; kti++) {
    ptx_cp_wait<VM_STAGES - 2> ();
    __syncthreads ();
    const int next = kti + VM_STAGES - 1;
    if (next < ktiles)
      load_stage (next % VM_STAGES);
    ptx_cp_commit ();

    const __nv_bfloat16 *as = As + (kti % VM_STAGES) * BM * VM_LDS;
    const __nv_bfloat16 *bs = Bs + (kti % VM_STAGES) * BN * VM_LDS;
#pragma unroll
    for (int kk = 0; kk < VM_BK; kk += 16) {
      unsigned af[MI][4];
#pragma unroll
      for (int i = 0; i < MI; i++)
        ptx_ldmatrix_x4 (af[i], as + (wm + 16 * i + (lane & 15)) * VM_LDS + kk
            + (lane >> 4) * 8);
#pragma unroll
      for (int j = 0; j < NB; j += 2) {
        unsigned bf[4];
        ptx_ldmatrix_x4 (bf, bs + (wn + 8 * j + (lane & 7) + ((lane >> 4) << 3))
            * VM_LDS + kk + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int i = 0; i < MI; i++) {
          ptx_mma_bf16 (acc[i][j], af[i], bf[0], bf[1]);
          ptx_mma_bf16 (acc[i][j + 1], af[i], bf[2], bf[3]);
        }
      }
    }
  }
  ptx_cp_wait<0> ();

  /* Epilogue straight from the fragments: c0,c1 at (row g, cols 2t, 2t+1),
   * c2,c3 at row g + 8. */
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int i = 0; i < MI; i++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int64_t p = pix0 + wm + 16 * i + g + 8 * h;
      if (p >= npix)
        continue;
      const int64_t o = p / hw, off = (p - o * hw) * a.cout;
#pragma unroll
      for (int j = 0; j < NB; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int co = co0 + wn + 8 * j + 2 * t4 + e;
          float v = acc[i][j][2 * h + e];
          if (a.bias)
            v += dit_cuda_ld (a.bias, a.dtb, co);
          if (a.res)
            v += dit_cuda_ld (a.res, a.dtr, o * a.rs0 + off + co);
          if (a.relu)
            v = fmaxf (v, 0.0f);
          dit_cuda_st (a.y, a.dty, o * a.ys0 + off + co, v);
        }
    }
}

template <int BM, int BN>
static dit_status
vm_launch (const vm_args &a, cudaStream_t stream)
{
  const size_t smem = (size_t) VM_STAGES * (BM + BN) * VM_LDS
      * sizeof (__nv_bfloat16);
  /* The attribute is per device; setting it twice is harmless. */
  static unsigned configured;
  int dev = 0;
  cudaGetDevice (&dev);
  if (dev >= 32 || !(configured & (1u << dev))) {
    if (cudaFuncSetAttribute (vm_conv_kernel<BM, BN>,
            cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem)
        != cudaSuccess)
      return dit_error (DIT_ERR_DEVICE, "vae conv: cannot reserve %zu bytes "
          "of shared memory", smem);
    if (dev < 32)
      configured |= 1u << dev;
  }
  const int64_t npix = (int64_t) a.to * a.ho * a.wo;
  dim3 grid ((unsigned) ((npix + BM - 1) / BM), (unsigned) (a.cout / BN));
  vm_conv_kernel<BM, BN><<<grid, VM_THREADS, smem, stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vm_conv_kernel");
  return DIT_OK;
}

static int
vm_aligned (const void *p, int64_t s)
{
  return (uintptr_t) p % 16 == 0 && s % 8 == 0;
}

int
dit_cuda_vae_conv_mma_block_n (const dit_vae_conv_params *p, int64_t cin,
    int64_t cout)
{
  /* DIT_VAE_CONV_GENERIC forces the generic kernel (comparisons; read on
   * every call so a test can switch it). */
  if (getenv ("DIT_VAE_CONV_GENERIC"))
    return 0;
  if (p->x->dtype != DIT_BF16 || p->weight->dtype != DIT_BF16
      || (p->prev && p->prev->dtype != DIT_BF16) || cin % VM_BK != 0)
    return 0;
  /* 32-bit offsets inside the kernel */
  const int64_t lim = INT32_MAX;
  if (dit_tensor_numel (p->x) + p->x->stride[0] >= lim
      || (p->prev && dit_tensor_numel (p->prev) + p->prev->stride[0] >= lim)
      || dit_tensor_numel (p->weight) >= lim)
    return 0;
  if (!vm_aligned (p->x->data, p->x->stride[0])
      || (p->prev && !vm_aligned (p->prev->data, p->prev->stride[0]))
      || !vm_aligned (p->weight->data, p->weight->stride[0]))
    return 0;
  return cout % 128 == 0 ? 128 : cout % 96 == 0 ? 96 : cout % 64 == 0 ? 64 : 0;
}

dit_status
dit_cuda_vae_conv_mma (dit_backend *be, const dit_vae_conv_params *p, int bn,
    int prev_frames, int64_t to, int64_t ho, int64_t wo)
{
  vm_args a;
  memset (&a, 0, sizeof a);
  a.x = (const __nv_bfloat16 *) p->x->data;
  a.xs0 = p->x->stride[0];
  if (p->prev) {
    a.prev = (const __nv_bfloat16 *) p->prev->data;
    a.ps0 = p->prev->stride[0];
  }
  a.w = (const __nv_bfloat16 *) p->weight->data;
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
  a.P = prev_frames;
  a.H = (int) p->x->shape[1];
  a.W = (int) p->x->shape[2];
  a.cin = (int) p->x->shape[3];
  a.to = (int) to;
  a.ho = (int) ho;
  a.wo = (int) wo;
  a.cout = (int) p->weight->shape[0];
  a.kt = p->kt; a.kh = p->kh; a.kw = p->kw;
  a.st = p->st > 0 ? p->st : 1;
  a.sh = p->sh > 0 ? p->sh : 1;
  a.sw = p->sw > 0 ? p->sw : 1;
  a.pad_front = p->pad_front;
  a.pad_top = p->pad_top;
  a.pad_left = p->pad_left;
  a.relu = p->relu;
  cudaStream_t s = dit_cuda_impl (be)->stream;
  /* 128-pixel tiles at two blocks per SM: 256-pixel tiles (one block per
   * SM, 171-206 registers) measured 15% slower on an H200. */
  switch (bn) {
    case 128: return vm_launch<VM_BM, 128> (a, s);
    case 96: return vm_launch<VM_BM, 96> (a, s);
    case 64: return vm_launch<VM_BM, 64> (a, s);
    default: return dit_error (DIT_ERR_INVALID, "vae conv: no tile for %d", bn);
  }
}
