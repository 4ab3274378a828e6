/* mesh — rank 0 side of the generator mesh (see dit_mesh.h).
 *
 * One control socket per worker rank.  Envelopes are encoded once
 * (validated and fully materialised) and the same bytes are written to
 * every rank; each rank answers every INFER with a RESULT (rank 0 of the
 * mesh lists the latents, every rank sends its output digest).
 *
 * Data plane: the world communicator (this side is world rank 0).  The
 * tensors of an INFER are copied into the staging slot of the call when
 * it is submitted (the caller's buffers are free again at once; on NCCL
 * the slot is device memory of world_backend) and broadcast from there,
 * one broadcast per tensor in frame order, right after the frame, unless
 * an earlier call's x0 is still outstanding: the world comm's operations
 * must come in the same order on every rank, and a worker takes the
 * INFER k + 1 data only after it sent the x0 of INFER k, so that broadcast
 * is deferred to dit_mesh_collect, right after the x0 it waits behind
 * (docs/protocol.md).  x0 lands in `latents` (on NCCL via a device
 * buffer); a stale result's x0 is received too and dropped.  Collecting
 * polls all ranks at once, so a rank that dies is seen when its socket
 * closes, not after the others; the error of a failed call names every
 * rank that died (with its wait status), stalled or reported an error.
 *
 * Co-located (cfg.colocate): mesh rank 0 is dit_worker_run on a thread of
 * this process, started before the other ranks are spawned; it joins over
 * loopback like them.  The world comm on this side is then the Stage 0
 * end of an in-process pair (dit_comm_local_pair; staging in world_backend
 * memory on CUDA, so the hand-off is a copy on the GPU), ACCEPT carries
 * world_relay and the ranks relay the data on the mesh comm.  The thread's
 * end is reported like a process's exit (mesh_describe_exit) and it is
 * joined at shutdown and free.
 */
#include "dit_build_config.h"
#include "dit_mesh.h"
#include "dit_net.h"
#include "dit_tp.h"
#include "envelope.h"
#include "../kernels/dit_clock.h"
#if DIT_HAVE_CUDA
#include "../kernels/cuda/dit_cuda.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESH_MAX_INFLIGHT 8
/* After a rank died mid-call, how long the others get to report how their
 * collectives failed (the TP group cannot finish the call without it). */
#define MESH_DEATH_GRACE_MS 1000

typedef struct mesh_rank {
  int fd;
  pid_t pid;          /* spawned worker, 0 otherwise */
  int exited;
  int wstatus;
  char addr[64];
  /* co-located mesh rank 0: a thread of this process (dit_worker_run) */
  int thread;
  int thread_done;    /* set (atomically) when dit_worker_run returned */
  dit_status thread_status;
  char thread_msg[512];
} mesh_rank;

/* Staged tensors are packed at this alignment inside a slot. */
#define MESH_STAGE_ALIGN 256

typedef struct mesh_call {
  uint64_t call_id;
  int64_t chunk_index;
  uint64_t epoch;
  int slot;                   /* staging slot, -1 none */
  int n_data;                 /* tensors on the world comm, frame order */
  size_t off[DIT_ENV_MAX_TENSORS], bytes[DIT_ENV_MAX_TENSORS];
  int data_pending;           /* broadcast deferred behind an earlier x0 */
  uint64_t lora_digest;       /* the LoRA list's digest the call ran with */
} mesh_call;

struct dit_mesh {
  dit_mesh_config cfg;
  dit_model_config model;
  int sp, tp;                 /* the layout's degrees */
  dit_schedule sched;         /* of cfg.gen: the plans' steps and σ */
  int listen_fd, port;
  mesh_rank ranks[DIT_MESH_MAX_RANKS];
  uint64_t next_call;
  int64_t next_chunk;
  uint64_t epoch;
  mesh_call inflight[MESH_MAX_INFLIGHT];
  int n_inflight;
  float *prompt;
  int64_t prompt_rows;
  uint64_t prompt_epoch;      /* bumped by every dit_mesh_set_prompt */
  uint64_t prompt_sent;       /* the epoch whose tensor the workers have */
  /* LoRAs: the list in force, as text, its mode and digest; epochs as the
   * prompt's (bumped by every dit_mesh_set_lora) */
  char lora[DIT_ENV_MAX_LORA + 1];
  dit_lora_mode lora_mode;
  uint64_t lora_digest;
  uint64_t lora_epoch, lora_sent;
  int64_t last_send_ms;       /* heartbeat: last envelope sent */
  int failed;
  char failure[1200];
  unsigned char *buf;
  size_t cap;
  float *latents;      /* last rank-0 result */
  dit_mesh_stats stats;
  /* data plane */
  dit_comm *world;
  int world_nccl;             /* NCCL (backend cuda), else the CPU comm */
  int world_listen_fd, world_port;
  dit_backend *wbe;           /* world_backend on NCCL */
  int world_device;
  unsigned char world_id[DIT_COMM_NCCL_ID_BYTES];
  size_t stage_cap[3];        /* largest prompt, context, init (bytes) */
  size_t stage_bytes;         /* one slot */
  void *stage[MESH_MAX_INFLIGHT];
  unsigned slot_busy;
  void *x0_stage;             /* NCCL: device buffer x0 lands in */
  /* co-location: mesh rank 0 on a thread of this process, the data plane
   * to it an in-process hand-off (dit_comm_local_pair) */
  int colocated;
  int world_dev;              /* staging in world_backend memory (NCCL, or
                                 co-located on CUDA); else host memory */
  pthread_t thread;
  int thread_started;
  dit_worker_config wcfg;     /* the thread's worker config */
  char wconnect[64];
};

int
dit_mesh_port (const dit_mesh *m)
{
  return m->port;
}

int
dit_mesh_worker_pid (const dit_mesh *m, int rank)
{
  return rank >= 0 && rank < m->cfg.ranks ? (int) m->ranks[rank].pid : 0;
}

static int mesh_nccl (const dit_mesh *m);

void
dit_mesh_get_stats (const dit_mesh *m, dit_mesh_stats *s)
{
  *s = m->stats;
  /* co-located: the in-process hand-off, then the mesh comm (NCCL on
   * cuda with more than one rank) */
  s->world_nccl = m->world_nccl || (m->colocated && mesh_nccl (m)
      && dit_comm_nccl_available ());
  s->colocated = m->colocated;
}

/* Record a failure: the mesh refuses everything afterwards. */
static dit_status
mesh_fail (dit_mesh *m, dit_status st, const char *msg)
{
  if (!m->failed) {
    m->failed = 1;
    snprintf (m->failure, sizeof m->failure, "%s", msg);
  }
  return dit_error (st, "%s", m->failure);
}

static dit_status
mesh_check (dit_mesh *m)
{
  if (m->failed)
    return dit_error (DIT_ERR_STATE, "mesh failed earlier: %s", m->failure);
  return DIT_OK;
}

/* Reap a spawned rank if it has exited; describe its end in buf. */
static int
mesh_reap (mesh_rank *r, int64_t deadline)
{
  if (r->thread) {
    while (!__atomic_load_n (&r->thread_done, __ATOMIC_ACQUIRE)
        && dit_net_now_ms () < deadline)
      usleep (2000);
    r->exited = __atomic_load_n (&r->thread_done, __ATOMIC_ACQUIRE);
    return r->exited;
  }
  if (!r->pid || r->exited)
    return r->exited;
  for (;;) {
    pid_t p = waitpid (r->pid, &r->wstatus, WNOHANG);
    if (p == r->pid) {
      r->exited = 1;
      return 1;
    }
    if (dit_net_now_ms () >= deadline)
      return 0;
    usleep (2000);
  }
}

/* "(pid N)", or where the co-located rank 0 runs, for messages. */
static const char *
mesh_where (const mesh_rank *r, char *buf, size_t n)
{
  if (r->thread)
    snprintf (buf, n, "(in Stage 0's process)");
  else
    snprintf (buf, n, "(pid %d)", (int) r->pid);
  return buf;
}

static void
mesh_describe_exit (const mesh_rank *r, char *buf, size_t n)
{
  if (r->thread && r->exited && r->thread_status != DIT_OK)
    snprintf (buf, n, "(in Stage 0's process) stopped: %.90s", r->thread_msg);
  else if (r->thread && r->exited)
    snprintf (buf, n, "(in Stage 0's process) ended");
  else if (r->thread)
    snprintf (buf, n, "(in Stage 0's process) closed its connection");
  else if (!r->pid)
    snprintf (buf, n, "closed its connection");
  else if (!r->exited)
    snprintf (buf, n, "closed its connection (pid %d still running)", (int) r->pid);
  else if (WIFSIGNALED (r->wstatus))
    snprintf (buf, n, "died (pid %d killed by signal %d)", (int) r->pid,
        WTERMSIG (r->wstatus));
  else
    snprintf (buf, n, "exited (pid %d, status %d)", (int) r->pid,
        WEXITSTATUS (r->wstatus));
}

/* ---- spawning and joining ----------------------------------------------- */

