/* stage0-bench — time Stage 0's VAE work on one GPU (a lab program, not a
 * test): the display decoders and the anchor path, with seeded synthetic
 * weights (speed only: with random weights the two decoders' pictures are
 * unrelated, so no quality figure is printed).
 *
 *   stage0-bench [--size WxH] [--iters N] [--decoder PRESET] [--json FILE]
 *
 * Figures (ms, median over N after warm-up; every figure is wall time
 * between two device synchronisations, so launch gaps count, and includes
 * the device-side noise fill of the latent, 16 x h x w f32):
 *   tiny_decode       TAEHV decode of one latent (4 frames), per latent
 *   tiny_decode_own   the same with cuDNN off (DIT_VAE_CONV=own)
 *   full_decode       full WanVAE decode of one latent (4 frames)
 *   full_encode_frame full WanVAE encode of one frame with a fresh cache
 *   full_anchor       decode one latent + encode its last frame
 *   stage0_serial     one chunk of 3 latents: full anchor + tiny display
 *                     decode of the 3 latents, on one stream
 *   stage0_overlap    the same with the anchor on its own stream (its own
 *                     backend instance) beside the display decode
 *   stage0_session    what the session runs per chunk: a dit_stage0 (tiny
 *                     display + full anchor) takes a chunk of 3 latents
 *                     (context, push_chunk, display decode of the 3,
 *                     release) with its anchor path on its own stream, until
 *                     both streams are done
 *   stage0_session_shared  the same dit_stage0 with the anchor path on the
 *                     caller's stream (DIT_STAGE0_ANCHOR_STREAM_SHARED)
 *   *_d384            full_decode, full_anchor and stage0_session again
 *                     with the mid-block attention on the head_dim 384
 *                     mma.sync kernel (the default); the figures above run
 *                     it on the generic kernel (DIT_ATTN_D384=generic)
 * at --size (width x height in pixels, as the other tools take it;
 * default 576x320, latents 72x40), bf16.
 *
 * --profile N adds a breakdown of one tiny decode, one full decode and one
 * anchor by op (each op synchronised, N runs): the backend's op table is
 * wrapped here, so the library runs unchanged; the sum is a little above
 * the figures above (a synchronisation per op).
 * Exit 0, 1 on failure, 77 without a CUDA device.
 */
#include "dit_backend.h"
#include "dit_loader.h"
#include "dit_philox.h"
#include "dit_stage0.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "../common/cuda_skip.h"
#include "../common/stage0_display.h"
#include "dit_clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ITERS 1000
#define PROF_KEYS 256

static int
die_if (dit_status st, const char *what)
{
  if (st != DIT_OK) {
    fprintf (stderr, "stage0-bench: %s: %s\n", what, dit_last_error ());
    exit (1);
  }
  return 0;
}

