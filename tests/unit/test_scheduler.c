/* Flow-matching schedule against spec §4.6 / §8 reference values:
 * shifted table (s = 5) entries, unwarped lookups of scope's default steps,
 * the warped Self-Forcing list, and argument errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dit_scheduler.h"

static int failures;

static void
check_close (const char *what, double got, double want, double tol)
{
  int ok = fabs (got - want) <= tol;
  printf ("%-34s got %.7f want %.7f %s\n", what, got, want, ok ? "ok" : "FAIL");
  if (!ok)
    failures++;
}

static void
check_int (const char *what, int got, int want)
{
  printf ("%-34s got %d want %d %s\n", what, got, want, got == want ? "ok" : "FAIL");
  if (got != want)
    failures++;
}

int
main (void)
{
  dit_scheduler s;
  double t, sigma;

  if (dit_scheduler_init (&s, 5.0) != DIT_OK)
    return 1;
  /* spec §8 */
  check_close ("timesteps[250]", s.timesteps[250], 937.5, 1e-4);
  check_close ("timesteps[500]", s.timesteps[500], 833.33331, 1e-4);
  check_close ("timesteps[750]", s.timesteps[750], 625.0, 1e-4);
  check_close ("timesteps[999]", s.timesteps[999], 4.98008, 1e-5);
  check_close ("sigma[999]", s.sigmas[999], 0.0049801, 1e-7);
  check_close ("timesteps[0]", s.timesteps[0], 1000.0, 0);
  /* spec §4.6: unwarped integer steps (scope's default) */
  check_int ("lookup(1000)", dit_scheduler_lookup (&s, 1000), 0);
  check_close ("sigma(1000)", dit_scheduler_sigma (&s, 1000), 1.0, 0);
  check_int ("lookup(750)", dit_scheduler_lookup (&s, 750), 625);
  check_close ("sigma(750)", dit_scheduler_sigma (&s, 750), 0.7500001, 1e-7);
  check_int ("lookup(500)", dit_scheduler_lookup (&s, 500), 833);
  check_close ("sigma(500)", dit_scheduler_sigma (&s, 500), 0.5005996, 1e-7);
  check_int ("lookup(250)", dit_scheduler_lookup (&s, 250), 937);
  check_close ("sigma(250)", dit_scheduler_sigma (&s, 250), 0.2515974, 1e-7);
  check_int ("lookup(0)", dit_scheduler_lookup (&s, 0), 999);
  check_close ("sigma(0)", dit_scheduler_sigma (&s, 0), 0.0049801, 1e-7);
  /* spec §4.6 warped table */
  dit_scheduler_warp (&s, 750, &t, &sigma);
  check_close ("warp(750) t", t, 937.5, 1e-4);
  check_close ("warp(750) sigma", sigma, 0.9375, 1e-6);
  dit_scheduler_warp (&s, 500, &t, &sigma);
  check_close ("warp(500) t", t, 833.3333, 1e-3);
  dit_scheduler_warp (&s, 250, &t, &sigma);
  check_close ("warp(250) t", t, 625.0, 1e-4);
  check_close ("warp(250) sigma", sigma, 0.625, 1e-6);
  dit_scheduler_warp (&s, 0, &t, &sigma);
  check_close ("warp(0) t", t, 0.0, 0);
  /* errors */
  if (dit_scheduler_init (&s, 0.0) != DIT_ERR_INVALID
      || !strstr (dit_last_error (), "shift")) {
    printf ("shift 0 not rejected: FAIL\n");
    failures++;
  }
  if (dit_scheduler_warp (&s, 1200, &t, &sigma) != DIT_ERR_INVALID) {
    printf ("warp 1200 not rejected: FAIL\n");
    failures++;
  }
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}
