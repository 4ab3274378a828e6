/* test_stage0 — Stage 0 (model/dit_stage0.h) on the CPU against references
 * built here from other code:
 *
 *  - the anchor path: for 6 chunks (F = C = 3, tiny VAE at 32x48 pixels)
 *    the context of every chunk equals what the host bookkeeping of
 *    model/dit_stream.h (dit_context) builds when given an anchor made by a
 *    second VAE instance that decodes the same latents one by one and
 *    encodes the last frame of the anchor latent (bit for bit: the same ops
 *    on the same backend); the displayed frames equal that VAE's decode;
 *  - anchor = latent, and F = 4 with C = 2 (the first phase keeps latent 0);
 *  - the queue: room, a display behind (push refused, then accepted after a
 *    release), drain, a gap in a display submission, stale release;
 *  - no host copies on the CPU backend (dit_host_copies_get unchanged over
 *    a chunk: context, push, display);
 *  - errors: chunks out of order, a decoded anchor without a VAE;
 *  - the anchor's own stream beside a display decoder of its own (TAEHV
 *    taehv-tiny, anchor decoder full and tiny): a Stage 0 whose anchor path
 *    runs on a second backend instance gives the same contexts and frames,
 *    bit for bit, as one that runs it on the caller's backend (the serial
 *    order), and its anchor is not the latent's copy.  On the CPU both
 *    orders run the same ops synchronously; test-cuda-stage0 checks the
 *    two streams of one GPU.
 */
#include "dit_backend.h"
#include "dit_loader.h"
#include "dit_stage0.h"
#include "dit_stream.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "../common/stage0_display.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LH = 4, LW = 6, HW = LH * LW, PIX = 64 * HW };

static dit_backend *be;
static dit_vae_config vcfg;
static dit_weights *vw;

static void
fill_chunk (float *x, int F, int64_t k)
{
  for (int i = 0; i < 16 * F * HW; i++)
    x[i] = (float) sin (0.37 * i + 1.3 * (double) k);
}

static dit_tensor
lat (float *x, int n)
{
  int64_t s[4] = { 16, n, LH, LW };
  return dit_tensor_make (x, DIT_F32, DIT_DEVICE_CPU, 4, s);
}

static dit_stage0 *
make (int F, int C, dit_anchor_mode mode, int capacity, int with_vae)
{
  dit_stage0_config c;
  dit_stage0 *s = NULL;
  dit_stage0_config_default (&c);
  c.latent_h = LH;
  c.latent_w = LW;
  c.frames_per_chunk = F;
  c.context_frames = C;
  c.anchor = mode;
  c.capacity = capacity;
  if (with_vae) {
    c.vae_config = &vcfg;
    c.vae_weights = vw;
  }
  if (dit_stage0_create (&c, be, &s) != DIT_OK)
    CHECK (0, "create: %s", dit_last_error ());
  return s;
}

/* Chunks of F = C = 3 with the decoded anchor, against dit_context fed by a
 * reference VAE. */
