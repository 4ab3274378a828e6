/* test_vae — the streaming WanVAE model (model/dit_vae.c).
 *
 * Independent values: the spec §5.7 tensor and parameter counts of the real
 * config; the spec §5.5 latent normalisation through a checkpoint whose only
 * non-zero tensor is the top-level conv1 bias (then mu = that bias exactly,
 * since RMS_norm of zeros is zero); the decoder output clamp through a
 * checkpoint whose only non-zero tensor is the head bias.  Properties:
 * decoding one latent per call == one multi-latent call; T = 1 decode;
 * anchor encode == a fresh-cache encode of that frame and leaves the
 * stream untouched; reset restarts the stream; bounded state and peak RSS
 * over 200 latents; clear errors for bad input; the real-size topology runs
 * at 16x16 with synthetic weights.
 */
#include "dit_loader.h"
#include "dit_vae.h"
#include "safetensors.h"
#include "../common/check.h"
#include "../common/test_random.h"
#include "../common/video_buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const float spec_mean[16] = {
  -0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
  0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f,
};
static const float spec_std[16] = {
  2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
  3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f,
};

static double
maxdiff (const float *a, const float *b, int64_t n)
{
  double m = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs ((double) a[i] - b[i]);
    if (d > m || d != d)
      m = d != d ? INFINITY : d;
  }
  return m;
}

static int
all_finite_in (const float *p, int64_t n, float lo, float hi)
{
  for (int64_t i = 0; i < n; i++)
    if (!(p[i] >= lo && p[i] <= hi))
      return 0;
  return 1;
}

static dit_weights *
synth (const char *preset, uint64_t seed)
{
  dit_vae_config cfg;
  dit_param_spec *specs;
  size_t n;
  dit_weights *w = NULL;
  if (dit_vae_config_preset (preset, &cfg) != DIT_OK
      || dit_vae_config_params (&cfg, &specs, &n) != DIT_OK)
    return NULL;
  if (dit_weights_synthetic (specs, n, seed, DIT_F32, dit_backend_cpu (), &w) != DIT_OK)
    w = NULL;
  free (specs);
  return w;
}

static dit_vae *
make_vae (const char *preset, dit_weights *w, int width, int height)
{
  dit_vae_config cfg;
  dit_vae *v = NULL;
  dit_vae_config_preset (preset, &cfg);
  if (dit_vae_create (&cfg, w, width, height, DIT_F32, dit_backend_cpu (), &v) != DIT_OK) {
    fprintf (stderr, "create %s %dx%d: %s\n", preset, width, height, dit_last_error ());
    return NULL;
  }
  return v;
}

/* ---------------------------------------------------------------------------*/

static void
test_params (void)
{
  dit_vae_config cfg;
  dit_param_spec *specs;
  size_t n;
  CHECK (dit_vae_config_preset ("wan", &cfg) == DIT_OK, "preset wan");
  CHECK (dit_vae_config_params (&cfg, &specs, &n) == DIT_OK, "params");
  int64_t total = 0, enc = 0, dec = 0, c1 = 0, c2 = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t e = 1;
    for (int d = 0; d < specs[i].ndim; d++)
      e *= specs[i].shape[d];
    total += e;
    if (strncmp (specs[i].name, "encoder.", 8) == 0)
      enc += e;
    else if (strncmp (specs[i].name, "decoder.", 8) == 0)
      dec += e;
    else if (strncmp (specs[i].name, "conv1.", 6) == 0)
      c1 += e;
    else if (strncmp (specs[i].name, "conv2.", 6) == 0)
      c2 += e;
  }
  CHECK (n == 194, "wan VAE: %zu tensors, spec says 194", n);
  CHECK (total == 126892531, "wan VAE: %lld parameters, spec says 126892531",
      (long long) total);
  CHECK (enc == 53595872 && dec == 73295331 && c1 == 1056 && c2 == 272,
      "split enc %lld dec %lld conv1 %lld conv2 %lld", (long long) enc,
      (long long) dec, (long long) c1, (long long) c2);
  const struct { const char *name; int ndim; int64_t s[5]; } want[] = {
    { "encoder.conv1.weight", 5, { 96, 3, 3, 3, 3 } },
    { "encoder.downsamples.3.shortcut.weight", 5, { 192, 96, 1, 1, 1 } },
    { "encoder.downsamples.5.time_conv.weight", 5, { 192, 192, 3, 1, 1 } },
    { "encoder.downsamples.2.resample.1.weight", 4, { 96, 96, 3, 3 } },
    { "encoder.middle.1.norm.gamma", 3, { 384, 1, 1 } },
    { "encoder.middle.1.to_qkv.weight", 4, { 1152, 384, 1, 1 } },
    { "encoder.head.2.weight", 5, { 32, 384, 3, 3, 3 } },
    { "decoder.upsamples.3.time_conv.weight", 5, { 768, 384, 3, 1, 1 } },
    { "decoder.upsamples.4.shortcut.weight", 5, { 384, 192, 1, 1, 1 } },
    { "decoder.upsamples.11.resample.1.weight", 4, { 96, 192, 3, 3 } },
    { "decoder.head.0.gamma", 4, { 96, 1, 1, 1 } },
    { "decoder.head.2.weight", 5, { 3, 96, 3, 3, 3 } },
  };
  for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
    const dit_param_spec *s = NULL;
    for (size_t i = 0; i < n; i++)
      if (strcmp (specs[i].name, want[k].name) == 0)
        s = &specs[i];
    CHECK (s && s->ndim == want[k].ndim
        && memcmp (s->shape, want[k].s, sizeof (int64_t) * (size_t) s->ndim) == 0,
        "param %s missing or wrong shape", want[k].name);
  }
  free (specs);
  CHECK (dit_vae_config_preset ("huge", &cfg) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "tiny"), "unknown preset message '%s'",
      dit_last_error ());
}