static dit_status
mesh_spawn (dit_mesh *m, int rank)
{
  const dit_mesh_config *c = &m->cfg;
  char addr[64], rk[16], tp[16], dev[16], seed[32], to[16], layers[16], mtp[16];
  const char *argv[64];
  int n = 0;
  snprintf (addr, sizeof addr, "127.0.0.1:%d", m->port);
  snprintf (rk, sizeof rk, "%d", rank);
  snprintf (tp, sizeof tp, "%d", c->ranks);
  snprintf (dev, sizeof dev, "%d", c->devices ? c->devices[rank] : rank);
  snprintf (seed, sizeof seed, "%llu", (unsigned long long) c->synthetic_seed);
  snprintf (to, sizeof to, "%d", c->chunk_timeout_ms);
  argv[n++] = c->worker_path;
  argv[n++] = "--connect"; argv[n++] = addr;
  argv[n++] = "--rank"; argv[n++] = rk;
  argv[n++] = "--tp"; argv[n++] = tp;
  argv[n++] = "--parallel"; argv[n++] = dit_mesh_layout_name (c->layout);
  if (c->layout == DIT_MESH_LAYOUT_HYBRID) {
    snprintf (mtp, sizeof mtp, "%d", m->tp);
    argv[n++] = "--mesh-tp"; argv[n++] = mtp;
  }
  argv[n++] = "--device"; argv[n++] = dev;
  argv[n++] = "--backend"; argv[n++] = c->backend ? c->backend : "cpu";
  argv[n++] = "--preset"; argv[n++] = c->preset;
  argv[n++] = "--dtype";
  argv[n++] = dit_precision_name (dit_precision_of (c->gen.dtype, c->gen.fp8));
  argv[n++] = "--timeout-ms"; argv[n++] = to;
  if (c->weights) {
    argv[n++] = "--weights"; argv[n++] = c->weights;
  } else {
    argv[n++] = "--seed"; argv[n++] = seed;
  }
  if (c->layers > 0) {
    snprintf (layers, sizeof layers, "%d", c->layers);
    argv[n++] = "--layers"; argv[n++] = layers;
  }
  for (int i = 0; c->worker_args && c->worker_args[i] && n < 62; i++)
    argv[n++] = c->worker_args[i];
  argv[n] = NULL;

  pid_t pid = fork ();
  if (pid < 0)
    return dit_error (DIT_ERR_IO, "mesh: cannot fork worker rank %d: %s", rank,
        strerror (errno));
  if (pid == 0) {
    execvp (argv[0], (char *const *) argv);
    fprintf (stderr, "mesh: cannot run '%s': %s\n", argv[0], strerror (errno));
    _exit (127);
  }
  m->ranks[rank].pid = pid;
  return DIT_OK;
}

/* ---- co-location: mesh rank 0 on a thread --------------------------------- */

/* Whether mesh rank 0 runs in this process (dit_mesh_colocate). */
static dit_status
mesh_colocate_resolve (const dit_mesh_config *c, int *on)
{
  const int dev0 = c->devices ? c->devices[0] : 0;
  const int cuda = c->backend && strcmp (c->backend, "cuda") == 0;
  *on = 0;
  if (c->colocate == DIT_MESH_COLOCATE_OFF)
    return DIT_OK;
  if (c->colocate == DIT_MESH_COLOCATE_AUTO) {
    *on = c->spawn && cuda && c->world_backend
        && dit_backend_device (c->world_backend) == DIT_DEVICE_CUDA
        && c->world_backend->device_index == dev0;
    return DIT_OK;
  }
  if (!c->spawn)
    return dit_error (DIT_ERR_INVALID, "mesh: co-location on runs mesh rank 0 "
        "in this process, and this mesh waits for workers started elsewhere "
        "(spawn 0)");
  if (cuda && c->world_backend && dit_backend_device (c->world_backend)
      == DIT_DEVICE_CUDA && c->world_backend->device_index != dev0)
    return dit_error (DIT_ERR_INVALID, "mesh: co-location on puts mesh rank 0 "
        "on Stage 0's GPU %d, and the mesh's devices give it GPU %d",
        c->world_backend->device_index, dev0);
  *on = 1;
  return DIT_OK;
}

/* The extra worker arguments a co-located rank 0 understands: the ones
 * that tune or test a worker (the rest is the mesh's own config). */
static dit_status
mesh_thread_args (dit_mesh *m, dit_worker_config *w)
{
  const char *const *a = m->cfg.worker_args;
  for (int i = 0; a && a[i]; i += 2) {
    const char *k = a[i], *v = a[i + 1];
    int on = v && strcmp (v, "on") == 0, off = v && strcmp (v, "off") == 0;
    if (!v)
      return dit_error (DIT_ERR_INVALID, "mesh: worker argument %s needs a "
          "value", k);
    if (strcmp (k, "--graphs") == 0 && (on || off))
      w->graphs = on;
    else if (strcmp (k, "--comm-overlap") == 0 && (on || off))
      w->comm_overlap_off = off;
    else if (strcmp (k, "--test-delay-ms") == 0)
      w->test_delay_ms = atoi (v);
    else if (strcmp (k, "--test-cut-world") == 0)
      w->test_cut_world = atoi (v);
    else
      return dit_error (DIT_ERR_INVALID, "mesh: worker argument %s %s: a "
          "co-located mesh rank 0 takes --graphs, --comm-overlap, "
          "--test-delay-ms and --test-cut-world", k, v);
  }
  return DIT_OK;
}

