/* Stage 0 bookkeeping without GStreamer: frame arithmetic, the KV-recompute
 * context order (anchor path), the in-order decode queue and latent files.  Expected
 * values are written out by hand from spec §4.7(d) and §5.6. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dit_stream.h"
#include "safetensors.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; \
    fprintf (stderr, "%s:%d: ", __FILE__, __LINE__); \
    fprintf (stderr, __VA_ARGS__); fprintf (stderr, "\n"); } } while (0)

enum { H = 2, W = 2, HW = H * W, PLANE = DIT_LATENT_CHANNELS * HW };

/* A latent whose every value is its global index: easy to recognise. */
static void
fill_chunk (float *x, int F, int64_t chunk)
{
  for (int c = 0; c < DIT_LATENT_CHANNELS; c++)
    for (int j = 0; j < F; j++)
      for (int i = 0; i < HW; i++)
        x[((size_t) c * F + j) * HW + i] = (float) (chunk * F + j);
}

static void
test_frames (void)
{
  static const int latent_frames[] = { 1, 4, 4, 4 };
  static const int64_t latent_first[] = { 0, 1, 5, 9 };
  for (int i = 0; i < 4; i++) {
    CHECK (dit_stream_latent_frames (i) == latent_frames[i], "latent %d", i);
    CHECK (dit_stream_latent_first_frame (i) == latent_first[i], "first %d", i);
  }
  CHECK (dit_stream_chunk_frames (0, 3) == 9, "chunk 0 gives 9 frames");
  CHECK (dit_stream_chunk_frames (1, 3) == 12, "chunk 1 gives 12 frames");
  CHECK (dit_stream_chunk_first_frame (1, 3) == 9, "chunk 1 starts at 9");
  CHECK (dit_stream_chunk_first_frame (3, 3) == 33, "chunk 3 starts at 33");
  double steps[] = { 1000, 750, 500, 250 };
  CHECK (dit_stream_first_step (steps, 4, 1.0) == 0, "strength 1");
  CHECK (dit_stream_first_step (steps, 4, 0.75) == 1, "strength 0.75");
  CHECK (dit_stream_first_step (steps, 4, 0.7) == 2, "strength 0.7");
  CHECK (dit_stream_first_step (steps, 4, 0.0) == 3, "strength 0");
}

/* Returns the recognisable value of context slot j. */
static float
slot (const float *ctx, int C, int j)
{
  return ctx[(size_t) j * HW];
}

static void
test_context (dit_anchor_mode mode)
{
  dit_context *c;
  float x[3 * PLANE], ctx[3 * PLANE], anchor[PLANE];
  CHECK (dit_context_create (3, 3, H, W, mode, &c) == DIT_OK, "create");

  fill_chunk (x, 3, 0);
  CHECK (dit_context_push_chunk (c, 0, x) == DIT_OK, "push 0");
  /* Chunk 1: latents 0, 1, 2 and no anchor needed. */
  CHECK (dit_context_anchor_latent (c, 1) == -1, "chunk 1 needs no anchor");
  CHECK (dit_context_build (c, 1, ctx) == DIT_OK, "%s", dit_last_error ());
  CHECK (slot (ctx, 3, 0) == 0 && slot (ctx, 3, 1) == 1 && slot (ctx, 3, 2) == 2,
      "chunk 1 context [0 1 2], got [%g %g %g]", slot (ctx, 3, 0),
      slot (ctx, 3, 1), slot (ctx, 3, 2));

  fill_chunk (x, 3, 1);
  CHECK (dit_context_push_chunk (c, 1, x) == DIT_OK, "push 1");
  if (mode == DIT_ANCHOR_DECODED) {
    /* Chunk 2 (n = 6): the anchor is the decode of latent 3, the first
     * latent of chunk 1; without it the context cannot be built. */
    CHECK (dit_context_anchor_latent (c, 2) == 3, "anchor latent %lld",
        (long long) dit_context_anchor_latent (c, 2));
    CHECK (dit_context_build (c, 2, ctx) == DIT_ERR_STATE, "anchor missing");
    for (int i = 0; i < PLANE; i++)
      anchor[i] = 100.0f;
    dit_context_set_anchor (c, 2, anchor);
    CHECK (dit_context_build (c, 2, ctx) == DIT_OK, "%s", dit_last_error ());
    CHECK (slot (ctx, 3, 0) == 100 && slot (ctx, 3, 1) == 4
        && slot (ctx, 3, 2) == 5, "chunk 2 context [A 4 5], got [%g %g %g]",
        slot (ctx, 3, 0), slot (ctx, 3, 1), slot (ctx, 3, 2));
  } else {
    CHECK (dit_context_anchor_latent (c, 2) == -1, "latent mode: no decode");
    CHECK (dit_context_build (c, 2, ctx) == DIT_OK, "%s", dit_last_error ());
    CHECK (slot (ctx, 3, 0) == 3 && slot (ctx, 3, 1) == 4
        && slot (ctx, 3, 2) == 5, "chunk 2 context [3 4 5], got [%g %g %g]",
        slot (ctx, 3, 0), slot (ctx, 3, 1), slot (ctx, 3, 2));
  }
  /* Out of order chunks are refused. */
  CHECK (dit_context_push_chunk (c, 5, x) == DIT_ERR_STATE, "order");
  dit_context_reset (c);
  CHECK (dit_context_push_chunk (c, 0, x) == DIT_OK, "after reset");
  dit_context_free (c);
}

