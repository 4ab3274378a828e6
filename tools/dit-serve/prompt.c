/* prompt — text and file prompts for dit-serve (see prompt.h). */
#include "prompt.h"

#include <stdlib.h>

#include "dit_loader.h"
#include "dit_lora.h"
#include "dit_prompt.h"
#include "dit_stream.h"

#include "pipeline.h"

/* The configuration of `model` (NULL or empty: the default model), with
 * the error a client sees when it cannot be resolved. */
static gboolean
resolve_model (const gchar * model, dit_model_config * cfg, GError ** error)
{
  int checkpoint;

  if (model == NULL || *model == '\0')
    model = DIT_DEFAULT_MODEL;
  if (dit_model_config_resolve (model, cfg, &checkpoint) != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "model '%s': %s", model, dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

gboolean
dit_serve_model_text_shape (const gchar * model, gint * text_dim,
    gint * text_len, GError ** error)
{
  dit_model_config cfg;

  if (!resolve_model (model, &cfg, error))
    return FALSE;
  *text_dim = cfg.text_dim;
  *text_len = cfg.text_len;
  return TRUE;
}

gboolean
dit_serve_lora_check (const gchar * model, const gchar * text,
    const gchar * mode, GError ** error)
{
  dit_model_config cfg;
  dit_lora_spec spec;
  dit_lora_mode m;
  uint64_t digest;
  dit_status st;

  if (!resolve_model (model, &cfg, error))
    return FALSE;
  st = dit_lora_mode_parse (mode ? mode : "merge", &m);
  if (st == DIT_OK)
    st = dit_lora_spec_parse (text, &spec);
  if (st == DIT_OK)
    st = dit_lora_spec_digest (&spec, m, &cfg, &digest);
  if (st != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED, "%s",
        dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

gboolean
dit_serve_prompt_check_text (const gchar * text, GError ** error)
{
  dit_prompt_part *parts = NULL;
  int n = 0;

  if (dit_prompt_parse (text, &parts, &n) != DIT_OK) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED, "%s",
        dit_last_error ());
    return FALSE;
  }
  dit_prompt_parts_free (parts, n);
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
