/* GstDitDeviceMemory: see gstditmemory.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditmemory.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_dit_memory_debug);
#define GST_CAT_DEFAULT gst_dit_memory_debug

typedef struct
{
  GstMemory mem;
  gpointer dev;                 /* device pointer, maxsize bytes */
  dit_event *written;           /* the producer's writes are complete */
  dit_event *read;              /* the readers' reads are complete */
  gpointer host;                /* host copy while mapped */
  gint host_maps;
  GMutex lock;
} GstDitDeviceMemory;

#define GST_TYPE_DIT_DEVICE_ALLOCATOR (gst_dit_device_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstDitDeviceAllocator, gst_dit_device_allocator,
    GST, DIT_DEVICE_ALLOCATOR, GstAllocator);

struct _GstDitDeviceAllocator
{
  GstAllocator parent;
  GstDitSession *session;
  dit_backend *be;              /* the session's: allocates and copies */
};

G_DEFINE_TYPE (GstDitDeviceAllocator, gst_dit_device_allocator,
    GST_TYPE_ALLOCATOR);

static GstDitDeviceMemory *
device_memory_new (GstDitDeviceAllocator * self, GstMemory * parent,
    gsize size)
{
  GstDitDeviceMemory *m = g_new0 (GstDitDeviceMemory, 1);

  gst_memory_init (GST_MEMORY_CAST (m), GST_MEMORY_FLAG_NO_SHARE,
      GST_ALLOCATOR_CAST (self), parent, size, 0, 0, size);
  g_mutex_init (&m->lock);
  m->dev = dit_backend_alloc (self->be, MAX (size, 1));
  if (!m->dev || dit_event_create (self->be, &m->written) != DIT_OK
      || dit_event_create (self->be, &m->read) != DIT_OK) {
    GST_ERROR_OBJECT (self, "no device memory of %" G_GSIZE_FORMAT
        " bytes: %s", size, dit_last_error ());
    dit_event_destroy (self->be, m->written);
    if (m->dev)
      dit_backend_free (self->be, m->dev);
    g_mutex_clear (&m->lock);
    g_free (m);
    return NULL;
  }
  return m;
}

static GstMemory *
gst_dit_device_allocator_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  (void) params;
  return (GstMemory *) device_memory_new (GST_DIT_DEVICE_ALLOCATOR (allocator),
      NULL, size);
}

static void
gst_dit_device_allocator_free (GstAllocator * allocator, GstMemory * mem)
{
  GstDitDeviceAllocator *self = GST_DIT_DEVICE_ALLOCATOR (allocator);
  GstDitDeviceMemory *m = (GstDitDeviceMemory *) mem;

  /* Readers and the writer may still have work queued on the memory. */
  dit_event_synchronize (self->be, m->written);
  dit_event_synchronize (self->be, m->read);
  dit_event_destroy (self->be, m->written);
  dit_event_destroy (self->be, m->read);
  dit_backend_free (self->be, m->dev);
  g_free (m->host);
  g_mutex_clear (&m->lock);
  g_free (m);
}

/* A host copy for code outside the dit elements: the one place latents
 * cross to the host. */
static gpointer
device_memory_map (GstMemory * mem, GstMapInfo * info, gsize maxsize)
{
  GstDitDeviceAllocator *self = GST_DIT_DEVICE_ALLOCATOR (mem->allocator);
  GstDitDeviceMemory *m = (GstDitDeviceMemory *) mem;
  gpointer data = NULL;

  (void) maxsize;
  g_mutex_lock (&m->lock);
  if (!m->host)
    m->host = g_malloc (mem->maxsize);
  if (m->host_maps == 0 && (info->flags & GST_MAP_READ)) {
    if (dit_event_synchronize (self->be, m->written) != DIT_OK
        || dit_download (self->be, m->host, m->dev,
            mem->maxsize) != DIT_OK) {
      GST_ERROR_OBJECT (self, "device latents to the host: %s",
          dit_last_error ());
      goto out;
    }
  }
  m->host_maps++;
  data = m->host;
out:
  g_mutex_unlock (&m->lock);
  return data;
}

static void
device_memory_unmap (GstMemory * mem, GstMapInfo * info)
{
  GstDitDeviceAllocator *self = GST_DIT_DEVICE_ALLOCATOR (mem->allocator);
  GstDitDeviceMemory *m = (GstDitDeviceMemory *) mem;

  g_mutex_lock (&m->lock);
  if (info->flags & GST_MAP_WRITE) {
    /* The upload must not overtake readers of the old contents. */
    if (dit_event_synchronize (self->be, m->read) != DIT_OK
        || dit_upload (self->be, m->dev, m->host,
            mem->maxsize) != DIT_OK
        || dit_event_record (self->be, m->written) != DIT_OK)
      GST_ERROR_OBJECT (self, "host latents to the device: %s",
          dit_last_error ());
  }
  m->host_maps--;
  g_mutex_unlock (&m->lock);
}

