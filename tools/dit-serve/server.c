/* server — HTTP routes of dit-serve on libsoup 3 (see server.h).
 *
 * Every route is one handler on "/" that dispatches on method and path, so
 * unknown paths and methods get the same JSON errors as the rest.  Bodies
 * are limited twice: an early handler refuses a declared Content-Length
 * over the limit before the body is read, and the handler refuses a
 * chunked body that turned out larger.  WHEP answers are asynchronous: the
 * message is paused until webrtcbin has gathered its ICE candidates (or the
 * gathering timeout passed), then resumed with the answer.
 */
#include "server.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

struct _DitServeServer
{
  SoupServer *soup;
  DitServePipeline *pipeline;
  gchar *www_dir;
};

#define WHEP_PREFIX "/whep/"

static void
set_cors (SoupServerMessage * msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (h, "Access-Control-Allow-Origin", "*");
  soup_message_headers_replace (h, "Access-Control-Expose-Headers",
      "Location");
}

static void
reply_json (SoupServerMessage * msg, guint status, JsonNode * node)
{
  gchar *text = json_to_string (node, FALSE);

  set_cors (msg);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json",
      SOUP_MEMORY_TAKE, text, strlen (text));
}

static void
reply_error (SoupServerMessage * msg, guint status, const gchar * fmt, ...)
    G_GNUC_PRINTF (3, 4);

static void
reply_error (SoupServerMessage * msg, guint status, const gchar * fmt, ...)
{
  JsonBuilder *b = json_builder_new ();
  JsonNode *node;
  gchar *text;
  va_list ap;

  va_start (ap, fmt);
  text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, text);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  reply_json (msg, status, node);
  json_node_unref (node);
  g_object_unref (b);
  g_free (text);
}

static void
reply_ok (SoupServerMessage * msg, guint status)
{
  JsonNode *node = json_from_string ("{\"status\":\"ok\"}", NULL);

  reply_json (msg, status, node);
  json_node_unref (node);
}

static guint
status_of (const GError * error)
{
  if (error->domain != DIT_SERVE_ERROR)
    return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  switch (error->code) {
    case DIT_SERVE_ERROR_BAD_REQUEST:
      return SOUP_STATUS_BAD_REQUEST;
    case DIT_SERVE_ERROR_NOT_FOUND:
      return SOUP_STATUS_NOT_FOUND;
    case DIT_SERVE_ERROR_UNSUPPORTED:
      return SOUP_STATUS_UNPROCESSABLE_ENTITY;
    case DIT_SERVE_ERROR_BUSY:
      return SOUP_STATUS_SERVICE_UNAVAILABLE;
    default:
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  }
}

static void
method_not_allowed (SoupServerMessage * msg, const gchar * allow)
{
  soup_message_headers_replace (soup_server_message_get_response_headers
      (msg), "Allow", allow);
  reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "%s %s: allowed: %s",
      soup_server_message_get_method (msg),
      g_uri_get_path (soup_server_message_get_uri (msg)), allow);
}

/* A JSON object from the body, or a 4xx reply and NULL. */
static JsonObject *
parse_json_body (SoupServerMessage * msg, JsonParser * parser)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  GError *err = NULL;
  JsonNode *root;

  if (body->length == 0) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "empty body: send a JSON "
        "object");
    return NULL;
  }
  if (!json_parser_load_from_data (parser, body->data, body->length, &err)) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "malformed JSON: %s",
        err->message);
    g_error_free (err);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "the body must be a JSON "
        "object");
    return NULL;
  }
  return json_node_get_object (root);
}

