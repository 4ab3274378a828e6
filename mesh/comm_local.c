/* comm_local — the data plane of a co-located mesh rank 0 (dit_comm.h,
 * "in-process hand-off"): Stage 0 and mesh rank 0 are threads of one
 * process, so their world traffic is a copy inside the process, and the
 * other mesh ranks take theirs from mesh rank 0 over the mesh communicator.
 *
 * The pair: two endpoints (rank 0 = Stage 0, rank 1 = mesh rank 0) and a
 * mailbox per direction.  A send posts (pointer, bytes, backend) and waits until the
 * receiver has taken it; the receiver copies from the sender's memory into
 * its own with its own backend (host memcpy, upload, download, or a copy
 * kernel on the same GPU: both backends are on one device and context), then
 * synchronizes its backend, so both buffers are free again when the calls
 * return.  The sender synchronizes its backend before posting, so kernels
 * that wrote the data on its stream have finished.  A rendezvous costs
 * nothing here: mesh rank 0 sends x0 only after a chunk and Stage 0 sends
 * the next chunk's data only after it took that x0 (the deferral rule of
 * docs/protocol.md).  Every wait has the endpoint's deadline; closing one
 * endpoint (dit_comm_destroy, or the relay that owns it) fails the other's
 * waits at once, naming the peer.
 *
 * The relay: each mesh rank's world communicator in the co-located layout
 * (world rank r + 1 of ranks + 1).  broadcast from root 0: mesh rank 0
 * receives from the pair, then every mesh rank takes part in a broadcast
 * from mesh rank 0 on the mesh communicator (NCCL on cuda: device to device
 * on the worker's stream); send to world rank 0 (x0): mesh rank 0 through
 * the pair.  flush flushes the mesh communicator.  Destroying the relay
 * closes the pair endpoint it owns. */
#include "dit_comm.h"
#include "../kernels/dit_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One direction of the pair: a message posted by its sender. */
typedef struct local_box {
  int posted;           /* a message waits to be taken */
  int copying;          /* the receiver is copying it (outside the lock) */
  uint64_t seq, done;   /* messages posted / taken */
  const void *data;
  size_t bytes;
  dit_backend *be;      /* the sender's memory (NULL: host) */
  dit_status status;    /* of the last copy */
} local_box;

typedef struct local_pair {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int refs;
  int closed[2];        /* endpoint r closed */
  local_box box[2];     /* box[r]: sent by endpoint r */
} local_pair;

typedef struct local_end {
  dit_comm pub;
  local_pair *pair;
  dit_backend *be;      /* this side's memory (NULL: host) */
} local_end;

static const char *const local_who[2] = { "Stage 0", "mesh rank 0" };

static struct timespec
local_deadline (int timeout_ms)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static dit_device
local_mem (dit_backend *be)
{
  return be ? dit_backend_device (be) : DIT_DEVICE_CPU;
}

/* Copy `bytes` from the sender's memory into the receiver's. */
static dit_status
local_copy (dit_backend *dst_be, void *dst, dit_backend *src_be,
    const void *src, size_t bytes)
{
  const dit_device dd = local_mem (dst_be), sd = local_mem (src_be);
  if (bytes == 0)
    return DIT_OK;
  if (dd == DIT_DEVICE_CPU && sd == DIT_DEVICE_CPU) {
    memcpy (dst, src, bytes);
    return DIT_OK;
  }
  if (sd == DIT_DEVICE_CPU)
    return dit_upload (dst_be, dst, src, bytes);
  if (dd == DIT_DEVICE_CPU)
    return dit_download (src_be, dst, src, bytes);
  /* same device: a flat copy on the receiver's stream */
  const dit_dtype dt = bytes % 4 == 0 ? DIT_F32 : DIT_BF16;
  const int64_t n = (int64_t) (bytes / dit_dtype_size (dt));
  if (bytes % dit_dtype_size (dt) != 0)
    return dit_error (DIT_ERR_INVALID, "in-process hand-off: %zu bytes of "
        "device memory is not a whole number of 16-bit words", bytes);
  dit_tensor s = dit_tensor_2d ((void *) src, dt, sd, 1, n);
  dit_tensor d = dit_tensor_2d (dst, dt, dd, 1, n);
  dit_copy_params cp = { .x = &s, .y = &d };
  DIT_TRY (dit_copy (dst_be, &cp));
  return dit_synchronize (dst_be);
}