static void *
mesh_thread_main (void *arg)
{
  dit_mesh *m = arg;
  mesh_rank *k = &m->ranks[0];
  dit_status st = dit_worker_run (&m->wcfg);
  k->thread_status = st;
  snprintf (k->thread_msg, sizeof k->thread_msg, "%s",
      st == DIT_OK ? "" : dit_last_error ());
  __atomic_store_n (&k->thread_done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Mesh rank 0 as dit_worker_run on a thread: the config a spawned rank 0
 * gets on its command line, and its end of the hand-off. */
static dit_status
mesh_thread_start (dit_mesh *m, dit_comm *local)
{
  const dit_mesh_config *c = &m->cfg;
  dit_worker_config *w = &m->wcfg;
  memset (w, 0, sizeof *w);
  snprintf (m->wconnect, sizeof m->wconnect, "127.0.0.1:%d", m->port);
  w->connect = m->wconnect;
  w->rank = 0;
  w->tp = c->ranks;
  w->layout = c->layout;
  w->mesh_tp = c->layout == DIT_MESH_LAYOUT_HYBRID ? m->tp : 0;
  w->device = c->devices ? c->devices[0] : 0;
  w->backend = c->backend ? c->backend : "cpu";
  w->preset = c->preset;
  w->weights = c->weights;
  w->synthetic_seed = c->synthetic_seed;
  w->dtype = c->gen.dtype;
  w->fp8 = c->gen.fp8;
  w->timeout_ms = c->chunk_timeout_ms;
  w->layers = c->layers;
  w->graphs = 1;
  w->world_local = local;
  dit_status st = mesh_thread_args (m, w);
  if (st == DIT_OK && pthread_create (&m->thread, NULL, mesh_thread_main, m) != 0)
    st = dit_error (DIT_ERR_IO, "mesh: cannot start the thread of the "
        "co-located mesh rank 0");
  if (st != DIT_OK) {
    dit_comm_destroy (local);
    return st;
  }
  m->thread_started = 1;
  m->ranks[0].thread = 1;
  return DIT_OK;
}

/* The thread's end, once its connection is closed (it then leaves its
 * loop at once) and Stage 0's end of the hand-off is closed (a wait on it
 * fails at once).  Its other waits end within the chunk timeout. */
static void
mesh_thread_join (dit_mesh *m)
{
  if (!m->thread_started)
    return;
  pthread_join (m->thread, NULL);
  m->thread_started = 0;
  m->ranks[0].exited = 1;
}

/* A spawned rank that exited before joining ends the wait at once. */
static dit_status
mesh_check_children (dit_mesh *m)
{
  for (int r = 0; r < m->cfg.ranks; r++) {
    mesh_rank *k = &m->ranks[r];
    if ((k->pid || k->thread) && k->fd < 0 && mesh_reap (k, 0)) {
      char why[128], msg[256];
      mesh_describe_exit (k, why, sizeof why);
      snprintf (msg, sizeof msg, "mesh: worker rank %d %s before joining", r, why);
      return mesh_fail (m, DIT_ERR_IO, msg);
    }
  }
  return DIT_OK;
}

/* The TP transport of this mesh is NCCL (workers on CUDA, TP > 1). */
static int
mesh_nccl (const dit_mesh *m)
{
  return m->cfg.ranks > 1 && m->cfg.backend && strcmp (m->cfg.backend, "cuda") == 0;
}

static dit_status
mesh_parity (dit_mesh *m, const dit_env_join *j, uint64_t fingerprint,
    char *why, size_t n)
{
  const dit_mesh_config *c = &m->cfg;
  const char *backend = c->backend ? c->backend : "cpu";
  if (j->tp != c->ranks)
    snprintf (why, n, "worker rank %d runs TP degree %d, the mesh has %d ranks",
        j->rank, j->tp, c->ranks);
  else if (j->layout != (int) c->layout)
    snprintf (why, n, "worker rank %d runs layout %s with tensor-parallel "
        "degree %d, the mesh has layout %s with tensor-parallel degree %d "
        "(field: layout)", j->rank, dit_mesh_layout_name ((dit_mesh_layout)
        j->layout), j->mesh_tp, dit_mesh_layout_name (c->layout), m->tp);
  else if (j->mesh_tp != m->tp)
    /* same layout and rank count, other groups: in hybrid the TP degree
     * inside a group (e.g. 8 ranks as SP 4 x TP 2 against SP 2 x TP 4) */
    snprintf (why, n, "worker rank %d runs layout %s with tensor-parallel "
        "degree %d inside a group (SP %d x TP %d), the mesh has %d (SP %d x "
        "TP %d) (field: mesh_tp)", j->rank, dit_mesh_layout_name (c->layout),
        j->mesh_tp, c->ranks / j->mesh_tp, j->mesh_tp, m->tp, m->sp, m->tp);
  else if (strcmp (j->preset, c->preset) != 0
      || j->config_digest != dit_tp_config_digest (&m->model))
    snprintf (why, n, "worker rank %d has model config '%s' with %d layers "
        "(digest %016llx), rank 0 has '%s' with %d layers (digest %016llx)",
        j->rank, j->preset, j->layers, (unsigned long long) j->config_digest,
        c->preset, m->model.num_layers,
        (unsigned long long) dit_tp_config_digest (&m->model));
  else if (strcmp (j->backend, backend) != 0)
    snprintf (why, n, "worker rank %d runs backend '%s', the mesh expects '%s' "
        "(the backend picks the TP transport)", j->rank, j->backend, backend);
  else if (mesh_nccl (m) && j->rank == 0 && !j->has_nccl_id)
    snprintf (why, n, "worker rank 0 sent no NCCL unique id (backend cuda, "
        "%d ranks)", c->ranks);
  else if (j->dtype != (int) dit_precision_of (c->gen.dtype, c->gen.fp8))
    snprintf (why, n, "worker rank %d computes in %s, rank 0 in %s", j->rank,
        dit_precision_name ((dit_precision) j->dtype),
        dit_precision_name (dit_precision_of (c->gen.dtype, c->gen.fp8)));
  else if (j->weights_fingerprint != fingerprint)
    snprintf (why, n, "worker rank %d has weight fingerprint %016llx, rank 0 "
        "expects %016llx (a different checkpoint or seed)", j->rank,
        (unsigned long long) j->weights_fingerprint,
        (unsigned long long) fingerprint);
  else if (j->rank < 0 || j->rank >= c->ranks)
    snprintf (why, n, "worker rank %d outside 0..%d", j->rank, c->ranks - 1);
  else if (m->ranks[j->rank].fd >= 0)
    snprintf (why, n, "two workers claim rank %d", j->rank);
  else
    return DIT_OK;
  return DIT_ERR_STATE;
}

/* After a failed world-comm setup: a worker that refused meanwhile (its
 * backend did not come up) says why. */
static int
mesh_find_refusal (dit_mesh *m, char *msg, size_t n)
{
  for (int r = 0; r < m->cfg.ranks; r++) {
    mesh_rank *k = &m->ranks[r];
    dit_envelope e;
    if (k->fd < 0 || !dit_net_wait_readable (k->fd, dit_net_now_ms ()))
      continue;
    if (dit_env_recv (k->fd, &e, &m->buf, &m->cap, dit_net_deadline (200),
            "mesh") == DIT_OK && e.type == DIT_ENV_REFUSE) {
      snprintf (msg, n, "mesh: worker rank %d failed to set up: %s", r, e.text);
      return 1;
    }
    char why[128];
    mesh_reap (k, dit_net_now_ms () + 200);
    mesh_describe_exit (k, why, sizeof why);
    snprintf (msg, n, "mesh: worker rank %d %s while the world comm was set up",
        r, why);
    return 1;
  }
  return 0;
}

/* Stage 0's side of the world comm (world rank 0 of ranks + 1), within
 * the join deadline. */
static dit_status
mesh_world_create (dit_mesh *m, uint64_t token, int64_t dl)
{
  const int size = m->cfg.ranks + 1;
  int64_t left = dl - dit_net_now_ms ();
  int left_ms = left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int) left;
  dit_status st;
  char msg[900];
  if (m->colocated) {
    /* the hand-off exists since create; the others relay on the mesh comm */
    m->world->timeout_ms = m->cfg.chunk_timeout_ms;
    return DIT_OK;
  }
  if (m->world_nccl) {
    void *stream = NULL;
#if DIT_HAVE_CUDA
    stream = dit_backend_cuda_stream (m->wbe);
#endif
    st = dit_comm_nccl_create (m->world_id, 0, size, m->world_device, stream,
        m->cfg.chunk_timeout_ms < left_ms ? left_ms : m->cfg.chunk_timeout_ms,
        &m->world);
  } else {
    st = dit_comm_cpu_create_root (m->world_listen_fd, size, token, left_ms,
        &m->world);
    m->world_listen_fd = -1;   /* owned (and closed) by the comm */
  }
  if (st != DIT_OK) {
    snprintf (msg, sizeof msg, "%s", dit_last_error ());
    if (mesh_find_refusal (m, msg, sizeof msg))
      return mesh_fail (m, DIT_ERR_STATE, msg);
    char full[1000];
    snprintf (full, sizeof full, "mesh: world comm (data plane) not up within "
        "the %d ms join timeout: %s", m->cfg.join_timeout_ms, msg);
    return mesh_fail (m, st, full);
  }
  /* Every later operation has the chunk deadline. */
  m->world->timeout_ms = m->cfg.chunk_timeout_ms;
  return DIT_OK;
}

static dit_status mesh_stage_alloc (dit_mesh *m, const dit_env_join *joins);

static dit_status
mesh_join (dit_mesh *m)
{
  const dit_mesh_config *c = &m->cfg;
  uint64_t fp;
  int64_t dl = dit_net_deadline (c->join_timeout_ms);
  dit_env_join joins[DIT_MESH_MAX_RANKS];
  char msg[1024];

  const dit_dtype prec = (dit_dtype) dit_precision_of (c->gen.dtype, c->gen.fp8);
  if (c->weights)
    DIT_TRY (dit_tp_fingerprint_file (c->weights, &m->model, prec, &fp));
  else
    fp = dit_tp_fingerprint_synthetic (&m->model, c->synthetic_seed, prec);

  for (int joined = 0; joined < c->ranks;) {
    int fd;
    int64_t step = dit_net_now_ms () + 50;
    if (step > dl)
      step = dl;
    /* Connections first: a worker that refused to join and exited has
     * its reason waiting there. */
    if (dit_net_accept (m->listen_fd, step, &fd) != DIT_OK) {
      DIT_TRY (mesh_check_children (m));
      if (dit_net_now_ms () >= dl) {
        snprintf (msg, sizeof msg, "mesh: only %d of %d workers joined within %d ms",
            joined, c->ranks, c->join_timeout_ms);
        return mesh_fail (m, DIT_ERR_IO, msg);
      }
      continue;
    }
    dit_envelope e;
    dit_status st = dit_env_recv (fd, &e, &m->buf, &m->cap, dl, "mesh: joining worker");
    if (st == DIT_OK && e.type == DIT_ENV_REFUSE) {
      /* A worker that cannot take part says why instead of joining. */
      close (fd);
      snprintf (msg, sizeof msg, "mesh: a worker could not join: %s", e.text);
      return mesh_fail (m, DIT_ERR_STATE, msg);
    }
    if (st != DIT_OK || e.type != DIT_ENV_JOIN) {
      close (fd);   /* not a worker: ignore it */
      continue;
    }
    char why[512];
    if (mesh_parity (m, &e.join, fp, why, sizeof why) != DIT_OK) {
      dit_envelope r;
      memset (&r, 0, sizeof r);
      r.type = DIT_ENV_REFUSE;
      snprintf (r.text, sizeof r.text, "parity check failed: %.200s", why);
      dit_env_send (fd, &r, dit_net_deadline (1000), "mesh");
      close (fd);
      snprintf (msg, sizeof msg, "mesh: parity check failed at join: %s", why);
      return mesh_fail (m, DIT_ERR_STATE, msg);
    }
    mesh_rank *k = &m->ranks[e.join.rank];
    k->fd = fd;
    if (!k->pid)
      k->pid = 0;
    joins[e.join.rank] = e.join;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getpeername (fd, (struct sockaddr *) &sa, &len) == 0)
      inet_ntop (AF_INET, &sa.sin_addr, k->addr, sizeof k->addr);
    joined++;
  }

  /* The data plane's transport and staging, now that the ranks' hosts and
   * devices are known. */
  dit_status sst = mesh_stage_alloc (m, joins);
  if (sst != DIT_OK)
    return mesh_fail (m, sst, dit_last_error ());
  if (m->world_nccl && m->world_listen_fd >= 0) {
    close (m->world_listen_fd);
    m->world_listen_fd = -1;
    m->world_port = 0;
  }
  if (m->world_nccl) {
    dit_status st = dit_comm_nccl_unique_id (m->world_id);
    if (st != DIT_OK)
      return mesh_fail (m, st, dit_last_error ());
  }

  /* Everybody passed: hand out the session. */
  uint64_t token = ((uint64_t) getpid () << 32) ^ (uint64_t) (dit_now_ms () * 1e3);
  int ufd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (ufd >= 0) {
    if (read (ufd, &token, sizeof token) != sizeof token)
      token ^= 0x5bd1e995u;
    close (ufd);
  }
  dit_envelope a;
  memset (&a, 0, sizeof a);
  a.type = DIT_ENV_ACCEPT;
  a.accept.token = token;
  snprintf (a.accept.comm_host, sizeof a.accept.comm_host, "%s", m->ranks[0].addr);
  a.accept.comm_port = joins[0].comm_port;
  if (mesh_nccl (m)) {
    a.accept.has_nccl_id = 1;
    memcpy (a.accept.nccl_id, joins[0].nccl_id, sizeof a.accept.nccl_id);
  }
  a.accept.world_port = m->colocated ? 0 : m->world_port;
  a.accept.world_relay = m->colocated;
  if (m->world_nccl) {
    a.accept.has_world_nccl_id = 1;
    memcpy (a.accept.world_nccl_id, m->world_id, sizeof a.accept.world_nccl_id);
  }
  a.accept.timeout_ms = c->chunk_timeout_ms;
  a.accept.latent_h = c->gen.latent_h;
  a.accept.latent_w = c->gen.latent_w;
  a.accept.frames_per_chunk = c->gen.frames_per_chunk;
  a.accept.context_frames = c->gen.context_frames;
  a.accept.num_steps = c->gen.num_steps;
  memcpy (a.accept.steps, c->gen.steps, sizeof a.accept.steps);
  a.accept.shift = c->gen.shift;
  a.accept.kv_bias = c->gen.kv_bias;
  a.accept.seed = c->gen.seed;
  a.accept.warp_steps = c->gen.warp_steps;
  for (int r = 0; r < c->ranks; r++) {
    dit_status st = dit_env_send (m->ranks[r].fd, &a, dl, "mesh: ACCEPT");
    if (st != DIT_OK)
      return mesh_fail (m, st, dit_last_error ());
  }
  /* Every worker brings its backend up and then joins the world comm. */
  DIT_TRY (mesh_world_create (m, token, dl));
  /* READY (NOOP) once the shard is loaded, or REFUSE with the reason.  All
   * ranks at once: the first refusal names the cause (the other ranks may
   * only be waiting for the refused one in their comm setup). */
  int ready[DIT_MESH_MAX_RANKS] = { 0 }, left = c->ranks;
  while (left > 0) {
    struct pollfd pf[DIT_MESH_MAX_RANKS];
    int who[DIT_MESH_MAX_RANKS], np = 0;
    for (int r = 0; r < c->ranks; r++)
      if (!ready[r]) {
        pf[np] = (struct pollfd) { .fd = m->ranks[r].fd, .events = POLLIN };
        who[np++] = r;
      }
    int64_t left_ms = dl - dit_net_now_ms ();
    int rc = left_ms > 0 ? poll (pf, (nfds_t) np, (int) left_ms) : 0;
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0) {
      snprintf (msg, sizeof msg, "mesh: worker rank %d did not become ready "
          "within %d ms (loading its shard)", who[0], c->join_timeout_ms);
      return mesh_fail (m, DIT_ERR_IO, msg);
    }
    for (int i = 0; i < np; i++) {
      if (!pf[i].revents)
        continue;
      int r = who[i];
      dit_envelope e;
      char peer[64];
      snprintf (peer, sizeof peer, "mesh: worker rank %d", r);
      dit_status st = dit_env_recv (m->ranks[r].fd, &e, &m->buf, &m->cap, dl, peer);
      if (st != DIT_OK) {
        char why[128];
        mesh_reap (&m->ranks[r], dit_net_now_ms () + 500);
        mesh_describe_exit (&m->ranks[r], why, sizeof why);
        snprintf (msg, sizeof msg, "mesh: worker rank %d %s before it was ready: %s",
            r, why, dit_last_error ());
        return mesh_fail (m, st, msg);
      }
      if (e.type == DIT_ENV_REFUSE) {
        snprintf (msg, sizeof msg, "mesh: worker rank %d failed to set up: %s", r,
            e.text);
        return mesh_fail (m, DIT_ERR_STATE, msg);
      }
      ready[r] = 1;
      left--;
    }
  }
  return DIT_OK;
}

