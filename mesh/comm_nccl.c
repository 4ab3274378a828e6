/* comm_nccl — the NCCL transport of dit_comm (device memory), built when
 * nccl.h and libnccl are found and the CUDA backend is built.
 *
 * Stream-ordered collectives.  A call only enqueues its NCCL operation on
 * the comm's stream (the compute backend's stream, so it is ordered with
 * the kernels around it): no host synchronisation per collective, and the
 * forwards that hold them can be recorded as CUDA graphs.  The communicator
 * is non-blocking (config.blocking = 0): an enqueue that answers
 * ncclInProgress is polled (host side only) with ncclCommGetAsyncError
 * until it is done, as NCCL requires before the next call; the enqueue
 * result and the asynchronous error are checked on every call.
 *
 * Crash before hang (reference notes §5).  When the stream is not being
 * recorded into a graph, every enqueue records `done`, a CUDA event, after
 * its work and keeps `busy_since`, the time the stream last had none of
 * this comm's work outstanding.  A watchdog thread (which sets its device
 * first, so it works in the right context) polls every 20 ms:
 * cudaEventQuery(done) and ncclCommGetAsyncError.  It aborts the
 * communicator (ncclCommAbort: stuck NCCL kernels exit, so host syncs on
 * the stream return) on an asynchronous error, on a CUDA error, when work
 * stays outstanding for more than timeout_ms, or when a dit_comm_watch
 * window stays open longer than that (collectives replayed from a graph
 * never pass through this file, so the caller's watch/flush pair is what
 * bounds them).  dit_comm_flush records `done` at the stream's tail and
 * waits for it (bounded), so the caller learns the outcome of everything
 * it enqueued.  After an abort every call returns the error that caused
 * it.  One mutex serialises every use of the NCCL communicator (calls,
 * polling, abort), so the watchdog normally never aborts under a running
 * call.  The exception is a call that itself blocks: with a peer dead and
 * its kernels stuck, CUDA's launch queue fills up and the next launch (one
 * inside ncclAllReduce, say) waits for room.  The calling thread then holds
 * the mutex; the watchdog sees the call's start time (`in_call_since`,
 * atomic) and, past timeout_ms, aborts without the mutex, which is what
 * ncclCommAbort from another thread is for: the stuck kernels exit, the
 * queue drains, the call returns, sees `aborted` and never touches the
 * communicator again.
 *
 * All-reduce time (dit_comm_take_allreduce_ms): every all-reduce is
 * bracketed by two timing events on the stream.  Outside a capture they
 * come from a pool reused after every take; during a capture they are
 * recorded as external event nodes (cudaEventRecordExternal), so each
 * replay of the graph records them again, and they are kept for the
 * comm's life.  dit_comm_watch records `window` at the start of a unit of
 * work; a captured pair counts when its start lies after `window` (it was
 * replayed in this unit).  The generator replays each of its graphs at
 * most once per chunk (one graph per distinct step), so a pair is never
 * overwritten before it is read.  The times include waiting for the other
 * ranks: NCCL's kernels start when this rank arrives and end when the
 * slowest has contributed.
 *
 * Overlap (dit_comm_allreduce_start, dit_comm_alltoall_start,
 * dit_comm_wait).  Each comm has a side stream of the highest priority: a
 * start records `fork` on the compute stream, makes the side stream wait
 * for it, enqueues the collective there (timed like the others) and
 * records the slot's event after it; a wait makes the compute stream wait
 * for the slot's event between two timing events of its own, whose
 * interval is the exposed time (the compute stream stalled on the
 * collective).  The same calls inside a capture fork the side stream into
 * the graph and join it back (the caller waits for every start before the
 * capture ends).  The watchdog's `done` goes on the stream that got the
 * work; dit_comm_flush marks the compute stream's tail, which every wait
 * has joined.  All-to-alls are timed like all-reduces (they add to
 * dit_comm_take_allreduce_ms); plain collectives run on the compute
 * stream, so their time is exposed too.
 *
 * Numerics: f32/bf16/f16 sums use NCCL's own reduction.  NCCL gives every
 * rank the same bits, but its order differs from a single device's, so TP
 * results match TP = 1 to rounding, not bit for bit.
 */
#include "dit_comm.h"
#include "dit_net.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NCCL_WATCH_PERIOD_MS 20