static dit_status
local_closed_error (local_end *e, const char *what)
{
  const int peer = 1 - e->pub.rank;
  e->pub.failed_peer = peer;
  return dit_error (DIT_ERR_IO, "in-process hand-off: %s went away during "
      "the %s", local_who[peer], what);
}

static dit_status
local_send (dit_comm *c, const void *data, size_t bytes, int peer)
{
  local_end *e = (local_end *) c;
  local_pair *p = e->pair;
  local_box *b = &p->box[c->rank];
  if (peer != 1 - c->rank)
    return dit_error (DIT_ERR_INVALID, "in-process hand-off: send to rank %d "
        "of a pair", peer);
  if (e->be && local_mem (e->be) != DIT_DEVICE_CPU)
    DIT_TRY (dit_synchronize (e->be));
  struct timespec dl = local_deadline (c->timeout_ms);
  int timed_out = 0;
  pthread_mutex_lock (&p->lock);
  b->posted = 1;
  b->data = data;
  b->bytes = bytes;
  b->be = e->be;
  const uint64_t seq = ++b->seq;
  pthread_cond_broadcast (&p->cv);
  while (b->done != seq && !p->closed[peer] && !timed_out)
    if (pthread_cond_timedwait (&p->cv, &p->lock, &dl) == ETIMEDOUT)
      timed_out = b->done != seq;
  /* not taken: withdraw it, and wait for a copy under way (it is bounded)
   * before the caller's buffer is free again */
  b->posted = 0;
  while (b->copying)
    pthread_cond_wait (&p->cv, &p->lock);
  const int taken = b->done == seq;
  const dit_status copied = b->status;
  pthread_mutex_unlock (&p->lock);
  if (taken)
    return copied == DIT_OK ? DIT_OK : dit_error (copied, "in-process "
        "hand-off: %s could not copy the %zu bytes", local_who[peer], bytes);
  if (timed_out) {
    c->failed_peer = peer;
    return dit_error (DIT_ERR_IO, "in-process hand-off: %s took no %zu bytes "
        "within %d ms", local_who[peer], bytes, c->timeout_ms);
  }
  return local_closed_error (e, "send");
}

static dit_status
local_recv (dit_comm *c, void *data, size_t bytes, int peer)
{
  local_end *e = (local_end *) c;
  local_pair *p = e->pair;
  local_box *b = &p->box[peer];
  if (peer != 1 - c->rank)
    return dit_error (DIT_ERR_INVALID, "in-process hand-off: receive from "
        "rank %d of a pair", peer);
  struct timespec dl = local_deadline (c->timeout_ms);
  int timed_out = 0;
  pthread_mutex_lock (&p->lock);
  while (!b->posted && !p->closed[peer] && !timed_out)
    if (pthread_cond_timedwait (&p->cv, &p->lock, &dl) == ETIMEDOUT)
      timed_out = !b->posted;
  if (!b->posted) {
    pthread_mutex_unlock (&p->lock);
    if (timed_out) {
      c->failed_peer = peer;
      return dit_error (DIT_ERR_IO, "in-process hand-off: nothing from %s "
          "within %d ms", local_who[peer], c->timeout_ms);
    }
    return local_closed_error (e, "receive");
  }
  /* The sender waits until the copy is done and keeps its buffer. */
  b->posted = 0;
  b->copying = 1;
  const void *src = b->data;
  dit_backend *sbe = b->be;
  const size_t sent = b->bytes;
  const uint64_t seq = b->seq;
  pthread_mutex_unlock (&p->lock);
  dit_status st = sent == bytes ? local_copy (e->be, data, sbe, src, bytes)
      : dit_error (DIT_ERR_STATE, "in-process hand-off: %s sent %zu bytes, "
          "%s expected %zu (out of step)", local_who[peer], sent,
          local_who[c->rank], bytes);
  char msg[512];
  if (st != DIT_OK)
    snprintf (msg, sizeof msg, "%s", dit_last_error ());
  pthread_mutex_lock (&p->lock);
  b->copying = 0;
  b->status = st;
  b->done = seq;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->lock);
  if (st != DIT_OK)
    return dit_error (st, "%s", msg);
  return DIT_OK;
}

