/* fp8_gate — see fp8_gate.h. */
#include "fp8_gate.h"

#include "dit_generator.h"
#include "dit_stream.h"
#include "dit_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
fp8_gate_compare (const float *x, const float *ref, size_t n, double *nmse,
    double *cos)
{
  double num = 0.0, den = 0.0, xr = 0.0, xx = 0.0;
  for (size_t i = 0; i < n; i++) {
    double a = x[i], b = ref[i];
    if (!isfinite (a)) {
      *nmse = INFINITY;
      *cos = -1.0;
      return;
    }
    num += (a - b) * (a - b);
    den += b * b;
    xr += a * b;
    xx += a * a;
  }
  *nmse = den > 0.0 ? num / den : num;
  *cos = xx > 0.0 && den > 0.0 ? xr / sqrt (xx * den) : 0.0;
}

/* history [16, C, fs]: drop the oldest F frames, append the chunk's. */
static void
gate_push (float *history, int C, const float *chunk, int F, int64_t fs)
{
  for (int c = 0; c < 16; c++) {
    float *h = history + (size_t) c * C * fs;
    const float *src = chunk + (size_t) c * F * fs;
    if (F >= C) {
      memcpy (h, src + (size_t) (F - C) * fs, (size_t) C * fs * sizeof (float));
    } else {
      memmove (h, h + (size_t) F * fs, (size_t) (C - F) * fs * sizeof (float));
      memcpy (h + (size_t) (C - F) * fs, src, (size_t) F * fs * sizeof (float));
    }
  }
}

dit_status
fp8_gate_rollout (dit_backend *be, const fp8_gate_case *c,
    dit_precision precision, float *out)
{
  dit_param_spec *specs = NULL;
  size_t count = 0;
  dit_weights *w = NULL;
  dit_generator *g = NULL;
  float *embeds = NULL, *history = NULL;
  dit_status st;

  dit_gen_config gc;
  dit_gen_config_default (&gc);
  gc.latent_h = c->latent_h;
  gc.latent_w = c->latent_w;
  gc.dtype = dit_precision_compute_dtype (precision);
  gc.fp8 = precision == DIT_PRECISION_FP8;
  const int F = gc.frames_per_chunk, C = gc.context_frames;
  const int64_t fs = (int64_t) c->latent_h * c->latent_w;
  const int64_t chunk_elems = 16 * F * fs;

  DIT_TRY (dit_model_config_params (&c->cfg, &specs, &count));
  st = dit_weights_synthetic (specs, count, c->wseed, gc.dtype, be, &w);
  free (specs);
  if (st == DIT_OK && gc.fp8)
    st = dit_weights_to_fp8 (w, dit_model_fp8_select);
  if (st == DIT_OK)
    st = dit_generator_create (&c->cfg, &gc, w, be, &g);
  embeds = malloc ((size_t) DIT_DEFAULT_PROMPT_ROWS * c->cfg.text_dim
      * sizeof (float));
  history = calloc ((size_t) (16 * C * fs), sizeof (float));
  if (st == DIT_OK && (!embeds || !history))
    st = dit_error (DIT_ERR_NOMEM, "fp8 gate: out of memory");
  if (st == DIT_OK) {
    dit_stream_default_embeds (DIT_DEFAULT_PROMPT_ROWS, c->cfg.text_dim, embeds);
    dit_tensor et = dit_tensor_2d (embeds, DIT_F32, DIT_DEVICE_CPU,
        DIT_DEFAULT_PROMPT_ROWS, c->cfg.text_dim);
    st = dit_generator_set_prompt (g, &et);
  }
  int64_t lshape[4] = { 16, F, c->latent_h, c->latent_w };
  int64_t cshape[4] = { 16, C, c->latent_h, c->latent_w };
  for (int k = 0; st == DIT_OK && k < c->chunks; k++) {
    dit_chunk_request req = { .chunk_index = k };
    dit_tensor ctx = dit_tensor_make (history, DIT_F32, DIT_DEVICE_CPU, 4, cshape);
    if (k > 0)
      req.context = &ctx;
    float *dst = out + (size_t) k * (size_t) chunk_elems;
    dit_tensor ot = dit_tensor_make (dst, DIT_F32, DIT_DEVICE_CPU, 4, lshape);
    dit_chunk_timing tm;
    st = dit_generator_run_chunk (g, &req, &ot, &tm);
    if (st == DIT_OK)
      gate_push (history, C, dst, F, fs);
  }
  if (st != DIT_OK)
    dit_error_prefix (st, "%s %s rollout", c->label,
        dit_precision_name (precision));
  dit_generator_free (g);
  dit_weights_free (w);
  free (embeds);
  free (history);
  return st;
}

dit_status
fp8_gate_run (dit_backend *be, const fp8_gate_case *c, fp8_gate_result *r)
{
  if (c->chunks < 1 || c->chunks > FP8_GATE_MAX_CHUNKS)
    return dit_error (DIT_ERR_INVALID, "fp8 gate: %d chunks (1..%d)",
        c->chunks, FP8_GATE_MAX_CHUNKS);
  const size_t chunk_elems = (size_t) 16 * 3 * c->latent_h * c->latent_w;
  const size_t n = chunk_elems * (size_t) c->chunks;
  float *ref = malloc (n * sizeof (float)), *x = malloc (n * sizeof (float));
  dit_status st = ref && x ? DIT_OK
      : dit_error (DIT_ERR_NOMEM, "fp8 gate: out of memory");
  static const dit_precision precs[2] = { DIT_PRECISION_BF16, DIT_PRECISION_FP8 };
  memset (r, 0, sizeof *r);
  if (st == DIT_OK)
    st = fp8_gate_rollout (be, c, DIT_PRECISION_F32, ref);
  for (int p = 0; st == DIT_OK && p < 2; p++) {
    st = fp8_gate_rollout (be, c, precs[p], x);
    for (int k = 0; st == DIT_OK && k < c->chunks; k++) {
      fp8_gate_compare (x + k * chunk_elems, ref + k * chunk_elems, chunk_elems,
          &r->nmse[p][k], &r->cos[p][k]);
      printf ("%s chunk %d %-4s vs f32: nmse %.3e cos %.6f\n", c->label, k,
          dit_precision_name (precs[p]), r->nmse[p][k], r->cos[p][k]);
    }
  }
  free (ref);
  free (x);
  return st;
}
