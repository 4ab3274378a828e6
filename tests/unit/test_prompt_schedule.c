/* test_prompt_schedule — model/dit_prompt_schedule.h: the embedding each
 * chunk uses.  Expected rows are computed here from the rule ((1 - j/N) old
 * + (j/N) new, missing rows zero), not with dit_prompt_blend; the reset
 * rule is checked against its table (auto: video input and no blending).
 * With the tiny SentencePiece model as argument, the sources through the
 * text encoder too: a prompt-embeds file wins, a text prompt is encoded
 * (rows equal to the encoder's own), a missing file or encoder is an error
 * naming it, and finished encodings are taken in order (an older request
 * than the one wanted is dropped, a failed one leaves its message).
 */
#include "dit_prompt.h"
#include "dit_prompt_schedule.h"
#include "dit_stream.h"
#include "safetensors.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DIM = 8, LEN = 32 };

static float *
rows_of (int n, float base)
{
  float *r = malloc ((size_t) n * DIM * sizeof (float));
  for (int i = 0; i < n * DIM; i++)
    r[i] = base + 0.01f * (float) i;
  return r;
}

/* max |got - ((1 - w) a + w b)| over max(na, nb) rows */
static double
blend_error (const dit_tensor *got, const float *a, int na, const float *b,
    int nb, float w)
{
  int n = na > nb ? na : nb;
  double e = got->shape[0] == n ? 0.0 : 1e9;
  const float *g = got->data;
  for (int i = 0; e < 1e9 && i < n * DIM; i++) {
    double va = i < na * DIM ? a[i] : 0.0, vb = i < nb * DIM ? b[i] : 0.0;
    e = fmax (e, fabs (g[i] - ((1.0 - w) * va + w * vb)));
  }
  return e;
}

/* The schedule's sources through the tiny umT5 (d_model 64). */
static void
test_sources (const char *spm)
{
  enum { TDIM = 64 };
  dit_prompt_schedule *s;
  dit_prompt_encoder *enc;
  dit_tensor t;
  int changed, n = 0;
  float w, *ref = NULL, fixed[3 * TDIM];
  char failed[256], path[] = "/tmp/test-prompt-schedule-XXXXXX";
  int64_t shape[2] = { 3, TDIM };
  dit_st_write_tensor wt = { "prompt_embeds", DIT_F32, 2, shape, fixed };
  uint64_t id1, id2, ep;

  CHECK (dit_prompt_schedule_create (TDIM, LEN, &s) == DIT_OK, "create");
  if (dit_prompt_encoder_create ("tiny", spm, 0, TDIM, &enc) != DIT_OK) {
    CHECK (0, "tiny encoder: %s", dit_last_error ());
    dit_prompt_schedule_free (s);
    return;
  }
  /* a text prompt with no encoder, a missing embeddings file */
  CHECK (dit_prompt_schedule_load (s, NULL, "a koi pond", NULL)
      == DIT_ERR_STATE, "a prompt without an encoder was accepted");
  CHECK (dit_prompt_schedule_load (s, "/nonexistent/e.safetensors", NULL,
          enc) != DIT_OK && strstr (dit_last_error (), "/nonexistent/e"),
      "missing file: %s", dit_last_error ());

  /* the text prompt: the encoder's rows, handed over after the restart */
  CHECK (dit_prompt_encode (enc, "a koi pond", &ref, &n) == DIT_OK, "encode");
  CHECK (dit_prompt_schedule_load (s, NULL, "a koi pond", enc) == DIT_OK,
      "load prompt: %s", dit_last_error ());
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && t.shape[0] == n && ref
      && memcmp (t.data, ref, (size_t) n * TDIM * 4) == 0, "prompt rows");

  /* an embeddings file wins over the prompt */
  for (int i = 0; i < 3 * TDIM; i++)
    fixed[i] = 0.5f - 0.001f * (float) i;
  close (mkstemp (path));
  CHECK (dit_safetensors_write (path, &wt, 1, NULL) == DIT_OK, "write");
  CHECK (dit_prompt_schedule_load (s, path, "a koi pond", enc) == DIT_OK,
      "load file: %s", dit_last_error ());
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && t.shape[0] == 3 && memcmp (t.data, fixed, sizeof fixed)
      == 0, "file rows");
  unlink (path);
  CHECK (dit_prompt_schedule_load (s, NULL, "ignored: text known", enc)
      == DIT_OK, "back to the prompt");

  /* finished encodings: one older than the request wanted is dropped
   * quietly, the wanted one taken */
  ep = dit_prompt_schedule_epoch (s);
  id1 = dit_prompt_encoder_submit (enc, "a red fox");
  dit_prompt_encoder_wait (enc, id1);
  CHECK (!dit_prompt_schedule_take (s, enc, id1 + 1, 0, failed, sizeof failed)
      && !failed[0], "request %llu, older than the one wanted, was not "
      "dropped quietly", (unsigned long long) id1);
  CHECK (dit_prompt_schedule_epoch (s) == ep, "a dropped one moved the epoch");
  id2 = dit_prompt_encoder_submit (enc, "a snowy forest");
  dit_prompt_encoder_wait (enc, id2);
  CHECK (dit_prompt_schedule_take (s, enc, id2, 0, failed, sizeof failed),
      "the wanted encoding was not taken");
  CHECK (dit_prompt_schedule_epoch (s) == ep + 1, "epoch after a switch");
  CHECK (!dit_prompt_schedule_take (s, enc, id2, 0, failed, sizeof failed),
      "nothing left to take");
  /* a failed one: its message, the prompt kept */
  id1 = dit_prompt_encoder_submit (enc, "\xff\xfe not UTF-8");
  dit_prompt_encoder_wait (enc, id1);
  CHECK (!dit_prompt_schedule_take (s, enc, id1, 0, failed, sizeof failed)
      && failed[0], "a failed encoding left no message");
  CHECK (dit_prompt_schedule_epoch (s) == ep + 1, "a failure moved the epoch");

  free (ref);
  dit_prompt_encoder_free (enc);
  dit_prompt_schedule_free (s);
}