typedef struct comm_nccl {
  dit_comm pub;
  ncclComm_t comm;          /* NULL once aborted */
  ncclComm_t handle;        /* as created: what the one ncclCommAbort gets */
  cudaStream_t stream;
  int device;
  pthread_t watchdog;
  atomic_int stop;
  atomic_llong in_call_since;  /* ms: a call holding the lock started; 0 none */
  atomic_int aborted;       /* ncclCommAbort was called (with or without lock) */
  char abort_why[320];      /* written before `aborted` is set without lock */
  pthread_mutex_t lock;     /* guards everything below and every NCCL call */
  cudaEvent_t done;         /* recorded after the last watched enqueue */
  int pending;              /* done recorded and not yet seen complete */
  int64_t busy_since;       /* ms: start of the current outstanding stretch */
  int64_t watch_since;      /* ms: dit_comm_watch window, 0 = closed */
  float *scratch;           /* barrier operand */
  int failed;
  char why[320];            /* what failed the communicator */
  /* all-reduce timing (see the header) */
  struct nccl_timer *eager, *captured;
  int n_eager, cap_eager, n_captured, cap_captured;
  cudaEvent_t window;
  int window_set, timing_bad;
  /* overlap (see the header) */
  cudaStream_t side;
  cudaEvent_t fork;
  cudaEvent_t slot_done[DIT_COMM_SLOTS];
} comm_nccl;

/* What a timing pair brackets: a collective on the compute stream (total
 * and exposed time), one on the side stream (total only) or a wait of the
 * compute stream for the side stream (exposed only). */
typedef enum { NT_PLAIN, NT_SIDE, NT_WAIT } nccl_timer_kind;

typedef struct nccl_timer {
  cudaEvent_t start, end;
  nccl_timer_kind kind;
} nccl_timer;

typedef enum { OP_ALLREDUCE, OP_BROADCAST, OP_SEND, OP_RECV, OP_ALLTOALL } nccl_op;

static const char *const op_names[] = { "all-reduce", "broadcast", "send", "recv",
  "all-to-all" };

typedef struct nccl_call {
  nccl_op op;
  void *data;
  size_t count;
  ncclDataType_t type;
  int peer;                 /* root or peer */
  void *recv;               /* all-to-all: the receive buffer (count = block
                               bytes) */
  int group_size, group_stride;   /* all-to-all: the caller's group */
} nccl_call;

static void nccl_fail_locked (comm_nccl *c, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Abort the communicator (lock held) and remember why; the first failure
 * wins. */
static void
nccl_fail_locked (comm_nccl *c, const char *fmt, ...)
{
  if (c->failed)
    return;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (c->why, sizeof c->why, fmt, ap);
  va_end (ap);
  c->failed = 1;
  c->pending = 0;
  c->watch_since = 0;
  if (c->comm && !atomic_exchange (&c->aborted, 1))
    ncclCommAbort (c->handle);
  c->comm = NULL;
}

/* After a call that held the lock: if the watchdog aborted without the
 * lock meanwhile, take over its reason and drop the communicator. */
static void
nccl_after_call_locked (comm_nccl *c)
{
  atomic_store (&c->in_call_since, 0);
  if (atomic_load (&c->aborted) && !c->failed) {
    snprintf (c->why, sizeof c->why, "%s", c->abort_why);
    c->failed = 1;
    c->pending = 0;
    c->watch_since = 0;
    c->comm = NULL;
  }
}

/* The error every call returns once the communicator failed (lock held). */
static dit_status
nccl_failed_error (comm_nccl *c, const char *op)
{
  return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d of %d: %s: %s; "
      "communicator aborted", c->pub.rank, c->pub.size, op, c->why);
}

/* The asynchronous state, with NCCL's last message when it has one. */
static ncclResult_t
nccl_async_locked (comm_nccl *c, char *msg, size_t n)
{
  ncclResult_t a = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError (c->comm, &a);
  if (r != ncclSuccess)
    a = r;
  if (a != ncclSuccess && a != ncclInProgress) {
    const char *last = ncclGetLastError (c->comm);
    snprintf (msg, n, "%s%s%s", ncclGetErrorString (a),
        last && *last ? ": " : "", last ? last : "");
  }
  return a;
}

/* One poll of the watched state (lock held, not failed). */
static void
nccl_check_locked (comm_nccl *c, int64_t now)
{
  char msg[256];
  int64_t since = 0;
  if (c->pending) {
    cudaError_t q = cudaEventQuery (c->done);
    if (q == cudaSuccess) {
      c->pending = 0;
    } else if (q != cudaErrorNotReady) {
      nccl_fail_locked (c, "CUDA error while collectives were outstanding: %s",
          cudaGetErrorString (q));
      return;
    } else {
      since = c->busy_since;
    }
  }
  if (c->watch_since && (!since || c->watch_since < since))
    since = c->watch_since;
  ncclResult_t a = nccl_async_locked (c, msg, sizeof msg);
  if (a != ncclSuccess && a != ncclInProgress) {
    nccl_fail_locked (c, "asynchronous NCCL error: %s", msg);
    return;
  }
  if (since && now - since > c->pub.timeout_ms)
    nccl_fail_locked (c, "work outstanding for %lld ms, over the %d ms timeout "
        "(a peer died or stalled)", (long long) (now - since), c->pub.timeout_ms);
}

