/* dit_generator — chunk loop of the streaming causal DiT (see
 * dit_generator.h for the algorithm).
 *
 * KV cache layout (rows of fs tokens per latent frame, per layer):
 *   [0, C*fs)            context frames, rewritten by every recompute
 *   [C*fs, C*fs + L)     the chunk being denoised, rewritten by every step
 * Chunk 0 has no context and uses rows [0, L).  Because every chunk starts
 * with a full recompute, nothing has to be rolled or evicted, and RoPE
 * positions stay bounded (0..C+F-1) however long the stream runs.
 */
#include "dit_generator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dit_model.h"
#include "dit_scheduler.h"
#include "dit_clock.h"

struct dit_generator {
  dit_model_config model_cfg;
  dit_gen_config cfg;
  dit_backend *be;
  dit_model *model;
  dit_schedule sched;            /* timestep fed and σ of every step */
  int64_t fs;
  int have_prompt;

  dit_tensor x;        /* [16, F, H, W] current sample */
  dit_tensor v;        /* [16, F, H, W] velocity */
  dit_tensor noise;    /* [16, F, H, W] */
  dit_tensor ctx;      /* [16, C, H, W] context latents */

  /* Recorded forwards (backends with graph_* entries; tensor parallelism
   * only with a stream-ordered all-reduce); see forward_recorded. */
  int use_graphs;
  int no_fused;
  struct dit_gen_graph *graphs;
  int graph_count;
};

/* Everything a recorded forward bakes in besides the generator's fixed
 * buffers: the scalars travel inside the recorded kernel parameters. */
typedef struct dit_gen_graph_key {
  const void *x;
  const void *v_out;
  int64_t frames, cache_row, causal_block, bias_begin, bias_end;
  int64_t frame_offset;
  float log_bias;
  double t[64];
} dit_gen_graph_key;

typedef struct dit_gen_graph {
  dit_gen_graph_key key;
  dit_graph *graph;   /* NULL: seen once (ran eagerly), not yet recorded */
} dit_gen_graph;

#define DIT_GEN_GRAPHS 16

void
dit_gen_config_default (dit_gen_config *cfg)
{
  static const double steps[] = { 1000, 750, 500, 250 };
  memset (cfg, 0, sizeof *cfg);
  cfg->latent_h = 40;
  cfg->latent_w = 72;
  cfg->frames_per_chunk = 3;
  cfg->context_frames = 3;
  cfg->kv_window = 6;
  cfg->kv_bias = 0.3f;
  cfg->num_steps = 4;
  memcpy (cfg->steps, steps, sizeof steps);
  cfg->shift = 5.0;
  cfg->warp_steps = 0;
  cfg->seed = 42;
  cfg->dtype = DIT_F32;
}

dit_status
dit_gen_config_validate (const dit_gen_config *c, const dit_model_config *m)
{
  if (c->latent_h <= 0 || c->latent_w <= 0 || c->latent_h % 2 || c->latent_w % 2)
    return dit_error (DIT_ERR_INVALID,
        "latent size %dx%d (HxW) must be positive and even (pixel size a multiple of 16)",
        c->latent_h, c->latent_w);
  if (c->frames_per_chunk < 1 || c->frames_per_chunk > 64)
    return dit_error (DIT_ERR_INVALID, "frames per chunk %d must be in 1..64",
        c->frames_per_chunk);
  if (c->context_frames < 1 || c->context_frames > 64)
    return dit_error (DIT_ERR_INVALID, "context frames %d must be in 1..64",
        c->context_frames);
  if (c->kv_window != c->context_frames + c->frames_per_chunk)
    return dit_error (DIT_ERR_INVALID,
        "kv-window %d must equal context frames + frames per chunk (%d + %d): "
        "the cache holds the recomputed context and the chunk being denoised",
        c->kv_window, c->context_frames, c->frames_per_chunk);
  if (c->context_frames + c->frames_per_chunk > DIT_ROPE_POSITIONS)
    return dit_error (DIT_ERR_INVALID, "window exceeds %d RoPE positions",
        DIT_ROPE_POSITIONS);
  if (!(c->kv_bias > 0.0f) || c->kv_bias > 1.0f)
    return dit_error (DIT_ERR_INVALID, "kv-bias %g must be in (0, 1] (1 = off)",
        (double) c->kv_bias);
  if (c->num_steps < 1 || c->num_steps > DIT_MAX_STEPS)
    return dit_error (DIT_ERR_INVALID, "%d denoising steps; 1..%d are allowed",
        c->num_steps, DIT_MAX_STEPS);
  for (int i = 0; i < c->num_steps; i++) {
    if (!(c->steps[i] >= 0.0 && c->steps[i] <= 1000.0))
      return dit_error (DIT_ERR_INVALID, "step %d is %g; steps must be in [0, 1000]",
          i, c->steps[i]);
    if (i > 0 && !(c->steps[i] < c->steps[i - 1]))
      return dit_error (DIT_ERR_INVALID,
          "steps must be strictly decreasing (step %d: %g after %g)", i,
          c->steps[i], c->steps[i - 1]);
  }
  if (!(c->shift > 0.0))
    return dit_error (DIT_ERR_INVALID, "shift %g must be > 0", c->shift);
  if (c->dtype != DIT_F32 && c->dtype != DIT_BF16)
    return dit_error (DIT_ERR_INVALID, "compute dtype must be f32 or bf16");
  (void) m;
  return DIT_OK;
}

