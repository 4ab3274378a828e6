/* test_runner — mesh/dit_runner.h on the CPU, with Stage 0
 * (model/dit_stage0.h) supplying the contexts as the element does:
 *
 *  - in process: 4 chunks through the runner equal dit_generator_run_chunk
 *    on the same contexts, bit for bit;
 *  - on a mesh of 2 dit-worker ranks (TP 2, CPU comm) from a spec parsed
 *    by dit_mesh_spec_parse: the same 4 chunks equal the in-process ones
 *    within the TP tests' limit (rel 2e-5: the TP sums add the same
 *    products in another order); the spawned ranks' pids are reported and
 *    gone after free;
 *  - the same rollout with submit and collect apart;
 *  - no host copy per chunk on the CPU (the counter of dit_host_copies_get
 *    as the runner reports it, and as read around the whole chunk);
 *  - misuse: a second submit with one in flight, a collect with none, a
 *    runner without weights;
 *  - co-location (mesh-colocate on: mesh rank 0 on a thread of this
 *    process, its data plane an in-process hand-off, rank 1's relayed on
 *    the mesh comm) gives the latents of the spawned layout bit for bit,
 *    under TP 2 and SP 2, over the 4 chunks (3 with a context recompute);
 *    rank 0 has no pid there, rank 1 is spawned and gone after free.
 *
 *   test-runner DIT_WORKER
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_mesh_config.h"
#include "dit_runner.h"
#include "dit_stage0.h"
#include "dit_weights.h"
#include "../common/mesh_check.h"
#include "../common/runner_rollout.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNKS = 4, LAT = 16 * 3 * 4 * 6 };

static const char *worker;
static dit_backend *be;
static dit_model_config mc;
static dit_gen_config gc;
static dit_weights *w;
static float prompt[5 * 64];

static void
setup (void)
{
  dit_param_spec *specs;
  size_t count;
  be = dit_backend_cpu ();
  dit_model_config_preset ("tiny", &mc);
  dit_gen_config_default (&gc);
  gc.latent_h = 4;
  gc.latent_w = 6;
  gc.seed = 7;
  dit_model_config_params (&mc, &specs, &count);
  /* seed 11: the workers' synthetic weights (synthetic_seed below) */
  dit_weights_synthetic (specs, count, 11, DIT_F32, be, &w);
  free (specs);
  for (int i = 0; i < 5 * 64; i++)
    prompt[i] = (float) sin (0.21 * i);
}

/* A rollout of CHUNKS chunks: contexts from Stage 0 (anchor = latent, no
 * VAE), x0 copied into out[k].  split: submit and collect apart. */
static int
rollout (dit_runner *r, int split, float (*out)[LAT], uint64_t *copies)
{
  dit_stage0 *s0;
  if (runner_rollout_begin (r, &gc, be, prompt, &s0))
    return 1;
  *copies = 0;
  for (int k = 0; k < CHUNKS; k++) {
    dit_host_copies c0, c1;
    dit_tensor ctx, x0;
    dit_host_copies_get (&c0);
    if (dit_stage0_context (s0, k, dit_runner_backend (r), &ctx) != DIT_OK)
      FAIL ("context %d: %s", k, dit_last_error ());
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    dit_status st;
    if (split) {
      st = dit_runner_submit (r, &req);
      if (st == DIT_OK && dit_runner_submit (r, &req) != DIT_ERR_STATE)
        FAIL ("a second submit with a chunk in flight was taken");
      if (st == DIT_OK)
        st = dit_runner_collect (r, &x0, NULL);
    } else {
      st = dit_runner_run_chunk (r, &req, &x0, NULL);
    }
    if (st != DIT_OK)
      FAIL ("chunk %d: %s", k, dit_last_error ());
    if (x0.device != DIT_DEVICE_CPU || x0.shape[1] != 3 || x0.dtype != DIT_F32)
      FAIL ("x0 is not a host f32 [16, 3, 4, 6]");
    memcpy (out[k], x0.data, sizeof out[k]);
    if (dit_stage0_push_chunk (s0, k, &x0, dit_runner_backend (r)) != DIT_OK)
      FAIL ("push %d: %s", k, dit_last_error ());
    dit_host_copies_get (&c1);
    dit_runner_stats rs;
    dit_runner_get_stats (r, &rs);
    *copies += c1.uploads - c0.uploads + c1.downloads - c0.downloads
        + rs.last_copies.uploads + rs.last_copies.downloads;
  }
  dit_tensor x0;
  if (dit_runner_collect (r, &x0, NULL) != DIT_ERR_STATE)
    FAIL ("a collect with nothing in flight was taken");
  dit_stage0_free (s0);
  return 0;
}

