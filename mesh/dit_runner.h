/* dit_runner — the generator behind one interface: the DiT in this process
 * (model/dit_generator.h) or on a generator mesh of dit-worker processes
 * (dit_mesh.h).  ditgenerate and dit-bench drive their chunks through it,
 * so the benchmark measures the element's own code.
 *
 * Per chunk the runner makes the chunk's plan once (dit_chunk_plan_make)
 * and hands it to the in-process generator (dit_generator_run_plan) or to
 * the mesh (dit_mesh_submit_plan), which sends it to the workers.
 *
 * Memory: x0 comes back as a view of the runner's buffer [16, F, h, w] f32
 * in the memory of the runner's backend (device memory on CUDA), valid until
 * the next chunk.  Request tensors may live on that device or the host.
 * Along the mesh path on CUDA the latents stay on the device when the world
 * comm is NCCL (the context goes device to device into the envelope's
 * staging, x0 from the receive buffer into the runner's buffer); on the CPU
 * comm the transport takes host memory (one download of the context, one
 * upload of x0 per chunk).  dit_runner_get_stats counts the host copies of
 * the last chunk.
 *
 * Layouts of the mesh: what dit_mesh_spec says (tensor parallelism so far);
 * the runner passes it through, so a new layout changes the mesh, not the
 * runner's callers.
 */
#ifndef DIT_RUNNER_H
#define DIT_RUNNER_H

#include "../kernels/dit_backend.h"
#include "../model/dit_generator.h"
#include "../model/dit_lora.h"
#include "dit_mesh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_runner_config {
  dit_model_config model;      /* the DiT's config (for a mesh: shapes only,
                                  nothing is loaded here) */
  dit_gen_config gen;          /* dtype: the weights' */
  /* in process */
  dit_weights *weights;        /* on the device of the runner's backend;
                                  merged LoRAs change them (see below) */
  int graphs;                  /* record forwards (CUDA graphs); default 0 */
  int fused;                   /* fused ops where the backend has them;
                                  default 1 */
  int gemm_fold;               /* GEMM epilogue folds (dit_model_set_gemm_fold);
                                  default 1 */
  /* mesh: spec NULL or spec->ranks 0 = in process */
  const dit_mesh_spec *mesh;
  const char *preset;          /* the workers' model preset */
  const char *mesh_weights;    /* checkpoint path; NULL = synthetic */
  uint64_t synthetic_seed;
  int layers;                  /* 0 = the preset's */
  const char *const *worker_args; /* extra dit-worker arguments */
  int x0_check_every;          /* device x0: digest check cadence (0 = the
                                  runner's default, every 32 chunks) */
  /* LoRAs (dit_runner_set_lora): how they are applied, fixed for the
   * runner's life; keep_base (merge) keeps every touched tensor as loaded
   * so re-merges start from it (strengths that move never drift; costs a
   * copy of each touched tensor), 0 for strengths that never change */
  dit_lora_mode lora_mode;     /* default DIT_LORA_MERGE */
  int lora_keep_base;          /* default 1 */
} dit_runner_config;

void dit_runner_config_default (dit_runner_config *c);

typedef struct dit_runner dit_runner;

/* be: the runner's own backend (the generator's stream; with a mesh on a
 * CUDA device, the world comm's stream and staging).  A mesh is started
 * (spawned or joined) here. */
dit_status dit_runner_create (const dit_runner_config *cfg, dit_backend *be,
    dit_runner **out);
/* Ends a mesh with SHUTDOWN (workers exit 0), then kills and reaps what is
 * left.  Before the backend goes.  With lora_keep_base the weights are
 * given back as they were loaded (without, they keep the last merge). */
void dit_runner_free (dit_runner *r);
/* The SHUTDOWN alone, reporting how the workers ended (after a failure:
 * the failure). */
dit_status dit_runner_shutdown (dit_runner *r);

/* Host embeddings [rows, text_dim] (the in-process generator also takes
 * them on its device); the mesh sends them with the next chunk. */
dit_status dit_runner_set_prompt (dit_runner *r, const dit_tensor *embeds);

