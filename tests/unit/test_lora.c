/* test_lora — LoRA files, validation, merge and live application on the
 * tiny model (CPU, f32).
 *
 * The LoRAs are made here as host arrays (seeded), written in every
 * published layout, and the expected merged weights are computed here in
 * f64 from the LoRA definition (W + strength · alpha / rank · B A), never
 * by the code under test.  Checks:
 *  - every layout (kohya in BF16, PEFT lora_A/lora_B with the
 *    diffusion_model. prefix, PEFT lora_down/lora_up, Diffusers names
 *    under transformer.) loads to the same merged weights, bit for bit,
 *    within 1e-6 of the f64 definition;
 *  - merge and live give the same forward (relative L2 <= 1e-5) and both
 *    differ from the base model's;
 *  - strength 0: weights (merge) and forward (live) bit-identical to none;
 *  - two LoRAs merge to the sum of their terms; live equals that merge;
 *  - a strength change re-merges from the kept base (bit-identical to a
 *    fresh merge) and takes effect live; a set change replaces the set;
 *  - live mode folds each targeted layer into its GEMM: its weight is an
 *    [out, in] view of [out, in + R] storage whose last R columns the
 *    forward reads (zeroing the side path's Bs changes nothing, zeroing
 *    those columns removes the LoRA), and the storage is contiguous again
 *    at strength 0, when the list is emptied and when the state is freed;
 *  - full-tensor deltas (.diff, .diff_b, a block's modulation) merge, and
 *    a generator made before the merge sees them after dit_generator_set_lora;
 *  - one refusal per class, message asserted.
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_lora.h"
#include "dit_weights.h"
#include "safetensors.h"
#include "../common/check.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dit_backend *be;
static dit_model_config cfg;
static dit_param_spec *specs;
static size_t nspecs;
static char tmpdir[256];

/* ---- LoRA definitions ------------------------------------------------------ */

#define MAX_T 8

typedef struct def_target {
  const char *layer;       /* Wan name */
  const char *diffusers;   /* the same module in Diffusers names */
  int rank;
  int64_t out, in;
  float alpha;             /* 0: no alpha key */
  float *down, *up;        /* [rank, in], [out, rank] (bf16-exact values) */
} def_target;

typedef struct lora_def {
  int n;
  def_target t[MAX_T];
} lora_def;

static const dit_param_spec *
spec_of (const char *name)
{
  for (size_t i = 0; i < nspecs; i++)
    if (strcmp (specs[i].name, name) == 0)
      return &specs[i];
  return NULL;
}

static void
def_add (lora_def *d, const char *layer, const char *diffusers, int rank,
    float alpha)
{
  char n[128];
  snprintf (n, sizeof n, "%s.weight", layer);
  const dit_param_spec *s = spec_of (n);
  def_target *t = &d->t[d->n++];
  t->layer = layer;
  t->diffusers = diffusers;
  t->rank = rank;
  t->out = s->shape[0];
  t->in = s->shape[1];
  t->alpha = alpha;
  t->down = malloc ((size_t) (rank * t->in) * sizeof (float));
  t->up = malloc ((size_t) (t->out * rank) * sizeof (float));
  /* values a bf16 file holds exactly, so every layout carries the same */
  for (int64_t i = 0; i < rank * t->in; i++)
    t->down[i] = dit_bf16_to_f32 (dit_f32_to_bf16 (frand () / sqrtf ((float) t->in)));
  for (int64_t i = 0; i < t->out * rank; i++)
    t->up[i] = dit_bf16_to_f32 (dit_f32_to_bf16 (0.5f * frand ()));
}

/* The LoRA of most checks: the layers of every kind of path in the model
 * (projections, residual branches with and without a gate, GELU layer,
 * the prompt's K, the text embedding, the head), odd ranks for padding. */
static void
def_main (lora_def *d)
{
  memset (d, 0, sizeof *d);
  def_add (d, "blocks.0.self_attn.q", "blocks.0.attn1.to_q", 4, 2.0f);
  def_add (d, "blocks.1.self_attn.o", "blocks.1.attn1.to_out.0", 3, 0.0f);
  def_add (d, "blocks.0.cross_attn.k", "blocks.0.attn2.to_k", 2, 1.0f);
  def_add (d, "blocks.1.cross_attn.o", "blocks.1.attn2.to_out.0", 5, 3.0f);
  def_add (d, "blocks.1.ffn.0", "blocks.1.ffn.net.0.proj", 3, 1.5f);
  def_add (d, "blocks.0.ffn.2", "blocks.0.ffn.net.2", 8, 4.0f);
  def_add (d, "text_embedding.0",
      "condition_embedder.text_embedder.linear_1", 2, 0.0f);
  def_add (d, "head.head", "proj_out", 2, 1.0f);
}

static void
def_second (lora_def *d)
{
  memset (d, 0, sizeof *d);
  def_add (d, "blocks.0.self_attn.q", "blocks.0.attn1.to_q", 6, 6.0f);
  def_add (d, "blocks.1.self_attn.v", "blocks.1.attn1.to_v", 2, 0.0f);
  def_add (d, "blocks.0.ffn.0", "blocks.0.ffn.net.0.proj", 4, 2.0f);
}

static void
def_free (lora_def *d)
{
  for (int i = 0; i < d->n; i++) {
    free (d->t[i].down);
    free (d->t[i].up);
  }
}

enum { L_KOHYA, L_PEFT_AB, L_PEFT_DOWNUP, L_DIFFUSERS, L_COUNT };
static const char *const layout_name[] = { "kohya", "peft-ab", "peft-downup",
  "diffusers" };

static void
key_of (const def_target *t, int layout, const char *what, char *buf,
    size_t size)
{
  char mod[160];
  if (layout == L_KOHYA) {
    snprintf (mod, sizeof mod, "lora_unet_%s", t->layer);
    for (char *p = mod + 10; *p; p++)
      if (*p == '.')
        *p = '_';
  } else if (layout == L_PEFT_AB) {
    snprintf (mod, sizeof mod, "diffusion_model.%s", t->layer);
  } else if (layout == L_PEFT_DOWNUP) {
    snprintf (mod, sizeof mod, "%s", t->layer);
  } else {
    snprintf (mod, sizeof mod, "transformer.%s", t->diffusers);
  }
  const int ab = layout == L_PEFT_AB || layout == L_DIFFUSERS;
  if (strcmp (what, "down") == 0)
    snprintf (buf, size, "%s.%s", mod, ab ? "lora_A.weight" : "lora_down.weight");
  else if (strcmp (what, "up") == 0)
    snprintf (buf, size, "%s.%s", mod, ab ? "lora_B.weight" : "lora_up.weight");
  else
    snprintf (buf, size, "%s.alpha", mod);
}