/* Zero checkpoint except the top-level conv1 bias: latent = (b - mean)/std. */
static void
test_latent_normalisation (void)
{
  dit_weights *w = synth ("tiny", 1);
  CHECK (w != NULL, "synthetic tiny: %s", dit_last_error ());
  if (!w)
    return;
  for (size_t i = 0; i < w->count; i++)
    memset (w->tensors[i].data, 0, dit_tensor_nbytes (&w->tensors[i]));
  float *b = (float *) dit_weights_get (w, "conv1.bias")->data;
  for (int c = 0; c < 32; c++)
    b[c] = c < 16 ? 0.1f * c - 0.5f : 100.0f;  /* log-var half must be dropped */
  float *hb = (float *) dit_weights_get (w, "decoder.head.2.bias")->data;
  hb[0] = 0.25f;
  hb[1] = 3.0f;
  hb[2] = -7.0f;
  dit_vae *v = make_vae ("tiny", w, 32, 16);
  dit_weights_free (w);
  if (!v)
    return;
  buf4 px = video_buf (3, 1, 16, 32), lat = video_buf (16, 1, 2, 4);
  fill_uniform (px.data, 3 * 16 * 32, 7);
  CHECK (dit_vae_encode (v, &px.t, &lat.t) == DIT_OK, "encode: %s", dit_last_error ());
  double m = 0;
  for (int c = 0; c < 16; c++)
    for (int i = 0; i < 8; i++)
      m = fmax (m, fabs (lat.data[c * 8 + i] - (0.1 * c - 0.5 - spec_mean[c]) / spec_std[c]));
  CHECK (m < 1e-5, "latent normalisation: max diff %g", m);
  /* decoder: output = clamp(head bias) for every pixel */
  buf4 out = video_buf (3, 1, 16, 32);
  CHECK (dit_vae_decode (v, &lat.t, &out.t) == DIT_OK, "decode: %s", dit_last_error ());
  int bad = 0;
  for (int i = 0; i < 16 * 32; i++)
    bad += out.data[i] != 0.25f || out.data[512 + i] != 1.0f || out.data[1024 + i] != -1.0f;
  CHECK (bad == 0, "decoder head bias / clamp: %d wrong pixels (%g %g %g)", bad,
      out.data[0], out.data[512], out.data[1024]);
  dit_vae_free (v);
  free (px.data); free (lat.data); free (out.data);
}

