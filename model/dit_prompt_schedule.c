/* dit_prompt_schedule — the per-chunk prompt embedding (see the header). */
#include "dit_prompt_schedule.h"

#include <stdlib.h>
#include <string.h>

#include "dit_prompt.h"
#include "dit_stream.h"

struct dit_prompt_schedule {
  int dim, len;
  float *fixed;
  int fixed_n;
  float *cur, *old, *new_;      /* text: in force; a transition's ends */
  int cur_n, old_n, new_n;
  int trans_j, trans_n;         /* chunk j of an n-chunk transition; n < 0: none */
  float *def;                   /* the default rows */
  float *mix;                   /* [len, dim] */
  int changed;
  uint64_t epoch;
  const float *last;            /* what the last next () gave */
  int last_n;
};

int
dit_prompt_resets_cache (dit_prompt_reset mode, int video_input, int blending)
{
  switch (mode) {
    case DIT_PROMPT_RESET_ALWAYS:
      return 1;
    case DIT_PROMPT_RESET_NEVER:
      return 0;
    default:
      return video_input && !blending;
  }
}

dit_status
dit_prompt_schedule_create (int dim, int len, dit_prompt_schedule **out)
{
  *out = NULL;
  if (dim < 1 || len < DIT_DEFAULT_PROMPT_ROWS)
    return dit_error (DIT_ERR_INVALID, "prompt schedule: embeddings of %d "
        "rows x %d (at least %d rows)", len, dim, DIT_DEFAULT_PROMPT_ROWS);
  dit_prompt_schedule *s = calloc (1, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "prompt schedule: out of memory");
  s->dim = dim;
  s->len = len;
  s->trans_n = -1;
  s->def = malloc ((size_t) DIT_DEFAULT_PROMPT_ROWS * dim * sizeof (float));
  s->mix = malloc ((size_t) len * dim * sizeof (float));
  if (!s->def || !s->mix) {
    dit_prompt_schedule_free (s);
    return dit_error (DIT_ERR_NOMEM, "prompt schedule: out of memory");
  }
  dit_stream_default_embeds (DIT_DEFAULT_PROMPT_ROWS, dim, s->def);
  s->changed = 1;
  *out = s;
  return DIT_OK;
}

void
dit_prompt_schedule_free (dit_prompt_schedule *s)
{
  if (!s)
    return;
  free (s->fixed);
  free (s->cur);
  free (s->old);
  free (s->new_);
  free (s->def);
  free (s->mix);
  free (s);
}

static dit_status
check_rows (const dit_prompt_schedule *s, int n)
{
  if (n < 1 || n > s->len)
    return dit_error (DIT_ERR_INVALID, "prompt schedule: an embedding of %d "
        "rows (1..%d)", n, s->len);
  return DIT_OK;
}

dit_status
dit_prompt_schedule_set_fixed (dit_prompt_schedule *s, const float *rows, int n)
{
  float *copy = NULL;
  if (rows) {
    DIT_TRY (check_rows (s, n));
    copy = malloc ((size_t) n * s->dim * sizeof (float));
    if (!copy)
      return dit_error (DIT_ERR_NOMEM, "prompt schedule: out of memory");
    memcpy (copy, rows, (size_t) n * s->dim * sizeof (float));
  }
  free (s->fixed);
  s->fixed = copy;
  s->fixed_n = rows ? n : 0;
  s->changed = 1;
  return DIT_OK;
}

dit_status
dit_prompt_schedule_set_text (dit_prompt_schedule *s, float *rows, int n)
{
  dit_status st = check_rows (s, n);
  if (st != DIT_OK) {
    free (rows);
    return st;
  }
  free (s->cur);
  free (s->old);
  free (s->new_);
  s->old = s->new_ = NULL;
  s->cur = rows;
  s->cur_n = n;
  s->trans_n = -1;
  s->changed = 1;
  return DIT_OK;
}

int
dit_prompt_schedule_switch (dit_prompt_schedule *s, float *rows, int n,
    int transition_chunks)
{
  if (s->fixed || check_rows (s, n) != DIT_OK) {
    free (rows);
    return 0;
  }
  /* blend from what is in force now (mid-transition: its target) */
  free (s->old);
  if (s->cur) {
    s->old = s->cur;
    s->old_n = s->cur_n;
  } else if (s->new_) {
    s->old = s->new_;
    s->old_n = s->new_n;
    s->new_ = NULL;
  } else {
    s->old_n = DIT_DEFAULT_PROMPT_ROWS;
    s->old = malloc ((size_t) s->old_n * s->dim * sizeof (float));
    if (s->old)
      memcpy (s->old, s->def, (size_t) s->old_n * s->dim * sizeof (float));
  }
  free (s->new_);
  s->cur = NULL;
  s->new_ = rows;
  s->new_n = n;
  s->trans_n = transition_chunks;
  s->trans_j = 0;
  s->epoch++;
  s->changed = 1;
  return 1;
}