/* LoRAs: make `spec` (count 0: none) the applied list, in the config's
 * lora_mode, from the next chunk on.  In process the runner's weights
 * carry it (merge: merged into them; live: side paths beside them); on a
 * mesh it goes to every worker with the next chunk, each applies it to its
 * shard, and the list, strengths and mode join the join and drift checks.
 * The same files with other strengths are a strength change (live: a
 * rescale; merge: a re-merge).  On an error (a file unreadable or not
 * fitting the model: the message names it) the previous list stays
 * applied and the runner keeps working. */
dit_status dit_runner_set_lora (dit_runner *r, const dit_lora_spec *spec);
/* The applied list (count 0: none) and its digest (0: none). */
const dit_lora_spec *dit_runner_lora (const dit_runner *r);
uint64_t dit_runner_lora_digest (const dit_runner *r);

/* A new stream: chunk 0 comes next.  The mesh bumps its cache epoch so
 * that results of calls made before are dropped. */
void dit_runner_reset (dit_runner *r);

/* One chunk: the plan of (req->chunk_index, req->first_step), run in
 * process or on the mesh.  *x0 becomes a view of the result. */
dit_status dit_runner_run_chunk (dit_runner *r, const dit_chunk_request *req,
    dit_tensor *x0, dit_chunk_timing *timing);

/* The same in two halves, so the caller can work while the mesh does (at
 * most one chunk in flight; in process, submit runs the chunk and collect
 * returns it). */
dit_status dit_runner_submit (dit_runner *r, const dit_chunk_request *req);
dit_status dit_runner_collect (dit_runner *r, dit_tensor *x0,
    dit_chunk_timing *timing);

/* Between chunks while waiting for input: a mesh checks its workers
 * (dit_mesh_ping) so that one lost while idle is reported now. */
dit_status dit_runner_idle (dit_runner *r);

dit_backend *dit_runner_backend (const dit_runner *r);
int dit_runner_is_mesh (const dit_runner *r);
/* The in-process generator (NULL on a mesh), for what only it has: the
 * per-op breakdown of dit-bench turns its graphs off around timed chunks. */
dit_generator *dit_runner_generator (dit_runner *r);

typedef struct dit_runner_stats {
  int ranks;                           /* 0 in process */
  dit_mesh_layout layout;
  int pids[DIT_MESH_MAX_RANKS];        /* spawned workers, 0 otherwise */
  double rank_ms[DIT_MESH_MAX_RANKS];  /* last chunk, per rank */
  double allreduce_ms[DIT_MESH_MAX_RANKS];
  double exposed_ms[DIT_MESH_MAX_RANKS];   /* of allreduce_ms, what the
                                              compute waited for */
  int world_nccl;                      /* the mesh's data plane is NCCL */
  int colocated;                       /* mesh rank 0 runs in this process
                                          (dit_mesh_config.colocate) */
  uint64_t chunks;
  dit_host_copies last_copies;         /* host copies of the last chunk,
                                          made on the calling thread */
} dit_runner_stats;
void dit_runner_get_stats (const dit_runner *r, dit_runner_stats *out);

/* How much of Stage 0 (the VAE work of a chunk) and Stage 1 (the generator
 * call) ran at the same time, per chunk: hidden = stage 0 + stage 1 -
 * period (clamped at 0); over the last DIT_OVERLAP_WINDOW chunks, score =
 * median hidden / min (median stage 0, median stage 1): 0 = the stages run
 * one after the other, 1 = the shorter one is completely hidden. */
#define DIT_OVERLAP_WINDOW 32
typedef struct dit_overlap {
  double stage0_ms, stage1_ms, period_ms, hidden_ms;   /* the last chunk */
  double score;
  double ring[3][DIT_OVERLAP_WINDOW];                  /* hidden, s0, s1 */
  unsigned n;
} dit_overlap;
void dit_overlap_reset (dit_overlap *o);
void dit_overlap_add (dit_overlap *o, double stage0_ms, double stage1_ms,
    double period_ms);

#ifdef __cplusplus
}
#endif
#endif
