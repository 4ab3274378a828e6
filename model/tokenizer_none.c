/* tokenizer_none — dit_tokenizer.h when libsentencepiece was not found at
 * configure time: cleaning works, loading a model fails with a message
 * that says how to get one (install libsentencepiece-dev, reconfigure).
 * Token ids can still be given directly (dit-text --ids).
 */
#include "dit_tokenizer.h"

#include <stdlib.h>

int
dit_tokenizer_available (void)
{
  return 0;
}

const char *
dit_tokenizer_default_path (void)
{
  const char *env = getenv ("DIT_TOKENIZER");
  return env && *env ? env : DIT_TOKENIZER_SOURCE_PATH;
}

dit_status
dit_tokenizer_load (const char *path, dit_tokenizer **out)
{
  *out = NULL;
  return dit_error (DIT_ERR_UNSUPPORTED, "tokenizer '%s': gst-dit was built "
      "without libsentencepiece (install libsentencepiece-dev and reconfigure)",
      path ? path : dit_tokenizer_default_path ());
}

void
dit_tokenizer_free (dit_tokenizer *t)
{
  (void) t;
}

int
dit_tokenizer_vocab_size (const dit_tokenizer *t)
{
  (void) t;
  return 0;
}

dit_status
dit_tokenizer_encode (const dit_tokenizer *t, const char *text, int32_t *ids,
    int max_ids, int *n_ids)
{
  (void) t; (void) text; (void) ids; (void) max_ids;
  *n_ids = 0;
  return dit_error (DIT_ERR_UNSUPPORTED, "tokenizer: built without libsentencepiece");
}
