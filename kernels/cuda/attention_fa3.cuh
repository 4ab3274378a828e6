/* attention_fa3 — the FlashAttention-3 style wgmma kernel behind flash
 * configurations 7 and up, as one template; each configuration is an
 * instantiation in its own small attention_fa3_*.cu, attention_fa3.cu
 * plans the work and launches.
 *
 * Contract and math: those of configurations 5 and 6 (attention_wgmma.cu):
 * bf16 q [L, H*d], k/v [N, H*d], o [L, H*d] with strided rows, d = 128, the
 * KV-cache log-bias on keys [bias_begin, bias_end), block-causal
 * visibility through attn_key_end, S = Q Kᵀ in f32, the online softmax in
 * f32 on ex2.approx with log2(e) folded into the scale, P rounded to bf16
 * for P·V, O in f32; the key loop stops at the block's last visible key
 * and masks/bias are applied only on tiles that straddle a boundary.  Two
 * things are computed in another order, both within f32 rounding: the
 * scale is applied inside the exponent, exp2(s * scale·log2e - m) as one
 * FFMA, with the row maximum taken over the raw scores (for a positive
 * scale max(s)·c = max(s·c) exactly) and the bias added in raw units
 * (log_bias / scale; the launcher refuses a non-positive scale so the
 * dispatch takes configuration 6); and O is left unscaled when no row
 * maximum of the warp moved (alpha = 1 exactly).
 *
 * Block: as configuration 6, a TMA producer warpgroup (24 registers after
 * setmaxnreg) and two consumer warpgroups of 64 query rows (240
 * registers) that take turns on the tensor cores through named barriers 1
 * and 2 (ping-pong: one warpgroup's softmax under the other's GEMMs).  Q
 * (two 64-row tiles), K and V stream through 128-byte-swizzled shared
 * memory in the layout the wgmma descriptors describe (see
 * attention_wgmma.cu); key tiles hold BN keys, K and V have rings of KST
 * and VST stages with separate full/empty mbarriers, so a P·V waits only
 * for its V tile and a Q Kᵀ only for its K tile.
 *
 * Template parameters:
 *  BN      keys per tile (a multiple of 16): S takes BN/2 registers, P BN/4,
 *          O 64 (d = 128);
 *  KST/VST ring depths; shared memory = 32 KB of Q + (KST + VST) · BN · 256;
 *  STAGES  2: a warpgroup's round issues S_t = Q K_tᵀ and O += P_{t-1}
 *          V_{t-1}, waits for S_t, and runs the softmax of S_t while
 *          P_{t-1} V_{t-1} still runs (FlashAttention-3's intra-warpgroup
 *          pipelining, as configuration 6);
 *          3: S is double-buffered: the round issues S_{t+1} and P_{t-1}
 *          V_{t-1} and then runs the softmax of S_t, already complete, so
 *          the softmax overlaps both of its own GEMMs as well as the other
 *          warpgroup's (costs BN/2 registers more: at 240 registers
 *          BN = 80 fits, 96 and 112 spill);
 *  PP      1: the consumers take turns (ping-pong); 0: each issues its
 *          GEMMs as soon as it is ready.
 * The producer loads in consumption order: K runs STAGES - 1 tiles ahead
 * of V.
 *
 * Work and schedule: a work item is one 128-row block of one head, item i
 * decoded as (row block, head) with heads slowest (FA3_ORDER_HEADS: the
 * blocks running together share K/V tiles in L2) or row blocks slowest
 * (FA3_ORDER_ROWS, configuration 6's order); within that, row blocks from
 * the last, which sees the most keys under block-causal masking.  The
 * grid is persistent.  Items [0, ndp) go round robin, whole; the others
 * are shared out stream-K style by key tiles: their T tiles, in item
 * order, are cut into nsk contiguous ranges, block b taking tiles
 * [b·T/nsk, (b+1)·T/nsk) (sk_item/sk_tile give where each range starts).
 * So every block does nearly the same number of tiles whatever the item
 * count or lengths.  A unit is the part of an item one block does; both
 * the producer and the consumers walk the same units (fa3_iter).
 *
 * Split items: a unit that is not a whole item (a piece) ends in a
 * partial result: per consumer thread its 64 unnormalised O values, its
 * two row maxima and its two partial row sums (17 float4, "part" slot
 * 2b or 2b + 1: a block has at most two pieces, its first unit and its
 * last).  Each consumer warpgroup writes its partial, fences, and counts
 * itself in on the item's counter; the last of the P pieces to arrive
 * reads all P partials back in piece order and merges them (m = max, O
 * and l rescaled by exp2(m_i - m)) — the same order whoever arrives last,
 * so the output does not change from launch to launch — resets the
 * counter for the next launch and writes O.  Nobody waits on another
 * block, so a block that is not resident yet can never hold one up.  The pieces of an item
 * are those of blocks fa3_blk(S) .. fa3_blk(S + len - 1), S the item's
 * first tile in the stream-K order.
 *
 * Output: rows normalised by 1/l; for bf16 O with 16-byte aligned rows the
 * four lanes of a quad exchange their pairs (a 4 x 4 transpose in two
 * shuffle rounds) so each lane stores 8 consecutive columns in one
 * 16-byte store; otherwise element by element.
 *
 * Barrier protocol: that of configuration 6 (attention_wgmma.cu) with
 * rings of any depth: stage s of a ring is used by tiles s, s + n, ... in
 * rounds 0, 1, ...; consumers wait on full[s] with the round's parity, the
 * producer waits on empty[s] with the opposite parity (a fresh barrier
 * counts its phase -1 as complete, so the first round passes).  Q has
 * q_full / q_empty per unit; the consumers release Q after a unit's last
 * Q Kᵀ.  The ping-pong named barriers see n + 1 rounds per unit of n tiles
 * from each consumer, consumer 1 arriving once before its first round.
 */
#ifndef DIT_ATTENTION_FA3_CUH
#define DIT_ATTENTION_FA3_CUH

#include "attention_hopper.cuh"

#define FA3_THREADS 384                  /* producer + two consumers */
#define FA3_BM 128                       /* query rows per item */
#define FA3_D 128
#define FA3_Q_BYTES (FA3_BM * FA3_D * 2)
#define FA3_MAX_GRID 160                 /* blocks with a stream-K range */
#define FA3_MAX_SK_ITEMS 4096            /* items sharing key tiles */
#define FA3_MIN_PIECE 4                  /* key tiles a stream-K range has */
#define FA3_PART_F4 17                   /* float4 per thread in a partial */
/* dynamic shared memory: Q, the rings, 1024 for aligning the base, and
 * the mbarriers */
#define FA3_SMEM_BYTES(bn, kst, vst)                                          \
  (FA3_Q_BYTES + ((kst) + (vst)) * (bn) * 256 + 1024 + 512)

