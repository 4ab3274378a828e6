/* dit_stage0 — context rule, anchor path and display decode queue in
 * backend memory (see dit_stage0.h).
 *
 * Buffers (all f32, allocated at create, none per chunk):
 *   latent0, hist[C], anchor   one latent [16, 1, h, w] each: the stream's
 *                              first latent, the last C latents (slot =
 *                              index % C) and the re-encoded anchor;
 *   ctx                        [16, C, h, w], rebuilt for every chunk;
 *   qlat[capacity]             queued latents [16, 1, h, w] (slot = index %
 *                              capacity);
 *   qframes[capacity]          their decoded frames [3, 4, H, W] (latent 0
 *                              uses the first frame);
 *   stage                      a host chunk is uploaded here first.
 * Held latents (queued or decoded, not released) are consecutive and at
 * most `capacity`, so their slots never collide.
 *
 * The anchor's stream (abe): the caller's backend `be`, or beside a
 * display decoder of its own a second instance of be's device.  The full
 * VAE then lives on abe (it serves only the anchor path), so do apix and
 * the anchor.  Events:
 *   ev_ain    recorded on be when the anchor path's input (the anchor
 *             latent's slot, or the display's frame) is written and every
 *             earlier context copy read the anchor; abe waits for it;
 *   ev_a0     (timed) on abe where the anchor path starts;
 *   ev_adone  (timed) on abe when the anchor is written; be waits for it
 *             before the context reads the anchor and before push_chunk
 *             writes a queue slot the anchor path may still read.
 *
 * Every copy is a dit_copy on this backend (a strided view of one latent of
 * a [16, F, h, w] chunk into a slot, or slots into the context), so latents
 * stay where they are.  Reading another instance's output is ordered by an
 * event recorded on its stream; the consumer of the context waits for an
 * event recorded on ours after the context was written (and so after every
 * earlier push read its x0).
 */
#include "dit_stage0.h"
#include "dit_clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dit_stage0 {
  dit_stage0_config cfg;
  dit_backend *be;
  dit_backend *abe;             /* the anchor path's backend: be or own */
  int own_abe;
  int64_t hw, pix;              /* latent plane h*w, pixel plane H*W */
  dit_vae *vae;                 /* the full VAE, NULL without a decoder */
  dit_taehv *tae;               /* the display decoder of its own, or NULL */
  dit_tensor apix;              /* [3, 4, H, W]: the full VAE's anchor decode
                                   beside a display decoder */

  /* context */
  int64_t next_chunk;
  int64_t anchor_for;           /* chunk the anchor belongs to, -1 none */
  dit_tensor latent0, hist, anchor, ctx;

  /* decode queue */
  int64_t held_begin, decoded_end, submitted_end;
  dit_tensor qlat, qframes, stage;
  int stage_latents;

  dit_event *ev_in, *ev_out;
  dit_event *ev_ain, *ev_a0, *ev_adone;
  int anchor_pending;           /* an anchor path on abe not yet timed */
  double anchor_pre_ms;         /* its display decodes (host time) */
  dit_stage0_stats stats;
};

void
dit_stage0_config_default (dit_stage0_config *c)
{
  memset (c, 0, sizeof *c);
  c->latent_h = 40;
  c->latent_w = 72;
  c->frames_per_chunk = 3;
  c->context_frames = 3;
  c->anchor = DIT_ANCHOR_DECODED;
  c->capacity = 9;
  c->vae_dtype = DIT_F32;
  /* The anchor on its own stream where the backend has events (on an
   * H100, Stage 0 per chunk 63.5 ms against 71.4 on one stream, the same
   * bits: stage0-bench, test-cuda-stage0); DIT_STAGE0_ANCHOR_STREAM=shared
   * keeps the serial order, =own forces the own stream. */
  c->anchor_stream = DIT_STAGE0_ANCHOR_STREAM_AUTO;
  const char *e = getenv ("DIT_STAGE0_ANCHOR_STREAM");
  if (e && !strcmp (e, "shared"))
    c->anchor_stream = DIT_STAGE0_ANCHOR_STREAM_SHARED;
  else if (e && !strcmp (e, "own"))
    c->anchor_stream = DIT_STAGE0_ANCHOR_STREAM_OWN;
}

