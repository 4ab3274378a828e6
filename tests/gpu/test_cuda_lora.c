/* test_cuda_lora — LoRA merge and live on the CUDA backend against the CPU
 * backend (the reference oracle).
 *
 * The LoRAs are seeded synthetic ones on every linear (rank 16 with alpha 1
 * and a second of rank 8; model/dit_lora.h), whose factors the device makes
 * with its synthetic_normal entry and the host with the host initializer,
 * bit-identical; strengths 0.8 and -0.6.  Cases:
 *  - tiny, f32: the merged weights on the device against the CPU's (NMSE
 *    per tensor <= 1e-10: cuBLASLt in f32 without TF32 differs in summation
 *    order only); a live forward against the CPU's live forward (<= 1e-8);
 *    a strength change re-merged from the kept base equals a fresh merge on
 *    the device bit for bit;
 *  - tiny and the 14B 2-layer slice, bf16 (the slice with rank 64): 3-chunk
 *    rollouts with the LoRAs merged and live on the device against the CPU
 *    f32 rollout with them merged (NMSE <= 2e-3 per chunk, the bf16 engine
 *    limit of test_cuda_model); live at strength 0 is bit-identical to no
 *    LoRA on the device;
 *  - FP8 weights (tiny and the slice, where the device has FP8): the merge
 *    (dequantize, add, quantize with fresh channel scales) on the device
 *    against the same merge on the CPU, compared as dequantized values
 *    (NMSE <= 1e-4: a value on a rounding boundary may take the
 *    neighbouring code).
 * Arguments pick the cases: tiny (the tiny model's), slice (the 14B
 * slice's); none = all.
 * Exit 0 = pass, 1 = fail, 2 = usage, 77 = no CUDA device (skip).
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_lora.h"
#include "dit_philox.h"
#include "dit_weights.h"
#include "../common/gpu_rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the label column of the result lines */
#define LABEL_W 52

/* Tensor i of w as f32 on the host (FP8: dequantized). */
static float *
host_f32 (const dit_weights *w, size_t i)
{
  const dit_tensor *t = &w->tensors[i];
  const int64_t n = dit_tensor_numel (t);
  void *raw = malloc ((size_t) n * dit_dtype_size (t->dtype));
  float *out = malloc ((size_t) n * sizeof (float));
  die_if (w->backend->ops->synchronize (w->backend), "sync");
  die_if (w->backend->ops->download (w->backend, raw, t->data,
      (size_t) n * dit_dtype_size (t->dtype)), "download");
  dit_convert (out, DIT_F32, raw, t->dtype, (size_t) n);
  if (t->dtype == DIT_F8E4M3) {
    const int64_t rows = t->shape[0], cols = n / rows;
    float *sc = malloc ((size_t) rows * sizeof (float));
    die_if (w->backend->ops->download (w->backend, sc, w->scales[i].data,
        (size_t) rows * sizeof (float)), "download scales");
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++)
        out[r * cols + c] *= sc[r];
    free (sc);
  }
  free (raw);
  return out;
}

/* Worst per-tensor NMSE of a against b over the tensors a LoRA touches
 * (2-D ".weight"s); every other tensor must be bit-identical. */
static double
weights_nmse (const dit_weights *a, const dit_weights *b)
{
  double worst = 0.0;
  for (size_t i = 0; i < a->count; i++) {
    const int64_t n = dit_tensor_numel (&a->tensors[i]);
    float *x = host_f32 (a, i), *y = host_f32 (b, i);
    double e = nmse (x, y, (size_t) n);
    if (e > worst)
      worst = e;
    free (x);
    free (y);
  }
  return worst;
}

typedef struct loras {
  dit_lora *l[2];
  dit_lora_use use[2];
} loras;

static void
loras_make (loras *L, const dit_model_config *cfg, int rank)
{
  dit_param_spec *specs;
  size_t count;
  die_if (dit_model_config_params (cfg, &specs, &count), "params");
  die_if (dit_lora_synthetic (specs, count, rank, 11, &L->l[0]), "lora 1");
  die_if (dit_lora_synthetic (specs, count, rank / 2, 12, &L->l[1]), "lora 2");
  free (specs);
  L->use[0] = (dit_lora_use) { L->l[0], 0.8f };
  L->use[1] = (dit_lora_use) { L->l[1], -0.6f };
}