static void
test_anchor_path (void)
{
  const int F = 3, C = 3, K = 6;
  dit_stage0 *s = make (F, C, DIT_ANCHOR_DECODED, 2 * F, 1);
  dit_context *ref = NULL;
  dit_vae *rv = NULL;
  static float x[16 * 3 * HW], ctx_ref[16 * 3 * HW], anchor[16 * HW];
  static float frames[PIX * 3 * 4], lat1[16 * HW], frame1[3 * PIX];
  if (!s || dit_context_create (F, C, LH, LW, DIT_ANCHOR_DECODED, &ref) != DIT_OK
      || dit_vae_create (&vcfg, vw, 8 * LW, 8 * LH, DIT_F32, be, &rv) != DIT_OK) {
    CHECK (0, "setup: %s", dit_last_error ());
    goto out;
  }
  int64_t decoded_ref = 0;
  for (int64_t k = 0; k < K; k++) {
    dit_tensor ctx;
    dit_host_copies c0, c1;
    dit_host_copies_get (&c0);
    CHECK (dit_stage0_context (s, k, NULL, &ctx) == DIT_OK, "context %lld: %s",
        (long long) k, dit_last_error ());
    if (k > 0) {
      CHECK (dit_context_build (ref, k, ctx_ref) == DIT_OK, "ref context %lld: %s",
          (long long) k, dit_last_error ());
      CHECK (ctx.data && memcmp (ctx.data, ctx_ref, sizeof ctx_ref) == 0,
          "chunk %lld: the context differs from dit_context's", (long long) k);
    } else {
      CHECK (ctx.data == NULL, "chunk 0 has a context");
    }
    fill_chunk (x, F, k);
    dit_tensor xt = lat (x, F);
    CHECK (dit_stage0_push_chunk (s, k, &xt, NULL) == DIT_OK, "push %lld: %s",
        (long long) k, dit_last_error ());
    dit_context_push_chunk (ref, k, x);
    int64_t a = dit_context_anchor_latent (ref, k + 1);
    /* the display takes this chunk's latents; the reference VAE decodes
     * them one by one and makes the anchor from the anchor latent */
    CHECK (dit_stage0_decode_to (s, (k + 1) * F - 1) == DIT_OK, "display %lld: %s",
        (long long) k, dit_last_error ());
    for (int j = 0; j < F; j++, decoded_ref++) {
      dit_latent_extract (x, F, j, HW, lat1);
      int T = dit_stream_latent_frames (decoded_ref);
      int64_t ls[4] = { 16, 1, LH, LW }, ps[4] = { 3, T, 8 * LH, 8 * LW };
      dit_tensor lt = dit_tensor_make (lat1, DIT_F32, DIT_DEVICE_CPU, 4, ls);
      dit_tensor pt = dit_tensor_make (frames, DIT_F32, DIT_DEVICE_CPU, 4, ps);
      CHECK (dit_vae_decode (rv, &lt, &pt) == DIT_OK, "ref decode");
      dit_tensor sf;
      CHECK (dit_stage0_frames (s, decoded_ref, &sf) == DIT_OK
          && sf.shape[1] == T
          && memcmp (sf.data, frames, (size_t) 3 * T * PIX * 4) == 0,
          "frames of latent %lld differ", (long long) decoded_ref);
      if (decoded_ref == a) {
        int64_t fs[4] = { 3, 1, 8 * LH, 8 * LW };
        for (int c = 0; c < 3; c++)
          memcpy (frame1 + c * PIX, frames + ((size_t) c * T + T - 1) * PIX,
              PIX * sizeof (float));
        dit_tensor ft = dit_tensor_make (frame1, DIT_F32, DIT_DEVICE_CPU, 4, fs);
        dit_tensor at = dit_tensor_make (anchor, DIT_F32, DIT_DEVICE_CPU, 4, ls);
        CHECK (dit_vae_encode_anchor (rv, &ft, &at) == DIT_OK, "ref anchor");
        dit_context_set_anchor (ref, k + 1, anchor);
      }
    }
    dit_stage0_release (s, (k + 1) * F - 1);
    dit_host_copies_get (&c1);
    CHECK (c1.uploads == c0.uploads && c1.downloads == c0.downloads,
        "chunk %lld made %llu uploads and %llu downloads on the CPU", (long long) k,
        (unsigned long long) (c1.uploads - c0.uploads),
        (unsigned long long) (c1.downloads - c0.downloads));
  }
  dit_stage0_stats st;
  dit_stage0_get_stats (s, &st);
  CHECK (st.decoded == K * F, "decoded %lld latents, want %d", (long long) st.decoded,
      K * F);
  CHECK (st.anchors == K - 1, "made %lld anchors, want %d (chunks 2..%d)",
      (long long) st.anchors, K - 1, K);
  CHECK (st.busy_us > 0, "no busy time");
out:
  dit_vae_free (rv);
  dit_context_free (ref);
  dit_stage0_free (s);
}

