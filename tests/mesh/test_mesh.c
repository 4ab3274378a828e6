/* test_mesh — the generator mesh with dit-worker processes on the CPU comm.
 *
 *   test-mesh SUBTEST /path/to/dit-worker [tp|sp|hybrid [colocate]]
 *
 * The layout (default tp) applies to every subtest's mesh: the break-it
 * subtests run once per layout (meson: mesh-NAME and mesh-sp-NAME); 2-rank
 * meshes become 4 ranks in hybrid (SP 2 x TP 2, preset tiny-tp).  With
 * `colocate` mesh rank 0 runs on a thread of this process (mesh colocate
 * on; meson: mesh-colocate-NAME): rank 0 has no pid, so kill-worker and
 * stall-worker hit rank 1 as always (a spawned rank dying or stopping
 * while rank 0 runs in process), world-cut is the in-process rank failing
 * (named worker rank 0, at once), and the thread must be gone when the
 * mesh is freed (dit_mesh_free joins it; a hang is the test's timeout).
 *
 * rollout            2 ranks, 3 chunks: equals the single-device generator
 *                    (f32 rounding), drift check on every chunk, clean
 *                    SHUTDOWN with every worker exiting 0
 * bad-envelope       an invalid envelope fails on the sender and nothing is
 *                    sent: the worker keeps serving the next chunk
 * call-count         a plan whose call count the worker would not make is
 *                    answered with a clear error naming the rank
 * parity-fingerprint a worker with other weights (seed) is refused at join
 * parity-config      a worker with another preset is refused at join
 * parity-layout      a worker in another layout (sp against tp, tp against
 *                    sp or hybrid) is refused at join naming the layouts
 * parity-mesh-tp     (hybrid only) a worker of the same layout and rank
 *                    count whose groups differ (TP 4 inside a group against
 *                    the mesh's SP 2 x TP 2) is refused at join naming its
 *                    rank and the field mesh_tp.  A dit-worker checks its
 *                    own degrees against the preset before joining, and no
 *                    CPU-sized preset has two hybrid splits of one rank
 *                    count (wan-14b on 8 ranks has: SP 4 x TP 2 and
 *                    SP 2 x TP 4), so a child of the test joins as
 *                    worker rank 1 with that JOIN, every other field
 *                    matching the mesh (meson: mesh-hybrid-parity-mesh-tp)
 * stale-epoch        a result of a call from before an epoch bump is dropped
 * kill-worker        SIGKILL of rank 1 mid-chunk: error naming rank 1 and the
 *                    signal, well within the chunk timeout
 * kill-rank0         SIGKILL of the process that owns the mesh: its workers
 *                    exit by themselves within a few seconds
 * kill-rank0-world   the same while the workers wait in a world-comm
 *                    receive (a second INFER's deferred data): exit 3
 * stall-worker       SIGSTOP of rank 1: a timeout error naming rank 1
 * shutdown-inflight  SHUTDOWN with two chunks in flight: drained, all exit 0
 * prompt-switch      a prompt switch after chunk 1 on 2 ranks equals the
 *                    single-device generator with the same switch; the
 *                    prompt epoch advances once per dit_mesh_set_prompt
 * prompt-missing     an INFER of a newer prompt epoch without the prompt
 *                    tensor is answered with an error naming the rank
 * layers             layers = 1 on 2 ranks equals a 1-layer single device
 * parity-layers      a worker with another --layers is refused at join
 * parity-dtype       a worker in another precision (--dtype fp8 against an
 *                    f32 mesh) is refused at join, both named
 * heartbeat          dit_mesh_ping round-trips NOOPs; it sends nothing while
 *                    the mesh was busy within heartbeat_ms; a stopped
 *                    worker fails the ping with an error naming its rank
 * refuse-nccl        (builds without NCCL) backend cuda at TP 2: the worker
 *                    refuses to join with the reason, no hang; skipped in
 *                    builds with NCCL (tests/gpu/test_mesh_nccl.c)
 * allreduce-time     the per-rank all-reduce time of a chunk is > 0 (and
 *                    below the chunk's total) at TP 2 and 0 at TP 1; its
 *                    exposed part equals it (the CPU comm is synchronous);
 *                    workers with --comm-overlap off return the same bits
 *                    as with overlap on
 * inflight-tensors   max_inflight 2 with context and prompt tensors in
 *                    flight (their broadcast deferred behind the earlier
 *                    x0), the caller's buffer overwritten after each submit:
 *                    3 chunks equal the single-device generator, and the
 *                    world comm carried exactly the tensors' bytes
 * world-cut          mesh rank 0 closes its world comm instead of sending
 *                    x0: the call fails at once naming worker rank 0 and
 *                    the world comm
 *
 * Every subtest ends by checking that no child process is left.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dit_clock.h"
#include "dit_backend.h"
#include "dit_comm.h"
#include "dit_mesh.h"
#include "dit_net.h"
#include "dit_scheduler.h"
#include "dit_tp.h"
#include "envelope.h"
#include "../common/free_port.h"
#include "../common/mesh_check.h"
#include "../common/test_random.h"

static const char *worker_path;
static dit_mesh_layout layout = DIT_MESH_LAYOUT_TP;
/* 1: mesh rank 0 runs on a thread of this process (mesh colocate on) */
static int colocate;

static float prompt_buf[5 * 64];