/* ---- views ---------------------------------------------------------------- */

/* Latent `slot` of a buffer of [16, 1, h, w] latents. */
static dit_tensor
latent_slot (const dit_stage0 *s, const dit_tensor *buf, int64_t slot)
{
  int64_t shape[4] = { DIT_LATENT_CHANNELS, 1, s->cfg.latent_h,
    s->cfg.latent_w };
  return dit_tensor_make ((float *) buf->data + slot * DIT_LATENT_CHANNELS
      * s->hw, DIT_F32, buf->device, 4, shape);
}

/* Latent j of a channels-first [C, n, h, w] tensor, as [C, 1, h, w]. */
static dit_tensor
latent_of (const dit_tensor *x, int64_t j)
{
  int64_t shape[4] = { x->shape[0], 1, x->shape[2], x->shape[3] };
  dit_tensor v = dit_tensor_make ((char *) x->data + (size_t) (j
      * x->stride[1]) * dit_dtype_size (x->dtype), x->dtype, x->device, 4,
      shape);
  for (int d = 0; d < 4; d++)
    v.stride[d] = x->stride[d];
  return v;
}

/* The frames of queued latent i: [3, T, H, W] inside its slot. */
static dit_tensor
frames_slot (const dit_stage0 *s, int64_t latent)
{
  int64_t shape[4] = { 3, dit_stream_latent_frames (latent),
    8 * s->cfg.latent_h, 8 * s->cfg.latent_w };
  return dit_tensor_make ((float *) s->qframes.data
      + (latent % s->cfg.capacity) * 3 * 4 * s->pix, DIT_F32,
      s->qframes.device, 4, shape);
}

static dit_status
copy_latent (dit_stage0 *s, const dit_tensor *src, dit_tensor *dst)
{
  dit_copy_params cp = { .x = src, .y = dst };
  return dit_copy (s->be, &cp);
}

/* ---- create --------------------------------------------------------------- */

static dit_status
alloc_f32 (dit_stage0 *s, dit_tensor *t, int64_t n)
{
  return dit_tensor_alloc (s->be, t, DIT_F32, 1, &n);
}

void
dit_stage0_free (dit_stage0 *s)
{
  if (!s)
    return;
  /* nothing may still run on either stream when the buffers go */
  if (s->abe && s->abe != s->be)
    (void) dit_synchronize (s->abe);
  (void) dit_synchronize (s->be);
  dit_vae_free (s->vae);
  dit_taehv_free (s->tae);
  dit_tensor *bufs[] = { &s->latent0, &s->hist, &s->ctx, &s->qlat,
    &s->qframes, &s->stage };
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    dit_tensor_free (s->be, bufs[i]);
  if (s->abe) {
    dit_tensor_free (s->abe, &s->anchor);
    dit_tensor_free (s->abe, &s->apix);
  }
  dit_event_destroy (s->be, s->ev_in);
  dit_event_destroy (s->be, s->ev_out);
  dit_event_destroy (s->be, s->ev_ain);
  if (s->abe) {
    dit_event_destroy (s->abe, s->ev_a0);
    dit_event_destroy (s->abe, s->ev_adone);
  }
  if (s->own_abe)
    dit_backend_destroy (s->abe);
  free (s);
}

/* The anchor path's backend: its own instance of be's device beside a
 * display decoder of its own (where asked, or where be has events), else
 * be itself. */
static dit_status
anchor_backend (dit_stage0 *s, const dit_stage0_config *cfg)
{
  s->abe = s->be;
  if (!cfg->display_config)
    return DIT_OK;
  int own = cfg->anchor_stream == DIT_STAGE0_ANCHOR_STREAM_OWN
      || (cfg->anchor_stream == DIT_STAGE0_ANCHOR_STREAM_AUTO
          && dit_backend_has_events (s->be));
  if (!own)
    return DIT_OK;
  dit_backend *abe = dit_backend_create (dit_backend_name (s->be),
      s->be->device_index);
  if (!abe)
    return dit_error_prefix (DIT_ERR_DEVICE, "the anchor path's stream");
  s->abe = abe;
  s->own_abe = 1;
  return DIT_OK;
}