static void
loras_free (loras *L)
{
  dit_lora_free (L->l[0]);
  dit_lora_free (L->l[1]);
}

/* ---- rollouts ------------------------------------------------------------- */

typedef struct inputs {
  dit_gen_config gc;
  float *emb;
  int rows;
  float *noise[3 * DIT_MAX_STEPS];
  size_t n;
} inputs;

static void
inputs_make (inputs *in, const dit_model_config *cfg, int ph, int pw)
{
  dit_gen_config_default (&in->gc);
  in->gc.latent_h = ph / 8;
  in->gc.latent_w = pw / 8;
  in->rows = 24;
  in->emb = malloc ((size_t) in->rows * cfg->text_dim * sizeof (float));
  for (size_t i = 0; i < (size_t) in->rows * cfg->text_dim; i++)
    in->emb[i] = dit_philox_normal (99, 77, i);
  in->n = (size_t) 16 * in->gc.frames_per_chunk * in->gc.latent_h * in->gc.latent_w;
  for (int i = 0; i < 3 * in->gc.num_steps; i++) {
    in->noise[i] = malloc (in->n * sizeof (float));
    for (size_t j = 0; j < in->n; j++)
      in->noise[i][j] = dit_philox_normal (100, (uint64_t) i, j);
  }
}

static void
inputs_free (inputs *in)
{
  for (int i = 0; i < 3 * in->gc.num_steps; i++)
    free (in->noise[i]);
  free (in->emb);
}

/* A 3-chunk rollout; state (may be NULL) applied to the generator's
 * weights after it was made, as a runner does.  out[k]: malloc'd. */
static void
rollout (const dit_model_config *cfg, const inputs *in, dit_dtype dt, int fp8,
    const dit_weights *w, const dit_lora_state *state, float **out)
{
  dit_backend *be = w->backend;
  dit_gen_config gc = in->gc;
  gc.dtype = dt;
  gc.fp8 = fp8;
  dit_generator *g;
  die_if (dit_generator_create (cfg, &gc, w, be, &g), "generator");
  if (state)
    die_if (dit_generator_set_lora (g, state), "set lora");
  dit_tensor et = dit_tensor_2d (in->emb, DIT_F32, DIT_DEVICE_CPU, in->rows,
      cfg->text_dim);
  die_if (dit_generator_set_prompt (g, &et), "prompt");
  run_chunks (g, &gc, 3, in->noise, out);
  dit_generator_free (g);
}

static dit_weights *
synth (const dit_model_config *cfg, dit_dtype dt, dit_backend *be)
{
  dit_param_spec *specs;
  size_t count;
  dit_weights *w;
  die_if (dit_model_config_params (cfg, &specs, &count), "params");
  die_if (dit_weights_synthetic (specs, count, 1234, dt, be, &w), "weights");
  free (specs);
  return w;
}

static dit_lora_state *
applied (dit_weights *w, dit_lora_mode mode, int keep_base,
    const dit_lora_use *use, int n)
{
  dit_lora_state *s;
  die_if (dit_lora_state_create (w, mode, keep_base, NULL, &s), "lora state");
  die_if (dit_lora_state_apply (s, use, n), "lora apply");
  return s;
}

/* ---- cases ------------------------------------------------------------------ */