/* ---- data plane --------------------------------------------------------- */

static void *
mesh_buf_alloc (dit_mesh *m, size_t bytes)
{
  return m->world_dev ? dit_backend_alloc (m->wbe, bytes) : malloc (bytes);
}

static void
mesh_buf_free (dit_mesh *m, void *p)
{
  if (!p)
    return;
  if (m->world_dev)
    dit_backend_free (m->wbe, p);
  else
    free (p);
}

/* Whether joined rank k runs on this host: it reached us over loopback,
 * or from the very address it reached (a local interface). */
static int
mesh_rank_is_local (const mesh_rank *k)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  char local[64];
  if (strncmp (k->addr, "127.", 4) == 0)
    return 1;
  if (getsockname (k->fd, (struct sockaddr *) &sa, &len) != 0
      || !inet_ntop (AF_INET, &sa.sin_addr, local, sizeof local))
    return 0;
  return strcmp (local, k->addr) == 0;
}

/* The world comm's transport, decided once every rank has joined.  NCCL
 * (device to device) when the workers run on CUDA, this build has NCCL,
 * the caller gave a CUDA world_backend and no rank on this host runs on
 * its GPU: NCCL allows one rank per GPU in a communicator, and Stage 0 is
 * a member.  Otherwise the CPU comm (sockets, host memory) carries the
 * tensors, as for CPU workers; the TP comm is NCCL either way.  With 2
 * GPUs the mesh on both (Stage 0 sharing GPU 0) is the faster
 * configuration, so the fallback is the rule there. */
static int
mesh_world_on_nccl (const dit_mesh *m, const dit_env_join *joins)
{
  const dit_mesh_config *c = &m->cfg;
  if (m->colocated || !c->backend || strcmp (c->backend, "cuda") != 0
      || !dit_comm_nccl_available () || !c->world_backend
      || dit_backend_device (c->world_backend) != DIT_DEVICE_CUDA)
    return 0;
  for (int r = 0; r < c->ranks; r++)
    if ((int) joins[r].device == c->world_backend->device_index
        && mesh_rank_is_local (&m->ranks[r]))
      return 0;
  return 1;
}

/* Staging of the data plane, allocated once: per in-flight slot the
 * largest prompt, context and init (f32), and on NCCL the x0 buffer. */
static dit_status
mesh_stage_alloc (dit_mesh *m, const dit_env_join *joins)
{
  const dit_mesh_config *c = &m->cfg;
  const size_t hw = (size_t) c->gen.latent_h * c->gen.latent_w;
  m->world_nccl = mesh_world_on_nccl (m, joins);
  /* co-located on CUDA: the hand-off copies on the GPU, so staging stays
   * in device memory as on NCCL (m->world_dev is set by create then) */
  m->world_dev = m->world_dev || m->world_nccl;
  if (m->world_dev)
    m->wbe = c->world_backend;
  m->stage_cap[0] = (size_t) m->model.text_len * m->model.text_dim * sizeof (float);
  m->stage_cap[1] = (size_t) 16 * c->gen.context_frames * hw * sizeof (float);
  m->stage_cap[2] = (size_t) 16 * c->gen.frames_per_chunk * hw * sizeof (float);
  m->stage_bytes = 0;
  for (int i = 0; i < 3; i++)
    m->stage_bytes += (m->stage_cap[i] + MESH_STAGE_ALIGN - 1)
        / MESH_STAGE_ALIGN * MESH_STAGE_ALIGN;
  for (int i = 0; i < m->cfg.max_inflight; i++)
    if (!(m->stage[i] = mesh_buf_alloc (m, m->stage_bytes)))
      return dit_error (DIT_ERR_NOMEM, "mesh: no %zu bytes of %s memory for "
          "staging slot %d", m->stage_bytes, m->world_dev ? "device" : "host", i);
  if (m->world_dev && !(m->x0_stage = mesh_buf_alloc (m, m->stage_cap[2])))
    return dit_error (DIT_ERR_NOMEM, "mesh: no device memory for x0");
  if (m->world_nccl) {
    m->world_device = dit_comm_nccl_pointer_device (m->x0_stage);
    if (m->world_device < 0)
      return dit_error (DIT_ERR_DEVICE, "mesh: cannot tell the GPU of "
          "world_backend");
  }
  return DIT_OK;
}

/* Which of prompt, context, init a tensor name is; -1 other. */
static int
mesh_stage_kind (const char *name)
{
  static const char *const names[3] = { "prompt", "context", "init" };
  for (int i = 0; i < 3; i++)
    if (strcmp (name, names[i]) == 0)
      return i;
  return -1;
}

static int
mesh_slot_get (dit_mesh *m)
{
  for (int i = 0; i < m->cfg.max_inflight; i++)
    if (!(m->slot_busy & (1u << i))) {
      m->slot_busy |= 1u << i;
      return i;
    }
  return -1;
}

static void
mesh_slot_put (dit_mesh *m, int slot)
{
  if (slot >= 0)
    m->slot_busy &= ~(1u << slot);
}

/* One tensor into staging.  Device tensors (on the caller's world backend)
 * stay on the device when the world comm is NCCL; the CPU comm needs them
 * in host memory (a download: the transport's, not a choice). */
static dit_status
mesh_stage_copy (dit_mesh *m, void *dst, const dit_env_tensor *t, size_t bytes)
{
  dit_backend *be = m->cfg.world_backend;
  if (t->device == DIT_DEVICE_CPU) {
    if (!m->world_dev) {
      memcpy (dst, t->data, bytes);
      return DIT_OK;
    }
    return dit_upload (m->wbe, dst, t->data, bytes);
  }
  if (!be || dit_backend_device (be) != t->device)
    return dit_error (DIT_ERR_INVALID, "mesh: tensor '%s' is in device "
        "memory, and the mesh has no world backend of that device", t->name);
  if (!m->world_dev)
    return dit_download (be, dst, t->data, bytes);
  int64_t n = (int64_t) (bytes / dit_dtype_size (t->dtype));
  dit_tensor s = dit_tensor_2d ((void *) t->data, t->dtype, t->device, 1, n);
  dit_tensor d = dit_tensor_2d (dst, t->dtype, t->device, 1, n);
  dit_copy_params cp = { .x = &s, .y = &d };
  return dit_copy (m->wbe, &cp);
}

/* Copy the INFER's tensors into a free slot; nothing is sent here, and a
 * tensor the workers could not take is refused. */