static GstMemory *
device_memory_copy (GstMemory * mem, gssize offset, gssize size)
{
  GstDitDeviceAllocator *self = GST_DIT_DEVICE_ALLOCATOR (mem->allocator);
  GstDitDeviceMemory *m = (GstDitDeviceMemory *) mem, *c;
  GstMapInfo map;

  /* Rare (a writable copy of a shared buffer): through the host. */
  if (offset != 0 || (size != -1 && (gsize) size != mem->size))
    return NULL;
  c = device_memory_new (self, NULL, mem->size);
  if (!c)
    return NULL;
  if (!gst_memory_map (mem, &map, GST_MAP_READ)) {
    gst_memory_unref (GST_MEMORY_CAST (c));
    return NULL;
  }
  if (dit_upload (self->be, c->dev, map.data, mem->size) != DIT_OK
      || dit_event_record (self->be, c->written) != DIT_OK) {
    GST_ERROR_OBJECT (self, "copying device latents: %s", dit_last_error ());
    gst_memory_unmap (mem, &map);
    gst_memory_unref (GST_MEMORY_CAST (c));
    return NULL;
  }
  gst_memory_unmap (mem, &map);
  (void) m;
  return GST_MEMORY_CAST (c);
}

static void
gst_dit_device_allocator_finalize (GObject * object)
{
  GstDitDeviceAllocator *self = GST_DIT_DEVICE_ALLOCATOR (object);

  gst_clear_object (&self->session);
  G_OBJECT_CLASS (gst_dit_device_allocator_parent_class)->finalize (object);
}

static void
gst_dit_device_allocator_class_init (GstDitDeviceAllocatorClass * klass)
{
  GstAllocatorClass *alloc_class = GST_ALLOCATOR_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = gst_dit_device_allocator_finalize;
  alloc_class->alloc = gst_dit_device_allocator_alloc;
  alloc_class->free = gst_dit_device_allocator_free;
  GST_DEBUG_CATEGORY_INIT (gst_dit_memory_debug, "ditmemory", 0,
      "dit device memory");
}

