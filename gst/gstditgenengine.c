/* GstDitGenEngine: ditgenerate's engine glue (gstditgenengine.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditgenengine.h"

#include <string.h>

#include "gstditmemory.h"
#include "gstditprops.h"
#include "dit_loader.h"

GST_DEBUG_CATEGORY_EXTERN (gst_dit_generate_debug);
#define GST_CAT_DEFAULT gst_dit_generate_debug

/* The dit-worker installed with this plugin (gst/meson.build). */
#ifndef GST_DIT_BINDIR
#define GST_DIT_BINDIR "/usr/local/bin"
#endif

void
gst_dit_gen_engine_init (GstDitGenEngine * e, GstElement * owner,
    GstDitGenSettings * s, GstDitSession ** session)
{
  memset (e, 0, sizeof *e);
  e->owner = owner;
  e->s = s;
  e->session = session;
  e->stat_prompt_weight = 1.0;
}

/* The mesh properties, checked (mesh/dit_mesh_config.h): ranks 0 = none. */
gboolean
gst_dit_gen_engine_read_mesh_spec (GstDitGenEngine * e, gchar ** error)
{
  dit_mesh_options o;
  gboolean ok;

  dit_mesh_options_init (&o);
  GST_OBJECT_LOCK (e->owner);
  o.devices = e->s->mesh_devices;
  o.listen = e->s->mesh_listen;
  o.ranks = e->s->mesh_ranks;
  o.backend = e->s->mesh_backend;
  o.layout = e->s->mesh_parallel;
  o.mesh_tp = e->s->mesh_tp;
  o.colocate = e->s->mesh_colocate;
  o.stage0_device = e->s->device;
  o.worker_path = e->s->worker_path;
  o.installed_dir = GST_DIT_BINDIR;
  o.timeout_ms = e->s->mesh_timeout_ms;
  o.join_timeout_ms = e->s->mesh_join_timeout_ms;
  o.max_inflight = e->s->max_inflight;
  ok = dit_mesh_spec_parse (&o, &e->mesh_spec) == DIT_OK;
  GST_OBJECT_UNLOCK (e->owner);
  if (!ok)
    *error = g_strdup (dit_last_error ());
  e->use_mesh = ok && e->mesh_spec.ranks > 0;
  return ok;
}

gboolean
gst_dit_gen_engine_load_dit (GstDitGenEngine * e, const gchar * model,
    const gchar * device, gint precision, gchar ** error)
{
  int checkpoint = 0;
  gboolean ok;
  char demo[4096];
  const char *m = model && *model ? model : GST_DIT_DEFAULT_MODEL;

  if (!e->use_mesh)
    return gst_dit_session_load_dit (*e->session, e->owner, model, device,
        precision, error);
  /* A mesh holds the DiT in its workers: only its config is read here
   * (no tensor data), and checked against the mesh's degrees.  The
   * workers get a path (the demo model's file for "demo"). */
  ok = dit_model_name_resolve (m, DIT_DEMO_DIT, demo, sizeof demo, &m)
      == DIT_OK && dit_model_config_resolve (m, &e->mcfg, &checkpoint)
      == DIT_OK && dit_mesh_spec_check_model (&e->mesh_spec, &e->mcfg)
      == DIT_OK;
  if (!ok)
    *error = g_strdup (dit_last_error ());
  g_free (e->mesh_weights);
  e->mesh_weights = ok && checkpoint ? g_strdup (m) : NULL;
  /* the session's device, for Stage 0 and the runner, with a mesh too */
  return ok && gst_dit_session_open_device (*e->session, device, error);
}

static void
post_progress (GstDitGenEngine * e, GstProgressType type, const gchar * text)
{
  gst_element_post_message (GST_ELEMENT (e->owner),
      gst_message_new_progress (GST_OBJECT (e->owner), type, "mesh", text));
}

/* Output buffers in device memory from now on (device = TRUE), or in
 * system memory. */
gboolean
gst_dit_gen_engine_setup_output (GstDitGenEngine * e, gboolean device,
    gchar ** error)
{
  GstAllocator *alloc;

  if (e->out_pool) {
    gst_buffer_pool_set_active (e->out_pool, FALSE);
    gst_clear_object (&e->out_pool);
  }
  if (!device)
    return TRUE;
  if (!(alloc = gst_dit_device_allocator_new ((*e->session), error)))
    return FALSE;
  e->out_pool = gst_dit_device_pool_new (alloc,
      gst_dit_latent_info_buffer_size (&e->info));
  gst_object_unref (alloc);
  if (!e->out_pool)
    *error = g_strdup ("could not activate the device latent buffer pool");
  return e->out_pool != NULL;
}

