/* dit_vae — the streaming WanVAE (spec §5) on any backend with the VAE ops.
 *
 * Structure.  The encoder and the decoder are flat lists of layers in the
 * reference's module order (residual block, attention, resample); the
 * parameter list (spec §5.7 names, checkpoint layout) is generated from the
 * same topology walk, so names, shapes and forward order cannot drift apart.
 *
 * Layout.  Activations are channels-last frames [T, H, W, C]
 * (kernels/dit_vae_ops.h); conv weights are reordered at create time from
 * the checkpoint's [Cout, Cin, (kt,) kh, kw] into [Cout, kt, kh, kw, Cin] in
 * buffers owned by the dit_vae, so the weights passed to dit_vae_create may
 * be freed once it returns.  The API speaks channels first ([3, T, H, W]
 * pixels, [16, F, h, w] latents); the layout op converts at the edges and
 * applies the latent (de)normalisation (spec §5.5) and the output clamp.
 *
 * Streaming (spec §5.6, CACHE_T = 2).  Every causal 3x3x3 conv keeps the last
 * two frames of its *input*; the next chunk runs the conv over
 * [cache, x] with the front zero padding reduced by the cache length, which
 * is exactly one causal conv over the whole sequence.  With a one-frame
 * chunk the cache becomes [old last frame, x].  Resample rules:
 *  - downsample3d (encoder): the first chunk stores its last (spatially
 *    downsampled) frame and skips the time conv; later chunks run the
 *    stride-2 (3,1,1) conv over [cached frame, x] and keep x's last frame.
 *  - upsample3d (decoder): the first chunk skips the time conv (latent 0
 *    gives one frame) and leaves a cache of two zero frames, so the next
 *    chunk sees zero padding and every later chunk sees the true previous
 *    inputs with latent 0's features replaced by zeros, as the reference's
 *    "Rep" marker does.  Output channels [0, C) become frame 2t and [C, 2C)
 *    frame 2t+1: the conv is run twice on the two weight halves, writing
 *    straight into interleaved frames.
 * The decoder runs one latent per chunk (the reference decode loop); several
 * latents in one call are decoded in order.  The anchor encode runs the
 * encoder statelessly: no cache is read (a fresh first frame sees only zero
 * padding) and none is written, so the streaming encoder is untouched and
 * no second set of caches is needed.
 *
 * Cache next to the chunk.  Every workspace view starts `head` elements
 * into its buffer (head = the largest cache, 2 frames at full resolution),
 * and a cached conv first copies its cache into the frames just before its
 * input, then convolves [cache, x] as one contiguous run with no cache
 * argument.  A backend that needs its conv input contiguous (cuDNN) then
 * needs no staging copy of cache and chunk: 2 frames move instead of
 * 2 + T; the other backends read the same values in the same order.
 *
 * Memory.  Caches: 2 frames per cached conv (1 for a downsample time conv),
 * sized at create; workspace: 4 buffers of the cache headroom plus the
 * largest activation of a 4-frame encoder chunk or a 1-latent decoder
 * chunk.  Nothing is allocated after create, so memory does not depend on
 * the stream length.
 *
 * Precision.  The CPU backend runs the VAE in f32 (the reference's
 * inference precision); `dtype` is kept for backends with other storage.
 * A dit_vae is not thread safe: one caller at a time.
 */
#include "dit_vae.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIT_VAE_CACHE_T 2
#define DIT_VAE_NBUF 4

static const float dit_vae_latent_mean[16] = {
  -0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
  0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f,
};
static const float dit_vae_latent_std[16] = {
  2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
  3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f,
};

/* ---------------------------------------------------------------------------
 * configuration and topology */

dit_status
dit_vae_config_preset (const char *name, dit_vae_config *cfg)
{
  if (!name || !cfg)
    return dit_error (DIT_ERR_INVALID, "vae config: NULL preset name");
  memset (cfg, 0, sizeof *cfg);
  if (strcmp (name, "wan") == 0)
    cfg->base_dim = 96;
  else if (strcmp (name, "tiny") == 0)
    cfg->base_dim = 8;
  /* The shape the demo VAE is trained in (tools/train, docs/demo-model.md),
   * so that its checkpoint is detected by path.  It has no synthetic
   * weights, so it is not in preset_names. */
  else if (strcmp (name, "demo") == 0)
    cfg->base_dim = 16;
  else
    return dit_error (DIT_ERR_INVALID, "vae config: unknown preset '%s' "
        "(known: wan, tiny)", name);
  snprintf (cfg->name, sizeof cfg->name, "%s", name);
  cfg->dim_mult[0] = 1;
  cfg->dim_mult[1] = 2;
  cfg->dim_mult[2] = 4;
  cfg->dim_mult[3] = 4;
  cfg->z_dim = 16;
  cfg->num_res_blocks = 2;
  return DIT_OK;
}

typedef enum dit_vae_kind {
  DIT_VAE_RES,
  DIT_VAE_ATTN,
  DIT_VAE_DOWN2D,
  DIT_VAE_DOWN3D,
  DIT_VAE_UP2D,
  DIT_VAE_UP3D,
} dit_vae_kind;

typedef struct dit_vae_topo {
  dit_vae_kind kind;
  char prefix[48];
  int cin, cout;     /* resample/attention: cin = cout = C */
} dit_vae_topo;

static dit_status
dit_vae_config_check (const dit_vae_config *cfg)
{
  if (!cfg)
    return dit_error (DIT_ERR_INVALID, "vae config: NULL");
  if (cfg->base_dim < 1 || cfg->z_dim < 1 || cfg->z_dim > DIT_VAE_MAX_AFFINE / 2
      || cfg->num_res_blocks < 1 || cfg->num_res_blocks > 8)
    return dit_error (DIT_ERR_INVALID, "vae config '%s': base_dim %d, z_dim %d, "
        "num_res_blocks %d out of range", cfg->name, cfg->base_dim, cfg->z_dim,
        cfg->num_res_blocks);
  if (cfg->z_dim != 16)
    return dit_error (DIT_ERR_INVALID, "vae config '%s': z_dim %d (the latent "
        "normalisation has 16 channels)", cfg->name, cfg->z_dim);
  for (int i = 0; i < 4; i++)
    if (cfg->dim_mult[i] < 1)
      return dit_error (DIT_ERR_INVALID, "vae config '%s': dim_mult[%d] = %d",
          cfg->name, i, cfg->dim_mult[i]);
  if ((cfg->base_dim * cfg->dim_mult[0]) % 2 || (cfg->base_dim * cfg->dim_mult[1]) % 2
      || (cfg->base_dim * cfg->dim_mult[2]) % 2 || (cfg->base_dim * cfg->dim_mult[3]) % 2)
    return dit_error (DIT_ERR_INVALID, "vae config '%s': channel counts must be "
        "even (upsample halves them)", cfg->name);
  return DIT_OK;
}

/* The encoder's or decoder's layer list in forward order; returns the count
 * (out may be NULL to count).  At most 64 layers for any config. */