enum { FA3_ORDER_ROWS = 0, FA3_ORDER_HEADS = 1 };

/* Work schedules, the values of DIT_CUDA_ATTN_SCHED_* (dit_cuda.h). */
enum {
  FA3_SCHED_AUTO, FA3_SCHED_ROWS, FA3_SCHED_HEADS, FA3_SCHED_HEADS_TAIL,
  FA3_SCHED_ROWS_TAIL, FA3_SCHED_HEADS_ALL, FA3_SCHED_ROWS_ALL
};

/* The kernel's whole interface. */
typedef struct fa3_params {
  CUtensorMap tq, tk, tv;   /* 64-column boxes of 64 (q) or BN (k, v) rows */
  attn_args a;
  float braw;               /* log_bias / scale: the bias in raw units */
  float sl2;                /* scale * log2(e) */
  int bias_lo, bias_hi;     /* the bias range in 32 bits */
  int o_vec;                /* o is bf16 with 16-byte aligned rows */
  /* attn_key_end in 32 bits (the launcher checks q_pos0 + L +
   * causal_block < 2^31): keys any row may see, the causal block, the
   * query offset */
  int kn, cblock, qpos;
  int nrb, nitems, order;   /* row blocks, items = nrb x heads, FA3_ORDER_ */
  int ndp;                  /* items [0, ndp) whole, round robin */
  int nsk;                  /* blocks [0, nsk) share the other items' tiles */
  int sk_tiles;             /* ... T of them (T * (nsk + 1) < 2^31) */
  float4 *part;             /* partial results, slots 2b and 2b + 1 */
  int *count;               /* per stream-K item and consumer: arrivals */
  int sk_off[FA3_MAX_GRID + 1];   /* block b's range: [off[b], off[b+1]) */
  int sk_item[FA3_MAX_GRID];      /* ... starts at this item and tile */
  int sk_tile[FA3_MAX_GRID];
} fa3_params;

/* One per configuration (attention_fa3_*.cu). */
typedef struct fa3_config {
  int variant;
  int bn, kst, vst, stages, pingpong;
  int smem;
  const void *kernel;
} fa3_config;

/* ------------------------------------------------------------------------ */
/* work items and units (host and device) */

/* attn_key_end in 32 bits: one past the last key query row r may see. */
__host__ __device__ __forceinline__ int
fa3_key_end (const fa3_params &p, int r)
{
  if (p.cblock <= 0)
    return p.kn;
  const int e = ((p.qpos + r) / p.cblock + 1) * p.cblock;
  return e < p.kn ? e : p.kn;
}

/* Item i -> the first row and the head it covers. */
__host__ __device__ __forceinline__ void
fa3_item (const fa3_params &p, int i, int *m0, int *h)
{
  int rb;
  if (p.order == FA3_ORDER_HEADS) {
    *h = i / p.nrb;
    rb = p.nrb - 1 - i % p.nrb;
  } else {
    *h = i % p.a.heads;
    rb = p.nrb - 1 - i / p.a.heads;
  }
  *m0 = rb * FA3_BM;
}

/* Key tiles of the item at rows m0.. (at least 1; N >= 1). */
__host__ __device__ __forceinline__ int
fa3_len (const fa3_params &p, int m0, int bn)
{
  const int mlast = (m0 + FA3_BM < p.a.L ? m0 + FA3_BM : (int) p.a.L) - 1;
  const int n = (fa3_key_end (p, mlast) + bn - 1) / bn;
  return n > 0 ? n : 1;
}

/* The block whose stream-K range holds tile x. */
__host__ __device__ __forceinline__ int
fa3_blk (const fa3_params &p, int x)
{
  return ((x + 1) * p.nsk + p.sk_tiles - 1) / p.sk_tiles - 1;
}

/* Partial slot of block b's piece of the item starting at stream-K tile
 * S whose first piece is block b0's. */
__host__ __device__ __forceinline__ int
fa3_slot (const fa3_params &p, int b, int b0, int S)
{
  return 2 * b + (b == b0 && p.sk_off[b0] != S ? 1 : 0);
}

typedef struct fa3_unit {
  int item, h, m0;
  int t0, t1, len;          /* key tiles [t0, t1) of the item's len */
  int split;                /* not the whole item: a partial result */
  int S;                    /* stream-K tile of the item's tile 0 */
} fa3_unit;

/* The units of this block, in order: its round-robin items, then its
 * stream-K range. */
typedef struct fa3_iter {
  int dp, off, end, S, item, t;
} fa3_iter;

__host__ __device__ __forceinline__ void
fa3_iter_init (fa3_iter *it, const fa3_params &p, int b)
{
  it->dp = b;
  it->off = it->end = it->S = 0;
  it->item = it->t = 0;
  if (b < p.nsk) {
    it->off = p.sk_off[b];
    it->end = p.sk_off[b + 1];
    it->item = p.sk_item[b];
    it->t = p.sk_tile[b];
    it->S = it->off - it->t;
  }
}

/* FULL false: only what the producer needs (h, m0, t0, t1). */
template <bool FULL = true>
__host__ __device__ __forceinline__ bool
fa3_iter_next (fa3_iter *it, const fa3_params &p, int bn, int grid,
    fa3_unit *u)
{
  if (it->dp < p.ndp) {
    u->item = it->dp;
    fa3_item (p, u->item, &u->m0, &u->h);
    u->len = fa3_len (p, u->m0, bn);
    u->t0 = 0;
    u->t1 = u->len;
    u->split = 0;
    u->S = 0;
    it->dp += grid;
    return true;
  }
  if (it->off < it->end) {
    u->item = it->item;
    fa3_item (p, u->item, &u->m0, &u->h);
    u->len = fa3_len (p, u->m0, bn);
    const int left = it->end - it->off;
    u->t0 = it->t;
    u->t1 = left < u->len - it->t ? it->t + left : u->len;
    it->off += u->t1 - u->t0;
    if (FULL) {
      u->split = u->t0 > 0 || u->t1 < u->len;
      u->S = it->S;
      it->S += u->len;
    }
    it->t = 0;
    it->item++;
    return true;
  }
  return false;
}

/* Plan the work of one call on nsm SMs: item order, round-robin items
 * and stream-K ranges (only with sk_ok: the partial-result buffers exist);
 * returns the grid size.  p->a and the key-end fields are set. */
