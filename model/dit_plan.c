/* dit_plan — the chunk plan (see dit_plan.h). */
#include "dit_plan.h"

#include <math.h>
#include <string.h>

#include "dit_scheduler.h"

dit_status
dit_schedule_make (const dit_gen_config *cfg, dit_schedule *out)
{
  dit_scheduler sched;
  memset (out, 0, sizeof *out);
  if (cfg->num_steps < 1 || cfg->num_steps > DIT_MAX_STEPS)
    return dit_error (DIT_ERR_INVALID, "%d denoising steps; 1..%d are allowed",
        cfg->num_steps, DIT_MAX_STEPS);
  DIT_TRY (dit_scheduler_init (&sched, cfg->shift));
  for (int i = 0; i < cfg->num_steps; i++) {
    if (cfg->warp_steps) {
      DIT_TRY (dit_scheduler_warp (&sched, cfg->steps[i], &out->t[i],
          &out->sigma[i]));
    } else {
      out->t[i] = cfg->steps[i];
      out->sigma[i] = dit_scheduler_sigma (&sched, cfg->steps[i]);
    }
  }
  out->num_steps = cfg->num_steps;
  return DIT_OK;
}

dit_status
dit_chunk_plan_make (const dit_gen_config *cfg, const dit_schedule *sched,
    int64_t chunk_index, int first_step, dit_chunk_plan *p)
{
  memset (p, 0, sizeof *p);
  if (chunk_index < 0)
    return dit_error (DIT_ERR_INVALID, "chunk index %lld is negative",
        (long long) chunk_index);
  if (first_step < 0 || first_step >= sched->num_steps)
    return dit_error (DIT_ERR_INVALID, "first step %d outside 0..%d",
        first_step, sched->num_steps - 1);
  p->do_recompute = chunk_index > 0;
  p->num_steps = sched->num_steps;
  p->first_step = first_step;
  memcpy (p->steps, sched->t, sizeof p->steps);
  memcpy (p->sigmas, sched->sigma, sizeof p->sigmas);
  p->expected_calls = p->do_recompute + p->num_steps - first_step;
  p->seed = cfg->seed;
  p->kv_bias = cfg->kv_bias;
  if (p->do_recompute) {
    p->rope_start = cfg->context_frames;
    p->causal_frames = cfg->frames_per_chunk;
    if (cfg->kv_bias != 1.0f) {
      p->bias_begin = 1;        /* the anchor frame keeps full weight */
      p->bias_end = cfg->context_frames;
    }
  }
  return DIT_OK;
}

dit_status
dit_chunk_plan_check (const dit_chunk_plan *p, int64_t chunk_index,
    const dit_gen_config *cfg, const dit_schedule *sched)
{
  int calls = p->do_recompute + p->num_steps - p->first_step;
  if (p->expected_calls != calls)
    return dit_error (DIT_ERR_STATE, "call-count mismatch: the plan expects "
        "%d generator calls but recompute %d + steps %d..%d make %d",
        p->expected_calls, p->do_recompute, p->first_step, p->num_steps - 1,
        calls);
  if (p->num_steps != sched->num_steps)
    return dit_error (DIT_ERR_STATE, "call-count mismatch: the plan runs %d "
        "steps (%d forwards), this worker's session has %d steps",
        p->num_steps, p->expected_calls, sched->num_steps);
  if (p->first_step < 0 || p->first_step >= p->num_steps)
    return dit_error (DIT_ERR_STATE, "plan first step %d outside 0..%d",
        p->first_step, p->num_steps - 1);
  for (int i = 0; i < p->num_steps; i++)
    if (fabs (p->steps[i] - sched->t[i]) > 1e-9
        || fabs (p->sigmas[i] - sched->sigma[i]) > 1e-12)
      return dit_error (DIT_ERR_STATE, "plan step %d (t %g, sigma %.9g) "
          "differs from this session's (t %g, sigma %.9g)", i, p->steps[i],
          p->sigmas[i], sched->t[i], sched->sigma[i]);
  if (p->seed != cfg->seed)
    return dit_error (DIT_ERR_STATE, "plan seed %llu, this session's %llu",
        (unsigned long long) p->seed, (unsigned long long) cfg->seed);
  if (fabsf (p->kv_bias - cfg->kv_bias) > 1e-7f)
    return dit_error (DIT_ERR_STATE, "plan kv bias %g, this session's %g",
        (double) p->kv_bias, (double) cfg->kv_bias);
  if (p->do_recompute != (chunk_index > 0))
    return dit_error (DIT_ERR_STATE, "plan of chunk %lld %s a recompute",
        (long long) chunk_index, p->do_recompute ? "has" : "lacks");
  if (!p->do_recompute) {
    if (p->rope_start != 0 || p->causal_frames != 0
        || p->bias_end > p->bias_begin)
      return dit_error (DIT_ERR_STATE, "plan without a recompute has RoPE "
          "start %d, causal block %d, bias frames [%d, %d)", p->rope_start,
          p->causal_frames, p->bias_begin, p->bias_end);
    return DIT_OK;
  }
  /* The context tensor and the cache rows are sized by the session. */
  if (p->rope_start != cfg->context_frames)
    return dit_error (DIT_ERR_STATE, "plan RoPE start %d, this session "
        "recomputes %d context frames", p->rope_start, cfg->context_frames);
  if (p->causal_frames < 1)
    return dit_error (DIT_ERR_STATE, "plan recompute has causal block %d "
        "(at least 1 frame)", p->causal_frames);
  if (p->bias_end > p->bias_begin && (p->bias_begin < 0
          || p->bias_end > p->rope_start))
    return dit_error (DIT_ERR_STATE, "plan bias frames [%d, %d) outside the "
        "%d context frames", p->bias_begin, p->bias_end, p->rope_start);
  return DIT_OK;
}
