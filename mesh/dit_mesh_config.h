/* dit_mesh_config — what a generator mesh is asked to be: the config
 * dit_mesh_create takes, and the parsing and checking of what a user wrote
 * (ditgenerate's mesh-* properties, the tools' --mesh-* options) into it.
 *
 *   dit_mesh_options   the user's words: device list, listen address,
 *                      rank count, backend, layout, worker path, timeouts;
 *   dit_mesh_spec      the checked, resolved result (owns its strings):
 *                      ranks (0 = no mesh), layout and degrees, devices,
 *                      backend, listen address or the dit-worker to spawn;
 *   dit_mesh_config    what dit_mesh_create takes (dit_mesh_spec_apply
 *                      fills its connection fields from a spec).
 *
 * Layouts (mesh/dit_tp.h has the groups, model/dit_model.h the plan):
 *   tp      tensor parallelism over all ranks (head-sharded weights,
 *           all-reduces); degree 1, 2, 4 or 8 dividing heads and FFN width;
 *   sp      sequence parallelism (Ulysses) over all ranks: full weights on
 *           every rank, tokens sharded, all-to-all around self-attention;
 *           degree 1..8 dividing the heads and every forward's tokens
 *           (wan-14b, 2160-token chunks: 2, 4, 5, 8);
 *   hybrid  sequence parallelism across groups of mesh_tp consecutive
 *           ranks, tensor parallelism inside each group.
 */
#ifndef DIT_MESH_CONFIG_H
#define DIT_MESH_CONFIG_H

#include "../model/dit_config.h"
#include "../model/dit_generator.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_MESH_MAX_RANKS 8

typedef enum dit_mesh_layout {
  DIT_MESH_LAYOUT_TP = 0,       /* tensor parallel over all ranks */
  DIT_MESH_LAYOUT_SP = 1,       /* sequence parallel over all ranks */
  DIT_MESH_LAYOUT_HYBRID = 2,   /* SP across groups, TP inside a group */
} dit_mesh_layout;

const char *dit_mesh_layout_name (dit_mesh_layout l);
/* "tp", "sp" or "hybrid" (NULL or empty = tp); anything else is refused
 * with the names that exist. */
dit_status dit_mesh_layout_parse (const char *name, dit_mesh_layout *out);

/* The sequence- and tensor-parallel degrees of `ranks` ranks in layout l
 * (mesh_tp: the TP degree inside a group, hybrid only; 0 = 2 there):
 * tp -> (1, ranks), sp -> (ranks, 1), hybrid -> (ranks / mesh_tp, mesh_tp).
 * Refuses a hybrid whose mesh_tp does not split the ranks into at least
 * two groups of at least two, and mesh_tp on another layout. */
dit_status dit_mesh_layout_degrees (dit_mesh_layout l, int ranks, int mesh_tp,
    int *sp, int *tp);

/* Where mesh rank 0 runs (docs/mesh.md, "Co-location"):
 *   off   a dit-worker process like every rank;
 *   on    a thread of Stage 0's process, with its own backend (on CUDA its
 *         own stream on the same GPU and context); the data plane between
 *         the two is an in-process hand-off and the other ranks take theirs
 *         from mesh rank 0 over the mesh comm, so no communicator has two
 *         members on one GPU and a CUDA mesh keeps NCCL throughout.  Needs
 *         spawned workers;
 *   auto  (the default) on where it replaces the fallback to the CPU
 *         world comm: spawned CUDA ranks, a CUDA world_backend, mesh rank
 *         0 on its GPU; else off. */
typedef enum dit_mesh_colocate {
  DIT_MESH_COLOCATE_OFF = 0,
  DIT_MESH_COLOCATE_ON = 1,
  DIT_MESH_COLOCATE_AUTO = 2,
} dit_mesh_colocate;

const char *dit_mesh_colocate_name (dit_mesh_colocate c);
/* "off", "on" or "auto" (NULL or empty = auto); anything else is refused
 * naming the three. */
dit_status dit_mesh_colocate_parse (const char *name, dit_mesh_colocate *out);

