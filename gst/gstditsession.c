/* GstDitSession — Stage 0 shared state (see gstditsession.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditsession.h"

#include "dit_loader.h"
#include "dit_taehv.h"

#include <stdlib.h>
#include <string.h>

#ifdef DIT_HAVE_GST_CUDA
#include <dlfcn.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudautils.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_dit_session_debug);
#define GST_CAT_DEFAULT gst_dit_session_debug

struct _GstDitSession
{
  GstObject parent;

  gchar *key;

  /* weights; guarded by the object lock */
  gchar *device;
  dit_backend *backend;
  gboolean own_backend;
  gchar *model;
  dit_model_config model_config;
  dit_weights *dit_weights;
  dit_precision dit_precision;
  gchar *vae_model;
  dit_vae_config vae_config;
  dit_weights *vae_weights;
  /* TAEHV tiny autoencoder (decoder-model, encoder-model): one per session */
  gchar *taehv_model;
  dit_taehv_config taehv_config;
  dit_weights *taehv_weights;
  /* the display decoder: NULL = the full VAE; fixed by the first display */
  gchar *display_decoder;
  gboolean display_decoder_set;
  gboolean anchor_tiny;         /* anchor frame from the display decoder */

  guint64 epoch;                /* atomic */

  /* Stage 0 (model/dit_stage0.h: context, anchor path, display decode
   * queue) on the session's backend; guarded by dec_lock.  The generator
   * sets the stream's context frames and anchor mode; the display only
   * needs the size. */
  GMutex dec_lock;
  GCond dec_cond;
  dit_stage0 *stage0;
  dit_stage0_config s0cfg;
  guint64 dec_epoch;
  gint display_users;
  gboolean flushing;
  gint64 busy_base_us;          /* busy time of earlier stage0 objects */

#ifdef DIT_HAVE_GST_CUDA
  /* guarded by the object lock */
  GstCudaContext *cuda_context;
  CUdevice cuda_device;
  gint cuda_index;
  gboolean cuda_retained;       /* the primary context is retained */
#endif
};

#ifdef DIT_HAVE_GST_CUDA
enum
{
  PROP_0,
  PROP_CUDA_CONTEXT,
};

/* gst-cuda's loader has no primary-context calls; they come from the same
 * libcuda it opened. */
typedef CUresult (*dit_primary_retain_fn) (CUcontext * ctx, CUdevice dev);
typedef CUresult (*dit_primary_release_fn) (CUdevice dev);
static dit_primary_retain_fn dit_primary_retain;
static dit_primary_release_fn dit_primary_release;
#endif

G_DEFINE_TYPE (GstDitSession, gst_dit_session, GST_TYPE_OBJECT);

static void
gst_dit_session_finalize (GObject * object)
{
  GstDitSession *self = GST_DIT_SESSION (object);

  GST_DEBUG_OBJECT (self, "freeing session '%s'", self->key);
  dit_stage0_free (self->stage0);
  if (self->dit_weights)
    dit_weights_free (self->dit_weights);
  if (self->vae_weights)
    dit_weights_free (self->vae_weights);
  if (self->taehv_weights)
    dit_weights_free (self->taehv_weights);
  if (self->own_backend && self->backend)
    dit_backend_destroy (self->backend);
#ifdef DIT_HAVE_GST_CUDA
  /* Elements may hold the wrapper longer; the CUDA runtime keeps its own
   * reference to the primary context for the life of the process. */
  gst_clear_object (&self->cuda_context);
  if (self->cuda_retained)
    dit_primary_release (self->cuda_device);
#endif
  g_free (self->device);
  g_free (self->model);
  g_free (self->vae_model);
  g_free (self->taehv_model);
  g_free (self->display_decoder);
  g_free (self->key);
  g_mutex_clear (&self->dec_lock);
  g_cond_clear (&self->dec_cond);
  G_OBJECT_CLASS (gst_dit_session_parent_class)->finalize (object);
}

#ifdef DIT_HAVE_GST_CUDA
static void
gst_dit_session_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstDitSession *self = GST_DIT_SESSION (object);

  switch (prop_id) {
    case PROP_CUDA_CONTEXT:
      GST_OBJECT_LOCK (self);
      g_value_set_object (value, self->cuda_context);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}
#endif

