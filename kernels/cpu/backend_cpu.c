/* backend_cpu — the CPU reference backend: host memory, the op table, a
 * persistent thread pool and per-thread scratch.
 *
 * Memory is plain 64-byte aligned host memory, so upload/download are
 * memcpy and synchronize has nothing to wait for.  Every op runs to
 * completion before it returns.
 *
 * The pool is process-wide (all CPU backend instances share it) and is
 * started on the first parallel op.  Its size comes from DIT_CPU_THREADS
 * (default: online CPUs, at most 8).  Only one op uses the pool at a time;
 * a second thread calling an op meanwhile (a CPU mesh of worker threads)
 * runs its op on its own thread instead of waiting.  Work is split into
 * tasks whose results do not depend on which thread runs them, so any
 * thread count gives bit-identical outputs.
 */
#include "cpu_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * per-thread scratch */

typedef struct dit_cpu_scratch_buf {
  float *data;
  size_t floats;
} dit_cpu_scratch_buf;

static pthread_key_t dit_cpu_scratch_key;
static pthread_once_t dit_cpu_scratch_once = PTHREAD_ONCE_INIT;

static void
dit_cpu_scratch_destroy (void *p)
{
  dit_cpu_scratch_buf *b = p;
  if (b) {
    free (b->data);
    free (b);
  }
}

static void
dit_cpu_scratch_init (void)
{
  pthread_key_create (&dit_cpu_scratch_key, dit_cpu_scratch_destroy);
}

float *
dit_cpu_scratch (size_t floats)
{
  pthread_once (&dit_cpu_scratch_once, dit_cpu_scratch_init);
  dit_cpu_scratch_buf *b = pthread_getspecific (dit_cpu_scratch_key);
  if (!b) {
    b = calloc (1, sizeof *b);
    if (!b)
      return NULL;
    if (pthread_setspecific (dit_cpu_scratch_key, b) != 0) {
      free (b);
      return NULL;
    }
  }
  if (b->floats < floats) {
    /* Grow with headroom so a sequence of slightly larger ops settles fast. */
    size_t want = floats + floats / 4 + 1024;
    void *p = NULL;
    if (posix_memalign (&p, 64, want * sizeof (float)) != 0)
      return NULL;
    free (b->data);
    b->data = p;
    b->floats = want;
  }
  return b->data;
}

/* ---------------------------------------------------------------------------
 * thread pool */

#define DIT_CPU_MAX_THREADS 8

typedef struct dit_cpu_pool {
  int nthreads;                 /* including the calling thread */
  pthread_t threads[DIT_CPU_MAX_THREADS];
  pthread_mutex_t busy;         /* held by the op using the pool */
  pthread_mutex_t lock;         /* protects the job fields below */
  pthread_cond_t work_cv;
  pthread_cond_t done_cv;
  uint64_t generation;
  int running;                  /* workers still inside the current job */
  dit_cpu_task_fn fn;
  void *ctx;
  int64_t n_tasks;
  atomic_llong next_task;
} dit_cpu_pool;

static dit_cpu_pool dit_cpu_pool_g = {
  .busy = PTHREAD_MUTEX_INITIALIZER,
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .work_cv = PTHREAD_COND_INITIALIZER,
  .done_cv = PTHREAD_COND_INITIALIZER,
};
static pthread_once_t dit_cpu_pool_once = PTHREAD_ONCE_INIT;

static void
dit_cpu_pool_drain (dit_cpu_pool *pool)
{
  for (;;) {
    int64_t t = atomic_fetch_add (&pool->next_task, 1);
    if (t >= pool->n_tasks)
      break;
    pool->fn (pool->ctx, t);
  }
}

static void *
dit_cpu_pool_worker (void *arg)
{
  dit_cpu_pool *pool = arg;
  uint64_t seen = 0;
  pthread_mutex_lock (&pool->lock);
  for (;;) {
    while (pool->generation == seen)
      pthread_cond_wait (&pool->work_cv, &pool->lock);
    seen = pool->generation;
    pthread_mutex_unlock (&pool->lock);
    dit_cpu_pool_drain (pool);
    pthread_mutex_lock (&pool->lock);
    if (--pool->running == 0)
      pthread_cond_signal (&pool->done_cv);
  }
  return NULL;
}

static int
dit_cpu_threads_from_env (void)
{
  const char *env = getenv ("DIT_CPU_THREADS");
  long n = 0;
  if (env && *env) {
    char *end;
    errno = 0;
    n = strtol (env, &end, 10);
    if (errno || *end || n < 1)
      n = 0;
  }
  if (n == 0) {
    n = sysconf (_SC_NPROCESSORS_ONLN);
    if (n < 1)
      n = 1;
  }
  if (n > DIT_CPU_MAX_THREADS)
    n = DIT_CPU_MAX_THREADS;
  return (int) n;
}

static void
dit_cpu_pool_start (void)
{
  dit_cpu_pool *pool = &dit_cpu_pool_g;
  int want = dit_cpu_threads_from_env ();
  pool->nthreads = 1;
  for (int i = 1; i < want; i++) {
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    /* Workers live for the whole process; detach so nobody has to join. */
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create (&pool->threads[i], &attr, dit_cpu_pool_worker, pool);
    pthread_attr_destroy (&attr);
    if (rc != 0)
      break;
    pool->nthreads++;
  }
}

int
dit_cpu_num_threads (void)
{
  pthread_once (&dit_cpu_pool_once, dit_cpu_pool_start);
  return dit_cpu_pool_g.nthreads;
}

