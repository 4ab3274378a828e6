/* attention — o = softmax(q kᵀ * scale + bias) v per head, flash style.
 *
 * Layout: q [L, H*d], k and v [N, H*d], o [L, H*d], all with strided rows;
 * head h owns columns [h*d, (h+1)*d).  Key j gets + log_bias on its logit
 * when bias_begin <= j < bias_end (the KV-cache attention bias); with
 * causal_block > 0 query r sees keys j < (floor((q_pos0 + r) / causal_block)
 * + 1) * causal_block (block-causal), otherwise all N keys.  Every query sees
 * key 0, so no softmax row is ever empty.
 *
 * Three kernels, one contract:
 *
 *  flash_d128_kernel (bf16 q/k/v, head_dim 128, 16-byte aligned rows): the
 *  FlashAttention-2 scheme on mma.sync.m16n8k16 bf16 tensor cores.  Each
 *  warp owns 16 or 32 query rows (one or two m16 tiles) of one head, a block
 *  4 or 8 warps (four configurations, see attn_launch_flash): more rows per
 *  warp reuse every K/V fragment read from shared memory for more products,
 *  more warps per block share every K/V tile fetched from memory; at about
 *  250 registers a thread the SM holds 8 warps whichever way they are
 *  grouped.  K/V tiles of 64 keys stream through shared memory twice
 *  buffered with cp.async, in rows of 256 bytes whose 16-byte chunks are
 *  XOR-swizzled by (row & 7) so that ldmatrix reads are bank-conflict free.
 *  S = Q Kᵀ accumulates in f32, the online softmax (running max and sum per
 *  row, ex2.approx with log2(e) folded into the scale) is f32, P is rounded
 *  to bf16 for the P·V product (as FlashAttention does) and O accumulates
 *  in f32.  The key loop stops at the block's last visible key, so the
 *  block-causal case skips masked tiles entirely; masks and bias are
 *  applied only on tiles that straddle a boundary.
 *
 *  flash_d128_wgmma_kernel (attention_wgmma.cu, configuration 5): the
 *  same scheme and math on Hopper warpgroup MMA (wgmma), two warpgroups of
 *  64 query rows, 128-key tiles, the softmax of one tile overlapping the
 *  P·V product of the previous one.  Only for a compute capability 9.0
 *  device running the sm_90a binary; elsewhere the dispatch uses
 *  configuration 1.
 *
 *  flash_d128_ws_kernel (attention_wgmma.cu, configuration 6): the same
 *  math warp-specialised: a producer warpgroup loads Q, K and V with TMA
 *  into mbarrier-guarded two-stage rings, two consumer warpgroups take
 *  turns on the tensor cores (ping-pong); needs also the driver's
 *  cuTensorMapEncodeTiled, else it is unsupported and the dispatch uses
 *  configuration 5.
 *
 *  flash_d128_fa3_kernel (attention_fa3.cu, configurations 7-12): the
 *  same math in FlashAttention-3 style: configuration 6's block with
 *  deeper K/V rings, other key tiles, a three-stage softmax variant and
 *  work schedules that share key tiles between blocks (stream-K); needs a
 *  positive scale besides what 6 needs, and hands what it refuses to 6.
 *
 *  attn_d384_kernel (attention_d384.cu): the VAE mid-block's head_dim
 *  384 (bf16, no bias or mask) on mma.sync, FlashAttention-2 style; only
 *  with DIT_ATTN_D384=mma until checked on a GPU, else the generic kernel.
 *
 *  attn_generic_kernel (any dtype, head_dim <= 512: T5's 64, the VAE's
 *  single 384-channel head, f32 inputs): one warp per query row, K/V tiles
 *  of 32 keys in shared memory as f32.  Lane j scores key j of the tile (q
 *  broadcast from shared memory, K rows padded by one float so the 32 lanes
 *  hit 32 banks), the tile's max and sum are warp reductions, and each lane
 *  accumulates d/32 output channels.  All f32 with expf: the accuracy
 *  reference for the CPU comparison at f32.  It alone takes the umT5 cases
 *  (a relative-position bias table, a key_len mask): lane j adds
 *  pos_bias[bucket(j - query), head] with the bucket of dit_t5_bucket.h
 *  (the same f64 formula as the CPU, so both pick the same bucket).
 *
 * Measured (H100 SXM, tests/gpu/dit_attn_bench.cu, median of 30): L = 2160
 * queries against N = 4320 keys, 40 heads, with the KV bias: 0.86 ms = 222
 * TFLOP/s (4·L·N·d·heads); the first version with the libm exp2f took
 * 1.27 ms, and the four block shapes differ by under 3%, so the kernel is
 * bound by issue latency of the mma.sync/ldmatrix/softmax sequence, not by
 * memory.  The wgmma kernel removes that sequence; it is measured against
 * this one by the same bench (variant 5).
 */
