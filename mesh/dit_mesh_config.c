/* dit_mesh_config — mesh options to a checked mesh spec (see the header). */
#include "dit_mesh_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dit_model.h"

void
dit_mesh_config_default (dit_mesh_config *c)
{
  memset (c, 0, sizeof *c);
  c->preset = "tiny";
  c->synthetic_seed = 42;
  dit_gen_config_default (&c->gen);
  c->ranks = 1;
  c->layout = DIT_MESH_LAYOUT_TP;
  c->spawn = 1;
  c->worker_path = "dit-worker";
  c->backend = "cpu";
  c->join_timeout_ms = 30000;
  c->chunk_timeout_ms = 10000;
  c->drift_every = 0;
  c->x0_check_every = 0;
  c->max_inflight = 2;
  c->heartbeat_ms = 1000;
}

/* The enums' names: the value is the index in its table. */
#define N_NAMES(t) (sizeof t / sizeof *t)

static const char *
name_of (const char *const *names, size_t n, int value)
{
  return value >= 0 && (size_t) value < n ? names[value] : "unknown";
}

/* The index of `name` (case-insensitive), -1 if none. */
static int
index_of (const char *const *names, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcasecmp (name, names[i]) == 0)
      return (int) i;
  return -1;
}

static const char *const layout_names[] = { "tp", "sp", "hybrid" };

const char *
dit_mesh_layout_name (dit_mesh_layout l)
{
  return name_of (layout_names, N_NAMES (layout_names), (int) l);
}

dit_status
dit_mesh_layout_parse (const char *name, dit_mesh_layout *out)
{
  *out = DIT_MESH_LAYOUT_TP;
  if (!name || !*name)
    return DIT_OK;
  int i = index_of (layout_names, N_NAMES (layout_names), name);
  if (i >= 0) {
    *out = (dit_mesh_layout) i;
    return DIT_OK;
  }
  return dit_error (DIT_ERR_INVALID, "mesh layout '%s': expected tp (tensor "
      "parallel), sp (sequence parallel) or hybrid (sp across groups, tp "
      "inside)", name);
}

dit_status
dit_mesh_layout_degrees (dit_mesh_layout l, int ranks, int mesh_tp, int *sp,
    int *tp)
{
  *sp = 1;
  *tp = ranks;
  if (l == DIT_MESH_LAYOUT_TP || l == DIT_MESH_LAYOUT_SP) {
    if (mesh_tp > 0 && mesh_tp != (l == DIT_MESH_LAYOUT_TP ? ranks : 1))
      return dit_error (DIT_ERR_INVALID, "mesh-tp=%d applies to the hybrid "
          "layout only (layout %s of %d ranks)", mesh_tp,
          dit_mesh_layout_name (l), ranks);
    if (l == DIT_MESH_LAYOUT_SP) {
      *sp = ranks;
      *tp = 1;
    }
    return DIT_OK;
  }
  if (l != DIT_MESH_LAYOUT_HYBRID)
    return dit_error (DIT_ERR_INVALID, "mesh layout %d unknown", (int) l);
  int t = mesh_tp > 0 ? mesh_tp : 2;
  if (t < 2 || ranks % t != 0 || ranks / t < 2)
    return dit_error (DIT_ERR_INVALID, "hybrid layout of %d ranks with "
        "mesh-tp=%d: mesh-tp must split the ranks into at least 2 groups of "
        "at least 2 (e.g. 4 ranks, mesh-tp=2)", ranks, t);
  *sp = ranks / t;
  *tp = t;
  return DIT_OK;
}

static const char *const colocate_names[] = { "off", "on", "auto" };

const char *
dit_mesh_colocate_name (dit_mesh_colocate c)
{
  return name_of (colocate_names, N_NAMES (colocate_names), (int) c);
}

dit_status
dit_mesh_colocate_parse (const char *name, dit_mesh_colocate *out)
{
  *out = DIT_MESH_COLOCATE_AUTO;
  if (!name || !*name)
    return DIT_OK;
  int i = index_of (colocate_names, N_NAMES (colocate_names), name);
  if (i >= 0) {
    *out = (dit_mesh_colocate) i;
    return DIT_OK;
  }
  return dit_error (DIT_ERR_INVALID, "mesh co-location '%s': expected off "
      "(mesh rank 0 in a dit-worker process), on (in Stage 0's process) or "
      "auto (on where mesh rank 0 shares Stage 0's GPU)", name);
}

