/* dit_umt5 — umT5 encoder forward (spec §6.3) on the backend op table.
 *
 * Data flow for n tokens (D = d_model, I = heads * head_dim, F = d_ff):
 *   x [n, D] f32 = Emb[ids]                          (row copies)
 *   per layer l:
 *     y = RMS(x) * g1                                 rmsnorm
 *     q, k, v = y Wqᵀ, y Wkᵀ, y Wvᵀ                   3 GEMMs [n, I]
 *     a = softmax(q kᵀ + B_l[bucket(j - i), h]) v     attention, scale 1,
 *                                                     pos_bias = B_l
 *     x += a Woᵀ                                      GEMM, residual
 *     y = RMS(x) * g2
 *     g = GELU_tanh(y Wgateᵀ), u = y Wfc1ᵀ            2 GEMMs [n, F]
 *     h = 0; h += g ⊙ u                               residual with a
 *                                                     per-row gate
 *     x += h Wfc2ᵀ                                    GEMM, residual
 *   out = RMS(x) * g_final
 * The reference runs everything in bf16 with the RMS statistic in f32; we
 * keep the residual stream in f32 and round GEMM inputs to the weight
 * dtype, which at f32 weights makes the whole forward f32 (the reference
 * test's setting).
 *
 * Host residency (dit_umt5_create_host_resident): the weights stay in host
 * memory between prompts — each layer's tensors packed into one block
 * (page-locked where the backend has it) — and an encode uploads layer l
 * into a single device slot just before running it (stream order keeps the
 * next upload behind the layer's kernels).  The token embedding rows of the
 * prompt are gathered on the host.  Device memory: one layer's weights
 * (386 MB for umT5-XXL in bf16) instead of all of them (11.4 GB); the cost
 * is the upload of every layer per encode (9.3 GB over the host bus).
 */
#include "dit_umt5.h"

#include "dit_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct umt5_layer {
  const dit_tensor *norm1, *q, *k, *v, *o, *norm2, *gate, *fc1, *fc2, *pos;
} umt5_layer;

#define UMT5_LAYER_TENSORS 10
#define UMT5_ALIGN 256

struct dit_umt5 {
  dit_umt5_config cfg;
  dit_backend *be;
  dit_dtype dtype;
  int layer_limit;
  const dit_tensor *emb, *norm;
  umt5_layer *layers;
  /* activations for max_tokens rows */
  dit_tensor x, y, q, k, v, a, proj, g, u, h, out;
  /* host residency (see the header comment); host_layers NULL otherwise */
  void **host_layers;            /* [num_layers] packed blocks */
  size_t layer_bytes;
  void *slot;                    /* device: one packed layer */
  dit_tensor slot_t[UMT5_LAYER_TENSORS];
  umt5_layer slot_layer;         /* views of slot_t */
  void *host_emb;                /* [vocab, dim] in dtype */
  float *host_x;                 /* [max_tokens, dim] gathered rows */
  dit_tensor norm_dev;           /* the final norm weight on the device */
};

/* The tensors of a layer in packing order. */
static const dit_tensor **
umt5_layer_slot (umt5_layer *L, int i)
{
  const dit_tensor **p[UMT5_LAYER_TENSORS] = { &L->norm1, &L->q, &L->k, &L->v,
    &L->o, &L->norm2, &L->gate, &L->fc1, &L->fc2, &L->pos };
  return p[i];
}

typedef struct umt5_preset {
  const char *name;
  int vocab, dim, heads, ffn, layers;
} umt5_preset;

static const umt5_preset umt5_presets[] = {
  { "umt5-xxl", 256384, 4096, 64, 10240, 24 },
  { "tiny", 640, 64, 4, 128, 2 },
};

static void
umt5_fill (dit_umt5_config *cfg, const char *name, int vocab, int dim,
    int heads, int ffn, int layers)
{
  memset (cfg, 0, sizeof *cfg);
  snprintf (cfg->name, sizeof cfg->name, "%s", name);
  cfg->vocab = vocab;
  cfg->dim = dim;
  cfg->num_heads = heads;
  cfg->head_dim = dim / heads;
  cfg->ffn_dim = ffn;
  cfg->num_layers = layers;
  cfg->num_buckets = 32;
  cfg->max_distance = 128;
  cfg->max_tokens = 512;
  cfg->eps = 1e-6f;
}