#include "attention_internal.cuh"
#include "dit_cuda.h"

#include "../dit_t5_bucket.h"

#include <math.h>

/* ------------------------------------------------------------------------ */
/* CUDA kernels: generic path */

#define GEN_WARPS 8
#define GEN_TILE 32

template <int DPL>   /* channels per lane: head_dim <= 32 * DPL */
__global__ void __launch_bounds__ (GEN_WARPS * 32)
attn_generic_kernel (attn_args a)
{
  extern __shared__ float gen_smem[];
  const int d = a.d;
  const int kst = d + 1;                       /* padded K row */
  float *ks = gen_smem;                        /* [GEN_TILE][d+1] */
  float *vs = ks + GEN_TILE * kst;             /* [GEN_TILE][d] */
  float *qs = vs + GEN_TILE * d;               /* [GEN_WARPS][d] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y;
  const int64_t r0 = (int64_t) blockIdx.x * GEN_WARPS;
  const int64_t row = r0 + warp;
  const bool active = row < a.L;
  const int64_t hoff = (int64_t) h * d;

  float *qrow = qs + warp * d;
  for (int c = lane; c < d; c += 32)
    qrow[c] = active ? dit_cuda_ld (a.q, a.dtq, row * a.ldq + hoff + c) : 0.0f;

  const int64_t last = (r0 + GEN_WARPS < a.L ? r0 + GEN_WARPS : a.L) - 1;
  const int64_t kmax = attn_key_end (a, last);
  const int64_t kend = active ? attn_key_end (a, row) : 0;

  float acc[DPL];
#pragma unroll
  for (int i = 0; i < DPL; i++)
    acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t j0 = 0; j0 < kmax; j0 += GEN_TILE) {
    __syncthreads ();   /* previous tile fully consumed (and q stored) */
    for (int e = threadIdx.x; e < GEN_TILE * d; e += GEN_WARPS * 32) {
      int jj = e / d, c = e % d;
      int64_t j = j0 + jj;
      bool ok = j < a.N;
      ks[jj * kst + c] = ok ? dit_cuda_ld (a.k, a.dtk, j * a.ldk + hoff + c) : 0.0f;
      vs[jj * d + c] = ok ? dit_cuda_ld (a.v, a.dtv, j * a.ldv + hoff + c) : 0.0f;
    }
    __syncthreads ();
    if (!active || j0 >= kend)
      continue;
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j < kend) {
      const float *kr = ks + lane * kst;
      float dot = 0.0f;
      for (int c = 0; c < d; c++)
        dot += qrow[c] * kr[c];
      s = dot * a.scale;
      if (j >= a.bias_begin && j < a.bias_end)
        s += a.log_bias;
      if (a.pos_bias) {
        int b = dit_t5_bucket (j - (a.q_pos0 + row), a.num_buckets,
            a.max_distance, a.bidirectional);
        s += dit_cuda_ld (a.pos_bias, a.dtpb, (int64_t) b * a.heads + h);
      }
    }
    float tmax = s;
    for (int o = 16; o > 0; o >>= 1)
      tmax = fmaxf (tmax, __shfl_xor_sync (0xffffffffu, tmax, o));
    const float mnew = fmaxf (m, tmax);     /* finite: key j0 is visible */
    const float alpha = expf (m - mnew);    /* 0 on the first tile */
    const float pj = j < kend ? expf (s - mnew) : 0.0f;
    float psum = pj;
    for (int o = 16; o > 0; o >>= 1)
      psum += __shfl_xor_sync (0xffffffffu, psum, o);
    l = l * alpha + psum;
    m = mnew;
