/* envelope — encoder, strict decoder and socket framing of the mesh
 * protocol (see envelope.h and docs/protocol.md).
 *
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) in software, one
 * table lookup per byte: envelopes are control messages and tensor specs
 * (the bytes go over the world communicator), so this is not on the
 * critical path.
 */
#include "envelope.h"
#include "dit_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

/* ---- CRC32C ------------------------------------------------------------- */

/* Made once per process: Stage 0 and a co-located mesh rank 0 encode and
 * decode on two threads. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init (void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t
dit_crc32c (uint32_t crc, const void *data, size_t n)
{
  const unsigned char *p = data;
  pthread_once (&crc_once, crc_init);
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

const char *
dit_env_type_name (int type)
{
  switch (type) {
    case DIT_ENV_NOOP: return "NOOP";
    case DIT_ENV_INFER: return "INFER";
    case DIT_ENV_SHUTDOWN: return "SHUTDOWN";
    case DIT_ENV_RESULT: return "RESULT";
    case DIT_ENV_JOIN: return "JOIN";
    case DIT_ENV_ACCEPT: return "ACCEPT";
    case DIT_ENV_REFUSE: return "REFUSE";
    default: return "unknown";
  }
}

/* ---- writer ------------------------------------------------------------- */

typedef struct wbuf {
  unsigned char *p;
  size_t n, cap;
  int oom;
} wbuf;

static void
w_bytes (wbuf *w, const void *d, size_t n)
{
  if (w->oom)
    return;
  if (w->n + n > w->cap) {
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->n + n)
      cap *= 2;
    unsigned char *q = realloc (w->p, cap);
    if (!q) {
      w->oom = 1;
      return;
    }
    w->p = q;
    w->cap = cap;
  }
  if (n)
    memcpy (w->p + w->n, d, n);
  w->n += n;
}

static void
w_u64 (wbuf *w, uint64_t v)
{
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char) (v >> (8 * i));
  w_bytes (w, b, 8);
}

static void
w_u32 (wbuf *w, uint32_t v)
{
  unsigned char b[4];
  for (int i = 0; i < 4; i++)
    b[i] = (unsigned char) (v >> (8 * i));
  w_bytes (w, b, 4);
}

static void
w_u8 (wbuf *w, unsigned v)
{
  unsigned char b = (unsigned char) v;
  w_bytes (w, &b, 1);
}

static void
w_f64 (wbuf *w, double d)
{
  uint64_t v;
  memcpy (&v, &d, 8);
  w_u64 (w, v);
}

static void
w_str (wbuf *w, const char *s, size_t max)
{
  size_t n = strnlen (s, max);
  w_u8 (w, (unsigned) n);
  w_bytes (w, s, n);
}

/* ---- validation (sender side) ------------------------------------------ */

static int
env_finite (double d)
{
  return isfinite (d);
}

static dit_status
env_check_str (const char *s, size_t size, const char *what)
{
  if (strnlen (s, size) >= size)
    return dit_error (DIT_ERR_INVALID, "envelope: %s is not terminated", what);
  return DIT_OK;
}