dit_status
dit_umt5_config_preset (const char *name, dit_umt5_config *cfg)
{
  for (size_t i = 0; i < sizeof umt5_presets / sizeof umt5_presets[0]; i++) {
    const umt5_preset *p = &umt5_presets[i];
    if (strcmp (p->name, name) == 0) {
      umt5_fill (cfg, p->name, p->vocab, p->dim, p->heads, p->ffn, p->layers);
      return DIT_OK;
    }
  }
  return dit_error (DIT_ERR_INVALID, "unknown text encoder preset '%s' "
      "(known: umt5-xxl, tiny)", name);
}

static dit_status
spec_push (dit_param_spec *specs, size_t *n, const char *name, int ndim,
    int64_t a, int64_t b)
{
  dit_param_spec *s = &specs[(*n)++];
  memset (s, 0, sizeof *s);
  if (snprintf (s->name, sizeof s->name, "%s", name) >= (int) sizeof s->name)
    return dit_error (DIT_ERR_INVALID, "umt5: parameter name '%s' too long", name);
  s->ndim = ndim;
  s->shape[0] = a;
  s->shape[1] = b;
  return DIT_OK;
}

dit_status
dit_umt5_config_params (const dit_umt5_config *cfg, dit_param_spec **specs,
    size_t *count)
{
  *specs = NULL;
  *count = 0;
  if (cfg->num_layers <= 0 || cfg->dim <= 0 || cfg->num_heads <= 0
      || cfg->head_dim <= 0 || cfg->ffn_dim <= 0 || cfg->vocab <= 0)
    return dit_error (DIT_ERR_INVALID, "umt5 config '%s' has a non-positive size",
        cfg->name);
  const int64_t D = cfg->dim, I = (int64_t) cfg->num_heads * cfg->head_dim;
  const int64_t F = cfg->ffn_dim;
  size_t cap = 2 + (size_t) cfg->num_layers * 10;
  dit_param_spec *s = calloc (cap, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "umt5: out of memory");
  size_t n = 0;
  dit_status st = spec_push (s, &n, "token_embedding.weight", 2, cfg->vocab, D);
  char name[96];
  for (int l = 0; l < cfg->num_layers && st == DIT_OK; l++) {
    static const char *const attn[4] = { "q", "k", "v", "o" };
#define PUSH(ndim, a, b, ...) do { snprintf (name, sizeof name, __VA_ARGS__); \
      if (st == DIT_OK) st = spec_push (s, &n, name, ndim, a, b); } while (0)
    PUSH (1, D, 0, "blocks.%d.norm1.weight", l);
    for (int i = 0; i < 4; i++) {
      if (i < 3)
        PUSH (2, I, D, "blocks.%d.attn.%s.weight", l, attn[i]);
      else
        PUSH (2, D, I, "blocks.%d.attn.%s.weight", l, attn[i]);
    }
    PUSH (1, D, 0, "blocks.%d.norm2.weight", l);
    PUSH (2, F, D, "blocks.%d.ffn.gate.0.weight", l);
    PUSH (2, F, D, "blocks.%d.ffn.fc1.weight", l);
    PUSH (2, D, F, "blocks.%d.ffn.fc2.weight", l);
    PUSH (2, cfg->num_buckets, cfg->num_heads,
        "blocks.%d.pos_embedding.embedding.weight", l);
#undef PUSH
  }
  if (st == DIT_OK)
    st = spec_push (s, &n, "norm.weight", 1, D, 0);
  if (st != DIT_OK) {
    free (s);
    return st;
  }
  *specs = s;
  *count = n;
  return DIT_OK;
}

const char *const *
dit_umt5_config_preset_names (void)
{
  static const char *const names[] = { "umt5-xxl", "tiny", NULL };
  return names;
}

dit_status
dit_umt5_config_from_file (const char *path, dit_umt5_config *cfg)
{
  dit_safetensors *st = NULL;
  DIT_TRY (dit_safetensors_open (path, &st));
  dit_status s = dit_umt5_config_detect (st, path, cfg);
  dit_safetensors_close (st);
  return s;
}

