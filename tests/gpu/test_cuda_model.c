/* test_cuda_model — the whole DiT generator on the CUDA backend against the
 * CPU backend (the reference oracle), over a 3-chunk rollout.
 *
 * Cases:
 *  - tiny preset, CUDA f32 and CUDA bf16, 32x64 pixels (latent 4x8);
 *  - a 2-layer slice of the wan-14b shape (D 5120, 40 heads, ffn 13824,
 *    text_dim 4096), CUDA bf16, 32x32 pixels (latent 4x4), so the CPU
 *    reference stays a few seconds.
 * The CPU always runs in f32 with the same weight values (for the bf16
 * cases the bf16 weights, widened), so the comparison measures the CUDA
 * engine's error, not the weight rounding.  Every chunk k > 0 recomputes its
 * cache from the previous chunk's output of the same backend (a rollout:
 * errors compound as they would in a stream), and every step's noise is
 * supplied from the host, identical for both backends.
 *
 * Thresholds (NMSE = ||cuda - cpu||^2 / ||cpu||^2 of each chunk's x0):
 *   f32 engine  1e-8  (f32 storage, f32 accumulation, no TF32)
 *   bf16 engine 2e-3  (bf16 weights and activations, f32 residual stream)
 * Also checked: synthetic weights made on the device (the backend's
 * synthetic_normal entry) are bit-identical to the host initializer, for
 * every tiny tensor in f32 and bf16, and for the first and last 64 Ki
 * elements of every tensor of the 14B slice.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device (skip).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_philox.h"
#include "dit_weights.h"
#include "../common/gpu_rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Device weights (made by synthetic_normal) against the host initializer:
 * every element when `full`, else the first and last 64 Ki per tensor. */
static void
check_weights (const dit_weights *w, uint64_t seed, int full, const char *label)
{
  dit_backend *be = w->backend;
  size_t mism = 0, checked = 0;
  const size_t es = dit_dtype_size (w->dtype);
  for (size_t i = 0; i < w->count; i++) {
    const int64_t n = dit_tensor_numel (&w->tensors[i]);
    const int64_t chunk = full ? n : (n < 65536 ? n : 65536);
    const int64_t starts[2] = { 0, n - chunk };
    for (int s = 0; s < (full || n <= 65536 ? 1 : 2); s++) {
      void *dev = malloc ((size_t) chunk * es), *host = malloc ((size_t) chunk * es);
      die_if (be->ops->download (be, dev, (const char *) w->tensors[i].data
          + (size_t) starts[s] * es, (size_t) chunk * es), "download weights");
      dit_weights_synthetic_fill (&w->specs[i], seed, starts[s], chunk,
          w->dtype, host);
      if (memcmp (dev, host, (size_t) chunk * es) != 0) {
        if (!mism)
          fprintf (stderr, "  %s: '%s' differs from the host initializer\n",
              label, w->specs[i].name);
        mism++;
      }
      checked += (size_t) chunk;
      free (dev);
      free (host);
    }
  }
  printf ("%-44s %s (%zu elements, %zu tensors differ)\n", label,
      mism ? "FAIL" : "ok", checked, mism);
  if (mism)
    failures++;
}

typedef struct rollout {
  float *x0[3];      /* per chunk [16, F, h, w] */
} rollout;

static void
run_rollout (const dit_model_config *cfg, dit_gen_config gc,
    const dit_weights *w, dit_backend *be, const float *emb, int rows,
    float *const *noise, rollout *out)
{
  dit_generator *g;
  die_if (dit_generator_create (cfg, &gc, w, be, &g), "generator");
  dit_tensor et = dit_tensor_2d ((void *) emb, DIT_F32, DIT_DEVICE_CPU, rows,
      cfg->text_dim);
  die_if (dit_generator_set_prompt (g, &et), "prompt");
  run_chunks (g, &gc, 3, noise, out->x0);
  dit_generator_free (g);
}

static void
model_case (dit_backend *cuda, const char *preset, int layers, dit_dtype dt,
    int ph, int pw, double thresh)
{
  dit_model_config cfg;
  model_preset (preset, layers, &cfg);
  dit_param_spec *specs;
  size_t count;
  die_if (dit_model_config_params (&cfg, &specs, &count), "params");
  const uint64_t seed = 1234;
  const int full = layers == 0;
  char label[128];

  dit_weights *wd;
  die_if (dit_weights_synthetic (specs, count, seed, dt, cuda, &wd), "cuda weights");
  snprintf (label, sizeof label, "weights %s%s %s on the device", preset,
      layers ? " slice" : "", dit_dtype_name (dt));
  check_weights (wd, seed, full, label);
  dit_weights *wc;
  if (dt == DIT_F32 && full)
    die_if (dit_weights_synthetic (specs, count, seed, DIT_F32,
        dit_backend_cpu (), &wc), "cpu weights");
  else
    wc = cpu_copy_f32 (wd, dit_dtype_name (dt));
  free (specs);

  dit_gen_config gc;
  dit_gen_config_default (&gc);
  gc.latent_h = ph / 8;
  gc.latent_w = pw / 8;
  const int rows = 24;
  float *emb = malloc ((size_t) rows * cfg.text_dim * sizeof (float));
  for (size_t i = 0; i < (size_t) rows * cfg.text_dim; i++)
    emb[i] = dit_philox_normal (seed, 77, i);
  size_t n = (size_t) 16 * gc.frames_per_chunk * gc.latent_h * gc.latent_w;
  float *noise[3 * DIT_MAX_STEPS];
  for (int i = 0; i < 3 * gc.num_steps; i++) {
    noise[i] = malloc (n * sizeof (float));
    for (size_t j = 0; j < n; j++)
      noise[i][j] = dit_philox_normal (seed + 1, (uint64_t) i, j);
  }

  rollout rc, rd;
  gc.dtype = DIT_F32;
  run_rollout (&cfg, gc, wc, dit_backend_cpu (), emb, rows, noise, &rc);
  gc.dtype = dt;
  run_rollout (&cfg, gc, wd, cuda, emb, rows, noise, &rd);
  for (int k = 0; k < 3; k++) {
    double e = nmse (rd.x0[k], rc.x0[k], n);
    int ok = e <= thresh;
    snprintf (label, sizeof label, "rollout %s%s %s chunk %d", preset,
        layers ? " 2-layer slice" : "", dit_dtype_name (dt), k);
    printf ("%-44s %s (nmse %.3e, limit %.0e)\n", label, ok ? "ok" : "FAIL", e,
        thresh);
    if (!ok)
      failures++;
    free (rc.x0[k]);
    free (rd.x0[k]);
  }
  for (int i = 0; i < 3 * gc.num_steps; i++)
    free (noise[i]);
  free (emb);
  dit_weights_free (wc);
  dit_weights_free (wd);
}

int
main (void)
{
  dit_backend *cuda = cuda_backend_or_skip ();
  model_case (cuda, "tiny", 0, DIT_F32, 32, 64, 1e-8);
  model_case (cuda, "tiny", 0, DIT_BF16, 32, 64, 2e-3);
  model_case (cuda, "wan-14b", 2, DIT_BF16, 32, 32, 2e-3);
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
