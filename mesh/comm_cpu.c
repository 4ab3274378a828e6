/* comm_cpu — the CPU transport of dit_comm: ranks on one host joined by
 * stream sockets, rank 0 the hub (rank r > 0 holds one socket to rank 0).
 *
 * Every transfer is a 24-byte header {magic, kind, seq, bytes} and then the
 * payload; seq numbers the messages of one link (rank 0 <-> rank r, both
 * directions, collectives and point-to-point alike: every exchange on a
 * link alternates in a fixed order); the receiver checks kind, sequence
 * number and size, so ranks that disagree on the order of their calls fail
 * with a message instead of reading garbage.
 *
 * Timing: dit_comm_allreduce_sum (with the other dispatchers at the end of
 * this file) adds the wall time of each all-reduce to the comm's
 * allreduce_ms, waiting for the other ranks included.
 *
 * All-reduce: ranks 1..n-1 send their buffers to rank 0, which adds them in
 * rank order into an f32 accumulator ((x0 + x1) + x2 ...), rounds once to
 * the dtype and sends the same bytes back to every rank, so results are
 * reproducible run to run and identical on all ranks.  Broadcast goes
 * through rank 0; point-to-point needs rank 0 at one end (the star has no
 * other links).  Every wait has the communicator's deadline.
 *
 * Groups (dit_comm_group_view): a group all-reduce or all-to-all is one
 * exchange of the whole star, every rank sending its buffer to rank 0 and
 * receiving its result, so all groups are served at once: rank 0 sums each
 * group in member order, or hands each rank the blocks its group's members
 * addressed to it.  All-to-all without groups is the group of everyone.
 */
#include "dit_comm.h"
#include "dit_net.h"
#include "../kernels/dit_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define COMM_MAGIC 0x4d4f4344u  /* "DCOM" */

enum { COMM_ALLREDUCE = 1, COMM_BCAST, COMM_P2P, COMM_BARRIER, COMM_HELLO,
  COMM_ALLTOALL };

typedef struct comm_hdr {
  uint32_t magic, kind;
  uint64_t seq;
  uint64_t bytes;
} comm_hdr;

typedef struct comm_cpu {
  dit_comm pub;
  int *fds;          /* rank 0: fds[r] for r >= 1; others: fds[0] */
  uint64_t *seq;     /* messages on each link so far, indexed like fds */
  int failed;
  float *acc;        /* rank 0 all-reduce accumulator */
  unsigned char *stage;
  size_t acc_cap, stage_cap;
} comm_cpu;

static const char *
comm_kind_name (uint32_t k)
{
  switch (k) {
    case COMM_ALLREDUCE: return "all-reduce";
    case COMM_BCAST: return "broadcast";
    case COMM_P2P: return "send/recv";
    case COMM_BARRIER: return "barrier";
    case COMM_HELLO: return "hello";
    case COMM_ALLTOALL: return "all-to-all";
    default: return "unknown";
  }
}

static dit_status
comm_fail (comm_cpu *c, dit_status st)
{
  if (st != DIT_OK)
    c->failed = 1;
  return st;
}

/* The same, remembering which peer the failed transfer was with. */
static dit_status
comm_fail_peer (comm_cpu *c, dit_status st, int peer)
{
  if (st != DIT_OK && !c->failed)
    c->pub.failed_peer = peer;
  return comm_fail (c, st);
}

static dit_status
comm_send (comm_cpu *c, int peer, uint32_t kind, const void *data,
    size_t bytes, int64_t deadline)
{
  char what[96];
  int link = c->pub.rank == 0 ? peer : 0;
  comm_hdr h = { COMM_MAGIC, kind, ++c->seq[link], bytes };
  int fd = c->fds[link];
  snprintf (what, sizeof what, "cpu comm rank %d: %s #%llu to rank %d",
      c->pub.rank, comm_kind_name (kind), (unsigned long long) h.seq, peer);
  DIT_TRY (comm_fail_peer (c, dit_net_send_all (fd, &h, sizeof h, deadline, what),
      peer));
  if (bytes)
    DIT_TRY (comm_fail_peer (c, dit_net_send_all (fd, data, bytes, deadline, what),
        peer));
  return DIT_OK;
}

