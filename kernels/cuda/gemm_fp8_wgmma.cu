/* gemm_fp8_wgmma — the FP8 linear layer (kernels/dit_ops.h "FP8") on
 * Hopper warpgroup MMA (sm_90a): the same op, arguments and arithmetic as
 * gemm_fp8_mma_kernel in gemm_fp8.cu,
 *   acc[m, n] = Σ_b xs[b, m] Σ_{k in block b} x[m, k] w[n, k]   (e4m3)
 *   v[m, n]   = act(acc[m, n] ws[n] + bias[n])
 *   y = v (bf16/f16/f32, optionally v ⊙ gate[m / rpg] + y: the residual
 *       epilogue), or y = e4m3 codes of v with one scale per row and 128
 *       columns,
 * at the tensor cores' wgmma rate.  gemm_fp8.cu chooses it per call ahead
 * of the mma.sync kernel on devices that run it, after a self-check
 * against that kernel.
 *
 * Shape: a CTA of three warpgroups (384 threads) owns output tiles of
 * BM = 128 rows x BN columns.  Warpgroup 0 produces: one thread issues
 * TMA copies into a ring of STAGES stages, each one K block of 128 bytes
 * of the x tile (128 rows) and of the w tile (BN rows); the warpgroup
 * gives its registers to the consumers (setmaxnreg: 128 x 40 + 256 x 232
 * <= 64K).  Warpgroups 1 and 2 consume: each owns 64 rows of the tile and
 * issues, per K block, four wgmma.m64nBNk32.f32.e4m3.e4m3 with both
 * operands read from shared memory through descriptors.
 *
 * Layout (what the descriptors describe): x [M, K] and w [N, K] are both
 * K-major, so a K block of a tile is rows of 128 bytes, which TMA writes
 * with the 128-byte swizzle (16-byte chunk c of row r at chunk c ^ (r & 7),
 * every tile 1024-byte aligned): the canonical K-major SW128 layout, 8-row
 * groups 1024 bytes apart (the stride byte offset); the four k32 steps
 * start 32 bytes apart inside each row (the hardware swizzles the address
 * it forms).  Rows past M or N are zero-filled by the TMA unit (M = 2160
 * is no multiple of 128), and the epilogue stores only rows < M and
 * columns < N.
 *
 * Precision (as the mma.sync kernel): each K block's 128 products sum in a
 * fresh wgmma accumulator (the first k32 step overwrites it), which is
 * then promoted in f32 registers, acc += xs[b, m] · part, DeepSeek-V3's
 * recipe against the tensor cores' short FP8 accumulation.  With
 * `overlap` the block's wgmma writes one of two partial accumulators, so
 * the next block's wgmma is in flight while this one is promoted.
 *
 * Ring protocol: full[s] (count 1 + the stage's transaction bytes) and
 * empty[s] (count 8: lane 0 of each consumer warp once its wgmma of the
 * stage has completed).  The i-th K block a CTA handles (counted across
 * its tiles) uses stage i % STAGES in round i / STAGES: consumers wait on
 * full with the round's parity, the producer, from round 1 on, on empty
 * with the previous round's.  Waits trap after 4 s instead of hanging.
 *
 * Epilogue: the wgmma accumulator gives each quad of lanes one row's BN
 * columns (element 4i + e: row 16 warp + lane / 4 + 8 (e >> 1), column
 * 8i + 2 (lane % 4) + (e & 1)).  Channel scale, bias and activation apply
 * there (g8_act, the mma.sync kernel's arithmetic); an FP8 output takes
 * each row's amax over a 128-column block from the quad (a shuffle, no
 * shared memory) and quantizes by the rule of kernels/dit_fp8.h.  The
 * values then pass through a per-warp staging tile in shared memory so
 * that every store (and the residual epilogue's gate and y loads) is a
 * 16-byte access along a row.
 *
 * Schedule: tile t is row block t % mt, column block t / mt, so the CTAs
 * in flight share a few w panels and all of x, in L2.  Persistent
 * variants launch one CTA per SM, CTA b taking tiles b, b + grid, ...;
 * while the consumers finish a tile the producer already fills the ring
 * for the next.
 *
 * Variants (g8w_variant; dit-fp8-bench times each at the DiT shapes):
 * BN 128 with 6 stages, BN 128 with overlapped promotion, BN 144 (no FP8
 * output: its tiles straddle scale blocks; 5120 / 144 leaves fewer idle
 * SMs in the last wave), BN 192 with 5 stages, and BN 128 with one CTA per
 * tile.  Two timing probes follow them (g8w_probe; dit-fp8-bench only,
 * not the op): the K loop without the promotion, and with every other K
 * block's loads left out.  Needs sm_90a: the bodies exist only where
 * __CUDA_ARCH_FEAT_SM90_ALL is defined; elsewhere they trap, and
 * g8w_device_ok keeps the launcher from being used.
 */