static int decode_calls[64];
static int n_decode_calls;

static dit_status
fake_decode (void *user, int64_t idx, const float *latent, float *pixels)
{
  decode_calls[n_decode_calls++] = (int) idx;
  int T = dit_stream_latent_frames (idx);
  for (int i = 0; i < 3 * T * 64 * HW; i++)
    pixels[i] = latent[0];
  return DIT_OK;
}

static void
test_decode_queue (void)
{
  dit_decode_queue *q;
  float x[3 * PLANE];
  int nf;
  CHECK (dit_decode_queue_create (H, W, 6, &q) == DIT_OK, "create");

  /* Generator: chunk 0 queued, nothing decoded (no anchor needed). */
  fill_chunk (x, 3, 0);
  CHECK (dit_decode_queue_submit (q, 0, 3, x, 3, 0) == DIT_OK, "submit 0");
  /* Display takes chunk 0: submitting again is a no-op, decodes 0..2. */
  CHECK (dit_decode_queue_submit (q, 0, 3, x, 3, 0) == DIT_OK, "resubmit");
  CHECK (dit_decode_queue_run_to (q, 2, fake_decode, NULL) == DIT_OK, "run");
  CHECK (dit_decode_queue_frames (q, 0, &nf) && nf == 1, "latent 0: 1 frame");
  CHECK (dit_decode_queue_frames (q, 2, &nf) && nf == 4, "latent 2: 4 frames");
  dit_decode_queue_release (q, 2);
  /* Generator: chunk 1, anchor decode of latent 3 only. */
  fill_chunk (x, 3, 1);
  CHECK (dit_decode_queue_submit (q, 3, 3, x, 3, 0) == DIT_OK, "submit 1");
  CHECK (dit_decode_queue_run_to (q, 3, fake_decode, NULL) == DIT_OK, "anchor");
  const float *f = dit_decode_queue_frames (q, 3, &nf);
  CHECK (f && nf == 4 && f[0] == 3.0f, "latent 3 frames");
  /* Display of chunk 1 decodes only 4 and 5: every latent exactly once. */
  CHECK (dit_decode_queue_run_to (q, 5, fake_decode, NULL) == DIT_OK, "display");
  CHECK (n_decode_calls == 6, "6 decodes, got %d", n_decode_calls);
  for (int i = 0; i < n_decode_calls; i++)
    CHECK (decode_calls[i] == i, "decode order %d: %d", i, decode_calls[i]);
  /* Bounded: 3 held + 3 more fit, a 7th does not. */
  fill_chunk (x, 3, 2);
  CHECK (dit_decode_queue_has_room (q, 3), "room for chunk 2");
  CHECK (dit_decode_queue_submit (q, 6, 3, x, 3, 0) == DIT_OK, "submit 2");
  CHECK (!dit_decode_queue_has_room (q, 1), "full");
  CHECK (dit_decode_queue_submit (q, 9, 1, x, 3, 0) != DIT_OK, "overflow");
  /* A gap (a lost chunk) is an error, not a silent skip. */
  dit_decode_queue_release (q, 8);
  CHECK (dit_decode_queue_submit (q, 12, 3, x, 3, 0) == DIT_ERR_STATE, "gap");
  dit_decode_queue_free (q);
}