static inline int
fa3_plan (fa3_params *p, int bn, int sched, int nsm, int sk_ok)
{
  const attn_args &a = p->a;
  int W = nsm < FA3_MAX_GRID ? nsm : FA3_MAX_GRID;
  if (W < 1)
    W = 1;
  p->nrb = (int) ((a.L + FA3_BM - 1) / FA3_BM);
  p->nitems = p->nrb * a.heads;
  const int uniform = fa3_len (*p, 0, bn)
      == fa3_len (*p, (p->nrb - 1) * FA3_BM, bn);
  if (sched == FA3_SCHED_AUTO)
    sched = uniform ? FA3_SCHED_HEADS_TAIL
        : FA3_SCHED_HEADS_ALL;
  p->order = sched == FA3_SCHED_ROWS
      || sched == FA3_SCHED_ROWS_TAIL
      || sched == FA3_SCHED_ROWS_ALL
      ? FA3_ORDER_ROWS : FA3_ORDER_HEADS;
  int sk = sched == FA3_SCHED_ROWS
      || sched == FA3_SCHED_HEADS ? 0
      : sched == FA3_SCHED_HEADS_ALL
      || sched == FA3_SCHED_ROWS_ALL ? 2 : 1;
  const int tail_dp = (p->nitems / W - 1 > 0 ? p->nitems / W - 1 : 0) * W;
  if (sk == 0)
    p->ndp = p->nitems;
  else if (sk == 1 || p->nitems > FA3_MAX_SK_ITEMS)
    p->ndp = tail_dp;   /* leaves fewer than 2 W items */
  else
    p->ndp = 0;
  long long T = 0;
  for (int i = p->ndp; i < p->nitems; i++) {
    int m0, h;
    fa3_item (*p, i, &m0, &h);
    T += fa3_len (*p, m0, bn);
  }
  /* the device computes (x + 1) * nsk in 32 bits */
  if (T * (FA3_MAX_GRID + 1) > 0x7fffffffLL || !sk_ok) {
    p->ndp = p->nitems;
    T = 0;
  }
  p->nsk = 0;
  p->sk_tiles = (int) T;
  if (T > 0) {
    const long long nsk = (T + FA3_MIN_PIECE - 1) / FA3_MIN_PIECE;
    p->nsk = (int) (nsk < W ? nsk : W);
    for (int b = 0; b <= p->nsk; b++)
      p->sk_off[b] = (int) (b * T / p->nsk);
    /* where each block's range starts: item and tile */
    int i = p->ndp, m0, h;
    long long at = 0;   /* stream-K tile of item i's tile 0 */
    fa3_item (*p, i, &m0, &h);
    int len = fa3_len (*p, m0, bn);
    for (int b = 0; b < p->nsk; b++) {
      while (at + len <= p->sk_off[b]) {
        at += len;
        i++;
        fa3_item (*p, i, &m0, &h);
        len = fa3_len (*p, m0, bn);
      }
      p->sk_item[b] = i;
      p->sk_tile[b] = (int) (p->sk_off[b] - at);
    }
  }
  const int dp_grid = p->ndp < W ? p->ndp : W;
  return dp_grid > p->nsk ? dp_grid : p->nsk;
}

/* ------------------------------------------------------------------------ */
/* device code */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* wgmma m64nNk16, A and B K-major in shared memory, N = 2 NS: d (+)= A B.
 * One asm per N (the operand list is spelled out); scale_d 0 overwrites. */
template <int NS> struct fa3_mma_ss;

#define FA3_R2(p) "%" #p "0, %" #p "1"
#define FA3_R4(p) FA3_R2 (p) ", %" #p "2, %" #p "3"
#define FA3_R6(p) FA3_R4 (p) ", %" #p "4, %" #p "5"
#define FA3_R8(p) FA3_R6 (p) ", %" #p "6, %" #p "7"
#define FA3_R10(p) FA3_R8 (p) ", %" #p "8, %" #p "9"
#define FA3_R40 FA3_R10 () ", " FA3_R10 (1) ", " FA3_R10 (2) ", " FA3_R10 (3)
#define FA3_A8(d, i)                                                          \
  "+f" (d[i]), "+f" (d[i + 1]), "+f" (d[i + 2]), "+f" (d[i + 3]),             \
  "+f" (d[i + 4]), "+f" (d[i + 5]), "+f" (d[i + 6]), "+f" (d[i + 7])
#define FA3_A48(d) FA3_A8 (d, 0), FA3_A8 (d, 8), FA3_A8 (d, 16),              \
  FA3_A8 (d, 24), FA3_A8 (d, 32), FA3_A8 (d, 40)

#define FA3_MMA_SS(NS, N, REGS, DA, DB, SC, ...)                              \
  template <> struct fa3_mma_ss<NS> {                                         \
    static __device__ __forceinline__ void                                    \
    run (float *d, uint64_t da, uint64_t db, int scale_d)                     \
    {                                                                         \
      asm volatile ("{\n.reg .pred p;\nsetp.ne.b32 p, " SC ", 0;\n"           \
          "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 "         \
          "{" REGS "}, " DA ", " DB ", p, 1, 1, 0, 0;\n}\n"                   \
          : __VA_ARGS__ : "l" (da), "l" (db), "r" (scale_d));                 \
    }                                                                         \
  };

FA3_MMA_SS (40, 80, FA3_R40, "%40", "%41", "%42", FA3_A8 (d, 0),
    FA3_A8 (d, 8), FA3_A8 (d, 16), FA3_A8 (d, 24), FA3_A8 (d, 32))
FA3_MMA_SS (48, 96, FA3_R40 ", " FA3_R8 (4), "%48", "%49", "%50",
    FA3_A48 (d))
FA3_MMA_SS (56, 112, FA3_R40 ", " FA3_R10 (4) ", " FA3_R6 (5), "%56", "%57",
    "%58", FA3_A48 (d), FA3_A8 (d, 48))
FA3_MMA_SS (64, 128, FA3_R40 ", " FA3_R10 (4) ", " FA3_R10 (5) ", "
    FA3_R4 (6), "%64", "%65", "%66", FA3_A48 (d), FA3_A8 (d, 48),
    FA3_A8 (d, 56))
FA3_MMA_SS (72, 144, FA3_R40 ", " FA3_R10 (4) ", " FA3_R10 (5) ", "
    FA3_R10 (6) ", " FA3_R2 (7), "%72", "%73", "%74", FA3_A48 (d),
    FA3_A8 (d, 48), FA3_A8 (d, 56), FA3_A8 (d, 64))
FA3_MMA_SS (88, 176, FA3_R40 ", " FA3_R10 (4) ", " FA3_R10 (5) ", "
    FA3_R10 (6) ", " FA3_R10 (7) ", " FA3_R8 (8), "%88", "%89", "%90",
    FA3_A48 (d), FA3_A8 (d, 48), FA3_A8 (d, 56), FA3_A8 (d, 64),
    FA3_A8 (d, 72), FA3_A8 (d, 80))

/* S = Q K_tᵀ: k16 step kk of d sits in half kk / 4, 32 bytes per step into
 * each 128-byte row; a Q half is 64 rows (8 KB), a K half BN rows. */
