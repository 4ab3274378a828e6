/**
 * SECTION:element-ditgenerate
 * @title: ditgenerate
 *
 * Runs the causal Wan2.1 DiT one chunk at a time with a rolling KV cache.
 * Fed latent chunks (from ditencode) it restyles them (video-to-video,
 * input noised to #GstDitGenerate:strength); with its request sink pad
 * unlinked it is a source (text-to-video).  Output chunks carry a
 * #GstDitLatentMeta (chunk index, cache epoch, prompt epoch, seed, timing).
 *
 * The element owns a bounded input queue (#GstDitGenerate:max-inflight
 * chunks) and a streaming task on its source pad.  Each chunk's result
 * goes through the session's anchor path before it is pushed: the first
 * latent is decoded and its last frame re-encoded by the full VAE as the
 * next chunk's KV-recompute anchor.  The frame comes from the full VAE
 * (#GstDitGenerate:anchor-decoder=full, the default; when ditdecode
 * displays with a tiny decoder, the full VAE then decodes only that latent
 * per chunk) or from the display decoder (anchor-decoder=tiny: no full
 * decode on the critical path, an anchor through the tiny decoder's
 * picture).
 *
 * In text-to-video the stream ends after #GstDitGenerate:num-chunks, or
 * when an EOS event is sent to the element or to its pipeline
 * (gst-launch-1.0 -e does that on Ctrl-C): the chunk in flight is
 * finished and pushed, then EOS, and the task stops.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=4 prompt="a koi pond at dawn, drone shot" ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]| Text-to-video with the embedded tiny model and tiny text encoder, no
 * download, CPU only.
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=45 ! video/x-raw,width=128,height=128 ! ditencode ! ditgenerate strength=0.6 ! ditdecode ! videoconvert ! autovideosink
 * ]| Video-to-video.
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=4 mesh-devices=0,1 mesh-backend=cpu ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]| Text-to-video on a generator mesh: two dit-worker processes hold
 * tensor-parallel halves of the DiT; this process keeps the VAE.
 *
 * ## Generator mesh
 *
 * With #GstDitGenerate:mesh-devices (or #GstDitGenerate:mesh-listen) set,
 * the DiT runs in dit-worker processes (dist/dit_mesh.h) instead of in this
 * process: the element spawns one worker per listed device (or waits for
 * workers started by another launcher), sends every chunk's request to them
 * and gets the latents back.  This process loads no DiT weights, only the
 * model config and the VAE of the anchor path.  A dead, stalled or refused
 * worker is an element error naming the rank; stopping the element shuts
 * the workers down and reaps them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditgenerate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gstditlatent.h"
#include "gstditmemory.h"
#include "gstditsession.h"
#include "dit_loader.h"
#include "dit_mesh.h"
#include "dit_model.h"
#include "dit_prompt.h"
#include "dit_tokenizer.h"

GST_DEBUG_CATEGORY_STATIC (gst_dit_generate_debug);
#define GST_CAT_DEFAULT gst_dit_generate_debug

#define DEFAULT_SEED 42
#define DEFAULT_STEPS "1000,750,500,250"
#define DEFAULT_SHIFT 5.0
#define DEFAULT_STRENGTH 0.7
#define DEFAULT_KV_WINDOW 0
#define DEFAULT_CONTEXT_FRAMES 3
#define DEFAULT_KV_BIAS 0.3
#define DEFAULT_MAX_INFLIGHT 2
#define DEFAULT_NUM_CHUNKS 0
#define DEFAULT_ANCHOR DIT_ANCHOR_DECODED
#define DEFAULT_ANCHOR_DECODER GST_DIT_ANCHOR_DECODER_FULL
#define DEFAULT_WIDTH 64
#define DEFAULT_HEIGHT 64
#define DEFAULT_FRAMES 3
#define DEFAULT_FPS_N 16
#define DEFAULT_FPS_D 1
#define DEFAULT_TRANSITION_CHUNKS 0
#define DEFAULT_PROMPT_RESET GST_DIT_PROMPT_RESET_AUTO
#define DEFAULT_MESH_TIMEOUT_MS 10000
#define DEFAULT_MESH_JOIN_TIMEOUT_MS 30000
/* Filter mode: how long the task waits for input before it lets the
 * runner look after an idle mesh. */
#define MESH_IDLE_US (1 * G_TIME_SPAN_SECOND)

/* The dit-worker installed with this plugin (gst/meson.build). */
#ifndef GST_DIT_BINDIR
#define GST_DIT_BINDIR "/usr/local/bin"
#endif

/* Whether a prompt change restarts the KV cache (a new cache epoch). */
typedef enum
{
  GST_DIT_PROMPT_RESET_AUTO = 0,   /* scope: with video input, unless blending */
  GST_DIT_PROMPT_RESET_ALWAYS = 1,
  GST_DIT_PROMPT_RESET_NEVER = 2,
} GstDitPromptReset;

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_VAE_MODEL,
  PROP_PROMPT_EMBEDS,
  PROP_SEED,
  PROP_STEPS,
  PROP_SHIFT,
  PROP_STRENGTH,
  PROP_KV_WINDOW,
  PROP_CONTEXT_FRAMES,
  PROP_KV_BIAS,
  PROP_MAX_INFLIGHT,
  PROP_DEVICE,
  PROP_SESSION,
  PROP_ANCHOR,
  PROP_ANCHOR_DECODER,
  PROP_NUM_CHUNKS,
  PROP_FRAMERATE,
  PROP_FPS,
  PROP_CHUNK_MS,
  PROP_QUEUE_DEPTH,
  PROP_CHUNKS,
  PROP_CACHE_EPOCH,
  PROP_PROMPT,
  PROP_PROMPT_TRANSITION_CHUNKS,
  PROP_PROMPT_RESETS_CACHE,
  PROP_TEXT_MODEL,
  PROP_TOKENIZER,
  PROP_PROMPT_WEIGHT,
  PROP_MESH_DEVICES,
  PROP_MESH_BACKEND,
  PROP_MESH_LISTEN,
  PROP_MESH_RANKS,
  PROP_WORKER_PATH,
  PROP_MESH_TIMEOUT_MS,
  PROP_MESH_JOIN_TIMEOUT_MS,
  PROP_MESH_RANK_MS,
  PROP_MESH_WORKER_PIDS,
  PROP_STAGE0_MS,
  PROP_STAGE1_MS,
  PROP_PERIOD_MS,
  PROP_HIDDEN_MS,
  PROP_OVERLAP_SCORE,
  PROP_DTYPE,
};

/* The DiT's precision (dtype property). */
typedef enum
{
  GST_DIT_DTYPE_AUTO = 0,         /* bf16 on CUDA, f32 on the CPU */
  GST_DIT_DTYPE_BF16,
  GST_DIT_DTYPE_FP8,
  GST_DIT_DTYPE_F32,
} GstDitDtype;

#define DEFAULT_DTYPE GST_DIT_DTYPE_AUTO

#define OVERLAP_WINDOW 32

struct _GstDitGenerate
{
  GstElement parent;

  dit_backend *be;              /* the in-process generator's own backend */

  GstPad *sinkpad;              /* request pad, NULL when not requested */
  GstPad *srcpad;

  /* properties; object lock */
  gchar *model, *vae_model, *prompt_embeds, *device, *session_key, *steps;
  guint64 seed;
  gdouble shift, strength, kv_bias;
  gint kv_window, context_frames, max_inflight;
  dit_anchor_mode anchor;
  GstDitAnchorDecoder anchor_decoder;
  guint num_chunks;
  gint fps_n, fps_d;
  gboolean prompt_dirty, seed_dirty;
  gchar *prompt, *text_model, *tokenizer;
  guint transition_chunks;
  GstDitPromptReset prompt_reset;
  GstDitDtype dtype;
  guint64 prompt_request;       /* latest id submitted to the text encoder */
  gdouble stat_prompt_weight;
  gdouble stat_fps, stat_chunk_ms;
  guint64 stat_chunks;
  gchar *mesh_devices, *mesh_backend, *mesh_listen, *worker_path;
  gint mesh_ranks, mesh_timeout_ms, mesh_join_timeout_ms;
  gint stat_mesh_n;             /* ranks of the running mesh, 0 = none */
  gdouble stat_mesh_rank_ms[DIT_MESH_MAX_RANKS];
  gint stat_mesh_pids[DIT_MESH_MAX_RANKS];

  GstDitSession *session;

  /* streaming task state */
  gboolean source_mode, started;
  GstDitLatentInfo info;
  gboolean configured;
  dit_model_config mcfg;
  dit_gen_config gcfg;
  dit_generator *gen;           /* in-process runner */
  gboolean use_mesh;            /* decided at NULL -> READY */
  dit_model_config mesh_model;  /* the model's config, without its weights */
  gchar *mesh_weights;          /* checkpoint path, NULL = preset weights */
  dit_mesh *mesh;               /* mesh runner */
  dit_context *ctx;
  gfloat *x_in, *x_out, *ctx_buf, *anchor_buf;
  /* Device latents (session on a device, peers that take them): the
   * generator's f32 output on self->be, and the pool of output buffers. */
  gboolean out_device;
  dit_tensor dev_x;
  GstBufferPool *out_pool;
  gint64 chunk_index;
  guint64 epoch, prompt_epoch;
  /* text prompts (streaming thread; penc is set under the object lock) */
  dit_prompt_encoder *penc;
  gfloat *cur_rows, *old_rows, *new_rows, *mix_rows;
  gint cur_n, old_n, new_n;
  gint trans_j, trans_n;        /* chunk j of an n-chunk transition; n < 0: none */
  guint64 frames_out;
  gint64 last_push_us;
  /* Overlap instrumentation (stage 0 = session decode + anchor encode time
   * per chunk, stage 1 = generator call, period = push to push). */
  gint64 stage0_busy_us;
  gdouble stage1_ms_pending;
  gdouble stat_stage0_ms, stat_stage1_ms, stat_period_ms, stat_hidden_ms;
  gdouble stat_overlap;
  gdouble hidden_ring[OVERLAP_WINDOW], stage0_ring[OVERLAP_WINDOW],
      stage1_ring[OVERLAP_WINDOW];
  guint ring_n;
  gdouble latency_ms;           /* figure last reported in LATENCY */

  /* input queue; qlock */
  GMutex qlock;
  GCond qcond;
  GQueue queue;
  gint queued_buffers;
  GstFlowReturn srcresult;
  gboolean eos_pending;         /* text-to-video: EOS sent to the element */
};

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));