static void
runner_free (GstDitGenEngine * e)
{
  /* dit_runner_free ends a mesh with SHUTDOWN (or kills and reaps what a
   * failed one left), before the backend its world comm lives on goes. */
  g_clear_pointer (&e->runner, dit_runner_free);
  GST_OBJECT_LOCK (e->owner);
  memset (&e->stat_runner, 0, sizeof e->stat_runner);
  GST_OBJECT_UNLOCK (e->owner);
  if (e->be)
    gst_dit_session_release_backend ((*e->session), e->be);
  e->be = NULL;
}

/* A new runner for e->gcfg (a seed change makes a new one too: a mesh's
 * workers are restarted then, their session carries the seed).  Its own
 * backend: the generator's thread must not share a stream (and cuBLASLt
 * plans) with Stage 0's decode and encode threads. */
static gboolean
runner_create (GstDitGenEngine * e, gchar ** error)
{
  const dit_mesh_spec *ms = &e->mesh_spec;
  dit_runner_config rc;
  gchar *text;
  dit_status st;

  runner_free (e);
  if (!(e->be = gst_dit_session_new_private_backend ((*e->session), error)))
    return FALSE;
  dit_runner_config_default (&rc);
  rc.model = e->mcfg;
  rc.gen = e->gcfg;
  rc.weights = gst_dit_session_get_dit_weights ((*e->session), NULL);
  GST_OBJECT_LOCK (e->owner);
  rc.lora_mode = (dit_lora_mode) e->s->lora_mode;
  GST_OBJECT_UNLOCK (e->owner);
  if (e->use_mesh) {
    rc.mesh = ms;
    rc.preset = e->mcfg.name;
    rc.mesh_weights = e->mesh_weights;
    /* seed 0: the synthetic weights gst_dit_session_load_dit makes */
    text = ms->listen[0] ? g_strdup_printf ("Waiting on %s for %d dit-worker "
        "processes", ms->listen, ms->ranks) : g_strdup_printf ("Starting %d "
        "dit-worker processes (%s)", ms->ranks, ms->backend);
    GST_INFO_OBJECT (e->owner, "%s: %s", text, ms->worker);
    post_progress (e, GST_PROGRESS_TYPE_START, text);
    g_free (text);
  }
  st = dit_runner_create (&rc, e->be, &e->runner);
  if (st != DIT_OK)
    *error = g_strdup (dit_last_error ());
  if (e->use_mesh)
    post_progress (e, st == DIT_OK ? GST_PROGRESS_TYPE_COMPLETE :
        GST_PROGRESS_TYPE_ERROR, st == DIT_OK ? "Generator mesh ready" : *error);
  if (st == DIT_OK) {
    GST_OBJECT_LOCK (e->owner);
    dit_runner_get_stats (e->runner, &e->stat_runner);
    GST_OBJECT_UNLOCK (e->owner);
  }
  /* a new runner for a new seed carries the LoRAs the old one had (its
   * end restored the weights it had merged into) */
  if (st == DIT_OK && e->lora_applied.count > 0
      && (st = dit_runner_set_lora (e->runner, &e->lora_applied))
      != DIT_OK)
    *error = g_strdup_printf ("lora: %s", dit_last_error ());
  return st == DIT_OK;
}

/* The lora property into the runner, from the next chunk on.  At start a
 * list that cannot be applied (syntax, a file unreadable or not fitting
 * the model: the message names it) is an error; while PLAYING it is a
 * warning and the previous list stays applied, as with a bad prompt. */
static gboolean
apply_lora (GstDitGenEngine * e, gboolean starting, gchar ** error)
{
  dit_lora_spec spec;
  gchar *text, prev[256];
  dit_status st;

  GST_OBJECT_LOCK (e->owner);
  text = g_strdup (e->s->lora);
  e->s->lora_dirty = FALSE;
  GST_OBJECT_UNLOCK (e->owner);
  st = dit_lora_spec_parse (text, &spec);
  if (st == DIT_OK && (spec.count > 0 || e->lora_applied.count > 0))
    st = dit_runner_set_lora (e->runner, &spec);
  if (st == DIT_OK) {
    GST_INFO_OBJECT (e->owner, "LoRAs: '%s' (%s)", text ? text : "",
        dit_lora_mode_name ((dit_lora_mode) e->s->lora_mode));
    e->lora_applied = spec;
  } else if (starting) {
    *error = g_strdup_printf ("lora: %s", dit_last_error ());
  } else {
    dit_lora_spec_format (&e->lora_applied, prev, sizeof prev);
    GST_ELEMENT_WARNING (e->owner, RESOURCE, READ, ("LoRA list not applied: %s",
            dit_last_error ()), ("keeping the previous list '%s'", prev));
  }
  g_free (text);
  return st == DIT_OK || !starting;
}

