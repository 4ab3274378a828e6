/* test_lora_mesh — LoRAs on a generator mesh (tiny DiT, dit-worker ranks
 * on the CPU comm):
 *
 *  rollout   4 chunks through a runner with two seeded LoRAs, the list
 *            changed after chunk 1 (new strengths) and after chunk 2 (one
 *            LoRA dropped): on a TP 2 and an SP 2 mesh (factors cut with
 *            their layer, or whole), in lora-mode=merge and =live, they
 *            equal the in-process runner with the same changes
 *            within the TP tests' limit (rel 2e-5), and differ from a
 *            rollout without LoRAs by far more; a list naming a file that
 *            cannot be read is refused on rank 0 naming it, before any
 *            worker sees it, and the mesh goes on with the previous list;
 *  rollout-hybrid  the same on a hybrid SP 2 x TP 2 mesh of 4 ranks
 *            (tiny-tp: 4 heads, so each TP shard's 2 heads split across
 *            the SP pair);
 *  mismatch  an INFER whose LoRA digest is not what the workers compute
 *            from its list (ranks that would run different LoRAs) is
 *            answered by every rank with an error naming the rank and the
 *            LoRA digest, and the mesh fails;
 *  missing   an INFER of a new LoRA epoch without the list's text is
 *            refused naming the rank.
 *
 *   test-lora-mesh CASE DIT_WORKER
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_lora.h"
#include "dit_mesh.h"
#include "dit_mesh_config.h"
#include "dit_runner.h"
#include "dit_stage0.h"
#include "dit_weights.h"
#include "envelope.h"
#include "../common/mesh_check.h"
#include "../common/runner_rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNKS = 4, LAT = 16 * 3 * 4 * 6 };

static const char *worker;
static const char *preset = "tiny";
static dit_backend *be;
static dit_model_config mc;
static dit_gen_config gc;
static float prompt[5 * 64];

/* the list in force from chunk k on */
static const char *const lists[CHUNKS] = {
  "@synthetic:8:0.7|@synthetic:4:-0.5",
  "@synthetic:8:0.7|@synthetic:4:-0.5",
  "@synthetic:8:-0.25|@synthetic:4:0.9",
  "@synthetic:4:0.9",
};

static int
set_list (dit_runner *r, const char *text)
{
  dit_lora_spec spec;
  if (dit_lora_spec_parse (text, &spec) != DIT_OK
      || dit_runner_set_lora (r, &spec) != DIT_OK)
    FAIL ("lora '%s': %s", text, dit_last_error ());
  return 0;
}

/* CHUNKS chunks with contexts from Stage 0 (anchor = latent, no VAE); the
 * list of lists[k] before chunk k when with_lora. */
static int
rollout (dit_runner *r, int with_lora, float (*out)[LAT])
{
  dit_stage0 *s0;
  if (runner_rollout_begin (r, &gc, be, prompt, &s0))
    return 1;
  for (int k = 0; k < CHUNKS; k++) {
    dit_tensor ctx, x0;
    if (with_lora && (k == 0 || strcmp (lists[k], lists[k - 1]) != 0)
        && set_list (r, lists[k]))
      return 1;
    if (dit_stage0_context (s0, k, dit_runner_backend (r), &ctx) != DIT_OK)
      FAIL ("context %d: %s", k, dit_last_error ());
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    if (dit_runner_run_chunk (r, &req, &x0, NULL) != DIT_OK)
      FAIL ("chunk %d: %s", k, dit_last_error ());
    memcpy (out[k], x0.data, sizeof out[k]);
    if (dit_stage0_push_chunk (s0, k, &x0, dit_runner_backend (r)) != DIT_OK)
      FAIL ("push %d: %s", k, dit_last_error ());
    /* a file that cannot be read: refused on rank 0, the list stays */
    if (with_lora && k == 1) {
      dit_lora_spec bad;
      uint64_t before = dit_runner_lora_digest (r);
      dit_lora_spec_parse ("/nonexistent/dir/style.safetensors:0.8", &bad);
      if (dit_runner_set_lora (r, &bad) == DIT_OK
          || !strstr (dit_last_error (), "style.safetensors"))
        FAIL ("an unreadable LoRA was taken or not named: '%s'",
            dit_last_error ());
      if (dit_runner_lora_digest (r) != before)
        FAIL ("a refused list changed the digest in force");
    }
  }
  dit_stage0_free (s0);
  return 0;
}