static int
cmp_double (const void *a, const void *b)
{
  const double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench {
  dit_backend *be, *be2;        /* display stream, anchor stream */
  int width, height, iters;
  dit_vae *vae, *vae2;          /* full VAE on be (decode), on be2 (anchor) */
  dit_taehv *tae;
  dit_tensor lat, pix, frame, anchor, lat2, pix2, frame2;
  dit_stage0 *s0, *s0_shared;   /* the session's Stage 0, both orders */
  dit_tensor chunk;             /* [16, 3, h, w] */
  int64_t s0_chunk, s0_shared_chunk;
} bench;

static dit_tensor
alloc4 (dit_backend *be, int64_t a, int64_t b, int64_t c, int64_t d)
{
  int64_t s[4] = { a, b, c, d };
  dit_tensor t;
  die_if (dit_tensor_alloc (be, &t, DIT_F32, 4, s), "alloc");
  return t;
}

/* A fresh latent for step `stream`: Philox normals made on the device by
 * the backend's noise op, on its stream, so that the figures time the
 * decoders and not a host-side fill (46080 values one dit_philox_normal
 * call at a time, then an upload: 1.6 ms of one core of the workstation
 * per latent, which the figures carried until 2026-12-07). */
static void
fill_latent (dit_backend *be, dit_tensor *t, uint64_t stream)
{
  dit_noise_params np = { t, 7, stream };
  die_if (dit_noise (be, &np), "noise");
}

/* The last frame of a [3, 4, H, W] tensor as [3, 1, H, W]. */
static dit_tensor
last_frame (const dit_tensor *pix)
{
  dit_tensor f = *pix;
  f.data = (float *) pix->data + (pix->shape[1] - 1) * pix->stride[1];
  f.shape[1] = 1;
  return f;
}

static dit_status
tiny_one (bench *b, uint64_t k)
{
  fill_latent (b->be, &b->lat, k);
  return dit_taehv_decode (b->tae, &b->lat, &b->pix);
}

static dit_status
full_one (bench *b, uint64_t k)
{
  fill_latent (b->be, &b->lat, k);
  return dit_vae_decode (b->vae, &b->lat, &b->pix);
}

/* The anchor path on (be, vae): decode latent k, encode its last frame. */
static dit_status
anchor_on (dit_backend *be, dit_vae *v, dit_tensor *lat, dit_tensor *pix,
    dit_tensor *anchor, uint64_t k)
{
  fill_latent (be, lat, k);
  DIT_TRY (dit_vae_decode (v, lat, pix));
  dit_tensor f = last_frame (pix);
  return dit_vae_encode_anchor (v, &f, anchor);
}

typedef dit_status (*step_fn) (bench *b, uint64_t k);

/* Median ms of fn over iters calls, each between two synchronisations. */
static double
time_steps (bench *b, step_fn fn, const char *what)
{
  double v[MAX_ITERS];
  for (int i = 0; i < 3; i++)
    die_if (fn (b, 1000 + (uint64_t) i), what);
  die_if (b->be->ops->synchronize (b->be), "sync");
  die_if (b->be2->ops->synchronize (b->be2), "sync");
  for (int i = 0; i < b->iters; i++) {
    const double t0 = dit_now_ms ();
    die_if (fn (b, (uint64_t) i), what);
    die_if (b->be->ops->synchronize (b->be), "sync");
    die_if (b->be2->ops->synchronize (b->be2), "sync");
    v[i] = dit_now_ms () - t0;
  }
  return median (v, b->iters);
}

static dit_status
step_tiny (bench *b, uint64_t k)
{
  return tiny_one (b, k);
}

static dit_status
step_full (bench *b, uint64_t k)
{
  return full_one (b, k);
}

static dit_status
step_encode_frame (bench *b, uint64_t k)
{
  (void) k;
  return dit_vae_encode_anchor (b->vae, &b->frame, &b->anchor);
}

static dit_status
step_anchor (bench *b, uint64_t k)
{
  return anchor_on (b->be, b->vae, &b->lat, &b->pix, &b->anchor, k);
}

static dit_status
step_stage0_serial (bench *b, uint64_t k)
{
  DIT_TRY (anchor_on (b->be, b->vae, &b->lat, &b->pix, &b->anchor, k));
  for (int i = 0; i < 3; i++)
    DIT_TRY (tiny_one (b, 3 * k + (uint64_t) i));
  return DIT_OK;
}

/* The anchor on the second backend's stream; the display decode goes on
 * the first meanwhile (the host only enqueues, both streams run). */
static dit_status
step_stage0_overlap (bench *b, uint64_t k)
{
  DIT_TRY (anchor_on (b->be2, b->vae2, &b->lat2, &b->pix2, &b->anchor, k));
  for (int i = 0; i < 3; i++)
    DIT_TRY (tiny_one (b, 3 * k + (uint64_t) i));
  return DIT_OK;
}

/* One chunk through a dit_stage0 as the session drives it. */
static dit_status
session_chunk (bench *b, dit_stage0 *s, int64_t *next, uint64_t k)
{
  dit_tensor ctx;
  const int64_t c = (*next)++;
  fill_latent (b->be, &b->chunk, k);
  DIT_TRY (dit_stage0_context (s, c, NULL, &ctx));
  DIT_TRY (dit_stage0_push_chunk (s, c, &b->chunk, NULL));
  DIT_TRY (dit_stage0_decode_to (s, 3 * c + 2));
  dit_stage0_release (s, 3 * c + 2);
  return dit_stage0_sync (s);
}

static dit_status
step_stage0_session (bench *b, uint64_t k)
{
  return session_chunk (b, b->s0, &b->s0_chunk, k);
}

static dit_status
step_stage0_session_shared (bench *b, uint64_t k)
{
  return session_chunk (b, b->s0_shared, &b->s0_shared_chunk, k);
}

/* ---- per-op profile: the op table wrapped with synchronised timers ---- */

typedef struct prof_key {
  char name[96];
  double ms;
  int n;
} prof_key;

static prof_key prof[PROF_KEYS];
static int prof_n;
static const dit_backend_ops *prof_ops;       /* the real table */
static const dit_vae_op_table *prof_vae;

static void
prof_add (const char *name, double ms)
{
  for (int i = 0; i < prof_n; i++)
    if (strcmp (prof[i].name, name) == 0) {
      prof[i].ms += ms;
      prof[i].n++;
      return;
    }
  if (prof_n < PROF_KEYS) {
    snprintf (prof[prof_n].name, sizeof prof[prof_n].name, "%s", name);
    prof[prof_n].ms = ms;
    prof[prof_n++].n = 1;
  }
}

#define PROF_TIMED(key, call) do { \
    prof_ops->synchronize (be); \
    const double t0_ = dit_now_ms (); \
    dit_status st_ = (call); \
    prof_ops->synchronize (be); \
    prof_add (key, dit_now_ms () - t0_); \
    return st_; } while (0)