static dit_status
comm_recv (comm_cpu *c, int peer, uint32_t kind, void *data, size_t bytes,
    int64_t deadline)
{
  char what[96];
  comm_hdr h;
  int link = c->pub.rank == 0 ? peer : 0;
  uint64_t seq = ++c->seq[link];
  int fd = c->fds[link];
  snprintf (what, sizeof what, "cpu comm rank %d: %s #%llu from rank %d",
      c->pub.rank, comm_kind_name (kind), (unsigned long long) seq, peer);
  dit_status st = dit_net_recv_all (fd, &h, sizeof h, deadline, what);
  if (st != DIT_OK)
    return comm_fail_peer (c, st, peer);
  if (h.magic != COMM_MAGIC || h.kind != kind || h.seq != seq
      || h.bytes != bytes)
    return comm_fail_peer (c, dit_error (DIT_ERR_STATE,
        "%s: peer is out of step (it sent %s #%llu of %llu bytes, expected "
        "%llu bytes)", what, comm_kind_name (h.kind),
        (unsigned long long) h.seq, (unsigned long long) h.bytes,
        (unsigned long long) bytes), peer);
  if (bytes)
    DIT_TRY (comm_fail_peer (c, dit_net_recv_all (fd, data, bytes, deadline, what),
        peer));
  return DIT_OK;
}

static dit_status
comm_check (comm_cpu *c, const char *op)
{
  if (c->failed)
    return dit_error (DIT_ERR_STATE,
        "cpu comm rank %d: %s after an earlier failure", c->pub.rank, op);
  return DIT_OK;
}

static dit_status
comm_grow (void **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return DIT_OK;
  void *p = realloc (*buf, need);
  if (!p)
    return dit_error (DIT_ERR_NOMEM, "cpu comm: out of memory (%zu bytes)", need);
  *buf = p;
  *cap = need;
  return DIT_OK;
}

/* The members of rank r's group {size, stride} (dit_comm.h). */
static int
comm_group_index (int r, int size, int stride)
{
  return (r / stride) % size;
}

static int
comm_group_member (int r, int size, int stride, int j)
{
  return r - comm_group_index (r, size, stride) * stride + j * stride;
}

static dit_status
group_check (const dit_comm *pub, int size, int stride, const char *op)
{
  if (size < 1 || stride < 1 || pub->size % (size * stride) != 0)
    return dit_error (DIT_ERR_INVALID, "cpu comm: %s over groups of %d ranks "
        "with stride %d does not tile %d ranks", op, size, stride, pub->size);
  return DIT_OK;
}

static dit_status
cpu_allreduce_group (dit_comm *pub, void *data, int64_t count, dit_dtype dtype,
    int gsize, int gstride)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (comm_check (c, "all-reduce"));
  DIT_TRY (group_check (pub, gsize, gstride, "all-reduce"));
  if (count < 0 || (dtype != DIT_F32 && dtype != DIT_BF16 && dtype != DIT_F16))
    return dit_error (DIT_ERR_INVALID, "cpu comm: all-reduce of %lld %s elements",
        (long long) count, dit_dtype_name (dtype));
  const size_t bytes = (size_t) count * dit_dtype_size (dtype);
  const int n = pub->size;
  int64_t dl = dit_net_deadline (pub->timeout_ms);
  if (n == 1 || gsize == 1 || count == 0)
    return DIT_OK;
  if (pub->rank != 0) {
    DIT_TRY (comm_send (c, 0, COMM_ALLREDUCE, data, bytes, dl));
    return comm_recv (c, 0, COMM_ALLREDUCE, data, bytes, dl);
  }
  /* every rank's contribution (rank 0's own first), then each group's sum
   * in member order, rounded once */
  DIT_TRY (comm_grow ((void **) &c->acc, &c->acc_cap, (size_t) count * sizeof (float)));
  DIT_TRY (comm_grow ((void **) &c->stage, &c->stage_cap, (size_t) n * bytes));
  memcpy (c->stage, data, bytes);
  for (int r = 1; r < n; r++)
    DIT_TRY (comm_recv (c, r, COMM_ALLREDUCE, c->stage + (size_t) r * bytes,
        bytes, dl));
  for (int r = 0; r < n; r++) {
    if (comm_group_index (r, gsize, gstride) != 0)
      continue;
    for (int j = 0; j < gsize; j++) {
      const unsigned char *in = c->stage
          + (size_t) comm_group_member (r, gsize, gstride, j) * bytes;
      for (int64_t i = 0; i < count; i++)
        {
        float v = dit_load_f32 (in, dtype, (size_t) i);
        c->acc[i] = j ? c->acc[i] + v : v;
      }
    }
    /* the group's members read their result from the leader's slot */
    for (int64_t i = 0; i < count; i++)
      dit_store_f32 (c->stage + (size_t) r * bytes, dtype, (size_t) i, c->acc[i]);
  }
  for (int r = 0; r < n; r++) {
    const unsigned char *res = c->stage
        + (size_t) comm_group_member (r, gsize, gstride, 0) * bytes;
    if (r == 0)
      memcpy (data, res, bytes);
    else
      DIT_TRY (comm_send (c, r, COMM_ALLREDUCE, res, bytes, dl));
  }
  return DIT_OK;
}