#include "gemm_fp8.cuh"
#include "hopper.cuh"

#define G8W_BM 128
#define G8W_BK 128
#define G8W_THREADS 384
#define G8W_CONSUMER_WARPS 8
#define G8W_PIPE_ROW 40                 /* floats per staging row (32 + 8) */
#define G8W_PIPE_BYTES (16 * G8W_PIPE_ROW * 4)   /* staging per warp */
#define G8W_WAIT_NS 4000000000ull       /* a ring wait this long is a bug */
#define G8W_PRODUCER_REGS 40
#define G8W_CONSUMER_REGS 232

/* Timing probes (dit-fp8-bench only; their results are not the op's):
 * UNSCALED accumulates every K block straight into the accumulator (no
 * activation scales, no promotion); HALF_LOADS loads the tiles of even K
 * blocks only, odd blocks reuse the stale stage. */
#define G8W_PROBE_UNSCALED 1
#define G8W_PROBE_HALF_LOADS 2

/* The shared-memory map: STAGES x (x tile, w tile), the consumer warps'
 * staging tiles, then full[STAGES] and empty[STAGES]; 1024 bytes of slack
 * to align the base for the swizzle. */
template <int BN, int STAGES>
struct g8w_map {
  static constexpr uint32_t A = G8W_BM * G8W_BK;
  static constexpr uint32_t B = BN * G8W_BK;
  static constexpr uint32_t STAGE = A + B;
  static constexpr uint32_t PIPE = STAGES * STAGE;
  static constexpr uint32_t BARS = PIPE + G8W_CONSUMER_WARPS * G8W_PIPE_BYTES;
  static constexpr uint32_t BYTES = BARS + 2 * STAGES * 8 + 1024;
  static_assert (STAGE % 1024 == 0, "stages keep the 1024-byte alignment");
};

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* wgmma m64nNk32, e4m3 x e4m3 -> f32, A and B K-major in shared memory:
 * d (+)= A B; scale_d 0 overwrites d.  One asm per N (the operand list is
 * spelled out). */
template <int N> struct g8w_mma;

#define G8W_MMA(N, REGS, DA, DB, SC, ...)                                     \
  template <> struct g8w_mma<N> {                                             \
    static __device__ __forceinline__ void                                    \
    run (float *d, uint64_t da, uint64_t db, int scale_d)                     \
    {                                                                         \
      asm volatile ("{\n.reg .pred p;\nsetp.ne.b32 p, " SC ", 0;\n"           \
          "wgmma.mma_async.sync.aligned.m64n" #N "k32.f32.e4m3.e4m3 "         \
          "{" REGS "}, " DA ", " DB ", p, 1, 1;\n}\n"                         \
          : __VA_ARGS__ : "l" (da), "l" (db), "r" (scale_d));                 \
    }                                                                         \
  };

#define G8W_R60 HP_R10 () ", " HP_R10 (1) ", " HP_R10 (2) ", " HP_R10 (3)     \
  ", " HP_R10 (4) ", " HP_R10 (5)
#define G8W_A64(d) HP_A8 (d, 0), HP_A8 (d, 8), HP_A8 (d, 16), HP_A8 (d, 24),  \
  HP_A8 (d, 32), HP_A8 (d, 40), HP_A8 (d, 48), HP_A8 (d, 56)

G8W_MMA (128, G8W_R60 ", " HP_R4 (6), "%64", "%65", "%66", G8W_A64 (d))
G8W_MMA (144, G8W_R60 ", " HP_R10 (6) ", " HP_R2 (7), "%72", "%73", "%74",
    G8W_A64 (d), HP_A8 (d, 64))
G8W_MMA (192, G8W_R60 ", " HP_R10 (6) ", " HP_R10 (7) ", " HP_R10 (8) ", "
    HP_R6 (9), "%96", "%97", "%98", G8W_A64 (d), HP_A8 (d, 64),
    HP_A8 (d, 72), HP_A8 (d, 80), HP_A8 (d, 88))

