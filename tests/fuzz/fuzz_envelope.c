/* fuzz_envelope — libFuzzer target for the strict envelope decoder.
 *
 * Every input is decoded as a whole frame; whatever it decodes to must
 * re-encode (the encoder validates) to a frame that decodes to the same
 * tensor specs, and a decode never points into the input (frames carry
 * tensor specs only since protocol version 3).  Built with clang -fsanitize=fuzzer,
 * address, undefined (tests/mesh/meson.build) and run over the seed
 * corpus in tests/fuzz/corpus for a bounded time by the 'mesh' suite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  dit_envelope e;
  if (dit_env_decode_frame (data, size, &e) != DIT_OK)
    return 0;
  for (int i = 0; i < e.n_tensors; i++)
    if (e.tensors[i].data)
      abort ();
  unsigned char *frame;
  size_t n;
  if (dit_env_encode (&e, &frame, &n) == DIT_OK) {
    dit_envelope again;
    if (dit_env_decode_frame (frame, n, &again) != DIT_OK)
      abort ();   /* what the encoder accepts, the decoder must accept */
    if (again.n_tensors != e.n_tensors)
      abort ();
    for (int i = 0; i < e.n_tensors; i++) {
      const dit_env_tensor *a = &e.tensors[i], *b = &again.tensors[i];
      if (strcmp (a->name, b->name) != 0 || a->dtype != b->dtype
          || a->ndim != b->ndim
          || memcmp (a->shape, b->shape, (size_t) a->ndim * sizeof (int64_t)) != 0)
        abort ();
    }
    free (frame);
  }
  return 0;
}