dit_status
dit_stage0_create (const dit_stage0_config *cfg, dit_backend *be,
    dit_stage0 **out)
{
  const int F = cfg->frames_per_chunk, C = cfg->context_frames;
  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "stage 0: no backend");
  if (cfg->latent_h < 1 || cfg->latent_w < 1)
    return dit_error (DIT_ERR_INVALID, "stage 0: latent size %dx%d is empty",
        cfg->latent_w, cfg->latent_h);
  if (F < 1 || C < 1 || C > F)
    return dit_error (DIT_ERR_INVALID, "stage 0: context frames %d must be "
        "between 1 and the chunk's %d latent frames", C, F);
  if (cfg->capacity < F)
    return dit_error (DIT_ERR_INVALID, "stage 0: a decode queue of %d latents "
        "cannot hold a chunk of %d", cfg->capacity, F);
  if (!cfg->vae_weights && cfg->anchor == DIT_ANCHOR_DECODED)
    return dit_error (DIT_ERR_INVALID, "stage 0: the decoded anchor needs a "
        "VAE (or anchor = latent)");
  if (cfg->anchor_stream < DIT_STAGE0_ANCHOR_STREAM_AUTO
      || cfg->anchor_stream > DIT_STAGE0_ANCHOR_STREAM_OWN)
    return dit_error (DIT_ERR_INVALID, "stage 0: anchor stream %d is not one "
        "of auto (0), shared (1), own (2)", (int) cfg->anchor_stream);
  if (cfg->display_config && !cfg->vae_weights)
    return dit_error (DIT_ERR_INVALID, "stage 0: a display decoder of its own "
        "needs the full VAE beside it (the anchor's re-encode)");
  dit_stage0 *s = calloc (1, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "stage 0: out of memory");
  s->cfg = *cfg;
  s->cfg.vae_config = NULL;     /* not kept: the caller's storage */
  s->cfg.vae_weights = NULL;
  s->cfg.display_config = NULL;
  s->cfg.display_weights = NULL;
  s->be = be;
  s->hw = (int64_t) cfg->latent_h * cfg->latent_w;
  s->pix = 64 * s->hw;
  const int64_t lat = DIT_LATENT_CHANNELS * s->hw;
  int64_t cshape[4] = { DIT_LATENT_CHANNELS, C, cfg->latent_h, cfg->latent_w };
  dit_status st = anchor_backend (s, cfg);
  if (st == DIT_OK)
    st = alloc_f32 (s, &s->latent0, lat);
  if (st == DIT_OK)
    st = alloc_f32 (s, &s->hist, lat * C);
  if (st == DIT_OK)
    st = dit_tensor_alloc (s->abe, &s->anchor, DIT_F32, 1, &lat);
  if (st == DIT_OK)
    st = dit_tensor_alloc (be, &s->ctx, DIT_F32, 4, cshape);
  if (st == DIT_OK && cfg->vae_weights) {
    s->stage_latents = cfg->capacity;
    st = alloc_f32 (s, &s->qlat, lat * cfg->capacity);
    if (st == DIT_OK)
      st = alloc_f32 (s, &s->qframes, 3 * 4 * s->pix * cfg->capacity);
    if (st == DIT_OK && dit_backend_device (be) != DIT_DEVICE_CPU)
      st = alloc_f32 (s, &s->stage, lat * s->stage_latents);
    /* the weights may still be uploading on be's stream */
    if (st == DIT_OK && s->abe != be)
      st = dit_synchronize (be);
    if (st == DIT_OK)
      st = dit_vae_create (cfg->vae_config, cfg->vae_weights,
          8 * cfg->latent_w, 8 * cfg->latent_h, cfg->vae_dtype, s->abe,
          &s->vae);
    if (st == DIT_OK && s->abe != be)
      st = dit_synchronize (s->abe);
    if (st == DIT_OK && cfg->display_config)
      st = dit_taehv_create (cfg->display_config, cfg->display_weights,
          8 * cfg->latent_w, 8 * cfg->latent_h, cfg->vae_dtype,
          DIT_TAEHV_DECODER, be, &s->tae);
    if (st == DIT_OK && cfg->display_config) {
      int64_t n = 3 * 4 * s->pix;
      st = dit_tensor_alloc (s->abe, &s->apix, DIT_F32, 1, &n);
    }
  } else if (st == DIT_OK && dit_backend_device (be) != DIT_DEVICE_CPU) {
    s->stage_latents = F;
    st = alloc_f32 (s, &s->stage, lat * F);
  }
  if (st == DIT_OK)
    st = dit_event_create (be, &s->ev_in);
  if (st == DIT_OK)
    st = dit_event_create (be, &s->ev_out);
  if (st == DIT_OK)
    st = dit_event_create (be, &s->ev_ain);
  if (st == DIT_OK)
    st = dit_event_create_timed (s->abe, &s->ev_a0);
  if (st == DIT_OK)
    st = dit_event_create_timed (s->abe, &s->ev_adone);
  if (st != DIT_OK) {
    dit_stage0_free (s);
    return dit_error_prefix (st, "stage 0");
  }
  dit_stage0_reset (s);
  *out = s;
  return DIT_OK;
}

