/* worker — the dit-worker loop: join, parity, shard, serve envelopes.
 *
 * States: CONNECT -> JOIN sent -> ACCEPT (or REFUSE: exit with the reason)
 * -> backend up -> world comm up -> TP comm up -> shard loaded -> READY (a
 * NOOP) -> serve:
 * INFER -> RESULT, NOOP -> NOOP, SHUTDOWN -> SHUTDOWN ack and exit.  Rank
 * 0's socket closing (it died or quit) ends the loop at once: the worker
 * never outlives its Stage 0.  Each INFER carries the chunk's plan, made
 * once on rank 0; a plan that does not fit this worker's session (steps,
 * σ, seed, RoPE start, bias, call count: dit_chunk_plan_check) is answered
 * with an error RESULT and the worker keeps serving; a failed collective is fatal
 * (the TP group is broken), reported in an error RESULT before exiting.
 *
 * TP transport by backend: "cpu" -> the CPU comm (mesh rank 0 listens on a
 * port it reports in its JOIN); "cuda" -> NCCL: mesh rank 0 makes the
 * unique id and sends it in its JOIN, Stage 0 forwards it in every ACCEPT,
 * and every rank creates the communicator on its CUDA backend's stream
 * (so the backend comes first).  A worker that cannot take part (no NCCL
 * in this build) sends REFUSE with the reason instead of a JOIN.
 *
 * Data plane: the world communicator (Stage 0 = world rank 0, this worker
 * world rank rank + 1; CPU comm on "cpu", NCCL on "cuda").  After an INFER
 * frame its tensors arrive as one broadcast each from world rank 0, in
 * frame order, straight into buffers of this worker's backend (device
 * memory on CUDA: the generator gets device views); after the RESULT frame
 * mesh rank 0 sends x0 from the backend buffer the generator wrote it to.
 * The RESULT digest covers the f32 latents (downloaded for it on CUDA).
 * A failed world-comm operation is fatal (the data plane is out of step).
 * Co-located layout (ACCEPT world_relay): this worker's world comm is a
 * relay (dit_comm_relay_create): mesh rank 0, a thread of Stage 0's
 * process, takes the tensors from Stage 0 through the in-process pair it
 * was given (cfg->world_local) and broadcasts them on the mesh comm, which
 * the other ranks receive from; x0 goes back through the pair.  The calls
 * below are the same either way.
 *
 * Forwards are recorded as CUDA graphs unless disabled (collectives
 * included: NCCL supports stream capture), and each INFER runs inside a
 * dit_comm_watch / dit_comm_flush pair, so a stuck collective (also one
 * replayed from a graph) is aborted by the comm's watchdog within the
 * timeout and reported for that chunk.  The collective time of the INFER
 * (all-reduces, and on the CPU comm the all-to-alls of sequence
 * parallelism) goes back as the fifth RESULT timing.
 *
 * Prompt epochs: each INFER names the prompt epoch in force; the worker
 * rebuilds its cross-attention K/V only when the epoch is new (the
 * envelope then carries the `prompt` tensor) and answers an INFER of a
 * newer epoch without one with an error.
 *
 * LoRAs likewise: an INFER of a new LoRA epoch carries the list's text;
 * the worker opens the files itself and applies them to its shard, each
 * factor cut the way its layer is (dit_tp_shard_specs: a column-parallel
 * layer takes its rows of B, a row-parallel one its columns of A; a
 * replicated layer the whole pair).  Every RESULT carries the digest of
 * what this rank applied, and an INFER whose digest (rank 0's) differs
 * from it is answered with an error naming the rank: ranks never run
 * different LoRAs silently.
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

#include <math.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct worker {
  const dit_worker_config *cfg;
  int fd;
  dit_model_config model;
  dit_gen_config gen;
  dit_backend *be;
  dit_comm *comm;            /* mesh communicator, NULL with one rank */
  dit_mesh_groups groups;    /* its TP and SP groups (the layout) */
  dit_comm *world;           /* data plane: Stage 0 + every mesh rank */
  char host[256];            /* the host Stage 0 was reached on */
  int world_port;
  unsigned char world_id[DIT_COMM_NCCL_ID_BYTES];
  /* receive buffers of the data plane (backend memory), by tensor name */
  void *rx[3];
  size_t rx_cap[3];
  void *x0;                  /* generator output, backend memory */
  int world_cut;             /* tests: the world comm was closed on purpose */
  dit_weights *weights;
  dit_generator *g;
  unsigned char *buf;
  size_t cap;
  float *out;                /* host f32 copy of x0 for the digest */
  char peer[64];
  int nccl;                  /* TP comm on NCCL (backend cuda) */
  int world_nccl;            /* the data plane in device memory: world
                                comm on NCCL, or relayed on a cuda mesh;
                                else host buffers (the CPU comm) */
  int world_relay;           /* co-located layout: the data plane comes
                                through mesh rank 0 (dit_comm_relay_create) */
  int local_taken;           /* cfg->world_local is owned by w->world */
  unsigned char nccl_id[DIT_COMM_NCCL_ID_BYTES];
  uint64_t prompt_epoch;     /* epoch of the prompt in the generator; 0 none */
  dit_lora_set *lora;        /* LoRAs on this rank's shard, NULL before any */
  uint64_t lora_epoch;       /* epoch of the list applied; 0 none */
} worker;

