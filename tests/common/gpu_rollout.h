/* gpu_rollout — the generator rollouts of the CUDA model tests
 * (test-cuda-model, -lora, -graph): the chunks of a rollout run one after
 * the other on host tensors, and the device's weights widened to f32 on
 * the CPU for the reference.
 */
#ifndef DIT_TEST_GPU_ROLLOUT_H
#define DIT_TEST_GPU_ROLLOUT_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dit_config.h"
#include "dit_generator.h"
#include "dit_weights.h"
#include "gpu_check.h"

/* The model config of `preset`, cut to its first `layers` layers unless
 * that is 0 (the 2-layer slices of the 14B shape). */
static inline void
model_preset (const char *preset, int layers, dit_model_config *cfg)
{
  die_if (dit_model_config_preset (preset, cfg), "preset");
  if (layers)
    cfg->num_layers = layers;
}

/* Chunks 0 .. chunks - 1 on g (made with gc), each k > 0 with the output
 * of chunk k - 1 as its context.  noise: gc->num_steps host f32 tensors
 * [16, F, h, w] per chunk, chunk after chunk, or NULL for the generator's
 * own Philox noise.  out[k] receives chunk k's output (malloc'd). */
static inline void
run_chunks (dit_generator *g, const dit_gen_config *gc, int chunks,
    float *const *noise, float **out)
{
  int64_t shape[4] = { 16, gc->frames_per_chunk, gc->latent_h, gc->latent_w };
  size_t n = (size_t) 16 * gc->frames_per_chunk * gc->latent_h * gc->latent_w;
  dit_tensor nt[DIT_MAX_STEPS];
  for (int k = 0; k < chunks; k++) {
    dit_chunk_request req = { .chunk_index = k };
    dit_tensor ctx;
    if (k > 0) {
      ctx = dit_tensor_make (out[k - 1], DIT_F32, DIT_DEVICE_CPU, 4, shape);
      req.context = &ctx;
    }
    for (int s = 0; noise && s < gc->num_steps; s++) {
      nt[s] = dit_tensor_make (noise[k * gc->num_steps + s], DIT_F32,
          DIT_DEVICE_CPU, 4, shape);
      req.noise[s] = &nt[s];
    }
    out[k] = malloc (n * sizeof (float));
    dit_tensor o = dit_tensor_make (out[k], DIT_F32, DIT_DEVICE_CPU, 4, shape);
    die_if (dit_generator_run_chunk (g, &req, &o, NULL), "chunk");
  }
}

/* The values of w widened to f32 on the CPU backend, through a file
 * /tmp/PROGRAM-PID-TAG.safetensors (removed again), so that the CPU
 * reference computes on exactly what the device holds. */
static inline dit_weights *
cpu_copy_f32 (const dit_weights *w, const char *tag)
{
  char path[256];
  snprintf (path, sizeof path, "/tmp/%s-%d-%s.safetensors",
      program_invocation_short_name, (int) getpid (), tag);
  die_if (dit_weights_save (w, path, w->dtype, NULL), "save weights");
  dit_weights *c;
  die_if (dit_weights_load (path, w->specs, w->count, NULL, DIT_F32,
      dit_backend_cpu (), &c), "load weights on the cpu");
  unlink (path);
  return c;
}

#endif