static const gchar *
string_member (JsonObject * obj, const gchar * name)
{
  JsonNode *n = json_object_get_member (obj, name);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

static void
handle_prompt (DitServeServer * s, SoupServerMessage * msg)
{
  JsonParser *parser = json_parser_new ();
  JsonObject *obj = parse_json_body (msg, parser);
  const gchar *text, *embeds;
  GError *err = NULL;
  gboolean ok;

  if (obj == NULL)
    goto out;
  text = string_member (obj, "prompt");
  embeds = string_member (obj, "embeds");
  if ((text == NULL) == (embeds == NULL)) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "send exactly one of "
        "{\"prompt\": \"text\"} or {\"embeds\": \"/path.safetensors\"}");
    goto out;
  }
  if (text && *text == '\0') {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "the prompt is empty");
    goto out;
  }
  if (text)
    ok = dit_serve_pipeline_set_prompt_text (s->pipeline, text, &err);
  else
    ok = dit_serve_pipeline_set_prompt_embeds (s->pipeline, embeds, &err);
  if (!ok) {
    reply_error (msg, status_of (err), "%s", err->message);
    g_error_free (err);
    goto out;
  }
  reply_ok (msg, SOUP_STATUS_OK);
out:
  g_object_unref (parser);
}

static void
handle_seed (DitServeServer * s, SoupServerMessage * msg)
{
  JsonParser *parser = json_parser_new ();
  JsonObject *obj = parse_json_body (msg, parser);
  JsonNode *n;

  if (obj == NULL)
    goto out;
  n = json_object_get_member (obj, "seed");
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_INT64
      || json_node_get_int (n) < 0) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "send {\"seed\": N} with an "
        "integer N >= 0");
    goto out;
  }
  dit_serve_pipeline_set_seed (s->pipeline, (guint64) json_node_get_int (n));
  reply_ok (msg, SOUP_STATUS_OK);
out:
  g_object_unref (parser);
}

static void
handle_lora (DitServeServer * s, SoupServerMessage * msg)
{
  JsonParser *parser = json_parser_new ();
  JsonObject *obj = parse_json_body (msg, parser);
  const gchar *text;
  GError *err = NULL;

  if (obj == NULL)
    goto out;
  text = string_member (obj, "lora");
  if (text == NULL) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "send {\"lora\": "
        "\"a.safetensors:0.8|b.safetensors:0.4\"} (\"\" for none)");
    goto out;
  }
  if (!dit_serve_pipeline_set_lora (s->pipeline, text, &err)) {
    reply_error (msg, status_of (err), "%s", err->message);
    g_error_free (err);
    goto out;
  }
  reply_ok (msg, SOUP_STATUS_OK);
out:
  g_object_unref (parser);
}

/* WHEP: the paused POST waits here for the answer. */
typedef struct
{
  SoupServerMessage *msg;
  DitServePipeline *pipeline;
  gboolean finished;
} PendingOffer;

static void
on_offer_finished (SoupServerMessage * msg, gpointer data)
{
  PendingOffer *po = data;

  po->finished = TRUE;
}

static void
on_answer (const gchar * viewer_id, const gchar * answer_sdp,
    const GError * error, gpointer data)
{
  PendingOffer *po = data;
  SoupServerMessage *msg = po->msg;

  if (po->finished) {
    /* The client went away while we were answering. */
    if (viewer_id)
      dit_serve_pipeline_remove_viewer (po->pipeline, viewer_id);
  } else if (error) {
    reply_error (msg, status_of (error), "%s", error->message);
    soup_server_message_unpause (msg);
  } else {
    gchar *location = g_strconcat (WHEP_PREFIX, viewer_id, NULL);
    SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
    set_cors (msg);
    soup_message_headers_replace (h, "Location", location);
    soup_server_message_set_status (msg, SOUP_STATUS_CREATED, NULL);
    soup_server_message_set_response (msg, "application/sdp", SOUP_MEMORY_COPY,
        answer_sdp, strlen (answer_sdp));
    soup_server_message_unpause (msg);
    g_free (location);
  }
  g_signal_handlers_disconnect_by_func (msg, on_offer_finished, po);
  g_object_unref (msg);
  g_free (po);
}

