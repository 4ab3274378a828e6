/* attention_d384 — flash attention for head_dim 384 on mma.sync tensor
 * cores: the VAE mid-block's single head (C = 384 channels at the Wan 2.1
 * VAE; tokens = the latent frame's h*w pixels, 2880 at 320x576).
 *
 * What it computes: the attention op's contract (attention.cu) for the
 * inputs it takes, o = softmax(q kᵀ * scale) v per head, every query seeing
 * all N keys.  It takes bf16 q, k, v with head_dim 384 whose rows start on
 * 16-byte boundaries, any o dtype (f32, bf16, f16 stores), any number of
 * heads (head h owns columns [384 h, 384 (h+1))); no KV bias, block-causal
 * mask, relative-position bias, key_len or FP8 output (attn_d384_ok says
 * so; those go to the generic kernel).
 *
 * Layout: q [L, ldq], k [N, ldk], v [N, ldv], o [L, ldo] (elements), rows
 * strided: the VAE passes three column slices of one [h*w, 3C] buffer.
 *
 * Scheme (FlashAttention-2 on m16n8k16, no L x N matrix anywhere): a block
 * of 8 warps owns 64 query rows.  Shared memory holds the block's Q tile
 * [64][384] and one K and one V tile of 64 keys, rows padded to 392
 * elements (784 bytes = 196 words, so the 8 rows an ldmatrix phase reads
 * fall on 8 distinct 4-bank groups: conflict free), 150.5 KB in all.  Warp
 * w computes S = Q Kᵀ for rows 16 (w & 3) .. +16 over the whole head
 * dimension (24 k-steps of 16, Q re-read from shared memory each tile), the
 * online softmax of those rows, and P V for its half (w >> 2) of the 384
 * output columns: the two warps of a row group compute the same S (the
 * same operations, so the same values) to keep O at 96 f32 registers a
 * thread instead of 192.  The K tile of the next 64 keys is loaded
 * (cp.async) while the softmax and P V of this one run, the V tile while
 * S is computed.
 *
 * Precision: bf16 operands, f32 accumulation; the logits are scaled into
 * the log2 domain and exponentiated with ex2.approx, the running max and
 * sum are f32, P is rounded to bf16 for the P V product (as
 * flash_d128_kernel and FlashAttention do).  Against the CPU reference
 * (f32 math) the test-backend-ops bf16 threshold applies.
 *
 * dit_attention's CUDA dispatch uses it for these inputs (checked on an
 * H100 against the CPU by test-backend-ops cuda, test-cuda-ops and
 * test-cuda-vae); DIT_ATTN_D384 set to anything but "mma" (read on every
 * call) sends them to the generic kernel instead, for comparisons.
 */
#include "attention_internal.cuh"
#include "dit_cuda.h"

#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define A384_D 384
#define A384_BM 64                      /* query rows per block */
#define A384_BN 64                      /* keys per tile */
#define A384_WARPS 8
#define A384_THREADS (A384_WARPS * 32)
#define A384_ROW (A384_D + 8)           /* padded shared row, elements */
#define A384_HALF (A384_D / 2)          /* output columns per warp */
#define A384_TILE (A384_BN * A384_ROW)  /* elements of one K or V tile */
#define A384_SMEM_BYTES ((size_t) (A384_BM + 2 * A384_BN) * A384_ROW * 2)

/* Start loading rows [row0, row0 + ROWS) of one head's 384 columns into a
 * padded tile; rows at or past `nrows` are zero-filled. */
template <int ROWS>
__device__ __forceinline__ void
a384_load_tile (__nv_bfloat16 *tile, const __nv_bfloat16 *base, int64_t ld,
    int64_t row0, int64_t nrows)
{
  constexpr int CHUNKS = A384_D / 8;    /* 16-byte chunks per row */
#pragma unroll
  for (int i = 0; i < ROWS * CHUNKS / A384_THREADS; i++) {
    const int idx = threadIdx.x + i * A384_THREADS;
    const int r = idx / CHUNKS, c = idx % CHUNKS;
    const int64_t gr = row0 + r;
    const bool ok = gr < nrows;
    const __nv_bfloat16 *src = base + (ok ? gr : 0) * ld + c * 8;
    ptx_cp_async16 (tile + r * A384_ROW + c * 8, src, ok);
  }
}