dit_status
dit_gen_config_parse_steps (dit_gen_config *c, const char *str)
{
  const char *p = str;
  int n = 0;
  while (*p) {
    char *end;
    while (*p == ' ')
      p++;
    double v = strtod (p, &end);
    while (*end == ' ')
      end++;
    if (end == p || (*end && *end != ',') || !(v >= 0 && v <= 1000)
        || n == DIT_MAX_STEPS)
      return dit_error (DIT_ERR_INVALID, "steps '%s': expected up to %d "
          "comma-separated timesteps in [0, 1000]", str, DIT_MAX_STEPS);
    c->steps[n++] = v;
    p = *end ? end + 1 : end;
    if (*end && !*p)
      return dit_error (DIT_ERR_INVALID, "steps '%s' ends with a comma", str);
  }
  if (n == 0)
    return dit_error (DIT_ERR_INVALID, "steps '%s' is empty", str);
  c->num_steps = n;
  return DIT_OK;
}

static dit_status
alloc_latent (dit_generator *g, dit_tensor *t, int frames)
{
  int64_t shape[4] = { g->model_cfg.in_dim, frames, g->cfg.latent_h,
    g->cfg.latent_w };
  /* Samples stay f32 whatever the compute dtype: the flow update is f64. */
  return dit_tensor_alloc (g->be, t, DIT_F32, 4, shape);
}

dit_status
dit_generator_create (const dit_model_config *model, const dit_gen_config *cfg,
    const dit_weights *weights, dit_backend *be, dit_generator **out)
{
  return dit_generator_create_tp (model, cfg, weights, be, NULL, out);
}

dit_status
dit_generator_create_tp (const dit_model_config *model,
    const dit_gen_config *cfg, const dit_weights *weights, dit_backend *be,
    const dit_model_tp *tp, dit_generator **out)
{
  *out = NULL;
  DIT_TRY (dit_gen_config_validate (cfg, model));
  if (weights->dtype != cfg->dtype)
    return dit_error (DIT_ERR_INVALID,
        "weights are %s but the generator computes in %s",
        dit_dtype_name (weights->dtype), dit_dtype_name (cfg->dtype));
  if ((weights->fp8_count > 0) != (cfg->fp8 != 0))
    return dit_error (DIT_ERR_INVALID, "the weights have %zu FP8 linear layers "
        "but the generator runs in %s (load the weights with the same dtype)",
        weights->fp8_count, cfg->fp8 ? "fp8" : dit_dtype_name (cfg->dtype));

  if (tp && tp->sp_degree > 1) {
    /* every forward (the chunk's denoising steps, the context recompute)
     * splits its tokens evenly over the sequence-parallel ranks */
    const int64_t fs = (int64_t) (cfg->latent_h / 2) * (cfg->latent_w / 2);
    const int64_t tokens[2] = { cfg->frames_per_chunk * fs,
      cfg->context_frames * fs };
    DIT_TRY (dit_model_sp_check (model, tp->sp_degree, tp->degree > 0
        ? tp->degree : 1, tokens, 2));
  }

  dit_generator *g = calloc (1, sizeof *g);
  if (!g)
    return dit_error (DIT_ERR_NOMEM, "generator: out of memory");
  g->model_cfg = *model;
  g->cfg = *cfg;
  g->be = be;
  g->fs = (int64_t) (cfg->latent_h / 2) * (cfg->latent_w / 2);

  dit_status st = dit_schedule_make (cfg, &g->sched);
  int max_frames = cfg->frames_per_chunk > cfg->context_frames
      ? cfg->frames_per_chunk : cfg->context_frames;
  if (st == DIT_OK)
    st = dit_model_create_tp (model, weights, be, cfg->dtype, cfg->latent_h / 2,
        cfg->latent_w / 2, max_frames, (int64_t) cfg->kv_window * g->fs, tp,
        &g->model);
  if (st == DIT_OK)
    st = alloc_latent (g, &g->x, cfg->frames_per_chunk);
  if (st == DIT_OK)
    st = alloc_latent (g, &g->v, cfg->frames_per_chunk);
  if (st == DIT_OK)
    st = alloc_latent (g, &g->noise, cfg->frames_per_chunk);
  if (st == DIT_OK)
    st = alloc_latent (g, &g->ctx, cfg->context_frames);
  if (st == DIT_OK && dit_backend_has_graphs (be)
      && (!tp || (tp->degree <= 1 && tp->sp_degree <= 1)
          || tp->stream_ordered)) {
    /* off until dit_generator_set_graphs: see dit_generator.h */
    g->graphs = calloc (DIT_GEN_GRAPHS, sizeof *g->graphs);
  }
  if (st != DIT_OK) {
    dit_generator_free (g);
    return st;
  }
  *out = g;
  return DIT_OK;
}