/* Stage 0 with the taehv-tiny display decoder, its anchor path on the
 * caller's backend (SHARED) or on an instance of its own (OWN). */
static dit_stage0 *
make_tiny_display (dit_stage0_anchor_stream where, dit_anchor_decoder from,
    const dit_taehv_config *tc, const dit_weights *tw)
{
  dit_stage0_config c;
  dit_stage0 *s = NULL;
  stage0_display_config (&c, LH, LW, 3, &vcfg, vw, DIT_F32, tc, tw);
  c.anchor_decoder = from;
  c.anchor_stream = where;
  if (dit_stage0_create (&c, be, &s) != DIT_OK)
    CHECK (0, "create (anchor stream %d): %s", (int) where, dit_last_error ());
  return s;
}

static void
test_anchor_stream (dit_anchor_decoder from)
{
  const int F = 3, K = 4;
  dit_taehv_config tc;
  dit_weights *tw = NULL;
  dit_stage0 *ser = NULL, *own = NULL, *aut = NULL;
  static float x[16 * 3 * HW], ctx_ser[16 * 3 * HW];
  if (dit_load_taehv ("taehv-tiny", 3, DIT_F32, be, &tc, &tw) != DIT_OK) {
    CHECK (0, "taehv-tiny: %s", dit_last_error ());
    return;
  }
  ser = make_tiny_display (DIT_STAGE0_ANCHOR_STREAM_SHARED, from, &tc, tw);
  own = make_tiny_display (DIT_STAGE0_ANCHOR_STREAM_OWN, from, &tc, tw);
  aut = make_tiny_display (DIT_STAGE0_ANCHOR_STREAM_AUTO, from, &tc, tw);
  if (!ser || !own || !aut)
    goto out;
  CHECK (!dit_stage0_anchor_on_own_stream (ser)
      && dit_stage0_anchor_on_own_stream (own)
      && !dit_stage0_anchor_on_own_stream (aut),
      "anchor streams: shared %d, own %d, auto %d (want 0, 1, 0 on the CPU)",
      dit_stage0_anchor_on_own_stream (ser),
      dit_stage0_anchor_on_own_stream (own),
      dit_stage0_anchor_on_own_stream (aut));
  for (int64_t k = 0; k < K; k++) {
    dit_tensor cs, co;
    CHECK (dit_stage0_context (ser, k, NULL, &cs) == DIT_OK
        && dit_stage0_context (own, k, NULL, &co) == DIT_OK,
        "context %lld: %s", (long long) k, dit_last_error ());
    if (k > 0 && cs.data && co.data) {
      memcpy (ctx_ser, cs.data, sizeof ctx_ser);
      CHECK (memcmp (co.data, ctx_ser, sizeof ctx_ser) == 0, "anchor decoder "
          "%d, chunk %lld: the context of the anchor's own stream differs "
          "from the serial one", (int) from, (long long) k);
      /* slot 0 is the re-encoded anchor, not a copy of its latent */
      int64_t a = dit_context_slot_latent (F, 3, k, 0);
      fill_chunk (x, F, a / F);
      CHECK (!dit_context_slot0_is_anchor (F, 3, DIT_ANCHOR_DECODED, k)
          || memcmp (ctx_ser, x + (a % F) * HW, HW * sizeof (float)) != 0,
          "chunk %lld: slot 0 holds the latent, not the anchor",
          (long long) k);
    }
    fill_chunk (x, F, k);
    dit_tensor xt = lat (x, F);
    CHECK (dit_stage0_push_chunk (ser, k, &xt, NULL) == DIT_OK
        && dit_stage0_push_chunk (own, k, &xt, NULL) == DIT_OK,
        "push %lld: %s", (long long) k, dit_last_error ());
    CHECK (dit_stage0_decode_to (ser, (k + 1) * F - 1) == DIT_OK
        && dit_stage0_decode_to (own, (k + 1) * F - 1) == DIT_OK,
        "display %lld: %s", (long long) k, dit_last_error ());
    for (int64_t l = k * F; l < (k + 1) * F; l++) {
      dit_tensor fs, fo;
      CHECK (dit_stage0_frames (ser, l, &fs) == DIT_OK
          && dit_stage0_frames (own, l, &fo) == DIT_OK
          && fs.shape[1] == fo.shape[1]
          && memcmp (fs.data, fo.data, (size_t) 3 * fs.shape[1] * PIX
              * sizeof (float)) == 0,
          "anchor decoder %d: frames of latent %lld differ", (int) from,
          (long long) l);
    }
    dit_stage0_release (ser, (k + 1) * F - 1);
    dit_stage0_release (own, (k + 1) * F - 1);
  }
  dit_stage0_stats ss, so;
  CHECK (dit_stage0_sync (own) == DIT_OK, "sync: %s", dit_last_error ());
  dit_stage0_get_stats (ser, &ss);
  dit_stage0_get_stats (own, &so);
  CHECK (ss.anchors == K - 1 && so.anchors == K - 1 && so.decoded == ss.decoded
      && so.last_anchor_ms > 0.0, "stats: anchors %lld / %lld, decoded %lld / "
      "%lld, last anchor %.3f ms", (long long) ss.anchors,
      (long long) so.anchors, (long long) ss.decoded, (long long) so.decoded,
      so.last_anchor_ms);
out:
  dit_stage0_free (ser);
  dit_stage0_free (own);
  dit_stage0_free (aut);
  dit_weights_free (tw);
}

