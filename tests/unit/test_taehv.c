/* test_taehv — the TAEHV tiny autoencoder (model/dit_taehv.c) on the CPU.
 *
 * The numbers against the float64 reference are checked by
 * tests/reference/test_taehv_reference.sh; this file checks the streaming
 * contract and the edges:
 *  - parameter lists: taew2_1's 11 315 539 parameters (1 470 928 encoder),
 *    the preset detected from a file's shapes, LightTAE = same shapes;
 *  - independent values: weights all zero except the last bias give pixels
 *    2 clamp(b, 0, 1) - 1 (decoder) and latents = b (encoder), which pins the
 *    pixel and latent conventions without the reference;
 *  - frame counts (1, then 4 per latent) and the encoder's one-group delay
 *    with its flush;
 *  - streaming equals offline: one latent per call == all in one call ==
 *    2 + 3 split, bit for bit; streaming encode == dit_taehv_encode_offline;
 *  - reset restarts a stream (same output again); a failed call resets;
 *  - bounded state: 200 latents, state and workspace bytes constant, peak
 *    RSS unchanged after warm-up;
 *  - clear errors: wrong frame counts, sizes, a flushed encoder, a part that
 *    was not created.
 */
#include "dit_loader.h"
#include "dit_taehv.h"
#include "safetensors.h"
#include "../common/check.h"
#include "../common/test_random.h"
#include "../common/video_buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
same (const float *a, const float *b, int64_t n)
{
  return memcmp (a, b, (size_t) n * sizeof (float)) == 0;
}

static dit_weights *
synth (const char *preset, uint64_t seed)
{
  dit_taehv_config cfg;
  dit_weights *w = NULL;
  if (dit_load_taehv (preset, seed, DIT_F32, dit_backend_cpu (), &cfg, &w) != DIT_OK) {
    fprintf (stderr, "synthetic %s: %s\n", preset, dit_last_error ());
    return NULL;
  }
  return w;
}

static dit_taehv *
make (const char *preset, const dit_weights *w, int width, int height,
    unsigned parts)
{
  dit_taehv_config cfg;
  dit_taehv *t = NULL;
  dit_taehv_config_preset (preset, &cfg);
  if (dit_taehv_create (&cfg, w, width, height, DIT_F32, parts,
          dit_backend_cpu (), &t) != DIT_OK) {
    fprintf (stderr, "create %s %dx%d: %s\n", preset, width, height,
        dit_last_error ());
    return NULL;
  }
  return t;
}

/* ------------------------------------------------------------------------ */

static void
test_params (void)
{
  dit_taehv_config cfg;
  dit_param_spec *specs;
  size_t n;
  CHECK (dit_taehv_config_preset ("taew2_1", &cfg) == DIT_OK, "preset");
  CHECK (dit_taehv_config_params (&cfg, &specs, &n) == DIT_OK, "params");
  int64_t total = 0, enc = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t e = 1;
    for (int d = 0; d < specs[i].ndim; d++)
      e *= specs[i].shape[d];
    total += e;
    if (strncmp (specs[i].name, "encoder.", 8) == 0)
      enc += e;
  }
  CHECK (total == 11315539 && enc == 1470928, "taew2_1 parameters %lld "
      "(encoder %lld)", (long long) total, (long long) enc);
  CHECK (n == 128, "taew2_1 has %zu tensors, expected 128", n);
  /* spot checks of names and shapes (taehv.py's nn.Sequential indices) */
  int seen = 0;
  for (size_t i = 0; i < n; i++) {
    const dit_param_spec *s = &specs[i];
    if (strcmp (s->name, "decoder.13.conv.weight") == 0)
      seen += s->shape[0] == 256 && s->shape[1] == 128 && s->shape[2] == 1;
    if (strcmp (s->name, "decoder.3.conv.0.weight") == 0)
      seen += s->shape[0] == 256 && s->shape[1] == 512 && s->shape[3] == 3;
    if (strcmp (s->name, "encoder.12.conv.weight") == 0)
      seen += s->shape[0] == 64 && s->shape[1] == 64;
    if (strcmp (s->name, "decoder.22.bias") == 0)
      seen += s->ndim == 1 && s->shape[0] == 3;
  }
  CHECK (seen == 4, "spot-checked names and shapes: %d of 4", seen);
  free (specs);
  CHECK (dit_taehv_config_preset ("lighttaew2_1", &cfg) == DIT_OK
      && cfg.latent_raw == 1 && cfg.dec_dim[0] == 256, "lighttaew2_1");
  CHECK (dit_taehv_config_preset ("taew2_2", &cfg) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "taew2_1"), "unknown preset: %s",
      dit_last_error ());
}