#pragma unroll
    for (int i = 0; i < DPL; i++)
      acc[i] *= alpha;
    const int nvis = (int) (kend - j0 < GEN_TILE ? kend - j0 : GEN_TILE);
    for (int jj = 0; jj < nvis; jj++) {
      float pb = __shfl_sync (0xffffffffu, pj, jj);
      const float *vr = vs + jj * d;
#pragma unroll
      for (int i = 0; i < DPL; i++) {
        int c = lane + 32 * i;
        if (c < d)
          acc[i] += pb * vr[c];
      }
    }
  }
  if (!active)
    return;
  const float inv = 1.0f / l;
  if (a.o_scale) {
    /* FP8 output: one block per (row, head), the whole warp holds it */
    float am = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; i++)
      if (lane + 32 * i < d)
        am = fmaxf (am, fabsf (acc[i] * inv));
    am = fp8_group_amax (am, 32);
    const float qi = fp8_dev_inv_scale (am);
    uint8_t *o8 = (uint8_t *) a.o;
#pragma unroll
    for (int i = 0; i < DPL; i++) {
      int c = lane + 32 * i;
      if (c < d)
        o8[row * a.ldo + hoff + c] = fp8_dev_code (acc[i] * inv, qi);
    }
    if (lane == 0)
      a.o_scale[(int64_t) h * a.L + row] = fp8_dev_scale (am);
    return;
  }
#pragma unroll
  for (int i = 0; i < DPL; i++) {
    int c = lane + 32 * i;
    if (c < d)
      dit_cuda_st (a.o, a.dto, row * a.ldo + hoff + c, acc[i] * inv);
  }
}

/* ------------------------------------------------------------------------ */
/* CUDA kernels: bf16 head_dim 128 tensor-core path */

#define FA_D 128
#define FA_BN 64
#define FA_CHUNKS (FA_D / 8)   /* 16-byte chunks per row */
#define FA_TILE_ELEMS (FA_BN * FA_D)
/* NW warps of MT m16 tiles own 16 * MT * NW queries; the Q tile plus
 * double-buffered K and V tiles */
#define FA_BM(nw, mt) (16 * (mt) * (nw))
#define FA_SMEM_BYTES(nw, mt) ((FA_BM (nw, mt) + 4 * FA_BN) * FA_D * 2)
/* configuration dit_attention uses (see attn_launch_flash): configuration
 * 10 of attention_fa3.cuh (144-key tiles, 3-stage K / 2-stage V rings,
 * heads-slowest order with the tail shared out stream-K) where the device
 * runs it.  One H100, dit-attn-bench, 2026-12-06: 576 TFLOP/s at the
 * denoise shape (L 2160, N 4320, 40 heads) and 523 at the block-causal
 * recompute shape, against 389 / 337 for configuration 6, the next in the
 * fallback chain (then 5, then 4 warps x 16 rows of mma.sync). */
#define FA_VARIANT_DEFAULT 10
#define FA_VARIANT_FALLBACK 1

/* Element offset of 16-byte chunk `c` of row `r` in a swizzled tile. */
__device__ __forceinline__ int
fa_swz (int r, int c)
{
  return (r * FA_CHUNKS + (c ^ (r & 7))) * 8;
}

/* Start loading rows [row0, row0 + ROWS) of one head's 128 columns into a
 * swizzled tile; rows at or past `nrows` are zero-filled. */
template <int ROWS, int THREADS>
__device__ __forceinline__ void
fa_load_tile (__nv_bfloat16 *tile, const __nv_bfloat16 *base, int64_t ld,
    int64_t row0, int64_t nrows)
{
#pragma unroll
  for (int i = 0; i < ROWS * FA_CHUNKS / THREADS; i++) {
    int idx = threadIdx.x + i * THREADS;
    int r = idx / FA_CHUNKS, c = idx % FA_CHUNKS;
    bool ok = row0 + r < nrows;
    const __nv_bfloat16 *src = ok ? base + (row0 + r) * ld + c * 8 : base;
    ptx_cp_async16 (tile + fa_swz (r, c), src, ok);
  }
}