typedef struct dit_mesh_config {
  const char *preset;          /* model preset, e.g. "wan-14b", "tiny" */
  const char *weights;         /* checkpoint path, or NULL = synthetic */
  uint64_t synthetic_seed;
  dit_gen_config gen;          /* generator config (dtype = weight dtype;
                                  fp8: the workers run precision fp8) */
  int ranks;                   /* mesh size, 1..8 (the layout's degree
                                  rule: dit_mesh_spec_parse) */
  dit_mesh_layout layout;      /* how the ranks split the DiT */
  int mesh_tp;                 /* hybrid: TP degree inside a group (0 = 2) */
  int spawn;                   /* 1: fork/exec local workers */
  const char *worker_path;     /* dit-worker executable (spawn) */
  const char *backend;         /* worker backend: "cpu" (default) or "cuda" */
  const int *devices;          /* device of each spawned rank; NULL = 0.. */
  const char *listen;          /* "HOST:PORT"; NULL = "127.0.0.1:0" */
  int join_timeout_ms;         /* joins + shard loading; default 30000 */
  int chunk_timeout_ms;        /* one chunk, all ranks; default 10000 */
  int drift_every;             /* compare rank digests every N chunks; 0 = every chunk */
  int x0_check_every;          /* x0 received into device memory: check it
                                  against rank 0's digest (a download) every
                                  N chunks; 0 = every chunk.  Host x0 is
                                  checked every chunk */
  int max_inflight;            /* envelopes queued ahead; default 2 */
  const char *const *worker_args; /* extra dit-worker arguments (NULL-terminated) */
  int layers;                  /* transformer blocks; 0 = the preset's (a slice
                                  of the first N for tests and benchmarks) */
  int heartbeat_ms;            /* dit_mesh_ping: idle time before a NOOP round
                                  trip; default 1000, 0 = every call */
  dit_backend *world_backend;  /* backend "cuda": a CUDA backend of the
                                  caller (Stage 0's GPU).  When no spawned
                                  rank runs on its GPU the world comm runs on
                                  NCCL on its stream and the mesh stages
                                  tensors in its memory (not shared with
                                  another thread during mesh calls); NULL,
                                  or a rank on its GPU (NCCL takes one rank
                                  per GPU): the CPU comm carries the tensors
                                  through host memory.  Unused on "cpu" */
  dit_mesh_colocate colocate;  /* where mesh rank 0 runs (dit_mesh_config_default:
                                  off; the settings parsed from NULL: auto) */
} dit_mesh_config;

void dit_mesh_config_default (dit_mesh_config *c);

/* ---- from the user's words ------------------------------------------------ */

typedef struct dit_mesh_options {
  const char *devices;         /* "0,1": one spawned rank per device; NULL or
                                  empty = none */
  const char *listen;          /* HOST:PORT to wait on for workers started
                                  elsewhere (wins over devices) */
  int ranks;                   /* with listen: the workers that connect
                                  (required); with devices: 0 or their count */
  const char *backend;         /* "cpu" or "cuda"; NULL = cuda when
                                  stage0_device is cuda[:N], else cpu */
  const char *stage0_device;   /* the caller's device ("cpu", "cuda:N") */
  const char *layout;          /* "tp", "sp" or "hybrid"; NULL = tp */
  int mesh_tp;                 /* hybrid: TP degree inside a group; 0 = 2 */
  const char *worker_path;     /* dit-worker; NULL = $GST_DIT_WORKER, then
                                  installed_dir/dit-worker, then PATH */
  const char *installed_dir;   /* where an installed dit-worker lives */
  int timeout_ms, join_timeout_ms, max_inflight;
  const char *colocate;        /* "off", "on", "auto"; NULL = auto */
  /* names for messages: what the caller calls these settings */
  const char *devices_name, *listen_name, *ranks_name, *backend_name,
      *worker_name, *colocate_name;
} dit_mesh_options;

typedef struct dit_mesh_spec {
  int ranks;                   /* 0: no mesh was asked for */
  dit_mesh_layout layout;
  int tp;                      /* tensor-parallel degree (inside a group) */
  int sp;                      /* sequence-parallel degree (groups) */
  int n_devices;
  int devices[DIT_MESH_MAX_RANKS];
  char backend[8];
  char listen[256];            /* "" = spawn */
  char worker[4096];           /* the resolved dit-worker (spawn) */
  int timeout_ms, join_timeout_ms, max_inflight;
  dit_mesh_colocate colocate;
} dit_mesh_spec;

/* Option names of ditgenerate's properties (mesh-devices, ...). */
void dit_mesh_options_init (dit_mesh_options *o);

/* Check the options and resolve the worker: the device list parses, a
 * listen address has a fixed port and a rank count, the rank count is a
 * degree the layout allows, CUDA ranks have distinct devices, the
 * dit-worker to spawn exists.  Messages name the setting and its value.
 * Rank counts (devices listed, or the rank count with a listen address),
 * at most DIT_MESH_MAX_RANKS (8): tp 1, 2, 4 or 8; sp 1 to 8; hybrid 4, 6
 * or 8 with mesh_tp 2 (SP 2, 3, 4), 8 with mesh_tp 4.  The model narrows
 * them (dit_mesh_spec_check_model, then the tokens when the generator is
 * made). */
dit_status dit_mesh_spec_parse (const dit_mesh_options *o, dit_mesh_spec *s);

/* The degrees against the model: TP must divide its heads and FFN width,
 * SP x TP the heads (the tokens are checked when the generator is made,
 * dit_model_sp_check). */
dit_status dit_mesh_spec_check_model (const dit_mesh_spec *s,
    const dit_model_config *model);

/* Fill the connection fields of c (ranks, layout, spawn, worker, backend,
 * devices, listen, timeouts, in-flight bound) from s; c points into s, which
 * must outlive dit_mesh_create. */
void dit_mesh_spec_apply (const dit_mesh_spec *s, dit_mesh_config *c);

#ifdef __cplusplus
}
#endif
#endif
