/* dit_taehv — the TAEHV tiny autoencoder (dit_taehv.h) on the VAE ops.
 *
 * Layout.  Activations are channels-last frames [T, H, W, C] like the full
 * VAE's (kernels/dit_vae_ops.h), so every conv is the one VAE conv op and
 * goes through the backend's conv choice (on CUDA: cuDNN where it applies,
 * else the pipelined tensor-core kernel).
 *
 * MemBlocks without a concatenation.  conv([x, past]) over 2C channels is
 * a (2, 3, 3) time conv over C channels: tap dt = 0 reads the previous
 * frame (checkpoint input channels [C, 2C)), dt = 1 the current one
 * (channels [0, C)).  Each MemBlock owns an input buffer [1 + T, H, W, C]
 * whose frame 0 is its state — the input it saw last (zeros after a
 * reset) — and whose frames 1..T the previous layer writes; the time conv
 * runs over all 1 + T frames with no cache argument, so the cache is
 * adjacent to the chunk's frames and no backend needs a staging copy.
 * After the block, frame T is copied to frame 0: one frame per block and
 * call is the whole cost of streaming, and it is why streaming equals one
 * pass over the sequence.
 *
 * Folded 1x1 convs.  TGrow and TPool are bias-free 1x1 convs next to a
 * bias-free 3x3 conv with only linear ops (nearest upsample, zero padding)
 * between, so they are multiplied into that conv's weights at create time
 * (in f64): decoder, conv ∘ TGrow half j is a 3x3 conv per output frame
 * parity j, written straight into interleaved frames (frame stride 2); and
 * since a 1x1 conv commutes with the nearest upsample, the TGrow never runs
 * at the upsampled size.  Encoder, conv ∘ TPool is a (2, 3, 3) conv with
 * time stride 2 over frame pairs (spatial stride 2, padding 1).  The
 * network's ReLUs are the conv epilogue, MemBlock's skip add its residual,
 * the input 3 tanh(x / 3), the LightTAE latent affine and the [0, 1] <->
 * [-1, 1] pixel maps are the layout op at the edges.
 *
 * Trimmed frames.  The decoder's first three frames of a stream are
 * dropped (dit_taehv.h); the last stage has no MemBlock, so for latent 0
 * it computes only the one frame that is kept.
 *
 * Memory.  Per MemBlock one [1 + T] buffer (frame 0 is the state), shared
 * temporaries sized for the largest stage, the decoder's last stage per
 * pre-upsample frame (2 output frames at a time) and the encoder's first
 * conv per frame pair; all allocated at create, nothing after.
 *
 * Precision.  f32 on the CPU (the reference tests' precision), the
 * requested storage dtype (bf16 on GPUs) elsewhere; the ops accumulate in
 * f32.  Folding changes the summation order only (f64 products, rounded
 * once to f32).
 */
#include "dit_taehv.h"
#include "dit_loader.h"
#include "dit_vae.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAEHV_STAGES 3
#define TAEHV_BLOCKS 3

/* TPool strides of the encoder stages and TGrow strides of the decoder
 * stages of taew2_1 (taehv.py: encoder_time_downscale (True, True, False),
 * decoder_time_upscale (False, True, True)). */
static const int taehv_pool[TAEHV_STAGES] = { 2, 2, 1 };
static const int taehv_grow[TAEHV_STAGES] = { 1, 2, 2 };

/* Wan 2.1 latent statistics (spec §5.5); LightTAE decodes z * std + mean. */
static const float taehv_latent_mean[16] = {
  -0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
  0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f,
};
static const float taehv_latent_std[16] = {
  2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
  3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f,
};

/* ---------------------------------------------------------------------------
 * configuration and parameter names */

typedef struct taehv_preset {
  const char *name;
  int enc_dim;
  int dec_dim[4];
  int latent_raw;
} taehv_preset;

static const taehv_preset taehv_presets[] = {
  { "taew2_1", 64, { 256, 128, 64, 64 }, 0 },
  { "lighttaew2_1", 64, { 256, 128, 64, 64 }, 1 },
  { "taehv-tiny", 8, { 32, 16, 8, 8 }, 0 },
};
#define TAEHV_NPRESETS (sizeof taehv_presets / sizeof taehv_presets[0])

dit_status
dit_taehv_config_preset (const char *name, dit_taehv_config *cfg)
{
  if (!name || !cfg)
    return dit_error (DIT_ERR_INVALID, "taehv config: NULL preset name");
  for (size_t i = 0; i < TAEHV_NPRESETS; i++) {
    const taehv_preset *p = &taehv_presets[i];
    if (strcmp (name, p->name) != 0)
      continue;
    memset (cfg, 0, sizeof *cfg);
    snprintf (cfg->name, sizeof cfg->name, "%s", p->name);
    cfg->z_dim = 16;
    cfg->enc_dim = p->enc_dim;
    memcpy (cfg->dec_dim, p->dec_dim, sizeof cfg->dec_dim);
    cfg->latent_raw = p->latent_raw;
    return DIT_OK;
  }
  return dit_error (DIT_ERR_INVALID, "taehv config: unknown preset '%s' "
      "(known: taew2_1, lighttaew2_1, taehv-tiny)", name);
}

const char *const *
dit_taehv_config_preset_names (void)
{
  static const char *const names[] = { "taew2_1", "lighttaew2_1", "taehv-tiny",
    NULL };
  return names;
}

static dit_status
taehv_config_check (const dit_taehv_config *cfg)
{
  if (!cfg)
    return dit_error (DIT_ERR_INVALID, "taehv config: NULL");
  if (cfg->z_dim != 16)
    return dit_error (DIT_ERR_INVALID, "taehv config '%s': %d latent channels "
        "(the Wan 2.1 variant has 16)", cfg->name, cfg->z_dim);
  if (cfg->enc_dim < 1 || cfg->enc_dim > 4096)
    return dit_error (DIT_ERR_INVALID, "taehv config '%s': encoder width %d",
        cfg->name, cfg->enc_dim);
  for (int i = 0; i < 4; i++)
    if (cfg->dec_dim[i] < 1 || cfg->dec_dim[i] > 4096)
      return dit_error (DIT_ERR_INVALID, "taehv config '%s': decoder width "
          "%d = %d", cfg->name, i, cfg->dec_dim[i]);
  return DIT_OK;
}