/* anchor = latent (no decoder) and F = 4, C = 2: contexts against
 * dit_context. */
static void
test_latent_rule (int F, int C, dit_anchor_mode mode)
{
  dit_stage0 *s = make (F, C, mode, 2 * F, mode == DIT_ANCHOR_DECODED);
  dit_context *ref = NULL;
  static float x[16 * 4 * HW], ctx_ref[16 * 4 * HW];
  if (!s || dit_context_create (F, C, LH, LW, mode, &ref) != DIT_OK)
    goto out;
  for (int64_t k = 0; k < 5; k++) {
    dit_tensor ctx;
    CHECK (dit_stage0_context (s, k, NULL, &ctx) == DIT_OK, "context: %s",
        dit_last_error ());
    if (k > 0 && !dit_context_slot0_is_anchor (F, C, mode, k)) {
      dit_context_build (ref, k, ctx_ref);
      CHECK (memcmp (ctx.data, ctx_ref, (size_t) 16 * C * HW * 4) == 0,
          "F %d C %d chunk %lld: context differs", F, C, (long long) k);
    }
    fill_chunk (x, F, k);
    dit_tensor xt = lat (x, F);
    CHECK (dit_stage0_push_chunk (s, k, &xt, NULL) == DIT_OK, "push: %s",
        dit_last_error ());
    dit_context_push_chunk (ref, k, x);
    if (dit_stage0_has_decoder (s)) {
      dit_stage0_decode_to (s, (k + 1) * F - 1);
      dit_stage0_release (s, (k + 1) * F - 1);
    }
  }
out:
  dit_context_free (ref);
  dit_stage0_free (s);
}