static void *
nccl_watchdog (void *arg)
{
  comm_nccl *c = arg;
  cudaSetDevice (c->device);
  while (!atomic_load (&c->stop)) {
    usleep (NCCL_WATCH_PERIOD_MS * 1000);
    if (pthread_mutex_trylock (&c->lock) == 0) {
      if (!c->failed)
        nccl_check_locked (c, dit_net_now_ms ());
      pthread_mutex_unlock (&c->lock);
      continue;
    }
    /* The lock is held: by a call that may be blocked inside CUDA or
     * NCCL (see the header). */
    int64_t since = atomic_load (&c->in_call_since);
    int64_t now = dit_net_now_ms ();
    if (since && now - since > c->pub.timeout_ms && !atomic_load (&c->aborted)) {
      snprintf (c->abort_why, sizeof c->abort_why, "a call blocked for %lld ms, "
          "over the %d ms timeout (a peer died or stalled)",
          (long long) (now - since), c->pub.timeout_ms);
      if (!atomic_exchange (&c->aborted, 1))
        ncclCommAbort (c->handle);
    }
  }
  return NULL;
}

/* Record `done` after what is enqueued now, unless the stream is being
 * recorded into a graph (an event record would become part of the graph
 * and the work is not running yet).  Lock held. */
static void
nccl_mark_on_locked (comm_nccl *c, cudaStream_t s)
{
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  cudaError_t e = cudaStreamIsCapturing (c->stream, &cs);
  if (e == cudaSuccess && cs != cudaStreamCaptureStatusNone)
    return;
  if (e == cudaSuccess) {
    /* A new outstanding stretch starts when the previous one is done. */
    cudaError_t q = c->pending ? cudaEventQuery (c->done) : cudaSuccess;
    if (q == cudaSuccess)
      c->busy_since = dit_net_now_ms ();
    else if (q != cudaErrorNotReady)
      e = q;
  }
  if (e == cudaSuccess)
    e = cudaEventRecord (c->done, s);
  if (e != cudaSuccess) {
    nccl_fail_locked (c, "CUDA error on the comm stream: %s", cudaGetErrorString (e));
    return;
  }
  c->pending = 1;
}

static void
nccl_mark_locked (comm_nccl *c)
{
  nccl_mark_on_locked (c, c->stream);
}

static ncclResult_t
nccl_issue (comm_nccl *c, const nccl_call *k, cudaStream_t stream)
{
  switch (k->op) {
    case OP_ALLREDUCE:
      return ncclAllReduce (k->data, k->data, k->count, k->type, ncclSum, c->comm,
          stream);
    case OP_BROADCAST:
      return ncclBroadcast (k->data, k->data, k->count, ncclUint8, k->peer,
          c->comm, stream);
    case OP_SEND:
      return ncclSend (k->data, k->count, ncclUint8, k->peer, c->comm, stream);
    case OP_RECV:
      return ncclRecv (k->data, k->count, ncclUint8, k->peer, c->comm, stream);
    case OP_ALLTOALL: {
      /* grouped point-to-point: one send and one receive per member of the
       * caller's group (itself included), fused by NCCL into one launch */
      const int me = c->pub.rank, gs = k->group_size, st = k->group_stride;
      const int base = me - ((me / st) % gs) * st;
      ncclResult_t r = ncclGroupStart ();
      for (int j = 0; j < gs && r == ncclSuccess; j++) {
        r = ncclSend ((const char *) k->data + (size_t) j * k->count, k->count,
            ncclUint8, base + j * st, c->comm, stream);
        if (r == ncclSuccess)
          r = ncclRecv ((char *) k->recv + (size_t) j * k->count, k->count,
              ncclUint8, base + j * st, c->comm, stream);
      }
      ncclResult_t e = ncclGroupEnd ();
      return r != ncclSuccess ? r : e;
    }
  }
  return ncclInvalidArgument;
}

/* A timing pair for the all-reduce about to be enqueued (lock held), or
 * NULL when none can be had (the time is then reported as unmeasured). */
static nccl_timer *
nccl_timer_get (comm_nccl *c, int capturing, nccl_timer_kind kind)
{
  nccl_timer **list = capturing ? &c->captured : &c->eager;
  int *n = capturing ? &c->n_captured : &c->n_eager;
  int *cap = capturing ? &c->cap_captured : &c->cap_eager;
  if (*n == *cap) {
    int ncap = *cap ? 2 * *cap : 256;
    nccl_timer *q = realloc (*list, (size_t) ncap * sizeof *q);
    if (!q)
      return NULL;
    memset (q + *cap, 0, (size_t) (ncap - *cap) * sizeof *q);
    *list = q;
    *cap = ncap;
  }
  nccl_timer *t = &(*list)[*n];
  if (!t->start) {
    if (cudaEventCreate (&t->start) != cudaSuccess)
      return NULL;
    if (cudaEventCreate (&t->end) != cudaSuccess) {
      cudaEventDestroy (t->start);
      t->start = NULL;
      return NULL;
    }
  }
  (*n)++;
  t->kind = kind;
  return t;
}