static void
test_decode_streaming (dit_vae *v)
{
  const int F = 4, H = 64, W = 64;
  buf4 lat = video_buf (16, F, 8, 8);
  fill_uniform (lat.data, 16 * F * 64, 99);
  for (int64_t i = 0; i < 16 * F * 64; i++)
    lat.data[i] *= 1.5f;
  const int T = 1 + 4 * (F - 1);
  buf4 all = video_buf (3, T, H, W), one = video_buf (3, T, H, W);
  dit_vae_reset_decoder (v);
  CHECK (dit_vae_decode_frames (v, F) == T, "decode_frames %lld", (long long) dit_vae_decode_frames (v, F));
  CHECK (dit_vae_decode (v, &lat.t, &all.t) == DIT_OK, "decode all: %s", dit_last_error ());
  dit_vae_reset_decoder (v);
  int t0 = 0;
  for (int f = 0; f < F; f++) {
    int n = f == 0 ? 1 : 4;
    dit_tensor l = frame_range (&lat.t, f, 1), p = frame_range (&one.t, t0, n);
    CHECK (dit_vae_decode (v, &l, &p) == DIT_OK, "decode %d: %s", f, dit_last_error ());
    t0 += n;
  }
  const int64_t np = 3LL * T * H * W;
  CHECK (maxdiff (all.data, one.data, np) == 0.0, "one-at-a-time vs one call: %g",
      maxdiff (all.data, one.data, np));
  CHECK (all_finite_in (all.data, np, -1.0f, 1.0f), "decoded values not in [-1, 1]");
  /* not trivially constant: frames differ */
  CHECK (maxdiff (all.data, all.data + (size_t) H * W, (int64_t) H * W) > 1e-4,
      "decoded frames 0 and 1 identical");
  /* T = 1 decode after reset reproduces frame 0 */
  buf4 first = video_buf (3, 1, H, W);
  dit_vae_reset_decoder (v);
  dit_tensor l0 = frame_range (&lat.t, 0, 1);
  CHECK (dit_vae_decode (v, &l0, &first.t) == DIT_OK, "T=1 decode: %s", dit_last_error ());
  double m = 0;
  for (int c = 0; c < 3; c++)
    m = fmax (m, maxdiff (first.data + (size_t) c * H * W,
        all.data + (size_t) c * T * H * W, H * W));
  CHECK (m == 0.0, "T=1 decode vs frame 0 of the stream: %g", m);
  /* wrong output frame count */
  buf4 bad = video_buf (3, 1, H, W);
  dit_tensor l1 = frame_range (&lat.t, 1, 1);
  dit_status st = dit_vae_decode (v, &l1, &bad.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "expected 4"),
      "decode into 1 frame after latent 0: %d '%s'", st, dit_last_error ());
  free (lat.data); free (all.data); free (one.data); free (first.data); free (bad.data);
}