static dit_status collect_anchor (dit_stage0 *s);

void
dit_stage0_reset (dit_stage0 *s)
{
  /* a pending anchor path is timed (and so finished) before its buffers
   * serve a new stream */
  if (collect_anchor (s) != DIT_OK)
    (void) dit_synchronize (s->abe);
  s->next_chunk = 0;
  s->anchor_for = -1;
  s->held_begin = s->decoded_end = s->submitted_end = 0;
  s->stats.decoded = 0;
  if (s->vae)
    dit_vae_reset_decoder (s->vae);
  if (s->tae)
    dit_taehv_reset_decoder (s->tae);
}

const dit_stage0_config *
dit_stage0_get_config (const dit_stage0 *s)
{
  return &s->cfg;
}

int
dit_stage0_has_decoder (const dit_stage0 *s)
{
  return s->vae != NULL;
}

int
dit_stage0_has_display_decoder (const dit_stage0 *s)
{
  return s->tae != NULL;
}

int
dit_stage0_anchor_on_own_stream (const dit_stage0 *s)
{
  return s->abe != s->be;
}

/* Take the time of a pending anchor path on abe (the host waits for it). */
static dit_status
collect_anchor (dit_stage0 *s)
{
  if (!s->anchor_pending)
    return DIT_OK;
  double ms;
  s->anchor_pending = 0;
  DIT_TRY (dit_event_synchronize (s->abe, s->ev_adone));
  DIT_TRY (dit_event_elapsed (s->abe, s->ev_a0, s->ev_adone, &ms));
  s->stats.last_anchor_ms = s->anchor_pre_ms + ms;
  s->stats.busy_us += (int64_t) (ms * 1e3);
  return DIT_OK;
}

dit_status
dit_stage0_sync (dit_stage0 *s)
{
  DIT_TRY (collect_anchor (s));
  if (s->abe != s->be)
    DIT_TRY (dit_synchronize (s->abe));
  return dit_synchronize (s->be);
}

/* ---- inputs from other streams and the host ------------------------------- */

/* Order this backend after `producer`'s work so far. */
static dit_status
wait_for (dit_stage0 *s, dit_backend *producer)
{
  if (!producer || producer == s->be)
    return DIT_OK;
  if (!dit_backend_shares_memory (producer, s->be))
    return dit_error (DIT_ERR_INVALID, "stage 0: latents of backend %s "
        "(device %d) cannot be read on %s (device %d)",
        dit_backend_name (producer), producer->device_index,
        dit_backend_name (s->be), s->be->device_index);
  DIT_TRY (dit_event_record (producer, s->ev_in));
  return dit_event_wait (s->be, s->ev_in);
}

/* x [16, n, h, w] as a tensor this backend reads: itself when it lives
 * here (any dtype), or uploaded to the staging buffer (host f32). */
