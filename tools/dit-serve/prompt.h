/* prompt — prompt embeddings for dit-serve's POST /prompt.
 *
 * ditgenerate takes a prompt as a safetensors file of text embeddings
 * [rows, text_dim].  Until the text encoder exists, a text prompt maps to a
 * placeholder: DIT_DEFAULT_PROMPT_ROWS rows of Philox normals (scaled by
 * 0.1, like the element's default prompt) whose seed is the 64-bit FNV-1a
 * hash of the UTF-8 text.  The same text always gives the same embedding;
 * different texts give different ones.  It carries no meaning, it only lets
 * the whole control path be exercised; the text encoder replaces it.
 */
#ifndef DIT_SERVE_PROMPT_H
#define DIT_SERVE_PROMPT_H

#include <glib.h>

G_BEGIN_DECLS

/* Text width and maximum rows of a model string (preset or checkpoint). */
gboolean dit_serve_model_text_shape (const gchar * model, gint * text_dim,
    gint * text_len, GError ** error);

/* Check that path holds usable prompt embeddings for that text shape. */
gboolean dit_serve_prompt_check_embeds (const gchar * path, gint text_dim,
    gint text_len, GError ** error);

guint64 dit_serve_prompt_text_seed (const gchar * text);

/* Write the placeholder embedding of text to path. */
gboolean dit_serve_prompt_write_text_embeds (const gchar * text,
    gint text_dim, const gchar * path, GError ** error);

G_END_DECLS
#endif /* DIT_SERVE_PROMPT_H */
