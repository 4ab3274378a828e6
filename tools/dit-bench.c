/* dit-bench — steady-state speed of the whole single-GPU chunk loop:
 * KV recompute + denoising forwards of the causal DiT, the streaming VAE
 * decode of every latent and the anchor re-encode, with seeded synthetic
 * weights (no checkpoint needed; on CUDA they are made on the device).
 *
 * One chunk k >= 1, as Stage 0 and the generator run it on one GPU
 * (docs/DESIGN.md §2): recompute the cache from [anchor, latent n-2,
 * latent n-1], 4 denoise forwards, decode latent 0 of the chunk, re-encode
 * its last pixel frame as the next anchor, decode latents 1 and 2.  Every
 * stage is timed with a backend synchronize around it (host clock), after
 * `--warmup` chunks, over `--chunks` chunks.  Printed: ms per forward
 * (recompute, denoise), VAE decode ms per latent, streaming encode ms per
 * latent, anchor ms (decode 1 latent + encode 1 frame), chunk period, FPS
 * (pixel frames per second), time to first frame (first request to the
 * first decoded frame in bytes on the host, weights loaded), achieved
 * TFLOP/s of the DiT (FLOPs from dit_model_forward_flops, DESIGN §8) and
 * its fraction of the bf16 GEMM rate measured in the same run, peak device
 * memory.  --json prints one JSON object instead.
 *
 * Usage: dit-bench --preset wan-14b --synthetic [--layers N]
 *   [--size 320x576|480x832] [--chunks 20] [--warmup 3] [--device cuda]
 *   [--dtype bf16] [--vae wan|tiny|none] [--gemm 8192] [--seed 42] [--json]
 *   [--graphs on|off] [--fused on|off]
 * --graphs off runs every forward eagerly instead of replaying recorded
 * ones (CUDA graphs); --fused off runs the unfused op chains; both default
 * to on where the backend has them (the JSON echoes the request).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_model.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "tool_common.h"

#if DIT_HAVE_CUDA
#include <cuda_runtime.h>
#include "cuda/dit_cuda.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_args {
  const char *preset, *device, *vae;
  int synthetic, layers, height, width, chunks, warmup, json, gemm;
  int graphs, fused;
  dit_dtype dtype;
  int dtype_set;
  uint64_t seed;
} bench_args;

/* Running statistics of one timed quantity (ms). */
typedef struct bench_stat {
  double sum, min, max;
  int n;
} bench_stat;

static void
stat_add (bench_stat *s, double v)
{
  if (s->n == 0 || v < s->min)
    s->min = v;
  if (s->n == 0 || v > s->max)
    s->max = v;
  s->sum += v;
  s->n++;
}

static double
stat_mean (const bench_stat *s)
{
  return s->n ? s->sum / s->n : 0.0;
}

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

static int
fail (const char *what)
{
  fprintf (stderr, "dit-bench: %s: %s\n", what, dit_last_error ());
  return 1;
}

static size_t peak_used;

/* Device memory in use now (all of the device, as cudaMemGetInfo sees it). */
static void
mem_sample (dit_backend *be)
{
#if DIT_HAVE_CUDA
  if (be->ops->device == DIT_DEVICE_CUDA) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo (&free_b, &total_b) == cudaSuccess
        && total_b - free_b > peak_used)
      peak_used = total_b - free_b;
  }
#else
  (void) be;
#endif
}

static void
usage (void)
{
  fprintf (stderr,
      "usage: dit-bench --preset wan-14b|wan-1.3b|tiny --synthetic [--layers N]\n"
      "  [--size HxW (320x576)] [--chunks 20] [--warmup 3] [--device cuda|cpu]\n"
      "  [--dtype bf16|f32] [--vae wan|tiny|none] [--gemm N (8192, 0 = skip)]\n"
      "  [--seed 42] [--json] [--graphs on|off] [--fused on|off]\n");
}