static dit_status
local_broadcast (dit_comm *c, void *data, size_t bytes, int root)
{
  if (root < 0 || root > 1)
    return dit_error (DIT_ERR_INVALID, "in-process hand-off: broadcast root %d",
        root);
  return c->rank == root ? local_send (c, data, bytes, 1 - root)
      : local_recv (c, data, bytes, root);
}

static dit_status
local_refuse (dit_comm *c, const char *op)
{
  (void) c;
  return dit_error (DIT_ERR_UNSUPPORTED, "in-process hand-off: no %s (it "
      "carries the data plane only)", op);
}

static dit_status
local_allreduce (dit_comm *c, void *data, int64_t count, dit_dtype dtype)
{
  (void) data; (void) count; (void) dtype;
  return local_refuse (c, "all-reduce");
}

static dit_status
local_barrier (dit_comm *c)
{
  return local_refuse (c, "barrier");
}

/* Close this endpoint: the peer's waits fail at once.  The pair goes with
 * its last endpoint. */
static void
local_destroy (dit_comm *c)
{
  local_end *e = (local_end *) c;
  local_pair *p = e->pair;
  pthread_mutex_lock (&p->lock);
  p->closed[c->rank] = 1;
  pthread_cond_broadcast (&p->cv);
  const int last = --p->refs == 0;
  pthread_mutex_unlock (&p->lock);
  if (last) {
    pthread_cond_destroy (&p->cv);
    pthread_mutex_destroy (&p->lock);
    free (p);
  }
  free (e);
}

static const dit_comm_ops comm_local_ops = {
  .name = "in-process",
  .allreduce_sum = local_allreduce,
  .broadcast = local_broadcast,
  .send = local_send,
  .recv = local_recv,
  .barrier = local_barrier,
  .destroy = local_destroy,
};

dit_status
dit_comm_local_pair (dit_backend *stage0_be, int timeout_ms, dit_comm **stage0,
    dit_comm **rank0)
{
  *stage0 = *rank0 = NULL;
  local_pair *p = calloc (1, sizeof *p);
  local_end *e[2] = { calloc (1, sizeof (local_end)),
    calloc (1, sizeof (local_end)) };
  if (!p || !e[0] || !e[1]) {
    free (p);
    free (e[0]);
    free (e[1]);
    return dit_error (DIT_ERR_NOMEM, "in-process hand-off: out of memory");
  }
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->cv, NULL);
  p->refs = 2;
  for (int r = 0; r < 2; r++) {
    e[r]->pair = p;
    e[r]->pub.ops = &comm_local_ops;
    e[r]->pub.rank = r;
    e[r]->pub.size = 2;
    e[r]->pub.timeout_ms = timeout_ms;
    e[r]->pub.impl = e[r];
    e[r]->pub.failed_peer = -1;
  }
  e[0]->be = stage0_be;
  e[0]->pub.device = local_mem (stage0_be);
  e[1]->pub.device = DIT_DEVICE_CPU;
  *stage0 = &e[0]->pub;
  *rank0 = &e[1]->pub;
  return DIT_OK;
}

/* ---- relay ----------------------------------------------------------------- */

