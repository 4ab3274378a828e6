/* test_overlap — dit_overlap (mesh/dit_runner.h), the stage overlap the
 * element and dit-bench report: per chunk hidden = stage 0 + stage 1 -
 * period clamped at 0; the score is median hidden / min (median stage 0,
 * median stage 1) over the last DIT_OVERLAP_WINDOW chunks.  Expected values
 * are worked out by hand from those definitions.
 */
#include "dit_runner.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>

static int
near (double a, double b)
{
  return fabs (a - b) < 1e-12;
}

int
main (void)
{
  dit_overlap o;

  dit_overlap_reset (&o);
  CHECK (o.score == 0 && o.n == 0, "reset");
  /* 10 + 20 - 25 = 5 hidden; 5 / min (10, 20) */
  dit_overlap_add (&o, 10, 20, 25);
  CHECK (near (o.hidden_ms, 5) && near (o.score, 0.5) && near (o.period_ms, 25),
      "one chunk: hidden %g score %g", o.hidden_ms, o.score);
  /* run one after the other and more: hidden clamps at 0; medians of two
   * are means: hidden 2.5, stage 0 10, stage 1 (20 + 30) / 2 */
  dit_overlap_add (&o, 10, 30, 45);
  CHECK (o.hidden_ms == 0 && near (o.score, 0.25), "two chunks: hidden %g "
      "score %g", o.hidden_ms, o.score);
  /* stage 1 the shorter: 8 + 2 - 8 = 2 hidden, all of stage 1 */
  dit_overlap_add (&o, 8, 2, 8);
  /* medians of three: hidden {5, 0, 2} -> 2; s0 {10, 10, 8} -> 10;
   * s1 {20, 30, 2} -> 20 */
  CHECK (near (o.score, 2.0 / 10.0), "three chunks: score %g", o.score);
  /* a full window of the same chunk replaces the early ones */
  for (int i = 0; i < DIT_OVERLAP_WINDOW; i++)
    dit_overlap_add (&o, 4, 8, 8);
  CHECK (near (o.score, 1.0) && near (o.hidden_ms, 4), "window: score %g",
      o.score);
  CHECK (o.n == DIT_OVERLAP_WINDOW + 3, "count %u", o.n);
  /* nothing timed in stage 0: no score rather than a division by zero */
  dit_overlap_reset (&o);
  dit_overlap_add (&o, 0, 8, 8);
  CHECK (o.score == 0, "zero stage 0: score %g", o.score);

  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-overlap: ok\n");
  return failures ? 1 : 0;
}
