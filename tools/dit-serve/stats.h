/* stats — what GET /stats reports, and the frame-rate meter behind it.
 *
 * The document (all numbers; names in snake_case so JavaScript reads them as
 * plain properties):
 *   fps          generator output rate over its last chunk (ditgenerate)
 *   output_fps   encoded frames per second leaving the encoder, over the
 *                last two seconds (what viewers get)
 *   chunk_ms     generator time of the last chunk
 *   mesh_ms      time in the generator mesh for the last chunk (0: no mesh)
 *   chunks       chunks generated since start
 *   frames       encoded frames since start (rates over any window)
 *   prompt_epoch, cache_epoch, seed   from the last chunk's GstDitLatentMeta
 *   viewers      connected or connecting viewers
 *   queues       { generator: input chunks waiting in ditgenerate,
 *                  display: decoded frames waiting to be paced and encoded,
 *                  viewers: packets queued per viewer (sum) }
 *   viewer_list  [{ id, state, queued, sent, dropped, age_s, rtcp_age_s }]
 *                rtcp_age_s: seconds since the viewer's last RTCP packet
 *                (-1 before the first one)
 *   width, height, framerate, encoder, uptime_s
 */
#ifndef DIT_SERVE_STATS_H
#define DIT_SERVE_STATS_H

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define DIT_SERVE_RATE_SLOTS 128

/* Timestamps of the most recent frames, thread-safe. */
typedef struct _DitServeRate
{
  GMutex lock;
  gint64 t_us[DIT_SERVE_RATE_SLOTS];
  guint head, count;
} DitServeRate;

void dit_serve_rate_init (DitServeRate * r);
void dit_serve_rate_clear (DitServeRate * r);
void dit_serve_rate_tick (DitServeRate * r, gint64 now_us);
/* Frames per second over the last window_us (0 with fewer than 2 frames). */
gdouble dit_serve_rate_fps (DitServeRate * r, gint64 now_us, gint64 window_us);

typedef struct _DitServeViewerStats
{
  const gchar *id;
  const gchar *state;
  guint queued;
  guint64 sent, dropped;
  gdouble age_s;
  gdouble rtcp_age_s;           /* -1: no RTCP yet */
} DitServeViewerStats;

typedef struct _DitServeStats
{
  gdouble fps, output_fps, chunk_ms, mesh_ms;
  guint64 chunks, frames, prompt_epoch, cache_epoch, seed;
  gint generator_queue, display_queue;
  guint n_viewers;
  const DitServeViewerStats *viewers;
  gint width, height, framerate;
  const gchar *encoder;
  gdouble uptime_s;
} DitServeStats;

JsonNode *dit_serve_stats_to_json (const DitServeStats * s);

G_END_DECLS
#endif /* DIT_SERVE_STATS_H */