static dit_status
mesh_stage (dit_mesh *m, const dit_envelope *env, mesh_call *call)
{
  size_t off = 0;
  call->slot = -1;
  call->n_data = 0;
  call->data_pending = 0;
  if (env->n_tensors == 0)
    return DIT_OK;
  if (!m->world)
    return dit_error (DIT_ERR_STATE, "mesh: no world comm");
  for (int i = 0; i < env->n_tensors; i++) {
    const dit_env_tensor *t = &env->tensors[i];
    int k = mesh_stage_kind (t->name);
    size_t bytes = dit_dtype_size (t->dtype);
    for (int d = 0; d < t->ndim; d++)
      bytes *= (size_t) t->shape[d];
    if (k < 0)
      return dit_error (DIT_ERR_INVALID, "mesh: tensor '%s': the workers take "
          "prompt, context and init", t->name);
    if (bytes && !t->data)
      return dit_error (DIT_ERR_INVALID, "mesh: tensor '%s' has no data", t->name);
    if (bytes > m->stage_cap[k])
      return dit_error (DIT_ERR_INVALID, "mesh: tensor '%s' of %zu bytes exceeds "
          "the %zu bytes of the session's largest %s", t->name, bytes,
          m->stage_cap[k], t->name);
    call->off[i] = off;
    call->bytes[i] = bytes;
    off += (bytes + MESH_STAGE_ALIGN - 1) / MESH_STAGE_ALIGN * MESH_STAGE_ALIGN;
  }
  if (off > m->stage_bytes)
    return dit_error (DIT_ERR_INVALID, "mesh: the envelope's tensors need %zu "
        "bytes, a staging slot has %zu", off, m->stage_bytes);
  int slot = mesh_slot_get (m);
  if (slot < 0)
    return dit_error (DIT_ERR_STATE, "mesh: no free staging slot");
  for (int i = 0; i < env->n_tensors; i++) {
    unsigned char *dst = (unsigned char *) m->stage[slot] + call->off[i];
    dit_status st = mesh_stage_copy (m, dst, &env->tensors[i], call->bytes[i]);
    if (st != DIT_OK) {
      mesh_slot_put (m, slot);
      return dit_error_prefix (st, "mesh: staging '%s'", env->tensors[i].name);
    }
  }
  call->slot = slot;
  call->n_data = env->n_tensors;
  return DIT_OK;
}

/* A failure on the world comm, naming the worker rank (world rank - 1)
 * when the transport knows the peer, or the ranks whose control socket is
 * gone. */
