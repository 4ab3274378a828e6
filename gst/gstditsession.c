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

  /* display decoder; guarded by dec_lock.  dec_vae is the full VAE: the
   * display decoder unless dec_tae (a TAEHV) is, and the anchor path's
   * encoder; with a TAEHV display and a full-VAE anchor its decoder stream
   * sees only the anchor latents. */
  GMutex dec_lock;
  GCond dec_cond;
  dit_vae *dec_vae;
  dit_taehv *dec_tae;
  gint dec_width, dec_height;
  dit_decode_queue *dq;
  guint64 dec_epoch;
  gint display_users;
  gboolean flushing;
  gint64 decoded;
  gint64 busy_us;               /* decode + anchor encode time, dec_lock */
  gfloat *anchor_frame;         /* [3, 1, H, W] */
  gfloat *anchor_pixels;        /* [3, 4, H, W]: full-VAE anchor decode */
  gfloat *anchor_latent;        /* [16, 1, h, w] */

  /* Sessions on a device: the decoder's device staging.  The decode queue
   * keeps host frames (the anchor path and system-memory output read
   * them); dev_frames keeps a device copy of each held latent's frames, a
   * ring of dev_slots = queue capacity slots of [3, 4, H, W], so that
   * CUDA-memory output converts from device memory.  Held latents are
   * consecutive and at most the capacity, so their slots never collide. */
  dit_tensor dev_latent;        /* [16, 1, h, w] */
  dit_tensor dev_anchor;        /* [16, 1, h, w] */
  dit_tensor dev_frames;
  dit_tensor dev_anchor_pixels; /* [3, 4, H, W] */
  gint dev_slots;

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
  if (self->dec_vae)
    dit_vae_free (self->dec_vae);
  dit_taehv_free (self->dec_tae);
  dit_tensor_free (self->backend, &self->dev_latent);
  dit_tensor_free (self->backend, &self->dev_anchor);
  dit_tensor_free (self->backend, &self->dev_frames);
  dit_tensor_free (self->backend, &self->dev_anchor_pixels);
  if (self->dq)
    dit_decode_queue_free (self->dq);
  g_free (self->anchor_frame);
  g_free (self->anchor_pixels);
  g_free (self->anchor_latent);
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

void
gst_dit_session_handle_set_context (GstElement * element, GstContext * context,
    const gchar * key, GstDitSession ** session)
{
  GstDitSession *s;

  if (*session)
    return;
  s = session_from_context (context, key);
  if (s) {
    GST_DEBUG_OBJECT (element, "using session '%s' from context", key);
    *session = s;
  }
}

gboolean
gst_dit_session_handle_context_query (GstElement * element, GstQuery * query,
    GstDitSession * session)
{
  const gchar *type;
  GstContext *context;
  GstStructure *s;

  if (!session || !gst_query_parse_context_type (query, &type)
      || !g_str_equal (type, GST_DIT_SESSION_CONTEXT_TYPE))
    return FALSE;
  context = gst_context_new (GST_DIT_SESSION_CONTEXT_TYPE, TRUE);
  s = gst_context_writable_structure (context);
  gst_structure_set (s, "session", G_TYPE_STRING, session->key,
      "dit-session", GST_TYPE_DIT_SESSION, session, NULL);
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

const dit_weights *
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

static gboolean
alloc_device_staging (GstDitSession * self, gint width, gint height,
    gint slots, gchar ** error)
{
  int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, height / 8, width / 8 };
  int64_t fshape[1] = { (int64_t) slots * 3 * 4 * width * height };

  int64_t ashape[4] = { 3, 4, height, width };

  dit_tensor_free (self->backend, &self->dev_latent);
  dit_tensor_free (self->backend, &self->dev_anchor);
  dit_tensor_free (self->backend, &self->dev_frames);
  dit_tensor_free (self->backend, &self->dev_anchor_pixels);
  if (dit_tensor_alloc (self->backend, &self->dev_latent, DIT_F32, 4, lshape)
      != DIT_OK
      || dit_tensor_alloc (self->backend, &self->dev_anchor, DIT_F32, 4,
          lshape) != DIT_OK
      || dit_tensor_alloc (self->backend, &self->dev_frames, DIT_F32, 1,
          fshape) != DIT_OK
      || dit_tensor_alloc (self->backend, &self->dev_anchor_pixels, DIT_F32, 4,
          ashape) != DIT_OK) {
    *error = g_strdup_printf ("session '%s': device staging for %dx%d: %s",
        self->key, width, height, dit_last_error ());
    dit_tensor_free (self->backend, &self->dev_latent);
    dit_tensor_free (self->backend, &self->dev_anchor);
    dit_tensor_free (self->backend, &self->dev_frames);
    dit_tensor_free (self->backend, &self->dev_anchor_pixels);
    return FALSE;
  }
  self->dev_slots = slots;
  return TRUE;
}

