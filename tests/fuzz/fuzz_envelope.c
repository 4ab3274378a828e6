/* fuzz_envelope — libFuzzer target for the strict envelope decoder.
 *
 * Every input is decoded as a whole frame; whatever it decodes to must
 * re-encode (the encoder validates), and a successful decode must only
 * reference bytes inside the input.  Built with clang -fsanitize=fuzzer,
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
  for (int i = 0; i < e.n_tensors; i++) {
    const uint8_t *p = e.tensors[i].data;
    if (p && (p < data || p > data + size))
      abort ();
  }
  unsigned char *frame;
  size_t n;
  if (dit_env_encode (&e, &frame, &n) == DIT_OK) {
    dit_envelope again;
    if (dit_env_decode_frame (frame, n, &again) != DIT_OK)
      abort ();   /* what the encoder accepts, the decoder must accept */
    free (frame);
  }
  return 0;
}
