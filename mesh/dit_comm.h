/* dit_comm — the collective interface the tensor-parallel model and the mesh
 * use, one vtable per transport.
 *
 * Transports:
 *  - "cpu" (mesh/comm_cpu.c): ranks are processes (or threads) on one host,
 *    data over Unix-domain or TCP loopback sockets, rank 0 the hub; host
 *    memory only.  Deterministic all-reduce: rank 0 sums the contributions
 *    in rank order (f32 accumulation) and sends every rank the same bits.
 *    Messages are numbered per link, point-to-point included, so ranks
 *    that order their calls differently get an "out of step" error.
 *  - "nccl" (mesh/comm_nccl.c, built when NCCL is found): device memory,
 *    non-blocking communicator, stream-ordered (below).
 *
 * Completion models:
 *  - CPU comm: every call is complete when it returns; each blocking call
 *    has a deadline (timeout_ms): a dead or stalled peer is an error naming
 *    the peer and the operation, never a hang.
 *  - NCCL comm: a collective is only ENQUEUED on the comm's CUDA stream
 *    (the compute backend's stream, so it is ordered with the kernels around
 *    it, costs no host synchronisation and can be recorded into a CUDA
 *    graph).  Its return value covers the enqueue; the work itself is
 *    watched by a watchdog thread that aborts the communicator
 *    (ncclCommAbort, which makes stuck NCCL kernels exit, so host syncs on
 *    the stream return) on an asynchronous NCCL error, or when enqueued
 *    work stays outstanding for more than timeout_ms.  dit_comm_flush waits
 *    (bounded) for everything enqueued and reports the outcome, so a caller
 *    learns of a failure at the end of the unit of work it flushes (the
 *    mesh worker: every chunk).  dit_comm_watch additionally covers work
 *    the comm does not see being enqueued (collectives replayed from a CUDA
 *    graph).
 * After an error or abort the communicator is failed and every later call
 * returns that error at once.  Calls on one communicator must come from one
 * thread at a time, in the same order on every rank (as with NCCL).
 */
#ifndef DIT_COMM_H
#define DIT_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_comm dit_comm;

typedef struct dit_comm_ops {
  const char *name;
  /* In-place sum of `count` elements (f32, bf16 or f16; accumulated in f32)
   * over all ranks; every rank ends with the same bits. */
  dit_status (*allreduce_sum) (dit_comm *c, void *data, int64_t count,
      dit_dtype dtype);
  /* `bytes` at data on `root` copied to every rank. */
  dit_status (*broadcast) (dit_comm *c, void *data, size_t bytes, int root);
  /* Point-to-point; each send is matched by a recv of the same size. */
  dit_status (*send) (dit_comm *c, const void *data, size_t bytes, int peer);
  dit_status (*recv) (dit_comm *c, void *data, size_t bytes, int peer);
  dit_status (*barrier) (dit_comm *c);
  void (*destroy) (dit_comm *c);
  /* Optional (NULL: the transport completes every call before returning
   * and dit_comm_flush/dit_comm_watch do nothing). */
  dit_status (*flush) (dit_comm *c);
  void (*watch) (dit_comm *c);
  /* Optional: all-reduce time of a stream-ordered comm (see
   * dit_comm_take_allreduce_ms); NULL: the dispatch function times the
   * calls on the host. */
  double (*take_allreduce_ms) (dit_comm *c);
  /* Collectives inside a group of ranks (dit_comm_group below); every rank
   * of the communicator calls them at the same point, each group with its
   * own data.  Group {size, 1} with size = the comm's size is the whole
   * communicator.
   * all-reduce: as allreduce_sum, summed over the caller's group only.
   * all-to-all: send holds g->size blocks of block_bytes, block j for the
   * group's member j; recv receives block j from member j. */
  dit_status (*allreduce_group) (dit_comm *c, void *data, int64_t count,
      dit_dtype dtype, int group_size, int group_stride);
  dit_status (*alltoall_group) (dit_comm *c, const void *send, void *recv,
      size_t block_bytes, int group_size, int group_stride);
  /* Optional: the caller's group as a communicator of its own (NCCL:
   * ncclCommSplit, collective over every rank); NULL = group views
   * forward to the group entries above. */
  dit_status (*split) (dit_comm *c, int group_size, int group_stride,
      dit_comm **out);
  /* Optional (stream-ordered comms): overlap, see dit_comm_allreduce_start.
   * NULL: the dispatch functions run the plain call and wait does
   * nothing. */
  dit_status (*allreduce_start) (dit_comm *c, void *data, int64_t count,
      dit_dtype dtype, int slot);
  dit_status (*alltoall_start) (dit_comm *c, const void *send, void *recv,
      size_t block_bytes, int slot);
  dit_status (*wait) (dit_comm *c, int slot);
} dit_comm_ops;

