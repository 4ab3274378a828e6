/* test_attn_schedule — the work schedules of attention configurations 7
 * and up (kernels/cuda/attention_fa3.cuh), walked on the host.
 *
 * The launcher's plan (fa3_plan) and the walk every block of the kernel
 * makes (fa3_iter_next, the same __host__ __device__ code) are run here for
 * every block of the grid, on the 14B shapes and on ragged ones (block-
 * causal masks with a query offset, fewer items than SMs, more SMs than a
 * grid may have, every key tile size and schedule).  Checked: every key
 * tile of every work item is done exactly once; a split item's pieces are
 * exactly blocks fa3_blk(S) .. fa3_blk(S + len - 1), all agree on S, and
 * their partial-result slots and arrival counters are distinct and inside
 * the buffers the backend allocates; the producer's short walk
 * (fa3_iter_next<false>) yields the same units; the grid never exceeds the
 * SM count.  No GPU is needed (the kernels are not launched).
 * Exit 0 = pass, 1 = fail.
 */
#include "cuda/attention_fa3.cuh"
#include "cuda/dit_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static int failures, checked;

#define EXPECT(cond, ...)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      if (failures++ < 20) {                                                  \
        printf ("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
        printf (__VA_ARGS__);                                                 \
        printf ("\n");                                                        \
      }                                                                       \
    }                                                                         \
  } while (0)

typedef struct shape {
  const char *name;
  int64_t L, N;
  int heads;
  int64_t causal_block, q_pos0;
} shape;

