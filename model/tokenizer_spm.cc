/* tokenizer_spm — the C API of dit_tokenizer.h over libsentencepiece.
 *
 * SentencePieceProcessor::Encode is const and thread-safe, so one loaded
 * model serves every encoder thread.  The cleaning (dit_text_clean.c) runs
 * first; SentencePiece then applies the model's own normaliser (nmt_nfkc
 * for umT5), exactly as `spm_encode --output_format=id` does on the cleaned
 * line.  No C++ exception crosses the C boundary: allocation failures
 * become DIT_ERR_NOMEM.
 */
#include "dit_tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

struct dit_tokenizer {
  sentencepiece::SentencePieceProcessor sp;
};

extern "C" int
dit_tokenizer_available (void)
{
  return 1;
}

extern "C" const char *
dit_tokenizer_default_path (void)
{
  const char *env = getenv ("DIT_TOKENIZER");
  if (env && *env)
    return env;
#ifdef DIT_TOKENIZER_INSTALLED_PATH
  if (access (DIT_TOKENIZER_INSTALLED_PATH, R_OK) == 0)
    return DIT_TOKENIZER_INSTALLED_PATH;
#endif
  return DIT_TOKENIZER_SOURCE_PATH;
}

extern "C" dit_status
dit_tokenizer_load (const char *path, dit_tokenizer **out)
{
  *out = NULL;
  if (!path || !*path)
    path = dit_tokenizer_default_path ();
  dit_tokenizer *t = new (std::nothrow) dit_tokenizer;
  if (!t)
    return dit_error (DIT_ERR_NOMEM, "tokenizer: out of memory");
  try {
    auto st = t->sp.Load (path);
    if (!st.ok ()) {
      delete t;
      return dit_error (DIT_ERR_IO, "tokenizer '%s': %s", path,
          st.ToString ().c_str ());
    }
  } catch (const std::bad_alloc &) {
    delete t;
    return dit_error (DIT_ERR_NOMEM, "tokenizer '%s': out of memory", path);
  }
  if (t->sp.pad_id () != DIT_TOKEN_PAD || t->sp.eos_id () != DIT_TOKEN_EOS) {
    int pad = t->sp.pad_id (), eos = t->sp.eos_id ();
    delete t;
    return dit_error (DIT_ERR_INVALID, "tokenizer '%s': pad id %d and EOS id "
        "%d, but a T5 tokenizer has pad 0 and EOS 1", path, pad, eos);
  }
  *out = t;
  return DIT_OK;
}

extern "C" void
dit_tokenizer_free (dit_tokenizer *t)
{
  delete t;
}

extern "C" int
dit_tokenizer_vocab_size (const dit_tokenizer *t)
{
  return t->sp.GetPieceSize ();
}

extern "C" dit_status
dit_tokenizer_encode (const dit_tokenizer *t, const char *text, int32_t *ids,
    int max_ids, int *n_ids)
{
  *n_ids = 0;
  if (max_ids < 1 || max_ids > DIT_TOKENIZER_MAX_IDS)
    return dit_error (DIT_ERR_INVALID, "tokenizer: max_ids %d must be in "
        "[1, %d]", max_ids, DIT_TOKENIZER_MAX_IDS);
  char *clean = NULL;
  DIT_TRY (dit_text_clean (text, &clean));
  std::vector<int> pieces;
  try {
    auto st = t->sp.Encode (clean, &pieces);
    if (!st.ok ()) {
      free (clean);
      return dit_error (DIT_ERR_INVALID, "tokenizer: %s", st.ToString ().c_str ());
    }
  } catch (const std::bad_alloc &) {
    free (clean);
    return dit_error (DIT_ERR_NOMEM, "tokenizer: out of memory");
  }
  free (clean);
  /* HF truncation with add_special_tokens: keep max - 1 pieces, then EOS */
  size_t keep = pieces.size () < (size_t) (max_ids - 1) ? pieces.size ()
      : (size_t) (max_ids - 1);
  for (size_t i = 0; i < keep; i++)
    ids[i] = pieces[i];
  ids[keep] = DIT_TOKEN_EOS;
  *n_ids = (int) keep + 1;
  return DIT_OK;
}