/* Write `d` in `layout` (kohya in BF16, the others in F32). */
static void
def_write (const lora_def *d, int layout, const char *path)
{
  dit_st_write_tensor wt[3 * MAX_T];
  char names[3 * MAX_T][192];
  int64_t shapes[3 * MAX_T][2];
  void *bufs[3 * MAX_T];
  int n = 0;
  const dit_dtype dt = layout == L_KOHYA ? DIT_BF16 : DIT_F32;
  for (int i = 0; i < d->n; i++) {
    const def_target *t = &d->t[i];
    for (int k = 0; k < 3; k++) {
      if (k == 2 && t->alpha == 0.0f)
        continue;
      key_of (t, layout, k == 0 ? "down" : k == 1 ? "up" : "alpha", names[n],
          sizeof names[n]);
      const float *src = k == 0 ? t->down : k == 1 ? t->up : &t->alpha;
      int64_t cnt = k == 0 ? t->rank * t->in : k == 1 ? t->out * t->rank : 1;
      bufs[n] = malloc ((size_t) cnt * 4);
      dit_convert (bufs[n], dt, src, DIT_F32, (size_t) cnt);
      shapes[n][0] = k == 0 ? t->rank : k == 1 ? t->out : 1;
      shapes[n][1] = k == 0 ? t->in : t->rank;
      wt[n].name = names[n];
      wt[n].dtype = dt;
      wt[n].ndim = k == 2 ? 0 : 2;
      wt[n].shape = shapes[n];
      wt[n].data = bufs[n];
      n++;
    }
  }
  CHECK_OK (dit_safetensors_write (path, wt, (size_t) n, NULL));
  for (int i = 0; i < n; i++)
    free (bufs[i]);
}

static void
tmp_path (char *buf, size_t size, const char *name)
{
  snprintf (buf, size, "%s/%s", tmpdir, name);
}

/* ---- weights and forwards ---------------------------------------------------- */

static dit_weights *
fresh_weights (void)
{
  dit_weights *w = NULL;
  CHECK_OK (dit_weights_synthetic (specs, nspecs, 7, DIT_F32, be, &w));
  return w;
}

static float *
tensor_copy (const dit_weights *w, const char *name, int64_t *n)
{
  const dit_tensor *t = dit_weights_get (w, name);
  *n = dit_tensor_numel (t);
  float *h = malloc ((size_t) *n * sizeof (float));
  memcpy (h, t->data, (size_t) *n * sizeof (float));
  return h;
}

/* max relative error of tensor `name` of w against base + Σ s·α/r·B A. */
static double
merged_error (const dit_weights *w, const dit_weights *base, const char *layer,
    const lora_def *const *defs, const float *strength, int ndefs)
{
  char name[128];
  snprintf (name, sizeof name, "%s.weight", layer);
  const dit_tensor *tw = dit_weights_get (w, name), *tb = dit_weights_get (base, name);
  const int64_t out = tw->shape[0], in = tw->shape[1];
  const float *got = tw->data, *w0 = tb->data;
  double worst = 0.0, scale = 0.0;
  for (int64_t o = 0; o < out * in; o++)
    scale = fmax (scale, fabs (w0[o]));
  for (int64_t o = 0; o < out; o++)
    for (int64_t i = 0; i < in; i++) {
      double want = w0[o * in + i];
      for (int d = 0; d < ndefs; d++)
        for (int k = 0; k < defs[d]->n; k++) {
          const def_target *t = &defs[d]->t[k];
          if (strcmp (t->layer, layer) != 0)
            continue;
          double a = t->alpha == 0.0f ? t->rank : t->alpha, acc = 0.0;
          for (int j = 0; j < t->rank; j++)
            acc += (double) t->up[o * t->rank + j] * t->down[j * in + i];
          want += strength[d] * a / t->rank * acc;
        }
      worst = fmax (worst, fabs (got[o * in + i] - want) / scale);
    }
  return worst;
}

typedef struct fwd {
  dit_tensor embeds, x, v;
  float *eb, *xb;
  double t[2];
} fwd;

static fwd F;

static void
fwd_init (void)
{
  F.eb = malloc (7 * 64 * sizeof (float));
  F.xb = malloc (16 * 2 * 8 * 8 * sizeof (float));
  for (int i = 0; i < 7 * 64; i++)
    F.eb[i] = frand ();
  for (int i = 0; i < 16 * 2 * 8 * 8; i++)
    F.xb[i] = frand ();
  F.embeds = dit_tensor_2d (F.eb, DIT_F32, DIT_DEVICE_CPU, 7, 64);
  int64_t shape[4] = { 16, 2, 8, 8 };
  F.x = dit_tensor_make (F.xb, DIT_F32, DIT_DEVICE_CPU, 4, shape);
  F.t[0] = 750.0;
  F.t[1] = 750.0;
}

static dit_generator *
make_gen (const dit_weights *w)
{
  dit_gen_config gc;
  dit_gen_config_default (&gc);
  gc.latent_h = 8;
  gc.latent_w = 8;
  gc.frames_per_chunk = 2;
  gc.context_frames = 2;
  gc.kv_window = 4;
  gc.dtype = DIT_F32;
  dit_generator *g = NULL;
  CHECK_OK (dit_generator_create (&cfg, &gc, w, be, &g));
  if (g)
    CHECK_OK (dit_generator_set_prompt (g, &F.embeds));
  return g;
}

/* One forward; returns a malloc'd [16 * 2 * 8 * 8] result. */
static float *
forward (dit_generator *g)
{
  float *v = calloc (16 * 2 * 8 * 8, sizeof (float));
  int64_t shape[4] = { 16, 2, 8, 8 };
  dit_tensor tv = dit_tensor_make (v, DIT_F32, DIT_DEVICE_CPU, 4, shape);
  CHECK_OK (dit_generator_forward (g, NULL, &F.x, F.t, 0, &tv));
  return v;
}

