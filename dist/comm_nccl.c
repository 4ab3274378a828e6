/* comm_nccl — the NCCL transport of dit_comm (device memory), built when
 * nccl.h and libnccl are found and the CUDA backend is built.
 *
 * Crash before hang (reference notes §5): the communicator is created
 * non-blocking (config.blocking = 0) and every call is followed by a
 * bounded wait: the calling thread polls cudaStreamQuery and
 * ncclCommGetAsyncError until the work is done, an error is reported, or
 * timeout_ms passes; on error or timeout it calls ncclCommAbort and the
 * communicator is failed from then on.  A watchdog thread (which sets its
 * device first, so the abort runs in the right context) does the same for
 * a call that never returns to the poll loop, e.g. a host thread stuck
 * inside an enqueue.  f32/bf16/f16 sums use NCCL's own reduction; NCCL
 * does not promise a fixed order, so TP results are reproducible only to
 * f32 rounding on this transport.
 */
#include "dit_comm.h"
#include "dit_net.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct comm_nccl {
  dit_comm pub;
  ncclComm_t comm;
  cudaStream_t stream;
  int device;
  int failed;
  pthread_t watchdog;
  pthread_mutex_t lock;
  int64_t busy_deadline;   /* 0 = idle */
  int stop;
  int aborted;
} comm_nccl;

static dit_status
nccl_abort (comm_nccl *c, const char *why)
{
  pthread_mutex_lock (&c->lock);
  if (!c->aborted) {
    ncclCommAbort (c->comm);
    c->aborted = 1;
  }
  c->failed = 1;
  pthread_mutex_unlock (&c->lock);
  return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d: %s; communicator aborted",
      c->pub.rank, why);
}

static void *
nccl_watchdog (void *arg)
{
  comm_nccl *c = arg;
  cudaSetDevice (c->device);
  for (;;) {
    pthread_mutex_lock (&c->lock);
    int stop = c->stop;
    int64_t dl = c->busy_deadline;
    if (!stop && !c->aborted && dl && dit_net_now_ms () > dl + 1000) {
      ncclCommAbort (c->comm);
      c->aborted = 1;
      c->failed = 1;
    }
    pthread_mutex_unlock (&c->lock);
    if (stop)
      return NULL;
    usleep (50000);
  }
}

/* Wait for the enqueued work of one call. */
static dit_status
nccl_wait (comm_nccl *c, ncclResult_t enq, const char *op)
{
  int64_t dl = dit_net_deadline (c->pub.timeout_ms);
  if (enq != ncclSuccess && enq != ncclInProgress) {
    char why[256];
    snprintf (why, sizeof why, "%s: %s", op, ncclGetErrorString (enq));
    return nccl_abort (c, why);
  }
  for (;;) {
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError (c->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      char why[256];
      snprintf (why, sizeof why, "%s: asynchronous error %s", op,
          ncclGetErrorString (async));
      return nccl_abort (c, why);
    }
    cudaError_t q = cudaStreamQuery (c->stream);
    if (q == cudaSuccess && async == ncclSuccess)
      break;
    if (q != cudaSuccess && q != cudaErrorNotReady) {
      char why[256];
      snprintf (why, sizeof why, "%s: CUDA error %s", op, cudaGetErrorString (q));
      return nccl_abort (c, why);
    }
    if (dit_net_now_ms () > dl) {
      char why[256];
      snprintf (why, sizeof why, "%s: timed out after %d ms (a peer died or stalled)",
          op, c->pub.timeout_ms);
      return nccl_abort (c, why);
    }
    usleep (20);
  }
  pthread_mutex_lock (&c->lock);
  c->busy_deadline = 0;
  pthread_mutex_unlock (&c->lock);
  return DIT_OK;
}

static dit_status
nccl_begin (comm_nccl *c, const char *op)
{
  if (c->failed)
    return dit_error (DIT_ERR_STATE, "nccl comm rank %d: %s after an earlier failure",
        c->pub.rank, op);
  pthread_mutex_lock (&c->lock);
  c->busy_deadline = dit_net_deadline (c->pub.timeout_ms);
  pthread_mutex_unlock (&c->lock);
  return DIT_OK;
}

static dit_status
n_allreduce (dit_comm *pub, void *data, int64_t count, dit_dtype dtype)
{
  comm_nccl *c = (comm_nccl *) pub;
  ncclDataType_t t = dtype == DIT_F32 ? ncclFloat32
      : dtype == DIT_BF16 ? ncclBfloat16 : ncclFloat16;
  DIT_TRY (nccl_begin (c, "all-reduce"));
  return nccl_wait (c, ncclAllReduce (data, data, (size_t) count, t, ncclSum,
      c->comm, c->stream), "all-reduce");
}

static dit_status
n_broadcast (dit_comm *pub, void *data, size_t bytes, int root)
{
  comm_nccl *c = (comm_nccl *) pub;
  DIT_TRY (nccl_begin (c, "broadcast"));
  return nccl_wait (c, ncclBroadcast (data, data, bytes, ncclUint8, root, c->comm,
      c->stream), "broadcast");
}

