/* envelope — the mesh wire protocol (docs/protocol.md): framed, versioned,
 * checksummed messages between rank 0 (Stage 0) and the dit-worker ranks.
 *
 * Frame: 16-byte header, little-endian
 *   u32 magic "DITE" | u16 version | u16 type | u32 payload bytes | u32 CRC32C
 * then the payload (at most DIT_ENV_MAX_PAYLOAD bytes).  The payload is a
 * fixed sequence of little-endian fields per type, then the tensor specs:
 *   u32 count, per tensor: u8 name length, name, u8 dtype, u8 ndim,
 *   i64 shape[ndim], u64 bytes.
 * Frames carry no tensor bytes: those travel on the world communicator
 * (the data plane, docs/protocol.md), after the frame that lists them, in
 * frame order.
 *
 * Encoding validates everything first (type, ids, plan, tensor names,
 * shapes, byte counts) and builds the whole frame in memory, so a bad
 * message fails on the sender before a byte is written and the peer never
 * waits on a half-sent frame.  Decoding is strict: every length and count is
 * bounded before use and trailing bytes are an error; decoded tensor specs
 * have data = NULL (the receiver supplies the memory the bytes land in).
 */
#ifndef DIT_ENVELOPE_H
#define DIT_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"
#include "../model/dit_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_ENV_MAGIC 0x45544944u        /* "DITE" */
#define DIT_ENV_VERSION 8
#define DIT_ENV_HEADER_BYTES 16
#define DIT_ENV_MAX_PAYLOAD (1u << 30)
#define DIT_ENV_MAX_TENSORS 8
#define DIT_ENV_MAX_NAME 31
#define DIT_ENV_MAX_DIMS 4
#define DIT_ENV_MAX_STEPS 16
#define DIT_ENV_MAX_TEXT 255
#define DIT_ENV_MAX_LORA 8400              /* a LoRA list's text */
#define DIT_ENV_NCCL_ID_BYTES 128        /* = DIT_COMM_NCCL_ID_BYTES */

typedef enum dit_env_type {
  DIT_ENV_NOOP = 1,
  DIT_ENV_INFER = 2,
  DIT_ENV_SHUTDOWN = 3,
  DIT_ENV_RESULT = 4,
  DIT_ENV_JOIN = 5,
  DIT_ENV_ACCEPT = 6,
  DIT_ENV_REFUSE = 7,
} dit_env_type;

typedef struct dit_env_tensor {
  char name[DIT_ENV_MAX_NAME + 1];
  dit_dtype dtype;
  int ndim;
  int64_t shape[DIT_ENV_MAX_DIMS];
  const void *data;     /* sender: where the bytes are (the mesh: host
                           memory, or device memory of the caller's
                           world_backend; a worker: its backend's memory);
                           never encoded.  NULL after decoding. */
  dit_device device;    /* sender: where data lives; never encoded */
} dit_env_tensor;

/* What one INFER asks the generator to do: the chunk plan of
 * model/dit_plan.h, made on rank 0 by dit_chunk_plan_make and checked by
 * each worker with dit_chunk_plan_check. */
typedef dit_chunk_plan dit_env_plan;

/* Join parity (worker -> rank 0). */
typedef struct dit_env_join {
  int rank;             /* mesh rank 0..tp-1 */
  int tp;
  char preset[32];
  uint64_t config_digest;
  int dtype;
  uint64_t weights_fingerprint;
  int comm_port;        /* mesh rank 0: its TP comm listening port */
  int pid;
  int device;
  char backend[16];     /* "cpu" or "cuda": picks the TP transport */
  int layers;           /* transformer blocks (after --layers) */
  int has_nccl_id;      /* mesh rank 0 on the NCCL transport */
  unsigned char nccl_id[DIT_ENV_NCCL_ID_BYTES];
  int layout;           /* dit_mesh_layout: tp, sp, hybrid (v5) */
  int mesh_tp;          /* tensor-parallel degree inside a group: tp =
                           ranks, sp = 1, hybrid = the group size (v5) */
} dit_env_join;

