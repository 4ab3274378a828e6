/* dit_stream — Stage 0 stream bookkeeping (see dit_stream.h).
 *
 * Everything here is host-side and f32: the context latents and the decode
 * queue are small (a handful of [16, h, w] planes and [3, 4, H, W] frames)
 * next to the models, and keeping them on the host lets the element hand
 * decoded frames straight to system-memory buffers.  No locking: the
 * session serialises access.
 */
#include "dit_stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/dit_philox.h"
#include "safetensors.h"

/* ------------------------------------------------------------------ */
/* frame arithmetic */

int
dit_stream_latent_frames (int64_t latent_index)
{
  return latent_index == 0 ? 1 : 4;
}

int64_t
dit_stream_latent_first_frame (int64_t latent_index)
{
  return latent_index == 0 ? 0 : 4 * latent_index - 3;
}

int
dit_stream_chunk_frames (int64_t chunk_index, int frames_per_chunk)
{
  return chunk_index == 0 ? 4 * frames_per_chunk - 3 : 4 * frames_per_chunk;
}

int64_t
dit_stream_chunk_first_frame (int64_t chunk_index, int frames_per_chunk)
{
  return dit_stream_latent_first_frame (chunk_index * frames_per_chunk);
}

int
dit_stream_first_step (const double *steps, int num_steps, double strength)
{
  /* Half a timestep of slack so strength 0.75 starts at t = 750. */
  double limit = 1000.0 * strength + 0.5;
  for (int i = 0; i < num_steps; i++)
    if (steps[i] <= limit)
      return i;
  return num_steps - 1;
}

/* ------------------------------------------------------------------ */
/* context */

int64_t
dit_context_slot_latent (int F, int C, int64_t chunk_index, int slot)
{
  int64_t n = chunk_index * F;
  if (slot == 0 && n - C < C)
    return 0;                     /* the first phase keeps latent 0 */
  return n - C + slot;
}

int
dit_context_slot0_is_anchor (int F, int C, dit_anchor_mode mode,
    int64_t chunk_index)
{
  int64_t n = chunk_index * F;
  return chunk_index > 0 && mode == DIT_ANCHOR_DECODED && n - C >= C;
}

struct dit_context {
  int F, C, hw;
  dit_anchor_mode mode;
  int64_t next_chunk;     /* next chunk expected by push_chunk */
  float *latent0;         /* latent 0 of the stream */
  float *history;         /* the last C latents, slot = index % C */
  int64_t anchor_for;     /* chunk the anchor belongs to, -1 none */
  float *anchor;
};

dit_status
dit_context_create (int frames_per_chunk, int context_frames, int latent_h,
    int latent_w, dit_anchor_mode mode, dit_context **out)
{
  if (frames_per_chunk < 1 || context_frames < 1
      || context_frames > frames_per_chunk)
    return dit_error (DIT_ERR_INVALID,
        "context frames %d must be between 1 and the chunk's %d latent frames",
        context_frames, frames_per_chunk);
  if (latent_h < 1 || latent_w < 1)
    return dit_error (DIT_ERR_INVALID, "latent size %dx%d is empty",
        latent_w, latent_h);
  dit_context *c = calloc (1, sizeof *c);
  if (!c)
    return dit_error (DIT_ERR_NOMEM, "out of memory for the stream context");
  c->F = frames_per_chunk;
  c->C = context_frames;
  c->hw = latent_h * latent_w;
  c->mode = mode;
  size_t plane = (size_t) DIT_LATENT_CHANNELS * c->hw;
  c->latent0 = calloc (plane, sizeof (float));
  c->history = calloc (plane * c->C, sizeof (float));
  c->anchor = calloc (plane, sizeof (float));
  if (!c->latent0 || !c->history || !c->anchor) {
    dit_context_free (c);
    return dit_error (DIT_ERR_NOMEM, "out of memory for the stream context");
  }
  dit_context_reset (c);
  *out = c;
  return DIT_OK;
}

void
dit_context_free (dit_context *c)
{
  if (!c)
    return;
  free (c->latent0);
  free (c->history);
  free (c->anchor);
  free (c);
}

void
dit_context_reset (dit_context *c)
{
  c->next_chunk = 0;
  c->anchor_for = -1;
}