/* Write `w` (of preset) to a file, optionally with metadata. */
static int
save (const dit_weights *w, const char *path, const char *latents)
{
  dit_st_write_tensor *wt = calloc (w->count, sizeof *wt);
  for (size_t i = 0; i < w->count; i++) {
    wt[i].name = w->specs[i].name;
    wt[i].dtype = DIT_F32;
    wt[i].ndim = w->specs[i].ndim;
    wt[i].shape = w->specs[i].shape;
    wt[i].data = w->tensors[i].data;
  }
  const char *meta[] = { "latents", latents, NULL };
  dit_status st = dit_safetensors_write (path, wt, w->count, latents ? meta : NULL);
  free (wt);
  return st == DIT_OK;
}

static void
test_detect (const dit_weights *tiny)
{
  char dir[] = "/tmp/test-taehv-XXXXXX";
  if (!mkdtemp (dir))
    return;
  char a[128], b[128], c[128];
  snprintf (a, sizeof a, "%s/mine.safetensors", dir);
  snprintf (b, sizeof b, "%s/lighttae_mine.safetensors", dir);
  snprintf (c, sizeof c, "%s/lighttae_but_says.safetensors", dir);
  CHECK (save (tiny, a, NULL) && save (tiny, b, NULL) && save (tiny, c,
          "normalised"), "write");
  dit_taehv_config cfg;
  CHECK (dit_taehv_config_of_path (a, &cfg) == DIT_OK
      && strcmp (cfg.name, "taehv-tiny") == 0 && !cfg.latent_raw,
      "plain file: %s", dit_last_error ());
  CHECK (dit_taehv_config_of_path (b, &cfg) == DIT_OK && cfg.latent_raw,
      "a lighttae* name means raw latents");
  CHECK (dit_taehv_config_of_path (c, &cfg) == DIT_OK && !cfg.latent_raw,
      "metadata wins over the name");
  dit_weights *w = NULL;
  CHECK (dit_load_taehv (a, 0, DIT_F32, dit_backend_cpu (), &cfg, &w) == DIT_OK,
      "load: %s", dit_last_error ());
  dit_weights_free (w);
  unlink (a);
  unlink (b);
  unlink (c);
  rmdir (dir);
}

/* Weights all zero but one bias: decoder pixels 2 clamp(b, 0, 1) - 1,
 * encoder latents = b. */
