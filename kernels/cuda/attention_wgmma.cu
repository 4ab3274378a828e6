/* attention_wgmma — flash attention on Hopper warpgroup MMA (wgmma), the
 * bf16 head_dim 128 configurations 5 and 6 of the attention op.
 *
 * Contract and masking: exactly those of flash_d128_kernel in attention.cu
 * (q [L, H*d], k/v [N, H*d], o [L, H*d] with strided rows, the KV-cache
 * log-bias range, block-causal visibility through attn_key_end, every
 * query sees key 0), and the same math: S = Q Kᵀ accumulates in f32, the
 * online softmax is f32 with ex2.approx and log2(e) folded into the scale,
 * P is rounded to bf16 for P·V, O accumulates in f32; the key loop stops at
 * the block's last visible key and masks/bias are applied only on tiles
 * that straddle a boundary.  Results therefore differ from configuration 1
 * only by the f32 summation order inside the tensor cores.
 *
 * Shape: a block of two warpgroups (256 threads) owns 128 query rows of one
 * head, 64 per warpgroup (wgmma's M).  K and V stream through shared
 * memory in tiles of 128 keys, loaded by all threads with cp.async, two
 * buffers each.  Per tile t a warpgroup issues S_t = Q K_tᵀ (eight
 * m64n128k16, A = Q and B = K both read from shared memory through
 * descriptors) and, behind it, O += P_{t-1} V_{t-1} (eight m64n128k16 with
 * A = P_{t-1} from registers), then runs the softmax of S_t while the
 * tensor cores still work on P_{t-1} V_{t-1}; only then does it rescale O
 * and pack P_t.  The last P·V follows the loop.  One barrier per tile: at
 * its top every thread's copies for K_t and V_{t-1} have landed and every
 * wgmma of tile t-1 is complete, so K_{t+1} and V_t may overwrite the
 * buffers of K_{t-1} and V_{t-2}.
 *
 * Shared-memory layout (what the descriptors describe): every tile is
 * stored as two halves, columns 0-63 then 64-127 of the head, each half
 * rows x 128 bytes in the 128-byte swizzle (16-byte chunk c of row r at
 * chunk c ^ (r & 7)), every half 1024-byte aligned.  That is the canonical
 * K-major SW128 layout for Q and K (rows = M or N, 128 bytes of the
 * reduction dim d per row; 8-row groups 1024 bytes apart = SBO) and the
 * canonical MN-major SW128 layout for V (rows = keys = the reduction dim;
 * the two 64-column halves are the MN atoms, LBO apart; 8-key groups 1024
 * bytes apart = SBO), which wgmma reads transposed (imm-trans-b = 1).
 *
 * Registers per thread: S 64 f32, O 64 f32, P 32 packed bf16 pairs.  The
 * wgmma accumulator layout of m64nN (f32) is, for warp w of the warpgroup
 * and lane l, element 4i + e = row 16w + l/4 + 8 (e >> 1), column 8i +
 * 2 (l % 4) + (e & 1): per n8 block the mma.sync m16n8 layout, so two
 * adjacent n8 blocks of S rounded to bf16 pairs are the register A
 * fragment of one k16 step of P·V (as in attention.cu).
 *
 * Needs sm_90a: the body exists only where __CUDA_ARCH_FEAT_SM90_ALL is
 * defined; the compute_90 PTX of this kernel traps, and the launcher is
 * used only after attn_wgmma_supported saw a 9.0 device running the sm_90a
 * binary.
 *
 * Configuration 6 (flash_d128_ws_kernel, further down) keeps these tiles,
 * descriptors and math but splits the block into a TMA producer
 * warpgroup and two consumer warpgroups that take turns on the tensor
 * cores, on an mbarrier ring, optionally on a persistent grid; its own
 * comment gives the barrier protocol.  It also needs the driver's
 * cuTensorMapEncodeTiled (found at run time, no libcuda link: tma.cu).
 * The descriptor, wgmma, mbarrier and TMA helpers live in hopper.cuh and
 * attention_hopper.cuh, shared with configurations 7 and up
 * (attention_fa3.cuh) and, for hopper.cuh, the FP8 GEMM.
 *
 * Measured (H200, tests/gpu/dit_attn_bench.cu, L = 2160, N = 4320, 40
 * heads, KV bias): configuration 5 0.630 ms = 303 TFLOP/s (block-causal
 * recompute L = N = 2160: 0.334 ms), configuration 6 0.493 ms = 388
 * TFLOP/s (recompute 0.275 ms = 347 TFLOP/s), configuration 1 0.850 ms.
 */
#include "attention_hopper.cuh"

#define WG_D 128
#define WG_BM 128                        /* query rows per block */
#define WG_BN 128                        /* keys per tile */
#define WG_THREADS 256                   /* two warpgroups */
#define WG_Q_BYTES (WG_BM * WG_D * 2)    /* 32 KB: two 64-row Q tiles */
#define WG_KV_BYTES (WG_BN * WG_D * 2)   /* 32 KB per K or V tile */
/* Q, two K and two V buffers, and slack to align the base to 1024 */
#define WG_SMEM_BYTES (WG_Q_BYTES + 4 * WG_KV_BYTES + 1024)
#define WG_SMEM_BIT (1 << 5)             /* flash_smem_set: limit raised */

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* Byte offset of 16-byte chunk c (0-15, along d) of row r in a swizzled
 * tile of `rows` rows: the half (c >> 3) first, then 128-byte rows. */