G_DEFINE_TYPE (GstDitGenerate, gst_dit_generate, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (ditgenerate, "ditgenerate", GST_RANK_NONE,
    GST_TYPE_DIT_GENERATE);

GType
gst_dit_anchor_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {DIT_ANCHOR_DECODED, "Re-encode the last decoded frame of the chunk's "
          "first latent (scope's krea_realtime_video)", "decoded"},
    {DIT_ANCHOR_LATENT, "Use the previous chunk's first latent as is "
          "(no decode on the critical path)", "latent"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitAnchorMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_DIT_ANCHOR_DECODER (gst_dit_anchor_decoder_get_type ())
static GType
gst_dit_anchor_decoder_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIT_ANCHOR_DECODER_FULL, "The full VAE decodes the anchor latent "
          "(beside a tiny display decoder, one full decode per chunk)", "full"},
    {GST_DIT_ANCHOR_DECODER_TINY, "The display decoder's frame is "
          "re-encoded (with a tiny display decoder: no full decode)", "tiny"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitAnchorDecoder", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_DIT_PROMPT_RESET (gst_dit_prompt_reset_get_type ())
static GType gst_dit_prompt_reset_get_type (void);

static GType
gst_dit_prompt_reset_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIT_PROMPT_RESET_AUTO, "Restart the cache with video input when the "
          "prompt switches without a transition (scope's behaviour)", "auto"},
    {GST_DIT_PROMPT_RESET_ALWAYS, "Restart the cache on every prompt change",
        "always"},
    {GST_DIT_PROMPT_RESET_NEVER, "Never restart the cache on a prompt change",
        "never"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitPromptReset", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_DIT_DTYPE (gst_dit_dtype_get_type ())
static GType gst_dit_dtype_get_type (void);

static GType
gst_dit_dtype_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIT_DTYPE_AUTO, "bf16 on CUDA, f32 on the CPU", "auto"},
    {GST_DIT_DTYPE_BF16, "bf16 weights and activations", "bf16"},
    {GST_DIT_DTYPE_FP8, "bf16 with the transformer blocks' linear layers as "
          "FP8 (e4m3) GEMMs; needs a GPU with FP8 tensor cores (compute "
          "capability 8.9 or newer) or the CPU reference", "fp8"},
    {GST_DIT_DTYPE_F32, "f32 weights and activations", "f32"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitDtype", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* The dtype property as a dit_precision, or GST_DIT_PRECISION_AUTO. */
static gint
dtype_precision (GstDitDtype d)
{
  switch (d) {
    case GST_DIT_DTYPE_BF16:
      return DIT_PRECISION_BF16;
    case GST_DIT_DTYPE_FP8:
      return DIT_PRECISION_FP8;
    case GST_DIT_DTYPE_F32:
      return DIT_PRECISION_F32;
    default:
      return GST_DIT_PRECISION_AUTO;
  }
}

static void gst_dit_generate_loop (GstDitGenerate * self);

/* ------------------------------------------------------------------ */
/* engine glue */

static gboolean
parse_steps (const gchar * str, dit_gen_config * cfg, gchar ** error)
{
  gchar **parts = g_strsplit (str, ",", -1);
  gint n = 0;
  gboolean ok = TRUE;

  for (gchar ** p = parts; *p && ok; p++) {
    gchar *end;
    gdouble v = g_ascii_strtod (g_strstrip (*p), &end);
    if (end == *p || *end || v < 0 || v > 1000 || n >= DIT_MAX_STEPS) {
      *error = g_strdup_printf ("steps '%s': expected up to %d comma-separated "
          "timesteps in [0, 1000]", str, DIT_MAX_STEPS);
      ok = FALSE;
    } else {
      cfg->steps[n++] = v;
    }
  }
  g_strfreev (parts);
  if (ok && n == 0) {
    *error = g_strdup_printf ("steps '%s' is empty", str);
    ok = FALSE;
  }
  cfg->num_steps = n;
  return ok;
}

/* ------------------------------------------------------------------ */
/* runner: the in-process generator or the generator mesh behind the few
 * calls the element makes (dit_generator_*'s contract; the mesh takes and
 * returns host tensors, which is all the element uses) */

typedef struct mesh_settings
{
  gint ranks;                   /* 0 = no mesh */
  gint devices[DIT_MESH_MAX_RANKS];
  gint n_devices;
  gchar *listen;                /* NULL = spawn the workers */
  gchar *backend;
  gchar *worker;                /* resolved dit-worker path (spawn) */
  gint timeout_ms, join_timeout_ms, max_inflight;
} mesh_settings;

static void
mesh_settings_clear (mesh_settings * ms)
{
  g_free (ms->listen);
  g_free (ms->backend);
  g_free (ms->worker);
  memset (ms, 0, sizeof *ms);
}

static gboolean
tp_degree_ok (gint n)
{
  return n == 1 || n == 2 || n == 4 || n == 8;
}

/* worker-path, then $GST_DIT_WORKER, then the installed dit-worker, then
 * dit-worker on PATH. */
static gchar *
resolve_worker_path (const gchar * prop, gchar ** tried)
{
  const gchar *env = g_getenv ("GST_DIT_WORKER");
  gchar *installed, *found;

  if (prop && *prop) {
    *tried = g_strdup_printf ("worker-path '%s'", prop);
    return g_find_program_in_path (prop);
  }
  if (env && *env) {
    *tried = g_strdup_printf ("GST_DIT_WORKER '%s'", env);
    return g_find_program_in_path (env);
  }
  installed = g_build_filename (GST_DIT_BINDIR, "dit-worker", NULL);
  if (g_file_test (installed, G_FILE_TEST_IS_EXECUTABLE))
    return installed;
  found = g_find_program_in_path ("dit-worker");
  *tried = g_strdup_printf ("%s and PATH", installed);
  g_free (installed);
  return found;
}

/* The mesh properties, checked: ms->ranks = 0 when no mesh is asked for. */
static gboolean
mesh_read_settings (GstDitGenerate * self, mesh_settings * ms, gchar ** error)
{
  gchar *devices, *listen, *backend, *worker, *device;
  gchar **parts = NULL;
  gint ranks;
  gboolean ok = FALSE;

  memset (ms, 0, sizeof *ms);
  GST_OBJECT_LOCK (self);
  devices = g_strdup (self->mesh_devices);
  listen = g_strdup (self->mesh_listen);
  backend = g_strdup (self->mesh_backend);
  worker = g_strdup (self->worker_path);
  device = g_strdup (self->device);
  ranks = self->mesh_ranks;
  ms->timeout_ms = self->mesh_timeout_ms;
  ms->join_timeout_ms = self->mesh_join_timeout_ms;
  ms->max_inflight = self->max_inflight;
  GST_OBJECT_UNLOCK (self);

  if (devices && *g_strstrip (devices)) {
    parts = g_strsplit (devices, ",", -1);
    for (gchar ** p = parts; *p; p++) {
      guint64 v;
      if (ms->n_devices == DIT_MESH_MAX_RANKS
          || !g_ascii_string_to_unsigned (g_strstrip (*p), 10, 0, 1023, &v,
              NULL)) {
        *error = g_strdup_printf ("mesh-devices '%s': expected a comma-"
            "separated list of 1, 2, 4 or 8 device indices, e.g. \"0,1\"",
            devices);
        goto out;
      }
      ms->devices[ms->n_devices++] = (gint) v;
    }
  }
  if (listen && *listen) {
    const gchar *colon = strrchr (listen, ':');
    if (!colon || atoi (colon + 1) <= 0) {
      *error = g_strdup_printf ("mesh-listen '%s': expected HOST:PORT with a "
          "fixed port, which the workers' --connect names", listen);
      goto out;
    }
    if (ranks <= 0) {
      *error = g_strdup_printf ("mesh-listen '%s' needs mesh-ranks: the "
          "number of dit-worker processes that will connect", listen);
      goto out;
    }
    ms->ranks = ranks;
    ms->listen = g_strdup (listen);
  } else if (ms->n_devices > 0) {
    if (ranks > 0 && ranks != ms->n_devices) {
      *error = g_strdup_printf ("mesh-ranks=%d but mesh-devices '%s' lists %d "
          "devices", ranks, devices, ms->n_devices);
      goto out;
    }
    ms->ranks = ms->n_devices;
  } else {
    ok = TRUE;                  /* no mesh */
    goto out;
  }
  if (!tp_degree_ok (ms->ranks)) {
    *error = g_strdup_printf ("%s asks for a mesh of %d ranks: the tensor-"
        "parallel degree must be 1, 2, 4 or 8", ms->listen ? "mesh-ranks" :
        "mesh-devices", ms->ranks);
    goto out;
  }

  if (!(backend && *backend)) {
    g_free (backend);
    backend = g_strdup (device && g_str_has_prefix (device, "cuda") ?
        "cuda" : "cpu");
  }
  if (!g_str_equal (backend, "cpu") && !g_str_equal (backend, "cuda")) {
    *error = g_strdup_printf ("mesh-backend '%s': expected cpu or cuda",
        backend);
    goto out;
  }
  ms->backend = g_strdup (backend);
  if (g_str_equal (backend, "cuda"))
    for (gint i = 0; i < ms->n_devices; i++)
      for (gint j = 0; j < i; j++)
        if (ms->devices[i] == ms->devices[j]) {
          *error = g_strdup_printf ("mesh-devices '%s' names device %d twice: "
              "each CUDA rank needs its own GPU", devices, ms->devices[i]);
          goto out;
        }

  if (!ms->listen) {
    gchar *tried = NULL;
    ms->worker = resolve_worker_path (worker, &tried);
    if (!ms->worker) {
      *error = g_strdup_printf ("cannot find the dit-worker executable (tried "
          "%s): set worker-path or GST_DIT_WORKER", tried);
      g_free (tried);
      goto out;
    }
    g_free (tried);
  }
  ok = TRUE;
out:
  if (!ok)
    mesh_settings_clear (ms);
  g_strfreev (parts);
  g_free (devices);
  g_free (listen);
  g_free (backend);
  g_free (worker);
  g_free (device);
  return ok;
}

/* The config of `model` (a preset, or a checkpoint's shapes: no tensor
 * data is read) for a mesh of `ranks`; this process never loads the DiT. */
static gboolean
mesh_model_config (GstDitGenerate * self, const gchar * model, gint ranks,
    gchar ** error)
{
  const gchar *m = model && *model ? model : GST_DIT_DEFAULT_MODEL;
  gboolean preset = dit_model_is_preset (m);
  dit_status st;

  st = preset ? dit_model_config_preset (m, &self->mesh_model) :
      dit_checkpoint_detect_preset (m, &self->mesh_model);
  if (st == DIT_OK)
    st = dit_model_tp_check (&self->mesh_model, ranks);
  if (st != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  g_free (self->mesh_weights);
  self->mesh_weights = preset ? NULL : g_strdup (m);
  return TRUE;
}

static void
post_progress (GstDitGenerate * self, GstProgressType type, const gchar * text)
{
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_progress (GST_OBJECT (self), type, "mesh", text));
}

static void
free_device_output (GstDitGenerate * self)
{
  if (self->out_pool) {
    gst_buffer_pool_set_active (self->out_pool, FALSE);
    gst_clear_object (&self->out_pool);
  }
  /* On the session's backend: it outlives runner changes (a new seed). */
  if (self->dev_x.data)
    dit_tensor_free (gst_dit_session_get_backend (self->session),
        &self->dev_x);
  self->out_device = FALSE;
}

/* Output buffers in device memory from now on (device = TRUE), or in
 * system memory. */
static gboolean
setup_device_output (GstDitGenerate * self, gboolean device, gchar ** error)
{
  int64_t shape[4] = { DIT_LATENT_CHANNELS, self->info.frames,
    self->info.height, self->info.width
  };
  GstAllocator *alloc;

  free_device_output (self);
  if (!device)
    return TRUE;
  alloc = gst_dit_device_allocator_new (self->session, error);
  if (!alloc)
    return FALSE;
  self->out_pool = gst_dit_device_pool_new (alloc,
      gst_dit_latent_info_buffer_size (&self->info));
  gst_object_unref (alloc);
  if (!self->out_pool) {
    *error = g_strdup ("could not activate the device latent buffer pool");
    return FALSE;
  }
  if (dit_tensor_alloc (gst_dit_session_get_backend (self->session),
          &self->dev_x, DIT_F32, 4, shape) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    free_device_output (self);
    return FALSE;
  }
  self->out_device = TRUE;
  return TRUE;
}

static void
runner_free (GstDitGenerate * self)
{
  if (self->gen)
    dit_generator_free (self->gen);
  self->gen = NULL;
  if (self->mesh) {
    /* A clean SHUTDOWN lets remote workers exit 0; a failed mesh refuses
     * it, and dit_mesh_free kills and reaps whatever is left.  Before the
     * backend goes: the mesh's world comm and staging live on it. */
    if (dit_mesh_shutdown (self->mesh) != DIT_OK)
      GST_INFO_OBJECT (self, "mesh: %s", dit_last_error ());
    dit_mesh_free (self->mesh);
    self->mesh = NULL;
    GST_OBJECT_LOCK (self);
    self->stat_mesh_n = 0;
    memset (self->stat_mesh_pids, 0, sizeof self->stat_mesh_pids);
    GST_OBJECT_UNLOCK (self);
  }
  if (self->be)
    gst_dit_session_release_backend (self->session, self->be);
  self->be = NULL;
}

/* Whether the mesh workers run on CUDA (mesh-backend, else the element's
 * device), which decides their weight dtype. */
static gboolean
mesh_on_cuda (GstDitGenerate * self)
{
  gboolean cuda;
  GST_OBJECT_LOCK (self);
  if (self->mesh_backend && *self->mesh_backend)
    cuda = g_str_equal (self->mesh_backend, "cuda");
  else
    cuda = self->device && g_str_has_prefix (self->device, "cuda");
  GST_OBJECT_UNLOCK (self);
  return cuda;
}

static gboolean
mesh_create (GstDitGenerate * self, gchar ** error)
{
  mesh_settings ms;
  dit_mesh_config c;
  dit_status st;
  gchar *text;

  if (!mesh_read_settings (self, &ms, error))
    return FALSE;
  dit_mesh_config_default (&c);
  c.preset = self->mesh_model.name;
  c.weights = self->mesh_weights;
  /* The seed gst_dit_session_load_dit gives preset weights, so a mesh and
   * the in-process generator compute with the same synthetic model. */
  c.synthetic_seed = 0;
  c.gen = self->gcfg;
  c.ranks = ms.ranks;
  c.spawn = ms.listen == NULL;
  c.worker_path = ms.worker;
  c.backend = ms.backend;
  c.devices = ms.n_devices > 0 ? ms.devices : NULL;
  c.listen = ms.listen;
  c.join_timeout_ms = ms.join_timeout_ms;
  c.chunk_timeout_ms = ms.timeout_ms;
  c.max_inflight = ms.max_inflight;
  /* The data plane: NCCL from this element's stream on the session's GPU
   * when no worker shares it, else the CPU comm (dit_mesh_config). */
  c.world_backend = self->be && dit_backend_device (self->be) == DIT_DEVICE_CUDA
      ? self->be : NULL;

  text = ms.listen ?
      g_strdup_printf ("Waiting on %s for %d dit-worker processes", ms.listen,
      ms.ranks) : g_strdup_printf ("Starting %d dit-worker processes (%s)",
      ms.ranks, ms.backend);
  GST_INFO_OBJECT (self, "%s: %s", text, ms.worker ? ms.worker : "");
  post_progress (self, GST_PROGRESS_TYPE_START, text);
  g_free (text);
  st = dit_mesh_create (&c, &self->mesh);
  if (st != DIT_OK) {
    self->mesh = NULL;
    *error = g_strdup (dit_last_error ());
    post_progress (self, GST_PROGRESS_TYPE_ERROR, *error);
  } else {
    GST_OBJECT_LOCK (self);
    self->stat_mesh_n = ms.ranks;
    for (gint r = 0; r < ms.ranks; r++) {
      self->stat_mesh_pids[r] = dit_mesh_worker_pid (self->mesh, r);
      self->stat_mesh_rank_ms[r] = 0;
    }
    GST_OBJECT_UNLOCK (self);
    post_progress (self, GST_PROGRESS_TYPE_COMPLETE, "Generator mesh ready");
  }
  mesh_settings_clear (&ms);
  return st == DIT_OK;
}

/* A new runner for self->gcfg (a seed change makes a new one too: the
 * mesh's workers are restarted then, their plan carries the seed). */
static gboolean
runner_create (GstDitGenerate * self, gchar ** error)
{
  runner_free (self);
  /* Its own backend: the generator's thread must not share a stream (and
   * cuBLASLt plans) with Stage 0's decode and encode threads.  With a mesh
   * on a device session it still moves device latents. */
  if (!self->use_mesh || gst_dit_session_on_device (self->session)) {
    self->be = gst_dit_session_new_private_backend (self->session, error);
    if (!self->be)
      return FALSE;
  }
  if (self->use_mesh)
    return mesh_create (self, error);
  if (dit_generator_create (&self->mcfg, &self->gcfg,
          gst_dit_session_get_dit_weights (self->session, NULL),
          self->be, &self->gen) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

static dit_status
runner_set_prompt (GstDitGenerate * self, const dit_tensor * embeds)
{
  if (self->mesh)
    return dit_mesh_set_prompt (self->mesh, embeds);
  return dit_generator_set_prompt (self->gen, embeds);
}

/* A new stream.  Workers keep no stream state: chunk 0 runs without a
 * cache and every later chunk rebuilds it from the request's context, so
 * the epoch bump (which drops results of older calls) is all they need. */
static void
runner_reset (GstDitGenerate * self)
{
  if (self->mesh)
    dit_mesh_bump_epoch (self->mesh);
  else if (self->gen)
    dit_generator_reset (self->gen);
}

static dit_status
runner_run_chunk (GstDitGenerate * self, const dit_chunk_request * req,
    dit_tensor * out, dit_chunk_timing * timing)
{
  dit_mesh_stats s;
  dit_status st;

  if (!self->mesh)
    return dit_generator_run_chunk (self->gen, req, out, timing);
  st = dit_mesh_run_chunk (self->mesh, req, out, timing);
  if (st == DIT_OK) {
    dit_mesh_get_stats (self->mesh, &s);
    GST_OBJECT_LOCK (self);
    memcpy (self->stat_mesh_rank_ms, s.last_rank_ms,
        sizeof self->stat_mesh_rank_ms);
    GST_OBJECT_UNLOCK (self);
  }
  return st;
}

/* Called while the element waits for input (filter mode): a worker lost
 * between chunks is reported now, not when the next chunk arrives. */
static gboolean
runner_idle (GstDitGenerate * self, gchar ** error)
{
  if (self->mesh && dit_mesh_ping (self->mesh) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

static void
free_engine (GstDitGenerate * self)
{
  free_device_output (self);
  runner_free (self);
  dit_context_free (self->ctx);
  self->ctx = NULL;
  g_clear_pointer (&self->x_in, g_free);
  g_clear_pointer (&self->x_out, g_free);
  g_clear_pointer (&self->ctx_buf, g_free);
  g_clear_pointer (&self->anchor_buf, g_free);
  GST_OBJECT_LOCK (self);
  dit_prompt_encoder_free (self->penc);
  self->penc = NULL;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->cur_rows, free);
  g_clear_pointer (&self->old_rows, free);
  g_clear_pointer (&self->new_rows, free);
  g_clear_pointer (&self->mix_rows, g_free);
  self->trans_n = -1;
  self->configured = FALSE;
}

/* The text encoder (text-model, tokenizer), made when the engine is
 * configured so that later prompt changes only queue work for its thread.
 * Without a prompt a missing tokenizer is not an error yet. */
static gboolean
ensure_text_encoder (GstDitGenerate * self, gboolean need, gchar ** error)
{
  gchar *model, *tok;
  dit_prompt_encoder *e = NULL;

  if (self->penc)
    return TRUE;
  GST_OBJECT_LOCK (self);
  model = g_strdup (self->text_model);
  tok = g_strdup (self->tokenizer);
  GST_OBJECT_UNLOCK (self);
  if (dit_prompt_encoder_create (model, tok, 0, self->mcfg.text_dim, &e)
      != DIT_OK) {
    if (need)
      *error = g_strdup_printf ("text encoder: %s", dit_last_error ());
    else
      GST_DEBUG_OBJECT (self, "no text encoder: %s", dit_last_error ());
  }
  g_free (model);
  g_free (tok);
  GST_OBJECT_LOCK (self);
  self->penc = e;
  GST_OBJECT_UNLOCK (self);
  return e != NULL || !need;
}

/* Set the prompt from the prompt-embeds file (wins when set), the text
 * prompt (encoded here once; later changes go through the encoder thread),
 * or the seeded default. */
static gboolean
apply_prompt (GstDitGenerate * self, gchar ** error)
{
  gchar *path, *prompt;
  gfloat *rows = NULL;
  gint n = 0;
  dit_status st;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->prompt_embeds);
  prompt = g_strdup (self->prompt);
  self->prompt_dirty = FALSE;
  GST_OBJECT_UNLOCK (self);

  if (!ensure_text_encoder (self, prompt && !(path && *path), error)) {
    g_free (path);
    g_free (prompt);
    return FALSE;
  }
  if (!(path && *path) && prompt && !self->cur_rows && self->trans_n < 0) {
    if (dit_prompt_encode (self->penc, prompt, &self->cur_rows, &self->cur_n)
        != DIT_OK) {
      *error = g_strdup_printf ("prompt: %s", dit_last_error ());
      g_free (path);
      g_free (prompt);
      return FALSE;
    }
  }
  g_free (prompt);

  if (!(path && *path) && (self->cur_rows || self->new_rows)) {
    const gfloat *src = self->cur_rows ? self->cur_rows : self->new_rows;
    n = self->cur_rows ? self->cur_n : self->new_n;
    rows = malloc ((gsize) n * self->mcfg.text_dim * sizeof (gfloat));
    memcpy (rows, src, (gsize) n * self->mcfg.text_dim * sizeof (gfloat));
  } else if (path && *path) {
    if (dit_stream_load_embeds (path, self->mcfg.text_dim, self->mcfg.text_len,
            &rows, &n) != DIT_OK) {
      *error = g_strdup (dit_last_error ());
      g_free (path);
      return FALSE;
    }
  } else {
    n = DIT_DEFAULT_PROMPT_ROWS;
    rows = malloc ((gsize) n * self->mcfg.text_dim * sizeof (gfloat));
    dit_stream_default_embeds (n, self->mcfg.text_dim, rows);
  }
  g_free (path);
  {
    dit_tensor t = dit_tensor_2d (rows, DIT_F32, DIT_DEVICE_CPU, n,
        self->mcfg.text_dim);
    st = runner_set_prompt (self, &t);
  }
  free (rows);
  if (st != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  self->prompt_epoch++;
  return TRUE;
}

static gboolean
create_generator (GstDitGenerate * self, gchar ** error)
{
  if (!runner_create (self, error))
    return FALSE;
  return apply_prompt (self, error);
}

/* A new stream: the KV context starts over under a new cache epoch. */
static void
reset_stream (GstDitGenerate * self)
{
  self->chunk_index = 0;
  if (self->ctx)
    dit_context_reset (self->ctx);
  runner_reset (self);
  if (self->session)
    self->epoch = gst_dit_session_bump_epoch (self->session);
  GST_DEBUG_OBJECT (self, "new cache epoch %" G_GUINT64_FORMAT, self->epoch);
}

static gboolean
configure (GstDitGenerate * self, const GstDitLatentInfo * info,
    gchar ** error)
{
  dit_gen_config cfg;
  gsize plane = (gsize) DIT_LATENT_CHANNELS * info->width * info->height;
  gint C;

  if (self->configured && info->width == self->info.width
      && info->height == self->info.height && info->frames == self->info.frames) {
    self->info = *info;
    return TRUE;
  }
  free_engine (self);
  dit_gen_config_default (&cfg);
  cfg.latent_h = info->height;
  cfg.latent_w = info->width;
  cfg.frames_per_chunk = info->frames;
  GST_OBJECT_LOCK (self);
  cfg.context_frames = C = self->context_frames;
  cfg.kv_window = self->kv_window > 0 ? self->kv_window : C + info->frames;
  cfg.kv_bias = (float) self->kv_bias;
  cfg.shift = self->shift;
  cfg.seed = self->seed;
  self->seed_dirty = FALSE;
  if (!parse_steps (self->steps, &cfg, error)) {
    GST_OBJECT_UNLOCK (self);
    return FALSE;
  }
  GST_OBJECT_UNLOCK (self);
  /* Precision: the dtype property; auto is the session's (bf16 on CUDA, f32
   * on the CPU) and, for mesh workers, bf16 when they run on CUDA.  The
   * workers get the same precision as an in-process generator would. */
  {
    gint req = dtype_precision (self->dtype);
    dit_precision prec;
    if (!self->use_mesh)
      prec = gst_dit_session_get_dit_precision (self->session);
    else if (req == GST_DIT_PRECISION_AUTO)
      prec = mesh_on_cuda (self) ? DIT_PRECISION_BF16 : DIT_PRECISION_F32;
    else
      prec = (dit_precision) req;
    cfg.dtype = dit_precision_compute_dtype (prec);
    cfg.fp8 = prec == DIT_PRECISION_FP8;
  }
  if (self->use_mesh)
    self->mcfg = self->mesh_model;
  else
    gst_dit_session_get_dit_weights (self->session, &self->mcfg);
  if (dit_gen_config_validate (&cfg, &self->mcfg) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  self->gcfg = cfg;
  if (!create_generator (self, error))
    return FALSE;
  if (dit_context_create (info->frames, C, info->height, info->width,
          self->anchor, &self->ctx) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return FALSE;
  }
  if (self->anchor == DIT_ANCHOR_DECODED
      && !gst_dit_session_display_configure (self->session, info->width * 8,
          info->height * 8, info->frames, self->max_inflight, error))
    return FALSE;
  self->x_in = g_new0 (gfloat, plane * info->frames);
  self->x_out = g_new0 (gfloat, plane * info->frames);
  self->ctx_buf = g_new0 (gfloat, plane * C);
  self->anchor_buf = g_new0 (gfloat, plane);
  self->info = *info;
  self->configured = TRUE;
  reset_stream (self);
  return TRUE;
}

/* Whether a prompt change restarts the cache (prompt-resets-cache). */
static gboolean
prompt_change_resets (GstDitGenerate * self, gboolean blending)
{
  switch (self->prompt_reset) {
    case GST_DIT_PROMPT_RESET_ALWAYS:
      return TRUE;
    case GST_DIT_PROMPT_RESET_NEVER:
      return FALSE;
    default:
      return !self->source_mode && !blending;
  }
}

/* Text prompts at a chunk boundary: take a finished encoding (never wait
 * for one: until it is ready the chunk uses the current embedding), start
 * its transition, and set this chunk's mix of old and new. */
static gboolean
apply_text_prompt (GstDitGenerate * self, gchar ** error)
{
  const gint dim = self->mcfg.text_dim;
  guint64 id, want;
  gfloat *rows = NULL;
  gint n = 0;
  dit_status st;
  gchar msg[512];
  gboolean embeds_set;

  GST_OBJECT_LOCK (self);
  want = self->prompt_request;
  embeds_set = self->prompt_embeds && *self->prompt_embeds;
  GST_OBJECT_UNLOCK (self);
  if (self->penc && dit_prompt_encoder_take (self->penc, &id, &rows, &n, &st,
          msg, sizeof msg)) {
    if (id < want || embeds_set) {
      free (rows);              /* superseded, or prompt-embeds wins */
    } else if (st != DIT_OK) {
      GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
          ("Prompt not used: %s", msg), ("keeping the current prompt"));
    } else {
      /* the new embedding takes effect: blend from what is in use now */
      g_clear_pointer (&self->old_rows, free);
      g_clear_pointer (&self->new_rows, free);
      if (self->cur_rows) {
        self->old_rows = self->cur_rows;
        self->old_n = self->cur_n;
      } else {
        self->old_n = DIT_DEFAULT_PROMPT_ROWS;
        self->old_rows = malloc ((gsize) self->old_n * dim * sizeof (gfloat));
        dit_stream_default_embeds (self->old_n, dim, self->old_rows);
      }
      self->cur_rows = NULL;
      self->new_rows = rows;
      self->new_n = n;
      GST_OBJECT_LOCK (self);
      self->trans_n = self->transition_chunks;
      GST_OBJECT_UNLOCK (self);
      self->trans_j = 0;
      self->prompt_epoch++;
      GST_DEBUG_OBJECT (self, "prompt epoch %" G_GUINT64_FORMAT ", %d-chunk "
          "transition", self->prompt_epoch, self->trans_n);
      if (prompt_change_resets (self, self->trans_n > 0))
        reset_stream (self);
    }
  }
  if (self->trans_n < 0)
    return TRUE;

  {
    gfloat w;
    gint nm;
    dit_tensor t;

    self->trans_j++;
    w = dit_prompt_transition_weight (self->trans_j, self->trans_n);
    if (!self->mix_rows)
      self->mix_rows = g_new0 (gfloat, (gsize) DIT_TOKENIZER_MAX_IDS * dim);
    dit_prompt_blend (self->old_rows, self->old_n, self->new_rows, self->new_n,
        dim, w, self->mix_rows, &nm);
    t = dit_tensor_2d (self->mix_rows, DIT_F32, DIT_DEVICE_CPU, nm, dim);
    if (runner_set_prompt (self, &t) != DIT_OK) {
      *error = g_strdup (dit_last_error ());
      return FALSE;
    }
    GST_OBJECT_LOCK (self);
    self->stat_prompt_weight = w;
    GST_OBJECT_UNLOCK (self);
    if (w >= 1.0f) {
      g_clear_pointer (&self->old_rows, free);
      self->cur_rows = self->new_rows;
      self->cur_n = self->new_n;
      self->new_rows = NULL;
      self->trans_n = -1;
    }
  }
  return TRUE;
}

/* Property changes made while PLAYING take effect at a chunk boundary. */
static gboolean
apply_changes (GstDitGenerate * self, gchar ** error)
{
  gboolean prompt, seed;
  guint64 new_seed;

  GST_OBJECT_LOCK (self);
  prompt = self->prompt_dirty;
  seed = self->seed_dirty;
  new_seed = self->seed;
  self->seed_dirty = FALSE;
  GST_OBJECT_UNLOCK (self);

  if (seed) {
    /* The KV cache is rebuilt from the context every chunk, so a new
     * generator continues the stream seamlessly with the new noise. */
    self->gcfg.seed = new_seed;
    if (!create_generator (self, error))
      return FALSE;
    prompt = FALSE;
  }
  if (prompt) {
    if (!apply_prompt (self, error))
      return FALSE;
    /* With video input a new prompt restarts the cache (scope does the
     * same); text-to-video keeps the context and follows the new prompt. */
    if (prompt_change_resets (self, FALSE))
      reset_stream (self);
  }
  return apply_text_prompt (self, error);
}

/* The chunk in self->dev_x (f32) into a pooled device buffer in the caps'
 * dtype, converted on the generator's stream; the buffer is marked
 * written there, so nothing here waits.  A mesh result arrives on the
 * host and is uploaded first. */
static gboolean
device_output_buffer (GstDitGenerate * self, GstBuffer ** out, gchar ** error)
{
  GstBuffer *buf = NULL;
  GstMemory *mem;
  gint64 n = dit_tensor_numel (&self->dev_x);
  dit_tensor src, dst;
  dit_copy_params cp;

  if (gst_buffer_pool_acquire_buffer (self->out_pool, &buf, NULL)
      != GST_FLOW_OK || !(mem = gst_dit_buffer_device_memory (buf))) {
    if (buf)
      gst_buffer_unref (buf);
    *error = g_strdup ("no device latent buffer from the pool");
    return FALSE;
  }
  src = dit_tensor_2d (self->dev_x.data, DIT_F32, self->dev_x.device, 1, n);
  dst = dit_tensor_2d (gst_dit_device_memory_data (mem),
      self->info.bf16 ? DIT_BF16 : DIT_F32, self->dev_x.device, 1, n);
  cp.x = &src;
  cp.y = &dst;
  if (!gst_dit_device_memory_begin_write (mem, self->be, error))
    goto fail;
  if ((self->mesh && dit_upload (self->be, self->dev_x.data,
              self->x_out, dit_tensor_nbytes (&self->dev_x)) != DIT_OK)
      || dit_copy (self->be, &cp) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    goto fail;
  }
  if (!gst_dit_device_memory_written (mem, self->be, error))
    goto fail;
  *out = buf;
  return TRUE;

fail:
  gst_buffer_unref (buf);
  return FALSE;
}

static GstFlowReturn
run_chunk (GstDitGenerate * self, GstBuffer * in, GstBuffer ** out)
{
  const gint F = self->info.frames, h = self->info.height, w = self->info.width;
  gint64 shape[4] = { DIT_LATENT_CHANNELS, F, h, w };
  gint64 cshape[4] = { DIT_LATENT_CHANNELS, self->gcfg.context_frames, h, w };
  dit_tensor xin, xout, ctx;
  dit_chunk_request req;
  dit_chunk_timing tm;
  gchar *error = NULL;
  GstDitLatentMeta *meta, *in_meta = NULL;
  GstBuffer *buf;
  GstMapInfo map;
  GstMemory *in_dev = NULL;
  gint valid = -1;
  gdouble strength;
  gint64 t_gen;
  gboolean gen_on_device = self->out_device && !self->mesh;

  if (!apply_changes (self, &error))
    goto lib_error;

  memset (&req, 0, sizeof req);
  req.chunk_index = self->chunk_index;
  if (self->chunk_index > 0) {
    if (dit_context_build (self->ctx, self->chunk_index, self->ctx_buf)
        != DIT_OK)
      goto dit_error;
    ctx = dit_tensor_make (self->ctx_buf, DIT_F32, DIT_DEVICE_CPU, 4, cshape);
    req.context = &ctx;
  }
  if (in) {
    if (gst_buffer_get_size (in) < gst_dit_latent_info_buffer_size (&self->info)) {
      error = g_strdup_printf ("input chunk of %" G_GSIZE_FORMAT " bytes, "
          "caps need %" G_GSIZE_FORMAT, gst_buffer_get_size (in),
          gst_dit_latent_info_buffer_size (&self->info));
      goto lib_error;
    }
    /* Device latents go to the in-process generator as they are (its
     * stream waits for their producer); the mesh takes host memory. */
    in_dev = self->mesh ? NULL : gst_dit_buffer_device_memory (in);
    if (in_dev) {
      if (!gst_dit_device_memory_begin_read (in_dev, self->be, &error))
        goto lib_error;
      xin = dit_tensor_make (gst_dit_device_memory_data (in_dev),
          self->info.bf16 ? DIT_BF16 : DIT_F32, dit_backend_device (self->be), 4,
          shape);
    } else {
      if (!gst_buffer_map (in, &map, GST_MAP_READ))
        goto map_error;
      gst_dit_latent_to_f32 (&self->info, map.data, self->x_in);
      gst_buffer_unmap (in, &map);
      xin = dit_tensor_make (self->x_in, DIT_F32, DIT_DEVICE_CPU, 4, shape);
    }
    req.init_latents = &xin;
    GST_OBJECT_LOCK (self);
    strength = self->strength;
    GST_OBJECT_UNLOCK (self);
    req.first_step = dit_stream_first_step (self->gcfg.steps,
        self->gcfg.num_steps, strength);
    in_meta = gst_buffer_get_dit_latent_meta (in);
    if (in_meta)
      valid = in_meta->valid_frames;
  }
  xout = gen_on_device ? self->dev_x : dit_tensor_make (self->x_out, DIT_F32,
      DIT_DEVICE_CPU, 4, shape);
  t_gen = g_get_monotonic_time ();
  if (runner_run_chunk (self, &req, &xout, &tm) != DIT_OK)
    goto dit_error;
  if (in_dev && !gst_dit_device_memory_read_done (in_dev, self->be, &error))
    goto lib_error;
  /* Stage 0's context ring and decode queue keep host latents. */
  if (gen_on_device && dit_download (self->be, self->x_out,
          self->dev_x.data, dit_tensor_nbytes (&self->dev_x)) != DIT_OK)
    goto dit_error;
  self->stage1_ms_pending = (g_get_monotonic_time () - t_gen) / 1000.0;
  if (dit_context_push_chunk (self->ctx, self->chunk_index, self->x_out)
      != DIT_OK)
    goto dit_error;

  /* Anchor path, before the chunk leaves: decode up to the next anchor's
   * latent in the display decoder and re-encode its last frame. */
  if (self->anchor == DIT_ANCHOR_DECODED) {
    gint64 a = dit_context_anchor_latent (self->ctx, self->chunk_index + 1);
    switch (gst_dit_session_anchor (self->session, self->epoch,
            self->chunk_index * F, F, self->x_out, a, self->anchor_buf,
            &error)) {
      case GST_DIT_DECODE_OK:
        break;
      case GST_DIT_DECODE_FLUSHING:
      case GST_DIT_DECODE_STALE:
        return GST_FLOW_FLUSHING;
      case GST_DIT_DECODE_ERROR:
        goto lib_error;
    }
    if (a >= 0)
      dit_context_set_anchor (self->ctx, self->chunk_index + 1,
          self->anchor_buf);
  }

  if (self->out_device) {
    if (!device_output_buffer (self, &buf, &error))
      goto lib_error;
  } else {
    buf = gst_buffer_new_allocate (NULL,
        gst_dit_latent_info_buffer_size (&self->info), NULL);
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    gst_dit_latent_from_f32 (&self->info, self->x_out, map.data);
    gst_buffer_unmap (buf, &map);
  }

  if (in) {
    gst_buffer_copy_into (buf, in, GST_BUFFER_COPY_FLAGS |
        GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  } else {
    gint n = dit_stream_chunk_frames (self->chunk_index, F);
    GstClockTime t0 = gst_util_uint64_scale (self->frames_out,
        self->info.fps_d * GST_SECOND, self->info.fps_n);
    GstClockTime t1 = gst_util_uint64_scale (self->frames_out + n,
        self->info.fps_d * GST_SECOND, self->info.fps_n);
    GST_BUFFER_PTS (buf) = t0;
    GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION (buf) = t1 - t0;
    GST_BUFFER_OFFSET (buf) = self->frames_out;
    GST_BUFFER_OFFSET_END (buf) = self->frames_out + n;
    self->frames_out += n;
  }
  meta = gst_buffer_add_dit_latent_meta (buf);
  meta->chunk_index = self->chunk_index;
  meta->cache_epoch = self->epoch;
  meta->prompt_epoch = self->prompt_epoch;
  meta->seed = self->gcfg.seed;
  meta->valid_frames = valid;
  meta->chunk_ms = tm.total_ms;
  meta->recompute_ms = tm.recompute_ms;
  meta->denoise_ms = tm.denoise_ms;
  meta->produced_ns = g_get_monotonic_time () * 1000;

  GST_LOG_OBJECT (self, "chunk %" G_GINT64_FORMAT " epoch %" G_GUINT64_FORMAT
      " in %.1f ms", self->chunk_index, self->epoch, tm.total_ms);
  GST_OBJECT_LOCK (self);
  self->stat_chunk_ms = tm.total_ms;
  GST_OBJECT_UNLOCK (self);
  self->chunk_index++;
  *out = buf;
  return GST_FLOW_OK;

dit_error:
  error = g_strdup (dit_last_error ());
lib_error:
  GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", error),
      ("chunk %" G_GINT64_FORMAT " failed", self->chunk_index));
  g_free (error);
  return GST_FLOW_ERROR;
map_error:
  GST_ELEMENT_ERROR (self, RESOURCE, READ, ("could not map an input chunk"),
      (NULL));
  return GST_FLOW_ERROR;
}

/* ------------------------------------------------------------------ */
/* negotiation */

static gboolean
negotiate_source (GstDitGenerate * self)
{
  GstCaps *tmpl = gst_pad_get_pad_template_caps (self->srcpad);
  GstCaps *caps = gst_pad_peer_query_caps (self->srcpad, tmpl);
  GstStructure *s;
  GstDitLatentInfo info;
  gchar *why = NULL, *error = NULL;
  gint fps_n, fps_d;
  gboolean device = gst_dit_peer_takes_device (self->srcpad, self->session);

  gst_caps_unref (tmpl);
  if (!gst_caps_is_empty (caps)) {
    caps = gst_dit_caps_keep_memory (caps, device);
    if (gst_caps_is_empty (caps)) {
      gst_caps_unref (caps);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("downstream takes latents "
              "only in device memory (" GST_DIT_CAPS_FEATURE_DEVICE "), which "
              "needs the session on a CUDA device (device=cuda:N)"), (NULL));
      return FALSE;
    }
  }
  if (gst_caps_is_empty (caps)) {
    gst_caps_unref (caps);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("downstream accepts no latent caps"), (NULL));
    return FALSE;
  }
  caps = gst_caps_truncate (caps);
  caps = gst_caps_make_writable (caps);
  s = gst_caps_get_structure (caps, 0);
  GST_OBJECT_LOCK (self);
  fps_n = self->fps_n;
  fps_d = self->fps_d;
  GST_OBJECT_UNLOCK (self);
  gst_structure_fixate_field_nearest_int (s, "width", DEFAULT_WIDTH / 8);
  gst_structure_fixate_field_nearest_int (s, "height", DEFAULT_HEIGHT / 8);
  gst_structure_fixate_field_nearest_int (s, "frames", DEFAULT_FRAMES);
  gst_structure_fixate_field_nearest_int (s, "channels", 16);
  gst_structure_fixate_field_string (s, "dtype", "f32");
  gst_structure_fixate_field_nearest_fraction (s, "framerate", fps_n, fps_d);
  caps = gst_caps_fixate (caps);

  if (!gst_dit_latent_info_from_caps (&info, caps, &why)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
        ("negotiated %" GST_PTR_FORMAT, caps));
    g_free (why);
    gst_caps_unref (caps);
    return FALSE;
  }
  if (!configure (self, &info, &error)
      || !setup_device_output (self, device, &error)) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error), (NULL));
    g_free (error);
    gst_caps_unref (caps);
    return FALSE;
  }
  if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (caps))) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("downstream refused %" GST_PTR_FORMAT, caps), (NULL));
    gst_caps_unref (caps);
    return FALSE;
  }
  gst_caps_unref (caps);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* task */

