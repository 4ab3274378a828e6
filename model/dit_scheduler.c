#include "dit_scheduler.h"

#include <math.h>

dit_status
dit_scheduler_init (dit_scheduler *s, double shift)
{
  if (!(shift > 0.0) || !isfinite (shift))
    return dit_error (DIT_ERR_INVALID, "scheduler: shift must be > 0 (got %g)", shift);
  s->shift = shift;
  const float fs = (float) shift;
  for (int i = 0; i < DIT_SCHED_STEPS; i++) {
    /* torch.linspace(1, 0, 1001) in float32 fills the first half forwards
     * from the start and the second half backwards from the end. */
    const float step = (0.0f - 1.0f) / 1000.0f;
    float sigma = i < 1001 / 2 ? 1.0f + step * (float) i
        : 0.0f - step * (float) (1000 - i);
    float shifted = fs * sigma / (1.0f + (fs - 1.0f) * sigma);
    s->sigmas[i] = shifted;
    s->timesteps[i] = shifted * 1000.0f;
  }
  return DIT_OK;
}

int
dit_scheduler_lookup (const dit_scheduler *s, double t)
{
  int best = 0;
  double best_d = fabs ((double) s->timesteps[0] - t);
  for (int i = 1; i < DIT_SCHED_STEPS; i++) {
    double d = fabs ((double) s->timesteps[i] - t);
    if (d < best_d) {
      best_d = d;
      best = i;
    }
  }
  return best;
}

double
dit_scheduler_sigma (const dit_scheduler *s, double t)
{
  return (double) s->sigmas[dit_scheduler_lookup (s, t)];
}

dit_status
dit_scheduler_warp (const dit_scheduler *s, double n, double *t_out,
    double *sigma_out)
{
  if (!(n >= 0.0 && n <= 1000.0) || n != floor (n))
    return dit_error (DIT_ERR_INVALID,
        "scheduler: warped step %g must be an integer in [0, 1000]", n);
  int idx = 1000 - (int) n;
  double t = idx < DIT_SCHED_STEPS ? (double) s->timesteps[idx] : 0.0;
  *t_out = t;
  *sigma_out = dit_scheduler_sigma (s, t);
  return DIT_OK;
}