static void
handle_whep_post (DitServeServer * s, SoupServerMessage * msg)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  const gchar *type = soup_message_headers_get_content_type (h, NULL);
  PendingOffer *po;
  gchar *offer;

  if (g_strcmp0 (type, "application/sdp") != 0) {
    reply_error (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, "POST /whep takes "
        "an SDP offer with Content-Type: application/sdp");
    return;
  }
  if (body->length == 0) {
    reply_error (msg, SOUP_STATUS_BAD_REQUEST, "empty SDP offer");
    return;
  }
  po = g_new0 (PendingOffer, 1);
  po->msg = g_object_ref (msg);
  po->pipeline = s->pipeline;
  g_signal_connect (msg, "finished", G_CALLBACK (on_offer_finished), po);
  soup_server_message_pause (msg);
  offer = g_strndup (body->data, body->length);
  /* May answer at once (bad offer), or later from the main loop. */
  dit_serve_pipeline_add_viewer (s->pipeline, offer, on_answer, po);
  g_free (offer);
}

static void
handle_whep_resource (DitServeServer * s, SoupServerMessage * msg,
    const gchar * method, const gchar * id)
{
  if (g_str_equal (method, "DELETE")) {
    if (!dit_serve_pipeline_remove_viewer (s->pipeline, id))
      reply_error (msg, SOUP_STATUS_NOT_FOUND, "no viewer session '%s'", id);
    else
      reply_ok (msg, SOUP_STATUS_OK);
  } else if (g_str_equal (method, "PATCH")) {
    /* Candidates are all in the answer; trickle ICE is not offered. */
    method_not_allowed (msg, "DELETE");
  } else {
    method_not_allowed (msg, "DELETE");
  }
}

static const gchar *
content_type_of (const gchar * name)
{
  if (g_str_has_suffix (name, ".html"))
    return "text/html; charset=utf-8";
  if (g_str_has_suffix (name, ".js"))
    return "text/javascript; charset=utf-8";
  if (g_str_has_suffix (name, ".css"))
    return "text/css; charset=utf-8";
  if (g_str_has_suffix (name, ".png"))
    return "image/png";
  if (g_str_has_suffix (name, ".svg"))
    return "image/svg+xml";
  return "application/octet-stream";
}

/* Plain files directly in the www dir; no subdirectories, no dot files. */
static void
handle_static (DitServeServer * s, SoupServerMessage * msg, const gchar * path)
{
  const gchar *name = path[1] ? path + 1 : "index.html";
  gchar *file, *data = NULL;
  gsize len = 0;

  if (strchr (name, '/') || name[0] == '.') {
    reply_error (msg, SOUP_STATUS_NOT_FOUND, "no route %s", path);
    return;
  }
  file = g_build_filename (s->www_dir, name, NULL);
  if (!g_file_get_contents (file, &data, &len, NULL)) {
    reply_error (msg, SOUP_STATUS_NOT_FOUND, "no route %s", path);
    g_free (file);
    return;
  }
  g_free (file);
  soup_message_headers_replace (soup_server_message_get_response_headers
      (msg), "Cache-Control", "no-cache");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, content_type_of (name),
      SOUP_MEMORY_TAKE, data, len);
}

static void
handle_options (SoupServerMessage * msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  set_cors (msg);
  soup_message_headers_replace (h, "Access-Control-Allow-Methods",
      "GET, POST, DELETE, OPTIONS");
  soup_message_headers_replace (h, "Access-Control-Allow-Headers",
      "Content-Type");
  soup_message_headers_replace (h, "Accept-Post", "application/sdp");
  soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
}