static dit_status
n_send (dit_comm *pub, const void *data, size_t bytes, int peer)
{
  comm_nccl *c = (comm_nccl *) pub;
  DIT_TRY (nccl_begin (c, "send"));
  return nccl_wait (c, ncclSend (data, bytes, ncclUint8, peer, c->comm, c->stream),
      "send");
}

static dit_status
n_recv (dit_comm *pub, void *data, size_t bytes, int peer)
{
  comm_nccl *c = (comm_nccl *) pub;
  DIT_TRY (nccl_begin (c, "recv"));
  return nccl_wait (c, ncclRecv (data, bytes, ncclUint8, peer, c->comm, c->stream),
      "recv");
}

static dit_status
n_barrier (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  float *one;
  if (cudaMalloc ((void **) &one, sizeof (float)) != cudaSuccess)
    return dit_error (DIT_ERR_NOMEM, "nccl comm: barrier scratch");
  cudaMemsetAsync (one, 0, sizeof (float), c->stream);
  dit_status st = n_allreduce (pub, one, 1, DIT_F32);
  cudaFree (one);
  return st;
}

static void
n_destroy (dit_comm *pub)
{
  comm_nccl *c = (comm_nccl *) pub;
  if (!c)
    return;
  pthread_mutex_lock (&c->lock);
  c->stop = 1;
  pthread_mutex_unlock (&c->lock);
  pthread_join (c->watchdog, NULL);
  if (!c->aborted) {
    /* Finalize with a deadline; abort if it does not settle. */
    int64_t dl = dit_net_deadline (c->pub.timeout_ms);
    ncclResult_t r = ncclCommFinalize (c->comm), a = ncclInProgress;
    while (r == ncclSuccess || r == ncclInProgress) {
      ncclCommGetAsyncError (c->comm, &a);
      if (a != ncclInProgress || dit_net_now_ms () > dl)
        break;
      usleep (100);
    }
    if (a == ncclSuccess)
      ncclCommDestroy (c->comm);
    else
      ncclCommAbort (c->comm);
  }
  pthread_mutex_destroy (&c->lock);
  free (c);
}

static const dit_comm_ops comm_nccl_ops = {
  .name = "nccl",
  .allreduce_sum = n_allreduce,
  .broadcast = n_broadcast,
  .send = n_send,
  .recv = n_recv,
  .barrier = n_barrier,
  .destroy = n_destroy,
};

int
dit_comm_nccl_available (void)
{
  return 1;
}

dit_status
dit_comm_nccl_unique_id (unsigned char id[DIT_COMM_NCCL_ID_BYTES])
{
  ncclUniqueId u;
  ncclResult_t r = ncclGetUniqueId (&u);
  if (r != ncclSuccess)
    return dit_error (DIT_ERR_DEVICE, "nccl: cannot make a unique id: %s",
        ncclGetErrorString (r));
  memcpy (id, u.internal, DIT_COMM_NCCL_ID_BYTES);
  return DIT_OK;
}

dit_status
dit_comm_nccl_create (const unsigned char id[DIT_COMM_NCCL_ID_BYTES], int rank,
    int size, int device, void *stream, int timeout_ms, dit_comm **out)
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
  c->device = device;
  c->stream = (cudaStream_t) stream;
  pthread_mutex_init (&c->lock, NULL);

  ncclUniqueId u;
  memcpy (u.internal, id, DIT_COMM_NCCL_ID_BYTES);
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  ncclResult_t r = ncclCommInitRankConfig (&c->comm, size, u, rank, &cfg);
  int64_t dl = dit_net_deadline (timeout_ms);
  ncclResult_t a = r;
  while (r == ncclSuccess || r == ncclInProgress) {
    ncclCommGetAsyncError (c->comm, &a);
    if (a != ncclInProgress)
      break;
    if (dit_net_now_ms () > dl) {
      ncclCommAbort (c->comm);
      pthread_mutex_destroy (&c->lock);
      free (c);
      return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d of %d: init timed out "
          "after %d ms (a rank did not join)", rank, size, timeout_ms);
    }
    usleep (1000);
  }
  if (a != ncclSuccess) {
    if (c->comm)
      ncclCommAbort (c->comm);
    pthread_mutex_destroy (&c->lock);
    free (c);
    return dit_error (DIT_ERR_DEVICE, "nccl comm rank %d of %d: init failed: %s",
        rank, size, ncclGetErrorString (a));
  }
  if (pthread_create (&c->watchdog, NULL, nccl_watchdog, c) != 0) {
    ncclCommAbort (c->comm);
    pthread_mutex_destroy (&c->lock);
    free (c);
    return dit_error (DIT_ERR_DEVICE, "nccl comm: cannot start the watchdog");
  }
  *out = &c->pub;
  return DIT_OK;
}