static float *
history_slot (const dit_context *c, int64_t latent_index)
{
  return c->history + (size_t) (latent_index % c->C) * DIT_LATENT_CHANNELS
      * c->hw;
}

dit_status
dit_context_push_chunk (dit_context *c, int64_t chunk_index, const float *x0)
{
  if (chunk_index != c->next_chunk)
    return dit_error (DIT_ERR_STATE,
        "stream context: chunk %lld arrived, expected chunk %lld",
        (long long) chunk_index, (long long) c->next_chunk);
  for (int j = 0; j < c->F; j++) {
    int64_t n = chunk_index * c->F + j;
    dit_latent_extract (x0, c->F, j, c->hw, history_slot (c, n));
    if (n == 0)
      dit_latent_extract (x0, c->F, j, c->hw, c->latent0);
  }
  c->next_chunk++;
  return DIT_OK;
}

int64_t
dit_context_anchor_latent (const dit_context *c, int64_t next_chunk)
{
  if (!dit_context_slot0_is_anchor (c->F, c->C, c->mode, next_chunk))
    return -1;
  return dit_context_slot_latent (c->F, c->C, next_chunk, 0);
}

dit_status
dit_context_set_anchor (dit_context *c, int64_t next_chunk, const float *latent)
{
  memcpy (c->anchor, latent,
      (size_t) DIT_LATENT_CHANNELS * c->hw * sizeof (float));
  c->anchor_for = next_chunk;
  return DIT_OK;
}

dit_status
dit_context_build (const dit_context *c, int64_t chunk_index, float *ctx)
{
  int64_t n = chunk_index * c->F;
  if (chunk_index <= 0)
    return dit_error (DIT_ERR_STATE, "chunk %lld has no context",
        (long long) chunk_index);
  if (chunk_index != c->next_chunk)
    return dit_error (DIT_ERR_STATE,
        "stream context: asked for chunk %lld's context, but %lld chunks are known",
        (long long) chunk_index, (long long) c->next_chunk);
  const float *first;
  int64_t l0 = dit_context_slot_latent (c->F, c->C, chunk_index, 0);
  if (dit_context_slot0_is_anchor (c->F, c->C, c->mode, chunk_index)) {
    if (c->anchor_for != chunk_index)
      return dit_error (DIT_ERR_STATE, "chunk %lld needs the re-encoded "
          "anchor of latent %lld, which was not supplied",
          (long long) chunk_index, (long long) (n - c->C));
    first = c->anchor;
  } else {
    first = l0 == 0 ? c->latent0 : history_slot (c, l0);
  }
  dit_latent_insert (ctx, c->C, 0, c->hw, first);
  for (int j = 1; j < c->C; j++)
    dit_latent_insert (ctx, c->C, j, c->hw, history_slot (c,
        dit_context_slot_latent (c->F, c->C, chunk_index, j)));
  return DIT_OK;
}

/* ------------------------------------------------------------------ */
/* decode queue */

struct dit_decode_queue {
  int hw, capacity;
  size_t frame_elems;       /* one pixel frame: 3 * H * W */
  int64_t held_begin;       /* lowest latent not released */
  int64_t decoded_end;      /* next latent to decode */
  int64_t submitted_end;    /* next latent to queue */
  float *latents;           /* capacity x [16, h, w] */
  float *frames;            /* capacity x [3, 4, H, W] */
  int *nframes;             /* per slot */
};

dit_status
dit_decode_queue_create (int latent_h, int latent_w, int capacity,
    dit_decode_queue **out)
{
  if (capacity < 1)
    return dit_error (DIT_ERR_INVALID, "decode queue capacity %d < 1", capacity);
  dit_decode_queue *q = calloc (1, sizeof *q);
  if (!q)
    return dit_error (DIT_ERR_NOMEM, "out of memory for the decode queue");
  q->hw = latent_h * latent_w;
  q->capacity = capacity;
  q->frame_elems = (size_t) 3 * q->hw * 64;
  q->latents = calloc ((size_t) capacity * DIT_LATENT_CHANNELS * q->hw,
      sizeof (float));
  q->frames = calloc ((size_t) capacity * 4 * q->frame_elems, sizeof (float));
  q->nframes = calloc ((size_t) capacity, sizeof (int));
  if (!q->latents || !q->frames || !q->nframes) {
    dit_decode_queue_free (q);
    return dit_error (DIT_ERR_NOMEM, "out of memory for the decode queue");
  }
  *out = q;
  return DIT_OK;
}