static dit_status
env_validate_plan (const dit_envelope *e)
{
  const dit_env_plan *p = &e->plan;
  if (p->num_steps < 1 || p->num_steps > DIT_ENV_MAX_STEPS)
    return dit_error (DIT_ERR_INVALID, "envelope: plan has %d steps (1..%d)",
        p->num_steps, DIT_ENV_MAX_STEPS);
  if (p->first_step < 0 || p->first_step >= p->num_steps)
    return dit_error (DIT_ERR_INVALID, "envelope: first step %d outside 0..%d",
        p->first_step, p->num_steps - 1);
  for (int i = 0; i < p->num_steps; i++) {
    if (!env_finite (p->steps[i]) || p->steps[i] < 0 || p->steps[i] > 1000)
      return dit_error (DIT_ERR_INVALID, "envelope: step %d is %g (0..1000)",
          i, p->steps[i]);
    if (!env_finite (p->sigmas[i]) || p->sigmas[i] < 0 || p->sigmas[i] > 1)
      return dit_error (DIT_ERR_INVALID, "envelope: sigma %d is %g (0..1)",
          i, p->sigmas[i]);
  }
  if (p->do_recompute != (e->chunk_index > 0))
    return dit_error (DIT_ERR_INVALID,
        "envelope: chunk %lld must %s recompute the KV cache",
        (long long) e->chunk_index, e->chunk_index > 0 ? "" : "not");
  int calls = p->do_recompute + p->num_steps - p->first_step;
  if (p->expected_calls != calls)
    return dit_error (DIT_ERR_INVALID,
        "envelope: plan expects %d generator calls but recompute %d + steps "
        "%d..%d make %d", p->expected_calls, p->do_recompute, p->first_step,
        p->num_steps - 1, calls);
  if (p->rope_start < 0 || p->rope_start > 1000)
    return dit_error (DIT_ERR_INVALID, "envelope: RoPE start %d", p->rope_start);
  if (!(p->kv_bias > 0.0f && p->kv_bias <= 1.0f))
    return dit_error (DIT_ERR_INVALID, "envelope: kv bias %g outside (0, 1]",
        (double) p->kv_bias);
  /* the recompute's causal block and the bias frames: only with a
   * recompute, and the bias inside the context frames */
  if (p->causal_frames < 0 || p->causal_frames > 1000
      || (p->do_recompute != 0) != (p->causal_frames > 0))
    return dit_error (DIT_ERR_INVALID, "envelope: causal block of %d frames "
        "with recompute %d", p->causal_frames, p->do_recompute);
  if (p->bias_begin < 0 || p->bias_end < 0 || (p->bias_end > p->bias_begin
          && (!p->do_recompute || p->bias_end > p->rope_start)))
    return dit_error (DIT_ERR_INVALID, "envelope: bias frames [%d, %d) outside "
        "the %d context frames", p->bias_begin, p->bias_end,
        p->do_recompute ? p->rope_start : 0);
  return DIT_OK;
}

static dit_status
env_validate_tensors (const dit_envelope *e, uint64_t *total)
{
  *total = 0;
  if (e->n_tensors < 0 || e->n_tensors > DIT_ENV_MAX_TENSORS)
    return dit_error (DIT_ERR_INVALID, "envelope: %d tensors (0..%d)",
        e->n_tensors, DIT_ENV_MAX_TENSORS);
  for (int i = 0; i < e->n_tensors; i++) {
    const dit_env_tensor *t = &e->tensors[i];
    size_t len = strnlen (t->name, sizeof t->name);
    if (len == 0 || len > DIT_ENV_MAX_NAME)
      return dit_error (DIT_ERR_INVALID, "envelope: tensor %d has no valid name", i);
    for (int j = 0; j < i; j++)
      if (strcmp (e->tensors[j].name, t->name) == 0)
        return dit_error (DIT_ERR_INVALID, "envelope: tensor '%s' appears twice",
            t->name);
    if (t->dtype != DIT_F32 && t->dtype != DIT_BF16 && t->dtype != DIT_F16)
      return dit_error (DIT_ERR_INVALID, "envelope: tensor '%s' has dtype %d",
          t->name, (int) t->dtype);
    if (t->ndim < 1 || t->ndim > DIT_ENV_MAX_DIMS)
      return dit_error (DIT_ERR_INVALID, "envelope: tensor '%s' has %d dims (1..%d)",
          t->name, t->ndim, DIT_ENV_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
      if (t->shape[d] < 0 || t->shape[d] > (int64_t) DIT_ENV_MAX_PAYLOAD)
        return dit_error (DIT_ERR_INVALID,
            "envelope: tensor '%s' dim %d is %lld", t->name, d,
            (long long) t->shape[d]);
      numel *= (uint64_t) t->shape[d];
      if (numel > DIT_ENV_MAX_PAYLOAD)
        return dit_error (DIT_ERR_INVALID, "envelope: tensor '%s' is too large",
            t->name);
    }
    *total += numel * dit_dtype_size (t->dtype) + 64;
    if (*total > DIT_ENV_MAX_PAYLOAD)
      return dit_error (DIT_ERR_INVALID, "envelope: tensors exceed %u bytes",
          DIT_ENV_MAX_PAYLOAD);
  }
  return DIT_OK;
}

