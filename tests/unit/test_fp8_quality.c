/* test_fp8_quality — the FP8 quality gate on the CPU reference path: a
 * 3-chunk rollout in bf16 and fp8 against f32 (tests/common/fp8_gate.h).
 *
 *   test-fp8-quality          the tiny model, 64x64 pixels (CI)
 *   test-fp8-quality slice    2 layers of the wan-14b shape at 32x32 pixels
 *                             (by hand, not in CI: ~6 min of CPU)
 *
 * Limits on each chunk's final latents against f32, set from the measured
 * values (docs/precision.md) with a margin of about 3x:
 *                 measured (NMSE)       limit
 *   tiny  bf16    1.0-1.1e-5            3e-5
 *   tiny  fp8     1.2-1.3e-4            4e-4    cos >= 0.9998 for both
 *   slice bf16    1.1e-5                4e-5
 *   slice fp8     1.5-1.6e-4            5e-4
 * The fp8 / bf16 ratio (12-14x here) is printed: issue 14 asks for at most
 * 4x on the 14B slice, which e4m3 on all eight linear layers does not reach
 * (docs/precision.md says why); tests/gpu/test_cuda_fp8.c measures it at
 * the real shape.
 */
#include "fp8_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gate_limits {
  double bf16, fp8, cos;
} gate_limits;

static const gate_limits tiny_limits = { 3e-5, 4e-4, 0.9998 };
static const gate_limits slice_limits = { 4e-5, 5e-4, 0.9998 };

int
main (int argc, char **argv)
{
  int slice = argc > 1 && strcmp (argv[1], "slice") == 0;
  const gate_limits *lim = slice ? &slice_limits : &tiny_limits;
  /* under valgrind (meson test --setup valgrind) two chunks: the same code
   * (the second chunk runs with a context) and the same numbers for them,
   * in two thirds of the time */
  const int valgrind = getenv ("DIT_VALGRIND") != NULL;
  fp8_gate_case c = { .label = slice ? "wan-14b/2" : "tiny",
    .chunks = valgrind ? 2 : 3, .wseed = 0 };
  dit_model_config_preset (slice ? "wan-14b" : "tiny", &c.cfg);
  if (slice)
    c.cfg.num_layers = 2;
  c.latent_h = c.latent_w = slice ? 4 : 8;
  fp8_gate_result r;
  if (fp8_gate_run (dit_backend_cpu (), &c, &r) != DIT_OK) {
    fprintf (stderr, "FAIL: %s\n", dit_last_error ());
    return 1;
  }
  int fail = 0;
  for (int k = 0; k < c.chunks; k++) {
    printf ("%s chunk %d fp8/bf16 NMSE ratio %.1f\n", c.label, k,
        r.nmse[1][k] / r.nmse[0][k]);
    if (!(r.nmse[0][k] <= lim->bf16) || !(r.nmse[1][k] <= lim->fp8)
        || !(r.cos[0][k] >= lim->cos) || !(r.cos[1][k] >= lim->cos)) {
      fprintf (stderr, "FAIL chunk %d: bf16 NMSE %.3e cos %.6f, fp8 NMSE %.3e "
          "cos %.6f (limits %.0e, %.0e, cos %.4f)\n", k, r.nmse[0][k],
          r.cos[0][k], r.nmse[1][k], r.cos[1][k], lim->bf16, lim->fp8, lim->cos);
      fail = 1;
    }
  }
  printf ("%s\n", fail ? "FAIL" : "OK");
  return fail;
}