static int
dit_vae_topology (const dit_vae_config *cfg, int decoder, dit_vae_topo *out)
{
  int n = 0;
#define DIT_VAE_EMIT(k, ci, co, ...) do { \
    if (out) { out[n].kind = (k); out[n].cin = (ci); out[n].cout = (co); \
      snprintf (out[n].prefix, sizeof out[n].prefix, __VA_ARGS__); } \
    n++; } while (0)
  const int b = cfg->base_dim;
  if (!decoder) {
    /* dims = base * [1] + dim_mult; temporal downsample [F, T, T] */
    const int dims[5] = { b, b * cfg->dim_mult[0], b * cfg->dim_mult[1],
        b * cfg->dim_mult[2], b * cfg->dim_mult[3] };
    int idx = 0, in = dims[0];
    for (int i = 0; i < 4; i++) {
      const int o = dims[i + 1];
      for (int r = 0; r < cfg->num_res_blocks; r++) {
        DIT_VAE_EMIT (DIT_VAE_RES, in, o, "encoder.downsamples.%d", idx);
        idx++;
        in = o;
      }
      if (i != 3) {
        DIT_VAE_EMIT (i == 0 ? DIT_VAE_DOWN2D : DIT_VAE_DOWN3D, o, o,
            "encoder.downsamples.%d", idx);
        idx++;
      }
    }
    DIT_VAE_EMIT (DIT_VAE_RES, in, in, "encoder.middle.0");
    DIT_VAE_EMIT (DIT_VAE_ATTN, in, in, "encoder.middle.1");
    DIT_VAE_EMIT (DIT_VAE_RES, in, in, "encoder.middle.2");
  } else {
    /* dims = base * ([dim_mult[-1]] + reversed dim_mult); temporal upsample
     * [T, T, F]; stages after an upsample start from half the channels. */
    const int dims[5] = { b * cfg->dim_mult[3], b * cfg->dim_mult[3],
        b * cfg->dim_mult[2], b * cfg->dim_mult[1], b * cfg->dim_mult[0] };
    DIT_VAE_EMIT (DIT_VAE_RES, dims[0], dims[0], "decoder.middle.0");
    DIT_VAE_EMIT (DIT_VAE_ATTN, dims[0], dims[0], "decoder.middle.1");
    DIT_VAE_EMIT (DIT_VAE_RES, dims[0], dims[0], "decoder.middle.2");
    int idx = 0;
    for (int i = 0; i < 4; i++) {
      int in = dims[i];
      const int o = dims[i + 1];
      if (i >= 1)
        in /= 2;
      for (int r = 0; r < cfg->num_res_blocks + 1; r++) {
        DIT_VAE_EMIT (DIT_VAE_RES, in, o, "decoder.upsamples.%d", idx);
        idx++;
        in = o;
      }
      if (i != 3) {
        DIT_VAE_EMIT (i < 2 ? DIT_VAE_UP3D : DIT_VAE_UP2D, o, o,
            "decoder.upsamples.%d", idx);
        idx++;
      }
    }
  }
#undef DIT_VAE_EMIT
  return n;
}

static int
dit_vae_enc_out_dim (const dit_vae_config *cfg)
{
  return cfg->base_dim * cfg->dim_mult[3];
}

static int
dit_vae_dec_out_dim (const dit_vae_config *cfg)
{
  return cfg->base_dim * cfg->dim_mult[0];
}

/* conv weight [out, in, k...] + bias [out] */
static void
dit_vae_pconv (dit_param_list *l, const char *prefix, int out, int in, int kt,
    int kh, int kw, int is2d)
{
  int64_t w3[5] = { out, in, kt, kh, kw };
  int64_t w2[4] = { out, in, kh, kw };
  int64_t bias[1] = { out };
  if (is2d)
    dit_param_list_add (l, 4, w2, "%s.weight", prefix);
  else
    dit_param_list_add (l, 5, w3, "%s.weight", prefix);
  dit_param_list_add (l, 1, bias, "%s.bias", prefix);
}

static void
dit_vae_pgamma (dit_param_list *l, const char *name, int c, int ndim)
{
  int64_t s[4] = { c, 1, 1, 1 };
  dit_param_list_add (l, ndim, s, "%s", name);
}

static void
dit_vae_player (dit_param_list *l, const dit_vae_topo *t)
{
  char nm[96];
  switch (t->kind) {
    case DIT_VAE_RES:
      snprintf (nm, sizeof nm, "%s.residual.0.gamma", t->prefix);
      dit_vae_pgamma (l, nm, t->cin, 4);
      snprintf (nm, sizeof nm, "%s.residual.2", t->prefix);
      dit_vae_pconv (l, nm, t->cout, t->cin, 3, 3, 3, 0);
      snprintf (nm, sizeof nm, "%s.residual.3.gamma", t->prefix);
      dit_vae_pgamma (l, nm, t->cout, 4);
      snprintf (nm, sizeof nm, "%s.residual.6", t->prefix);
      dit_vae_pconv (l, nm, t->cout, t->cout, 3, 3, 3, 0);
      if (t->cin != t->cout) {
        snprintf (nm, sizeof nm, "%s.shortcut", t->prefix);
        dit_vae_pconv (l, nm, t->cout, t->cin, 1, 1, 1, 0);
      }
      break;
    case DIT_VAE_ATTN:
      snprintf (nm, sizeof nm, "%s.norm.gamma", t->prefix);
      dit_vae_pgamma (l, nm, t->cin, 3);
      snprintf (nm, sizeof nm, "%s.to_qkv", t->prefix);
      dit_vae_pconv (l, nm, 3 * t->cin, t->cin, 1, 1, 1, 1);
      snprintf (nm, sizeof nm, "%s.proj", t->prefix);
      dit_vae_pconv (l, nm, t->cin, t->cin, 1, 1, 1, 1);
      break;
    case DIT_VAE_DOWN2D:
    case DIT_VAE_DOWN3D:
    case DIT_VAE_UP2D:
    case DIT_VAE_UP3D: {
      const int up = t->kind == DIT_VAE_UP2D || t->kind == DIT_VAE_UP3D;
      snprintf (nm, sizeof nm, "%s.resample.1", t->prefix);
      dit_vae_pconv (l, nm, up ? t->cin / 2 : t->cin, t->cin, 1, 3, 3, 1);
      if (t->kind == DIT_VAE_DOWN3D || t->kind == DIT_VAE_UP3D) {
        snprintf (nm, sizeof nm, "%s.time_conv", t->prefix);
        dit_vae_pconv (l, nm, t->kind == DIT_VAE_UP3D ? 2 * t->cin : t->cin,
            t->cin, 3, 1, 1, 0);
      }
      break;
    }
  }
}

dit_status
dit_vae_config_params (const dit_vae_config *cfg, dit_param_spec **specs,
    size_t *count)
{
  DIT_TRY (dit_vae_config_check (cfg));
  if (!specs || !count)
    return dit_error (DIT_ERR_INVALID, "vae config params: NULL output");
  dit_vae_topo topo[64];
  dit_param_list l = { 0 };
  const int z = cfg->z_dim;

  /* state-dict order: encoder, conv1, conv2, decoder */
  dit_vae_pconv (&l, "encoder.conv1", cfg->base_dim, 3, 3, 3, 3, 0);
  int n = dit_vae_topology (cfg, 0, topo);
  for (int i = 0; i < n; i++)
    dit_vae_player (&l, &topo[i]);
  dit_vae_pgamma (&l, "encoder.head.0.gamma", dit_vae_enc_out_dim (cfg), 4);
  dit_vae_pconv (&l, "encoder.head.2", 2 * z, dit_vae_enc_out_dim (cfg), 3, 3, 3, 0);
  dit_vae_pconv (&l, "conv1", 2 * z, 2 * z, 1, 1, 1, 0);
  dit_vae_pconv (&l, "conv2", z, z, 1, 1, 1, 0);
  dit_vae_pconv (&l, "decoder.conv1", cfg->base_dim * cfg->dim_mult[3], z, 3, 3, 3, 0);
  n = dit_vae_topology (cfg, 1, topo);
  for (int i = 0; i < n; i++)
    dit_vae_player (&l, &topo[i]);
  dit_vae_pgamma (&l, "decoder.head.0.gamma", dit_vae_dec_out_dim (cfg), 4);
  dit_vae_pconv (&l, "decoder.head.2", 3, dit_vae_dec_out_dim (cfg), 3, 3, 3, 0);
  if (l.oom) {
    free (l.v);
    return dit_error (DIT_ERR_NOMEM, "vae config params: out of memory");
  }
  *specs = l.v;
  *count = l.n;
  return DIT_OK;
}