static dit_status
readable (dit_stage0 *s, const dit_tensor *x, dit_backend *producer,
    dit_tensor *out)
{
  const int64_t n = x->ndim == 4 ? x->shape[1] : 0;
  if (x->ndim != 4 || x->shape[0] != DIT_LATENT_CHANNELS
      || x->shape[2] != s->cfg.latent_h || x->shape[3] != s->cfg.latent_w)
    return dit_error (DIT_ERR_INVALID, "stage 0: latents must be [16, n, %d, "
        "%d]", s->cfg.latent_h, s->cfg.latent_w);
  if (x->device == dit_backend_device (s->be)) {
    DIT_TRY (wait_for (s, producer));
    *out = *x;
    return DIT_OK;
  }
  if (x->device != DIT_DEVICE_CPU || !dit_tensor_is_contiguous (x)
      || x->dtype != DIT_F32)
    return dit_error (DIT_ERR_INVALID, "stage 0: latents on another device "
        "must be contiguous host f32");
  if (n > s->stage_latents)
    return dit_error (DIT_ERR_INVALID, "stage 0: %lld host latents exceed the "
        "staging buffer of %d", (long long) n, s->stage_latents);
  int64_t shape[4] = { DIT_LATENT_CHANNELS, n, s->cfg.latent_h,
    s->cfg.latent_w };
  *out = dit_tensor_make (s->stage.data, DIT_F32, s->stage.device, 4, shape);
  return dit_upload (s->be, out->data, x->data, dit_tensor_nbytes (x));
}

/* ---- context -------------------------------------------------------------- */

static dit_tensor
hist_slot (const dit_stage0 *s, int64_t latent)
{
  return latent_slot (s, &s->hist, latent % s->cfg.context_frames);
}

dit_status
dit_stage0_context (dit_stage0 *s, int64_t k, dit_backend *consumer,
    dit_tensor *ctx)
{
  const int F = s->cfg.frames_per_chunk, C = s->cfg.context_frames;
  memset (ctx, 0, sizeof *ctx);
  if (k != s->next_chunk)
    return dit_error (DIT_ERR_STATE, "stage 0: asked for chunk %lld's "
        "context, but %lld chunks are known", (long long) k,
        (long long) s->next_chunk);
  if (k > 0) {
    /* the anchor (made on the anchor's stream) is read below */
    if (s->abe != s->be)
      DIT_TRY (dit_event_wait (s->be, s->ev_adone));
    for (int j = 0; j < C; j++) {
      int64_t l = dit_context_slot_latent (F, C, k, j);
      dit_tensor src, dst = latent_of (&s->ctx, j);
      if (j == 0 && dit_context_slot0_is_anchor (F, C, s->cfg.anchor, k)) {
        if (s->anchor_for != k)
          return dit_error (DIT_ERR_STATE, "chunk %lld needs the re-encoded "
              "anchor of latent %lld, which was not made", (long long) k,
              (long long) l);
        src = latent_slot (s, &s->anchor, 0);
      } else {
        src = l == 0 ? latent_slot (s, &s->latent0, 0) : hist_slot (s, l);
      }
      DIT_TRY (copy_latent (s, &src, &dst));
    }
    *ctx = s->ctx;
  }
  /* The consumer's next work follows the context, and every earlier
   * push_chunk's read of its x0. */
  if (consumer && consumer != s->be) {
    DIT_TRY (dit_event_record (s->be, s->ev_out));
    DIT_TRY (dit_event_wait (consumer, s->ev_out));
  }
  return DIT_OK;
}

/* ---- decode queue --------------------------------------------------------- */

int
dit_stage0_has_room (const dit_stage0 *s, int n)
{
  return s->submitted_end - s->held_begin + n <= s->cfg.capacity;
}

/* Queue latents [first, first + n) of x (readable here) at latent offset
 * `offset`. */
static dit_status
queue_latents (dit_stage0 *s, int64_t first, int n, const dit_tensor *x,
    int offset)
{
  if (!s->vae)
    return dit_error (DIT_ERR_STATE, "stage 0: no decoder to queue latents "
        "for");
  if (first > s->submitted_end)
    return dit_error (DIT_ERR_STATE, "decode queue: latent %lld submitted, "
        "expected %lld (a chunk is missing)", (long long) first,
        (long long) s->submitted_end);
  for (int j = 0; j < n; j++) {
    int64_t idx = first + j;
    if (idx < s->submitted_end)
      continue;
    if (!dit_stage0_has_room (s, 1))
      return dit_error (DIT_ERR_STATE, "decode queue full (%d latents)",
          s->cfg.capacity);
    dit_tensor src = latent_of (x, offset + j);
    dit_tensor dst = latent_slot (s, &s->qlat, idx % s->cfg.capacity);
    DIT_TRY (copy_latent (s, &src, &dst));
    s->submitted_end = idx + 1;
  }
  return DIT_OK;
}