static void
gst_dit_session_class_init (GstDitSessionClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = gst_dit_session_finalize;
#ifdef DIT_HAVE_GST_CUDA
  G_OBJECT_CLASS (klass)->get_property = gst_dit_session_get_property;
  g_object_class_install_property (G_OBJECT_CLASS (klass), PROP_CUDA_CONTEXT,
      g_param_spec_object ("cuda-context", "CUDA context",
          "The device's primary CUDA context shared with the CUDA elements "
          "(NULL on the CPU)", GST_TYPE_CUDA_CONTEXT,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
#endif
  GST_DEBUG_CATEGORY_INIT (gst_dit_session_debug, "ditsession", 0,
      "dit shared Stage 0 session");
}

static void
gst_dit_session_init (GstDitSession * self)
{
  g_mutex_init (&self->dec_lock);
  g_cond_init (&self->dec_cond);
}

GstDitSession *
gst_dit_session_new (const gchar * key)
{
  GstDitSession *self = g_object_new (GST_TYPE_DIT_SESSION, NULL);

  gst_object_ref_sink (self);
  self->key = g_strdup (key ? key : GST_DIT_SESSION_DEFAULT_KEY);
  return self;
}

const gchar *
gst_dit_session_get_key (GstDitSession * self)
{
  return self->key;
}

/* ------------------------------------------------------------------ */
/* context plumbing */

static GstDitSession *
session_from_context (GstContext * context, const gchar * key)
{
  const GstStructure *s;
  const gchar *k;
  GstDitSession *session = NULL;

  if (!context
      || !g_str_equal (gst_context_get_context_type (context),
          GST_DIT_SESSION_CONTEXT_TYPE))
    return NULL;
  s = gst_context_get_structure (context);
  k = gst_structure_get_string (s, "session");
  if (!k || !g_str_equal (k, key))
    return NULL;
  if (!gst_structure_get (s, "dit-session", GST_TYPE_DIT_SESSION, &session,
          NULL))
    return NULL;
  return session;
}

/* The string property at `field` of `element`, copied under the object
 * lock that guards the elements' properties. */
static gchar *
dup_property (GstElement * element, gchar * const * field)
{
  gchar *v;

  GST_OBJECT_LOCK (element);
  v = g_strdup (*field);
  GST_OBJECT_UNLOCK (element);
  return v;
}

void
gst_dit_session_handle_set_context (GstElement * element, GstContext * context,
    gchar * const * key, GstDitSession ** session,
    GstCudaContext ** cuda_offered)
{
  if (!*session) {
    gchar *k = dup_property (element, key);

    *session = session_from_context (context, k);
    if (*session)
      GST_DEBUG_OBJECT (element, "using session '%s' from context", k);
    g_free (k);
  }
#ifdef DIT_HAVE_GST_CUDA
  if (cuda_offered)
    gst_cuda_handle_set_context (element, context, -1, cuda_offered);
#endif
}

#ifdef DIT_HAVE_GST_CUDA
static gboolean cuda_context_query (GstElement * element, GstQuery * query,
    gchar * const * key, gchar * const * device, GstCudaContext * offered,
    GstDitSession ** session);
#endif

gboolean
gst_dit_session_handle_context_query (GstElement * element, GstQuery * query,
    gchar * const * key, gchar * const * device, GstDitSession ** session,
    GstCudaContext ** cuda_offered)
{
  const gchar *type;
  GstContext *context;
  GstStructure *s;

  if (!gst_query_parse_context_type (query, &type))
    return FALSE;
#ifdef DIT_HAVE_GST_CUDA
  if (cuda_offered && g_str_equal (type, GST_CUDA_CONTEXT_TYPE))
    return cuda_context_query (element, query, key, device, *cuda_offered,
        session);
#endif
  if (!g_str_equal (type, GST_DIT_SESSION_CONTEXT_TYPE) || !*session)
    return FALSE;
  context = gst_context_new (GST_DIT_SESSION_CONTEXT_TYPE, TRUE);
  s = gst_context_writable_structure (context);
  gst_structure_set (s, "session", G_TYPE_STRING, (*session)->key,
      "dit-session", GST_TYPE_DIT_SESSION, *session, NULL);
  gst_query_set_context (query, context);
  gst_context_unref (context);
  return TRUE;
}

static gboolean
query_pads (GstElement * element, GstPadDirection dir, const gchar * key,
    GstDitSession ** session)
{
  GList *l;
  gboolean found = FALSE;

  GST_OBJECT_LOCK (element);
  l = dir == GST_PAD_SRC ? element->srcpads : element->sinkpads;
  l = g_list_copy (l);
  g_list_foreach (l, (GFunc) (void (*)(void)) gst_object_ref, NULL);
  GST_OBJECT_UNLOCK (element);
  for (GList * it = l; it && !found; it = it->next) {
    GstQuery *q = gst_query_new_context (GST_DIT_SESSION_CONTEXT_TYPE);
    if (gst_pad_peer_query (GST_PAD (it->data), q)) {
      GstContext *ctx = NULL;
      gst_query_parse_context (q, &ctx);
      *session = session_from_context (ctx, key);
      found = *session != NULL;
    }
    gst_query_unref (q);
  }
  g_list_free_full (l, gst_object_unref);
  return found;
}

gboolean
gst_dit_session_ensure (GstElement * element, const gchar * key,
    GstDitSession ** session)
{
  GstMessage *msg;
  GstContext *context;
  GstStructure *s;

  if (*session)
    return TRUE;
  if (query_pads (element, GST_PAD_SRC, key, session)
      || query_pads (element, GST_PAD_SINK, key, session))
    return TRUE;

  /* The application may answer synchronously through set_context. */
  msg = gst_message_new_need_context (GST_OBJECT (element),
      GST_DIT_SESSION_CONTEXT_TYPE);
  gst_element_post_message (element, msg);
  if (*session)
    return TRUE;

  *session = gst_dit_session_new (key);
  GST_INFO_OBJECT (element, "created session '%s'", key);
  context = gst_context_new (GST_DIT_SESSION_CONTEXT_TYPE, TRUE);
  s = gst_context_writable_structure (context);
  gst_structure_set (s, "session", G_TYPE_STRING, key,
      "dit-session", GST_TYPE_DIT_SESSION, *session, NULL);
  /* A bin hands the context to its other children at once. */
  gst_element_post_message (element,
      gst_message_new_have_context (GST_OBJECT (element), context));
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* weights */

static gboolean
ensure_backend (GstDitSession * self, const gchar * device, gchar ** error)
{
  const gchar *dev = device ? device : GST_DIT_DEFAULT_DEVICE;
  gchar **parts;
  gint index = 0;

  if (self->backend) {
    if (!g_str_equal (self->device, dev)) {
      *error = g_strdup_printf ("session '%s' already runs on device '%s', "
          "an element asks for '%s'", self->key, self->device, dev);
      return FALSE;
    }
    return TRUE;
  }
  parts = g_strsplit (dev, ":", 2);
  if (parts[1])
    index = atoi (parts[1]);
  if (g_str_equal (parts[0], "cpu")) {
    self->backend = dit_backend_cpu ();
    self->own_backend = FALSE;
  } else {
    self->backend = dit_backend_create (parts[0], index);
    self->own_backend = TRUE;
  }
  g_strfreev (parts);
  if (!self->backend) {
    *error = g_strdup_printf ("device '%s': %s", dev, dit_last_error ());
    return FALSE;
  }
  self->device = g_strdup (dev);
  return TRUE;
}

static void
post_progress (GstElement * element, GstProgressType type, const gchar * code,
    const gchar * text)
{
  gst_element_post_message (element,
      gst_message_new_progress (GST_OBJECT (element), type, code, text));
}

/* Weight (and VAE activation) storage: bf16 on a GPU, where the kernels
 * accumulate in f32 and the 14B weights fit; f32 on the CPU, the reference
 * backend.  Latents and frames at the element boundaries stay f32. */
static dit_dtype
session_dtype (GstDitSession * self)
{
  return self->backend && dit_backend_device (self->backend) == DIT_DEVICE_CUDA ?
      DIT_BF16 : DIT_F32;
}

dit_dtype
gst_dit_session_get_dtype (GstDitSession * self)
{
  dit_dtype dt;
  GST_OBJECT_LOCK (self);
  dt = session_dtype (self);
  GST_OBJECT_UNLOCK (self);
  return dt;
}

gboolean
gst_dit_demo_missing (const gchar * model, const gchar * def,
    dit_demo_part part)
{
  gchar path[4096];

  if (!model || !*model)
    model = def;
  return g_str_equal (model, DIT_DEMO)
      && dit_demo_path (part, path, sizeof path) != DIT_OK;
}

gboolean
gst_dit_session_load_dit (GstDitSession * self, GstElement * element,
    const gchar * model, const gchar * device, gint precision, gchar ** error)
{
  const gchar *m = model && *model ? model : GST_DIT_DEFAULT_MODEL;
  dit_status st;
  gchar *text;
  gboolean ok = FALSE;
  dit_precision prec;

  GST_OBJECT_LOCK (self);
  if (!ensure_backend (self, device, error))
    goto out;
  prec = precision == GST_DIT_PRECISION_AUTO ?
      dit_precision_of (session_dtype (self), 0) : (dit_precision) precision;
  if (self->dit_weights) {
    if (!g_str_equal (self->model, m)) {
      *error = g_strdup_printf ("session '%s' already holds model '%s', an "
          "element asks for '%s'", self->key, self->model, m);
      goto out;
    }
    if (self->dit_precision != prec) {
      *error = g_strdup_printf ("session '%s' already holds model '%s' in %s, "
          "an element asks for %s", self->key, self->model,
          dit_precision_name (self->dit_precision), dit_precision_name (prec));
      goto out;
    }
    ok = TRUE;
    goto out;
  }

  text = g_strdup_printf ("Loading DiT weights '%s'", m);
  post_progress (element, GST_PROGRESS_TYPE_START, "load-dit", text);
  g_free (text);
  /* A preset name gives seeded synthetic weights (seed 0 is the embedded
   * default model: the same values on every machine, no download); a path
   * is loaded strictly against the preset its shapes name. */
  st = dit_load_model_precision (m, 0, prec, self->backend,
      &self->model_config, &self->dit_weights);
  if (st != DIT_OK) {
    self->dit_weights = NULL;
    *error = g_strdup (dit_last_error ());
    post_progress (element, GST_PROGRESS_TYPE_ERROR, "load-dit", *error);
    goto out;
  }
  if (self->vae_weights && self->vae_config.z_dim != self->model_config.in_dim) {
    *error = g_strdup_printf ("VAE '%s' has %d latent channels but model '%s' "
        "expects %d", self->vae_model, self->vae_config.z_dim, m,
        self->model_config.in_dim);
    dit_weights_free (self->dit_weights);
    self->dit_weights = NULL;
    post_progress (element, GST_PROGRESS_TYPE_ERROR, "load-dit", *error);
    goto out;
  }
  self->model = g_strdup (m);
  self->dit_precision = prec;
  post_progress (element, GST_PROGRESS_TYPE_COMPLETE, "load-dit",
      "DiT weights loaded");
  ok = TRUE;
out:
  GST_OBJECT_UNLOCK (self);
  return ok;
}

gboolean
gst_dit_session_load_vae (GstDitSession * self, GstElement * element,
    const gchar * vae_model, const gchar * device, gchar ** error)
{
  const gchar *m = vae_model && *vae_model ? vae_model : GST_DIT_DEFAULT_VAE;
  dit_status st;
  gchar *text;
  gboolean ok = FALSE;

  GST_OBJECT_LOCK (self);
  if (!ensure_backend (self, device, error))
    goto out;
  if (self->vae_weights) {
    if (!g_str_equal (self->vae_model, m)) {
      *error = g_strdup_printf ("session '%s' already holds VAE '%s', an "
          "element asks for '%s'", self->key, self->vae_model, m);
      goto out;
    }
    ok = TRUE;
    goto out;
  }

  text = g_strdup_printf ("Loading VAE weights '%s'", m);
  post_progress (element, GST_PROGRESS_TYPE_START, "load-vae", text);
  g_free (text);
  st = dit_load_vae (m, 0, session_dtype (self), self->backend,
      &self->vae_config, &self->vae_weights);
  if (st != DIT_OK)
    dit_error_prefix (st, "vae-model '%s'", m);
  if (st != DIT_OK) {
    self->vae_weights = NULL;
    *error = g_strdup (dit_last_error ());
    post_progress (element, GST_PROGRESS_TYPE_ERROR, "load-vae", *error);
    goto out;
  }
  if (self->dit_weights && self->vae_config.z_dim != self->model_config.in_dim) {
    *error = g_strdup_printf ("VAE '%s' has %d latent channels but model '%s' "
        "expects %d", m, self->vae_config.z_dim, self->model,
        self->model_config.in_dim);
    dit_weights_free (self->vae_weights);
    self->vae_weights = NULL;
    post_progress (element, GST_PROGRESS_TYPE_ERROR, "load-vae", *error);
    goto out;
  }
  self->vae_model = g_strdup (m);
  post_progress (element, GST_PROGRESS_TYPE_COMPLETE, "load-vae",
      "VAE weights loaded");
  ok = TRUE;
out:
  GST_OBJECT_UNLOCK (self);
  return ok;
}

gboolean
gst_dit_session_open_device (GstDitSession * self, const gchar * device,
    gchar ** error)
{
  gboolean ok;

  GST_OBJECT_LOCK (self);
  ok = ensure_backend (self, device, error);
  GST_OBJECT_UNLOCK (self);
  return ok;
}

gboolean
gst_dit_session_load_taehv (GstDitSession * self, GstElement * element,
    const gchar * model, const gchar * device, gchar ** error)
{
  dit_status st;
  gchar *text;
  gboolean ok = FALSE;

  if (!model || !*model) {
    *error = g_strdup ("no tiny autoencoder named");
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  if (!ensure_backend (self, device, error))
    goto out;
  if (self->taehv_weights) {
    if (!g_str_equal (self->taehv_model, model)) {
      *error = g_strdup_printf ("session '%s' already holds the tiny "
          "autoencoder '%s', an element asks for '%s'", self->key,
          self->taehv_model, model);
      goto out;
    }
    ok = TRUE;
    goto out;
  }
  text = g_strdup_printf ("Loading tiny autoencoder weights '%s'", model);
  post_progress (element, GST_PROGRESS_TYPE_START, "load-taehv", text);
  g_free (text);
  st = dit_load_taehv (model, 0, session_dtype (self), self->backend,
      &self->taehv_config, &self->taehv_weights);
  if (st != DIT_OK) {
    dit_error_prefix (st, "decoder/encoder model '%s'", model);
    self->taehv_weights = NULL;
    *error = g_strdup (dit_last_error ());
    post_progress (element, GST_PROGRESS_TYPE_ERROR, "load-taehv", *error);
    goto out;
  }
  self->taehv_model = g_strdup (model);
  post_progress (element, GST_PROGRESS_TYPE_COMPLETE, "load-taehv",
      "Tiny autoencoder weights loaded");
  ok = TRUE;
out:
  GST_OBJECT_UNLOCK (self);
  return ok;
}

gboolean
gst_dit_session_set_display_decoder (GstDitSession * self,
    const gchar * decoder_model, gchar ** error)
{
  const gchar *want = decoder_model && *decoder_model ? decoder_model : NULL;
  gboolean ok = TRUE;

  GST_OBJECT_LOCK (self);
  if (self->display_decoder_set
      && g_strcmp0 (self->display_decoder, want) != 0) {
    *error = g_strdup_printf ("session '%s' already displays with %s%s%s, an "
        "element asks for %s%s%s (one display decoder per session: give the "
        "elements the same decoder-model or different session keys)",
        self->key, self->display_decoder ? "the tiny decoder '" : "the full VAE",
        self->display_decoder ? self->display_decoder : "",
        self->display_decoder ? "'" : "", want ? "the tiny decoder '" :
        "the full VAE", want ? want : "", want ? "'" : "");
    ok = FALSE;
  } else if (want && g_strcmp0 (self->taehv_model, want) != 0) {
    *error = g_strdup_printf ("session '%s': the tiny decoder '%s' is not "
        "loaded", self->key, want);
    ok = FALSE;
  } else {
    g_free (self->display_decoder);
    self->display_decoder = g_strdup (want);
    self->display_decoder_set = TRUE;
  }
  GST_OBJECT_UNLOCK (self);
  return ok;
}

gboolean
gst_dit_session_ensure_vae (GstElement * element, GstDitSession ** session,
    gchar * const * key, gchar * const * device, gchar * const * vae,
    gchar * const * taehv, guint part, GstCudaContext * offered)
{
  gchar *k = dup_property (element, key);
  gchar *dev = dup_property (element, device);
  gchar *full = dup_property (element, vae);
  gchar *tiny = dup_property (element, taehv);
  gchar *error = NULL;
  gboolean encoder = part == DIT_TAEHV_ENCODER;
  gboolean want_full = !encoder || !tiny || !*tiny;
  gboolean ok = TRUE;

  gst_dit_session_ensure (element, k, session);
  if (want_full)
    ok = gst_dit_session_load_vae (*session, element, full, dev, &error);
  if (ok && tiny && *tiny)
    ok = gst_dit_session_load_taehv (*session, element, tiny, dev, &error);
  if (ok && !encoder)
    ok = gst_dit_session_set_display_decoder (*session, tiny, &error);
  if (!ok && want_full && gst_dit_demo_missing (full, GST_DIT_DEFAULT_VAE,
          DIT_DEMO_VAE))
    GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND, ("%s", error),
        ("vae-model '%s'", full ? full : GST_DIT_DEFAULT_VAE));
  else if (!ok)
    GST_ELEMENT_ERROR (element, LIBRARY, INIT, ("%s", error),
        ("vae-model '%s', %s '%s'", full ? full : GST_DIT_DEFAULT_VAE,
            encoder ? "encoder-model" : "decoder-model",
            tiny ? tiny : "(full VAE)"));
  g_clear_pointer (&error, g_free);
#ifdef DIT_HAVE_GST_CUDA
  if (ok && gst_dit_session_on_device (*session)
      && !gst_dit_session_ensure_cuda_context (*session, element, dev,
          offered, &error)) {
    GST_WARNING_OBJECT (element, "no CUDA memory %s: %s",
        encoder ? "input" : "output", error);
    g_free (error);
  }
#endif
  g_free (k);
  g_free (dev);
  g_free (full);
  g_free (tiny);
  return ok;
}

void
gst_dit_session_set_anchor_decoder (GstDitSession * self, gboolean tiny)
{
  g_mutex_lock (&self->dec_lock);
  self->anchor_tiny = tiny;
  g_mutex_unlock (&self->dec_lock);
}

dit_taehv *
gst_dit_session_new_taehv (GstDitSession * self, dit_backend * be, gint width,
    gint height, guint parts, gchar ** error)
{
  dit_taehv *t = NULL;

  if (!self->taehv_weights) {
    *error = g_strdup ("no tiny autoencoder loaded in the session");
    return NULL;
  }
  if (dit_taehv_create (&self->taehv_config, self->taehv_weights, width,
          height, session_dtype (self), parts, be ? be : self->backend, &t)
      != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return NULL;
  }
  return t;
}

dit_backend *
gst_dit_session_get_backend (GstDitSession * self)
{
  return self->backend;
}

dit_precision
gst_dit_session_get_dit_precision (GstDitSession * self)
{
  dit_precision p;
  GST_OBJECT_LOCK (self);
  p = self->dit_precision;
  GST_OBJECT_UNLOCK (self);
  return p;
}

dit_weights *
gst_dit_session_get_dit_weights (GstDitSession * self,
    dit_model_config * config)
{
  if (config)
    *config = self->model_config;
  return self->dit_weights;
}

dit_backend *
gst_dit_session_new_private_backend (GstDitSession * self, gchar ** error)
{
  dit_backend *be;
  gchar **parts;

  if (!self->backend || self->backend == dit_backend_cpu ())
    return self->backend;
  parts = g_strsplit (self->device, ":", 2);
  be = dit_backend_create (parts[0], parts[1] ? atoi (parts[1]) : 0);
  g_strfreev (parts);
  if (!be)
    *error = g_strdup_printf ("device '%s': %s", self->device,
        dit_last_error ());
  return be;
}

void
gst_dit_session_release_backend (GstDitSession * self, dit_backend * be)
{
  if (be && be != dit_backend_cpu () && be != self->backend)
    dit_backend_destroy (be);
}

dit_vae *
gst_dit_session_new_vae (GstDitSession * self, dit_backend * be, gint width,
    gint height, gchar ** error)
{
  dit_vae *vae = NULL;

  if (!self->vae_weights) {
    *error = g_strdup ("no VAE loaded in the session");
    return NULL;
  }
  if (dit_vae_create (&self->vae_config, self->vae_weights, width, height,
          session_dtype (self), be ? be : self->backend, &vae) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    return NULL;
  }
  return vae;
}

guint64
gst_dit_session_get_epoch (GstDitSession * self)
{
  guint64 e;

  GST_OBJECT_LOCK (self);
  e = self->epoch;
  GST_OBJECT_UNLOCK (self);
  return e;
}

guint64
gst_dit_session_bump_epoch (GstDitSession * self)
{
  guint64 e;

  GST_OBJECT_LOCK (self);
  e = ++self->epoch;
  GST_OBJECT_UNLOCK (self);
  return e;
}

/* ------------------------------------------------------------------ */
/* display decoder */

void
gst_dit_session_display_attach (GstDitSession * self)
{
  g_mutex_lock (&self->dec_lock);
  self->display_users++;
  g_mutex_unlock (&self->dec_lock);
}

void
gst_dit_session_display_detach (GstDitSession * self)
{
  g_mutex_lock (&self->dec_lock);
  self->display_users--;
  g_cond_broadcast (&self->dec_cond);
  g_mutex_unlock (&self->dec_lock);
}

gboolean
gst_dit_session_display_attached (GstDitSession * self)
{
  gboolean r;

  g_mutex_lock (&self->dec_lock);
  r = self->display_users > 0;
  g_mutex_unlock (&self->dec_lock);
  return r;
}

void
gst_dit_session_set_flushing (GstDitSession * self, gboolean flushing)
{
  g_mutex_lock (&self->dec_lock);
  self->flushing = flushing;
  g_cond_broadcast (&self->dec_cond);
  g_mutex_unlock (&self->dec_lock);
}

gboolean
gst_dit_session_on_device (GstDitSession * self)
{
  return self->backend && dit_backend_device (self->backend) != DIT_DEVICE_CPU;
}

/* With dec_lock held: a Stage 0 for `want` (the VAE when the session has
 * one, the display decoder and the anchor's decoder the session's
 * elements chose), made anew when the size, the stream settings or the
 * decoders differ.  The display of another element may hold a different
 * size. */
static gboolean
stage0_ensure (GstDitSession * self, const dit_stage0_config * want,
    gchar ** error)
{
  dit_stage0_config c = *want;
  dit_stage0 *s0 = NULL;
  const dit_stage0_config *have = self->stage0 ?
      dit_stage0_get_config (self->stage0) : NULL;
  gboolean decoder = self->vae_weights != NULL, tiny;

  GST_OBJECT_LOCK (self);
  tiny = decoder && self->display_decoder != NULL;
  GST_OBJECT_UNLOCK (self);
  c.anchor_decoder = self->anchor_tiny ? DIT_ANCHOR_DECODER_TINY
      : DIT_ANCHOR_DECODER_FULL;
  if (have && have->latent_w == c.latent_w && have->latent_h == c.latent_h
      && have->frames_per_chunk == c.frames_per_chunk
      && have->context_frames == c.context_frames && have->anchor == c.anchor
      && have->anchor_decoder == c.anchor_decoder
      && dit_stage0_has_decoder (self->stage0) == decoder
      && dit_stage0_has_display_decoder (self->stage0) == tiny)
    return TRUE;
  if (have && self->display_users > 1 && (have->latent_w != c.latent_w
          || have->latent_h != c.latent_h)) {
    *error = g_strdup_printf ("session '%s' already decodes %dx%d, cannot "
        "switch to %dx%d", self->key, 8 * have->latent_w, 8 * have->latent_h,
        8 * c.latent_w, 8 * c.latent_h);
    return FALSE;
  }
  if (!decoder && c.anchor == DIT_ANCHOR_DECODED) {
    *error = g_strdup ("anchor path: no VAE loaded in the session");
    return FALSE;
  }
  c.vae_config = &self->vae_config;
  c.vae_weights = self->vae_weights;
  c.vae_dtype = session_dtype (self);
  /* the TAEHV's weights stay while the session lives */
  c.display_config = tiny ? &self->taehv_config : NULL;
  c.display_weights = tiny ? self->taehv_weights : NULL;
  if (dit_stage0_create (&c, self->backend, &s0) != DIT_OK) {
    *error = g_strdup_printf ("session '%s': %s", self->key, dit_last_error ());
    return FALSE;
  }
  if (self->stage0) {
    dit_stage0_stats st;
    dit_stage0_get_stats (self->stage0, &st);
    self->busy_base_us += st.busy_us;
    dit_stage0_free (self->stage0);
  }
  self->stage0 = s0;
  self->s0cfg = c;
  return TRUE;
}

gboolean
gst_dit_session_display_configure (GstDitSession * self, gint width,
    gint height, gint frames_per_chunk, gint max_chunks, gchar ** error)
{
  dit_stage0_config c;
  gboolean ok;

  g_mutex_lock (&self->dec_lock);
  if (self->stage0) {
    c = *dit_stage0_get_config (self->stage0);
  } else {
    /* the generator sets its own when it configures */
    dit_stage0_config_default (&c);
    c.context_frames = MIN (c.context_frames, frames_per_chunk);
    c.capacity = MAX (2, max_chunks + 1) * frames_per_chunk;
  }
  c.latent_w = width / 8;
  c.latent_h = height / 8;
  c.frames_per_chunk = frames_per_chunk;
  c.context_frames = MIN (c.context_frames, frames_per_chunk);
  c.capacity = MAX (c.capacity, frames_per_chunk);
  ok = stage0_ensure (self, &c, error);
  g_mutex_unlock (&self->dec_lock);
  return ok;
}

gboolean
gst_dit_session_stage0_configure (GstDitSession * self, gint latent_w,
    gint latent_h, gint frames_per_chunk, gint context_frames,
    dit_anchor_mode anchor, gint max_chunks, gchar ** error)
{
  dit_stage0_config c;
  gboolean ok;

  dit_stage0_config_default (&c);
  c.latent_w = latent_w;
  c.latent_h = latent_h;
  c.frames_per_chunk = frames_per_chunk;
  c.context_frames = context_frames;
  c.anchor = anchor;
  c.capacity = MAX (2, max_chunks + 1) * frames_per_chunk;
  g_mutex_lock (&self->dec_lock);
  ok = stage0_ensure (self, &c, error);
  g_mutex_unlock (&self->dec_lock);
  return ok;
}

/* With dec_lock held: start a new stream when `epoch` is newer. */
static gboolean
check_epoch (GstDitSession * self, guint64 epoch)
{
  if (epoch < self->dec_epoch)
    return FALSE;
  if (epoch > self->dec_epoch) {
    GST_DEBUG_OBJECT (self, "stage 0: new epoch %" G_GUINT64_FORMAT, epoch);
    self->dec_epoch = epoch;
    dit_stage0_reset (self->stage0);
    g_cond_broadcast (&self->dec_cond);
  }
  return TRUE;
}

/* With dec_lock held: the common entry checks of a Stage 0 call. */
static GstDitDecodeResult
stage0_enter (GstDitSession * self, guint64 epoch, const gchar * who,
    gchar ** error)
{
  if (!self->stage0) {
    *error = g_strdup_printf ("%s: the session's Stage 0 is not configured",
        who);
    return GST_DIT_DECODE_ERROR;
  }
  if (!check_epoch (self, epoch))
    return GST_DIT_DECODE_STALE;
  if (self->flushing)
    return GST_DIT_DECODE_FLUSHING;
  return GST_DIT_DECODE_OK;
}

GstDitDecodeResult
gst_dit_session_context (GstDitSession * self, guint64 epoch,
    gint64 chunk_index, dit_backend * consumer, dit_tensor * ctx,
    gchar ** error)
{
  GstDitDecodeResult res;

  g_mutex_lock (&self->dec_lock);
  res = stage0_enter (self, epoch, "context", error);
  if (res == GST_DIT_DECODE_OK && dit_stage0_context (self->stage0,
          chunk_index, consumer, ctx) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    res = GST_DIT_DECODE_ERROR;
  }
  g_mutex_unlock (&self->dec_lock);
  return res;
}

GstDitDecodeResult
gst_dit_session_push_chunk (GstDitSession * self, guint64 epoch,
    gint64 chunk_index, const dit_tensor * x0, dit_backend * producer,
    gchar ** error)
{
  GstDitDecodeResult res;
  gint F;
  gboolean queues;

  g_mutex_lock (&self->dec_lock);
  res = stage0_enter (self, epoch, "anchor path", error);
  if (res != GST_DIT_DECODE_OK)
    goto out;
  F = self->s0cfg.frames_per_chunk;
  queues = self->s0cfg.anchor == DIT_ANCHOR_DECODED;
  /* Bounded hand-off to the display: wait until it has taken enough. */
  while (queues && !self->flushing && self->display_users > 0
      && !dit_stage0_has_room (self->stage0, F) && epoch == self->dec_epoch)
    g_cond_wait (&self->dec_cond, &self->dec_lock);
  if (self->flushing) {
    res = GST_DIT_DECODE_FLUSHING;
    goto out;
  }
  if (epoch != self->dec_epoch) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  /* Nobody displays: decode what is queued (the decoder state must see
   * every latent) and drop the frames. */
  if (queues && self->display_users == 0
      && !dit_stage0_has_room (self->stage0, F)
      && dit_stage0_drain (self->stage0) != DIT_OK)
    goto lib_error;
  if (dit_stage0_push_chunk (self->stage0, chunk_index, x0, producer) != DIT_OK)
    goto lib_error;
  if (queues && self->display_users == 0)
    dit_stage0_release (self->stage0, dit_stage0_next_decode (self->stage0)
        - 1);
  goto out;

lib_error:
  *error = g_strdup (dit_last_error ());
  res = GST_DIT_DECODE_ERROR;
out:
  g_mutex_unlock (&self->dec_lock);
  return res;
}

gboolean
gst_dit_session_display_has_latents (GstDitSession * self, guint64 epoch,
    gint64 first, gint n)
{
  gboolean has;

  /* Only the display releases latents and a newer epoch makes the display
   * call stale, so a TRUE answer stays true until that call. */
  g_mutex_lock (&self->dec_lock);
  has = self->stage0 && epoch == self->dec_epoch
      && first + n <= dit_stage0_next_submit (self->stage0);
  g_mutex_unlock (&self->dec_lock);
  return has;
}

/* With dec_lock held: queue latents [first, first + n) (x: host f32, or
 * NULL when queued already) and decode them. */
static GstDitDecodeResult
display_decode (GstDitSession * self, guint64 epoch, gint64 first, gint n,
    const gfloat * x, gchar ** error)
{
  GstDitDecodeResult res = stage0_enter (self, epoch, "display", error);
  int64_t shape[4] = { DIT_LATENT_CHANNELS, n, self->s0cfg.latent_h,
    self->s0cfg.latent_w
  };
  dit_tensor xt = dit_tensor_make ((gfloat *) x, DIT_F32, DIT_DEVICE_CPU, 4,
      shape);

  if (res != GST_DIT_DECODE_OK)
    return res;
  if (!dit_stage0_has_decoder (self->stage0)) {
    *error = g_strdup ("display: no VAE loaded in the session");
    return GST_DIT_DECODE_ERROR;
  }
  if (first + n - 1 < dit_stage0_next_submit (self->stage0)
      - dit_stage0_held (self->stage0))
    return GST_DIT_DECODE_STALE;
  if ((first + n > dit_stage0_next_submit (self->stage0) && !x)
      || dit_stage0_submit (self->stage0, first, n, &xt, NULL) != DIT_OK
      || dit_stage0_decode_to (self->stage0, first + n - 1) != DIT_OK) {
    *error = g_strdup (x ? dit_last_error () : "display: latents were not "
        "queued and none were given");
    return GST_DIT_DECODE_ERROR;
  }
  return GST_DIT_DECODE_OK;
}

GstDitDecodeResult
gst_dit_session_display (GstDitSession * self, guint64 epoch, gint64 first,
    gint n, const gfloat * x, gfloat * pixels, gint * num_frames,
    gchar ** error)
{
  GstDitDecodeResult res;
  gsize plane;
  gint total = 0, t = 0;

  g_mutex_lock (&self->dec_lock);
  res = display_decode (self, epoch, first, n, x, error);
  if (res != GST_DIT_DECODE_OK)
    goto out;
  for (gint64 i = first; i < first + n; i++)
    total += dit_stream_latent_frames (i);
  plane = (gsize) 64 * self->s0cfg.latent_w * self->s0cfg.latent_h;
  /* The frames to the host: this consumer asked for system memory. */
  for (gint64 i = first; i < first + n; i++) {
    dit_tensor f;
    gint nf;
    if (dit_stage0_frames (self->stage0, i, &f) != DIT_OK)
      goto lib_error;
    nf = (gint) f.shape[1];
    for (gint c = 0; c < 3; c++)
      if (dit_download (self->backend, pixels + ((gsize) c * total + t) * plane,
              (gfloat *) f.data + (gsize) c * nf * plane,
              (gsize) nf * plane * sizeof (gfloat)) != DIT_OK)
        goto lib_error;
    t += nf;
  }
  dit_stage0_release (self->stage0, first + n - 1);
  g_cond_broadcast (&self->dec_cond);
  *num_frames = total;
  goto out;

lib_error:
  *error = g_strdup (dit_last_error ());
  res = GST_DIT_DECODE_ERROR;
out:
  g_mutex_unlock (&self->dec_lock);
  return res;
}

GstDitDecodeResult
gst_dit_session_display_device (GstDitSession * self, guint64 epoch,
    gint64 first, gint n, const gfloat * x, GstDitFrameFunc func,
    gpointer user_data, gint * num_frames, gchar ** error)
{
  GstDitDecodeResult res;
  gsize plane;
  gint t = 0;

  g_mutex_lock (&self->dec_lock);
  if (!gst_dit_session_on_device (self)) {
    *error = g_strdup ("display: the session is not on a device");
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  res = display_decode (self, epoch, first, n, x, error);
  if (res != GST_DIT_DECODE_OK)
    goto out;
  plane = (gsize) 64 * self->s0cfg.latent_w * self->s0cfg.latent_h;
  for (gint64 i = first; i < first + n; i++) {
    dit_tensor lf;
    if (dit_stage0_frames (self->stage0, i, &lf) != DIT_OK) {
      *error = g_strdup (dit_last_error ());
      res = GST_DIT_DECODE_ERROR;
      goto out;
    }
    for (gint k = 0; k < lf.shape[1]; k++, t++) {
      int64_t shape[3] = { 3, lf.shape[2], lf.shape[3] };
      dit_tensor view = dit_tensor_make ((gfloat *) lf.data + (gsize) k * plane,
          DIT_F32, lf.device, 3, shape);
      view.stride[0] = lf.stride[0];
      if (!func (&view, t, user_data, error)) {
        res = GST_DIT_DECODE_ERROR;
        goto out;
      }
    }
  }
  /* Whatever func queued is complete before the frames leave; the 1.22
   * CUDA memory has no stream or event to hand on instead. */
  if (dit_synchronize (self->backend) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  dit_stage0_release (self->stage0, first + n - 1);
  g_cond_broadcast (&self->dec_cond);
  *num_frames = t;
out:
  g_mutex_unlock (&self->dec_lock);
  return res;
}

gint
gst_dit_session_display_held (GstDitSession * self)
{
  gint r = 0;

  g_mutex_lock (&self->dec_lock);
  if (self->stage0)
    r = dit_stage0_held (self->stage0);
  g_mutex_unlock (&self->dec_lock);
  return r;
}

/* The stats of the session's Stage 0, busy_us counting earlier stage0
 * objects too. */
static dit_stage0_stats
stage0_stats (GstDitSession * self)
{
  dit_stage0_stats st = { 0 };

  g_mutex_lock (&self->dec_lock);
  if (self->stage0)
    dit_stage0_get_stats (self->stage0, &st);
  st.busy_us += self->busy_base_us;
  g_mutex_unlock (&self->dec_lock);
  return st;
}

gint64
gst_dit_session_stage0_busy_us (GstDitSession * self)
{
  return stage0_stats (self).busy_us;
}

gint64
gst_dit_session_decoded_latents (GstDitSession * self)
{
  return stage0_stats (self).decoded;
}

/* ------------------------------------------------------------------ */
/* CUDA context shared with gst-plugins-bad's CUDA elements */

#ifdef DIT_HAVE_GST_CUDA
static gboolean
cuda_device_index (const gchar * device, gint * index)
{
  const gchar *dev = device ? device : GST_DIT_DEFAULT_DEVICE;

  if (g_str_equal (dev, "cuda")) {
    *index = 0;
    return TRUE;
  }
  if (!g_str_has_prefix (dev, "cuda:"))
    return FALSE;
  *index = atoi (dev + 5);
  return *index >= 0;
}

static gboolean
load_primary_context_api (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    void *lib = dlopen ("libcuda.so.1", RTLD_LAZY);
    if (lib) {
      *(void **) (&dit_primary_retain) = dlsym (lib,
          "cuDevicePrimaryCtxRetain");
      *(void **) (&dit_primary_release) = dlsym (lib,
          "cuDevicePrimaryCtxRelease_v2");
      if (!dit_primary_release)
        *(void **) (&dit_primary_release) = dlsym (lib,
            "cuDevicePrimaryCtxRelease");
    }
    g_once_init_leave (&once, 1);
  }
  return dit_primary_retain && dit_primary_release;
}

gboolean
gst_dit_session_ensure_cuda_context (GstDitSession * self,
    GstElement * element, const gchar * device, GstCudaContext * offered,
    gchar ** error)
{
  gint index;
  CUdevice dev;
  CUcontext primary = NULL;
  GstCudaContext *ctx = NULL;
  gboolean post = FALSE;

  if (!cuda_device_index (device, &index)) {
    *error = g_strdup_printf ("device '%s' is not a CUDA device", device);
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  if (self->cuda_context) {
    gboolean same = self->cuda_index == index;
    if (!same)
      *error = g_strdup_printf ("session '%s' shares the CUDA context of "
          "device %d, an element asks for device %d", self->key,
          self->cuda_index, index);
    GST_OBJECT_UNLOCK (self);
    return same;
  }
  if (!gst_cuda_load_library ()) {
    *error = g_strdup ("CUDA memory: libcuda could not be loaded");
    goto fail;
  }
  if (!load_primary_context_api ()) {
    *error = g_strdup ("CUDA memory: libcuda has no "
        "cuDevicePrimaryCtxRetain");
    goto fail;
  }
  if (CuInit (0) != CUDA_SUCCESS || CuDeviceGet (&dev, index) != CUDA_SUCCESS) {
    *error = g_strdup_printf ("CUDA memory: no CUDA device %d", index);
    goto fail;
  }
  if (dit_primary_retain (&primary, dev) != CUDA_SUCCESS) {
    *error = g_strdup_printf ("CUDA memory: cuDevicePrimaryCtxRetain failed "
        "on device %d", index);
    goto fail;
  }
  if (offered && gst_cuda_context_get_handle (offered) == (gpointer) primary) {
    ctx = gst_object_ref (offered);
  } else {
    if (offered)
      GST_INFO_OBJECT (element, "not using the CUDA context set on the "
          "element: it is not the primary context of device %d", index);
    ctx = gst_cuda_context_new_wrapped (primary, dev);
    post = TRUE;
  }
  if (!ctx) {
    dit_primary_release (dev);
    *error = g_strdup_printf ("CUDA memory: could not wrap the primary "
        "context of device %d", index);
    goto fail;
  }
  self->cuda_context = ctx;
  self->cuda_device = dev;
  self->cuda_index = index;
  self->cuda_retained = TRUE;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (element, "session '%s' shares the primary CUDA context %p "
      "of device %d", self->key, (gpointer) primary, index);
  if (post && element)
    gst_element_post_message (element,
        gst_message_new_have_context (GST_OBJECT (element),
            gst_context_new_cuda_context (ctx)));
  return TRUE;

fail:
  GST_OBJECT_UNLOCK (self);
  return FALSE;
}

GstCudaContext *
gst_dit_session_get_cuda_context (GstDitSession * self)
{
  GstCudaContext *ctx;

  GST_OBJECT_LOCK (self);
  ctx = self->cuda_context;
  GST_OBJECT_UNLOCK (self);
  return ctx;
}

static gboolean
cuda_context_query (GstElement * element, GstQuery * query,
    gchar * const * key, gchar * const * device, GstCudaContext * offered,
    GstDitSession ** session)
{
  gchar *dev = dup_property (element, device), *error = NULL;
  gint index;
  gboolean ok = FALSE;

  if (!cuda_device_index (dev, &index))
    goto out;
  /* An nvcodec element may ask while ours is still in NULL. */
  if (!*session) {
    gchar *k = dup_property (element, key);
    gst_dit_session_ensure (element, k, session);
    g_free (k);
  }
  if (!gst_dit_session_ensure_cuda_context (*session, element, dev, offered,
          &error)) {
    GST_WARNING_OBJECT (element, "%s", error);
    g_free (error);
    goto out;
  }
  ok = gst_cuda_handle_context_query (element, query,
      gst_dit_session_get_cuda_context (*session));
out:
  g_free (dev);
  return ok;
}
#endif

gboolean
gst_dit_session_cuda_memory (GstDitSession * self)
{
#ifdef DIT_HAVE_GST_CUDA
  return self && gst_dit_session_on_device (self)
      && gst_dit_session_get_cuda_context (self) != NULL;
#else
  return FALSE;
#endif
}

gboolean
gst_dit_session_cuda_offerable (GstDitSession * self, GstElement * element,
    gchar * const * device)
{
#ifdef DIT_HAVE_GST_CUDA
  gboolean cuda;

  if (self)
    return gst_dit_session_cuda_memory (self);
  GST_OBJECT_LOCK (element);
  cuda = *device && g_str_has_prefix (*device, "cuda");
  GST_OBJECT_UNLOCK (element);
  return cuda;
#else
  return FALSE;
#endif
}