template <int NW, int MT>
__global__ void __launch_bounds__ (NW * 32, 1)
flash_d128_kernel (attn_args a)
{
  constexpr int BM = FA_BM (NW, MT), THREADS = NW * 32;
  extern __shared__ __align__ (128) unsigned char fa_smem[];
  __nv_bfloat16 *qs = (__nv_bfloat16 *) fa_smem;
  __nv_bfloat16 *ks = qs + BM * FA_D;           /* 2 buffers */
  __nv_bfloat16 *vs = ks + 2 * FA_TILE_ELEMS;    /* 2 buffers */

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, qd = lane & 3;
  const int h = blockIdx.y;
  const int64_t m0 = (int64_t) blockIdx.x * BM;
  const int64_t hoff = (int64_t) h * FA_D;
  const __nv_bfloat16 *qg = (const __nv_bfloat16 *) a.q + hoff;
  const __nv_bfloat16 *kg = (const __nv_bfloat16 *) a.k + hoff;
  const __nv_bfloat16 *vg = (const __nv_bfloat16 *) a.v + hoff;

  /* keys this block needs: the last row sees the most */
  const int64_t mlast = (m0 + BM < a.L ? m0 + BM : a.L) - 1;
  const int64_t kmax = attn_key_end (a, mlast);
  const int64_t kmin = attn_key_end (a, m0);
  const int ntiles = (int) ((kmax + FA_BN - 1) / FA_BN);

  fa_load_tile<BM, THREADS> (qs, qg, a.ldq, m0, a.L);
  fa_load_tile<FA_BN, THREADS> (ks, kg, a.ldk, 0, a.N);
  fa_load_tile<FA_BN, THREADS> (vs, vg, a.ldv, 0, a.N);
  ptx_cp_commit ();

  /* the warp owns rows [warp*16*MT, +16*MT) of the block; m-tile mt of
   * them is rows mt*16 .. +16, and this thread holds rows g and g + 8 */
  const int wrow = warp * 16 * MT;
  /* 32-bit row and key indices (the launcher checks L, N < 2^31) keep
   * the register budget for the accumulators */
  int row[MT][2], kend[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    row[mt][0] = (int) m0 + wrow + mt * 16 + g;
    row[mt][1] = row[mt][0] + 8;
    kend[mt][0] = (int) attn_key_end (a, row[mt][0]);
    kend[mt][1] = (int) attn_key_end (a, row[mt][1]);
  }
  const int bias_begin = (int) a.bias_begin, bias_end = (int) a.bias_end;
  const float sl2 = a.scale * 1.4426950408889634f;
  const float bl2 = a.log_bias * 1.4426950408889634f;
  /* ldmatrix row/chunk of this lane for A fragments (16x16, row-major) */
  const int arow = (lane & 7) + ((lane >> 3) & 1) * 8, achunk = lane >> 4;

  /* one m-tile per warp keeps Q in registers; two re-read it from shared
   * memory, trading those 32 registers for the second accumulator */
  unsigned qf[MT == 1 ? FA_D / 16 : 1][4];
  float o[MT][FA_D / 8][4];
  float mx[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int i = 0; i < FA_D / 8; i++)
      o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    mx[mt][0] = mx[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  for (int t = 0; t < ntiles; t++) {
    const int buf = t & 1;
    if (t + 1 < ntiles) {
      const int64_t n1 = (int64_t) (t + 1) * FA_BN;
      fa_load_tile<FA_BN, THREADS> (ks + (buf ^ 1) * FA_TILE_ELEMS, kg,
          a.ldk, n1, a.N);
      fa_load_tile<FA_BN, THREADS> (vs + (buf ^ 1) * FA_TILE_ELEMS, vg,
          a.ldv, n1, a.N);
      ptx_cp_commit ();
      ptx_cp_wait<1> ();
    } else {
      ptx_cp_wait<0> ();
    }
    __syncthreads ();

    if constexpr (MT == 1) {
      if (t == 0) {
#pragma unroll
        for (int kk = 0; kk < FA_D / 16; kk++)
          ptx_ldmatrix_x4 (qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3],
              qs + fa_swz (wrow + arow, kk * 2 + achunk));
      }
    }

    const __nv_bfloat16 *kt = ks + buf * FA_TILE_ELEMS;
    const __nv_bfloat16 *vt = vs + buf * FA_TILE_ELEMS;
    const int n0 = t * FA_BN;

    /* S = Q Kᵀ: 16*MT rows × 64 keys per warp; each K fragment feeds MT
     * products */
    float s[MT][FA_BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int i = 0; i < FA_BN / 8; i++)
        s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < FA_D / 16; kk++) {
      unsigned qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        if constexpr (MT == 1) {
          qa[mt][0] = qf[kk][0]; qa[mt][1] = qf[kk][1];
          qa[mt][2] = qf[kk][2]; qa[mt][3] = qf[kk][3];
        } else {
          ptx_ldmatrix_x4 (qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3],
              qs + fa_swz (wrow + mt * 16 + arow, kk * 2 + achunk));
        }
      }