static gdouble
median_of (const gdouble * v, guint n)
{
  gdouble t[OVERLAP_WINDOW];

  memcpy (t, v, n * sizeof *v);
  for (guint i = 1; i < n; i++)
    for (guint j = i; j > 0 && t[j - 1] > t[j]; j--) {
      gdouble x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  return n ? (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])) : 0.0;
}

/* Per chunk: stage 0 (Stage 0's decode and anchor work since the last
 * push), stage 1 (the generator call), the period, and the hidden time
 * stage0 + stage1 - period: how much of the two stages ran at the same
 * time.  overlap-score = median hidden / min (median stage 0, median
 * stage 1) over the last OVERLAP_WINDOW chunks: 0 = serial, 1 = the
 * shorter stage is completely hidden. */
static void
update_overlap (GstDitGenerate * self, gint64 now)
{
  gint64 busy = self->session ?
      gst_dit_session_stage0_busy_us (self->session) : 0;
  gdouble stage0 = (busy - self->stage0_busy_us) / 1000.0;
  gdouble period = (now - self->last_push_us) / 1000.0;
  gdouble hidden = MAX (0.0, stage0 + self->stage1_ms_pending - period);
  guint i = self->ring_n % OVERLAP_WINDOW, n;
  gdouble m0, m1;

  self->stage0_busy_us = busy;
  self->hidden_ring[i] = hidden;
  self->stage0_ring[i] = stage0;
  self->stage1_ring[i] = self->stage1_ms_pending;
  self->ring_n++;
  n = MIN (self->ring_n, OVERLAP_WINDOW);
  m0 = median_of (self->stage0_ring, n);
  m1 = median_of (self->stage1_ring, n);
  GST_OBJECT_LOCK (self);
  self->stat_stage0_ms = stage0;
  self->stat_stage1_ms = self->stage1_ms_pending;
  self->stat_period_ms = period;
  self->stat_hidden_ms = hidden;
  self->stat_overlap = MIN (m0, m1) > 0 ?
      median_of (self->hidden_ring, n) / MIN (m0, m1) : 0.0;
  GST_OBJECT_UNLOCK (self);
}