__device__ __forceinline__ uint32_t
wg_swz (int rows, int r, int c)
{
  return (uint32_t) ((c >> 3) * rows * 128 + r * 128
      + (((c & 7) ^ (r & 7)) << 4));
}

/* Start copying 128 rows [row0, row0 + 128) of one head into swizzled
 * tiles of SUB rows each (64 for Q: one tile per warpgroup; 128 for K and
 * V); rows at or past `nrows` are zero-filled.  16 threads cover one row's
 * 256 bytes, so a warp reads two whole rows. */
template <int SUB>
__device__ __forceinline__ void
wg_load (uint32_t smem, const __nv_bfloat16 *base, int64_t ld, int64_t row0,
    int64_t nrows)
{
#pragma unroll
  for (int i = 0; i < 128 * 16 / WG_THREADS; i++) {
    const int idx = threadIdx.x + i * WG_THREADS;
    const int r = idx >> 4, c = idx & 15;
    const bool ok = row0 + r < nrows;
    const __nv_bfloat16 *src = ok ? base + (row0 + r) * ld + c * 8 : base;
    const uint32_t dst = smem + (uint32_t) (r / SUB) * SUB * 256
        + wg_swz (SUB, r % SUB, c);
    asm volatile ("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
        :: "r" (dst), "l" (src), "r" (ok ? 16 : 0));
  }
}

__device__ __forceinline__ void
wg_cp_wait_all (void)
{
  asm volatile ("cp.async.wait_group 0;\n" ::: "memory");
}

/* cp.async wrote through the generic proxy; wgmma reads through the async
 * proxy, which sees those writes only after this fence (then a barrier
 * makes every thread's writes count). */
__device__ __forceinline__ void
wg_fence_proxy (void)
{
  asm volatile ("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* O += P V for one 128-key tile at `vt`: k16 step kt covers keys 16 kt ..
 * 16 kt + 15, i.e. rows 16 kt.. of the V tile = two 8-key groups starting
 * kt * 2048 bytes into each half; the halves (d 0-63, 64-127) are the two
 * MN atoms, WG_BN * 128 bytes apart. */
__device__ __forceinline__ void
wg_pv (float *o, const unsigned *p, uint32_t vt)
{
  const uint64_t dv = wg_desc (vt, WG_BN * 128, 1024);
#pragma unroll
  for (int kt = 0; kt < WG_BN / 16; kt++)
    wg_mma_rs_tb (o, p + 4 * kt, dv + (uint64_t) ((kt * 2048) >> 4));
}

/* S = Q K_tᵀ for one tile: the k16 step kk of d sits in half kk / 4,
 * 32 bytes per step into each 128-byte row (the hardware applies the
 * swizzle to the address it forms, so stepping the start address inside
 * the pattern is exact); a Q half is 64 rows = 8192 bytes, a K half 128
 * rows = 16384 bytes. */
__device__ __forceinline__ void
wg_qk (float *s, uint64_t dq, uint64_t dkt)
{
  wg_mma_ss<0> (s, dq, dkt);
#pragma unroll
  for (int kk = 1; kk < WG_D / 16; kk++) {
    const int step = (kk & 3) * 32;
    wg_mma_ss<1> (s, dq + (uint64_t) (((kk >> 2) * 8192 + step) >> 4),
        dkt + (uint64_t) (((kk >> 2) * 16384 + step) >> 4));
  }
}

/* Tile t's copies: K_{t+1} into the K buffer K_{t-1} used, V_t into the V
 * buffer V_{t-2} used; one commit group per tile. */
__device__ __forceinline__ void
wg_prefetch (uint32_t ks, uint32_t vs, const __nv_bfloat16 *kg,
    const __nv_bfloat16 *vg, const attn_args &a, int t, int ntiles)
{
  if (t + 1 < ntiles)
    wg_load<128> (ks + ((t + 1) & 1) * WG_KV_BYTES, kg, a.ldk,
        (int64_t) (t + 1) * WG_BN, a.N);
  wg_load<128> (vs + (t & 1) * WG_KV_BYTES, vg, a.ldv, (int64_t) t * WG_BN,
      a.N);
  ptx_cp_commit ();
}

/* Scale (log2 domain), mask and bias the tile of keys n0.. in s, then the
 * online softmax: s becomes P, alpha the factor that moves O (and l) from
 * the old row maximum to the new one.  This thread's element 4i + e is
 * row e >> 1 of its two, key n0 + 8i + 2 qd + (e & 1); the quad of lanes
 * sharing a row holds its 128 keys. */
__device__ __forceinline__ void
wg_softmax (float *s, float *mx, float *l, float *alpha, int n0,
    int64_t kmin, const int *kend, int bias_begin, int bias_end, float sl2,
    float bl2, int qd)
{
  const bool edge = n0 + WG_BN > kmin
      || (bias_begin < n0 + WG_BN && bias_end > n0);
#pragma unroll
  for (int i = 0; i < WG_BN / 8; i++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float v = s[4 * i + e] * sl2;
      if (edge) {
        const int j = n0 + 8 * i + 2 * qd + (e & 1);
        if (j >= kend[e >> 1])
          v = -INFINITY;
        else if (j >= bias_begin && j < bias_end)
          v += bl2;
      }
      s[4 * i + e] = v;
    }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float tm = -INFINITY;
#pragma unroll
    for (int i = 0; i < WG_BN / 8; i++)
      tm = fmaxf (tm, fmaxf (s[4 * i + 2 * r], s[4 * i + 2 * r + 1]));
    tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 1));
    tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 2));
    const float mnew = fmaxf (mx[r], tm);
    /* a row with nothing visible yet keeps a zero reference */
    const float ref = mnew == -INFINITY ? 0.0f : mnew;
    alpha[r] = ptx_exp2 (mx[r] - ref);
    mx[r] = mnew;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < WG_BN / 8; i++) {
      s[4 * i + 2 * r] = ptx_exp2 (s[4 * i + 2 * r] - ref);
      s[4 * i + 2 * r + 1] = ptx_exp2 (s[4 * i + 2 * r + 1] - ref);
      sum += s[4 * i + 2 * r] + s[4 * i + 2 * r + 1];
    }
    l[r] = l[r] * alpha[r] + sum;
  }
}

