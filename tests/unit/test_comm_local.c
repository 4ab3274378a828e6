/* test_comm_local — the in-process hand-off and the relayed world comm of a
 * co-located mesh rank 0 (mesh/comm_local.c), on host memory, with threads:
 *
 *  - pair: a broadcast from Stage 0 and a send back from mesh rank 0 arrive
 *    intact, several in a row (the mailbox of each direction is reused);
 *  - out of step: a receive of another size fails on both sides, naming
 *    the sizes; the pair works again afterwards;
 *  - deadline: a receive with nothing sent fails within its timeout,
 *    naming the peer; a send nobody takes likewise;
 *  - closed: closing one end fails the other's waiting receive at once;
 *  - relay over a CPU comm of 2 mesh ranks: Stage 0's broadcast reaches
 *    mesh rank 0 (through the pair) and rank 1 (from rank 0 on the mesh
 *    comm), and rank 0's send reaches Stage 0; rank 1 cannot send to Stage
 *    0; a relay refuses a receive, and rank 0 without a pair end (or rank 1
 *    with one) is refused at creation.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dit_clock.h"
#include "dit_comm.h"
#include "../common/check.h"

#define N 4096

static void
fill (float *x, int n, int seed)
{
  for (int i = 0; i < n; i++)
    x[i] = (float) (seed * 1000 + i);
}

/* ---- a thread that runs one operation on a comm ------------------------ */

typedef enum { OP_BCAST, OP_SEND, OP_RECV, OP_DESTROY_AFTER } op_kind;

typedef struct job {
  dit_comm *c;
  op_kind op;
  void *data;
  size_t bytes;
  int peer;        /* send/recv peer, broadcast root */
  int repeat;
  int delay_ms;
  dit_status st;
  char msg[512];
  pthread_t t;
} job;

static void *
job_main (void *arg)
{
  job *j = arg;
  j->st = DIT_OK;
  if (j->delay_ms)
    nanosleep (&(struct timespec) { 0, (long) j->delay_ms * 1000000L }, NULL);
  for (int r = 0; r < (j->repeat ? j->repeat : 1) && j->st == DIT_OK; r++) {
    if (j->op == OP_BCAST)
      j->st = dit_comm_broadcast (j->c, j->data, j->bytes, j->peer);
    else if (j->op == OP_SEND)
      j->st = dit_comm_send (j->c, j->data, j->bytes, j->peer);
    else if (j->op == OP_RECV)
      j->st = dit_comm_recv (j->c, j->data, j->bytes, j->peer);
    else
      dit_comm_destroy (j->c);
  }
  snprintf (j->msg, sizeof j->msg, "%s", j->st == DIT_OK ? "" : dit_last_error ());
  return NULL;
}

static void
start (job *j)
{
  pthread_create (&j->t, NULL, job_main, j);
}

static void
join (job *j)
{
  pthread_join (j->t, NULL);
}

static void
t_pair (void)
{
  dit_comm *s0, *r0;
  static float a[N], b[N];
  CHECK (dit_comm_local_pair (NULL, 2000, &s0, &r0) == DIT_OK, "pair: %s",
      dit_last_error ());
  for (int k = 0; k < 3; k++) {
    fill (a, N, k + 1);
    memset (b, 0, sizeof b);
    job rx = { .c = r0, .op = OP_BCAST, .data = b, .bytes = sizeof b, .peer = 0 };
    start (&rx);
    dit_status st = dit_comm_broadcast (s0, a, sizeof a, 0);
    join (&rx);
    CHECK (st == DIT_OK && rx.st == DIT_OK, "broadcast %d: %s / %s", k,
        dit_last_error (), rx.msg);
    CHECK (memcmp (a, b, sizeof a) == 0, "broadcast %d: data differs", k);
    /* and back: mesh rank 0's x0 */
    fill (b, N, k + 7);
    job tx = { .c = r0, .op = OP_SEND, .data = b, .bytes = sizeof b, .peer = 0 };
    start (&tx);
    st = dit_comm_recv (s0, a, sizeof a, 1);
    join (&tx);
    CHECK (st == DIT_OK && tx.st == DIT_OK, "send back %d: %s / %s", k,
        dit_last_error (), tx.msg);
    CHECK (memcmp (a, b, sizeof a) == 0, "send back %d: data differs", k);
  }

  /* out of step: 200 bytes sent, 400 expected */
  job rx = { .c = r0, .op = OP_RECV, .data = b, .bytes = 400, .peer = 0 };
  start (&rx);
  dit_status st = dit_comm_send (s0, a, 200, 1);
  char smsg[512];
  snprintf (smsg, sizeof smsg, "%s", dit_last_error ());
  join (&rx);
  CHECK (st != DIT_OK && rx.st != DIT_OK, "a size mismatch was taken");
  CHECK (strstr (rx.msg, "sent 200 bytes") && strstr (rx.msg, "expected 400"),
      "receiver's message: '%s'", rx.msg);
  CHECK (strstr (smsg, "could not copy"), "sender's message: '%s'", smsg);
  printf ("out of step: '%s'\n", rx.msg);
  /* the pair still works */
  fill (a, N, 9);
  job rx2 = { .c = r0, .op = OP_RECV, .data = b, .bytes = sizeof b, .peer = 0 };
  start (&rx2);
  st = dit_comm_send (s0, a, sizeof a, 1);
  join (&rx2);
  CHECK (st == DIT_OK && rx2.st == DIT_OK && memcmp (a, b, sizeof a) == 0,
      "the pair after a mismatch: %s", rx2.msg);

  /* deadlines */
  s0->timeout_ms = r0->timeout_ms = 150;
  double t0 = dit_now_ms ();
  st = dit_comm_recv (r0, b, sizeof b, 0);
  double dt = dit_now_ms () - t0;
  CHECK (st != DIT_OK && strstr (dit_last_error (), "nothing from Stage 0")
      && dt >= 140 && dt < 1500, "recv deadline: %.0f ms, '%s'", dt,
      dit_last_error ());
  CHECK (r0->failed_peer == 0, "failed_peer %d, want 0", r0->failed_peer);
  t0 = dit_now_ms ();
  st = dit_comm_send (s0, a, sizeof a, 1);
  dt = dit_now_ms () - t0;
  CHECK (st != DIT_OK && strstr (dit_last_error (), "mesh rank 0 took no")
      && dt >= 140 && dt < 1500, "send deadline: %.0f ms, '%s'", dt,
      dit_last_error ());
  printf ("deadlines: '%s'\n", dit_last_error ());

  /* closed: Stage 0 goes while mesh rank 0 waits */
  s0->timeout_ms = r0->timeout_ms = 10000;
  job closer = { .c = s0, .op = OP_DESTROY_AFTER, .delay_ms = 100 };
  start (&closer);
  t0 = dit_now_ms ();
  st = dit_comm_recv (r0, b, sizeof b, 0);
  dt = dit_now_ms () - t0;
  join (&closer);
  CHECK (st != DIT_OK && strstr (dit_last_error (), "Stage 0 went away")
      && dt < 2000, "closed: %.0f ms, '%s'", dt, dit_last_error ());
  printf ("closed (%.0f ms): '%s'\n", dt, dit_last_error ());
  dit_comm_destroy (r0);
}