static void
nccl_timer_record (comm_nccl *c, cudaEvent_t ev, cudaStream_t s, int capturing)
{
  cudaError_t e = capturing
      ? cudaEventRecordWithFlags (ev, s, cudaEventRecordExternal)
      : cudaEventRecord (ev, s);
  if (e != cudaSuccess) {
    c->timing_bad = 1;
    cudaGetLastError ();
  }
}

/* Enqueue one operation on `stream` (the compute stream, or the side
 * stream for a start): check the result and the asynchronous state,
 * finish an in-progress enqueue (bounded), mark the work for the
 * watchdog. */
static dit_status
nccl_enqueue_on (comm_nccl *c, const nccl_call *k, cudaStream_t stream)
{
  const char *op = op_names[k->op];
  char msg[256];
  dit_status st = DIT_OK;
  pthread_mutex_lock (&c->lock);
  if (c->failed) {
    st = nccl_failed_error (c, op);
    pthread_mutex_unlock (&c->lock);
    return st;
  }
  /* The enqueue may block (a full launch queue behind stuck kernels): the
   * watchdog may abort around it, and nothing touches the communicator
   * after that. */
  nccl_timer *tm = NULL;
  int capturing = 0;
  if (k->op == OP_ALLREDUCE || k->op == OP_ALLTOALL) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    capturing = cudaStreamIsCapturing (stream, &cs) == cudaSuccess
        && cs != cudaStreamCaptureStatusNone;
    tm = nccl_timer_get (c, capturing, stream == c->stream ? NT_PLAIN
        : NT_SIDE);
    if (tm)
      nccl_timer_record (c, tm->start, stream, capturing);
    else
      c->timing_bad = 1;
  }
  atomic_store (&c->in_call_since, dit_net_now_ms ());
  ncclResult_t r = nccl_issue (c, k, stream);
  nccl_after_call_locked (c);
  if (c->failed) {
    st = nccl_failed_error (c, op);
    pthread_mutex_unlock (&c->lock);
    return st;
  }
  if (r == ncclInProgress) {
    /* Host-side completion of a non-blocking enqueue; never blocks. */
    int64_t dl = dit_net_deadline (c->pub.timeout_ms);
    while ((r = nccl_async_locked (c, msg, sizeof msg)) == ncclInProgress) {
      if (dit_net_now_ms () > dl) {
        nccl_fail_locked (c, "%s: enqueue still in progress after %d ms", op,
            c->pub.timeout_ms);
        break;
      }
      sched_yield ();
    }
    if (!c->failed && r != ncclSuccess)
      nccl_fail_locked (c, "%s: %s", op, msg);
  } else if (r != ncclSuccess) {
    const char *last = ncclGetLastError (c->comm);
    nccl_fail_locked (c, "%s: enqueue failed: %s%s%s", op, ncclGetErrorString (r),
        last && *last ? ": " : "", last ? last : "");
  } else {
    ncclResult_t a = nccl_async_locked (c, msg, sizeof msg);
    if (a != ncclSuccess && a != ncclInProgress)
      nccl_fail_locked (c, "%s: asynchronous NCCL error: %s", op, msg);
  }
  /* The end mark goes in once the enqueue has finished (a non-blocking
   * enqueue may still be in progress when ncclAllReduce returns). */
  if (tm && !c->failed)
    nccl_timer_record (c, tm->end, stream, capturing);
  if (!c->failed) {
    atomic_store (&c->in_call_since, dit_net_now_ms ());
    nccl_mark_on_locked (c, stream);
    nccl_after_call_locked (c);
  }
  if (c->failed)
    st = nccl_failed_error (c, op);
  pthread_mutex_unlock (&c->lock);
  return st;
}

static dit_status
nccl_enqueue (comm_nccl *c, const nccl_call *k)
{
  return nccl_enqueue_on (c, k, c->stream);
}

/* A CUDA call of the overlap path failed: the communicator fails with it
 * (the streams' order can no longer be trusted). */
static dit_status
nccl_cuda_failed (comm_nccl *c, const char *what, cudaError_t e)
{
  pthread_mutex_lock (&c->lock);
  nccl_fail_locked (c, "%s: %s", what, cudaGetErrorString (e));
  dit_status st = nccl_failed_error (c, what);
  pthread_mutex_unlock (&c->lock);
  return st;
}

/* Overlap: the side stream after the compute stream's work so far, the
 * collective there, the slot's event after it. */
static dit_status
nccl_start (comm_nccl *c, const nccl_call *k, int slot)
{
  cudaError_t e = cudaEventRecord (c->fork, c->stream);
  if (e == cudaSuccess)
    e = cudaStreamWaitEvent (c->side, c->fork, 0);
  if (e != cudaSuccess)
    return nccl_cuda_failed (c, "overlap: fork to the comm stream", e);
  DIT_TRY (nccl_enqueue_on (c, k, c->side));
  e = cudaEventRecord (c->slot_done[slot], c->side);
  if (e != cudaSuccess)
    return nccl_cuda_failed (c, "overlap: slot event", e);
  return DIT_OK;
}