void
dit_generator_free (dit_generator *g)
{
  if (!g)
    return;
  dit_generator_set_graphs (g, 0);
  free (g->graphs);
  dit_model_free (g->model);
  dit_tensor_free (g->be, &g->x);
  dit_tensor_free (g->be, &g->v);
  dit_tensor_free (g->be, &g->noise);
  dit_tensor_free (g->be, &g->ctx);
  free (g);
}

dit_status
dit_generator_set_prompt (dit_generator *g, const dit_tensor *embeds)
{
  g->have_prompt = 0;
  DIT_TRY (dit_model_set_context (g->model, embeds));
  g->have_prompt = 1;
  return DIT_OK;
}

void
dit_generator_reset (dit_generator *g)
{
  /* Every chunk > 0 rebuilds the cache from its context, so the only
   * stream state is what the caller passes in; nothing to drop here. */
  (void) g;
}

double
dit_generator_sigma (const dit_generator *g, int step)
{
  return g->sched.sigma[step];
}

const dit_gen_config *
dit_generator_config (const dit_generator *g)
{
  return &g->cfg;
}

const dit_schedule *
dit_generator_schedule (const dit_generator *g)
{
  return &g->sched;
}

uint64_t
dit_generator_noise_stream (int64_t chunk_index, int step)
{
  return ((uint64_t) chunk_index << 8) | (uint64_t) (step & 0xff);
}

void
dit_generator_set_graphs (dit_generator *g, int enable)
{
  for (int i = 0; i < g->graph_count; i++)
    if (g->graphs[i].graph)
      dit_graph_free (g->be, g->graphs[i].graph);
  g->graph_count = 0;
  g->use_graphs = enable && g->graphs != NULL;
}

dit_status
dit_generator_set_lora (dit_generator *g, const struct dit_lora_state *s)
{
  /* recordings hold the previous side paths' pointers and shapes */
  dit_generator_set_graphs (g, g->use_graphs);
  return dit_model_set_lora (g->model, s);
}

void
dit_generator_set_gemm_fold (dit_generator *g, int enable)
{
  dit_model_set_gemm_fold (g->model, enable);
}

void
dit_generator_set_fused (dit_generator *g, int enable)
{
  g->no_fused = !enable;
  dit_model_set_fused (g->model, enable);
}

/* dit_model_forward, recorded: the first forward with a given key runs
 * eagerly (it also builds the per-shape GEMM plans), the second is recorded
 * and replayed, later ones are replayed.  Replay runs the same kernels on
 * the same buffers with the same scalars, so its results are the eager
 * ones bit for bit (tests/gpu/test_cuda_graph.c). */
