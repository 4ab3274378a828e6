/* prompt — text and file prompts for dit-serve (see prompt.h). */
#include "prompt.h"

#include <stdlib.h>

#include "dit_loader.h"
#include "dit_philox.h"
#include "dit_stream.h"
#include "safetensors.h"

#include "pipeline.h"

gboolean
dit_serve_model_text_shape (const gchar * model, gint * text_dim,
    gint * text_len, GError ** error)
{
  dit_model_config cfg;
  dit_status st;

  if (model == NULL || *model == '\0')
    model = "tiny";
  if (dit_model_is_preset (model))
    st = dit_model_config_preset (model, &cfg);
  else
    st = dit_checkpoint_detect_preset (model, &cfg);
  if (st != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "model '%s': %s", model, dit_last_error ());
    return FALSE;
  }
  *text_dim = cfg.text_dim;
  *text_len = cfg.text_len;
  return TRUE;
}

gboolean
dit_serve_prompt_check_embeds (const gchar * path, gint text_dim,
    gint text_len, GError ** error)
{
  float *rows = NULL;
  int n = 0;

  if (dit_stream_load_embeds (path, text_dim, text_len, &rows, &n) != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED, "%s",
        dit_last_error ());
    return FALSE;
  }
  free (rows);
  return TRUE;
}

guint64
dit_serve_prompt_text_seed (const gchar * text)
{
  guint64 h = 0xcbf29ce484222325ull;

  for (const guchar * c = (const guchar *) text; *c; c++) {
    h ^= *c;
    h *= 0x100000001b3ull;
  }
  return h;
}

gboolean
dit_serve_prompt_write_text_embeds (const gchar * text, gint text_dim,
    const gchar * path, GError ** error)
{
  /* Stream id "prompt" in ASCII, as the element's default prompt uses. */
  const guint64 stream = 0x70726f6d7074ull;
  const guint64 seed = dit_serve_prompt_text_seed (text);
  const gint rows = DIT_DEFAULT_PROMPT_ROWS;
  const int64_t shape[2] = { rows, text_dim };
  gchar seed_hex[24];
  const char *const metadata[] = { "gst-dit.placeholder-seed", seed_hex, NULL };
  dit_st_write_tensor t;
  gfloat *data;
  dit_status st;

  g_snprintf (seed_hex, sizeof seed_hex, "%016" G_GINT64_MODIFIER "x", seed);
  data = g_new (gfloat, (gsize) rows * text_dim);
  for (gint64 i = 0; i < (gint64) rows * text_dim; i++)
    data[i] = 0.1f * dit_philox_normal (seed, stream, (guint64) i);
  t.name = "prompt_embeds";
  t.dtype = DIT_F32;
  t.ndim = 2;
  t.shape = shape;
  t.data = data;
  st = dit_safetensors_write (path, &t, 1, metadata);
  g_free (data);
  if (st != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED, "%s",
        dit_last_error ());
    return FALSE;
  }
  return TRUE;
}
