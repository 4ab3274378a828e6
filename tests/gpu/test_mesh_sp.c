/* test_mesh_sp — sequence parallelism (Ulysses) and the hybrid layout on
 * CUDA ranks that share one GPU, against the single-rank CUDA generator.
 *
 *   test-mesh-sp [PRESET]      (PRESET: only that case, tiny-tp or wan-14b)
 *
 * Ranks are threads, each with its own CUDA backend (own stream) on GPU 0
 * and its own shard; NCCL takes one rank of a communicator per GPU, so the
 * collectives go through the CPU comm, staged through host memory (each
 * all-reduce or all-to-all downloads the rank's buffer, runs on the CPU
 * comm, uploads the result): CUDA compute, CPU world of collectives.  The
 * model's code path is the one a multi-GPU mesh runs; only the transport
 * differs.
 *
 * Checks (3-chunk rollouts, chunk k > 0 recomputes its cache from the
 * previous output with the kv-bias range; relative L2 = ||x - ref|| /
 * ||ref|| over the three chunks, ref = the TP 1 generator on the same GPU):
 *   tiny-tp f32 (4 heads), latent 4 x 8: SP 2, SP 4, SP 2 x TP 2   <= 1e-5
 *     f32 everywhere; SP only runs GEMMs and attention on fewer rows, the
 *     hybrid's TP sums are reordered;
 *   wan-14b 2-layer slice (D 5120, 40 heads, ffn 13824) bf16, latent
 *     16 x 16 (192 tokens a chunk): SP 2, SP 4, SP 2 x TP 2           <= 2e-2
 *     the limit of the TP tests (test_mesh_nccl.c): bf16 activations and
 *     GEMMs over other row counts round differently, and the hybrid's
 *     partial sums are rounded to bf16 before they are added;
 *   every rank returns the same bits;
 *   each layout once more with overlap off (dit_model_tp.overlap = 0: the
 *   plain order of the collectives; on is the default): on and off agree
 *   within the same limit (the overlapped order runs the TP row-parallel
 *   GEMMs on token halves and self-attention in two head halves, which
 *   cuBLAS and the attention kernels may round differently; with the
 *   staged, synchronous collectives nothing is in flight, so this checks
 *   the CUDA kernels on the overlapped order's views).
 * Every check prints one line with the measured value and its limit.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_comm.h"
#include "dit_generator.h"
#include "dit_tp.h"
#include "../common/cuda_skip.h"
#include "../common/test_random.h"

#define CHUNKS 3
#define MAX_RANKS 4

static int failures;
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct scase {
  const char *preset;
  int layers;                  /* 0 = the preset's */
  dit_dtype dtype;
  int latent_h, latent_w;
  double limit;
} scase;

/* The collectives of one rank, staged through host memory. */
typedef struct staged {
  dit_backend *be;
  dit_comm *tp, *sp;
  unsigned char *h0, *h1;
  size_t cap;
} staged;

static dit_status
staged_grow (staged *s, size_t bytes)
{
  if (bytes <= s->cap)
    return DIT_OK;
  free (s->h0);
  free (s->h1);
  s->h0 = malloc (bytes);
  s->h1 = malloc (bytes);
  s->cap = bytes;
  if (!s->h0 || !s->h1)
    return dit_error (DIT_ERR_NOMEM, "staging: out of memory");
  return DIT_OK;
}

static dit_status
staged_allreduce (void *user, void *data, int64_t count, dit_dtype dtype)
{
  staged *s = user;
  size_t bytes = (size_t) count * dit_dtype_size (dtype);
  DIT_TRY (staged_grow (s, bytes));
  DIT_TRY (dit_download (s->be, s->h0, data, bytes));
  DIT_TRY (dit_comm_allreduce_sum (s->tp, s->h0, count, dtype));
  return dit_upload (s->be, data, s->h0, bytes);
}

static dit_status
staged_alltoall (void *user, const void *send, void *recv, size_t block)
{
  staged *s = user;
  size_t bytes = block * (size_t) s->sp->size;
  DIT_TRY (staged_grow (s, bytes));
  DIT_TRY (dit_download (s->be, s->h0, send, bytes));
  DIT_TRY (dit_comm_alltoall (s->sp, s->h0, s->h1, block));
  return dit_upload (s->be, recv, s->h1, bytes);
}

typedef struct rank_run {
  const scase *c;
  int sp, tp;                  /* 0, 0: the single-rank reference */
  int overlap;                 /* dit_model_tp.overlap */
  dit_comm *comm;
  float *out;                  /* CHUNKS x latent, host f32 */
  dit_status st;
  char err[512];
} rank_run;