void
dit_decode_queue_free (dit_decode_queue *q)
{
  if (!q)
    return;
  free (q->latents);
  free (q->frames);
  free (q->nframes);
  free (q);
}

void
dit_decode_queue_reset (dit_decode_queue *q)
{
  q->held_begin = q->decoded_end = q->submitted_end = 0;
}

int
dit_decode_queue_has_room (const dit_decode_queue *q, int n)
{
  return q->submitted_end - q->held_begin + n <= q->capacity;
}

dit_status
dit_decode_queue_submit (dit_decode_queue *q, int64_t first, int n,
    const float *x, int n_total, int offset)
{
  if (first > q->submitted_end)
    return dit_error (DIT_ERR_STATE,
        "decode queue: latent %lld submitted, expected %lld (a chunk is missing)",
        (long long) first, (long long) q->submitted_end);
  for (int j = 0; j < n; j++) {
    int64_t idx = first + j;
    if (idx < q->submitted_end)
      continue;
    if (!dit_decode_queue_has_room (q, 1))
      return dit_error (DIT_ERR_STATE, "decode queue full (%d latents)",
          q->capacity);
    float *slot = q->latents + (size_t) (idx % q->capacity)
        * DIT_LATENT_CHANNELS * q->hw;
    dit_latent_extract (x, n_total, offset + j, q->hw, slot);
    q->submitted_end = idx + 1;
  }
  return DIT_OK;
}

dit_status
dit_decode_queue_run_to (dit_decode_queue *q, int64_t latent_index,
    dit_decode_fn fn, void *user)
{
  if (latent_index >= q->submitted_end)
    return dit_error (DIT_ERR_STATE,
        "decode queue: latent %lld is not queued (%lld queued)",
        (long long) latent_index, (long long) q->submitted_end);
  while (q->decoded_end <= latent_index) {
    int64_t idx = q->decoded_end;
    int slot = (int) (idx % q->capacity);
    const float *lat = q->latents + (size_t) slot * DIT_LATENT_CHANNELS * q->hw;
    float *pix = q->frames + (size_t) slot * 4 * q->frame_elems;
    DIT_TRY (fn (user, idx, lat, pix));
    q->nframes[slot] = dit_stream_latent_frames (idx);
    q->decoded_end = idx + 1;
  }
  return DIT_OK;
}

const float *
dit_decode_queue_frames (const dit_decode_queue *q, int64_t latent_index,
    int *nframes)
{
  if (latent_index < q->held_begin || latent_index >= q->decoded_end)
    return NULL;
  int slot = (int) (latent_index % q->capacity);
  if (nframes)
    *nframes = q->nframes[slot];
  return q->frames + (size_t) slot * 4 * q->frame_elems;
}

void
dit_decode_queue_release (dit_decode_queue *q, int64_t latent_index)
{
  if (latent_index + 1 > q->held_begin)
    q->held_begin = latent_index + 1;
  if (q->held_begin > q->submitted_end) {
    /* Released past what was queued (a display that decodes on its own):
     * skip ahead so the next submission continues there. */
    q->submitted_end = q->decoded_end = q->held_begin;
  } else if (q->held_begin > q->decoded_end) {
    q->decoded_end = q->held_begin;
  }
}

int64_t
dit_decode_queue_next_decode (const dit_decode_queue *q)
{
  return q->decoded_end;
}

int64_t
dit_decode_queue_next_submit (const dit_decode_queue *q)
{
  return q->submitted_end;
}

int
dit_decode_queue_held (const dit_decode_queue *q)
{
  return (int) (q->submitted_end - q->held_begin);
}

size_t
dit_decode_queue_bytes (const dit_decode_queue *q)
{
  return (size_t) q->capacity * (DIT_LATENT_CHANNELS * q->hw
      + 4 * q->frame_elems) * sizeof (float);
}

/* ------------------------------------------------------------------ */
/* latents */