#pragma unroll
      for (int np = 0; np < FA_BN / 16; np++) {
        unsigned b0, b1, b2, b3;
        const int key = np * 16 + (lane & 7) + (lane >> 4) * 8;
        ptx_ldmatrix_x4 (b0, b1, b2, b3,
            kt + fa_swz (key, kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          ptx_mma_bf16 (s[mt][2 * np], qa[mt], b0, b1);
          ptx_mma_bf16 (s[mt][2 * np + 1], qa[mt], b2, b3);
        }
      }
    }

    /* scale (log2 domain), mask and bias */
    const bool edge = n0 + FA_BN > kmin
        || (bias_begin < n0 + FA_BN && bias_end > n0);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int nt = 0; nt < FA_BN / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float v = s[mt][nt][e] * sl2;
          if (edge) {
            const int j = n0 + nt * 8 + 2 * qd + (e & 1);
            if (j >= kend[mt][e >> 1])
              v = -INFINITY;
            else if (j >= bias_begin && j < bias_end)
              v += bl2;
          }
          s[mt][nt][e] = v;
        }

    /* online softmax per row: r = 0 (elements 0, 1) and r = 1 (2, 3) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float tm = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++)
          tm = fmaxf (tm, fmaxf (s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 1));
        tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 2));
        const float mnew = fmaxf (mx[mt][r], tm);
        /* a row with nothing visible yet keeps a zero reference */
        const float ref = mnew == -INFINITY ? 0.0f : mnew;
        const float alpha = ptx_exp2 (mx[mt][r] - ref);
        mx[mt][r] = mnew;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++) {
          s[mt][nt][2 * r] = ptx_exp2 (s[mt][nt][2 * r] - ref);
          s[mt][nt][2 * r + 1] = ptx_exp2 (s[mt][nt][2 * r + 1] - ref);
          sum += s[mt][nt][2 * r] + s[mt][nt][2 * r + 1];
        }
        l[mt][r] = l[mt][r] * alpha + sum;
#pragma unroll
        for (int i = 0; i < FA_D / 8; i++) {
          o[mt][i][2 * r] *= alpha;
          o[mt][i][2 * r + 1] *= alpha;
        }
      }
    }

    /* O += P V: the S accumulator layout is the A-fragment layout; each V
     * fragment feeds MT products */
