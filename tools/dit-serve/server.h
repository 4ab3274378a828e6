/* server — dit-serve's HTTP side (libsoup 3): WHEP signalling, the control
 * API and the viewer page.
 *
 *   GET  /                 the viewer page (index.html from the www dir)
 *   GET  /<file>           other files of the www dir (viewer.js, ...)
 *   GET  /health           {"status": "ok"}
 *   GET  /stats            see stats.h
 *   POST /prompt           {"prompt": "text"} or {"embeds": "/path.safetensors"}
 *   POST /seed             {"seed": N}
 *   POST /whep             SDP offer in, 201 + SDP answer + Location out
 *   DELETE /whep/<id>      hang up
 *
 * Errors are JSON, {"error": "message"}, with 400 (malformed), 404
 * (unknown route or viewer), 405 (method), 413 (body over the limit), 415
 * (content type), 422 (well-formed but unusable), 503 (viewer limit).
 */
#ifndef DIT_SERVE_SERVER_H
#define DIT_SERVE_SERVER_H

#include <glib.h>

#include "pipeline.h"

G_BEGIN_DECLS

/* Request bodies above this are refused with 413. */
#define DIT_SERVE_MAX_BODY (64 * 1024)

typedef struct _DitServeServer DitServeServer;

DitServeServer *dit_serve_server_new (DitServePipeline * pipeline,
    const gchar * www_dir, GError ** error);
/* Listen on addr:port (port 0 picks a free one); returns the base URL
 * ("http://127.0.0.1:8080/"), g_free it. */
gchar *dit_serve_server_listen (DitServeServer * s, const gchar * addr,
    guint port, GError ** error);
void dit_serve_server_free (DitServeServer * s);

G_END_DECLS
#endif /* DIT_SERVE_SERVER_H */