template <int BN>
__device__ __forceinline__ void
fa3_qk (float (&s)[BN / 2], uint64_t dq, uint64_t dk)
{
#pragma unroll
  for (int kk = 0; kk < FA3_D / 16; kk++) {
    const int step = (kk & 3) * 32;
    fa3_mma_ss<BN / 2>::run (s,
        dq + (uint64_t) (((kk >> 2) * 8192 + step) >> 4),
        dk + (uint64_t) (((kk >> 2) * BN * 128 + step) >> 4), kk > 0);
  }
}

/* O += P V_t: k16 step kt covers keys 16 kt.., two 8-key groups 2048
 * bytes into each half; the halves (d 0-63, 64-127) are the MN atoms, BN
 * rows of 128 bytes apart. */
template <int BN>
__device__ __forceinline__ void
fa3_pv (float (&o)[64], const unsigned (&p)[BN / 4], uint32_t vt)
{
  const uint64_t dv = wg_desc (vt, BN * 128, 1024);
#pragma unroll
  for (int kt = 0; kt < BN / 16; kt++)
    wg_mma_rs_tb (o, p + 4 * kt, dv + (uint64_t) ((kt * 2048) >> 4));
}

/* Mask and bias (edge tiles only, in raw units), then the online softmax
 * of the tile of keys n0..: s becomes P (f32), alpha the factor that
 * moves O and l to the new row maximum.  Element 4i + e is row e >> 1 of
 * this thread's two, key n0 + 8i + 2 qd + (e & 1); the quad of lanes
 * sharing a row holds its BN keys.  Maxima and sums run on CH
 * independent chains. */
template <int NS, int CH>
__device__ __forceinline__ void
fa3_softmax (float (&s)[NS], float (&mx)[2], float (&l)[2],
    float (&alpha)[2], bool edge, int n0, const int (&kend)[2],
    int bias_begin, int bias_end, float braw, float sl2, int qd)
{
  if (edge) {
    /* bounds relative to this thread's first key, so each element
     * compares its compile-time offset 8i + (e & 1) */
    const int j0 = n0 + 2 * qd;
    const int end0 = kend[0] - j0, end1 = kend[1] - j0;
    const int blo = bias_begin - j0, bhi = bias_end - j0;
#pragma unroll
    for (int i = 0; i < NS / 4; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = 8 * i + (e & 1);
        const float v = s[4 * i + e];
        s[4 * i + e] = c >= ((e >> 1) ? end1 : end0) ? -INFINITY
            : c >= blo && c < bhi ? v + braw : v;
      }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float m4[CH];
#pragma unroll
    for (int c = 0; c < CH; c++)
      m4[c] = -INFINITY;
#pragma unroll
    for (int i = 0; i < NS / 4; i++)
      m4[i % CH] = fmaxf (m4[i % CH], fmaxf (s[4 * i + 2 * r],
              s[4 * i + 2 * r + 1]));
    float tm = m4[0];
#pragma unroll
    for (int c = 1; c < CH; c++)
      tm = fmaxf (tm, m4[c]);
    tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 1));
    tm = fmaxf (tm, __shfl_xor_sync (0xffffffffu, tm, 2));
    const float mnew = fmaxf (mx[r], tm * sl2);
    /* a row with nothing visible yet keeps a zero reference */
    const float ref = mnew == -INFINITY ? 0.0f : mnew;
    alpha[r] = ptx_exp2 (mx[r] - ref);
    mx[r] = mnew;
    float sum4[CH];
#pragma unroll
    for (int c = 0; c < CH; c++)
      sum4[c] = 0.0f;
#pragma unroll
    for (int i = 0; i < NS / 4; i++) {
      const float p0 = ptx_exp2 (fmaf (s[4 * i + 2 * r], sl2, -ref));
      const float p1 = ptx_exp2 (fmaf (s[4 * i + 2 * r + 1], sl2, -ref));
      s[4 * i + 2 * r] = p0;
      s[4 * i + 2 * r + 1] = p1;
      sum4[i % CH] += p0 + p1;
    }
    float sum = sum4[0];
#pragma unroll
    for (int c = 1; c < CH; c++)
      sum += sum4[c];
    l[r] = l[r] * alpha[r] + sum;
  }
}

/* O to the new row maxima; skipped when no maximum of the warp moved
 * (alpha = exp2(0) = 1 exactly). */
__device__ __forceinline__ void
fa3_rescale (float (&o)[64], const float (&alpha)[2])
{
  if (!__any_sync (0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f))
    return;
#pragma unroll
  for (int i = 0; i < FA3_D / 8; i++) {
    o[4 * i] *= alpha[0];
    o[4 * i + 1] *= alpha[0];
    o[4 * i + 2] *= alpha[1];
    o[4 * i + 3] *= alpha[1];
  }
}

/* P as the A fragments of P·V: k16 step kt = n8 blocks 2 kt and 2 kt + 1. */
template <int NS>
__device__ __forceinline__ void
fa3_pack (unsigned (&p)[NS / 2], const float (&s)[NS])
{
#pragma unroll
  for (int kt = 0; kt < NS / 8; kt++) {
    p[4 * kt] = ptx_pack_bf16 (s[8 * kt], s[8 * kt + 1]);
    p[4 * kt + 1] = ptx_pack_bf16 (s[8 * kt + 2], s[8 * kt + 3]);
    p[4 * kt + 2] = ptx_pack_bf16 (s[8 * kt + 4], s[8 * kt + 5]);
    p[4 * kt + 3] = ptx_pack_bf16 (s[8 * kt + 6], s[8 * kt + 7]);
  }
}

/* A ring position: the stage (bits 0-15) and the parity of its current
 * round (bit 16), in one register (the producer has 24). */
typedef struct fa3_ring {
  unsigned pos;
  __device__ __forceinline__ int stage () const
  { return (int) (pos & 0xffffu); }
  __device__ __forceinline__ unsigned phase () const
  { return pos >> 16; }
} fa3_ring;

template <int DEPTH>
__device__ __forceinline__ void
fa3_ring_next (fa3_ring *r)
{
  r->pos = (r->pos & 0xffffu) == DEPTH - 1 ? (r->pos & 0x10000u) ^ 0x10000u
      : r->pos + 1;
}

__device__ __forceinline__ void
fa3_wg_sync (int id)
{
  asm volatile ("bar.sync %0, 128;\n" :: "r" (id) : "memory");
}

/* The shared-memory map of a configuration: everything at a constant
 * offset from one 1024-byte aligned base (the producer has 24 registers). */