/* The consumer's view of one ring: barrier and descriptor bases. */
typedef struct g8w_ring {
  uint32_t full, empty;      /* full[s] = full + 8 s, likewise empty */
  uint64_t da, db;           /* descriptors of stage 0's x rows of this
                              * warpgroup and w tile */
  int stage;
  unsigned phase;
} g8w_ring;

template <int STAGES>
__device__ __forceinline__ void
g8w_advance (int *stage, unsigned *phase)
{
  if (++*stage == STAGES) {
    *stage = 0;
    *phase ^= 1u;
  }
}

/* This thread's two rows' activation scales for K block kb (0 past M,
 * where the TMA unit zero-filled the rows). */
__device__ __forceinline__ void
g8w_scales (const g8_args &a, int kb, int64_t r0, float *s0, float *s1)
{
  const float *xs = a.xs + (kb / a.xs_div) * a.M;
  *s0 = r0 < a.M ? __ldg (xs + r0) : 0.0f;
  *s1 = r0 + 8 < a.M ? __ldg (xs + r0 + 8) : 0.0f;
}

/* Wait for the ring's current stage and issue its K block into part:
 * four k32 steps 32 bytes apart (2 in descriptor units), the first one
 * overwriting part; then advance the ring.  Returns the stage used. */
template <int BN, int STAGES, int ACCUM = 0>
__device__ __forceinline__ int
g8w_issue (float (&part)[BN / 2], g8w_ring *r)
{
  const int s = r->stage;
  hp_bar_wait_bounded (r->full + 8 * s, r->phase, G8W_WAIT_NS);
  const uint64_t off = (uint64_t) ((s * g8w_map<BN, STAGES>::STAGE) >> 4);
  wg_pin (part, BN / 2);
  wg_mma_fence ();
#pragma unroll
  for (int k = 0; k < 4; k++)
    g8w_mma<BN>::run (part, r->da + off + 2 * k, r->db + off + 2 * k,
        ACCUM ? 1 : k);
  wg_mma_commit ();
  g8w_advance<STAGES> (&r->stage, &r->phase);
  return s;
}

/* mbarrier arrive by lane 0 as a predicated instruction, not a branch
 * (no divergent path while another wgmma group is in flight). */
__device__ __forceinline__ void
g8w_arrive_lane0 (uint32_t bar, int lane)
{
  asm volatile ("{\n.reg .pred p;\nsetp.eq.s32 p, %1, 0;\n"
      "@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n"
      :: "r" (bar), "r" (lane) : "memory");
}

/* After the wait for part's group: hand the stage back (one arrival per
 * warp) and promote, acc += scale · part per row. */
template <int BN>
__device__ __forceinline__ void
g8w_promote (float (&acc)[BN / 2], float (&part)[BN / 2], const g8w_ring &r,
    int stage, float s0, float s1, int lane)
{
  wg_pin (part, BN / 2);
  g8w_arrive_lane0 (r.empty + 8 * stage, lane);
#pragma unroll
  for (int i = 0; i < BN / 8; i++) {
    acc[4 * i] += s0 * part[4 * i];
    acc[4 * i + 1] += s0 * part[4 * i + 1];
    acc[4 * i + 2] += s1 * part[4 * i + 2];
    acc[4 * i + 3] += s1 * part[4 * i + 3];
  }
}

/* The K loop of one tile, promoting each block after its wgmma. */
template <int BN, int STAGES>
__device__ __forceinline__ void
g8w_mainloop (float (&acc)[BN / 2], const g8_args &a, g8w_ring *r, int nk,
    int64_t r0, int lane)
{
  float part[BN / 2];
  for (int kb = 0; kb < nk; kb++) {
    float s0, s1;
    g8w_scales (a, kb, r0, &s0, &s1);
    const int st = g8w_issue<BN, STAGES> (part, r);
    wg_mma_wait<0> ();
    g8w_promote<BN> (acc, part, *r, st, s0, s1, lane);
  }
}

/* Timing probe, not the op: every block's wgmma accumulates straight into
 * acc (no activation scales, no promotion), the previous block's stage
 * released once its group has completed.  What the K loop costs without
 * the promotion. */
template <int BN, int STAGES>
__device__ __forceinline__ void
g8w_mainloop_unscaled (float (&acc)[BN / 2], g8w_ring *r, int nk, int lane)
{
  int prev = g8w_issue<BN, STAGES, 1> (acc, r);
  for (int kb = 1; kb < nk; kb++) {
    const int st = g8w_issue<BN, STAGES, 1> (acc, r);
    wg_mma_wait<1> ();
    g8w_arrive_lane0 (r->empty + 8 * prev, lane);
    prev = st;
  }
  wg_mma_wait<0> ();
  wg_pin (acc, BN / 2);
  g8w_arrive_lane0 (r->empty + 8 * prev, lane);
}