static dit_status
cpu_allreduce (dit_comm *pub, void *data, int64_t count, dit_dtype dtype)
{
  return cpu_allreduce_group (pub, data, count, dtype, pub->size, 1);
}

static dit_status
cpu_alltoall_group (dit_comm *pub, const void *send, void *recv,
    size_t block, int gsize, int gstride)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (comm_check (c, "all-to-all"));
  DIT_TRY (group_check (pub, gsize, gstride, "all-to-all"));
  const size_t row = (size_t) gsize * block;   /* one rank's send buffer */
  const int n = pub->size;
  int64_t dl = dit_net_deadline (pub->timeout_ms);
  if (n == 1 || gsize == 1) {
    memmove (recv, send, row);
    return DIT_OK;
  }
  if (pub->rank != 0) {
    DIT_TRY (comm_send (c, 0, COMM_ALLTOALL, send, row, dl));
    return comm_recv (c, 0, COMM_ALLTOALL, recv, row, dl);
  }
  /* stage: every rank's send buffer, then one rank's result at a time */
  DIT_TRY (comm_grow ((void **) &c->stage, &c->stage_cap, (size_t) (n + 1) * row));
  unsigned char *out = c->stage + (size_t) n * row;
  memcpy (c->stage, send, row);
  for (int r = 1; r < n; r++)
    DIT_TRY (comm_recv (c, r, COMM_ALLTOALL, c->stage + (size_t) r * row, row, dl));
  for (int r = n - 1; r >= 0; r--) {
    const int me = comm_group_index (r, gsize, gstride);
    for (int j = 0; j < gsize; j++)
      memcpy (out + (size_t) j * block, c->stage
          + (size_t) comm_group_member (r, gsize, gstride, j) * row
          + (size_t) me * block, block);
    if (r == 0)
      memcpy (recv, out, row);
    else
      DIT_TRY (comm_send (c, r, COMM_ALLTOALL, out, row, dl));
  }
  return DIT_OK;
}

static dit_status
cpu_broadcast (dit_comm *pub, void *data, size_t bytes, int root)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (comm_check (c, "broadcast"));
  if (root < 0 || root >= pub->size)
    return dit_error (DIT_ERR_INVALID, "cpu comm: broadcast root %d of %d ranks",
        root, pub->size);
  int64_t dl = dit_net_deadline (pub->timeout_ms);
  if (pub->size == 1)
    return DIT_OK;
  if (pub->rank == 0) {
    if (root != 0)
      DIT_TRY (comm_recv (c, root, COMM_BCAST, data, bytes, dl));
    for (int r = 1; r < pub->size; r++)
      if (r != root)
        DIT_TRY (comm_send (c, r, COMM_BCAST, data, bytes, dl));
    return DIT_OK;
  }
  if (pub->rank == root)
    return comm_send (c, 0, COMM_BCAST, data, bytes, dl);
  return comm_recv (c, 0, COMM_BCAST, data, bytes, dl);
}

