/* GstDitChunkQueue: ditgenerate's bounded input hand-off (gstditqueue.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditqueue.h"

void
gst_dit_chunk_queue_init (GstDitChunkQueue * q, gint limit)
{
  g_mutex_init (&q->lock);
  g_cond_init (&q->cond);
  g_queue_init (&q->items);
  q->buffers = 0;
  q->limit = limit;
  q->result = GST_FLOW_FLUSHING;
}

void
gst_dit_chunk_queue_clear (GstDitChunkQueue * q)
{
  gst_dit_chunk_queue_flush (q);
  g_mutex_clear (&q->lock);
  g_cond_clear (&q->cond);
}

static void
set_result (GstDitChunkQueue * q, GstFlowReturn result, gboolean first)
{
  g_mutex_lock (&q->lock);
  if (!first || q->result == GST_FLOW_OK)
    q->result = result;
  g_cond_broadcast (&q->cond);
  g_mutex_unlock (&q->lock);
}

void
gst_dit_chunk_queue_start (GstDitChunkQueue * q)
{
  set_result (q, GST_FLOW_OK, FALSE);
}

void
gst_dit_chunk_queue_stop (GstDitChunkQueue * q, GstFlowReturn result)
{
  set_result (q, result, FALSE);
}

void
gst_dit_chunk_queue_fail (GstDitChunkQueue * q, GstFlowReturn result)
{
  set_result (q, result, TRUE);
}

void
gst_dit_chunk_queue_flush (GstDitChunkQueue * q)
{
  GstMiniObject *o;

  g_mutex_lock (&q->lock);
  while ((o = g_queue_pop_head (&q->items)))
    gst_mini_object_unref (o);
  q->buffers = 0;
  g_cond_broadcast (&q->cond);
  g_mutex_unlock (&q->lock);
}

void
gst_dit_chunk_queue_set_limit (GstDitChunkQueue * q, gint limit)
{
  g_mutex_lock (&q->lock);
  q->limit = limit;
  g_cond_broadcast (&q->cond);
  g_mutex_unlock (&q->lock);
}

GstFlowReturn
gst_dit_chunk_queue_push_buffer (GstDitChunkQueue * q, GstBuffer * buf)
{
  GstFlowReturn ret;

  g_mutex_lock (&q->lock);
  while (q->buffers >= q->limit && q->result == GST_FLOW_OK)
    g_cond_wait (&q->cond, &q->lock);
  ret = q->result;
  if (ret == GST_FLOW_OK) {
    g_queue_push_tail (&q->items, buf);
    q->buffers++;
    g_cond_broadcast (&q->cond);
    buf = NULL;
  }
  g_mutex_unlock (&q->lock);
  if (buf)
    gst_buffer_unref (buf);
  return ret;
}

gboolean
gst_dit_chunk_queue_push_event (GstDitChunkQueue * q, GstEvent * event)
{
  gboolean ok;

  g_mutex_lock (&q->lock);
  ok = q->result == GST_FLOW_OK;
  if (ok) {
    g_queue_push_tail (&q->items, event);
    g_cond_broadcast (&q->cond);
  }
  g_mutex_unlock (&q->lock);
  if (!ok)
    gst_event_unref (event);
  return ok;
}

GstMiniObject *
gst_dit_chunk_queue_pop (GstDitChunkQueue * q, gint64 timeout_us,
    GstFlowReturn * result)
{
  gint64 until = g_get_monotonic_time () + timeout_us;
  GstMiniObject *item = NULL;

  g_mutex_lock (&q->lock);
  while (g_queue_is_empty (&q->items) && q->result == GST_FLOW_OK) {
    if (timeout_us < 0)
      g_cond_wait (&q->cond, &q->lock);
    else if (!g_cond_wait_until (&q->cond, &q->lock, until))
      break;
  }
  *result = q->result;
  if (q->result == GST_FLOW_OK && (item = g_queue_pop_head (&q->items))) {
    if (GST_IS_BUFFER (item))
      q->buffers--;
    g_cond_broadcast (&q->cond);
  }
  g_mutex_unlock (&q->lock);
  return item;
}

gint
gst_dit_chunk_queue_buffers (GstDitChunkQueue * q)
{
  gint n;

  g_mutex_lock (&q->lock);
  n = q->buffers;
  g_mutex_unlock (&q->lock);
  return n;
}