void
gst_dit_gen_engine_free (GstDitGenEngine * e)
{
  gst_dit_gen_engine_setup_output (e, FALSE, NULL);
  runner_free (e);
  g_clear_pointer (&e->x_host, g_free);
  GST_OBJECT_LOCK (e->owner);
  g_clear_pointer (&e->penc, dit_prompt_encoder_free);
  GST_OBJECT_UNLOCK (e->owner);
  g_clear_pointer (&e->prompts, dit_prompt_schedule_free);
  memset (&e->lora_applied, 0, sizeof e->lora_applied);
  e->configured = FALSE;
}

void
gst_dit_gen_engine_clear (GstDitGenEngine * e)
{
  gst_dit_gen_engine_free (e);
  g_clear_pointer (&e->mesh_weights, g_free);
}

/* The prompt sources into the schedule (the prompt-embeds file wins, else
 * the text prompt, encoded here once: later changes go through the
 * encoder thread).  The text encoder is made with the engine so that
 * prompt changes only queue work; without a prompt a missing tokenizer is
 * not an error yet. */
static gboolean
apply_prompt (GstDitGenEngine * e, gchar ** error)
{
  gchar *path, *prompt, *model, *tok;
  dit_prompt_encoder *enc = NULL;
  gboolean ok = TRUE;

  GST_OBJECT_LOCK (e->owner);
  path = g_strdup (e->s->prompt_embeds);
  prompt = g_strdup (e->s->prompt);
  model = g_strdup (e->s->text_model);
  tok = g_strdup (e->s->tokenizer);
  e->s->prompt_dirty = FALSE;
  GST_OBJECT_UNLOCK (e->owner);
  if (!e->penc) {
    if (dit_prompt_encoder_create (model, tok, 0, e->mcfg.text_dim, &enc)
        != DIT_OK && prompt && !(path && *path)) {
      *error = g_strdup_printf ("text encoder: %s", dit_last_error ());
      ok = FALSE;
    }
    GST_OBJECT_LOCK (e->owner);
    e->penc = enc;
    GST_OBJECT_UNLOCK (e->owner);
  }
  if (ok && dit_prompt_schedule_load (e->prompts, path, prompt,
          e->penc) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    ok = FALSE;
  }
  g_free (path);
  g_free (prompt);
  g_free (model);
  g_free (tok);
  return ok;
}

/* A new stream: the KV context starts over under a new cache epoch (Stage
 * 0 starts over when it sees the epoch). */
void
gst_dit_gen_engine_reset_stream (GstDitGenEngine * e)
{
  e->chunk_index = 0;
  if (e->runner)
    dit_runner_reset (e->runner);
  if ((*e->session))
    e->epoch = gst_dit_session_bump_epoch ((*e->session));
  GST_OBJECT_LOCK (e->owner);
  e->stat_epoch = e->epoch;
  GST_OBJECT_UNLOCK (e->owner);
  GST_DEBUG_OBJECT (e->owner, "new cache epoch %" G_GUINT64_FORMAT, e->epoch);
}

/* The generator config of the properties for latents of `info`: weights
 * in the session's dtype (bf16 on CUDA, f32 on the CPU); mesh workers
 * store bf16 when they run on CUDA. */