int
main (int argc, char **argv)
{
  static float ref[CHUNKS][LAT], local[CHUNKS][LAT], mesh[CHUNKS][LAT];
  static float mesh_split[CHUNKS][LAT];
  dit_runner_config rc;
  dit_runner *r;
  uint64_t copies;
  if (argc != 2) {
    fprintf (stderr, "usage: test-runner DIT_WORKER\n");
    return 2;
  }
  worker = argv[1];
  setup ();

  /* the reference: the generator directly, contexts by dit_context */
  {
    dit_generator *g;
    dit_context *ctx;
    static float cbuf[LAT];
    int64_t shape[4] = { 16, 3, 4, 6 };
    if (dit_generator_create (&mc, &gc, w, be, &g) != DIT_OK
        || dit_context_create (3, 3, 4, 6, DIT_ANCHOR_LATENT, &ctx) != DIT_OK)
      FAIL ("reference: %s", dit_last_error ());
    dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 5, 64);
    dit_generator_set_prompt (g, &pt);
    for (int k = 0; k < CHUNKS; k++) {
      dit_tensor ct = dit_tensor_make (cbuf, DIT_F32, DIT_DEVICE_CPU, 4, shape);
      dit_tensor ot = dit_tensor_make (ref[k], DIT_F32, DIT_DEVICE_CPU, 4, shape);
      if (k > 0)
        dit_context_build (ctx, k, cbuf);
      dit_chunk_request req = { .chunk_index = k, .context = k ? &ct : NULL };
      if (dit_generator_run_chunk (g, &req, &ot, NULL) != DIT_OK)
        FAIL ("reference chunk %d: %s", k, dit_last_error ());
      dit_context_push_chunk (ctx, k, ref[k]);
    }
    dit_context_free (ctx);
    dit_generator_free (g);
  }

  /* in process */
  dit_runner_config_default (&rc);
  rc.model = mc;
  rc.gen = gc;
  if (dit_runner_create (&rc, be, &r) == DIT_OK)
    FAIL ("a runner without weights or mesh was made");
  rc.weights = w;
  if (dit_runner_create (&rc, be, &r) != DIT_OK)
    FAIL ("runner: %s", dit_last_error ());
  if (dit_runner_is_mesh (r) || rollout (r, 0, local, &copies))
    return 1;
  dit_runner_free (r);
  if (memcmp (local, ref, sizeof ref) != 0)
    FAIL ("the in-process runner differs from the generator");
  if (copies != 0)
    FAIL ("%llu host copies in process on the CPU", (unsigned long long) copies);

  /* on a mesh of two workers, from parsed settings */
  dit_mesh_options o;
  dit_mesh_spec spec;
  dit_mesh_options_init (&o);
  o.devices = "0,1";
  o.backend = "cpu";
  o.worker_path = worker;
  o.join_timeout_ms = 20000;
  if (dit_mesh_spec_parse (&o, &spec) != DIT_OK)
    FAIL ("spec: %s", dit_last_error ());
  rc.weights = NULL;
  rc.mesh = &spec;
  rc.preset = "tiny";
  rc.synthetic_seed = 11;
  for (int split = 0; split < 2; split++) {
    float (*out)[LAT] = split ? mesh_split : mesh;
    if (dit_runner_create (&rc, be, &r) != DIT_OK)
      FAIL ("mesh runner: %s", dit_last_error ());
    dit_runner_stats rs;
    dit_runner_get_stats (r, &rs);
    if (!dit_runner_is_mesh (r) || rs.ranks != 2 || rs.pids[0] <= 0
        || rs.pids[1] <= 0)
      FAIL ("mesh stats: %d ranks, pids %d %d", rs.ranks, rs.pids[0], rs.pids[1]);
    if (rollout (r, split, out, &copies))
      return 1;
    if (copies != 0)
      FAIL ("%llu host copies on the CPU mesh", (unsigned long long) copies);
    if (dit_runner_idle (r) != DIT_OK)
      FAIL ("idle: %s", dit_last_error ());
    if (dit_runner_shutdown (r) != DIT_OK)
      FAIL ("shutdown: %s", dit_last_error ());
    dit_runner_free (r);
    if (kill (rs.pids[0], 0) == 0 || kill (rs.pids[1], 0) == 0)
      FAIL ("a worker outlived the runner");
  }
  double mref, diff = max_abs_diff (mesh[0], ref[0], CHUNKS * LAT, &mref);
  printf ("runner on a TP 2 mesh vs in process, %d chunks: max |diff| %.3g "
      "(limit %.3g)\n", CHUNKS, diff, MESH_REL_LIMIT * mref);
  if (!within_mesh_limit (diff, mref))
    FAIL ("the mesh runner differs from the in-process one: %.3g", diff);
  if (memcmp (mesh, mesh_split, sizeof mesh) != 0)
    FAIL ("submit + collect differs from run_chunk on the mesh");

  /* co-located against spawned, TP 2 and SP 2 */
  static const char *const layouts[2] = { "tp", "sp" };
  for (int l = 0; l < 2; l++) {
    static float spawned[CHUNKS][LAT], coloc[CHUNKS][LAT];
    for (int on = 0; on < 2; on++) {
      o.layout = layouts[l];
      o.colocate = on ? "on" : "off";
      if (dit_mesh_spec_parse (&o, &spec) != DIT_OK)
        FAIL ("spec %s: %s", layouts[l], dit_last_error ());
      if (dit_runner_create (&rc, be, &r) != DIT_OK)
        FAIL ("%s runner, colocate %d: %s", layouts[l], on, dit_last_error ());
      if (rollout (r, on, on ? coloc : spawned, &copies))
        return 1;
      dit_runner_stats rs;
      dit_runner_get_stats (r, &rs);
      if (rs.colocated != on || (on ? rs.pids[0] != 0 : rs.pids[0] <= 0)
          || rs.pids[1] <= 0)
        FAIL ("%s, colocate %d: stats say colocated %d, pids %d %d",
            layouts[l], on, rs.colocated, rs.pids[0], rs.pids[1]);
      if (dit_runner_shutdown (r) != DIT_OK)
        FAIL ("%s, colocate %d: shutdown: %s", layouts[l], on,
            dit_last_error ());
      dit_runner_free (r);
      if (kill (rs.pids[1], 0) == 0)
        FAIL ("worker rank 1 outlived the runner");
    }
    if (memcmp (spawned, coloc, sizeof spawned) != 0)
      FAIL ("%s: the co-located rank 0 gives other latents than the spawned "
          "one", layouts[l]);
    if (l == 0 && memcmp (spawned, mesh, sizeof mesh) != 0)
      FAIL ("tp: colocate off differs from the first mesh rollout");
    printf ("%s 2: co-located rank 0 equals the spawned one bit for bit over "
        "%d chunks\n", layouts[l], CHUNKS);
  }
  dit_weights_free (w);
  return no_children_left () ? 0 : 1;
}