static dit_status
prof_conv (dit_backend *be, const dit_vae_conv_params *p)
{
  char k[96];
  snprintf (k, sizeof k, "conv %dx%dx%d %lld->%lld at %lldx%lld x%lld%s%s",
      p->kt, p->kh, p->kw, (long long) p->x->shape[3],
      (long long) p->weight->shape[0], (long long) p->x->shape[1],
      (long long) p->x->shape[2], (long long) p->y->shape[0],
      p->prev ? " +prev" : "", p->relu ? " relu" : "");
  PROF_TIMED (k, prof_vae->conv (be, p));
}

static dit_status
prof_norm (dit_backend *be, const dit_vae_norm_params *p)
{
  char k[96];
  snprintf (k, sizeof k, "norm%s C %lld", p->silu ? "+silu" : "",
      (long long) p->x->shape[p->x->ndim - 1]);
  PROF_TIMED (k, prof_vae->norm (be, p));
}

static dit_status
prof_upsample (dit_backend *be, const dit_vae_upsample_params *p)
{
  PROF_TIMED ("upsample", prof_vae->upsample (be, p));
}

static dit_status
prof_copy_frames (dit_backend *be, const dit_vae_copy_frames_params *p)
{
  PROF_TIMED ("copy_frames", prof_vae->copy_frames (be, p));
}

static dit_status
prof_layout (dit_backend *be, const dit_vae_layout_params *p)
{
  PROF_TIMED ("layout", prof_vae->layout (be, p));
}

static dit_status
prof_attention (dit_backend *be, const dit_attn_params *p)
{
  char k[96];
  snprintf (k, sizeof k, "attention d %d, %lld x %lld", p->head_dim,
      (long long) p->q->shape[0], (long long) p->k->shape[0]);
  PROF_TIMED (k, prof_ops->attention (be, p));
}

static dit_status
prof_memset (dit_backend *be, void *dst, size_t bytes)
{
  PROF_TIMED ("memset", prof_ops->memset_zero (be, dst, bytes));
}