/* The K loop with two partial accumulators: block kb + 1 is issued before
 * block kb is promoted, so the tensor cores always have this warpgroup's
 * next block queued.  The loop runs over pairs of blocks with nothing
 * conditional around a wgmma (ptxas serializes wgmma in paths it cannot
 * prove uniform); an even block count first takes one block alone. */
template <int BN, int STAGES>
__device__ __forceinline__ void
g8w_mainloop_overlap (float (&acc)[BN / 2], const g8_args &a, g8w_ring *r,
    int nk, int64_t r0, int lane)
{
  float pa[BN / 2], pb[BN / 2];
  float sa0, sa1, sb0, sb1;
  int kb = nk & 1 ? 0 : 1;
  if (kb) {
    g8w_scales (a, 0, r0, &sa0, &sa1);
    const int st = g8w_issue<BN, STAGES> (pa, r);
    wg_mma_wait<0> ();
    g8w_promote<BN> (acc, pa, *r, st, sa0, sa1, lane);
  }
  /* nk - kb is odd: pa takes block kb, then pairs (kb + 1, kb + 2) */
  g8w_scales (a, kb, r0, &sa0, &sa1);
  int sta = g8w_issue<BN, STAGES> (pa, r);
  for (; kb + 2 < nk; kb += 2) {
    g8w_scales (a, kb + 1, r0, &sb0, &sb1);
    const int stb = g8w_issue<BN, STAGES> (pb, r);
    wg_mma_wait<1> ();
    g8w_promote<BN> (acc, pa, *r, sta, sa0, sa1, lane);
    g8w_scales (a, kb + 2, r0, &sa0, &sa1);
    sta = g8w_issue<BN, STAGES> (pa, r);
    wg_mma_wait<1> ();
    g8w_promote<BN> (acc, pb, *r, stb, sb0, sb1, lane);
  }
  wg_mma_wait<0> ();
  g8w_promote<BN> (acc, pa, *r, sta, sa0, sa1, lane);
}

__device__ __forceinline__ float
g8w_ld (const void *p, int dt, int64_t i)
{
  return dit_cuda_ld (p, dt, i);
}

/* Four consecutive values of a 16/32-bit tensor at element i (16-byte
 * aligned for f32, 8-byte for 16-bit types when vec). */
__device__ __forceinline__ void
g8w_ld4 (const void *p, int dt, int64_t i, bool vec, float (&v)[4])
{
  if (vec && dt == DIT_F32) {
    const float4 f = *(const float4 *) ((const float *) p + i);
    v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
  } else if (vec && dt == DIT_BF16) {
    const uint2 u = *(const uint2 *) ((const __nv_bfloat16 *) p + i);
    const __nv_bfloat162 lo = *(const __nv_bfloat162 *) &u.x;
    const __nv_bfloat162 hi = *(const __nv_bfloat162 *) &u.y;
    v[0] = __low2float (lo); v[1] = __high2float (lo);
    v[2] = __low2float (hi); v[3] = __high2float (hi);
  } else if (vec) {
    const uint2 u = *(const uint2 *) ((const __half *) p + i);
    const __half2 lo = *(const __half2 *) &u.x, hi = *(const __half2 *) &u.y;
    v[0] = __low2float (lo); v[1] = __high2float (lo);
    v[2] = __low2float (hi); v[3] = __high2float (hi);
  } else {
#pragma unroll
    for (int e = 0; e < 4; e++)
      v[e] = g8w_ld (p, dt, i + e);
  }
}

__device__ __forceinline__ void
g8w_st4 (void *p, int dt, int64_t i, bool vec, const float (&v)[4])
{
  if (vec && dt == DIT_F32) {
    *(float4 *) ((float *) p + i) = make_float4 (v[0], v[1], v[2], v[3]);
  } else if (vec && dt == DIT_BF16) {
    __nv_bfloat162 lo = __floats2bfloat162_rn (v[0], v[1]);
    __nv_bfloat162 hi = __floats2bfloat162_rn (v[2], v[3]);
    uint2 u;
    u.x = *(unsigned *) &lo;
    u.y = *(unsigned *) &hi;
    *(uint2 *) ((__nv_bfloat16 *) p + i) = u;
  } else if (vec) {
    __half2 lo = __floats2half2_rn (v[0], v[1]);
    __half2 hi = __floats2half2_rn (v[2], v[3]);
    uint2 u;
    u.x = *(unsigned *) &lo;
    u.y = *(unsigned *) &hi;
    *(uint2 *) ((__half *) p + i) = u;
  } else {
#pragma unroll
    for (int e = 0; e < 4; e++)
      dit_cuda_st (p, dt, i + e, v[e]);
  }
}