gboolean
gst_dit_gen_engine_configure (GstDitGenEngine * e,
    const GstDitLatentInfo * info, gchar ** error)
{
  dit_gen_config *c = &e->gcfg;
  dit_precision prec;
  dit_status st;
  gint req;

  if (e->configured && info->width == e->info.width
      && info->height == e->info.height && info->frames == e->info.frames) {
    e->info = *info;
    return TRUE;
  }
  gst_dit_gen_engine_free (e);
  if (!e->use_mesh)
    gst_dit_session_get_dit_weights ((*e->session), &e->mcfg);
  dit_gen_config_default (c);
  c->latent_h = info->height;
  c->latent_w = info->width;
  c->frames_per_chunk = info->frames;
  GST_OBJECT_LOCK (e->owner);
  c->context_frames = e->s->context_frames;
  c->kv_window = e->s->kv_window > 0 ? e->s->kv_window
      : e->s->context_frames + info->frames;
  c->kv_bias = (float) e->s->kv_bias;
  c->shift = e->s->shift;
  c->seed = e->s->seed;
  e->s->seed_dirty = FALSE;
  st = dit_gen_config_parse_steps (c, e->s->steps);
  req = gst_dit_dtype_precision (e->s->dtype);
  GST_OBJECT_UNLOCK (e->owner);
  /* Precision: the dtype property; auto is the session's (bf16 on CUDA, f32
   * on the CPU) and, for mesh workers, bf16 when they run on CUDA.  The
   * workers get the same precision as an in-process generator would. */
  if (!e->use_mesh)
    prec = gst_dit_session_get_dit_precision ((*e->session));
  else if (req == GST_DIT_PRECISION_AUTO)
    prec = g_str_equal (e->mesh_spec.backend, "cuda") ? DIT_PRECISION_BF16
        : DIT_PRECISION_F32;
  else
    prec = (dit_precision) req;
  c->dtype = dit_precision_compute_dtype (prec);
  c->fp8 = prec == DIT_PRECISION_FP8;
  if (st == DIT_OK)
    st = dit_gen_config_validate (c, &e->mcfg);
  if (st == DIT_OK)
    st = dit_prompt_schedule_create (e->mcfg.text_dim, e->mcfg.text_len,
        &e->prompts);
  if (st != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  if (!gst_dit_session_stage0_configure ((*e->session), info->width,
          info->height, info->frames, c->context_frames, e->s->anchor,
          e->s->max_inflight, error)
      || !runner_create (e, error) || !apply_lora (e, TRUE, error)
      || !apply_prompt (e, error))
    return FALSE;
  e->x_host = g_new0 (gfloat, (gsize) DIT_LATENT_CHANNELS * info->frames
      * info->width * info->height);
  e->info = *info;
  e->configured = TRUE;
  gst_dit_gen_engine_reset_stream (e);
  return TRUE;
}

/* At a chunk boundary: property changes made while PLAYING, a finished
 * text encoding (never waited for: until it is ready the chunk uses the
 * current embedding), and this chunk's embedding to the runner. */
static gboolean
apply_changes (GstDitGenEngine * e, gboolean video_input, gchar ** error)
{
  gboolean prompt, seed, lora;
  guint64 want;
  gfloat weight;
  gint changed, trans, reset;
  gchar failed[512];
  dit_tensor embeds;

  GST_OBJECT_LOCK (e->owner);
  prompt = e->s->prompt_dirty;
  seed = e->s->seed_dirty;
  lora = e->s->lora_dirty;
  e->gcfg.seed = e->s->seed;
  e->s->seed_dirty = FALSE;
  want = e->s->prompt_request;
  trans = (gint) e->s->transition_chunks;
  reset = e->s->prompt_reset;
  GST_OBJECT_UNLOCK (e->owner);

  /* The KV cache is rebuilt from the context every chunk, so a new
   * generator continues the stream seamlessly with the new noise. */
  if (seed && !runner_create (e, error))
    return FALSE;
  if (lora)
    apply_lora (e, FALSE, NULL);
  if ((prompt || seed) && !apply_prompt (e, error))
    return FALSE;
  /* With video input a new prompt restarts the cache (scope does the
   * same); text-to-video keeps the context and follows the new prompt. */
  if (prompt && !seed && dit_prompt_resets_cache (reset, video_input,
          FALSE))
    gst_dit_gen_engine_reset_stream (e);
  if (dit_prompt_schedule_take (e->prompts, e->penc, want, trans, failed,
          sizeof failed)) {
    GST_DEBUG_OBJECT (e->owner, "prompt epoch %" G_GUINT64_FORMAT ", %d-chunk "
        "transition", dit_prompt_schedule_epoch (e->prompts), trans);
    if (dit_prompt_resets_cache (reset, video_input, trans > 0))
      gst_dit_gen_engine_reset_stream (e);
  } else if (failed[0]) {
    GST_ELEMENT_WARNING (e->owner, LIBRARY, SETTINGS, ("Prompt not used: %s",
            failed), ("keeping the current prompt"));
  }
  dit_prompt_schedule_next (e->prompts, &embeds, &changed, &weight);
  if (changed && dit_runner_set_prompt (e->runner, &embeds) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  GST_OBJECT_LOCK (e->owner);
  e->stat_prompt_weight = weight;
  GST_OBJECT_UNLOCK (e->owner);
  return TRUE;
}

static void
stamp_output (GstDitGenEngine * e, GstBuffer * buf, GstBuffer * in,
    gint valid, const dit_chunk_timing * tm)
{
  GstDitLatentMeta *meta;

  if (in)
    gst_buffer_copy_into (buf, in, GST_BUFFER_COPY_FLAGS |
        GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  else
    gst_dit_latent_set_chunk_times (buf, &e->info, e->chunk_index,
        &e->frames_out);
  meta = gst_buffer_add_dit_latent_meta (buf);
  meta->chunk_index = e->chunk_index;
  meta->cache_epoch = e->epoch;
  meta->prompt_epoch = dit_prompt_schedule_epoch (e->prompts);
  meta->seed = e->gcfg.seed;
  meta->valid_frames = valid;
  meta->chunk_ms = tm->total_ms;
  meta->recompute_ms = tm->recompute_ms;
  meta->denoise_ms = tm->denoise_ms;
  meta->produced_ns = g_get_monotonic_time () * 1000;
}

/* One chunk: its context from Stage 0, the runner, Stage 0's anchor path
 * before the chunk leaves, the output buffer.  On a device session the
 * latents stay on the device throughout (host copies counted per chunk:
 * the host-copies property). */
GstFlowReturn
gst_dit_gen_engine_run_chunk (GstDitGenEngine * e, GstBuffer * in,
    GstBuffer ** out, gchar ** error)
{
  dit_tensor ctx, xin, x0;
  dit_chunk_request req = { 0 };
  dit_chunk_timing tm;
  dit_host_copies c0, c1;
  GstDitLatentMeta *in_meta;
  GstMemory *in_dev = NULL;
  gint valid = -1;
  gint64 t_gen;
  GstDitDecodeResult res;

  if (!apply_changes (e, in != NULL, error))
    goto lib_error;
  /* latents from here on (a new prompt's embedding is not one) */
  dit_host_copies_get (&c0);
  req.chunk_index = e->chunk_index;
  res = gst_dit_session_context ((*e->session), e->epoch, e->chunk_index,
      e->be, &ctx, error);
  if (res != GST_DIT_DECODE_OK)
    goto stage0_result;
  req.context = ctx.data ? &ctx : NULL;
  if (in) {
    if (!gst_dit_buffer_to_latents (in, &e->info, e->be, e->x_host,
            &xin, &in_dev, error))
      goto lib_error;
    req.init_latents = &xin;
    GST_OBJECT_LOCK (e->owner);
    req.first_step = dit_stream_first_step (e->gcfg.steps,
        e->gcfg.num_steps, e->s->strength);
    GST_OBJECT_UNLOCK (e->owner);
    if ((in_meta = gst_buffer_get_dit_latent_meta (in)))
      valid = in_meta->valid_frames;
  }
  t_gen = g_get_monotonic_time ();
  if (dit_runner_run_chunk (e->runner, &req, &x0, &tm) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    goto lib_error;
  }
  if (in_dev && !gst_dit_device_memory_read_done (in_dev, e->be, error))
    goto lib_error;
  e->stage1_ms_pending = (g_get_monotonic_time () - t_gen) / 1000.0;
  res = gst_dit_session_push_chunk ((*e->session), e->epoch,
      e->chunk_index, &x0, e->be, error);
  if (res != GST_DIT_DECODE_OK)
    goto stage0_result;
  if (!gst_dit_latents_to_buffer (&x0, &e->info, e->be, e->out_pool,
          e->x_host, out, error))
    goto lib_error;
  stamp_output (e, *out, in, valid, &tm);
  dit_host_copies_get (&c1);
  GST_LOG_OBJECT (e->owner, "chunk %" G_GINT64_FORMAT " epoch %"
      G_GUINT64_FORMAT " in %.1f ms", e->chunk_index, e->epoch, tm.total_ms);
  GST_OBJECT_LOCK (e->owner);
  e->stat_chunk_ms = tm.total_ms;
  e->stat_host_copies = (guint) (c1.uploads - c0.uploads + c1.downloads
      - c0.downloads);
  dit_runner_get_stats (e->runner, &e->stat_runner);
  GST_OBJECT_UNLOCK (e->owner);
  e->chunk_index++;
  return GST_FLOW_OK;

stage0_result:
  if (res != GST_DIT_DECODE_ERROR)
    return GST_FLOW_FLUSHING;   /* flushing, or an older epoch */
lib_error:
  return GST_FLOW_ERROR;
}