static dit_status
env_validate (const dit_envelope *e, uint64_t *tensor_bytes)
{
  switch (e->type) {
    case DIT_ENV_NOOP: case DIT_ENV_SHUTDOWN: case DIT_ENV_JOIN:
    case DIT_ENV_ACCEPT: case DIT_ENV_REFUSE:
      break;
    case DIT_ENV_INFER:
      if (e->chunk_index < 0)
        return dit_error (DIT_ERR_INVALID, "envelope: chunk index %lld is negative",
            (long long) e->chunk_index);
      DIT_TRY (env_validate_plan (e));
      if (e->lora_mode != 0 && e->lora_mode != 1)
        return dit_error (DIT_ERR_INVALID, "envelope: LoRA mode %d",
            e->lora_mode);
      DIT_TRY (env_check_str (e->lora, sizeof e->lora, "LoRA list"));
      break;
    case DIT_ENV_RESULT:
      for (int i = 0; i < DIT_ENV_TIMINGS; i++)
        if (!env_finite (e->timing_ms[i]))
          return dit_error (DIT_ERR_INVALID, "envelope: timing %d is not finite", i);
      break;
    default:
      return dit_error (DIT_ERR_INVALID, "envelope: unknown type %d", (int) e->type);
  }
  DIT_TRY (env_check_str (e->text, sizeof e->text, "text"));
  DIT_TRY (env_check_str (e->join.preset, sizeof e->join.preset, "preset"));
  DIT_TRY (env_check_str (e->accept.comm_host, sizeof e->accept.comm_host, "host"));
  DIT_TRY (env_check_str (e->join.backend, sizeof e->join.backend, "backend"));
  if (e->type == DIT_ENV_ACCEPT) {
    const dit_env_accept *a = &e->accept;
    if (a->num_steps < 1 || a->num_steps > DIT_ENV_MAX_STEPS)
      return dit_error (DIT_ERR_INVALID, "envelope: accept has %d steps", a->num_steps);
    if (a->comm_port < 0 || a->comm_port > 65535)
      return dit_error (DIT_ERR_INVALID, "envelope: comm port %d", a->comm_port);
    if (a->has_nccl_id != 0 && a->has_nccl_id != 1)
      return dit_error (DIT_ERR_INVALID, "envelope: accept NCCL id flag %d",
          a->has_nccl_id);
    if (a->has_world_nccl_id != 0 && a->has_world_nccl_id != 1)
      return dit_error (DIT_ERR_INVALID, "envelope: accept world NCCL id flag %d",
          a->has_world_nccl_id);
    if (a->world_port < 0 || a->world_port > 65535)
      return dit_error (DIT_ERR_INVALID, "envelope: world port %d", a->world_port);
    if (a->world_relay != 0 && a->world_relay != 1)
      return dit_error (DIT_ERR_INVALID, "envelope: accept world relay flag %d",
          a->world_relay);
    if (a->world_relay && (a->world_port != 0 || a->has_world_nccl_id))
      return dit_error (DIT_ERR_INVALID, "envelope: accept relays the world "
          "comm through mesh rank 0 and also names a world transport");
  }
  if (e->type == DIT_ENV_JOIN && (e->join.tp < 1 || e->join.rank < 0
      || e->join.rank >= e->join.tp || e->join.comm_port < 0
      || e->join.comm_port > 65535))
    return dit_error (DIT_ERR_INVALID, "envelope: join of rank %d of %d",
        e->join.rank, e->join.tp);
  if (e->type == DIT_ENV_JOIN && (e->join.layout < 0 || e->join.layout > 2
      || e->join.mesh_tp < 1 || e->join.mesh_tp > e->join.tp
      || e->join.tp % e->join.mesh_tp != 0))
    return dit_error (DIT_ERR_INVALID, "envelope: join with layout %d and "
        "tensor-parallel degree %d of %d ranks", e->join.layout,
        e->join.mesh_tp, e->join.tp);
  if (e->type == DIT_ENV_JOIN && (e->join.layers < 0
      || (e->join.has_nccl_id != 0 && e->join.has_nccl_id != 1)))
    return dit_error (DIT_ERR_INVALID, "envelope: join with %d layers, NCCL id "
        "flag %d", e->join.layers, e->join.has_nccl_id);
  return env_validate_tensors (e, tensor_bytes);
}