/* The device copy of latent i's frames, [3, T, H, W]. */
static dit_tensor
device_frames (GstDitSession * self, gint64 latent_index)
{
  gsize plane = (gsize) self->dec_width * self->dec_height;
  int64_t shape[4] = { 3, dit_stream_latent_frames (latent_index),
    self->dec_height, self->dec_width
  };

  return dit_tensor_make ((gfloat *) self->dev_frames.data
      + (gsize) (latent_index % self->dev_slots) * 3 * 4 * plane, DIT_F32,
      self->dev_frames.device, 4, shape);
}

/* With dec_lock held: the TAEHV display decoder when one is chosen. */
static gboolean
ensure_display_taehv (GstDitSession * self, gint width, gint height,
    gchar ** error)
{
  gboolean tiny;

  GST_OBJECT_LOCK (self);
  tiny = self->display_decoder != NULL;
  GST_OBJECT_UNLOCK (self);
  if (!tiny || self->dec_tae)
    return TRUE;
  self->dec_tae = gst_dit_session_new_taehv (self, NULL, width, height,
      DIT_TAEHV_DECODER, error);
  return self->dec_tae != NULL;
}

gboolean
gst_dit_session_display_configure (GstDitSession * self, gint width,
    gint height, gint frames_per_chunk, gint max_chunks, gchar ** error)
{
  gint capacity = MAX (2, max_chunks + 1) * frames_per_chunk;
  gboolean ok = TRUE;

  g_mutex_lock (&self->dec_lock);
  if (self->dec_vae && self->dec_width == width && self->dec_height == height) {
    /* a tiny display decoder chosen after the first configure */
    ok = ensure_display_taehv (self, width, height, error);
    goto out;
  }
  if (self->dec_vae && self->display_users > 1) {
    *error = g_strdup_printf ("session '%s' already decodes %dx%d, cannot "
        "switch to %dx%d", self->key, self->dec_width, self->dec_height,
        width, height);
    ok = FALSE;
    goto out;
  }
  if (self->dec_vae)
    dit_vae_free (self->dec_vae);
  self->dec_vae = NULL;
  dit_taehv_free (self->dec_tae);
  self->dec_tae = NULL;
  if (self->dq)
    dit_decode_queue_free (self->dq);
  self->dq = NULL;
  g_free (self->anchor_frame);
  g_free (self->anchor_pixels);
  g_free (self->anchor_latent);
  self->anchor_frame = g_new0 (gfloat, (gsize) 3 * width * height);
  self->anchor_pixels = g_new0 (gfloat, (gsize) 3 * 4 * width * height);
  self->anchor_latent = g_new0 (gfloat, (gsize) DIT_LATENT_CHANNELS
      * (width / 8) * (height / 8));
  self->dec_vae = gst_dit_session_new_vae (self, NULL, width, height, error);
  if (!self->dec_vae || !ensure_display_taehv (self, width, height, error)) {
    ok = FALSE;
    goto out;
  }
  if (dit_decode_queue_create (height / 8, width / 8, capacity,
          &self->dq) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    dit_vae_free (self->dec_vae);
    self->dec_vae = NULL;
    ok = FALSE;
    goto out;
  }
  if (gst_dit_session_on_device (self)
      && !alloc_device_staging (self, width, height, capacity, error)) {
    dit_vae_free (self->dec_vae);
    self->dec_vae = NULL;
    dit_decode_queue_free (self->dq);
    self->dq = NULL;
    ok = FALSE;
    goto out;
  }
  self->dec_width = width;
  self->dec_height = height;
  self->decoded = 0;
out:
  g_mutex_unlock (&self->dec_lock);
  return ok;
}

