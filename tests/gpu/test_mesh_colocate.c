/* test_mesh_colocate — mesh rank 0 co-located with Stage 0 on one GPU
 * against the same rank as a dit-worker process, and both against the
 * generator in this process.
 *
 *   test-mesh-colocate DIT_WORKER [PRESET]   (PRESET: only that case)
 *
 * Stage 0 is this process with a CUDA backend on GPU 0 (the runner's, and
 * the mesh's world_backend); the mesh is one rank on GPU 0 (mesh-devices
 * 0, backend cuda), so the two layouts of one GPU are compared:
 *   colocate off  rank 0 is a dit-worker process time-slicing the GPU with
 *                 this one; the data plane falls back to the CPU comm
 *                 through host memory (NCCL takes one member per GPU);
 *   colocate on   rank 0 is a thread of this process with its own backend
 *                 (its own stream, same GPU and context); the data plane is
 *                 the in-process hand-off, device to device.
 * Checks, 3-chunk rollouts (chunk k > 0 takes chunk k - 1 as its context,
 * so it recomputes the cache with the kv-bias range), relative L2 over the
 * three chunks:
 *   on against off: 0 (the same kernels on the same GPU and the same data:
 *     the hand-off moves bytes, it does not round);
 *   on against the in-process generator (the runner without a mesh, the
 *     same synthetic weights: TP 1 shards equal the full weights):
 *     tiny-tp f32 <= 1e-5, a wan-14b 2-layer slice bf16 <= 2e-2 (the
 *     workers record CUDA graphs, the in-process runner runs eagerly);
 *   the co-located run says so (dit_runner_stats.colocated) and has no
 *     pid for rank 0; the spawned one does.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_mesh_config.h"
#include "dit_runner.h"
#include "dit_tp.h"
#include "../common/test_random.h"

#define CHUNKS 3

typedef struct ccase {
  const char *preset;
  int layers;                  /* 0 = the preset's */
  dit_dtype dtype;
  int latent_h, latent_w;
  double limit;                /* against the in-process generator */
} ccase;

static const ccase cases[] = {
  { "tiny-tp", 0, DIT_F32, 4, 8, 1e-5 },
  { "wan-14b", 2, DIT_BF16, 16, 16, 2e-2 },
};

static const char *worker;
static int failures;

static void
fill_prompt (float *p, int64_t n)
{
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int64_t i = 0; i < n; i++)
    p[i] = (float) (lcg64_unit (&s) - 0.5);
}

static double
rel_l2 (const float *a, const float *b, int64_t n)
{
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double) a[i] - b[i];
    num += d * d;
    den += (double) b[i] * b[i];
  }
  return den > 0 ? sqrt (num / den) : INFINITY;
}

/* A rollout through a runner (mesh: `colocate` "off"/"on"; NULL = in
 * process with `w`), x0 of every chunk into out (host). */
static dit_status
rollout (const ccase *c, dit_backend *be, dit_weights *w, const char *colocate,
    float *out, dit_runner_stats *rs)
{
  dit_runner_config rc;
  dit_mesh_options o;
  dit_mesh_spec spec;
  dit_runner *r = NULL;
  float *prompt = NULL;
  dit_runner_config_default (&rc);
  dit_status st = dit_model_config_preset (c->preset, &rc.model);
  if (c->layers)
    rc.model.num_layers = c->layers;
  rc.gen.latent_h = c->latent_h;
  rc.gen.latent_w = c->latent_w;
  rc.gen.seed = 7;
  rc.gen.dtype = c->dtype;
  rc.preset = c->preset;
  rc.layers = c->layers;
  rc.synthetic_seed = 11;
  if (colocate) {
    dit_mesh_options_init (&o);
    o.devices = "0";
    o.backend = "cuda";
    o.stage0_device = "cuda:0";
    o.colocate = colocate;
    o.worker_path = worker;
    o.join_timeout_ms = 120000;
    o.timeout_ms = 60000;
    if (st == DIT_OK)
      st = dit_mesh_spec_parse (&o, &spec);
    rc.mesh = &spec;
  } else {
    rc.weights = w;
  }
  if (st == DIT_OK)
    st = dit_runner_create (&rc, be, &r);
  const int64_t tl = rc.model.text_dim * 7;
  if (st == DIT_OK && !(prompt = malloc ((size_t) tl * sizeof (float))))
    st = dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
  if (st == DIT_OK) {
    fill_prompt (prompt, tl);
    dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 7,
        rc.model.text_dim);
    st = dit_runner_set_prompt (r, &pt);
  }
  const int64_t n = 16LL * 3 * c->latent_h * c->latent_w;
  int64_t shape[4] = { 16, 3, c->latent_h, c->latent_w };
  for (int k = 0; k < CHUNKS && st == DIT_OK; k++) {
    dit_tensor ctx, x0;
    dit_chunk_request req = { .chunk_index = k };
    if (k > 0) {
      ctx = dit_tensor_make (out + (k - 1) * n, DIT_F32, DIT_DEVICE_CPU, 4,
          shape);
      req.context = &ctx;
    }
    st = dit_runner_run_chunk (r, &req, &x0, NULL);
    if (st == DIT_OK)
      st = x0.device == DIT_DEVICE_CPU
          ? (memcpy (out + k * n, x0.data, (size_t) n * sizeof (float)), DIT_OK)
          : dit_download (be, out + k * n, x0.data, (size_t) n * sizeof (float));
  }
  if (st == DIT_OK)
    dit_runner_get_stats (r, rs);
  if (st == DIT_OK && colocate)
    st = dit_runner_shutdown (r);
  char msg[1024];
  snprintf (msg, sizeof msg, "%s", dit_last_error ());
  dit_runner_free (r);
  free (prompt);
  if (st != DIT_OK)
    return dit_error (st, "%s", msg);
  return DIT_OK;
}