static void
test_independent_values (void)
{
  dit_weights *w = synth ("taehv-tiny", 0);
  if (!w)
    return;
  for (size_t i = 0; i < w->count; i++)
    memset (w->tensors[i].data, 0, dit_tensor_nbytes (&w->tensors[i]));
  float *db = (float *) dit_weights_get (w, "decoder.22.bias")->data;
  float *eb = (float *) dit_weights_get (w, "encoder.17.bias")->data;
  db[0] = 0.25f;
  db[1] = -0.5f;
  db[2] = 1.5f;
  for (int c = 0; c < 16; c++)
    eb[c] = 0.125f * (float) (c - 8);
  dit_taehv *t = make ("taehv-tiny", w, 32, 16, DIT_TAEHV_DECODER | DIT_TAEHV_ENCODER);
  dit_weights_free (w);
  if (!t)
    return;
  buf4 lat = video_buf (16, 2, 2, 4), px = video_buf (3, 5, 16, 32);
  fill_uniform (lat.data, lat.n, 3);
  CHECK (dit_taehv_decode (t, &lat.t, &px.t) == DIT_OK, "decode: %s",
      dit_last_error ());
  const float want[3] = { -0.5f, -1.0f, 1.0f };
  int ok = 1;
  for (int64_t i = 0; i < px.n; i++)
    ok &= fabsf (px.data[i] - want[i / (5 * 16 * 32)]) < 1e-6f;
  CHECK (ok, "decoder bias only: pixels %g %g %g", px.data[0],
      px.data[5 * 16 * 32], px.data[2 * 5 * 16 * 32]);
  buf4 in = video_buf (3, 5, 16, 32), out = video_buf (16, 2, 2, 4);
  fill_uniform (in.data, in.n, 4);
  CHECK (dit_taehv_encode_offline (t, &in.t, &out.t) == DIT_OK, "encode: %s",
      dit_last_error ());
  ok = 1;
  for (int64_t i = 0; i < out.n; i++)
    ok &= out.data[i] == 0.125f * (float) (i / 16 - 8);
  CHECK (ok, "encoder bias only: latents %g %g", out.data[0], out.data[16]);
  dit_taehv_free (t);
  free (lat.data); free (px.data); free (in.data); free (out.data);
}

static void
test_decode_stream (const dit_weights *w)
{
  dit_taehv *t = make ("taehv-tiny", w, 32, 24, DIT_TAEHV_DECODER);
  if (!t)
    return;
  buf4 lat = video_buf (16, 5, 3, 4);
  fill_uniform (lat.data, lat.n, 7);
  buf4 all = video_buf (3, 17, 24, 32), per = video_buf (3, 17, 24, 32),
      split = video_buf (3, 17, 24, 32);
  CHECK (dit_taehv_decode_frames (t, 5) == 17 && dit_taehv_decode_frames (t, 1) == 1,
      "first call frame counts");
  CHECK (dit_taehv_decode (t, &lat.t, &all.t) == DIT_OK, "decode 5: %s",
      dit_last_error ());
  CHECK (dit_taehv_decode_frames (t, 1) == 4 && dit_taehv_decode_frames (t, 3) == 12,
      "later frame counts");
  dit_taehv_reset_decoder (t);
  int64_t f0 = 0;
  for (int i = 0; i < 5; i++) {
    const int64_t n = dit_taehv_decode_frames (t, 1);
    dit_tensor l = frame_range (&lat.t, i, 1), p = frame_range (&per.t, f0, n);
    CHECK (n == (i ? 4 : 1), "latent %d gives %lld frames", i, (long long) n);
    CHECK (dit_taehv_decode (t, &l, &p) == DIT_OK, "latent %d: %s", i,
        dit_last_error ());
    f0 += n;
  }
  CHECK (same (all.data, per.data, all.n), "one latent per call != one call");
  dit_taehv_reset_decoder (t);
  dit_tensor l2 = frame_range (&lat.t, 0, 2), p2 = frame_range (&split.t, 0, 5);
  dit_tensor l3 = frame_range (&lat.t, 2, 3),
      p3 = frame_range (&split.t, 5, 12);
  CHECK (dit_taehv_decode (t, &l2, &p2) == DIT_OK
      && dit_taehv_decode (t, &l3, &p3) == DIT_OK, "2 + 3: %s", dit_last_error ());
  CHECK (same (all.data, split.data, all.n), "2 + 3 split != one call");
  int in_range = 1, varies = 0;
  for (int64_t i = 0; i < all.n; i++) {
    in_range &= all.data[i] >= -1.0f && all.data[i] <= 1.0f;
    varies |= all.data[i] != all.data[0];
  }
  CHECK (in_range && varies, "pixels in [-1, 1] and not constant");
  /* errors: a bad call resets the stream, and says why */
  buf4 bad = video_buf (16, 1, 3, 5), pb = video_buf (3, 4, 24, 32);
  dit_status st = dit_taehv_decode (t, &bad.t, &pb.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "size"),
      "wrong latent size: %s", dit_last_error ());
  dit_tensor l1 = frame_range (&lat.t, 0, 1);
  dit_taehv_reset_decoder (t);
  st = dit_taehv_decode (t, &l1, &pb.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "4 frames, expected 1"),
      "4 pixel frames for latent 0: %s", dit_last_error ());
  buf4 in = video_buf (3, 1, 24, 32), z = video_buf (16, 1, 3, 4);
  int n = 0;
  st = dit_taehv_encode (t, &in.t, &z.t, &n);
  CHECK (st == DIT_ERR_STATE && strstr (dit_last_error (), "without the encoder"),
      "encode on a decoder: %s", dit_last_error ());
  dit_taehv_free (t);
  free (lat.data); free (all.data); free (per.data); free (split.data);
  free (bad.data); free (pb.data); free (in.data); free (z.data);
}

