/* bench_breakdown — see bench_breakdown.h. */
#include "dit_build_config.h"
#include "bench_breakdown.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dit_clock.h"
#if DIT_HAVE_CUDA
#include <cuda_runtime.h>
#include "cuda/dit_cuda.h"
#endif

typedef struct bench_mark {
  int op;                     /* dit_op, or -1 for the closing mark */
  double host_ms;             /* CPU backend */
} bench_mark;

struct bench_breakdown {
  dit_backend *be;
  int cuda;
  int max_marks, n, overflow;
  bench_mark *marks;
#if DIT_HAVE_CUDA
  cudaEvent_t *events;
  cudaStream_t stream;
#endif
};

const char *
bench_op_name (int op)
{
  switch (op) {
    case DIT_OP_GEMM: return "gemm";
    case DIT_OP_LAYERNORM: return "layernorm";
    case DIT_OP_RMSNORM: return "rmsnorm";
    case DIT_OP_MODULATE: return "modulate";
    case DIT_OP_RESIDUAL: return "residual";
    case DIT_OP_ADD: return "add";
    case DIT_OP_UNARY: return "unary";
    case DIT_OP_COPY: return "copy";
    case DIT_OP_ROPE: return "rope";
    case DIT_OP_ATTENTION: return "attention";
    case DIT_OP_PATCHIFY: return "patchify";
    case DIT_OP_UNPATCHIFY: return "unpatchify";
    case DIT_OP_TIMESTEP: return "timestep";
    case DIT_OP_FLOW_STEP: return "flow_step";
    case DIT_OP_NOISE: return "noise";
    case DIT_OP_LAYERNORM_MODULATE: return "layernorm_modulate";
    case DIT_OP_QK_NORM_ROPE: return "qk_norm_rope";
    case DIT_OP_NOISE_FLOW: return "noise_flow";
    case DIT_OP_QUANTIZE_FP8: return "quantize_fp8";
    case DIT_OP_LAYERNORM_FP8: return "layernorm_fp8";
    case DIT_OP_GEMM_FP8: return "gemm_fp8";
    case DIT_OP_RMSNORM_SUMSQ: return "rmsnorm_sumsq";
    case DIT_OP_RMSNORM_APPLY: return "rmsnorm_apply";
    case DIT_OP_DEQUANTIZE_FP8: return "dequantize_fp8";
    default: return NULL;
  }
}

/* The scheduler's ops: they end a forward. */
static int
bd_is_scheduler (int op)
{
  return op == DIT_OP_NOISE || op == DIT_OP_NOISE_FLOW || op == DIT_OP_FLOW_STEP;
}

static void
bd_observe (void *user, dit_backend *be, dit_op op)
{
  bench_breakdown *b = user;
  (void) be;
  if (b->n >= b->max_marks - 1) {   /* keep one for the closing mark */
    b->overflow = 1;
    return;
  }
  bench_mark *m = &b->marks[b->n];
  m->op = (int) op;
#if DIT_HAVE_CUDA
  if (b->cuda) {
    cudaEventRecord (b->events[b->n], b->stream);
    b->n++;
    return;
  }
#endif
  m->host_ms = dit_now_ms ();
  b->n++;
}

dit_status
bench_breakdown_new (dit_backend *be, int max_marks, bench_breakdown **out)
{
  *out = NULL;
  bench_breakdown *b = calloc (1, sizeof *b);
  if (!b)
    return dit_error (DIT_ERR_NOMEM, "breakdown: out of memory");
  b->be = be;
  b->max_marks = max_marks;
  b->marks = calloc ((size_t) max_marks, sizeof *b->marks);
  if (!b->marks) {
    free (b);
    return dit_error (DIT_ERR_NOMEM, "breakdown: out of memory");
  }
#if DIT_HAVE_CUDA
  if (dit_backend_device (be) == DIT_DEVICE_CUDA) {
    b->cuda = 1;
    b->stream = (cudaStream_t) dit_backend_cuda_stream (be);
    b->events = calloc ((size_t) max_marks, sizeof *b->events);
    if (!b->events) {
      bench_breakdown_free (b);
      return dit_error (DIT_ERR_NOMEM, "breakdown: out of memory");
    }
    for (int i = 0; i < max_marks; i++)
      if (cudaEventCreate (&b->events[i]) != cudaSuccess) {
        b->events[i] = NULL;
        bench_breakdown_free (b);
        return dit_error (DIT_ERR_DEVICE, "breakdown: cannot create %d CUDA "
            "events", max_marks);
      }
  }
#endif
  *out = b;
  return DIT_OK;
}

