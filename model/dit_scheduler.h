/* dit_scheduler — the flow-matching σ schedule of the causal Wan models
 * (spec §4.6): FlowMatchScheduler(shift, sigma_min = 0, extra_one_step),
 * set_timesteps(1000, training=True).
 *
 *   σ_i  = linspace(1, 0, 1001)[i], i = 0..999          (float32 grid)
 *   σ'_i = s σ_i / (1 + (s - 1) σ_i),  timesteps_i = 1000 σ'_i   (float32)
 *   σ(t) = σ'_{argmin_i |timesteps_i - t|}              (lookup, first minimum)
 *   warp: step value n -> timesteps_ext[1000 - n] (timesteps with 0 appended)
 *
 * The table is computed in float32 like the reference so that looked-up
 * σ values agree to the last bit; the flow update itself runs in f64.
 */
#ifndef DIT_SCHEDULER_H
#define DIT_SCHEDULER_H

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_SCHED_STEPS 1000

typedef struct dit_scheduler {
  double shift;
  float sigmas[DIT_SCHED_STEPS];     /* σ'_i */
  float timesteps[DIT_SCHED_STEPS];  /* 1000 σ'_i */
} dit_scheduler;

dit_status dit_scheduler_init (dit_scheduler *s, double shift);

/* Index of the table entry nearest to timestep t. */
int dit_scheduler_lookup (const dit_scheduler *s, double t);
double dit_scheduler_sigma (const dit_scheduler *s, double t);

/* Warped step: the timestep value and σ for nominal step n in [0, 1000]. */
dit_status dit_scheduler_warp (const dit_scheduler *s, double n,
    double *t_out, double *sigma_out);

#ifdef __cplusplus
}
#endif
#endif