/* P as the A fragments of P·V: k16 step kt = n8 blocks 2 kt and 2 kt + 1,
 * registers (row g, keys 2 qd..), (row g + 8, 2 qd..), (row g, 8 + 2 qd..),
 * (row g + 8, 8 + 2 qd..) as wgmma's m64k16 A layout wants per warp. */
__device__ __forceinline__ void
wg_pack_p (unsigned *p, const float *s)
{
#pragma unroll
  for (int kt = 0; kt < WG_BN / 16; kt++) {
    p[4 * kt] = ptx_pack_bf16 (s[8 * kt], s[8 * kt + 1]);
    p[4 * kt + 1] = ptx_pack_bf16 (s[8 * kt + 2], s[8 * kt + 3]);
    p[4 * kt + 2] = ptx_pack_bf16 (s[8 * kt + 4], s[8 * kt + 5]);
    p[4 * kt + 3] = ptx_pack_bf16 (s[8 * kt + 6], s[8 * kt + 7]);
  }
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

__global__ void __launch_bounds__ (WG_THREADS, 1)
flash_d128_wgmma_kernel (attn_args a)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__ (1024) unsigned char wg_smem[];
  /* the swizzle pattern repeats every 1024 bytes from address 0, and the
   * descriptors assume every half tile starts a pattern */
  const uint32_t qs = ((uint32_t) __cvta_generic_to_shared (wg_smem) + 1023)
      & ~1023u;
  const uint32_t ks = qs + WG_Q_BYTES;            /* K buffers 0, 1 */
  const uint32_t vs = ks + 2 * WG_KV_BYTES;       /* V buffers 0, 1 */

  const int wg = threadIdx.x >> 7;                /* rows 64 wg .. +63 */
  const int warp = (threadIdx.x >> 5) & 3;        /* within the warpgroup */
  const int lane = threadIdx.x & 31, g = lane >> 2, qd = lane & 3;
  const int h = blockIdx.y;
  const int64_t m0 = (int64_t) blockIdx.x * WG_BM;
  const int64_t hoff = (int64_t) h * WG_D;
  const __nv_bfloat16 *qg = (const __nv_bfloat16 *) a.q + hoff;
  const __nv_bfloat16 *kg = (const __nv_bfloat16 *) a.k + hoff;
  const __nv_bfloat16 *vg = (const __nv_bfloat16 *) a.v + hoff;

  /* keys this block needs: the last row sees the most */
  const int64_t mlast = (m0 + WG_BM < a.L ? m0 + WG_BM : a.L) - 1;
  const int64_t kmax = attn_key_end (a, mlast);
  const int64_t kmin = attn_key_end (a, m0);
  const int ntiles = (int) ((kmax + WG_BN - 1) / WG_BN);

  wg_load<64> (qs, qg, a.ldq, m0, a.L);
  wg_load<128> (ks, kg, a.ldk, 0, a.N);
  ptx_cp_commit ();

  /* this thread's rows of the accumulators: g and g + 8 of its warp's 16
   * (32-bit indices: the launcher checks L, N < 2^31) */
  int row[2], kend[2];
  row[0] = (int) m0 + 64 * wg + 16 * warp + g;
  row[1] = row[0] + 8;
  kend[0] = (int) attn_key_end (a, row[0]);
  kend[1] = (int) attn_key_end (a, row[1]);
  const int bias_begin = (int) a.bias_begin, bias_end = (int) a.bias_end;
  const float sl2 = a.scale * 1.4426950408889634f;
  const float bl2 = a.log_bias * 1.4426950408889634f;

  /* K-major descriptors (LBO unused, 8-row groups 1024 bytes apart) of
   * this warpgroup's Q tile and of K buffer 0 */
  const uint64_t dq = wg_desc (qs + wg * (WG_Q_BYTES / 2), 16, 1024);
  const uint64_t dk = wg_desc (ks, 16, 1024);

  float s[64], o[64];
  unsigned p[32];
  float mx[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
#pragma unroll
  for (int i = 0; i < 64; i++)
    s[i] = o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; i++)
    p[i] = 0u;

  /* tile 0: no P·V behind it yet */
  wg_cp_wait_all ();
  wg_fence_proxy ();
  __syncthreads ();
  wg_prefetch (ks, vs, kg, vg, a, 0, ntiles);
  wg_pin (s, 64);
  wg_mma_fence ();
  wg_qk (s, dq, dk);
  wg_mma_commit ();
  wg_mma_wait<0> ();
  wg_pin (s, 64);
  {
    float alpha[2];
    wg_softmax (s, mx, l, alpha, 0, kmin, kend, bias_begin, bias_end, sl2,
        bl2, qd);
    wg_pack_p (p, s);   /* O is still zero: nothing to rescale */
  }

  for (int t = 1; t < ntiles; t++) {
    /* K_t and V_{t-1} landed for every thread, every wgmma of tile t-1
     * finished in both warpgroups */
    wg_cp_wait_all ();
    wg_fence_proxy ();
    __syncthreads ();
    wg_prefetch (ks, vs, kg, vg, a, t, ntiles);

    wg_pin (s, 64);
    wg_pin (o, 64);
    wg_pin (p, 32);
    wg_mma_fence ();
    wg_qk (s, dq, dk + (uint64_t) (((t & 1) * WG_KV_BYTES) >> 4));
    wg_mma_commit ();
    wg_pv (o, p, vs + ((t - 1) & 1) * WG_KV_BYTES);
    wg_mma_commit ();
    wg_mma_wait<1> ();   /* S_t done, P_{t-1} V_{t-1} may still run */
    wg_pin (s, 64);

    float alpha[2];
    wg_softmax (s, mx, l, alpha, t * WG_BN, kmin, kend, bias_begin,
        bias_end, sl2, bl2, qd);

    /* P_{t-1} V_{t-1} is in O now: move O to the new reference, then P_t
     * replaces P_{t-1} */
    wg_mma_wait<0> ();
    wg_pin (o, 64);
    wg_pin (p, 32);
#pragma unroll
    for (int i = 0; i < WG_D / 8; i++) {
      o[4 * i] *= alpha[0];
      o[4 * i + 1] *= alpha[0];
      o[4 * i + 2] *= alpha[1];
      o[4 * i + 3] *= alpha[1];
    }
    wg_pack_p (p, s);
  }

  /* the last tile's P·V once V_{ntiles-1} has landed */
  wg_cp_wait_all ();
  wg_fence_proxy ();
  __syncthreads ();
  wg_pin (o, 64);
  wg_pin (p, 32);
  wg_mma_fence ();
  wg_pv (o, p, vs + ((ntiles - 1) & 1) * WG_KV_BYTES);
  wg_mma_commit ();
  wg_mma_wait<0> ();
  wg_pin (o, 64);

  /* finish the row sums across the quad and normalise */
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float lr = l[r];
    lr += __shfl_xor_sync (0xffffffffu, lr, 1);
    lr += __shfl_xor_sync (0xffffffffu, lr, 2);
    const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
    float am = 0.0f;
    if (a.o_scale) {
#pragma unroll
      for (int i = 0; i < WG_D / 8; i++)
        am = fmaxf (am, fmaxf (fabsf (o[4 * i + 2 * r] * inv),
            fabsf (o[4 * i + 2 * r + 1] * inv)));
      am = attn_fp8_amax_quad (am);
    }
    const int rr = row[r];
    if (rr >= a.L)
      continue;
    if (a.o_scale) {
      const float qi = fp8_dev_inv_scale (am);
#pragma unroll
      for (int i = 0; i < WG_D / 8; i++)
        fp8_store2 (a.o, (int64_t) rr * a.ldo + hoff + 8 * i + 2 * qd,
            o[4 * i + 2 * r] * inv, o[4 * i + 2 * r + 1] * inv, qi);
      if (qd == 0)
        a.o_scale[(int64_t) h * a.L + rr] = fp8_dev_scale (am);
      continue;
    }
#pragma unroll
    for (int i = 0; i < WG_D / 8; i++) {
      const int64_t c = (int64_t) rr * a.ldo + hoff + 8 * i + 2 * qd;
      dit_cuda_st (a.o, a.dto, c, o[4 * i + 2 * r] * inv);
      dit_cuda_st (a.o, a.dto, c + 1, o[4 * i + 2 * r + 1] * inv);
    }
  }
