/* bench_breakdown — where the time of a forward goes: GEMM, attention,
 * everything else ("other"), per op, from a mark before every op.
 *
 * The backend's op observer (dit_backend_set_observer) records a mark
 * before each dispatched op: a CUDA event on the backend's stream on a CUDA
 * backend, the host clock on the CPU (whose ops finish before they return).
 * The time from one mark to the next is the op's (on a GPU: its kernels
 * plus any idle gap before the next op starts, which in an eager forward is
 * the host's launch latency).  Forwards are segmented by their first op
 * (patchify); the scheduler's ops between forwards (noise, flow update,
 * latent copies before the first patchify) are counted apart.  Eager
 * forwards only: a recorded graph replays without passing through the
 * dispatchers.
 */
#ifndef BENCH_BREAKDOWN_H
#define BENCH_BREAKDOWN_H

#include "dit_backend.h"

#define BENCH_OPS 64

typedef struct bench_split {
  int forwards;               /* forwards summed */
  double total_ms, gemm_ms, attention_ms, other_ms;
  double op_ms[BENCH_OPS];    /* per dit_op, summed */
  int64_t op_calls[BENCH_OPS];
} bench_split;

typedef struct bench_breakdown bench_breakdown;

/* Up to `max_marks` marks per chunk (more: the chunk is refused). */
dit_status bench_breakdown_new (dit_backend *be, int max_marks,
    bench_breakdown **out);
void bench_breakdown_free (bench_breakdown *b);

/* Start observing the next chunk's ops; end_chunk closes it, waits for it
 * and adds its forwards: the first `first_kind_forwards` forwards of the
 * chunk to `first`, the rest to `rest` (a steady chunk: 1 recompute, then
 * the denoising forwards), the ops outside forwards to `outside`.  The
 * chunk must have exactly `expect_forwards` forwards. */
void bench_breakdown_begin_chunk (bench_breakdown *b);
dit_status bench_breakdown_end_chunk (bench_breakdown *b, int expect_forwards,
    int first_kind_forwards, bench_split *first, bench_split *rest,
    bench_split *outside);

/* "gemm", "attention", "layernorm_modulate", ...; NULL past the table. */
const char *bench_op_name (int op);

#endif