typedef struct relay {
  dit_comm pub;
  dit_comm *local;      /* mesh rank 0: its pair endpoint (owned) */
  dit_comm *mesh;       /* the mesh communicator (not owned), NULL at 1 rank */
} relay;

static dit_status
relay_broadcast (dit_comm *c, void *data, size_t bytes, int root)
{
  relay *r = (relay *) c;
  if (root != 0)
    return dit_error (DIT_ERR_INVALID, "relayed world comm: broadcasts come "
        "from Stage 0 (root 0), not %d", root);
  dit_status st = DIT_OK;
  if (r->local) {
    st = dit_comm_recv (r->local, data, bytes, 0);
    c->failed_peer = st != DIT_OK ? 0 : -1;
  }
  if (st == DIT_OK && r->mesh) {
    st = dit_comm_broadcast (r->mesh, data, bytes, 0);
    /* world rank = mesh rank + 1 */
    c->failed_peer = st != DIT_OK && r->mesh->failed_peer >= 0
        ? r->mesh->failed_peer + 1 : -1;
  }
  return st;
}

static dit_status
relay_send (dit_comm *c, const void *data, size_t bytes, int peer)
{
  relay *r = (relay *) c;
  if (peer != 0 || !r->local)
    return dit_error (DIT_ERR_INVALID, "relayed world comm: world rank %d "
        "sends to Stage 0 only from mesh rank 0 (asked: world rank %d)",
        c->rank, peer);
  return dit_comm_send (r->local, data, bytes, 1 - r->local->rank);
}

static dit_status
relay_recv (dit_comm *c, void *data, size_t bytes, int peer)
{
  (void) data; (void) bytes; (void) peer;
  return local_refuse (c, "receive on a mesh rank");
}

static dit_status
relay_flush (dit_comm *c)
{
  relay *r = (relay *) c;
  return r->mesh ? dit_comm_flush (r->mesh) : DIT_OK;
}

static void
relay_destroy (dit_comm *c)
{
  relay *r = (relay *) c;
  dit_comm_destroy (r->local);   /* Stage 0's waits on it fail at once */
  free (r);
}

static const dit_comm_ops comm_relay_ops = {
  .name = "relay",
  .allreduce_sum = local_allreduce,
  .broadcast = relay_broadcast,
  .send = relay_send,
  .recv = relay_recv,
  .barrier = local_barrier,
  .destroy = relay_destroy,
  .flush = relay_flush,
};

dit_status
dit_comm_relay_create (dit_comm *local, dit_comm *mesh, int mesh_rank,
    int mesh_size, dit_backend *be, dit_comm **out)
{
  *out = NULL;
  if ((mesh_rank == 0) != (local != NULL))
    return dit_error (DIT_ERR_INVALID, "relayed world comm: mesh rank %d %s "
        "the in-process hand-off", mesh_rank, local ? "cannot have" : "needs");
  if (mesh_size > 1 && !mesh)
    return dit_error (DIT_ERR_INVALID, "relayed world comm: %d mesh ranks and "
        "no mesh communicator", mesh_size);
  relay *r = calloc (1, sizeof *r);
  if (!r)
    return dit_error (DIT_ERR_NOMEM, "relayed world comm: out of memory");
  r->local = local;
  r->mesh = mesh_size > 1 ? mesh : NULL;
  if (local) {
    local_end *e = (local_end *) local;
    e->be = be;
    local->device = local_mem (be);
  }
  r->pub.ops = &comm_relay_ops;
  r->pub.rank = mesh_rank + 1;
  r->pub.size = mesh_size + 1;
  r->pub.device = r->mesh ? r->mesh->device : local_mem (be);
  r->pub.timeout_ms = r->mesh ? r->mesh->timeout_ms
      : local ? local->timeout_ms : 0;
  r->pub.impl = r;
  r->pub.failed_peer = -1;
  *out = &r->pub;
  return DIT_OK;
}