static void
on_request (SoupServer * soup, SoupServerMessage * msg, const char *path,
    GHashTable * query, gpointer data)
{
  DitServeServer *s = data;
  const gchar *method = soup_server_message_get_method (msg);
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  gboolean get = g_str_equal (method, "GET") || g_str_equal (method, "HEAD");
  gboolean post = g_str_equal (method, "POST");

  if (body->length > DIT_SERVE_MAX_BODY) {
    reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "request body "
        "over %d bytes", DIT_SERVE_MAX_BODY);
    return;
  }
  if (g_str_equal (method, "OPTIONS")) {
    handle_options (msg);
  } else if (g_str_equal (path, "/health")) {
    if (get)
      reply_ok (msg, SOUP_STATUS_OK);
    else
      method_not_allowed (msg, "GET");
  } else if (g_str_equal (path, "/stats")) {
    if (get) {
      JsonNode *node = dit_serve_pipeline_stats (s->pipeline);
      soup_message_headers_replace (soup_server_message_get_response_headers
          (msg), "Cache-Control", "no-store");
      reply_json (msg, SOUP_STATUS_OK, node);
      json_node_unref (node);
    } else {
      method_not_allowed (msg, "GET");
    }
  } else if (g_str_equal (path, "/prompt")) {
    if (post)
      handle_prompt (s, msg);
    else
      method_not_allowed (msg, "POST");
  } else if (g_str_equal (path, "/seed")) {
    if (post)
      handle_seed (s, msg);
    else
      method_not_allowed (msg, "POST");
  } else if (g_str_equal (path, "/lora")) {
    if (post) {
      handle_lora (s, msg);
    } else if (get) {
      JsonNode *node = dit_serve_pipeline_lora (s->pipeline);
      reply_json (msg, SOUP_STATUS_OK, node);
      json_node_unref (node);
    } else {
      method_not_allowed (msg, "GET, POST");
    }
  } else if (g_str_equal (path, "/whep")) {
    if (post)
      handle_whep_post (s, msg);
    else
      method_not_allowed (msg, "POST");
  } else if (g_str_has_prefix (path, WHEP_PREFIX)
      && path[strlen (WHEP_PREFIX)] != '\0') {
    handle_whep_resource (s, msg, method, path + strlen (WHEP_PREFIX));
  } else if (get) {
    handle_static (s, msg, path);
  } else {
    reply_error (msg, SOUP_STATUS_NOT_FOUND, "no route %s %s", method, path);
  }
}

/* Runs after the headers, before the body is read. */
static void
on_early_request (SoupServer * soup, SoupServerMessage * msg,
    const char *path, GHashTable * query, gpointer data)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);

  if (soup_message_headers_get_encoding (h) == SOUP_ENCODING_CONTENT_LENGTH
      && soup_message_headers_get_content_length (h) > DIT_SERVE_MAX_BODY)
    reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "request body "
        "over %d bytes", DIT_SERVE_MAX_BODY);
}

DitServeServer *
dit_serve_server_new (DitServePipeline * pipeline, const gchar * www_dir,
    GError ** error)
{
  DitServeServer *s = g_new0 (DitServeServer, 1);
  gchar *index = g_build_filename (www_dir, "index.html", NULL);

  if (!g_file_test (index, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
        "no index.html in the www directory '%s' (see --www-dir)", www_dir);
    g_free (index);
    g_free (s);
    return NULL;
  }
  g_free (index);
  s->pipeline = pipeline;
  s->www_dir = g_strdup (www_dir);
  s->soup = soup_server_new ("server-header", "dit-serve", NULL);
  soup_server_add_early_handler (s->soup, NULL, on_early_request, s, NULL);
  soup_server_add_handler (s->soup, NULL, on_request, s, NULL);
  return s;
}

gchar *
dit_serve_server_listen (DitServeServer * s, const gchar * addr, guint port,
    GError ** error)
{
  GInetAddress *ia = g_inet_address_new_from_string (addr);
  GSocketAddress *sa;
  GSList *uris;
  gchar *url = NULL;
  gboolean ok;

  if (ia == NULL) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
        "--bind '%s' is not an IP address", addr);
    return NULL;
  }
  sa = g_inet_socket_address_new (ia, port);
  g_object_unref (ia);
  ok = soup_server_listen (s->soup, sa, 0, error);
  g_object_unref (sa);
  if (!ok)
    return NULL;
  uris = soup_server_get_uris (s->soup);
  if (uris)
    url = g_uri_to_string (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return url;
}

void
dit_serve_server_free (DitServeServer * s)
{
  soup_server_disconnect (s->soup);
  g_object_unref (s->soup);
  g_free (s->www_dir);
  g_free (s);
}