#pragma unroll
    for (int kt2 = 0; kt2 < FA_BN / 16; kt2++) {
      unsigned pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        pa[mt][0] = ptx_pack_bf16 (s[mt][2 * kt2][0], s[mt][2 * kt2][1]);
        pa[mt][1] = ptx_pack_bf16 (s[mt][2 * kt2][2], s[mt][2 * kt2][3]);
        pa[mt][2] = ptx_pack_bf16 (s[mt][2 * kt2 + 1][0], s[mt][2 * kt2 + 1][1]);
        pa[mt][3] = ptx_pack_bf16 (s[mt][2 * kt2 + 1][2], s[mt][2 * kt2 + 1][3]);
      }
      const int key = kt2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int dp = 0; dp < FA_D / 16; dp++) {
        unsigned b0, b1, b2, b3;
        ptx_ldmatrix_x4_trans (b0, b1, b2, b3,
            vt + fa_swz (key, dp * 2 + (lane >> 4)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          ptx_mma_bf16 (o[mt][2 * dp], pa[mt], b0, b1);
          ptx_mma_bf16 (o[mt][2 * dp + 1], pa[mt], b2, b3);
        }
      }
    }
    __syncthreads ();   /* buffer `buf` is refilled two iterations on */
  }

  /* finish the row sums across the quad and normalise */
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float lr = l[mt][r];
      lr += __shfl_xor_sync (0xffffffffu, lr, 1);
      lr += __shfl_xor_sync (0xffffffffu, lr, 2);
      const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
      float am = 0.0f;
      if (a.o_scale) {
#pragma unroll
        for (int dt = 0; dt < FA_D / 8; dt++)
          am = fmaxf (am, fmaxf (fabsf (o[mt][dt][2 * r] * inv),
              fabsf (o[mt][dt][2 * r + 1] * inv)));
        am = attn_fp8_amax_quad (am);
      }
      const int rr = row[mt][r];
      if (rr >= a.L)
        continue;
      if (a.o_scale) {
        const float qi = fp8_dev_inv_scale (am);
#pragma unroll
        for (int dt = 0; dt < FA_D / 8; dt++)
          fp8_store2 (a.o, (int64_t) rr * a.ldo + hoff + dt * 8 + 2 * qd,
              o[mt][dt][2 * r] * inv, o[mt][dt][2 * r + 1] * inv, qi);
        if (qd == 0)
          a.o_scale[(int64_t) h * a.L + rr] = fp8_dev_scale (am);
        continue;
      }
#pragma unroll
      for (int dt = 0; dt < FA_D / 8; dt++) {
        const int64_t c = (int64_t) rr * a.ldo + hoff + dt * 8 + 2 * qd;
        dit_cuda_st (a.o, a.dto, c, o[mt][dt][2 * r] * inv);
        dit_cuda_st (a.o, a.dto, c + 1, o[mt][dt][2 * r + 1] * inv);
      }
    }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

template <int NW, int MT>
static dit_status
attn_launch_flash_t (dit_cuda_backend *cb, const attn_args &a, int variant)
{
  /* the attribute is per device, so once per backend and variant */
  const int bit = 1 << variant;
  if (!(cb->flash_smem_set & bit)) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (flash_d128_kernel<NW, MT>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, FA_SMEM_BYTES (NW, MT)));
    cb->flash_smem_set |= bit;
  }
  dim3 grid ((unsigned) ((a.L + FA_BM (NW, MT) - 1) / FA_BM (NW, MT)),
      (unsigned) a.heads);
  flash_d128_kernel<NW, MT><<<grid, NW * 32, FA_SMEM_BYTES (NW, MT),
      cb->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("flash_d128_kernel");
  return DIT_OK;
}

/* Flash configurations (dit_cuda.h): 1 = 4 warps x 16 rows, 2 = 8 x 16,
 * 3 = 4 x 32, 4 = 8 x 32, 5 = wgmma, 6 = warp-specialised wgmma with TMA,
 * 7-12 = the FlashAttention-3 style kernels of attention_fa3.cu with work
 * schedule `sched` (for 5 and up the caller has checked that the device
 * runs it). */
static dit_status
attn_launch_flash (dit_cuda_backend *cb, const attn_args &a, int variant,
    int sched)
{
  if (variant >= 7)
    return attn_launch_fa3 (cb, a, variant, sched);
  switch (variant) {
    case 5: return attn_launch_wgmma (cb, a);
    case 6: return attn_launch_ws (cb, a);
    case 1: return attn_launch_flash_t<4, 1> (cb, a, variant);
    case 2: return attn_launch_flash_t<8, 1> (cb, a, variant);
    case 3: return attn_launch_flash_t<4, 2> (cb, a, variant);
    default: return attn_launch_flash_t<8, 2> (cb, a, variant);
  }
}