#elif defined(__CUDA_ARCH__)
  __trap ();   /* no wgmma below sm_90a; the launcher never gets here */
#endif
}

/* ------------------------------------------------------------------------ */
/* Configuration 6: warp-specialised (flash_d128_ws_kernel)
 *
 * Same tiles, layout, descriptors and math as configuration 5, but three
 * warpgroups (384 threads): warpgroup 0 produces, warpgroups 1 and 2
 * consume (64 query rows each, 128 per block).  A work item is one row
 * block of one head; with WS_PERSISTENT the grid is one block per SM and
 * block b takes items b, b + grid, ..., numbered so that the row blocks
 * seeing the most keys (block-causal) come first; otherwise one block per
 * item.  One thread of the producer issues TMA copies (one 64-column x
 * rows box per half tile, 128-byte swizzle, so each box lands exactly in
 * the layout the descriptors describe; rows past the end are zero-filled
 * by the TMA unit); the producer gives its registers to the consumers
 * (setmaxnreg: 128 x 24 + 256 x 240 <= 64K).  K and V each stream
 * through a ring of two stages guarded by mbarriers:
 *
 *   k_full[s]     count 1 + tx bytes: phase n completes when K tile
 *                 2n + s has landed (producer arrive.expect_tx 32 KB)
 *   k_empty[s]    count 256 (every consumer thread): phase n completes
 *                 when both consumer warpgroups finished the wgmma that
 *                 read K tile 2n + s
 *   v_full[s], v_empty[s]  the same for V
 *
 * A phase of parity P has completed once try_wait.parity P succeeds.
 * Tile t uses stage s = t & 1 in round n = t >> 1, so consumers wait on
 * full[s] with parity n & 1, and the producer, before loading tile t >= 2
 * into stage s, waits on empty[s] for round n - 1, parity (n & 1) ^ 1
 * (tiles 0 and 1 find the stages empty and do not wait).  A barrier can
 * never run two phases ahead of its waiter: full[s] round n + 1 needs the
 * release of tile 2n + s by both consumers, which follows their wait on
 * round n, and empty[s] round n + 1 needs tile 2n + 2 + s loaded, which
 * follows the producer's wait on round n.  The producer loads in the
 * order K_0 V_0 K_1 V_1 ...; consumer iteration t needs K_t and V_{t-1},
 * whose loads need only releases from iterations t - 2 and t - 1, so the
 * ring cannot deadlock, and every load is consumed, so no copy is in
 * flight when the block exits.
 *
 * Across the items of a block the tile index runs on (tile t of an item
 * is global tile j = base + t, base = the tiles of the block's earlier
 * items), so the rules above hold with j for t: both sides walk the same
 * items and count the same tiles.  Q has its own pair:
 *
 *   q_full        count 1 + tx bytes: phase n completes when item n's Q
 *                 has landed; consumers wait with parity n & 1
 *   q_empty       count 256: phase n completes when both consumers'
 *                 last Q Kᵀ of item n is complete; the producer waits
 *                 with parity (n - 1) & 1 before loading Q of item n >= 1
 *
 * and the V stage of an item's last tile is released after its P·V like
 * every other.  A single-tile item releases K and Q after round 0's S and
 * V after the last round.
 *
 * Ping-pong: the consumers take turns issuing their wgmma through named
 * barriers 1 (consumer 0's turn) and 2 (consumer 1's turn), each counted
 * over 256 threads: a consumer bar.syncs on its own barrier, issues the
 * round's GEMMs, then bar.arrives on the other's, so one warpgroup's
 * softmax overlaps the other's GEMMs.  Both run ntiles + 1 rounds (tile
 * 0, tiles 1 .. ntiles - 1, the last P·V) per item.  Consumer 1 arrives
 * on barrier 1 once before its first round and after every round but its
 * very last (of its last item), consumer 0 arrives on barrier 2 after
 * every round: as many arrivals per barrier as bar.syncs on it, none
 * left over at exit.  Each bar.sync needs the other consumer's previous
 * arrival only, and an arrival comes right after issuing (before any
 * wait), so the turns never wait on the mbarrier ring in a cycle.
 */