static double
rel_l2 (const float *a, const float *b, int n)
{
  double num = 0.0, den = 0.0;
  for (int i = 0; i < n; i++) {
    num += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
    den += (double) b[i] * b[i];
  }
  return sqrt (num / den);
}

#define NV (16 * 2 * 8 * 8)

static dit_lora *
open_lora (const char *path)
{
  dit_lora *l = NULL;
  CHECK_OK (dit_lora_open (path, specs, nspecs, cfg.name, &l));
  return l;
}

/* ---- checks ------------------------------------------------------------------ */

static void
test_layouts (const lora_def *d, const dit_weights *base)
{
  const lora_def *defs[1] = { d };
  const float s = 0.7f;
  float *first[MAX_T] = { 0 };
  for (int layout = 0; layout < L_COUNT; layout++) {
    char path[512];
    tmp_path (path, sizeof path, layout_name[layout]);
    def_write (d, layout, path);
    dit_lora *l = open_lora (path);
    if (!l)
      continue;
    const dit_lora_format want[] = { DIT_LORA_FORMAT_KOHYA,
      DIT_LORA_FORMAT_PEFT, DIT_LORA_FORMAT_PEFT, DIT_LORA_FORMAT_DIFFUSERS };
    CHECK (l->format == want[layout], "%s: format %s", layout_name[layout],
        dit_lora_format_name (l->format));
    CHECK (l->count == (size_t) d->n, "%s: %zu targets", layout_name[layout],
        l->count);
    CHECK (strcmp (dit_lora_preset_of (l) ? dit_lora_preset_of (l) : "",
        "tiny") == 0, "%s: preset of the LoRA", layout_name[layout]);
    dit_weights *w = fresh_weights ();
    dit_lora_state *st = NULL;
    CHECK_OK (dit_lora_state_create (w, DIT_LORA_MERGE, 0, NULL, &st));
    dit_lora_use use = { l, s };
    CHECK_OK (dit_lora_state_apply (st, &use, 1));
    for (int k = 0; k < d->n; k++) {
      double e = merged_error (w, base, d->t[k].layer, defs, &s, 1);
      CHECK (e <= 1e-6, "%s: %s merged with error %.3g", layout_name[layout],
          d->t[k].layer, e);
      char name[128];
      int64_t n;
      snprintf (name, sizeof name, "%s.weight", d->t[k].layer);
      float *got = tensor_copy (w, name, &n);
      if (layout == 0) {
        first[k] = got;
      } else {
        CHECK (memcmp (got, first[k], (size_t) n * 4) == 0,
            "%s: %s differs from the kohya layout", layout_name[layout], name);
        free (got);
      }
    }
    dit_lora_state_free (st);
    dit_weights_free (w);
    dit_lora_free (l);
  }
  for (int k = 0; k < MAX_T; k++)
    free (first[k]);
}

/* The layers of def_main whose input the model gives spare columns: they
 * run folded (text_embedding.0 and cross_attn.k, made once per prompt,
 * keep the side path). */
static const char *const folded_layers[] = { "blocks.0.self_attn.q",
  "blocks.1.self_attn.o", "blocks.1.cross_attn.o", "blocks.1.ffn.0",
  "blocks.0.ffn.2", "head.head" };
#define N_FOLDED (sizeof folded_layers / sizeof folded_layers[0])

static int
all_contiguous (const dit_weights *w)
{
  for (size_t i = 0; i < w->count; i++)
    if (!dit_tensor_is_contiguous (&w->tensors[i]))
      return 0;
  return 1;
}

/* Every tensor of a bit-identical to b's. */
static int
same_weights (const dit_weights *a, const dit_weights *b)
{
  for (size_t i = 0; i < a->count; i++)
    if (memcmp (a->tensors[i].data, b->tensors[i].data,
            dit_tensor_nbytes (&b->tensors[i])) != 0)
      return 0;
  return 1;
}

/* One list into the merged state sm and the live state sl, and each
 * generator told (its prompt K/V and modulation follow the weights). */
static void
apply_both (dit_lora_state *sm, dit_generator *gm, dit_lora_state *sl,
    dit_generator *gl, const dit_lora_use *uses, int n)
{
  CHECK_OK (dit_lora_state_apply (sm, uses, n));
  CHECK_OK (dit_lora_state_apply (sl, uses, n));
  CHECK_OK (dit_generator_set_lora (gm, sm));
  CHECK_OK (dit_generator_set_lora (gl, sl));
}

/* Relative L2 of the live forward against the merged one. */
static double
live_vs_merge (dit_generator *gm, dit_generator *gl)
{
  float *vm = forward (gm), *vl = forward (gl);
  double e = rel_l2 (vl, vm, NV);
  free (vm);
  free (vl);
  return e;
}

/* Live mode after `sl` applied d1 to wl and gl took it (forward vl):
 * the folded layout and that the forward reads it.  Leaves the side
 * state's Bs copies damaged; the caller's next apply rescales them. */
static void
test_fold (const lora_def *d1, dit_weights *wl, dit_lora_state *sl,
    dit_generator *gl, const float *vl)
{
  for (size_t k = 0; k < N_FOLDED; k++) {
    char name[128];
    snprintf (name, sizeof name, "%s.weight", folded_layers[k]);
    const dit_tensor *t = dit_weights_get (wl, name);
    const dit_lora_side *sd = dit_lora_state_side (sl, folded_layers[k]);
    int rank = 0;
    for (int j = 0; j < d1->n; j++)
      if (strcmp (d1->t[j].layer, folded_layers[k]) == 0)
        rank = d1->t[j].rank;
    /* R: the LoRA's rank padded to 8 (dit_lora.h) */
    const int64_t R = (rank + 7) / 8 * 8;
    CHECK (sd && sd->rank == R && sd->w_cat.data == t->data
        && sd->w_cat.shape[0] == t->shape[0]
        && sd->w_cat.shape[1] == t->shape[1] + R
        && t->stride[0] == t->shape[1] + R, "%s: weight stored as [%lld, "
        "%lld + %lld] (stride %lld)", folded_layers[k],
        (long long) t->shape[0], (long long) t->shape[1], (long long) R,
        (long long) t->stride[0]);
  }
  /* the side path's Bs is not what the forward reads ... */
  for (size_t k = 0; k < N_FOLDED; k++) {
    const dit_lora_side *sd = dit_lora_state_side (sl, folded_layers[k]);
    if (sd)
      memset (sd->bs.data, 0, dit_tensor_nbytes (&sd->bs));
  }
  float *v = forward (gl);
  CHECK (memcmp (v, vl, NV * 4) == 0, "live forward without the side "
      "path's Bs: unchanged (the folded layers read W_cat)");
  free (v);
  /* ... the last R columns of the weight's storage are */
  for (size_t k = 0; k < N_FOLDED; k++) {
    const dit_lora_side *sd = dit_lora_state_side (sl, folded_layers[k]);
    if (!sd || !sd->w_cat.data)
      continue;
    const int64_t in = sd->w_cat.shape[1] - sd->rank;
    for (int64_t r = 0; r < sd->w_cat.shape[0]; r++)
      memset ((float *) sd->w_cat.data + r * sd->w_cat.stride[0] + in, 0,
          (size_t) sd->rank * sizeof (float));
  }
  v = forward (gl);
  double e = rel_l2 (v, vl, NV);
  CHECK (e > 1e-4, "live forward without W_cat's Bs columns differs from "
      "it (%.3g)", e);
  free (v);
}