static dit_status
mesh_world_fail (dit_mesh *m, dit_status st, const char *what,
    const mesh_call *call)
{
  char msg[1100], err[600], who[300] = "";
  size_t n = 0;
  snprintf (err, sizeof err, "%s", dit_last_error ());
  int peer = m->world ? m->world->failed_peer : -1;
  for (int r = 0; r < m->cfg.ranks && n < sizeof who - 1; r++) {
    mesh_rank *k = &m->ranks[r];
    int gone = peer == r + 1;
    if (!gone && peer < 1 && k->fd >= 0) {
      struct pollfd pf = { .fd = k->fd, .events = POLLIN };
      char b;
      gone = poll (&pf, 1, 0) > 0 && ((pf.revents & (POLLHUP | POLLERR))
          || recv (k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0);
    }
    if (!gone)
      continue;
    char why[128];
    mesh_reap (k, dit_net_now_ms () + 200);
    if (k->exited)
      mesh_describe_exit (k, why, sizeof why);
    else
      mesh_where (k, why, sizeof why);
    n += (size_t) snprintf (who + n, sizeof who - n, "%sworker rank %d %s",
        n ? ", " : "", r, why);
  }
  snprintf (msg, sizeof msg, "mesh: call %llu (chunk %lld) failed: %s%sworld "
      "comm (data plane) failed during %s: %s",
      (unsigned long long) call->call_id, (long long) call->chunk_index, who,
      n ? ": " : "", what, err);
  return mesh_fail (m, st, msg);
}

/* The call's tensors from its slot, one broadcast each, frame order. */
static dit_status
mesh_broadcast_data (dit_mesh *m, mesh_call *call)
{
  for (int i = 0; i < call->n_data; i++) {
    void *p = (unsigned char *) m->stage[call->slot] + call->off[i];
    dit_status st = dit_comm_broadcast (m->world, p, call->bytes[i], 0);
    if (st != DIT_OK) {
      char what[64];
      snprintf (what, sizeof what, "the broadcast of tensor %d", i);
      return mesh_world_fail (m, st, what, call);
    }
    m->stats.world_bytes += call->bytes[i];
  }
  call->data_pending = 0;
  return DIT_OK;
}

/* x0 of a call from world rank 1 (mesh rank 0): into `latents` on the CPU
 * comm, into the device buffer x0_stage on NCCL.  *host: `latents` holds
 * it (always on the CPU comm; on NCCL when `want_host`, which the digest
 * check and host outputs ask for). */
static dit_status
mesh_recv_x0 (dit_mesh *m, const mesh_call *call, size_t bytes, int want_host,
    int *host)
{
  dit_status st;
  *host = !m->world_dev;
  if (m->world_dev) {
    st = dit_comm_recv (m->world, m->x0_stage, bytes, 1);
    if (st == DIT_OK)
      st = dit_comm_flush (m->world);
    if (st == DIT_OK && want_host) {
      st = dit_download (m->wbe, m->latents, m->x0_stage, bytes);
      if (st != DIT_OK)
        return mesh_fail (m, st, dit_last_error ());
      *host = 1;
    }
  } else {
    st = dit_comm_recv (m->world, m->latents, bytes, 1);
  }
  if (st != DIT_OK)
    return mesh_world_fail (m, st, "the receive of x0 from worker rank 0", call);
  m->stats.world_bytes += bytes;
  return DIT_OK;
}

dit_status
dit_mesh_create (const dit_mesh_config *cfg, dit_mesh **out)
{
  *out = NULL;
  if (cfg->ranks < 1 || cfg->ranks > DIT_MESH_MAX_RANKS)
    return dit_error (DIT_ERR_INVALID, "mesh: %d ranks (1..%d)", cfg->ranks,
        DIT_MESH_MAX_RANKS);
  int sp, tp;
  DIT_TRY (dit_mesh_layout_degrees (cfg->layout, cfg->ranks, cfg->mesh_tp, &sp,
      &tp));
  dit_mesh *m = calloc (1, sizeof *m);
  if (!m)
    return dit_error (DIT_ERR_NOMEM, "mesh: out of memory");
  m->cfg = *cfg;
  m->sp = sp;
  m->tp = tp;
  m->listen_fd = -1;
  m->world_listen_fd = -1;
  for (int r = 0; r < DIT_MESH_MAX_RANKS; r++)
    m->ranks[r].fd = -1;
  if (m->cfg.max_inflight < 1)
    m->cfg.max_inflight = 1;
  if (m->cfg.max_inflight > MESH_MAX_INFLIGHT)
    m->cfg.max_inflight = MESH_MAX_INFLIGHT;
  m->next_call = 1;

  dit_status st = dit_model_config_preset (cfg->preset, &m->model);
  if (st == DIT_OK && cfg->layers != 0) {
    if (cfg->layers < 0 || cfg->layers > m->model.num_layers)
      st = dit_error (DIT_ERR_INVALID, "mesh: %d layers (1..%d for preset '%s')",
          cfg->layers, m->model.num_layers, cfg->preset);
    else
      m->model.num_layers = cfg->layers;
  }
  if (st == DIT_OK)
    st = dit_model_tp_check (&m->model, tp);
  if (st == DIT_OK)
    st = dit_gen_config_validate (&cfg->gen, &m->model);
  if (st == DIT_OK && sp > 1) {
    const int64_t fs = (int64_t) (cfg->gen.latent_h / 2) * (cfg->gen.latent_w / 2);
    const int64_t tokens[2] = { cfg->gen.frames_per_chunk * fs,
      cfg->gen.context_frames * fs };
    st = dit_model_sp_check (&m->model, sp, tp, tokens, 2);
  }
  if (st == DIT_OK)
    st = dit_schedule_make (&cfg->gen, &m->sched);
  if (st == DIT_OK) {
    char host[128] = "127.0.0.1";
    int port = 0;
    if (cfg->listen)
      st = dit_net_parse_addr (cfg->listen, host, sizeof host, &port);
    if (st == DIT_OK)
      st = dit_net_listen (host, &port, &m->listen_fd);
    m->port = port;
    /* The CPU world comm listens like the control socket, on a port of
     * the kernel's choice (closed again when the world comm is NCCL: the
     * transport is chosen once the workers have joined). */
    m->world_port = 0;
    if (st == DIT_OK)
      st = mesh_colocate_resolve (cfg, &m->colocated);
    if (st == DIT_OK && !m->colocated)
      st = dit_net_listen (host, &m->world_port, &m->world_listen_fd);
  }
  /* Co-located: mesh rank 0 is a thread of this process; the world
   * traffic to it is the in-process hand-off (on the world backend's GPU
   * when there is one) and the other ranks' rides on the mesh comm. */
  if (st == DIT_OK && m->colocated) {
    dit_comm *rank0 = NULL;
    m->world_dev = cfg->backend && strcmp (cfg->backend, "cuda") == 0
        && cfg->world_backend
        && dit_backend_device (cfg->world_backend) == DIT_DEVICE_CUDA;
    st = dit_comm_local_pair (m->world_dev ? cfg->world_backend : NULL,
        cfg->chunk_timeout_ms, &m->world, &rank0);
    if (st == DIT_OK)
      st = mesh_thread_start (m, rank0);
  }
  for (int r = m->colocated; st == DIT_OK && cfg->spawn && r < cfg->ranks; r++)
    st = mesh_spawn (m, r);
  if (st == DIT_OK)
    st = mesh_join (m);
  if (st == DIT_OK)
    m->latents = malloc ((size_t) 16 * cfg->gen.frames_per_chunk
        * cfg->gen.latent_h * cfg->gen.latent_w * sizeof (float));
  if (st == DIT_OK && !m->latents)
    st = dit_error (DIT_ERR_NOMEM, "mesh: out of memory");
  if (st != DIT_OK) {
    char msg[1024];
    snprintf (msg, sizeof msg, "%s", dit_last_error ());
    dit_mesh_free (m);
    return dit_error (st, "%s", msg);
  }
  *out = m;
  return DIT_OK;
}

void
dit_mesh_free (dit_mesh *m)
{
  if (!m)
    return;
  for (int r = 0; r < m->cfg.ranks; r++) {
    mesh_rank *k = &m->ranks[r];
    if (k->fd >= 0)
      close (k->fd);
    if (k->pid && !k->exited) {
      /* Closing the socket makes a healthy worker exit by itself; give it
       * a moment, then make sure. */
      if (!mesh_reap (k, dit_net_now_ms () + 200)) {
        kill (k->pid, SIGKILL);
        waitpid (k->pid, &k->wstatus, 0);
        k->exited = 1;
      }
    }
  }
  if (m->listen_fd >= 0)
    close (m->listen_fd);
  if (m->world_listen_fd >= 0)
    close (m->world_listen_fd);
  dit_comm_destroy (m->world);
  mesh_thread_join (m);
  for (int i = 0; i < MESH_MAX_INFLIGHT; i++)
    mesh_buf_free (m, m->stage[i]);
  mesh_buf_free (m, m->x0_stage);
  free (m->prompt);
  free (m->buf);
  free (m->latents);
  free (m);
}

dit_status
dit_mesh_set_prompt (dit_mesh *m, const dit_tensor *embeds)
{
  if (embeds->ndim != 2 || embeds->shape[1] != m->model.text_dim
      || embeds->shape[0] < 1 || embeds->shape[0] > m->model.text_len
      || embeds->device != DIT_DEVICE_CPU || !dit_tensor_is_contiguous (embeds))
    return dit_error (DIT_ERR_INVALID,
        "mesh: prompt embeddings must be host [1..%d, %d] contiguous",
        m->model.text_len, m->model.text_dim);
  size_t n = (size_t) dit_tensor_numel (embeds);
  float *p = malloc (n * sizeof (float));
  if (!p)
    return dit_error (DIT_ERR_NOMEM, "mesh: out of memory");
  dit_convert (p, DIT_F32, embeds->data, embeds->dtype, n);
  free (m->prompt);
  m->prompt = p;
  m->prompt_rows = embeds->shape[0];
  m->prompt_epoch++;
  return DIT_OK;
}

dit_status
dit_mesh_set_lora (dit_mesh *m, dit_lora_mode mode, const dit_lora_spec *spec)
{
  uint64_t digest;
  char text[DIT_ENV_MAX_LORA + 2];
  DIT_TRY (mesh_check (m));
  if (m->lora_epoch > 0 && mode != m->lora_mode)
    return dit_error (DIT_ERR_INVALID, "mesh: LoRA mode %s, the workers run "
        "%s", dit_lora_mode_name (mode), dit_lora_mode_name (m->lora_mode));
  if (mode == DIT_LORA_LIVE && m->cfg.gen.fp8 && spec->count > 0)
    return dit_error (DIT_ERR_INVALID, "mesh: lora-mode=live takes 16/32-bit "
        "weights; the workers' linear weights are FP8 (use lora-mode=merge)");
  dit_lora_spec_format (spec, text, sizeof text);
  if (strlen (text) > DIT_ENV_MAX_LORA)
    return dit_error (DIT_ERR_INVALID, "mesh: the LoRA list is longer than "
        "%d bytes", DIT_ENV_MAX_LORA);
  /* every file opened and checked here first, so that a bad list is
   * refused before any worker sees it; the workers' digests must match */
  DIT_TRY (dit_lora_spec_digest (spec, mode, &m->model, &digest));
  memcpy (m->lora, text, strlen (text) + 1);
  m->lora_mode = mode;
  m->lora_digest = digest;
  m->lora_epoch++;
  return DIT_OK;
}

uint64_t
dit_mesh_lora_digest (const dit_mesh *m)
{
  return m->lora_digest;
}

uint64_t
dit_mesh_prompt_epoch (const dit_mesh *m)
{
  return m->prompt_epoch;
}

void
dit_mesh_bump_epoch (dit_mesh *m)
{
  m->epoch++;
}

/* ---- envelopes ---------------------------------------------------------- */

static dit_status
mesh_broadcast_frame (dit_mesh *m, const unsigned char *frame, size_t n,
    const char *what)
{
  int64_t dl = dit_net_deadline (m->cfg.chunk_timeout_ms);
  for (int r = 0; r < m->cfg.ranks; r++) {
    char peer[96];
    snprintf (peer, sizeof peer, "mesh: %s to worker rank %d", what, r);
    dit_status st = dit_net_send_all (m->ranks[r].fd, frame, n, dl, peer);
    if (st != DIT_OK)
      return mesh_fail (m, st, dit_last_error ());
  }
  return DIT_OK;
}

dit_status
dit_mesh_send_envelope (dit_mesh *m, const dit_envelope *env)
{
  unsigned char *frame;
  size_t n;
  DIT_TRY (mesh_check (m));
  if (env->type == DIT_ENV_INFER && m->n_inflight >= m->cfg.max_inflight)
    return dit_error (DIT_ERR_STATE, "mesh: %d envelopes already in flight",
        m->n_inflight);
  if (env->n_tensors > 0 && env->type != DIT_ENV_INFER)
    return dit_error (DIT_ERR_INVALID, "mesh: envelope refused before sending: "
        "only INFER carries tensors (%s lists %d)", dit_env_type_name (env->type),
        env->n_tensors);
  /* Validate and materialise the whole frame, and stage the tensors,
   * before the first byte. */
  dit_status st = dit_env_encode (env, &frame, &n);
  if (st != DIT_OK)
    return dit_error_prefix (st, "mesh: envelope refused before sending");
  mesh_call call;
  memset (&call, 0, sizeof call);
  call.slot = -1;
  if (env->type == DIT_ENV_INFER && (st = mesh_stage (m, env, &call)) != DIT_OK) {
    free (frame);
    return dit_error_prefix (st, "mesh: envelope refused before sending");
  }
  st = mesh_broadcast_frame (m, frame, n, dit_env_type_name (env->type));
  free (frame);
  if (st != DIT_OK) {
    mesh_slot_put (m, call.slot);
    return st;
  }
  m->last_send_ms = dit_net_now_ms ();
  if (env->type == DIT_ENV_INFER) {
    mesh_call *c = &m->inflight[m->n_inflight++];
    *c = call;
    c->call_id = env->call_id;
    c->chunk_index = env->chunk_index;
    c->epoch = env->cache_epoch;
    c->lora_digest = env->lora_digest;
    /* The data follows the frame at once unless an earlier call's x0 is
     * still to come on the world comm; then collect sends it. */
    c->data_pending = c->n_data > 0;
    if (c->data_pending && m->n_inflight == 1)
      DIT_TRY (mesh_broadcast_data (m, c));
  }
  return DIT_OK;
}

static dit_status
mesh_add_tensor (dit_envelope *e, const char *name, const dit_tensor *t,
    int64_t c0, int64_t c1, int64_t c2, int64_t c3)
{
  if (!dit_tensor_is_contiguous (t) || t->ndim != 4
      || t->shape[0] != c0 || t->shape[1] != c1 || t->shape[2] != c2
      || t->shape[3] != c3)
    return dit_error (DIT_ERR_INVALID,
        "mesh: %s must be a contiguous tensor [%lld, %lld, %lld, %lld]",
        name, (long long) c0, (long long) c1, (long long) c2, (long long) c3);
  dit_env_tensor *x = &e->tensors[e->n_tensors++];
  snprintf (x->name, sizeof x->name, "%s", name);
  x->dtype = t->dtype;
  x->ndim = 4;
  memcpy (x->shape, t->shape, 4 * sizeof (int64_t));
  x->data = t->data;
  x->device = t->device;
  return DIT_OK;
}

dit_status
dit_mesh_submit (dit_mesh *m, const dit_chunk_request *req, uint64_t *call_id)
{
  dit_chunk_plan plan;
  DIT_TRY (mesh_check (m));
  DIT_TRY (dit_chunk_plan_make (&m->cfg.gen, &m->sched, req->chunk_index,
      req->first_step, &plan));
  return dit_mesh_submit_plan (m, &plan, req, call_id);
}

const dit_schedule *
dit_mesh_schedule (const dit_mesh *m)
{
  return &m->sched;
}

dit_status
dit_mesh_submit_plan (dit_mesh *m, const dit_chunk_plan *plan,
    const dit_chunk_request *req, uint64_t *call_id)
{
  const dit_gen_config *g = &m->cfg.gen;
  DIT_TRY (mesh_check (m));
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_INFER;
  e.call_id = m->next_call;
  e.chunk_index = req->chunk_index;
  e.cache_epoch = m->epoch;
  for (int s = 0; s < DIT_MAX_STEPS; s++)
    if (req->noise[s])
      return dit_error (DIT_ERR_INVALID,
          "mesh: caller noise is not supported (every rank draws Philox noise)");
  if (plan->do_recompute && !req->context)
    return dit_error (DIT_ERR_INVALID, "mesh: chunk %lld needs %d context latents",
        (long long) req->chunk_index, g->context_frames);
  if (!m->prompt)
    return dit_error (DIT_ERR_STATE, "mesh: set a prompt before the first chunk");
  /* The plan is made once, by dit_chunk_plan_make, and travels as is. */
  e.plan = *plan;
  e.prompt_epoch = m->prompt_epoch;
  e.lora_epoch = m->lora_epoch;
  e.lora_mode = (int) m->lora_mode;
  e.lora_digest = m->lora_digest;
  if (m->lora_sent != m->lora_epoch)
    memcpy (e.lora, m->lora, sizeof e.lora);
  if (m->prompt_sent != m->prompt_epoch) {
    dit_env_tensor *x = &e.tensors[e.n_tensors++];
    snprintf (x->name, sizeof x->name, "prompt");
    x->dtype = DIT_F32;
    x->ndim = 2;
    x->shape[0] = m->prompt_rows;
    x->shape[1] = m->model.text_dim;
    x->data = m->prompt;
  }
  if (req->context && plan->do_recompute)
    DIT_TRY (mesh_add_tensor (&e, "context", req->context, 16, g->context_frames,
        g->latent_h, g->latent_w));
  if (req->init_latents)
    DIT_TRY (mesh_add_tensor (&e, "init", req->init_latents, 16,
        g->frames_per_chunk, g->latent_h, g->latent_w));
  DIT_TRY (dit_mesh_send_envelope (m, &e));
  m->prompt_sent = m->prompt_epoch;
  m->lora_sent = m->lora_epoch;
  m->next_call++;
  if (call_id)
    *call_id = e.call_id;
  return DIT_OK;
}

static void mesh_add_err (char *errs, size_t size, size_t *len, int *bad,
    const char *fmt, ...) __attribute__ ((format (printf, 5, 6)));

/* Append "; <message>" to the list of what went wrong in a call. */
static void
mesh_add_err (char *errs, size_t size, size_t *len, int *bad, const char *fmt, ...)
{
  va_list ap;
  *bad = 1;
  if (*len >= size - 1)
    return;
  if (*len)
    *len += (size_t) snprintf (errs + *len, size - *len, "; ");
  if (*len >= size - 1)
    return;
  va_start (ap, fmt);
  int k = vsnprintf (errs + *len, size - *len, fmt, ap);
  va_end (ap);
  if (k > 0)
    *len = *len + (size_t) k < size ? *len + (size_t) k : size - 1;
}

/* One result from every rank for the oldest call in flight.  want_host:
 * the caller wants x0 in host memory; *x0_host: it is in `latents` (else in
 * the device buffer x0_stage). */
/* Waits until one of the pending ranks has something to read or the
 * deadline passes; who[i] names the rank of pf[i].  poll's result. */
static int
mesh_poll_pending (const dit_mesh *m, const int *pending, int64_t dl,
    struct pollfd *pf, int *who, int *np)
{
  *np = 0;
  for (int r = 0; r < m->cfg.ranks; r++)
    if (pending[r]) {
      pf[*np] = (struct pollfd) { .fd = m->ranks[r].fd, .events = POLLIN };
      who[(*np)++] = r;
    }
  int64_t left_ms = dl - dit_net_now_ms ();
  return left_ms > 0 ? poll (pf, (nfds_t) *np, (int) left_ms) : 0;
}

static dit_status
mesh_collect_one (dit_mesh *m, const mesh_call *call, int *stale,
    dit_chunk_timing *timing, int want_host, int *x0_host)
{
  const int n = m->cfg.ranks;
  int pending[DIT_MESH_MAX_RANKS], bad = 0;
  uint64_t digest[DIT_MESH_MAX_RANKS];
  char errs[768] = "";
  size_t elen = 0;
  double t0 = dit_now_ms ();
  int64_t dl = dit_net_deadline (m->cfg.chunk_timeout_ms);
  int left = n, peer_died = 0, x0_coming = 0;
  uint64_t x0_digest = 0;
  const size_t nb = (size_t) 16 * m->cfg.gen.frames_per_chunk * m->cfg.gen.latent_h
      * m->cfg.gen.latent_w * sizeof (float);
  *stale = call->epoch != m->epoch;
  for (int r = 0; r < n; r++)
    pending[r] = 1;

#define ADD_ERR(...) mesh_add_err (errs, sizeof errs, &elen, &bad, __VA_ARGS__)

  while (left > 0) {
    struct pollfd pf[DIT_MESH_MAX_RANKS];
    int who[DIT_MESH_MAX_RANKS], np;
    int rc = mesh_poll_pending (m, pending, dl, pf, who, &np);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0) {
      for (int i = 0; i < np; i++) {
        int r = who[i];
        char wh[40];
        mesh_where (&m->ranks[r], wh, sizeof wh);
        if (peer_died)
          ADD_ERR ("worker rank %d %s sent no result for call %llu (chunk "
              "%lld) within %d ms of a peer's death", r, wh,
              (unsigned long long) call->call_id, (long long) call->chunk_index,
              MESH_DEATH_GRACE_MS);
        else
          ADD_ERR ("worker rank %d %s sent no result for call %llu (chunk "
              "%lld) within %d ms", r, wh,
              (unsigned long long) call->call_id, (long long) call->chunk_index,
              m->cfg.chunk_timeout_ms);
        pending[r] = 0;
      }
      break;
    }
    for (int i = 0; i < np; i++) {
      if (!pf[i].revents)
        continue;
      int r = who[i];
      dit_envelope e;
      char peer[64];
      snprintf (peer, sizeof peer, "worker rank %d", r);
      pending[r] = 0;
      left--;
      dit_status st = dit_env_recv (m->ranks[r].fd, &e, &m->buf, &m->cap, dl, peer);
      if (st != DIT_OK) {
        char why[128];
        mesh_reap (&m->ranks[r], dit_net_now_ms () + 500);
        mesh_describe_exit (&m->ranks[r], why, sizeof why);
        ADD_ERR ("worker rank %d %s during call %llu (chunk %lld)", r, why,
            (unsigned long long) call->call_id, (long long) call->chunk_index);
        /* The TP group cannot finish this call any more (a peer stuck in
         * a collective may only notice at its own timeout): give the
         * others a short grace to report, not the whole chunk timeout. */
        int64_t grace = dit_net_deadline (MESH_DEATH_GRACE_MS);
        if (n > 1 && grace < dl) {
          dl = grace;
          peer_died = 1;
        }
        continue;
      }
      if (e.type != DIT_ENV_RESULT || e.call_id != call->call_id
          || e.chunk_index != call->chunk_index || e.cache_epoch != call->epoch) {
        ADD_ERR ("worker rank %d answered call %llu with %s for call %llu epoch %llu",
            r, (unsigned long long) call->call_id, dit_env_type_name (e.type),
            (unsigned long long) e.call_id, (unsigned long long) e.cache_epoch);
        continue;
      }
      if (e.status != 0) {
        ADD_ERR ("%s", e.text);
        continue;
      }
      digest[r] = e.digest;
      if (e.lora_digest != call->lora_digest)
        ADD_ERR ("worker rank %d applied LoRAs of digest %016llx, rank 0's "
            "list has %016llx", r, (unsigned long long) e.lora_digest,
            (unsigned long long) call->lora_digest);
      m->stats.last_rank_ms[r] = e.timing_ms[3];
      m->stats.last_allreduce_ms[r] = e.timing_ms[4];
      m->stats.last_exposed_ms[r] = e.timing_ms[5];
      if (r == 0) {
        const dit_env_tensor *x = dit_env_find (&e, "x0");
        if (!x || e.n_tensors != 1 || x->dtype != DIT_F32 || x->ndim != 4
            || (size_t) (x->shape[0] * x->shape[1] * x->shape[2] * x->shape[3])
            * 4 != nb) {
          ADD_ERR ("worker rank 0 returned no latents of the chunk's shape");
          continue;
        }
        x0_digest = e.digest;
        x0_coming = 1;   /* on the world comm, after this frame */
        if (timing) {
          timing->recompute_ms = e.timing_ms[1];
          timing->denoise_ms = e.timing_ms[2];
          timing->total_ms = e.timing_ms[3];
        }
      }
    }
  }
#undef ADD_ERR
  /* The x0 follows mesh rank 0's RESULT on the world comm; a stale one is
   * received as well (and dropped by the caller) to keep the comm in step. */
  /* The digest check reads host bytes: an x0 that lands in device memory
   * is checked every x0_check_every chunks, a host one always. */
  *x0_host = 0;
  if (!bad && x0_coming) {
    int every = m->cfg.x0_check_every > 0 ? m->cfg.x0_check_every : 1;
    int check = !*stale && call->chunk_index % every == 0;
    DIT_TRY (mesh_recv_x0 (m, call, nb, check || (want_host && !*stale),
        x0_host));
    if (*x0_host
        && dit_fnv1a64 (DIT_FNV1A64_OFFSET, m->latents, nb) != x0_digest)
      mesh_add_err (errs, sizeof errs, &elen, &bad,
          "worker rank 0: latents do not match their digest");
  }
  m->stats.last_roundtrip_ms = dit_now_ms () - t0;
  if (bad) {
    char msg[1100];
    snprintf (msg, sizeof msg, "mesh: call %llu (chunk %lld) failed: %s",
        (unsigned long long) call->call_id, (long long) call->chunk_index, errs);
    return mesh_fail (m, DIT_ERR_IO, msg);
  }
  int every = m->cfg.drift_every > 0 ? m->cfg.drift_every : 1;
  if (!*stale && call->chunk_index % every == 0) {
    m->stats.drift_checks++;
    for (int r = 1; r < n; r++)
      if (digest[r] != digest[0]) {
        char msg[256];
        snprintf (msg, sizeof msg, "mesh: drift at chunk %lld: worker rank %d "
            "output digest %016llx differs from rank 0's %016llx",
            (long long) call->chunk_index, r, (unsigned long long) digest[r],
            (unsigned long long) digest[0]);
        return mesh_fail (m, DIT_ERR_STATE, msg);
      }
  }
  return DIT_OK;
}