dit_status
dit_stage0_submit (dit_stage0 *s, int64_t first, int n, const dit_tensor *x,
    dit_backend *producer)
{
  dit_tensor xr;
  if (first + n <= s->submitted_end)
    return DIT_OK;              /* all queued already (x may be unread) */
  DIT_TRY (readable (s, x, producer, &xr));
  return queue_latents (s, first, n, &xr, 0);
}

dit_status
dit_stage0_decode_to (dit_stage0 *s, int64_t latent)
{
  if (latent >= s->submitted_end)
    return dit_error (DIT_ERR_STATE, "decode queue: latent %lld is not queued "
        "(%lld queued)", (long long) latent, (long long) s->submitted_end);
  while (s->decoded_end <= latent) {
    int64_t idx = s->decoded_end;
    dit_tensor lat = latent_slot (s, &s->qlat, idx % s->cfg.capacity);
    dit_tensor pix = frames_slot (s, idx);
    double t0 = dit_now_ms ();
    if (s->tae)
      DIT_TRY (dit_taehv_decode (s->tae, &lat, &pix));
    else
      DIT_TRY (dit_vae_decode (s->vae, &lat, &pix));
    DIT_TRY (dit_synchronize (s->be));
    double ms = dit_now_ms () - t0;
    s->stats.last_decode_ms = ms;
    s->stats.busy_us += (int64_t) (ms * 1e3);
    s->stats.decoded++;
    s->decoded_end = idx + 1;
  }
  return DIT_OK;
}

dit_status
dit_stage0_frames (const dit_stage0 *s, int64_t latent, dit_tensor *frames)
{
  if (!s->vae || latent < s->held_begin || latent >= s->decoded_end)
    return dit_error (DIT_ERR_STATE, "stage 0: frames of latent %lld are not "
        "held (decoded %lld..%lld)", (long long) latent,
        (long long) s->held_begin, (long long) s->decoded_end - 1);
  *frames = frames_slot (s, latent);
  return DIT_OK;
}

void
dit_stage0_release (dit_stage0 *s, int64_t latent)
{
  if (latent + 1 > s->held_begin)
    s->held_begin = latent + 1;
  if (s->held_begin > s->submitted_end)
    s->submitted_end = s->decoded_end = s->held_begin;
  else if (s->held_begin > s->decoded_end)
    s->decoded_end = s->held_begin;
}

dit_status
dit_stage0_drain (dit_stage0 *s)
{
  int64_t end = s->submitted_end;
  if (end > s->decoded_end)
    DIT_TRY (dit_stage0_decode_to (s, end - 1));
  dit_stage0_release (s, end - 1);
  return DIT_OK;
}

int64_t
dit_stage0_next_submit (const dit_stage0 *s)
{
  return s->submitted_end;
}

int64_t
dit_stage0_next_decode (const dit_stage0 *s)
{
  return s->decoded_end;
}

int
dit_stage0_held (const dit_stage0 *s)
{
  return (int) (s->submitted_end - s->held_begin);
}

/* ---- the generator's chunk ------------------------------------------------- */

/* Decode the anchor latent of chunk k + 1 and re-encode the last frame of
 * that latent as a single image.  The frame comes from the full VAE beside
 * a display decoder of its own (its decoder stream sees only the anchor
 * latents: its causal cache holds the previous anchor's features, not the
 * previous latent's; the one full decode per chunk this costs is the point
 * of a tiny display), or from the display decoder up to that latent.  The
 * full VAE's work runs on abe: enqueued only, when that is a stream of its
 * own (collect_anchor times it later); else finished here. */
