/* dit_plan — the generation config and the plan of one chunk, derived from
 * it in one place.
 *
 * A chunk's plan is everything the generator needs besides its tensors:
 * whether the KV cache is recomputed from context latents first (and the
 * block-causal block of that recompute), the steps with the timestep fed
 * to the network and σ of each, the first step (video-to-video strength),
 * the seed of the noise, the RoPE frame of the chunk's first frame (= the
 * KV-cache frame it is written at) and which key frames get log(kv_bias)
 * added.  dit_chunk_plan_make is the only code that derives it (spec
 * §4.7d, scope's krea_realtime_video):
 *
 *   chunk 0:   no recompute, RoPE from frame 0, no bias;
 *   chunk k>0: recompute C context frames (block-causal, blocks of F),
 *              RoPE from frame C, log(kv_bias) on key frames [1, C) (the
 *              context except the anchor) unless kv_bias = 1.
 *
 * The in-process generator runs the plan it made (dit_generator_run_plan);
 * the mesh sends it in the INFER envelope (mesh/envelope.h carries this
 * struct) and a worker checks it against its session with
 * dit_chunk_plan_check instead of deriving its own.
 */
#ifndef DIT_PLAN_H
#define DIT_PLAN_H

#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_MAX_STEPS 16

typedef struct dit_gen_config {
  int latent_h, latent_w;     /* latent grid (pixels / 8); multiples of 2 */
  int frames_per_chunk;       /* F, default 3 */
  int context_frames;         /* C, default 3 (KV recompute) */
  int kv_window;              /* C + F, default 6 */
  float kv_bias;              /* default 0.3; 1.0 = off */
  int num_steps;              /* default 4 */
  double steps[DIT_MAX_STEPS];/* default 1000, 750, 500, 250 */
  double shift;               /* default 5.0 */
  int warp_steps;             /* 0 (scope default): look steps up as given */
  uint64_t seed;              /* default 42 */
  dit_dtype dtype;            /* activation/weight dtype: f32 (tests) or bf16 */
  int fp8;                    /* 1: the blocks' linear layers are FP8 GEMMs
                               * (precision fp8, dit_config.h); the weights
                               * must have been loaded that way */
} dit_gen_config;

/* The timestep fed to the network and σ of every step of a config (the
 * shifted table lookup, or the warp: spec §4.6). */
typedef struct dit_schedule {
  int num_steps;
  double t[DIT_MAX_STEPS];
  double sigma[DIT_MAX_STEPS];
} dit_schedule;

dit_status dit_schedule_make (const dit_gen_config *cfg, dit_schedule *out);

/* The field names are the wire's (docs/protocol.md, INFER). */
typedef struct dit_chunk_plan {
  int do_recompute;     /* rebuild the KV cache from context latents first */
  int num_steps;
  int first_step;       /* steps before it are skipped (strength) */
  double steps[DIT_MAX_STEPS];   /* timesteps fed to the network */
  double sigmas[DIT_MAX_STEPS];
  int expected_calls;   /* forwards: do_recompute + num_steps - first_step */
  uint64_t seed;
  int rope_start;       /* RoPE frame of the chunk's first frame; also the
                           context frames recomputed and the chunk's first
                           KV-cache frame */
  float kv_bias;
  int causal_frames;    /* recompute: block-causal block in frames; 0 = none */
  int bias_begin, bias_end;  /* key frames [begin, end) get log(kv_bias);
                                empty = no bias */
} dit_chunk_plan;

/* The plan of chunk `chunk_index` starting at step `first_step`. */
dit_status dit_chunk_plan_make (const dit_gen_config *cfg,
    const dit_schedule *sched, int64_t chunk_index, int first_step,
    dit_chunk_plan *out);

/* A received plan, before it runs: consistent in itself (call count,
 * ranges) and in agreement with this session's config and schedule
 * (steps, σ, seed, bias, the context frames its buffers hold).  The
 * message names the field; a plan whose forwards this session would not
 * make says "call-count mismatch". */
dit_status dit_chunk_plan_check (const dit_chunk_plan *p, int64_t chunk_index,
    const dit_gen_config *cfg, const dit_schedule *sched);

#ifdef __cplusplus
}
#endif
#endif