static int
parse_args (int argc, char **argv, bench_args *a)
{
  memset (a, 0, sizeof *a);
  a->preset = "wan-14b";
  a->height = 320;
  a->width = 576;
  a->chunks = 20;
  a->warmup = 3;
  a->gemm = 8192;
  a->seed = 42;
  a->graphs = 1;
  a->fused = 1;
  a->device = DIT_HAVE_CUDA ? "cuda" : "cpu";
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1, takes = 1;
    if (strcmp (o, "--synthetic") == 0) {
      a->synthetic = 1;
      takes = 0;
    } else if (strcmp (o, "--json") == 0) {
      a->json = 1;
      takes = 0;
    } else if (!v) {
      ok = 0;
    } else if (strcmp (o, "--preset") == 0) {
      a->preset = v;
    } else if (strcmp (o, "--layers") == 0) {
      ok = tool_parse_int (v, 1, 1000, &a->layers);
    } else if (strcmp (o, "--size") == 0) {
      ok = tool_parse_size (v, &a->height, &a->width);
    } else if (strcmp (o, "--chunks") == 0) {
      ok = tool_parse_int (v, 1, 100000, &a->chunks);
    } else if (strcmp (o, "--warmup") == 0) {
      ok = tool_parse_int (v, 0, 100000, &a->warmup);
    } else if (strcmp (o, "--device") == 0) {
      a->device = v;
    } else if (strcmp (o, "--dtype") == 0) {
      ok = tool_parse_dtype (v, &a->dtype);
      a->dtype_set = 1;
    } else if (strcmp (o, "--vae") == 0) {
      a->vae = v;
    } else if (strcmp (o, "--gemm") == 0) {
      ok = tool_parse_int (v, 0, 65536, &a->gemm);
    } else if (strcmp (o, "--graphs") == 0 || strcmp (o, "--fused") == 0) {
      int on = strcmp (v, "on") == 0;
      ok = on || strcmp (v, "off") == 0;
      if (o[2] == 'g')
        a->graphs = on;
      else
        a->fused = on;
    } else if (strcmp (o, "--seed") == 0) {
      ok = tool_parse_u64 (v, &a->seed);
    } else {
      fprintf (stderr, "dit-bench: unknown option '%s'\n", o);
      usage ();
      return 0;
    }
    if (!ok) {
      fprintf (stderr, "dit-bench: bad or missing value for %s\n", o);
      usage ();
      return 0;
    }
    i += takes;
  }
  if (!a->synthetic) {
    fprintf (stderr, "dit-bench: only --synthetic weights are supported\n");
    usage ();
    return 0;
  }
  if (a->height % 16 || a->width % 16) {
    fprintf (stderr, "dit-bench: --size %dx%d must be a multiple of 16\n",
        a->height, a->width);
    return 0;
  }
  if (!a->vae)
    a->vae = strcmp (a->preset, "tiny") == 0 ? "tiny" : "wan";
  return 1;
}

/* A 4-D view with explicit strides. */
static dit_tensor
view4 (void *data, dit_dtype dt, dit_device dev, const int64_t shape[4],
    const int64_t stride[4])
{
  dit_tensor t = dit_tensor_make (data, dt, dev, 4, shape);
  for (int i = 0; i < 4; i++)
    t.stride[i] = stride[i];
  return t;
}

/* Frame f of a channels-first [C, T, h, w] tensor as [C, 1, h, w]. */
static dit_tensor
frame_of (const dit_tensor *t, int64_t f)
{
  int64_t shape[4] = { t->shape[0], 1, t->shape[2], t->shape[3] };
  return view4 ((char *) t->data + (size_t) (f * t->stride[1])
      * dit_dtype_size (t->dtype), t->dtype, t->device, shape, t->stride);
}

/* Frames [f0, f0 + n) of [C, T, h, w]. */
static dit_tensor
frames_of (const dit_tensor *t, int64_t f0, int64_t n)
{
  int64_t shape[4] = { t->shape[0], n, t->shape[2], t->shape[3] };
  return view4 ((char *) t->data + (size_t) (f0 * t->stride[1])
      * dit_dtype_size (t->dtype), t->dtype, t->device, shape, t->stride);
}

