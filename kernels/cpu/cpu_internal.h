/* cpu_internal — helpers shared by the CPU reference ops (not installed).
 *
 * - Op entry points of the CPU op table (one per file under kernels/cpu/).
 * - dit_cpu_mat: a validated 2-D row-major view (kernels/dit_check.h: rows
 *   may be strided, the last dimension contiguous).
 * - Row conversion to and from f32 scratch: every op computes in f32 rows,
 *   whatever the storage dtype.
 * - A small persistent thread pool (dit_cpu_parallel) and per-thread scratch
 *   memory that grows once and is reused, so steady-state ops do not
 *   allocate.  A task's arithmetic never depends on which thread runs it or
 *   how work is split, so results are identical for any DIT_CPU_THREADS.
 */
#ifndef DIT_CPU_INTERNAL_H
#define DIT_CPU_INTERNAL_H

#include "dit_backend.h"
#include "dit_check.h"

#include <math.h>

/* ---- op entry points (the CPU op table) ---------------------------------- */

dit_status dit_cpu_gemm (dit_backend *be, const dit_gemm_params *p);
dit_status dit_cpu_layernorm (dit_backend *be, const dit_layernorm_params *p);
/* LayerNorm of one f32 row in place (+ affine when w != NULL), norm.c. */
void dit_cpu_layernorm_row (float *row, int64_t D, float eps, const float *w,
    const float *b);
dit_status dit_cpu_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p);
dit_status dit_cpu_modulate (dit_backend *be, const dit_modulate_params *p);
dit_status dit_cpu_residual (dit_backend *be, const dit_residual_params *p);
dit_status dit_cpu_add (dit_backend *be, const dit_add_params *p);
dit_status dit_cpu_unary (dit_backend *be, const dit_unary_params *p);
dit_status dit_cpu_copy (dit_backend *be, const dit_copy_params *p);
dit_status dit_cpu_rope (dit_backend *be, const dit_rope_params *p);
dit_status dit_cpu_attention (dit_backend *be, const dit_attn_params *p);
dit_status dit_cpu_patchify (dit_backend *be, const dit_patchify_params *p);
dit_status dit_cpu_unpatchify (dit_backend *be, const dit_unpatchify_params *p);
dit_status dit_cpu_timestep (dit_backend *be, const dit_timestep_params *p);
dit_status dit_cpu_flow_step (dit_backend *be, const dit_flow_step_params *p);
dit_status dit_cpu_noise (dit_backend *be, const dit_noise_params *p);
dit_status dit_cpu_quantize_fp8 (dit_backend *be, const dit_quantize_fp8_params *p);
dit_status dit_cpu_layernorm_fp8 (dit_backend *be, const dit_layernorm_fp8_params *p);
dit_status dit_cpu_gemm_fp8 (dit_backend *be, const dit_gemm_fp8_params *p);
dit_status dit_cpu_rmsnorm_sumsq (dit_backend *be,
    const dit_rmsnorm_sumsq_params *p);
dit_status dit_cpu_rmsnorm_apply (dit_backend *be,
    const dit_rmsnorm_apply_params *p);
dit_status dit_cpu_dequantize_fp8 (dit_backend *be,
    const dit_dequantize_fp8_params *p);

/* ---- validated views ------------------------------------------------------
 * The views and per-op checks of kernels/dit_check.h (shared with the CUDA
 * backend), on the CPU device. */

typedef dit_rows dit_cpu_mat;

static inline dit_status
dit_cpu_as_mat (const dit_tensor *t, const char *op, const char *name,
    dit_cpu_mat *m)
{
  return dit_check_rows (DIT_DEVICE_CPU, op, name, t, m);
}

static inline dit_status
dit_cpu_as_mat_shape (const dit_tensor *t, const char *op, const char *name,
    int64_t rows, int64_t cols, dit_cpu_mat *m)
{
  return dit_check_rows_shape (DIT_DEVICE_CPU, op, name, t, rows, cols, m);
}

static inline dit_status
dit_cpu_as_vec (const dit_tensor *t, const char *op, const char *name,
    int64_t n, dit_cpu_mat *m)
{
  return dit_check_vector (DIT_DEVICE_CPU, op, name, t, n, m);
}

static inline dit_status
dit_cpu_check_tensor (const dit_tensor *t, const char *op, const char *name)
{
  return dit_check_tensor (DIT_DEVICE_CPU, op, name, t);
}

