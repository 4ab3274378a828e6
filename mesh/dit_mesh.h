/* dit_mesh — the generator mesh: rank 0 (Stage 0) drives dit-worker ranks
 * that each hold a tensor-parallel shard of the DiT (DESIGN §1, §6;
 * protocol in docs/protocol.md).
 *
 * Rank 0 side (dit_mesh_*): listens on HOST:0 (the kernel picks the port),
 * spawns local workers (fork/exec of dit-worker with --connect and the
 * port) or waits for workers started by another launcher, runs the parity
 * check of every JOIN, hands out the session (generator config, TP comm
 * address and token, or on the NCCL transport the NCCL unique id made by
 * mesh rank 0 and carried in its JOIN), waits until every shard is loaded,
 * then sends one envelope per chunk and collects one result per rank.
 *
 * Two communicators (docs/protocol.md): the world communicator (Stage 0 =
 * world rank 0, mesh rank r = world rank r + 1) is the data plane: the
 * envelope tensors (prompt, context, init) are broadcast on it after their
 * INFER frame and mesh rank 0 sends x0 on it after its RESULT frame; the
 * frames on the control sockets carry tensor specs only.  The mesh
 * communicator (mesh ranks only) carries the TP collectives.
 *
 * Transports, chosen by the worker backend: "cpu" -> the CPU comm
 * (sockets) for both communicators, Stage 0 the root of the world one;
 * "cuda" -> NCCL on the backend's stream (docs/mesh.md).  On "cuda" Stage 0
 * is a member of the world communicator on the GPU of world_backend (NCCL
 * allows one rank per GPU per communicator: that GPU must not hold a mesh
 * rank); for the TP communicator it only forwards mesh rank 0's id.
 *
 * Co-location (dit_mesh_config.colocate): mesh rank 0 can run on a thread
 * of this process instead (dit_worker_run with its own backend, on CUDA its
 * own stream on the same GPU); the world traffic to it is then an
 * in-process hand-off and the other ranks take theirs from it over the
 * mesh communicator (dit_comm_relay_create), so every communicator keeps
 * one member per GPU (docs/mesh.md, "Co-location").
 *
 * Failure semantics (crash before hang): every wait has a deadline; a
 * worker that dies, stalls or fails is reported by rank, pid and call
 * within chunk_timeout_ms (a rank that died is reported at once: the
 * others get a short grace to report how their collectives failed), the
 * mesh is then failed (every later call returns the same error) and
 * dit_mesh_free kills and reaps what is left.
 * Results of an older cache epoch are dropped; ranks' output digests are
 * compared every drift_every chunks.
 *
 * Worker side (dit_worker_run): the loop behind tools/dit-worker.
 */
#ifndef DIT_MESH_H
#define DIT_MESH_H

#include "../model/dit_generator.h"
#include "../model/dit_lora.h"
#include "dit_mesh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dit_mesh_config (what dit_mesh_create takes) and DIT_MESH_MAX_RANKS:
 * mesh/dit_mesh_config.h. */

typedef struct dit_mesh dit_mesh;

dit_status dit_mesh_create (const dit_mesh_config *cfg, dit_mesh **out);
/* Kills (SIGKILL) and reaps any worker still running; closes everything. */
void dit_mesh_free (dit_mesh *m);

/* The bound rendezvous port (for workers started elsewhere), and the pid
 * of a spawned rank (0 when not spawned). */
int dit_mesh_port (const dit_mesh *m);
int dit_mesh_worker_pid (const dit_mesh *m, int rank);

/* Host embeddings [rows, text_dim]; sent with the next INFER.  Starts a
 * new prompt epoch: every INFER carries the epoch in force, and each rank
 * rebuilds its cross-attention K/V once per new epoch. */
dit_status dit_mesh_set_prompt (dit_mesh *m, const dit_tensor *embeds);
/* LoRAs (model/dit_lora.h): `spec` becomes the list in force from the next
 * INFER on, in `mode` (fixed once a list was set).  Every file is opened
 * and checked against the model here first (a bad one is refused naming
 * it, and the previous list stays); the INFER then carries the list's
 * text, mode and digest, each worker applies it to its shard (factors cut
 * the way their layer is) and answers with the digest of what it applied:
 * a worker whose digest differs from rank 0's is an error naming the rank
 * (its file differs, or it could not read it). */
dit_status dit_mesh_set_lora (dit_mesh *m, dit_lora_mode mode,
    const dit_lora_spec *spec);
/* The digest of the list in force (0: none). */
uint64_t dit_mesh_lora_digest (const dit_mesh *m);

/* The prompt epoch in force (0 before the first dit_mesh_set_prompt). */
uint64_t dit_mesh_prompt_epoch (const dit_mesh *m);

/* Hard cut (flush, prompt switch, config change): results of calls
 * submitted before are dropped when they arrive. */
void dit_mesh_bump_epoch (dit_mesh *m);

/* dit_generator_run_chunk's contract on the mesh: request tensors and `out`
 * ([16, F, h, w], f32 or bf16) are host memory, or device memory of the
 * config's world_backend (`out` f32).  Device tensors stay on the device
 * when the world comm is NCCL (the context is copied device to device into
 * staging, x0 from the receive buffer into `out`; the x0 digest check then
 * downloads every x0_check_every chunks); on the CPU comm they cross to the
 * host because the transport needs them there.  Noise is the Philox stream
 * of (seed, chunk, step) on every rank; caller noise is refused. */
