/* attention — o = softmax(q kᵀ * scale + bias) v per head, f32 online softmax.
 *
 * Layout: q [L, H*d], k and v [N, H*d], o [L, H*d]; head h owns columns
 * [h*d, (h+1)*d).  Rows may be strided (a KV-cache window, a column slice of
 * a fused QKV output), so the same op serves self-attention over a cache,
 * cross-attention over 512 text rows and the VAE's single-head attention
 * (d up to 384); d is arbitrary.
 *
 * Algorithm: one pool task per (head, block of ATTN_QB query rows).  Keys
 * are visited in blocks of ATTN_KB (converted to f32 once per task) with a
 * running max m, denominator l and unnormalised output per query row
 * (FlashAttention's online softmax, in f32).  The per-key log-bias range
 * [bias_begin, bias_end) adds log_bias to those logits after scaling (spec
 * §4.8).  With causal_block > 0 query r sees keys
 * j < (floor((q_pos0 + r) / causal_block) + 1) * causal_block; keys beyond a
 * row's limit get logit -inf and contribute exactly 0, and a key block a row
 * cannot see at all is skipped for that row, so a row's result does not
 * depend on which other rows share its block.  key_len > 0 lowers every
 * row's limit to key_len (padded prompts).  The optional umT5 position bias
 * adds pos_bias[bucket(j - (q_pos0 + r)), h] after scaling (bucket from
 * dit_t5_bucket.h, computed per score: the log only runs for distances of 8
 * and more, and the encoder runs once per prompt).  Scores are accumulated over
 * channels in order and the value sum over keys in order: deterministic for
 * any thread count.
 *
 * FP8 output (o of dtype f8e4m3, o_scale [heads, L]): each row's normalised
 * f32 output of a head is quantized as one block (kernels/dit_fp8.h), the
 * scale of (row r, head h) at o_scale[h * L + r].
 */
#include "cpu_internal.h"

#include "../dit_t5_bucket.h"

#include <stdatomic.h>

#define ATTN_QB 16
#define ATTN_KB 64

typedef struct attn_ctx {
  dit_cpu_mat q, k, v, o;
  int heads, d;
  int64_t L, N;
  float scale;
  int64_t bias_begin, bias_end;
  float log_bias;
  int64_t causal_block, q_pos0;
  const void *pos_bias;
  dit_dtype pos_bias_dtype;
  int num_buckets, max_distance, bidirectional;
  int64_t key_len;
  int64_t q_blocks;
  float *o_scale;     /* FP8 output: [heads, L] scales, else NULL */
  atomic_int failed;
} attn_ctx;

static int64_t
attn_key_end (const attn_ctx *a, int64_t r)
{
  int64_t n = a->key_len > 0 && a->key_len < a->N ? a->key_len : a->N;
  if (a->causal_block <= 0)
    return n;
  int64_t e = ((a->q_pos0 + r) / a->causal_block + 1) * a->causal_block;
  return e < n ? e : n;
}