template <int DPL>
static dit_status
attn_launch_generic_t (cudaStream_t s, const attn_args &a, size_t optin)
{
  size_t smem = ((size_t) GEN_TILE * (a.d + 1) + (size_t) GEN_TILE * a.d
      + (size_t) GEN_WARPS * a.d) * sizeof (float);
  if (smem > optin)
    return dit_error (DIT_ERR_UNSUPPORTED, "attention: head_dim %d needs %zu "
        "bytes of shared memory, the device allows %zu", a.d, smem, optin);
  if (smem > 48 * 1024)
    DIT_CUDA_TRY (cudaFuncSetAttribute (attn_generic_kernel<DPL>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
  dim3 grid ((unsigned) ((a.L + GEN_WARPS - 1) / GEN_WARPS), (unsigned) a.heads);
  attn_generic_kernel<DPL><<<grid, GEN_WARPS * 32, smem, s>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("attn_generic_kernel");
  return DIT_OK;
}

static dit_status
attn_launch_generic (cudaStream_t s, const attn_args &a, size_t optin)
{
  if (a.d <= 64)
    return attn_launch_generic_t<2> (s, a, optin);
  if (a.d <= 128)
    return attn_launch_generic_t<4> (s, a, optin);
  if (a.d <= 256)
    return attn_launch_generic_t<8> (s, a, optin);
  return attn_launch_generic_t<16> (s, a, optin);
}

/* The tensor-core path needs bf16 inputs, d = 128 and every row start on a
 * 16-byte boundary (cp.async copies 16 bytes). */
static int
attn_flash_ok (const attn_args &a)
{
  if (a.d != FA_D || a.dtq != DIT_BF16 || a.dtk != DIT_BF16
      || a.dtv != DIT_BF16)
    return 0;
  if (a.ldq % 8 || a.ldk % 8 || a.ldv % 8)
    return 0;
  if (((uintptr_t) a.q | (uintptr_t) a.k | (uintptr_t) a.v) % 16)
    return 0;
  if (a.L + 256 > 0x7fffffff || a.N + 256 > 0x7fffffff)
    return 0;   /* the kernel indexes rows and keys in 32 bits */
  return 1;
}

/* Validate, then run flash configuration `variant` (1-12; 7-12 with work
 * schedule `sched`) when the inputs allow it, or the generic kernel
 * (variant 0 forces it). */
static dit_status
attn_run (dit_backend *be, const dit_attn_params *p, int variant, int sched)
{
  attn_args a;
  memset (&a, 0, sizeof a);
  dit_attn_dims d;
  DIT_TRY (dit_check_attention (DIT_DEVICE_CUDA, p, &d));
  const int64_t L = d.L;
  if (d.o_scale) {
    /* FP8 output: codes plus one scale per (row, head) */
    DIT_TRY (dit_cuda_fp8_check (be));
    if ((d.o.ld % 2) || ((uintptr_t) p->o->data % 2))
      return dit_error (DIT_ERR_INVALID, "attention: FP8 o needs an even row "
          "stride and address");
    a.o_scale = d.o_scale;
  }
  if (p->head_dim > 512)
    return dit_error (DIT_ERR_UNSUPPORTED, "attention: head_dim %d > 512 not "
        "supported", p->head_dim);
  if (L == 0)
    return DIT_OK;
  if (p->heads > 65535 || (L + 7) / 8 > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "attention: %d heads x %lld queries "
        "exceed the launch grid", p->heads, (long long) L);

  a.q = p->q->data; a.k = p->k->data; a.v = p->v->data; a.o = p->o->data;
  a.ldq = d.q.ld; a.ldk = d.k.ld; a.ldv = d.v.ld; a.ldo = d.o.ld;
  a.dtq = p->q->dtype; a.dtk = p->k->dtype; a.dtv = p->v->dtype;
  a.dto = a.o_scale ? DIT_F32 : (int) p->o->dtype;   /* unused for FP8 */
  a.L = L; a.N = d.N;
  a.heads = p->heads; a.d = p->head_dim;
  a.scale = p->scale;
  a.bias_begin = d.bias_begin; a.bias_end = d.bias_end;
  a.log_bias = p->log_bias;
  a.causal_block = p->causal_block; a.q_pos0 = p->q_pos0;
  a.key_len = p->key_len;
  if (p->pos_bias) {
    a.pos_bias = p->pos_bias->data;
    a.dtpb = p->pos_bias->dtype;
    a.num_buckets = p->num_buckets;
    a.max_distance = p->max_distance;
    a.bidirectional = p->bidirectional;
  }

  dit_cuda_backend *cb = dit_cuda_impl (be);
  if (variant > 0 && !a.pos_bias && a.key_len == 0 && attn_flash_ok (a))
    return attn_launch_flash (cb, a, variant, sched);
  if (variant > 0 && attn_d384_ok (a, cb->smem_optin))
    return attn_launch_d384 (cb, a);
  return attn_launch_generic (cb->stream, a, cb->smem_optin);
}

dit_status
dit_cuda_attention (dit_backend *be, const dit_attn_params *p)
{
  dit_cuda_backend *cb = dit_cuda_impl (be);
  int variant = FA_VARIANT_DEFAULT;
  if (variant >= 7 && !attn_fa3_supported (cb, variant))
    variant = 6;
  if (variant == 6 && !attn_ws_supported (cb))
    variant = 5;
  if (variant == 5 && !attn_wgmma_supported (cb))
    variant = FA_VARIANT_FALLBACK;
  dit_status st = attn_run (be, p, variant, DIT_CUDA_ATTN_SCHED_AUTO);
  /* configurations 6 and up refuse only inputs their tensor maps (or, 7
   * and up, their 32-bit schedules and raw-unit bias) cannot take; 6 takes
   * what 7 and up refuse, and configuration 5 reads anything with
   * cp.async */
  if (st == DIT_ERR_UNSUPPORTED && variant >= 7) {
    variant = attn_ws_supported (cb) ? 6 : 5;
    st = attn_run (be, p, variant, DIT_CUDA_ATTN_SCHED_AUTO);
  }
  if (st == DIT_ERR_UNSUPPORTED && variant == 6)
    st = attn_run (be, p, 5, DIT_CUDA_ATTN_SCHED_AUTO);
  return st;
}

extern "C" dit_status
dit_cuda_attention_schedule (dit_backend *be, const dit_attn_params *p,
    int variant, int schedule)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA || !p)
    return dit_error (DIT_ERR_INVALID, "attention variant: not a CUDA backend");
  if (variant < 0 || variant >= DIT_CUDA_ATTN_VARIANTS)
    return dit_error (DIT_ERR_INVALID, "attention variant %d: 0 (generic) "
        "or 1-%d (flash configurations) expected", variant,
        DIT_CUDA_ATTN_VARIANTS - 1);
  if (schedule < 0 || schedule >= DIT_CUDA_ATTN_SCHEDULES)
    return dit_error (DIT_ERR_INVALID, "attention schedule %d: 0-%d "
        "expected", schedule, DIT_CUDA_ATTN_SCHEDULES - 1);
  dit_cuda_backend *cb = dit_cuda_impl (be);
  if (variant == 5 && !attn_wgmma_supported (cb))
    return dit_error (DIT_ERR_UNSUPPORTED, "attention variant 5 (wgmma): "
        "needs a compute capability 9.0 device running the sm_90a build of "
        "flash_d128_wgmma_kernel");
  if (variant == 6 && !attn_ws_supported (cb))
    return dit_error (DIT_ERR_UNSUPPORTED, "attention variant 6 "
        "(warp-specialised wgmma): needs a compute capability 9.0 device "
        "running the sm_90a build of flash_d128_ws_kernel and a driver "
        "with cuTensorMapEncodeTiled");
  if (variant >= 7 && !attn_fa3_supported (cb, variant))
    return dit_error (DIT_ERR_UNSUPPORTED, "attention variant %d "
        "(FlashAttention-3 style wgmma): needs a compute capability 9.0 "
        "device running the sm_90a build of flash_d128_fa3_kernel, enough "
        "shared memory and a driver with cuTensorMapEncodeTiled", variant);
  return attn_run (be, p, variant, schedule);
}

extern "C" dit_status
dit_cuda_attention_variant (dit_backend *be, const dit_attn_params *p,
    int variant)
{
  return dit_cuda_attention_schedule (be, p, variant,
      DIT_CUDA_ATTN_SCHED_AUTO);
}