static dit_status
cpu_p2p_check (comm_cpu *c, int peer)
{
  DIT_TRY (comm_check (c, "send/recv"));
  if (peer < 0 || peer >= c->pub.size || peer == c->pub.rank
      || (c->pub.rank != 0 && peer != 0))
    return dit_error (DIT_ERR_INVALID,
        "cpu comm: rank %d cannot exchange with rank %d (the CPU comm is a star: "
        "point-to-point needs rank 0 at one end)", c->pub.rank, peer);
  return DIT_OK;
}

/* Point-to-point messages count on their link like everything else, so a
 * send/recv that the two ends place differently among the collectives is
 * an out-of-step error, not a silent reordering. */
static dit_status
cpu_send (dit_comm *pub, const void *data, size_t bytes, int peer)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (cpu_p2p_check (c, peer));
  return comm_send (c, peer, COMM_P2P, data, bytes,
      dit_net_deadline (pub->timeout_ms));
}

static dit_status
cpu_recv (dit_comm *pub, void *data, size_t bytes, int peer)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (cpu_p2p_check (c, peer));
  return comm_recv (c, peer, COMM_P2P, data, bytes,
      dit_net_deadline (pub->timeout_ms));
}

static dit_status
cpu_barrier (dit_comm *pub)
{
  comm_cpu *c = (comm_cpu *) pub;
  DIT_TRY (comm_check (c, "barrier"));
  int64_t dl = dit_net_deadline (pub->timeout_ms);
  if (pub->size == 1)
    return DIT_OK;
  if (pub->rank != 0) {
    DIT_TRY (comm_send (c, 0, COMM_BARRIER, NULL, 0, dl));
    return comm_recv (c, 0, COMM_BARRIER, NULL, 0, dl);
  }
  for (int r = 1; r < pub->size; r++)
    DIT_TRY (comm_recv (c, r, COMM_BARRIER, NULL, 0, dl));
  for (int r = 1; r < pub->size; r++)
    DIT_TRY (comm_send (c, r, COMM_BARRIER, NULL, 0, dl));
  return DIT_OK;
}

static void
cpu_destroy (dit_comm *pub)
{
  comm_cpu *c = (comm_cpu *) pub;
  if (!c)
    return;
  int n = pub->rank == 0 ? pub->size : 1;
  for (int i = 0; c->fds && i < n; i++)
    if (c->fds[i] >= 0)
      close (c->fds[i]);
  free (c->fds);
  free (c->seq);
  free (c->acc);
  free (c->stage);
  free (c);
}

static const dit_comm_ops comm_cpu_ops = {
  .name = "cpu",
  .allreduce_sum = cpu_allreduce,
  .broadcast = cpu_broadcast,
  .send = cpu_send,
  .recv = cpu_recv,
  .barrier = cpu_barrier,
  .destroy = cpu_destroy,
  .allreduce_group = cpu_allreduce_group,
  .alltoall_group = cpu_alltoall_group,
};

static comm_cpu *
comm_new (int rank, int size, int timeout_ms)
{
  comm_cpu *c = calloc (1, sizeof *c);
  if (!c)
    return NULL;
  c->pub.ops = &comm_cpu_ops;
  c->pub.rank = rank;
  c->pub.size = size;
  c->pub.device = DIT_DEVICE_CPU;
  c->pub.timeout_ms = timeout_ms;
  c->pub.impl = c;
  c->pub.failed_peer = -1;
  c->fds = malloc ((size_t) size * sizeof (int));
  c->seq = calloc ((size_t) size, sizeof (uint64_t));
  if (!c->fds || !c->seq) {
    free (c->fds);
    free (c->seq);
    free (c);
    return NULL;
  }
  for (int i = 0; i < size; i++)
    c->fds[i] = -1;
  return c;
}

static dit_status
comm_check_size (int size)
{
  if (size < 1 || size > 1024)
    return dit_error (DIT_ERR_INVALID, "cpu comm: %d ranks (1..1024)", size);
  return DIT_OK;
}