static void
gst_dit_device_allocator_init (GstDitDeviceAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR_CAST (self);

  alloc->mem_type = GST_DIT_DEVICE_MEMORY_TYPE;
  alloc->mem_map_full = device_memory_map;
  alloc->mem_unmap_full = device_memory_unmap;
  alloc->mem_copy = device_memory_copy;
  GST_OBJECT_FLAG_SET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

GstAllocator *
gst_dit_device_allocator_new (GstDitSession * session, gchar ** error)
{
  GstDitDeviceAllocator *self;
  dit_backend *be = gst_dit_session_get_backend (session);

  if (!be || !gst_dit_session_on_device (session)) {
    *error = g_strdup_printf ("session '%s' does not compute on a device",
        gst_dit_session_get_key (session));
    return NULL;
  }
  self = g_object_new (GST_TYPE_DIT_DEVICE_ALLOCATOR, NULL);
  gst_object_ref_sink (self);
  self->session = gst_object_ref (session);
  self->be = be;
  return GST_ALLOCATOR_CAST (self);
}

GstBufferPool *
gst_dit_device_pool_new (GstAllocator * allocator, gsize size)
{
  GstBufferPool *pool = gst_buffer_pool_new ();
  GstStructure *config = gst_buffer_pool_get_config (pool);

  gst_buffer_pool_config_set_params (config, NULL, (guint) size, 0, 0);
  gst_buffer_pool_config_set_allocator (config, allocator, NULL);
  if (!gst_buffer_pool_set_config (pool, config)
      || !gst_buffer_pool_set_active (pool, TRUE)) {
    gst_object_unref (pool);
    return NULL;
  }
  return pool;
}

gboolean
gst_is_dit_device_memory (GstMemory * mem)
{
  return mem && mem->allocator
      && GST_IS_DIT_DEVICE_ALLOCATOR (mem->allocator);
}

GstMemory *
gst_dit_buffer_device_memory (GstBuffer * buffer)
{
  GstMemory *mem;

  if (gst_buffer_n_memory (buffer) != 1)
    return NULL;
  mem = gst_buffer_peek_memory (buffer, 0);
  return gst_is_dit_device_memory (mem) ? mem : NULL;
}

gpointer
gst_dit_device_memory_data (GstMemory * mem)
{
  return ((GstDitDeviceMemory *) mem)->dev;
}

/* The calls below order streams on the device; a failing CUDA call is
 * reported with the backend's message. */
static gboolean
event_step (dit_status st, const gchar * what, gchar ** error)
{
  if (st == DIT_OK)
    return TRUE;
  *error = g_strdup_printf ("device latents (%s): %s", what,
      dit_last_error ());
  return FALSE;
}

gboolean
gst_dit_device_memory_begin_write (GstMemory * mem, dit_backend * be,
    gchar ** error)
{
  return event_step (dit_event_wait (be, ((GstDitDeviceMemory *) mem)->read),
      "waiting for readers", error);
}

gboolean
gst_dit_device_memory_written (GstMemory * mem, dit_backend * be,
    gchar ** error)
{
  return event_step (dit_event_record (be,
          ((GstDitDeviceMemory *) mem)->written), "marking written", error);
}

gboolean
gst_dit_device_memory_begin_read (GstMemory * mem, dit_backend * be,
    gchar ** error)
{
  GstDitDeviceAllocator *alloc = GST_DIT_DEVICE_ALLOCATOR (mem->allocator);

  /* Two sessions (session property) may compute on different GPUs. */
  if (!dit_backend_shares_memory (alloc->be, be)) {
    *error = g_strdup_printf ("device latents of session '%s' (device %d) "
        "cannot be read on device %d: use one session for linked dit "
        "elements", gst_dit_session_get_key (alloc->session),
        alloc->be->device_index, be->device_index);
    return FALSE;
  }
  return event_step (dit_event_wait (be,
          ((GstDitDeviceMemory *) mem)->written), "waiting for the writer",
      error);
}

gboolean
gst_dit_device_memory_read_done (GstMemory * mem, dit_backend * be,
    gchar ** error)
{
  GstDitDeviceMemory *m = (GstDitDeviceMemory *) mem;

  /* Several readers (a tee): each one's stream first waits for the reads
   * recorded before, so the event ends up covering all of them. */
  g_mutex_lock (&m->lock);
  if (!event_step (dit_event_wait (be, m->read), "chaining readers", error)
      || !event_step (dit_event_record (be, m->read), "marking read", error)) {
    g_mutex_unlock (&m->lock);
    return FALSE;
  }
  g_mutex_unlock (&m->lock);
  return TRUE;
}

GstCaps *
gst_dit_caps_with_feature (const GstCaps * caps, const gchar * feature)
{
  GstCaps *out = gst_caps_new_empty ();

  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    if (f && !gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
      continue;
    out = gst_caps_merge_structure_full (out,
        gst_structure_copy (gst_caps_get_structure (caps, i)),
        gst_caps_features_new (feature, NULL));
  }
  return out;
}

GstCaps *
gst_dit_caps_any_memory (GstCaps * caps)
{
  GstCaps *sys;

  if (gst_caps_is_any (caps))
    return caps;
  sys = gst_caps_new_empty ();
  for (guint i = 0; i < gst_caps_get_size (caps); i++)
    sys = gst_caps_merge_structure (sys,
        gst_structure_copy (gst_caps_get_structure (caps, i)));
  gst_caps_unref (caps);
  return gst_caps_merge (sys, gst_dit_caps_with_feature (sys,
          GST_DIT_CAPS_FEATURE_DEVICE));
}

GstCaps *
gst_dit_caps_keep_memory (GstCaps * caps, gboolean device)
{
  if (!device)
    return gst_dit_caps_drop_feature (caps, GST_DIT_CAPS_FEATURE_DEVICE);
  caps = gst_caps_make_writable (caps);
  for (guint i = gst_caps_get_size (caps); i > 0; i--) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i - 1);
    if (!f || gst_caps_features_is_any (f)
        || !gst_caps_features_contains (f, GST_DIT_CAPS_FEATURE_DEVICE))
      gst_caps_remove_structure (caps, i - 1);
  }
  return caps;
}

gboolean
gst_dit_peer_takes_device (GstPad * srcpad, GstDitSession * session)
{
  GstCaps *peer;
  gboolean device = FALSE;

  if (!session || !gst_dit_session_on_device (session))
    return FALSE;
  peer = gst_pad_peer_query_caps (srcpad, NULL);
  if (!gst_caps_is_any (peer)) {
    peer = gst_dit_caps_keep_memory (peer, TRUE);
    device = !gst_caps_is_empty (peer);
  }
  gst_caps_unref (peer);
  return device;
}