/* The display decoder: the TAEHV when the session has one, else the full
 * VAE. */
static dit_status
display_decode (GstDitSession * self, const dit_tensor * latent,
    dit_tensor * pixels)
{
  if (self->dec_tae)
    return dit_taehv_decode (self->dec_tae, latent, pixels);
  return dit_vae_decode (self->dec_vae, latent, pixels);
}

static dit_status
decode_one (void *user, int64_t latent_index, const float *latent,
    float *pixels)
{
  GstDitSession *self = user;
  int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, self->dec_height / 8,
    self->dec_width / 8
  };
  int64_t pshape[4] = { 3, dit_stream_latent_frames (latent_index),
    self->dec_height, self->dec_width
  };
  dit_tensor lt = dit_tensor_make ((void *) latent, DIT_F32, DIT_DEVICE_CPU, 4,
      lshape);
  dit_tensor pt = dit_tensor_make (pixels, DIT_F32, DIT_DEVICE_CPU, 4, pshape);

  gint64 t0 = g_get_monotonic_time ();
  dit_status st;
  self->decoded++;
  if (self->dev_frames.data) {
    dit_backend *be = self->backend;
    dit_tensor pd = device_frames (self, latent_index);
    st = dit_upload (be, self->dev_latent.data, latent,
        dit_tensor_nbytes (&lt));
    if (st == DIT_OK)
      st = display_decode (self, &self->dev_latent, &pd);
    /* a host sync per latent: the decode queue holds host frames */
    if (st == DIT_OK)
      st = dit_download (be, pixels, pd.data, dit_tensor_nbytes (&pt));
  } else {
    st = display_decode (self, &lt, &pt);
  }
  self->busy_us += g_get_monotonic_time () - t0;
  return st;
}

/* With dec_lock held: start a new stream when `epoch` is newer. */
static gboolean
check_epoch (GstDitSession * self, guint64 epoch)
{
  if (epoch < self->dec_epoch)
    return FALSE;
  if (epoch > self->dec_epoch) {
    GST_DEBUG_OBJECT (self, "decoder: new epoch %" G_GUINT64_FORMAT, epoch);
    self->dec_epoch = epoch;
    dit_decode_queue_reset (self->dq);
    dit_vae_reset_decoder (self->dec_vae);
    dit_taehv_reset_decoder (self->dec_tae);
    self->decoded = 0;
    g_cond_broadcast (&self->dec_cond);
  }
  return TRUE;
}

/* With dec_lock held: the anchor from the full VAE beside a tiny display
 * decoder.  Latent `anchor_latent` (in x [16, frames, h, w] from `first`)
 * is decoded on the full VAE's decoder stream, which sees only the anchor
 * latents (so its causal cache holds the previous anchor's features, not
 * the previous latent's: the one decode per chunk this costs is the point
 * of a tiny display), and its last frame is re-encoded. */