dit_status
dit_umt5_config_detect (const dit_safetensors *st, const char *path,
    dit_umt5_config *cfg)
{
  const dit_st_tensor *emb = dit_safetensors_find (st, "token_embedding.weight");
  const dit_st_tensor *ffn = dit_safetensors_find (st, "blocks.0.ffn.fc1.weight");
  const dit_st_tensor *pos = dit_safetensors_find (st,
      "blocks.0.pos_embedding.embedding.weight");
  dit_status s = DIT_OK;
  if (!emb || !ffn || !pos || emb->ndim != 2 || ffn->ndim != 2 || pos->ndim != 2) {
    s = dit_error (DIT_ERR_FORMAT, "%s: not a umT5 encoder checkpoint (needs "
        "token_embedding.weight, blocks.0.ffn.fc1.weight and "
        "blocks.0.pos_embedding.embedding.weight, all 2-D)", path);
  } else {
    int layers = 0;
    char name[96];
    for (;; layers++) {
      snprintf (name, sizeof name, "blocks.%d.norm1.weight", layers);
      if (!dit_safetensors_find (st, name))
        break;
    }
    int heads = (int) pos->shape[1];
    if (heads <= 0 || emb->shape[1] % heads != 0 || layers == 0) {
      s = dit_error (DIT_ERR_FORMAT, "%s: d_model %lld is not a multiple of "
          "the %d heads of the position bias table (or no blocks)", path,
          (long long) emb->shape[1], heads);
    } else {
      const char *name0 = "custom";
      for (size_t i = 0; i < sizeof umt5_presets / sizeof umt5_presets[0]; i++) {
        const umt5_preset *p = &umt5_presets[i];
        if (p->vocab == emb->shape[0] && p->dim == emb->shape[1]
            && p->heads == heads && p->ffn == ffn->shape[0] && p->layers == layers)
          name0 = p->name;
      }
      umt5_fill (cfg, name0, (int) emb->shape[0], (int) emb->shape[1], heads,
          (int) ffn->shape[0], layers);
      cfg->num_buckets = (int) pos->shape[0];
    }
  }
  return s;
}

dit_status
dit_umt5_load_weights (const char *model, uint64_t seed, dit_dtype dtype,
    dit_backend *be, dit_umt5_config *cfg, dit_weights **out)
{
  char demo[4096];
  *out = NULL;
  DIT_TRY (dit_model_name_resolve (model, DIT_DEMO_TEXT, demo, sizeof demo,
          &model));
  int preset = 0;
  for (size_t i = 0; i < sizeof umt5_presets / sizeof umt5_presets[0]; i++)
    if (strcmp (model, umt5_presets[i].name) == 0)
      preset = 1;
  if (preset)
    DIT_TRY (dit_umt5_config_preset (model, cfg));
  else {
    DIT_TRY (dit_model_path_check (model, "text model",
            dit_umt5_config_preset_names ()));
    DIT_TRY (dit_umt5_config_from_file (model, cfg));
  }
  dit_param_spec *specs = NULL;
  size_t count = 0;
  DIT_TRY (dit_umt5_config_params (cfg, &specs, &count));
  return dit_load_spec_weights (model, preset, seed, dtype, be, specs, count,
      out);
}

/* ------------------------------------------------------------------------ */

void
dit_umt5_free (dit_umt5 *t)
{
  if (!t)
    return;
  dit_tensor *bufs[] = { &t->x, &t->y, &t->q, &t->k, &t->v, &t->a, &t->proj,
    &t->g, &t->u, &t->h, &t->out, &t->norm_dev };
  if (t->be)
    dit_synchronize (t->be);
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]->data)
      dit_tensor_free (t->be, bufs[i]);
  if (t->host_layers)
    for (int l = 0; l < t->cfg.num_layers; l++)
      dit_host_free (t->be, t->host_layers[l]);
  free (t->host_layers);
  if (t->slot)
    dit_backend_free (t->be, t->slot);
  free (t->host_emb);
  dit_host_free (t->be, t->host_x);
  free (t->layers);
  free (t);
}