static void
test_merge_live (const lora_def *d1, const lora_def *d2, dit_lora *l1,
    dit_lora *l2, const dit_weights *base)
{
  dit_generator *g0 = make_gen (base);
  float *v0 = forward (g0);

  /* merge (base kept) and live on their own weights, generators made
   * before the LoRA is applied */
  dit_weights *wm = fresh_weights (), *wl = fresh_weights ();
  dit_generator *gm = make_gen (wm), *gl = make_gen (wl);
  dit_lora_state *sm = NULL, *sl = NULL;
  CHECK_OK (dit_lora_state_create (wm, DIT_LORA_MERGE, 1, NULL, &sm));
  CHECK_OK (dit_lora_state_create (wl, DIT_LORA_LIVE, 0, NULL, &sl));
  dit_lora_use one = { l1, 0.7f };
  apply_both (sm, gm, sl, gl, &one, 1);
  float *vm = forward (gm), *vl = forward (gl);
  double e = rel_l2 (vl, vm, NV), effect = rel_l2 (vm, v0, NV);
  CHECK (e <= 1e-5, "live vs merge: relative L2 %.3g", e);
  CHECK (effect > 1e-3, "the LoRA changes the forward (%.3g)", effect);
  printf ("merge vs live %.3g (LoRA effect %.3g)\n", e, effect);
  test_fold (d1, wl, sl, gl, vl);
  /* the same merged weights made before the generator: same bits */
  dit_weights *wm2 = fresh_weights ();
  dit_lora_state *sm2 = NULL;
  CHECK_OK (dit_lora_state_create (wm2, DIT_LORA_MERGE, 0, NULL, &sm2));
  CHECK_OK (dit_lora_state_apply (sm2, &one, 1));
  dit_generator *gm2 = make_gen (wm2);
  float *vm2 = forward (gm2);
  CHECK (memcmp (vm, vm2, NV * 4) == 0, "a merge after the generator was "
      "made equals one before (prompt K/V recomputed)");
  free (vm2);
  dit_generator_free (gm2);
  dit_lora_state_free (sm2);
  dit_weights_free (wm2);
  free (vm);
  free (vl);

  /* strength 0: bit-identical to no LoRA in both modes */
  one.strength = 0.0f;
  apply_both (sm, gm, sl, gl, &one, 1);
  CHECK (same_weights (wm, base), "merge at strength 0: every weight "
      "bit-identical to the base");
  vm = forward (gm);
  vl = forward (gl);
  CHECK (memcmp (vm, v0, NV * 4) == 0, "merge at strength 0: forward "
      "bit-identical to no LoRA");
  CHECK (memcmp (vl, v0, NV * 4) == 0, "live at strength 0: forward "
      "bit-identical to no LoRA");
  CHECK (all_contiguous (wl), "live at strength 0: every weight in "
      "contiguous storage");
  free (vm);
  free (vl);

  /* a strength change re-merges from the base: the bits of a fresh merge */
  one.strength = 0.7f;
  CHECK_OK (dit_lora_state_apply (sm, &one, 1));
  one.strength = -0.4f;
  apply_both (sm, gm, sl, gl, &one, 1);
  dit_weights *wf = fresh_weights ();
  dit_lora_state *sf = NULL;
  CHECK_OK (dit_lora_state_create (wf, DIT_LORA_MERGE, 0, NULL, &sf));
  CHECK_OK (dit_lora_state_apply (sf, &one, 1));
  CHECK (same_weights (wm, wf), "re-merge at -0.4 after 0.7 equals a fresh "
      "merge at -0.4");
  e = live_vs_merge (gm, gl);
  CHECK (e <= 1e-5, "live after a strength change vs merge: %.3g", e);
  dit_lora_state_free (sf);
  dit_weights_free (wf);

  /* two LoRAs: the sum of their terms (merge vs the f64 definition, live
   * vs merge) */
  dit_lora_use two[2] = { { l1, 0.7f }, { l2, -0.5f } };
  apply_both (sm, gm, sl, gl, two, 2);
  const lora_def *defs[2] = { d1, d2 };
  const float str[2] = { 0.7f, -0.5f };
  const char *layers[] = { "blocks.0.self_attn.q", "blocks.1.self_attn.v",
    "blocks.0.ffn.0", "blocks.1.ffn.0", "head.head" };
  for (size_t k = 0; k < sizeof layers / sizeof layers[0]; k++) {
    double err = merged_error (wm, base, layers[k], defs, str, 2);
    CHECK (err <= 1e-6, "two LoRAs: %s error %.3g", layers[k], err);
  }
  e = live_vs_merge (gm, gl);
  CHECK (e <= 1e-5, "two LoRAs live vs merge: %.3g", e);

  /* a set change without a kept base: the old set comes out first */
  dit_weights *wn = fresh_weights ();
  dit_lora_state *sn = NULL;
  CHECK_OK (dit_lora_state_create (wn, DIT_LORA_MERGE, 0, NULL, &sn));
  CHECK_OK (dit_lora_state_apply (sn, two, 2));
  dit_lora_use only2 = { l2, 0.4f };
  CHECK_OK (dit_lora_state_apply (sn, &only2, 1));
  const float s2 = 0.4f;
  const lora_def *d2only[1] = { d2 };
  for (size_t k = 0; k < sizeof layers / sizeof layers[0]; k++) {
    double err = merged_error (wn, base, layers[k], d2only, &s2, 1);
    CHECK (err <= 1e-6, "set change: %s error %.3g", layers[k], err);
  }
  CHECK (dit_lora_state_digest (sn) == dit_lora_set_digest (DIT_LORA_MERGE,
      &only2, 1) && dit_lora_state_digest (sn) != dit_lora_set_digest (
      DIT_LORA_LIVE, &only2, 1), "state digest is the set's, per mode");
  dit_lora_state_free (sn);
  dit_weights_free (wn);

  /* no LoRA: the base again */
  apply_both (sm, gm, sl, gl, NULL, 0);
  vm = forward (gm);
  vl = forward (gl);
  CHECK (memcmp (vm, v0, NV * 4) == 0 && memcmp (vl, v0, NV * 4) == 0,
      "an empty set gives the base forward back");
  CHECK (all_contiguous (wl), "live, empty set: every weight in contiguous "
      "storage again");
  CHECK (dit_lora_state_digest (sm) == 0, "no LoRA: digest 0");
  free (vm);
  free (vl);

  dit_generator_free (gm);
  dit_generator_free (gl);
  dit_generator_free (g0);
  dit_lora_state_free (sm);
  /* freeing a live state with a set applied unfolds its weights */
  CHECK_OK (dit_lora_state_apply (sl, &one, 1));
  CHECK (!all_contiguous (wl), "live: folded weights after an apply");
  dit_lora_state_free (sl);
  CHECK (all_contiguous (wl), "live state freed: every weight in contiguous "
      "storage again");
  dit_weights_free (wm);
  dit_weights_free (wl);
  free (v0);
}

