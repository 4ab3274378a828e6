/* runner_rollout — a rollout through mesh/dit_runner.h with Stage 0
 * (model/dit_stage0.h) making the contexts as the element does (anchor =
 * latent, no VAE), for the runner tests (test-runner, test-lora-mesh).
 * Include after mesh_check.h (FAIL).
 */
#ifndef DIT_TEST_RUNNER_ROLLOUT_H
#define DIT_TEST_RUNNER_ROLLOUT_H

#include "dit_runner.h"
#include "dit_stage0.h"

/* Stage 0 for gc's latent size into *s0, and the prompt (5 x 64 values)
 * set on r.  Returns 0, or 1 when either failed (*s0 then freed). */
static inline int
runner_rollout_begin (dit_runner *r, const dit_gen_config *gc,
    dit_backend *be, float *prompt, dit_stage0 **s0)
{
  dit_stage0_config sc;
  dit_stage0_config_default (&sc);
  sc.latent_h = gc->latent_h;
  sc.latent_w = gc->latent_w;
  sc.anchor = DIT_ANCHOR_LATENT;
  if (dit_stage0_create (&sc, be, s0) != DIT_OK)
    FAIL ("stage 0: %s", dit_last_error ());
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 5, 64);
  if (dit_runner_set_prompt (r, &pt) != DIT_OK) {
    dit_stage0_free (*s0);
    FAIL ("prompt: %s", dit_last_error ());
  }
  return 0;
}

#endif