/* dst frame df <- src frame sf, both channels-first latents. */
static dit_status
copy_frame (dit_backend *be, const dit_tensor *src, int64_t sf,
    dit_tensor *dst, int64_t df)
{
  const int64_t C = src->shape[0], hw = src->shape[2] * src->shape[3];
  dit_tensor s = dit_tensor_2d ((char *) src->data + (size_t) (sf
      * src->stride[1]) * dit_dtype_size (src->dtype), src->dtype,
      src->device, C, hw);
  s.stride[0] = src->stride[0];
  dit_tensor d = dit_tensor_2d ((char *) dst->data + (size_t) (df
      * dst->stride[1]) * dit_dtype_size (dst->dtype), dst->dtype,
      dst->device, C, hw);
  d.stride[0] = dst->stride[0];
  dit_copy_params cp = { .x = &s, .y = &d };
  return dit_copy (be, &cp);
}

/* The first decoded frame as bytes on the host (what a sink would get). */
static dit_status
frame_to_host (dit_backend *be, const dit_tensor *pix, void *dev_bytes,
    uint8_t *host, int h, int w)
{
  int64_t s[3] = { 3, h, w };
  dit_tensor f = dit_tensor_make (pix->data, pix->dtype, pix->device, 3, s);
  f.stride[0] = pix->stride[0];
  f.stride[1] = pix->stride[2];
  dit_vae_pixels_params pp = { .format = DIT_PIXEL_RGBX, .width = w,
    .height = h, .plane = { dev_bytes }, .stride = { 4 * (int64_t) w },
    .tensor = &f };
  DIT_TRY (dit_tensor_to_pixels (be, &pp));
  return be->ops->download (be, host, dev_bytes, (size_t) 4 * w * h);
}

/* Rate of a large bf16 GEMM ([n, n] x [n, n]ᵀ, random inputs) in TFLOP/s. */
static dit_status
gemm_peak (dit_backend *be, int n, double *tflops)
{
  dit_tensor x, w, y;
  int64_t s[2] = { n, n };
  *tflops = 0.0;
  DIT_TRY (dit_tensor_alloc (be, &x, DIT_BF16, 2, s));
  DIT_TRY (dit_tensor_alloc (be, &w, DIT_BF16, 2, s));
  DIT_TRY (dit_tensor_alloc (be, &y, DIT_BF16, 2, s));
  dit_noise_params nx = { .y = &x, .seed = 7, .stream = 1 };
  dit_noise_params nw = { .y = &w, .seed = 7, .stream = 2 };
  dit_status st = dit_noise (be, &nx);
  if (st == DIT_OK)
    st = dit_noise (be, &nw);
  dit_gemm_params gp = { .x = &x, .w = &w, .y = &y };
  for (int i = 0; st == DIT_OK && i < 3; i++)
    st = dit_gemm (be, &gp);
  if (st == DIT_OK)
    st = be->ops->synchronize (be);
  const int reps = be->ops->device == DIT_DEVICE_CPU ? 1 : 20;
  double t0 = now_ms ();
  for (int i = 0; st == DIT_OK && i < reps; i++)
    st = dit_gemm (be, &gp);
  if (st == DIT_OK)
    st = be->ops->synchronize (be);
  double ms = (now_ms () - t0) / reps;
  if (st == DIT_OK)
    *tflops = 2.0 * n * (double) n * n / (ms * 1e-3) / 1e12;
  mem_sample (be);
  dit_tensor_free (be, &x);
  dit_tensor_free (be, &w);
  dit_tensor_free (be, &y);
  return st;
}

typedef struct bench_state {
  bench_args a;
  dit_backend *be;
  dit_model_config cfg;
  dit_gen_config gc;
  dit_weights *weights;
  dit_generator *gen;
  dit_vae *vae;
  dit_tensor out, ctx, anchor, pix, enc_lat;
  void *dev_bytes;
  uint8_t *host_bytes;
  int64_t chunk_index;
} bench_state;

/* Decode latent f of `out` into st->pix (4 frames, or 1 for latent 0 of a
 * stream); returns the pixel view. */
static dit_status
decode_latent (bench_state *st, int64_t f, dit_tensor *pix_view)
{
  dit_tensor lat = frame_of (&st->out, f);
  int64_t T = dit_vae_decode_frames (st->vae, 1);
  *pix_view = frames_of (&st->pix, 0, T);
  return dit_vae_decode (st->vae, &lat, pix_view);
}