static dit_status
umt5_alloc (dit_umt5 *t, dit_tensor *b, dit_dtype dt, int64_t cols)
{
  int64_t shape[2] = { t->cfg.max_tokens, cols };
  return dit_tensor_alloc (t->be, b, dt, 2, shape);
}

static dit_status
umt5_weight (const dit_weights *w, const char *name, const dit_tensor **out)
{
  return dit_weights_require (w, name, out);
}

static dit_status umt5_alloc_activations (dit_umt5 *t);

/* A new encoder with its weight pointers bound from w (on any backend). */
static dit_status
umt5_new (const dit_umt5_config *cfg, const dit_weights *w, dit_backend *be,
    dit_umt5 **out)
{
  *out = NULL;
  if (cfg->num_heads * cfg->head_dim <= 0 || cfg->max_tokens <= 0)
    return dit_error (DIT_ERR_INVALID, "umt5 '%s': bad heads/head_dim/max_tokens",
        cfg->name);
  dit_umt5 *t = calloc (1, sizeof *t);
  if (!t)
    return dit_error (DIT_ERR_NOMEM, "umt5: out of memory");
  t->cfg = *cfg;
  t->be = be;
  t->dtype = w->dtype;
  t->layers = calloc ((size_t) cfg->num_layers, sizeof *t->layers);
  dit_status st = t->layers ? DIT_OK
      : dit_error (DIT_ERR_NOMEM, "umt5: out of memory");
  if (st == DIT_OK)
    st = umt5_weight (w, "token_embedding.weight", &t->emb);
  if (st == DIT_OK)
    st = umt5_weight (w, "norm.weight", &t->norm);
  char name[96];
  static const char *const suffix[UMT5_LAYER_TENSORS] = { "norm1.weight",
    "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
    "norm2.weight", "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight",
    "pos_embedding.embedding.weight" };
  for (int l = 0; l < cfg->num_layers && st == DIT_OK; l++) {
    for (int i = 0; i < UMT5_LAYER_TENSORS && st == DIT_OK; i++) {
      snprintf (name, sizeof name, "blocks.%d.%s", l, suffix[i]);
      st = umt5_weight (w, name, umt5_layer_slot (&t->layers[l], i));
    }
  }
  if (st == DIT_OK && (t->emb->shape[0] != cfg->vocab
      || t->emb->shape[1] != cfg->dim))
    st = dit_error (DIT_ERR_INVALID, "umt5 '%s': token_embedding.weight is "
        "[%lld, %lld], expected [%d, %d]", cfg->name,
        (long long) t->emb->shape[0], (long long) t->emb->shape[1], cfg->vocab,
        cfg->dim);
  if (st != DIT_OK) {
    dit_umt5_free (t);
    return st;
  }
  *out = t;
  return DIT_OK;
}

dit_status
dit_umt5_create (const dit_umt5_config *cfg, const dit_weights *w,
    dit_backend *be, dit_umt5 **out)
{
  *out = NULL;
  if (!dit_backend_shares_memory (w->backend, be))
    return dit_error (DIT_ERR_INVALID, "umt5: weights live on backend '%s', "
        "the encoder was asked to run on '%s'", dit_backend_name (w->backend),
        dit_backend_name (be));
  dit_umt5 *t;
  DIT_TRY (umt5_new (cfg, w, be, &t));
  dit_status st = umt5_alloc_activations (t);
  if (st != DIT_OK) {
    dit_umt5_free (t);
    return st;
  }
  *out = t;
  return DIT_OK;
}

static size_t
umt5_align (size_t n)
{
  return (n + UMT5_ALIGN - 1) / UMT5_ALIGN * UMT5_ALIGN;
}

/* Copy tensor `src` (on its weights' backend `wb`) to host memory dst. */
static dit_status
umt5_to_host (dit_backend *wb, const dit_tensor *src, void *dst)
{
  return dit_download (wb, dst, src->data, dit_tensor_nbytes (src));
}