static void
check (int ok, const char *what, double v, double limit)
{
  printf ("%s %-58s %.3g (limit %.3g)\n", ok ? "ok  " : "FAIL", what, v, limit);
  if (!ok)
    failures++;
}

static void
run_case (const ccase *c, dit_backend *be)
{
  dit_model_config mc;
  dit_weights *w = NULL;
  dit_runner_stats rs_off, rs_on, rs_ref;
  const int64_t n = 16LL * 3 * c->latent_h * c->latent_w;
  float *ref = malloc ((size_t) (CHUNKS * n) * sizeof (float));
  float *off = malloc ((size_t) (CHUNKS * n) * sizeof (float));
  float *on = malloc ((size_t) (CHUNKS * n) * sizeof (float));
  char what[160];
  dit_status st = ref && off && on ? DIT_OK : dit_error (DIT_ERR_NOMEM, "oom");
  if (st == DIT_OK)
    st = dit_model_config_preset (c->preset, &mc);
  if (c->layers)
    mc.num_layers = c->layers;
  if (st == DIT_OK)
    st = dit_tp_weights_synthetic (&mc, 1, 0, 11, c->dtype, be, &w);
  if (st == DIT_OK)
    st = rollout (c, be, w, NULL, ref, &rs_ref);
  dit_weights_free (w);
  if (st == DIT_OK)
    st = rollout (c, be, NULL, "off", off, &rs_off);
  if (st == DIT_OK)
    st = rollout (c, be, NULL, "on", on, &rs_on);
  if (st != DIT_OK) {
    printf ("FAIL %s: %s\n", c->preset, dit_last_error ());
    failures++;
  } else {
    snprintf (what, sizeof what, "%s %s: co-located vs spawned rank 0, rel L2",
        c->preset, dit_dtype_name (c->dtype));
    double e = rel_l2 (on, off, CHUNKS * n);
    check (e == 0.0, what, e, 0.0);
    snprintf (what, sizeof what, "%s %s: co-located vs in process, rel L2",
        c->preset, dit_dtype_name (c->dtype));
    e = rel_l2 (on, ref, CHUNKS * n);
    check (e <= c->limit, what, e, c->limit);
    snprintf (what, sizeof what, "%s: stats (colocated on/off, rank 0 pid)",
        c->preset);
    int ok = rs_on.colocated == 1 && rs_on.pids[0] == 0 && rs_off.colocated == 0
        && rs_off.pids[0] > 0;
    check (ok, what, ok, 1);
  }
  free (ref);
  free (off);
  free (on);
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: test-mesh-colocate DIT_WORKER [PRESET]\n");
    return 2;
  }
  worker = argv[1];
  dit_backend *be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("no CUDA device: %s\n", dit_last_error ());
    return 77;
  }
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    if (argc < 3 || strcmp (argv[2], cases[i].preset) == 0)
      run_case (&cases[i], be);
  dit_backend_destroy (be);
  printf ("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