static void
update_stats (GstDitGenerate * self, gint frames)
{
  gint64 now = g_get_monotonic_time ();

  if (self->last_push_us > 0 && now > self->last_push_us)
    update_overlap (self, now);
  else if (self->session)
    self->stage0_busy_us = gst_dit_session_stage0_busy_us (self->session);
  GST_OBJECT_LOCK (self);
  if (self->last_push_us > 0 && now > self->last_push_us)
    self->stat_fps = frames * 1e6 / (now - self->last_push_us);
  self->stat_chunks++;
  GST_OBJECT_UNLOCK (self);
  self->last_push_us = now;

  /* Tell the application when the processing latency moved by > 20%. */
  if (!self->source_mode && (self->latency_ms == 0
          || fabs (self->stat_chunk_ms - self->latency_ms) >
          0.2 * self->latency_ms)) {
    self->latency_ms = self->stat_chunk_ms;
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  }
}

static void
pause_task (GstDitGenerate * self, GstFlowReturn ret)
{
  g_mutex_lock (&self->qlock);
  if (self->srcresult == GST_FLOW_OK)
    self->srcresult = ret;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);
  GST_DEBUG_OBJECT (self, "pausing task: %s", gst_flow_get_name (ret));
  gst_pad_pause_task (self->srcpad);
  if (ret == GST_FLOW_EOS)
    return;
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    GST_ELEMENT_FLOW_ERROR (self, ret);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
}