static void
attn_task (void *arg, int64_t task)
{
  attn_ctx *a = arg;
  const int64_t d = a->d;
  size_t need = (size_t) (ATTN_QB * d * 2 + ATTN_KB * d * 2 + ATTN_QB * ATTN_KB
      + 4 * ATTN_QB + d + 64);
  float *qf = dit_cpu_scratch (need);
  if (!qf) {
    atomic_store (&a->failed, 1);
    return;
  }
  float *of = qf + ATTN_QB * d;          /* [QB][d] unnormalised output */
  float *kt = of + ATTN_QB * d;          /* [d][KB] keys, transposed */
  float *vf = kt + ATTN_KB * d;          /* [KB][d] values */
  float *sc = vf + ATTN_KB * d;          /* [QB][KB] scores */
  float *m = sc + ATTN_QB * ATTN_KB;     /* running max */
  float *l = m + ATTN_QB;                /* running denominator */
  float *row = l + ATTN_QB;              /* one row of d */
  int64_t kend[ATTN_QB];

  int h = (int) (task / a->q_blocks);
  int64_t r0 = (task % a->q_blocks) * ATTN_QB;
  int64_t qn = a->L - r0 < ATTN_QB ? a->L - r0 : ATTN_QB;
  size_t col0 = (size_t) h * (size_t) d;
  int64_t maxend = 0;

  for (int64_t r = 0; r < qn; r++) {
    const char *src = (const char *) dit_cpu_row (&a->q, r0 + r)
        + col0 * dit_dtype_size (a->q.dtype);
    dit_cpu_load_row (qf + r * d, src, a->q.dtype, d);
    for (int64_t c = 0; c < d; c++)
      of[r * d + c] = 0.0f;
    m[r] = -INFINITY;
    l[r] = 0.0f;
    kend[r] = attn_key_end (a, r0 + r);
    if (kend[r] > maxend)
      maxend = kend[r];
  }

  for (int64_t kb0 = 0; kb0 < maxend; kb0 += ATTN_KB) {
    int64_t kn = maxend - kb0 < ATTN_KB ? maxend - kb0 : ATTN_KB;
    for (int64_t j = 0; j < kn; j++) {
      const char *ks = (const char *) dit_cpu_row (&a->k, kb0 + j)
          + col0 * dit_dtype_size (a->k.dtype);
      dit_cpu_load_row (row, ks, a->k.dtype, d);
      for (int64_t c = 0; c < d; c++)
        kt[c * ATTN_KB + j] = row[c];
      const char *vs = (const char *) dit_cpu_row (&a->v, kb0 + j)
          + col0 * dit_dtype_size (a->v.dtype);
      dit_cpu_load_row (vf + j * d, vs, a->v.dtype, d);
    }
    for (int64_t r = 0; r < qn; r++) {
      if (kend[r] <= kb0)
        continue;   /* the whole block is in this row's future */
      float *s = sc + r * ATTN_KB;
      const float *qr = qf + r * d;
      for (int64_t j = 0; j < kn; j++)
        s[j] = 0.0f;
      for (int64_t c = 0; c < d; c++) {
        float qv = qr[c];
        const float *kc = kt + c * ATTN_KB;
        for (int64_t j = 0; j < kn; j++)
          s[j] += qv * kc[j];
      }
      float bm = -INFINITY;
      for (int64_t j = 0; j < kn; j++) {
        int64_t key = kb0 + j;
        float v = s[j] * a->scale;
        if (key >= a->bias_begin && key < a->bias_end)
          v += a->log_bias;
        if (a->pos_bias) {
          int b = dit_t5_bucket (key - (a->q_pos0 + r0 + r), a->num_buckets,
              a->max_distance, a->bidirectional);
          v += dit_load_f32 (a->pos_bias, a->pos_bias_dtype,
              (size_t) b * (size_t) a->heads + (size_t) h);
        }
        if (key >= kend[r])
          v = -INFINITY;
        s[j] = v;
        if (v > bm)
          bm = v;
      }
      if (bm == -INFINITY)
        continue;
      float mnew = m[r] > bm ? m[r] : bm;
      float alpha = expf (m[r] - mnew);
      float psum = 0.0f;
      for (int64_t j = 0; j < kn; j++) {
        s[j] = expf (s[j] - mnew);
        psum += s[j];
      }
      l[r] = l[r] * alpha + psum;
      m[r] = mnew;
      float *orow = of + r * d;
      for (int64_t c = 0; c < d; c++)
        orow[c] *= alpha;
      for (int64_t j = 0; j < kn; j++) {
        float pj = s[j];
        const float *vj = vf + j * d;
        for (int64_t c = 0; c < d; c++)
          orow[c] += pj * vj[c];
      }
    }
  }

  for (int64_t r = 0; r < qn; r++) {
    float *orow = of + r * d;
    float lr = l[r];
    for (int64_t c = 0; c < d; c++)
      orow[c] = orow[c] / lr;
    char *dst = (char *) dit_cpu_row (&a->o, r0 + r)
        + col0 * dit_dtype_size (a->o.dtype);
    if (a->o_scale)
      dit_cpu_quantize_row (orow, d, d, (uint8_t *) dst,
          a->o_scale + (int64_t) h * a->L + r0 + r, 1);
    else
      dit_cpu_store_row (dst, a->o.dtype, orow, d);
  }
}

dit_status
dit_cpu_attention (dit_backend *be, const dit_attn_params *p)
{
  attn_ctx a;
  memset (&a, 0, sizeof a);
  dit_attn_dims d;
  DIT_TRY (dit_check_attention (DIT_DEVICE_CPU, p, &d));
  a.q = d.q;
  a.k = d.k;
  a.v = d.v;
  a.o = d.o;
  a.o_scale = d.o_scale;
  a.L = d.L;
  a.N = d.N;
  if (a.L == 0)
    return DIT_OK;
  a.heads = p->heads;
  a.d = p->head_dim;
  a.scale = p->scale;
  a.bias_begin = d.bias_begin;
  a.bias_end = d.bias_end;
  a.log_bias = p->log_bias;
  a.causal_block = p->causal_block;
  a.q_pos0 = p->q_pos0;
  a.key_len = p->key_len;
  if (p->pos_bias) {
    a.pos_bias = p->pos_bias->data;
    a.pos_bias_dtype = p->pos_bias->dtype;
    a.num_buckets = p->num_buckets;
    a.max_distance = p->max_distance;
    a.bidirectional = p->bidirectional;
  }
  a.q_blocks = (a.L + ATTN_QB - 1) / ATTN_QB;
  atomic_init (&a.failed, 0);
  dit_cpu_parallel ((int64_t) a.heads * a.q_blocks, attn_task, &a);
  if (atomic_load (&a.failed))
    return dit_error (DIT_ERR_NOMEM, "attention: cannot allocate scratch for "
        "head_dim %d", a.d);
  return DIT_OK;
}