static dit_status
forward_recorded (dit_generator *g, const dit_forward_args *a)
{
  const int64_t frames = a->x->shape[1];
  if (!g->use_graphs || frames > 64)
    return dit_model_forward (g->model, a);
  dit_gen_graph_key key;
  memset (&key, 0, sizeof key);
  key.x = a->x->data;
  key.v_out = a->v_out ? a->v_out->data : NULL;
  key.frames = frames;
  key.cache_row = a->cache_row;
  key.causal_block = a->causal_block;
  key.bias_begin = a->bias_begin;
  key.bias_end = a->bias_end;
  key.frame_offset = a->frame_offset;
  key.log_bias = a->log_bias;
  for (int64_t f = 0; f < frames; f++)
    key.t[f] = a->t[f];
  dit_gen_graph *e = NULL;
  for (int i = 0; i < g->graph_count && !e; i++)
    if (memcmp (&g->graphs[i].key, &key, sizeof key) == 0)
      e = &g->graphs[i];
  if (!e) {
    if (g->graph_count < DIT_GEN_GRAPHS) {
      e = &g->graphs[g->graph_count++];
      e->key = key;
      e->graph = NULL;
    }
    return dit_model_forward (g->model, a);
  }
  if (e->graph)
    return dit_graph_launch (g->be, e->graph);
  DIT_TRY (dit_graph_begin (g->be));
  dit_status st = dit_model_forward (g->model, a);
  if (st != DIT_OK) {
    dit_graph_end (g->be, NULL);
    return st;
  }
  st = dit_graph_end (g->be, &e->graph);
  if (st != DIT_OK) {
    /* Nothing ran: the forward was only being recorded.  Fall back to
     * eager forwards for the rest of this generator's life. */
    dit_generator_set_graphs (g, 0);
    return dit_model_forward (g->model, a);
  }
  return dit_graph_launch (g->be, e->graph);
}

/* Copy a caller latent (any device/dtype, contiguous) into a generator
 * buffer of the same shape. */
static dit_status
load_latent (dit_generator *g, const dit_tensor *src, dit_tensor *dst,
    const char *what)
{
  for (int d = 0; d < 4; d++) {
    if (src->ndim != 4 || src->shape[d] != dst->shape[d])
      return dit_error (DIT_ERR_INVALID,
          "%s must be [%lld, %lld, %lld, %lld]", what,
          (long long) dst->shape[0], (long long) dst->shape[1],
          (long long) dst->shape[2], (long long) dst->shape[3]);
  }
  if (!dit_tensor_is_contiguous (src))
    return dit_error (DIT_ERR_INVALID, "%s must be contiguous", what);
  size_t n = (size_t) dit_tensor_numel (src);
  if (src->device == dit_backend_device (g->be)) {
    dit_tensor s2 = dit_tensor_2d (src->data, src->dtype, src->device, 1, (int64_t) n);
    dit_tensor d2 = dit_tensor_2d (dst->data, dst->dtype, dst->device, 1, (int64_t) n);
    dit_copy_params cp = { .x = &s2, .y = &d2 };
    return dit_copy (g->be, &cp);
  }
  if (src->device != DIT_DEVICE_CPU)
    return dit_error (DIT_ERR_INVALID, "%s lives on another device", what);
  float *tmp = malloc (n * sizeof (float));
  if (!tmp)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  dit_convert (tmp, DIT_F32, src->data, src->dtype, n);
  dit_status st = dit_upload (g->be, dst->data, tmp, n * sizeof (float));
  free (tmp);
  return st;
}

static dit_status
store_latent (dit_generator *g, const dit_tensor *src, dit_tensor *dst)
{
  size_t n = (size_t) dit_tensor_numel (src);
  if (dst->ndim != 4 || dit_tensor_numel (dst) != (int64_t) n
      || dst->shape[1] != src->shape[1])
    return dit_error (DIT_ERR_INVALID,
        "output latent must be [%lld, %lld, %lld, %lld]",
        (long long) src->shape[0], (long long) src->shape[1],
        (long long) src->shape[2], (long long) src->shape[3]);
  if (dst->device == dit_backend_device (g->be)) {
    dit_tensor s2 = dit_tensor_2d (src->data, src->dtype, src->device, 1, (int64_t) n);
    dit_tensor d2 = dit_tensor_2d (dst->data, dst->dtype, dst->device, 1, (int64_t) n);
    dit_copy_params cp = { .x = &s2, .y = &d2 };
    return dit_copy (g->be, &cp);
  }
  float *tmp = malloc (n * sizeof (float));
  if (!tmp)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  dit_status st = dit_download (g->be, tmp, src->data, n * sizeof (float));
  if (st == DIT_OK)
    dit_convert (dst->data, dst->dtype, tmp, DIT_F32, n);
  free (tmp);
  return st;
}