static void
base_config (dit_mesh_config *c, int ranks)
{
  dit_mesh_config_default (c);
  c->preset = "tiny";
  /* a 1-rank subtest (bad-envelope, call-count) runs on 2 ranks in the
   * other layouts, so the layout is exercised */
  c->ranks = layout != DIT_MESH_LAYOUT_TP && ranks == 1 ? 2 : ranks;
  c->layout = layout;
  if (layout == DIT_MESH_LAYOUT_HYBRID) {
    /* SP 2 x TP 2: 4 heads */
    c->preset = "tiny-tp";
    c->ranks = 2 * c->ranks;
    c->mesh_tp = 2;
  }
  c->worker_path = worker_path;
  c->gen.latent_h = 4;
  c->gen.latent_w = 6;
  c->gen.seed = 7;
  c->synthetic_seed = 11;
  c->join_timeout_ms = 20000;
  c->chunk_timeout_ms = 10000;
  c->colocate = colocate ? DIT_MESH_COLOCATE_ON : DIT_MESH_COLOCATE_OFF;
}

static dit_tensor
prompt_tensor (void)
{
  uint64_t s = 12345;
  for (int i = 0; i < 5 * 64; i++)
    prompt_buf[i] = (float) (lcg64_unit (&s) - 0.5);
  return dit_tensor_2d (prompt_buf, DIT_F32, DIT_DEVICE_CPU, 5, 64);
}

static int
create (dit_mesh_config *c, dit_mesh **m)
{
  dit_tensor pt = prompt_tensor ();
  if (dit_mesh_create (c, m) != DIT_OK) {
    fprintf (stderr, "mesh create: %s\n", dit_last_error ());
    return 0;
  }
  if (dit_mesh_set_prompt (*m, &pt) != DIT_OK) {
    fprintf (stderr, "prompt: %s\n", dit_last_error ());
    return 0;
  }
  return 1;
}

#define LAT (16 * 3 * 4 * 6)

/* A latent chunk [16, 3, 4, 6] over buf. */
static dit_tensor
latent (float *buf)
{
  int64_t shape[4] = { 16, 3, 4, 6 };
  return dit_tensor_make (buf, DIT_F32, DIT_DEVICE_CPU, 4, shape);
}

/* Chunks [k0, k1) of a rollout on m into out[k], each after chunk 0 with
 * the previous chunk's x0 as its context. */
static int
mesh_chunks (dit_mesh *m, int k0, int k1, float (*out)[LAT])
{
  for (int k = k0; k < k1; k++) {
    dit_tensor x0 = latent (out[k]);
    dit_tensor ctx = latent (out[k > 0 ? k - 1 : 0]);
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    if (dit_mesh_run_chunk (m, &req, &x0, NULL) != DIT_OK)
      FAIL ("chunk %d: %s", k, dit_last_error ());
  }
  return 0;
}

/* A clean SHUTDOWN (every worker exits 0), then free. */
static int
shutdown_and_free (dit_mesh *m)
{
  if (dit_mesh_shutdown (m) != DIT_OK)
    FAIL ("shutdown: %s", dit_last_error ());
  dit_mesh_free (m);
  return 0;
}

/* The error of a call that failed, started at t0: printed as "NAME (N
 * ms): error"; it must name need1 and need2 and have come within
 * limit_ms. */
static int
check_error (const char *name, double t0, const char *need1,
    const char *need2, double limit_ms)
{
  double dt = dit_now_ms () - t0;
  printf ("%s (%.0f ms): %s\n", name, dt, dit_last_error ());
  if (!strstr (dit_last_error (), need1) || !strstr (dit_last_error (), need2))
    FAIL ("message: '%s'", dit_last_error ());
  if (dt > limit_ms)
    FAIL ("%s: the error took %.0f ms", name, dt);
  return 0;
}

static int
run_one (dit_mesh *m, int64_t chunk)
{
  static float out_buf[LAT];
  dit_tensor out = latent (out_buf);
  dit_tensor ctx = latent (out_buf);
  dit_chunk_request req = { .chunk_index = chunk, .context = chunk ? &ctx : NULL };
  return dit_mesh_run_chunk (m, &req, &out, NULL) == DIT_OK;
}

/* The single-device generator (the mesh's preset and weights) over
 * `chunks` chunks of a rollout; prompt `second` from chunk `switch_at` on
 * (switch_at < 0: never). */
static int
reference_rollout (const char *preset, const dit_gen_config *gcfg, int layers,
    int chunks, int switch_at, const dit_tensor *first,
    const dit_tensor *second, float (*out)[LAT])
{
  dit_model_config mc;
  dit_param_spec *specs;
  size_t count;
  dit_weights *w;
  dit_generator *g;
  dit_backend *be = dit_backend_cpu ();
  dit_model_config_preset (preset, &mc);
  if (layers)
    mc.num_layers = layers;
  dit_model_config_params (&mc, &specs, &count);
  if (dit_weights_synthetic (specs, count, 11, DIT_F32, be, &w) != DIT_OK
      || dit_generator_create (&mc, gcfg, w, be, &g) != DIT_OK) {
    free (specs);
    FAIL ("reference: %s", dit_last_error ());
  }
  free (specs);
  if (dit_generator_set_prompt (g, first) != DIT_OK)
    FAIL ("reference prompt: %s", dit_last_error ());
  for (int k = 0; k < chunks; k++) {
    if (k == switch_at && dit_generator_set_prompt (g, second) != DIT_OK)
      FAIL ("reference prompt switch: %s", dit_last_error ());
    dit_tensor o = latent (out[k]);
    dit_tensor ctx = latent (out[k > 0 ? k - 1 : 0]);
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    if (dit_generator_run_chunk (g, &req, &o, NULL) != DIT_OK)
      FAIL ("reference chunk %d: %s", k, dit_last_error ());
  }
  dit_generator_free (g);
  dit_weights_free (w);
  return 0;
}