/* Anchor: re-encode the last frame of `pix` (a fresh single-image encode). */
static dit_status
encode_anchor (bench_state *st, const dit_tensor *pix)
{
  dit_tensor last = frame_of (pix, pix->shape[1] - 1);
  return dit_vae_encode_anchor (st->vae, &last, &st->anchor);
}

static dit_status
sync (bench_state *st)
{
  return st->be->ops->synchronize (st->be);
}

typedef struct bench_result {
  bench_stat recompute, denoise, decode, anchor_enc, anchor, period, encode;
  double ttff_cold, ttff_warm, weights_ms, vae_weights_ms, gemm_tflops;
  int64_t gemm_paths[4];
} bench_result;

/* Chunk 0 of a new stream up to its first decoded frame on the host, then
 * the rest of the chunk (anchor, other latents).  Returns the TTFF. */
static dit_status
first_chunk (bench_state *st, double *ttff)
{
  dit_chunk_request req = { .chunk_index = 0 };
  dit_tensor pv;
  if (st->vae)
    dit_vae_reset_decoder (st->vae);
  double t0 = now_ms ();
  DIT_TRY (dit_generator_run_chunk (st->gen, &req, &st->out, NULL));
  if (st->vae) {
    DIT_TRY (decode_latent (st, 0, &pv));
    DIT_TRY (frame_to_host (st->be, &pv, st->dev_bytes, st->host_bytes,
        st->a.height, st->a.width));
  } else {
    DIT_TRY (sync (st));
  }
  *ttff = now_ms () - t0;
  if (st->vae) {
    DIT_TRY (encode_anchor (st, &pv));
    for (int64_t f = 1; f < st->gc.frames_per_chunk; f++)
      DIT_TRY (decode_latent (st, f, &pv));
  }
  st->chunk_index = 1;
  return sync (st);
}

/* One steady-state chunk; adds its stage times to r when `record`. */
static dit_status
steady_chunk (bench_state *st, bench_result *r, int record)
{
  const int F = st->gc.frames_per_chunk;
  dit_chunk_timing tm;
  dit_tensor pv;
  double t0 = now_ms ();
  /* context [anchor, latent n-2, latent n-1] */
  if (st->vae)
    DIT_TRY (copy_frame (st->be, &st->anchor, 0, &st->ctx, 0));
  else
    DIT_TRY (copy_frame (st->be, &st->out, 0, &st->ctx, 0));
  DIT_TRY (copy_frame (st->be, &st->out, F - 2, &st->ctx, 1));
  DIT_TRY (copy_frame (st->be, &st->out, F - 1, &st->ctx, 2));
  dit_chunk_request req = { .chunk_index = st->chunk_index++,
    .context = &st->ctx };
  DIT_TRY (dit_generator_run_chunk (st->gen, &req, &st->out, &tm));
  double dec[16] = { 0 }, enc = 0.0;
  if (st->vae) {
    for (int f = 0; f < F; f++) {
      double a = now_ms ();
      DIT_TRY (decode_latent (st, f, &pv));
      DIT_TRY (sync (st));
      dec[f] = now_ms () - a;
      if (f == 0) {
        a = now_ms ();
        DIT_TRY (encode_anchor (st, &pv));
        DIT_TRY (sync (st));
        enc = now_ms () - a;
      }
    }
  }
  double period = now_ms () - t0;
  if (!record)
    return DIT_OK;
  stat_add (&r->recompute, tm.recompute_ms);
  stat_add (&r->denoise, tm.denoise_ms / st->gc.num_steps);
  if (st->vae) {
    for (int f = 0; f < F; f++)
      stat_add (&r->decode, dec[f]);
    stat_add (&r->anchor_enc, enc);
    stat_add (&r->anchor, dec[0] + enc);
  }
  stat_add (&r->period, period);
  return DIT_OK;
}

/* Streaming encode of 4-frame chunks (video-to-video input path). */
static dit_status
encode_bench (bench_state *st, bench_result *r, int n)
{
  dit_vae_reset_encoder (st->vae);
  dit_tensor first = frame_of (&st->pix, 0);
  DIT_TRY (dit_vae_encode (st->vae, &first, &st->enc_lat));
  for (int i = 0; i < n + 2; i++) {
    DIT_TRY (sync (st));
    double t0 = now_ms ();
    DIT_TRY (dit_vae_encode (st->vae, &st->pix, &st->enc_lat));
    DIT_TRY (sync (st));
    if (i >= 2)
      stat_add (&r->encode, now_ms () - t0);
  }
  return DIT_OK;
}