/* Write chunks named names[i] (NULL-terminated), chunk i [16, F[i], H, W]
 * filled by fill_chunk with running latent indices. */
static void
write_chunks (const char *path, const char *const *names, const int *F)
{
  dit_st_write_tensor t[4] = { { 0 } };
  int64_t shapes[4][4];
  float *data[4];
  int n = 0, first = 0;

  for (; names[n]; n++) {
    data[n] = malloc (sizeof (float) * DIT_LATENT_CHANNELS * F[n] * HW);
    for (int c = 0; c < DIT_LATENT_CHANNELS; c++)
      for (int j = 0; j < F[n]; j++)
        for (int i = 0; i < HW; i++)
          data[n][((size_t) c * F[n] + j) * HW + i] = (float) (first + j);
    first += F[n];
    shapes[n][0] = DIT_LATENT_CHANNELS;
    shapes[n][1] = F[n];
    shapes[n][2] = H;
    shapes[n][3] = W;
    t[n] = (dit_st_write_tensor) { names[n], DIT_F32, 4, shapes[n], data[n] };
  }
  CHECK (dit_safetensors_write (path, t, (size_t) n, NULL) == DIT_OK,
      "write %s: %s", path, dit_last_error ());
  for (int i = 0; i < n; i++)
    free (data[i]);
}

/* dit-generate's chunks latents.c0 .. c<K-1> load as one stream in chunk
 * order (written out of order in the file); a gap or no latents at all is
 * an error naming the tensor. */
static void
test_load_latents (void)
{
  char path[] = "/tmp/dit-stream-latents-XXXXXX";
  int fd = mkstemp (path);
  float *x = NULL;
  int64_t shape[4];

  CHECK (fd >= 0, "mkstemp");
  close (fd);
  write_chunks (path, (const char *const[]) { "latents.c1", "latents.c0",
      "latents.c2", NULL }, (const int[]) { 3, 3, 2 });
  CHECK (dit_stream_load_latents (path, &x, shape) == DIT_OK, "load: %s",
      dit_last_error ());
  CHECK (shape[0] == 16 && shape[1] == 8 && shape[2] == H && shape[3] == W,
      "shape [%lld, %lld, %lld, %lld]", (long long) shape[0],
      (long long) shape[1], (long long) shape[2], (long long) shape[3]);
  /* values count up in the order the tensors were written (c1 first), so
   * chunk order gives c0's 3 4 5, c1's 0 1 2, c2's 6 7 */
  if (x) {
    static const float want[8] = { 3, 4, 5, 0, 1, 2, 6, 7 };
    for (int c = 0; c < 16; c += 15)
      for (int j = 0; j < 8; j++)
        CHECK (x[((size_t) c * 8 + j) * HW] == want[j], "channel %d latent %d:"
            " %g, expected %g", c, j, x[((size_t) c * 8 + j) * HW], want[j]);
  }
  free (x);

  write_chunks (path, (const char *const[]) { "latents.c0", "latents.c2",
      NULL }, (const int[]) { 3, 3 });
  CHECK (dit_stream_load_latents (path, &x, shape) == DIT_ERR_FORMAT
      && strstr (dit_last_error (), "'latents.c1' is missing"), "gap: %s",
      dit_last_error ());
  write_chunks (path, (const char *const[]) { "pixels", NULL },
      (const int[]) { 1 });
  CHECK (dit_stream_load_latents (path, &x, shape) == DIT_ERR_FORMAT
      && strstr (dit_last_error (), "no tensor 'latents'"), "none: %s",
      dit_last_error ());
  unlink (path);
}

int
main (void)
{
  test_frames ();
  test_context (DIT_ANCHOR_DECODED);
  test_context (DIT_ANCHOR_LATENT);
  test_decode_queue ();
  test_load_latents ();
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
