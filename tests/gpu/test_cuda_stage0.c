/* test_cuda_stage0 — Stage 0's anchor path on its own stream of one GPU
 * gives what the serial order gives.
 *
 * Two Stage 0 objects on the CUDA backend with the same weights (the tiny
 * full VAE preset and the taehv-tiny display decoder, bf16 activations,
 * latents 8 x 12): one runs the anchor path on the caller's stream
 * (DIT_STAGE0_ANCHOR_STREAM_SHARED, the serial order), the other on a
 * backend instance of its own (AUTO, which on CUDA is its own stream;
 * checked).  Both take the same 6 chunks (F = C = 3) made by a third
 * instance (the generator's stream: push_chunk orders itself after it with
 * an event), the display decodes every chunk right after its push (so the
 * display decode runs while the anchor stream works), and per chunk the
 * contexts (slot 0 is the re-encoded anchor from chunk 2 on) and every
 * displayed frame are downloaded and compared:
 *   - with the own conv kernels (DIT_VAE_CONV=own: no per-instance
 *     algorithm choice) bit for bit, for the full and the tiny anchor
 *     decoder;
 *   - with cuDNN where it loads, NMSE <= 1e-4 (each backend instance runs
 *     cuDNN's Find, which times the algorithms, for itself and may pick
 *     another one than the caller's instance did, as two runs of one
 *     process may; the same algorithm gives the same bits, and the line
 *     printed says whether they were).  A missing event shows as a stale
 *     or half-written anchor or frame: NMSE near 1.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device (skip).
 */
#include "dit_backend.h"
#include "dit_loader.h"
#include "dit_stage0.h"
#include "dit_stream.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "../common/check.h"
#include "../common/cuda_skip.h"
#include "../common/stage0_display.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LH = 8, LW = 12, HW = LH * LW, PIX = 64 * HW, F = 3, K = 6 };

static dit_backend *be, *gen;
static dit_vae_config vcfg;
static dit_weights *vw, *tw;
static dit_taehv_config tcfg;

static dit_stage0 *
make (dit_stage0_anchor_stream where, dit_anchor_decoder from)
{
  dit_stage0_config c;
  dit_stage0 *s = NULL;
  stage0_display_config (&c, LH, LW, F, &vcfg, vw, DIT_BF16, &tcfg, tw);
  c.anchor_decoder = from;
  c.anchor_stream = where;
  if (dit_stage0_create (&c, be, &s) != DIT_OK)
    CHECK (0, "create (anchor stream %d): %s", (int) where, dit_last_error ());
  return s;
}

/* ||a - b||^2 / ||b||^2, or 0 when both are exactly equal. */
static double
nmse (const float *a, const float *b, size_t n)
{
  double num = 0, den = 0;
  if (memcmp (a, b, n * sizeof (float)) == 0)
    return 0.0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double) a[i] - b[i];
    num += d * d;
    den += (double) b[i] * b[i];
  }
  return den > 0 ? num / den : INFINITY;
}

static void
fill_chunk (float *x, int64_t k)
{
  for (int i = 0; i < 16 * F * HW; i++)
    x[i] = (float) sin (0.37 * i + 1.3 * (double) k);
}

/* The two objects fed the same chunks: the largest NMSE of the contexts and
 * of the frames within `limit`. */