dit_status
dit_umt5_create_host_resident (const dit_umt5_config *cfg,
    const dit_weights *w, dit_backend *be, dit_umt5 **out)
{
  *out = NULL;
  dit_umt5 *t;
  DIT_TRY (umt5_new (cfg, w, be, &t));
  dit_backend *wb = w->backend;
  dit_status st = DIT_OK;

  /* the layout of one packed layer, the same for every layer */
  size_t off[UMT5_LAYER_TENSORS];
  t->layer_bytes = 0;
  for (int i = 0; i < UMT5_LAYER_TENSORS; i++) {
    off[i] = t->layer_bytes;
    t->layer_bytes += umt5_align (dit_tensor_nbytes (*umt5_layer_slot (
        &t->layers[0], i)));
  }
  t->host_layers = calloc ((size_t) cfg->num_layers, sizeof *t->host_layers);
  t->slot = dit_backend_alloc (be, t->layer_bytes);
  if (!t->host_layers || !t->slot)
    st = dit_error (DIT_ERR_NOMEM, "umt5: cannot allocate the %zu-byte layer "
        "slot", t->layer_bytes);
  for (int l = 0; l < cfg->num_layers && st == DIT_OK; l++) {
    t->host_layers[l] = dit_host_alloc (be, t->layer_bytes);
    if (!t->host_layers[l]) {
      st = dit_error (DIT_ERR_NOMEM, "umt5: cannot allocate %zu bytes of host "
          "memory for layer %d", t->layer_bytes, l);
      break;
    }
    for (int i = 0; i < UMT5_LAYER_TENSORS && st == DIT_OK; i++) {
      const dit_tensor *src = *umt5_layer_slot (&t->layers[l], i);
      const dit_tensor *first = *umt5_layer_slot (&t->layers[0], i);
      if (src->ndim != first->ndim || src->shape[0] != first->shape[0]
          || dit_tensor_numel (src) != dit_tensor_numel (first)
          || !dit_tensor_is_contiguous (src))
        st = dit_error (DIT_ERR_INVALID, "umt5: layer %d's tensor %d differs "
            "in shape from layer 0's (host residency packs equal layers)", l, i);
      else
        st = umt5_to_host (wb, src, (char *) t->host_layers[l] + off[i]);
    }
  }
  /* the slot's views: layer tensors at the packed offsets */
  for (int i = 0; i < UMT5_LAYER_TENSORS && st == DIT_OK; i++) {
    const dit_tensor *first = *umt5_layer_slot (&t->layers[0], i);
    t->slot_t[i] = dit_tensor_make ((char *) t->slot + off[i], first->dtype,
        dit_backend_device (be), first->ndim, first->shape);
    *umt5_layer_slot (&t->slot_layer, i) = &t->slot_t[i];
  }
  /* the token embedding and the final norm */
  if (st == DIT_OK) {
    t->host_emb = malloc (dit_tensor_nbytes (t->emb));
    t->host_x = dit_host_alloc (be, (size_t) cfg->max_tokens * cfg->dim
        * sizeof (float));
    if (!t->host_emb || !t->host_x)
      st = dit_error (DIT_ERR_NOMEM, "umt5: cannot allocate host memory for "
          "the token embedding");
  }
  if (st == DIT_OK)
    st = umt5_to_host (wb, t->emb, t->host_emb);
  if (st == DIT_OK)
    st = dit_tensor_alloc (be, &t->norm_dev, t->norm->dtype, t->norm->ndim,
        t->norm->shape);
  if (st == DIT_OK) {
    size_t nb = dit_tensor_nbytes (t->norm);
    void *tmp = malloc (nb);
    st = tmp ? umt5_to_host (wb, t->norm, tmp)
        : dit_error (DIT_ERR_NOMEM, "umt5: out of memory");
    if (st == DIT_OK)
      st = dit_upload (be, t->norm_dev.data, tmp, nb);
    if (st == DIT_OK)
      st = dit_synchronize (be);
    free (tmp);
  }
  if (st == DIT_OK)
    st = umt5_alloc_activations (t);
  /* no pointer into w survives: the caller may free it */
  t->emb = NULL;
  t->norm = &t->norm_dev;
  for (int l = 0; l < cfg->num_layers; l++)
    memset (&t->layers[l], 0, sizeof t->layers[l]);
  if (st != DIT_OK) {
    dit_umt5_free (t);
    return st;
  }
  *out = t;
  return DIT_OK;
}