static void
fill_prompt (float *p, int64_t n)
{
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int64_t i = 0; i < n; i++)
    p[i] = (float) (lcg64_unit (&s) - 0.5);
}

static void *
rank_main (void *arg)
{
  rank_run *r = arg;
  const scase *c = r->c;
  dit_model_config mc;
  dit_gen_config g;
  dit_backend *be = NULL;
  dit_weights *w = NULL;
  dit_generator *gen = NULL;
  dit_mesh_groups groups = { 0 };
  dit_model_tp plan;
  staged stg = { 0 };
  float *prompt = NULL;
  dit_status st = dit_model_config_preset (c->preset, &mc);
  if (c->layers)
    mc.num_layers = c->layers;
  dit_gen_config_default (&g);
  g.latent_h = c->latent_h;
  g.latent_w = c->latent_w;
  g.seed = 7;
  g.dtype = c->dtype;
  const int64_t n = 16LL * 3 * g.latent_h * g.latent_w;

  /* backend, shard and generator one rank at a time */
  pthread_mutex_lock (&setup_lock);
  if (st == DIT_OK && !(be = dit_backend_create ("cuda", 0)))
    st = dit_error (DIT_ERR_DEVICE, "cuda:0: %s", dit_last_error ());
  if (st == DIT_OK && r->comm) {
    st = dit_mesh_groups_create (r->comm, r->sp, r->tp, &groups, &plan);
    stg.be = be;
    stg.tp = groups.tp_comm;
    stg.sp = groups.sp_comm;
    if (plan.allreduce) {
      plan.allreduce = staged_allreduce;
      plan.user = &stg;
    }
    if (plan.alltoall) {
      plan.alltoall = staged_alltoall;
      plan.sp_user = &stg;
    }
    /* the staged collectives complete when they return: the overlapped
     * order runs them where it would start them, with nothing to wait for */
    plan.allreduce_start = NULL;
    plan.alltoall_start = NULL;
    plan.wait = NULL;
    plan.overlap = r->overlap;
    plan.stream_ordered = 0;
  }
  if (st == DIT_OK)
    st = dit_tp_weights_synthetic (&mc, r->comm ? r->tp : 1,
        r->comm ? groups.tp_rank : 0, 11, c->dtype, be, &w);
  if (st == DIT_OK)
    st = dit_generator_create_tp (&mc, &g, w, be, r->comm ? &plan : NULL, &gen);
  pthread_mutex_unlock (&setup_lock);

  if (st == DIT_OK && !(prompt = malloc ((size_t) (7 * mc.text_dim) * sizeof (float))))
    st = dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
  if (st == DIT_OK) {
    fill_prompt (prompt, 7 * mc.text_dim);
    dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 7, mc.text_dim);
    st = dit_generator_set_prompt (gen, &pt);
  }
  int64_t shape[4] = { 16, 3, g.latent_h, g.latent_w };
  /* host latents: the generator uploads the context, downloads x0 */
  for (int k = 0; k < CHUNKS && st == DIT_OK; k++) {
    dit_tensor out = dit_tensor_make (r->out + k * n, DIT_F32, DIT_DEVICE_CPU,
        4, shape);
    dit_tensor ctx;
    dit_chunk_request req = { .chunk_index = k };
    if (k > 0) {
      ctx = dit_tensor_make (r->out + (k - 1) * n, DIT_F32, DIT_DEVICE_CPU, 4,
          shape);
      req.context = &ctx;
    }
    st = dit_generator_run_chunk (gen, &req, &out, NULL);
  }
  r->st = st;
  if (st != DIT_OK)
    snprintf (r->err, sizeof r->err, "%s", dit_last_error ());
  free (prompt);
  free (stg.h0);
  free (stg.h1);
  dit_generator_free (gen);
  dit_weights_free (w);
  dit_mesh_groups_free (&groups);
  if (be)
    dit_backend_destroy (be);
  return NULL;
}

static double
rel_l2 (const float *x, const float *ref, int64_t n, double *maxref)
{
  double d2 = 0, r2 = 0;
  *maxref = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double) x[i] - ref[i];
    d2 += d * d;
    r2 += (double) ref[i] * ref[i];
    *maxref = fmax (*maxref, fabs (ref[i]));
  }
  return sqrt (d2 / (r2 > 0 ? r2 : 1));
}

/* One layout against the reference; rank 0's output is copied to `keep`
 * (n floats) when the run succeeded.  1 on success. */
