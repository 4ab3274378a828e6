/* pipeline — the dit-serve media graph: generation, one encode, fan-out.
 *
 *   ditgenerate ! ditdecode ! queue ! clocksync ! videoconvert ! ENC !
 *     h264parse ! tee ─┬─ queue ! fakesink               (keeps a sink)
 *                      ├─ queue ! h264parse ! flvmux ! rtmp2sink   (--rtmp)
 *                      └─ per viewer: queue leaky ! rtph264pay ! webrtcbin
 *
 * With a source, `SRC ! videoconvert ! videoscale ! videorate ! queue !
 * ditencode` feeds ditgenerate (video-to-video).  Every viewer branch sits
 * behind its own small leaky queue, so a viewer that stops reading loses its
 * own packets and nobody else's.  All functions are called from the thread
 * that runs the default GMainContext.
 */
#ifndef DIT_SERVE_PIPELINE_H
#define DIT_SERVE_PIPELINE_H

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define DIT_SERVE_ERROR (dit_serve_error_quark ())
GQuark dit_serve_error_quark (void);

/* Error codes map to HTTP statuses in server.c. */
typedef enum
{
  DIT_SERVE_ERROR_BAD_REQUEST,  /* 400: malformed input */
  DIT_SERVE_ERROR_NOT_FOUND,    /* 404 */
  DIT_SERVE_ERROR_UNSUPPORTED,  /* 422: well-formed but unusable */
  DIT_SERVE_ERROR_BUSY,         /* 503: viewer limit reached */
  DIT_SERVE_ERROR_FAILED        /* 500 */
} DitServeErrorCode;

typedef struct _DitServeConfig
{
  gchar *source;                /* NULL: text-to-video */
  gchar *model;                 /* ditgenerate model (NULL = its default) */
  gchar *vae_model;
  gchar *text_model;            /* ditgenerate text-model (NULL = its default) */
  gchar *decoder_model;         /* ditdecode decoder-model (NULL: the VAE) */
  gchar *device;                /* cpu, cuda:N */
  gchar *steps;
  gint width, height, fps;
  guint64 seed;
  gchar *lora;                  /* ditgenerate lora list (NULL: none) */
  gchar *lora_mode;             /* merge (NULL) or live */
  gchar *encoder;               /* auto, x264, nvh264 */
  gint bitrate_kbps;
  gint key_int;                 /* frames between IDR frames */
  gchar *rtmp_url;
  gchar *stun_server;           /* stun://host:port */
  gchar **turn_servers;         /* turn(s)://user:pass@host:port */
  gchar **ice_addresses;        /* gather only on these (NULL: every one) */
  gint ice_timeout_ms;          /* wait for ICE gathering before answering */
  gint max_viewers;
  gint connect_timeout_s;       /* drop viewers that never connect */
  gint rtcp_timeout_s;          /* drop connected viewers silent this long
                                 * (0: never) */
} DitServeConfig;

typedef struct _DitServePipeline DitServePipeline;

/* Called once, on the main context, with the answer SDP (and the viewer id
 * for the Location header) or an error. */
typedef void (*DitServeAnswerFunc) (const gchar * viewer_id,
    const gchar * answer_sdp, const GError * error, gpointer user_data);

DitServePipeline *dit_serve_pipeline_new (const DitServeConfig * cfg,
    GMainLoop * loop, GError ** error);
gboolean dit_serve_pipeline_start (DitServePipeline * p, GError ** error);
void dit_serve_pipeline_free (DitServePipeline * p);
/* 0 after a clean end (EOS of a finite source), 1 after a pipeline error. */
gint dit_serve_pipeline_exit_status (DitServePipeline * p);

void dit_serve_pipeline_add_viewer (DitServePipeline * p,
    const gchar * offer_sdp, DitServeAnswerFunc func, gpointer user_data);
gboolean dit_serve_pipeline_remove_viewer (DitServePipeline * p,
    const gchar * viewer_id);

/* Prompt embeddings from a safetensors file, validated against the model's
 * text width before ditgenerate sees it. */
gboolean dit_serve_pipeline_set_prompt_embeds (DitServePipeline * p,
    const gchar * path, GError ** error);
/* A text prompt, encoded by ditgenerate's text encoder. */
gboolean dit_serve_pipeline_set_prompt_text (DitServePipeline * p,
    const gchar * text, GError ** error);
void dit_serve_pipeline_set_seed (DitServePipeline * p, guint64 seed);
/* A LoRA list ("a.safetensors:0.8|b.safetensors:0.4", "" = none), every
 * file checked against the model first (dit_serve_lora_check); it takes
 * effect at ditgenerate's next chunk. */
gboolean dit_serve_pipeline_set_lora (DitServePipeline * p,
    const gchar * text, GError ** error);
/* {"lora": the list in force, "mode": "merge" | "live"} */
JsonNode *dit_serve_pipeline_lora (DitServePipeline * p);

/* The /stats document. */
JsonNode *dit_serve_pipeline_stats (DitServePipeline * p);

G_END_DECLS
#endif /* DIT_SERVE_PIPELINE_H */