#define WS_THREADS 384                   /* producer + two consumers */
#define WS_SMEM_BYTES (WG_Q_BYTES + 4 * WG_KV_BYTES + 1024 + 128)
#define WS_SMEM_BIT (1 << 6)
/* 1: a persistent grid of one block per SM walks the work items; 0: one
 * block per item (the same kernel, each block then sees one item) */
#define WS_PERSISTENT 1

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* A K or V tile (128 rows, two 64-column boxes of 16 KB) into a stage. */
__device__ __forceinline__ void
ws_load_tile (uint32_t dst, const CUtensorMap *map, int col, int row,
    uint32_t full)
{
  ws_bar_expect (full, WG_KV_BYTES);
  ws_tma_load (dst, map, col, row, full);
  ws_tma_load (dst + WG_KV_BYTES / 2, map, col + 64, row, full);
}

/* The work item i (row block, head) of nitems = row blocks x heads:
 * row blocks from the last, which sees the most keys under block-causal
 * masking, so that a persistent grid takes the longest items first. */
__device__ __forceinline__ void
ws_item (const attn_args &a, int i, int64_t *m0, int *h)
{
  const int nrb = (int) ((a.L + WG_BM - 1) / WG_BM);
  *h = i % a.heads;
  *m0 = (int64_t) (nrb - 1 - i / a.heads) * WG_BM;
}