void
bench_breakdown_free (bench_breakdown *b)
{
  if (!b)
    return;
  if (b->be && b->be->observer == bd_observe)
    dit_backend_set_observer (b->be, NULL, NULL);
#if DIT_HAVE_CUDA
  if (b->events)
    for (int i = 0; i < b->max_marks && b->events[i]; i++)
      cudaEventDestroy (b->events[i]);
  free (b->events);
#endif
  free (b->marks);
  free (b);
}

void
bench_breakdown_begin_chunk (bench_breakdown *b)
{
  b->n = 0;
  b->overflow = 0;
  dit_backend_set_observer (b->be, bd_observe, b);
}

static void
bd_add (bench_split *s, int op, double ms)
{
  s->total_ms += ms;
  if (op == DIT_OP_GEMM || op == DIT_OP_GEMM_FP8)
    s->gemm_ms += ms;
  else if (op == DIT_OP_ATTENTION)
    s->attention_ms += ms;
  else
    s->other_ms += ms;
  if (op >= 0 && op < BENCH_OPS) {
    s->op_ms[op] += ms;
    s->op_calls[op]++;
  }
}

dit_status
bench_breakdown_end_chunk (bench_breakdown *b, int expect_forwards,
    int first_kind_forwards, bench_split *first, bench_split *rest,
    bench_split *outside)
{
  dit_backend_set_observer (b->be, NULL, NULL);
  if (b->overflow)
    return dit_error (DIT_ERR_INVALID, "breakdown: a chunk dispatched more "
        "than %d ops", b->max_marks - 1);
  /* the closing mark */
  b->marks[b->n].op = -1;
#if DIT_HAVE_CUDA
  if (b->cuda) {
    if (cudaEventRecord (b->events[b->n], b->stream) != cudaSuccess
        || cudaEventSynchronize (b->events[b->n]) != cudaSuccess)
      return dit_error (DIT_ERR_DEVICE, "breakdown: closing event failed");
  } else
#endif
  {
    DIT_TRY (dit_synchronize (b->be));
    b->marks[b->n].host_ms = dit_now_ms ();
  }

  /* forward k: from its patchify to the next scheduler op or patchify */
  int forwards = 0;
  for (int i = 0; i < b->n; i++)
    forwards += b->marks[i].op == DIT_OP_PATCHIFY;
  if (forwards != expect_forwards)
    return dit_error (DIT_ERR_INVALID, "breakdown: the chunk ran %d forwards, "
        "expected %d", forwards, expect_forwards);
  int fwd = -1, in_forward = 0;
  for (int i = 0; i < b->n; i++) {
    const int op = b->marks[i].op;
    double ms;
#if DIT_HAVE_CUDA
    if (b->cuda) {
      float e = 0.0f;
      if (cudaEventElapsedTime (&e, b->events[i], b->events[i + 1]) != cudaSuccess)
        return dit_error (DIT_ERR_DEVICE, "breakdown: event timing failed");
      ms = e;
    } else
#endif
      ms = b->marks[i + 1].host_ms - b->marks[i].host_ms;
    if (op == DIT_OP_PATCHIFY) {
      fwd++;
      in_forward = 1;
      bench_split *s = fwd < first_kind_forwards ? first : rest;
      s->forwards++;
    } else if (bd_is_scheduler (op)) {
      in_forward = 0;
    }
    if (!in_forward)
      bd_add (outside, op, ms);
    else
      bd_add (fwd < first_kind_forwards ? first : rest, op, ms);
  }
  return DIT_OK;
}