struct dit_comm {
  const dit_comm_ops *ops;
  int rank;
  int size;
  dit_device device;   /* where data pointers must live */
  int timeout_ms;      /* deadline of every blocking call */
  void *impl;
  /* Filled by the dispatch functions: */
  double allreduce_ms;   /* host-timed transports: time inside all-reduce
                            calls since the last dit_comm_take_allreduce_ms */
  double alltoall_ms;    /* wall time inside dit_comm_alltoall calls (host
                            time; on NCCL only the enqueue) since the last
                            dit_comm_take_alltoall_ms */
  int failed_peer;       /* CPU comm: the peer a failed call was talking to
                            (-1 unknown); lets a caller name the rank */
  double exposed_ms;     /* collective time the compute waited for since the
                            last dit_comm_take_exposed_ms (see there) */
};

dit_status dit_comm_allreduce_sum (dit_comm *c, void *data, int64_t count,
    dit_dtype dtype);
dit_status dit_comm_broadcast (dit_comm *c, void *data, size_t bytes, int root);
dit_status dit_comm_send (dit_comm *c, const void *data, size_t bytes, int peer);
dit_status dit_comm_recv (dit_comm *c, void *data, size_t bytes, int peer);
dit_status dit_comm_barrier (dit_comm *c);
void dit_comm_destroy (dit_comm *c);

/* All-to-all over the whole communicator (equal blocks): send holds
 * c->size blocks of block_bytes, block j for rank j; recv receives block j
 * from rank j.  On a group view (dit_comm_group_view) it runs inside the
 * group.  Its wall time (CPU comm) adds to alltoall_ms. */
dit_status dit_comm_alltoall (dit_comm *c, const void *send, void *recv,
    size_t block_bytes);

/* Overlap.  The collectives a layout can hide behind compute are issued
 * with a slot (0 <= slot < DIT_COMM_SLOTS) and waited for later:
 *   dit_comm_allreduce_start (c, data, n, dtype, slot);
 *   ... compute that does not touch data ...
 *   dit_comm_wait (c, slot);       (data holds the sum from here on)
 * On a stream-ordered comm (NCCL) start issues the collective on the
 * comm's own stream after everything enqueued so far on the compute stream
 * and returns; wait makes the compute stream wait for it (an event), so
 * the compute enqueued in between runs under the collective.  The time the
 * compute stream spends in that wait is the exposed time.  Between start
 * and wait the buffers belong to the collective.  Every start must be
 * waited for before the next start on the same slot and before a flush or
 * the end of a graph capture.  On a comm without a stream of its own (the
 * CPU comm) start is the plain call, complete on return, and wait does
 * nothing: the order of the calls is the same, so the results are too. */
#define DIT_COMM_SLOTS 4
dit_status dit_comm_allreduce_start (dit_comm *c, void *data, int64_t count,
    dit_dtype dtype, int slot);
dit_status dit_comm_alltoall_start (dit_comm *c, const void *send, void *recv,
    size_t block_bytes, int slot);
dit_status dit_comm_wait (dit_comm *c, int slot);

/* Groups of ranks for layouts that nest two kinds of parallelism (hybrid
 * sequence x tensor parallelism).  The group of rank r with {size, stride}
 * is { b + i * stride : i < size }, b = r - ((r / stride) % size) * stride:
 * stride 1 = blocks of `size` consecutive ranks, stride = n / size =
 * every (n/size)-th rank.  A view is a dit_comm whose rank and size are the
 * caller's index and the group's size and whose all-reduce and all-to-all
 * run inside the group on the parent (which must outlive it); its other
 * calls are refused.  Every rank of the parent must call a view's
 * collectives at the same point of its program (the ranks of a layout run
 * the same op sequence), since the CPU comm routes every group through its
 * hub at once.  On NCCL the view is a communicator split off the parent
 * (every rank of the parent must create its view at the same point),
 * with its own watchdog; dit_comm_flush and dit_comm_watch apply to it as
 * to any comm.  size * stride must divide the parent's size. */
dit_status dit_comm_group_view (dit_comm *parent, int size, int stride,
    dit_comm **out);

/* Bounded wait (timeout_ms) for everything enqueued on a stream-ordered
 * comm, including work enqueued by others on its stream (NCCL: an event
 * recorded at the stream's tail is polled together with the asynchronous
 * NCCL error; on error or timeout the communicator is aborted).  Ends the
 * watch window of dit_comm_watch.  DIT_OK, or the error that failed the
 * communicator (now or earlier).  Not while the stream is being recorded
 * into a graph.  CPU comm (no flush entry): nothing is ever pending and
 * each call reported its own failure, so this returns DIT_OK. */
dit_status dit_comm_flush (dit_comm *c);

/* Opens a watch window: until the next dit_comm_flush, the watchdog aborts
 * the communicator when the window has been open for more than timeout_ms.
 * This bounds work the comm does not see being enqueued, e.g. a replayed
 * CUDA graph holding collectives.  CPU comm: nothing to do. */
void dit_comm_watch (dit_comm *c);

