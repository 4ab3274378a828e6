/* dit_prompt_schedule — which prompt embedding each chunk uses.
 *
 * Three sources, in this order of precedence:
 *   1. a fixed embedding (a prompt-embeds file): while set, text prompts
 *      that arrive are dropped;
 *   2. the text prompt: the embedding in force, and after a new one arrives
 *      an N-chunk transition from the old to the new (chunk j = 1..N uses
 *      (1 - j/N) old + (j/N) new, model/dit_prompt.h), after which the new
 *      one is in force; N = 0 switches at once;
 *   3. the seeded default rows of model/dit_stream.h.
 * The prompt epoch counts the changes a consumer can see in the chunks'
 * metadata: every accepted switch and every restart (the caller restarts
 * after setting a source, and for a new generator that must be given the
 * prompt again).
 *
 * dit_prompt_schedule_next is called once per chunk, before the chunk runs:
 * it advances a transition by one chunk and says whether the embedding
 * differs from the one the generator has (then the caller hands it over).
 * Whether a prompt change also restarts the KV cache is the rule of
 * dit_prompt_resets_cache.  Host f32 rows throughout; no locking (the
 * element's streaming thread owns it).
 */
#ifndef DIT_PROMPT_SCHEDULE_H
#define DIT_PROMPT_SCHEDULE_H

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* When a prompt change restarts the KV cache (a new cache epoch). */
typedef enum dit_prompt_reset {
  DIT_PROMPT_RESET_AUTO = 0,    /* scope: with video input, unless blending */
  DIT_PROMPT_RESET_ALWAYS = 1,
  DIT_PROMPT_RESET_NEVER = 2,
} dit_prompt_reset;

/* video_input: the generator restyles input latents (not text-to-video);
 * blending: the change starts a transition of at least one chunk. */
int dit_prompt_resets_cache (dit_prompt_reset mode, int video_input,
    int blending);

typedef struct dit_prompt_schedule dit_prompt_schedule;

/* text_dim: columns of an embedding; text_len: its most rows. */
dit_status dit_prompt_schedule_create (int text_dim, int text_len,
    dit_prompt_schedule **out);
void dit_prompt_schedule_free (dit_prompt_schedule *s);

/* The fixed embedding [n, text_dim] (copied), or none (NULL). */
dit_status dit_prompt_schedule_set_fixed (dit_prompt_schedule *s,
    const float *rows, int n);
/* The text prompt's embedding in force, taking ownership of malloc'd rows;
 * no transition (the start of a stream). */
dit_status dit_prompt_schedule_set_text (dit_prompt_schedule *s, float *rows,
    int n);
/* A new text embedding (malloc'd rows, taken): an N-chunk transition from
 * the one in force starts with the next chunk.  Returns 0 (and frees the
 * rows) when a fixed embedding wins, else 1. */
int dit_prompt_schedule_switch (dit_prompt_schedule *s, float *rows, int n,
    int transition_chunks);
/* The generator must be given the embedding again (a new one was made):
 * the next dit_prompt_schedule_next reports a change and the epoch moves. */
void dit_prompt_schedule_restart (dit_prompt_schedule *s);

/* This chunk's embedding as a host view [n, text_dim], valid until the next
 * call; *changed: differs from what the last call gave (or a restart);
 * *weight: the new prompt's share (1 outside a transition). */
dit_status dit_prompt_schedule_next (dit_prompt_schedule *s,
    dit_tensor *embeds, int *changed, float *weight);

/* ---- with the text encoder (model/dit_prompt.h) ---- */

struct dit_prompt_encoder;
/* The sources at the start of a stream or after a prompt-embeds change:
 * the file `embeds_path` (a safetensors embedding) is the fixed embedding
 * when set; else none is fixed and the text `prompt`, when given and no
 * text embedding is known yet, is encoded now with `enc`.  Then a restart.
 * Messages name the file or the prompt. */
dit_status dit_prompt_schedule_load (dit_prompt_schedule *s,
    const char *embeds_path, const char *prompt,
    struct dit_prompt_encoder *enc);
/* A finished encoding of `enc` (never waits): one older than request
 * `want` is dropped, a failed one leaves its message in `failed` (the
 * caller warns and keeps the prompt), an accepted one switches with an
 * N-chunk transition.  Returns 1 when a switch was accepted. */
int dit_prompt_schedule_take (dit_prompt_schedule *s,
    struct dit_prompt_encoder *enc, uint64_t want, int transition_chunks,
    char *failed, size_t failed_size);

uint64_t dit_prompt_schedule_epoch (const dit_prompt_schedule *s);
/* Whether a text embedding is known (set or switched to). */
int dit_prompt_schedule_has_text (const dit_prompt_schedule *s);
int dit_prompt_schedule_in_transition (const dit_prompt_schedule *s);

#ifdef __cplusplus
}
#endif
#endif