void
dit_prompt_schedule_restart (dit_prompt_schedule *s)
{
  s->changed = 1;
  s->epoch++;
}

dit_status
dit_prompt_schedule_next (dit_prompt_schedule *s, dit_tensor *embeds,
    int *changed, float *weight)
{
  const float *rows;
  int n, blended = 0, done = 0;
  *weight = 1.0f;
  if (s->trans_n >= 0 && s->old && s->new_) {
    s->trans_j++;
    *weight = dit_prompt_transition_weight (s->trans_j, s->trans_n);
    dit_prompt_blend (s->old, s->old_n, s->new_, s->new_n, s->dim, *weight,
        s->mix, &n);
    rows = s->mix;
    blended = 1;
    if (*weight >= 1.0f) {
      /* the new prompt is in force from now on */
      free (s->old);
      s->old = NULL;
      s->cur = s->new_;
      s->cur_n = s->new_n;
      s->new_ = NULL;
      s->trans_n = -1;
      done = 1;
    }
  } else if (s->cur) {
    rows = s->cur;
    n = s->cur_n;
  } else {
    rows = s->def;
    n = DIT_DEFAULT_PROMPT_ROWS;
  }
  /* a fixed embedding wins over the text prompt, transitions included */
  if (s->fixed) {
    rows = s->fixed;
    n = s->fixed_n;
    blended = done = 0;
  }
  *changed = s->changed || blended || rows != s->last || n != s->last_n;
  s->changed = 0;
  /* The last mix of a transition is the new prompt (zero rows padding it
   * change nothing): later chunks do not hand it over again. */
  s->last = done ? s->cur : rows;
  s->last_n = done ? s->cur_n : n;
  *embeds = dit_tensor_2d ((void *) rows, DIT_F32, DIT_DEVICE_CPU, n, s->dim);
  return DIT_OK;
}

uint64_t
dit_prompt_schedule_epoch (const dit_prompt_schedule *s)
{
  return s->epoch;
}

int
dit_prompt_schedule_has_text (const dit_prompt_schedule *s)
{
  return s->cur || s->new_;
}

int
dit_prompt_schedule_in_transition (const dit_prompt_schedule *s)
{
  return s->trans_n >= 0;
}

dit_status
dit_prompt_schedule_load (dit_prompt_schedule *s, const char *embeds_path,
    const char *prompt, dit_prompt_encoder *enc)
{
  float *rows = NULL;
  int n = 0;
  if (embeds_path && *embeds_path) {
    dit_status st = dit_stream_load_embeds (embeds_path, s->dim, s->len, &rows,
        &n);
    if (st == DIT_OK)
      st = dit_prompt_schedule_set_fixed (s, rows, n);
    free (rows);
    DIT_TRY (st);
  } else {
    DIT_TRY (dit_prompt_schedule_set_fixed (s, NULL, 0));
    if (prompt && !dit_prompt_schedule_has_text (s)) {
      if (!enc)
        return dit_error (DIT_ERR_STATE, "prompt '%.40s': no text encoder",
            prompt);
      dit_status st = dit_prompt_encode (enc, prompt, &rows, &n);
      if (st != DIT_OK)
        return dit_error_prefix (st, "prompt");
      DIT_TRY (dit_prompt_schedule_set_text (s, rows, n));
    }
  }
  dit_prompt_schedule_restart (s);
  return DIT_OK;
}

int
dit_prompt_schedule_take (dit_prompt_schedule *s, dit_prompt_encoder *enc,
    uint64_t want, int transition_chunks, char *failed, size_t failed_size)
{
  uint64_t id;
  float *rows = NULL;
  int n = 0;
  dit_status st;
  if (failed_size)
    failed[0] = '\0';
  if (!enc || !dit_prompt_encoder_take (enc, &id, &rows, &n, &st, failed,
          failed_size))
    return 0;
  if (id < want || st != DIT_OK) {
    free (rows);                /* superseded, or failed (message kept) */
    if (id < want && failed_size)
      failed[0] = '\0';
    return 0;
  }
  return dit_prompt_schedule_switch (s, rows, n, transition_chunks);
}