/* .diff / .diff_b / a block's modulation: merged with the strength alone */
static void
test_deltas (const dit_weights *base)
{
  const char *mod_name = "blocks.1.modulation";
  const dit_param_spec *sn = spec_of ("blocks.0.norm3.weight");
  const dit_param_spec *sb = spec_of ("blocks.0.self_attn.q.bias");
  const dit_param_spec *sm = spec_of (mod_name);
  float *dn = malloc ((size_t) sn->shape[0] * 4), *db = malloc ((size_t) sb->shape[0] * 4);
  int64_t nm = 1;
  for (int d = 0; d < sm->ndim; d++)
    nm *= sm->shape[d];
  float *dm = malloc ((size_t) nm * 4);
  for (int64_t i = 0; i < sn->shape[0]; i++)
    dn[i] = frand ();
  for (int64_t i = 0; i < sb->shape[0]; i++)
    db[i] = frand ();
  for (int64_t i = 0; i < nm; i++)
    dm[i] = 0.1f * frand ();
  dit_st_write_tensor wt[3] = {
    { "diffusion_model.blocks.0.norm3.diff", DIT_F32, 1, sn->shape, dn },
    { "diffusion_model.blocks.0.self_attn.q.diff_b", DIT_F32, 1, sb->shape, db },
    { "diffusion_model.blocks.1.modulation.diff", DIT_F32, sm->ndim, sm->shape, dm },
  };
  char path[512];
  tmp_path (path, sizeof path, "deltas");
  CHECK_OK (dit_safetensors_write (path, wt, 3, NULL));
  dit_lora *l = open_lora (path);
  if (!l)
    return;
  dit_weights *w = fresh_weights (), *w2 = fresh_weights ();
  dit_generator *g = make_gen (w);
  dit_lora_state *s = NULL, *s2 = NULL;
  CHECK_OK (dit_lora_state_create (w, DIT_LORA_MERGE, 1, NULL, &s));
  dit_lora_use use = { l, 0.5f };
  CHECK_OK (dit_lora_state_apply (s, &use, 1));
  CHECK_OK (dit_generator_set_lora (g, s));
  const float *nw = dit_weights_get (w, "blocks.0.norm3.weight")->data;
  const float *n0 = dit_weights_get (base, "blocks.0.norm3.weight")->data;
  const float *bw = dit_weights_get (w, "blocks.0.self_attn.q.bias")->data;
  const float *b0 = dit_weights_get (base, "blocks.0.self_attn.q.bias")->data;
  const float *mw = dit_weights_get (w, mod_name)->data;
  const float *m0 = dit_weights_get (base, mod_name)->data;
  int ok = 1;
  for (int64_t i = 0; i < sn->shape[0]; i++)
    ok &= nw[i] == n0[i] + 0.5f * dn[i];
  for (int64_t i = 0; i < sb->shape[0]; i++)
    ok &= bw[i] == b0[i] + 0.5f * db[i];
  for (int64_t i = 0; i < nm; i++)
    ok &= mw[i] == m0[i] + 0.5f * dm[i];
  CHECK (ok, "deltas: w + 0.5 · diff, one rounding");
  /* the generator made before sees the merged modulation */
  CHECK_OK (dit_lora_state_create (w2, DIT_LORA_MERGE, 0, NULL, &s2));
  CHECK_OK (dit_lora_state_apply (s2, &use, 1));
  dit_generator *g2 = make_gen (w2);
  float *v = forward (g), *v2 = forward (g2);
  CHECK (memcmp (v, v2, NV * 4) == 0, "deltas merged after the generator was "
      "made reach its forward (modulation table, norms, biases)");
  free (v);
  free (v2);
  /* live mode refuses deltas, naming the key */
  dit_weights *w3 = fresh_weights ();
  dit_lora_state *s3 = NULL;
  CHECK_OK (dit_lora_state_create (w3, DIT_LORA_LIVE, 0, NULL, &s3));
  dit_status st = dit_lora_state_apply (s3, &use, 1);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (),
      "blocks.0.norm3.diff") && strstr (dit_last_error (), "lora-mode=merge"),
      "live refuses a delta: %s", dit_last_error ());
  dit_lora_state_free (s3);
  dit_weights_free (w3);
  dit_generator_free (g);
  dit_generator_free (g2);
  dit_lora_state_free (s);
  dit_lora_state_free (s2);
  dit_weights_free (w);
  dit_weights_free (w2);
  dit_lora_free (l);
  free (dn);
  free (db);
  free (dm);
}

/* ---- refusals ---------------------------------------------------------------- */

/* Expect dit_lora_open to refuse the file at `path` with the path and
 * every one of `want` in the message. */