static dit_status
alloc_latent (dit_backend *be, dit_tensor *t, int c, int f, int h, int w)
{
  int64_t s[4] = { c, f, h, w };
  return dit_tensor_alloc (be, t, DIT_F32, 4, s);
}

static int
setup (bench_state *st, bench_result *r)
{
  bench_args *a = &st->a;
  dit_param_spec *specs = NULL;
  size_t count = 0;
  dit_weights *w = NULL;

  st->be = tool_backend (a->device);
  if (!st->be)
    return fail ("backend");
  if (!a->dtype_set)
    a->dtype = st->be->ops->device == DIT_DEVICE_CPU ? DIT_F32 : DIT_BF16;
  if (dit_model_config_preset (a->preset, &st->cfg) != DIT_OK)
    return fail ("preset");
  if (a->layers)
    st->cfg.num_layers = a->layers;
  if (dit_model_config_params (&st->cfg, &specs, &count) != DIT_OK)
    return fail ("parameter list");
  double t0 = now_ms ();
  dit_status s = dit_weights_synthetic (specs, count, a->seed, a->dtype, st->be, &w);
  free (specs);
  if (s != DIT_OK || st->be->ops->synchronize (st->be) != DIT_OK)
    return fail ("synthetic weights");
  r->weights_ms = now_ms () - t0;
  st->weights = w;
  mem_sample (st->be);

  dit_gen_config_default (&st->gc);
  st->gc.latent_h = a->height / 8;
  st->gc.latent_w = a->width / 8;
  st->gc.dtype = a->dtype;
  st->gc.seed = a->seed;
  if (dit_generator_create (&st->cfg, &st->gc, w, st->be, &st->gen) != DIT_OK)
    return fail ("generator");
  dit_generator_set_graphs (st->gen, a->graphs);
  dit_generator_set_fused (st->gen, a->fused);

  /* prompt: seeded normal embeddings, 64 rows (padded to text_len) */
  const int rows = 64;
  float *emb = malloc ((size_t) rows * st->cfg.text_dim * sizeof *emb);
  if (!emb)
    return fail ("prompt");
  tool_fill_normal (emb, (size_t) rows * st->cfg.text_dim, a->seed, 99);
  dit_tensor et = dit_tensor_2d (emb, DIT_F32, DIT_DEVICE_CPU, rows,
      st->cfg.text_dim);
  s = dit_generator_set_prompt (st->gen, &et);
  free (emb);
  if (s != DIT_OK)
    return fail ("prompt");

  const int F = st->gc.frames_per_chunk, C = st->gc.context_frames;
  const int lh = st->gc.latent_h, lw = st->gc.latent_w;
  if (alloc_latent (st->be, &st->out, 16, F, lh, lw) != DIT_OK
      || alloc_latent (st->be, &st->ctx, 16, C, lh, lw) != DIT_OK
      || alloc_latent (st->be, &st->anchor, 16, 1, lh, lw) != DIT_OK
      || alloc_latent (st->be, &st->enc_lat, 16, 1, lh, lw) != DIT_OK
      || alloc_latent (st->be, &st->pix, 3, 4, a->height, a->width) != DIT_OK)
    return fail ("buffers");
  st->dev_bytes = st->be->ops->alloc (st->be, (size_t) 4 * a->width * a->height);
  st->host_bytes = malloc ((size_t) 4 * a->width * a->height);
  if (!st->dev_bytes || !st->host_bytes)
    return fail ("frame buffers");

  if (strcmp (a->vae, "none") != 0) {
    dit_vae_config vc;
    dit_weights *vw = NULL;
    if (dit_vae_config_preset (a->vae, &vc) != DIT_OK
        || dit_vae_config_params (&vc, &specs, &count) != DIT_OK)
      return fail ("vae config");
    t0 = now_ms ();
    s = dit_weights_synthetic (specs, count, a->seed + 1, a->dtype, st->be, &vw);
    free (specs);
    if (s != DIT_OK)
      return fail ("vae weights");
    s = dit_vae_create (&vc, vw, a->width, a->height, a->dtype, st->be, &st->vae);
    dit_weights_free (vw);
    if (s != DIT_OK)
      return fail ("vae");
    r->vae_weights_ms = now_ms () - t0;
  }
  mem_sample (st->be);
  return 0;
}