dit_status
dit_env_encode (const dit_envelope *e, unsigned char **frame, size_t *frame_bytes)
{
  uint64_t tbytes;
  *frame = NULL;
  *frame_bytes = 0;
  DIT_TRY (env_validate (e, &tbytes));

  wbuf w = { 0 };
  unsigned char hdr[DIT_ENV_HEADER_BYTES] = { 0 };
  w_bytes (&w, hdr, sizeof hdr);
  w_u64 (&w, e->call_id);
  w_u64 (&w, (uint64_t) e->chunk_index);
  w_u64 (&w, e->cache_epoch);
  switch (e->type) {
    case DIT_ENV_INFER: {
      const dit_env_plan *p = &e->plan;
      w_u8 (&w, (unsigned) p->do_recompute);
      w_u8 (&w, (unsigned) p->num_steps);
      w_u8 (&w, (unsigned) p->first_step);
      w_u8 (&w, (unsigned) p->expected_calls);
      for (int i = 0; i < p->num_steps; i++) {
        w_f64 (&w, p->steps[i]);
        w_f64 (&w, p->sigmas[i]);
      }
      w_u64 (&w, p->seed);
      w_u32 (&w, (uint32_t) p->rope_start);
      w_f64 (&w, (double) p->kv_bias);
      w_u32 (&w, (uint32_t) p->causal_frames);
      w_u32 (&w, (uint32_t) p->bias_begin);
      w_u32 (&w, (uint32_t) p->bias_end);
      w_u64 (&w, e->prompt_epoch);
      w_u64 (&w, e->lora_epoch);
      w_u8 (&w, (unsigned) e->lora_mode);
      w_u64 (&w, e->lora_digest);
      w_u32 (&w, (uint32_t) strlen (e->lora));
      w_bytes (&w, e->lora, strlen (e->lora));
      break;
    }
    case DIT_ENV_RESULT:
      w_u32 (&w, (uint32_t) e->rank);
      w_u32 (&w, (uint32_t) e->status);
      w_u64 (&w, e->digest);
      w_u64 (&w, e->lora_digest);
      for (int i = 0; i < DIT_ENV_TIMINGS; i++)
        w_f64 (&w, e->timing_ms[i]);
      w_str (&w, e->text, DIT_ENV_MAX_TEXT);
      break;
    case DIT_ENV_REFUSE:
      w_str (&w, e->text, DIT_ENV_MAX_TEXT);
      break;
    case DIT_ENV_JOIN: {
      const dit_env_join *j = &e->join;
      w_u32 (&w, (uint32_t) j->rank);
      w_u32 (&w, (uint32_t) j->tp);
      w_str (&w, j->preset, sizeof j->preset - 1);
      w_u64 (&w, j->config_digest);
      w_u32 (&w, (uint32_t) j->dtype);
      w_u64 (&w, j->weights_fingerprint);
      w_u32 (&w, (uint32_t) j->comm_port);
      w_u32 (&w, (uint32_t) j->pid);
      w_u32 (&w, (uint32_t) j->device);
      w_str (&w, j->backend, sizeof j->backend - 1);
      w_u32 (&w, (uint32_t) j->layers);
      w_u8 (&w, (unsigned) j->has_nccl_id);
      if (j->has_nccl_id)
        w_bytes (&w, j->nccl_id, DIT_ENV_NCCL_ID_BYTES);
      w_u32 (&w, (uint32_t) j->layout);
      w_u32 (&w, (uint32_t) j->mesh_tp);
      break;
    }
    case DIT_ENV_ACCEPT: {
      const dit_env_accept *a = &e->accept;
      w_u64 (&w, a->token);
      w_str (&w, a->comm_host, sizeof a->comm_host - 1);
      w_u32 (&w, (uint32_t) a->comm_port);
      w_u32 (&w, (uint32_t) a->timeout_ms);
      w_u32 (&w, (uint32_t) a->latent_h);
      w_u32 (&w, (uint32_t) a->latent_w);
      w_u32 (&w, (uint32_t) a->frames_per_chunk);
      w_u32 (&w, (uint32_t) a->context_frames);
      w_u8 (&w, (unsigned) a->num_steps);
      for (int i = 0; i < a->num_steps; i++)
        w_f64 (&w, a->steps[i]);
      w_f64 (&w, a->shift);
      w_f64 (&w, (double) a->kv_bias);
      w_u64 (&w, a->seed);
      w_u8 (&w, (unsigned) (a->warp_steps != 0));
      w_u8 (&w, (unsigned) a->has_nccl_id);
      if (a->has_nccl_id)
        w_bytes (&w, a->nccl_id, DIT_ENV_NCCL_ID_BYTES);
      w_u32 (&w, (uint32_t) a->world_port);
      w_u8 (&w, (unsigned) a->has_world_nccl_id);
      if (a->has_world_nccl_id)
        w_bytes (&w, a->world_nccl_id, DIT_ENV_NCCL_ID_BYTES);
      w_u8 (&w, (unsigned) a->world_relay);
      break;
    }
    default:
      break;
  }
  w_u32 (&w, (uint32_t) e->n_tensors);
  for (int i = 0; i < e->n_tensors; i++) {
    const dit_env_tensor *t = &e->tensors[i];
    uint64_t numel = 1;
    w_str (&w, t->name, DIT_ENV_MAX_NAME);
    w_u8 (&w, (unsigned) t->dtype);
    w_u8 (&w, (unsigned) t->ndim);
    for (int d = 0; d < t->ndim; d++) {
      w_u64 (&w, (uint64_t) t->shape[d]);
      numel *= (uint64_t) t->shape[d];
    }
    w_u64 (&w, numel * dit_dtype_size (t->dtype));
  }
  if (w.oom) {
    free (w.p);
    return dit_error (DIT_ERR_NOMEM, "envelope: out of memory");
  }
  size_t payload = w.n - DIT_ENV_HEADER_BYTES;
  if (payload > DIT_ENV_MAX_PAYLOAD) {
    free (w.p);
    return dit_error (DIT_ERR_INVALID, "envelope: payload of %zu bytes is too large",
        payload);
  }
  uint32_t crc = dit_crc32c (0, w.p + DIT_ENV_HEADER_BYTES, payload);
  wbuf h = { 0 };
  w_u32 (&h, DIT_ENV_MAGIC);
  unsigned char vt[4] = { DIT_ENV_VERSION & 0xff, DIT_ENV_VERSION >> 8,
    (unsigned char) (e->type & 0xff), (unsigned char) (e->type >> 8) };
  w_bytes (&h, vt, 4);
  w_u32 (&h, (uint32_t) payload);
  w_u32 (&h, crc);
  if (h.oom) {
    free (w.p);
    free (h.p);
    return dit_error (DIT_ERR_NOMEM, "envelope: out of memory");
  }
  memcpy (w.p, h.p, DIT_ENV_HEADER_BYTES);
  free (h.p);
  *frame = w.p;
  *frame_bytes = w.n;
  return DIT_OK;
}