static void
test_encode_anchor (dit_vae *v)
{
  const int H = 64, W = 64, T = 13;
  buf4 px = video_buf (3, T, H, W), ref = video_buf (16, 4, 8, 8),
      got = video_buf (16, 4, 8, 8);
  fill_uniform (px.data, 3LL * T * H * W, 5);
  CHECK (dit_vae_encode_offline (v, &px.t, &ref.t) == DIT_OK, "offline: %s", dit_last_error ());
  CHECK (all_finite_in (ref.data, 16 * 4 * 64, -1e6f, 1e6f), "latents not finite");
  CHECK (maxdiff (ref.data, ref.data + 64, 64) > 1e-5, "latent channels identical");

  /* fresh encode of frame 6 alone (a first frame) */
  buf4 fresh = video_buf (16, 1, 8, 8), anchor = video_buf (16, 1, 8, 8);
  dit_tensor f6 = frame_range (&px.t, 6, 1);
  dit_vae_reset_encoder (v);
  CHECK (dit_vae_encode (v, &f6, &fresh.t) == DIT_OK, "fresh: %s", dit_last_error ());

  /* stream frames 0..8, anchor in between, then the last chunk */
  dit_vae_reset_encoder (v);
  CHECK (dit_vae_encode_frames (v) == 1, "first chunk takes 1 frame");
  dit_tensor c0 = frame_range (&px.t, 0, 1), c1 = frame_range (&px.t, 1, 4),
      c2 = frame_range (&px.t, 5, 4);
  dit_tensor c3 = frame_range (&px.t, 9, 4);
  dit_tensor l0 = frame_range (&got.t, 0, 1), l1 = frame_range (&got.t, 1, 1),
      l2 = frame_range (&got.t, 2, 1);
  dit_tensor l3 = frame_range (&got.t, 3, 1);
  CHECK (dit_vae_encode (v, &c0, &l0) == DIT_OK, "c0: %s", dit_last_error ());
  CHECK (dit_vae_encode_frames (v) == 4, "later chunks take 4 frames");
  CHECK (dit_vae_encode (v, &c1, &l1) == DIT_OK, "c1: %s", dit_last_error ());
  CHECK (dit_vae_encode_anchor (v, &f6, &anchor.t) == DIT_OK, "anchor: %s", dit_last_error ());
  CHECK (dit_vae_encode (v, &c2, &l2) == DIT_OK, "c2: %s", dit_last_error ());
  CHECK (dit_vae_encode_anchor (v, &f6, &anchor.t) == DIT_OK, "anchor: %s", dit_last_error ());
  CHECK (dit_vae_encode (v, &c3, &l3) == DIT_OK, "c3: %s", dit_last_error ());
  CHECK (maxdiff (anchor.data, fresh.data, 16 * 64) == 0.0, "anchor vs fresh: %g",
      maxdiff (anchor.data, fresh.data, 16 * 64));
  CHECK (maxdiff (got.data, ref.data, 16 * 4 * 64) == 0.0,
      "stream with anchors vs offline: %g", maxdiff (got.data, ref.data, 16 * 4 * 64));
  /* the anchor of frame 6 is not latent 1 or 2 of the stream (context matters) */
  CHECK (maxdiff (anchor.data, ref.data + 2 * 64, 64) > 1e-6, "anchor equals a stream latent");

  /* bad input */
  dit_status st = dit_vae_encode (v, &c0, &l0);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "chunks of 4"),
      "1 frame mid-stream: %d '%s'", st, dit_last_error ());
  buf4 px6 = video_buf (3, 6, H, W), lat2 = video_buf (16, 2, 8, 8);
  st = dit_vae_encode_offline (v, &px6.t, &lat2.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "1 + 4k"),
      "T=6 offline: %d '%s'", st, dit_last_error ());
  buf4 px4c = video_buf (4, 1, H, W);
  dit_vae_reset_encoder (v);
  st = dit_vae_encode (v, &px4c.t, &l0);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "4 channels, expected 3"),
      "4-channel pixels: %d '%s'", st, dit_last_error ());
  buf4 pxs = video_buf (3, 1, H, W / 2);
  st = dit_vae_encode (v, &pxs.t, &l0);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "size"),
      "wrong size pixels: %d '%s'", st, dit_last_error ());
  buf4 lat15 = video_buf (15, 1, 8, 8);
  st = dit_vae_decode (v, &lat15.t, &pxs.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "15 channels"),
      "15-channel latent: %d '%s'", st, dit_last_error ());
  free (px.data); free (ref.data); free (got.data); free (fresh.data);
  free (anchor.data); free (px6.data); free (lat2.data); free (px4c.data);
  free (pxs.data); free (lat15.data);
}

static void
test_bounded_memory (dit_weights *w)
{
  dit_vae *v = make_vae ("tiny", w, 32, 32);
  if (!v)
    return;
  const size_t state0 = dit_vae_state_bytes (v);
  buf4 lat = video_buf (16, 1, 4, 4), px = video_buf (3, 4, 32, 32),
      px1 = video_buf (3, 1, 32, 32);
  long hwm_warm = -1;
  int ok = 1;
  for (int i = 0; i < 200 && ok; i++) {
    fill_uniform (lat.data, 16 * 16, (uint32_t) i);
    ok = dit_vae_decode (v, &lat.t, i == 0 ? &px1.t : &px.t) == DIT_OK;
    if (i == 10)
      hwm_warm = peak_rss_kb ();
  }
  CHECK (ok, "long decode: %s", dit_last_error ());
  long hwm_end = peak_rss_kb ();
  CHECK (dit_vae_state_bytes (v) == state0 && state0 > 0, "state bytes %zu -> %zu",
      state0, dit_vae_state_bytes (v));
  CHECK (hwm_warm > 0 && hwm_end == hwm_warm,
      "peak RSS grew after warm-up: %ld kB -> %ld kB", hwm_warm, hwm_end);
  CHECK (all_finite_in (px.data, 3 * 4 * 32 * 32, -1.0f, 1.0f), "long stream output");
  dit_vae_free (v);
  free (lat.data); free (px.data); free (px1.data);
}