/* max |a - b| over the rollout's chunks; *scale: max |b|. */
static double
max_diff (float (*a)[LAT], float (*b)[LAT], double *scale)
{
  return max_abs_diff (a[0], b[0], CHUNKS * LAT, scale);
}

static void
runner_config (dit_runner_config *rc, dit_weights *w, const dit_mesh_spec *spec,
    dit_lora_mode mode)
{
  dit_runner_config_default (rc);
  rc->model = mc;
  rc->gen = gc;
  rc->weights = w;
  rc->mesh = spec;
  rc->preset = preset;
  rc->synthetic_seed = 11;   /* the in-process weights' seed */
  rc->lora_mode = mode;
}

/* Each of `layouts` over `devices` (hybrid: TP 2 inside). */
static int
t_rollout (const char *const *layouts, int n_layouts, const char *devices)
{
  static float none[CHUNKS][LAT], local[2][CHUNKS][LAT], mesh[2][CHUNKS][LAT];
  dit_param_spec *specs;
  size_t count;
  dit_weights *w;
  dit_runner_config rc;
  dit_runner *r;
  dit_model_config_params (&mc, &specs, &count);
  if (dit_weights_synthetic (specs, count, 11, DIT_F32, be, &w) != DIT_OK)
    FAIL ("weights: %s", dit_last_error ());
  free (specs);

  runner_config (&rc, w, NULL, DIT_LORA_MERGE);
  if (dit_runner_create (&rc, be, &r) != DIT_OK || rollout (r, 0, none))
    FAIL ("in process without LoRAs: %s", dit_last_error ());
  dit_runner_free (r);

  dit_mesh_options o;
  dit_mesh_spec spec;
  for (int lay = 0; lay < n_layouts; lay++)
  for (int mode = 0; mode < 2; mode++) {
    dit_mesh_options_init (&o);
    o.devices = devices;
    o.backend = "cpu";
    o.layout = layouts[lay];
    if (!strcmp (layouts[lay], "hybrid"))
      o.mesh_tp = 2;
    o.worker_path = worker;
    o.join_timeout_ms = 20000;
    if (dit_mesh_spec_parse (&o, &spec) != DIT_OK)
      FAIL ("spec: %s", dit_last_error ());
    const char *name = dit_lora_mode_name ((dit_lora_mode) mode);
    double scale, d, moved;
    runner_config (&rc, w, NULL, (dit_lora_mode) mode);
    if (dit_runner_create (&rc, be, &r) != DIT_OK)
      FAIL ("in process: %s", dit_last_error ());
    if (rollout (r, 1, local[mode]))
      return 1;
    dit_runner_free (r);
    runner_config (&rc, NULL, &spec, (dit_lora_mode) mode);
    if (dit_runner_create (&rc, be, &r) != DIT_OK)
      FAIL ("mesh: %s", dit_last_error ());
    if (rollout (r, 1, mesh[mode]))
      return 1;
    if (dit_runner_shutdown (r) != DIT_OK)
      FAIL ("shutdown: %s", dit_last_error ());
    dit_runner_free (r);
    d = max_diff (mesh[mode], local[mode], &scale);
    moved = max_diff (none, local[mode], &scale);
    printf ("lora-mode=%s: %s mesh on %s vs in process, %d chunks with list "
        "changes: max |diff| %.3g (limit %.3g); the LoRAs move the output by "
        "%.3g\n", name, layouts[lay], devices, CHUNKS, d,
        MESH_REL_LIMIT * scale, moved);
    if (!within_mesh_limit (d, scale))
      FAIL ("%s, %s: the mesh differs from the in-process runner: %.3g",
          layouts[lay], name, d);
    if (!(moved > 1e3 * d && moved > 1e-3 * scale))
      FAIL ("%s: the LoRAs hardly change the output (%.3g): the test cannot "
          "tell a LoRA the workers missed", name, moved);
  }
  /* the modes agree with each other within f32 rounding */
  double scale, d = max_diff (mesh[1], mesh[0], &scale);
  if (!(d <= 1e-4 * scale))
    FAIL ("live differs from merge on the mesh: %.3g", d);
  dit_weights_free (w);
  return no_children_left () ? 0 : 1;
}