/* ---- reader ------------------------------------------------------------- */

typedef struct rbuf {
  const unsigned char *p;
  size_t n, off;
  int bad;
} rbuf;

static const unsigned char *
r_take (rbuf *r, size_t n)
{
  if (r->bad || n > r->n - r->off) {
    r->bad = 1;
    return NULL;
  }
  const unsigned char *q = r->p + r->off;
  r->off += n;
  return q;
}

static uint64_t
r_u64 (rbuf *r)
{
  const unsigned char *b = r_take (r, 8);
  uint64_t v = 0;
  for (int i = 0; b && i < 8; i++)
    v |= (uint64_t) b[i] << (8 * i);
  return v;
}

static uint32_t
r_u32 (rbuf *r)
{
  const unsigned char *b = r_take (r, 4);
  uint32_t v = 0;
  for (int i = 0; b && i < 4; i++)
    v |= (uint32_t) b[i] << (8 * i);
  return v;
}

static unsigned
r_u8 (rbuf *r)
{
  const unsigned char *b = r_take (r, 1);
  return b ? *b : 0;
}

static double
r_f64 (rbuf *r)
{
  uint64_t v = r_u64 (r);
  double d;
  memcpy (&d, &v, 8);
  return d;
}

static void
r_str (rbuf *r, char *dst, size_t size)
{
  size_t n = r_u8 (r);
  if (n >= size) {
    r->bad = 1;
    dst[0] = '\0';
    return;
  }
  const unsigned char *s = r_take (r, n);
  if (!s) {
    dst[0] = '\0';
    return;
  }
  memcpy (dst, s, n);
  dst[n] = '\0';
  if (strlen (dst) != n)
    r->bad = 1;   /* embedded NUL */
}

static void
r_copy (rbuf *r, void *dst, size_t n)
{
  const unsigned char *s = r_take (r, n);
  if (s)
    memcpy (dst, s, n);
}