_Static_assert (DIT_ENV_NCCL_ID_BYTES == DIT_COMM_NCCL_ID_BYTES,
    "the envelope carries a whole NCCL unique id");

static dit_status
w_send_simple (worker *w, dit_env_type type, const char *text)
{
  dit_envelope e;
  memset (&e, 0, sizeof e);
  e.type = type;
  e.rank = w->cfg->rank;
  if (text)
    snprintf (e.text, sizeof e.text, "%s", text);
  return dit_env_send (w->fd, &e, dit_net_deadline (w->cfg->timeout_ms), w->peer);
}

/* Launchers (mpirun, srun, ssh loops) do not order a worker after Stage 0,
 * so a refused connection is tried again until the deadline: a worker
 * started first waits for Stage 0 to listen instead of failing. */
static dit_status
w_connect (const char *host, int port, int64_t deadline, int *fd)
{
  for (;;) {
    dit_status st = dit_net_connect (host, port, deadline, fd);
    if (st == DIT_OK || dit_net_now_ms () + 100 >= deadline)
      return st;
    usleep (100 * 1000);
  }
}

static dit_status
w_join (worker *w, int *comm_listen_fd, uint64_t *token, char *comm_host,
    int *comm_port)
{
  const dit_worker_config *c = w->cfg;
  char host[256];
  int port, lport = 0;
  int64_t dl = dit_net_deadline (c->timeout_ms);
  DIT_TRY (dit_net_parse_addr (c->connect, host, sizeof host, &port));
  snprintf (w->host, sizeof w->host, "%s", host);
  DIT_TRY (w_connect (host, port, dl, &w->fd));
  snprintf (w->peer, sizeof w->peer, "worker rank %d: Stage 0 at %s", c->rank,
      c->connect);

  dit_envelope e;
  memset (&e, 0, sizeof e);
  if (w->nccl) {
    dit_status st = DIT_OK;
    if (!dit_comm_nccl_available ())
      st = dit_error (DIT_ERR_UNSUPPORTED, "worker rank %d: backend 'cuda' with "
          "TP %d runs its collectives and data plane on NCCL, and this "
          "dit-worker was built without NCCL (it needs the CUDA backend, "
          "nccl.h and libnccl)", c->rank, c->tp);
    else if (c->rank == 0 && c->tp > 1
        && (st = dit_comm_nccl_unique_id (e.join.nccl_id)) != DIT_OK)
      st = dit_error_prefix (st, "worker rank 0");
    if (st != DIT_OK) {
      char msg[256];
      snprintf (msg, sizeof msg, "%s", dit_last_error ());
      w_send_simple (w, DIT_ENV_REFUSE, msg);
      return dit_error (st, "%s", msg);
    }
    e.join.has_nccl_id = c->rank == 0 && c->tp > 1;
  } else if (c->rank == 0 && c->tp > 1) {
    DIT_TRY (dit_net_listen ("0.0.0.0", &lport, comm_listen_fd));
  }

  e.type = DIT_ENV_JOIN;
  e.join.rank = c->rank;
  e.join.tp = c->tp;
  snprintf (e.join.preset, sizeof e.join.preset, "%s", c->preset);
  e.join.config_digest = dit_tp_config_digest (&w->model);
  /* the precision travels as the dtype of the linear weights (f8e4m3 for
   * fp8), so Stage 0's parity check and fingerprint see it */
  const dit_dtype prec = (dit_dtype) dit_precision_of (c->dtype, c->fp8);
  e.join.dtype = (int) prec;
  if (c->weights)
    DIT_TRY (dit_tp_fingerprint_file (c->weights, &w->model, prec,
        &e.join.weights_fingerprint));
  else
    e.join.weights_fingerprint = dit_tp_fingerprint_synthetic (&w->model,
        c->synthetic_seed, prec);
  e.join.comm_port = lport;
  e.join.pid = (int) getpid ();
  e.join.device = c->device;
  snprintf (e.join.backend, sizeof e.join.backend, "%s", c->backend);
  e.join.layers = w->model.num_layers;
  e.join.layout = (int) c->layout;
  e.join.mesh_tp = w->groups.tp;
  DIT_TRY (dit_env_send (w->fd, &e, dl, w->peer));

  DIT_TRY (dit_env_recv (w->fd, &e, &w->buf, &w->cap, dl, w->peer));
  if (e.type == DIT_ENV_REFUSE)
    return dit_error (DIT_ERR_STATE, "worker rank %d: refused by Stage 0: %s",
        c->rank, e.text);
  if (e.type != DIT_ENV_ACCEPT)
    return dit_error (DIT_ERR_STATE, "worker rank %d: expected ACCEPT, got %s",
        c->rank, dit_env_type_name (e.type));
  const dit_env_accept *a = &e.accept;
  if (w->nccl && c->tp > 1 && !a->has_nccl_id)
    return dit_error (DIT_ERR_STATE, "worker rank %d: ACCEPT carries no NCCL "
        "unique id (Stage 0 does not run this mesh on NCCL)", c->rank);
  /* The world comm: in the co-located layout mesh rank 0 runs in Stage
   * 0's process and relays the data plane over the mesh comm; otherwise
   * NCCL when Stage 0 has a GPU of its own for it, else the CPU comm (see
   * mesh_world_on_nccl). */
  w->world_relay = a->world_relay;
  if (w->world_relay && c->rank == 0 && !c->world_local)
    return dit_error (DIT_ERR_STATE, "worker rank 0: Stage 0 runs mesh rank 0 "
        "in its own process (co-located layout) and this rank 0 is another "
        "process");
  if (!w->world_relay && c->world_local)
    return dit_error (DIT_ERR_STATE, "worker rank %d: runs in Stage 0's "
        "process, and Stage 0 did not choose the co-located layout", c->rank);
  w->world_nccl = w->world_relay ? w->nccl : w->nccl && a->has_world_nccl_id;
  if (!w->world_nccl && !w->world_relay && a->world_port <= 0)
    return dit_error (DIT_ERR_STATE, "worker rank %d: ACCEPT carries no world "
        "comm port", c->rank);
  if (w->nccl)
    memcpy (w->nccl_id, a->nccl_id, sizeof w->nccl_id);
  if (w->world_nccl)
    memcpy (w->world_id, a->world_nccl_id, sizeof w->world_id);
  w->world_port = a->world_port;
  dit_gen_config_default (&w->gen);
  w->gen.latent_h = a->latent_h;
  w->gen.latent_w = a->latent_w;
  w->gen.frames_per_chunk = a->frames_per_chunk;
  w->gen.context_frames = a->context_frames;
  w->gen.kv_window = a->context_frames + a->frames_per_chunk;
  w->gen.num_steps = a->num_steps;
  memcpy (w->gen.steps, a->steps, sizeof a->steps);
  w->gen.shift = a->shift;
  w->gen.kv_bias = a->kv_bias;
  w->gen.seed = a->seed;
  w->gen.warp_steps = a->warp_steps;
  w->gen.dtype = c->dtype;
  w->gen.fp8 = c->fp8;
  *token = a->token;
  snprintf (comm_host, 64, "%s", a->comm_host);
  *comm_port = a->comm_port;
  return dit_gen_config_validate (&w->gen, &w->model);
}

