/* dit_generator — the streaming causal DiT generator: one call per chunk.
 *
 * Algorithm (spec §4.7d, scope's krea_realtime_video operating point):
 *   chunk 0:   x = noise (or init latents noised to the first σ); for each
 *              step s: v = DiT(x, t_s, RoPE frames 0..F-1, keys = the chunk);
 *              x0 = x - σ_s v; re-noise to σ_{s+1} with fresh noise.
 *   chunk k>0: recompute — zero the KV cache, run the C context latents
 *              (supplied by the caller: [anchor, latent n-2, latent n-1] at the
 *              default C = 3) at t = 0 with RoPE frames 0..C-1, block-causal
 *              with blocks of F frames, writing K/V rows [0, C*fs); then the
 *              denoising steps with RoPE frames C..C+F-1 against the window
 *              [0, C*fs + L), log(kv_bias) added to keys [fs, C*fs) (context
 *              frames except the anchor).  No padding keys.
 *   The chunk's result is the x0 of the last step.
 *
 * Noise: stream (chunk_index, step) of Philox under `seed` (see
 * dit_generator_noise_stream), or caller-supplied tensors.  The cross-
 * attention K/V are computed once per prompt (dit_generator_set_prompt).
 *
 * Latent tensors at this API are [16, F, h, w] (channels first, like the
 * reference), any backend device; the generator copies them in and out.
 */
#ifndef DIT_GENERATOR_H
#define DIT_GENERATOR_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_plan.h"
#include "dit_weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dit_gen_config and DIT_MAX_STEPS: model/dit_plan.h. */

/* Scope defaults at 320x576 (latent 40x72). */
void dit_gen_config_default (dit_gen_config *cfg);
dit_status dit_gen_config_validate (const dit_gen_config *cfg,
    const dit_model_config *model);
/* "1000,750,500,250" (up to DIT_MAX_STEPS values in [0, 1000]) into
 * cfg->steps and cfg->num_steps; the message names the string. */
dit_status dit_gen_config_parse_steps (dit_gen_config *cfg, const char *steps);

typedef struct dit_generator dit_generator;

dit_status dit_generator_create (const dit_model_config *model,
    const dit_gen_config *cfg, const dit_weights *weights, dit_backend *be,
    dit_generator **out);
/* One tensor-parallel rank of the generator: the same chunk loop on every
 * rank (noise, flow updates and the residual stream are replicated and
 * identical), the model sharded as dit_model_create_tp says; weights are
 * this rank's shard.  tp NULL = dit_generator_create. */
struct dit_model_tp;
dit_status dit_generator_create_tp (const dit_model_config *model,
    const dit_gen_config *cfg, const dit_weights *weights, dit_backend *be,
    const struct dit_model_tp *tp, dit_generator **out);
void dit_generator_free (dit_generator *g);

/* Text embeddings [rows <= text_len, text_dim] (any dtype/device); padded
 * with zero rows to text_len.  Recomputes the cross-attention K/V cache. */
dit_status dit_generator_set_prompt (dit_generator *g, const dit_tensor *embeds);

typedef struct dit_chunk_request {
  int64_t chunk_index;            /* 0 = first chunk (no recompute) */
  const dit_tensor *context;      /* [16, C, h, w]; required for chunk > 0 */
  const dit_tensor *init_latents; /* [16, F, h, w] or NULL (pure noise) */
  /* Caller-supplied noise [16, F, h, w] for step s (s = 0 initial noise,
   * s >= 1 re-noise before step s); NULL entries use Philox. */
  const dit_tensor *noise[DIT_MAX_STEPS];
  int first_step;                 /* skip steps < first_step (video-to-video strength) */
} dit_chunk_request;

typedef struct dit_chunk_timing {
  double recompute_ms;
  double denoise_ms;   /* all steps */
  double total_ms;
} dit_chunk_timing;

/* Run one chunk; writes x0 [16, F, h, w] into `out` (any device/dtype).
 * = dit_chunk_plan_make for (req->chunk_index, req->first_step), then
 * dit_generator_run_plan. */
dit_status dit_generator_run_chunk (dit_generator *g,
    const dit_chunk_request *req, dit_tensor *out, dit_chunk_timing *timing);

/* Run a chunk as `plan` says (made by dit_chunk_plan_make, here or on rank 0
 * of a mesh; the caller has checked a received one with
 * dit_chunk_plan_check).  req supplies the tensors and the chunk index of
 * the noise streams; its first_step is the plan's. */
dit_status dit_generator_run_plan (dit_generator *g,
    const dit_chunk_plan *plan, const dit_chunk_request *req, dit_tensor *out,
    dit_chunk_timing *timing);

/* The config and the step schedule the generator runs. */
const dit_gen_config *dit_generator_config (const dit_generator *g);
const dit_schedule *dit_generator_schedule (const dit_generator *g);

/* Record the recompute and denoise forwards once per distinct step and
 * replay them (backends with graph support; with tensor parallelism only
 * when the all-reduce is stream-ordered, dit_model_tp.stream_ordered).  Off by
 * default: while a forward is being recorded, everything enqueued on the
 * backend's stream is recorded, so no other thread may use the same backend
 * during dit_generator_run_chunk (e.g. a VAE decode sharing the session's
 * backend).  0 frees the recordings and runs every forward eagerly.
 * Replay gives the eager results bit for bit. */
void dit_generator_set_graphs (dit_generator *g, int enable);

/* Use the backend's fused ops (model chains and noise + flow update;
 * default on where the backend has them); 0 runs the unfused chains. */
void dit_generator_set_fused (dit_generator *g, int enable);

/* dit_model_set_gemm_fold of the generator's model (default on). */
void dit_generator_set_gemm_fold (dit_generator *g, int enable);

/* LoRA (model/dit_lora.h): after every dit_lora_state_apply on this
 * generator's weights (or with NULL, after the last LoRA went), rebind the
 * live LoRAs and recompute what depends on the weights (prompt K/V,
 * modulation table).  Recorded forwards are dropped and recorded again.
 * Takes effect at the next forward, i.e. the next chunk between chunks. */
struct dit_lora_state;
dit_status dit_generator_set_lora (dit_generator *g,
    const struct dit_lora_state *s);

/* Drop KV state (a new stream). The prompt stays. */
void dit_generator_reset (dit_generator *g);

/* σ used for a step value (shifted-table lookup or warp, spec §4.6). */
double dit_generator_sigma (const dit_generator *g, int step);

/* The Philox stream id of (chunk, step) noise. */
uint64_t dit_generator_noise_stream (int64_t chunk_index, int step);

/* One DiT forward for tests: v = DiT(x [16,F,h,w], t per frame, RoPE frame
 * offset).  With context == NULL the keys are x's own tokens; otherwise the
 * context [16,C,h,w] is first recomputed into the cache (t = 0, frames
 * 0..C-1) and x attends to [context, x] with the kv-bias rule. */
dit_status dit_generator_forward (dit_generator *g, const dit_tensor *context,
    const dit_tensor *x, const double *t, int frame_offset, dit_tensor *v_out);

#ifdef __cplusplus
}
#endif
#endif