__global__ void __launch_bounds__ (A384_THREADS, 1)
attn_d384_kernel (attn_args a)
{
  extern __shared__ __align__ (16) unsigned char a384_smem[];
  __nv_bfloat16 *qs = (__nv_bfloat16 *) a384_smem;
  __nv_bfloat16 *ks = qs + A384_BM * A384_ROW;
  __nv_bfloat16 *vs = ks + A384_TILE;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, qd = lane & 3;
  const int rg = warp & 3, half = warp >> 2;
  const int64_t hoff = (int64_t) blockIdx.y * A384_D;
  const int64_t m0 = (int64_t) blockIdx.x * A384_BM;
  const __nv_bfloat16 *qg = (const __nv_bfloat16 *) a.q + hoff;
  const __nv_bfloat16 *kg = (const __nv_bfloat16 *) a.k + hoff;
  const __nv_bfloat16 *vg = (const __nv_bfloat16 *) a.v + hoff;
  const int N = (int) a.N;
  const int ntiles = (N + A384_BN - 1) / A384_BN;
  const float sl2 = a.scale * 1.4426950408889634f;

  /* Q and the first K tile: one group */
  a384_load_tile<A384_BM> (qs, qg + m0 * a.ldq, a.ldq, 0, a.L - m0);
  a384_load_tile<A384_BN> (ks, kg, a.ldk, 0, a.N);
  ptx_cp_commit ();

  /* ldmatrix addresses of this lane: A fragments (Q rows), B fragments of
   * Kᵀ (K rows), B fragments of V (transposed load of V rows) */
  const int arow = rg * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
  const int achunk = lane >> 4;
  const int krow = (lane & 7) + (lane >> 4) * 8, kchunk = (lane >> 3) & 1;
  const int vrow = (lane & 7) + ((lane >> 3) & 1) * 8, vchunk = lane >> 4;

  float o[A384_HALF / 8][4];
#pragma unroll
  for (int i = 0; i < A384_HALF / 8; i++)
    o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float mx[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };

  for (int t = 0; t < ntiles; t++) {
    const int n0 = t * A384_BN;
    /* V of this tile loads while S is computed (V's previous readers
     * finished at the barrier closing the last iteration) */
    a384_load_tile<A384_BN> (vs, vg, a.ldv, n0, a.N);
    ptx_cp_commit ();
    ptx_cp_wait<1> ();   /* Q and this K tile are in */
    __syncthreads ();

    /* S = Q Kᵀ for the warp's 16 rows and the tile's 64 keys */
    float s[A384_BN / 8][4];
#pragma unroll
    for (int i = 0; i < A384_BN / 8; i++)
      s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll 4
    for (int kk = 0; kk < A384_D / 16; kk++) {
      unsigned qa[4];
      ptx_ldmatrix_x4 (qa[0], qa[1], qa[2], qa[3],
          qs + arow * A384_ROW + (kk * 2 + achunk) * 8);
#pragma unroll
      for (int np = 0; np < A384_BN / 16; np++) {
        unsigned b0, b1, b2, b3;
        ptx_ldmatrix_x4 (b0, b1, b2, b3,
            ks + (np * 16 + krow) * A384_ROW + (kk * 2 + kchunk) * 8);
        ptx_mma_bf16 (s[2 * np], qa, b0, b1);
        ptx_mma_bf16 (s[2 * np + 1], qa, b2, b3);
      }
    }
    __syncthreads ();     /* every warp is done with this K tile */
    if (t + 1 < ntiles) {
      a384_load_tile<A384_BN> (ks, kg, a.ldk, n0 + A384_BN, a.N);
      ptx_cp_commit ();
    }

    /* scale into the log2 domain; keys past N only in the last tile */
    const bool edge = n0 + A384_BN > N;
#pragma unroll
    for (int nt = 0; nt < A384_BN / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float v = s[nt][e] * sl2;
        if (edge && n0 + nt * 8 + 2 * qd + (e & 1) >= N)
          v = -INFINITY;
        s[nt][e] = v;
      }

    /* online softmax of rows g (r = 0: elements 0, 1) and g + 8 (r = 1);
     * key n0 < N is visible to every row, so the max is finite */
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float tm = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < A384_BN / 8; nt++)
        tm = fmaxf (tm, fmaxf (s[nt][2 * r], s[nt][2 * r + 1]));
      tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 1));
      tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 2));
      const float mnew = fmaxf (mx[r], tm);
      const float alpha = ptx_exp2 (mx[r] - mnew);   /* 0 on tile 0 */
      mx[r] = mnew;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < A384_BN / 8; nt++) {
        s[nt][2 * r] = ptx_exp2 (s[nt][2 * r] - mnew);
        s[nt][2 * r + 1] = ptx_exp2 (s[nt][2 * r + 1] - mnew);
        sum += s[nt][2 * r] + s[nt][2 * r + 1];
      }
      l[r] = l[r] * alpha + sum;