/* The world communicator: world rank rank + 1 of tp + 1, Stage 0 is 0. */
static dit_status
w_world (worker *w, uint64_t token)
{
  const dit_worker_config *c = w->cfg;
  dit_status st;
  if (w->world_nccl) {
    void *stream = NULL;
#if DIT_HAVE_CUDA
    stream = dit_backend_cuda_stream (w->be);
#endif
    st = dit_comm_nccl_create (w->world_id, c->rank + 1, c->tp + 1, c->device,
        stream, c->timeout_ms, &w->world);
  } else {
    st = dit_comm_cpu_connect (w->host, w->world_port, c->rank + 1, c->tp + 1,
        token, c->timeout_ms, &w->world);
  }
  if (st != DIT_OK)
    return dit_error_prefix (st, "worker rank %d: world comm (data plane)", c->rank);
  return DIT_OK;
}

/* The collective time since the last call: all-reduces (TP) on the mesh
 * comm or the TP group, plus the all-to-alls (SP): host-timed on the CPU
 * comm, GPU-timed with the all-reduces on NCCL.  *exposed: the part the
 * compute waited for (dit_comm_take_exposed_ms). */
static double
w_collective_ms (worker *w, double *exposed)
{
  double ms = dit_comm_take_allreduce_ms (w->comm);
  double a2a = dit_comm_take_alltoall_ms (w->comm);
  for (int i = 0; i < 2; i++) {
    double v = dit_comm_take_allreduce_ms (w->groups.views[i]);
    ms = ms < 0 || v < 0 ? -1.0 : ms + v;
    a2a += dit_comm_take_alltoall_ms (w->groups.views[i]);
  }
  if (ms >= 0 && w->comm && w->comm->device == DIT_DEVICE_CPU)
    ms += a2a;
  /* read after the totals: on NCCL those read the events */
  double ex = dit_comm_take_exposed_ms (w->comm);
  for (int i = 0; i < 2; i++) {
    double v = dit_comm_take_exposed_ms (w->groups.views[i]);
    ex = ex < 0 || v < 0 ? -1.0 : ex + v;
  }
  *exposed = ms < 0 ? -1.0 : ex;
  return ms;
}

/* Receive buffers of the data plane, by name: the largest tensor the mesh
 * sends under it (f32). */