static dit_status
anchor_path (dit_stage0 *s, int64_t k)
{
  const int F = s->cfg.frames_per_chunk, C = s->cfg.context_frames;
  if (!dit_context_slot0_is_anchor (F, C, s->cfg.anchor, k + 1))
    return DIT_OK;
  int64_t a = dit_context_slot_latent (F, C, k + 1, 0);
  const int full = s->tae && s->cfg.anchor_decoder == DIT_ANCHOR_DECODER_FULL;
  double t0 = dit_now_ms ();
  dit_tensor fr;
  if (full) {
    int64_t shape[4] = { 3, dit_vae_decode_frames (s->vae, 1),
      8 * s->cfg.latent_h, 8 * s->cfg.latent_w };
    fr = dit_tensor_make (s->apix.data, DIT_F32, s->apix.device, 4, shape);
  } else {
    DIT_TRY (dit_stage0_decode_to (s, a));
    fr = frames_slot (s, a);
  }
  double t1 = dit_now_ms ();
  if (s->abe != s->be) {
    DIT_TRY (dit_event_record (s->be, s->ev_ain));
    DIT_TRY (dit_event_wait (s->abe, s->ev_ain));
  }
  DIT_TRY (dit_event_record (s->abe, s->ev_a0));
  if (full) {
    dit_tensor lat = latent_slot (s, &s->qlat, a % s->cfg.capacity);
    DIT_TRY (dit_vae_decode (s->vae, &lat, &fr));
  }
  dit_tensor last = fr;
  last.data = (float *) fr.data + (fr.shape[1] - 1) * s->pix;
  last.shape[1] = 1;
  dit_tensor anchor = latent_slot (s, &s->anchor, 0);
  DIT_TRY (dit_vae_encode_anchor (s->vae, &last, &anchor));
  DIT_TRY (dit_event_record (s->abe, s->ev_adone));
  s->anchor_for = k + 1;
  s->stats.anchors++;
  if (s->abe != s->be && s->ev_adone) {
    s->anchor_pending = 1;
    s->anchor_pre_ms = t1 - t0;
    return DIT_OK;
  }
  DIT_TRY (dit_synchronize (s->abe));
  double t2 = dit_now_ms ();
  s->stats.busy_us += (int64_t) ((t2 - t1) * 1e3);
  s->stats.last_anchor_ms = t2 - t0;
  return DIT_OK;
}

dit_status
dit_stage0_push_chunk (dit_stage0 *s, int64_t k, const dit_tensor *x0,
    dit_backend *producer)
{
  const int F = s->cfg.frames_per_chunk, C = s->cfg.context_frames;
  if (k != s->next_chunk)
    return dit_error (DIT_ERR_STATE, "stage 0: chunk %lld arrived, expected "
        "chunk %lld", (long long) k, (long long) s->next_chunk);
  if (x0->ndim != 4 || x0->shape[1] != F)
    return dit_error (DIT_ERR_INVALID, "stage 0: chunk %lld has %lld latent "
        "frames, %d expected", (long long) k,
        (long long) (x0->ndim == 4 ? x0->shape[1] : 0), F);
  int decoded_anchor = s->cfg.anchor == DIT_ANCHOR_DECODED && s->vae;
  if (decoded_anchor && !dit_stage0_has_room (s, F))
    return dit_error (DIT_ERR_STATE, "decode queue full (%d of %d latents "
        "held): the display is behind", dit_stage0_held (s), s->cfg.capacity);
  dit_tensor x;
  /* the previous anchor path is timed, and this backend's writes below (a
   * queue slot it read) wait for it */
  DIT_TRY (collect_anchor (s));
  if (s->abe != s->be)
    DIT_TRY (dit_event_wait (s->be, s->ev_adone));
  DIT_TRY (readable (s, x0, producer, &x));
  /* the history keeps the last C latents (and latent 0) */
  for (int j = F > C ? F - C : 0; j < F; j++) {
    dit_tensor src = latent_of (&x, j), dst = hist_slot (s, k * F + j);
    DIT_TRY (copy_latent (s, &src, &dst));
  }
  if (k == 0) {
    dit_tensor src = latent_of (&x, 0), dst = latent_slot (s, &s->latent0, 0);
    DIT_TRY (copy_latent (s, &src, &dst));
  }
  if (decoded_anchor) {
    DIT_TRY (queue_latents (s, k * F, F, &x, 0));
    DIT_TRY (anchor_path (s, k));
  }
  s->next_chunk = k + 1;
  return DIT_OK;
}

void
dit_stage0_get_stats (const dit_stage0 *s, dit_stage0_stats *out)
{
  *out = s->stats;
}
