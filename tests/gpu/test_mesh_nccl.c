/* test_mesh_nccl — the generator mesh on GPUs: dit-worker processes on the
 * CUDA backend with NCCL for the tensor-parallel collectives and for the
 * world communicator (Stage 0 + the mesh: envelope tensors out, x0 back),
 * against the single-device CUDA generator in this process (GPU 0).
 *
 *   test-mesh-nccl DIT-WORKER [p2p|socket]
 *
 * "socket" runs the multi-host path on one host: NCCL_P2P_DISABLE=1,
 * NCCL_SHM_DISABLE=1, NCCL_NET=Socket (and NCCL_SOCKET_IFNAME=lo unless
 * set); the spawned workers inherit the environment.  NVLink multicast
 * stays off (NCCL_NVLS_ENABLE=0 unless set).
 *
 * Stage 0 (this process) runs on GPU 0 with a CUDA backend
 * (dit_mesh_config.world_backend).  Two layouts: "own GPU", the workers on
 * GPUs 1..N, so Stage 0 is world rank 0 of an NCCL world comm (NCCL takes
 * one rank per GPU); "shared", the workers on GPUs 0..N-1 with Stage 0
 * beside rank 0, where the world comm is the CPU comm through host memory.
 * Each case prints its layout and the transport the mesh chose.  With 2
 * GPUs: TP 1 own and TP 2 shared; with 4: TP 2 own and TP 4 shared; with
 * 5 or more also TP 4 own.
 *
 * Checks (every one a 3-chunk rollout in which chunk
 * k > 0 recomputes its cache from the previous output of the same system,
 * so errors compound as in a stream; relative L2 = ||mesh - ref|| / ||ref||
 * over the three chunks):
 *   tiny-tp f32, each layout's TP (above)              rel L2 <= 1e-5
 *     f32 storage and accumulation on both sides; the only difference is
 *     the order of the sums (per-rank partial GEMMs + NCCL's all-reduce
 *     against one full GEMM), a few f32 ulps per layer;
 *   tiny-tp f32, TP 2 with --graphs off (every collective eager)  1e-5;
 *   wan-14b 2-layer slice (D 5120, 40 heads, ffn 13824) bf16, latent
 *     16x16, each layout's TP                          rel L2 <= 2e-2
 *     bf16 weights and activations: each rank rounds its partial
 *     row-parallel outputs to bf16 before NCCL sums them (in bf16 steps),
 *     where the single device rounds the full sum once; relative bf16
 *     rounding is 2^-8 = 3.9e-3 per value, and a reordered bf16 sum moves
 *     a result by a few of those;
 *   every case: the world comm carried exactly the tensors (the prompt, two
 *     contexts out, three x0 back, f32) on the expected transport, and
 *     every rank measured its all-reduce time (> 0 and below the chunk's
 *     total; 0 at TP 1);
 *   listen: the wan-14b slice in the shared layout with the workers
 *     started by this test (as mpirun/ssh would, the command line of
 *     docs/operations.md) and joined through a listen address instead of
 *     spawned; with "socket" that is the multi-host path on one host;
 *     same limit, and every worker exits 0 after SHUTDOWN;
 *   kill: SIGKILL of worker rank 1 while a chunk is in flight gives an
 *     error naming rank 1 and the signal within the chunk timeout (no
 *     hang), and worker rank 0, stuck in an all-reduce with a dead peer,
 *     exits by itself (its NCCL watchdog aborts the communicator) within
 *     the timeout plus a margin.
 * Every check prints one line with the measured value and its limit.
 * Exit 0 = pass, 1 = fail, 77 = fewer than 2 CUDA devices or no NCCL.
 */
#include "dit_backend.h"
#include "dit_comm.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_mesh.h"
#include "dit_weights.h"
#include "../common/free_port.h"
#include "dit_clock.h"

#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNKS 3
#define SEED_WEIGHTS 11
#define SEED_NOISE 7

static const char *worker_path;
/* Stage 0's CUDA backend (GPU 0); the workers' GPUs 1..N (own) or
 * 0..N-1 (shared). */