static GstFlowReturn
push_chunk (GstDitGenerate * self, GstBuffer * buf)
{
  gint frames = (gint) (GST_BUFFER_OFFSET_END (buf) - GST_BUFFER_OFFSET (buf));
  GstDitLatentMeta *m = gst_buffer_get_dit_latent_meta (buf);

  if (!GST_BUFFER_OFFSET_END_IS_VALID (buf) || frames <= 0)
    frames = dit_stream_chunk_frames (m->chunk_index, self->info.frames);
  update_stats (self, frames);
  return gst_pad_push (self->srcpad, buf);
}

static void
start_source (GstDitGenerate * self)
{
  gchar *sid = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self),
      NULL);
  GstSegment seg;

  gst_pad_push_event (self->srcpad, gst_event_new_stream_start (sid));
  g_free (sid);
  if (!negotiate_source (self)) {
    pause_task (self, GST_FLOW_NOT_NEGOTIATED);
    return;
  }
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
  self->started = TRUE;
}

static void
loop_source (GstDitGenerate * self)
{
  GstBuffer *out = NULL;
  GstFlowReturn ret;
  guint limit;
  gboolean eos;

  if (!self->started) {
    start_source (self);
    if (!self->started)
      return;
  }
  GST_OBJECT_LOCK (self);
  limit = self->num_chunks;
  GST_OBJECT_UNLOCK (self);
  g_mutex_lock (&self->qlock);
  eos = self->eos_pending;
  g_mutex_unlock (&self->qlock);
  if (eos || (limit > 0 && self->stat_chunks >= limit)) {
    GST_DEBUG_OBJECT (self, "end of stream after %" G_GUINT64_FORMAT
        " chunks%s", self->stat_chunks, eos ? " (EOS sent to the element)" :
        "");
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
    pause_task (self, GST_FLOW_EOS);
    return;
  }
  ret = run_chunk (self, NULL, &out);
  if (ret == GST_FLOW_OK)
    ret = push_chunk (self, out);
  if (ret != GST_FLOW_OK)
    pause_task (self, ret);
}

static gboolean
handle_queued_event (GstDitGenerate * self, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    GstDitLatentInfo info;
    gchar *why = NULL, *error = NULL;

    gboolean device;

    gst_event_parse_caps (event, &caps);
    /* Validated in the sink event handler already. */
    gst_dit_latent_info_from_caps (&info, caps, &why);
    g_free (why);
    /* The same latents; the memory is chosen for the downstream link. */
    device = gst_dit_peer_takes_device (self->srcpad, self->session);
    if (!configure (self, &info, &error)
        || !setup_device_output (self, device, &error)) {
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error), (NULL));
      g_free (error);
      gst_event_unref (event);
      return FALSE;
    }
    caps = gst_dit_latent_info_to_caps (&info);
    if (device) {
      GstCaps *d = gst_dit_caps_with_feature (caps,
          GST_DIT_CAPS_FEATURE_DEVICE);
      gst_caps_unref (caps);
      caps = d;
    }
    gst_event_unref (event);
    event = gst_event_new_caps (caps);
    gst_caps_unref (caps);
  }
  return gst_pad_push_event (self->srcpad, event);
}

static void
loop_filter (GstDitGenerate * self)
{
  GstMiniObject *item;
  GstFlowReturn ret = GST_FLOW_OK;

  g_mutex_lock (&self->qlock);
  while (g_queue_is_empty (&self->queue) && self->srcresult == GST_FLOW_OK) {
    gchar *error = NULL;
    if (!self->mesh) {
      g_cond_wait (&self->qcond, &self->qlock);
    } else if (!g_cond_wait_until (&self->qcond, &self->qlock,
            g_get_monotonic_time () + MESH_IDLE_US)) {
      gboolean ok;
      g_mutex_unlock (&self->qlock);
      ok = runner_idle (self, &error);
      if (!ok) {
        GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", error),
            ("generator mesh lost while idle"));
        g_free (error);
        pause_task (self, GST_FLOW_ERROR);
        return;
      }
      g_mutex_lock (&self->qlock);
    }
  }
  if (self->srcresult != GST_FLOW_OK) {
    ret = self->srcresult;
    g_mutex_unlock (&self->qlock);
    gst_pad_pause_task (self->srcpad);
    return;
  }
  item = g_queue_pop_head (&self->queue);
  if (GST_IS_BUFFER (item))
    self->queued_buffers--;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);

  if (GST_IS_BUFFER (item)) {
    GstBuffer *in = GST_BUFFER (item), *out = NULL;
    if (!self->configured) {
      gst_buffer_unref (in);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("received a chunk before caps"), (NULL));
      ret = GST_FLOW_NOT_NEGOTIATED;
    } else {
      ret = run_chunk (self, in, &out);
      gst_buffer_unref (in);
      if (ret == GST_FLOW_OK)
        ret = push_chunk (self, out);
    }
  } else {
    GstEvent *event = GST_EVENT (item);
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    if (!handle_queued_event (self, event) && !eos)
      GST_DEBUG_OBJECT (self, "downstream refused a serialized event");
    if (eos)
      ret = GST_FLOW_EOS;
  }
  if (ret != GST_FLOW_OK)
    pause_task (self, ret);
}

static void
gst_dit_generate_loop (GstDitGenerate * self)
{
  if (self->source_mode)
    loop_source (self);
  else
    loop_filter (self);
}

/* ------------------------------------------------------------------ */
/* pads */

static void
clear_queue (GstDitGenerate * self)
{
  GstMiniObject *o;

  while ((o = g_queue_pop_head (&self->queue))) {
    /* Keep sticky events other than EOS/segment for after the flush. */
    gst_mini_object_unref (o);
  }
  self->queued_buffers = 0;
}