template <int BN, int KST, int VST>
struct fa3_smem {
  static constexpr uint32_t KV = BN * 256;          /* a K or V tile */
  static constexpr uint32_t K = FA3_Q_BYTES;
  static constexpr uint32_t V = K + KST * KV;
  static constexpr uint32_t Q_FULL = V + VST * KV;
  static constexpr uint32_t Q_EMPTY = Q_FULL + 8;
  static constexpr uint32_t K_FULL = Q_FULL + 16;
  static constexpr uint32_t K_EMPTY = K_FULL + 8 * KST;
  static constexpr uint32_t V_FULL = K_EMPTY + 8 * KST;
  static constexpr uint32_t V_EMPTY = V_FULL + 8 * VST;
  static constexpr uint32_t UNIT_FULL = Q_FULL + 112; /* two mbarriers */
  static constexpr uint32_t MAIL = Q_FULL + 128;    /* two int4 */
  uint32_t base;
  __device__ __forceinline__ uint32_t q () const { return base; }
  __device__ __forceinline__ uint32_t k (int s) const
  { return base + K + s * KV; }
  __device__ __forceinline__ uint32_t v (int s) const
  { return base + V + s * KV; }
  __device__ __forceinline__ uint32_t q_full () const
  { return base + Q_FULL; }
  __device__ __forceinline__ uint32_t q_empty () const
  { return base + Q_EMPTY; }
  __device__ __forceinline__ uint32_t k_full (int s) const
  { return base + K_FULL + 8 * s; }
  __device__ __forceinline__ uint32_t k_empty (int s) const
  { return base + K_EMPTY + 8 * s; }
  __device__ __forceinline__ uint32_t v_full (int s) const
  { return base + V_FULL + 8 * s; }
  __device__ __forceinline__ uint32_t v_empty (int s) const
  { return base + V_EMPTY + 8 * s; }
  __device__ __forceinline__ uint32_t unit_full (int s) const
  { return base + UNIT_FULL + 8 * s; }
  __device__ __forceinline__ uint32_t mail (int s) const
  { return base + MAIL + 16 * s; }
};

/* The producer thread: unit k's head, rows and key tiles come through
 * mailbox slot k & 1 (consumer 0 posts them, see fa3_post; t1 < 0 ends);
 * then Q, and K and V tiles in consumption order, each into its ring
 * once the stage is free. */
template <int BN, int KST, int VST, int STAGES>
__device__ __forceinline__ void
fa3_produce (const fa3_params &p, const fa3_smem<BN, KST, VST> &sm)
{
  constexpr uint32_t KV = fa3_smem<BN, KST, VST>::KV;
  constexpr int KLEAD = STAGES - 1;
  fa3_ring kr = { 0u }, vr = { 0u };
  for (unsigned k = 0;; k++) {
    ws_bar_wait (sm.unit_full (k & 1), (k >> 1) & 1);
    int col, m0, t0, t1;
    asm volatile ("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4];\n"
        : "=r" (col), "=r" (m0), "=r" (t0), "=r" (t1)
        : "r" (sm.mail (k & 1)) : "memory");
    if (t1 < 0)
      return;
    ws_bar_wait (sm.q_empty (), (k & 1) ^ 1u);
    ws_bar_expect (sm.q_full (), FA3_Q_BYTES);
    for (int c = 0; c < 2; c++)
      for (int half = 0; half < 2; half++)
        ws_tma_load (sm.q () + c * (FA3_Q_BYTES / 2) + half * (FA3_Q_BYTES / 4),
            &p.tq, col + 64 * half, m0 + 64 * c, sm.q_full ());
    for (int kt = t0, vt = t0 - KLEAD; vt < t1; kt++, vt++) {
      if (kt < t1) {
        const uint32_t full = sm.k_full (kr.stage ());
        const uint32_t dst = sm.k (kr.stage ());
        ws_bar_wait (sm.k_empty (kr.stage ()), kr.phase () ^ 1u);
        ws_bar_expect (full, KV);
        ws_tma_load (dst, &p.tk, col, kt * BN, full);
        ws_tma_load (dst + KV / 2, &p.tk, col + 64, kt * BN, full);
        fa3_ring_next<KST> (&kr);
      }
      if (vt >= t0) {
        const uint32_t full = sm.v_full (vr.stage ());
        const uint32_t dst = sm.v (vr.stage ());
        ws_bar_wait (sm.v_empty (vr.stage ()), vr.phase () ^ 1u);
        ws_bar_expect (full, KV);
        ws_tma_load (dst, &p.tv, col, vt * BN, full);
        ws_tma_load (dst + KV / 2, &p.tv, col + 64, vt * BN, full);
        fa3_ring_next<VST> (&vr);
      }
    }
  }
}

/* Consumer 0's thread 0 posts unit k (or the end, have false) to the
 * producer: slot k & 1 was read when the producer started unit k - 2,
 * before it could load what unit k - 1, which precedes this post, needs. */
template <int BN, int KST, int VST>
__device__ __forceinline__ void
fa3_post (const fa3_smem<BN, KST, VST> &sm, unsigned k, bool have,
    const fa3_unit &u)
{
  const int col = u.h * FA3_D, t1 = have ? u.t1 : -1;
  asm volatile ("st.shared.v4.s32 [%0], {%1, %2, %3, %4};\n"
      :: "r" (sm.mail (k & 1)), "r" (col), "r" (u.m0), "r" (u.t0), "r" (t1)
      : "memory");
  ws_bar_arrive (sm.unit_full (k & 1));   /* release: the slot is visible */
}

/* The ping-pong turn (named barriers 1 and 2 over both consumers); PP 0
 * lets the two warpgroups issue their GEMMs whenever they are ready. */
template <int PP>
__device__ __forceinline__ void
fa3_turn_wait (int id)
{
  if (PP)
    ws_named_sync (id);
}

template <int PP>
__device__ __forceinline__ void
fa3_turn_arrive (int id)
{
  if (PP)
    ws_named_arrive (id);
}

/* Per-consumer-thread state of one unit. */
typedef struct fa3_rows {
  int kend[2];
  int kmin;
} fa3_rows;

__device__ __forceinline__ bool
fa3_edge (const fa3_rows &rw, int n0, int bn, int bias_begin, int bias_end)
{
  return n0 + bn > rw.kmin || (bias_begin < n0 + bn && bias_end > n0);
}

/* Merge a split item's partials into this piece's registers when it is
 * the last to arrive; false when another piece finishes the item. */