static void
case_f32 (dit_backend *cuda)
{
  dit_model_config cfg;
  die_if (dit_model_config_preset ("tiny", &cfg), "preset");
  loras L;
  loras_make (&L, &cfg, 16);
  dit_weights *wd = synth (&cfg, DIT_F32, cuda);
  dit_weights *wc = synth (&cfg, DIT_F32, dit_backend_cpu ());
  dit_lora_state *sd = applied (wd, DIT_LORA_MERGE, 1, L.use, 2);
  dit_lora_state *sc = applied (wc, DIT_LORA_MERGE, 0, L.use, 2);
  report (LABEL_W, "tiny f32: merged weights, device vs cpu",
      weights_nmse (wd, wc), 1e-10);

  /* a strength change re-merged from the base = a fresh merge, bitwise */
  dit_lora_use other[2] = { { L.l[0], -0.3f }, { L.l[1], 1.1f } };
  die_if (dit_lora_state_apply (sd, other, 2), "re-merge");
  dit_weights *wf = synth (&cfg, DIT_F32, cuda);
  dit_lora_state *sf = applied (wf, DIT_LORA_MERGE, 0, other, 2);
  report (LABEL_W, "tiny f32: re-merge from the base vs a fresh merge",
      weights_nmse (wd, wf), 0.0);

  /* live forwards (a 3-chunk rollout) on both backends */
  inputs in;
  inputs_make (&in, &cfg, 32, 64);
  dit_weights *wl = synth (&cfg, DIT_F32, cuda), *wlc = synth (&cfg, DIT_F32,
      dit_backend_cpu ());
  dit_lora_state *sl = applied (wl, DIT_LORA_LIVE, 0, L.use, 2);
  dit_lora_state *slc = applied (wlc, DIT_LORA_LIVE, 0, L.use, 2);
  float *a[3], *b[3];
  rollout (&cfg, &in, DIT_F32, 0, wl, sl, a);
  rollout (&cfg, &in, DIT_F32, 0, wlc, slc, b);
  for (int k = 0; k < 3; k++) {
    char label[96];
    snprintf (label, sizeof label, "tiny f32: live rollout chunk %d, device vs cpu", k);
    report (LABEL_W, label, nmse (a[k], b[k], in.n), 1e-8);
    free (a[k]);
    free (b[k]);
  }
  inputs_free (&in);
  dit_lora_state_free (sd);
  dit_lora_state_free (sc);
  dit_lora_state_free (sf);
  dit_lora_state_free (sl);
  dit_lora_state_free (slc);
  dit_weights_free (wd);
  dit_weights_free (wc);
  dit_weights_free (wf);
  dit_weights_free (wl);
  dit_weights_free (wlc);
  loras_free (&L);
}

/* bf16 rollouts, merged and live on the device, vs the CPU f32 merge. */
static void
case_bf16 (dit_backend *cuda, const char *preset, int layers, int rank,
    int ph, int pw)
{
  dit_model_config cfg;
  model_preset (preset, layers, &cfg);
  char name[64];
  snprintf (name, sizeof name, "%s%s", preset, layers ? " 2-layer slice" : "");
  loras L;
  loras_make (&L, &cfg, rank);
  inputs in;
  inputs_make (&in, &cfg, ph, pw);

  dit_weights *wm = synth (&cfg, DIT_BF16, cuda), *wl = synth (&cfg, DIT_BF16, cuda);
  dit_weights *wc = cpu_copy_f32 (wm, "bf16");
  dit_lora_state *sm = applied (wm, DIT_LORA_MERGE, 0, L.use, 2);
  dit_lora_state *sl = applied (wl, DIT_LORA_LIVE, 0, L.use, 2);
  dit_lora_state *sc = applied (wc, DIT_LORA_MERGE, 0, L.use, 2);
  float *ref[3], *m[3], *l[3], *none[3], *zero[3];
  rollout (&cfg, &in, DIT_F32, 0, wc, NULL, ref);
  rollout (&cfg, &in, DIT_BF16, 0, wm, NULL, m);
  rollout (&cfg, &in, DIT_BF16, 0, wl, sl, l);
  for (int k = 0; k < 3; k++) {
    char label[128];
    snprintf (label, sizeof label, "%s bf16: merged rollout chunk %d vs cpu", name, k);
    report (LABEL_W, label, nmse (m[k], ref[k], in.n), 2e-3);
    snprintf (label, sizeof label, "%s bf16: live rollout chunk %d vs cpu", name, k);
    report (LABEL_W, label, nmse (l[k], ref[k], in.n), 2e-3);
  }
  /* strength 0 live = no LoRA, bit for bit */
  dit_weights *w0 = synth (&cfg, DIT_BF16, cuda);
  dit_lora_use z[2] = { { L.l[0], 0.0f }, { L.l[1], 0.0f } };
  die_if (dit_lora_state_apply (sl, z, 2), "strength 0");
  rollout (&cfg, &in, DIT_BF16, 0, wl, sl, zero);
  rollout (&cfg, &in, DIT_BF16, 0, w0, NULL, none);
  int same = 1;
  for (int k = 0; k < 3; k++)
    same &= memcmp (zero[k], none[k], in.n * sizeof (float)) == 0;
  char label0[128];
  snprintf (label0, sizeof label0, "%s bf16: live at strength 0 = none, bitwise",
      name);
  printf ("%-52s %s\n", label0, same ? "ok" : "FAIL");
  failures += !same;
  for (int k = 0; k < 3; k++) {
    free (ref[k]);
    free (m[k]);
    free (l[k]);
    free (none[k]);
    free (zero[k]);
  }
  inputs_free (&in);
  dit_lora_state_free (sm);
  dit_lora_state_free (sl);
  dit_lora_state_free (sc);
  dit_weights_free (wm);
  dit_weights_free (wl);
  dit_weights_free (wc);
  dit_weights_free (w0);
  loras_free (&L);
}