static void
test_bad_create (dit_weights *tiny)
{
  dit_vae_config cfg;
  dit_vae *v = NULL;
  dit_vae_config_preset ("tiny", &cfg);
  dit_status st = dit_vae_create (&cfg, tiny, 40, 32, DIT_F32, dit_backend_cpu (), &v);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "multiple of 16") && !v,
      "40x32: %d '%s'", st, dit_last_error ());
  dit_vae_config_preset ("wan", &cfg);
  st = dit_vae_create (&cfg, tiny, 32, 32, DIT_F32, dit_backend_cpu (), &v);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "encoder.conv1.weight")
      && strstr (dit_last_error (), "expected [96, 3, 3, 3, 3]") && !v,
      "tiny weights for wan config: %d '%s'", st, dit_last_error ());

  /* a checkpoint file with one wrong shape fails to load, naming the key */
  char path[] = "/tmp/test-vae-XXXXXX.safetensors";
  int fd = mkstemps (path, 12);
  if (fd < 0)
    return;
  close (fd);
  dit_param_spec *specs;
  size_t n;
  dit_vae_config_preset ("tiny", &cfg);
  dit_vae_config_params (&cfg, &specs, &n);
  dit_st_write_tensor *wt = calloc (n, sizeof *wt);
  int64_t bad_shape[5] = { 8, 3, 3, 3, 2 };
  for (size_t i = 0; i < n; i++) {
    const dit_tensor *t = dit_weights_get (tiny, specs[i].name);
    wt[i].name = specs[i].name;
    wt[i].dtype = DIT_F32;
    wt[i].ndim = specs[i].ndim;
    wt[i].shape = specs[i].shape;
    wt[i].data = t->data;
    if (strcmp (specs[i].name, "encoder.conv1.weight") == 0)
      wt[i].shape = bad_shape;   /* fewer elements than the data: fine to write */
  }
  st = dit_safetensors_write (path, wt, n, NULL);
  CHECK (st == DIT_OK, "write: %s", dit_last_error ());
  dit_weights *loaded = NULL;
  st = dit_weights_load (path, specs, n, NULL, DIT_F32, dit_backend_cpu (), &loaded);
  CHECK (st != DIT_OK && strstr (dit_last_error (), "encoder.conv1.weight"),
      "wrong-shape checkpoint: %d '%s'", st, dit_last_error ());
  dit_weights_free (loaded);
  /* with the right shape it loads, and detect names the preset */
  for (size_t i = 0; i < n; i++)
    wt[i].shape = specs[i].shape;
  CHECK (dit_safetensors_write (path, wt, n, NULL) == DIT_OK, "write: %s", dit_last_error ());
  st = dit_weights_load (path, specs, n, NULL, DIT_F32, dit_backend_cpu (), &loaded);
  CHECK (st == DIT_OK, "load tiny checkpoint: %s", dit_last_error ());
  const char *det = dit_vae_config_detect_path (path);
  CHECK (det && strcmp (det, "tiny") == 0, "detect: %s", det ? det : "(null)");
  dit_weights_free (loaded);
  unlink (path);
  free (wt);
  free (specs);
}

/* Real channel counts at 16x16 pixels: shapes and finite values. */
static void
test_wan_topology (void)
{
  dit_weights *w = synth ("wan", 3);
  CHECK (w != NULL, "synthetic wan: %s", dit_last_error ());
  if (!w)
    return;
  dit_vae *v = make_vae ("wan", w, 16, 16);
  dit_weights_free (w);
  CHECK (v != NULL, "create wan 16x16");
  if (!v)
    return;
  buf4 px = video_buf (3, 5, 16, 16), lat = video_buf (16, 2, 2, 2),
      out = video_buf (3, 5, 16, 16);
  fill_uniform (px.data, 3 * 5 * 256, 11);
  CHECK (dit_vae_encode_offline (v, &px.t, &lat.t) == DIT_OK, "wan encode: %s",
      dit_last_error ());
  CHECK (all_finite_in (lat.data, 16 * 2 * 4, -1e4f, 1e4f), "wan latents not finite");
  CHECK (dit_vae_decode (v, &lat.t, &out.t) == DIT_OK, "wan decode: %s", dit_last_error ());
  CHECK (all_finite_in (out.data, 3 * 5 * 256, -1.0f, 1.0f), "wan pixels not in [-1, 1]");
  CHECK (maxdiff (out.data, out.data + 256, 256) > 0.0, "wan output frames identical");
  dit_vae_free (v);
  free (px.data); free (lat.data); free (out.data);
}