/* The collected x0 into `out`: host memory (any dtype), or device memory
 * of the world backend, where an x0 that arrived on NCCL is copied device
 * to device and one from the CPU comm is uploaded. */
static dit_status
mesh_deliver_x0 (dit_mesh *m, dit_tensor *out)
{
  const int64_t nel = (int64_t) 16 * m->cfg.gen.frames_per_chunk
      * m->cfg.gen.latent_h * m->cfg.gen.latent_w;
  dit_backend *be = m->cfg.world_backend;
  if (!dit_tensor_is_contiguous (out) || dit_tensor_numel (out) != nel)
    return dit_error (DIT_ERR_INVALID, "mesh: output must be a contiguous "
        "tensor of %lld elements", (long long) nel);
  if (out->device == DIT_DEVICE_CPU) {
    dit_convert (out->data, out->dtype, m->latents, DIT_F32, (size_t) nel);
    return DIT_OK;
  }
  if (!be || dit_backend_device (be) != out->device)
    return dit_error (DIT_ERR_INVALID, "mesh: a device output needs the "
        "mesh's world backend on that device");
  if (!m->world_dev) {
    /* the CPU comm delivered it to the host */
    if (out->dtype != DIT_F32)
      return dit_error (DIT_ERR_INVALID, "mesh: a device output must be f32");
    return dit_upload (be, out->data, m->latents, (size_t) nel * sizeof (float));
  }
  dit_tensor src = dit_tensor_2d (m->x0_stage, DIT_F32, out->device, 1, nel);
  dit_tensor dst = dit_tensor_2d (out->data, out->dtype, out->device, 1, nel);
  dit_copy_params cp = { .x = &src, .y = &dst };
  return dit_copy (m->wbe, &cp);
}