gboolean
gst_dit_caps_query_convert (GstQuery * query, GstPad * pad, GstPad * raw_pad,
    GstPad * latent_pad, const gchar * formats, gboolean cuda)
{
  GstCaps *filter, *peer, *caps, *tmpl = gst_pad_get_pad_template_caps (pad);

  gst_query_parse_caps (query, &filter);
  peer = gst_pad_peer_query_caps (pad == raw_pad ? latent_pad : raw_pad,
      NULL);
  if (pad == raw_pad) {
    caps = gst_dit_caps_latent_to_raw (peer, formats);
    if (cuda)
      caps = gst_caps_merge (gst_dit_caps_to_cuda (caps,
              GST_DIT_CUDA_FORMATS), caps);
    else
      tmpl = gst_dit_caps_drop_feature (tmpl, GST_DIT_CAPS_FEATURE_CUDA);
  } else {
    if (!cuda && !gst_caps_is_any (peer))
      peer = gst_dit_caps_drop_feature (peer, GST_DIT_CAPS_FEATURE_CUDA);
    caps = gst_dit_caps_any_memory (gst_dit_caps_raw_to_latent (peer));
  }
  gst_caps_unref (peer);
  peer = gst_caps_intersect (caps, tmpl);
  gst_caps_unref (caps);
  gst_caps_unref (tmpl);
  if (filter) {
    caps = gst_caps_intersect_full (filter, peer, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (peer);
    peer = caps;
  }
  gst_query_set_caps_result (query, peer);
  gst_caps_unref (peer);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* latent chunks <-> tensors */

gboolean
gst_dit_buffer_to_latents (GstBuffer * buffer, const GstDitLatentInfo * info,
    dit_backend * be, gfloat * scratch, dit_tensor * out, GstMemory ** dev,
    gchar ** error)
{
  int64_t shape[4] = { DIT_LATENT_CHANNELS, info->frames, info->height,
    info->width
  };
  GstMapInfo map;

  if (gst_buffer_get_size (buffer) < gst_dit_latent_info_buffer_size (info)) {
    *error = g_strdup_printf ("input chunk of %" G_GSIZE_FORMAT " bytes, "
        "caps need %" G_GSIZE_FORMAT, gst_buffer_get_size (buffer),
        gst_dit_latent_info_buffer_size (info));
    return FALSE;
  }
  *dev = gst_dit_buffer_device_memory (buffer);
  if (*dev) {
    if (!gst_dit_device_memory_begin_read (*dev, be, error))
      return FALSE;
    *out = dit_tensor_make (gst_dit_device_memory_data (*dev),
        info->bf16 ? DIT_BF16 : DIT_F32, dit_backend_device (be), 4, shape);
    return TRUE;
  }
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    *error = g_strdup ("could not map an input chunk");
    return FALSE;
  }
  gst_dit_latent_to_f32 (info, map.data, scratch);
  gst_buffer_unmap (buffer, &map);
  *out = dit_tensor_make (scratch, DIT_F32, DIT_DEVICE_CPU, 4, shape);
  return TRUE;
}

gboolean
gst_dit_latents_to_buffer (const dit_tensor * x, const GstDitLatentInfo * info,
    dit_backend * be, GstBufferPool * pool, gfloat * scratch,
    GstBuffer ** out, gchar ** error)
{
  GstBuffer *buf = NULL;
  GstMemory *mem;
  GstMapInfo map;
  const gfloat *host = x->data;
  int64_t n = dit_tensor_numel (x);

  if (!pool) {
    if (x->device != DIT_DEVICE_CPU) {
      if (dit_download (be, scratch, x->data, dit_tensor_nbytes (x)) != DIT_OK) {
        *error = g_strdup (dit_last_error ());
        return FALSE;
      }
      host = scratch;
    }
    buf = gst_buffer_new_allocate (NULL, gst_dit_latent_info_buffer_size (info),
        NULL);
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    gst_dit_latent_from_f32 (info, host, map.data);
    gst_buffer_unmap (buf, &map);
    *out = buf;
    return TRUE;
  }
  if (gst_buffer_pool_acquire_buffer (pool, &buf, NULL) != GST_FLOW_OK
      || !(mem = gst_dit_buffer_device_memory (buf))) {
    if (buf)
      gst_buffer_unref (buf);
    *error = g_strdup ("no device latent buffer from the pool");
    return FALSE;
  }
  dit_tensor src = dit_tensor_2d (x->data, DIT_F32, x->device, 1, n);
  dit_tensor dst = dit_tensor_2d (gst_dit_device_memory_data (mem),
      info->bf16 ? DIT_BF16 : DIT_F32, x->device, 1, n);
  dit_copy_params cp = { .x = &src, .y = &dst };
  if (!gst_dit_device_memory_begin_write (mem, be, error))
    goto fail;
  if (dit_copy (be, &cp) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    goto fail;
  }
  if (!gst_dit_device_memory_written (mem, be, error))
    goto fail;
  *out = buf;
  return TRUE;
fail:
  gst_buffer_unref (buf);
  return FALSE;
}