/* conv weight [out, in, k, k] (+ bias [out]) */
static void
taehv_pconv (dit_param_list *l, const char *prefix, int out, int in, int k,
    int bias)
{
  const int64_t ws[4] = { out, in, k, k }, bs[1] = { out };
  dit_param_list_add (l, 4, ws, "%s.weight", prefix);
  if (bias)
    dit_param_list_add (l, 1, bs, "%s.bias", prefix);
}

static void
taehv_pmem (dit_param_list *l, const char *part, int index, int c)
{
  char nm[64];
  snprintf (nm, sizeof nm, "%s.%d.conv.0", part, index);
  taehv_pconv (l, nm, c, 2 * c, 3, 1);
  snprintf (nm, sizeof nm, "%s.%d.conv.2", part, index);
  taehv_pconv (l, nm, c, c, 3, 1);
  snprintf (nm, sizeof nm, "%s.%d.conv.4", part, index);
  taehv_pconv (l, nm, c, c, 3, 1);
}

/* nn.Sequential indices (dit_taehv.h) */
static int taehv_enc_pool_index (int s) { return 2 + 5 * s; }
static int taehv_enc_conv_index (int s) { return 3 + 5 * s; }
static int taehv_enc_mem_index (int s, int b) { return 4 + 5 * s + b; }
static int taehv_dec_mem_index (int s, int b) { return 3 + 6 * s + b; }
static int taehv_dec_grow_index (int s) { return 7 + 6 * s; }
static int taehv_dec_conv_index (int s) { return 8 + 6 * s; }

dit_status
dit_taehv_config_params (const dit_taehv_config *cfg, dit_param_spec **specs,
    size_t *count)
{
  DIT_TRY (taehv_config_check (cfg));
  if (!specs || !count)
    return dit_error (DIT_ERR_INVALID, "taehv config params: NULL output");
  dit_param_list l = { 0 };
  const int e = cfg->enc_dim, z = cfg->z_dim;
  const int *d = cfg->dec_dim;
  char nm[64];

  taehv_pconv (&l, "encoder.0", e, 3, 3, 1);
  for (int s = 0; s < TAEHV_STAGES; s++) {
    snprintf (nm, sizeof nm, "encoder.%d.conv", taehv_enc_pool_index (s));
    taehv_pconv (&l, nm, e, e * taehv_pool[s], 1, 0);
    snprintf (nm, sizeof nm, "encoder.%d", taehv_enc_conv_index (s));
    taehv_pconv (&l, nm, e, e, 3, 0);
    for (int b = 0; b < TAEHV_BLOCKS; b++)
      taehv_pmem (&l, "encoder", taehv_enc_mem_index (s, b), e);
  }
  taehv_pconv (&l, "encoder.17", z, e, 3, 1);

  taehv_pconv (&l, "decoder.1", d[0], z, 3, 1);
  for (int s = 0; s < TAEHV_STAGES; s++) {
    for (int b = 0; b < TAEHV_BLOCKS; b++)
      taehv_pmem (&l, "decoder", taehv_dec_mem_index (s, b), d[s]);
    snprintf (nm, sizeof nm, "decoder.%d.conv", taehv_dec_grow_index (s));
    taehv_pconv (&l, nm, d[s] * taehv_grow[s], d[s], 1, 0);
    snprintf (nm, sizeof nm, "decoder.%d", taehv_dec_conv_index (s));
    taehv_pconv (&l, nm, d[s + 1], d[s], 3, 0);
  }
  taehv_pconv (&l, "decoder.22", 3, d[3], 3, 1);
  if (l.oom) {
    free (l.v);
    return dit_error (DIT_ERR_NOMEM, "taehv config params: out of memory");
  }
  *specs = l.v;
  *count = l.n;
  return DIT_OK;
}

/* Output channels of a 4-D conv weight in the file, or -1. */
static int64_t
taehv_out_channels (const dit_safetensors *st, const char *name)
{
  const dit_st_tensor *t = dit_safetensors_find (st, name);
  return t && t->ndim == 4 ? t->shape[0] : -1;
}

const char *
dit_taehv_config_detect (const dit_safetensors *st, char *seen,
    size_t seen_size)
{
  const int64_t e = taehv_out_channels (st, "encoder.0.weight");
  const int64_t d0 = taehv_out_channels (st, "decoder.1.weight");
  const int64_t d1 = taehv_out_channels (st, "decoder.8.weight");
  const int64_t d2 = taehv_out_channels (st, "decoder.14.weight");
  const int64_t d3 = taehv_out_channels (st, "decoder.20.weight");
  if (seen)
    snprintf (seen, seen_size, "encoder width %lld, decoder widths %lld, "
        "%lld, %lld, %lld", (long long) e, (long long) d0, (long long) d1,
        (long long) d2, (long long) d3);
  for (size_t i = 0; i < TAEHV_NPRESETS; i++) {
    const taehv_preset *p = &taehv_presets[i];
    if (e == p->enc_dim && d0 == p->dec_dim[0] && d1 == p->dec_dim[1]
        && d2 == p->dec_dim[2] && d3 == p->dec_dim[3])
      return p->name;
  }
  return NULL;
}

static int
taehv_name_says_light (const char *path)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  for (const char *p = base; *p; p++) {
    const char *a = p, *b = "lighttae";
    while (*a && *b && tolower ((unsigned char) *a) == *b) {
      a++;
      b++;
    }
    if (!*b)
      return 1;
  }
  return 0;
}