void
dit_cpu_parallel (int64_t n_tasks, dit_cpu_task_fn fn, void *ctx)
{
  dit_cpu_pool *pool = &dit_cpu_pool_g;
  if (n_tasks <= 0)
    return;
  if (n_tasks == 1 || dit_cpu_num_threads () == 1
      || pthread_mutex_trylock (&pool->busy) != 0) {
    for (int64_t t = 0; t < n_tasks; t++)
      fn (ctx, t);
    return;
  }
  pthread_mutex_lock (&pool->lock);
  pool->fn = fn;
  pool->ctx = ctx;
  pool->n_tasks = n_tasks;
  atomic_store (&pool->next_task, 0);
  pool->running = pool->nthreads - 1;
  pool->generation++;
  pthread_cond_broadcast (&pool->work_cv);
  pthread_mutex_unlock (&pool->lock);

  dit_cpu_pool_drain (pool);

  pthread_mutex_lock (&pool->lock);
  while (pool->running > 0)
    pthread_cond_wait (&pool->done_cv, &pool->lock);
  pool->fn = NULL;
  pool->ctx = NULL;
  pthread_mutex_unlock (&pool->lock);
  pthread_mutex_unlock (&pool->busy);
}

/* ---------------------------------------------------------------------------
 * backend vtable */

static void *
dit_cpu_alloc (dit_backend *be, size_t bytes)
{
  void *p = NULL;
  /* Round up so vectorised loops may read whole cache lines at the tail. */
  size_t sz = (bytes + 63) & ~(size_t) 63;
  if (sz == 0)
    sz = 64;
  if (posix_memalign (&p, 64, sz) != 0)
    return NULL;
  return p;
}

static void
dit_cpu_free (dit_backend *be, void *ptr)
{
  free (ptr);
}

static dit_status
dit_cpu_upload (dit_backend *be, void *dst, const void *host, size_t bytes)
{
  if (bytes && (!dst || !host))
    return dit_error (DIT_ERR_INVALID, "cpu upload: NULL pointer");
  if (bytes)
    memcpy (dst, host, bytes);
  return DIT_OK;
}

static dit_status
dit_cpu_download (dit_backend *be, void *host, const void *src, size_t bytes)
{
  if (bytes && (!src || !host))
    return dit_error (DIT_ERR_INVALID, "cpu download: NULL pointer");
  if (bytes)
    memcpy (host, src, bytes);
  return DIT_OK;
}

static dit_status
dit_cpu_memset_zero (dit_backend *be, void *dst, size_t bytes)
{
  if (bytes && !dst)
    return dit_error (DIT_ERR_INVALID, "cpu memset: NULL pointer");
  if (bytes)
    memset (dst, 0, bytes);
  return DIT_OK;
}

static dit_status
dit_cpu_synchronize (dit_backend *be)
{
  /* Every CPU op has finished when it returns. */
  return DIT_OK;
}

static void
dit_cpu_destroy (dit_backend *be)
{
  free (be);
}

static int
dit_cpu_supports (dit_backend *be, dit_op op, dit_dtype dtype)
{
  if (op == DIT_OP_QUANTIZE_FP8 || op == DIT_OP_LAYERNORM_FP8
      || op == DIT_OP_GEMM_FP8 || op == DIT_OP_ATTENTION_FP8
      || op == DIT_OP_DEQUANTIZE_FP8)
    return dtype == DIT_F8E4M3;
  if (dtype != DIT_F32 && dtype != DIT_BF16 && dtype != DIT_F16)
    return 0;
  /* no fused ops: callers run their unfused chains here */
  return ((int) op >= 0 && op < DIT_OP_COUNT_DIT)
      || op == DIT_OP_RMSNORM_SUMSQ || op == DIT_OP_RMSNORM_APPLY;
}

static const dit_backend_ops dit_cpu_ops = {
  .name = "cpu",
  .device = DIT_DEVICE_CPU,
  .alloc = dit_cpu_alloc,
  .free = dit_cpu_free,
  .upload = dit_cpu_upload,
  .download = dit_cpu_download,
  .memset_zero = dit_cpu_memset_zero,
  .synchronize = dit_cpu_synchronize,
  .destroy = dit_cpu_destroy,
  .supports = dit_cpu_supports,
  .gemm = dit_cpu_gemm,
  .layernorm = dit_cpu_layernorm,
  .rmsnorm = dit_cpu_rmsnorm,
  .modulate = dit_cpu_modulate,
  .residual = dit_cpu_residual,
  .add = dit_cpu_add,
  .unary = dit_cpu_unary,
  .copy = dit_cpu_copy,
  .rope = dit_cpu_rope,
  .attention = dit_cpu_attention,
  .patchify = dit_cpu_patchify,
  .unpatchify = dit_cpu_unpatchify,
  .timestep = dit_cpu_timestep,
  .flow_step = dit_cpu_flow_step,
  .noise = dit_cpu_noise,
  /* The CPU VAE op table (kernels/cpu/vae_misc.c). */
  .vae = &dit_cpu_vae_ops,
  .quantize_fp8 = dit_cpu_quantize_fp8,
  .layernorm_fp8 = dit_cpu_layernorm_fp8,
  .gemm_fp8 = dit_cpu_gemm_fp8,
  .rmsnorm_sumsq = dit_cpu_rmsnorm_sumsq,
  .rmsnorm_apply = dit_cpu_rmsnorm_apply,
  .dequantize_fp8 = dit_cpu_dequantize_fp8,
};

dit_backend *
dit_backend_cpu_create (void)
{
  dit_backend *be = calloc (1, sizeof *be);
  if (!be) {
    dit_error (DIT_ERR_NOMEM, "cpu backend: out of memory");
    return NULL;
  }
  be->ops = &dit_cpu_ops;
  be->impl = NULL;
  be->device_index = 0;
  return be;
}