void
dit_mesh_options_init (dit_mesh_options *o)
{
  memset (o, 0, sizeof *o);
  o->timeout_ms = 10000;
  o->join_timeout_ms = 30000;
  o->max_inflight = 2;
  o->devices_name = "mesh-devices";
  o->listen_name = "mesh-listen";
  o->ranks_name = "mesh-ranks";
  o->backend_name = "mesh-backend";
  o->worker_name = "worker-path";
  o->colocate_name = "mesh-colocate";
}

/* An executable file: `name` itself when it has a slash, else the first
 * match on PATH.  Writes the path to buf. */
static int
find_program (const char *name, char *buf, size_t n)
{
  if (strchr (name, '/')) {
    if (access (name, X_OK) != 0)
      return 0;
    snprintf (buf, n, "%s", name);
    return 1;
  }
  const char *path = getenv ("PATH");
  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *end = strchr (path, ':');
    size_t len = end ? (size_t) (end - path) : strlen (path);
    if (snprintf (buf, n, "%.*s/%s", (int) len, len ? path : ".", name)
        < (int) n && access (buf, X_OK) == 0)
      return 1;
    path += len + (end != NULL);
  }
  return 0;
}

/* worker_path, then $GST_DIT_WORKER, then the installed dit-worker, then
 * dit-worker on PATH. */
static dit_status
resolve_worker (const dit_mesh_options *o, dit_mesh_spec *s)
{
  const char *env = getenv ("GST_DIT_WORKER");
  char tried[4200];
  if (o->worker_path && *o->worker_path) {
    if (find_program (o->worker_path, s->worker, sizeof s->worker))
      return DIT_OK;
    snprintf (tried, sizeof tried, "%s '%s'", o->worker_name, o->worker_path);
  } else if (env && *env) {
    if (find_program (env, s->worker, sizeof s->worker))
      return DIT_OK;
    snprintf (tried, sizeof tried, "GST_DIT_WORKER '%s'", env);
  } else {
    char installed[4096];
    snprintf (installed, sizeof installed, "%s/dit-worker",
        o->installed_dir && *o->installed_dir ? o->installed_dir : "/usr/local/bin");
    if (access (installed, X_OK) == 0) {
      snprintf (s->worker, sizeof s->worker, "%s", installed);
      return DIT_OK;
    }
    if (find_program ("dit-worker", s->worker, sizeof s->worker))
      return DIT_OK;
    snprintf (tried, sizeof tried, "%s and PATH", installed);
  }
  return dit_error (DIT_ERR_INVALID, "cannot find the dit-worker executable "
      "(tried %s): set %s or GST_DIT_WORKER", tried, o->worker_name);
}

static int
tp_degree_ok (int n)
{
  return n == 1 || n == 2 || n == 4 || n == 8;
}

static dit_status
parse_devices (const dit_mesh_options *o, dit_mesh_spec *s)
{
  const char *p = o->devices;
  while (*p == ' ')
    p++;
  if (!*p)
    return DIT_OK;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol (p, &end, 10);
    while (*end == ' ')
      end++;
    if (end == p || errno || v < 0 || v > 1023
        || s->n_devices == DIT_MESH_MAX_RANKS || (*end && *end != ','))
      return dit_error (DIT_ERR_INVALID, "%s '%s': expected a comma-separated "
          "list of 1 to 8 device indices, e.g. \"0,1\" (layout tp takes 1, 2, "
          "4 or 8 of them, sp 1 to 8, hybrid 4, 6 or 8)", o->devices_name,
          o->devices);
    s->devices[s->n_devices++] = (int) v;
    if (!*end)
      return DIT_OK;
    p = end + 1;
    while (*p == ' ')
      p++;
  }
}