static void
expect_open_refused (const char *what, const char *path, const char *want1,
    const char *want2)
{
  dit_lora *l = NULL;
  dit_status st = dit_lora_open (path, specs, nspecs, cfg.name, &l);
  const char *msg = dit_last_error ();
  CHECK (st == DIT_ERR_INVALID && strstr (msg, path) && strstr (msg, want1)
      && (!want2 || strstr (msg, want2)), "%s: refused with '%s' (%s)", what,
      msg, dit_status_name (st));
  dit_lora_free (l);
}

/* Write one file of the given tensors and expect dit_lora_open to refuse
 * it. */
static void
expect_refused (const char *what, const dit_st_write_tensor *wt, size_t n,
    const char *want1, const char *want2)
{
  char path[512];
  tmp_path (path, sizeof path, "bad.safetensors");
  CHECK_OK (dit_safetensors_write (path, wt, n, NULL));
  expect_open_refused (what, path, want1, want2);
}

/* The writer takes dit dtypes only: another dtype is given to the first
 * tensor of a written file by rewriting its header (`to` as long as
 * `from`, e.g. "I32" for "F32"). */
static void
retype_first_tensor (const char *path, const char *from, const char *to)
{
  FILE *f = fopen (path, "r+b");
  uint64_t hl = 0;
  CHECK (f && fread (&hl, 8, 1, f) == 1, "read header length");
  char *hdr = calloc (hl + 1, 1);
  CHECK (fread (hdr, 1, hl, f) == hl, "read header");
  char *p = strstr (hdr, from);
  if (p) {
    memcpy (p, to, strlen (to));
    fseek (f, 8, SEEK_SET);
    fwrite (hdr, 1, hl, f);
  }
  fclose (f);
  free (hdr);
}