static const char *const w_rx_names[3] = { "prompt", "context", "init" };

static dit_status
w_alloc (worker *w)
{
  const size_t hw = (size_t) w->gen.latent_h * w->gen.latent_w;
  const size_t x0 = (size_t) 16 * w->gen.frames_per_chunk * hw * sizeof (float);
  w->rx_cap[0] = (size_t) w->model.text_len * w->model.text_dim * sizeof (float);
  w->rx_cap[1] = (size_t) 16 * w->gen.context_frames * hw * sizeof (float);
  w->rx_cap[2] = x0;
  /* Where the world comm delivers: device memory on NCCL, host memory on
   * the CPU comm (the generator uploads host tensors itself). */
  for (int i = 0; i < 3; i++)
    if (!(w->rx[i] = w->world_nccl ? dit_backend_alloc (w->be, w->rx_cap[i])
            : malloc (w->rx_cap[i])))
      return dit_error (DIT_ERR_NOMEM, "worker rank %d: no %zu bytes of %s "
          "memory for the '%s' tensor", w->cfg->rank, w->rx_cap[i],
          w->world_nccl ? "device" : "host", w_rx_names[i]);
  w->x0 = dit_backend_alloc (w->be, x0);
  w->out = malloc (x0);
  if (!w->x0 || !w->out)
    return dit_error (DIT_ERR_NOMEM, "worker rank %d: out of memory for x0",
        w->cfg->rank);
  return DIT_OK;
}

static dit_status
w_setup (worker *w)
{
  const dit_worker_config *c = w->cfg;
  int lfd = -1, cport = 0;
  uint64_t token = 0;
  char chost[64] = "";
  dit_status st = w_join (w, &lfd, &token, chost, &cport);
  if (st != DIT_OK) {
    if (lfd >= 0)
      close (lfd);
    return st;
  }
  /* From here on a failure is reported to rank 0 before exiting.  The
   * backend comes first: the NCCL communicators live on its stream. */
  w->be = dit_backend_create (c->backend, c->device);
  if (!w->be)
    st = dit_error (DIT_ERR_DEVICE, "worker rank %d: backend '%s' device %d: %s",
        c->rank, c->backend, c->device, dit_last_error ());
  if (st == DIT_OK && !w->world_relay)
    st = w_world (w, token);
  if (st == DIT_OK && w->nccl && c->tp > 1) {
    void *stream = NULL;
#if DIT_HAVE_CUDA
    stream = dit_backend_cuda_stream (w->be);
#endif
    st = dit_comm_nccl_create (w->nccl_id, c->rank, c->tp, c->device, stream,
        c->timeout_ms, &w->comm);
  } else if (st == DIT_OK && c->tp > 1) {
    if (c->rank == 0) {
      st = dit_comm_cpu_create_root (lfd, c->tp, token, c->timeout_ms, &w->comm);
      lfd = -1;   /* owned by the comm now */
    } else {
      st = dit_comm_cpu_connect (chost, cport, c->rank, c->tp, token,
          c->timeout_ms, &w->comm);
    }
  }
  if (lfd >= 0)
    close (lfd);
  /* co-located: the data plane rides on the mesh comm from mesh rank 0,
   * which takes it from Stage 0 inside the process */
  if (st == DIT_OK && w->world_relay) {
    st = dit_comm_relay_create (c->rank == 0 ? c->world_local : NULL, w->comm,
        c->rank, c->tp, w->be, &w->world);
    w->local_taken = st == DIT_OK && c->rank == 0;
    if (st != DIT_OK)
      st = dit_error_prefix (st, "worker rank %d: world comm (data plane)",
          c->rank);
  }
  /* the layout's groups: the TP shard this rank loads, the all-reduce and
   * all-to-all the model runs on */
  dit_model_tp plan;
  memset (&plan, 0, sizeof plan);
  plan.degree = 1;
  if (st == DIT_OK && w->comm)
    st = dit_mesh_groups_create (w->comm, w->groups.sp, w->groups.tp,
        &w->groups, &plan);
  plan.overlap = !c->comm_overlap_off;
  if (st == DIT_OK) {
    const int T = w->groups.tp, t = c->rank % T;
    if (c->weights)
      st = dit_tp_weights_load (c->weights, &w->model, T, t, c->dtype,
          w->be, &w->weights);
    else
      st = dit_tp_weights_synthetic (&w->model, T, t, c->synthetic_seed,
          c->dtype, w->be, &w->weights);
  }
  /* precision fp8: the shard's GEMM weights quantized per output channel on
   * this rank's backend (an FP8 checkpoint's slices arrive dequantized) */
  if (st == DIT_OK && c->fp8)
    st = dit_weights_to_fp8 (w->weights, dit_model_fp8_select);
  if (st == DIT_OK)
    st = dit_generator_create_tp (&w->model, &w->gen, w->weights, w->be, &plan,
        &w->g);
  if (st == DIT_OK && c->graphs && dit_backend_device (w->be) == DIT_DEVICE_CUDA)
    dit_generator_set_graphs (w->g, 1);
  if (st == DIT_OK)
    st = w_alloc (w);
  if (st != DIT_OK) {
    char msg[256];
    snprintf (msg, sizeof msg, "%s", dit_last_error ());
    w_send_simple (w, DIT_ENV_REFUSE, msg);
    dit_error (st, "%s", msg);
    return st;
  }
  return w_send_simple (w, DIT_ENV_NOOP, NULL);
}