/* The demo VAE's shape (base 16) is not a synthetic preset but is known by
 * its file: a bf16 checkpoint of that shape, as the trainer writes it, is
 * detected as "demo", loads through dit_load_vae by path with base 16, and
 * decodes to finite pixels. */
static void
test_demo_shape (void)
{
  dit_vae_config cfg;
  dit_param_spec *specs;
  size_t n;
  CHECK (dit_vae_config_preset ("demo", &cfg) == DIT_OK && cfg.base_dim == 16,
      "demo config: %s", dit_last_error ());
  for (const char *const *name = dit_vae_config_preset_names (); *name; name++)
    CHECK (strcmp (*name, "demo") != 0, "demo listed as a synthetic preset");
  if (dit_vae_config_params (&cfg, &specs, &n) != DIT_OK)
    return;
  dit_weights *w = NULL;
  CHECK (dit_weights_synthetic (specs, n, 7, DIT_F32, dit_backend_cpu (), &w) == DIT_OK,
      "synthetic demo-shape weights: %s", dit_last_error ());
  char path[] = "/tmp/test-vae-demo-XXXXXX.safetensors";
  int fd = mkstemps (path, 12);
  if (!w || fd < 0)
    goto out;
  close (fd);
  CHECK (dit_weights_save (w, path, DIT_BF16, NULL) == DIT_OK, "write: %s",
      dit_last_error ());
  const char *det = dit_vae_config_detect_path (path);
  CHECK (det && strcmp (det, "demo") == 0, "detect: %s", det ? det : "(null)");
  dit_vae_config got;
  dit_weights *loaded = NULL;
  CHECK (dit_load_vae (path, 0, DIT_F32, dit_backend_cpu (), &got, &loaded) == DIT_OK
      && got.base_dim == 16, "load demo-shape bf16 checkpoint: %s", dit_last_error ());
  dit_vae *v = NULL;
  if (loaded && dit_vae_create (&got, loaded, 32, 32, DIT_F32, dit_backend_cpu (), &v) == DIT_OK) {
    buf4 lat = video_buf (16, 1, 4, 4), px = video_buf (3, 1, 32, 32);
    fill_uniform (lat.data, 16 * 16, 3);
    CHECK (dit_vae_decode (v, &lat.t, &px.t) == DIT_OK, "demo-shape decode: %s",
        dit_last_error ());
    CHECK (all_finite_in (px.data, 3 * 32 * 32, -1.0f, 1.0f), "demo-shape pixels");
    dit_vae_free (v);
    free (lat.data);
    free (px.data);
  } else
    CHECK (0, "create demo-shape VAE: %s", dit_last_error ());
  dit_weights_free (loaded);
  unlink (path);
out:
  dit_weights_free (w);
  free (specs);
}

/* "test-vae" runs the tiny-config tests; "test-vae wan" the real-size
 * topology (a separate meson test so each stays well under the timeout). */
int
main (int argc, char **argv)
{
  dit_backend *be = dit_backend_cpu ();
  if (!be || !be->ops->vae) {
    fprintf (stderr, "FAIL: CPU backend without VAE ops\n");
    return 1;
  }
  if (argc > 1 && strcmp (argv[1], "wan") == 0) {
    test_wan_topology ();
  } else {
    test_params ();
    test_latent_normalisation ();
    test_demo_shape ();
    dit_weights *w = synth ("tiny", 42);
    CHECK (w != NULL, "synthetic tiny: %s", dit_last_error ());
    if (w) {
      dit_vae *v = make_vae ("tiny", w, 64, 64);
      CHECK (v != NULL, "create tiny 64x64");
      if (v) {
        test_decode_streaming (v);
        test_encode_anchor (v);
        dit_vae_free (v);
      }
      test_bounded_memory (w);
      test_bad_create (w);
      dit_weights_free (w);
    }
  }
  if (failures) {
    fprintf (stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf ("test_vae%s: all passed\n", argc > 1 ? " wan" : "");
  return 0;
}