dit_status
dit_taehv_config_of_path (const char *path, dit_taehv_config *cfg)
{
  dit_safetensors *st = NULL;
  char seen[160];
  DIT_TRY (dit_safetensors_open (path, &st));
  const char *preset = dit_taehv_config_detect (st, seen, sizeof seen);
  dit_status s = DIT_OK;
  if (!preset) {
    const char *kind = dit_checkpoint_kind_of (st);
    if (kind && strcmp (kind, DIT_CHECKPOINT_TAEHV) != 0)
      s = dit_error (DIT_ERR_FORMAT, "%s: not a TAEHV checkpoint: it looks like "
          "%s", path, kind);
    else
      s = dit_error (DIT_ERR_FORMAT, "%s: not a TAEHV checkpoint of a known "
          "width (%s; presets taew2_1, taehv-tiny)", path, seen);
  }
  const char *lat = dit_safetensors_metadata (st, "latents");
  if (s == DIT_OK && lat && strcmp (lat, "raw") != 0
      && strcmp (lat, "normalised") != 0)
    s = dit_error (DIT_ERR_FORMAT, "%s: metadata latents='%s' (expected raw or "
        "normalised)", path, lat);
  if (s == DIT_OK)
    s = dit_taehv_config_preset (preset, cfg);
  if (s == DIT_OK)
    cfg->latent_raw = lat ? strcmp (lat, "raw") == 0 : taehv_name_says_light (path);
  dit_safetensors_close (st);
  return s;
}

/* ---------------------------------------------------------------------------
 * model state */

typedef struct taehv_conv {
  dit_tensor w;          /* [Cout, kt*3*3*Cin] (or [Cout, Cin] for none) */
  dit_tensor b;          /* [Cout]; data NULL: no bias */
  int kt;
} taehv_conv;

typedef struct taehv_stage {
  int c, t;              /* channels, frames per call */
  int64_t h, w;
  taehv_conv mem[TAEHV_BLOCKS][3];
  dit_tensor in[TAEHV_BLOCKS];   /* [1 + t, h, w, c]; frame 0 = last input */
} taehv_stage;

typedef struct taehv_net {
  int built;
  taehv_conv conv_in, conv_out;
  taehv_conv link[TAEHV_STAGES][2];  /* enc: conv ∘ TPool; dec: conv ∘ TGrow half */
  taehv_stage st[TAEHV_STAGES];
} taehv_net;

struct dit_taehv {
  dit_taehv_config cfg;
  dit_backend *be;
  dit_dtype dtype;
  int width, height;
  taehv_net enc, dec;
  /* workspace, one flat buffer each, viewed as frames of any shape */
  dit_tensor ws_a, ws_b;   /* MemBlock temporaries; a stage's output in a */
  dit_tensor ws_up;        /* dec: upsampled stage output; enc: first conv */
  dit_tensor ws_y, ws_rgb; /* dec last stage: [2, H, W, D3], [2, H, W, 3] */
  dit_tensor ws_z;         /* [1, h, w, 16] */
  dit_tensor group;        /* enc [4, H, W, 3] in [0, 1]; frame 0 pending */
  int64_t dec_latents;
  int64_t enc_calls;
  int enc_flushed;
  size_t state_bytes, ws_bytes;
  dit_vae_buffers mem;     /* every allocation, for free */
};

static dit_status
taehv_alloc_flat (dit_taehv *t, dit_tensor *out, int64_t elems)
{
  int64_t s[1] = { elems > 0 ? elems : 1 };
  DIT_TRY (dit_vae_buffers_alloc (&t->mem, out, 1, s));
  t->ws_bytes += dit_tensor_nbytes (out);
  return DIT_OK;
}

/* Frames [f0, f0 + n) of shape [h, w, c] over flat or frame buffer b. */
static dit_tensor
taehv_frames (const dit_tensor *b, int64_t f0, int64_t n, int64_t h, int64_t w,
    int64_t c)
{
  int64_t s[4] = { n, h, w, c };
  return dit_tensor_make ((char *) b->data
      + (size_t) (f0 * h * w * c) * dit_dtype_size (b->dtype), b->dtype,
      b->device, 4, s);
}

/* A checkpoint tensor as host f32 with exactly `shape` (4-D, or 1-D when
 * shape[1] == 0). */
static dit_status
taehv_fetch (dit_taehv *t, const dit_weights *w, const char *name,
    const int64_t shape[4], float **host)
{
  const dit_tensor *src;
  DIT_TRY (dit_weights_require (w, name, &src));
  const int ndim = shape[1] ? 4 : 1;
  int ok = src->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++)
    ok = src->shape[i] == shape[i];
  if (!ok)
    return dit_error (DIT_ERR_INVALID, "taehv '%s': weight '%s' has another "
        "shape than [%lld, %lld, %lld, %lld] (checkpoint of another width?)",
        t->cfg.name, name, (long long) shape[0], (long long) shape[1],
        (long long) shape[2], (long long) shape[3]);
  dit_status st = dit_weights_read_f32 (w, name, host);
  return st == DIT_OK ? DIT_OK : dit_error_prefix (st, "taehv");
}

/* A conv from host weights already in [Cout, kt*3*3*Cin] order. */
static dit_status
taehv_conv_make (dit_taehv *t, const float *wt, const float *bias, int cout,
    int64_t k, int kt, taehv_conv *c)
{
  int64_t ws[2] = { cout, k };
  c->kt = kt;
  DIT_TRY (dit_vae_buffers_upload (&t->mem, &c->w, 2, ws, wt));
  memset (&c->b, 0, sizeof c->b);
  if (bias) {
    int64_t bs[1] = { cout };
    DIT_TRY (dit_vae_buffers_upload (&t->mem, &c->b, 1, bs, bias));
  }
  return DIT_OK;
}

/* Checkpoint 3x3 conv [cout, kt * cin, 3, 3] + bias as a (kt, 3, 3) conv
 * over cin channels, reordered to [cout, kt, 3, 3, cin].  kt = 1: a plain
 * conv.  kt = 2: MemBlock conv.0, whose input is the concatenation [x, past]
 * (taehv.py), so tap 0 (the previous frame) reads input channels
 * [cin, 2 cin) and tap 1 (the current one) [0, cin): tap dt reads the
 * channel block kt - 1 - dt. */