#pragma unroll
      for (int i = 0; i < A384_HALF / 8; i++) {
        o[i][2 * r] *= alpha;
        o[i][2 * r + 1] *= alpha;
      }
    }

    /* V of this tile is in (the next K may still be loading) */
    if (t + 1 < ntiles)
      ptx_cp_wait<1> ();
    else
      ptx_cp_wait<0> ();
    __syncthreads ();

    /* O += P V over the warp's 192 columns: the S accumulator layout is
     * the A-fragment layout */
#pragma unroll
    for (int kt = 0; kt < A384_BN / 16; kt++) {
      unsigned pa[4];
      pa[0] = ptx_pack_bf16 (s[2 * kt][0], s[2 * kt][1]);
      pa[1] = ptx_pack_bf16 (s[2 * kt][2], s[2 * kt][3]);
      pa[2] = ptx_pack_bf16 (s[2 * kt + 1][0], s[2 * kt + 1][1]);
      pa[3] = ptx_pack_bf16 (s[2 * kt + 1][2], s[2 * kt + 1][3]);
      const __nv_bfloat16 *vrowp = vs + (kt * 16 + vrow) * A384_ROW
          + half * A384_HALF;
#pragma unroll
      for (int dp = 0; dp < A384_HALF / 16; dp++) {
        unsigned b0, b1, b2, b3;
        ptx_ldmatrix_x4_trans (b0, b1, b2, b3,
            vrowp + (dp * 2 + vchunk) * 8);
        ptx_mma_bf16 (o[2 * dp], pa, b0, b1);
        ptx_mma_bf16 (o[2 * dp + 1], pa, b2, b3);
      }
    }
    __syncthreads ();     /* V is refilled at the top of the next tile */
  }

  /* row sums across the quad, normalise, store */
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float lr = l[r];
    lr += __shfl_xor_sync (0xffffffffu, lr, 1);
    lr += __shfl_xor_sync (0xffffffffu, lr, 2);
    const int64_t row = m0 + rg * 16 + g + 8 * r;
    if (row >= a.L)
      continue;
    const float inv = 1.0f / lr;
#pragma unroll
    for (int i = 0; i < A384_HALF / 8; i++) {
      const int64_t c = row * a.ldo + hoff + half * A384_HALF + i * 8 + 2 * qd;
      dit_cuda_st (a.o, a.dto, c, o[i][2 * r] * inv);
      dit_cuda_st (a.o, a.dto, c + 1, o[i][2 * r + 1] * inv);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* launcher */

int
attn_d384_ok (const attn_args &a, size_t smem_optin)
{
  const char *sw = getenv ("DIT_ATTN_D384");
  if (sw && strcmp (sw, "mma") != 0)
    return 0;
  if (a.d != A384_D || a.dtq != DIT_BF16 || a.dtk != DIT_BF16
      || a.dtv != DIT_BF16 || a.o_scale)
    return 0;
  if (a.pos_bias || a.key_len > 0 || a.causal_block > 0
      || a.bias_end > a.bias_begin)
    return 0;
  if (a.ldq % 8 || a.ldk % 8 || a.ldv % 8)
    return 0;
  if (((uintptr_t) a.q | (uintptr_t) a.k | (uintptr_t) a.v) % 16)
    return 0;
  if (a.N < 1 || a.N + A384_BN > 0x7fffffff)
    return 0;
  return A384_SMEM_BYTES <= smem_optin;
}

dit_status
attn_launch_d384 (dit_cuda_backend *cb, const attn_args &a)
{
  /* the attribute is per device; setting it again is cheap */
  DIT_CUDA_TRY (cudaFuncSetAttribute (attn_d384_kernel,
      cudaFuncAttributeMaxDynamicSharedMemorySize, (int) A384_SMEM_BYTES));
  dim3 grid ((unsigned) ((a.L + A384_BM - 1) / A384_BM), (unsigned) a.heads);
  attn_d384_kernel<<<grid, A384_THREADS, A384_SMEM_BYTES, cb->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("attn_d384_kernel");
  return DIT_OK;
}