const char *const *
dit_vae_config_preset_names (void)
{
  static const char *const names[] = { "wan", "tiny", NULL };
  return names;
}

const char *
dit_vae_config_detect (const dit_safetensors *st)
{
  const dit_st_tensor *t = dit_safetensors_find (st, "encoder.conv1.weight");
  if (!t)
    t = dit_safetensors_find (st, "decoder.head.2.weight");
  if (!t || t->ndim != 5)
    return NULL;
  const int64_t base = strcmp (t->name, "encoder.conv1.weight") == 0
      ? t->shape[0] : t->shape[1];
  if (base == 96)
    return "wan";
  if (base == 8)
    return "tiny";
  if (base == 16)
    return "demo";
  return NULL;
}

const char *
dit_vae_config_detect_path (const char *path)
{
  dit_safetensors *st = NULL;
  if (dit_safetensors_open (path, &st) != DIT_OK)
    return NULL;
  const char *name = dit_vae_config_detect (st);
  dit_safetensors_close (st);
  return name;
}

/* ---------------------------------------------------------------------------
 * model state */

typedef struct dit_vae_convw {
  dit_tensor w;        /* [Cout, kt*kh*kw*Cin] */
  dit_tensor b;        /* [Cout] */
  int cin, cout, kt, kh, kw;
} dit_vae_convw;

typedef struct dit_vae_cache {
  dit_tensor buf;      /* [cap, H, W, C] */
  int cap, n;
} dit_vae_cache;

typedef struct dit_vae_layer {
  dit_vae_kind kind;
  int cin, cout;
  int64_t h, w;        /* input spatial size */
  dit_tensor g0, g1;
  dit_vae_convw c0, c1, sc;
  int has_sc;
  dit_vae_cache k0, k1;
  int started;         /* resample3d: first chunk seen */
} dit_vae_layer;

typedef struct dit_vae_net {
  int n;
  dit_vae_layer layers[64];
  dit_vae_convw conv_in, head, post;
  dit_tensor head_gamma;
  dit_vae_cache k_in, k_head;
} dit_vae_net;

struct dit_vae {
  dit_vae_config cfg;
  dit_backend *be;
  int width, height;
  dit_dtype dtype;
  dit_vae_net enc, dec;
  dit_tensor buf[DIT_VAE_NBUF];
  int64_t buf_elems;
  int64_t head_elems;   /* cache headroom before every workspace view */
  int64_t enc_chunks;   /* encoder chunks since reset */
  int64_t dec_latents;  /* latents decoded since reset */
  size_t state_bytes;
  int stateless;        /* anchor encode in progress */
  dit_vae_buffers mem;  /* every allocation, for free */
};

dit_status
dit_vae_buffers_alloc (dit_vae_buffers *b, dit_tensor *t, int ndim,
    const int64_t *shape)
{
  if (b->count == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 128;
    void **a = realloc (b->data, cap * sizeof *a);
    if (!a)
      return dit_error (DIT_ERR_NOMEM, "%s: out of memory", b->who);
    b->data = a;
    b->cap = cap;
  }
  DIT_TRY (dit_tensor_alloc (b->be, t, b->dtype, ndim, shape));
  b->data[b->count++] = t->data;
  return DIT_OK;
}

dit_status
dit_vae_buffers_upload (dit_vae_buffers *b, dit_tensor *t, int ndim,
    const int64_t *shape, const float *host)
{
  DIT_TRY (dit_vae_buffers_alloc (b, t, ndim, shape));
  const size_t n = (size_t) dit_tensor_numel (t);
  if (b->dtype == DIT_F32)
    return dit_upload (b->be, t->data, host, n * sizeof (float));
  void *tmp = malloc (n * dit_dtype_size (b->dtype) + 1);
  if (!tmp)
    return dit_error (DIT_ERR_NOMEM, "%s: out of memory", b->who);
  dit_convert (tmp, b->dtype, host, DIT_F32, n);
  dit_status st = dit_upload (b->be, t->data, tmp,
      n * dit_dtype_size (b->dtype));
  free (tmp);
  return st;
}

void
dit_vae_buffers_free (dit_vae_buffers *b)
{
  for (size_t i = 0; i < b->count; i++)
    dit_backend_free (b->be, b->data[i]);
  free (b->data);
  b->data = NULL;
  b->count = b->cap = 0;
}

/* Fetch a checkpoint tensor as host f32, checking its shape. */
static dit_status
dit_vae_fetch (dit_vae *v, const dit_weights *w, const char *name, int ndim,
    const int64_t *shape, float **host)
{
  const dit_tensor *t;
  DIT_TRY (dit_weights_require (w, name, &t));
  /* Tensors of more than 4 dims are stored flattened to [out, rest]; the
   * spec keeps the checkpoint shape. */
  const dit_param_spec *spec = NULL;
  for (size_t i = 0; w->specs && i < w->count && !spec; i++)
    if (strcmp (w->specs[i].name, name) == 0)
      spec = &w->specs[i];
  const int gnd = spec ? spec->ndim : t->ndim;
  const int64_t *gshape = spec ? spec->shape : t->shape;
  int64_t want_n = 1;
  for (int i = 0; i < ndim; i++)
    want_n *= shape[i];
  int ok = gnd == ndim && dit_tensor_numel (t) == want_n;
  for (int i = 0; ok && i < ndim; i++)
    ok = gshape[i] == shape[i];
  if (!ok) {
    char got[96], want[96];
    return dit_error (DIT_ERR_INVALID, "vae '%s': weight '%s' is %s, expected "
        "%s (checkpoint of another VAE config?)", v->cfg.name, name,
        dit_shape_str (got, sizeof got, gnd, gshape),
        dit_shape_str (want, sizeof want, ndim, shape));
  }
  dit_status st = dit_weights_read_f32 (w, name, host);
  return st == DIT_OK ? DIT_OK : dit_error_prefix (st, "vae");
}

/* Load `prefix`.weight/.bias, reordering [out, in, kt, kh, kw] to
 * [out, kt, kh, kw, in].  is2d: checkpoint has no kt dim. */
static dit_status
dit_vae_load_conv (dit_vae *v, const dit_weights *w, const char *prefix,
    int cout, int cin, int kt, int kh, int kw, int is2d, dit_vae_convw *c)
{
  char name[160];
  int64_t shape[5] = { cout, cin, kt, kh, kw };
  int64_t shape2d[4] = { cout, cin, kh, kw };
  float *src = NULL, *bias = NULL;
  snprintf (name, sizeof name, "%s.weight", prefix);
  DIT_TRY (dit_vae_fetch (v, w, name, is2d ? 4 : 5, is2d ? shape2d : shape, &src));
  snprintf (name, sizeof name, "%s.bias", prefix);
  int64_t bshape[1] = { cout };
  dit_status st = dit_vae_fetch (v, w, name, 1, bshape, &bias);
  if (st != DIT_OK) {
    free (src);
    return st;
  }
  const int taps = kt * kh * kw;
  const size_t n = (size_t) cout * cin * taps;
  float *dst = malloc (n * sizeof *dst);
  if (!dst) {
    free (src);
    free (bias);
    return dit_error (DIT_ERR_NOMEM, "vae: out of memory");
  }
  for (int o = 0; o < cout; o++)
    for (int i = 0; i < cin; i++)
      for (int k = 0; k < taps; k++)
        dst[((size_t) o * taps + k) * cin + i] = src[((size_t) o * cin + i) * taps + k];
  free (src);
  c->cin = cin;
  c->cout = cout;
  c->kt = kt;
  c->kh = kh;
  c->kw = kw;
  int64_t ws[2] = { cout, (int64_t) taps * cin };
  st = dit_vae_buffers_upload (&v->mem, &c->w, 2, ws, dst);
  if (st == DIT_OK)
    st = dit_vae_buffers_upload (&v->mem, &c->b, 1, bshape, bias);
  free (dst);
  free (bias);
  return st;
}