size_t
dit_umt5_host_bytes (const dit_umt5 *t)
{
  if (!t->host_layers)
    return 0;
  return t->layer_bytes * (size_t) t->cfg.num_layers
      + (size_t) t->cfg.vocab * t->cfg.dim * dit_dtype_size (t->dtype);
}

static dit_status
umt5_alloc_activations (dit_umt5 *t)
{
  const dit_umt5_config *cfg = &t->cfg;
  const int64_t I = (int64_t) cfg->num_heads * cfg->head_dim;
  dit_status st = umt5_alloc (t, &t->x, DIT_F32, cfg->dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->y, t->dtype, cfg->dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->q, t->dtype, I);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->k, t->dtype, I);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->v, t->dtype, I);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->a, t->dtype, I);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->proj, t->dtype, cfg->dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->g, t->dtype, cfg->ffn_dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->u, t->dtype, cfg->ffn_dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->h, t->dtype, cfg->ffn_dim);
  if (st == DIT_OK)
    st = umt5_alloc (t, &t->out, DIT_F32, cfg->dim);
  return st;
}

void
dit_umt5_set_layer_limit (dit_umt5 *t, int num_layers)
{
  t->layer_limit = num_layers;
}

static dit_status
umt5_linear (dit_umt5 *t, const dit_tensor *x, const dit_tensor *w,
    dit_tensor *y, dit_act act)
{
  dit_gemm_params p = { .x = x, .w = w, .y = y, .act = act };
  return dit_gemm (t->be, &p);
}

static dit_status
umt5_rmsnorm (dit_umt5 *t, const dit_tensor *x, const dit_tensor *w,
    dit_tensor *y)
{
  dit_rmsnorm_params p = { .x = x, .weight = w, .y = y, .eps = t->cfg.eps };
  return dit_rmsnorm (t->be, &p);
}

static dit_status
umt5_residual (dit_umt5 *t, dit_tensor *x, const dit_tensor *y,
    const dit_tensor *gate)
{
  dit_residual_params p = { .x = x, .y = y, .gate = gate, .rows_per_group = 1 };
  return dit_residual (t->be, &p);
}

static dit_status
umt5_layer_forward (dit_umt5 *t, const umt5_layer *L, int64_t n)
{
  const dit_umt5_config *c = &t->cfg;
  dit_tensor x = dit_tensor_rows (&t->x, 0, n), y = dit_tensor_rows (&t->y, 0, n);
  dit_tensor q = dit_tensor_rows (&t->q, 0, n), k = dit_tensor_rows (&t->k, 0, n);
  dit_tensor v = dit_tensor_rows (&t->v, 0, n), a = dit_tensor_rows (&t->a, 0, n);
  dit_tensor proj = dit_tensor_rows (&t->proj, 0, n);
  dit_tensor g = dit_tensor_rows (&t->g, 0, n), u = dit_tensor_rows (&t->u, 0, n);
  dit_tensor h = dit_tensor_rows (&t->h, 0, n);

  DIT_TRY (umt5_rmsnorm (t, &x, L->norm1, &y));
  DIT_TRY (umt5_linear (t, &y, L->q, &q, DIT_ACT_NONE));
  DIT_TRY (umt5_linear (t, &y, L->k, &k, DIT_ACT_NONE));
  DIT_TRY (umt5_linear (t, &y, L->v, &v, DIT_ACT_NONE));
  dit_attn_params ap = { .q = &q, .k = &k, .v = &v, .o = &a,
    .heads = c->num_heads, .head_dim = c->head_dim, .scale = 1.0f,
    .pos_bias = L->pos, .num_buckets = c->num_buckets,
    .max_distance = c->max_distance, .bidirectional = 1 };
  DIT_TRY (dit_attention (t->be, &ap));
  DIT_TRY (umt5_linear (t, &a, L->o, &proj, DIT_ACT_NONE));
  DIT_TRY (umt5_residual (t, &x, &proj, NULL));

  DIT_TRY (umt5_rmsnorm (t, &x, L->norm2, &y));
  DIT_TRY (umt5_linear (t, &y, L->gate, &g, DIT_ACT_GELU_TANH));
  DIT_TRY (umt5_linear (t, &y, L->fc1, &u, DIT_ACT_NONE));
  DIT_TRY (dit_memset_zero (t->be, h.data,
      (size_t) n * (size_t) c->ffn_dim * dit_dtype_size (h.dtype)));
  DIT_TRY (umt5_residual (t, &h, &u, &g));
  DIT_TRY (umt5_linear (t, &h, L->fc2, &proj, DIT_ACT_NONE));
  return umt5_residual (t, &x, &proj, NULL);
}