/* Key tiles of the block at rows m0.. (never 0: N >= 1; producer and
 * consumers must count the same tiles). */
__device__ __forceinline__ int
ws_ntiles (const attn_args &a, int64_t m0)
{
  const int64_t mlast = (m0 + WG_BM < a.L ? m0 + WG_BM : a.L) - 1;
  const int n = (int) ((attn_key_end (a, mlast) + WG_BN - 1) / WG_BN);
  return n > 0 ? n : 1;
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

__global__ void __launch_bounds__ (WS_THREADS, 1)
flash_d128_ws_kernel (const __grid_constant__ CUtensorMap tq,
    const __grid_constant__ CUtensorMap tk,
    const __grid_constant__ CUtensorMap tv, attn_args a, int nitems)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__ (1024) unsigned char ws_smem[];
  const uint32_t qs = ((uint32_t) __cvta_generic_to_shared (ws_smem) + 1023)
      & ~1023u;
  const uint32_t ks = qs + WG_Q_BYTES;            /* K stages 0, 1 */
  const uint32_t vs = ks + 2 * WG_KV_BYTES;       /* V stages 0, 1 */
  const uint32_t bars = vs + 2 * WG_KV_BYTES;     /* 8-byte mbarriers */
  const uint32_t q_full = bars, q_empty = bars + 8;
  const uint32_t k_full = bars + 16, k_empty = bars + 32;  /* + 8 s */
  const uint32_t v_full = bars + 48, v_empty = bars + 64;

  const int wg = threadIdx.x >> 7;                /* 0 producer, 1-2 */

  if (threadIdx.x == 0) {
    ws_bar_init (q_full, 1);
    ws_bar_init (q_empty, 256);
    for (int s = 0; s < 2; s++) {
      ws_bar_init (k_full + 8 * s, 1);
      ws_bar_init (v_full + 8 * s, 1);
      ws_bar_init (k_empty + 8 * s, 256);
      ws_bar_init (v_empty + 8 * s, 256);
    }
    /* make the initialised barriers visible to the TMA unit */
    asm volatile ("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads ();   /* the last block-wide barrier: producer warps leave */

  if (wg == 0) {
    asm volatile ("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (threadIdx.x == 0) {
      int base = 0;                               /* global tile index */
      int n = 0;                                  /* item of this block */
      for (int item = blockIdx.x; item < nitems; item += gridDim.x, n++) {
        int64_t m0;
        int h;
        ws_item (a, item, &m0, &h);
        const int ntiles = ws_ntiles (a, m0);
        const int hcol = h * WG_D;
        /* Q: consumer c's 64 rows at qs + c * 16 KB, two 8 KB boxes each,
         * once both consumers are done with the previous item's Q */
        if (n > 0)
          ws_bar_wait (q_empty, (n - 1) & 1);
        ws_bar_expect (q_full, WG_Q_BYTES);
        for (int c = 0; c < 2; c++)
          for (int half = 0; half < 2; half++)
            ws_tma_load (qs + c * (WG_Q_BYTES / 2)
                + half * (WG_Q_BYTES / 4), &tq, hcol + 64 * half,
                (int) m0 + 64 * c, q_full);
        for (int t = 0; t < ntiles; t++) {
          const int j = base + t, s = j & 1;
          const unsigned parity = ((j >> 1) & 1) ^ 1;
          if (j >= 2)
            ws_bar_wait (k_empty + 8 * s, parity);
          ws_load_tile (ks + s * WG_KV_BYTES, &tk, hcol, t * WG_BN,
              k_full + 8 * s);
          if (j >= 2)
            ws_bar_wait (v_empty + 8 * s, parity);
          ws_load_tile (vs + s * WG_KV_BYTES, &tv, hcol, t * WG_BN,
              v_full + 8 * s);
        }
        base += ntiles;
      }
    }
    return;
  }

  asm volatile ("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
  const int cw = wg - 1;                          /* rows 64 cw .. +63 */
  const int my_bar = 1 + cw, other_bar = 2 - cw;
  const int warp = (threadIdx.x >> 5) & 3;
  const int lane = threadIdx.x & 31, g = lane >> 2, qd = lane & 3;
  const int bias_begin = (int) a.bias_begin, bias_end = (int) a.bias_end;
  const float sl2 = a.scale * 1.4426950408889634f;
  const float bl2 = a.log_bias * 1.4426950408889634f;
  const uint64_t dq = wg_desc (qs + cw * (WG_Q_BYTES / 2), 16, 1024);
  const uint64_t dk = wg_desc (ks, 16, 1024);

  /* consumer 0 takes the first turn (a block without items, which the
   * launcher never makes, must leave no arrival behind) */
  if (cw == 1 && (int) blockIdx.x < nitems)
    ws_named_arrive (1);

  int base = 0, n = 0;
  for (int item = blockIdx.x; item < nitems; item += gridDim.x, n++) {
    int64_t m0;
    int h;
    ws_item (a, item, &m0, &h);
    const int ntiles = ws_ntiles (a, m0);
    const int64_t kmin = attn_key_end (a, m0);
    const bool last_item = item + (int) gridDim.x >= nitems;

    int row[2], kend[2];
    row[0] = (int) m0 + 64 * cw + 16 * warp + g;
    row[1] = row[0] + 8;
    kend[0] = (int) attn_key_end (a, row[0]);
    kend[1] = (int) attn_key_end (a, row[1]);

    float s[64], o[64];
    unsigned p[32];
    float mx[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int i = 0; i < 64; i++)
      s[i] = o[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; i++)
      p[i] = 0u;

    /* round 0: S_0 only */
    ws_bar_wait (q_full, n & 1);
    ws_bar_wait (k_full + 8 * (base & 1), (base >> 1) & 1);
    ws_named_sync (my_bar);
    wg_pin (s, 64);
    wg_mma_fence ();
    wg_qk (s, dq, dk + (uint64_t) (((base & 1) * WG_KV_BYTES) >> 4));
    wg_mma_commit ();
    ws_named_arrive (other_bar);
    wg_mma_wait<0> ();
    wg_pin (s, 64);
    ws_bar_arrive (k_empty + 8 * (base & 1));
    if (ntiles == 1)
      ws_bar_arrive (q_empty);   /* the item's last Q Kᵀ is done */
    {
      float alpha[2];
      wg_softmax (s, mx, l, alpha, 0, kmin, kend, bias_begin, bias_end, sl2,
          bl2, qd);
      wg_pack_p (p, s);
    }

    for (int t = 1; t < ntiles; t++) {
      const int sk = (base + t) & 1, sv = (base + t - 1) & 1;
      ws_bar_wait (k_full + 8 * sk, ((base + t) >> 1) & 1);
      ws_bar_wait (v_full + 8 * sv, ((base + t - 1) >> 1) & 1);
      ws_named_sync (my_bar);
      wg_pin (s, 64);
      wg_pin (o, 64);
      wg_pin (p, 32);
      wg_mma_fence ();
      wg_qk (s, dq, dk + (uint64_t) ((sk * WG_KV_BYTES) >> 4));
      wg_mma_commit ();
      wg_pv (o, p, vs + sv * WG_KV_BYTES);
      wg_mma_commit ();
      ws_named_arrive (other_bar);
      wg_mma_wait<1> ();   /* S_t done: K_t (and, last, Q) may go */
      wg_pin (s, 64);
      ws_bar_arrive (k_empty + 8 * sk);
      if (t == ntiles - 1)
        ws_bar_arrive (q_empty);

      float alpha[2];
      wg_softmax (s, mx, l, alpha, t * WG_BN, kmin, kend, bias_begin,
          bias_end, sl2, bl2, qd);

      wg_mma_wait<0> ();   /* P_{t-1} V_{t-1} done: V_{t-1} may go */
      wg_pin (o, 64);
      wg_pin (p, 32);
      ws_bar_arrive (v_empty + 8 * sv);
#pragma unroll
      for (int i = 0; i < WG_D / 8; i++) {
        o[4 * i] *= alpha[0];
        o[4 * i + 1] *= alpha[0];
        o[4 * i + 2] *= alpha[1];
        o[4 * i + 3] *= alpha[1];
      }
      wg_pack_p (p, s);
    }

    /* last round: P·V of the item's last tile; consumer 1 passes the turn
     * on unless this is its very last round */
    {
      const int j = base + ntiles - 1;
      ws_bar_wait (v_full + 8 * (j & 1), (j >> 1) & 1);
      ws_named_sync (my_bar);
      wg_pin (o, 64);
      wg_pin (p, 32);
      wg_mma_fence ();
      wg_pv (o, p, vs + (j & 1) * WG_KV_BYTES);
      wg_mma_commit ();
      if (cw == 0 || !last_item)
        ws_named_arrive (other_bar);
      wg_mma_wait<0> ();
      wg_pin (o, 64);
      ws_bar_arrive (v_empty + 8 * (j & 1));
    }
    base += ntiles;

    const int64_t hoff = (int64_t) h * WG_D;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float lr = l[r];
      lr += __shfl_xor_sync (0xffffffffu, lr, 1);
      lr += __shfl_xor_sync (0xffffffffu, lr, 2);
      const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
      float am = 0.0f;
      if (a.o_scale) {
#pragma unroll
        for (int i = 0; i < WG_D / 8; i++)
          am = fmaxf (am, fmaxf (fabsf (o[4 * i + 2 * r] * inv),
              fabsf (o[4 * i + 2 * r + 1] * inv)));
        am = attn_fp8_amax_quad (am);
      }
      const int rr = row[r];
      if (rr >= a.L)
        continue;
      if (a.o_scale) {
        const float qi = fp8_dev_inv_scale (am);
#pragma unroll
        for (int i = 0; i < WG_D / 8; i++)
          fp8_store2 (a.o, (int64_t) rr * a.ldo + hoff + 8 * i + 2 * qd,
              o[4 * i + 2 * r] * inv, o[4 * i + 2 * r + 1] * inv, qi);
        if (qd == 0)
          a.o_scale[(int64_t) h * a.L + rr] = fp8_dev_scale (am);
        continue;
      }
#pragma unroll
      for (int i = 0; i < WG_D / 8; i++) {
        const int64_t c = (int64_t) rr * a.ldo + hoff + 8 * i + 2 * qd;
        dit_cuda_st (a.o, a.dto, c, o[4 * i + 2 * r] * inv);
        dit_cuda_st (a.o, a.dto, c + 1, o[4 * i + 2 * r + 1] * inv);
      }
    }
  }
#elif defined(__CUDA_ARCH__)
  __trap ();   /* no wgmma or TMA below sm_90a; the launcher never gets here */
#endif
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

int
attn_wgmma_supported (dit_cuda_backend *cb)
{
  if (cb->attn_wgmma == 0) {
    int major = 0, minor = 0, ok = 0;
    cudaFuncAttributes fa;
    if (cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor,
            cb->device) != cudaSuccess
        || cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor,
            cb->device) != cudaSuccess
        || cudaFuncGetAttributes (&fa, flash_d128_wgmma_kernel)
            != cudaSuccess)
      cudaGetLastError ();   /* a failed query is an answer, not an error */
    else
      /* binaryVersion 90: the sm_90a SASS runs, not the compute_90 PTX */
      ok = major == 9 && minor == 0 && fa.binaryVersion == 90
          && cb->smem_optin >= (size_t) WG_SMEM_BYTES;
    cb->attn_wgmma = ok ? 1 : -1;
  }
  return cb->attn_wgmma > 0;
}

dit_status
attn_launch_wgmma (dit_cuda_backend *cb, const attn_args &a)
{
  if (!(cb->flash_smem_set & WG_SMEM_BIT)) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (flash_d128_wgmma_kernel,
        cudaFuncAttributeMaxDynamicSharedMemorySize, WG_SMEM_BYTES));
    cb->flash_smem_set |= WG_SMEM_BIT;
  }
  dim3 grid ((unsigned) ((a.L + WG_BM - 1) / WG_BM), (unsigned) a.heads);
  flash_d128_wgmma_kernel<<<grid, WG_THREADS, WG_SMEM_BYTES, cb->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("flash_d128_wgmma_kernel");
  return DIT_OK;
}