static GstFlowReturn
gst_dit_generate_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);
  GstFlowReturn ret;
  gint limit;

  g_mutex_lock (&self->qlock);
  GST_OBJECT_LOCK (self);
  limit = self->max_inflight;
  GST_OBJECT_UNLOCK (self);
  /* The bounded hand-off: block upstream while the queue is full. */
  while (self->queued_buffers >= limit && self->srcresult == GST_FLOW_OK)
    g_cond_wait (&self->qcond, &self->qlock);
  ret = self->srcresult;
  if (ret == GST_FLOW_OK) {
    g_queue_push_tail (&self->queue, buf);
    self->queued_buffers++;
    g_cond_broadcast (&self->qcond);
  } else {
    gst_buffer_unref (buf);
  }
  g_mutex_unlock (&self->qlock);
  return ret;
}

static gboolean
gst_dit_generate_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      gst_pad_push_event (self->srcpad, event);
      g_mutex_lock (&self->qlock);
      self->srcresult = GST_FLOW_FLUSHING;
      g_cond_broadcast (&self->qcond);
      g_mutex_unlock (&self->qlock);
      if (self->session)
        gst_dit_session_set_flushing (self->session, TRUE);
      gst_pad_pause_task (self->srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->qlock);
      clear_queue (self);
      self->srcresult = GST_FLOW_OK;
      g_mutex_unlock (&self->qlock);
      if (self->session)
        gst_dit_session_set_flushing (self->session, FALSE);
      /* Cached KV context and anchors belong to the old position. */
      reset_stream (self);
      gst_pad_push_event (self->srcpad, event);
      gst_pad_start_task (self->srcpad,
          (GstTaskFunction) gst_dit_generate_loop, self, NULL);
      return TRUE;
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      GstDitLatentInfo info;
      gchar *why = NULL;

      gst_event_parse_caps (event, &caps);
      if (!gst_dit_latent_info_from_caps (&info, caps, &why)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
            ("caps %" GST_PTR_FORMAT, caps));
        g_free (why);
        gst_event_unref (event);
        return FALSE;
      }
      if (gst_dit_caps_has_feature (caps, GST_DIT_CAPS_FEATURE_DEVICE)
          && !gst_dit_session_on_device (self->session)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("latents in device "
                "memory need the session on a CUDA device (device=cuda:N)"),
            ("caps %" GST_PTR_FORMAT, caps));
        gst_event_unref (event);
        return FALSE;
      }
      break;
    }
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED (event)) {
    gboolean ok;
    g_mutex_lock (&self->qlock);
    ok = self->srcresult == GST_FLOW_OK;
    if (ok) {
      g_queue_push_tail (&self->queue, event);
      g_cond_broadcast (&self->qcond);
    }
    g_mutex_unlock (&self->qlock);
    if (!ok)
      gst_event_unref (event);
    return ok;
  }
  return gst_pad_push_event (self->srcpad, event);
}

static gboolean
gst_dit_generate_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *tmpl = gst_pad_get_pad_template_caps (pad), *caps;
      gst_query_parse_caps (query, &filter);
      /* Output latents equal input latents, in either memory. */
      caps = gst_dit_caps_any_memory (gst_pad_peer_query_caps (self->srcpad,
              tmpl));
      gst_caps_unref (tmpl);
      if (filter) {
        GstCaps *t = gst_caps_intersect_full (filter, caps,
            GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
        caps = t;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    case GST_QUERY_CONTEXT:
      if (gst_dit_session_handle_context_query (GST_ELEMENT (self), query,
              self->session))
        return TRUE;
      break;
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_dit_generate_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:{
      gboolean live = FALSE;
      GstClockTime min = 0, max = GST_CLOCK_TIME_NONE, own, chunk_dur;
      gint depth, fps_n, fps_d;

      if (!self->source_mode && self->sinkpad) {
        if (!gst_pad_peer_query (self->sinkpad, query))
          return FALSE;
        gst_query_parse_latency (query, &live, &min, &max);
      }
      GST_OBJECT_LOCK (self);
      own = (GstClockTime) (self->stat_chunk_ms * GST_MSECOND);
      depth = self->max_inflight;
      GST_OBJECT_UNLOCK (self);
      fps_n = self->configured ? self->info.fps_n : self->fps_n;
      fps_d = self->configured ? self->info.fps_d : self->fps_d;
      chunk_dur = gst_util_uint64_scale (4 * (self->configured ?
              self->info.frames : DEFAULT_FRAMES), fps_d * GST_SECOND, fps_n);
      /* min: one chunk of processing; max: what the bounded input queue
       * and the chunk being processed can hold. */
      min += own;
      if (GST_CLOCK_TIME_IS_VALID (max))
        max += MAX (own, (depth + 1) * chunk_dur);
      GST_DEBUG_OBJECT (self, "latency live %d min %" GST_TIME_FORMAT " max %"
          GST_TIME_FORMAT, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
      gst_query_set_latency (query, live, min, max);
      return TRUE;
    }
    case GST_QUERY_CAPS:
      if (!self->source_mode && self->sinkpad) {
        GstCaps *filter, *tmpl = gst_pad_get_pad_template_caps (pad), *caps;
        gst_query_parse_caps (query, &filter);
        caps = gst_dit_caps_any_memory (gst_pad_peer_query_caps
            (self->sinkpad, tmpl));
        gst_caps_unref (tmpl);
        if (filter) {
          GstCaps *t = gst_caps_intersect_full (filter, caps,
              GST_CAPS_INTERSECT_FIRST);
          gst_caps_unref (caps);
          caps = t;
        }
        gst_query_set_caps_result (query, caps);
        gst_caps_unref (caps);
        return TRUE;
      }
      break;
    case GST_QUERY_CONTEXT:
      if (gst_dit_session_handle_context_query (GST_ELEMENT (self), query,
              self->session))
        return TRUE;
      break;
    case GST_QUERY_SCHEDULING:
      gst_query_set_scheduling (query, GST_SCHEDULING_FLAG_SEQUENTIAL, 1, -1,
          0);
      gst_query_add_scheduling_mode (query, GST_PAD_MODE_PUSH);
      return TRUE;
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_dit_generate_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  if (self->source_mode || !self->sinkpad) {
    /* A source without seeking: answer upstream events ourselves. */
    gboolean ok = GST_EVENT_TYPE (event) == GST_EVENT_QOS
        || GST_EVENT_TYPE (event) == GST_EVENT_RECONFIGURE
        || GST_EVENT_TYPE (event) == GST_EVENT_LATENCY;
    gst_event_unref (event);
    return ok;
  }
  return gst_pad_push_event (self->sinkpad, event);
}

static gboolean
gst_dit_generate_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active) {
    g_mutex_lock (&self->qlock);
    self->srcresult = GST_FLOW_OK;
    self->eos_pending = FALSE;
    g_mutex_unlock (&self->qlock);
    self->source_mode = !self->sinkpad || !gst_pad_is_linked (self->sinkpad);
    self->started = FALSE;
    GST_DEBUG_OBJECT (self, "starting in %s mode",
        self->source_mode ? "source (text-to-video)" : "video-to-video");
    if (self->session)
      gst_dit_session_set_flushing (self->session, FALSE);
    return gst_pad_start_task (pad, (GstTaskFunction) gst_dit_generate_loop,
        self, NULL);
  }
  g_mutex_lock (&self->qlock);
  self->srcresult = GST_FLOW_FLUSHING;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);
  if (self->session)
    gst_dit_session_set_flushing (self->session, TRUE);
  gst_pad_stop_task (pad);
  g_mutex_lock (&self->qlock);
  clear_queue (self);
  self->eos_pending = FALSE;
  g_mutex_unlock (&self->qlock);
  return TRUE;
}

/* Text-to-video has no upstream that could end the stream: an EOS sent to
 * the element (gst-launch-1.0 -e sends it to the pipeline, which hands it
 * to its sources) ends it after the chunk in flight, as in GstBaseSrc. */
static gboolean
gst_dit_generate_send_event (GstElement * element, GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  gboolean source;

  if (GST_EVENT_TYPE (event) != GST_EVENT_EOS)
    return GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->send_event
        (element, event);
  GST_OBJECT_LOCK (self);
  source = !self->sinkpad || !gst_pad_is_linked (self->sinkpad);
  GST_OBJECT_UNLOCK (self);
  if (!source)
    return GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->send_event
        (element, event);
  GST_DEBUG_OBJECT (self, "EOS sent to the source: ending the stream");
  g_mutex_lock (&self->qlock);
  self->eos_pending = TRUE;
  g_mutex_unlock (&self->qlock);
  gst_event_unref (event);
  return TRUE;
}

static GstPad *
gst_dit_generate_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  GstPad *pad;

  GST_OBJECT_LOCK (self);
  if (self->sinkpad) {
    GST_OBJECT_UNLOCK (self);
    GST_WARNING_OBJECT (self, "only one sink pad is supported");
    return NULL;
  }
  GST_OBJECT_UNLOCK (self);
  pad = gst_pad_new_from_template (templ, "sink");
  gst_pad_set_chain_function (pad, GST_DEBUG_FUNCPTR (gst_dit_generate_chain));
  gst_pad_set_event_function (pad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_sink_event));
  gst_pad_set_query_function (pad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_sink_query));
  GST_PAD_SET_PROXY_ALLOCATION (pad);
  GST_OBJECT_LOCK (self);
  self->sinkpad = pad;
  /* A filter now: a pipeline's EOS reaches it from upstream. */
  GST_OBJECT_FLAG_UNSET (self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK (self);
  if (GST_STATE (element) > GST_STATE_READY)
    gst_pad_set_active (pad, TRUE);
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_dit_generate_release_pad (GstElement * element, GstPad * pad)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);

  if (pad != self->sinkpad)
    return;
  GST_OBJECT_LOCK (self);
  self->sinkpad = NULL;
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK (self);
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

/* ------------------------------------------------------------------ */
/* state */

static gboolean
load_weights (GstDitGenerate * self)
{
  gchar *model, *vae, *device, *key, *error = NULL;
  gboolean ok;
  dit_anchor_mode anchor;
  GstDitAnchorDecoder anchor_decoder;
  mesh_settings ms;

  GST_OBJECT_LOCK (self);
  model = g_strdup (self->model);
  vae = g_strdup (self->vae_model);
  device = g_strdup (self->device);
  key = g_strdup (self->session_key);
  anchor = self->anchor;
  anchor_decoder = self->anchor_decoder;
  GST_OBJECT_UNLOCK (self);

  if (!mesh_read_settings (self, &ms, &error)) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error),
        ("generator mesh settings"));
    g_free (error);
    g_free (model);
    g_free (vae);
    g_free (device);
    g_free (key);
    return FALSE;
  }
  self->use_mesh = ms.ranks > 0;
  gst_dit_session_ensure (GST_ELEMENT (self), key, &self->session);
  gst_dit_session_set_anchor_decoder (self->session,
      anchor_decoder == GST_DIT_ANCHOR_DECODER_TINY);
  /* A mesh holds the DiT in its workers: only its config is read here. */
  if (self->use_mesh)
    ok = mesh_model_config (self, model, ms.ranks, &error);
  else
    ok = gst_dit_session_load_dit (self->session, GST_ELEMENT (self), model,
        device, dtype_precision (self->dtype), &error);
  mesh_settings_clear (&ms);
  if (ok && anchor == DIT_ANCHOR_DECODED)
    ok = gst_dit_session_load_vae (self->session, GST_ELEMENT (self), vae,
        device, &error);
  if (!ok) {
    const gchar *path = ok ? NULL : model;
    if (path && !g_file_test (path, G_FILE_TEST_EXISTS)
        && strchr (path, G_DIR_SEPARATOR))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", error),
          ("model '%s'", model));
    else
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", error),
          ("model '%s', vae-model '%s'", model ? model : GST_DIT_DEFAULT_MODEL,
              vae ? vae : GST_DIT_DEFAULT_VAE));
  }
  g_free (error);
  g_free (model);
  g_free (vae);
  g_free (device);
  g_free (key);
  return ok;
}

