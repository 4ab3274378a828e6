/* dit_prompt — text prompts to DiT context embeddings, off the caller's
 * thread: weighted prompt lists, a background encoder, and the linear
 * old -> new blend used for prompt transitions.
 *
 * Prompt specs:
 *   "a koi pond at dawn"           one prompt, taken verbatim
 *   "a koi pond:0.7|a red fox:0.3" a weighted list: parts split at '|', a
 *                                  part ending in ":NUMBER" has that
 *                                  weight (default 1); weights >= 0 with a
 *                                  positive sum are normalised to sum 1
 * A single prompt never has a weight parsed off, so "16:9 framing" stays
 * intact; inside a list, end such a part with ":1".  Each part is encoded
 * on its own (tokenize, umT5) and the embeddings are summed with the
 * weights, rows past a part's length counting as zero — the same as
 * blending the zero-padded 512-row contexts the DiT sees.
 *
 * Transitions: chunk j = 1..N after a new embedding is ready uses
 * (1 - j/N) * old + (j/N) * new (same zero-padding rule); N = 0 switches at
 * once.  dit_prompt_blend computes one such mix.
 *
 * The encoder runs on the CPU backend in f32 on its own thread; submit
 * replaces any request not started yet, take never blocks.
 */
#ifndef DIT_PROMPT_H
#define DIT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_PROMPT_MAX_PARTS 8

typedef struct dit_prompt_part {
  char *text;      /* owned */
  double weight;   /* normalised */
} dit_prompt_part;

/* Parse a spec into parts (free with dit_prompt_parts_free). */
dit_status dit_prompt_parse (const char *spec, dit_prompt_part **parts, int *n);
void dit_prompt_parts_free (dit_prompt_part *parts, int n);

/* out [max(na, nb), dim] = (1 - wb) * a + wb * b, missing rows = 0. */
void dit_prompt_blend (const float *a, int na, const float *b, int nb, int dim,
    float wb, float *out, int *nout);

/* Weight of the new embedding for chunk j (1-based) of an N-chunk
 * transition: j / N, 1 when N <= 0 or j >= N. */
float dit_prompt_transition_weight (int j, int n);

typedef struct dit_prompt_encoder dit_prompt_encoder;

/* text_model: umT5 preset or checkpoint (NULL or "" =
 * DIT_DEFAULT_TEXT_MODEL of dit_loader.h); tokenizer: SentencePiece model
 * (NULL = the default); seed: synthetic weights; out_dim: the DiT's
 * text_dim (the encoder's d_model must equal it).  Starts the thread. */
dit_status dit_prompt_encoder_create (const char *text_model,
    const char *tokenizer, uint64_t seed, int out_dim, dit_prompt_encoder **out);
void dit_prompt_encoder_free (dit_prompt_encoder *e);

/* Encode a spec now, on this thread: malloc'd rows [*n, out_dim]. */
dit_status dit_prompt_encode (dit_prompt_encoder *e, const char *spec,
    float **rows, int *n);

/* Queue a spec for the thread; returns its request id (1, 2, ...). */
uint64_t dit_prompt_encoder_submit (dit_prompt_encoder *e, const char *spec);

/* A finished request not taken yet?  Returns 0 when none; else 1 with
 * *id, and either *rows and *n (caller frees rows) and DIT_OK in *status, or
 * the error status with its message in err. */
int dit_prompt_encoder_take (dit_prompt_encoder *e, uint64_t *id, float **rows,
    int *n, dit_status *status, char *err, size_t errsize);

/* Block until request `id` (or a later one) has finished. */
void dit_prompt_encoder_wait (dit_prompt_encoder *e, uint64_t id);

#ifdef __cplusplus
}
#endif
#endif