static dit_status
taehv_load_conv (dit_taehv *t, const dit_weights *w, const char *prefix,
    int cout, int cin, int kt, taehv_conv *c)
{
  char nm[160];
  const int64_t ws[4] = { cout, (int64_t) kt * cin, 3, 3 };
  const int64_t bs[4] = { cout, 0, 0, 0 };
  float *src = NULL, *bias = NULL;
  snprintf (nm, sizeof nm, "%s.weight", prefix);
  DIT_TRY (taehv_fetch (t, w, nm, ws, &src));
  snprintf (nm, sizeof nm, "%s.bias", prefix);
  dit_status st = taehv_fetch (t, w, nm, bs, &bias);
  const size_t n = (size_t) cout * kt * 9 * cin;
  float *dst = st == DIT_OK ? malloc (n * sizeof *dst) : NULL;
  if (st == DIT_OK && !dst)
    st = dit_error (DIT_ERR_NOMEM, "taehv: out of memory");
  if (st == DIT_OK) {
    for (int o = 0; o < cout; o++)
      for (int dt = 0; dt < kt; dt++)
        for (int k = 0; k < 9; k++)
          for (int i = 0; i < cin; i++) {
            const int ci = (kt - 1 - dt) * cin + i;
            dst[(((size_t) o * kt + dt) * 9 + k) * cin + i]
                = src[((size_t) o * kt * cin + ci) * 9 + k];
          }
    st = taehv_conv_make (t, dst, bias, cout, (int64_t) kt * 9 * cin, kt, c);
  }
  free (dst);
  free (src);
  free (bias);
  return st;
}

/* conv (3x3 [co, m, 3, 3]) ∘ 1x1 [m, kt * ci] as one (kt, 3, 3) conv over
 * ci channels: W'[o, dt, k, i] = sum_m conv[o, m, k] * one[m, dt * ci + i].
 * `rows` selects rows [r0, r0 + m) of a taller 1x1 weight (TGrow halves). */
static dit_status
taehv_fold (dit_taehv *t, const float *conv, int co, int m, const float *one,
    int r0, int kt, int ci, taehv_conv *out)
{
  float *dst = malloc ((size_t) co * kt * 9 * ci * sizeof *dst);
  if (!dst)
    return dit_error (DIT_ERR_NOMEM, "taehv: out of memory");
  const int ldo = kt * ci;
  for (int o = 0; o < co; o++)
    for (int dt = 0; dt < kt; dt++)
      for (int k = 0; k < 9; k++)
        for (int i = 0; i < ci; i++) {
          double acc = 0.0;
          for (int j = 0; j < m; j++)
            acc += (double) conv[((size_t) o * m + j) * 9 + k]
                * one[(size_t) (r0 + j) * ldo + dt * ci + i];
          dst[(((size_t) o * kt + dt) * 9 + k) * ci + i] = (float) acc;
        }
  dit_status st = taehv_conv_make (t, dst, NULL, co, (int64_t) kt * 9 * ci,
      kt, out);
  free (dst);
  return st;
}

static dit_status
taehv_make_stage (dit_taehv *t, const dit_weights *w, const char *part,
    int (*mem_index) (int, int), int s, int c, int frames, int64_t h,
    int64_t wd, taehv_stage *S)
{
  char nm[48];
  S->c = c;
  S->t = frames;
  S->h = h;
  S->w = wd;
  for (int b = 0; b < TAEHV_BLOCKS; b++) {
    const int idx = mem_index (s, b);
    snprintf (nm, sizeof nm, "%s.%d.conv.0", part, idx);
    DIT_TRY (taehv_load_conv (t, w, nm, c, c, 2, &S->mem[b][0]));
    snprintf (nm, sizeof nm, "%s.%d.conv.2", part, idx);
    DIT_TRY (taehv_load_conv (t, w, nm, c, c, 1, &S->mem[b][1]));
    snprintf (nm, sizeof nm, "%s.%d.conv.4", part, idx);
    DIT_TRY (taehv_load_conv (t, w, nm, c, c, 1, &S->mem[b][2]));
    int64_t shape[4] = { 1 + frames, h, wd, c };
    DIT_TRY (dit_vae_buffers_alloc (&t->mem, &S->in[b], 4, shape));
    DIT_TRY (dit_memset_zero (t->be, S->in[b].data,
        dit_tensor_nbytes (&S->in[b])));
    t->state_bytes += (size_t) (h * wd * c) * dit_dtype_size (t->dtype);
  }
  return DIT_OK;
}

static void
taehv_need (int64_t *have, int64_t n)
{
  if (n > *have)
    *have = n;
}

/* Workspace needs, in elements. */
typedef struct taehv_sizes {
  int64_t ab, up, y, rgb;
} taehv_sizes;