static dit_status
anchor_full_vae (GstDitSession * self, gint64 first, gint frames,
    const gfloat * x, gint64 anchor_latent, gfloat * anchor)
{
  const gint H = self->dec_height, W = self->dec_width, h = H / 8, w = W / 8;
  const gsize hw = (gsize) h * w, plane = (gsize) H * W;
  const gint64 j = anchor_latent - first;
  const int64_t T = dit_vae_decode_frames (self->dec_vae, 1);
  int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, h, w };
  int64_t pshape[4] = { 3, T, H, W };
  dit_tensor lt, pt, ft;

  if (j < 0 || j >= frames)
    return dit_error (DIT_ERR_STATE, "anchor path: latent %" G_GINT64_FORMAT
        " is not in the chunk of latents %" G_GINT64_FORMAT "..%"
        G_GINT64_FORMAT, anchor_latent, first, first + frames - 1);
  for (gint c = 0; c < DIT_LATENT_CHANNELS; c++)
    memcpy (self->anchor_latent + c * hw, x + ((gsize) c * frames + j) * hw,
        hw * sizeof (gfloat));
  if (self->dev_frames.data) {
    dit_backend *be = self->backend;
    DIT_TRY (dit_upload (be, self->dev_latent.data, self->anchor_latent,
            hw * DIT_LATENT_CHANNELS * sizeof (gfloat)));
    pt = dit_tensor_make (self->dev_anchor_pixels.data, DIT_F32,
        self->dev_anchor_pixels.device, 4, pshape);
    DIT_TRY (dit_vae_decode (self->dec_vae, &self->dev_latent, &pt));
    ft = pt;
    ft.data = (gfloat *) pt.data + (gsize) (T - 1) * plane;
    ft.shape[1] = 1;
    DIT_TRY (dit_vae_encode_anchor (self->dec_vae, &ft, &self->dev_anchor));
    return dit_download (be, anchor, self->dev_anchor.data,
        dit_tensor_nbytes (&self->dev_anchor));
  }
  lt = dit_tensor_make (self->anchor_latent, DIT_F32, DIT_DEVICE_CPU, 4, lshape);
  pt = dit_tensor_make (self->anchor_pixels, DIT_F32, DIT_DEVICE_CPU, 4, pshape);
  DIT_TRY (dit_vae_decode (self->dec_vae, &lt, &pt));
  ft = pt;
  ft.data = (gfloat *) pt.data + (gsize) (T - 1) * plane;
  ft.shape[1] = 1;
  lt.data = anchor;
  return dit_vae_encode_anchor (self->dec_vae, &ft, &lt);
}