static dit_status
n_allreduce_start (dit_comm *pub, void *data, int64_t count, dit_dtype dtype,
    int slot)
{
  if (dtype != DIT_F32 && dtype != DIT_BF16 && dtype != DIT_F16)
    return dit_error (DIT_ERR_UNSUPPORTED, "nccl comm: all-reduce of %s",
        dit_dtype_name (dtype));
  nccl_call k = { OP_ALLREDUCE, data, (size_t) count,
    dtype == DIT_F32 ? ncclFloat32 : dtype == DIT_BF16 ? ncclBfloat16 : ncclFloat16,
    0, NULL, 0, 0 };
  return nccl_start ((comm_nccl *) pub, &k, slot);
}

static dit_status
n_alltoall_start (dit_comm *pub, const void *send, void *recv, size_t block,
    int slot)
{
  nccl_call k = { OP_ALLTOALL, (void *) send, block, ncclUint8, 0, recv,
    pub->size, 1 };
  return nccl_start ((comm_nccl *) pub, &k, slot);
}

/* The compute stream waits for the slot's collective, between the two
 * events of an exposed-time pair. */
static dit_status
n_wait (dit_comm *pub, int slot)
{
  comm_nccl *c = (comm_nccl *) pub;
  pthread_mutex_lock (&c->lock);
  if (c->failed) {
    dit_status st = nccl_failed_error (c, "wait");
    pthread_mutex_unlock (&c->lock);
    return st;
  }
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  int capturing = cudaStreamIsCapturing (c->stream, &cs) == cudaSuccess
      && cs != cudaStreamCaptureStatusNone;
  nccl_timer *tm = nccl_timer_get (c, capturing, NT_WAIT);
  if (tm)
    nccl_timer_record (c, tm->start, c->stream, capturing);
  else
    c->timing_bad = 1;
  cudaError_t e = cudaStreamWaitEvent (c->stream, c->slot_done[slot], 0);
  if (tm && e == cudaSuccess)
    nccl_timer_record (c, tm->end, c->stream, capturing);
  pthread_mutex_unlock (&c->lock);
  if (e != cudaSuccess)
    return nccl_cuda_failed (c, "overlap: wait for the comm stream", e);
  return DIT_OK;
}

static dit_status
n_allreduce (dit_comm *pub, void *data, int64_t count, dit_dtype dtype)
{
  comm_nccl *c = (comm_nccl *) pub;
  if (dtype != DIT_F32 && dtype != DIT_BF16 && dtype != DIT_F16)
    return dit_error (DIT_ERR_UNSUPPORTED, "nccl comm: all-reduce of %s",
        dit_dtype_name (dtype));
  nccl_call k = { OP_ALLREDUCE, data, (size_t) count,
    dtype == DIT_F32 ? ncclFloat32 : dtype == DIT_BF16 ? ncclBfloat16 : ncclFloat16,
    0, NULL, 0, 0 };
  return nccl_enqueue (c, &k);
}

/* Groups: an all-to-all of any group is point-to-point on this
 * communicator; an all-reduce inside a group runs on the group's own
 * communicator (dit_comm_group_view splits one off, n_split), so here only
 * the whole communicator's is served. */
static dit_status
n_allreduce_group (dit_comm *pub, void *data, int64_t count, dit_dtype dtype,
    int gsize, int gstride)
{
  if (gsize == 1)
    return DIT_OK;
  if (gsize != pub->size || gstride != 1)
    return dit_error (DIT_ERR_UNSUPPORTED, "nccl comm: an all-reduce inside "
        "groups of %d of %d ranks runs on a group communicator "
        "(dit_comm_group_view)", gsize, pub->size);
  return n_allreduce (pub, data, count, dtype);
}

static dit_status
n_alltoall_group (dit_comm *pub, const void *send, void *recv, size_t block,
    int gsize, int gstride)
{
  if (gsize < 1 || gstride < 1 || pub->size % (gsize * gstride) != 0)
    return dit_error (DIT_ERR_INVALID, "nccl comm: all-to-all over groups of "
        "%d ranks with stride %d does not tile %d ranks", gsize, gstride,
        pub->size);
  nccl_call k = { OP_ALLTOALL, (void *) send, block, ncclUint8, 0, recv,
    gsize, gstride };
  return nccl_enqueue ((comm_nccl *) pub, &k);
}

static dit_status
n_broadcast (dit_comm *pub, void *data, size_t bytes, int root)
{
  nccl_call k = { OP_BROADCAST, data, bytes, ncclUint8, root, NULL, 0, 0 };
  return nccl_enqueue ((comm_nccl *) pub, &k);
}

