/* dit_model — the causal Wan2.1 DiT forward, written against the backend
 * op table only (see dit_model.h for the contract).
 *
 * Data flow of one forward over F latent frames (L = F * fs tokens):
 *   latent --patchify--> tok [L, 64] --patch GEMM--> x [L, D] (f32 residual)
 *   t[F] --sinusoid--> [F, 256] --MLP--> e [F, D] --SiLU, Linear--> e0 [F, 6D]
 *   mod[f, l] = modulation_l + e0[f] for every block l at once (2 ops)
 *   per block:
 *     h = LN(x)·(1+scale_msa)+shift_msa
 *     q = RMS(h Wq), K/V rows of the cache = RMS(h Wk), h Wv; RoPE(q, k)
 *     x += gate_msa · (Attn(q, K[0:N], V[0:N]) Wo)
 *     x += Attn(RMS(LN3(x) Wq'), Kctx, Vctx) Wo'
 *     x += gate_mlp · FFN(LN(x)·(1+scale_mlp)+shift_mlp)
 * The three residual adds are folded into the GEMMs that make their branch
 * (dit_gemm_params: accumulate into the f32 x, the gate as a per-frame
 * epilogue scale; dit_model_set_gemm_fold (m, 0) runs GEMM + residual pass
 * instead), so x is read and written once per branch inside the GEMM.
 *   head: (LN(x)·(1+scale)+shift) Wh --unpatchify--> v [16, F, H, W]
 * The self-attention K/V of this call are written straight into the cache
 * rows [cache_row, cache_row + L) by the projection GEMMs, then normalised
 * and rotated in place, so the cache holds post-norm, post-RoPE keys.
 *
 * Tensor parallelism (degree tp > 1, dit_model_create_tp): the weights are
 * this rank's shard, q/k/v, cross q/k/v and FFN-up hold Dl = D/tp (Fl =
 * ffn/tp) output columns, so q, attn, ffn, the KV cache and the cross K/V
 * are Dl (Fl) wide and attention runs on H/tp local heads; o, cross o and
 * FFN-down take Dl (Fl) inputs and produce partial [L, D] sums in f32 that
 * are all-reduced, then their bias is added once.  The full-width q/k
 * RMSNorm is split: partial sums of squares of q and k go through ONE
 * all-reduce of 2L floats, then each rank normalises its columns.  The
 * residual stream x stays replicated and bit-identical on every rank
 * because every rank adds the same all-reduced bits.
 *
 * Overlap (dit_model_tp.overlap): the same ops in an order that lets a
 * stream-ordered comm run the collectives beside the compute —
 * linear_residual_halves (TP outputs in two token halves),
 * norm_qk_stats / norm_qk_apply around the v projection, and
 * sp_self_attention_overlap (k/v exchanged before q, attention in two head
 * halves).  A collective is started on a slot and waited for where its
 * result is first read; on a synchronous comm the wait does nothing.
 *
 * Live LoRA (dit_model_set_lora, model/dit_lora.h): a targeted layer's
 * weight is stored as W_cat = [W | Bs] and the low-rank term is folded
 * into its GEMM along K (lora_fold): h, attn and ffn carry R spare
 * columns, u = x Aᵀ goes there, and the one GEMM over [x | u] and W_cat
 * gives x Wᵀ + u Bsᵀ with the usual epilogues.  The prompt and time
 * embeddings keep the side path (lora_side).
 */
#include "dit_model.h"
#include "dit_lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A linear layer: w [out, in] in the compute dtype, or FP8 codes with
 * per-output-channel scales w_scale (NULL for a 16/32-bit w); lora: the
 * live LoRA side path of the layer (dit_lora.h), NULL when none. */
typedef struct dit_linear {
  const dit_tensor *w;
  const dit_tensor *b;
  const dit_tensor *w_scale;
  const dit_lora_side *lora;
} dit_linear;

/* An activation as its consumers read it: x in the compute dtype and/or
 * FP8 codes x8 with block scales x8s ([cols / 128, rows], kernels/dit_ops.h
 * "FP8"); a linear takes x8 when its weight is FP8, x otherwise.  spare:
 * free columns of x's buffer right after x's last one (same rows), where
 * a live LoRA folded into the linear writes its u = x Aᵀ (lora_fold). */
typedef struct dit_act_in {
  const dit_tensor *x;
  const dit_tensor *x8;
  const dit_tensor *x8s;
  int64_t spare;
} dit_act_in;

typedef struct dit_block_weights {
  dit_tensor modulation;   /* [6D] view */
  dit_linear sq, sk, sv, so;
  const dit_tensor *s_norm_q, *s_norm_k;
  const dit_tensor *norm3_w, *norm3_b;
  dit_linear cq, ck, cv, co;
  const dit_tensor *c_norm_q, *c_norm_k;
  dit_linear ffn1, ffn2;
} dit_block_weights;

struct dit_model {
  dit_model_config cfg;
  dit_backend *be;
  dit_dtype dtype;
  int grid_h, grid_w;
  int max_frames;
  int64_t fs;
  int64_t cache_rows;

  /* weights */
  dit_tensor patch_w;          /* [D, 64] view */
  const dit_tensor *patch_b;
  dit_linear text0, text2, time0, time2, tproj;
  dit_tensor head_modulation;  /* [2D] view */
  dit_linear head;
  dit_block_weights *blocks;

  /* per-prompt state */
  int have_context;
  int context_set;             /* ctx_raw holds a prompt */
  dit_tensor ctx_raw;          /* [text_len, text_dim] */
  dit_tensor ctx_hidden;       /* [text_len, D] */
  dit_tensor ctx;              /* [text_len, D] */
  dit_tensor *cross_k, *cross_v; /* per layer [text_len, D] */

  /* KV cache */
  dit_tensor *cache_k, *cache_v; /* per layer [cache_rows, D] */

  /* activations (sized for max_frames) */
  dit_tensor tok;       /* [Lmax, 64] */
  dit_tensor x;         /* [Lmax, D] f32 residual */
  dit_tensor h;         /* [Lmax, D] */
  dit_tensor q;         /* [Lmax, D] */
  dit_tensor attn;      /* [Lmax, D] */
  dit_tensor proj;      /* [Lmax, D] */
  dit_tensor ffn;       /* [Lmax, ffn] */
  dit_tensor head_out;  /* [Lmax, 64] */
  dit_tensor tsin;      /* [Fmax, freq] */
  dit_tensor temb_h;    /* [Fmax, D] f32 */
  dit_tensor e;         /* [Fmax, D] f32 */
  dit_tensor e_silu;    /* [Fmax, D] f32 */
  dit_tensor e0;        /* [Fmax, 6D] f32 */
  dit_tensor mod_table; /* [layers, 6D] f32: every block's modulation */
  dit_tensor mod;       /* [Fmax, layers, 6D] f32: mod_table + e0 */
  dit_tensor head_shift, head_scale; /* [Fmax, D] f32 */

  dit_tensor rope_cos, rope_sin; /* [1024, 64] f32 */

  /* tensor parallelism (tp_degree 1: none) */
  int tp_degree, tp_rank;
  int heads_local;
  int64_t dim_local, ffn_local;
  dit_allreduce_fn allreduce;
  void *allreduce_user;
  dit_tensor sumsq;     /* [max(2 Lmax, text_len)] f32, tp > 1 only */
  int overlap;          /* collectives in the overlapped order
                           (dit_model_tp.overlap) */
  dit_status (*allreduce_start) (void *, void *, int64_t, dit_dtype, int);
  dit_status (*alltoall_start) (void *, const void *, void *, size_t, int);
  dit_status (*comm_wait) (void *, int);

  /* sequence parallelism (sp_degree 1: none): this rank's tokens are rows
   * [sp_rank * L / sp, +L / sp) of every forward; self-attention runs on
   * attn_heads = heads_local / sp heads of all L tokens */
  int sp_degree, sp_rank;
  int attn_heads;
  int64_t attn_dim;     /* attn_heads * head_dim: the KV cache's width */
  dit_alltoall_fn alltoall;
  void *alltoall_user;
  dit_tensor sp_tok;    /* [Lmax, Dl]: q/k/v before, attention after the
                           token<->head exchange */
  dit_tensor sp_pack;   /* [Lmax, max(Dl, 128)]: all-to-all send/receive */
  int64_t mod_rows;     /* token rows per modulation row in this forward:
                           fs, or at sp > 1 the rows of a group that lies in
                           one frame (the modulation is made per group) */
  int64_t mod_groups;   /* modulation rows allocated (>= max_frames) */
  double *group_t;      /* [mod_groups] host: each row group's timestep */

  int no_fused;         /* 1: always run the unfused op chains */
  int no_gemm_fold;     /* 1: residual adds as separate passes */

  /* FP8 activations (only where a consumer's weight is FP8): codes and
   * block scales of the LayerNorm outputs (h8), the attention outputs
   * (attn8) and the FFN hidden layer (ffn8) */
  int fp8;              /* some linear weight is FP8 */
  dit_tensor h8, h8s, attn8, attn8s, ffn8, ffn8s;

  /* live LoRA (dit_model_set_lora): the low-rank product u = x Aᵀ of a
   * layer on the side path, [rows, R] for up to lora_rows rows; lora_spare:
   * the columns h, attn and ffn carry after their width for the folded
   * layers' u (0 without a live LoRA: the buffers are contiguous) */
  dit_tensor lora_u;
  int64_t lora_rows;
  int64_t lora_spare;
};

static dit_status
bind (const dit_weights *w, const char *name, const dit_tensor **out)
{
  return dit_weights_require (w, name, out);
}

static dit_status
bind_linear (const dit_weights *w, const char *prefix, dit_linear *l)
{
  char n[256];
  snprintf (n, sizeof n, "%s.weight", prefix);
  DIT_TRY (bind (w, n, &l->w));
  l->w_scale = NULL;
  if (l->w->dtype == DIT_F8E4M3) {
    size_t i = (size_t) (l->w - w->tensors);
    if (!w->scales || !w->scales[i].data || l->w->ndim != 2
        || l->w->shape[1] % DIT_FP8_BLOCK != 0)
      return dit_error (DIT_ERR_INVALID, "weights: FP8 tensor '%s' has no "
          "channel scales or an input width that is not a multiple of %d", n,
          DIT_FP8_BLOCK);
    l->w_scale = &w->scales[i];
  }
  snprintf (n, sizeof n, "%s.bias", prefix);
  return bind (w, n, &l->b);
}

/* Only the blocks' linear layers may be FP8 (dit_model_fp8_select). */
static dit_status
bind_linear_16 (const dit_weights *w, const char *prefix, dit_linear *l)
{
  DIT_TRY (bind_linear (w, prefix, l));
  if (l->w_scale)
    return dit_error (DIT_ERR_INVALID, "weights: '%s.weight' is FP8; this "
        "layer runs in the compute dtype only", prefix);
  return DIT_OK;
}

static dit_tensor
flat_view (const dit_tensor *t)
{
  return dit_tensor_1d (t->data, t->dtype, t->device, dit_tensor_numel (t));
}