static void
test_refusals (void)
{
  static float down[4 * 256], up[256 * 4], big[8 * 512], one = 1.0f;
  static int32_t ints[4 * 256];
  int64_t s_down[2] = { 4, 256 }, s_up[2] = { 256, 4 }, s_up3[2] = { 256, 3 };
  int64_t s_bad_in[2] = { 4, 512 }, s_alpha[1] = { 2 }, s_conv[2] = { 4, 64 };
  int64_t s_cu[2] = { 256, 4 }, s_diff[1] = { 255 }, s_big[2] = { 8, 512 };
  (void) big;
  (void) s_big;

  /* missing target layer (the tiny model has 2 blocks) */
  dit_st_write_tensor missing[2] = {
    { "blocks.5.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, down },
    { "blocks.5.self_attn.q.lora_B.weight", DIT_F32, 2, s_up, up } };
  expect_refused ("missing layer", missing, 2, "blocks.5.self_attn.q.lora_A.weight",
      "does not exist in model tiny");
  /* rank mismatch */
  dit_st_write_tensor rank[2] = {
    { "blocks.0.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, down },
    { "blocks.0.self_attn.q.lora_B.weight", DIT_F32, 2, s_up3, up } };
  expect_refused ("rank mismatch", rank, 2, "rank mismatch", "rank 3");
  /* shape that does not fit (input width 512 for a 256-wide layer) */
  dit_st_write_tensor fit[2] = {
    { "lora_unet_blocks_0_self_attn_q.lora_down.weight", DIT_F32, 2, s_bad_in, big },
    { "lora_unet_blocks_0_self_attn_q.lora_up.weight", DIT_F32, 2, s_up, up } };
  expect_refused ("shape", fit, 2, "shape does not fit", "blocks.0.self_attn.q");
  /* non-float data */
  dit_st_write_tensor nonfloat[2] = {
    { "blocks.0.self_attn.q.lora_down.weight", DIT_F32, 2, s_down, down },
    { "blocks.0.self_attn.q.lora_up.weight", DIT_F32, 2, s_up, up } };
  (void) ints;
  {
    char path[512];
    tmp_path (path, sizeof path, "int.safetensors");
    CHECK_OK (dit_safetensors_write (path, nonfloat, 2, NULL));
    retype_first_tensor (path, "\"F32\"", "\"I32\"");
    expect_open_refused ("non-float", path, "non-float data", "I32");
  }
  /* a key that is no LoRA tensor */
  dit_st_write_tensor unknown[1] = {
    { "lora_te_text_model_encoder_layers_0_q_proj.lora_down.weight", DIT_F32, 2,
      s_down, down } };
  expect_refused ("unknown key", unknown, 1, "lora_te_text_model", "not a LoRA tensor");
  dit_st_write_tensor unknown2[1] = {
    { "blocks.0.self_attn.q.weight", DIT_F32, 2, s_up, up } };
  expect_refused ("a base weight", unknown2, 1, "blocks.0.self_attn.q.weight",
      "not a LoRA tensor");
  /* half a pair */
  dit_st_write_tensor half[1] = {
    { "blocks.0.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, down } };
  expect_refused ("half pair", half, 1, "down factor but no up", NULL);
  /* alpha of two values */
  dit_st_write_tensor alpha[3] = {
    { "blocks.0.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, down },
    { "blocks.0.self_attn.q.lora_B.weight", DIT_F32, 2, s_up, up },
    { "blocks.0.self_attn.q.alpha", DIT_F32, 1, s_alpha, down } };
  expect_refused ("alpha", alpha, 3, "blocks.0.self_attn.q.alpha",
      "alpha must be one finite number");
  /* a factor pair on the patch embedding (a convolution) */
  dit_st_write_tensor conv[2] = {
    { "patch_embedding.lora_A.weight", DIT_F32, 2, s_conv, down },
    { "patch_embedding.lora_B.weight", DIT_F32, 2, s_cu, up } };
  expect_refused ("conv", conv, 2, "patch_embedding.weight", "not a linear weight");
  /* a delta of the wrong shape */
  dit_st_write_tensor diff[1] = {
    { "blocks.0.norm3.diff", DIT_F32, 1, s_diff, down } };
  expect_refused ("delta shape", diff, 1, "blocks.0.norm3.diff", "shape does not fit");
  /* two layouts in one file */
  dit_st_write_tensor mixed[4] = {
    { "blocks.0.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, down },
    { "blocks.0.self_attn.q.lora_B.weight", DIT_F32, 2, s_up, up },
    { "lora_unet_blocks_0_self_attn_k.lora_down.weight", DIT_F32, 2, s_down, down },
    { "lora_unet_blocks_0_self_attn_k.lora_up.weight", DIT_F32, 2, s_up, up } };
  expect_refused ("mixed layouts", mixed, 4, "different layouts", NULL);
  (void) one;

  /* a non-finite value: found when the values are converted (apply) */
  {
    char path[512];
    tmp_path (path, sizeof path, "nan.safetensors");
    float *d2 = malloc (sizeof down);
    memcpy (d2, down, sizeof down);
    d2[77] = NAN;
    dit_st_write_tensor nanf[2] = {
      { "blocks.0.self_attn.q.lora_A.weight", DIT_F32, 2, s_down, d2 },
      { "blocks.0.self_attn.q.lora_B.weight", DIT_F32, 2, s_up, up } };
    CHECK_OK (dit_safetensors_write (path, nanf, 2, NULL));
    free (d2);
    dit_lora *l = open_lora (path);
    dit_weights *w = fresh_weights ();
    dit_lora_state *s = NULL;
    CHECK_OK (dit_lora_state_create (w, DIT_LORA_LIVE, 0, NULL, &s));
    dit_lora_use use = { l, 1.0f };
    dit_status st = l ? dit_lora_state_apply (s, &use, 1) : DIT_ERR_INVALID;
    CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), path)
        && strstr (dit_last_error (), "blocks.0.self_attn.q.lora_A.weight")
        && strstr (dit_last_error (), "must be finite"),
        "non-finite value: %s", dit_last_error ());
    CHECK (dit_lora_state_side (s, "blocks.0.self_attn.q") == NULL,
        "a refused set leaves the previous (none)");
    dit_lora_state_free (s);
    dit_weights_free (w);
    dit_lora_free (l);
  }
  /* a file that does not exist */
  {
    dit_lora *l = NULL;
    dit_status st = dit_lora_open ("/nonexistent/style.safetensors", specs,
        nspecs, cfg.name, &l);
    CHECK (st != DIT_OK && strstr (dit_last_error (), "/nonexistent/style"),
        "missing file: %s", dit_last_error ());
  }
}

static void
test_spec_parse (void)
{
  dit_lora_spec sp;
  CHECK_OK (dit_lora_spec_parse ("style.safetensors:0.8|detail.safetensors:0.4", &sp));
  CHECK (sp.count == 2 && strcmp (sp.items[0].path, "style.safetensors") == 0
      && sp.items[0].strength == 0.8f && strcmp (sp.items[1].path,
      "detail.safetensors") == 0 && sp.items[1].strength == 0.4f, "two items");
  CHECK_OK (dit_lora_spec_parse (" /a/b.safetensors | c.safetensors:-1.5 ", &sp));
  CHECK (sp.count == 2 && sp.items[0].strength == 1.0f
      && strcmp (sp.items[0].path, "/a/b.safetensors") == 0
      && sp.items[1].strength == -1.5f, "default strength 1, spaces trimmed");
  CHECK_OK (dit_lora_spec_parse ("", &sp));
  CHECK (sp.count == 0, "empty: none");
  char buf[256];
  CHECK_OK (dit_lora_spec_parse ("a:0.5|b", &sp));
  dit_lora_spec_format (&sp, buf, sizeof buf);
  CHECK (strcmp (buf, "a:0.5|b:1") == 0, "format: %s", buf);
  /* strengths that %g would round come back bit for bit (the text a mesh
   * sends) */
  sp.items[0].strength = 0.123456789f;
  sp.items[1].strength = -1.0f / 3.0f;
  dit_lora_spec_format (&sp, buf, sizeof buf);
  dit_lora_spec back;
  CHECK_OK (dit_lora_spec_parse (buf, &back));
  CHECK (back.count == 2 && back.items[0].strength == sp.items[0].strength
      && back.items[1].strength == sp.items[1].strength, "round trip: %s",
      buf);
  CHECK (dit_lora_spec_parse ("a|b|c|d|e|f|g|h|i", &sp) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "more than 8"), "9 items: %s",
      dit_last_error ());
  CHECK (dit_lora_spec_parse ("style.safetensors:strong", &sp) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "'strong' is not a number"),
      "bad strength: %s", dit_last_error ());
  CHECK (dit_lora_spec_parse ("a.safetensors:inf", &sp) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "not a finite number"), "inf: %s",
      dit_last_error ());
  CHECK (dit_lora_spec_parse ("a||b", &sp) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "item 2 has no file"), "empty item: %s",
      dit_last_error ());
  dit_lora_mode m;
  CHECK (dit_lora_mode_parse ("live", &m) == DIT_OK && m == DIT_LORA_LIVE
      && dit_lora_mode_parse ("merge", &m) == DIT_OK && m == DIT_LORA_MERGE,
      "modes");
  CHECK (dit_lora_mode_parse ("fuse", &m) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "'fuse'"), "bad mode: %s", dit_last_error ());
}

/* A synthetic LoRA on every linear: live and merge agree, and its values
 * come out of dit_lora_values like a file's. */
static void
test_synthetic (const dit_weights *base)
{
  dit_lora *l = NULL;
  CHECK_OK (dit_lora_synthetic (specs, nspecs, 8, 5, &l));
  if (!l)
    return;
  CHECK (l->count == (size_t) (6 + 10 * cfg.num_layers), "%zu linear targets",
      l->count);
  dit_weights *wm = fresh_weights (), *wl = fresh_weights ();
  dit_lora_state *sm = NULL, *sl = NULL;
  CHECK_OK (dit_lora_state_create (wm, DIT_LORA_MERGE, 0, NULL, &sm));
  CHECK_OK (dit_lora_state_create (wl, DIT_LORA_LIVE, 0, NULL, &sl));
  dit_lora_use use = { l, 1.0f };
  CHECK_OK (dit_lora_state_apply (sm, &use, 1));
  CHECK_OK (dit_lora_state_apply (sl, &use, 1));
  dit_generator *gm = make_gen (wm), *gl = make_gen (wl), *g0 = make_gen (base);
  CHECK_OK (dit_generator_set_lora (gl, sl));
  float *vm = forward (gm), *vl = forward (gl), *v0 = forward (g0);
  double e = rel_l2 (vl, vm, NV);
  CHECK (e <= 1e-5 && rel_l2 (vm, v0, NV) > 1e-4, "synthetic: live vs merge "
      "%.3g, effect %.3g", e, rel_l2 (vm, v0, NV));
  free (vm);
  free (vl);
  free (v0);
  dit_generator_free (gm);
  dit_generator_free (gl);
  dit_generator_free (g0);
  dit_lora_state_free (sm);
  dit_lora_state_free (sl);
  dit_weights_free (wm);
  dit_weights_free (wl);
  dit_lora_free (l);
}