/* y[m, n .. n + 3] from the finished values v: the residual epilogue
 * (v · gate[m / rpg], + y, one rounding) as in the mma.sync kernel. */
__device__ __forceinline__ void
g8w_store4 (const g8_args &a, int64_t m, int64_t n, float (&v)[4])
{
  if (a.gate) {
    float gv[4];
    g8w_ld4 (a.gate, a.dtg, (m / a.rpg) * a.ldg + n, a.vec & G8_VEC_GATE, gv);
#pragma unroll
    for (int e = 0; e < 4; e++)
      v[e] *= gv[e];
  }
  const int64_t yo = m * a.ldy + n;
  const bool vy = a.vec & G8_VEC_Y;
  if (a.accumulate) {
    float old[4];
    g8w_ld4 (a.y, a.dty, yo, vy, old);
#pragma unroll
    for (int e = 0; e < 4; e++)
      v[e] += old[e];
  }
  g8w_st4 (a.y, a.dty, yo, vy, v);
}

/* 16/32-bit output: 32 columns at a time (the last group of BN 144 has
 * 16) through the warp's staging tile (16 rows x 40 floats; the float2
 * writes of the fragment layout and the float4 reads along rows are
 * bank-conflict free), then each lane stores 4 consecutive columns of a
 * row. */
template <int BN>
__device__ __forceinline__ void
g8w_store_tile (const g8_args &a, const float (&acc)[BN / 2], int64_t rw,
    int64_t n0, int lane, float *pipe)
{
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < (BN + 31) / 32; j++) {
    const int width = BN - 32 * j < 32 ? BN - 32 * j : 32;
    if (n0 + 32 * j >= a.N)
      break;
    __syncwarp ();
#pragma unroll
    for (int c = 0; c < width / 8; c++) {
      const int i = 4 * j + c;
      *(float2 *) (pipe + g * G8W_PIPE_ROW + 8 * c + 2 * t)
          = make_float2 (acc[4 * i], acc[4 * i + 1]);
      *(float2 *) (pipe + (g + 8) * G8W_PIPE_ROW + 8 * c + 2 * t)
          = make_float2 (acc[4 * i + 2], acc[4 * i + 3]);
    }
    __syncwarp ();
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int q = lane + 32 * k, lr = q >> 3, lc = 4 * (q & 7);
      const float4 f = *(const float4 *) (pipe + lr * G8W_PIPE_ROW + lc);
      const int64_t m = rw + lr, n = n0 + 32 * j + lc;
      if (lc < width && m < a.M && n < a.N) {
        float v[4] = { f.x, f.y, f.z, f.w };
        g8w_store4 (a, m, n, v);
      }
    }
  }
}

/* FP8 output: per 128-column block (one output scale block; BN is a
 * multiple of 128 and so is N), each row's amax over its quad, the scale,
 * the codes through the staging tile (16 rows x 144 bytes), 16 codes per
 * lane store. */
