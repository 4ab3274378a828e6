/* stats — frame-rate meter and the /stats JSON document (see stats.h). */
#include "stats.h"

void
dit_serve_rate_init (DitServeRate * r)
{
  g_mutex_init (&r->lock);
  r->head = r->count = 0;
}

void
dit_serve_rate_clear (DitServeRate * r)
{
  g_mutex_clear (&r->lock);
}

void
dit_serve_rate_tick (DitServeRate * r, gint64 now_us)
{
  g_mutex_lock (&r->lock);
  r->t_us[r->head] = now_us;
  r->head = (r->head + 1) % DIT_SERVE_RATE_SLOTS;
  if (r->count < DIT_SERVE_RATE_SLOTS)
    r->count++;
  g_mutex_unlock (&r->lock);
}

gdouble
dit_serve_rate_fps (DitServeRate * r, gint64 now_us, gint64 window_us)
{
  guint n = 0;
  gint64 oldest = now_us;

  g_mutex_lock (&r->lock);
  for (guint i = 0; i < r->count; i++) {
    guint slot = (r->head + DIT_SERVE_RATE_SLOTS - 1 - i) % DIT_SERVE_RATE_SLOTS;
    if (now_us - r->t_us[slot] > window_us)
      break;
    oldest = r->t_us[slot];
    n++;
  }
  g_mutex_unlock (&r->lock);
  /* A stream that stopped reads as 0 rather than as its old rate: count
   * the frames in the window over the whole window once it is full. */
  if (n < 2)
    return 0.0;
  if (now_us - oldest < window_us / 2)
    return (n - 1) * 1e6 / (gdouble) MAX (now_us - oldest, 1);
  return n * 1e6 / (gdouble) window_us;
}

JsonNode *
dit_serve_stats_to_json (const DitServeStats * s)
{
  JsonBuilder *b = json_builder_new ();
  JsonNode *root;
  guint queued = 0;

  for (guint i = 0; i < s->n_viewers; i++)
    queued += s->viewers[i].queued;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "fps");
  json_builder_add_double_value (b, s->fps);
  json_builder_set_member_name (b, "output_fps");
  json_builder_add_double_value (b, s->output_fps);
  json_builder_set_member_name (b, "chunk_ms");
  json_builder_add_double_value (b, s->chunk_ms);
  json_builder_set_member_name (b, "mesh_ms");
  json_builder_add_double_value (b, s->mesh_ms);
  json_builder_set_member_name (b, "chunks");
  json_builder_add_int_value (b, (gint64) s->chunks);
  json_builder_set_member_name (b, "frames");
  json_builder_add_int_value (b, (gint64) s->frames);
  json_builder_set_member_name (b, "prompt_epoch");
  json_builder_add_int_value (b, (gint64) s->prompt_epoch);
  json_builder_set_member_name (b, "cache_epoch");
  json_builder_add_int_value (b, (gint64) s->cache_epoch);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, (gint64) s->seed);
  json_builder_set_member_name (b, "viewers");
  json_builder_add_int_value (b, s->n_viewers);

  json_builder_set_member_name (b, "queues");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "generator");
  json_builder_add_int_value (b, s->generator_queue);
  json_builder_set_member_name (b, "display");
  json_builder_add_int_value (b, s->display_queue);
  json_builder_set_member_name (b, "viewers");
  json_builder_add_int_value (b, queued);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "viewer_list");
  json_builder_begin_array (b);
  for (guint i = 0; i < s->n_viewers; i++) {
    const DitServeViewerStats *v = &s->viewers[i];
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_string_value (b, v->id);
    json_builder_set_member_name (b, "state");
    json_builder_add_string_value (b, v->state);
    json_builder_set_member_name (b, "queued");
    json_builder_add_int_value (b, v->queued);
    json_builder_set_member_name (b, "sent");
    json_builder_add_int_value (b, (gint64) v->sent);
    json_builder_set_member_name (b, "dropped");
    json_builder_add_int_value (b, (gint64) v->dropped);
    json_builder_set_member_name (b, "age_s");
    json_builder_add_double_value (b, v->age_s);
    json_builder_set_member_name (b, "rtcp_age_s");
    json_builder_add_double_value (b, v->rtcp_age_s);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "width");
  json_builder_add_int_value (b, s->width);
  json_builder_set_member_name (b, "height");
  json_builder_add_int_value (b, s->height);
  json_builder_set_member_name (b, "framerate");
  json_builder_add_int_value (b, s->framerate);
  json_builder_set_member_name (b, "encoder");
  json_builder_add_string_value (b, s->encoder);
  json_builder_set_member_name (b, "uptime_s");
  json_builder_add_double_value (b, s->uptime_s);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  g_object_unref (b);
  return root;
}