static void
run_pair (dit_anchor_decoder from, const char *what, double limit)
{
  static float x[16 * F * HW], cs[16 * F * HW], co[16 * F * HW];
  static float fs[3 * 4 * PIX], fo[3 * 4 * PIX];
  dit_stage0 *ser = make (DIT_STAGE0_ANCHOR_STREAM_SHARED, from);
  dit_stage0 *own = make (DIT_STAGE0_ANCHOR_STREAM_AUTO, from);
  int64_t xs[4] = { 16, F, LH, LW };
  dit_tensor xd = { 0 };
  double worst_ctx = 0, worst_pix = 0;
  int anchors = 0;
  if (!ser || !own || dit_tensor_alloc (gen, &xd, DIT_F32, 4, xs) != DIT_OK) {
    CHECK (0, "%s: setup: %s", what, dit_last_error ());
    goto out;
  }
  CHECK (!dit_stage0_anchor_on_own_stream (ser)
      && dit_stage0_anchor_on_own_stream (own),
      "%s: anchor streams shared %d, auto %d (want 0, 1 on CUDA)", what,
      dit_stage0_anchor_on_own_stream (ser),
      dit_stage0_anchor_on_own_stream (own));
  for (int64_t k = 0; k < K; k++) {
    dit_tensor ts, to;
    CHECK (dit_stage0_context (ser, k, gen, &ts) == DIT_OK
        && dit_stage0_context (own, k, gen, &to) == DIT_OK,
        "%s: context %lld: %s", what, (long long) k, dit_last_error ());
    if (k > 0 && ts.data && to.data) {
      CHECK (dit_download (gen, cs, ts.data, sizeof cs) == DIT_OK
          && dit_download (gen, co, to.data, sizeof co) == DIT_OK,
          "download: %s", dit_last_error ());
      double e = nmse (co, cs, 16 * F * HW);
      worst_ctx = fmax (worst_ctx, e);
      anchors += dit_context_slot0_is_anchor (F, F, DIT_ANCHOR_DECODED, k);
    }
    /* the generator's stream writes chunk k (after it read the contexts) */
    fill_chunk (x, k);
    CHECK (dit_upload (gen, xd.data, x, sizeof x) == DIT_OK, "upload");
    CHECK (dit_stage0_push_chunk (ser, k, &xd, gen) == DIT_OK
        && dit_stage0_push_chunk (own, k, &xd, gen) == DIT_OK,
        "%s: push %lld: %s", what, (long long) k, dit_last_error ());
    CHECK (dit_stage0_decode_to (ser, (k + 1) * F - 1) == DIT_OK
        && dit_stage0_decode_to (own, (k + 1) * F - 1) == DIT_OK,
        "%s: display %lld: %s", what, (long long) k, dit_last_error ());
    for (int64_t l = k * F; l < (k + 1) * F; l++) {
      dit_tensor a, b;
      CHECK (dit_stage0_frames (ser, l, &a) == DIT_OK
          && dit_stage0_frames (own, l, &b) == DIT_OK
          && a.shape[1] == b.shape[1], "%s: frames of %lld", what,
          (long long) l);
      const size_t n = (size_t) 3 * a.shape[1] * PIX;
      CHECK (dit_download (be, fs, a.data, n * sizeof (float)) == DIT_OK
          && dit_download (be, fo, b.data, n * sizeof (float)) == DIT_OK,
          "download: %s", dit_last_error ());
      worst_pix = fmax (worst_pix, nmse (fo, fs, n));
    }
    dit_stage0_release (ser, (k + 1) * F - 1);
    dit_stage0_release (own, (k + 1) * F - 1);
  }
  CHECK (dit_stage0_sync (own) == DIT_OK, "sync: %s", dit_last_error ());
  dit_stage0_stats st;
  dit_stage0_get_stats (own, &st);
  CHECK (anchors >= 3 && st.anchors == K - 1 && st.last_anchor_ms > 0,
      "%s: %d contexts with an anchor, %lld anchors made, last %.3f ms", what,
      anchors, (long long) st.anchors, st.last_anchor_ms);
  printf ("%-34s context NMSE %.3g, frames NMSE %.3g (limit %g%s)\n", what,
      worst_ctx, worst_pix, limit, limit == 0 ? ": bit for bit" : "");
  CHECK (worst_ctx <= limit && worst_pix <= limit, "%s: the anchor's own "
      "stream differs from the serial order: context NMSE %.3g, frames %.3g",
      what, worst_ctx, worst_pix);
out:
  dit_tensor_free (gen, &xd);
  dit_stage0_free (ser);
  dit_stage0_free (own);
}

int
main (void)
{
  be = cuda_backend_or_skip ();
  gen = dit_backend_create ("cuda", 0);
  dit_param_spec *specs = NULL;
  size_t count = 0;
  if (!gen || dit_vae_config_preset ("tiny", &vcfg) != DIT_OK
      || dit_vae_config_params (&vcfg, &specs, &count) != DIT_OK
      || dit_weights_synthetic (specs, count, 5, DIT_F32, be, &vw) != DIT_OK
      || dit_load_taehv ("taehv-tiny", 3, DIT_BF16, be, &tcfg, &tw) != DIT_OK) {
    fprintf (stderr, "setup: %s\n", dit_last_error ());
    return 1;
  }
  free (specs);
  setenv ("DIT_VAE_CONV", "own", 1);
  run_pair (DIT_ANCHOR_DECODER_FULL, "own convs, full anchor decoder", 0.0);
  run_pair (DIT_ANCHOR_DECODER_TINY, "own convs, tiny anchor decoder", 0.0);
  unsetenv ("DIT_VAE_CONV");
  run_pair (DIT_ANCHOR_DECODER_FULL, "default convs, full anchor decoder",
      1e-4);
  dit_weights_free (vw);
  dit_weights_free (tw);
  dit_backend_destroy (gen);
  dit_backend_destroy (be);
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-cuda-stage0: ok\n");
  return failures ? 1 : 0;
}