void
dit_latent_extract (const float *x, int n, int j, int hw, float *dst)
{
  for (int c = 0; c < DIT_LATENT_CHANNELS; c++)
    memcpy (dst + (size_t) c * hw, x + ((size_t) c * n + j) * hw,
        (size_t) hw * sizeof (float));
}

void
dit_latent_insert (float *x, int n, int j, int hw, const float *src)
{
  for (int c = 0; c < DIT_LATENT_CHANNELS; c++)
    memcpy (x + ((size_t) c * n + j) * hw, src + (size_t) c * hw,
        (size_t) hw * sizeof (float));
}

/* ------------------------------------------------------------------ */
/* checkpoints */

/* ------------------------------------------------------------------ */
/* latent files */

/* The chunk index of a tensor named latents.c<k>, or -1. */
static long
latent_chunk_index (const char *name)
{
  char *end;
  long k;

  if (strncmp (name, "latents.c", 9) != 0 || name[9] < '0' || name[9] > '9')
    return -1;
  k = strtol (name + 9, &end, 10);
  return *end == '\0' ? k : -1;
}

static dit_status
check_latent_tensor (const char *path, const dit_st_tensor *t,
    const dit_st_tensor *first)
{
  dit_dtype dt;

  if (t->ndim != 4 || t->shape[0] != DIT_LATENT_CHANNELS || t->shape[1] < 1)
    return dit_error (DIT_ERR_FORMAT, "latents '%s': tensor '%s' must be "
        "[16, frames, h, w] (got %dD, %lld channels)", path, t->name, t->ndim,
        (long long) (t->ndim ? t->shape[0] : 0));
  if (!dit_st_dtype_to_dit (t->dtype, &dt))
    return dit_error (DIT_ERR_FORMAT, "latents '%s': tensor '%s' has dtype %s "
        "(F32, BF16 or F16 expected)", path, t->name,
        dit_st_dtype_name (t->dtype));
  if (first && (t->shape[2] != first->shape[2]
          || t->shape[3] != first->shape[3]))
    return dit_error (DIT_ERR_FORMAT, "latents '%s': tensor '%s' is a %lldx%lld "
        "grid, '%s' %lldx%lld", path, t->name, (long long) t->shape[2],
        (long long) t->shape[3], first->name, (long long) first->shape[2],
        (long long) first->shape[3]);
  return DIT_OK;
}

/* The tensors of the stream in order into *parts (n of them; the caller
 * frees *parts, also on an error). */
static dit_status
latent_parts (const char *path, const dit_safetensors *st,
    const dit_st_tensor ***parts, size_t *n)
{
  const dit_st_tensor *one = dit_safetensors_find (st, "latents");
  long last = -1;
  size_t chunks = 0;

  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    long k = latent_chunk_index (dit_safetensors_at (st, i)->name);
    if (k >= 0) {
      chunks++;
      last = k > last ? k : last;
    }
  }
  if (one && chunks)
    return dit_error (DIT_ERR_FORMAT, "latents '%s': holds both 'latents' and "
        "chunks 'latents.c<k>'", path);
  if (!one && !chunks)
    return dit_error (DIT_ERR_FORMAT, "latents '%s': no tensor 'latents' "
        "(dit-vae encode) and no chunks 'latents.c0', 'latents.c1', ... "
        "(dit-generate)", path);
  *n = one ? 1 : chunks;
  *parts = calloc (*n, sizeof **parts);
  if (!*parts)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  if (one) {
    (*parts)[0] = one;
    return DIT_OK;
  }
  for (size_t k = 0; k < chunks; k++) {
    char name[40];
    snprintf (name, sizeof name, "latents.c%zu", k);
    (*parts)[k] = dit_safetensors_find (st, name);
    if (!(*parts)[k])
      return dit_error (DIT_ERR_FORMAT, "latents '%s': chunk '%s' is missing "
          "(the file has chunks up to latents.c%ld)", path, name, last);
  }
  return DIT_OK;
}