/* Noise for `step` of this chunk into g->noise. */
static dit_status
make_noise (dit_generator *g, const dit_chunk_request *req, uint64_t seed,
    int step)
{
  if (req->noise[step])
    return load_latent (g, req->noise[step], &g->noise, "supplied noise");
  dit_noise_params np = { .y = &g->noise, .seed = seed,
    .stream = dit_generator_noise_stream (req->chunk_index, step) };
  return dit_noise (g->be, &np);
}

static int
fused_noise_flow (dit_generator *g)
{
  return !g->no_fused && dit_backend_supports (g->be, DIT_OP_NOISE_FLOW,
      DIT_F32);
}

/* The KV cache of the context frames at t = 0, RoPE frames 0..C-1,
 * block-causal with blocks of causal_frames. */
static dit_status
recompute (dit_generator *g, const dit_chunk_request *req, int causal_frames)
{
  const int C = g->cfg.context_frames;
  double t0[64];
  DIT_TRY (load_latent (g, req->context, &g->ctx, "context latents"));
  for (int i = 0; i < C; i++)
    t0[i] = 0.0;
  dit_forward_args a = { .x = &g->ctx, .t = t0, .frame_offset = 0,
    .cache_row = 0, .causal_block = (int64_t) causal_frames * g->fs,
    .bias_begin = 0, .bias_end = 0, .log_bias = 0.0f, .v_out = NULL };
  return forward_recorded (g, &a);
}

dit_status
dit_generator_run_chunk (dit_generator *g, const dit_chunk_request *req,
    dit_tensor *out, dit_chunk_timing *timing)
{
  dit_chunk_plan plan;
  DIT_TRY (dit_chunk_plan_make (&g->cfg, &g->sched, req->chunk_index,
      req->first_step, &plan));
  return dit_generator_run_plan (g, &plan, req, out, timing);
}