/* FP8 weights: the merge re-quantizes on both backends. */
static void
case_fp8 (dit_backend *cuda, const char *preset, int layers, int rank)
{
  if (dit_fp8_check (cuda) != DIT_OK) {
    printf ("%-52s skipped (%s)\n", "fp8 merge", dit_last_error ());
    return;
  }
  dit_model_config cfg;
  model_preset (preset, layers, &cfg);
  loras L;
  loras_make (&L, &cfg, rank);
  dit_weights *wd = synth (&cfg, DIT_BF16, cuda);
  dit_weights *wc = synth (&cfg, DIT_BF16, dit_backend_cpu ());
  die_if (dit_weights_to_fp8 (wd, dit_model_fp8_select), "fp8 device");
  die_if (dit_weights_to_fp8 (wc, dit_model_fp8_select), "fp8 cpu");
  const double before = weights_nmse (wd, wc);
  dit_lora_state *sd = applied (wd, DIT_LORA_MERGE, 1, L.use, 2);
  dit_lora_state *sc = applied (wc, DIT_LORA_MERGE, 1, L.use, 2);
  char label[128];
  snprintf (label, sizeof label, "%s%s fp8: merged weights, device vs cpu",
      preset, layers ? " slice" : "");
  report (LABEL_W, label, weights_nmse (wd, wc), 1e-4 + before);
  /* back to strength 0: the kept FP8 base, codes and scales */
  dit_lora_use z[2] = { { L.l[0], 0.0f }, { L.l[1], 0.0f } };
  die_if (dit_lora_state_apply (sd, z, 2), "fp8 strength 0");
  dit_weights *wb = synth (&cfg, DIT_BF16, cuda);
  die_if (dit_weights_to_fp8 (wb, dit_model_fp8_select), "fp8 base");
  snprintf (label, sizeof label, "%s%s fp8: strength 0 restores the base",
      preset, layers ? " slice" : "");
  report (LABEL_W, label, weights_nmse (wd, wb), 0.0);
  dit_lora_state_free (sd);
  dit_lora_state_free (sc);
  dit_weights_free (wd);
  dit_weights_free (wc);
  dit_weights_free (wb);
  loras_free (&L);
}

/* argv: the cases to run (tiny: the tiny-model cases, slice: the 14B
 * slice's); none = all. */
static int
wanted (int argc, char **argv, const char *name)
{
  if (argc < 2)
    return 1;
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], name) == 0)
      return 1;
  return 0;
}

int
main (int argc, char **argv)
{
  /* a line at a time: what passed is on record even if a step is cut
   * short by a timeout */
  setvbuf (stdout, NULL, _IOLBF, 0);
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "tiny") != 0 && strcmp (argv[i], "slice") != 0) {
      fprintf (stderr, "usage: test-cuda-lora [tiny] [slice]\n");
      return 2;
    }
  dit_backend *cuda = cuda_backend_or_skip ();
  if (wanted (argc, argv, "tiny")) {
    case_f32 (cuda);
    case_bf16 (cuda, "tiny", 0, 16, 32, 64);
    case_fp8 (cuda, "tiny", 0, 16);
  }
  if (wanted (argc, argv, "slice")) {
    case_bf16 (cuda, "wan-14b", 2, 64, 32, 32);
    case_fp8 (cuda, "wan-14b", 2, 64);
  }
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
