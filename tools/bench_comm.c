/* bench_comm — dit-bench --comm-only (see bench_comm.h). */
#include "bench_comm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_comm.h"
#include "dit_tp.h"
#include "dit_clock.h"
#if DIT_HAVE_CUDA
#include "../kernels/cuda/dit_cuda.h"
#endif

enum { OP_AR_ACT, OP_AR_STATS, OP_A2A, OP_GATHER, OP_COUNT };

typedef struct comm_rank {
  const bench_comm_config *c;
  int rank;
  dit_comm *comm;              /* made by the thread (NCCL) or given (CPU) */
  const unsigned char *nccl_id;
  double *ms[OP_COUNT];        /* rank 0: samples */
  dit_status st;
  char err[512];
} comm_rank;

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : 0.0;
}

/* One operation of kind op on this rank's buffers. */
static dit_status
run_op (int op, const dit_mesh_groups *g, void *a, void *b, int64_t Ls,
    int64_t D, dit_dtype dt)
{
  const size_t es = dit_dtype_size (dt);
  switch (op) {
    case OP_AR_ACT:
      return g->tp > 1 ? dit_comm_allreduce_sum (g->tp_comm, a, Ls * D, dt)
          : DIT_OK;
    case OP_AR_STATS:
      if (g->tp == 1)
        return DIT_OK;
      DIT_TRY (dit_comm_allreduce_sum (g->tp_comm, a, 2 * Ls, DIT_F32));
      return dit_comm_allreduce_sum (g->tp_comm, a, Ls, DIT_F32);
    case OP_A2A:
      return g->sp > 1 ? dit_comm_alltoall (g->sp_comm, a, b,
          (size_t) (Ls * (D / g->tp / g->sp)) * es) : DIT_OK;
    case OP_GATHER:
      return g->sp > 1 ? dit_comm_alltoall (g->sp_comm, a, b,
          (size_t) (Ls * 64) * sizeof (float)) : DIT_OK;
  }
  return DIT_OK;
}

/* Whether the layout makes operations of kind op (the others report 0). */
static int
op_used (int op, int sp, int tp)
{
  return op == OP_AR_ACT || op == OP_AR_STATS ? tp > 1 : sp > 1;
}

static void *
rank_main (void *arg)
{
  comm_rank *k = arg;
  const bench_comm_config *c = k->c;
  dit_backend *be = NULL;
  void *a = NULL, *b = NULL;
  dit_mesh_groups g = { 0 };
  dit_model_tp plan;
  int sp, tp;
  dit_status st = dit_mesh_layout_degrees (c->layout, c->ranks, c->mesh_tp,
      &sp, &tp);
  const int64_t L = (int64_t) c->frames * (c->latent_h / 2) * (c->latent_w / 2);
  const int64_t D = c->model.dim, Ls = L / sp;
  /* the largest buffer: [Ls, D] activations, or the head gather */
  size_t bytes = (size_t) (Ls * D) * dit_dtype_size (c->dtype);
  if (bytes < (size_t) (L * 64) * sizeof (float))
    bytes = (size_t) (L * 64) * sizeof (float);

  if (st == DIT_OK && strcmp (c->backend, "cuda") == 0) {
    be = dit_backend_create ("cuda", c->devices ? c->devices[k->rank] : k->rank);
    if (!be)
      st = dit_error (DIT_ERR_DEVICE, "rank %d: cuda device %d: %s", k->rank,
          c->devices ? c->devices[k->rank] : k->rank, dit_last_error ());
    void *stream = NULL;
#if DIT_HAVE_CUDA
    if (be)
      stream = dit_backend_cuda_stream (be);
#endif
    if (st == DIT_OK)
      st = dit_comm_nccl_create (k->nccl_id, k->rank, c->ranks,
          c->devices ? c->devices[k->rank] : k->rank, stream, 60000, &k->comm);
    if (st == DIT_OK) {
      a = dit_backend_alloc (be, bytes);
      b = dit_backend_alloc (be, bytes);
    }
  } else if (st == DIT_OK) {
    a = calloc (1, bytes);
    b = calloc (1, bytes);
  }
  if (st == DIT_OK && (!a || !b))
    st = dit_error (DIT_ERR_NOMEM, "rank %d: no 2 x %zu bytes", k->rank, bytes);
  if (st == DIT_OK && be)
    st = dit_memset_zero (be, a, bytes);
  if (st == DIT_OK)
    st = dit_mesh_groups_create (k->comm, sp, tp, &g, &plan);
  for (int op = 0; op < OP_COUNT && st == DIT_OK; op++)
    for (int i = 0; op_used (op, sp, tp) && i < c->warmup + c->reps && st == DIT_OK; i++) {
      st = dit_comm_barrier (k->comm);
      if (st == DIT_OK)
        st = dit_comm_flush (k->comm);
      double t0 = dit_now_ms ();
      if (st == DIT_OK)
        st = run_op (op, &g, a, b, Ls, D, c->dtype);
      if (st == DIT_OK)
        st = dit_comm_flush (k->comm);
      if (k->rank == 0 && i >= c->warmup)
        k->ms[op][i - c->warmup] = dit_now_ms () - t0;
    }
  k->st = st;
  if (st != DIT_OK)
    snprintf (k->err, sizeof k->err, "%s", dit_last_error ());
  dit_mesh_groups_free (&g);
  if (be) {
    if (a) dit_backend_free (be, a);
    if (b) dit_backend_free (be, b);
    dit_comm_destroy (k->comm);
    k->comm = NULL;
    dit_backend_destroy (be);
  } else {
    free (a);
    free (b);
  }
  return NULL;
}