__device__ __forceinline__ bool
fa3_merge (const fa3_params &p, const fa3_unit &u, int cw, int tid,
    float (&o)[64], float (&mx)[2], float (&l)[2], int *flag)
{
  const int b = blockIdx.x;
  const int b0 = fa3_blk (p, u.S), b1 = fa3_blk (p, u.S + u.len - 1);
  const size_t per = (size_t) FA3_PART_F4 * 128;
  float4 *mine = p.part
      + (size_t) (fa3_slot (p, b, b0, u.S) * 2 + cw) * per + tid;
#pragma unroll
  for (int f = 0; f < 16; f++)
    __stcg (mine + f * 128, make_float4 (o[4 * f], o[4 * f + 1],
            o[4 * f + 2], o[4 * f + 3]));
  __stcg (mine + 16 * 128, make_float4 (mx[0], mx[1], l[0], l[1]));
  __threadfence ();
  fa3_wg_sync (3 + cw);
  int *cnt = p.count + (size_t) (u.item - p.ndp) * 2 + cw;
  if (tid == 0) {
    flag[cw] = atomicAdd (cnt, 1);
    __threadfence ();
  }
  fa3_wg_sync (3 + cw);
  if (*(volatile int *) &flag[cw] != b1 - b0)
    return false;
  /* Merge every piece from its slot (this one's too) in piece order into
   * an empty state, not into this piece's registers: whichever piece
   * arrives last, the same sums run in the same order, so the output is
   * the same bits on every launch.  The empty state's weight against the
   * first piece is exp2(-inf) = 0, so no special case is needed for it. */
#pragma unroll
  for (int r = 0; r < 2; r++) {
    mx[r] = -INFINITY;
    l[r] = 0.0f;
  }
#pragma unroll
  for (int i = 0; i < 64; i++)
    o[i] = 0.0f;
  for (int bb = b0; bb <= b1; bb++) {
    const float4 *src = p.part
        + (size_t) (fa3_slot (p, bb, b0, u.S) * 2 + cw) * per + tid;
    const float4 ml = __ldcg (src + 16 * 128);
    const float om[2] = { ml.x, ml.y }, ol[2] = { ml.z, ml.w };
    float fa[2], fb[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float m = fmaxf (mx[r], om[r]);
      const float ref = m == -INFINITY ? 0.0f : m;
      fa[r] = ptx_exp2 (mx[r] - ref);
      fb[r] = ptx_exp2 (om[r] - ref);
      l[r] = l[r] * fa[r] + ol[r] * fb[r];
      mx[r] = m;
    }
#pragma unroll
    for (int f = 0; f < 16; f++) {
      const float4 w = __ldcg (src + f * 128);
      o[4 * f] = o[4 * f] * fa[0] + w.x * fb[0];
      o[4 * f + 1] = o[4 * f + 1] * fa[0] + w.y * fb[0];
      o[4 * f + 2] = o[4 * f + 2] * fa[1] + w.z * fb[1];
      o[4 * f + 3] = o[4 * f + 3] * fa[1] + w.w * fb[1];
    }
  }
  if (tid == 0)
    *cnt = 0;   /* ready for the next launch */
  return true;
}

/* Normalise and store this thread's two rows of O, row0 and row0 + 8. */
__device__ __forceinline__ void
fa3_store (const fa3_params &p, const fa3_unit &u, int row0,
    const float (&o)[64], const float (&l)[2], int qd)
{
  const int row[2] = { row0, row0 + 8 };
  const attn_args &a = p.a;
  const int64_t hoff = (int64_t) u.h * FA3_D;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float lr = l[r];
    lr += __shfl_xor_sync (0xffffffffu, lr, 1);
    lr += __shfl_xor_sync (0xffffffffu, lr, 2);
    inv[r] = lr > 0.0f ? 1.0f / lr : 0.0f;
  }
  if (a.o_scale) {
    /* FP8 output (attention_internal.cuh): the quad holds each row's 128
     * values of the head; amax before any lane leaves */
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float am = 0.0f;
#pragma unroll
      for (int i = 0; i < FA3_D / 8; i++)
        am = fmaxf (am, fmaxf (fabsf (o[4 * i + 2 * r] * inv[r]),
            fabsf (o[4 * i + 2 * r + 1] * inv[r])));
      am = attn_fp8_amax_quad (am);
      if (row[r] >= a.L)
        continue;
      const float qi = fp8_dev_inv_scale (am);
#pragma unroll
      for (int i = 0; i < FA3_D / 8; i++)
        fp8_store2 (a.o, (int64_t) row[r] * a.ldo + hoff + 8 * i + 2 * qd,
            o[4 * i + 2 * r] * inv[r], o[4 * i + 2 * r + 1] * inv[r], qi);
      if (qd == 0)
        a.o_scale[(int64_t) u.h * a.L + row[r]] = fp8_dev_scale (am);
    }
    return;
  }
  if (p.o_vec) {
    __nv_bfloat16 *ob = (__nv_bfloat16 *) a.o;
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
      for (int G = 0; G < 4; G++) {
        unsigned w[4];
#pragma unroll
        for (int c = 0; c < 4; c++)
          w[c] = ptx_pack_bf16 (o[4 * (4 * G + c) + 2 * r] * inv[r],
              o[4 * (4 * G + c) + 2 * r + 1] * inv[r]);
        /* lane q holds columns 2q, 2q + 1 of blocks 4G..4G+3; afterwards
         * all 8 columns of block 4G + q */
        const bool odd = qd & 1, high = qd & 2;
#pragma unroll
        for (int k = 0; k < 4; k += 2) {
          const unsigned x = __shfl_xor_sync (0xffffffffu,
              odd ? w[k] : w[k + 1], 1);
          if (odd)
            w[k] = x;
          else
            w[k + 1] = x;
        }
        const unsigned x0 = __shfl_xor_sync (0xffffffffu,
            high ? w[0] : w[2], 2);
        const unsigned x1 = __shfl_xor_sync (0xffffffffu,
            high ? w[1] : w[3], 2);
        if (high) {
          w[0] = x0;
          w[1] = x1;
        } else {
          w[2] = x0;
          w[3] = x1;
        }
        if (row[r] < a.L)
          *(uint4 *) (ob + (int64_t) row[r] * a.ldo + hoff
              + (4 * G + qd) * 8) = make_uint4 (w[0], w[1], w[2], w[3]);
      }
    return;
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (row[r] >= a.L)
      continue;
#pragma unroll
    for (int i = 0; i < FA3_D / 8; i++) {
      const int64_t c = (int64_t) row[r] * a.ldo + hoff + 8 * i + 2 * qd;
      dit_cuda_st (a.o, a.dto, c, o[4 * i + 2 * r] * inv[r]);
      dit_cuda_st (a.o, a.dto, c + 1, o[4 * i + 2 * r + 1] * inv[r]);
    }
  }
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

/* ------------------------------------------------------------------------ */
/* the kernel */