GstDitDecodeResult
gst_dit_session_anchor (GstDitSession * self, guint64 epoch, gint64 first,
    gint frames, const gfloat * x, gint64 anchor_latent, gfloat * anchor,
    gchar ** error)
{
  GstDitDecodeResult res = GST_DIT_DECODE_OK;
  const gfloat *pix;
  gint nf;
  gsize plane;
  gint64 t_enc;

  g_mutex_lock (&self->dec_lock);
  if (!self->dq) {
    *error = g_strdup ("anchor path: the session decoder is not configured");
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  if (!check_epoch (self, epoch)) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  /* Bounded hand-off to the display: wait until it has taken enough. */
  while (!self->flushing && self->display_users > 0
      && !dit_decode_queue_has_room (self->dq, frames)
      && epoch == self->dec_epoch)
    g_cond_wait (&self->dec_cond, &self->dec_lock);
  if (self->flushing) {
    res = GST_DIT_DECODE_FLUSHING;
    goto out;
  }
  if (epoch != self->dec_epoch) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  if (self->display_users == 0 && !dit_decode_queue_has_room (self->dq, frames)) {
    /* Nobody displays: decode what is queued (the decoder state must see
     * every latent) and drop the frames. */
    gint64 end = dit_decode_queue_next_submit (self->dq);
    if (end > dit_decode_queue_next_decode (self->dq)
        && dit_decode_queue_run_to (self->dq, end - 1, decode_one, self)
        != DIT_OK)
      goto lib_error;
    dit_decode_queue_release (self->dq, end - 1);
  }
  if (dit_decode_queue_submit (self->dq, first, frames, x, frames, 0)
      != DIT_OK)
    goto lib_error;
  if (anchor_latent < 0)
    goto out;
  if (self->dec_tae && !self->anchor_tiny) {
    t_enc = g_get_monotonic_time ();
    if (anchor_full_vae (self, first, frames, x, anchor_latent, anchor)
        != DIT_OK)
      goto lib_error;
    self->busy_us += g_get_monotonic_time () - t_enc;
    if (self->display_users == 0)
      dit_decode_queue_release (self->dq, anchor_latent);
    goto out;
  }
  if (dit_decode_queue_run_to (self->dq, anchor_latent, decode_one, self)
      != DIT_OK)
    goto lib_error;
  pix = dit_decode_queue_frames (self->dq, anchor_latent, &nf);
  if (!pix) {
    *error = g_strdup_printf ("anchor path: frames of latent %" G_GINT64_FORMAT
        " are gone", anchor_latent);
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  plane = (gsize) self->dec_width * self->dec_height;
  t_enc = g_get_monotonic_time ();
  if (self->dev_frames.data) {
    /* The last frame of the device copy, a [3, 1, H, W] strided view. */
    dit_backend *be = self->backend;
    dit_tensor ft = device_frames (self, anchor_latent);
    ft.data = (gfloat *) ft.data + (gsize) (nf - 1) * plane;
    ft.shape[1] = 1;
    if (dit_vae_encode_anchor (self->dec_vae, &ft, &self->dev_anchor) != DIT_OK
        || dit_download (be, anchor, self->dev_anchor.data,
            dit_tensor_nbytes (&self->dev_anchor)) != DIT_OK)
      goto lib_error;
  } else {
    int64_t fshape[4] = { 3, 1, self->dec_height, self->dec_width };
    int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, self->dec_height / 8,
      self->dec_width / 8
    };
    dit_tensor ft = dit_tensor_make (self->anchor_frame, DIT_F32,
        DIT_DEVICE_CPU, 4, fshape);
    dit_tensor lt = dit_tensor_make (anchor, DIT_F32, DIT_DEVICE_CPU, 4,
        lshape);
    for (gint c = 0; c < 3; c++)
      memcpy (self->anchor_frame + c * plane, pix + ((gsize) c * nf + nf - 1)
          * plane, plane * sizeof (gfloat));
    if (dit_vae_encode_anchor (self->dec_vae, &ft, &lt) != DIT_OK)
      goto lib_error;
  }
  self->busy_us += g_get_monotonic_time () - t_enc;
  if (self->display_users == 0)
    dit_decode_queue_release (self->dq, anchor_latent);
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
  has = self->dq && epoch == self->dec_epoch
      && first + n <= dit_decode_queue_next_submit (self->dq);
  g_mutex_unlock (&self->dec_lock);
  return has;
}

GstDitDecodeResult
gst_dit_session_display (GstDitSession * self, guint64 epoch, gint64 first,
    gint n, const gfloat * x, gfloat * pixels, gint * num_frames,
    gchar ** error)
{
  GstDitDecodeResult res = GST_DIT_DECODE_OK;
  gint64 last = first + n - 1;
  gsize plane;
  gint total = 0, t = 0;

  g_mutex_lock (&self->dec_lock);
  if (!self->dq) {
    *error = g_strdup ("display: the session decoder is not configured");
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  if (!check_epoch (self, epoch)) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  if (self->flushing) {
    res = GST_DIT_DECODE_FLUSHING;
    goto out;
  }
  if (last < dit_decode_queue_next_submit (self->dq) - dit_decode_queue_held
      (self->dq)) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  if (dit_decode_queue_submit (self->dq, first, n, x, n, 0) != DIT_OK
      || dit_decode_queue_run_to (self->dq, last, decode_one, self) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  for (gint64 i = first; i <= last; i++)
    total += dit_stream_latent_frames (i);
  plane = (gsize) self->dec_width * self->dec_height;
  for (gint64 i = first; i <= last; i++) {
    gint nf = 0;
    const gfloat *pix = dit_decode_queue_frames (self->dq, i, &nf);
    if (!pix) {
      *error = g_strdup_printf ("display: frames of latent %" G_GINT64_FORMAT
          " were released before display", i);
      res = GST_DIT_DECODE_ERROR;
      goto out;
    }
    for (gint c = 0; c < 3; c++)
      memcpy (pixels + ((gsize) c * total + t) * plane,
          pix + (gsize) c * nf * plane, (gsize) nf * plane * sizeof (gfloat));
    t += nf;
  }
  dit_decode_queue_release (self->dq, last);
  g_cond_broadcast (&self->dec_cond);
  *num_frames = total;
out:
  g_mutex_unlock (&self->dec_lock);
  return res;
}

GstDitDecodeResult
gst_dit_session_display_device (GstDitSession * self, guint64 epoch,
    gint64 first, gint n, const gfloat * x, GstDitFrameFunc func,
    gpointer user_data, gint * num_frames, gchar ** error)
{
  GstDitDecodeResult res = GST_DIT_DECODE_OK;
  gint64 last = first + n - 1;
  gsize plane;
  gint t = 0;

  g_mutex_lock (&self->dec_lock);
  if (!self->dq || !self->dev_frames.data) {
    *error = g_strdup ("display: the session decoder is not configured on a "
        "device");
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  if (!check_epoch (self, epoch)) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  if (self->flushing) {
    res = GST_DIT_DECODE_FLUSHING;
    goto out;
  }
  if (last < dit_decode_queue_next_submit (self->dq) - dit_decode_queue_held
      (self->dq)) {
    res = GST_DIT_DECODE_STALE;
    goto out;
  }
  if (dit_decode_queue_submit (self->dq, first, n, x, n, 0) != DIT_OK
      || dit_decode_queue_run_to (self->dq, last, decode_one, self) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    res = GST_DIT_DECODE_ERROR;
    goto out;
  }
  plane = (gsize) self->dec_width * self->dec_height;
  for (gint64 i = first; i <= last; i++) {
    gint nf = 0;
    dit_tensor lf;
    if (!dit_decode_queue_frames (self->dq, i, &nf)) {
      *error = g_strdup_printf ("display: frames of latent %" G_GINT64_FORMAT
          " were released before display", i);
      res = GST_DIT_DECODE_ERROR;
      goto out;
    }
    lf = device_frames (self, i);
    for (gint k = 0; k < nf; k++, t++) {
      int64_t shape[3] = { 3, self->dec_height, self->dec_width };
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
  dit_decode_queue_release (self->dq, last);
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
  if (self->dq)
    r = dit_decode_queue_held (self->dq);
  g_mutex_unlock (&self->dec_lock);
  return r;
}

gint64
gst_dit_session_stage0_busy_us (GstDitSession * self)
{
  gint64 r;

  g_mutex_lock (&self->dec_lock);
  r = self->busy_us;
  g_mutex_unlock (&self->dec_lock);
  return r;
}

gint64
gst_dit_session_decoded_latents (GstDitSession * self)
{
  gint64 r;

  g_mutex_lock (&self->dec_lock);
  r = self->decoded;
  g_mutex_unlock (&self->dec_lock);
  return r;
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

gboolean
gst_dit_session_cuda_context_query (GstElement * element, GstQuery * query,
    const gchar * key, const gchar * device, GstCudaContext * offered,
    GstDitSession ** session)
{
  const gchar *type;
  gchar *error = NULL;
  gint index;

  if (!gst_query_parse_context_type (query, &type)
      || !g_str_equal (type, GST_CUDA_CONTEXT_TYPE)
      || !cuda_device_index (device, &index))
    return FALSE;
  /* An nvcodec element may ask while ours is still in NULL. */
  if (!*session)
    gst_dit_session_ensure (element, key, session);
  if (!gst_dit_session_ensure_cuda_context (*session, element, device,
          offered, &error)) {
    GST_WARNING_OBJECT (element, "%s", error);
    g_free (error);
    return FALSE;
  }
  return gst_cuda_handle_context_query (element, query,
      gst_dit_session_get_cuda_context (*session));
}

void
gst_dit_session_cuda_set_context (GstElement * element, GstContext * context,
    GstCudaContext ** offered)
{
  gst_cuda_handle_set_context (element, context, -1, offered);
}
#endif