static dit_status
n_send (dit_comm *pub, const void *data, size_t bytes, int peer)
{
  nccl_call k = { OP_SEND, (void *) data, bytes, ncclUint8, peer, NULL, 0, 0 };
  return nccl_enqueue ((comm_nccl *) pub, &k);
}

static dit_status
n_recv (dit_comm *pub, void *data, size_t bytes, int peer)
{
  nccl_call k = { OP_RECV, data, bytes, ncclUint8, peer, NULL, 0, 0 };
  return nccl_enqueue ((comm_nccl *) pub, &k);
}

static dit_status
n_flush (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  dit_status st = DIT_OK;
  pthread_mutex_lock (&c->lock);
  if (c->failed) {
    st = nccl_failed_error (c, "flush");
    pthread_mutex_unlock (&c->lock);
    return st;
  }
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing (c->stream, &cs) == cudaSuccess
      && cs != cudaStreamCaptureStatusNone) {
    pthread_mutex_unlock (&c->lock);
    return dit_error (DIT_ERR_STATE,
        "nccl comm rank %d: flush while the stream is being recorded", pub->rank);
  }
  /* Everything on the stream so far, also work enqueued by others. */
  atomic_store (&c->in_call_since, dit_net_now_ms ());
  nccl_mark_locked (c);
  nccl_after_call_locked (c);
  int64_t dl = dit_net_deadline (pub->timeout_ms);
  useconds_t nap = 20;
  while (!c->failed) {
    nccl_check_locked (c, dit_net_now_ms ());
    if (c->failed || !c->pending)
      break;
    if (dit_net_now_ms () > dl) {
      nccl_fail_locked (c, "flush: enqueued work not done within %d ms (a peer "
          "died or stalled)", pub->timeout_ms);
      break;
    }
    pthread_mutex_unlock (&c->lock);
    usleep (nap);
    if (nap < 1000)
      nap *= 2;
    pthread_mutex_lock (&c->lock);
  }
  if (c->failed)
    st = nccl_failed_error (c, "flush");
  else
    c->watch_since = 0;
  pthread_mutex_unlock (&c->lock);
  return st;
}

static void
n_watch (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  pthread_mutex_lock (&c->lock);
  if (!c->failed) {
    c->watch_since = dit_net_now_ms ();
    c->window_set = cudaEventRecord (c->window, c->stream) == cudaSuccess;
    if (!c->window_set)
      cudaGetLastError ();
  }
  pthread_mutex_unlock (&c->lock);
}

/* GPU time of one pair; 0 when it was not recorded (a query error is
 * cleared so that it does not surface in a later, unrelated check). */
static int
nccl_elapsed (cudaEvent_t a, cudaEvent_t b, float *ms)
{
  if (cudaEventElapsedTime (ms, a, b) == cudaSuccess)
    return 1;
  cudaGetLastError ();
  return 0;
}

static double
n_take_allreduce_ms (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  double sum = 0.0;
  float ms, since;
  pthread_mutex_lock (&c->lock);
  int bad = c->timing_bad || c->failed;
  double exposed = 0.0;
  for (int i = 0; i < c->n_eager && !bad; i++) {
    if (nccl_elapsed (c->eager[i].start, c->eager[i].end, &ms)) {
      sum += c->eager[i].kind != NT_WAIT ? ms : 0.0;
      exposed += c->eager[i].kind != NT_SIDE ? ms : 0.0;
    } else {
      bad = 1;
    }
  }
  /* Captured pairs replayed since the window opened: start after it.
   * A pair never replayed has no time, one replayed before the window a
   * negative offset. */
  for (int i = 0; i < c->n_captured && !bad && c->window_set; i++)
    if (nccl_elapsed (c->window, c->captured[i].start, &since) && since >= 0.0f) {
      if (nccl_elapsed (c->captured[i].start, c->captured[i].end, &ms)) {
        sum += c->captured[i].kind != NT_WAIT ? ms : 0.0;
        exposed += c->captured[i].kind != NT_SIDE ? ms : 0.0;
      } else {
        bad = 1;
      }
    }
  if (c->n_captured && !c->window_set)
    bad = 1;
  c->n_eager = 0;
  c->timing_bad = 0;
  /* read by dit_comm_take_exposed_ms; -1 stays until then */
  if (bad || pub->exposed_ms < 0)
    pub->exposed_ms = -1.0;
  else
    pub->exposed_ms += exposed;
  pthread_mutex_unlock (&c->lock);
  return bad ? -1.0 : sum;
}

static dit_status
n_barrier (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  if (cudaMemsetAsync (c->scratch, 0, sizeof (float), c->stream) != cudaSuccess)
    return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d: barrier: %s", pub->rank,
        cudaGetErrorString (cudaGetLastError ()));
  DIT_TRY (n_allreduce (pub, c->scratch, 1, DIT_F32));
  return n_flush (pub);
}