/* The list a runner holds: reuse, a bad file keeps the previous list. */
static void
test_set (const char *p1, const char *p2)
{
  dit_weights *w = fresh_weights ();
  dit_lora_set *set = NULL;
  CHECK_OK (dit_lora_set_create (w, &cfg, DIT_LORA_LIVE, 0, NULL, &set));
  if (!set) {
    dit_weights_free (w);
    return;
  }
  dit_lora_spec sp;
  char text[1200];
  snprintf (text, sizeof text, "%s:0.8|%s:0.4", p1, p2);
  CHECK_OK (dit_lora_spec_parse (text, &sp));
  CHECK_OK (dit_lora_set_update (set, &sp));
  const dit_lora_state *st = dit_lora_set_state (set);
  const uint64_t gen1 = dit_lora_state_generation (st);
  const dit_lora_side *side = dit_lora_state_side (st, "blocks.0.self_attn.q");
  CHECK (side && side->rank == 8 + 8, "two LoRAs on q: stacked rank %lld",
      side ? (long long) side->rank : -1LL);
  /* other strengths: the same factors (a strength change) */
  snprintf (text, sizeof text, "%s:0.1|%s:0", p1, p2);
  CHECK_OK (dit_lora_spec_parse (text, &sp));
  CHECK_OK (dit_lora_set_update (set, &sp));
  CHECK (dit_lora_state_side (st, "blocks.0.self_attn.q") == side
      && dit_lora_state_generation (st) == gen1 + 1, "strength change keeps "
      "the factors");
  CHECK (dit_lora_state_side (st, "blocks.1.self_attn.v")
      && !dit_lora_state_side (st, "blocks.1.self_attn.v")->active,
      "a layer of the LoRA at strength 0 is inactive");
  const uint64_t digest = dit_lora_set_digest_of (set);
  /* the digest of the list computed without weights (a mesh's rank 0) is
   * the set's; a list the set would refuse is refused there too */
  uint64_t spec_digest = 0;
  CHECK_OK (dit_lora_spec_digest (&sp, DIT_LORA_LIVE, &cfg, &spec_digest));
  CHECK (spec_digest == digest && digest != 0, "spec digest %016llx, set "
      "digest %016llx", (unsigned long long) spec_digest,
      (unsigned long long) digest);
  CHECK_OK (dit_lora_spec_digest (&sp, DIT_LORA_MERGE, &cfg, &spec_digest));
  CHECK (spec_digest != digest, "the mode is part of the digest");
  /* a file that cannot be read: error, the previous list stays */
  snprintf (text, sizeof text, "%s:0.5|/nonexistent/x.safetensors", p1);
  CHECK_OK (dit_lora_spec_parse (text, &sp));
  dit_status e = dit_lora_set_update (set, &sp);
  CHECK (e != DIT_OK && strstr (dit_last_error (), "/nonexistent/x.safetensors"),
      "bad file: %s", dit_last_error ());
  CHECK (dit_lora_set_digest_of (set) == digest && dit_lora_set_spec (set)->count
      == 2 && dit_lora_set_spec (set)->items[0].strength == 0.1f,
      "the previous list stays applied");
  /* a synthetic item and the same file twice */
  snprintf (text, sizeof text, "@synthetic:16:0.5|%s|%s:2", p2, p2);
  CHECK_OK (dit_lora_spec_parse (text, &sp));
  CHECK (sp.count == 3 && strcmp (sp.items[0].path, "@synthetic:16") == 0
      && sp.items[0].strength == 0.5f, "synthetic item parsed");
  CHECK_OK (dit_lora_set_update (set, &sp));
  side = dit_lora_state_side (st, "blocks.1.ffn.2");
  CHECK (side && side->rank == 16, "synthetic rank 16 on ffn.2");
  CHECK_OK (dit_lora_spec_parse ("@synthetic:x", &sp));
  CHECK (dit_lora_set_update (set, &sp) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "1..4096"), "bad synthetic rank: %s",
      dit_last_error ());
  uint64_t d0 = 1;
  dit_lora_spec none = { 0 };
  CHECK_OK (dit_lora_spec_digest (&none, DIT_LORA_MERGE, &cfg, &d0));
  CHECK (d0 == 0, "no LoRA: digest 0");
  CHECK_OK (dit_lora_spec_parse ("/nonexistent/y.safetensors", &sp));
  CHECK (dit_lora_spec_digest (&sp, DIT_LORA_MERGE, &cfg, &d0) != DIT_OK
      && strstr (dit_last_error (), "/nonexistent/y.safetensors"),
      "spec digest of a missing file: %s", dit_last_error ());
  dit_lora_set_free (set);
  dit_weights_free (w);
}

int
main (void)
{
  be = dit_backend_cpu ();
  snprintf (tmpdir, sizeof tmpdir, "/tmp/test-lora-XXXXXX");
  if (!mkdtemp (tmpdir)) {
    perror ("mkdtemp");
    return 1;
  }
  CHECK_OK (dit_model_config_preset ("tiny", &cfg));
  CHECK_OK (dit_model_config_params (&cfg, &specs, &nspecs));
  fwd_init ();
  dit_weights *base = fresh_weights ();

  lora_def d1, d2;
  def_main (&d1);
  def_second (&d2);
  test_layouts (&d1, base);
  char p1[512], p2[512];
  tmp_path (p1, sizeof p1, "one.safetensors");
  tmp_path (p2, sizeof p2, "two.safetensors");
  def_write (&d1, L_PEFT_AB, p1);
  def_write (&d2, L_KOHYA, p2);
  dit_lora *l1 = open_lora (p1), *l2 = open_lora (p2);
  if (l1 && l2)
    test_merge_live (&d1, &d2, l1, l2, base);
  dit_lora_free (l1);
  dit_lora_free (l2);
  test_set (p1, p2);
  test_deltas (base);
  test_synthetic (base);
  test_refusals ();
  test_spec_parse ();

  def_free (&d1);
  def_free (&d2);
  dit_weights_free (base);
  free (specs);
  free (F.eb);
  free (F.xb);
  char cmd[300];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmpdir);
  printf ("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