int
attn_ws_supported (dit_cuda_backend *cb)
{
  if (cb->attn_wgmma == 0 || cb->attn_wgmma == 1) {
    if (!attn_wgmma_supported (cb))
      return 0;
    cudaFuncAttributes fa;
    int ok = 0;
    if (cudaFuncGetAttributes (&fa, flash_d128_ws_kernel) != cudaSuccess)
      cudaGetLastError ();
    else
      ok = fa.binaryVersion == 90 && dit_cuda_tma_present ()
          && cb->smem_optin >= (size_t) WS_SMEM_BYTES;
    cb->attn_wgmma = ok ? 2 : 3;
  }
  return cb->attn_wgmma == 2;
}

int
attn_tma_encoder_present (void)
{
  return dit_cuda_tma_present ();
}

dit_status
attn_tensor_map (CUtensorMap *map, const void *base, int64_t rows,
    int64_t cols, int64_t ld, unsigned box_rows, const char *what)
{
  return dit_cuda_tensor_map_2d (map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base,
      rows, cols, ld * 2, 64, box_rows, "attention", what);
}

dit_status
attn_launch_ws (dit_cuda_backend *cb, const attn_args &a)
{
  CUtensorMap tq, tk, tv;
  const int64_t cols = (int64_t) a.heads * WG_D;
  DIT_TRY (attn_tensor_map (&tq, a.q, a.L, cols, a.ldq, 64, "q"));
  DIT_TRY (attn_tensor_map (&tk, a.k, a.N, cols, a.ldk, WG_BN, "k"));
  DIT_TRY (attn_tensor_map (&tv, a.v, a.N, cols, a.ldv, WG_BN, "v"));
  if (!(cb->flash_smem_set & WS_SMEM_BIT)) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (flash_d128_ws_kernel,
        cudaFuncAttributeMaxDynamicSharedMemorySize, WS_SMEM_BYTES));
    cb->flash_smem_set |= WS_SMEM_BIT;
  }
  /* the kernel counts items in 32 bits; past that configuration 5 (the
   * same math) takes the call */
  const int64_t nitems64 = (a.L + WG_BM - 1) / WG_BM * (int64_t) a.heads;
  if (nitems64 > 0x7fff0000)
    return attn_launch_wgmma (cb, a);
  const int nitems = (int) nitems64;
  int grid = nitems;
  if (WS_PERSISTENT && cb->num_sms > 0 && cb->num_sms < nitems)
    grid = cb->num_sms;
  flash_d128_ws_kernel<<<grid, WS_THREADS, WS_SMEM_BYTES, cb->stream>>> (
      tq, tk, tv, a, nitems);
  DIT_CUDA_CHECK_LAUNCH ("flash_d128_ws_kernel");
  return DIT_OK;
}