/* max |a - b| over chunks, and max |b|. */
static void
max_diff (float (*a)[LAT], float (*b)[LAT], int chunks, double *diff, double *ref)
{
  *diff = max_abs_diff (a[0], b[0], (size_t) chunks * LAT, ref);
}

static float prompt2_buf[7 * 64];

/* The prompt switched to: 7 rows of other values than prompt_tensor's. */
static dit_tensor
second_prompt (void)
{
  for (int i = 0; i < 7 * 64; i++)
    prompt2_buf[i] = (float) sin (0.37 * i + 1.0);
  return dit_tensor_2d (prompt2_buf, DIT_F32, DIT_DEVICE_CPU, 7, 64);
}

/* A mesh that failed takes no more work and says so. */
static int
refuses_more_work (dit_mesh *m)
{
  if (run_one (m, 0) || !strstr (dit_last_error (), "failed earlier"))
    FAIL ("a failed mesh accepted more work: '%s'", dit_last_error ());
  return 0;
}

static int
t_rollout (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  static float mesh_out[3][LAT], ref_out[3][LAT];
  base_config (&c, 2);
  if (!create (&c, &m))
    FAIL ("create");
  if (mesh_chunks (m, 0, 3, mesh_out))
    return 1;
  dit_mesh_stats s;
  dit_mesh_get_stats (m, &s);
  if (s.chunks != 3 || s.drift_checks != 3)
    FAIL ("stats: %llu chunks, %llu drift checks", (unsigned long long) s.chunks,
        (unsigned long long) s.drift_checks);
  if (shutdown_and_free (m))
    return 1;

  /* Single-device reference, in process. */
  dit_tensor pt = prompt_tensor ();
  if (reference_rollout (c.preset, &c.gen, 0, 3, -1, &pt, &pt, ref_out))
    return 1;
  double maxref, maxdiff;
  max_diff (mesh_out, ref_out, 3, &maxdiff, &maxref);
  printf ("mesh %s of %d ranks (%s) vs single device, 3 chunks: max |diff| "
      "%.3g, max |ref| %.3g\n", dit_mesh_layout_name (c.layout), c.ranks,
      c.preset, maxdiff, maxref);
  if (!within_mesh_limit (maxdiff, maxref))
    FAIL ("mesh output differs from single device: %.3g", maxdiff);
  return no_children_left () ? 0 : 1;
}

static void
infer_envelope (dit_envelope *e, uint64_t call)
{
  memset (e, 0, sizeof *e);
  e->type = DIT_ENV_INFER;
  e->call_id = call;
  e->chunk_index = 0;
  e->plan.num_steps = 4;
  double steps[4] = { 1000, 750, 500, 250 };
  memcpy (e->plan.steps, steps, sizeof steps);
  for (int i = 0; i < 4; i++)
    e->plan.sigmas[i] = 0.5;
  e->plan.expected_calls = 4;
  e->plan.seed = 7;
  e->plan.kv_bias = 0.3f;
  e->prompt_epoch = 1;   /* create() set one prompt */
}

static int
t_bad_envelope (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  base_config (&c, 1);
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("first chunk: %s", dit_last_error ());
  static float data[4];
  dit_envelope e;
  infer_envelope (&e, 1000);
  e.plan.sigmas[2] = NAN;
  if (dit_mesh_send_envelope (m, &e) == DIT_OK
      || !strstr (dit_last_error (), "refused before sending")
      || !strstr (dit_last_error (), "sigma 2"))
    FAIL ("NaN sigma: '%s'", dit_last_error ());
  infer_envelope (&e, 1001);
  e.n_tensors = 1;
  snprintf (e.tensors[0].name, sizeof e.tensors[0].name, "context");
  e.tensors[0].dtype = DIT_F32;
  e.tensors[0].ndim = 5;
  e.tensors[0].data = data;
  if (dit_mesh_send_envelope (m, &e) == DIT_OK
      || !strstr (dit_last_error (), "5 dims"))
    FAIL ("5-D tensor: '%s'", dit_last_error ());
  infer_envelope (&e, 1002);
  e.plan.expected_calls = 9;
  if (dit_mesh_send_envelope (m, &e) == DIT_OK
      || !strstr (dit_last_error (), "expects 9 generator calls"))
    FAIL ("call count: '%s'", dit_last_error ());
  /* Nothing reached the worker: the next chunk is served normally. */
  if (!run_one (m, 0))
    FAIL ("chunk after bad envelopes: %s", dit_last_error ());
  if (shutdown_and_free (m))
    return 1;
  return no_children_left () ? 0 : 1;
}