static dit_status
dit_vae_load_gamma (dit_vae *v, const dit_weights *w, const char *name, int c,
    int ndim, dit_tensor *g)
{
  int64_t shape[4] = { c, 1, 1, 1 };
  float *host = NULL;
  DIT_TRY (dit_vae_fetch (v, w, name, ndim, shape, &host));
  int64_t s1[1] = { c };
  dit_status st = dit_vae_buffers_upload (&v->mem, g, 1, s1, host);
  free (host);
  return st;
}

static dit_status
dit_vae_make_cache (dit_vae *v, dit_vae_cache *k, int cap, int64_t h, int64_t w,
    int c)
{
  int64_t s[4] = { cap, h, w, c };
  k->cap = cap;
  k->n = 0;
  if ((int64_t) cap * h * w * c > v->head_elems)
    v->head_elems = (int64_t) cap * h * w * c;
  DIT_TRY (dit_vae_buffers_alloc (&v->mem, &k->buf, 4, s));
  v->state_bytes += dit_tensor_nbytes (&k->buf);
  return dit_memset_zero (v->be, k->buf.data, dit_tensor_nbytes (&k->buf));
}

static void
dit_vae_need (dit_vae *v, int64_t t, int64_t h, int64_t w, int64_t c)
{
  if (t * h * w * c > v->buf_elems)
    v->buf_elems = t * h * w * c;
}

/* Build one net's layers; t/h/w track the chunk shape for workspace sizing
 * (the encoder's 4-frame chunk, the decoder's 1-latent chunk). */
static dit_status
dit_vae_build_net (dit_vae *v, const dit_weights *w, int decoder)
{
  const dit_vae_config *cfg = &v->cfg;
  dit_vae_net *net = decoder ? &v->dec : &v->enc;
  dit_vae_topo topo[64];
  char nm[112];
  int64_t t = decoder ? 1 : 4;
  int64_t h = decoder ? v->height / 8 : v->height, wd = decoder ? v->width / 8 : v->width;
  const int z = cfg->z_dim;

  if (!decoder) {
    DIT_TRY (dit_vae_load_conv (v, w, "encoder.conv1", cfg->base_dim, 3, 3, 3, 3, 0,
        &net->conv_in));
    DIT_TRY (dit_vae_make_cache (v, &net->k_in, DIT_VAE_CACHE_T, h, wd, 3));
    dit_vae_need (v, t, h, wd, cfg->base_dim);
  } else {
    DIT_TRY (dit_vae_load_conv (v, w, "conv2", z, z, 1, 1, 1, 0, &net->post));
    DIT_TRY (dit_vae_load_conv (v, w, "decoder.conv1", cfg->base_dim * cfg->dim_mult[3],
        z, 3, 3, 3, 0, &net->conv_in));
    DIT_TRY (dit_vae_make_cache (v, &net->k_in, DIT_VAE_CACHE_T, h, wd, z));
    dit_vae_need (v, t, h, wd, cfg->base_dim * cfg->dim_mult[3]);
  }

  net->n = dit_vae_topology (cfg, decoder, topo);
  for (int i = 0; i < net->n; i++) {
    const dit_vae_topo *tp = &topo[i];
    dit_vae_layer *L = &net->layers[i];
    L->kind = tp->kind;
    L->cin = tp->cin;
    L->cout = tp->cout;
    L->h = h;
    L->w = wd;
    const int C = tp->cin;
    switch (tp->kind) {
      case DIT_VAE_RES:
        snprintf (nm, sizeof nm, "%s.residual.0.gamma", tp->prefix);
        DIT_TRY (dit_vae_load_gamma (v, w, nm, tp->cin, 4, &L->g0));
        snprintf (nm, sizeof nm, "%s.residual.2", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, tp->cout, tp->cin, 3, 3, 3, 0, &L->c0));
        snprintf (nm, sizeof nm, "%s.residual.3.gamma", tp->prefix);
        DIT_TRY (dit_vae_load_gamma (v, w, nm, tp->cout, 4, &L->g1));
        snprintf (nm, sizeof nm, "%s.residual.6", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, tp->cout, tp->cout, 3, 3, 3, 0, &L->c1));
        L->has_sc = tp->cin != tp->cout;
        if (L->has_sc) {
          snprintf (nm, sizeof nm, "%s.shortcut", tp->prefix);
          DIT_TRY (dit_vae_load_conv (v, w, nm, tp->cout, tp->cin, 1, 1, 1, 0, &L->sc));
        }
        DIT_TRY (dit_vae_make_cache (v, &L->k0, DIT_VAE_CACHE_T, h, wd, tp->cin));
        DIT_TRY (dit_vae_make_cache (v, &L->k1, DIT_VAE_CACHE_T, h, wd, tp->cout));
        dit_vae_need (v, t, h, wd, tp->cin > tp->cout ? tp->cin : tp->cout);
        break;
      case DIT_VAE_ATTN:
        snprintf (nm, sizeof nm, "%s.norm.gamma", tp->prefix);
        DIT_TRY (dit_vae_load_gamma (v, w, nm, C, 3, &L->g0));
        snprintf (nm, sizeof nm, "%s.to_qkv", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, 3 * C, C, 1, 1, 1, 1, &L->c0));
        snprintf (nm, sizeof nm, "%s.proj", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, C, C, 1, 1, 1, 1, &L->c1));
        dit_vae_need (v, t, h, wd, 3 * C);
        break;
      case DIT_VAE_DOWN2D:
      case DIT_VAE_DOWN3D:
        snprintf (nm, sizeof nm, "%s.resample.1", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, C, C, 1, 3, 3, 1, &L->c0));
        h /= 2;
        wd /= 2;
        if (tp->kind == DIT_VAE_DOWN3D) {
          snprintf (nm, sizeof nm, "%s.time_conv", tp->prefix);
          DIT_TRY (dit_vae_load_conv (v, w, nm, C, C, 3, 1, 1, 0, &L->c1));
          DIT_TRY (dit_vae_make_cache (v, &L->k0, 1, h, wd, C));
          dit_vae_need (v, t, h, wd, C);
          t = t / 2 > 0 ? t / 2 : 1;
        }
        dit_vae_need (v, t, h, wd, C);
        break;
      case DIT_VAE_UP2D:
      case DIT_VAE_UP3D:
        if (tp->kind == DIT_VAE_UP3D) {
          snprintf (nm, sizeof nm, "%s.time_conv", tp->prefix);
          DIT_TRY (dit_vae_load_conv (v, w, nm, 2 * C, C, 3, 1, 1, 0, &L->c1));
          DIT_TRY (dit_vae_make_cache (v, &L->k0, DIT_VAE_CACHE_T, h, wd, C));
          t *= 2;
          dit_vae_need (v, t, h, wd, C);
        }
        snprintf (nm, sizeof nm, "%s.resample.1", tp->prefix);
        DIT_TRY (dit_vae_load_conv (v, w, nm, C / 2, C, 1, 3, 3, 1, &L->c0));
        h *= 2;
        wd *= 2;
        dit_vae_need (v, t, h, wd, C);
        break;
    }
  }

  const int co = decoder ? dit_vae_dec_out_dim (cfg) : dit_vae_enc_out_dim (cfg);
  snprintf (nm, sizeof nm, "%s.head.0.gamma", decoder ? "decoder" : "encoder");
  DIT_TRY (dit_vae_load_gamma (v, w, nm, co, 4, &net->head_gamma));
  snprintf (nm, sizeof nm, "%s.head.2", decoder ? "decoder" : "encoder");
  DIT_TRY (dit_vae_load_conv (v, w, nm, decoder ? 3 : 2 * z, co, 3, 3, 3, 0, &net->head));
  DIT_TRY (dit_vae_make_cache (v, &net->k_head, DIT_VAE_CACHE_T, h, wd, co));
  dit_vae_need (v, t, h, wd, co);
  if (!decoder)
    DIT_TRY (dit_vae_load_conv (v, w, "conv1", 2 * z, 2 * z, 1, 1, 1, 0, &net->post));
  return DIT_OK;
}