template <int BN>
__device__ __forceinline__ void
g8w_store_tile_fp8 (const g8_args &a, const float (&acc)[BN / 2], int64_t rw,
    int64_t n0, int lane, uint8_t *pipe)
{
  const int g = lane >> 2, t = lane & 3;
  uint8_t *y8 = (uint8_t *) a.y;
#pragma unroll
  for (int j = 0; j < BN / 128; j++) {
    const int64_t nb = n0 + 128 * j;
    if (nb >= a.N)
      break;
    float am0 = 0.0f, am1 = 0.0f;
#pragma unroll
    for (int c = 0; c < 16; c++) {
      const int i = 16 * j + c;
      am0 = fmaxf (am0, fmaxf (fabsf (acc[4 * i]), fabsf (acc[4 * i + 1])));
      am1 = fmaxf (am1, fmaxf (fabsf (acc[4 * i + 2]),
          fabsf (acc[4 * i + 3])));
    }
    am0 = fp8_group_amax (am0, 4);
    am1 = fp8_group_amax (am1, 4);
    const float q0 = fp8_dev_inv_scale (am0), q1 = fp8_dev_inv_scale (am1);
    if (t == 0) {
      float *ys = a.ys + (nb / 128) * a.M;
      if (rw + g < a.M)
        ys[rw + g] = fp8_dev_scale (am0);
      if (rw + g + 8 < a.M)
        ys[rw + g + 8] = fp8_dev_scale (am1);
    }
    __syncwarp ();
#pragma unroll
    for (int c = 0; c < 16; c++) {
      const int i = 16 * j + c;
      *(uint16_t *) (pipe + g * 144 + 8 * c + 2 * t)
          = fp8_dev_code2 (acc[4 * i], acc[4 * i + 1], q0);
      *(uint16_t *) (pipe + (g + 8) * 144 + 8 * c + 2 * t)
          = fp8_dev_code2 (acc[4 * i + 2], acc[4 * i + 3], q1);
    }
    __syncwarp ();
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int q = lane + 32 * k, lr = q >> 3, lc = 16 * (q & 7);
      const uint4 u = *(const uint4 *) (pipe + lr * 144 + lc);
      const int64_t m = rw + lr;
      if (m >= a.M)
        continue;
      uint8_t *dst = y8 + m * a.ldy + nb + lc;
      if (a.vec & G8_VEC_Y) {
        *(uint4 *) dst = u;
      } else {
        const uint8_t *b = (const uint8_t *) &u;
#pragma unroll
        for (int e = 0; e < 16; e++)
          dst[e] = b[e];
      }
    }
  }
}

/* The epilogue of one warp's 16 rows (from rw) x BN columns (from n0):
 * channel scale, bias and activation in the fragment layout, then the
 * store. */
template <int BN>
__device__ __forceinline__ void
g8w_epilogue (const g8_args &a, float (&acc)[BN / 2], int64_t rw, int64_t n0,
    int lane, uint8_t *pipe)
{
  const int t = lane & 3;
#pragma unroll
  for (int i = 0; i < BN / 8; i++) {
    const int64_t n = n0 + 8 * i + 2 * t;
    float s0 = 0.0f, s1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
    if (n < a.N) {           /* N is a multiple of 8: n + 1 < N too */
      s0 = __ldg (a.ws + n);
      s1 = __ldg (a.ws + n + 1);
      if (a.bias) {
        b0 = g8w_ld (a.bias, a.dtb, n);
        b1 = g8w_ld (a.bias, a.dtb, n + 1);
      }
    }
    acc[4 * i] = g8_act (acc[4 * i] * s0 + b0, a.act);
    acc[4 * i + 1] = g8_act (acc[4 * i + 1] * s1 + b1, a.act);
    acc[4 * i + 2] = g8_act (acc[4 * i + 2] * s0 + b0, a.act);
    acc[4 * i + 3] = g8_act (acc[4 * i + 3] * s1 + b1, a.act);
  }
  if (a.dty == DIT_F8E4M3)
    g8w_store_tile_fp8<BN> (a, acc, rw, n0, lane, pipe);
  else
    g8w_store_tile<BN> (a, acc, rw, n0, lane, (float *) pipe);
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

template <int BN, int STAGES, int OVERLAP, int PROBE>
__global__ void __launch_bounds__ (G8W_THREADS, 1)
gemm_fp8_wgmma_kernel (const __grid_constant__ CUtensorMap tx,
    const __grid_constant__ CUtensorMap tw, const g8_args a, int mt,
    int ntiles)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  typedef g8w_map<BN, STAGES> map;
  extern __shared__ __align__ (1024) unsigned char g8w_smem[];
  const uint32_t raw = (uint32_t) __cvta_generic_to_shared (g8w_smem);
  const uint32_t base = (raw + 1023) & ~1023u;
  uint8_t *const gbase = g8w_smem + (base - raw);   /* generic view */
  const uint32_t full = base + map::BARS, empty = full + 8 * STAGES;
  const int nk = (int) (a.K / G8W_BK);
  const int wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) {
      ws_bar_init (full + 8 * s, 1);
      ws_bar_init (empty + 8 * s, G8W_CONSUMER_WARPS);
    }
    /* make the initialised barriers visible to the TMA unit */
    asm volatile ("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads ();   /* the last block-wide barrier: producer warps leave */

  if (wg == 0) {
    asm volatile ("setmaxnreg.dec.sync.aligned.u32 %0;\n"
        :: "n" (G8W_PRODUCER_REGS) : "memory");
    if (threadIdx.x == 0) {
      hp_tma_prefetch (&tx);
      hp_tma_prefetch (&tw);
      int stage = 0, fills = 0;
      unsigned phase = 0;
      for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        const int m0 = (tile % mt) * G8W_BM, n0 = (tile / mt) * BN;
        for (int kb = 0; kb < nk; kb++) {
          /* round n >= 1 of a stage waits for round n - 1's release */
          if (fills >= STAGES)
            hp_bar_wait_bounded (empty + 8 * stage, phase ^ 1u, G8W_WAIT_NS);
          else
            fills++;
          const uint32_t dst = base + stage * map::STAGE;
          if (PROBE == G8W_PROBE_HALF_LOADS && (kb & 1)) {
            ws_bar_arrive (full + 8 * stage);   /* the stale tiles again */
          } else {
            ws_bar_expect (full + 8 * stage, map::STAGE);
            ws_tma_load (dst, &tx, kb * G8W_BK, m0, full + 8 * stage);
            ws_tma_load (dst + map::A, &tw, kb * G8W_BK, n0, full + 8 * stage);
          }
          g8w_advance<STAGES> (&stage, &phase);
        }
      }
    }
    return;
  }

  asm volatile ("setmaxnreg.inc.sync.aligned.u32 %0;\n"
      :: "n" (G8W_CONSUMER_REGS) : "memory");
  const int cw = wg - 1;                       /* rows 64 cw .. of a tile */
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  uint8_t *pipe = gbase + map::PIPE + (cw * 4 + warp) * G8W_PIPE_BYTES;
  g8w_ring r;
  r.full = full;
  r.empty = empty;
  r.da = wg_desc (base + cw * (G8W_BM / 2) * G8W_BK, 16, 1024);
  r.db = wg_desc (base + map::A, 16, 1024);
  r.stage = 0;
  r.phase = 0;

  for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const int64_t m0 = (int64_t) (tile % mt) * G8W_BM;
    const int64_t n0 = (int64_t) (tile / mt) * BN;
    const int64_t rw = m0 + 64 * cw + 16 * warp;   /* this warp's rows */
    const int64_t r0 = rw + (lane >> 2);           /* and this lane's */
    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++)
      acc[i] = 0.0f;
    if (PROBE == G8W_PROBE_UNSCALED)
      g8w_mainloop_unscaled<BN, STAGES> (acc, &r, nk, lane);
    else if (OVERLAP)
      g8w_mainloop_overlap<BN, STAGES> (acc, a, &r, nk, r0, lane);
    else
      g8w_mainloop<BN, STAGES> (acc, a, &r, nk, r0, lane);
    g8w_epilogue<BN> (a, acc, rw, n0, lane, pipe);
  }
