/* prompt — checks for dit-serve's POST /prompt.
 *
 * A text prompt goes to ditgenerate's `prompt` property (its umT5 encoder
 * turns it into embeddings off the streaming thread); a safetensors file of
 * precomputed embeddings [rows, text_dim] goes to `prompt-embeds`.  Both
 * are checked here first, with the library's own rules, so a bad prompt is
 * an HTTP error at once rather than a warning from the encoder thread.
 */
#ifndef DIT_SERVE_PROMPT_H
#define DIT_SERVE_PROMPT_H

#include <glib.h>

G_BEGIN_DECLS

/* Text width and maximum rows of a model string (preset or checkpoint). */
gboolean dit_serve_model_text_shape (const gchar * model, gint * text_dim,
    gint * text_len, GError ** error);

/* Check that text is a prompt spec the encoder accepts: one prompt, or a
 * weighted list "a:0.7|b:0.3" (dit_prompt.h) with weights >= 0 summing to
 * more than 0 and at most DIT_PROMPT_MAX_PARTS parts. */
gboolean dit_serve_prompt_check_text (const gchar * text, GError ** error);

/* Check a LoRA list for POST /lora and --lora ("a.safetensors:0.8|..."):
 * its syntax and every file, opened and checked against `model` as
 * ditgenerate will (model/dit_lora.h), in lora-mode `mode` ("merge" or
 * "live"), so a bad list is an HTTP error at once rather than a warning
 * from the element. */
gboolean dit_serve_lora_check (const gchar * model, const gchar * text,
    const gchar * mode, GError ** error);

/* Check that path holds usable prompt embeddings for that text shape. */
gboolean dit_serve_prompt_check_embeds (const gchar * path, gint text_dim,
    gint text_len, GError ** error);

G_END_DECLS
#endif /* DIT_SERVE_PROMPT_H */