static dit_status
bind_weights (dit_model *m, const dit_weights *w)
{
  const int64_t D = m->cfg.dim;
  const dit_tensor *t;
  char n[128];

  DIT_TRY (bind (w, "patch_embedding.weight", &t));
  m->patch_w = dit_tensor_2d (t->data, t->dtype, t->device, D,
      (int64_t) m->cfg.in_dim * 4);
  DIT_TRY (bind (w, "patch_embedding.bias", &m->patch_b));
  DIT_TRY (bind_linear_16 (w, "text_embedding.0", &m->text0));
  DIT_TRY (bind_linear_16 (w, "text_embedding.2", &m->text2));
  DIT_TRY (bind_linear_16 (w, "time_embedding.0", &m->time0));
  DIT_TRY (bind_linear_16 (w, "time_embedding.2", &m->time2));
  DIT_TRY (bind_linear_16 (w, "time_projection.1", &m->tproj));
  DIT_TRY (bind (w, "head.modulation", &t));
  m->head_modulation = flat_view (t);
  DIT_TRY (bind_linear_16 (w, "head.head", &m->head));
  if (m->patch_w.dtype == DIT_F8E4M3)
    return dit_error (DIT_ERR_INVALID, "weights: 'patch_embedding.weight' is "
        "FP8; the patch embedding runs in the compute dtype only");

  m->blocks = calloc ((size_t) m->cfg.num_layers, sizeof *m->blocks);
  if (!m->blocks)
    return dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  for (int i = 0; i < m->cfg.num_layers; i++) {
    dit_block_weights *b = &m->blocks[i];
#define LIN(field, fmt) snprintf (n, sizeof n, fmt, i); DIT_TRY (bind_linear (w, n, &b->field))
#define ONE(field, fmt) snprintf (n, sizeof n, fmt, i); DIT_TRY (bind (w, n, &b->field))
    snprintf (n, sizeof n, "blocks.%d.modulation", i);
    DIT_TRY (bind (w, n, &t));
    b->modulation = flat_view (t);
    LIN (sq, "blocks.%d.self_attn.q");
    LIN (sk, "blocks.%d.self_attn.k");
    LIN (sv, "blocks.%d.self_attn.v");
    LIN (so, "blocks.%d.self_attn.o");
    ONE (s_norm_q, "blocks.%d.self_attn.norm_q.weight");
    ONE (s_norm_k, "blocks.%d.self_attn.norm_k.weight");
    ONE (norm3_w, "blocks.%d.norm3.weight");
    ONE (norm3_b, "blocks.%d.norm3.bias");
    LIN (cq, "blocks.%d.cross_attn.q");
    LIN (ck, "blocks.%d.cross_attn.k");
    LIN (cv, "blocks.%d.cross_attn.v");
    LIN (co, "blocks.%d.cross_attn.o");
    ONE (c_norm_q, "blocks.%d.cross_attn.norm_q.weight");
    ONE (c_norm_k, "blocks.%d.cross_attn.norm_k.weight");
    LIN (ffn1, "blocks.%d.ffn.0");
    LIN (ffn2, "blocks.%d.ffn.2");
#undef LIN
#undef ONE
    if (b->ck.w_scale || b->cv.w_scale)
      return dit_error (DIT_ERR_INVALID, "weights: blocks.%d cross-attention "
          "k/v are FP8; they run once per prompt in the compute dtype", i);
    m->fp8 |= b->sq.w_scale || b->sk.w_scale || b->sv.w_scale || b->so.w_scale
        || b->cq.w_scale || b->co.w_scale || b->ffn1.w_scale || b->ffn2.w_scale;
  }
  return DIT_OK;
}

static dit_status
alloc2 (dit_model *m, dit_tensor *t, dit_dtype dt, int64_t r, int64_t c)
{
  int64_t shape[2] = { r, c };
  return dit_tensor_alloc (m->be, t, dt, 2, shape);
}

/* An [r, c] view of an [r, c + spare] buffer: the input of live-LoRA
 * linears, whose folded GEMM reads the spare columns (lora_fold). */
static dit_status
alloc_wide (dit_model *m, dit_tensor *t, dit_dtype dt, int64_t r, int64_t c,
    int64_t spare)
{
  DIT_TRY (alloc2 (m, t, dt, r, c + spare));
  t->shape[1] = c;
  return DIT_OK;
}

/* The modulation vectors side by side, so that one add makes every block's
 * per-frame table (f32, as the per-block add made them).  Again after a
 * merged LoRA changed them. */
static dit_status
copy_mod_table (dit_model *m)
{
  for (int i = 0; i < m->cfg.num_layers; i++) {
    dit_tensor row = dit_tensor_rows (&m->mod_table, i, 1);
    dit_tensor dst = flat_view (&row);
    dit_copy_params cp = { .x = &m->blocks[i].modulation, .y = &dst };
    DIT_TRY (dit_copy (m->be, &cp));
  }
  return DIT_OK;
}

static dit_status
alloc_buffers (dit_model *m)
{
  const dit_model_config *c = &m->cfg;
  const int64_t D = c->dim, L = m->fs * m->max_frames, Fm = m->mod_groups;
  const int64_t Dl = m->dim_local, Da = m->attn_dim;
  const dit_dtype dt = m->dtype;
  const int64_t pdim = (int64_t) c->in_dim * 4;

  DIT_TRY (alloc2 (m, &m->ctx_raw, dt, c->text_len, c->text_dim));
  DIT_TRY (alloc2 (m, &m->ctx_hidden, dt, c->text_len, D));
  DIT_TRY (alloc2 (m, &m->ctx, dt, c->text_len, D));
  m->cross_k = calloc ((size_t) c->num_layers, sizeof (dit_tensor));
  m->cross_v = calloc ((size_t) c->num_layers, sizeof (dit_tensor));
  m->cache_k = calloc ((size_t) c->num_layers, sizeof (dit_tensor));
  m->cache_v = calloc ((size_t) c->num_layers, sizeof (dit_tensor));
  if (!m->cross_k || !m->cross_v || !m->cache_k || !m->cache_v)
    return dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  for (int i = 0; i < c->num_layers; i++) {
    DIT_TRY (alloc2 (m, &m->cross_k[i], dt, c->text_len, Dl));
    DIT_TRY (alloc2 (m, &m->cross_v[i], dt, c->text_len, Dl));
    DIT_TRY (alloc2 (m, &m->cache_k[i], dt, m->cache_rows, Da));
    DIT_TRY (alloc2 (m, &m->cache_v[i], dt, m->cache_rows, Da));
  }
  DIT_TRY (alloc2 (m, &m->tok, dt, L, pdim));
  DIT_TRY (alloc2 (m, &m->x, DIT_F32, L, D));
  DIT_TRY (alloc_wide (m, &m->h, dt, L, D, m->lora_spare));
  DIT_TRY (alloc2 (m, &m->q, dt, L, Dl));
  DIT_TRY (alloc_wide (m, &m->attn, dt, L, Dl, m->lora_spare));
  /* Row-parallel partial sums are rounded to the model dtype and reduced
   * in it, as the single-device GEMM rounds its output: on bf16 GPUs the
   * all-reduces move half the bytes of f32 partials, and they are the
   * largest transfers of a tensor-parallel forward. */
  DIT_TRY (alloc2 (m, &m->proj, dt, L, D));
  DIT_TRY (alloc_wide (m, &m->ffn, dt, L, m->ffn_local, m->lora_spare));
  if (m->fp8) {
    /* codes [L, width] and block scales [width / 128, L] (allocated flat:
     * a call with fewer rows uses the first (width / 128) * rows floats) */
    const int64_t B = DIT_FP8_BLOCK;
    DIT_TRY (alloc2 (m, &m->h8, DIT_F8E4M3, L, D));
    DIT_TRY (alloc2 (m, &m->h8s, DIT_F32, D / B, L));
    DIT_TRY (alloc2 (m, &m->attn8, DIT_F8E4M3, L, Dl));
    DIT_TRY (alloc2 (m, &m->attn8s, DIT_F32, Dl / B, L));
    if (m->ffn_local % B == 0) {
      DIT_TRY (alloc2 (m, &m->ffn8, DIT_F8E4M3, L, m->ffn_local));
      DIT_TRY (alloc2 (m, &m->ffn8s, DIT_F32, m->ffn_local / B, L));
    }
  }
  if (m->sp_degree > 1) {
    /* the pack buffer also gathers the head's f32 output [L, 64] */
    int64_t wide = (int64_t) c->out_dim * 4 * 4 / (int64_t) dit_dtype_size (dt);
    DIT_TRY (alloc2 (m, &m->sp_tok, dt, L, Dl));
    DIT_TRY (alloc2 (m, &m->sp_pack, dt, L, Dl > wide ? Dl : wide));
  }
  if (m->tp_degree > 1) {
    int64_t n = 2 * L > c->text_len ? 2 * L : c->text_len;
    DIT_TRY (dit_tensor_alloc (m->be, &m->sumsq, DIT_F32, 1, &n));
  }
  DIT_TRY (alloc2 (m, &m->head_out, DIT_F32, L, (int64_t) c->out_dim * 4));
  DIT_TRY (alloc2 (m, &m->tsin, DIT_F32, Fm, c->freq_dim));
  DIT_TRY (alloc2 (m, &m->temb_h, DIT_F32, Fm, D));
  DIT_TRY (alloc2 (m, &m->e, DIT_F32, Fm, D));
  DIT_TRY (alloc2 (m, &m->e_silu, DIT_F32, Fm, D));
  DIT_TRY (alloc2 (m, &m->e0, DIT_F32, Fm, 6 * D));
  DIT_TRY (alloc2 (m, &m->mod_table, DIT_F32, c->num_layers, 6 * D));
  DIT_TRY (alloc2 (m, &m->mod, DIT_F32, Fm, (int64_t) c->num_layers * 6 * D));
  DIT_TRY (copy_mod_table (m));
  DIT_TRY (alloc2 (m, &m->head_shift, DIT_F32, Fm, D));
  DIT_TRY (alloc2 (m, &m->head_scale, DIT_F32, Fm, D));
  DIT_TRY (alloc2 (m, &m->rope_cos, DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS));
  DIT_TRY (alloc2 (m, &m->rope_sin, DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS));

  size_t tab = (size_t) DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS;
  float *cos_tab = malloc (tab * sizeof (float));
  float *sin_tab = malloc (tab * sizeof (float));
  dit_status st = DIT_OK;
  if (!cos_tab || !sin_tab) {
    st = dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  } else {
    dit_rope_table_fill (cos_tab, sin_tab);
    st = dit_upload (m->be, m->rope_cos.data, cos_tab, tab * sizeof (float));
    if (st == DIT_OK)
      st = dit_upload (m->be, m->rope_sin.data, sin_tab, tab * sizeof (float));
  }
  free (cos_tab);
  free (sin_tab);
  return st;
}

dit_status
dit_model_tp_check (const dit_model_config *cfg, int degree)
{
  if ((degree != 1 && degree != 2 && degree != 4 && degree != 8)
      || cfg->num_heads % degree != 0 || cfg->ffn_dim % degree != 0)
    return dit_error (DIT_ERR_INVALID,
        "tensor-parallel degree %d is not supported for model '%s': it must be "
        "1, 2, 4 or 8 and divide its %d heads and ffn width %d",
        degree, cfg->name, cfg->num_heads, cfg->ffn_dim);
  return DIT_OK;
}

