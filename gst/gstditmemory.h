/* GstDitDeviceMemory — latent chunks kept in the session device's memory
 * while they pass from one dit element to the next.
 *
 * Caps feature "memory:DitDevice" on video/x-dit-latent.  The producer
 * writes the memory with ops on its own backend stream and then marks it
 * written (an event recorded on that stream); a consumer makes its stream
 * wait for that event before its ops read the memory and marks it read
 * afterwards; the producer's next write of a pooled buffer waits for that
 * in turn.  No host thread waits on either side.
 *
 * A producer offers the feature only to a peer whose caps name it (the dit
 * elements on a CUDA session); a peer that takes anything gets system
 * memory.  Should such a buffer still reach other code, mapping it for
 * reading waits for the producer and downloads a host copy (the one host
 * synchronisation, where the data leaves the device); a write mapping
 * uploads that copy again when it is unmapped.
 *
 * The allocator holds a reference on the session, whose backend allocates
 * and frees the device memory, so buffers outliving their producer element
 * (in a queue, after a state change) stay valid.
 */
#ifndef __GST_DIT_MEMORY_H__
#define __GST_DIT_MEMORY_H__

#include <gst/gst.h>

#include "gstditlatent.h"
#include "gstditsession.h"

G_BEGIN_DECLS

#define GST_DIT_DEVICE_MEMORY_TYPE "DitDeviceMemory"

/* An allocator of device memory on `session`'s backend (which must compute
 * on a device); NULL with *error set otherwise. */
GstAllocator *gst_dit_device_allocator_new (GstDitSession * session,
    gchar ** error);
/* A buffer pool of `size`-byte buffers from that allocator. */
GstBufferPool *gst_dit_device_pool_new (GstAllocator * allocator,
    gsize size);

gboolean gst_is_dit_device_memory (GstMemory * mem);
/* The device memory of a buffer made of one DitDevice memory, else NULL. */
GstMemory *gst_dit_buffer_device_memory (GstBuffer * buffer);
/* Its device pointer (valid while the memory lives). */
gpointer gst_dit_device_memory_data (GstMemory * mem);

/* Producer: ops on `be` may write the memory after this returns (their
 * stream waits for the last reader). */
gboolean gst_dit_device_memory_begin_write (GstMemory * mem, dit_backend * be,
    gchar ** error);
/* Producer: everything enqueued on `be` so far completes the contents. */
gboolean gst_dit_device_memory_written (GstMemory * mem, dit_backend * be,
    gchar ** error);
/* Consumer: ops on `be` may read the memory after this returns. */
gboolean gst_dit_device_memory_begin_read (GstMemory * mem, dit_backend * be,
    gchar ** error);
/* Consumer: the reads enqueued on `be` so far are the last ones. */
gboolean gst_dit_device_memory_read_done (GstMemory * mem, dit_backend * be,
    gchar ** error);

/* A latent chunk in `buffer` as a tensor [16, F, h, w] that ops on `be`
 * read: device memory as it is (*dev is set and begin_read done: call
 * gst_dit_device_memory_read_done after the reads), system memory
 * converted to host f32 in `scratch` (*dev NULL). */
gboolean gst_dit_buffer_to_latents (GstBuffer * buffer,
    const GstDitLatentInfo * info, dit_backend * be, gfloat * scratch,
    dit_tensor * out, GstMemory ** dev, gchar ** error);
/* f32 latents `x` (on be's device or the host) into a new buffer of
 * `info`: from `pool` (device memory in the caps' dtype, converted and
 * marked written on be's stream: nothing waits), or, pool NULL, system
 * memory (device latents are downloaded into `scratch` first: the
 * consumer asked for host memory). */
gboolean gst_dit_latents_to_buffer (const dit_tensor * x,
    const GstDitLatentInfo * info, dit_backend * be, GstBufferPool * pool,
    gfloat * scratch, GstBuffer ** out, gchar ** error);

/* Latent caps helpers.  with_feature: the system-memory structures of
 * `caps` again with `feature` (new caps).  any_memory: every structure of
 * `caps` (taken) in system memory and again in device memory, for caps
 * queries (the memory of one link says nothing about the next).
 * keep_memory: `caps` (taken) narrowed to one kind of memory. */
GstCaps *gst_dit_caps_with_feature (const GstCaps * caps,
    const gchar * feature);
GstCaps *gst_dit_caps_any_memory (GstCaps * caps);
GstCaps *gst_dit_caps_keep_memory (GstCaps * caps, gboolean device);

/* Whether a producer on `session` hands the peer of `srcpad` device
 * memory: the session computes on a device and the peer's caps name the
 * feature.  A peer that takes anything gets system memory. */
gboolean gst_dit_peer_takes_device (GstPad * srcpad, GstDitSession * session);

/* A CAPS query on `pad` of ditencode or ditdecode (their `raw_pad` or
 * `latent_pad`), answered from the peer caps of the other pad mapped
 * between raw video and latents.  Raw video is offered in `formats` in
 * system memory and, when `cuda` (gst_dit_session_cuda_offerable), first
 * in CUDA memory; a raw peer's CUDA memory counts only then.  Latents are
 * offered in either memory. */
gboolean gst_dit_caps_query_convert (GstQuery * query, GstPad * pad,
    GstPad * raw_pad, GstPad * latent_pad, const gchar * formats,
    gboolean cuda);

G_END_DECLS
#endif /* __GST_DIT_MEMORY_H__ */