static void
print_report (const bench_state *st, const bench_result *r)
{
  const bench_args *a = &st->a;
  const int F = st->gc.frames_per_chunk, C = st->gc.context_frames;
  const int64_t fs = (int64_t) (st->gc.latent_h / 2) * (st->gc.latent_w / 2);
  const double rec_flops = dit_model_forward_flops (&st->cfg, C * fs, C * fs);
  const double den_flops = dit_model_forward_flops (&st->cfg, F * fs,
      (C + F) * fs);
  const double rec = stat_mean (&r->recompute), den = stat_mean (&r->denoise);
  const double dit_ms = rec + st->gc.num_steps * den;
  const double dit_tflops = (rec_flops + st->gc.num_steps * den_flops)
      / (dit_ms * 1e-3) / 1e12;
  const double den_tflops = den_flops / (den * 1e-3) / 1e12;
  const double period = stat_mean (&r->period);
  const int frames = 4 * F;
  const double fps = frames / (period * 1e-3);
  const double frac = r->gemm_tflops > 0 ? dit_tflops / r->gemm_tflops : 0.0;
  char dev[320];
  snprintf (dev, sizeof dev, "%s", a->device);
#if DIT_HAVE_CUDA
  if (st->be->ops->device == DIT_DEVICE_CUDA) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties (&prop, st->be->device_index) == cudaSuccess)
      snprintf (dev, sizeof dev, "%s", prop.name);
  }
#endif

  if (a->json) {
    printf ("{\"preset\": \"%s\", \"layers\": %d, \"height\": %d, \"width\": %d, "
        "\"device\": \"%s\", \"dtype\": \"%s\", \"vae\": \"%s\", "
        "\"chunks\": %d, \"warmup\": %d, \"tokens_per_frame\": %lld, "
        "\"recompute_ms\": %.3f, \"denoise_ms\": %.3f, "
        "\"recompute_tflops\": %.1f, \"denoise_tflops\": %.1f, "
        "\"dit_tflops\": %.1f, \"gemm_peak_tflops\": %.1f, "
        "\"fraction_of_bound\": %.3f, "
        "\"vae_decode_ms_per_latent\": %.3f, \"vae_encode_ms_per_latent\": %.3f, "
        "\"anchor_encode_ms\": %.3f, \"anchor_ms\": %.3f, "
        "\"chunk_period_ms\": %.3f, \"chunk_period_min_ms\": %.3f, "
        "\"chunk_period_max_ms\": %.3f, \"fps\": %.2f, "
        "\"ttff_ms\": %.1f, \"ttff_cold_ms\": %.1f, "
        "\"weights_ms\": %.1f, \"vae_setup_ms\": %.1f, "
        "\"peak_device_mib\": %.0f, \"graphs\": %d, \"fused\": %d, "
        "\"gemm_paths\": [%lld, %lld, %lld, %lld]}\n",
        a->preset, st->cfg.num_layers, a->height, a->width, dev,
        dit_dtype_name (a->dtype), a->vae, a->chunks, a->warmup,
        (long long) fs, rec, den, rec_flops / (rec * 1e-3) / 1e12, den_tflops,
        dit_tflops, r->gemm_tflops, frac, stat_mean (&r->decode),
        stat_mean (&r->encode), stat_mean (&r->anchor_enc),
        stat_mean (&r->anchor), period, r->period.min, r->period.max, fps,
        r->ttff_warm, r->ttff_cold, r->weights_ms, r->vae_weights_ms,
        (double) peak_used / 1048576.0, a->graphs, a->fused,
        (long long) r->gemm_paths[0], (long long) r->gemm_paths[1],
        (long long) r->gemm_paths[2], (long long) r->gemm_paths[3]);
    return;
  }
  printf ("dit-bench: %s (%d layers) %dx%d, %s, %s, vae %s, %d chunks after %d "
      "warm-up, graphs %s, fused %s\n", a->preset, st->cfg.num_layers,
      a->height, a->width, dev, dit_dtype_name (a->dtype), a->vae, a->chunks,
      a->warmup, a->graphs ? "on" : "off", a->fused ? "on" : "off");
  printf ("  weights made in            %9.1f ms (vae setup %.1f ms)\n",
      r->weights_ms, r->vae_weights_ms);
  printf ("  bf16 GEMM peak (%d^3)    %9.1f TFLOP/s\n", a->gemm, r->gemm_tflops);
  printf ("  recompute forward          %9.2f ms  (L=%lld N=%lld, %.1f TFLOP/s)\n",
      rec, (long long) (C * fs), (long long) (C * fs),
      rec_flops / (rec * 1e-3) / 1e12);
  printf ("  denoise forward            %9.2f ms  (L=%lld N=%lld, %.1f TFLOP/s)\n",
      den, (long long) (F * fs), (long long) ((C + F) * fs), den_tflops);
  printf ("  DiT per chunk              %9.2f ms  %.1f TFLOP/s = %.1f%% of the "
      "GEMM peak\n", dit_ms, dit_tflops, 100.0 * frac);
  printf ("  VAE decode per latent      %9.2f ms\n", stat_mean (&r->decode));
  printf ("  VAE encode per latent      %9.2f ms (streaming, 4 frames)\n",
      stat_mean (&r->encode));
  printf ("  anchor (decode 1 + encode 1 frame) %6.2f ms (encode %.2f)\n",
      stat_mean (&r->anchor), stat_mean (&r->anchor_enc));
  printf ("  chunk period               %9.2f ms  (min %.2f, max %.2f)\n",
      period, r->period.min, r->period.max);
  printf ("  FPS                        %9.2f  (%d frames per chunk)\n", fps,
      frames);
  printf ("  time to first frame        %9.1f ms  (cold, first call: %.1f ms)\n",
      r->ttff_warm, r->ttff_cold);
  printf ("  peak device memory         %9.0f MiB\n",
      (double) peak_used / 1048576.0);
  printf ("  GEMM paths: cuBLASLt %lld, cuBLASLt+bias pass %lld, skinny %lld, "
      "fallback %lld\n", (long long) r->gemm_paths[0],
      (long long) r->gemm_paths[1], (long long) r->gemm_paths[2],
      (long long) r->gemm_paths[3]);
}