dit_status dit_mesh_run_chunk (dit_mesh *m, const dit_chunk_request *req,
    dit_tensor *out, dit_chunk_timing *timing);

/* The same in two halves, for up to max_inflight envelopes in flight.
 * collect returns results in submit order, skipping stale-epoch ones.
 * submit makes the chunk's plan (dit_chunk_plan_make); submit_plan sends a
 * plan the caller made with the mesh's config and schedule
 * (dit_mesh_schedule), which is how a runner derives it once. */
dit_status dit_mesh_submit (dit_mesh *m, const dit_chunk_request *req,
    uint64_t *call_id);
dit_status dit_mesh_submit_plan (dit_mesh *m, const dit_chunk_plan *plan,
    const dit_chunk_request *req, uint64_t *call_id);
const dit_schedule *dit_mesh_schedule (const dit_mesh *m);
dit_status dit_mesh_collect (dit_mesh *m, dit_tensor *out,
    dit_chunk_timing *timing, uint64_t *call_id);

/* Send an envelope as built by the caller (tests, tools): it is validated
 * and encoded completely first, so a bad one fails here and nothing is
 * sent.  INFER envelopes are then tracked like submitted ones. */
struct dit_envelope;
dit_status dit_mesh_send_envelope (dit_mesh *m, const struct dit_envelope *env);

/* Heartbeat, for callers that sit between chunks: when nothing is in
 * flight and no envelope went out for heartbeat_ms, send NOOP to every rank
 * and wait (chunk_timeout_ms) for every NOOP back; otherwise return DIT_OK
 * at once (work in flight is watched by collect).  A dead or stalled rank
 * fails the mesh with an error naming it. */
dit_status dit_mesh_ping (dit_mesh *m);

/* Drain what is in flight, send SHUTDOWN, wait (deadline) until every
 * spawned worker has exited; DIT_OK only if all exited with status 0. */
dit_status dit_mesh_shutdown (dit_mesh *m);

typedef struct dit_mesh_stats {
  uint64_t chunks;             /* results delivered */
  uint64_t stale_dropped;      /* results dropped by the epoch fence */
  uint64_t drift_checks;
  double last_roundtrip_ms;
  double last_rank_ms[DIT_MESH_MAX_RANKS];  /* per-rank total */
  /* per-rank time in TP all-reduces during the last chunk (wait for the
   * slowest rank included), -1 where the rank could not measure it */
  double last_allreduce_ms[DIT_MESH_MAX_RANKS];
  /* per-rank exposed collective time of the last chunk: what the compute
   * waited for (dit_comm_take_exposed_ms; = last_allreduce_ms on the CPU
   * comm), -1 where unmeasured */
  double last_exposed_ms[DIT_MESH_MAX_RANKS];
  uint64_t world_bytes;        /* tensor bytes carried on the world comm
                                  (sent and received by Stage 0) */
  int world_nccl;              /* the world comm runs on NCCL (else on the
                                  CPU comm through host memory); co-located:
                                  the relay over the mesh comm does */
  int colocated;               /* mesh rank 0 runs in this process
                                  (dit_mesh_config.colocate) */
} dit_mesh_stats;
void dit_mesh_get_stats (const dit_mesh *m, dit_mesh_stats *s);

/* ---- worker ------------------------------------------------------------- */

typedef struct dit_worker_config {
  const char *connect;         /* rank 0's "HOST:PORT" */
  int rank;                    /* mesh rank 0..tp-1 */
  int tp;                      /* mesh size */
  dit_mesh_layout layout;      /* tp, sp or hybrid */
  int mesh_tp;                 /* hybrid: tensor-parallel degree inside a
                                  group (0 = 2); tp/sp: 0 */
  int device;
  const char *backend;         /* "cpu" or "cuda" */
  const char *preset;
  const char *weights;         /* NULL = synthetic */
  uint64_t synthetic_seed;
  dit_dtype dtype;             /* compute dtype */
  int fp8;                     /* 1: precision fp8 (dit_config.h): the
                                  shard's linear weights quantized to FP8 */
  int timeout_ms;              /* join, comm setup and every collective */
  int test_delay_ms;           /* tests: sleep before each chunk */
  int layers;                  /* 0 = the preset's */
  int graphs;                  /* 1: record forwards as CUDA graphs (cuda
                                  backend; dit-worker's default), 0: eager */
  int test_cut_world;          /* tests: mesh rank 0 closes its world comm
                                  instead of sending the first x0 */
  int comm_overlap_off;        /* 1: collectives in the plain order
                                  (dit-worker --comm-overlap off); 0: the
                                  overlapped order (dit_model_tp.overlap) */
  struct dit_comm *world_local; /* mesh rank 0 run on a thread of Stage 0's
                                  process (co-located layout): its end of
                                  the in-process hand-off
                                  (dit_comm_local_pair), taken over by
                                  dit_worker_run and closed when it
                                  returns; NULL for a worker process */
} dit_worker_config;

/* Joins, loads its shard, serves envelopes.  DIT_OK after SHUTDOWN; an
 * error (with the message) when refused at join, when rank 0 disappears,
 * or when a collective fails. */
dit_status dit_worker_run (const dit_worker_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