#elif defined(__CUDA_ARCH__)
  __trap ();   /* no wgmma below sm_90a; g8w_device_ok keeps us out */
#endif
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

typedef void (*g8w_kernel_fn) (const CUtensorMap, const CUtensorMap,
    const g8_args, int, int);

typedef struct g8w_variant_def {
  g8w_variant_info info;
  g8w_kernel_fn kernel;
} g8w_variant_def;

#define G8W_VARIANT(name, bn, st, ov, pers, probe)                            \
  { { name, bn, st, ov, pers, g8w_map<bn, st>::BYTES },                       \
    gemm_fp8_wgmma_kernel<bn, st, ov, probe> }

/* The op's variants first, then the timing probes (g8w_probe). */
static const g8w_variant_def g8w_variants[] = {
  G8W_VARIANT ("bn128-s6", 128, 6, 0, 1, 0),
  G8W_VARIANT ("bn128-s6-overlap", 128, 6, 1, 1, 0),
  G8W_VARIANT ("bn144-s6", 144, 6, 0, 1, 0),
  G8W_VARIANT ("bn192-s5", 192, 5, 0, 1, 0),
  G8W_VARIANT ("bn128-s6-tiles", 128, 6, 0, 0, 0),
  G8W_VARIANT ("probe-unscaled", 128, 6, 0, 1, G8W_PROBE_UNSCALED),
  G8W_VARIANT ("probe-half-loads", 128, 6, 1, 1, G8W_PROBE_HALF_LOADS),
};

#define G8W_NALL ((int) (sizeof g8w_variants / sizeof g8w_variants[0]))
#define G8W_NPROBES 2
#define G8W_NVARIANTS (G8W_NALL - G8W_NPROBES)

int
g8w_variant_count (void)
{
  return G8W_NVARIANTS;
}

const g8w_variant_info *
g8w_variant (int v)
{
  return v >= 0 && v < G8W_NVARIANTS ? &g8w_variants[v].info : NULL;
}