dit_status
dit_vae_check_create (const char *what, const dit_weights *w, dit_backend *be,
    int width, int height, int multiple)
{
  if (!w)
    return dit_error (DIT_ERR_INVALID, "%s: no weights", what);
  if (!be)
    return dit_error (DIT_ERR_INVALID, "%s: no backend", what);
  if (!dit_backend_has_vae (be))
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: the %s backend has no VAE ops",
        what, dit_backend_name (be));
  if (width <= 0 || height <= 0 || width % multiple || height % multiple)
    return dit_error (DIT_ERR_INVALID, "%s: resolution %dx%d is not a "
        "multiple of %d", what, width, height, multiple);
  return DIT_OK;
}

void
dit_vae_free (dit_vae *v)
{
  if (!v)
    return;
  dit_vae_buffers_free (&v->mem);
  free (v);
}

dit_status
dit_vae_create (const dit_vae_config *cfg, const dit_weights *w, int width,
    int height, dit_dtype dtype, dit_backend *be, dit_vae **out)
{
  if (!out)
    return dit_error (DIT_ERR_INVALID, "vae create: NULL output");
  *out = NULL;
  DIT_TRY (dit_vae_config_check (cfg));
  DIT_TRY (dit_vae_check_create ("vae create", w, be, width, height, 16));
  dit_vae *v = calloc (1, sizeof *v);
  if (!v)
    return dit_error (DIT_ERR_NOMEM, "vae create: out of memory");
  v->cfg = *cfg;
  v->be = be;
  v->width = width;
  v->height = height;
  /* The CPU ops compute in f32; other storage is for accelerator backends. */
  v->dtype = dit_backend_device (be) == DIT_DEVICE_CPU ? DIT_F32 : dtype;
  v->mem = (dit_vae_buffers) { .be = be, .dtype = v->dtype, .who = "vae" };
  dit_status st = dit_vae_build_net (v, w, 0);
  if (st == DIT_OK)
    st = dit_vae_build_net (v, w, 1);
  for (int i = 0; st == DIT_OK && i < DIT_VAE_NBUF; i++) {
    int64_t s[1] = { v->head_elems + v->buf_elems };
    st = dit_vae_buffers_alloc (&v->mem, &v->buf[i], 1, s);
  }
  if (st != DIT_OK) {
    dit_vae_free (v);
    return st;
  }
  *out = v;
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * forward helpers */

/* A [t, h, w, c] frame view over workspace buffer i, after the headroom. */
static dit_tensor
dit_vae_frames (dit_vae *v, int i, int64_t t, int64_t h, int64_t w, int64_t c)
{
  int64_t s[4] = { t, h, w, c };
  return dit_tensor_make ((char *) v->buf[i].data
      + (size_t) v->head_elems * dit_dtype_size (v->dtype), v->dtype,
      v->buf[i].device, 4, s);
}

static int
dit_vae_free_buf (int a, int b, int c)
{
  for (int i = 0; i < DIT_VAE_NBUF; i++)
    if (i != a && i != b && i != c)
      return i;
  return -1;
}

static dit_tensor
dit_vae_cache_view (const dit_vae_cache *k, int64_t first, int64_t n)
{
  return dit_tensor_rows (&k->buf, first, n);
}

/* Keep the last min(cap, n + T) frames of [cache, x] (spec §5.6). */
static dit_status
dit_vae_cache_push (dit_vae *v, dit_vae_cache *k, const dit_tensor *x)
{
  if (v->stateless)
    return DIT_OK;
  dit_backend *be = v->be;
  const int64_t T = x->shape[0];
  if (T >= k->cap) {
    dit_tensor src = dit_tensor_rows (x, T - k->cap, k->cap);
    dit_tensor dst = dit_vae_cache_view (k, 0, k->cap);
    dit_vae_copy_frames_params cp = { &src, &dst };
    DIT_TRY (dit_vae_copy_frames (be, &cp));
    k->n = k->cap;
    return DIT_OK;
  }
  /* T < cap (cap 2, T 1): shift in. */
  if (k->n == k->cap) {
    dit_tensor src = dit_vae_cache_view (k, 1, 1);
    dit_tensor dst = dit_vae_cache_view (k, 0, 1);
    dit_vae_copy_frames_params cp = { &src, &dst };
    DIT_TRY (dit_vae_copy_frames (be, &cp));
    k->n--;
  }
  dit_tensor dst = dit_vae_cache_view (k, k->n, T);
  dit_vae_copy_frames_params cp = { x, &dst };
  DIT_TRY (dit_vae_copy_frames (be, &cp));
  k->n += (int) T;
  return DIT_OK;
}

/* The first n cache frames copied into the headroom before x (a workspace
 * view), and the view [cache, x] over both; n = 0 gives x. */
static dit_status
dit_vae_join_cache (dit_vae *v, const dit_vae_cache *k, int n,
    const dit_tensor *x, dit_tensor *joined)
{
  *joined = *x;
  if (n <= 0)
    return DIT_OK;
  const int64_t frame = x->shape[1] * x->shape[2] * x->shape[3];
  if (x->stride[0] != frame || (int64_t) n * frame > v->head_elems)
    return dit_error (DIT_ERR_STATE, "vae: a cached conv's input is not a "
        "contiguous workspace view");
  joined->data = (char *) x->data - (size_t) (n * frame) * dit_dtype_size (x->dtype);
  joined->shape[0] = x->shape[0] + n;
  dit_tensor dst = *joined;
  dst.shape[0] = n;
  dit_tensor src = dit_vae_cache_view (k, 0, n);
  dit_vae_copy_frames_params cp = { &src, &dst };
  return dit_vae_copy_frames (v->be, &cp);
}

/* Causal conv with padding (p_t, p, p) and cache k (NULL: not cached, e.g.
 * 1x1x1).  Pushes x into the cache after the conv has read the old one. */
static dit_status
dit_vae_conv_causal (dit_vae *v, const dit_vae_convw *c, dit_vae_cache *k,
    const dit_tensor *x, dit_tensor *y, const dit_tensor *residual)
{
  const int pt = (c->kt - 1) / 2, ps = (c->kh - 1) / 2;
  const int n = k && !v->stateless ? k->n : 0;
  dit_tensor xx;
  DIT_TRY (dit_vae_join_cache (v, k, n, x, &xx));
  dit_vae_conv_params p = {
    .x = &xx, .prev = NULL, .weight = &c->w, .bias = &c->b,
    .residual = residual, .y = y, .kt = c->kt, .kh = c->kh, .kw = c->kw,
    .st = 1, .sh = 1, .sw = 1, .pad_front = 2 * pt - n,
    .pad_top = ps, .pad_bottom = ps, .pad_left = ps, .pad_right = ps,
  };
  if (p.pad_front < 0)
    p.pad_front = 0;
  DIT_TRY (dit_vae_conv (v->be, &p));
  if (k)
    DIT_TRY (dit_vae_cache_push (v, k, x));
  return DIT_OK;
}

static dit_status
dit_vae_norm_run (dit_vae *v, const dit_tensor *x, const dit_tensor *g,
    dit_tensor *y, int silu)
{
  dit_vae_norm_params p = { x, g, y, silu };
  return dit_vae_norm (v->be, &p);
}

/* Layer forward: *cur is the buffer holding x [*t, L->h, L->w, L->cin];
 * on return it holds the output and *t its frame count. */
static dit_status
dit_vae_layer_forward (dit_vae *v, dit_vae_layer *L, int *cur, int64_t *t)
{
  const int64_t T = *t, h = L->h, w = L->w;
  const int bx = *cur;
  dit_tensor x = dit_vae_frames (v, bx, T, h, w, L->cin);
  switch (L->kind) {
    case DIT_VAE_RES: {
      const int a = dit_vae_free_buf (bx, -1, -1), b = dit_vae_free_buf (bx, a, -1);
      dit_tensor ha = dit_vae_frames (v, a, T, h, w, L->cin);
      dit_tensor tb = dit_vae_frames (v, b, T, h, w, L->cout);
      DIT_TRY (dit_vae_norm_run (v, &x, &L->g0, &ha, 1));
      DIT_TRY (dit_vae_conv_causal (v, &L->c0, &L->k0, &ha, &tb, NULL));
      DIT_TRY (dit_vae_norm_run (v, &tb, &L->g1, &tb, 1));
      if (L->has_sc) {
        dit_tensor s = dit_vae_frames (v, a, T, h, w, L->cout);
        DIT_TRY (dit_vae_conv_causal (v, &L->sc, NULL, &x, &s, NULL));
        DIT_TRY (dit_vae_conv_causal (v, &L->c1, &L->k1, &tb, &s, &s));
        *cur = a;
      } else {
        DIT_TRY (dit_vae_conv_causal (v, &L->c1, &L->k1, &tb, &x, &x));
      }
      return DIT_OK;
    }
    case DIT_VAE_ATTN: {
      const int C = L->cin;
      const int a = dit_vae_free_buf (bx, -1, -1), b = dit_vae_free_buf (bx, a, -1);
      dit_tensor xn = dit_vae_frames (v, a, T, h, w, C);
      dit_tensor qkv = dit_vae_frames (v, b, T, h, w, 3 * C);
      DIT_TRY (dit_vae_norm_run (v, &x, &L->g0, &xn, 0));
      DIT_TRY (dit_vae_conv_causal (v, &L->c0, NULL, &xn, &qkv, NULL));
      /* per frame: tokens = h*w pixels, one head of C channels */
      dit_tensor o = dit_vae_frames (v, a, T, h, w, C);
      for (int64_t f = 0; f < T; f++) {
        dit_tensor all = dit_tensor_2d ((char *) qkv.data
            + (size_t) (f * h * w * 3 * C) * dit_dtype_size (v->dtype),
            v->dtype, qkv.device, h * w, 3 * C);
        dit_tensor q = dit_tensor_cols (&all, 0, C);
        dit_tensor k = dit_tensor_cols (&all, C, C);
        dit_tensor vv = dit_tensor_cols (&all, 2 * C, C);
        dit_tensor of = dit_tensor_2d ((char *) o.data
            + (size_t) (f * h * w * C) * dit_dtype_size (v->dtype),
            v->dtype, o.device, h * w, C);
        dit_attn_params ap = {
          .q = &q, .k = &k, .v = &vv, .o = &of, .heads = 1, .head_dim = C,
          .scale = 1.0f / sqrtf ((float) C), .bias_begin = 0, .bias_end = 0,
          .log_bias = 0.0f, .causal_block = 0, .q_pos0 = 0,
        };
        DIT_TRY (dit_attention (v->be, &ap));
      }
      DIT_TRY (dit_vae_conv_causal (v, &L->c1, NULL, &o, &x, &x));
      return DIT_OK;
    }
    case DIT_VAE_DOWN2D:
    case DIT_VAE_DOWN3D: {
      const int C = L->cin;
      const int a = dit_vae_free_buf (bx, -1, -1);
      dit_tensor ds = dit_vae_frames (v, a, T, h / 2, w / 2, C);
      /* ZeroPad2d(0, 1, 0, 1) + 3x3 stride 2 */
      dit_vae_conv_params p = {
        .x = &x, .weight = &L->c0.w, .bias = &L->c0.b, .y = &ds,
        .kt = 1, .kh = 3, .kw = 3, .st = 1, .sh = 2, .sw = 2,
        .pad_bottom = 1, .pad_right = 1,
      };
      DIT_TRY (dit_vae_conv (v->be, &p));
      *cur = a;
      if (L->kind == DIT_VAE_DOWN2D)
        return DIT_OK;
      if (v->stateless || !L->started) {
        /* first chunk: frame 0 passes through; remember it for the next */
        if (!v->stateless) {
          DIT_TRY (dit_vae_cache_push (v, &L->k0, &ds));
          L->started = 1;
        }
        return DIT_OK;
      }
      if (T < 2)
        return dit_error (DIT_ERR_STATE, "vae encode: downsample3d needs at "
            "least 2 frames after the first chunk (got %lld)", (long long) T);
      const int b = dit_vae_free_buf (bx, a, -1);
      const int64_t to = (1 + T - 3) / 2 + 1;
      dit_tensor y = dit_vae_frames (v, b, to, h / 2, w / 2, C);
      dit_tensor joined;
      DIT_TRY (dit_vae_join_cache (v, &L->k0, 1, &ds, &joined));
      dit_vae_conv_params tp = {
        .x = &joined, .weight = &L->c1.w, .bias = &L->c1.b, .y = &y,
        .kt = 3, .kh = 1, .kw = 1, .st = 2, .sh = 1, .sw = 1,
      };
      DIT_TRY (dit_vae_conv (v->be, &tp));
      DIT_TRY (dit_vae_cache_push (v, &L->k0, &ds));
      *cur = b;
      *t = to;
      return DIT_OK;
    }
    case DIT_VAE_UP2D:
    case DIT_VAE_UP3D: {
      const int C = L->cin;
      int src = bx;
      int64_t T2 = T;
      if (L->kind == DIT_VAE_UP3D) {
        if (!L->started) {
          /* latent 0: no time conv; later chunks see two zero frames */
          DIT_TRY (dit_memset_zero (v->be, L->k0.buf.data,
              dit_tensor_nbytes (&L->k0.buf)));
          L->k0.n = DIT_VAE_CACHE_T;
          L->started = 1;
        } else {
          const int a = dit_vae_free_buf (bx, -1, -1);
          T2 = 2 * T;
          dit_tensor joined;
          DIT_TRY (dit_vae_join_cache (v, &L->k0, L->k0.n, &x, &joined));
          /* two half-convs write frames 2t (channels [0,C)) and 2t+1 */
          for (int half = 0; half < 2; half++) {
            dit_tensor y = dit_vae_frames (v, a, T, h, w, C);
            y.data = (char *) y.data + (size_t) (half * h * w * C)
                * dit_dtype_size (v->dtype);
            y.stride[0] = 2 * h * w * C;
            dit_tensor wh = dit_tensor_rows (&L->c1.w, half * C, C);
            dit_tensor bh = dit_tensor_rows (&L->c1.b, half * C, C);
            dit_vae_conv_params tp = {
              .x = &joined, .weight = &wh, .bias = &bh, .y = &y,
              .kt = 3, .kh = 1, .kw = 1, .st = 1, .sh = 1, .sw = 1,
              .pad_front = DIT_VAE_CACHE_T - L->k0.n,
            };
            DIT_TRY (dit_vae_conv (v->be, &tp));
          }
          DIT_TRY (dit_vae_cache_push (v, &L->k0, &x));
          src = a;
        }
      }
      const int u = dit_vae_free_buf (src, -1, -1), o = dit_vae_free_buf (src, u, -1);
      dit_tensor xin = dit_vae_frames (v, src, T2, h, w, C);
      dit_tensor up = dit_vae_frames (v, u, T2, 2 * h, 2 * w, C);
      dit_tensor y = dit_vae_frames (v, o, T2, 2 * h, 2 * w, C / 2);
      dit_vae_upsample_params upp = { &xin, &up };
      DIT_TRY (dit_vae_upsample (v->be, &upp));
      dit_vae_conv_params p = {
        .x = &up, .weight = &L->c0.w, .bias = &L->c0.b, .y = &y,
        .kt = 1, .kh = 3, .kw = 3, .st = 1, .sh = 1, .sw = 1,
        .pad_top = 1, .pad_bottom = 1, .pad_left = 1, .pad_right = 1,
      };
      DIT_TRY (dit_vae_conv (v->be, &p));
      *cur = o;
      *t = T2;
      return DIT_OK;
    }
  }
  return dit_error (DIT_ERR_INVALID, "vae: unknown layer kind");
}

/* The spec §5.5 affine: encode z = (mu - mean) / std, decode mu = z*std + mean. */
static void
dit_vae_latent_affine (dit_vae_layout_params *p, int encode)
{
  p->affine = 1;
  for (int c = 0; c < 16; c++) {
    if (encode) {
      p->scale[c] = 1.0f / dit_vae_latent_std[c];
      p->shift[c] = -dit_vae_latent_mean[c] / dit_vae_latent_std[c];
    } else {
      p->scale[c] = dit_vae_latent_std[c];
      p->shift[c] = dit_vae_latent_mean[c];
    }
  }
}

dit_status
dit_vae_check_video (const dit_tensor *t, const char *what, int64_t c,
    int64_t T, int64_t h, int64_t w)
{
  if (!t || !t->data)
    return dit_error (DIT_ERR_INVALID, "%s: NULL tensor", what);
  if (t->ndim != 4)
    return dit_error (DIT_ERR_INVALID, "%s: expected a 4-D [C, T, H, W] tensor, "
        "got %d dims", what, t->ndim);
  if (t->shape[0] != c)
    return dit_error (DIT_ERR_INVALID, "%s: %lld channels, expected %lld", what,
        (long long) t->shape[0], (long long) c);
  if (T >= 0 && t->shape[1] != T)
    return dit_error (DIT_ERR_INVALID, "%s: %lld frames, expected %lld", what,
        (long long) t->shape[1], (long long) T);
  if (t->shape[2] != h || t->shape[3] != w)
    return dit_error (DIT_ERR_INVALID, "%s: size %lldx%lld (W x H), expected "
        "%lldx%lld", what, (long long) t->shape[3], (long long) t->shape[2],
        (long long) w, (long long) h);
  return DIT_OK;
}

/* Encoder chunk: pixels [3, T, H, W] -> latent [16, 1, h, w]. */
static dit_status
dit_vae_encode_chunk (dit_vae *v, const dit_tensor *pixels, dit_tensor *latent)
{
  dit_vae_net *net = &v->enc;
  const int64_t T = pixels->shape[1], H = v->height, W = v->width;
  const int z = v->cfg.z_dim;
  dit_tensor xin = dit_vae_frames (v, 0, T, H, W, 3);
  dit_vae_layout_params lp = { .x = pixels, .y = &xin, .to_channels_last = 1 };
  DIT_TRY (dit_vae_layout (v->be, &lp));
  dit_tensor y = dit_vae_frames (v, 1, T, H, W, v->cfg.base_dim);
  DIT_TRY (dit_vae_conv_causal (v, &net->conv_in, &net->k_in, &xin, &y, NULL));
  int cur = 1;
  int64_t t = T;
  for (int i = 0; i < net->n; i++)
    DIT_TRY (dit_vae_layer_forward (v, &net->layers[i], &cur, &t));
  const dit_vae_layer *last = &net->layers[net->n - 1];
  const int co = dit_vae_enc_out_dim (&v->cfg);
  const int a = dit_vae_free_buf (cur, -1, -1), b = dit_vae_free_buf (cur, a, -1);
  dit_tensor x = dit_vae_frames (v, cur, t, last->h, last->w, co);
  dit_tensor xn = dit_vae_frames (v, a, t, last->h, last->w, co);
  dit_tensor hd = dit_vae_frames (v, b, t, last->h, last->w, 2 * z);
  DIT_TRY (dit_vae_norm_run (v, &x, &net->head_gamma, &xn, 1));
  DIT_TRY (dit_vae_conv_causal (v, &net->head, &net->k_head, &xn, &hd, NULL));
  if (t != 1)
    return dit_error (DIT_ERR_STATE, "vae encode: chunk gave %lld latent frames "
        "(expected 1)", (long long) t);
  /* conv1 (2z -> 2z, 1x1x1), keeping only mu = channels [0, z) */
  dit_tensor mu = dit_vae_frames (v, a, 1, last->h, last->w, z);
  dit_tensor wmu = dit_tensor_rows (&net->post.w, 0, z);
  dit_tensor bmu = dit_tensor_rows (&net->post.b, 0, z);
  dit_vae_conv_params pp = { .x = &hd, .weight = &wmu, .bias = &bmu, .y = &mu,
      .kt = 1, .kh = 1, .kw = 1 };
  DIT_TRY (dit_vae_conv (v->be, &pp));
  dit_vae_layout_params op = { .x = &mu, .y = latent, .to_channels_last = 0 };
  dit_vae_latent_affine (&op, 1);
  return dit_vae_layout (v->be, &op);
}

/* Decoder chunk: one latent [16, 1, h, w] -> pixels [3, T, H, W]
 * (a dit_vae_decode_step_fn). */
static dit_status
dit_vae_decode_chunk (void *self, const dit_tensor *latent, dit_tensor *pixels)
{
  dit_vae *v = self;
  dit_vae_net *net = &v->dec;
  const int64_t h = v->height / 8, w = v->width / 8;
  const int z = v->cfg.z_dim;
  dit_tensor zin = dit_vae_frames (v, 0, 1, h, w, z);
  dit_vae_layout_params lp = { .x = latent, .y = &zin, .to_channels_last = 1 };
  dit_vae_latent_affine (&lp, 0);
  DIT_TRY (dit_vae_layout (v->be, &lp));
  dit_tensor x2 = dit_vae_frames (v, 1, 1, h, w, z);
  DIT_TRY (dit_vae_conv_causal (v, &net->post, NULL, &zin, &x2, NULL));
  dit_tensor y = dit_vae_frames (v, 2, 1, h, w, v->cfg.base_dim * v->cfg.dim_mult[3]);
  DIT_TRY (dit_vae_conv_causal (v, &net->conv_in, &net->k_in, &x2, &y, NULL));
  int cur = 2;
  int64_t t = 1;
  for (int i = 0; i < net->n; i++)
    DIT_TRY (dit_vae_layer_forward (v, &net->layers[i], &cur, &t));
  const int co = dit_vae_dec_out_dim (&v->cfg);
  const int a = dit_vae_free_buf (cur, -1, -1), b = dit_vae_free_buf (cur, a, -1);
  const int64_t H = v->height, W = v->width;
  dit_tensor x = dit_vae_frames (v, cur, t, H, W, co);
  dit_tensor xn = dit_vae_frames (v, a, t, H, W, co);
  dit_tensor rgb = dit_vae_frames (v, b, t, H, W, 3);
  DIT_TRY (dit_vae_norm_run (v, &x, &net->head_gamma, &xn, 1));
  DIT_TRY (dit_vae_conv_causal (v, &net->head, &net->k_head, &xn, &rgb, NULL));
  if (t != pixels->shape[1])
    return dit_error (DIT_ERR_STATE, "vae decode: chunk gave %lld frames, "
        "expected %lld", (long long) t, (long long) pixels->shape[1]);
  dit_vae_layout_params op = { .x = &rgb, .y = pixels, .to_channels_last = 0,
      .clamp = 1, .clamp_lo = -1.0f, .clamp_hi = 1.0f };
  return dit_vae_layout (v->be, &op);
}

dit_tensor
dit_vae_video_frames (const dit_tensor *t, int64_t f0, int64_t n)
{
  dit_tensor s = *t;
  s.data = (char *) t->data + (size_t) (f0 * t->stride[1]) * dit_dtype_size (t->dtype);
  s.shape[1] = n;
  return s;
}

/* ---------------------------------------------------------------------------
 * public entry points */

int
dit_vae_encode_frames (const dit_vae *v)
{
  return v && v->enc_chunks > 0 ? 4 : 1;
}

int64_t
dit_vae_stream_frames (int64_t decoded, int64_t n_latents)
{
  if (n_latents <= 0)
    return 0;
  return decoded > 0 ? 4 * n_latents : 4 * n_latents - 3;
}

int64_t
dit_vae_decode_frames (const dit_vae *v, int64_t n_latents)
{
  return v ? dit_vae_stream_frames (v->dec_latents, n_latents) : 0;
}

dit_status
dit_vae_decode_stream (const dit_tensor *latent, dit_tensor *pixels,
    int64_t *decoded, dit_vae_decode_step_fn step, void *net)
{
  int64_t t0 = 0;
  for (int64_t f = 0; f < latent->shape[1]; f++) {
    const int64_t n = dit_vae_stream_frames (*decoded, 1);
    dit_tensor lat = dit_vae_video_frames (latent, f, 1);
    dit_tensor px = dit_vae_video_frames (pixels, t0, n);
    DIT_TRY (step (net, &lat, &px));
    (*decoded)++;
    t0 += n;
  }
  return DIT_OK;
}

dit_status
dit_vae_check_offline (const char *what, const dit_tensor *pixels,
    const dit_tensor *latents, int64_t z, int64_t H, int64_t W)
{
  char label[96];
  snprintf (label, sizeof label, "%s: pixels", what);
  DIT_TRY (dit_vae_check_video (pixels, label, 3, -1, H, W));
  const int64_t T = pixels->shape[1];
  if (T < 1 || (T - 1) % 4 != 0)
    return dit_error (DIT_ERR_INVALID, "%s: %lld frames; an offline encode "
        "needs T = 1 + 4k", what, (long long) T);
  snprintf (label, sizeof label, "%s: latents", what);
  return dit_vae_check_video (latents, label, z, 1 + (T - 1) / 4, H / 8,
      W / 8);
}

dit_tensor
dit_vae_stream_group (const dit_tensor *pixels, int64_t g)
{
  return dit_vae_video_frames (pixels, g == 0 ? 0 : 1 + 4 * (g - 1),
      g == 0 ? 1 : 4);
}

dit_status
dit_vae_encode (dit_vae *v, const dit_tensor *pixels, dit_tensor *latent)
{
  if (!v)
    return dit_error (DIT_ERR_INVALID, "vae encode: NULL vae");
  const int64_t want = dit_vae_encode_frames (v);
  if (pixels && pixels->ndim == 4 && pixels->shape[0] == 3 && pixels->shape[1] != want)
    return dit_error (DIT_ERR_INVALID, "vae encode: %lld frames, but the %s "
        "chunk of a stream takes %lld (frame 0 alone, then chunks of 4)",
        (long long) pixels->shape[1], v->enc_chunks ? "next" : "first",
        (long long) want);
  DIT_TRY (dit_vae_check_video (pixels, "vae encode: pixels", 3, want,
      v->height, v->width));
  DIT_TRY (dit_vae_check_video (latent, "vae encode: latent", v->cfg.z_dim, 1,
      v->height / 8, v->width / 8));
  dit_status st = dit_vae_encode_chunk (v, pixels, latent);
  if (st != DIT_OK) {
    /* a half-updated cache would make every later chunk wrong */
    dit_vae_reset_encoder (v);
    return dit_error_prefix (st, "vae encode (stream reset)");
  }
  v->enc_chunks++;
  return DIT_OK;
}

dit_status
dit_vae_encode_offline (dit_vae *v, const dit_tensor *pixels, dit_tensor *latents)
{
  if (!v)
    return dit_error (DIT_ERR_INVALID, "vae encode: NULL vae");
  DIT_TRY (dit_vae_check_offline ("vae encode", pixels, latents, v->cfg.z_dim,
      v->height, v->width));
  dit_vae_reset_encoder (v);
  for (int64_t f = 0; f < latents->shape[1]; f++) {
    dit_tensor px = dit_vae_stream_group (pixels, f);
    dit_tensor lat = dit_vae_video_frames (latents, f, 1);
    DIT_TRY (dit_vae_encode (v, &px, &lat));
  }
  return DIT_OK;
}

dit_status
dit_vae_decode (dit_vae *v, const dit_tensor *latent, dit_tensor *pixels)
{
  if (!v)
    return dit_error (DIT_ERR_INVALID, "vae decode: NULL vae");
  DIT_TRY (dit_vae_check_video (latent, "vae decode: latent", v->cfg.z_dim, -1,
      v->height / 8, v->width / 8));
  const int64_t F = latent->shape[1];
  const int64_t T = dit_vae_decode_frames (v, F);
  DIT_TRY (dit_vae_check_video (pixels, "vae decode: pixels", 3, T, v->height,
      v->width));
  dit_status st = dit_vae_decode_stream (latent, pixels, &v->dec_latents,
      dit_vae_decode_chunk, v);
  if (st != DIT_OK) {
    dit_vae_reset_decoder (v);
    return dit_error_prefix (st, "vae decode (stream reset)");
  }
  return DIT_OK;
}

dit_status
dit_vae_encode_anchor (dit_vae *v, const dit_tensor *frame, dit_tensor *latent)
{
  if (!v)
    return dit_error (DIT_ERR_INVALID, "vae anchor: NULL vae");
  DIT_TRY (dit_vae_check_video (frame, "vae anchor: frame", 3, 1, v->height,
      v->width));
  DIT_TRY (dit_vae_check_video (latent, "vae anchor: latent", v->cfg.z_dim, 1,
      v->height / 8, v->width / 8));
  v->stateless = 1;
  dit_status st = dit_vae_encode_chunk (v, frame, latent);
  v->stateless = 0;
  if (st != DIT_OK)
    return dit_error_prefix (st, "vae anchor encode");
  return DIT_OK;
}

static void
dit_vae_reset_net (dit_vae_net *net)
{
  net->k_in.n = 0;
  net->k_head.n = 0;
  for (int i = 0; i < net->n; i++) {
    net->layers[i].k0.n = 0;
    net->layers[i].k1.n = 0;
    net->layers[i].started = 0;
  }
}

void
dit_vae_reset_encoder (dit_vae *v)
{
  if (!v)
    return;
  dit_vae_reset_net (&v->enc);
  v->enc_chunks = 0;
}

void
dit_vae_reset_decoder (dit_vae *v)
{
  if (!v)
    return;
  dit_vae_reset_net (&v->dec);
  v->dec_latents = 0;
}

size_t
dit_vae_state_bytes (const dit_vae *v)
{
  return v ? v->state_bytes : 0;
}

size_t
dit_vae_workspace_bytes (const dit_vae *v)
{
  return v ? (size_t) DIT_VAE_NBUF * (size_t) (v->head_elems + v->buf_elems)
      * dit_dtype_size (v->dtype) : 0;
}