dit_status
dit_stream_load_latents (const char *path, float **out, int64_t shape[4])
{
  dit_safetensors *st;
  const dit_st_tensor **parts = NULL;
  size_t n = 0;
  int64_t frames = 0, hw, f0 = 0;
  float *buf;
  dit_status s = dit_safetensors_open (path, &st);

  if (s != DIT_OK)
    return dit_error_prefix (s, "latents '%s'", path);
  s = latent_parts (path, st, &parts, &n);
  for (size_t k = 0; s == DIT_OK && k < n; k++) {
    s = check_latent_tensor (path, parts[k], k ? parts[0] : NULL);
    frames += parts[k]->shape[1];
  }
  if (s != DIT_OK || n == 0) {
    free (parts);
    dit_safetensors_close (st);
    return s;
  }
  hw = parts[0]->shape[2] * parts[0]->shape[3];
  buf = malloc ((size_t) (DIT_LATENT_CHANNELS * frames * hw) * sizeof (float));
  if (!buf) {
    free (parts);
    dit_safetensors_close (st);
    return dit_error (DIT_ERR_NOMEM, "latents '%s': out of memory", path);
  }
  /* chunk [16, F, h, w] -> frames [f0, f0 + F) of every channel */
  for (size_t k = 0; k < n; k++) {
    const dit_st_tensor *t = parts[k];
    const int64_t F = t->shape[1];
    const size_t esize = dit_st_dtype_size (t->dtype);
    dit_dtype dt;
    dit_st_dtype_to_dit (t->dtype, &dt);
    for (int c = 0; c < DIT_LATENT_CHANNELS; c++)
      dit_convert (buf + ((size_t) c * frames + f0) * hw, DIT_F32,
          (const uint8_t *) t->data + (size_t) c * F * hw * esize, dt,
          (size_t) (F * hw));
    f0 += F;
  }
  shape[0] = DIT_LATENT_CHANNELS;
  shape[1] = frames;
  shape[2] = parts[0]->shape[2];
  shape[3] = parts[0]->shape[3];
  free (parts);
  dit_safetensors_close (st);
  *out = buf;
  return DIT_OK;
}

dit_status
dit_stream_load_embeds (const char *path, int text_dim, int text_len,
    float **out, int *rows)
{
  static const char *const names[] = { "prompt_embeds", "context", "embeds" };
  dit_safetensors *st;
  dit_status s = dit_safetensors_open (path, &st);
  if (s != DIT_OK)
    return dit_error_prefix (s, "prompt-embeds '%s'", path);
  const dit_st_tensor *t = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !t; i++)
    t = dit_safetensors_find (st, names[i]);
  if (!t && dit_safetensors_count (st) == 1)
    t = dit_safetensors_at (st, 0);
  if (!t) {
    dit_safetensors_close (st);
    return dit_error (DIT_ERR_FORMAT,
        "prompt-embeds '%s': no tensor named prompt_embeds, context or embeds",
        path);
  }
  int nd = t->ndim;
  int64_t r = nd >= 2 ? t->shape[nd - 2] : 0, d = nd >= 1 ? t->shape[nd - 1] : 0;
  dit_dtype dt;
  if (!(nd == 2 || (nd == 3 && t->shape[0] == 1)) || d != text_dim || r < 1
      || r > text_len || !dit_st_dtype_to_dit (t->dtype, &dt)) {
    /* the message names the tensor: made before the file (and the name
     * with it) is released */
    s = dit_error (DIT_ERR_INVALID,
        "prompt-embeds '%s': tensor '%s' must be a float [rows <= %d, %d] "
        "(got %dD, last dim %lld)", path, t->name, text_len, text_dim, nd,
        (long long) d);
    dit_safetensors_close (st);
    return s;
  }
  float *buf = malloc ((size_t) r * d * sizeof (float));
  if (!buf) {
    dit_safetensors_close (st);
    return dit_error (DIT_ERR_NOMEM, "out of memory for prompt embeds");
  }
  dit_convert (buf, DIT_F32, t->data, dt, (size_t) (r * d));
  dit_safetensors_close (st);
  *out = buf;
  *rows = (int) r;
  return DIT_OK;
}

void
dit_stream_default_embeds (int rows, int dim, float *out)
{
  /* Stream id "prompt" in ASCII keeps it apart from weight streams. */
  const uint64_t stream = 0x70726f6d7074ull;
  for (int64_t i = 0; i < (int64_t) rows * dim; i++)
    out[i] = 0.1f * dit_philox_normal (0, stream, (uint64_t) i);
}