dit_status
dit_env_parse_header (const unsigned char h[DIT_ENV_HEADER_BYTES], int *type,
    uint32_t *payload, uint32_t *crc)
{
  rbuf r = { h, DIT_ENV_HEADER_BYTES, 0, 0 };
  uint32_t magic = r_u32 (&r);
  const unsigned char *vt = r_take (&r, 4);
  *payload = r_u32 (&r);
  *crc = r_u32 (&r);
  unsigned version = vt[0] | (unsigned) vt[1] << 8;
  *type = vt[2] | vt[3] << 8;
  if (magic != DIT_ENV_MAGIC)
    return dit_error (DIT_ERR_FORMAT, "envelope: bad magic 0x%08x", magic);
  if (version != DIT_ENV_VERSION)
    return dit_error (DIT_ERR_FORMAT,
        "envelope: protocol version %u, this build speaks %d", version,
        DIT_ENV_VERSION);
  if (*type < DIT_ENV_NOOP || *type > DIT_ENV_REFUSE)
    return dit_error (DIT_ERR_FORMAT, "envelope: unknown type %d", *type);
  if (*payload > DIT_ENV_MAX_PAYLOAD)
    return dit_error (DIT_ERR_FORMAT, "envelope: payload of %u bytes exceeds %u",
        *payload, DIT_ENV_MAX_PAYLOAD);
  return DIT_OK;
}