dit_status
dit_comm_cpu_create_local (int size, int timeout_ms, dit_comm **comms)
{
  DIT_TRY (comm_check_size (size));
  for (int r = 0; r < size; r++)
    comms[r] = NULL;
  for (int r = 0; r < size; r++) {
    comm_cpu *c = comm_new (r, size, timeout_ms);
    if (!c)
      goto nomem;
    comms[r] = &c->pub;
  }
  for (int r = 1; r < size; r++) {
    int sv[2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      goto nomem;
    dit_net_set_nonblocking (sv[0]);
    dit_net_set_nonblocking (sv[1]);
    ((comm_cpu *) comms[0])->fds[r] = sv[0];
    ((comm_cpu *) comms[r])->fds[0] = sv[1];
  }
  return DIT_OK;
nomem:
  for (int r = 0; r < size; r++)
    if (comms[r])
      cpu_destroy (comms[r]);
  return dit_error (DIT_ERR_NOMEM, "cpu comm: cannot create %d local ranks", size);
}

typedef struct comm_hello {
  uint32_t magic, kind;
  uint64_t token;
  int32_t rank, size;
} comm_hello;

dit_status
dit_comm_cpu_create_root (int listen_fd, int size, uint64_t token,
    int timeout_ms, dit_comm **out)
{
  *out = NULL;
  DIT_TRY (comm_check_size (size));
  comm_cpu *c = comm_new (0, size, timeout_ms);
  if (!c) {
    close (listen_fd);
    return dit_error (DIT_ERR_NOMEM, "cpu comm: out of memory");
  }
  int64_t dl = dit_net_deadline (timeout_ms);
  dit_status st = DIT_OK;
  for (int joined = 1; joined < size && st == DIT_OK;) {
    int fd;
    comm_hello h;
    st = dit_net_accept (listen_fd, dl, &fd);
    if (st != DIT_OK) {
      st = dit_error_prefix (st, "cpu comm rank 0: %d of %d ranks joined",
          joined, size);
      break;
    }
    if (dit_net_recv_all (fd, &h, sizeof h, dl, "cpu comm hello") != DIT_OK
        || h.magic != COMM_MAGIC || h.kind != COMM_HELLO || h.token != token
        || h.size != size || h.rank < 1 || h.rank >= size
        || c->fds[h.rank] >= 0) {
      close (fd);   /* a stray or mismatched connection: not a member */
      continue;
    }
    c->fds[h.rank] = fd;
    joined++;
  }
  close (listen_fd);
  if (st == DIT_OK) {
    /* Confirm membership to everybody at once. */
    comm_hello ok = { COMM_MAGIC, COMM_HELLO, token, 0, size };
    for (int r = 1; r < size && st == DIT_OK; r++)
      st = dit_net_send_all (c->fds[r], &ok, sizeof ok, dl, "cpu comm welcome");
  }
  if (st != DIT_OK) {
    cpu_destroy (&c->pub);
    return st;
  }
  *out = &c->pub;
  return DIT_OK;
}

dit_status
dit_comm_cpu_connect (const char *host, int port, int rank, int size,
    uint64_t token, int timeout_ms, dit_comm **out)
{
  *out = NULL;
  DIT_TRY (comm_check_size (size));
  if (rank < 1 || rank >= size)
    return dit_error (DIT_ERR_INVALID, "cpu comm: rank %d cannot connect (1..%d)",
        rank, size - 1);
  int64_t dl = dit_net_deadline (timeout_ms);
  int fd;
  DIT_TRY (dit_net_connect (host, port, dl, &fd));
  comm_hello h = { COMM_MAGIC, COMM_HELLO, token, rank, size }, ok;
  dit_status st = dit_net_send_all (fd, &h, sizeof h, dl, "cpu comm hello");
  if (st == DIT_OK)
    st = dit_net_recv_all (fd, &ok, sizeof ok, dl, "cpu comm welcome from rank 0");
  if (st == DIT_OK && (ok.magic != COMM_MAGIC || ok.token != token))
    st = dit_error (DIT_ERR_STATE, "cpu comm: rank 0 sent a bad welcome");
  if (st != DIT_OK) {
    close (fd);
    return st;
  }
  comm_cpu *c = comm_new (rank, size, timeout_ms);
  if (!c) {
    close (fd);
    return dit_error (DIT_ERR_NOMEM, "cpu comm: out of memory");
  }
  c->fds[0] = fd;
  *out = &c->pub;
  return DIT_OK;
}

dit_status
dit_comm_allreduce_sum (dit_comm *c, void *data, int64_t count, dit_dtype dtype)
{
  if (c->ops->take_allreduce_ms)
    return c->ops->allreduce_sum (c, data, count, dtype);
  /* Host-completed transport: the call's wall time is the all-reduce,
   * waiting for the other ranks included. */
  double t0 = dit_now_ms ();
  dit_status st = c->ops->allreduce_sum (c, data, count, dtype);
  double ms = dit_now_ms () - t0;
  c->allreduce_ms += ms;
  c->exposed_ms += ms;
  return st;
}

dit_status
dit_comm_alltoall (dit_comm *c, const void *send, void *recv,
    size_t block_bytes)
{
  if (!c->ops->alltoall_group)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s comm: no all-to-all",
        c->ops->name);
  double t0 = dit_now_ms ();
  dit_status st = c->ops->alltoall_group (c, send, recv, block_bytes, c->size, 1);
  double ms = dit_now_ms () - t0;
  c->alltoall_ms += ms;
  if (!c->ops->take_allreduce_ms)
    c->exposed_ms += ms;   /* host-completed: the caller waited all along */
  return st;
}