/* Finalize (bounded), then destroy; abort if it does not settle. */
static void
nccl_teardown (ncclComm_t comm, int timeout_ms)
{
  int64_t dl = dit_net_deadline (timeout_ms);
  ncclResult_t r = ncclCommFinalize (comm), a = r;
  while (r == ncclSuccess || r == ncclInProgress) {
    if (ncclCommGetAsyncError (comm, &a) != ncclSuccess)
      a = ncclInternalError;
    if (a != ncclInProgress || dit_net_now_ms () > dl)
      break;
    usleep (100);
  }
  if (r == ncclSuccess && a == ncclSuccess)
    ncclCommDestroy (comm);
  else
    ncclCommAbort (comm);
}

static void
nccl_timers_free (nccl_timer *t, int cap)
{
  for (int i = 0; t && i < cap; i++)
    if (t[i].start) {
      cudaEventDestroy (t[i].start);
      cudaEventDestroy (t[i].end);
    }
  free (t);
}

static void
nccl_free (comm_nccl *c)
{
  nccl_timers_free (c->eager, c->cap_eager);
  nccl_timers_free (c->captured, c->cap_captured);
  if (c->window)
    cudaEventDestroy (c->window);
  for (int i = 0; i < DIT_COMM_SLOTS; i++)
    if (c->slot_done[i])
      cudaEventDestroy (c->slot_done[i]);
  if (c->fork)
    cudaEventDestroy (c->fork);
  if (c->side)
    cudaStreamDestroy (c->side);
  if (c->done)
    cudaEventDestroy (c->done);
  if (c->scratch)
    cudaFree (c->scratch);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

static void
n_destroy (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  if (!c)
    return;
  atomic_store (&c->stop, 1);
  pthread_join (c->watchdog, NULL);
  cudaSetDevice (c->device);
  if (c->comm && !atomic_load (&c->aborted))
    nccl_teardown (c->comm, c->pub.timeout_ms);
  nccl_free (c);
}

static dit_status n_split (dit_comm *pub, int gsize, int gstride,
    dit_comm **out);

static const dit_comm_ops comm_nccl_ops = {
  .name = "nccl",
  .allreduce_sum = n_allreduce,
  .broadcast = n_broadcast,
  .send = n_send,
  .recv = n_recv,
  .barrier = n_barrier,
  .destroy = n_destroy,
  .flush = n_flush,
  .watch = n_watch,
  .take_allreduce_ms = n_take_allreduce_ms,
  .allreduce_group = n_allreduce_group,
  .alltoall_group = n_alltoall_group,
  .split = n_split,
  .allreduce_start = n_allreduce_start,
  .alltoall_start = n_alltoall_start,
  .wait = n_wait,
};

int
dit_comm_nccl_available (void)
{
  return 1;
}

int
dit_comm_nccl_pointer_device (const void *ptr)
{
  struct cudaPointerAttributes a;
  if (!ptr || cudaPointerGetAttributes (&a, ptr) != cudaSuccess) {
    cudaGetLastError ();
    return -1;
  }
  return a.type == cudaMemoryTypeDevice ? a.device : -1;
}

dit_status
dit_comm_nccl_unique_id (unsigned char id[DIT_COMM_NCCL_ID_BYTES])
{
  ncclUniqueId u;
  _Static_assert (sizeof u.internal == DIT_COMM_NCCL_ID_BYTES,
      "NCCL unique id size");
  ncclResult_t r = ncclGetUniqueId (&u);
  if (r != ncclSuccess)
    return dit_error (DIT_ERR_DEVICE, "nccl: cannot make a unique id: %s",
        ncclGetErrorString (r));
  memcpy (id, u.internal, DIT_COMM_NCCL_ID_BYTES);
  return DIT_OK;
}

/* A comm_nccl around a communicator still to be made: CUDA events and the
 * barrier operand on `device`. */
static dit_status
nccl_new (int rank, int size, int device, cudaStream_t stream, int timeout_ms,
    comm_nccl **out)
{
  *out = NULL;
  if (cudaSetDevice (device) != cudaSuccess)
    return dit_error (DIT_ERR_DEVICE, "nccl comm: cannot use CUDA device %d", device);
  comm_nccl *c = calloc (1, sizeof *c);
  if (!c)
    return dit_error (DIT_ERR_NOMEM, "nccl comm: out of memory");
  c->pub.ops = &comm_nccl_ops;
  c->pub.rank = rank;
  c->pub.size = size;
  c->pub.device = DIT_DEVICE_CUDA;
  c->pub.timeout_ms = timeout_ms;
  c->pub.impl = c;
  c->pub.failed_peer = -1;
  c->device = device;
  c->stream = stream;
  pthread_mutex_init (&c->lock, NULL);
  /* the side stream at the highest priority: collectives get their few
   * SMs as soon as they are ready, ahead of the GEMM blocks beside them */
  int lo = 0, hi = 0;
  cudaError_t e = cudaDeviceGetStreamPriorityRange (&lo, &hi);
  if (e == cudaSuccess)
    e = cudaStreamCreateWithPriority (&c->side, cudaStreamNonBlocking, hi);
  if (e == cudaSuccess)
    e = cudaEventCreateWithFlags (&c->fork, cudaEventDisableTiming);
  for (int i = 0; i < DIT_COMM_SLOTS && e == cudaSuccess; i++)
    e = cudaEventCreateWithFlags (&c->slot_done[i], cudaEventDisableTiming);
  if (e != cudaSuccess
      || cudaEventCreateWithFlags (&c->done, cudaEventDisableTiming) != cudaSuccess
      || cudaEventCreate (&c->window) != cudaSuccess
      || cudaMalloc ((void **) &c->scratch, sizeof (float)) != cudaSuccess) {
    nccl_free (c);
    return dit_error (DIT_ERR_DEVICE, "nccl comm: CUDA setup on device %d: %s",
        device, cudaGetErrorString (cudaGetLastError ()));
  }
  *out = c;
  return DIT_OK;
}

/* After a non-blocking ncclCommInitRankConfig or ncclCommSplit returned r:
 * poll until the communicator is ready (deadline timeout_ms), then start
 * the watchdog.  On failure c is freed (the communicator aborted). */
static dit_status
nccl_finish_init (comm_nccl *c, ncclResult_t r, const char *what)
{
  const int rank = c->pub.rank, size = c->pub.size;
  int64_t dl = dit_net_deadline (c->pub.timeout_ms);
  ncclResult_t a = r;
  while (c->comm && (r == ncclSuccess || r == ncclInProgress)) {
    if (ncclCommGetAsyncError (c->comm, &a) != ncclSuccess)
      a = ncclInternalError;
    if (a != ncclInProgress)
      break;
    if (dit_net_now_ms () > dl) {
      int ms = c->pub.timeout_ms;
      ncclCommAbort (c->comm);
      nccl_free (c);
      return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d of %d: %s timed out "
          "after %d ms (a rank did not join)", rank, size, what, ms);
    }
    usleep (1000);
  }
  if (!c->comm || a != ncclSuccess) {
    const char *last = c->comm ? ncclGetLastError (c->comm) : NULL;
    char msg[256];
    snprintf (msg, sizeof msg, "%s%s%s", ncclGetErrorString (a),
        last && *last ? ": " : "", last ? last : "");
    if (c->comm)
      ncclCommAbort (c->comm);
    nccl_free (c);
    return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d of %d: %s failed: %s",
        rank, size, what, msg);
  }
  c->handle = c->comm;
  if (pthread_create (&c->watchdog, NULL, nccl_watchdog, c) != 0) {
    ncclCommAbort (c->comm);
    nccl_free (c);
    return dit_error (DIT_ERR_DEVICE, "nccl comm: cannot start the watchdog");
  }
  return DIT_OK;
}