dit_status
dit_mesh_spec_parse (const dit_mesh_options *o, dit_mesh_spec *s)
{
  memset (s, 0, sizeof *s);
  s->timeout_ms = o->timeout_ms;
  s->join_timeout_ms = o->join_timeout_ms;
  s->max_inflight = o->max_inflight;
  if (o->devices)
    DIT_TRY (parse_devices (o, s));
  if (o->listen && *o->listen) {
    const char *colon = strrchr (o->listen, ':');
    if (!colon || atoi (colon + 1) <= 0 || strlen (o->listen) >= sizeof s->listen)
      return dit_error (DIT_ERR_INVALID, "%s '%s': expected HOST:PORT with a "
          "fixed port, which the workers' --connect names", o->listen_name,
          o->listen);
    if (o->ranks <= 0)
      return dit_error (DIT_ERR_INVALID, "%s '%s' needs %s: the number of "
          "dit-worker processes that will connect", o->listen_name, o->listen,
          o->ranks_name);
    s->ranks = o->ranks;
    snprintf (s->listen, sizeof s->listen, "%s", o->listen);
  } else if (s->n_devices > 0) {
    if (o->ranks > 0 && o->ranks != s->n_devices)
      return dit_error (DIT_ERR_INVALID, "%s=%d but %s '%s' lists %d devices",
          o->ranks_name, o->ranks, o->devices_name, o->devices, s->n_devices);
    s->ranks = s->n_devices;
  } else {
    return DIT_OK;              /* no mesh */
  }
  DIT_TRY (dit_mesh_layout_parse (o->layout, &s->layout));
  DIT_TRY (dit_mesh_layout_degrees (s->layout, s->ranks, o->mesh_tp, &s->sp,
      &s->tp));
  if (!tp_degree_ok (s->tp))
    return dit_error (DIT_ERR_INVALID, "%s asks for a mesh of %d ranks in "
        "layout %s: the tensor-parallel degree %d must be 1, 2, 4 or 8",
        s->listen[0] ? o->ranks_name : o->devices_name, s->ranks,
        dit_mesh_layout_name (s->layout), s->tp);
  if (s->sp > 8)
    return dit_error (DIT_ERR_INVALID, "%s asks for %d sequence-parallel "
        "ranks: at most 8", s->listen[0] ? o->ranks_name : o->devices_name,
        s->sp);

  const char *be = o->backend && *o->backend ? o->backend
      : o->stage0_device && strncmp (o->stage0_device, "cuda", 4) == 0
      ? "cuda" : "cpu";
  if (strcmp (be, "cpu") != 0 && strcmp (be, "cuda") != 0)
    return dit_error (DIT_ERR_INVALID, "%s '%s': expected cpu or cuda",
        o->backend_name, be);
  snprintf (s->backend, sizeof s->backend, "%s", be);
  if (strcmp (be, "cuda") == 0)
    for (int i = 0; i < s->n_devices; i++)
      for (int j = 0; j < i; j++)
        if (s->devices[i] == s->devices[j])
          return dit_error (DIT_ERR_INVALID, "%s '%s' names device %d twice: "
              "each CUDA rank needs its own GPU", o->devices_name, o->devices,
              s->devices[i]);
  if (dit_mesh_colocate_parse (o->colocate, &s->colocate) != DIT_OK)
    return dit_error (DIT_ERR_INVALID, "%s: %s", o->colocate_name,
        dit_last_error ());
  if (s->colocate == DIT_MESH_COLOCATE_ON && s->listen[0])
    return dit_error (DIT_ERR_INVALID, "%s=on runs mesh rank 0 in this "
        "process, and %s '%s' waits for workers started elsewhere: use %s",
        o->colocate_name, o->listen_name, s->listen, o->devices_name);
  if (!s->listen[0])
    DIT_TRY (resolve_worker (o, s));
  return DIT_OK;
}

dit_status
dit_mesh_spec_check_model (const dit_mesh_spec *s, const dit_model_config *m)
{
  if (s->ranks == 0)
    return DIT_OK;
  DIT_TRY (dit_model_tp_check (m, s->tp));
  return s->sp > 1 ? dit_model_sp_check (m, s->sp, s->tp, NULL, 0) : DIT_OK;
}

void
dit_mesh_spec_apply (const dit_mesh_spec *s, dit_mesh_config *c)
{
  c->ranks = s->ranks;
  c->layout = s->layout;
  c->mesh_tp = s->tp;
  c->spawn = s->listen[0] == '\0';
  c->worker_path = c->spawn ? s->worker : NULL;
  c->backend = s->backend;
  c->devices = s->n_devices > 0 ? s->devices : NULL;
  c->listen = s->listen[0] ? s->listen : NULL;
  c->join_timeout_ms = s->join_timeout_ms;
  c->chunk_timeout_ms = s->timeout_ms;
  c->max_inflight = s->max_inflight;
  c->colocate = s->colocate;
}
