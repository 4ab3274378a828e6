/* fp8_gate — the FP8 quality gate shared by the CPU test (tiny model) and
 * the GPU tests (14B slice and full model): the same 3-chunk rollout in f32,
 * bf16 and fp8, compared chunk by chunk against f32.
 *
 * A rollout is what dit-generate does: chunk 0 from noise, every later
 * chunk recomputing its context from the previous chunks' latents of the
 * same run, so errors compound as they would in a stream.  Noise (Philox,
 * seed 42), prompt (the elements' default rows) and synthetic weights
 * (seed `wseed`, quantized per output channel for fp8) are identical in the
 * three runs; the only difference is the precision.
 *
 * Metrics per chunk, on the final latents x0 against the f32 run:
 *   NMSE = Σ (x - ref)² / Σ ref²     cos = Σ x ref / sqrt (Σ x² Σ ref²)
 */
#ifndef FP8_GATE_H
#define FP8_GATE_H

#include "dit_backend.h"
#include "dit_config.h"

#define FP8_GATE_MAX_CHUNKS 8

typedef struct fp8_gate_case {
  const char *label;
  dit_model_config cfg;       /* the model (layers may be cut) */
  int latent_h, latent_w;
  int chunks;
  uint64_t wseed;
} fp8_gate_case;

typedef struct fp8_gate_result {
  /* [0] bf16, [1] fp8, against f32 */
  double nmse[2][FP8_GATE_MAX_CHUNKS];
  double cos[2][FP8_GATE_MAX_CHUNKS];
} fp8_gate_result;

/* Run the case's rollout in `precision` on `be`; out receives chunks *
 * 16 * F * h * w floats (host). */
dit_status fp8_gate_rollout (dit_backend *be, const fp8_gate_case *c,
    dit_precision precision, float *out);

/* The three rollouts and the metrics; prints one line per chunk and
 * precision prefixed with the case label. */
dit_status fp8_gate_run (dit_backend *be, const fp8_gate_case *c,
    fp8_gate_result *r);

void fp8_gate_compare (const float *x, const float *ref, size_t n,
    double *nmse, double *cos);

#endif