dit_status
dit_env_decode (int type, const unsigned char *payload, size_t bytes,
    uint32_t crc, dit_envelope *e)
{
  memset (e, 0, sizeof *e);
  if (dit_crc32c (0, payload, bytes) != crc)
    return dit_error (DIT_ERR_FORMAT,
        "envelope: %s payload of %zu bytes fails its CRC32C",
        dit_env_type_name (type), bytes);
  rbuf r = { payload, bytes, 0, 0 };
  e->type = (dit_env_type) type;
  e->call_id = r_u64 (&r);
  e->chunk_index = (int64_t) r_u64 (&r);
  e->cache_epoch = r_u64 (&r);
  switch (type) {
    case DIT_ENV_INFER: {
      dit_env_plan *p = &e->plan;
      p->do_recompute = (int) r_u8 (&r);
      p->num_steps = (int) r_u8 (&r);
      p->first_step = (int) r_u8 (&r);
      p->expected_calls = (int) r_u8 (&r);
      if (p->num_steps < 1 || p->num_steps > DIT_ENV_MAX_STEPS)
        return dit_error (DIT_ERR_FORMAT, "envelope: INFER with %d steps",
            p->num_steps);
      for (int i = 0; i < p->num_steps; i++) {
        p->steps[i] = r_f64 (&r);
        p->sigmas[i] = r_f64 (&r);
      }
      p->seed = r_u64 (&r);
      p->rope_start = (int) r_u32 (&r);
      p->kv_bias = (float) r_f64 (&r);
      p->causal_frames = (int) r_u32 (&r);
      p->bias_begin = (int) r_u32 (&r);
      p->bias_end = (int) r_u32 (&r);
      e->prompt_epoch = r_u64 (&r);
      e->lora_epoch = r_u64 (&r);
      e->lora_mode = (int) r_u8 (&r);
      e->lora_digest = r_u64 (&r);
      uint32_t n = r_u32 (&r);
      if (e->lora_mode > 1 || n > DIT_ENV_MAX_LORA)
        return dit_error (DIT_ERR_FORMAT, "envelope: INFER with LoRA mode %d "
            "and a %u-byte list (at most %d)", e->lora_mode, n,
            DIT_ENV_MAX_LORA);
      const unsigned char *l = r_take (&r, n);
      if (l)
        memcpy (e->lora, l, n);
      e->lora[l ? n : 0] = '\0';
      if (l && strlen (e->lora) != n)
        return dit_error (DIT_ERR_FORMAT, "envelope: INFER LoRA list with an "
            "embedded NUL");
      break;
    }
    case DIT_ENV_RESULT:
      e->rank = (int) r_u32 (&r);
      e->status = (int) r_u32 (&r);
      e->digest = r_u64 (&r);
      e->lora_digest = r_u64 (&r);
      for (int i = 0; i < DIT_ENV_TIMINGS; i++)
        e->timing_ms[i] = r_f64 (&r);
      r_str (&r, e->text, sizeof e->text);
      break;
    case DIT_ENV_REFUSE:
      r_str (&r, e->text, sizeof e->text);
      break;
    case DIT_ENV_JOIN: {
      dit_env_join *j = &e->join;
      j->rank = (int) r_u32 (&r);
      j->tp = (int) r_u32 (&r);
      r_str (&r, j->preset, sizeof j->preset);
      j->config_digest = r_u64 (&r);
      j->dtype = (int) r_u32 (&r);
      j->weights_fingerprint = r_u64 (&r);
      j->comm_port = (int) r_u32 (&r);
      j->pid = (int) r_u32 (&r);
      j->device = (int) r_u32 (&r);
      r_str (&r, j->backend, sizeof j->backend);
      j->layers = (int) r_u32 (&r);
      j->has_nccl_id = (int) r_u8 (&r);
      if (j->has_nccl_id > 1)
        return dit_error (DIT_ERR_FORMAT, "envelope: JOIN NCCL id flag %d",
            j->has_nccl_id);
      if (j->has_nccl_id)
        r_copy (&r, j->nccl_id, DIT_ENV_NCCL_ID_BYTES);
      j->layout = (int) r_u32 (&r);
      j->mesh_tp = (int) r_u32 (&r);
      break;
    }
    case DIT_ENV_ACCEPT: {
      dit_env_accept *a = &e->accept;
      a->token = r_u64 (&r);
      r_str (&r, a->comm_host, sizeof a->comm_host);
      a->comm_port = (int) r_u32 (&r);
      a->timeout_ms = (int) r_u32 (&r);
      a->latent_h = (int) r_u32 (&r);
      a->latent_w = (int) r_u32 (&r);
      a->frames_per_chunk = (int) r_u32 (&r);
      a->context_frames = (int) r_u32 (&r);
      a->num_steps = (int) r_u8 (&r);
      if (a->num_steps < 1 || a->num_steps > DIT_ENV_MAX_STEPS)
        return dit_error (DIT_ERR_FORMAT, "envelope: ACCEPT with %d steps",
            a->num_steps);
      for (int i = 0; i < a->num_steps; i++)
        a->steps[i] = r_f64 (&r);
      a->shift = r_f64 (&r);
      a->kv_bias = (float) r_f64 (&r);
      a->seed = r_u64 (&r);
      a->warp_steps = (int) r_u8 (&r);
      a->has_nccl_id = (int) r_u8 (&r);
      if (a->has_nccl_id > 1)
        return dit_error (DIT_ERR_FORMAT, "envelope: ACCEPT NCCL id flag %d",
            a->has_nccl_id);
      if (a->has_nccl_id)
        r_copy (&r, a->nccl_id, DIT_ENV_NCCL_ID_BYTES);
      a->world_port = (int) r_u32 (&r);
      a->has_world_nccl_id = (int) r_u8 (&r);
      if (a->has_world_nccl_id > 1)
        return dit_error (DIT_ERR_FORMAT, "envelope: ACCEPT world NCCL id flag %d",
            a->has_world_nccl_id);
      if (a->has_world_nccl_id)
        r_copy (&r, a->world_nccl_id, DIT_ENV_NCCL_ID_BYTES);
      if (a->world_port < 0 || a->world_port > 65535)
        return dit_error (DIT_ERR_FORMAT, "envelope: ACCEPT world port %d",
            a->world_port);
      a->world_relay = (int) r_u8 (&r);
      if (a->world_relay > 1
          || (a->world_relay && (a->world_port != 0 || a->has_world_nccl_id)))
        return dit_error (DIT_ERR_FORMAT, "envelope: ACCEPT world relay flag %d "
            "(with world port %d, world NCCL id %d)", a->world_relay,
            a->world_port, a->has_world_nccl_id);
      break;
    }
    default:
      break;
  }
  uint32_t nt = r_u32 (&r);
  if (r.bad)
    return dit_error (DIT_ERR_FORMAT, "envelope: %s payload truncated",
        dit_env_type_name (type));
  if (nt > DIT_ENV_MAX_TENSORS)
    return dit_error (DIT_ERR_FORMAT, "envelope: %u tensors (at most %d)", nt,
        DIT_ENV_MAX_TENSORS);
  e->n_tensors = (int) nt;
  for (uint32_t i = 0; i < nt; i++) {
    dit_env_tensor *t = &e->tensors[i];
    r_str (&r, t->name, sizeof t->name);
    unsigned dt = r_u8 (&r), nd = r_u8 (&r);
    if (r.bad || !t->name[0] || (dt != DIT_F32 && dt != DIT_BF16 && dt != DIT_F16)
        || nd < 1 || nd > DIT_ENV_MAX_DIMS)
      return dit_error (DIT_ERR_FORMAT, "envelope: tensor %u has a bad name, "
          "dtype or rank", i);
    t->dtype = (dit_dtype) dt;
    t->ndim = (int) nd;
    uint64_t numel = 1;
    for (unsigned d = 0; d < nd; d++) {
      uint64_t s = r_u64 (&r);
      if (s > DIT_ENV_MAX_PAYLOAD || (s && numel > DIT_ENV_MAX_PAYLOAD / s))
        return dit_error (DIT_ERR_FORMAT, "envelope: tensor '%s' dim %u is %llu",
            t->name, d, (unsigned long long) s);
      t->shape[d] = (int64_t) s;
      numel *= s;
    }
    uint64_t nb = r_u64 (&r);
    if (r.bad || nb != numel * dit_dtype_size (t->dtype))
      return dit_error (DIT_ERR_FORMAT, "envelope: tensor '%s' carries %llu bytes "
          "for %llu elements", t->name, (unsigned long long) nb,
          (unsigned long long) numel);
    t->data = NULL;
    for (uint32_t j = 0; j < i; j++)
      if (strcmp (e->tensors[j].name, t->name) == 0)
        return dit_error (DIT_ERR_FORMAT, "envelope: tensor '%s' appears twice",
            t->name);
  }
  if (r.off != r.n)
    return dit_error (DIT_ERR_FORMAT, "envelope: %zu trailing bytes", r.n - r.off);
  return DIT_OK;
}