/* Session setup (rank 0 -> worker). */
typedef struct dit_env_accept {
  uint64_t token;
  char comm_host[64];
  int comm_port;
  int has_nccl_id;      /* NCCL transport: mesh rank 0's id, forwarded */
  unsigned char nccl_id[DIT_ENV_NCCL_ID_BYTES];
  /* The world communicator (Stage 0 = world rank 0, mesh rank r = world
   * rank r + 1): CPU transport: Stage 0's port on the host the worker
   * reached it on; NCCL transport: the unique id Stage 0 made. */
  int world_port;
  int has_world_nccl_id;
  unsigned char world_nccl_id[DIT_ENV_NCCL_ID_BYTES];
  /* v8: the co-located layout.  Mesh rank 0 runs inside Stage 0's process
   * and takes the data plane from it there; every mesh rank's world comm
   * is a broadcast from mesh rank 0 on the mesh comm (world_port 0, no
   * world NCCL id). */
  int world_relay;
  int timeout_ms;
  int latent_h, latent_w, frames_per_chunk, context_frames;
  int num_steps;
  double steps[DIT_ENV_MAX_STEPS];
  double shift;
  float kv_bias;
  uint64_t seed;
  int warp_steps;
} dit_env_accept;

#define DIT_ENV_TIMINGS 6   /* decode, recompute, denoise, total, collectives,
                               exposed collectives (ms; v6 added the last) */

typedef struct dit_envelope {
  dit_env_type type;
  uint64_t call_id;
  int64_t chunk_index;
  uint64_t cache_epoch;
  dit_env_plan plan;                  /* INFER */
  uint64_t prompt_epoch;              /* INFER: prompt generation in force */
  /* The LoRA list in force (model/dit_lora.h).  INFER: its epoch (bumped
   * by every dit_mesh_set_lora, 0 = never set), mode, the digest rank 0
   * computed for it (dit_lora_spec_digest) and, when the epoch is new to
   * the workers, the list's text (empty otherwise).  RESULT: lora_digest is
   * the rank's own digest of what it applied. */
  uint64_t lora_epoch;
  int lora_mode;
  uint64_t lora_digest;
  char lora[DIT_ENV_MAX_LORA + 1];
  int rank, status;                   /* RESULT (status 0 = ok) */
  uint64_t digest;                    /* RESULT: FNV-1a 64 of the latents */
  double timing_ms[DIT_ENV_TIMINGS];  /* RESULT */
  char text[DIT_ENV_MAX_TEXT + 1];    /* RESULT error, REFUSE reason */
  dit_env_join join;                  /* JOIN */
  dit_env_accept accept;              /* ACCEPT */
  int n_tensors;
  dit_env_tensor tensors[DIT_ENV_MAX_TENSORS];
} dit_envelope;

const char *dit_env_type_name (int type);

/* Validate and encode a whole frame (header + payload) into a malloc'd
 * buffer.  Any problem is DIT_ERR_INVALID naming the field; nothing is
 * allocated then. */
dit_status dit_env_encode (const dit_envelope *env, unsigned char **frame,
    size_t *frame_bytes);

/* Check a 16-byte header: magic, version, type, payload bound. */
dit_status dit_env_parse_header (const unsigned char hdr[DIT_ENV_HEADER_BYTES],
    int *type, uint32_t *payload_bytes, uint32_t *crc);

/* Decode a payload (CRC checked against crc).  Tensor specs only (data =
 * NULL). */
dit_status dit_env_decode (int type, const unsigned char *payload,
    size_t bytes, uint32_t crc, dit_envelope *env);

/* Decode a whole frame (header + payload) — what the fuzz target drives. */
dit_status dit_env_decode_frame (const unsigned char *frame, size_t bytes,
    dit_envelope *env);

/* Frame I/O over a socket with a deadline (mesh/dit_net.h).  recv reuses
 * *buf (grown with realloc) for the payload. */
dit_status dit_env_send (int fd, const dit_envelope *env, int64_t deadline,
    const char *peer);
dit_status dit_env_recv (int fd, dit_envelope *env, unsigned char **buf,
    size_t *cap, int64_t deadline, const char *peer);

uint32_t dit_crc32c (uint32_t crc, const void *data, size_t n);

/* The tensor named `name`, or NULL. */
const dit_env_tensor *dit_env_find (const dit_envelope *env, const char *name);

#ifdef __cplusplus
}
#endif
#endif