static void
test_encode_stream (const dit_weights *w)
{
  dit_taehv *t = make ("taehv-tiny", w, 32, 24, DIT_TAEHV_ENCODER);
  if (!t)
    return;
  buf4 px = video_buf (3, 13, 24, 32), off = video_buf (16, 4, 3, 4),
      str = video_buf (16, 4, 3, 4);
  fill_uniform (px.data, px.n, 9);
  CHECK (dit_taehv_encode_offline (t, &px.t, &off.t) == DIT_OK, "offline: %s",
      dit_last_error ());
  dit_taehv_reset_encoder (t);
  int64_t done = 0, f0 = 0;
  for (int g = 0; g < 4; g++) {
    const int k = dit_taehv_encode_frames (t);
    CHECK (k == (g ? 4 : 1), "group %d takes %d frames", g, k);
    dit_tensor p = frame_range (&px.t, f0, k),
        l = frame_range (&str.t, done, 1);
    int n = -1;
    CHECK (dit_taehv_encode (t, &p, &l, &n) == DIT_OK, "group %d: %s", g,
        dit_last_error ());
    CHECK (n == (g ? 1 : 0), "group %d gave %d latents (one group late)", g, n);
    done += n > 0 ? n : 0;
    f0 += k;
  }
  dit_tensor l = frame_range (&str.t, done, 1);
  int n = 0;
  CHECK (dit_taehv_encode_flush (t, &l, &n) == DIT_OK && n == 1, "flush: %d %s",
      n, dit_last_error ());
  CHECK (same (off.data, str.data, off.n), "streaming encode != offline");
  CHECK (dit_taehv_encode_flush (t, &l, &n) == DIT_OK && n == 0,
      "a second flush gives nothing");
  dit_tensor p4 = frame_range (&px.t, 1, 4);
  dit_status st = dit_taehv_encode (t, &p4, &l, &n);
  CHECK (st == DIT_ERR_STATE && strstr (dit_last_error (), "reset"),
      "encode after flush: %s", dit_last_error ());
  dit_taehv_reset_encoder (t);
  st = dit_taehv_encode (t, &p4, &l, &n);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "frame 0 alone"),
      "4 frames first: %s", dit_last_error ());
  buf4 px12 = video_buf (3, 12, 24, 32), lat3 = video_buf (16, 3, 3, 4);
  st = dit_taehv_encode_offline (t, &px12.t, &lat3.t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "1 + 4k"),
      "offline 12 frames: %s", dit_last_error ());
  dit_taehv_free (t);
  free (px.data); free (off.data); free (str.data); free (px12.data);
  free (lat3.data);
}