dit_status
dit_umt5_encode (dit_umt5 *t, const int32_t *ids, int n, dit_tensor *out)
{
  const dit_umt5_config *c = &t->cfg;
  if (n < 1 || n > c->max_tokens)
    return dit_error (DIT_ERR_INVALID, "umt5: %d tokens; 1 to %d expected",
        n, c->max_tokens);
  if (out->ndim != 2 || out->shape[0] != n || out->shape[1] != c->dim)
    return dit_error (DIT_ERR_INVALID, "umt5: output must be [%d, %d]", n, c->dim);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab)
      return dit_error (DIT_ERR_INVALID, "umt5 '%s': token id %d at position "
          "%d is outside the vocabulary of %d (tokenizer and text model do "
          "not match?)", c->name, (int) ids[i], i, c->vocab);

  int layers = t->layer_limit > 0 && t->layer_limit < c->num_layers
      ? t->layer_limit : c->num_layers;
  if (t->host_layers) {
    /* host residency: rows gathered on the host, each layer uploaded into
     * the slot right before it runs (the previous encode's uploads from
     * host_x are complete: wait for them before overwriting it) */
    DIT_TRY (dit_synchronize (t->be));
    const size_t es = dit_dtype_size (t->dtype);
    for (int i = 0; i < n; i++)
      dit_convert (t->host_x + (size_t) i * c->dim, DIT_F32,
          (const char *) t->host_emb + (size_t) ids[i] * c->dim * es, t->dtype,
          (size_t) c->dim);
    DIT_TRY (dit_upload (t->be, t->x.data, t->host_x,
        (size_t) n * c->dim * sizeof (float)));
    for (int l = 0; l < layers; l++) {
      DIT_TRY (dit_upload (t->be, t->slot, t->host_layers[l],
          t->layer_bytes));
      DIT_TRY (umt5_layer_forward (t, &t->slot_layer, n));
    }
  } else {
    for (int i = 0; i < n; i++) {
      dit_tensor src = dit_tensor_rows (t->emb, ids[i], 1);
      dit_tensor dst = dit_tensor_rows (&t->x, i, 1);
      dit_copy_params cp = { .x = &src, .y = &dst };
      DIT_TRY (dit_copy (t->be, &cp));
    }
    for (int l = 0; l < layers; l++)
      DIT_TRY (umt5_layer_forward (t, &t->layers[l], n));
  }

  dit_tensor x = dit_tensor_rows (&t->x, 0, n);
  if (out->device == dit_backend_device (t->be)) {
    return umt5_rmsnorm (t, &x, t->norm, out);
  }
  /* host output from a device backend: normalise into f32, download, convert */
  dit_tensor o = dit_tensor_rows (&t->out, 0, n);
  DIT_TRY (umt5_rmsnorm (t, &x, t->norm, &o));
  if (!dit_tensor_is_contiguous (out))
    return dit_error (DIT_ERR_INVALID, "umt5: a host output must be contiguous");
  size_t numel = (size_t) n * (size_t) c->dim;
  float *tmp = malloc (numel * sizeof (float));
  if (!tmp)
    return dit_error (DIT_ERR_NOMEM, "umt5: out of memory");
  dit_status st = dit_synchronize (t->be);
  if (st == DIT_OK)
    st = dit_download (t->be, tmp, o.data, numel * sizeof (float));
  if (st == DIT_OK)
    dit_convert (out->data, out->dtype, tmp, DIT_F32, numel);
  free (tmp);
  return st;
}