static dit_status
prof_upload (dit_backend *be, void *dst, const void *src, size_t bytes)
{
  PROF_TIMED ("upload", prof_ops->upload (be, dst, src, bytes));
}

static int
prof_cmp (const void *a, const void *b)
{
  const double x = ((const prof_key *) a)->ms, y = ((const prof_key *) b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void
prof_print (const char *what, int runs)
{
  double total = 0;
  qsort (prof, (size_t) prof_n, sizeof prof[0], prof_cmp);
  for (int i = 0; i < prof_n; i++)
    total += prof[i].ms;
  printf ("profile: %s, ms per run (%d runs), sum %.2f ms\n", what, runs,
      total / runs);
  for (int i = 0; i < prof_n && i < 24; i++)
    printf ("  %7.3f ms %5.1f%%  %4d x  %s\n", prof[i].ms / runs,
        100.0 * prof[i].ms / total, prof[i].n / runs, prof[i].name);
  prof_n = 0;
}

static void
usage (FILE *f)
{
  fprintf (f, "usage: stage0-bench [--size WxH] [--iters N] [--decoder PRESET] "
      "[--json FILE] [--profile N]\n"
      "Times Stage 0's VAE work on CUDA device 0 with synthetic weights "
      "(bf16).\nExit status: 0 success, 1 failure, 2 usage error, 77 no CUDA "
      "device.\n");
}

int
main (int argc, char **argv)
{
  int width = 576, height = 320, iters = 20, profile = 0;
  const char *decoder = "taew2_1", *json = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0) {
      usage (stdout);
      return 0;
    }
    if (!v) {
      usage (stderr);
      return 2;
    }
    if (strcmp (a, "--size") == 0 && sscanf (v, "%dx%d", &width, &height) == 2)
      i++;
    else if (strcmp (a, "--iters") == 0 && (iters = atoi (v)) > 0
        && iters <= MAX_ITERS)
      i++;
    else if (strcmp (a, "--decoder") == 0)
      decoder = argv[++i];
    else if (strcmp (a, "--json") == 0)
      json = argv[++i];
    else if (strcmp (a, "--profile") == 0 && (profile = atoi (v)) > 0)
      i++;
    else {
      fprintf (stderr, "stage0-bench: bad option '%s'\n", a);
      usage (stderr);
      return 2;
    }
  }
  bench b = { .width = width, .height = height, .iters = iters };
  b.be = cuda_backend_or_skip ();
  b.be2 = dit_backend_create ("cuda", 0);
  die_if (b.be2 ? DIT_OK : DIT_ERR_DEVICE, "second backend");

  double t0 = dit_now_ms ();
  dit_vae_config vc;
  dit_weights *w = NULL;
  die_if (dit_load_vae ("wan", 0, DIT_BF16, b.be, &vc, &w), "wan weights");
  die_if (dit_vae_create (&vc, w, width, height, DIT_BF16, b.be, &b.vae), "vae");
  die_if (dit_vae_create (&vc, w, width, height, DIT_BF16, b.be2, &b.vae2), "vae 2");
  dit_taehv_config tc;
  dit_weights *tw = NULL;
  die_if (dit_load_taehv (decoder, 0, DIT_BF16, b.be, &tc, &tw), "taehv weights");
  die_if (dit_taehv_create (&tc, tw, width, height, DIT_BF16, DIT_TAEHV_DECODER,
      b.be, &b.tae), "taehv");
  dit_stage0_config sc;
  stage0_display_config (&sc, height / 8, width / 8, 3, &vc, w, DIT_BF16,
      &tc, tw);
  sc.anchor_stream = DIT_STAGE0_ANCHOR_STREAM_AUTO;
  die_if (dit_stage0_create (&sc, b.be, &b.s0), "stage 0");
  sc.anchor_stream = DIT_STAGE0_ANCHOR_STREAM_SHARED;
  die_if (dit_stage0_create (&sc, b.be, &b.s0_shared), "stage 0 (shared)");
  dit_weights_free (w);
  dit_weights_free (tw);
  const double setup_ms = dit_now_ms () - t0;

  const int lh = height / 8, lw = width / 8;
  b.lat = alloc4 (b.be, 16, 1, lh, lw);
  b.pix = alloc4 (b.be, 3, 4, height, width);
  b.frame = alloc4 (b.be, 3, 1, height, width);
  b.anchor = alloc4 (b.be2, 16, 1, lh, lw);
  b.lat2 = alloc4 (b.be2, 16, 1, lh, lw);
  b.pix2 = alloc4 (b.be2, 3, 4, height, width);
  b.frame2 = alloc4 (b.be2, 3, 1, height, width);
  b.chunk = alloc4 (b.be, 16, 3, lh, lw);
  die_if (b.be->ops->memset_zero (b.be, b.frame.data, dit_tensor_nbytes (&b.frame)),
      "memset");
  /* latent 0 decodes to 1 frame (the streaming rule); past it, every
   * decode below gives 4 */
  fill_latent (b.be, &b.lat, 0);
  die_if (dit_taehv_decode (b.tae, &b.lat, &b.frame), "tiny warm-up");
  fill_latent (b.be, &b.lat, 0);
  die_if (dit_vae_decode (b.vae, &b.lat, &b.frame), "full warm-up");
  die_if (anchor_on (b.be2, b.vae2, &b.lat2, &b.frame2, &b.anchor, 0),
      "anchor warm-up");

  /* the mid-block attention on the generic kernel first, then (below) on
   * the default head-dim-384 kernel, so both figures are printed */
  setenv ("DIT_ATTN_D384", "generic", 1);
  const double tiny = time_steps (&b, step_tiny, "tiny decode");
  setenv ("DIT_VAE_CONV", "own", 1);
  const double tiny_own = time_steps (&b, step_tiny, "tiny decode (own)");
  unsetenv ("DIT_VAE_CONV");
  const double full = time_steps (&b, step_full, "full decode");
  const double enc = time_steps (&b, step_encode_frame, "encode frame");
  const double anchor = time_steps (&b, step_anchor, "anchor");
  const double serial = time_steps (&b, step_stage0_serial, "stage 0 serial");
  const double overlap = time_steps (&b, step_stage0_overlap, "stage 0 overlap");
  const double session = time_steps (&b, step_stage0_session, "stage 0 session");
  const double session_shared = time_steps (&b, step_stage0_session_shared,
      "stage 0 session (shared stream)");
  dit_stage0_stats sst;
  dit_stage0_get_stats (b.s0, &sst);
  setenv ("DIT_ATTN_D384", "mma", 1);
  const double full_d384 = time_steps (&b, step_full, "full decode (d384)");
  const double anchor_d384 = time_steps (&b, step_anchor, "anchor (d384)");
  const double session_d384 = time_steps (&b, step_stage0_session,
      "stage 0 session (d384)");
  unsetenv ("DIT_ATTN_D384");

  printf ("stage0-bench: %dx%d (latents %dx%d), bf16, tiny decoder %s, %d "
      "iterations, median ms (setup %.0f ms)\n", width, height, lw, lh,
      decoder, iters, setup_ms);
  printf ("  tiny decode per latent (4 frames)   %8.2f ms  (cuDNN off: %.2f)\n",
      tiny, tiny_own);
  printf ("  full VAE decode per latent          %8.2f ms\n", full);
  printf ("  full VAE encode of one frame        %8.2f ms\n", enc);
  printf ("  full VAE anchor (decode 1 + encode 1) %6.2f ms\n", anchor);
  printf ("  Stage 0 per chunk, one stream       %8.2f ms  (anchor + 3 tiny "
      "decodes)\n", serial);
  printf ("  Stage 0 per chunk, anchor stream    %8.2f ms\n", overlap);
  printf ("  Stage 0 per chunk, dit_stage0       %8.2f ms  (anchor on its own "
      "stream %s; %.2f ms on one stream; last anchor %.2f ms)\n", session,
      dit_stage0_anchor_on_own_stream (b.s0) ? "yes" : "no", session_shared,
      sst.last_anchor_ms);
  printf ("  with the d384 attention kernel: full decode %.2f ms, anchor %.2f "
      "ms, Stage 0 per chunk (dit_stage0) %.2f ms\n", full_d384, anchor_d384,
      session_d384);
  if (profile) {
    /* the same backend instance with every VAE op (and attention, memset,
     * upload) synchronised and timed */
    static dit_backend_ops ops;
    static dit_vae_op_table vops;
    prof_ops = b.be->ops;
    prof_vae = b.be->ops->vae;
    ops = *prof_ops;
    vops = *prof_vae;
    vops.conv = prof_conv;
    vops.norm = prof_norm;
    vops.upsample = prof_upsample;
    vops.copy_frames = prof_copy_frames;
    vops.layout = prof_layout;
    ops.vae = &vops;
    ops.attention = prof_attention;
    ops.memset_zero = prof_memset;
    ops.upload = prof_upload;
    b.be->ops = &ops;
    for (int i = 0; i < profile; i++)
      die_if (tiny_one (&b, 500 + (uint64_t) i), "profile tiny");
    prof_print ("tiny decode of one latent", profile);
    for (int i = 0; i < profile; i++)
      die_if (full_one (&b, 500 + (uint64_t) i), "profile full");
    prof_print ("full VAE decode of one latent", profile);
    for (int i = 0; i < profile; i++)
      die_if (step_encode_frame (&b, 0), "profile encode");
    prof_print ("full VAE encode of one frame (anchor)", profile);
    b.be->ops = prof_ops;
  }
  if (json) {
    FILE *f = fopen (json, "w");
    if (!f) {
      fprintf (stderr, "stage0-bench: cannot write %s\n", json);
      return 1;
    }
    fprintf (f, "{\"width\": %d, \"height\": %d, \"decoder\": \"%s\", "
        "\"iters\": %d, \"tiny_decode_ms\": %.3f, \"tiny_decode_own_ms\": %.3f, "
        "\"full_decode_ms\": %.3f, \"full_encode_frame_ms\": %.3f, "
        "\"full_anchor_ms\": %.3f, \"stage0_serial_ms\": %.3f, "
        "\"stage0_overlap_ms\": %.3f, \"stage0_session_ms\": %.3f, "
        "\"stage0_session_shared_ms\": %.3f, \"session_last_anchor_ms\": "
        "%.3f, \"full_decode_d384_ms\": %.3f, \"full_anchor_d384_ms\": %.3f, "
        "\"stage0_session_d384_ms\": %.3f}\n", width, height, decoder, iters,
        tiny, tiny_own, full, enc, anchor, serial, overlap, session,
        session_shared, sst.last_anchor_ms, full_d384, anchor_d384,
        session_d384);
    fclose (f);
  }
  dit_stage0_free (b.s0);
  dit_stage0_free (b.s0_shared);
  dit_tensor_free (b.be, &b.chunk);
  dit_taehv_free (b.tae);
  dit_vae_free (b.vae);
  dit_vae_free (b.vae2);
  dit_tensor_free (b.be, &b.lat);
  dit_tensor_free (b.be, &b.pix);
  dit_tensor_free (b.be, &b.frame);
  dit_tensor_free (b.be2, &b.anchor);
  dit_tensor_free (b.be2, &b.lat2);
  dit_tensor_free (b.be2, &b.pix2);
  dit_tensor_free (b.be2, &b.frame2);
  dit_backend_destroy (b.be2);
  dit_backend_destroy (b.be);
  return 0;
}