dit_status
dit_mesh_collect (dit_mesh *m, dit_tensor *out, dit_chunk_timing *timing,
    uint64_t *call_id)
{
  DIT_TRY (mesh_check (m));
  while (m->n_inflight > 0) {
    mesh_call call = m->inflight[0];
    memmove (m->inflight, m->inflight + 1, (size_t) (m->n_inflight - 1) * sizeof call);
    m->n_inflight--;
    int stale, x0_host;
    dit_status st = mesh_collect_one (m, &call, &stale, timing,
        out && out->device == DIT_DEVICE_CPU, &x0_host);
    mesh_slot_put (m, call.slot);
    DIT_TRY (st);
    /* The next call's data waited behind this x0 (docs/protocol.md). */
    if (m->n_inflight > 0 && m->inflight[0].data_pending)
      DIT_TRY (mesh_broadcast_data (m, &m->inflight[0]));
    if (stale) {
      m->stats.stale_dropped++;   /* epoch fence: never shown */
      continue;
    }
    m->stats.chunks++;
    if (call_id)
      *call_id = call.call_id;
    return out ? mesh_deliver_x0 (m, out) : DIT_OK;
  }
  return dit_error (DIT_ERR_STATE, "mesh: no call in flight (%llu stale results "
      "dropped)", (unsigned long long) m->stats.stale_dropped);
}

dit_status
dit_mesh_run_chunk (dit_mesh *m, const dit_chunk_request *req, dit_tensor *out,
    dit_chunk_timing *timing)
{
  DIT_TRY (dit_mesh_submit (m, req, NULL));
  return dit_mesh_collect (m, out, timing, NULL);
}

dit_status
dit_mesh_ping (dit_mesh *m)
{
  const int n = m->cfg.ranks;
  DIT_TRY (mesh_check (m));
  if (m->n_inflight > 0)
    return DIT_OK;   /* collect watches work in flight */
  if (m->cfg.heartbeat_ms > 0
      && dit_net_now_ms () - m->last_send_ms < m->cfg.heartbeat_ms)
    return DIT_OK;
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_NOOP;
  e.call_id = m->next_call++;
  DIT_TRY (dit_mesh_send_envelope (m, &e));

  int pending[DIT_MESH_MAX_RANKS], left = n, bad = 0;
  char errs[768] = "";
  size_t elen = 0;
  int64_t dl = dit_net_deadline (m->cfg.chunk_timeout_ms);
  for (int r = 0; r < n; r++)
    pending[r] = 1;
  while (left > 0) {
    struct pollfd pf[DIT_MESH_MAX_RANKS];
    int who[DIT_MESH_MAX_RANKS], np;
    int rc = mesh_poll_pending (m, pending, dl, pf, who, &np);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0) {
      for (int i = 0; i < np; i++) {
        char wh[40];
        mesh_add_err (errs, sizeof errs, &elen, &bad, "worker rank %d %s "
            "did not answer the heartbeat within %d ms", who[i],
            mesh_where (&m->ranks[who[i]], wh, sizeof wh),
            m->cfg.chunk_timeout_ms);
      }
      break;
    }
    for (int i = 0; i < np; i++) {
      if (!pf[i].revents)
        continue;
      int r = who[i];
      char peer[64];
      snprintf (peer, sizeof peer, "worker rank %d", r);
      pending[r] = 0;
      left--;
      dit_envelope a;
      if (dit_env_recv (m->ranks[r].fd, &a, &m->buf, &m->cap, dl, peer) != DIT_OK) {
        char why[128];
        mesh_reap (&m->ranks[r], dit_net_now_ms () + 500);
        mesh_describe_exit (&m->ranks[r], why, sizeof why);
        mesh_add_err (errs, sizeof errs, &elen, &bad, "worker rank %d %s "
            "(heartbeat)", r, why);
      } else if (a.type != DIT_ENV_NOOP) {
        mesh_add_err (errs, sizeof errs, &elen, &bad, "worker rank %d answered "
            "the heartbeat with %s", r, dit_env_type_name (a.type));
      }
    }
  }
  if (bad) {
    char msg[900];
    snprintf (msg, sizeof msg, "mesh: heartbeat failed: %s", errs);
    return mesh_fail (m, DIT_ERR_IO, msg);
  }
  return DIT_OK;
}

dit_status
dit_mesh_shutdown (dit_mesh *m)
{
  dit_status st = DIT_OK;
  char msg[1024] = "";
  /* Drain: results of work in flight are collected (and discarded). */
  while (st == DIT_OK && !m->failed && m->n_inflight > 0)
    st = dit_mesh_collect (m, NULL, NULL, NULL);
  if (m->failed)
    return dit_error (DIT_ERR_STATE, "mesh: shutdown after failure: %s", m->failure);
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_SHUTDOWN;
  e.call_id = m->next_call++;
  DIT_TRY (dit_mesh_send_envelope (m, &e));
  int64_t dl = dit_net_deadline (m->cfg.chunk_timeout_ms);
  for (int r = 0; r < m->cfg.ranks; r++) {
    mesh_rank *k = &m->ranks[r];
    dit_envelope a;
    char peer[64];
    snprintf (peer, sizeof peer, "worker rank %d", r);
    if (dit_env_recv (k->fd, &a, &m->buf, &m->cap, dl, peer) != DIT_OK
        || a.type != DIT_ENV_SHUTDOWN) {
      snprintf (msg + strlen (msg), sizeof msg - strlen (msg),
          "%sworker rank %d did not acknowledge SHUTDOWN", *msg ? "; " : "", r);
      st = DIT_ERR_IO;
    }
    close (k->fd);
    k->fd = -1;
  }
  if (m->thread_started) {
    /* the co-located rank 0 left its loop after the acknowledgement */
    mesh_thread_join (m);
    mesh_rank *k = &m->ranks[0];
    if (k->thread_status != DIT_OK) {
      snprintf (msg + strlen (msg), sizeof msg - strlen (msg),
          "%sworker rank 0 (in Stage 0's process) ended with: %s",
          *msg ? "; " : "", k->thread_msg);
      st = DIT_ERR_IO;
    }
  }
  for (int r = 0; r < m->cfg.ranks; r++) {
    mesh_rank *k = &m->ranks[r];
    if (!k->pid)
      continue;
    if (!mesh_reap (k, dl)) {
      kill (k->pid, SIGKILL);
      waitpid (k->pid, &k->wstatus, 0);
      k->exited = 1;
      snprintf (msg + strlen (msg), sizeof msg - strlen (msg),
          "%sworker rank %d (pid %d) did not exit after SHUTDOWN", *msg ? "; " : "",
          r, (int) k->pid);
      st = DIT_ERR_IO;
    } else if (!WIFEXITED (k->wstatus) || WEXITSTATUS (k->wstatus) != 0) {
      char why[128];
      mesh_describe_exit (k, why, sizeof why);
      snprintf (msg + strlen (msg), sizeof msg - strlen (msg),
          "%sworker rank %d %s", *msg ? "; " : "", r, why);
      st = DIT_ERR_IO;
    }
  }
  m->failed = 1;
  snprintf (m->failure, sizeof m->failure, "the mesh was shut down");
  if (st != DIT_OK)
    return dit_error (st, "mesh: shutdown: %s", msg);
  return DIT_OK;
}