dit_status
dit_comm_nccl_create (const unsigned char id[DIT_COMM_NCCL_ID_BYTES], int rank,
    int size, int device, void *stream, int timeout_ms, dit_comm **out)
{
  comm_nccl *c;
  *out = NULL;
  DIT_TRY (nccl_new (rank, size, device, (cudaStream_t) stream, timeout_ms, &c));
  ncclUniqueId u;
  memcpy (u.internal, id, DIT_COMM_NCCL_ID_BYTES);
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  ncclResult_t r = ncclCommInitRankConfig (&c->comm, size, u, rank, &cfg);
  DIT_TRY (nccl_finish_init (c, r, "init"));
  *out = &c->pub;
  return DIT_OK;
}

/* A group of this communicator as a communicator of its own
 * (ncclCommSplit: collective over every rank of the parent, which
 * dit_comm_group_view's callers are, at the same point of their setup):
 * colour = the group's first rank, key = the index in the group, on the
 * parent's device and stream. */
static dit_status
n_split (dit_comm *pub, int gsize, int gstride, dit_comm **out)
{
  comm_nccl *p = (comm_nccl *) pub, *c;
  *out = NULL;
  const int index = (pub->rank / gstride) % gsize;
  const int color = pub->rank - index * gstride;
  pthread_mutex_lock (&p->lock);
  int failed = p->failed;
  pthread_mutex_unlock (&p->lock);
  if (failed)
    return dit_error (DIT_ERR_STATE, "nccl comm rank %d: split after a failure",
        pub->rank);
  DIT_TRY (nccl_new (index, gsize, p->device, p->stream, pub->timeout_ms, &c));
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  pthread_mutex_lock (&p->lock);
  ncclResult_t r = ncclCommSplit (p->comm, color, index, &c->comm, &cfg);
  pthread_mutex_unlock (&p->lock);
  char what[96];
  snprintf (what, sizeof what, "split into groups of %d (stride %d) from rank "
      "%d of %d", gsize, gstride, pub->rank, pub->size);
  DIT_TRY (nccl_finish_init (c, r, what));
  *out = &c->pub;
  return DIT_OK;
}