dit_status
dit_comm_allreduce_start (dit_comm *c, void *data, int64_t count,
    dit_dtype dtype, int slot)
{
  if (slot < 0 || slot >= DIT_COMM_SLOTS)
    return dit_error (DIT_ERR_INVALID, "%s comm: overlap slot %d outside "
        "0..%d", c->ops->name, slot, DIT_COMM_SLOTS - 1);
  if (!c->ops->allreduce_start)
    return dit_comm_allreduce_sum (c, data, count, dtype);
  return c->ops->allreduce_start (c, data, count, dtype, slot);
}

dit_status
dit_comm_alltoall_start (dit_comm *c, const void *send, void *recv,
    size_t block_bytes, int slot)
{
  if (slot < 0 || slot >= DIT_COMM_SLOTS)
    return dit_error (DIT_ERR_INVALID, "%s comm: overlap slot %d outside "
        "0..%d", c->ops->name, slot, DIT_COMM_SLOTS - 1);
  if (!c->ops->alltoall_start)
    return dit_comm_alltoall (c, send, recv, block_bytes);
  return c->ops->alltoall_start (c, send, recv, block_bytes, slot);
}

dit_status
dit_comm_wait (dit_comm *c, int slot)
{
  if (slot < 0 || slot >= DIT_COMM_SLOTS)
    return dit_error (DIT_ERR_INVALID, "%s comm: overlap slot %d outside "
        "0..%d", c->ops->name, slot, DIT_COMM_SLOTS - 1);
  return c->ops->wait ? c->ops->wait (c, slot) : DIT_OK;
}

double
dit_comm_take_exposed_ms (dit_comm *c)
{
  if (!c)
    return 0.0;
  double ms = c->exposed_ms;
  c->exposed_ms = 0.0;
  return ms;
}

double
dit_comm_take_alltoall_ms (dit_comm *c)
{
  if (!c)
    return 0.0;
  double ms = c->alltoall_ms;
  c->alltoall_ms = 0.0;
  return ms;
}

double
dit_comm_take_allreduce_ms (dit_comm *c)
{
  if (!c)
    return 0.0;
  if (c->ops->take_allreduce_ms)
    return c->ops->take_allreduce_ms (c);
  double ms = c->allreduce_ms;
  c->allreduce_ms = 0.0;
  return ms;
}

dit_status
dit_comm_broadcast (dit_comm *c, void *data, size_t bytes, int root)
{
  return c->ops->broadcast (c, data, bytes, root);
}

dit_status
dit_comm_send (dit_comm *c, const void *data, size_t bytes, int peer)
{
  return c->ops->send (c, data, bytes, peer);
}

dit_status
dit_comm_recv (dit_comm *c, void *data, size_t bytes, int peer)
{
  return c->ops->recv (c, data, bytes, peer);
}

dit_status
dit_comm_barrier (dit_comm *c)
{
  return c->ops->barrier (c);
}

void
dit_comm_destroy (dit_comm *c)
{
  if (c)
    c->ops->destroy (c);
}