typedef struct relay_rank {
  dit_comm *world;
  float buf[N];
  float x0[N];
  dit_status st;
  char msg[512];
  pthread_t t;
} relay_rank;

static void *
relay_main (void *arg)
{
  relay_rank *r = arg;
  r->st = dit_comm_broadcast (r->world, r->buf, sizeof r->buf, 0);
  if (r->st == DIT_OK && r->world->rank == 1) {
    fill (r->x0, N, 42);
    r->st = dit_comm_send (r->world, r->x0, sizeof r->x0, 0);
  }
  snprintf (r->msg, sizeof r->msg, "%s", r->st == DIT_OK ? "" : dit_last_error ());
  return NULL;
}

static void
t_relay (void)
{
  dit_comm *mesh[2], *s0, *r0, *bad;
  static relay_rank rk[2];
  static float a[N], x0[N];
  CHECK (dit_comm_cpu_create_local (2, 5000, mesh) == DIT_OK, "cpu comm: %s",
      dit_last_error ());
  CHECK (dit_comm_local_pair (NULL, 5000, &s0, &r0) == DIT_OK, "pair");
  CHECK (dit_comm_relay_create (NULL, mesh[0], 0, 2, NULL, &bad) != DIT_OK,
      "mesh rank 0 without the pair end was taken");
  CHECK (dit_comm_relay_create (r0, mesh[1], 1, 2, NULL, &bad) != DIT_OK,
      "mesh rank 1 with a pair end was taken");
  CHECK (dit_comm_relay_create (r0, mesh[0], 0, 2, NULL, &rk[0].world) == DIT_OK
      && dit_comm_relay_create (NULL, mesh[1], 1, 2, NULL, &rk[1].world)
      == DIT_OK, "relays: %s", dit_last_error ());
  CHECK (rk[0].world->rank == 1 && rk[1].world->rank == 2
      && rk[0].world->size == 3, "relay ranks %d %d of %d", rk[0].world->rank,
      rk[1].world->rank, rk[0].world->size);
  for (int i = 0; i < 2; i++)
    pthread_create (&rk[i].t, NULL, relay_main, &rk[i]);
  fill (a, N, 5);
  dit_status st = dit_comm_broadcast (s0, a, sizeof a, 0);
  if (st == DIT_OK)
    st = dit_comm_recv (s0, x0, sizeof x0, 1);
  for (int i = 0; i < 2; i++)
    pthread_join (rk[i].t, NULL);
  CHECK (st == DIT_OK && rk[0].st == DIT_OK && rk[1].st == DIT_OK,
      "relay: %s / %s / %s", st == DIT_OK ? "" : dit_last_error (), rk[0].msg,
      rk[1].msg);
  CHECK (memcmp (rk[0].buf, a, sizeof a) == 0, "mesh rank 0's data differs");
  CHECK (memcmp (rk[1].buf, a, sizeof a) == 0, "mesh rank 1's data differs");
  CHECK (memcmp (x0, rk[0].x0, sizeof x0) == 0, "x0 differs");
  CHECK (dit_comm_send (rk[1].world, a, 16, 0) != DIT_OK, "rank 1 sent to "
      "Stage 0");
  CHECK (dit_comm_recv (rk[0].world, a, 16, 0) != DIT_OK, "a relay received");
  CHECK (dit_comm_flush (rk[0].world) == DIT_OK, "flush: %s", dit_last_error ());
  printf ("relay: Stage 0 -> mesh ranks 0, 1 and x0 back: ok\n");
  /* the relay owns the pair end: destroying it closes it */
  dit_comm_destroy (rk[0].world);
  st = dit_comm_recv (s0, x0, sizeof x0, 1);
  CHECK (st != DIT_OK && strstr (dit_last_error (), "went away"),
      "after the relay: '%s'", dit_last_error ());
  dit_comm_destroy (rk[1].world);
  dit_comm_destroy (s0);
  dit_comm_destroy (mesh[0]);
  dit_comm_destroy (mesh[1]);
}

int
main (void)
{
  t_pair ();
  t_relay ();
  if (failures)
    fprintf (stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