static dit_backend *stage0;
static const int own_devices[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const int shared_devices[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
static const char *variant = "p2p";
static int failures;

static void
check (int ok, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* One summary line per check: PASS/FAIL, what, measured value, limit. */
static void
check (int ok, const char *fmt, ...)
{
  va_list ap;
  printf ("%s [%s] ", ok ? "PASS" : "FAIL", variant);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("\n");
  fflush (stdout);
  if (!ok)
    failures++;
}

typedef struct mesh_case {
  const char *preset;
  int layers;              /* 0 = the preset's */
  dit_dtype dtype;
  int latent_h, latent_w;
  int ranks;
  int graphs;              /* workers' --graphs */
  double limit;            /* relative L2 */
  int shared;              /* workers on GPUs 0..N-1, beside Stage 0 */
  int listen;              /* workers started here, joined via listen */
} mesh_case;

static void
gen_config (const mesh_case *mc, dit_gen_config *g)
{
  dit_gen_config_default (g);
  g->latent_h = mc->latent_h;
  g->latent_w = mc->latent_w;
  g->seed = SEED_NOISE;
  g->dtype = mc->dtype;
}

static float *
make_prompt (int rows, int dim)
{
  float *p = malloc ((size_t) rows * dim * sizeof (float));
  uint64_t s = 12345;
  for (int i = 0; p && i < rows * dim; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float) ((double) (s >> 11) / 9007199254740992.0 - 0.5);
  }
  return p;
}

/* The single-device reference on GPU 0 (host tensors in and out, as the
 * mesh's). */
static int
reference (const mesh_case *mc, dit_backend *cuda, const dit_tensor *prompt,
    float *out, size_t lat)
{
  dit_model_config cfg;
  dit_param_spec *specs;
  size_t count;
  dit_weights *w = NULL;
  dit_generator *g = NULL;
  dit_gen_config gc;
  gen_config (mc, &gc);
  if (dit_model_config_preset (mc->preset, &cfg) != DIT_OK)
    return 0;
  if (mc->layers)
    cfg.num_layers = mc->layers;
  if (dit_model_config_params (&cfg, &specs, &count) != DIT_OK)
    return 0;
  dit_status st = dit_weights_synthetic (specs, count, SEED_WEIGHTS, mc->dtype,
      cuda, &w);
  free (specs);
  if (st == DIT_OK)
    st = dit_generator_create (&cfg, &gc, w, cuda, &g);
  if (st == DIT_OK)
    st = dit_generator_set_prompt (g, prompt);
  int64_t shape[4] = { 16, gc.frames_per_chunk, gc.latent_h, gc.latent_w };
  for (int k = 0; k < CHUNKS && st == DIT_OK; k++) {
    dit_tensor o = dit_tensor_make (out + k * lat, DIT_F32, DIT_DEVICE_CPU, 4, shape);
    dit_tensor ctx = dit_tensor_make (out + (k > 0 ? k - 1 : 0) * lat, DIT_F32,
        DIT_DEVICE_CPU, 4, shape);
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    st = dit_generator_run_chunk (g, &req, &o, NULL);
  }
  if (st != DIT_OK)
    fprintf (stderr, "reference %s: %s\n", mc->preset, dit_last_error ());
  dit_generator_free (g);
  dit_weights_free (w);
  return st == DIT_OK;
}

static void
mesh_config (const mesh_case *mc, dit_mesh_config *c, const char **args)
{
  dit_mesh_config_default (c);
  c->preset = mc->preset;
  c->layers = mc->layers;
  c->synthetic_seed = SEED_WEIGHTS;
  gen_config (mc, &c->gen);
  c->ranks = mc->ranks;
  c->worker_path = worker_path;
  c->backend = "cuda";
  c->world_backend = stage0;
  c->devices = mc->shared ? shared_devices : own_devices;
  c->join_timeout_ms = 120000;
  c->chunk_timeout_ms = 60000;
  c->worker_args = args;
}

/* "Another host": dit-worker started by this test, as a launcher would,
 * with the command line of docs/operations.md. */
static pid_t
start_worker (const mesh_case *mc, const char *addr, int rank, int device)
{
  char rk[16], tp[16], dev[16], seed[16], layers[16];
  snprintf (rk, sizeof rk, "%d", rank);
  snprintf (tp, sizeof tp, "%d", mc->ranks);
  snprintf (dev, sizeof dev, "%d", device);
  snprintf (seed, sizeof seed, "%d", SEED_WEIGHTS);
  snprintf (layers, sizeof layers, "%d", mc->layers);
  const char *argv[] = { worker_path, "--connect", addr, "--rank", rk, "--tp",
    tp, "--device", dev, "--backend", "cuda", "--preset", mc->preset,
    "--dtype", dit_dtype_name (mc->dtype), "--timeout-ms", "60000", "--seed",
    seed, "--graphs", mc->graphs ? "on" : "off",
    mc->layers ? "--layers" : NULL, layers, NULL
  };
  pid_t pid = fork ();
  if (pid == 0) {
    execv (worker_path, (char *const *) argv);
    _exit (127);
  }
  return pid;
}

static void
run_case (const mesh_case *mc, dit_backend *cuda)
{
  dit_model_config cfg;
  dit_mesh_config c;
  dit_mesh *m = NULL;
  const char *args[] = { "--graphs", mc->graphs ? "on" : "off", NULL };
  char name[128];
  snprintf (name, sizeof name, "%s%s %s TP %d%s, %s%s", mc->preset,
      mc->layers ? " 2-layer slice" : "", dit_dtype_name (mc->dtype), mc->ranks,
      mc->graphs ? "" : " graphs off", mc->shared ? "GPUs shared with Stage 0"
      : "Stage 0 on its own GPU", mc->listen ? ", workers joined through "
      "listen" : "");
  dit_model_config_preset (mc->preset, &cfg);
  const int rows = 7;
  float *prompt = make_prompt (rows, cfg.text_dim);
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, rows, cfg.text_dim);
  mesh_config (mc, &c, args);
  const size_t lat = (size_t) 16 * c.gen.frames_per_chunk * mc->latent_h * mc->latent_w;
  float *got = calloc (CHUNKS * lat, sizeof (float));
  float *ref = calloc (CHUNKS * lat, sizeof (float));
  char addr[32];
  pid_t pids[8] = { 0 };
  if (mc->listen) {
    snprintf (addr, sizeof addr, "127.0.0.1:%d", free_port ());
    for (int r = 0; r < mc->ranks; r++)
      pids[r] = start_worker (mc, addr, r, c.devices[r]);
    c.spawn = 0;
    c.listen = addr;
  }
  double t0 = dit_now_ms ();
  dit_status st = dit_mesh_create (&c, &m);
  double t_create = dit_now_ms () - t0;
  if (st == DIT_OK)
    st = dit_mesh_set_prompt (m, &pt);
  int64_t shape[4] = { 16, c.gen.frames_per_chunk, mc->latent_h, mc->latent_w };
  double chunk_ms[CHUNKS] = { 0 };
  for (int k = 0; k < CHUNKS && st == DIT_OK; k++) {
    dit_tensor o = dit_tensor_make (got + k * lat, DIT_F32, DIT_DEVICE_CPU, 4, shape);
    dit_tensor ctx = dit_tensor_make (got + (k > 0 ? k - 1 : 0) * lat, DIT_F32,
        DIT_DEVICE_CPU, 4, shape);
    dit_chunk_request req = { .chunk_index = k, .context = k ? &ctx : NULL };
    double t1 = dit_now_ms ();
    st = dit_mesh_run_chunk (m, &req, &o, NULL);
    chunk_ms[k] = dit_now_ms () - t1;
  }
  if (st != DIT_OK) {
    check (0, "%s: mesh: %s", name, dit_last_error ());
  } else {
    dit_mesh_stats s;
    dit_mesh_get_stats (m, &s);
    const unsigned long long want = (unsigned long long) ((size_t) rows
        * cfg.text_dim + (CHUNKS - 1 + CHUNKS) * lat) * sizeof (float);
    check (s.world_bytes == want && s.world_nccl == !mc->shared, "%s: the "
        "world comm (%s) carried %llu bytes (want %llu: prompt, %d contexts "
        "out, %d x0 back; transport %s)", name, s.world_nccl ? "NCCL"
        : "CPU comm", (unsigned long long) s.world_bytes, want, CHUNKS - 1,
        CHUNKS, mc->shared ? "CPU comm expected" : "NCCL expected");
    int ar_ok = 1;
    char ar[256] = "";
    for (int r = 0; r < mc->ranks; r++) {
      /* TP 1 has no all-reduce: 0 */
      ar_ok &= mc->ranks == 1 ? s.last_allreduce_ms[r] == 0
          : s.last_allreduce_ms[r] > 0
          && s.last_allreduce_ms[r] < s.last_rank_ms[r];
      snprintf (ar + strlen (ar), sizeof ar - strlen (ar), "%s%.3f/%.3f",
          r ? ", " : "", s.last_allreduce_ms[r], s.last_rank_ms[r]);
    }
    check (ar_ok, "%s: all-reduce ms / chunk ms per rank, last chunk: %s "
        "(each must be > 0 and below the chunk; -1 = not measured)", name, ar);
    st = dit_mesh_shutdown (m);
    check (st == DIT_OK, "%s: clean shutdown, %llu drift checks (ranks' digests "
        "equal) %s", name, (unsigned long long) s.drift_checks,
        st == DIT_OK ? "" : dit_last_error ());
  }
  dit_mesh_free (m);
  for (int r = 0; mc->listen && r < mc->ranks; r++) {
    /* SHUTDOWN ends them with status 0; bounded wait, then kill. */
    int wst = -1, done = 0;
    for (int i = 0; i < 300 && !done; i++) {
      done = waitpid (pids[r], &wst, WNOHANG) == pids[r];
      if (!done)
        usleep (20000);
    }
    if (!done) {
      kill (pids[r], SIGKILL);
      waitpid (pids[r], &wst, 0);
    }
    check (done && WIFEXITED (wst) && WEXITSTATUS (wst) == 0, "%s: worker "
        "rank %d (started here) exited with status %d", name, r,
        done && WIFEXITED (wst) ? WEXITSTATUS (wst) : -1);
  }
  if (st == DIT_OK && reference (mc, cuda, &pt, ref, lat)) {
    double num = 0, den = 0;
    int finite = 1;
    for (size_t i = 0; i < CHUNKS * lat; i++) {
      double d = (double) got[i] - ref[i];
      finite &= isfinite (got[i]);
      num += d * d;
      den += (double) ref[i] * ref[i];
    }
    double rel = den > 0 ? sqrt (num / den) : INFINITY;
    check (finite && den > 0 && rel <= mc->limit,
        "%s vs single device, %d chunks: rel L2 %.3g (limit %.1g); mesh up in "
        "%.0f ms, chunks %.0f/%.0f/%.0f ms", name, CHUNKS, rel, mc->limit,
        t_create, chunk_ms[0], chunk_ms[1], chunk_ms[2]);
  } else if (st == DIT_OK) {
    check (0, "%s: reference failed", name);
  }
  free (got);
  free (ref);
  free (prompt);
}

/* 1 once `pid` (our child, not reaped) has exited: zombie or gone. */
static int
exited (int pid)
{
  char path[64], buf[256];
  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen (path, "r");
  if (!f)
    return 1;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = '\0';
  const char *p = strrchr (buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void
kill_case (int shared)
{
  const mesh_case mc = { "tiny-tp", 0, DIT_F32, 8, 8, 2, 1, 0, shared, 0 };
  const int timeout = 6000, delay = 1000;
  const char *args[] = { "--test-delay-ms", "1000", NULL };
  dit_mesh_config c;
  dit_mesh *m = NULL;
  dit_model_config cfg;
  dit_model_config_preset (mc.preset, &cfg);
  float *prompt = make_prompt (5, cfg.text_dim);
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 5, cfg.text_dim);
  mesh_config (&mc, &c, args);
  c.chunk_timeout_ms = timeout;
  c.join_timeout_ms = 60000;
  static float out[16 * 3 * 8 * 8];
  int64_t shape[4] = { 16, 3, 8, 8 };
  dit_tensor o = dit_tensor_make (out, DIT_F32, DIT_DEVICE_CPU, 4, shape);
  dit_chunk_request req0 = { .chunk_index = 0 };
  dit_chunk_request req1 = { .chunk_index = 1, .context = &o };
  if (dit_mesh_create (&c, &m) != DIT_OK || dit_mesh_set_prompt (m, &pt) != DIT_OK
      || dit_mesh_run_chunk (m, &req0, &o, NULL) != DIT_OK
      || dit_mesh_submit (m, &req1, NULL) != DIT_OK) {
    check (0, "kill: mesh setup: %s", dit_last_error ());
    dit_mesh_free (m);
    free (prompt);
    return;
  }
  int pid0 = dit_mesh_worker_pid (m, 0);
  usleep (300 * 1000);
  double t0 = dit_now_ms ();
  kill (dit_mesh_worker_pid (m, 1), SIGKILL);
  dit_status st = dit_mesh_collect (m, NULL, NULL, NULL);
  double dt = dit_now_ms () - t0;
  const char *msg = dit_last_error ();
  check (st != DIT_OK && strstr (msg, "worker rank 1") && strstr (msg, "signal 9")
      && dt <= timeout, "kill worker rank 1 mid-chunk: error after %.0f ms "
      "(limit %d ms): %s", dt, timeout, st != DIT_OK ? msg : "no error");
  /* Rank 0 sits in an all-reduce whose peer is gone: its watchdog must
   * abort the communicator and the worker exit, not hang. */
  const double limit = timeout + delay + 5000;
  while (!exited (pid0) && dit_now_ms () - t0 < limit)
    usleep (20 * 1000);
  double dt0 = dit_now_ms () - t0;
  check (exited (pid0), "worker rank 0 (stuck collective) exited by itself "
      "%.0f ms after the kill (limit %.0f ms)", dt0, limit);
  dit_mesh_free (m);
  free (prompt);
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: test-mesh-nccl DIT-WORKER [p2p|socket]\n");
    return 2;
  }
  worker_path = argv[1];
  if (argc > 2)
    variant = argv[2];
  if (strcmp (variant, "p2p") != 0 && strcmp (variant, "socket") != 0) {
    fprintf (stderr, "test-mesh-nccl: variant '%s' (p2p or socket)\n", variant);
    return 2;
  }
  int ndev = 0;
  if (cudaGetDeviceCount (&ndev) != cudaSuccess)
    ndev = 0;
  if (ndev < 2) {
    printf ("SKIP: %d CUDA device(s), the mesh test needs 2\n", ndev);
    return 77;
  }
  if (!dit_comm_nccl_available ()) {
    printf ("SKIP: this build has no NCCL transport\n");
    return 77;
  }
  signal (SIGPIPE, SIG_IGN);
  setenv ("NCCL_NVLS_ENABLE", "0", 0);
  if (strcmp (variant, "socket") == 0) {
    setenv ("NCCL_P2P_DISABLE", "1", 1);
    setenv ("NCCL_SHM_DISABLE", "1", 1);
    setenv ("NCCL_NET", "Socket", 1);
    setenv ("NCCL_SOCKET_IFNAME", "lo", 0);
  }
  dit_backend *cuda = dit_backend_create ("cuda", 0);
  if (!cuda) {
    fprintf (stderr, "cuda backend on GPU 0: %s\n", dit_last_error ());
    return 1;
  }
  stage0 = cuda;
  printf ("%d CUDA devices, NCCL transport '%s'\n", ndev, variant);

  /* TP N with Stage 0 on its own GPU needs N + 1 GPUs; shared, N. */
  const int own_tp = ndev >= 5 ? 4 : ndev >= 3 ? 2 : 1;
  const int shared_tp = ndev >= 4 ? 4 : 2;
  const mesh_case cases[] = {
    { "tiny-tp", 0, DIT_F32, 8, 8, own_tp, 1, 1e-5, 0, 0 },
    { "tiny-tp", 0, DIT_F32, 8, 8, shared_tp, 1, 1e-5, 1, 0 },
    { "tiny-tp", 0, DIT_F32, 8, 8, 2, 0, 1e-5, ndev < 3, 0 },
    { "wan-14b", 2, DIT_BF16, 16, 16, own_tp, 1, 2e-2, 0, 0 },
    { "wan-14b", 2, DIT_BF16, 16, 16, shared_tp, 1, 2e-2, 1, 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case (&cases[i], cuda);
  /* The multi-host path on one host: workers started as by a launcher and
   * joined through mesh-listen's address (on the socket variant NCCL runs
   * on its network transport); same output as the spawned meshes. */
  const mesh_case listen_case =
      { "wan-14b", 2, DIT_BF16, 16, 16, shared_tp, 1, 2e-2, 1, 1 };
  run_case (&listen_case, cuda);
  if (ndev < 5)
    printf ("note: %d GPUs: TP %d with Stage 0 on its own GPU, TP %d shared\n",
        ndev, own_tp, shared_tp);
  kill_case (ndev < 3);

  dit_backend_destroy (cuda);
  /* No worker may outlive its mesh. */
  int wst;
  pid_t left = waitpid (-1, &wst, WNOHANG);
  check (left == -1 && errno == ECHILD, "no worker process left after the meshes "
      "(waitpid %d)", (int) left);
  printf ("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