static GstStateChangeReturn
gst_dit_generate_change_state (GstElement * element, GstStateChange transition)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!load_weights (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      GST_OBJECT_LOCK (self);
      self->stat_chunks = 0;
      self->stat_fps = 0;
      self->stat_chunk_ms = 0;
      GST_OBJECT_UNLOCK (self);
      self->frames_out = 0;
      self->last_push_us = 0;
      self->ring_n = 0;
      self->latency_ms = 0;
      self->prompt_epoch = 0;
      if (self->configured)
        reset_stream (self);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->change_state
      (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      free_engine (self);
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      gst_clear_object (&self->session);
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_dit_generate_set_context (GstElement * element, GstContext * context)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  gchar *key;

  GST_OBJECT_LOCK (self);
  key = g_strdup (self->session_key);
  GST_OBJECT_UNLOCK (self);
  gst_dit_session_handle_set_context (element, context, key, &self->session);
  g_free (key);
  GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->set_context (element,
      context);
}

/* ------------------------------------------------------------------ */
/* properties */

static void
set_string (GstDitGenerate * self, gchar ** field, const GValue * value)
{
  GST_OBJECT_LOCK (self);
  g_free (*field);
  *field = g_value_dup_string (value);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_generate_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);

  switch (prop_id) {
    case PROP_MODEL:
      set_string (self, &self->model, value);
      break;
    case PROP_VAE_MODEL:
      set_string (self, &self->vae_model, value);
      break;
    case PROP_PROMPT_EMBEDS:
      set_string (self, &self->prompt_embeds, value);
      GST_OBJECT_LOCK (self);
      self->prompt_dirty = TRUE;
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_PROMPT:
      set_string (self, &self->prompt, value);
      GST_OBJECT_LOCK (self);
      /* running: queue it for the encoder thread; otherwise it is encoded
       * when the engine is configured */
      if (self->penc && self->prompt)
        self->prompt_request = dit_prompt_encoder_submit (self->penc,
            self->prompt);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TEXT_MODEL:
      set_string (self, &self->text_model, value);
      break;
    case PROP_TOKENIZER:
      set_string (self, &self->tokenizer, value);
      break;
    case PROP_DEVICE:
      set_string (self, &self->device, value);
      break;
    case PROP_DTYPE:
      GST_OBJECT_LOCK (self);
      self->dtype = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SESSION:
      set_string (self, &self->session_key, value);
      break;
    case PROP_STEPS:
      set_string (self, &self->steps, value);
      break;
    case PROP_PROMPT_TRANSITION_CHUNKS:
      GST_OBJECT_LOCK (self);
      self->transition_chunks = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_PROMPT_RESETS_CACHE:
      GST_OBJECT_LOCK (self);
      self->prompt_reset = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SEED:
      GST_OBJECT_LOCK (self);
      self->seed = g_value_get_uint64 (value);
      self->seed_dirty = TRUE;
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SHIFT:
      GST_OBJECT_LOCK (self);
      self->shift = g_value_get_double (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_STRENGTH:
      GST_OBJECT_LOCK (self);
      self->strength = g_value_get_double (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_KV_WINDOW:
      GST_OBJECT_LOCK (self);
      self->kv_window = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_CONTEXT_FRAMES:
      GST_OBJECT_LOCK (self);
      self->context_frames = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_KV_BIAS:
      GST_OBJECT_LOCK (self);
      self->kv_bias = g_value_get_double (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_MAX_INFLIGHT:
      g_mutex_lock (&self->qlock);
      GST_OBJECT_LOCK (self);
      self->max_inflight = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      g_cond_broadcast (&self->qcond);
      g_mutex_unlock (&self->qlock);
      break;
    case PROP_ANCHOR_DECODER:
      GST_OBJECT_LOCK (self);
      self->anchor_decoder = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_ANCHOR:
      GST_OBJECT_LOCK (self);
      self->anchor = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_NUM_CHUNKS:
      GST_OBJECT_LOCK (self);
      self->num_chunks = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_FRAMERATE:
      GST_OBJECT_LOCK (self);
      self->fps_n = gst_value_get_fraction_numerator (value);
      self->fps_d = gst_value_get_fraction_denominator (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_MESH_DEVICES:
      set_string (self, &self->mesh_devices, value);
      break;
    case PROP_MESH_BACKEND:
      set_string (self, &self->mesh_backend, value);
      break;
    case PROP_MESH_LISTEN:
      set_string (self, &self->mesh_listen, value);
      break;
    case PROP_WORKER_PATH:
      set_string (self, &self->worker_path, value);
      break;
    case PROP_MESH_RANKS:
      GST_OBJECT_LOCK (self);
      self->mesh_ranks = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_MESH_TIMEOUT_MS:
      GST_OBJECT_LOCK (self);
      self->mesh_timeout_ms = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_MESH_JOIN_TIMEOUT_MS:
      GST_OBJECT_LOCK (self);
      self->mesh_join_timeout_ms = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_dit_generate_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model);
      break;
    case PROP_VAE_MODEL:
      g_value_set_string (value, self->vae_model);
      break;
    case PROP_PROMPT_EMBEDS:
      g_value_set_string (value, self->prompt_embeds);
      break;
    case PROP_DEVICE:
      g_value_set_string (value, self->device);
      break;
    case PROP_DTYPE:
      g_value_set_enum (value, self->dtype);
      break;
    case PROP_SESSION:
      g_value_set_string (value, self->session_key);
      break;
    case PROP_STEPS:
      g_value_set_string (value, self->steps);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_PROMPT_TRANSITION_CHUNKS:
      g_value_set_uint (value, self->transition_chunks);
      break;
    case PROP_PROMPT_RESETS_CACHE:
      g_value_set_enum (value, self->prompt_reset);
      break;
    case PROP_TEXT_MODEL:
      g_value_set_string (value, self->text_model);
      break;
    case PROP_TOKENIZER:
      g_value_set_string (value, self->tokenizer);
      break;
    case PROP_PROMPT_WEIGHT:
      g_value_set_double (value, self->stat_prompt_weight);
      break;
    case PROP_SHIFT:
      g_value_set_double (value, self->shift);
      break;
    case PROP_STRENGTH:
      g_value_set_double (value, self->strength);
      break;
    case PROP_KV_WINDOW:
      g_value_set_int (value, self->kv_window);
      break;
    case PROP_CONTEXT_FRAMES:
      g_value_set_int (value, self->context_frames);
      break;
    case PROP_KV_BIAS:
      g_value_set_double (value, self->kv_bias);
      break;
    case PROP_MAX_INFLIGHT:
      g_value_set_int (value, self->max_inflight);
      break;
    case PROP_ANCHOR:
      g_value_set_enum (value, self->anchor);
      break;
    case PROP_ANCHOR_DECODER:
      g_value_set_enum (value, self->anchor_decoder);
      break;
    case PROP_NUM_CHUNKS:
      g_value_set_uint (value, self->num_chunks);
      break;
    case PROP_FRAMERATE:
      gst_value_set_fraction (value, self->fps_n, self->fps_d);
      break;
    case PROP_FPS:
      g_value_set_double (value, self->stat_fps);
      break;
    case PROP_CHUNK_MS:
      g_value_set_double (value, self->stat_chunk_ms);
      break;
    case PROP_QUEUE_DEPTH:
      g_value_set_int (value, self->queued_buffers);
      break;
    case PROP_CHUNKS:
      g_value_set_uint64 (value, self->stat_chunks);
      break;
    case PROP_CACHE_EPOCH:
      g_value_set_uint64 (value, self->epoch);
      break;
    case PROP_MESH_DEVICES:
      g_value_set_string (value, self->mesh_devices);
      break;
    case PROP_MESH_BACKEND:
      /* as set: NULL means the backend follows device */
      g_value_set_string (value, self->mesh_backend);
      break;
    case PROP_MESH_LISTEN:
      g_value_set_string (value, self->mesh_listen);
      break;
    case PROP_WORKER_PATH:
      g_value_set_string (value, self->worker_path);
      break;
    case PROP_MESH_RANKS:
      g_value_set_int (value, self->mesh_ranks);
      break;
    case PROP_MESH_TIMEOUT_MS:
      g_value_set_int (value, self->mesh_timeout_ms);
      break;
    case PROP_MESH_JOIN_TIMEOUT_MS:
      g_value_set_int (value, self->mesh_join_timeout_ms);
      break;
    case PROP_MESH_RANK_MS:{
      GValue v = G_VALUE_INIT;
      g_value_init (&v, G_TYPE_DOUBLE);
      for (gint r = 0; r < self->stat_mesh_n; r++) {
        g_value_set_double (&v, self->stat_mesh_rank_ms[r]);
        gst_value_array_append_value (value, &v);
      }
      g_value_unset (&v);
      break;
    }
    case PROP_STAGE0_MS:
      g_value_set_double (value, self->stat_stage0_ms);
      break;
    case PROP_STAGE1_MS:
      g_value_set_double (value, self->stat_stage1_ms);
      break;
    case PROP_PERIOD_MS:
      g_value_set_double (value, self->stat_period_ms);
      break;
    case PROP_HIDDEN_MS:
      g_value_set_double (value, self->stat_hidden_ms);
      break;
    case PROP_OVERLAP_SCORE:
      g_value_set_double (value, self->stat_overlap);
      break;
    case PROP_MESH_WORKER_PIDS:{
      GValue v = G_VALUE_INIT;
      g_value_init (&v, G_TYPE_INT);
      for (gint r = 0; r < self->stat_mesh_n; r++) {
        g_value_set_int (&v, self->stat_mesh_pids[r]);
        gst_value_array_append_value (value, &v);
      }
      g_value_unset (&v);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_generate_finalize (GObject * object)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);

  free_engine (self);
  gst_clear_object (&self->session);
  g_free (self->model);
  g_free (self->vae_model);
  g_free (self->prompt_embeds);
  g_free (self->prompt);
  g_free (self->text_model);
  g_free (self->tokenizer);
  g_free (self->device);
  g_free (self->session_key);
  g_free (self->steps);
  g_free (self->mesh_devices);
  g_free (self->mesh_backend);
  g_free (self->mesh_listen);
  g_free (self->worker_path);
  g_free (self->mesh_weights);
  g_mutex_clear (&self->qlock);
  g_cond_clear (&self->qcond);
  G_OBJECT_CLASS (gst_dit_generate_parent_class)->finalize (object);
}

static void
gst_dit_generate_class_init (GstDitGenerateClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ready = rw | GST_PARAM_MUTABLE_READY;
  const GParamFlags playing = rw | GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_dit_generate_set_property;
  gobject_class->get_property = gst_dit_generate_get_property;
  gobject_class->finalize = gst_dit_generate_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "DiT weights: a preset name (tiny, wan-1.3b, wan-14b: seeded "
          "synthetic weights) or a safetensors file, index JSON or directory "
          "(NULL = tiny)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_VAE_MODEL,
      g_param_spec_string ("vae-model", "VAE model",
          "VAE weights for the anchor path: a preset (tiny, wan) or a "
          "safetensors path (NULL = tiny)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_PROMPT_EMBEDS,
      g_param_spec_string ("prompt-embeds", "Prompt embeddings",
          "safetensors file with one text-embedding tensor [rows, text_dim] "
          "(NULL = a fixed seeded prompt); may change while PLAYING",
          NULL, playing));
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "Text prompt, or a weighted list \"a koi pond:0.7|a red fox:0.3\" "
          "(NULL = a fixed seeded prompt).  May change while PLAYING: it is "
          "encoded on a worker thread and takes effect at the first chunk "
          "after it is ready (prompt-embeds wins when set)", NULL, playing));
  g_object_class_install_property (gobject_class, PROP_PROMPT_TRANSITION_CHUNKS,
      g_param_spec_uint ("prompt-transition-chunks", "Prompt transition chunks",
          "Blend the old prompt embedding into the new one linearly over this "
          "many chunks (0 = switch at once)", 0, 1000,
          DEFAULT_TRANSITION_CHUNKS, playing));
  g_object_class_install_property (gobject_class, PROP_PROMPT_RESETS_CACHE,
      g_param_spec_enum ("prompt-resets-cache", "Prompt resets cache",
          "Whether a prompt change restarts the KV cache: auto (scope: with "
          "video input when switching without a transition), always, never",
          GST_TYPE_DIT_PROMPT_RESET, DEFAULT_PROMPT_RESET, playing));
  g_object_class_install_property (gobject_class, PROP_TEXT_MODEL,
      g_param_spec_string ("text-model", "Text model",
          "umT5 text encoder: a preset (tiny, umt5-xxl: seeded synthetic "
          "weights) or a safetensors checkpoint (NULL = tiny)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_TOKENIZER,
      g_param_spec_string ("tokenizer", "Tokenizer",
          "SentencePiece model file (NULL = the shipped tiny model; use "
          "umt5-xxl's spiece.model with the real encoder)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_PROMPT_WEIGHT,
      g_param_spec_double ("prompt-weight", "Prompt weight",
          "Weight of the newest prompt in the last chunk's embedding (below 1 "
          "during a transition)", 0, 1, 1, ro));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Base seed of the per-chunk noise; may change while PLAYING", 0,
          G_MAXUINT64, DEFAULT_SEED, playing));
  g_object_class_install_property (gobject_class, PROP_STEPS,
      g_param_spec_string ("steps", "Steps",
          "Comma-separated denoising timesteps, e.g. \"1000,750,500,250\"",
          DEFAULT_STEPS, ready));
  g_object_class_install_property (gobject_class, PROP_SHIFT,
      g_param_spec_double ("shift", "Shift",
          "Flow-matching timestep shift", 0.1, 100.0, DEFAULT_SHIFT, ready));
  g_object_class_install_property (gobject_class, PROP_STRENGTH,
      g_param_spec_double ("strength", "Strength",
          "Video-to-video: how far input latents are noised (1 = ignore the "
          "input, lower keeps more of it)", 0.0, 1.0, DEFAULT_STRENGTH,
          playing));
  g_object_class_install_property (gobject_class, PROP_KV_WINDOW,
      g_param_spec_int ("kv-window", "KV window",
          "Latent frames in the KV window (0 = context-frames + frames per "
          "chunk)", 0, 64, DEFAULT_KV_WINDOW, ready));
  g_object_class_install_property (gobject_class, PROP_CONTEXT_FRAMES,
      g_param_spec_int ("context-frames", "Context frames",
          "Latent frames of the per-chunk KV recompute (anchor + previous "
          "latents); at most the frames per chunk", 1, 16,
          DEFAULT_CONTEXT_FRAMES, ready));
  g_object_class_install_property (gobject_class, PROP_KV_BIAS,
      g_param_spec_double ("kv-bias", "KV bias",
          "Attention weight of the context frames after the anchor "
          "(1 = off)", 0.001, 1.0, DEFAULT_KV_BIAS, ready));
  g_object_class_install_property (gobject_class, PROP_MAX_INFLIGHT,
      g_param_spec_int ("max-inflight", "Max in-flight",
          "Input chunks queued ahead of the generator (upstream blocks "
          "beyond this); also bounds decoded frames held for the display and "
          "a generator mesh's requests in flight",
          1, 16, DEFAULT_MAX_INFLIGHT, ready));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_string ("device", "Device",
          "Backend device of the session: cpu, or cuda:N", GST_DIT_DEFAULT_DEVICE,
          ready));
  g_object_class_install_property (gobject_class, PROP_DTYPE,
      g_param_spec_enum ("dtype", "Dtype",
          "Precision of the DiT: auto (bf16 on CUDA, f32 on the CPU), bf16, "
          "fp8 (bf16 with FP8 linear layers; refused on a GPU without FP8 "
          "tensor cores) or f32.  Mesh workers run the same; elements "
          "sharing a session must agree", GST_TYPE_DIT_DTYPE, DEFAULT_DTYPE,
          ready));
  g_object_class_install_property (gobject_class, PROP_SESSION,
      g_param_spec_string ("session", "Session",
          "Key of the shared DitSession (weights, VAE, anchor path); "
          "elements with the same key share one", GST_DIT_SESSION_DEFAULT_KEY,
          ready));
  g_object_class_install_property (gobject_class, PROP_ANCHOR,
      g_param_spec_enum ("anchor", "Anchor",
          "First KV-recompute context frame: the re-encoded decoded frame "
          "(decoded) or the previous chunk's first latent (latent)",
          GST_TYPE_DIT_ANCHOR_MODE, DEFAULT_ANCHOR, ready));
  g_object_class_install_property (gobject_class, PROP_ANCHOR_DECODER,
      g_param_spec_enum ("anchor-decoder", "Anchor decoder",
          "With anchor=decoded: the decoder of the re-encoded frame, the "
          "full VAE (full) or the session's display decoder (tiny; the same "
          "as full unless ditdecode has a decoder-model)",
          GST_TYPE_DIT_ANCHOR_DECODER, DEFAULT_ANCHOR_DECODER, ready));
  g_object_class_install_property (gobject_class, PROP_NUM_CHUNKS,
      g_param_spec_uint ("num-chunks", "Number of chunks",
          "Text-to-video: chunks to generate before EOS (0 = unlimited)", 0,
          G_MAXUINT, DEFAULT_NUM_CHUNKS, ready));
  g_object_class_install_property (gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction ("framerate", "Frame rate",
          "Text-to-video: preferred output frame rate when downstream allows "
          "any (Wan's native rate is 16 fps)", 1, 1, GST_DIT_MAX_FPS, 1,
          DEFAULT_FPS_N, DEFAULT_FPS_D, ready));
  g_object_class_install_property (gobject_class, PROP_FPS,
      g_param_spec_double ("fps", "FPS",
          "Output pixel frames per second over the last chunk", 0, G_MAXDOUBLE,
          0, ro));
  g_object_class_install_property (gobject_class, PROP_CHUNK_MS,
      g_param_spec_double ("chunk-ms", "Chunk ms",
          "Generator time of the last chunk in milliseconds", 0, G_MAXDOUBLE,
          0, ro));
  g_object_class_install_property (gobject_class, PROP_QUEUE_DEPTH,
      g_param_spec_int ("queue-depth", "Queue depth",
          "Input chunks waiting for the generator", 0, G_MAXINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_CHUNKS,
      g_param_spec_uint64 ("chunks", "Chunks",
          "Chunks produced since READY", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_CACHE_EPOCH,
      g_param_spec_uint64 ("cache-epoch", "Cache epoch",
          "Current cache epoch (bumped by flushes and resets)", 0, G_MAXUINT64,
          0, ro));

  g_object_class_install_property (gobject_class, PROP_MESH_DEVICES,
      g_param_spec_string ("mesh-devices", "Mesh devices",
          "Run the DiT on a generator mesh: one dit-worker process per listed "
          "device (e.g. \"0,1\"), each holding a tensor-parallel shard; the "
          "count is the TP degree and must be 1, 2, 4 or 8.  This process "
          "then loads no DiT weights, only the VAE of the anchor path "
          "(NULL or empty = the DiT runs in this process)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_BACKEND,
      g_param_spec_string ("mesh-backend", "Mesh backend",
          "Backend of the spawned workers: cpu or cuda (NULL = cuda when "
          "device is cuda:N, else cpu)", NULL, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_LISTEN,
      g_param_spec_string ("mesh-listen", "Mesh listen address",
          "HOST:PORT to wait on for mesh-ranks workers started by another "
          "launcher (dit-worker --connect HOST:PORT --rank R --tp N ...) "
          "instead of spawning them; wins over mesh-devices (NULL = spawn)",
          NULL, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_RANKS,
      g_param_spec_int ("mesh-ranks", "Mesh ranks",
          "Workers to wait for with mesh-listen (1, 2, 4 or 8); with "
          "mesh-devices 0 or the number of devices", 0, DIT_MESH_MAX_RANKS, 0,
          ready));
  g_object_class_install_property (gobject_class, PROP_WORKER_PATH,
      g_param_spec_string ("worker-path", "Worker path",
          "dit-worker executable the mesh spawns (NULL = $GST_DIT_WORKER, "
          "then " GST_DIT_BINDIR "/dit-worker, then dit-worker on PATH)",
          NULL, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_TIMEOUT_MS,
      g_param_spec_int ("mesh-timeout-ms", "Mesh chunk timeout",
          "Milliseconds every worker has for one chunk (and each collective) "
          "before the element fails with an error naming the rank; set it a "
          "few seconds above the expected chunk time", 100, G_MAXINT,
          DEFAULT_MESH_TIMEOUT_MS, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_JOIN_TIMEOUT_MS,
      g_param_spec_int ("mesh-join-timeout-ms", "Mesh join timeout",
          "Milliseconds for all workers to join and load their shards", 100,
          G_MAXINT, DEFAULT_MESH_JOIN_TIMEOUT_MS, ready));
  g_object_class_install_property (gobject_class, PROP_MESH_RANK_MS,
      gst_param_spec_array ("mesh-rank-ms", "Mesh rank ms",
          "Each mesh rank's time for the last chunk in milliseconds, from "
          "receiving the request to sending the result (empty without a "
          "mesh)", g_param_spec_double ("rank-ms", "Rank ms",
              "One rank's time for the last chunk", 0, G_MAXDOUBLE, 0, ro),
          ro));
  g_object_class_install_property (gobject_class, PROP_STAGE0_MS,
      g_param_spec_double ("stage0-ms", "Stage 0 ms",
          "Stage 0 work for the last chunk in milliseconds: the session's "
          "VAE decode of its latents and the anchor re-encode", 0,
          G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (gobject_class, PROP_STAGE1_MS,
      g_param_spec_double ("stage1-ms", "Stage 1 ms",
          "Generator call for the last chunk in milliseconds (in-process, or "
          "the mesh round trip)", 0, G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (gobject_class, PROP_PERIOD_MS,
      g_param_spec_double ("period-ms", "Period ms",
          "Time between the last two chunks leaving the element", 0,
          G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (gobject_class, PROP_HIDDEN_MS,
      g_param_spec_double ("hidden-ms", "Hidden ms",
          "stage0-ms + stage1-ms - period-ms of the last chunk (clamped at "
          "0): the time both stages ran at once", 0, G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (gobject_class, PROP_OVERLAP_SCORE,
      g_param_spec_double ("overlap-score", "Overlap score",
          "Median hidden time / min (median stage 0, median stage 1) over the "
          "last 32 chunks: 0 = the stages run one after the other, 1 = the "
          "shorter one is completely hidden", 0, G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (gobject_class, PROP_MESH_WORKER_PIDS,
      gst_param_spec_array ("mesh-worker-pids", "Mesh worker pids",
          "Process id of each spawned mesh rank (0 for workers started "
          "elsewhere; empty while no mesh runs)",
          g_param_spec_int ("pid", "Pid", "A worker's process id", 0,
              G_MAXINT, 0, ro), ro));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DiT video generator", "Generator/Filter/Video",
      "Causal Wan2.1 video diffusion, chunk by chunk with a rolling KV cache "
      "(text-to-video when the sink pad is unlinked)", "gst-dit");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_dit_generate_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_dit_generate_set_context);
  element_class->request_new_pad =
      GST_DEBUG_FUNCPTR (gst_dit_generate_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_dit_generate_release_pad);
  element_class->send_event = GST_DEBUG_FUNCPTR (gst_dit_generate_send_event);

  gst_type_mark_as_plugin_api (GST_TYPE_DIT_ANCHOR_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_PROMPT_RESET, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_DTYPE, 0);
  GST_DEBUG_CATEGORY_INIT (gst_dit_generate_debug, "ditgenerate", 0,
      "dit generator element");
}

static void
gst_dit_generate_init (GstDitGenerate * self)
{
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_activatemode_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_activate_mode));
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_query));
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_event));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
  /* Text-to-video until a sink pad is requested. */
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);

  g_mutex_init (&self->qlock);
  g_cond_init (&self->qcond);
  g_queue_init (&self->queue);
  self->srcresult = GST_FLOW_FLUSHING;
  self->seed = DEFAULT_SEED;
  self->steps = g_strdup (DEFAULT_STEPS);
  self->shift = DEFAULT_SHIFT;
  self->strength = DEFAULT_STRENGTH;
  self->kv_window = DEFAULT_KV_WINDOW;
  self->context_frames = DEFAULT_CONTEXT_FRAMES;
  self->kv_bias = DEFAULT_KV_BIAS;
  self->max_inflight = DEFAULT_MAX_INFLIGHT;
  self->anchor = DEFAULT_ANCHOR;
  self->anchor_decoder = DEFAULT_ANCHOR_DECODER;
  self->dtype = DEFAULT_DTYPE;
  self->num_chunks = DEFAULT_NUM_CHUNKS;
  self->fps_n = DEFAULT_FPS_N;
  self->fps_d = DEFAULT_FPS_D;
  self->device = g_strdup (GST_DIT_DEFAULT_DEVICE);
  self->session_key = g_strdup (GST_DIT_SESSION_DEFAULT_KEY);
  self->transition_chunks = DEFAULT_TRANSITION_CHUNKS;
  self->prompt_reset = DEFAULT_PROMPT_RESET;
  self->stat_prompt_weight = 1.0;
  self->trans_n = -1;
  self->mesh_timeout_ms = DEFAULT_MESH_TIMEOUT_MS;
  self->mesh_join_timeout_ms = DEFAULT_MESH_JOIN_TIMEOUT_MS;
}