int
main (int argc, char **argv)
{
  bench_state st;
  bench_result r;
  memset (&st, 0, sizeof st);
  memset (&r, 0, sizeof r);
  if (!parse_args (argc, argv, &st.a))
    return 2;
  if (setup (&st, &r))
    return 1;

  if (first_chunk (&st, &r.ttff_cold) != DIT_OK)
    return fail ("first chunk");
  for (int i = 0; i < st.a.warmup; i++)
    if (steady_chunk (&st, &r, 0) != DIT_OK)
      return fail ("warm-up chunk");
  for (int i = 0; i < st.a.chunks; i++)
    if (steady_chunk (&st, &r, 1) != DIT_OK)
      return fail ("chunk");
  mem_sample (st.be);
#if DIT_HAVE_CUDA
  dit_cuda_gemm_path_counts (st.be, r.gemm_paths);
#endif
  if (st.vae && encode_bench (&st, &r, st.a.chunks < 10 ? st.a.chunks : 10)
      != DIT_OK)
    return fail ("encode");
  if (first_chunk (&st, &r.ttff_warm) != DIT_OK)
    return fail ("first chunk (warm)");
  mem_sample (st.be);
  if (st.a.gemm > 0 && gemm_peak (st.be, st.a.gemm, &r.gemm_tflops) != DIT_OK)
    return fail ("gemm peak");
  print_report (&st, &r);

  dit_vae_free (st.vae);
  dit_generator_free (st.gen);
  dit_weights_free (st.weights);
  dit_tensor_free (st.be, &st.out);
  dit_tensor_free (st.be, &st.ctx);
  dit_tensor_free (st.be, &st.anchor);
  dit_tensor_free (st.be, &st.enc_lat);
  dit_tensor_free (st.be, &st.pix);
  st.be->ops->free (st.be, st.dev_bytes);
  free (st.host_bytes);
  return 0;
}