int
main (int argc, char **argv)
{
  dit_prompt_schedule *s;
  dit_tensor t;
  int changed;
  float w;
  static float def[DIT_DEFAULT_PROMPT_ROWS * DIM];

  /* the reset rule */
  CHECK (dit_prompt_resets_cache (DIT_PROMPT_RESET_AUTO, 1, 0), "auto, video");
  CHECK (!dit_prompt_resets_cache (DIT_PROMPT_RESET_AUTO, 1, 1), "auto, blend");
  CHECK (!dit_prompt_resets_cache (DIT_PROMPT_RESET_AUTO, 0, 0), "auto, t2v");
  CHECK (dit_prompt_resets_cache (DIT_PROMPT_RESET_ALWAYS, 0, 1), "always");
  CHECK (!dit_prompt_resets_cache (DIT_PROMPT_RESET_NEVER, 1, 0), "never");

  if (dit_prompt_schedule_create (DIM, LEN, &s) != DIT_OK) {
    fprintf (stderr, "create: %s\n", dit_last_error ());
    return 1;
  }
  /* nothing set: the seeded default rows, handed over once */
  dit_stream_default_embeds (DIT_DEFAULT_PROMPT_ROWS, DIM, def);
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && w == 1.0f && t.shape[0] == DIT_DEFAULT_PROMPT_ROWS
      && memcmp (t.data, def, sizeof def) == 0, "default rows");
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (!changed, "the default again reported as a change");
  CHECK (dit_prompt_schedule_epoch (s) == 0, "epoch %llu",
      (unsigned long long) dit_prompt_schedule_epoch (s));

  /* a text prompt at the start, then a 4-chunk transition to another */
  float *a = rows_of (5, 1.0f), *b = rows_of (7, -2.0f);
  float *a_ref = rows_of (5, 1.0f), *b_ref = rows_of (7, -2.0f);
  CHECK (dit_prompt_schedule_set_text (s, a, 5) == DIT_OK, "set text");
  dit_prompt_schedule_restart (s);
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && t.shape[0] == 5 && memcmp (t.data, a_ref, 5 * DIM * 4) == 0,
      "text rows");
  CHECK (dit_prompt_schedule_epoch (s) == 1, "epoch after restart");
  CHECK (dit_prompt_schedule_switch (s, b, 7, 4) == 1, "switch");
  CHECK (dit_prompt_schedule_epoch (s) == 2, "epoch after switch");
  for (int j = 1; j <= 4; j++) {
    dit_prompt_schedule_next (s, &t, &changed, &w);
    CHECK (changed && fabsf (w - j / 4.0f) < 1e-7f, "chunk %d: weight %g", j, w);
    CHECK (blend_error (&t, a_ref, 5, b_ref, 7, j / 4.0f) < 1e-6, "chunk %d: "
        "rows are not the blend", j);
  }
  CHECK (!dit_prompt_schedule_in_transition (s), "transition over");
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (!changed && w == 1.0f && t.shape[0] == 7
      && memcmp (t.data, b_ref, 7 * DIM * 4) == 0, "the new prompt in force");

  /* a switch with N = 0 takes effect at once; a switch in the middle of a
   * transition blends from its target */
  float *c = rows_of (3, 5.0f), *c_ref = rows_of (3, 5.0f);
  dit_prompt_schedule_switch (s, c, 3, 0);
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && w == 1.0f && blend_error (&t, b_ref, 7, c_ref, 3, 1.0f) == 0,
      "immediate switch");
  float *d = rows_of (4, 9.0f), *d_ref = rows_of (4, 9.0f);
  float *e = rows_of (2, -9.0f), *e_ref = rows_of (2, -9.0f);
  dit_prompt_schedule_switch (s, d, 4, 2);
  dit_prompt_schedule_next (s, &t, &changed, &w);   /* 1/2 of c -> d */
  dit_prompt_schedule_switch (s, e, 2, 2);
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (fabsf (w - 0.5f) < 1e-7f && blend_error (&t, d_ref, 4, e_ref, 2, 0.5f)
      < 1e-6, "a switch mid-transition blends from its target");
  dit_prompt_schedule_next (s, &t, &changed, &w);

  /* a fixed embedding wins and drops text switches until cleared */
  float *f = rows_of (6, 3.0f), *g = rows_of (2, 4.0f);
  CHECK (dit_prompt_schedule_set_fixed (s, f, 6) == DIT_OK, "fixed");
  dit_prompt_schedule_restart (s);
  uint64_t ep = dit_prompt_schedule_epoch (s);
  CHECK (dit_prompt_schedule_switch (s, g, 2, 0) == 0, "a text switch over a "
      "fixed embedding was accepted");
  CHECK (dit_prompt_schedule_epoch (s) == ep, "a dropped switch moved the epoch");
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && t.shape[0] == 6 && memcmp (t.data, f, 6 * DIM * 4) == 0,
      "fixed rows");
  dit_prompt_schedule_set_fixed (s, NULL, 0);
  dit_prompt_schedule_next (s, &t, &changed, &w);
  CHECK (changed && t.shape[0] == 2 && memcmp (t.data, e_ref, 2 * DIM * 4) == 0,
      "back to the text prompt");

  /* bad sizes */
  CHECK (dit_prompt_schedule_set_fixed (s, f, LEN + 1) == DIT_ERR_INVALID,
      "an embedding longer than text_len");
  CHECK (dit_prompt_schedule_set_text (s, rows_of (0, 0.0f), 0) == DIT_ERR_INVALID,
      "an empty embedding");
  CHECK (dit_prompt_schedule_has_text (s), "text known");

  free (a_ref); free (b_ref); free (c_ref); free (d_ref); free (e_ref);
  free (f);
  dit_prompt_schedule_free (s);
  if (argc > 1)
    test_sources (argv[1]);
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-prompt-schedule: ok\n");
  return failures ? 1 : 0;
}