template <int BN, int KST, int VST, int STAGES, int PP>
__global__ void __launch_bounds__ (FA3_THREADS, 1)
flash_d128_fa3_kernel (const __grid_constant__ fa3_params p)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert (BN % 16 == 0 && BN >= 80 && BN <= 176, "key tile");
  static_assert (STAGES == 2 || STAGES == 3, "stages");
  static_assert (KST >= 2 && KST <= 3 && VST >= 2 && VST <= 3,
      "the mbarriers fit 112 bytes");
  constexpr int NS = BN / 2, NP = BN / 4;
  extern __shared__ unsigned char fa3_dyn[];
  __shared__ fa3_iter fa3_walk[8];
  __shared__ fa3_unit fa3_stash[8];
  __shared__ int fa3_flag[2];
  __shared__ unsigned fa3_posted;
  /* every swizzle pattern must start on a 1024-byte boundary */
  fa3_smem<BN, KST, VST> sm;
  sm.base = ((uint32_t) __cvta_generic_to_shared (fa3_dyn) + 1023) & ~1023u;
  const int wg = threadIdx.x >> 7;                /* 0 producer, 1-2 */

  if (threadIdx.x == 0) {
    ws_bar_init (sm.q_full (), 1);
    ws_bar_init (sm.q_empty (), 256);
    for (int s = 0; s < KST; s++) {
      ws_bar_init (sm.k_full (s), 1);
      ws_bar_init (sm.k_empty (s), 256);
    }
    for (int s = 0; s < VST; s++) {
      ws_bar_init (sm.v_full (s), 1);
      ws_bar_init (sm.v_empty (s), 256);
    }
    ws_bar_init (sm.unit_full (0), 1);
    ws_bar_init (sm.unit_full (1), 1);
    asm volatile ("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads ();   /* the last block-wide barrier: producer warps leave */

  if (wg == 0) {
    asm volatile ("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (threadIdx.x == 0)
      fa3_produce<BN, KST, VST, STAGES> (p, sm);
    return;
  }

  asm volatile ("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
  const int cw = wg - 1;                          /* rows 64 cw .. +63 */
  const int my_bar = 1 + cw, other_bar = 2 - cw;
  const int tid = threadIdx.x & 127;
  const int warp = tid >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, qd = lane & 3;
  /* K-major descriptors of this warpgroup's Q tile and of K stage s,
   * rebuilt where used (a few integer operations, no registers held) */
  const uint32_t qtile = sm.q () + cw * (FA3_Q_BYTES / 2);
#define FA3_DQ wg_desc (qtile, 16, 1024)
#define FA3_DK(s) wg_desc (sm.k (s), 16, 1024)
  /* the softmax of the tile of keys n0.. in S */
#define FA3_SOFTMAX(S, n0)                                                    \
  fa3_softmax<NS, STAGES == 3 ? 2 : 4> (S, mx, l, alpha,                     \
      fa3_edge (rw, n0, BN, p.bias_lo, p.bias_hi), n0, rw.kend, p.bias_lo,    \
      p.bias_hi, p.braw, p.sl2, qd)
  /* per consumer warp: its walk and its current unit wait here through
   * the rounds instead of holding registers (lane 0 writes, between
   * __syncwarp) */
  const int cwarp = threadIdx.x / 32 - 4;
  fa3_iter it;
  if (lane == 0)
    fa3_iter_init (&fa3_walk[cwarp], p, blockIdx.x);
  __syncwarp ();
  it = fa3_walk[cwarp];
  fa3_unit u;
  bool have = fa3_iter_next (&it, p, BN, gridDim.x, &u);
  __syncwarp ();
  if (lane == 0)
    fa3_walk[cwarp] = it;
  /* consumer 0's thread 0 posts the producer's units; it counts them in
   * shared memory (no register held through the rounds) */
  const bool poster = cw == 0 && tid == 0;
  if (poster) {
    fa3_post (sm, 0, have, u);
    fa3_posted = 0;
  }
  /* consumer 0 takes the first turn; a block without units leaves no
   * arrival behind */
  if (cw == 1 && have)
    fa3_turn_arrive<PP> (1);

  fa3_ring kr = { 0u }, vr = { 0u };
  unsigned qph = 0;
  while (have) {
    __syncwarp ();
    if (lane == 0)
      fa3_stash[cwarp] = u;
    if (poster) {
      /* the producer's next unit, from a copy of the walk */
      fa3_iter ahead = fa3_walk[cwarp];
      fa3_unit nu;
      const bool more = fa3_iter_next<false> (&ahead, p, BN, gridDim.x,
          &nu);
      fa3_posted = fa3_posted + 1;
      fa3_post (sm, fa3_posted, more, nu);
    }
    const int t0 = u.t0, n = u.t1 - u.t0;
    fa3_rows rw;
    const int row0 = u.m0 + 64 * cw + 16 * warp + g;
    rw.kend[0] = fa3_key_end (p, row0);
    rw.kend[1] = fa3_key_end (p, row0 + 8);
    rw.kmin = fa3_key_end (p, u.m0);

    float o[64];
    unsigned pp[NP];
    float mx[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
    float alpha[2];
#pragma unroll
    for (int i = 0; i < 64; i++)
      o[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < NP; i++)
      pp[i] = 0u;

    ws_bar_wait (sm.q_full (), qph);
    qph ^= 1u;

    if constexpr (STAGES == 2) {
      float s[NS];
#pragma unroll
      for (int i = 0; i < NS; i++)
        s[i] = 0.0f;
      /* round 0: S of the first tile only */
      {
        const int ks = kr.stage ();
        ws_bar_wait (sm.k_full (ks), kr.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (s, NS);
        wg_mma_fence ();
        fa3_qk<BN> (s, FA3_DQ, FA3_DK (ks));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        wg_mma_wait<0> ();
        wg_pin (s, NS);
        ws_bar_arrive (sm.k_empty (ks));
        fa3_ring_next<KST> (&kr);
        if (n == 1)
          ws_bar_arrive (sm.q_empty ());
        const int n0 = t0 * BN;
        FA3_SOFTMAX (s, n0);
        fa3_pack<NS> (pp, s);
      }
      for (int k = 1; k < n; k++) {
        const int ks = kr.stage (), vs = vr.stage ();
        ws_bar_wait (sm.k_full (ks), kr.phase ());
        ws_bar_wait (sm.v_full (vs), vr.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (s, NS);
        wg_pin (o, 64);
        wg_pin (pp, NP);
        wg_mma_fence ();
        fa3_qk<BN> (s, FA3_DQ, FA3_DK (ks));
        wg_mma_commit ();
        fa3_pv<BN> (o, pp, sm.v (vs));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        wg_mma_wait<1> ();   /* S done, P·V may still run */
        wg_pin (s, NS);
        ws_bar_arrive (sm.k_empty (ks));
        fa3_ring_next<KST> (&kr);
        if (k == n - 1)
          ws_bar_arrive (sm.q_empty ());
        const int n0 = (t0 + k) * BN;
        FA3_SOFTMAX (s, n0);
        wg_mma_wait<0> ();
        wg_pin (o, 64);
        wg_pin (pp, NP);
        ws_bar_arrive (sm.v_empty (vs));
        fa3_ring_next<VST> (&vr);
        fa3_rescale (o, alpha);
        fa3_pack<NS> (pp, s);
      }
    } else {
      float sa[NS], sb[NS];
#pragma unroll
      for (int i = 0; i < NS; i++)
        sa[i] = sb[i] = 0.0f;
      /* Every wgmma group below runs from fence to wait unconditionally
       * (a wgmma issued on a branch inside a group makes ptxas serialise
       * them all, C7520): round 0 comes in two forms, and the last round
       * before the final P·V has no next S. */
      if (n > 1) {
        /* round 0: S of the first two tiles, the softmax of the first
         * under the second */
        const int ks = kr.stage ();
        fa3_ring k1 = kr;
        fa3_ring_next<KST> (&k1);
        ws_bar_wait (sm.k_full (ks), kr.phase ());
        ws_bar_wait (sm.k_full (k1.stage ()), k1.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (sa, NS);
        wg_pin (sb, NS);
        wg_mma_fence ();
        fa3_qk<BN> (sa, FA3_DQ, FA3_DK (ks));
        wg_mma_commit ();
        fa3_qk<BN> (sb, FA3_DQ, FA3_DK (k1.stage ()));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        wg_mma_wait<1> ();
        wg_pin (sa, NS);
        ws_bar_arrive (sm.k_empty (ks));
        fa3_ring_next<KST> (&kr);
        const int n0 = t0 * BN;
        FA3_SOFTMAX (sa, n0);
        fa3_pack<NS> (pp, sa);
        wg_mma_wait<0> ();
        wg_pin (sb, NS);
        ws_bar_arrive (sm.k_empty (kr.stage ()));
        fa3_ring_next<KST> (&kr);
        if (n == 2)
          ws_bar_arrive (sm.q_empty ());
      } else {
        const int ks = kr.stage ();
        ws_bar_wait (sm.k_full (ks), kr.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (sa, NS);
        wg_mma_fence ();
        fa3_qk<BN> (sa, FA3_DQ, FA3_DK (ks));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        wg_mma_wait<0> ();
        wg_pin (sa, NS);
        ws_bar_arrive (sm.k_empty (ks));
        fa3_ring_next<KST> (&kr);
        ws_bar_arrive (sm.q_empty ());
        const int n0 = t0 * BN;
        FA3_SOFTMAX (sa, n0);
        fa3_pack<NS> (pp, sa);
      }
      /* round k < n - 1: S_k is complete in sc; issue S_{k+1} into sn and
       * P_{k-1} V_{k-1}, then the softmax of S_k under both */
      auto round = [&] (int k, float (&sc)[NS], float (&sn)[NS]) {
        const int ks = kr.stage (), vs = vr.stage ();
        ws_bar_wait (sm.k_full (ks), kr.phase ());
        ws_bar_wait (sm.v_full (vs), vr.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (sn, NS);
        wg_pin (o, 64);
        wg_pin (pp, NP);
        wg_mma_fence ();
        fa3_qk<BN> (sn, FA3_DQ, FA3_DK (ks));
        wg_mma_commit ();
        fa3_pv<BN> (o, pp, sm.v (vs));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        const int n0 = (t0 + k) * BN;
        FA3_SOFTMAX (sc, n0);
        wg_mma_wait<0> ();
        wg_pin (sn, NS);
        wg_pin (o, 64);
        wg_pin (pp, NP);
        ws_bar_arrive (sm.k_empty (ks));
        fa3_ring_next<KST> (&kr);
        if (k + 1 == n - 1)
          ws_bar_arrive (sm.q_empty ());
        ws_bar_arrive (sm.v_empty (vs));
        fa3_ring_next<VST> (&vr);
        fa3_rescale (o, alpha);
        fa3_pack<NS> (pp, sc);
      };
      /* round n - 1: only P_{n-2} V_{n-2} under the softmax of S_{n-1} */
      auto round_last = [&] (int k, float (&sc)[NS]) {
        const int vs = vr.stage ();
        ws_bar_wait (sm.v_full (vs), vr.phase ());
        fa3_turn_wait<PP> (my_bar);
        wg_pin (o, 64);
        wg_pin (pp, NP);
        wg_mma_fence ();
        fa3_pv<BN> (o, pp, sm.v (vs));
        wg_mma_commit ();
        fa3_turn_arrive<PP> (other_bar);
        const int n0 = (t0 + k) * BN;
        FA3_SOFTMAX (sc, n0);
        wg_mma_wait<0> ();
        wg_pin (o, 64);
        wg_pin (pp, NP);
        ws_bar_arrive (sm.v_empty (vs));
        fa3_ring_next<VST> (&vr);
        fa3_rescale (o, alpha);
        fa3_pack<NS> (pp, sc);
      };
      /* S_k sits in sb for odd k, in sa for even k */
      int k = 1;
      for (; k + 2 < n; k += 2) {
        round (k, sb, sa);
        round (k + 1, sa, sb);
      }
      if (k + 1 < n) {
        round (k, sb, sa);
        round_last (k + 1, sa);
      } else if (k < n) {
        round_last (k, sb);
      }
    }

    /* last round: P·V of the unit's last tile; consumer 1 passes the turn
     * on unless this is its very last round */
    fa3_unit nu;
    __syncwarp ();
    it = fa3_walk[cwarp];
    const bool more = fa3_iter_next (&it, p, BN, gridDim.x, &nu);
    __syncwarp ();
    if (lane == 0)
      fa3_walk[cwarp] = it;
    {
      const int vs = vr.stage ();
      ws_bar_wait (sm.v_full (vs), vr.phase ());
      fa3_turn_wait<PP> (my_bar);
      wg_pin (o, 64);
      wg_pin (pp, NP);
      wg_mma_fence ();
      fa3_pv<BN> (o, pp, sm.v (vs));
      wg_mma_commit ();
      if (cw == 0 || more)
        fa3_turn_arrive<PP> (other_bar);
      wg_mma_wait<0> ();
      wg_pin (o, 64);
      ws_bar_arrive (sm.v_empty (vs));
      fa3_ring_next<VST> (&vr);
    }

    __syncwarp ();
    u = fa3_stash[cwarp];
    if (!u.split || fa3_merge (p, u, cw, tid, o, mx, l, fa3_flag))
      fa3_store (p, u, u.m0 + 64 * cw + 16 * warp + g, o, l, qd);
    u = nu;
    have = more;
  }
#undef FA3_DQ
#undef FA3_DK
#undef FA3_SOFTMAX
#elif defined(__CUDA_ARCH__)
  __trap ();   /* no wgmma or TMA below sm_90a; the launcher never gets here */
#endif
}

/* One configuration: the instantiation and its table entry. */
#define FA3_CONFIGURATION(V, BN, KST, VST, STAGES, PP)                        \
  template __global__ void flash_d128_fa3_kernel<BN, KST, VST, STAGES, PP> ( \
      const __grid_constant__ fa3_params);                                    \
  extern const fa3_config attn_fa3_config_##V = { V, BN, KST, VST, STAGES, PP,\
    FA3_SMEM_BYTES (BN, KST, VST),                                            \
    (const void *) flash_d128_fa3_kernel<BN, KST, VST, STAGES, PP> };

#endif