static void
check (const shape *sh, int bn, int sched, int nsm)
{
  fa3_params p;
  memset (&p, 0, sizeof p);
  p.a.L = sh->L;
  p.a.N = sh->N;
  p.a.heads = sh->heads;
  p.a.d = 128;
  p.a.causal_block = sh->causal_block;
  p.a.q_pos0 = sh->q_pos0;
  p.kn = (int) sh->N;
  p.cblock = (int) sh->causal_block;
  p.qpos = (int) sh->q_pos0;
  const int before = failures;
  const int grid = fa3_plan (&p, bn, sched, nsm, 1);
  const int W = nsm < FA3_MAX_GRID ? nsm : FA3_MAX_GRID;
  EXPECT (grid >= 1 && grid <= W, "grid %d, %d SMs", grid, nsm);
  EXPECT (p.nsk <= grid && p.ndp <= p.nitems, "nsk %d ndp %d", p.nsk, p.ndp);
  EXPECT (p.nitems - p.ndp <= FA3_MAX_SK_ITEMS || p.nsk == 0,
      "%d stream-K items", p.nitems - p.ndp);

  std::vector<std::vector<int> > cov (p.nitems);
  std::vector<int> pieces (p.nitems, 0), want (p.nitems, 0);
  std::vector<int> first_s (p.nitems, -1);
  std::vector<int> slot_used (2 * FA3_MAX_GRID, 0);
  for (int i = 0; i < p.nitems; i++) {
    int m0, h;
    fa3_item (p, i, &m0, &h);
    cov[i].assign (fa3_len (p, m0, bn), 0);
  }
  for (int b = 0; b < grid; b++) {
    fa3_iter it, itp;
    fa3_iter_init (&it, p, b);
    fa3_iter_init (&itp, p, b);
    fa3_unit u, up;
    while (fa3_iter_next (&it, p, bn, grid, &u)) {
      const bool pm = fa3_iter_next<false> (&itp, p, bn, grid, &up);
      EXPECT (pm && up.h == u.h && up.m0 == u.m0 && up.t0 == u.t0
          && up.t1 == u.t1, "producer's walk differs at block %d", b);
      EXPECT (u.item >= 0 && u.item < p.nitems, "item %d", u.item);
      if (u.item < 0 || u.item >= p.nitems)
        break;
      int m0, h;
      fa3_item (p, u.item, &m0, &h);
      EXPECT (m0 == u.m0 && h == u.h && h < sh->heads && m0 < sh->L,
          "item %d decodes to %d/%d", u.item, u.m0, u.h);
      EXPECT (u.len == (int) cov[u.item].size (), "len %d", u.len);
      EXPECT (0 <= u.t0 && u.t0 < u.t1 && u.t1 <= u.len, "tiles [%d, %d) "
          "of %d", u.t0, u.t1, u.len);
      for (int t = u.t0; t < u.t1 && t < u.len; t++)
        if (t >= 0)
          cov[u.item][t]++;
      EXPECT (u.split == (u.t0 > 0 || u.t1 < u.len), "split flag");
      if (!u.split)
        continue;
      EXPECT (u.item >= p.ndp, "round-robin item %d split", u.item);
      const int b0 = fa3_blk (p, u.S), b1 = fa3_blk (p, u.S + u.len - 1);
      EXPECT (b0 <= b && b <= b1, "block %d outside pieces %d..%d", b, b0,
          b1);
      EXPECT (b1 < p.nsk, "piece block %d of %d", b1, p.nsk);
      const int slot = fa3_slot (p, b, b0, u.S);
      EXPECT (slot >= 0 && slot < 2 * W, "slot %d", slot);
      if (slot >= 0 && slot < 2 * W) {
        EXPECT (!slot_used[slot], "slot %d used twice", slot);
        slot_used[slot] = 1;
      }
      if (first_s[u.item] < 0)
        first_s[u.item] = u.S;
      EXPECT (first_s[u.item] == u.S, "item %d: S %d and %d", u.item,
          first_s[u.item], u.S);
      pieces[u.item]++;
      want[u.item] = b1 - b0 + 1;
    }
    EXPECT (!fa3_iter_next<false> (&itp, p, bn, grid, &up),
        "producer's walk longer at block %d", b);
  }
  for (int i = 0; i < p.nitems; i++) {
    for (size_t t = 0; t < cov[i].size (); t++)
      EXPECT (cov[i][t] == 1, "item %d tile %zu done %d times", i, t,
          cov[i][t]);
    EXPECT (pieces[i] == want[i], "item %d: %d pieces, expected %d", i,
        pieces[i], want[i]);
  }
  /* the plans of the 14B shapes on 132 SMs, and any that failed */
  if (failures != before || (nsm == 132 && sh->L == 2160))
    printf ("%-34s bn %3d sched %d sms %3d: grid %3d, %4d items, %4d whole, "
        "%3d stream-K blocks over %5d tiles %s\n", sh->name, bn, sched, nsm,
        grid, p.nitems, p.ndp, p.nsk, p.sk_tiles,
        failures == before ? "ok" : "FAIL");
  checked++;
}

int
main (void)
{
  static const shape shapes[] = {
    { "denoise L2160 N4320 40 heads", 2160, 4320, 40, 0, 0 },
    { "recompute L=N=2160 causal 2160", 2160, 2160, 40, 2160, 0 },
    { "recompute L=N=2160 causal 720", 2160, 2160, 40, 720, 0 },
    { "causal160 pos250 L300 N700", 300, 700, 4, 160, 250 },
    { "self causal96 L260 72 heads", 260, 260, 72, 96, 0 },
    { "L40 N1000 2 heads", 40, 1000, 2, 0, 0 },
    { "L150 N300 2 heads", 150, 300, 2, 0, 0 },
    { "causal48 pos100 L100 N260", 100, 260, 3, 48, 100 },
    { "cross-attention L2160 N512", 2160, 512, 40, 0, 0 },
    { "L30000 N30000 causal 1000 8 heads", 30000, 30000, 8, 1000, 0 },
  };
  static const int bns[] = { 80, 128, 144, 176 };
  static const int sms[] = { 132, 1, 7, 200 };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (size_t b = 0; b < sizeof bns / sizeof bns[0]; b++)
      for (int sched = 0; sched < DIT_CUDA_ATTN_SCHEDULES; sched++)
        for (size_t m = 0; m < sizeof sms / sizeof sms[0]; m++)
          check (&shapes[s], bns[b], sched, sms[m]);
  printf ("%d plans walked\n%s: %d failure(s)\n", checked,
      failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