dit_status
dit_env_decode_frame (const unsigned char *frame, size_t bytes, dit_envelope *env)
{
  int type;
  uint32_t n, crc;
  if (bytes < DIT_ENV_HEADER_BYTES)
    return dit_error (DIT_ERR_FORMAT, "envelope: %zu bytes is shorter than a header",
        bytes);
  DIT_TRY (dit_env_parse_header (frame, &type, &n, &crc));
  if (n != bytes - DIT_ENV_HEADER_BYTES)
    return dit_error (DIT_ERR_FORMAT, "envelope: header says %u payload bytes, "
        "frame has %zu", n, bytes - DIT_ENV_HEADER_BYTES);
  return dit_env_decode (type, frame + DIT_ENV_HEADER_BYTES, n, crc, env);
}

const dit_env_tensor *
dit_env_find (const dit_envelope *env, const char *name)
{
  for (int i = 0; i < env->n_tensors; i++)
    if (strcmp (env->tensors[i].name, name) == 0)
      return &env->tensors[i];
  return NULL;
}

/* ---- socket framing ----------------------------------------------------- */

dit_status
dit_env_send (int fd, const dit_envelope *env, int64_t deadline, const char *peer)
{
  unsigned char *frame;
  size_t n;
  char what[128];
  DIT_TRY (dit_env_encode (env, &frame, &n));
  snprintf (what, sizeof what, "%s: %s", peer, dit_env_type_name (env->type));
  dit_status st = dit_net_send_all (fd, frame, n, deadline, what);
  free (frame);
  return st;
}

dit_status
dit_env_recv (int fd, dit_envelope *env, unsigned char **buf, size_t *cap,
    int64_t deadline, const char *peer)
{
  unsigned char hdr[DIT_ENV_HEADER_BYTES];
  int type;
  uint32_t n, crc;
  char what[128];
  snprintf (what, sizeof what, "%s: envelope", peer);
  DIT_TRY (dit_net_recv_all (fd, hdr, sizeof hdr, deadline, what));
  dit_status st = dit_env_parse_header (hdr, &type, &n, &crc);
  if (st != DIT_OK)
    return dit_error_prefix (st, "%s", peer);
  if (n > *cap || !*buf) {
    unsigned char *q = realloc (*buf, n ? n : 1);
    if (!q)
      return dit_error (DIT_ERR_NOMEM, "%s: out of memory for %u bytes", peer, n);
    *buf = q;
    *cap = n ? n : 1;
  }
  DIT_TRY (dit_net_recv_all (fd, *buf, n, deadline, what));
  st = dit_env_decode (type, *buf, n, crc, env);
  if (st != DIT_OK)
    return dit_error_prefix (st, "%s", peer);
  return DIT_OK;
}
