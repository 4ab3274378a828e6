/* dit_tokenizer — umT5 prompt tokenization: Wan's text cleaning, then a
 * SentencePiece unigram model (libsentencepiece behind a C API), EOS
 * appended, truncated to 512 ids (spec §6.2).
 *
 * Cleaning (Wan's `whitespace` mode, done before SentencePiece):
 *  1. HTML unescape, twice (so "&amp;amp;" becomes "&"): numeric references
 *     (&#233; &#xE9;, with or without ';', with html.unescape's rules: 0 or
 *     a surrogate or > U+10FFFF -> U+FFFD, 0x80-0x9F through Windows-1252,
 *     control and non-characters dropped) and the named entities listed in
 *     dit_text_clean.c (the common ones: amp lt gt quot apos nbsp copy reg
 *     trade hellip mdash ndash lsquo rsquo ldquo rdquo laquo raquo middot
 *     deg times divide euro pound yen cent sect para bull and the Latin-1
 *     letters, and the upper-case AMP LT GT QUOT COPY REG); other names are
 *     kept as written.
 *  2. Every run of whitespace (Python's str.isspace set, incl. NBSP and the
 *     U+2000 spaces) becomes one space; leading/trailing whitespace goes.
 * Not reproduced: ftfy.fix_text (mojibake repair, quote/ligature fixes);
 * prompts that need it tokenize as written.
 *
 * Ids: SentencePiece ids of the cleaned text (the same as the `spm_encode`
 * tool and the slow HF T5Tokenizer), then EOS (id 1).  More than 511 pieces
 * are cut to the first 511 and EOS still ends the sequence, as HF
 * truncation=True with add_special_tokens does.  The empty prompt is [EOS].
 * The embedding rows are [0, n_ids): padding (id 0) exists only in the
 * DiT's zero-padded context, never here.
 *
 * Invalid UTF-8 in a prompt is an error naming the byte offset (no silent
 * replacement).  Loaded models must be T5-style (pad 0, EOS 1).
 */
#ifndef DIT_TOKENIZER_H
#define DIT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_TOKENIZER_MAX_IDS 512
#define DIT_TOKEN_PAD 0
#define DIT_TOKEN_EOS 1

typedef struct dit_tokenizer dit_tokenizer;

/* 1 when the library was built with libsentencepiece, else 0 (load then
 * fails with DIT_ERR_UNSUPPORTED). */
int dit_tokenizer_available (void);

/* The tokenizer model used when none is given: $DIT_TOKENIZER if set, else
 * the installed tiny model, else the one in the source tree. */
const char *dit_tokenizer_default_path (void);

dit_status dit_tokenizer_load (const char *path, dit_tokenizer **out);
void dit_tokenizer_free (dit_tokenizer *t);

/* Pieces in the model (ids are < this). */
int dit_tokenizer_vocab_size (const dit_tokenizer *t);

/* Check UTF-8; DIT_ERR_INVALID naming the first bad byte's offset. */
dit_status dit_text_check_utf8 (const char *text, size_t len);

/* Wan's cleaning of a NUL-terminated UTF-8 prompt (see above) into a
 * malloc'd string (*out, free with free()). */
dit_status dit_text_clean (const char *text, char **out);

/* Clean + tokenize + EOS + truncate into ids[0, *n_ids), at most max_ids
 * (<= 512; less truncates further, still ending with EOS). Thread-safe. */
dit_status dit_tokenizer_encode (const dit_tokenizer *t, const char *text,
    int32_t *ids, int max_ids, int *n_ids);

#ifdef __cplusplus
}
#endif
#endif