static inline dit_status
dit_cpu_check_groups (const dit_tensor *t, const char *op, const char *name,
    int64_t rows, int64_t cols, int64_t rows_per_group, dit_cpu_mat *m)
{
  return dit_check_groups (DIT_DEVICE_CPU, op, name, t, rows, cols,
      rows_per_group, m);
}

/* An FP8 pair: dit_check_fp8_rows on the CPU device. */
static inline dit_status
dit_cpu_as_fp8 (const dit_tensor *q, const dit_tensor *scale, int64_t block,
    const char *op, const char *name, dit_cpu_mat *m, float **sc)
{
  return dit_check_fp8_rows (DIT_DEVICE_CPU, op, name, q, scale, block, m, sc);
}

/* Quantize one row of n f32 values in blocks of `block` (kernels/dit_fp8.h):
 * codes into q[0, n), the scale of block b into scale[b * scale_stride]. */
void dit_cpu_quantize_row (const float *v, int64_t n, int64_t block,
    uint8_t *q, float *scale, int64_t scale_stride);

static inline void *
dit_cpu_row (const dit_cpu_mat *m, int64_t r)
{
  return m->data + (size_t) (r * m->ld) * dit_dtype_size (m->dtype);
}

/* ---- row conversion ------------------------------------------------------- */

static inline void
dit_cpu_load_row (float *dst, const void *src, dit_dtype dt, int64_t n)
{
  if (dt == DIT_F32) {
    memcpy (dst, src, (size_t) n * sizeof (float));
  } else if (dt == DIT_BF16) {
    const uint16_t *s = (const uint16_t *) src;
    for (int64_t i = 0; i < n; i++)
      dst[i] = dit_bf16_to_f32 (s[i]);
  } else if (dt == DIT_F8E4M3) {
    const uint8_t *s = (const uint8_t *) src;
    for (int64_t i = 0; i < n; i++)
      dst[i] = dit_e4m3_to_f32 (s[i]);
  } else {
    const uint16_t *s = (const uint16_t *) src;
    for (int64_t i = 0; i < n; i++)
      dst[i] = dit_f16_to_f32 (s[i]);
  }
}

static inline void
dit_cpu_store_row (void *dst, dit_dtype dt, const float *src, int64_t n)
{
  if (dt == DIT_F32) {
    memmove (dst, src, (size_t) n * sizeof (float));
  } else if (dt == DIT_BF16) {
    uint16_t *d = (uint16_t *) dst;
    for (int64_t i = 0; i < n; i++)
      d[i] = dit_f32_to_bf16 (src[i]);
  } else if (dt == DIT_F8E4M3) {
    uint8_t *d = (uint8_t *) dst;
    for (int64_t i = 0; i < n; i++)
      d[i] = dit_f32_to_e4m3 (src[i]);
  } else {
    uint16_t *d = (uint16_t *) dst;
    for (int64_t i = 0; i < n; i++)
      d[i] = dit_f32_to_f16 (src[i]);
  }
}

/* ---- activations (f32, shared by gemm epilogue and unary) ---------------- */

static inline float
dit_cpu_gelu_tanh (float u)
{
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */
  return 0.5f * u * (1.0f + tanhf (k * (u + 0.044715f * u * u * u)));
}

static inline float
dit_cpu_silu (float u)
{
  return u / (1.0f + expf (-u));
}

static inline void
dit_cpu_act_row (float *v, int64_t n, dit_act act)
{
  if (act == DIT_ACT_GELU_TANH) {
    for (int64_t i = 0; i < n; i++)
      v[i] = dit_cpu_gelu_tanh (v[i]);
  } else if (act == DIT_ACT_SILU) {
    for (int64_t i = 0; i < n; i++)
      v[i] = dit_cpu_silu (v[i]);
  }
}

/* ---- threads and scratch -------------------------------------------------- */

/* Run fn(ctx, task) for task in [0, n_tasks) on the pool (the calling
 * thread takes part).  Falls back to the calling thread alone when the pool
 * has one thread, when n_tasks is 1, or when another thread is already using
 * the pool.  Each task must write disjoint outputs. */
typedef void (*dit_cpu_task_fn) (void *ctx, int64_t task);
void dit_cpu_parallel (int64_t n_tasks, dit_cpu_task_fn fn, void *ctx);

/* Threads used by dit_cpu_parallel (DIT_CPU_THREADS, default: online CPUs,
 * at most 8). */
int dit_cpu_num_threads (void);

/* This thread's scratch of at least `floats` floats, 64-byte aligned; grows
 * on demand and is kept until the thread exits.  NULL if it cannot grow. */
float *dit_cpu_scratch (size_t floats);

#endif