int
g8w_probe_count (void)
{
  return G8W_NPROBES;
}

const g8w_variant_info *
g8w_probe (int i)
{
  return i >= 0 && i < G8W_NPROBES ? &g8w_variants[G8W_NVARIANTS + i].info
      : NULL;
}

int
g8w_device_ok (dit_cuda_backend *cb)
{
  if (cb->cc_major != 9 || cb->cc_minor != 0 || !dit_cuda_tma_present ())
    return 0;
  for (int v = 0; v < G8W_NALL; v++) {
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes (&fa, g8w_variants[v].kernel) != cudaSuccess) {
      cudaGetLastError ();   /* a failed query is an answer, not an error */
      return 0;
    }
    /* binaryVersion 90: the sm_90a SASS runs, not the compute_90 PTX */
    if (fa.binaryVersion != 90 || cb->smem_optin < g8w_variants[v].info.smem)
      return 0;
  }
  return 1;
}

int
g8w_takes (int v, const g8_args &a)
{
  const g8w_variant_info *vi = g8w_variant (v);
  if (!vi)
    return 0;
  return a.dty != DIT_F8E4M3 || vi->bn % 128 == 0;
}

int
g8w_default_variant (const g8_args &a)
{
  (void) a;
  return 1;   /* bn128-s6-overlap: takes every call */
}

static dit_status
g8w_launch_def (dit_cuda_backend *cb, const g8_args &a_in,
    const g8w_variant_def *d, int bit, int grid_limit, unsigned *smem_set)
{
  const int bn = d->info.bn;
  g8_args a = a_in;
  CUtensorMap tx, tw;
  DIT_TRY (dit_cuda_tensor_map_2d (&tx, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.x,
      a.M, a.K, a.ldx, G8W_BK, G8W_BM, "gemm_fp8", "x"));
  DIT_TRY (dit_cuda_tensor_map_2d (&tw, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.w,
      a.N, a.K, a.ldw, G8W_BK, (unsigned) bn, "gemm_fp8", "w"));
  /* 16-byte accesses along y and gate rows where the pointers allow */
  const size_t ysz = a.dty == DIT_F8E4M3 ? 1 : a.dty == DIT_F32 ? 4 : 2;
  const size_t vy = a.dty == DIT_F8E4M3 ? 16 : 4 * ysz;   /* bytes a run */
  a.vec = 0;
  if ((uintptr_t) a.y % vy == 0 && ((size_t) a.ldy * ysz) % vy == 0)
    a.vec |= G8_VEC_Y;
  if (a.gate) {
    const size_t gsz = a.dtg == DIT_F32 ? 4 : 2;
    if ((uintptr_t) a.gate % (4 * gsz) == 0
        && ((size_t) a.ldg * gsz) % (4 * gsz) == 0)
      a.vec |= G8_VEC_GATE;
  }
  if (!(*smem_set & (1u << bit))) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (d->kernel,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) d->info.smem));
    *smem_set |= 1u << bit;
  }
  const int64_t mt = (a.M + G8W_BM - 1) / G8W_BM;
  const int64_t tiles = mt * ((a.N + bn - 1) / bn);
  if (tiles > 0x7fffffff)
    return dit_error (DIT_ERR_UNSUPPORTED, "gemm_fp8 (wgmma): %lld x %lld "
        "output is %lld tiles", (long long) a.M, (long long) a.N,
        (long long) tiles);
  int64_t grid = tiles;
  if (d->info.persistent && cb->num_sms > 0 && cb->num_sms < grid)
    grid = cb->num_sms;
  if (grid_limit > 0 && grid_limit < grid)
    grid = grid_limit;
  d->kernel<<<(unsigned) grid, G8W_THREADS, d->info.smem, cb->stream>>> (tx,
      tw, a, (int) mt, (int) tiles);
  DIT_CUDA_CHECK_LAUNCH ("gemm_fp8_wgmma_kernel");
  return DIT_OK;
}

dit_status
g8w_launch (dit_cuda_backend *cb, const g8_args &a, int v, int grid_limit,
    unsigned *smem_set)
{
  return g8w_launch_def (cb, a, &g8w_variants[v], v, grid_limit, smem_set);
}

dit_status
g8w_launch_probe (dit_cuda_backend *cb, const g8_args &a, int i,
    unsigned *smem_set)
{
  return g8w_launch_def (cb, a, &g8w_variants[G8W_NVARIANTS + i],
      G8W_NVARIANTS + i, 0, smem_set);
}