static dit_status
taehv_build_encoder (dit_taehv *t, const dit_weights *w, taehv_sizes *sz)
{
  taehv_net *net = &t->enc;
  const int e = t->cfg.enc_dim, z = t->cfg.z_dim;
  const int64_t H = t->height, W = t->width;
  char nm[96];
  DIT_TRY (taehv_load_conv (t, w, "encoder.0", e, 3, 1, &net->conv_in));
  int frames = 4;
  int64_t h = H, wd = W;
  for (int s = 0; s < TAEHV_STAGES; s++) {
    const int kt = taehv_pool[s];
    const int64_t ps[4] = { e, (int64_t) e * kt, 1, 1 };
    const int64_t cs[4] = { e, e, 3, 3 };
    float *pool = NULL, *conv = NULL;
    snprintf (nm, sizeof nm, "encoder.%d.conv.weight", taehv_enc_pool_index (s));
    DIT_TRY (taehv_fetch (t, w, nm, ps, &pool));
    snprintf (nm, sizeof nm, "encoder.%d.weight", taehv_enc_conv_index (s));
    dit_status st = taehv_fetch (t, w, nm, cs, &conv);
    if (st == DIT_OK)
      st = taehv_fold (t, conv, e, e, pool, 0, kt, e, &net->link[s][0]);
    free (pool);
    free (conv);
    DIT_TRY (st);
    frames /= kt;
    h /= 2;
    wd /= 2;
    DIT_TRY (taehv_make_stage (t, w, "encoder", taehv_enc_mem_index, s, e, frames, h,
        wd, &net->st[s]));
    taehv_need (&sz->ab, frames * h * wd * e);
  }
  DIT_TRY (taehv_load_conv (t, w, "encoder.17", z, e, 1, &net->conv_out));
  /* the first conv runs on one frame pair */
  taehv_need (&sz->up, 2 * H * W * e);
  int64_t gs[4] = { 4, H, W, 3 };
  DIT_TRY (dit_vae_buffers_alloc (&t->mem, &t->group, 4, gs));
  t->state_bytes += (size_t) (H * W * 3) * dit_dtype_size (t->dtype);
  net->built = 1;
  return DIT_OK;
}

static dit_status
taehv_build_decoder (dit_taehv *t, const dit_weights *w, taehv_sizes *sz)
{
  taehv_net *net = &t->dec;
  const int *d = t->cfg.dec_dim;
  const int z = t->cfg.z_dim;
  char nm[96];
  DIT_TRY (taehv_load_conv (t, w, "decoder.1", d[0], z, 1, &net->conv_in));
  int frames = 1;
  int64_t h = t->height / 8, wd = t->width / 8;
  for (int s = 0; s < TAEHV_STAGES; s++) {
    DIT_TRY (taehv_make_stage (t, w, "decoder", taehv_dec_mem_index, s, d[s], frames,
        h, wd, &net->st[s]));
    taehv_need (&sz->ab, frames * h * wd * d[s]);
    const int g = taehv_grow[s];
    const int64_t gs[4] = { (int64_t) d[s] * g, d[s], 1, 1 };
    const int64_t cs[4] = { d[s + 1], d[s], 3, 3 };
    float *grow = NULL, *conv = NULL;
    snprintf (nm, sizeof nm, "decoder.%d.conv.weight", taehv_dec_grow_index (s));
    DIT_TRY (taehv_fetch (t, w, nm, gs, &grow));
    snprintf (nm, sizeof nm, "decoder.%d.weight", taehv_dec_conv_index (s));
    dit_status st = taehv_fetch (t, w, nm, cs, &conv);
    for (int j = 0; st == DIT_OK && j < g; j++)
      st = taehv_fold (t, conv, d[s + 1], d[s], grow, j * d[s], 1, d[s],
          &net->link[s][j]);
    free (grow);
    free (conv);
    DIT_TRY (st);
    /* the upsample runs on the stage's frames, the last stage's on one */
    taehv_need (&sz->up, (s < 2 ? frames : 1) * 4 * h * wd * d[s]);
    frames *= g;
    h *= 2;
    wd *= 2;
  }
  DIT_TRY (taehv_load_conv (t, w, "decoder.22", 3, d[3], 1, &net->conv_out));
  taehv_need (&sz->y, 2 * h * wd * d[3]);
  taehv_need (&sz->rgb, 2 * h * wd * 3);
  net->built = 1;
  return DIT_OK;
}

void
dit_taehv_free (dit_taehv *t)
{
  if (!t)
    return;
  dit_vae_buffers_free (&t->mem);
  free (t);
}