dit_status
dit_generator_run_plan (dit_generator *g, const dit_chunk_plan *plan,
    const dit_chunk_request *req, dit_tensor *out, dit_chunk_timing *timing)
{
  const int F = g->cfg.frames_per_chunk, C = g->cfg.context_frames;
  const int first = plan->first_step, num_steps = plan->num_steps;
  dit_chunk_timing tm = { 0 };
  double t_start = dit_now_ms ();

  if (!g->have_prompt)
    return dit_error (DIT_ERR_STATE, "generator: set a prompt before the first chunk");
  if (req->chunk_index < 0)
    return dit_error (DIT_ERR_INVALID, "chunk index %lld is negative",
        (long long) req->chunk_index);
  if (num_steps < 1 || num_steps > DIT_MAX_STEPS || first < 0
      || first >= num_steps)
    return dit_error (DIT_ERR_INVALID, "plan: first step %d of %d steps",
        first, num_steps);
  if (plan->do_recompute && !req->context)
    return dit_error (DIT_ERR_INVALID,
        "chunk %lld needs %d context latents for the KV recompute",
        (long long) req->chunk_index, C);
  if (plan->do_recompute && plan->rope_start != C)
    return dit_error (DIT_ERR_INVALID, "plan recomputes %d context frames, "
        "the generator holds %d", plan->rope_start, C);

  int64_t row = 0;
  int frame_offset = 0;
  int64_t bias_begin = 0, bias_end = 0;
  if (plan->do_recompute) {
    DIT_TRY (recompute (g, req, plan->causal_frames));
    row = (int64_t) plan->rope_start * g->fs;
    frame_offset = plan->rope_start;
    if (plan->bias_end > plan->bias_begin) {
      bias_begin = (int64_t) plan->bias_begin * g->fs;
      bias_end = (int64_t) plan->bias_end * g->fs;
    }
  }
  DIT_TRY (dit_synchronize (g->be));
  double t_rec = dit_now_ms ();
  tm.recompute_ms = t_rec - t_start;

  /* Initial sample: pure noise, or the input latents noised to σ_first. */
  DIT_TRY (make_noise (g, req, plan->seed, first));
  if (req->init_latents) {
    DIT_TRY (load_latent (g, req->init_latents, &g->x, "init latents"));
    dit_tensor zero_v = g->v;
    DIT_TRY (dit_memset_zero (g->be, zero_v.data, dit_tensor_nbytes (&zero_v)));
    dit_flow_step_params fp = { .x = &g->x, .v = &zero_v, .noise = &g->noise,
      .x0_out = NULL, .out = &g->x, .sigma = 0.0,
      .sigma_next = plan->sigmas[first] };
    DIT_TRY (dit_flow_step (g->be, &fp));
  } else {
    dit_copy_params cp = { .x = &g->noise, .y = &g->x };
    dit_tensor n2 = dit_tensor_2d (g->noise.data, DIT_F32, g->noise.device, 1,
        dit_tensor_numel (&g->noise));
    dit_tensor x2 = dit_tensor_2d (g->x.data, DIT_F32, g->x.device, 1,
        dit_tensor_numel (&g->x));
    cp.x = &n2;
    cp.y = &x2;
    DIT_TRY (dit_copy (g->be, &cp));
  }

  double tvec[64];
  const float log_bias = logf (plan->kv_bias);
  for (int s = first; s < num_steps; s++) {
    for (int f = 0; f < F; f++)
      tvec[f] = plan->steps[s];
    dit_forward_args a = { .x = &g->x, .t = tvec, .frame_offset = frame_offset,
      .cache_row = row, .causal_block = 0, .bias_begin = bias_begin,
      .bias_end = bias_end, .log_bias = log_bias, .v_out = &g->v };
    dit_status st = forward_recorded (g, &a);
    if (st != DIT_OK)
      return dit_error_prefix (st, "chunk %lld step %d",
          (long long) req->chunk_index, s);
    int last = s == num_steps - 1;
    if (!last && !req->noise[s + 1] && fused_noise_flow (g)) {
      /* = make_noise into g->noise, then the flow step below */
      dit_noise_flow_params nf = { .x = &g->x, .v = &g->v, .out = &g->x,
        .seed = plan->seed,
        .stream = dit_generator_noise_stream (req->chunk_index, s + 1),
        .sigma = plan->sigmas[s], .sigma_next = plan->sigmas[s + 1] };
      DIT_TRY (dit_noise_flow (g->be, &nf));
      continue;
    }
    if (!last)
      DIT_TRY (make_noise (g, req, plan->seed, s + 1));
    dit_flow_step_params fp = { .x = &g->x, .v = &g->v,
      .noise = last ? NULL : &g->noise, .x0_out = last ? &g->x : NULL,
      .out = last ? NULL : &g->x, .sigma = plan->sigmas[s],
      .sigma_next = last ? 0.0 : plan->sigmas[s + 1] };
    DIT_TRY (dit_flow_step (g->be, &fp));
  }
  DIT_TRY (store_latent (g, &g->x, out));
  DIT_TRY (dit_synchronize (g->be));
  double t_end = dit_now_ms ();
  tm.denoise_ms = t_end - t_rec;
  tm.total_ms = t_end - t_start;
  if (timing)
    *timing = tm;
  return DIT_OK;
}

dit_status
dit_generator_forward (dit_generator *g, const dit_tensor *context,
    const dit_tensor *x, const double *t, int frame_offset, dit_tensor *v_out)
{
  int64_t row = 0, bias_begin = 0, bias_end = 0;
  if (!g->have_prompt)
    return dit_error (DIT_ERR_STATE, "generator: set a prompt first");
  if (context) {
    dit_chunk_request req = { .chunk_index = 1, .context = context };
    DIT_TRY (recompute (g, &req, g->cfg.frames_per_chunk));
    row = (int64_t) g->cfg.context_frames * g->fs;
    if (g->cfg.kv_bias != 1.0f) {
      bias_begin = g->fs;
      bias_end = row;
    }
  }
  DIT_TRY (load_latent (g, x, &g->x, "forward input"));
  dit_forward_args a = { .x = &g->x, .t = t, .frame_offset = frame_offset,
    .cache_row = row, .bias_begin = bias_begin, .bias_end = bias_end,
    .log_bias = logf (g->cfg.kv_bias), .v_out = &g->v };
  DIT_TRY (dit_model_forward (g->model, &a));
  return store_latent (g, &g->v, v_out);
}
