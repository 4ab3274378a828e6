/* GstDitGenEngine — ditgenerate's engine glue: what configures and drives
 * the library's generator from the element's settings.
 *
 * The element keeps caps, pads, properties, the task and events; this
 * object holds the rest of a generator's life: the mesh settings checked
 * into a dit_mesh_spec, the generator config made from the properties for
 * the negotiated latents, the dit_runner (in this process or on a mesh)
 * with its own backend, the LoRA list it carries, the text encoder and the
 * dit_prompt_schedule, and one chunk's trip through Stage 0 (the
 * session's context and anchor path), the runner and the output buffer.
 *
 * The settings are the element's property fields (GstDitGenSettings, in
 * the element's instance); the engine reads them, clears their dirty
 * flags and writes its statistics under the owner's object lock, as the
 * element's property accessors do.  Errors come back as a message
 * (*error, to be freed) for the element to post with GST_ELEMENT_ERROR; a
 * change that cannot be applied while PLAYING (a prompt, a LoRA list) is
 * posted here as a warning on the owner, and the previous one stays.
 */
#ifndef __GST_DIT_GEN_ENGINE_H__
#define __GST_DIT_GEN_ENGINE_H__

#include <gst/gst.h>

#include "gstditlatent.h"
#include "gstditsession.h"
#include "dit_prompt.h"
#include "dit_prompt_schedule.h"
#include "dit_runner.h"

G_BEGIN_DECLS

/* The element's properties the engine reads (owner's object lock). */
typedef struct _GstDitGenSettings
{
  gchar *device, *steps;
  guint64 seed;
  gdouble shift, strength, kv_bias;
  gint kv_window, context_frames, max_inflight;
  gint anchor;                  /* dit_anchor_mode */
  gint dtype;                   /* GstDitDtype: the DiT's precision */
  gboolean prompt_dirty, seed_dirty;
  gchar *prompt_embeds, *prompt, *text_model, *tokenizer;
  guint transition_chunks;
  gint prompt_reset;            /* dit_prompt_reset */
  guint64 prompt_request;       /* latest id submitted to the text encoder */
  gchar *mesh_devices, *mesh_backend, *mesh_listen, *worker_path;
  gchar *mesh_parallel;
  gchar *mesh_colocate;         /* off, on, auto (dit_mesh_colocate) */
  gint mesh_ranks, mesh_timeout_ms, mesh_join_timeout_ms, mesh_tp;
  gchar *lora;                  /* "a.safetensors:0.8|b.safetensors:0.4" */
  gint lora_mode;               /* dit_lora_mode */
  gboolean lora_dirty;
} GstDitGenSettings;

typedef struct _GstDitGenEngine
{
  GstElement *owner;            /* messages; its object lock guards `s`,
                                   penc and the statistics */
  GstDitGenSettings *s;
  GstDitSession **session;      /* the owner's session pointer */

  GstDitLatentInfo info;
  gboolean configured;
  dit_model_config mcfg;
  dit_gen_config gcfg;
  gboolean use_mesh;            /* decided at NULL -> READY */
  dit_mesh_spec mesh_spec;
  gchar *mesh_weights;          /* checkpoint path, NULL = preset weights */
  dit_runner *runner;           /* the generator, in process or a mesh */
  dit_lora_spec lora_applied;   /* the LoRA list the runner carries */
  dit_backend *be;              /* the runner's own backend */
  gfloat *x_host;               /* a chunk in host f32 */
  GstBufferPool *out_pool;      /* device output buffers, NULL: system */
  gint64 chunk_index;
  guint64 epoch;
  dit_prompt_encoder *penc;     /* set under the object lock */
  dit_prompt_schedule *prompts;
  guint64 frames_out;
  gdouble stage1_ms_pending;    /* the last generator call, ms */

  /* read-only statistics; object lock */
  gdouble stat_prompt_weight, stat_chunk_ms;
  guint64 stat_epoch;
  guint stat_host_copies;
  dit_runner_stats stat_runner;
} GstDitGenEngine;

void gst_dit_gen_engine_init (GstDitGenEngine * e, GstElement * owner,
    GstDitGenSettings * s, GstDitSession ** session);
/* Frees what configure made (the runner, its backend, the prompt state). */
void gst_dit_gen_engine_free (GstDitGenEngine * e);
void gst_dit_gen_engine_clear (GstDitGenEngine * e);

/* NULL -> READY, before the session exists: the mesh properties checked
 * into mesh_spec (mesh/dit_mesh_config.h); use_mesh when it has ranks. */
gboolean gst_dit_gen_engine_read_mesh_spec (GstDitGenEngine * e,
    gchar ** error);
/* NULL -> READY: the DiT into the session, or with a mesh only its config
 * (checked against the mesh's degrees) and the session's device. */
gboolean gst_dit_gen_engine_load_dit (GstDitGenEngine * e,
    const gchar * model, const gchar * device, gint precision,
    gchar ** error);

/* The generator for latents of `info` (a no-op when only the rate
 * changed): config, Stage 0, runner, LoRAs, prompt; a new cache epoch. */
gboolean gst_dit_gen_engine_configure (GstDitGenEngine * e,
    const GstDitLatentInfo * info, gchar ** error);
/* Output buffers in device memory from now on (device = TRUE), or in
 * system memory. */
gboolean gst_dit_gen_engine_setup_output (GstDitGenEngine * e,
    gboolean device, gchar ** error);
/* A new stream: the KV context starts over under a new cache epoch. */
void gst_dit_gen_engine_reset_stream (GstDitGenEngine * e);

/* One chunk (`in`: video-to-video input, NULL: text-to-video) into *out.
 * GST_FLOW_FLUSHING when Stage 0 is flushing or saw a newer epoch;
 * GST_FLOW_ERROR with *error. */
GstFlowReturn gst_dit_gen_engine_run_chunk (GstDitGenEngine * e,
    GstBuffer * in, GstBuffer ** out, gchar ** error);

G_END_DECLS
#endif