/* Milliseconds this rank spent in all-reduces since the previous call
 * (which restarts the count).  CPU comm: wall time inside
 * dit_comm_allreduce_sum.  NCCL comm: the sum over the all-reduces and
 * all-to-alls (plain or started for overlap) of the GPU time between CUDA
 * events recorded around each one on the stream it runs on, also inside
 * CUDA graphs (events recorded during capture are
 * replayed with the graph); call it after dit_comm_flush.  Either way it
 * includes waiting for the slowest rank to arrive.  -1 when the transport
 * could not measure (an event query failed).  NULL comm: 0. */
double dit_comm_take_allreduce_ms (dit_comm *c);
/* The same for all-to-all calls (host wall time; a view adds to its
 * parent's count). */
double dit_comm_take_alltoall_ms (dit_comm *c);
/* Exposed collective time since the previous call: how long the compute
 * waited for collectives.  CPU comm: every collective is exposed (the
 * caller is blocked inside it), so this is the wall time inside
 * all-reduces and all-to-alls.  NCCL comm: the GPU time of the
 * collectives issued on the compute stream (plain calls) plus the time the
 * compute stream spent in dit_comm_wait; call it after
 * dit_comm_take_allreduce_ms, which reads the events.  NULL comm: 0. */
double dit_comm_take_exposed_ms (dit_comm *c);

/* ---- CPU comm ----------------------------------------------------------- */

/* `size` communicators connected by socketpairs, for ranks that are threads
 * of one process (unit tests).  comms[r] is rank r. */
dit_status dit_comm_cpu_create_local (int size, int timeout_ms,
    dit_comm **comms);

/* Processes: rank 0 accepts size - 1 connections on `listen_fd` (a bound,
 * listening socket it owns from then on); the others connect to host:port.
 * `token` (chosen by the mesh) must match on every rank, so a stray
 * connection cannot join.  Both sides finish within timeout_ms. */
dit_status dit_comm_cpu_create_root (int listen_fd, int size, uint64_t token,
    int timeout_ms, dit_comm **out);
dit_status dit_comm_cpu_connect (const char *host, int port, int rank,
    int size, uint64_t token, int timeout_ms, dit_comm **out);

/* ---- in-process hand-off (mesh/comm_local.c) ---------------------------- */

/* The data plane of a mesh rank 0 that runs in Stage 0's process (the
 * co-located layout, docs/mesh.md): two endpoints of one pair, for two
 * threads, *stage0 rank 0 and *rank0 rank 1.  send, recv and broadcast
 * (root sends) copy from the sender's memory into the receiver's with the
 * receiver's backend (host, or device memory of backends on one GPU) and
 * return once the copy is done; each endpoint says where its pointers live
 * by its backend (stage0_be; the rank 0 side's comes with
 * dit_comm_relay_create), NULL = host memory.  Every wait ends within
 * timeout_ms; destroying one endpoint fails the other's waits at once. */
struct dit_backend;
dit_status dit_comm_local_pair (struct dit_backend *stage0_be, int timeout_ms,
    dit_comm **stage0, dit_comm **rank0);

/* A mesh rank's world communicator in the co-located layout (world rank
 * mesh_rank + 1 of mesh_size + 1): a broadcast from world rank 0 reaches
 * mesh rank 0 through `local` (its pair endpoint, owned by the relay from
 * here on; NULL on the other ranks) and the others by a broadcast from mesh
 * rank 0 on `mesh` (the mesh communicator, not owned; NULL at one rank);
 * mesh rank 0 sends to world rank 0 through `local`.  be: mesh rank 0's
 * backend (where its buffers live). */
dit_status dit_comm_relay_create (dit_comm *local, dit_comm *mesh,
    int mesh_rank, int mesh_size, struct dit_backend *be, dit_comm **out);

/* ---- NCCL comm (mesh/comm_nccl.c, when built) --------------------------- */

#define DIT_COMM_NCCL_ID_BYTES 128

/* 1 when this build has the NCCL transport. */
int dit_comm_nccl_available (void);
/* A fresh unique id (rank 0 makes it; it travels over the control
 * connection). */
dit_status dit_comm_nccl_unique_id (unsigned char id[DIT_COMM_NCCL_ID_BYTES]);
/* Non-blocking init on CUDA device `device`, finished within timeout_ms
 * (every rank must call it within that time).  Collectives are enqueued on
 * `stream` (a cudaStream_t, NULL = default; the mesh worker passes its CUDA
 * backend's stream, dit_backend_cuda_stream); the watchdog aborts the
 * communicator when enqueued work is outstanding for more than timeout_ms
 * or NCCL reports an error (see the completion models above). */
dit_status dit_comm_nccl_create (const unsigned char id[DIT_COMM_NCCL_ID_BYTES],
    int rank, int size, int device, void *stream, int timeout_ms,
    dit_comm **out);
/* The CUDA device that holds `ptr` (memory from cudaMalloc), -1 when it is
 * not device memory or this build has no NCCL transport.  The mesh uses it
 * to learn the device of a caller's backend from a buffer of it. */
int dit_comm_nccl_pointer_device (const void *ptr);

#ifdef __cplusplus
}
#endif
#endif
