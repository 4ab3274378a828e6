/* GstDitChunkQueue — the bounded hand-off between ditgenerate's sink pad
 * (upstream's streaming thread) and the task on its source pad.
 *
 * Buffers and serialized events wait in arrival order.  At most `limit`
 * buffers: pushing another blocks upstream until the task takes one (events
 * never block, so an EOS or a flush gets through).  The queue's flow result
 * is what a push returns: GST_FLOW_OK while it runs, GST_FLOW_FLUSHING
 * once stopped, or the error the task failed with, so upstream learns of
 * it.  Every call takes the queue's own lock; none holds it while calling
 * out.
 */
#ifndef __GST_DIT_QUEUE_H__
#define __GST_DIT_QUEUE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct _GstDitChunkQueue
{
  GMutex lock;
  GCond cond;
  GQueue items;                 /* GstBuffer and GstEvent */
  gint buffers, limit;
  GstFlowReturn result;
} GstDitChunkQueue;

/* Empty and stopped (GST_FLOW_FLUSHING), holding up to `limit` buffers. */
void gst_dit_chunk_queue_init (GstDitChunkQueue * q, gint limit);
void gst_dit_chunk_queue_clear (GstDitChunkQueue * q);

/* Running (flow result OK), for a task that starts or resumes. */
void gst_dit_chunk_queue_start (GstDitChunkQueue * q);
/* Stopped with `result` (GST_FLOW_FLUSHING for a flush or deactivation);
 * wakes a blocked push and a waiting pop.  The items stay. */
void gst_dit_chunk_queue_stop (GstDitChunkQueue * q, GstFlowReturn result);
/* The task failed or ended with `result`: stops the queue unless it is
 * stopped already (the first reason wins). */
void gst_dit_chunk_queue_fail (GstDitChunkQueue * q, GstFlowReturn result);
/* Drops every item. */
void gst_dit_chunk_queue_flush (GstDitChunkQueue * q);
void gst_dit_chunk_queue_set_limit (GstDitChunkQueue * q, gint limit);

/* Takes `buf`; blocks while `limit` buffers wait.  Returns the flow result
 * (the buffer is dropped unless it is OK). */
GstFlowReturn gst_dit_chunk_queue_push_buffer (GstDitChunkQueue * q,
    GstBuffer * buf);
/* Takes `event`; FALSE (event dropped) when the queue is stopped. */
gboolean gst_dit_chunk_queue_push_event (GstDitChunkQueue * q,
    GstEvent * event);
/* The next item, waiting for one up to `timeout_us` (< 0: no limit).
 * NULL when the queue is stopped (*result says why) or the wait timed out
 * (*result GST_FLOW_OK). */
GstMiniObject *gst_dit_chunk_queue_pop (GstDitChunkQueue * q,
    gint64 timeout_us, GstFlowReturn * result);
gint gst_dit_chunk_queue_buffers (GstDitChunkQueue * q);

G_END_DECLS
#endif