dit_status
dit_taehv_create (const dit_taehv_config *cfg, const dit_weights *w, int width,
    int height, dit_dtype dtype, unsigned parts, dit_backend *be,
    dit_taehv **out)
{
  if (!out)
    return dit_error (DIT_ERR_INVALID, "taehv create: NULL output");
  *out = NULL;
  DIT_TRY (taehv_config_check (cfg));
  DIT_TRY (dit_vae_check_create ("taehv create", w, be, width, height, 8));
  if (!(parts & (DIT_TAEHV_DECODER | DIT_TAEHV_ENCODER)))
    return dit_error (DIT_ERR_INVALID, "taehv create: neither decoder nor "
        "encoder asked for");
  dit_taehv *t = calloc (1, sizeof *t);
  if (!t)
    return dit_error (DIT_ERR_NOMEM, "taehv create: out of memory");
  t->cfg = *cfg;
  t->be = be;
  t->width = width;
  t->height = height;
  t->dtype = dit_backend_device (be) == DIT_DEVICE_CPU ? DIT_F32 : dtype;
  t->mem = (dit_vae_buffers) { .be = be, .dtype = t->dtype, .who = "taehv" };
  taehv_sizes sz = { 0 };
  dit_status st = DIT_OK;
  if (parts & DIT_TAEHV_ENCODER)
    st = taehv_build_encoder (t, w, &sz);
  if (st == DIT_OK && (parts & DIT_TAEHV_DECODER))
    st = taehv_build_decoder (t, w, &sz);
  if (st == DIT_OK)
    st = taehv_alloc_flat (t, &t->ws_a, sz.ab);
  if (st == DIT_OK)
    st = taehv_alloc_flat (t, &t->ws_b, sz.ab);
  if (st == DIT_OK)
    st = taehv_alloc_flat (t, &t->ws_up, sz.up);
  if (st == DIT_OK && t->dec.built)
    st = taehv_alloc_flat (t, &t->ws_y, sz.y);
  if (st == DIT_OK && t->dec.built)
    st = taehv_alloc_flat (t, &t->ws_rgb, sz.rgb);
  if (st == DIT_OK)
    st = taehv_alloc_flat (t, &t->ws_z, (int64_t) (height / 8) * (width / 8)
        * cfg->z_dim);
  if (st != DIT_OK) {
    dit_taehv_free (t);
    return st;
  }
  *out = t;
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * forward */

/* 3x3 conv (padding 1, spatial stride s) of c over x into y. */
static dit_status
taehv_conv_run (dit_taehv *t, const taehv_conv *c, const dit_tensor *x,
    dit_tensor *y, int stride, int tstride, const dit_tensor *residual,
    int relu)
{
  dit_vae_conv_params p = {
    .x = x, .weight = &c->w, .bias = c->b.data ? &c->b : NULL,
    .residual = residual, .y = y, .kt = c->kt, .kh = 3, .kw = 3,
    .st = tstride, .sh = stride, .sw = stride,
    .pad_top = 1, .pad_bottom = 1, .pad_left = 1, .pad_right = 1,
    .relu = relu,
  };
  return dit_vae_conv (t->be, &p);
}

/* The three MemBlocks of stage S; its input is in S->in[0] frames 1..T,
 * its output lands in ws_a [T, h, w, c]. */
static dit_status
taehv_run_stage (dit_taehv *t, taehv_stage *S)
{
  const int64_t T = S->t, h = S->h, w = S->w, c = S->c;
  dit_tensor a = taehv_frames (&t->ws_a, 0, T, h, w, c);
  dit_tensor b = taehv_frames (&t->ws_b, 0, T, h, w, c);
  for (int k = 0; k < TAEHV_BLOCKS; k++) {
    dit_tensor all = taehv_frames (&S->in[k], 0, T + 1, h, w, c);
    dit_tensor x = taehv_frames (&S->in[k], 1, T, h, w, c);
    dit_tensor y = k + 1 < TAEHV_BLOCKS ? taehv_frames (&S->in[k + 1], 1, T, h,
        w, c) : a;
    DIT_TRY (taehv_conv_run (t, &S->mem[k][0], &all, &a, 1, 1, NULL, 1));
    DIT_TRY (taehv_conv_run (t, &S->mem[k][1], &a, &b, 1, 1, NULL, 1));
    DIT_TRY (taehv_conv_run (t, &S->mem[k][2], &b, &y, 1, 1, &x, 1));
    /* the block's state: the input it just saw */
    dit_tensor last = taehv_frames (&S->in[k], T, 1, h, w, c);
    dit_tensor state = taehv_frames (&S->in[k], 0, 1, h, w, c);
    dit_vae_copy_frames_params cp = { &last, &state };
    DIT_TRY (dit_vae_copy_frames (t->be, &cp));
  }
  return DIT_OK;
}

/* The last decoder stage for pre-upsample frame f of ws_a: frames 2f + j
 * for j >= j0, written to pixels frames [o0, ...). */
static dit_status
taehv_decode_tail (dit_taehv *t, int64_t f, int j0, const dit_tensor *pixels,
    int64_t o0)
{
  const taehv_stage *S = &t->dec.st[TAEHV_STAGES - 1];
  const int64_t H = t->height, W = t->width, c = S->c, d3 = t->cfg.dec_dim[3];
  const int64_t n = 2 - j0;
  dit_tensor src = taehv_frames (&t->ws_a, f, 1, S->h, S->w, c);
  dit_tensor up = taehv_frames (&t->ws_up, 0, 1, H, W, c);
  dit_vae_upsample_params upp = { &src, &up };
  DIT_TRY (dit_vae_upsample (t->be, &upp));
  for (int j = j0; j < 2; j++) {
    dit_tensor y = taehv_frames (&t->ws_y, j - j0, 1, H, W, d3);
    DIT_TRY (taehv_conv_run (t, &t->dec.link[TAEHV_STAGES - 1][j], &up, &y, 1, 1,
        NULL, 1));
  }
  dit_tensor y = taehv_frames (&t->ws_y, 0, n, H, W, d3);
  dit_tensor rgb = taehv_frames (&t->ws_rgb, 0, n, H, W, 3);
  DIT_TRY (taehv_conv_run (t, &t->dec.conv_out, &y, &rgb, 1, 1, NULL, 0));
  /* clamp(y, 0, 1) in TAEHV's range is clamp(2y - 1, -1, 1) in ours */
  dit_tensor px = *pixels;
  px.data = (char *) pixels->data
      + (size_t) (o0 * pixels->stride[1]) * dit_dtype_size (pixels->dtype);
  px.shape[1] = n;
  dit_vae_layout_params lp = { .x = &rgb, .y = &px, .to_channels_last = 0,
    .affine = 1, .clamp = 1, .clamp_lo = -1.0f, .clamp_hi = 1.0f };
  for (int ch = 0; ch < 3; ch++) {
    lp.scale[ch] = 2.0f;
    lp.shift[ch] = -1.0f;
  }
  return dit_vae_layout (t->be, &lp);
}

/* One latent [16, 1, h, w] -> pixels [3, 1 or 4, H, W] (a
 * dit_vae_decode_step_fn). */
static dit_status
taehv_decode_one (void *self, const dit_tensor *latent, dit_tensor *pixels)
{
  dit_taehv *t = self;
  taehv_net *net = &t->dec;
  const int first = t->dec_latents == 0;
  const int64_t h = t->height / 8, w = t->width / 8;
  dit_tensor zin = taehv_frames (&t->ws_z, 0, 1, h, w, t->cfg.z_dim);
  dit_vae_layout_params lp = { .x = latent, .y = &zin, .to_channels_last = 1,
    .soft_clamp = 3.0f };
  if (t->cfg.latent_raw) {
    lp.affine = 1;
    for (int c = 0; c < 16; c++) {
      lp.scale[c] = taehv_latent_std[c];
      lp.shift[c] = taehv_latent_mean[c];
    }
  }
  DIT_TRY (dit_vae_layout (t->be, &lp));
  taehv_stage *S0 = &net->st[0];
  dit_tensor x0 = taehv_frames (&S0->in[0], 1, 1, h, w, S0->c);
  DIT_TRY (taehv_conv_run (t, &net->conv_in, &zin, &x0, 1, 1, NULL, 1));
  for (int s = 0; s + 1 < TAEHV_STAGES; s++) {
    taehv_stage *S = &net->st[s], *N = &net->st[s + 1];
    DIT_TRY (taehv_run_stage (t, S));
    dit_tensor out = taehv_frames (&t->ws_a, 0, S->t, S->h, S->w, S->c);
    dit_tensor up = taehv_frames (&t->ws_up, 0, S->t, 2 * S->h, 2 * S->w, S->c);
    dit_vae_upsample_params upp = { &out, &up };
    DIT_TRY (dit_vae_upsample (t->be, &upp));
    const int g = taehv_grow[s];
    for (int j = 0; j < g; j++) {
      /* input frame i becomes frame g i + j of the next stage */
      dit_tensor y = taehv_frames (&N->in[0], 1 + j, S->t, N->h, N->w, N->c);
      y.stride[0] *= g;
      DIT_TRY (taehv_conv_run (t, &net->link[s][j], &up, &y, 1, 1, NULL, 0));
    }
  }
  taehv_stage *SL = &net->st[TAEHV_STAGES - 1];
  DIT_TRY (taehv_run_stage (t, SL));
  int64_t o = 0;
  for (int64_t f = 0; f < SL->t; f++) {
    /* a stream's raw frames 0..2 are trimmed: latent 0 keeps frame 3 only */
    if (first && f == 0)
      continue;
    const int j0 = first ? 1 : 0;
    DIT_TRY (taehv_decode_tail (t, f, j0, pixels, o));
    o += 2 - j0;
  }
  return DIT_OK;
}

int64_t
dit_taehv_decode_frames (const dit_taehv *t, int64_t n_latents)
{
  return t ? dit_vae_stream_frames (t->dec_latents, n_latents) : 0;
}

dit_status
dit_taehv_decode (dit_taehv *t, const dit_tensor *latent, dit_tensor *pixels)
{
  if (!t)
    return dit_error (DIT_ERR_INVALID, "taehv decode: NULL taehv");
  if (!t->dec.built)
    return dit_error (DIT_ERR_STATE, "taehv decode: created without the "
        "decoder");
  DIT_TRY (dit_vae_check_video (latent, "taehv decode: latent", t->cfg.z_dim,
      -1, t->height / 8, t->width / 8));
  const int64_t F = latent->shape[1];
  DIT_TRY (dit_vae_check_video (pixels, "taehv decode: pixels", 3,
      dit_taehv_decode_frames (t, F), t->height, t->width));
  dit_status st = dit_vae_decode_stream (latent, pixels, &t->dec_latents,
      taehv_decode_one, t);
  if (st != DIT_OK) {
    dit_taehv_reset_decoder (t);
    return dit_error_prefix (st, "taehv decode (stream reset)");
  }
  return DIT_OK;
}

/* The encoder on the four frames of the group buffer -> latent. */
static dit_status
taehv_encode_group (dit_taehv *t, dit_tensor *latent)
{
  taehv_net *net = &t->enc;
  const int64_t H = t->height, W = t->width, e = t->cfg.enc_dim;
  taehv_stage *S0 = &net->st[0];
  for (int p = 0; p < 2; p++) {
    dit_tensor g = taehv_frames (&t->group, 2 * p, 2, H, W, 3);
    dit_tensor x = taehv_frames (&t->ws_up, 0, 2, H, W, e);
    DIT_TRY (taehv_conv_run (t, &net->conv_in, &g, &x, 1, 1, NULL, 1));
    dit_tensor y = taehv_frames (&S0->in[0], 1 + p, 1, S0->h, S0->w, e);
    DIT_TRY (taehv_conv_run (t, &net->link[0][0], &x, &y, 2, 2, NULL, 0));
  }
  for (int s = 0; s < TAEHV_STAGES; s++) {
    taehv_stage *S = &net->st[s];
    DIT_TRY (taehv_run_stage (t, S));
    dit_tensor out = taehv_frames (&t->ws_a, 0, S->t, S->h, S->w, e);
    if (s + 1 < TAEHV_STAGES) {
      taehv_stage *N = &net->st[s + 1];
      dit_tensor y = taehv_frames (&N->in[0], 1, N->t, N->h, N->w, e);
      DIT_TRY (taehv_conv_run (t, &net->link[s + 1][0], &out, &y, 2,
          taehv_pool[s + 1], NULL, 0));
    } else {
      dit_tensor z = taehv_frames (&t->ws_z, 0, 1, S->h, S->w, t->cfg.z_dim);
      DIT_TRY (taehv_conv_run (t, &net->conv_out, &out, &z, 1, 1, NULL, 0));
      dit_vae_layout_params lp = { .x = &z, .y = latent, .to_channels_last = 0 };
      DIT_TRY (dit_vae_layout (t->be, &lp));
    }
  }
  return DIT_OK;
}

/* pixels [3, n, H, W] in [-1, 1] -> group frames [g0, g0 + n) in [0, 1]. */
static dit_status
taehv_to_group (dit_taehv *t, const dit_tensor *pixels, int64_t g0)
{
  dit_tensor g = taehv_frames (&t->group, g0, pixels->shape[1], t->height,
      t->width, 3);
  dit_vae_layout_params lp = { .x = pixels, .y = &g, .to_channels_last = 1,
    .affine = 1 };
  for (int c = 0; c < 3; c++) {
    lp.scale[c] = 0.5f;
    lp.shift[c] = 0.5f;
  }
  return dit_vae_layout (t->be, &lp);
}

int
dit_taehv_encode_frames (const dit_taehv *t)
{
  return t && t->enc_calls > 0 ? 4 : 1;
}

static dit_status
taehv_encode_call (dit_taehv *t, const dit_tensor *pixels, dit_tensor *latent,
    int *n_out)
{
  if (t->enc_calls == 0) {
    DIT_TRY (taehv_to_group (t, pixels, 0));
    *n_out = 0;
    return DIT_OK;
  }
  /* the group is [pending frame, frames 0..2]; frame 3 becomes pending */
  dit_tensor first3 = dit_vae_video_frames (pixels, 0, 3);
  DIT_TRY (taehv_to_group (t, &first3, 1));
  DIT_TRY (taehv_encode_group (t, latent));
  dit_tensor last = dit_vae_video_frames (pixels, 3, 1);
  DIT_TRY (taehv_to_group (t, &last, 0));
  *n_out = 1;
  return DIT_OK;
}

dit_status
dit_taehv_encode (dit_taehv *t, const dit_tensor *pixels, dit_tensor *latent,
    int *n_out)
{
  if (!t || !n_out)
    return dit_error (DIT_ERR_INVALID, "taehv encode: NULL argument");
  *n_out = 0;
  if (!t->enc.built)
    return dit_error (DIT_ERR_STATE, "taehv encode: created without the "
        "encoder");
  if (t->enc_flushed)
    return dit_error (DIT_ERR_STATE, "taehv encode: the stream was flushed; "
        "reset the encoder first");
  const int64_t want = dit_taehv_encode_frames (t);
  if (pixels && pixels->ndim == 4 && pixels->shape[0] == 3
      && pixels->shape[1] != want)
    return dit_error (DIT_ERR_INVALID, "taehv encode: %lld frames, but the %s "
        "call of a stream takes %lld (frame 0 alone, then groups of 4)",
        (long long) pixels->shape[1], t->enc_calls ? "next" : "first",
        (long long) want);
  DIT_TRY (dit_vae_check_video (pixels, "taehv encode: pixels", 3, want,
      t->height, t->width));
  DIT_TRY (dit_vae_check_video (latent, "taehv encode: latent", t->cfg.z_dim,
      1, t->height / 8, t->width / 8));
  dit_status st = taehv_encode_call (t, pixels, latent, n_out);
  if (st != DIT_OK) {
    dit_taehv_reset_encoder (t);
    *n_out = 0;
    return dit_error_prefix (st, "taehv encode (stream reset)");
  }
  t->enc_calls++;
  return DIT_OK;
}

dit_status
dit_taehv_encode_flush (dit_taehv *t, dit_tensor *latent, int *n_out)
{
  if (!t || !n_out)
    return dit_error (DIT_ERR_INVALID, "taehv flush: NULL argument");
  *n_out = 0;
  if (!t->enc.built)
    return dit_error (DIT_ERR_STATE, "taehv flush: created without the "
        "encoder");
  if (t->enc_calls == 0 || t->enc_flushed)
    return DIT_OK;
  DIT_TRY (dit_vae_check_video (latent, "taehv flush: latent", t->cfg.z_dim, 1,
      t->height / 8, t->width / 8));
  /* TAEHV pads the end of a stream with its last frame */
  dit_tensor pending = taehv_frames (&t->group, 0, 1, t->height, t->width, 3);
  dit_status st = DIT_OK;
  for (int i = 1; i < 4 && st == DIT_OK; i++) {
    dit_tensor dst = taehv_frames (&t->group, i, 1, t->height, t->width, 3);
    dit_vae_copy_frames_params cp = { &pending, &dst };
    st = dit_vae_copy_frames (t->be, &cp);
  }
  if (st == DIT_OK)
    st = taehv_encode_group (t, latent);
  if (st != DIT_OK) {
    dit_taehv_reset_encoder (t);
    return dit_error_prefix (st, "taehv flush (stream reset)");
  }
  t->enc_flushed = 1;
  *n_out = 1;
  return DIT_OK;
}

dit_status
dit_taehv_encode_offline (dit_taehv *t, const dit_tensor *pixels,
    dit_tensor *latents)
{
  if (!t)
    return dit_error (DIT_ERR_INVALID, "taehv encode: NULL taehv");
  DIT_TRY (dit_vae_check_offline ("taehv encode", pixels, latents,
      t->cfg.z_dim, t->height, t->width));
  const int64_t T = pixels->shape[1], F = latents->shape[1];
  dit_taehv_reset_encoder (t);
  int64_t done = 0;
  for (int64_t g = 0; g < F; g++) {
    dit_tensor px = dit_vae_stream_group (pixels, g);
    dit_tensor lat = dit_vae_video_frames (latents, done, 1);
    int n = 0;
    DIT_TRY (dit_taehv_encode (t, &px, &lat, &n));
    done += n;
  }
  dit_tensor lat = dit_vae_video_frames (latents, done, 1);
  int n = 0;
  DIT_TRY (dit_taehv_encode_flush (t, &lat, &n));
  done += n;
  if (done != F)
    return dit_error (DIT_ERR_STATE, "taehv encode: %lld latents for %lld "
        "frames, expected %lld", (long long) done, (long long) T,
        (long long) F);
  return DIT_OK;
}

static void
taehv_zero_states (dit_taehv *t, taehv_net *net)
{
  for (int s = 0; net->built && s < TAEHV_STAGES; s++)
    for (int b = 0; b < TAEHV_BLOCKS; b++) {
      const taehv_stage *S = &net->st[s];
      dit_tensor f0 = taehv_frames (&S->in[b], 0, 1, S->h, S->w, S->c);
      /* a failure here is a dead device; the next op reports it */
      (void) dit_memset_zero (t->be, f0.data, dit_tensor_nbytes (&f0));
    }
}

void
dit_taehv_reset_decoder (dit_taehv *t)
{
  if (!t)
    return;
  taehv_zero_states (t, &t->dec);
  t->dec_latents = 0;
}

void
dit_taehv_reset_encoder (dit_taehv *t)
{
  if (!t)
    return;
  taehv_zero_states (t, &t->enc);
  t->enc_calls = 0;
  t->enc_flushed = 0;
}

const dit_taehv_config *
dit_taehv_get_config (const dit_taehv *t)
{
  return t ? &t->cfg : NULL;
}

size_t
dit_taehv_state_bytes (const dit_taehv *t)
{
  return t ? t->state_bytes : 0;
}

size_t
dit_taehv_workspace_bytes (const dit_taehv *t)
{
  return t ? t->ws_bytes : 0;
}