static int
run_case (const scase *c, const float *ref, int sp, int tp, int overlap,
    float *keep)
{
  const int ranks = sp * tp;
  const int64_t n = 16LL * 3 * c->latent_h * c->latent_w * CHUNKS;
  dit_comm *comms[MAX_RANKS];
  rank_run rr[MAX_RANKS];
  pthread_t th[MAX_RANKS];
  char name[64];
  snprintf (name, sizeof name, "%s%s %s, SP %d x TP %d, overlap %s",
      c->preset, c->layers ? " slice" : "", dit_dtype_name (c->dtype), sp, tp,
      overlap ? "on" : "off");
  if (dit_comm_cpu_create_local (ranks, 120000, comms) != DIT_OK) {
    printf ("FAIL %s: local comm: %s\n", name, dit_last_error ());
    failures++;
    return 0;
  }
  for (int i = 0; i < ranks; i++) {
    rr[i] = (rank_run) { .c = c, .sp = sp, .tp = tp, .overlap = overlap,
      .comm = comms[i], .out = calloc ((size_t) n, sizeof (float)) };
    pthread_create (&th[i], NULL, rank_main, &rr[i]);
  }
  for (int i = 0; i < ranks; i++)
    pthread_join (th[i], NULL);
  int ok = 1;
  for (int i = 0; i < ranks; i++) {
    if (rr[i].st != DIT_OK) {
      printf ("FAIL %s rank %d: %s\n", name, i, rr[i].err);
      ok = 0;
    } else if (memcmp (rr[i].out, rr[0].out, (size_t) n * sizeof (float)) != 0) {
      printf ("FAIL %s: rank %d returned other bits than rank 0\n", name, i);
      ok = 0;
    }
  }
  if (ok) {
    double maxref;
    double rel = rel_l2 (rr[0].out, ref, n, &maxref);
    ok = maxref > 0.1 && rel <= c->limit;
    printf ("%s %s vs TP 1 on one GPU, %d chunks: rel L2 %.3g (limit %.0e), "
        "max |ref| %.3g\n", ok ? "ok  " : "FAIL", name, CHUNKS, rel, c->limit,
        maxref);
  }
  failures += !ok;
  if (ok)
    memcpy (keep, rr[0].out, (size_t) n * sizeof (float));
  for (int i = 0; i < ranks; i++) {
    free (rr[i].out);
    dit_comm_destroy (comms[i]);
  }
  return ok;
}

/* A layout with overlap on and off: each against TP 1, and on against
 * off. */
static void
run_layout (const scase *c, const float *ref, int sp, int tp)
{
  const int64_t n = 16LL * 3 * c->latent_h * c->latent_w * CHUNKS;
  float *on = calloc ((size_t) n, sizeof (float));
  float *off = calloc ((size_t) n, sizeof (float));
  if (on && off && run_case (c, ref, sp, tp, 1, on)
      && run_case (c, ref, sp, tp, 0, off)) {
    double maxref;
    double rel = rel_l2 (on, off, n, &maxref);
    int ok = maxref > 0.1 && rel <= c->limit;
    printf ("%s %s%s %s, SP %d x TP %d: overlap on vs off, rel L2 %.3g "
        "(limit %.0e)\n", ok ? "ok  " : "FAIL", c->preset,
        c->layers ? " slice" : "", dit_dtype_name (c->dtype), sp, tp, rel,
        c->limit);
    failures += !ok;
  }
  free (on);
  free (off);
}

static void
model_case (const scase *c)
{
  const int64_t n = 16LL * 3 * c->latent_h * c->latent_w * CHUNKS;
  rank_run ref = { .c = c, .out = calloc ((size_t) n, sizeof (float)) };
  rank_main (&ref);
  if (ref.st != DIT_OK) {
    printf ("FAIL %s reference: %s\n", c->preset, ref.err);
    failures++;
  } else {
    run_layout (c, ref.out, 2, 1);
    run_layout (c, ref.out, 4, 1);
    run_layout (c, ref.out, 2, 2);
  }
  free (ref.out);
}

int
main (int argc, char **argv)
{
  const char *only = argc > 1 ? argv[1] : NULL;
  /* each rank opens its own backend: this only asks for a device */
  dit_backend_destroy (cuda_backend_or_skip ());
  const scase cases[] = {
    { "tiny-tp", 0, DIT_F32, 4, 8, 1e-5 },
    { "wan-14b", 2, DIT_BF16, 16, 16, 2e-2 },
  };
  int ran = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (!only || strcmp (only, cases[i].preset) == 0) {
      model_case (&cases[i]);
      ran++;
    }
  if (!ran) {
    printf ("FAIL: no case for preset '%s' (tiny-tp or wan-14b)\n", only);
    return 1;
  }
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