dit_status
dit_model_sp_check (const dit_model_config *cfg, int sp, int tp,
    const int64_t *tokens, int n)
{
  if (sp < 1 || sp > 8 || cfg->num_heads % (sp * tp) != 0)
    return dit_error (DIT_ERR_INVALID,
        "sequence-parallel degree %d is not supported for model '%s': it must "
        "be 1..8 and, times the tensor-parallel degree %d, divide its %d heads",
        sp, cfg->name, tp, cfg->num_heads);
  for (int i = 0; i < n; i++)
    if (tokens[i] % sp != 0)
      return dit_error (DIT_ERR_INVALID,
          "sequence-parallel degree %d does not divide a forward of %lld "
          "tokens (model '%s', %d heads): every rank takes tokens / %d rows",
          sp, (long long) tokens[i], cfg->name, cfg->num_heads, sp);
  return DIT_OK;
}

static int64_t
gcd64 (int64_t a, int64_t b)
{
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Rows of a modulation group at sp > 1: groups must tile this rank's rows
 * and never straddle a frame, so the group is gcd(L / sp, fs) rows. */
static int64_t
sp_group_rows (const dit_model *m, int64_t L)
{
  return gcd64 (L / m->sp_degree, m->fs);
}

void
dit_model_token_rows (const dit_model *m, int64_t L, int64_t *first,
    int64_t *count)
{
  *count = L / m->sp_degree;
  *first = *count * m->sp_rank;
}

dit_status
dit_model_create (const dit_model_config *cfg, const dit_weights *weights,
    dit_backend *be, dit_dtype dtype, int grid_h, int grid_w, int max_frames,
    int64_t cache_rows, dit_model **out)
{
  return dit_model_create_tp (cfg, weights, be, dtype, grid_h, grid_w,
      max_frames, cache_rows, NULL, out);
}

dit_status
dit_model_create_tp (const dit_model_config *cfg, const dit_weights *weights,
    dit_backend *be, dit_dtype dtype, int grid_h, int grid_w, int max_frames,
    int64_t cache_rows, const dit_model_tp *tp, dit_model **out)
{
  *out = NULL;
  if (tp) {
    DIT_TRY (dit_model_tp_check (cfg, tp->degree));
    if (tp->rank < 0 || tp->rank >= tp->degree)
      return dit_error (DIT_ERR_INVALID,
          "tensor-parallel rank %d outside 0..%d", tp->rank, tp->degree - 1);
    if (tp->degree > 1 && !tp->allreduce)
      return dit_error (DIT_ERR_INVALID,
          "tensor-parallel degree %d needs an all-reduce", tp->degree);
    if (tp->sp_degree > 1) {
      DIT_TRY (dit_model_sp_check (cfg, tp->sp_degree, tp->degree, NULL, 0));
      if (tp->sp_rank < 0 || tp->sp_rank >= tp->sp_degree || !tp->alltoall)
        return dit_error (DIT_ERR_INVALID, "sequence-parallel rank %d of %d "
            "(needs 0..%d and an all-to-all)", tp->sp_rank, tp->sp_degree,
            tp->sp_degree - 1);
    }
  }
  if (cfg->head_dim != 128 || cfg->dim != cfg->num_heads * cfg->head_dim)
    return dit_error (DIT_ERR_INVALID,
        "dit model: head_dim must be 128 and dim = heads * 128 (dim %d, heads %d)",
        cfg->dim, cfg->num_heads);
  if (grid_h <= 0 || grid_w <= 0 || max_frames <= 0)
    return dit_error (DIT_ERR_INVALID, "dit model: empty token grid %dx%dx%d",
        max_frames, grid_h, grid_w);
  if (grid_h > DIT_ROPE_POSITIONS || grid_w > DIT_ROPE_POSITIONS)
    return dit_error (DIT_ERR_INVALID,
        "dit model: token grid %dx%d exceeds the %d RoPE positions",
        grid_h, grid_w, DIT_ROPE_POSITIONS);
  if (!dit_backend_shares_memory (weights->backend, be))
    return dit_error (DIT_ERR_INVALID,
        "dit model: weights live on backend '%s' device %d but the model "
        "runs on '%s' device %d", dit_backend_name (weights->backend),
        weights->backend->device_index, dit_backend_name (be), be->device_index);

  dit_model *m = calloc (1, sizeof *m);
  if (!m)
    return dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  m->cfg = *cfg;
  m->be = be;
  m->dtype = dtype;
  m->grid_h = grid_h;
  m->grid_w = grid_w;
  m->max_frames = max_frames;
  m->fs = (int64_t) grid_h * grid_w;
  m->cache_rows = cache_rows;
  m->tp_degree = tp ? tp->degree : 1;
  m->tp_rank = tp ? tp->rank : 0;
  m->allreduce = tp ? tp->allreduce : NULL;
  m->allreduce_user = tp ? tp->user : NULL;
  m->heads_local = cfg->num_heads / m->tp_degree;
  m->dim_local = (int64_t) m->heads_local * cfg->head_dim;
  m->ffn_local = cfg->ffn_dim / m->tp_degree;
  m->sp_degree = tp && tp->sp_degree > 1 ? tp->sp_degree : 1;
  m->sp_rank = m->sp_degree > 1 ? tp->sp_rank : 0;
  m->alltoall = m->sp_degree > 1 ? tp->alltoall : NULL;
  m->alltoall_user = m->sp_degree > 1 ? tp->sp_user : NULL;
  m->overlap = tp ? tp->overlap : 0;
  if (m->overlap) {
    m->allreduce_start = tp->allreduce_start;
    m->alltoall_start = tp->alltoall_start;
    m->comm_wait = tp->wait;
  }
  m->attn_heads = m->heads_local / m->sp_degree;
  m->attn_dim = (int64_t) m->attn_heads * cfg->head_dim;
  m->mod_rows = m->fs;
  m->mod_groups = max_frames;
  /* at sp > 1 the modulation is made per group of rows (sp_group_rows):
   * room for the most groups any forward size this rank can be given */
  for (int64_t f = 1; m->sp_degree > 1 && f <= max_frames; f++) {
    int64_t L = f * m->fs;
    if (L % m->sp_degree == 0 && L / m->sp_degree / sp_group_rows (m, L)
        > m->mod_groups)
      m->mod_groups = L / m->sp_degree / sp_group_rows (m, L);
  }

  dit_status st = bind_weights (m, weights);
  if (st == DIT_OK && !(m->group_t = calloc ((size_t) m->mod_groups,
      sizeof (double))))
    st = dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  if (st == DIT_OK)
    st = alloc_buffers (m);
  if (st != DIT_OK) {
    dit_model_free (m);
    return st;
  }
  *out = m;
  return DIT_OK;
}

void
dit_model_free (dit_model *m)
{
  if (!m)
    return;
  dit_backend *be = m->be;
  for (int i = 0; i < m->cfg.num_layers; i++) {
    if (m->cross_k) dit_tensor_free (be, &m->cross_k[i]);
    if (m->cross_v) dit_tensor_free (be, &m->cross_v[i]);
    if (m->cache_k) dit_tensor_free (be, &m->cache_k[i]);
    if (m->cache_v) dit_tensor_free (be, &m->cache_v[i]);
  }
  free (m->cross_k);
  free (m->cross_v);
  free (m->cache_k);
  free (m->cache_v);
  dit_tensor *bufs[] = { &m->ctx_raw, &m->ctx_hidden, &m->ctx, &m->tok, &m->x,
    &m->h, &m->q, &m->attn, &m->proj, &m->ffn, &m->head_out, &m->tsin,
    &m->temb_h, &m->e, &m->e_silu, &m->e0, &m->mod_table, &m->mod,
    &m->head_shift,
    &m->head_scale, &m->rope_cos, &m->rope_sin, &m->sumsq, &m->h8, &m->h8s,
    &m->attn8, &m->attn8s, &m->ffn8, &m->ffn8s, &m->sp_tok, &m->sp_pack,
    &m->lora_u };
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    dit_tensor_free (be, bufs[i]);
  free (m->blocks);
  free (m->group_t);
  free (m);
}

int64_t
dit_model_tokens_per_frame (const dit_model *m)
{
  return m->fs;
}

double
dit_model_forward_flops (const dit_model_config *c, int64_t L, int64_t N)
{
  double D = c->dim, F = c->ffn_dim, C = c->text_len;
  return (double) c->num_layers * ((double) L * (12.0 * D * D + 4.0 * D * F)
      + 4.0 * (double) L * D * ((double) N + C));
}

/* ---- small wrappers that keep the forward readable ---------------------- */

static int
lora_on (const dit_linear *l)
{
  return l->lora && l->lora->active;
}

/* Whether layer l runs its live LoRA folded into its GEMM (dit_lora_side:
 * its weight stored as W_cat = [W | Bs]) on an input with `spare` free
 * columns after its last.  Otherwise an active LoRA takes the side path
 * (lora_side): the prompt and time embeddings, whose inputs are made
 * once per prompt or have a handful of rows, and a weight that could not
 * be folded. */
static int
lora_folds (const dit_linear *l, int64_t spare)
{
  return lora_on (l) && l->lora->w_cat.data && spare >= l->lora->rank;
}

/* The fold along K: u = x Aᵀ (one skinny GEMM) into the R columns right
 * after x's K (the spare columns of its buffer: same rows, same row
 * stride), and xcat = [x | u] as one [M, K + R] view.  The layer's GEMM
 * over xcat and W_cat then computes x Wᵀ + u Bsᵀ with all its epilogues
 * (bias, GELU, gate, residual accumulate) in one pass, where the side path
 * needs a second GEMM and a full [M, N] write and read of its product.
 * Layers that share an input (q, k and v read one normed x) each write
 * their u into the same columns in turn: one u GEMM per layer, since one
 * over their stacked A's would need each layer's u right after x. */
static dit_status
lora_fold (dit_model *m, const dit_tensor *x, const dit_linear *l,
    dit_tensor *xcat)
{
  const dit_lora_side *sd = l->lora;
  const int64_t K = x->shape[1];
  dit_tensor u = dit_tensor_cols (x, K, sd->rank);
  dit_gemm_params d = { .x = x, .w = &sd->a, .y = &u };
  DIT_TRY (dit_gemm (m->be, &d));
  *xcat = *x;
  xcat->shape[1] = K + sd->rank;
  return DIT_OK;
}

/* The live LoRA side path of layer l on input x: u = x Aᵀ, then u Bsᵀ
 * (Bs carries the strengths) written into y (accumulate 0: the layer's
 * GEMM then takes y as its addend, ahead of bias and activation) or added
 * to it as gate ⊙ (u Bsᵀ) (accumulate 1: a residual branch's last linear,
 * whose product was already added to the f32 stream; scratch as for that
 * GEMM). */
static dit_status
lora_side (dit_model *m, const dit_tensor *x, const dit_linear *l,
    dit_tensor *y, int accumulate, const dit_tensor *gate, dit_tensor *scratch)
{
  const dit_lora_side *sd = l->lora;
  const int64_t M = x->shape[0];
  if (M > m->lora_rows || sd->rank > m->lora_u.shape[1])
    return dit_error (DIT_ERR_INVALID, "live lora: %lld rows of rank %lld "
        "exceed the side buffer", (long long) M, (long long) sd->rank);
  dit_tensor u = dit_tensor_2d (m->lora_u.data, m->dtype, m->lora_u.device, M,
      sd->rank);
  dit_gemm_params d = { .x = x, .w = &sd->a, .y = &u };
  DIT_TRY (dit_gemm (m->be, &d));
  dit_gemm_params p = { .x = &u, .w = &sd->bs, .y = y,
    .accumulate = accumulate, .gate = gate, .rows_per_group = m->mod_rows,
    .scratch = gate ? scratch : NULL };
  return dit_gemm (m->be, &p);
}

/* A linear layer on x with `spare` free columns after it (lora_fold). */
static dit_status
linear_spare (dit_model *m, const dit_tensor *x, int64_t spare,
    const dit_linear *l, dit_tensor *y, dit_act act)
{
  dit_tensor xcat;
  dit_gemm_params p = { .x = x, .w = l->w, .bias = l->b, .y = y, .act = act };
  if (lora_folds (l, spare)) {
    DIT_TRY (lora_fold (m, x, l, &xcat));
    p.x = &xcat;
    p.w = &l->lora->w_cat;
  } else if (lora_on (l)) {
    DIT_TRY (lora_side (m, x, l, y, 0, NULL, NULL));
    p.addend = y;
  }
  return dit_gemm (m->be, &p);
}

static dit_status
linear (dit_model *m, const dit_tensor *x, const dit_linear *l, dit_tensor *y,
    dit_act act)
{
  return linear_spare (m, x, 0, l, y, act);
}

/* The view of the first rows * cols / 128 floats of a flat scale buffer
 * as [cols / 128, rows]. */
static dit_tensor
fp8_scales (const dit_tensor *buf, int64_t rows, int64_t cols)
{
  return dit_tensor_2d (buf->data, DIT_F32, buf->device,
      cols / DIT_FP8_BLOCK, rows);
}

/* Every linear layer of a block goes through here: the FP8 GEMM when the
 * weight is FP8 (input x8 with its scales), the 16/32-bit GEMM otherwise
 * (input x).  y8/y8s, when set, receive the result as FP8 codes and block
 * scales (the FFN hidden layer, quantized where it is produced) with
 * `scratch` ([M, N] in the compute dtype) for backends that finish an FP8
 * output in two passes; bias NULL drops the layer's bias (row-parallel
 * partial sums add it after the all-reduce). */
static dit_status
linear_any (dit_model *m, const dit_act_in *in, const dit_linear *l,
    const dit_tensor *bias, dit_tensor *y, dit_tensor *y8, dit_tensor *y8s,
    dit_tensor *scratch, dit_act act)
{
  if (!l->w_scale) {
    dit_tensor xcat;
    dit_gemm_params p = { .x = in->x, .w = l->w, .bias = bias, .y = y,
      .act = act };
    if (lora_folds (l, in->spare)) {
      DIT_TRY (lora_fold (m, in->x, l, &xcat));
      p.x = &xcat;
      p.w = &l->lora->w_cat;
    } else if (lora_on (l)) {
      DIT_TRY (lora_side (m, in->x, l, y, 0, NULL, NULL));
      p.addend = y;
    }
    DIT_TRY (dit_gemm (m->be, &p));
    if (!y8)
      return DIT_OK;
    /* a 16-bit layer feeding an FP8 one */
    dit_quantize_fp8_params qp = { .x = y, .q = y8, .scale = y8s,
      .block = DIT_FP8_BLOCK };
    return dit_quantize_fp8 (m->be, &qp);
  }
  dit_gemm_fp8_params p = { .x = in->x8, .x_scale = in->x8s,
    .x_block = DIT_FP8_BLOCK, .w = l->w, .w_scale = l->w_scale, .bias = bias,
    .y = y8 ? y8 : y, .y_scale = y8s, .y_block = DIT_FP8_BLOCK, .act = act,
    .scratch = scratch };
  return dit_gemm_fp8 (m->be, &p);
}

static dit_status
layernorm (dit_model *m, const dit_tensor *x, const dit_tensor *w,
    const dit_tensor *b, dit_tensor *y)
{
  dit_layernorm_params p = { .x = x, .weight = w, .bias = b, .y = y,
    .eps = m->cfg.eps };
  return dit_layernorm (m->be, &p);
}

static dit_status
rmsnorm (dit_model *m, dit_tensor *x, const dit_tensor *w)
{
  dit_rmsnorm_params p = { .x = x, .weight = w, .y = x, .eps = m->cfg.eps };
  return dit_rmsnorm (m->be, &p);
}

/* In-place sum over the tensor-parallel group of a contiguous buffer.
 * slot >= 0: issued beside the compute on `slot` (overlap), the sum is
 * there after tp_wait (slot); slot < 0, or a group without a start entry:
 * done when this returns. */
static dit_status
tp_allreduce (dit_model *m, dit_tensor *t, int slot)
{
  dit_status st = slot >= 0 && m->allreduce_start
      ? m->allreduce_start (m->allreduce_user, t->data, dit_tensor_numel (t),
          t->dtype, slot)
      : m->allreduce (m->allreduce_user, t->data, dit_tensor_numel (t),
          t->dtype);
  if (st != DIT_OK)
    return dit_error_prefix (st, "tensor-parallel all-reduce (rank %d of %d)",
        m->tp_rank, m->tp_degree);
  return DIT_OK;
}

static dit_status
comm_wait (dit_model *m, void *user, int slot)
{
  if (!m->comm_wait)
    return DIT_OK;
  dit_status st = m->comm_wait (user, slot);
  if (st != DIT_OK)
    return dit_error_prefix (st, "waiting for a collective (TP rank %d of %d, "
        "SP rank %d of %d)", m->tp_rank, m->tp_degree, m->sp_rank,
        m->sp_degree);
  return DIT_OK;
}

static dit_status
tp_wait (dit_model *m, int slot)
{
  return comm_wait (m, m->allreduce_user, slot);
}

/* The full-width q/k RMSNorm of a and (optionally) b.  At TP > 1 each rank
 * holds D/tp columns: partial sums of squares of both go through one
 * all-reduce (norm_qk_stats), then each rank normalises its columns by the
 * full-width statistic (norm_qk_apply); overlap puts the v projection
 * between the two. */
static dit_status
norm_qk_stats (dit_model *m, const dit_tensor *a, const dit_tensor *b,
    int slot)
{
  if (m->tp_degree == 1)
    return DIT_OK;
  const int64_t ra = a->shape[0], rb = b ? b->shape[0] : 0;
  float *ss = m->sumsq.data;
  dit_tensor ssa = dit_tensor_1d (ss, DIT_F32, m->sumsq.device, ra);
  dit_tensor ssb = dit_tensor_1d (ss + ra, DIT_F32, m->sumsq.device, rb);
  dit_tensor all = dit_tensor_1d (ss, DIT_F32, m->sumsq.device, ra + rb);
  dit_rmsnorm_sumsq_params pa = { .x = a, .sumsq = &ssa };
  DIT_TRY (dit_rmsnorm_sumsq (m->be, &pa));
  if (b) {
    dit_rmsnorm_sumsq_params pb = { .x = b, .sumsq = &ssb };
    DIT_TRY (dit_rmsnorm_sumsq (m->be, &pb));
  }
  /* slot >= 0: started for overlap, norm_qk_apply follows a tp_wait */
  return tp_allreduce (m, &all, slot);
}

/* The second half of norm_qk: each rank normalises its columns by the
 * full-width statistic norm_qk_stats made (TP 1: the plain RMSNorm). */
static dit_status
norm_qk_apply (dit_model *m, dit_tensor *a, const dit_tensor *wa,
    dit_tensor *b, const dit_tensor *wb)
{
  if (m->tp_degree == 1) {
    DIT_TRY (rmsnorm (m, a, wa));
    return b ? rmsnorm (m, b, wb) : DIT_OK;
  }
  const int64_t ra = a->shape[0], rb = b ? b->shape[0] : 0;
  float *ss = m->sumsq.data;
  dit_tensor ssa = dit_tensor_1d (ss, DIT_F32, m->sumsq.device, ra);
  dit_tensor ssb = dit_tensor_1d (ss + ra, DIT_F32, m->sumsq.device, rb);
  dit_rmsnorm_apply_params qa = { .x = a, .sumsq = &ssa, .weight = wa, .y = a,
    .total_cols = m->cfg.dim, .eps = m->cfg.eps };
  DIT_TRY (dit_rmsnorm_apply (m->be, &qa));
  if (!b)
    return DIT_OK;
  dit_rmsnorm_apply_params qb = { .x = b, .sumsq = &ssb, .weight = wb, .y = b,
    .total_cols = m->cfg.dim, .eps = m->cfg.eps };
  return dit_rmsnorm_apply (m->be, &qb);
}

static dit_status
norm_qk (dit_model *m, dit_tensor *a, const dit_tensor *wa, dit_tensor *b,
    const dit_tensor *wb)
{
  DIT_TRY (norm_qk_stats (m, a, b, -1));
  return norm_qk_apply (m, a, wa, b, wb);
}

/* A row-parallel linear (o, cross o, FFN-down): at TP > 1 the local GEMM
 * gives a partial sum, the all-reduce the full product, and the bias is
 * added once after it. */
static dit_status
linear_rowpar (dit_model *m, const dit_act_in *x, const dit_linear *l,
    dit_tensor *y)
{
  if (m->tp_degree == 1)
    return linear_any (m, x, l, l->b, y, NULL, NULL, NULL, DIT_ACT_NONE);
  DIT_TRY (linear_any (m, x, l, NULL, y, NULL, NULL, NULL, DIT_ACT_NONE));
  DIT_TRY (tp_allreduce (m, y, -1));
  if (!l->b)
    return DIT_OK;
  dit_add_params ap = { .a = y, .b = l->b, .y = y };
  return dit_add (m->be, &ap);
}

static dit_status
modulate (dit_model *m, dit_tensor *h, const dit_tensor *shift,
    const dit_tensor *scale)
{
  dit_modulate_params p = { .x = h, .shift = shift, .scale = scale, .y = h,
    .rows_per_group = m->mod_rows };
  return dit_modulate (m->be, &p);
}

static dit_status
residual (dit_model *m, dit_tensor *x, const dit_tensor *y, const dit_tensor *gate)
{
  dit_residual_params p = { .x = x, .y = y, .gate = gate,
    .rows_per_group = m->mod_rows };
  return dit_residual (m->be, &p);
}

static dit_status
rope (dit_model *m, dit_tensor *x, int64_t frames, int frame_offset)
{
  dit_rope_params p = { .x = x, .cos = &m->rope_cos, .sin = &m->rope_sin,
    .heads = m->attn_heads, .grid_f = frames, .grid_h = m->grid_h,
    .grid_w = m->grid_w, .frame_offset = frame_offset };
  return dit_rope (m->be, &p);
}

/* ---- fused chains --------------------------------------------------------
 * Where the backend has a fused op (kernels/dit_ops.h, "fused ops") it runs
 * in place of the chain below it; the fused ops keep the chain's
 * intermediate rounding (the q/k one differs from the chain in the last bit
 * of some elements, tests/gpu/test_cuda_fused.c).  The CPU reference has
 * none, so its path is the unfused chain. */

static int
have_fused (dit_model *m, dit_op op)
{
  return !m->no_fused && dit_backend_supports (m->be, op, m->dtype);
}

/* h = LN(x) * (1 + scale) + shift, per frame. */
static dit_status
layernorm_modulate (dit_model *m, const dit_tensor *x, dit_tensor *h,
    const dit_tensor *shift, const dit_tensor *scale)
{
  if (have_fused (m, DIT_OP_LAYERNORM_MODULATE)) {
    dit_layernorm_modulate_params p = { .x = x, .shift = shift,
      .scale = scale, .y = h, .rows_per_group = m->mod_rows, .eps = m->cfg.eps };
    return dit_layernorm_modulate (m->be, &p);
  }
  DIT_TRY (layernorm (m, x, NULL, NULL, h));
  return modulate (m, h, shift, scale);
}

/* Self-attention q and k: full-width RMSNorm, then RoPE, in place. */
static dit_status
norm_rope_qk (dit_model *m, const dit_block_weights *b, dit_tensor *q,
    dit_tensor *k, int64_t frames, int frame_offset)
{
  if (m->tp_degree == 1 && m->sp_degree == 1
      && have_fused (m, DIT_OP_QK_NORM_ROPE)) {
    dit_qk_norm_rope_params p = { .x = q, .weight = b->s_norm_q,
      .cos = &m->rope_cos, .sin = &m->rope_sin, .heads = m->heads_local,
      .grid_f = frames, .grid_h = m->grid_h, .grid_w = m->grid_w,
      .frame_offset = frame_offset, .eps = m->cfg.eps };
    DIT_TRY (dit_qk_norm_rope (m->be, &p));
    p.x = k;
    p.weight = b->s_norm_k;
    return dit_qk_norm_rope (m->be, &p);
  }
  DIT_TRY (norm_qk (m, q, b->s_norm_q, k, b->s_norm_k));
  DIT_TRY (rope (m, q, frames, frame_offset));
  return rope (m, k, frames, frame_offset);
}

void
dit_model_set_fused (dit_model *m, int enable)
{
  m->no_fused = !enable;
}

void
dit_model_set_gemm_fold (dit_model *m, int enable)
{
  m->no_gemm_fold = !enable;
}

/* Overlap at TP > 1 (dit_model_tp.overlap): the row-parallel product in
 * two halves of whole modulation groups.  GEMM and all-reduce of half 0,
 * GEMM of half 1 (under half 0's all-reduce where the comm runs beside the
 * compute), all-reduce of half 1, then bias and residual of half 0 (under
 * half 1's all-reduce) and of half 1.  The ops are linear_rowpar's and
 * residual's on row slices: a GEMM row depends on that row only, so the
 * result equals the unsplit path. */
static dit_status
linear_residual_halves (dit_model *m, const dit_act_in *h, const dit_linear *l,
    dit_tensor *x, const dit_tensor *gate, dit_tensor *proj)
{
  const int64_t L = x->shape[0], groups = L / m->mod_rows;
  const int64_t g[3] = { 0, groups / 2, groups };
  dit_tensor part[2];
  for (int i = 0; i < 2; i++) {
    const int64_t r0 = g[i] * m->mod_rows, rows = (g[i + 1] - g[i]) * m->mod_rows;
    dit_tensor hx = dit_tensor_rows (h->x, r0, rows);
    dit_act_in in = { .x = &hx, .spare = h->spare };
    part[i] = dit_tensor_rows (proj, r0, rows);
    DIT_TRY (linear_any (m, &in, l, NULL, &part[i], NULL, NULL, NULL,
        DIT_ACT_NONE));
    DIT_TRY (tp_allreduce (m, &part[i], i));
  }
  for (int i = 0; i < 2; i++) {
    const int64_t r0 = g[i] * m->mod_rows;
    DIT_TRY (tp_wait (m, i));
    if (l->b) {
      dit_add_params ap = { .a = &part[i], .b = l->b, .y = &part[i] };
      DIT_TRY (dit_add (m->be, &ap));
    }
    dit_tensor xi = dit_tensor_rows (x, r0, part[i].shape[0]);
    dit_tensor gi = gate ? dit_tensor_rows (gate, g[i], g[i + 1] - g[i]) : xi;
    DIT_TRY (residual (m, &xi, &part[i], gate ? &gi : NULL));
  }
  return DIT_OK;
}

/* x += gate ⊙ (h Wᵀ + b) for a residual branch's last linear (gate NULL:
 * plain x += h Wᵀ + b): one GEMM accumulating into the f32 residual stream
 * with the gate in its epilogue; `proj` is the scratch a backend may need
 * for the gate.  At TP > 1 (the product must be all-reduced first) or with
 * the fold off: the product into proj, then the residual pass. */
static dit_status
linear_residual (dit_model *m, const dit_act_in *h, const dit_linear *l,
    dit_tensor *x, const dit_tensor *gate, dit_tensor *proj)
{
  /* FP8 inputs keep their block scales column-major ([cols / 128, rows]),
   * so they are not cut by rows: those layers run unsplit */
  if (m->overlap && m->tp_degree > 1 && !l->w_scale
      && x->shape[0] % m->mod_rows == 0 && x->shape[0] / m->mod_rows >= 2)
    return linear_residual_halves (m, h, l, x, gate, proj);
  if (m->tp_degree > 1 || m->no_gemm_fold) {
    DIT_TRY (linear_rowpar (m, h, l, proj));
    return residual (m, x, proj, gate);
  }
  if (l->w_scale) {
    dit_gemm_fp8_params p = { .x = h->x8, .x_scale = h->x8s,
      .x_block = DIT_FP8_BLOCK, .w = l->w, .w_scale = l->w_scale,
      .bias = l->b, .y = x, .act = DIT_ACT_NONE, .scratch = proj,
      .accumulate = 1, .gate = gate, .rows_per_group = m->mod_rows };
    return dit_gemm_fp8 (m->be, &p);
  }
  dit_tensor xcat;
  dit_gemm_params p = { .x = h->x, .w = l->w, .bias = l->b, .y = x,
    .act = DIT_ACT_NONE, .accumulate = 1, .gate = gate,
    .rows_per_group = m->mod_rows, .scratch = proj };
  const int fold = lora_folds (l, h->spare);
  if (fold) {
    DIT_TRY (lora_fold (m, h->x, l, &xcat));
    p.x = &xcat;
    p.w = &l->lora->w_cat;
  }
  DIT_TRY (dit_gemm (m->be, &p));
  /* side path: x += gate ⊙ (s·u Bᵀ), the f32 stream takes the low-rank
   * term as a second accumulating GEMM (one rounding of x apart from a
   * merge) */
  return lora_on (l) && !fold ? lora_side (m, h->x, l, x, 1, gate, proj)
      : DIT_OK;
}

/* Row k (0..5) of block `layer`'s per-frame modulation as an [F, D] view of
 * the all-block table [F, layers, 6D]. */
static dit_tensor
mod_row (const dit_model *m, int layer, int64_t frames, int k)
{
  const int64_t D = m->cfg.dim;
  dit_tensor v = dit_tensor_rows (&m->mod, 0, frames);
  return dit_tensor_cols (&v, ((int64_t) layer * 6 + k) * D, D);
}

/* ---- prompt ------------------------------------------------------------- */

static dit_status compute_context (dit_model *m);

dit_status
dit_model_set_context (dit_model *m, const dit_tensor *embeds)
{
  const dit_model_config *c = &m->cfg;
  if (embeds->ndim != 2 || embeds->shape[1] != c->text_dim)
    return dit_error (DIT_ERR_INVALID,
        "prompt embeddings must be [rows, %d] for model '%s' (got %d-D, last dim %lld)",
        c->text_dim, c->name, embeds->ndim,
        (long long) embeds->shape[embeds->ndim - 1]);
  if (embeds->shape[0] > c->text_len)
    return dit_error (DIT_ERR_INVALID,
        "prompt embeddings have %lld rows; at most %d are allowed",
        (long long) embeds->shape[0], c->text_len);

  m->have_context = 0;
  m->context_set = 0;
  /* Zero-pad to text_len rows (the padded rows are attended, spec §2.2(3)). */
  DIT_TRY (dit_memset_zero (m->be, m->ctx_raw.data,
      dit_tensor_nbytes (&m->ctx_raw)));
  if (embeds->shape[0] > 0) {
    dit_tensor dst = dit_tensor_rows (&m->ctx_raw, 0, embeds->shape[0]);
    if (embeds->device == dit_backend_device (m->be)) {
      dit_copy_params cp = { .x = embeds, .y = &dst };
      DIT_TRY (dit_copy (m->be, &cp));
    } else {
      /* Host embeddings on a device backend: convert on the host, upload. */
      size_t n = (size_t) dit_tensor_numel (embeds);
      void *tmp = malloc (n * dit_dtype_size (m->dtype));
      if (!tmp)
        return dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
      if (!dit_tensor_is_contiguous (embeds)) {
        free (tmp);
        return dit_error (DIT_ERR_INVALID, "prompt embeddings must be contiguous");
      }
      dit_convert (tmp, m->dtype, embeds->data, embeds->dtype, n);
      dit_status st = dit_upload (m->be, dst.data, tmp,
          n * dit_dtype_size (m->dtype));
      free (tmp);
      DIT_TRY (st);
    }
  }
  m->context_set = 1;
  return compute_context (m);
}

/* The text embedding and every layer's cross-attention K/V from ctx_raw
 * (the padded prompt): at a prompt, and again when a LoRA changed the
 * layers they go through. */
static dit_status
compute_context (dit_model *m)
{
  m->have_context = 0;
  DIT_TRY (linear (m, &m->ctx_raw, &m->text0, &m->ctx_hidden, DIT_ACT_GELU_TANH));
  DIT_TRY (linear (m, &m->ctx_hidden, &m->text2, &m->ctx, DIT_ACT_NONE));
  for (int i = 0; i < m->cfg.num_layers; i++) {
    const dit_block_weights *b = &m->blocks[i];
    DIT_TRY (linear (m, &m->ctx, &b->ck, &m->cross_k[i], DIT_ACT_NONE));
    DIT_TRY (norm_qk (m, &m->cross_k[i], b->c_norm_k, NULL, NULL));
    DIT_TRY (linear (m, &m->ctx, &b->cv, &m->cross_v[i], DIT_ACT_NONE));
  }
  m->have_context = 1;
  return DIT_OK;
}

/* ---- forward ------------------------------------------------------------ */

static dit_status
time_embedding (dit_model *m, const double *t, int64_t frames)
{
  const int64_t D = m->cfg.dim;
  dit_tensor tsin = dit_tensor_rows (&m->tsin, 0, frames);
  dit_tensor th = dit_tensor_rows (&m->temb_h, 0, frames);
  dit_tensor e = dit_tensor_rows (&m->e, 0, frames);
  dit_tensor es = dit_tensor_rows (&m->e_silu, 0, frames);
  dit_tensor e0 = dit_tensor_rows (&m->e0, 0, frames);
  dit_timestep_params tp = { .t = t, .n = frames, .y = &tsin };
  DIT_TRY (dit_timestep (m->be, &tp));
  DIT_TRY (linear (m, &tsin, &m->time0, &th, DIT_ACT_SILU));
  DIT_TRY (linear (m, &th, &m->time2, &e, DIT_ACT_NONE));
  dit_unary_params up = { .x = &e, .y = &es, .act = DIT_ACT_SILU };
  DIT_TRY (dit_unary (m->be, &up));
  DIT_TRY (linear (m, &es, &m->tproj, &e0, DIT_ACT_NONE));

  /* mod[f, l] = e0[f] + modulation_l for every block: e0 broadcast over
   * the blocks (a stride-0 view), then the packed modulation table added
   * along each frame's rows */
  const int64_t layers = m->cfg.num_layers;
  dit_tensor mod = dit_tensor_rows (&m->mod, 0, frames);
  int64_t bshape[3] = { frames, layers, 6 * D };
  dit_tensor e0b = dit_tensor_make (e0.data, DIT_F32, e0.device, 3, bshape);
  e0b.stride[0] = e0.stride[0];
  e0b.stride[1] = 0;
  e0b.stride[2] = 1;
  dit_tensor mod3 = dit_tensor_make (mod.data, DIT_F32, mod.device, 3, bshape);
  dit_copy_params bc = { .x = &e0b, .y = &mod3 };
  DIT_TRY (dit_copy (m->be, &bc));
  dit_tensor modf = flat_view (&mod), tab = flat_view (&m->mod_table);
  dit_add_params ma = { .a = &modf, .b = &tab, .y = &modf };
  DIT_TRY (dit_add (m->be, &ma));

  /* Head modulation: head.modulation[k] + e (per frame), k = shift, scale. */
  dit_tensor hm0 = dit_tensor_rows (&m->head_modulation, 0, D);
  dit_tensor hm1 = dit_tensor_rows (&m->head_modulation, D, D);
  dit_tensor hs = dit_tensor_rows (&m->head_shift, 0, frames);
  dit_tensor hc = dit_tensor_rows (&m->head_scale, 0, frames);
  dit_tensor ef = flat_view (&e), hsf = flat_view (&hs), hcf = flat_view (&hc);
  dit_add_params a0 = { .a = &ef, .b = &hm0, .y = &hsf };
  dit_add_params a1 = { .a = &ef, .b = &hm1, .y = &hcf };
  DIT_TRY (dit_add (m->be, &a0));
  return dit_add (m->be, &a1);
}

/* LayerNorm (optional affine, optional modulate) of x into what the
 * consumers of `ls` (1-3 linears) read: FP8 codes in h8 for the FP8 ones,
 * the compute dtype in h for the others. */
static dit_status
norm_into (dit_model *m, const dit_tensor *x, const dit_tensor *nw,
    const dit_tensor *nb, const dit_tensor *shift, const dit_tensor *scale,
    const dit_linear *const *ls, int n, dit_tensor *h, dit_tensor *h8,
    dit_tensor *h8s, dit_act_in *in)
{
  int need8 = 0, need16 = 0;
  for (int i = 0; i < n; i++) {
    need8 |= ls[i]->w_scale != NULL;
    need16 |= ls[i]->w_scale == NULL;
  }
  in->x = h;
  in->x8 = in->x8s = NULL;
  in->spare = m->lora_spare;
  if (need16) {
    if (shift)
      DIT_TRY (layernorm_modulate (m, x, h, shift, scale));
    else
      DIT_TRY (layernorm (m, x, nw, nb, h));
  }
  if (!need8)
    return DIT_OK;
  dit_layernorm_fp8_params p = { .x = x, .weight = nw, .bias = nb,
    .shift = shift, .scale = scale, .rows_per_group = m->mod_rows, .eps = m->cfg.eps,
    .y = h8, .y_scale = h8s, .block = DIT_FP8_BLOCK };
  in->x8 = h8;
  in->x8s = h8s;
  return dit_layernorm_fp8 (m->be, &p);
}

/* ---- sequence parallelism: the token <-> head exchange -------------------
 * A token-sharded tensor t [Ls, W] (W = heads_local * head_dim) splits its
 * columns in sp blocks of Wa = W / sp (member j's heads); the all-to-all
 * sends block j to member j, which stacks the blocks it receives in member
 * order: rows of member 0's tokens, then member 1's, ... = [L, Wa] in global
 * token order, written straight into `dst` (the q buffer or this chunk's
 * rows of the KV cache).  The way back is the same exchange reversed. */

/* slot >= 0: issued beside the compute on `slot` (overlap), the data is
 * there after sp_wait (slot); slot < 0, or a group without a start entry:
 * done when this returns. */
static dit_status
sp_exchange (dit_model *m, const void *send, void *recv, size_t block,
    int slot)
{
  dit_status st = slot >= 0 && m->alltoall_start
      ? m->alltoall_start (m->alltoall_user, send, recv, block, slot)
      : m->alltoall (m->alltoall_user, send, recv, block);
  if (st != DIT_OK)
    return dit_error_prefix (st, "sequence-parallel all-to-all (rank %d of %d)",
        m->sp_rank, m->sp_degree);
  return DIT_OK;
}

static dit_status
sp_wait (dit_model *m, int slot)
{
  return comm_wait (m, m->alltoall_user, slot);
}

/* [S, Ls, w] view of columns [c0, c0 + w) of each of the S column blocks
 * of a [Ls, W] tensor (block j = columns [j W/S, (j+1) W/S)). */
static dit_tensor
sp_blocks_part (const dit_tensor *t, int sp, int64_t c0, int64_t w)
{
  const int64_t Ls = t->shape[0], Wa = t->shape[1] / sp;
  int64_t shape[3] = { sp, Ls, w };
  dit_tensor v = dit_tensor_make ((char *) t->data
      + (size_t) c0 * dit_dtype_size (t->dtype), t->dtype, t->device, 3, shape);
  v.stride[0] = Wa;
  v.stride[1] = t->stride[0];
  v.stride[2] = 1;
  return v;
}

/* [S, Ls, Wa] view of a [Ls, W] tensor's column blocks. */
static dit_tensor
sp_blocks (const dit_tensor *t, int sp)
{
  return sp_blocks_part (t, sp, 0, t->shape[1] / sp);
}

/* tok's column blocks packed at `pack` (model-dtype memory of
 * numel(tok) elements), exchanged into dst (slot >= 0: started for
 * overlap, sp_wait (slot) follows). */
static dit_status
sp_to_heads_via (dit_model *m, const dit_tensor *tok, dit_tensor *dst,
    void *pack_data, int slot)
{
  dit_tensor src = sp_blocks (tok, m->sp_degree);
  int64_t shape[3] = { m->sp_degree, tok->shape[0], tok->shape[1] / m->sp_degree };
  dit_tensor pack = dit_tensor_make (pack_data, tok->dtype, tok->device, 3,
      shape);
  dit_copy_params cp = { .x = &src, .y = &pack };
  DIT_TRY (dit_copy (m->be, &cp));
  const size_t block = (size_t) dit_tensor_numel (&pack)
      / (size_t) m->sp_degree * dit_dtype_size (tok->dtype);
  return sp_exchange (m, pack.data, dst->data, block, slot);
}

static dit_status
sp_to_heads (dit_model *m, const dit_tensor *tok, dit_tensor *dst)
{
  return sp_to_heads_via (m, tok, dst, m->sp_pack.data, -1);
}

/* The way back: heads [L, w] (contiguous: the attention output of w
 * columns of this rank's head block) exchanged to pack_data, which then
 * holds [S, Ls, w]: member j's heads of this rank's tokens. */
static dit_status
sp_heads_exchange (dit_model *m, const dit_tensor *heads, int64_t Ls,
    int64_t w, void *pack_data, int slot)
{
  const size_t block = (size_t) (Ls * w) * dit_dtype_size (heads->dtype);
  return sp_exchange (m, heads->data, pack_data, block, slot);
}

/* ... and copied into columns [c0, c0 + w) of each member's block of tok
 * [Ls, W]. */
static dit_status
sp_unpack_tokens (dit_model *m, const void *pack_data, dit_tensor *tok,
    int64_t c0, int64_t w)
{
  int64_t shape[3] = { m->sp_degree, tok->shape[0], w };
  dit_tensor pack = dit_tensor_make ((void *) pack_data, tok->dtype,
      tok->device, 3, shape);
  dit_tensor dst = sp_blocks_part (tok, m->sp_degree, c0, w);
  dit_copy_params cp = { .x = &pack, .y = &dst };
  return dit_copy (m->be, &cp);
}

static dit_status
sp_to_tokens (dit_model *m, const dit_tensor *heads, dit_tensor *tok)
{
  const int64_t Wa = tok->shape[1] / m->sp_degree;
  DIT_TRY (sp_heads_exchange (m, heads, tok->shape[0], Wa, m->sp_pack.data,
      -1));
  return sp_unpack_tokens (m, m->sp_pack.data, tok, 0, Wa);
}

/* Every rank's rows of `mine` [Ls, W] (this rank's) into all [L, W] (f32,
 * the head's output): the all-to-all of sp copies of this rank's rows. */
static dit_status
sp_gather_rows (dit_model *m, const dit_tensor *mine, dit_tensor *all)
{
  int64_t shape[3] = { m->sp_degree, mine->shape[0], mine->shape[1] };
  dit_tensor rep = dit_tensor_make (mine->data, mine->dtype, mine->device, 3,
      shape);
  rep.stride[0] = 0;
  rep.stride[1] = mine->stride[0];
  rep.stride[2] = 1;
  dit_tensor pack = dit_tensor_make (m->sp_pack.data, mine->dtype,
      mine->device, 3, shape);
  dit_copy_params cp = { .x = &rep, .y = &pack };
  DIT_TRY (dit_copy (m->be, &cp));
  return sp_exchange (m, pack.data, all->data,
      (size_t) dit_tensor_numel (mine) * dit_dtype_size (mine->dtype), -1);
}

/* Self-attention of `heads` heads of q over k and v into o (o_scale: the
 * scales of an FP8 o, else NULL) with the forward's attention bias, causal
 * blocks and query position: the one set of parameters the plain and both
 * sequence-parallel paths must agree on. */
static dit_status
self_attention (dit_model *m, const dit_forward_args *a, const dit_tensor *q,
    const dit_tensor *k, const dit_tensor *v, dit_tensor *o,
    dit_tensor *o_scale, int heads)
{
  const int hd = m->cfg.head_dim;
  dit_attn_params p = { .q = q, .k = k, .v = v, .o = o, .o_scale = o_scale,
    .heads = heads, .head_dim = hd, .scale = 1.0f / sqrtf ((float) hd),
    .bias_begin = a->bias_begin, .bias_end = a->bias_end,
    .log_bias = a->log_bias, .causal_block = a->causal_block,
    .q_pos0 = a->cache_row };
  return dit_attention (m->be, &p);
}

/* Self-attention at sp > 1: q, k, v of this rank's tokens (full-width
 * RMSNorm before the exchange, RoPE after it on all L tokens, so the
 * positions are the global ones), attention on attn_heads heads, output
 * back to this rank's tokens in `attn` [Ls, Dl]. */
static dit_status
sp_self_attention (dit_model *m, const dit_block_weights *b, int layer,
    const dit_forward_args *a, int64_t frames, const dit_act_in *in,
    dit_tensor *attn)
{
  const int64_t Ls = attn->shape[0], L = Ls * m->sp_degree, Da = m->attn_dim;
  const int64_t nkeys = a->cache_row + L;
  dit_tensor tok = dit_tensor_2d (m->sp_tok.data, m->dtype, m->sp_tok.device,
      Ls, m->dim_local);
  dit_tensor qh = dit_tensor_2d (m->q.data, m->dtype, m->q.device, L, Da);
  dit_tensor knew = dit_tensor_rows (&m->cache_k[layer], a->cache_row, L);
  dit_tensor vnew = dit_tensor_rows (&m->cache_v[layer], a->cache_row, L);
  dit_tensor kall = dit_tensor_rows (&m->cache_k[layer], 0, nkeys);
  dit_tensor vall = dit_tensor_rows (&m->cache_v[layer], 0, nkeys);

  DIT_TRY (linear_any (m, in, &b->sq, b->sq.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (norm_qk (m, &tok, b->s_norm_q, NULL, NULL));
  DIT_TRY (sp_to_heads (m, &tok, &qh));
  DIT_TRY (linear_any (m, in, &b->sk, b->sk.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (norm_qk (m, &tok, b->s_norm_k, NULL, NULL));
  DIT_TRY (sp_to_heads (m, &tok, &knew));
  DIT_TRY (linear_any (m, in, &b->sv, b->sv.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (sp_to_heads (m, &tok, &vnew));
  DIT_TRY (rope (m, &qh, frames, a->frame_offset));
  DIT_TRY (rope (m, &knew, frames, a->frame_offset));
  /* the output in sp_tok as [L, Da] (q/k/v are consumed) */
  dit_tensor oh = dit_tensor_2d (m->sp_tok.data, m->dtype, m->sp_tok.device,
      L, Da);
  DIT_TRY (self_attention (m, a, &qh, &kall, &vall, &oh, NULL,
      m->attn_heads));
  return sp_to_tokens (m, &oh, attn);
}

/* sp_self_attention in the overlapped order (dit_model_tp.overlap): k and
 * v are projected and sent first, so their exchanges run under the q
 * projection; self-attention runs in two halves of the heads, the first
 * half's output exchange under the second half's attention.  Every
 * exchange has buffers of its own while the next one is issued: k and v
 * packed in the two halves of sp_pack's first 2 Ls Dl elements, q in the
 * attn buffer (free until the output returns), the two output halves in
 * sp_tok and received in sp_pack.  Same ops on the same data as
 * sp_self_attention. */
static dit_status
sp_self_attention_overlap (dit_model *m, const dit_block_weights *b,
    int layer, const dit_forward_args *a, int64_t frames, const dit_act_in *in,
    dit_tensor *attn)
{
  const dit_model_config *c = &m->cfg;
  const int64_t Ls = attn->shape[0], L = Ls * m->sp_degree, Da = m->attn_dim;
  const int64_t Dl = m->dim_local, nkeys = a->cache_row + L;
  const size_t es = dit_dtype_size (m->dtype);
  char *pack = m->sp_pack.data;
  dit_tensor tok = dit_tensor_2d (m->sp_tok.data, m->dtype, m->sp_tok.device,
      Ls, Dl);
  dit_tensor qh = dit_tensor_2d (m->q.data, m->dtype, m->q.device, L, Da);
  dit_tensor knew = dit_tensor_rows (&m->cache_k[layer], a->cache_row, L);
  dit_tensor vnew = dit_tensor_rows (&m->cache_v[layer], a->cache_row, L);
  dit_tensor kall = dit_tensor_rows (&m->cache_k[layer], 0, nkeys);
  dit_tensor vall = dit_tensor_rows (&m->cache_v[layer], 0, nkeys);

  /* slots: 0 k, 1 v, 2 q; then 0 and 1 the output halves */
  DIT_TRY (linear_any (m, in, &b->sk, b->sk.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (norm_qk (m, &tok, b->s_norm_k, NULL, NULL));
  DIT_TRY (sp_to_heads_via (m, &tok, &knew, pack, 0));
  DIT_TRY (linear_any (m, in, &b->sv, b->sv.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (sp_to_heads_via (m, &tok, &vnew, pack + (size_t) (Ls * Dl) * es,
      1));
  DIT_TRY (linear_any (m, in, &b->sq, b->sq.b, &tok, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (norm_qk (m, &tok, b->s_norm_q, NULL, NULL));
  DIT_TRY (sp_to_heads_via (m, &tok, &qh, m->attn.data, 2));
  DIT_TRY (sp_wait (m, 0));
  DIT_TRY (rope (m, &knew, frames, a->frame_offset));
  DIT_TRY (sp_wait (m, 2));
  DIT_TRY (rope (m, &qh, frames, a->frame_offset));
  DIT_TRY (sp_wait (m, 1));

  /* heads [0, h0) then [h0, attn_heads); one half when there is one head */
  const int h0 = m->attn_heads / 2 > 0 ? m->attn_heads / 2 : m->attn_heads;
  const int hs[3] = { 0, h0, m->attn_heads };
  const int halves = h0 < m->attn_heads ? 2 : 1;
  for (int i = 0; i < halves; i++) {
    const int64_t c0 = (int64_t) hs[i] * c->head_dim;
    const int64_t w = (int64_t) (hs[i + 1] - hs[i]) * c->head_dim;
    dit_tensor qi = dit_tensor_cols (&qh, c0, w);
    dit_tensor ki = dit_tensor_cols (&kall, c0, w);
    dit_tensor vi = dit_tensor_cols (&vall, c0, w);
    dit_tensor oi = dit_tensor_2d ((char *) m->sp_tok.data
        + (size_t) (L * c0) * es, m->dtype, m->sp_tok.device, L, w);
    DIT_TRY (self_attention (m, a, &qi, &ki, &vi, &oi, NULL,
        hs[i + 1] - hs[i]));
    DIT_TRY (sp_heads_exchange (m, &oi, Ls, w, pack + (size_t) (L * c0) * es,
        i));
  }
  for (int i = 0; i < halves; i++) {
    const int64_t c0 = (int64_t) hs[i] * c->head_dim;
    const int64_t w = (int64_t) (hs[i + 1] - hs[i]) * c->head_dim;
    DIT_TRY (sp_wait (m, i));
    DIT_TRY (sp_unpack_tokens (m, pack + (size_t) (L * c0) * es, attn, c0, w));
  }
  return DIT_OK;
}

static dit_status
block_forward (dit_model *m, int layer, const dit_forward_args *a,
    int64_t frames)
{
  const dit_model_config *c = &m->cfg;
  const dit_block_weights *b = &m->blocks[layer];
  /* L: this rank's tokens (all of them unless sequence-parallel) */
  const int64_t D = c->dim, L = frames * m->fs / m->sp_degree;
  const int64_t Dl = m->dim_local, Fl = m->ffn_local;
  const int64_t nkeys = a->cache_row + L;
  /* modulation rows: frames, or at sp > 1 this rank's row groups */
  const int64_t groups = (L + m->mod_rows - 1) / m->mod_rows;

  dit_tensor x = dit_tensor_rows (&m->x, 0, L);
  dit_tensor h = dit_tensor_rows (&m->h, 0, L);
  dit_tensor q = dit_tensor_rows (&m->q, 0, L);
  dit_tensor attn = dit_tensor_rows (&m->attn, 0, L);
  dit_tensor proj = dit_tensor_rows (&m->proj, 0, L);
  dit_tensor ffn = dit_tensor_rows (&m->ffn, 0, L);
  dit_tensor knew = dit_tensor_rows (&m->cache_k[layer], a->cache_row, L);
  dit_tensor vnew = dit_tensor_rows (&m->cache_v[layer], a->cache_row, L);
  dit_tensor kall = dit_tensor_rows (&m->cache_k[layer], 0, nkeys);
  dit_tensor vall = dit_tensor_rows (&m->cache_v[layer], 0, nkeys);
  /* FP8 views (unused unless some weight is FP8) */
  dit_tensor h8 = m->fp8 ? dit_tensor_rows (&m->h8, 0, L) : h;
  dit_tensor h8s = m->fp8 ? fp8_scales (&m->h8s, L, D) : h;
  dit_tensor attn8 = m->fp8 ? dit_tensor_rows (&m->attn8, 0, L) : attn;
  dit_tensor attn8s = m->fp8 ? fp8_scales (&m->attn8s, L, Dl) : attn;
  dit_tensor ffn8 = m->ffn8.data ? dit_tensor_rows (&m->ffn8, 0, L) : ffn;
  dit_tensor ffn8s = m->ffn8.data ? fp8_scales (&m->ffn8s, L, Fl) : ffn;
  dit_act_in in;

  /* this block's modulation + e0, per frame or row group (made for all
   * blocks by time_embedding) */
  dit_tensor shift_msa = mod_row (m, layer, groups, 0);
  dit_tensor scale_msa = mod_row (m, layer, groups, 1);
  dit_tensor gate_msa = mod_row (m, layer, groups, 2);
  dit_tensor shift_mlp = mod_row (m, layer, groups, 3);
  dit_tensor scale_mlp = mod_row (m, layer, groups, 4);
  dit_tensor gate_mlp = mod_row (m, layer, groups, 5);

  /* self-attention */
  const dit_linear *qkv[3] = { &b->sq, &b->sk, &b->sv };
  DIT_TRY (norm_into (m, &x, NULL, NULL, &shift_msa, &scale_msa, qkv, 3, &h,
      &h8, &h8s, &in));
  const int so8 = b->so.w_scale != NULL;
  if (m->sp_degree > 1) {
    DIT_TRY (m->overlap
        ? sp_self_attention_overlap (m, b, layer, a, frames, &in, &attn)
        : sp_self_attention (m, b, layer, a, frames, &in, &attn));
    if (so8) {
      dit_quantize_fp8_params qp = { .x = &attn, .q = &attn8,
        .scale = &attn8s, .block = DIT_FP8_BLOCK };
      DIT_TRY (dit_quantize_fp8 (m->be, &qp));
    }
  } else {
    DIT_TRY (linear_any (m, &in, &b->sq, b->sq.b, &q, NULL, NULL, NULL,
        DIT_ACT_NONE));
    DIT_TRY (linear_any (m, &in, &b->sk, b->sk.b, &knew, NULL, NULL, NULL,
        DIT_ACT_NONE));
    if (m->overlap && m->tp_degree > 1) {
      /* the q/k statistics all-reduce runs under the v projection */
      DIT_TRY (norm_qk_stats (m, &q, &knew, 2));
      DIT_TRY (linear_any (m, &in, &b->sv, b->sv.b, &vnew, NULL, NULL, NULL,
          DIT_ACT_NONE));
      DIT_TRY (tp_wait (m, 2));
      DIT_TRY (norm_qk_apply (m, &q, b->s_norm_q, &knew, b->s_norm_k));
      DIT_TRY (rope (m, &q, frames, a->frame_offset));
      DIT_TRY (rope (m, &knew, frames, a->frame_offset));
    } else {
      DIT_TRY (linear_any (m, &in, &b->sv, b->sv.b, &vnew, NULL, NULL, NULL,
          DIT_ACT_NONE));
      DIT_TRY (norm_rope_qk (m, b, &q, &knew, frames, a->frame_offset));
    }
    DIT_TRY (self_attention (m, a, &q, &kall, &vall, so8 ? &attn8 : &attn,
        so8 ? &attn8s : NULL, m->heads_local));
  }
  dit_act_in ain = { &attn, &attn8, &attn8s, m->lora_spare };
  DIT_TRY (linear_residual (m, &ain, &b->so, &x, &gate_msa, &proj));

  /* cross-attention (no modulation, no gate) */
  const dit_linear *cq[1] = { &b->cq };
  DIT_TRY (norm_into (m, &x, b->norm3_w, b->norm3_b, NULL, NULL, cq, 1, &h,
      &h8, &h8s, &in));
  DIT_TRY (linear_any (m, &in, &b->cq, b->cq.b, &q, NULL, NULL, NULL,
      DIT_ACT_NONE));
  DIT_TRY (norm_qk (m, &q, b->c_norm_q, NULL, NULL));
  const int co8 = b->co.w_scale != NULL;
  dit_attn_params ca = { .q = &q, .k = &m->cross_k[layer],
    .v = &m->cross_v[layer], .o = co8 ? &attn8 : &attn,
    .o_scale = co8 ? &attn8s : NULL, .heads = m->heads_local,
    .head_dim = c->head_dim, .scale = 1.0f / sqrtf ((float) c->head_dim) };
  DIT_TRY (dit_attention (m->be, &ca));
  DIT_TRY (linear_residual (m, &ain, &b->co, &x, NULL, &proj));

  /* feed-forward: with an FP8 FFN-down the hidden layer is quantized where
   * FFN-up produces it */
  const dit_linear *up[1] = { &b->ffn1 };
  DIT_TRY (norm_into (m, &x, NULL, NULL, &shift_mlp, &scale_mlp, up, 1, &h,
      &h8, &h8s, &in));
  const int down8 = b->ffn2.w_scale != NULL;
  DIT_TRY (linear_any (m, &in, &b->ffn1, b->ffn1.b, &ffn,
      down8 ? &ffn8 : NULL, down8 ? &ffn8s : NULL, &ffn, DIT_ACT_GELU_TANH));
  dit_act_in fin = { &ffn, &ffn8, &ffn8s, m->lora_spare };
  return linear_residual (m, &fin, &b->ffn2, &x, &gate_mlp, &proj);
}

dit_status
dit_model_forward (dit_model *m, const dit_forward_args *a)
{
  const dit_model_config *c = &m->cfg;
  const dit_tensor *lat = a->x;
  if (!m->have_context)
    return dit_error (DIT_ERR_STATE, "dit forward: no prompt set");
  if (lat->ndim != 4 || lat->shape[0] != c->in_dim
      || lat->shape[2] != 2 * m->grid_h || lat->shape[3] != 2 * m->grid_w)
    return dit_error (DIT_ERR_INVALID,
        "dit forward: latent must be [%d, F, %d, %d] (got [%lld, %lld, %lld, %lld])",
        c->in_dim, 2 * m->grid_h, 2 * m->grid_w, (long long) lat->shape[0],
        (long long) lat->shape[1], (long long) lat->shape[2],
        (long long) lat->shape[3]);
  const int64_t frames = lat->shape[1];
  if (frames < 1 || frames > m->max_frames)
    return dit_error (DIT_ERR_INVALID,
        "dit forward: %lld frames; this model was set up for 1..%d",
        (long long) frames, m->max_frames);
  const int64_t L = frames * m->fs;
  if (a->cache_row < 0 || a->cache_row + L > m->cache_rows)
    return dit_error (DIT_ERR_INVALID,
        "dit forward: cache rows [%lld, %lld) exceed the cache of %lld rows",
        (long long) a->cache_row, (long long) (a->cache_row + L),
        (long long) m->cache_rows);
  if (a->frame_offset < 0 || a->frame_offset + frames > DIT_ROPE_POSITIONS)
    return dit_error (DIT_ERR_INVALID,
        "dit forward: RoPE frames %d..%lld exceed %d positions",
        a->frame_offset, (long long) (a->frame_offset + frames - 1),
        DIT_ROPE_POSITIONS);

  if (m->sp_degree > 1)
    DIT_TRY (dit_model_sp_check (c, m->sp_degree, m->tp_degree, &L, 1));
  int64_t row0, Ls;
  dit_model_token_rows (m, L, &row0, &Ls);

  dit_tensor tok = dit_tensor_rows (&m->tok, 0, L);
  dit_tensor mine = dit_tensor_rows (&m->tok, row0, Ls);
  dit_tensor x = dit_tensor_rows (&m->x, 0, Ls);
  dit_patchify_params pp = { .latent = lat, .tokens = &tok };
  DIT_TRY (dit_patchify (m->be, &pp));
  dit_linear patch = { .w = &m->patch_w, .b = m->patch_b };
  DIT_TRY (linear (m, &mine, &patch, &x, DIT_ACT_NONE));
  if (m->sp_degree == 1) {
    m->mod_rows = m->fs;
    DIT_TRY (time_embedding (m, a->t, frames));
  } else {
    /* one modulation row per group of rows that lies in one frame */
    m->mod_rows = sp_group_rows (m, L);
    const int64_t groups = Ls / m->mod_rows;
    double *tg = m->group_t;
    for (int64_t j = 0; j < groups; j++)
      tg[j] = a->t[(row0 + j * m->mod_rows) / m->fs];
    DIT_TRY (time_embedding (m, tg, groups));
  }

  for (int i = 0; i < c->num_layers; i++) {
    dit_status st = block_forward (m, i, a, frames);
    if (st != DIT_OK)
      return dit_error_prefix (st, "block %d", i);
  }
  if (!a->v_out)
    return DIT_OK;

  const int64_t groups = Ls / m->mod_rows;
  dit_tensor h = dit_tensor_rows (&m->h, 0, Ls);
  dit_tensor hs = dit_tensor_rows (&m->head_shift, 0, groups);
  dit_tensor hc = dit_tensor_rows (&m->head_scale, 0, groups);
  dit_tensor out = dit_tensor_rows (&m->head_out, 0, L);
  dit_tensor out_mine = dit_tensor_rows (&m->head_out, row0, Ls);
  DIT_TRY (layernorm_modulate (m, &x, &h, &hs, &hc));
  DIT_TRY (linear_spare (m, &h, m->lora_spare, &m->head, &out_mine,
      DIT_ACT_NONE));
  if (m->sp_degree > 1)
    DIT_TRY (sp_gather_rows (m, &out_mine, &out));
  dit_unpatchify_params up = { .tokens = &out, .latent = a->v_out };
  return dit_unpatchify (m->be, &up);
}

/* ---- LoRA ----------------------------------------------------------------- */

/* Every linear layer of the model with its name in the weights. */
typedef struct lora_slot {
  dit_linear *l;
  char name[64];
} lora_slot;

static int
lora_slots (dit_model *m, lora_slot *slots, int max)
{
  int n = 0;
#define SLOT(ptr, ...) do { if (n < max) { slots[n].l = (ptr);                 \
      snprintf (slots[n].name, sizeof slots[n].name, __VA_ARGS__); n++; } } while (0)
  SLOT (&m->text0, "text_embedding.0");
  SLOT (&m->text2, "text_embedding.2");
  SLOT (&m->time0, "time_embedding.0");
  SLOT (&m->time2, "time_embedding.2");
  SLOT (&m->tproj, "time_projection.1");
  SLOT (&m->head, "head.head");
  for (int i = 0; i < m->cfg.num_layers; i++) {
    dit_block_weights *b = &m->blocks[i];
    SLOT (&b->sq, "blocks.%d.self_attn.q", i);
    SLOT (&b->sk, "blocks.%d.self_attn.k", i);
    SLOT (&b->sv, "blocks.%d.self_attn.v", i);
    SLOT (&b->so, "blocks.%d.self_attn.o", i);
    SLOT (&b->cq, "blocks.%d.cross_attn.q", i);
    SLOT (&b->ck, "blocks.%d.cross_attn.k", i);
    SLOT (&b->cv, "blocks.%d.cross_attn.v", i);
    SLOT (&b->co, "blocks.%d.cross_attn.o", i);
    SLOT (&b->ffn1, "blocks.%d.ffn.0", i);
    SLOT (&b->ffn2, "blocks.%d.ffn.2", i);
  }
#undef SLOT
  return n;
}

/* h, attn and ffn made again with `spare` columns after their width. */
static dit_status
realloc_inputs (dit_model *m, int64_t spare)
{
  const int64_t L = m->fs * m->max_frames;
  dit_tensor_free (m->be, &m->h);
  dit_tensor_free (m->be, &m->attn);
  dit_tensor_free (m->be, &m->ffn);
  m->lora_spare = spare;
  DIT_TRY (alloc_wide (m, &m->h, m->dtype, L, m->cfg.dim, spare));
  DIT_TRY (alloc_wide (m, &m->attn, m->dtype, L, m->dim_local, spare));
  return alloc_wide (m, &m->ffn, m->dtype, L, m->ffn_local, spare);
}

dit_status
dit_model_set_lora (dit_model *m, const dit_lora_state *s)
{
  const int max = 6 + 10 * m->cfg.num_layers;
  lora_slot *slots = calloc ((size_t) max, sizeof *slots);
  if (!slots)
    return dit_error (DIT_ERR_NOMEM, "dit model: out of memory");
  const int n = lora_slots (m, slots, max);
  dit_status st = DIT_OK;
  for (int i = 0; i < n && st == DIT_OK; i++) {
    const dit_lora_side *sd = dit_lora_state_side (s, slots[i].name);
    if (sd && slots[i].l->w_scale)
      st = dit_error (DIT_ERR_UNSUPPORTED, "lora-mode=live runs beside "
          "16/32-bit weights; '%s' is FP8 (with dtype fp8 use lora-mode=merge, "
          "which re-quantizes the merged weights)", slots[i].name);
  }
  if (st != DIT_OK) {
    free (slots);
    return st;
  }
  /* the folded layers' u goes into spare columns of their inputs (h,
   * attn, ffn): room for the widest; the buffers are made again when that
   * changes (contiguous again without a live LoRA) */
  int64_t spare = 0;
  for (int i = 0; i < n; i++) {
    const dit_lora_side *sd = dit_lora_state_side (s, slots[i].name);
    slots[i].l->lora = sd;
    if (sd && sd->w_cat.data && sd->rank > spare)
      spare = sd->rank;
  }
  free (slots);
  char fold_msg[512] = "";
  dit_status fold_st = spare != m->lora_spare ? realloc_inputs (m, spare)
      : DIT_OK;
  if (fold_st != DIT_OK) {
    /* contiguous again (the memory just freed): the layers run their
     * side path, and the caller hears why once the rest is bound */
    snprintf (fold_msg, sizeof fold_msg, "%s", dit_last_error ());
    DIT_TRY (realloc_inputs (m, 0));
  }

  /* the side product of the widest layer for the most rows any linear
   * runs on: a chunk's tokens or the padded prompt */
  const int64_t R = dit_lora_state_max_rank (s);
  const int64_t rows = m->fs * m->max_frames > m->cfg.text_len
      ? m->fs * m->max_frames : m->cfg.text_len;
  if (R > 0 && (!m->lora_u.data || m->lora_u.shape[1] < R)) {
    dit_tensor_free (m->be, &m->lora_u);
    int64_t shape[2] = { rows, R };
    DIT_TRY (dit_tensor_alloc (m->be, &m->lora_u, m->dtype, 2, shape));
    m->lora_rows = rows;
  }
  /* what was computed from the weights before: the modulation table (a
   * merged delta may change it) and the prompt's K/V */
  DIT_TRY (copy_mod_table (m));
  if (m->context_set)
    DIT_TRY (compute_context (m));
  if (fold_st != DIT_OK)
    return dit_error (fold_st, "%s", fold_msg);
  return DIT_OK;
}