static int
t_call_count (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  base_config (&c, 1);
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("first chunk: %s", dit_last_error ());
  /* Self-consistent (3 steps, 3 calls) but not what a 4-step worker does. */
  dit_envelope e;
  infer_envelope (&e, 50);
  e.plan.num_steps = 3;
  e.plan.expected_calls = 3;
  if (dit_mesh_send_envelope (m, &e) != DIT_OK)
    FAIL ("send: %s", dit_last_error ());
  if (dit_mesh_collect (m, NULL, NULL, NULL) == DIT_OK
      || !strstr (dit_last_error (), "call-count mismatch")
      || !strstr (dit_last_error (), "worker rank 0"))
    FAIL ("call-count mismatch: '%s'", dit_last_error ());
  printf ("call-count: %s\n", dit_last_error ());
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

static int
t_parity (const char *opt, const char *val, const char *expect)
{
  dit_mesh_config c;
  dit_mesh *m = NULL;
  const char *args[] = { opt, val, NULL };
  base_config (&c, 2);
  c.worker_args = args;
  double t0 = dit_now_ms ();
  if (dit_mesh_create (&c, &m) == DIT_OK)
    FAIL ("mesh with mismatched worker was created");
  printf ("parity: %s\n", dit_last_error ());
  if (!strstr (dit_last_error (), "parity check failed")
      || !strstr (dit_last_error (), expect))
    FAIL ("message: '%s'", dit_last_error ());
  if (dit_now_ms () - t0 > 15000)
    FAIL ("refusal took %.0f ms", dit_now_ms () - t0);
  return no_children_left () ? 0 : 1;
}

/* The child of t_parity_mesh_tp: worker rank 1's JOIN as dit-worker sends
 * it, every field matching the mesh c but the TP degree inside a group.
 * Exits 0 when refused, 1 when accepted or on any other failure. */
static int
join_as_worker (const dit_mesh_config *c, int port, int mesh_tp)
{
  dit_model_config model;
  if (dit_model_config_preset (c->preset, &model) != DIT_OK)
    return 1;
  const dit_dtype prec = (dit_dtype) dit_precision_of (c->gen.dtype,
      c->gen.fp8);
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_JOIN;
  e.join.rank = 1;
  e.join.tp = c->ranks;
  snprintf (e.join.preset, sizeof e.join.preset, "%s", c->preset);
  e.join.config_digest = dit_tp_config_digest (&model);
  e.join.dtype = (int) prec;
  e.join.weights_fingerprint = dit_tp_fingerprint_synthetic (&model,
      c->synthetic_seed, prec);
  e.join.pid = (int) getpid ();
  snprintf (e.join.backend, sizeof e.join.backend, "cpu");
  e.join.layers = model.num_layers;
  e.join.layout = (int) c->layout;
  e.join.mesh_tp = mesh_tp;
  int64_t dl = dit_net_deadline (10000);
  int fd = -1;
  while (dit_net_connect ("127.0.0.1", port, dl, &fd) != DIT_OK) {
    if (dit_net_now_ms () + 100 >= dl)
      return 1;
    usleep (50 * 1000);
  }
  unsigned char *buf = NULL;
  size_t cap = 0;
  if (dit_env_send (fd, &e, dl, "test worker") != DIT_OK
      || dit_env_recv (fd, &e, &buf, &cap, dl, "test worker") != DIT_OK)
    return 1;
  printf ("test worker rank 1: %s %s\n", dit_env_type_name (e.type), e.text);
  return e.type == DIT_ENV_REFUSE ? 0 : 1;
}

static int
t_parity_mesh_tp (void)
{
  if (layout != DIT_MESH_LAYOUT_HYBRID)
    FAIL ("parity-mesh-tp runs in the hybrid layout (test-mesh "
        "parity-mesh-tp DIT-WORKER hybrid)");
  dit_mesh_config c;
  dit_mesh *m = NULL;
  char listen[64];
  base_config (&c, 2);          /* 4 ranks: SP 2 x TP 2 */
  int port = free_port ();
  if (port <= 0)
    FAIL ("no free port");
  snprintf (listen, sizeof listen, "127.0.0.1:%d", port);
  c.spawn = 0;
  c.listen = listen;
  c.colocate = DIT_MESH_COLOCATE_OFF;
  c.join_timeout_ms = 5000;
  fflush (stdout);
  pid_t pid = fork ();
  if (pid < 0)
    FAIL ("fork");
  if (pid == 0) {
    int rc = join_as_worker (&c, port, c.ranks);  /* SP 1 x TP 4 */
    fflush (stdout);
    _exit (rc);
  }
  double t0 = dit_now_ms ();
  dit_status st = dit_mesh_create (&c, &m);
  char msg[1024];
  snprintf (msg, sizeof msg, "%s", dit_last_error ());
  int ws = 0;
  waitpid (pid, &ws, 0);
  if (st == DIT_OK) {
    dit_mesh_free (m);
    FAIL ("mesh with a worker of other groups was created");
  }
  printf ("parity: %s\n", msg);
  if (!strstr (msg, "parity check failed") || !strstr (msg, "worker rank 1")
      || !strstr (msg, "field: mesh_tp"))
    FAIL ("message: '%s'", msg);
  if (!WIFEXITED (ws) || WEXITSTATUS (ws) != 0)
    FAIL ("the joining worker was not refused (status %d)", ws);
  if (dit_now_ms () - t0 > 4000)
    FAIL ("refusal took %.0f ms", dit_now_ms () - t0);
  return no_children_left () ? 0 : 1;
}

static int
t_stale_epoch (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  base_config (&c, 2);
  if (!create (&c, &m))
    FAIL ("create");
  uint64_t a, b, got;
  dit_chunk_request req = { .chunk_index = 0 };
  if (dit_mesh_submit (m, &req, &a) != DIT_OK)
    FAIL ("submit: %s", dit_last_error ());
  dit_mesh_bump_epoch (m);   /* e.g. a flush while call a is in flight */
  if (dit_mesh_submit (m, &req, &b) != DIT_OK)
    FAIL ("submit: %s", dit_last_error ());
  static float out_buf[LAT];
  dit_tensor out = latent (out_buf);
  if (dit_mesh_collect (m, &out, NULL, &got) != DIT_OK)
    FAIL ("collect: %s", dit_last_error ());
  dit_mesh_stats s;
  dit_mesh_get_stats (m, &s);
  if (got != b || s.stale_dropped != 1)
    FAIL ("got call %llu (want %llu), %llu dropped", (unsigned long long) got,
        (unsigned long long) b, (unsigned long long) s.stale_dropped);
  if (dit_mesh_collect (m, &out, NULL, &got) == DIT_OK)
    FAIL ("a second result appeared");
  if (shutdown_and_free (m))
    return 1;
  (void) a;
  return no_children_left () ? 0 : 1;
}

static int
t_kill_worker (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  const char *args[] = { "--test-delay-ms", "1500", NULL };
  base_config (&c, 2);
  c.worker_args = args;
  c.chunk_timeout_ms = 8000;
  if (!create (&c, &m))
    FAIL ("create");
  dit_chunk_request req = { .chunk_index = 0 };
  if (dit_mesh_submit (m, &req, NULL) != DIT_OK)
    FAIL ("submit: %s", dit_last_error ());
  usleep (300 * 1000);
  kill (dit_mesh_worker_pid (m, 1), SIGKILL);
  double t0 = dit_now_ms ();
  if (dit_mesh_collect (m, NULL, NULL, NULL) == DIT_OK)
    FAIL ("collect succeeded with a dead worker");
  if (check_error ("kill-worker", t0, "worker rank 1", "signal 9", 6000)
      || refuses_more_work (m))
    return 1;
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

/* in_world: the workers are left waiting in a world-comm receive (the data
 * of a second INFER, deferred behind the first call's x0, which the owner
 * never collects) when rank 0 dies. */
static int
t_kill_rank0 (int in_world)
{
  int fds[2];
  char log[] = "/tmp/test-mesh-kill-rank0-XXXXXX";
  int logfd = in_world ? mkstemp (log) : -1;
  if (prctl (PR_SET_CHILD_SUBREAPER, 1) != 0 || pipe (fds) != 0
      || (in_world && logfd < 0))
    FAIL ("subreaper/pipe/log");
  pid_t owner = fork ();
  if (owner == 0) {
    dit_mesh_config c;
    dit_mesh *m;
    static float ctx_buf[LAT];
    dit_tensor ctx = latent (ctx_buf);
    dit_chunk_request req0 = { .chunk_index = 0 };
    dit_chunk_request req1 = { .chunk_index = 1, .context = &ctx };
    close (fds[0]);
    if (in_world)
      dup2 (logfd, 2);   /* the workers' reasons, for the parent to read */
    base_config (&c, 2);
    if (!create (&c, &m) || !run_one (m, 0))
      _exit (1);
    if (in_world && (dit_mesh_submit (m, &req0, NULL) != DIT_OK
        || dit_mesh_submit (m, &req1, NULL) != DIT_OK))
      _exit (1);
    int pids[2] = { dit_mesh_worker_pid (m, 0), dit_mesh_worker_pid (m, 1) };
    if (write (fds[1], pids, sizeof pids) != sizeof pids)
      _exit (1);
    for (;;)
      pause ();
  }
  close (fds[1]);
  int pids[2];
  if (read (fds[0], pids, sizeof pids) != sizeof pids)
    FAIL ("mesh owner did not start its mesh");
  close (fds[0]);
  if (in_world)
    usleep (2500 * 1000);   /* chunk 0 done, INFER 1 read, its data awaited */
  kill (owner, SIGKILL);
  waitpid (owner, NULL, 0);
  double t0 = dit_now_ms ();
  for (int i = 0; i < 2; i++) {
    int st = 0;
    for (;;) {
      pid_t p = waitpid (pids[i], &st, WNOHANG);
      if (p == pids[i])
        break;
      if (dit_now_ms () - t0 > 5000) {
        kill (pids[0], SIGKILL);
        kill (pids[1], SIGKILL);
        FAIL ("worker pid %d still running 5 s after rank 0 died", pids[i]);
      }
      usleep (10000);
    }
    if (!WIFEXITED (st) || WEXITSTATUS (st) != 3)
      FAIL ("worker pid %d: wait status 0x%x (want exit 3, lost rank 0)",
          pids[i], st);
  }
  printf ("kill-rank0%s: workers exited (status 3) %.0f ms after rank 0 died "
      "(limit 5000 ms)\n", in_world ? " (waiting on the world comm)" : "",
      dit_now_ms () - t0);
  if (in_world) {
    char text[4096] = "";
    ssize_t n = pread (logfd, text, sizeof text - 1, 0);
    close (logfd);
    unlink (log);
    text[n > 0 ? n : 0] = '\0';
    fputs (text, stdout);
    for (int r = 0; r < 2; r++) {
      char want[64];
      snprintf (want, sizeof want, "worker rank %d: lost Stage 0 (rank 0)", r);
      const char *line = strstr (text, want);
      const char *end = line ? strchr (line, '\n') : NULL;
      const char *world = line ? strstr (line, "world comm") : NULL;
      if (!line || !world || (end && world > end))
        FAIL ("worker rank %d did not report losing Stage 0 in a world-comm "
            "receive", r);
    }
  }
  return no_children_left () ? 0 : 1;
}

static int
t_stall_worker (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  base_config (&c, 2);
  c.chunk_timeout_ms = 2500;
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("first chunk: %s", dit_last_error ());
  kill (dit_mesh_worker_pid (m, 1), SIGSTOP);
  double t0 = dit_now_ms ();
  if (run_one (m, 0))
    FAIL ("chunk succeeded with a stopped worker");
  if (check_error ("stall-worker", t0, "worker rank 1", "within 2500 ms", 4500))
    return 1;
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

static int
t_shutdown_inflight (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  const char *args[] = { "--test-delay-ms", "300", NULL };
  base_config (&c, 2);
  c.worker_args = args;
  if (!create (&c, &m))
    FAIL ("create");
  dit_chunk_request req = { .chunk_index = 0 };
  if (dit_mesh_submit (m, &req, NULL) != DIT_OK
      || dit_mesh_submit (m, &req, NULL) != DIT_OK)
    FAIL ("submit: %s", dit_last_error ());
  if (dit_mesh_shutdown (m) != DIT_OK)
    FAIL ("shutdown with work in flight: %s", dit_last_error ());
  dit_mesh_stats s;
  dit_mesh_get_stats (m, &s);
  if (s.chunks != 2)
    FAIL ("%llu chunks drained, want 2", (unsigned long long) s.chunks);
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

static int
t_prompt_switch (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  static float mesh_out[4][LAT], ref_out[4][LAT], noswitch_out[4][LAT];
  dit_tensor second = second_prompt ();
  base_config (&c, 2);
  if (!create (&c, &m))
    FAIL ("create");
  if (dit_mesh_prompt_epoch (m) != 1)
    FAIL ("prompt epoch %llu after the first prompt, want 1",
        (unsigned long long) dit_mesh_prompt_epoch (m));
  if (mesh_chunks (m, 0, 2, mesh_out))
    return 1;
  if (dit_mesh_set_prompt (m, &second) != DIT_OK)
    FAIL ("prompt switch: %s", dit_last_error ());
  if (dit_mesh_prompt_epoch (m) != 2)
    FAIL ("prompt epoch %llu after the switch, want 2",
        (unsigned long long) dit_mesh_prompt_epoch (m));
  if (mesh_chunks (m, 2, 4, mesh_out))
    return 1;
  if (shutdown_and_free (m))
    return 1;

  dit_tensor first = prompt_tensor ();
  if (reference_rollout (c.preset, &c.gen, 0, 4, 2, &first, &second, ref_out)
      || reference_rollout (c.preset, &c.gen, 0, 4, -1, &first, &second,
          noswitch_out))
    return 1;
  double diff, ref, moved, mref;
  max_diff (mesh_out, ref_out, 4, &diff, &ref);
  max_diff (noswitch_out + 2, ref_out + 2, 2, &moved, &mref);
  printf ("prompt switch, TP 2 vs single device, 4 chunks: max |diff| %.3g "
      "(limit %.3g); the switch moves chunks 2-3 by %.3g\n", diff, MESH_REL_LIMIT * ref,
      moved);
  if (!within_mesh_limit (diff, ref))
    FAIL ("mesh output with a prompt switch differs from single device: %.3g", diff);
  if (!(moved > 1e3 * diff && moved > 1e-3 * ref))
    FAIL ("the prompt switch hardly changes the output (%.3g): the test "
        "cannot tell a missed switch", moved);
  return no_children_left () ? 0 : 1;
}

static int
t_prompt_missing (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  dit_scheduler sched;
  base_config (&c, 2);
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("first chunk: %s", dit_last_error ());
  /* The mesh's own plan, but of a prompt epoch whose tensor never came. */
  dit_envelope e;
  infer_envelope (&e, 60);
  dit_scheduler_init (&sched, c.gen.shift);
  for (int i = 0; i < c.gen.num_steps; i++) {
    e.plan.steps[i] = c.gen.steps[i];
    e.plan.sigmas[i] = dit_scheduler_sigma (&sched, c.gen.steps[i]);
  }
  e.prompt_epoch = dit_mesh_prompt_epoch (m) + 1;
  if (dit_mesh_send_envelope (m, &e) != DIT_OK)
    FAIL ("send: %s", dit_last_error ());
  if (dit_mesh_collect (m, NULL, NULL, NULL) == DIT_OK)
    FAIL ("an INFER of a new prompt epoch without the prompt was served");
  printf ("prompt-missing: %s\n", dit_last_error ());
  if (!strstr (dit_last_error (), "worker rank 0")
      || !strstr (dit_last_error (), "worker rank 1")
      || !strstr (dit_last_error (), "carries no 'prompt' tensor"))
    FAIL ("message: '%s'", dit_last_error ());
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

static int
t_layers (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  static float mesh_out[2][LAT], ref_out[2][LAT], full_out[2][LAT];
  base_config (&c, 2);
  c.layers = 1;
  if (!create (&c, &m))
    FAIL ("create");
  if (mesh_chunks (m, 0, 2, mesh_out))
    return 1;
  if (shutdown_and_free (m))
    return 1;
  dit_tensor pt = prompt_tensor ();
  if (reference_rollout (c.preset, &c.gen, 1, 2, -1, &pt, &pt, ref_out)
      || reference_rollout (c.preset, &c.gen, 0, 2, -1, &pt, &pt, full_out))
    return 1;
  double diff, ref, other, oref;
  max_diff (mesh_out, ref_out, 2, &diff, &ref);
  max_diff (mesh_out, full_out, 2, &other, &oref);
  printf ("layers 1, TP 2 vs 1-layer single device: max |diff| %.3g (limit %.3g); "
      "vs the 2-layer model %.3g\n", diff, MESH_REL_LIMIT * ref, other);
  if (!within_mesh_limit (diff, ref))
    FAIL ("1-layer mesh differs from the 1-layer single device: %.3g", diff);
  if (!(other > 1e3 * diff))
    FAIL ("1-layer mesh output is the 2-layer model's");
  return no_children_left () ? 0 : 1;
}

static int
t_heartbeat (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  base_config (&c, 2);
  c.chunk_timeout_ms = 2500;
  c.heartbeat_ms = 0;          /* every call pings */
  if (!create (&c, &m))
    FAIL ("create");
  for (int i = 0; i < 3; i++)
    if (dit_mesh_ping (m) != DIT_OK)
      FAIL ("ping %d: %s", i, dit_last_error ());
  if (!run_one (m, 0))
    FAIL ("chunk after pings: %s", dit_last_error ());
  dit_mesh_free (m);

  base_config (&c, 2);
  c.chunk_timeout_ms = 2500;
  c.heartbeat_ms = 1500;
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("first chunk: %s", dit_last_error ());
  kill (dit_mesh_worker_pid (m, 1), SIGSTOP);
  /* Busy within heartbeat_ms: no round trip, so the stopped worker is not
   * seen yet. */
  double t0 = dit_now_ms ();
  if (dit_mesh_ping (m) != DIT_OK || dit_now_ms () - t0 > 200)
    FAIL ("ping right after a chunk: %s (%.0f ms)", dit_last_error (),
        dit_now_ms () - t0);
  usleep (1600 * 1000);
  t0 = dit_now_ms ();
  if (dit_mesh_ping (m) == DIT_OK)
    FAIL ("ping succeeded with a stopped worker");
  if (check_error ("heartbeat", t0, "worker rank 1", "heartbeat", 4500))
    return 1;
  if (strstr (dit_last_error (), "worker rank 0"))
    FAIL ("message names the running rank 0: '%s'", dit_last_error ());
  if (dit_mesh_ping (m) == DIT_OK || !strstr (dit_last_error (), "failed earlier"))
    FAIL ("a failed mesh answered a ping: '%s'", dit_last_error ());
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

static int
t_refuse_nccl (void)
{
  dit_mesh_config c;
  dit_mesh *m = NULL;
  if (dit_comm_nccl_available ()) {
    printf ("this build has NCCL: tests/gpu/test_mesh_nccl.c covers backend cuda\n");
    return 77;
  }
  base_config (&c, 2);
  c.backend = "cuda";
  double t0 = dit_now_ms ();
  if (dit_mesh_create (&c, &m) == DIT_OK)
    FAIL ("a cuda mesh was created in a build without NCCL");
  if (check_error ("refuse-nccl", t0, "could not join", "without NCCL", 10000))
    return 1;
  return no_children_left () ? 0 : 1;
}

static int
t_allreduce_time (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  dit_mesh_stats s;
  static float out[2][2][LAT];   /* [overlap on, off][chunk] */
  const char *off_args[] = { "--comm-overlap", "off", NULL };
  for (int o = 0; o < 2; o++) {
    const char *name = o ? "TP 2 overlap off" : "TP 2";
    base_config (&c, 2);
    if (o)
      c.worker_args = off_args;
    if (!create (&c, &m))
      FAIL ("create");
    for (int k = 0; k < 2; k++) {
      dit_tensor y = latent (out[o][k]);
      dit_tensor ctx = latent (out[o][k ? k - 1 : 0]);
      dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
      if (dit_mesh_run_chunk (m, &req, &y, NULL) != DIT_OK)
        FAIL ("%s chunk %d: %s", name, k, dit_last_error ());
      dit_mesh_get_stats (m, &s);
      for (int r = 0; r < 2; r++) {
        printf ("%s chunk %d rank %d: all-reduce %.3f ms of %.3f ms (must be "
            "> 0 and below the chunk's total), exposed %.3f ms (must equal "
            "it)\n", name, k, r, s.last_allreduce_ms[r], s.last_rank_ms[r],
            s.last_exposed_ms[r]);
        if (!(s.last_allreduce_ms[r] > 0.0
            && s.last_allreduce_ms[r] < s.last_rank_ms[r]))
          FAIL ("%s rank %d all-reduce time %.3f ms (chunk %.3f ms)", name, r,
              s.last_allreduce_ms[r], s.last_rank_ms[r]);
        if (fabs (s.last_exposed_ms[r] - s.last_allreduce_ms[r])
            > 1e-9 * s.last_allreduce_ms[r])
          FAIL ("%s rank %d exposed %.6f ms != all-reduce %.6f ms on the "
              "CPU comm", name, r, s.last_exposed_ms[r],
              s.last_allreduce_ms[r]);
      }
    }
    if (shutdown_and_free (m))
      return 1;
  }
  if (memcmp (out[0], out[1], sizeof out[0]) != 0)
    FAIL ("TP 2 with overlap on and off returned different latents");

  base_config (&c, 1);
  if (!create (&c, &m))
    FAIL ("create");
  if (!run_one (m, 0))
    FAIL ("TP 1 chunk: %s", dit_last_error ());
  dit_mesh_get_stats (m, &s);
  printf ("TP 1: all-reduce %.3f ms (must be 0: no TP comm)\n",
      s.last_allreduce_ms[0]);
  if (s.last_allreduce_ms[0] != 0.0)
    FAIL ("TP 1 all-reduce time %.3f ms", s.last_allreduce_ms[0]);
  if (shutdown_and_free (m))
    return 1;
  return no_children_left () ? 0 : 1;
}

/* Two INFERs in flight with tensors: the later one's data waits for the
 * earlier x0 (the deferral rule of docs/protocol.md).  The contexts are
 * the reference's own outputs, and the caller's buffer is overwritten
 * right after each submit (the mesh must have staged it). */
static int
t_inflight_tensors (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  static float mesh_out[3][LAT], ref_out[3][LAT], ctx_buf[LAT];
  dit_tensor first = prompt_tensor ();
  dit_tensor second = second_prompt ();
  base_config (&c, 2);
  c.max_inflight = 2;
  if (reference_rollout (c.preset, &c.gen, 0, 3, 2, &first, &second, ref_out))
    return 1;
  if (!create (&c, &m))
    FAIL ("create");
  dit_tensor ctx = latent (ctx_buf);
  dit_chunk_request req0 = { .chunk_index = 0 };
  if (dit_mesh_submit (m, &req0, NULL) != DIT_OK)
    FAIL ("submit 0: %s", dit_last_error ());
  for (int k = 1; k <= 3; k++) {
    if (k < 3) {
      if (k == 2 && dit_mesh_set_prompt (m, &second) != DIT_OK)
        FAIL ("prompt switch: %s", dit_last_error ());
      memcpy (ctx_buf, ref_out[k - 1], sizeof ctx_buf);
      dit_chunk_request req = { .chunk_index = k, .context = &ctx };
      if (dit_mesh_submit (m, &req, NULL) != DIT_OK)
        FAIL ("submit %d with chunk %d in flight: %s", k, k - 1, dit_last_error ());
      for (int i = 0; i < LAT; i++)
        ctx_buf[i] = 1e3f;
    }
    dit_tensor out = latent (mesh_out[k - 1]);
    if (dit_mesh_collect (m, &out, NULL, NULL) != DIT_OK)
      FAIL ("collect %d: %s", k - 1, dit_last_error ());
  }
  dit_mesh_stats s;
  dit_mesh_get_stats (m, &s);
  if (shutdown_and_free (m))
    return 1;
  double diff, ref;
  max_diff (mesh_out, ref_out, 3, &diff, &ref);
  /* prompt 1, two contexts and prompt 2 out, three x0 back (f32) */
  const uint64_t want = (uint64_t) (5 * 64 + 2 * LAT + 7 * 64 + 3 * LAT) * 4;
  printf ("max_inflight 2, tensors in flight, TP 2 vs single device, 3 chunks: "
      "max |diff| %.3g (limit %.3g); world comm carried %llu bytes (want %llu)\n",
      diff, MESH_REL_LIMIT * ref, (unsigned long long) s.world_bytes,
      (unsigned long long) want);
  if (!within_mesh_limit (diff, ref))
    FAIL ("mesh output with tensors in flight differs from single device: %.3g",
        diff);
  if (s.world_bytes != want)
    FAIL ("world comm carried %llu bytes, want %llu",
        (unsigned long long) s.world_bytes, (unsigned long long) want);
  return no_children_left () ? 0 : 1;
}

static int
t_world_cut (void)
{
  dit_mesh_config c;
  dit_mesh *m;
  const char *args[] = { "--test-cut-world", "1", NULL };
  base_config (&c, 2);
  c.worker_args = args;
  c.chunk_timeout_ms = 8000;
  if (!create (&c, &m))
    FAIL ("create");
  double t0 = dit_now_ms ();
  if (run_one (m, 0))
    FAIL ("a chunk whose x0 never came succeeded");
  if (check_error ("world-cut", t0, "worker rank 0", "world comm", 4000)
      || refuses_more_work (m))
    return 1;
  dit_mesh_free (m);
  return no_children_left () ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: test-mesh SUBTEST DIT-WORKER [LAYOUT [colocate]]\n");
    return 2;
  }
  worker_path = argv[2];
  if (argc > 3 && dit_mesh_layout_parse (argv[3], &layout) != DIT_OK) {
    fprintf (stderr, "test-mesh: %s\n", dit_last_error ());
    return 2;
  }
  colocate = argc > 4 && strcmp (argv[4], "colocate") == 0;
  setenv ("DIT_CPU_THREADS", "1", 1);
  signal (SIGPIPE, SIG_IGN);
  const char *t = argv[1];
  if (!strcmp (t, "rollout")) return t_rollout ();
  if (!strcmp (t, "bad-envelope")) return t_bad_envelope ();
  if (!strcmp (t, "call-count")) return t_call_count ();
  if (!strcmp (t, "parity-fingerprint"))
    return t_parity ("--seed", "99", "weight fingerprint");
  if (!strcmp (t, "parity-config"))
    return t_parity ("--preset", "tiny-tp", "model config");
  if (!strcmp (t, "parity-layout"))
    return t_parity ("--mesh-parallel", layout == DIT_MESH_LAYOUT_TP ? "sp" : "tp",
        "field: layout");
  if (!strcmp (t, "parity-mesh-tp")) return t_parity_mesh_tp ();
  if (!strcmp (t, "stale-epoch")) return t_stale_epoch ();
  if (!strcmp (t, "kill-worker")) return t_kill_worker ();
  if (!strcmp (t, "kill-rank0")) return t_kill_rank0 (0);
  if (!strcmp (t, "kill-rank0-world")) return t_kill_rank0 (1);
  if (!strcmp (t, "stall-worker")) return t_stall_worker ();
  if (!strcmp (t, "shutdown-inflight")) return t_shutdown_inflight ();
  if (!strcmp (t, "prompt-switch")) return t_prompt_switch ();
  if (!strcmp (t, "prompt-missing")) return t_prompt_missing ();
  if (!strcmp (t, "layers")) return t_layers ();
  if (!strcmp (t, "parity-layers"))
    return t_parity ("--layers", "1", "with 1 layers");
  if (!strcmp (t, "parity-dtype"))
    return t_parity ("--dtype", "fp8", "computes in fp8, rank 0 in f32");
  if (!strcmp (t, "heartbeat")) return t_heartbeat ();
  if (!strcmp (t, "refuse-nccl")) return t_refuse_nccl ();
  if (!strcmp (t, "allreduce-time")) return t_allreduce_time ();
  if (!strcmp (t, "inflight-tensors")) return t_inflight_tensors ();
  if (!strcmp (t, "world-cut")) return t_world_cut ();
  fprintf (stderr, "unknown subtest %s\n", t);
  return 2;
}