static dit_tensor
w_view (const worker *w, const dit_env_tensor *t)
{
  return dit_tensor_make ((void *) t->data, t->dtype, w->world_nccl
      ? dit_backend_device (w->be) : DIT_DEVICE_CPU, t->ndim, t->shape);
}

/* Did Stage 0 go away?  Its control socket then reads as closed (waiting
 * up to wait_ms: when Stage 0 dies, its sockets are closed one by one and
 * the world comm's may be seen first). */
static int
w_stage0_gone (const worker *w, int wait_ms)
{
  struct pollfd pf = { .fd = w->fd, .events = POLLIN };
  char b;
  if (poll (&pf, 1, wait_ms) <= 0)
    return 0;
  if (pf.revents & (POLLHUP | POLLERR))
    return 1;
  return recv (w->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* A data-plane failure is fatal; when Stage 0 is gone, say so (the exit
 * code of dit-worker tells the two apart). */
static dit_status
w_world_error (const worker *w, dit_status st, const char *what)
{
  if (w_stage0_gone (w, 500))
    return dit_error_prefix (st, "worker rank %d: lost Stage 0 (rank 0), exiting "
        "(world comm, %s)", w->cfg->rank, what);
  return dit_error_prefix (st, "worker rank %d: world comm (data plane) failed "
      "during %s", w->cfg->rank, what);
}

/* The INFER's tensors from world rank 0, in frame order, into the receive
 * buffers; e's specs then point at them.  Any failure leaves the data
 * plane out of step. */
static dit_status
w_receive (worker *w, dit_envelope *e)
{
  for (int i = 0; i < e->n_tensors; i++) {
    dit_env_tensor *t = &e->tensors[i];
    size_t bytes = dit_dtype_size (t->dtype);
    int k = -1;
    for (int d = 0; d < t->ndim; d++)
      bytes *= (size_t) t->shape[d];
    for (int j = 0; j < 3; j++)
      if (strcmp (t->name, w_rx_names[j]) == 0)
        k = j;
    if (k < 0 || bytes > w->rx_cap[k])
      return dit_error (DIT_ERR_STATE, "worker rank %d: cannot receive tensor "
          "'%s' of %zu bytes (this worker takes prompt, context and init up to "
          "the session's sizes)", w->cfg->rank, t->name, bytes);
    if (!w->world)
      return dit_error (DIT_ERR_STATE, "worker rank %d: the world comm is closed",
          w->cfg->rank);
    dit_status st = dit_comm_broadcast (w->world, w->rx[k], bytes, 0);
    if (st != DIT_OK) {
      char what[96];
      snprintf (what, sizeof what, "the broadcast of '%s' of call %llu", t->name,
          (unsigned long long) e->call_id);
      return w_world_error (w, st, what);
    }
    t->data = w->rx[k];
  }
  return DIT_OK;
}

/* The prompt of this INFER: rebuild the cross-attention K/V once per new
 * epoch.  *fatal is set when a collective may have failed. */
static dit_status
w_prompt (worker *w, const dit_envelope *e, int *fatal)
{
  const dit_env_tensor *prompt = dit_env_find (e, "prompt");
  if (e->prompt_epoch == w->prompt_epoch)
    return DIT_OK;   /* in force already (a resent tensor is not rebuilt) */
  if (e->prompt_epoch < w->prompt_epoch)
    return dit_error (DIT_ERR_STATE, "INFER of prompt epoch %llu is older than "
        "this worker's epoch %llu", (unsigned long long) e->prompt_epoch,
        (unsigned long long) w->prompt_epoch);
  if (!prompt)
    return dit_error (DIT_ERR_STATE, "INFER of prompt epoch %llu carries no "
        "'prompt' tensor and this worker has epoch %llu: the new prompt never "
        "reached it", (unsigned long long) e->prompt_epoch,
        (unsigned long long) w->prompt_epoch);
  dit_tensor pt = w_view (w, prompt);
  dit_status st = dit_generator_set_prompt (w->g, &pt);
  if (st != DIT_OK) {
    *fatal = w->comm != NULL;
    return st;
  }
  w->prompt_epoch = e->prompt_epoch;
  return DIT_OK;
}

/* How each tensor of this rank's shard is cut from the full one, for the
 * LoRA factors (malloc'd, one per tensor of w->weights). */
static dit_status
w_lora_shards (worker *w, dit_lora_shard **out)
{
  dit_param_spec *specs;
  dit_tp_slice *slices;
  size_t count;
  *out = NULL;
  /* the TP shard of this rank's layout (w_setup): under sequence
   * parallelism alone every layer is whole, and so is every factor */
  const int T = w->groups.tp > 0 ? w->groups.tp : 1;
  DIT_TRY (dit_tp_shard_specs (&w->model, T, w->cfg->rank % T, &specs,
      &slices, &count));
  dit_lora_shard *sh = calloc (w->weights->count + 1, sizeof *sh);
  dit_status st = sh ? DIT_OK : dit_error (DIT_ERR_NOMEM, "worker: out of "
      "memory");
  for (size_t i = 0; st == DIT_OK && i < w->weights->count; i++) {
    size_t j = 0;
    while (j < count && strcmp (specs[j].name, w->weights->specs[i].name) != 0)
      j++;
    if (j == count) {
      st = dit_error (DIT_ERR_STATE, "worker rank %d: tensor '%s' is not in "
          "the shard plan", w->cfg->rank, w->weights->specs[i].name);
      break;
    }
    sh[i].dim = slices[j].split == DIT_TP_ROWS ? 0
        : slices[j].split == DIT_TP_COLS ? 1 : -1;
    sh[i].begin = slices[j].begin;
    sh[i].count = slices[j].count;
  }
  free (specs);
  free (slices);
  if (st != DIT_OK) {
    free (sh);
    return st;
  }
  *out = sh;
  return DIT_OK;
}

/* The INFER's LoRA list onto this rank's shard when its epoch is new, then
 * this rank's digest against rank 0's.  A list that cannot be applied
 * leaves the previous one (and the digest check reports the rank). */
static dit_status
w_lora (worker *w, const dit_envelope *e, uint64_t *applied, int *fatal)
{
  const int rank = w->cfg->rank;
  dit_status st = DIT_OK;
  if (e->lora_epoch < w->lora_epoch)
    return dit_error (DIT_ERR_STATE, "worker rank %d: INFER of LoRA epoch "
        "%llu is older than this worker's epoch %llu", rank,
        (unsigned long long) e->lora_epoch, (unsigned long long) w->lora_epoch);
  if (e->lora_epoch > w->lora_epoch) {
    dit_lora_spec spec;
    if (!e->lora[0] && e->lora_digest != 0)
      return dit_error (DIT_ERR_STATE, "worker rank %d: INFER of LoRA epoch "
          "%llu carries no list and this worker has epoch %llu: the new list "
          "never reached it", rank, (unsigned long long) e->lora_epoch,
          (unsigned long long) w->lora_epoch);
    st = dit_lora_spec_parse (e->lora, &spec);
    if (st == DIT_OK && !w->lora && spec.count > 0) {
      dit_lora_shard *sh = NULL;
      st = w_lora_shards (w, &sh);
      if (st == DIT_OK)
        st = dit_lora_set_create (w->weights, &w->model,
            (dit_lora_mode) e->lora_mode, 1, sh, &w->lora);
      free (sh);
    }
    if (st == DIT_OK && w->lora
        && dit_lora_state_mode (dit_lora_set_state (w->lora))
        != (dit_lora_mode) e->lora_mode)
      st = dit_error (DIT_ERR_INVALID, "worker rank %d: LoRA mode %s, this "
          "worker runs %s", rank,
          dit_lora_mode_name ((dit_lora_mode) e->lora_mode),
          dit_lora_mode_name (dit_lora_state_mode (dit_lora_set_state
                  (w->lora))));
    if (st == DIT_OK && w->lora) {
      st = dit_lora_set_update (w->lora, &spec);
      if (st == DIT_OK) {
        /* recomputes the prompt K/V: the TP group's collectives */
        st = dit_generator_set_lora (w->g, dit_lora_set_state (w->lora));
        *fatal = st != DIT_OK && w->comm != NULL;
      }
    }
    if (st != DIT_OK)
      return dit_error_prefix (st, "worker rank %d: LoRA list not applied",
          rank);
    w->lora_epoch = e->lora_epoch;
  }
  *applied = w->lora ? dit_lora_set_digest_of (w->lora) : 0;
  if (*applied != e->lora_digest)
    return dit_error (DIT_ERR_STATE, "worker rank %d: LoRA digest %016llx "
        "differs from rank 0's %016llx (list '%.200s')", rank,
        (unsigned long long) *applied, (unsigned long long) e->lora_digest,
        e->lora);
  return DIT_OK;
}

/* x0 to Stage 0 on the world comm (mesh rank 0, after an ok RESULT). */
static dit_status
w_send_x0 (worker *w, const dit_envelope *r, size_t bytes)
{
  if (w->cfg->test_cut_world && !w->world_cut) {
    /* Tests: the data plane breaks here, the control socket stays up. */
    dit_comm_destroy (w->world);
    w->world = NULL;
    w->world_cut = 1;
    return DIT_OK;
  }
  if (!w->world)
    return dit_error (DIT_ERR_STATE, "worker rank 0: the world comm is closed");
  /* NCCL sends the device result; the CPU comm its host copy. */
  const void *x0 = w->world_nccl || dit_backend_device (w->be) == DIT_DEVICE_CPU
      ? w->x0 : w->out;
  dit_status st = dit_comm_send (w->world, x0, bytes, 0);
  if (st == DIT_OK)
    st = dit_comm_flush (w->world);
  if (st != DIT_OK) {
    char what[96];
    snprintf (what, sizeof what, "the send of x0 of call %llu",
        (unsigned long long) r->call_id);
    return w_world_error (w, st, what);
  }
  return DIT_OK;
}

/* Returns non-OK only when the worker must stop (broken TP group or data
 * plane). */
static dit_status
w_infer (worker *w, dit_envelope *e, double t_recv)
{
  const dit_worker_config *c = w->cfg;
  dit_envelope r;
  memset (&r, 0, sizeof r);
  r.type = DIT_ENV_RESULT;
  r.call_id = e->call_id;
  r.chunk_index = e->chunk_index;
  r.cache_epoch = e->cache_epoch;
  r.rank = c->rank;

  int fatal = 0;
  dit_tensor ct, it;
  /* The data first, whatever becomes of the call: every INFER's tensors
   * are on the world comm and must be taken off it in order. */
  dit_status st = w_receive (w, e);
  if (st != DIT_OK)
    fatal = 1;
  const dit_env_tensor *ctx = dit_env_find (e, "context");
  const dit_env_tensor *init = dit_env_find (e, "init");
  if (c->test_delay_ms > 0)
    usleep ((useconds_t) c->test_delay_ms * 1000);
  /* Everything this INFER enqueues is watched until the flush below; the
   * all-reduce time counts from here. */
  double ignored;
  w_collective_ms (w, &ignored);
  dit_comm_watch (w->comm);
  for (int i = 0; i < 2; i++)
    dit_comm_watch (w->groups.views[i]);
  /* The plan was made on rank 0 (dit_chunk_plan_make); this worker checks
   * that it fits its session and runs it as sent. */
  if (st == DIT_OK)
    st = dit_chunk_plan_check (&e->plan, e->chunk_index, &w->gen,
        dit_generator_schedule (w->g));
  if (st == DIT_OK)
    st = w_prompt (w, e, &fatal);
  if (st == DIT_OK)
    st = w_lora (w, e, &r.lora_digest, &fatal);
  dit_chunk_timing tm = { 0 };
  int64_t shape[4] = { 16, w->gen.frames_per_chunk, w->gen.latent_h, w->gen.latent_w };
  dit_tensor out = dit_tensor_make (w->x0, DIT_F32, dit_backend_device (w->be), 4, shape);
  size_t xbytes = (size_t) dit_tensor_numel (&out) * sizeof (float);
  if (st == DIT_OK) {
    dit_chunk_request req = { .chunk_index = e->chunk_index,
      .first_step = e->plan.first_step };
    if (ctx) {
      ct = w_view (w, ctx);
      req.context = &ct;
    }
    if (init) {
      it = w_view (w, init);
      req.init_latents = &it;
    }
    double t0 = dit_now_ms ();
    st = dit_generator_run_plan (w->g, &e->plan, &req, &out, &tm);
    /* A failure after the first collective leaves the group out of step. */
    fatal = st != DIT_OK && w->comm != NULL;
    r.timing_ms[0] = t0 - t_recv;
  }
  /* The outcome of every collective of this INFER (NCCL: enqueued only),
   * also when the generator itself returned OK; the world comm's flush
   * covers the broadcasts (at TP 1 there is no TP comm). */
  dit_status fst = dit_comm_flush (w->comm);
  /* the layout's group communicators (NCCL: split off the mesh comm) */
  for (int i = 0; i < 2 && fst == DIT_OK; i++)
    fst = dit_comm_flush (w->groups.views[i]);
  if (fst == DIT_OK && w->world)
    fst = dit_comm_flush (w->world);
  if (fst != DIT_OK) {
    if (st == DIT_OK)
      st = fst;
    fatal = 1;
  }
  r.timing_ms[4] = w_collective_ms (w, &r.timing_ms[5]);
  if (st == DIT_OK && dit_backend_device (w->be) != DIT_DEVICE_CPU)
    st = dit_download (w->be, w->out, w->x0, xbytes);
  if (st == DIT_OK) {
    const void *host = dit_backend_device (w->be) == DIT_DEVICE_CPU ? w->x0 : w->out;
    r.digest = dit_fnv1a64 (DIT_FNV1A64_OFFSET, host, xbytes);
    if (c->rank == 0) {
      r.n_tensors = 1;
      dit_env_tensor *x = &r.tensors[0];
      snprintf (x->name, sizeof x->name, "x0");
      x->dtype = DIT_F32;
      x->ndim = 4;
      memcpy (x->shape, shape, sizeof shape);
      x->data = w->x0;
    }
  }
  r.timing_ms[1] = tm.recompute_ms;
  r.timing_ms[2] = tm.denoise_ms;
  r.timing_ms[3] = dit_now_ms () - t_recv;
  if (st != DIT_OK) {
    r.status = (int) st;
    snprintf (r.text, sizeof r.text, "worker rank %d, call %llu (chunk %lld): %s",
        c->rank, (unsigned long long) e->call_id, (long long) e->chunk_index,
        dit_last_error ());
  }
  char saved[512];
  snprintf (saved, sizeof saved, "%s", fatal ? dit_last_error () : r.text);
  dit_status sst = dit_env_send (w->fd, &r, dit_net_deadline (c->timeout_ms), w->peer);
  if (fatal)
    return dit_error (st, "%s", saved);
  if (sst == DIT_OK && r.n_tensors == 1)
    sst = w_send_x0 (w, &r, xbytes);
  return sst;
}

dit_status
dit_worker_run (const dit_worker_config *c)
{
  worker w;
  memset (&w, 0, sizeof w);
  w.cfg = c;
  w.fd = -1;
  dit_status st = dit_model_config_preset (c->preset, &w.model);
  if (st == DIT_OK && c->layers != 0) {
    if (c->layers < 0 || c->layers > w.model.num_layers)
      st = dit_error (DIT_ERR_INVALID, "worker: %d layers (1..%d for preset '%s')",
          c->layers, w.model.num_layers, c->preset);
    else
      w.model.num_layers = c->layers;
  }
  if (st == DIT_OK)
    st = dit_mesh_layout_degrees (c->layout, c->tp, c->mesh_tp, &w.groups.sp,
        &w.groups.tp);
  if (st == DIT_OK)
    st = dit_model_tp_check (&w.model, w.groups.tp);
  if (st == DIT_OK && w.groups.sp > 1)
    st = dit_model_sp_check (&w.model, w.groups.sp, w.groups.tp, NULL, 0);
  w.nccl = c->backend && strcmp (c->backend, "cuda") == 0;

  if (st == DIT_OK && (c->rank < 0 || c->rank >= c->tp))
    st = dit_error (DIT_ERR_INVALID, "worker rank %d outside 0..%d", c->rank,
        c->tp - 1);
  if (st == DIT_OK)
    st = w_setup (&w);
  while (st == DIT_OK) {
    dit_envelope e;
    /* Idle: no deadline, but rank 0 going away closes the socket. */
    st = dit_env_recv (w.fd, &e, &w.buf, &w.cap, INT64_MAX, w.peer);
    if (st != DIT_OK) {
      st = dit_error_prefix (st, "worker rank %d: lost Stage 0 (rank 0), exiting", c->rank);
      break;
    }
    double t_recv = dit_now_ms ();
    if (e.n_tensors > 0 && e.type != DIT_ENV_INFER) {
      st = dit_error (DIT_ERR_STATE, "worker rank %d: %s from rank 0 lists "
          "tensors (only INFER has data on the world comm)", c->rank,
          dit_env_type_name (e.type));
    } else if (e.type == DIT_ENV_SHUTDOWN) {
      st = w_send_simple (&w, DIT_ENV_SHUTDOWN, NULL);
      break;
    } else if (e.type == DIT_ENV_NOOP) {
      st = w_send_simple (&w, DIT_ENV_NOOP, NULL);
    } else if (e.type == DIT_ENV_INFER) {
      st = w_infer (&w, &e, t_recv);
    } else {
      st = dit_error (DIT_ERR_STATE, "worker rank %d: unexpected %s from rank 0",
          c->rank, dit_env_type_name (e.type));
    }
  }
  /* Whatever failed while serving (a RESULT that could not be sent, a
   * collective or a world-comm transfer cut short), a closed control socket
   * means Stage 0 went away first: say so (dit-worker exits 3). */
  if (st != DIT_OK && w.g && w.fd >= 0 && !strstr (dit_last_error (), "lost Stage 0")
      && w_stage0_gone (&w, 0))
    st = dit_error_prefix (st, "worker rank %d: lost Stage 0 (rank 0), exiting",
        c->rank);
  char msg[512];
  snprintf (msg, sizeof msg, "%s", dit_last_error ());
  dit_generator_free (w.g);
  dit_lora_set_free (w.lora);
  dit_weights_free (w.weights);
  dit_mesh_groups_free (&w.groups);
  dit_comm_destroy (w.world);   /* first: a relay's flush needs w.comm */
  dit_comm_destroy (w.comm);
  if (c->world_local && !w.local_taken)
    dit_comm_destroy (c->world_local);
  for (int i = 0; i < 3; i++)
    if (w.rx[i] && w.world_nccl)
      dit_backend_free (w.be, w.rx[i]);
    else
      free (w.rx[i]);
  if (w.x0)
    dit_backend_free (w.be, w.x0);
  if (w.be && w.be != dit_backend_cpu ())
    dit_backend_destroy (w.be);
  if (w.fd >= 0)
    close (w.fd);
  free (w.buf);
  free (w.out);
  if (st != DIT_OK)
    dit_error (st, "%s", msg);
  return st;
}