static void
test_queue_and_errors (void)
{
  const int F = 3;
  static float x[16 * 3 * HW];
  dit_stage0 *s = make (F, 3, DIT_ANCHOR_DECODED, F, 1);
  dit_tensor ctx, xt = lat (x, F);
  if (!s)
    return;
  fill_chunk (x, F, 0);
  dit_stage0_context (s, 0, NULL, &ctx);
  CHECK (dit_stage0_push_chunk (s, 0, &xt, NULL) == DIT_OK, "push 0");
  CHECK (!dit_stage0_has_room (s, F), "a full queue has room");
  CHECK (dit_stage0_context (s, 1, NULL, &ctx) == DIT_OK, "context 1: %s",
      dit_last_error ());
  CHECK (dit_stage0_push_chunk (s, 1, &xt, NULL) == DIT_ERR_STATE
      && strstr (dit_last_error (), "display is behind"),
      "push into a full queue: '%s'", dit_last_error ());
  CHECK (dit_stage0_drain (s) == DIT_OK, "drain: %s", dit_last_error ());
  CHECK (dit_stage0_held (s) == 0 && dit_stage0_next_decode (s) == F,
      "after drain: held %d, next decode %lld", dit_stage0_held (s),
      (long long) dit_stage0_next_decode (s));
  CHECK (dit_stage0_push_chunk (s, 1, &xt, NULL) == DIT_OK, "push 1 after "
      "drain: %s", dit_last_error ());
  dit_tensor fr;
  CHECK (dit_stage0_frames (s, 0, &fr) == DIT_ERR_STATE, "released frames held");
  CHECK (dit_stage0_push_chunk (s, 3, &xt, NULL) == DIT_ERR_STATE
      && strstr (dit_last_error (), "expected chunk 2"), "out of order: '%s'",
      dit_last_error ());
  CHECK (dit_stage0_context (s, 5, NULL, &ctx) == DIT_ERR_STATE, "context of "
      "an unknown chunk");
  /* a display fed from elsewhere: a gap is an error, queued latents skip */
  dit_stage0_reset (s);
  CHECK (dit_stage0_submit (s, 3, F, &xt, NULL) == DIT_ERR_STATE
      && strstr (dit_last_error (), "a chunk is missing"), "gap: '%s'",
      dit_last_error ());
  CHECK (dit_stage0_submit (s, 0, F, &xt, NULL) == DIT_OK, "submit 0");
  dit_tensor none = lat (NULL, F);
  CHECK (dit_stage0_submit (s, 0, F, &none, NULL) == DIT_OK, "re-submit of "
      "queued latents reads no data");
  CHECK (dit_stage0_decode_to (s, 2) == DIT_OK
      && dit_stage0_frames (s, 2, &fr) == DIT_OK && fr.shape[1] == 4,
      "frames of latent 2");
  CHECK (dit_stage0_frames (s, 0, &fr) == DIT_OK && fr.shape[1] == 1,
      "latent 0 has one frame");
  dit_stage0_release (s, 10);
  CHECK (dit_stage0_next_submit (s) == 11, "release past the queue skips "
      "ahead: next %lld", (long long) dit_stage0_next_submit (s));
  dit_stage0_free (s);

  dit_stage0_config c;
  dit_stage0 *t = NULL;
  dit_stage0_config_default (&c);
  c.latent_h = LH;
  c.latent_w = LW;
  CHECK (dit_stage0_create (&c, be, &t) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "needs a VAE"), "decoded without VAE: '%s'",
      dit_last_error ());
  c.context_frames = 4;
  c.anchor = DIT_ANCHOR_LATENT;
  CHECK (dit_stage0_create (&c, be, &t) == DIT_ERR_INVALID, "C > F accepted");
}

int
main (void)
{
  dit_param_spec *specs = NULL;
  size_t count = 0;
  be = dit_backend_cpu ();
  if (dit_vae_config_preset ("tiny", &vcfg) != DIT_OK
      || dit_vae_config_params (&vcfg, &specs, &count) != DIT_OK
      || dit_weights_synthetic (specs, count, 5, DIT_F32, be, &vw) != DIT_OK) {
    fprintf (stderr, "tiny VAE: %s\n", dit_last_error ());
    return 1;
  }
  free (specs);
  test_anchor_path ();
  test_latent_rule (3, 3, DIT_ANCHOR_LATENT);
  test_latent_rule (4, 2, DIT_ANCHOR_LATENT);
  test_latent_rule (4, 2, DIT_ANCHOR_DECODED);
  test_queue_and_errors ();
  test_anchor_stream (DIT_ANCHOR_DECODER_FULL);
  test_anchor_stream (DIT_ANCHOR_DECODER_TINY);
  dit_weights_free (vw);
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-stage0: ok\n");
  return failures ? 1 : 0;
}