/* A mesh with one chunk run and the list set, for the raw INFERs. */
static int
mesh_with_list (dit_mesh **m, dit_chunk_plan *plan)
{
  dit_mesh_config c;
  dit_lora_spec spec;
  float x[LAT];
  int64_t shape[4] = { 16, 3, 4, 6 };
  dit_mesh_config_default (&c);
  c.preset = "tiny";
  c.ranks = 2;
  c.worker_path = worker;
  c.gen = gc;
  c.synthetic_seed = 11;
  c.join_timeout_ms = 20000;
  c.chunk_timeout_ms = 10000;
  if (dit_mesh_create (&c, m) != DIT_OK)
    FAIL ("mesh: %s", dit_last_error ());
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 5, 64);
  dit_lora_spec_parse (lists[0], &spec);
  if (dit_mesh_set_prompt (*m, &pt) != DIT_OK
      || dit_mesh_set_lora (*m, DIT_LORA_MERGE, &spec) != DIT_OK)
    FAIL ("prompt, lora: %s", dit_last_error ());
  dit_tensor out = dit_tensor_make (x, DIT_F32, DIT_DEVICE_CPU, 4, shape);
  dit_chunk_request req = { .chunk_index = 0 };
  if (dit_mesh_run_chunk (*m, &req, &out, NULL) != DIT_OK)
    FAIL ("chunk 0: %s", dit_last_error ());
  if (dit_chunk_plan_make (&gc, dit_mesh_schedule (*m), 0, 0, plan) != DIT_OK)
    FAIL ("plan: %s", dit_last_error ());
  return 0;
}

static int
raw_infer (dit_mesh *m, const dit_chunk_plan *plan, uint64_t lora_epoch,
    const char *list, uint64_t digest, const char *expect)
{
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_INFER;
  e.call_id = 90;
  e.plan = *plan;
  e.prompt_epoch = dit_mesh_prompt_epoch (m);
  e.lora_epoch = lora_epoch;
  e.lora_digest = digest;
  snprintf (e.lora, sizeof e.lora, "%s", list);
  if (dit_mesh_send_envelope (m, &e) != DIT_OK)
    FAIL ("send: %s", dit_last_error ());
  if (dit_mesh_collect (m, NULL, NULL, NULL) == DIT_OK)
    FAIL ("an INFER with a LoRA list the ranks cannot agree on was served");
  printf ("%s\n", dit_last_error ());
  if (!strstr (dit_last_error (), "worker rank 0")
      || !strstr (dit_last_error (), "worker rank 1")
      || !strstr (dit_last_error (), expect))
    FAIL ("message: '%s'", dit_last_error ());
  return 0;
}

/* An INFER of LoRA epoch 2 carrying `list` under the digest in force
 * XOR digest_xor, on a mesh that has the first list. */
static int
t_refused_infer (const char *list, uint64_t digest_xor, const char *expect)
{
  dit_mesh *m;
  dit_chunk_plan plan;
  if (mesh_with_list (&m, &plan))
    return 1;
  if (raw_infer (m, &plan, 2, list, dit_mesh_lora_digest (m) ^ digest_xor,
          expect))
    return 1;
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc != 3) {
    fprintf (stderr, "usage: test-lora-mesh rollout|rollout-hybrid|mismatch|"
        "missing DIT_WORKER\n");
    return 2;
  }
  worker = argv[2];
  be = dit_backend_cpu ();
  if (!strcmp (argv[1], "rollout-hybrid"))
    preset = "tiny-tp";
  dit_model_config_preset (preset, &mc);
  dit_gen_config_default (&gc);
  gc.latent_h = 4;
  gc.latent_w = 6;
  gc.seed = 7;
  for (int i = 0; i < 5 * 64; i++)
    prompt[i] = (float) sin (0.21 * i);
  static const char *const tp_sp[] = { "tp", "sp" }, *const hybrid[] = {
    "hybrid" };
  if (!strcmp (argv[1], "rollout"))
    return t_rollout (tp_sp, 2, "0,1");
  if (!strcmp (argv[1], "rollout-hybrid"))
    return t_rollout (hybrid, 1, "0,1,2,3");
  /* the list the workers have, under another digest: what a rank whose
   * file differs would see */
  if (!strcmp (argv[1], "mismatch"))
    return t_refused_infer (lists[2], 1, "LoRA digest");
  /* a new epoch without the list's text */
  if (!strcmp (argv[1], "missing"))
    return t_refused_infer ("", 0, "the new list never reached it");
  fprintf (stderr, "unknown case '%s'\n", argv[1]);
  return 2;
}
