/* test_cuda_graph — recorded forwards (CUDA graphs) replay the eager
 * forwards bit for bit, and the fused ops do not change the model's
 * numbers.
 *
 * Rollouts of 4 chunks with the generator's own Philox noise (so the fused
 * noise + flow update runs too): chunk 0, then chunks 1..3 each recomputed
 * from the previous chunk's output.  With graphs on, the first chunk > 0
 * runs every forward eagerly, the second records and replays them, the
 * third only replays; chunk 0's four forwards are each seen once (eager).
 * Cases: the tiny preset in f32 and bf16 at 32x64 pixels, and a 2-layer
 * slice of the wan-14b shape in bf16 at 32x32 pixels.
 * Checks per chunk x0:
 *   graphs on vs graphs off (both fused):  bitwise equal (NMSE 0)
 *   fused vs unfused (both eager):         NMSE <= 1e-10 (f32 engine),
 *       <= 1e-4 (bf16 engine).  The fused q/k norm + RoPE differs from
 *       the chain in the last bit of some elements (test_cuda_fused.c);
 *       bf16 roundings and the rollout amplify it.
 *       Measured on an H200: 4e-14 (f32), up to 5e-6 (bf16, chunk 3).
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

#define CHUNKS 4

/* One rollout; x0[k] gets chunk k's output (host f32). */
static void
rollout (const dit_model_config *cfg, const dit_gen_config *gc,
    const dit_weights *w, dit_backend *be, const float *emb, int rows,
    int graphs, int fused, float **x0)
{
  dit_generator *g;
  die_if (dit_generator_create (cfg, gc, w, be, &g), "generator");
  dit_generator_set_graphs (g, graphs);
  dit_generator_set_fused (g, fused);
  dit_tensor et = dit_tensor_2d ((void *) emb, DIT_F32, DIT_DEVICE_CPU, rows,
      cfg->text_dim);
  die_if (dit_generator_set_prompt (g, &et), "prompt");
  run_chunks (g, gc, CHUNKS, NULL, x0);
  dit_generator_free (g);
}

static void
compare (float **a, float **b, size_t n, const char *what, double limit)
{
  for (int k = 0; k < CHUNKS; k++) {
    size_t diff = 0;
    for (size_t i = 0; i < n; i++)
      diff += memcmp (&a[k][i], &b[k][i], sizeof (float)) != 0;
    char label[160];
    snprintf (label, sizeof label, "%s chunk %d", what, k);
    double e = diff ? nmse (a[k], b[k], n) : 0.0;
    int ok = limit > 0 ? e <= limit : diff == 0;
    if (diff == 0)
      printf ("%-64s ok (bitwise equal)\n", label);
    else
      printf ("%-64s %s (%zu of %zu differ, nmse %.3e, limit %.0e)\n", label,
          ok ? "ok" : "FAIL", diff, n, e, limit);
    if (!ok)
      failures++;
  }
}

static void
graph_case (dit_backend *cuda, const char *preset, int layers, dit_dtype dt,
    int ph, int pw)
{
  dit_model_config cfg;
  model_preset (preset, layers, &cfg);
  dit_param_spec *specs;
  size_t count;
  die_if (dit_model_config_params (&cfg, &specs, &count), "params");
  dit_weights *w;
  die_if (dit_weights_synthetic (specs, count, 1234, dt, cuda, &w), "weights");
  free (specs);

  dit_gen_config gc;
  dit_gen_config_default (&gc);
  gc.latent_h = ph / 8;
  gc.latent_w = pw / 8;
  gc.dtype = dt;
  const int rows = 24;
  float *emb = malloc ((size_t) rows * cfg.text_dim * sizeof (float));
  for (size_t i = 0; i < (size_t) rows * cfg.text_dim; i++)
    emb[i] = dit_philox_normal (1234, 77, i);
  size_t n = (size_t) 16 * gc.frames_per_chunk * gc.latent_h * gc.latent_w;

  float *eager[CHUNKS], *graph[CHUNKS], *unfused[CHUNKS];
  rollout (&cfg, &gc, w, cuda, emb, rows, 0, 1, eager);
  rollout (&cfg, &gc, w, cuda, emb, rows, 1, 1, graph);
  rollout (&cfg, &gc, w, cuda, emb, rows, 0, 0, unfused);
  char what[128];
  snprintf (what, sizeof what, "%s%s %s graphs vs eager", preset,
      layers ? " 2-layer slice" : "", dit_dtype_name (dt));
  compare (graph, eager, n, what, 0.0);
  snprintf (what, sizeof what, "%s%s %s fused vs unfused", preset,
      layers ? " 2-layer slice" : "", dit_dtype_name (dt));
  compare (eager, unfused, n, what, dt == DIT_F32 ? 1e-10 : 1e-4);
  for (int k = 0; k < CHUNKS; k++) {
    free (eager[k]);
    free (graph[k]);
    free (unfused[k]);
  }
  free (emb);
  dit_weights_free (w);
}

int
main (void)
{
  dit_backend *cuda = cuda_backend_or_skip ();
  if (!cuda->ops->graph_begin) {
    printf ("FAIL: the cuda backend has no graph entries\n");
    return 1;
  }
  graph_case (cuda, "tiny", 0, DIT_F32, 32, 64);
  graph_case (cuda, "tiny", 0, DIT_BF16, 32, 64);
  graph_case (cuda, "wan-14b", 2, DIT_BF16, 32, 32);
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