static void
test_bounded (const dit_weights *w)
{
  dit_taehv *t = make ("taehv-tiny", w, 32, 32,
      DIT_TAEHV_DECODER | DIT_TAEHV_ENCODER);
  if (!t)
    return;
  const size_t state0 = dit_taehv_state_bytes (t);
  const size_t ws0 = dit_taehv_workspace_bytes (t);
  buf4 lat = video_buf (16, 1, 4, 4), px = video_buf (3, 4, 32, 32),
      px1 = video_buf (3, 1, 32, 32);
  buf4 first = video_buf (3, 4, 32, 32);
  long hwm_warm = -1;
  int ok = 1;
  for (int i = 0; i < 200 && ok; i++) {
    fill_uniform (lat.data, lat.n, (uint32_t) i);
    ok = dit_taehv_decode (t, &lat.t, i == 0 ? &px1.t : &px.t) == DIT_OK;
    if (i == 1)
      memcpy (first.data, px.data, (size_t) px.n * sizeof (float));
    if (i == 10)
      hwm_warm = peak_rss_kb ();
  }
  CHECK (ok, "200 latents: %s", dit_last_error ());
  const long hwm_end = peak_rss_kb ();
  CHECK (state0 > 0 && dit_taehv_state_bytes (t) == state0
      && dit_taehv_workspace_bytes (t) == ws0, "state %zu -> %zu, workspace "
      "%zu -> %zu", state0, dit_taehv_state_bytes (t), ws0,
      dit_taehv_workspace_bytes (t));
  /* under valgrind (meson test --setup valgrind) RSS is valgrind's; its
   * leak check stands in for this one there */
  if (!getenv ("DIT_VALGRIND"))
    CHECK (hwm_warm > 0 && hwm_end == hwm_warm, "peak RSS grew after warm-up: "
        "%ld kB -> %ld kB", hwm_warm, hwm_end);
  /* a reset stream decodes latents 0 and 1 as the first time */
  dit_taehv_reset_decoder (t);
  fill_uniform (lat.data, lat.n, 0);
  dit_taehv_decode (t, &lat.t, &px1.t);
  fill_uniform (lat.data, lat.n, 1);
  CHECK (dit_taehv_decode (t, &lat.t, &px.t) == DIT_OK
      && same (px.data, first.data, px.n), "reset does not restart the stream");
  /* state = one frame per MemBlock plus the pending encoder frame */
  const size_t want = sizeof (float) * (size_t) (3 * (16 * 16 * 8 + 8 * 8 * 8
          + 4 * 4 * 8) + 3 * (4 * 4 * 32 + 8 * 8 * 16 + 16 * 16 * 8)
      + 32 * 32 * 3);
  CHECK (state0 == want, "state bytes %zu, expected %zu", state0, want);
  dit_taehv_free (t);
  free (lat.data); free (px.data); free (px1.data); free (first.data);
}

static void
test_bad_create (const dit_weights *tiny)
{
  dit_taehv_config cfg;
  dit_taehv *t = NULL;
  dit_taehv_config_preset ("taehv-tiny", &cfg);
  dit_status st = dit_taehv_create (&cfg, tiny, 36, 32, DIT_F32,
      DIT_TAEHV_DECODER, dit_backend_cpu (), &t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "multiple of 8")
      && !t, "36x32: %s", dit_last_error ());
  dit_taehv_config_preset ("taew2_1", &cfg);
  st = dit_taehv_create (&cfg, tiny, 32, 32, DIT_F32, DIT_TAEHV_DECODER,
      dit_backend_cpu (), &t);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "decoder.1.weight")
      && !t, "tiny weights for taew2_1: %s", dit_last_error ());
}

int
main (void)
{
  test_params ();
  dit_weights *w = synth ("taehv-tiny", 1);
  CHECK (w != NULL, "synthetic taehv-tiny");
  if (w) {
    test_detect (w);
    test_decode_stream (w);
    test_encode_stream (w);
    test_bounded (w);
    test_bad_create (w);
    dit_weights_free (w);
  }
  test_independent_values ();
  if (failures) {
    fprintf (stderr, "test_taehv: %d failure(s)\n", failures);
    return 1;
  }
  printf ("test_taehv: all ok\n");
  return 0;
}