dit_status
bench_comm_run (const bench_comm_config *c, bench_comm_result *r)
{
  memset (r, 0, sizeof *r);
  DIT_TRY (dit_mesh_layout_degrees (c->layout, c->ranks, c->mesh_tp, &r->sp,
      &r->tp));
  const int cuda = strcmp (c->backend, "cuda") == 0;
  if (c->ranks < 2 || c->ranks > DIT_MESH_MAX_RANKS || c->reps < 1)
    return dit_error (DIT_ERR_INVALID, "--comm-only needs 2..%d mesh ranks "
        "(--mesh-devices) and at least one timed repetition",
        DIT_MESH_MAX_RANKS);
  r->tokens = (int64_t) c->frames * (c->latent_h / 2) * (c->latent_w / 2);
  if (r->tokens % r->sp != 0)
    return dit_error (DIT_ERR_INVALID, "--comm-only: %d sequence-parallel "
        "ranks do not divide the chunk's %lld tokens", r->sp,
        (long long) r->tokens);
  const int64_t Ls = r->tokens / r->sp, D = c->model.dim;
  r->act_bytes = (double) (Ls * D) * (double) dit_dtype_size (c->dtype);
  r->a2a_bytes = (double) (Ls * (D / r->tp)) * (double) dit_dtype_size (c->dtype);

  comm_rank k[DIT_MESH_MAX_RANKS];
  dit_comm *comms[DIT_MESH_MAX_RANKS] = { 0 };
  pthread_t th[DIT_MESH_MAX_RANKS];
  unsigned char id[DIT_COMM_NCCL_ID_BYTES];
  double *samples = calloc ((size_t) (OP_COUNT * c->reps), sizeof (double));
  if (!samples)
    return dit_error (DIT_ERR_NOMEM, "--comm-only: out of memory");
  dit_status st = DIT_OK;
  if (cuda)
    st = dit_comm_nccl_unique_id (id);
  else
    st = dit_comm_cpu_create_local (c->ranks, 60000, comms);
  if (st != DIT_OK) {
    free (samples);
    return st;
  }
  for (int i = 0; i < c->ranks; i++) {
    k[i] = (comm_rank) { .c = c, .rank = i, .comm = comms[i], .nccl_id = id };
    for (int op = 0; op < OP_COUNT; op++)
      k[i].ms[op] = samples + (size_t) op * (size_t) c->reps;
    pthread_create (&th[i], NULL, rank_main, &k[i]);
  }
  for (int i = 0; i < c->ranks; i++)
    pthread_join (th[i], NULL);
  for (int i = 0; i < c->ranks; i++) {
    if (k[i].st != DIT_OK && st == DIT_OK)
      st = dit_error (k[i].st, "--comm-only rank %d: %s", i, k[i].err);
    dit_comm_destroy (comms[i]);
  }
  if (st == DIT_OK) {
    double *m[OP_COUNT] = { &r->allreduce_act_ms, &r->allreduce_stats_ms,
      &r->alltoall_ms, &r->gather_ms };
    for (int op = 0; op < OP_COUNT; op++)
      *m[op] = op_used (op, r->sp, r->tp) ? median (k[0].ms[op], c->reps) : 0.0;
    r->forward_ms = c->model.num_layers * (3 * r->allreduce_act_ms
        + r->allreduce_stats_ms + 4 * r->alltoall_ms) + r->gather_ms;
  }
  free (samples);
  return st;
}
