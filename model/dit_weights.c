/* dit_weights — parameter tensors on a backend: strict checkpoint loading,
 * the seeded synthetic initializer, saving, and the DiT key mapping.
 *
 * Loading is all-or-nothing.  dit_weights_check validates the complete key
 * set, every shape and every dtype from the mapped headers before a single
 * byte of tensor data is read, so a wrong checkpoint fails fast even when it
 * is 57 GB; only then is backend memory allocated and each tensor converted
 * (F32/BF16/F16 -> compute dtype, round to nearest even) and uploaded.  Any
 * later failure frees everything already uploaded.
 *
 * Conversion goes through a bounded host staging buffer (1 Mi elements), so
 * peak host memory does not grow with the model; tensors already in the
 * compute dtype and suitably aligned are uploaded straight from the mapping.
 *
 * The fingerprint is 64-bit FNV-1a over, per tensor in spec order: the name
 * (with its NUL), ndim and the spec dims as little-endian int64, the compute
 * dtype, and a SAMPLE of the converted bytes as they sit in backend memory:
 * the whole tensor when it is at most 8 KiB, otherwise its first and last
 * 4 KiB.  Sampling keeps it cheap on 14B models; it identifies a checkpoint
 * and catches wrong files, it is not an integrity check of every byte.
 * Because it reads backend memory, synthetic weights and the same weights
 * loaded back from a file of the same dtype have the same fingerprint.
 */
#include "dit_weights.h"
#include "dit_stream_load.h"
#include "dit_philox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W_STAGE_ELEMS ((size_t) 1 << 20)
#define W_SAMPLE_BYTES ((size_t) 4096)

typedef struct weights_impl {
  dit_weights pub;          /* first: dit_weights * and weights_impl * alias */
  size_t *by_name;          /* spec indices sorted by name */
} weights_impl;

/* ------------------------------------------------------------------------ */
/* hashing and names */

#define W_FNV_OFFSET 0xcbf29ce484222325ull
#define W_FNV_PRIME 0x100000001b3ull

static uint64_t
w_fnv1a (uint64_t h, const void *data, size_t n)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= W_FNV_PRIME;
  }
  return h;
}

static uint64_t
w_fnv1a_u64 (uint64_t h, uint64_t v)
{
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char) (v >> (8 * i));
  return w_fnv1a (h, b, 8);
}

static int64_t
w_spec_numel (const dit_param_spec *s)
{
  int64_t n = 1;
  for (int d = 0; d < s->ndim; d++)
    n *= s->shape[d];
  return n;
}

static const char *
w_shape_str (char *buf, size_t size, int ndim, const int64_t *shape)
{
  size_t o = 0;
  o += (size_t) snprintf (buf + o, size - o, "[");
  for (int i = 0; i < ndim && o < size; i++)
    o += (size_t) snprintf (buf + o, size - o, "%s%lld", i ? ", " : "",
        (long long) shape[i]);
  if (o < size)
    snprintf (buf + o, size - o, "]");
  return buf;
}

static _Thread_local const dit_param_spec *w_sort_specs;

static int
w_spec_cmp (const void *a, const void *b)
{
  return strcmp (w_sort_specs[*(const size_t *) a].name,
      w_sort_specs[*(const size_t *) b].name);
}

static size_t *
w_sort_specs_by_name (const dit_param_spec *specs, size_t count)
{
  size_t *idx = malloc ((count + 1) * sizeof *idx);
  if (!idx)
    return NULL;
  for (size_t i = 0; i < count; i++)
    idx[i] = i;
  w_sort_specs = specs;
  qsort (idx, count, sizeof *idx, w_spec_cmp);
  w_sort_specs = NULL;
  return idx;
}

static size_t
w_find_spec (const dit_param_spec *specs, const size_t *idx, size_t count,
    const char *name)
{
  size_t lo = 0, hi = count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp (specs[idx[mid]].name, name);
    if (c == 0)
      return idx[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* key mapping (spec §3.4, §3.5) */

typedef struct w_rename {
  const char *from, *to;
} w_rename;

/* Inside "blocks.<i>.": Diffusers prefix -> Wan prefix. */
static const w_rename w_block_renames[] = {
  { "attn1.to_q.", "self_attn.q." },
  { "attn1.to_k.", "self_attn.k." },
  { "attn1.to_v.", "self_attn.v." },
  { "attn1.to_out.0.", "self_attn.o." },
  { "attn1.norm_q.", "self_attn.norm_q." },
  { "attn1.norm_k.", "self_attn.norm_k." },
  { "attn2.to_q.", "cross_attn.q." },
  { "attn2.to_k.", "cross_attn.k." },
  { "attn2.to_v.", "cross_attn.v." },
  { "attn2.to_out.0.", "cross_attn.o." },
  { "attn2.norm_q.", "cross_attn.norm_q." },
  { "attn2.norm_k.", "cross_attn.norm_k." },
  { "norm2.", "norm3." },
  { "ffn.net.0.proj.", "ffn.0." },
  { "ffn.net.2.", "ffn.2." },
};

/* Top level: Diffusers prefix -> Wan prefix. */
static const w_rename w_top_renames[] = {
  { "condition_embedder.text_embedder.linear_1.", "text_embedding.0." },
  { "condition_embedder.text_embedder.linear_2.", "text_embedding.2." },
  { "condition_embedder.time_embedder.linear_1.", "time_embedding.0." },
  { "condition_embedder.time_embedder.linear_2.", "time_embedding.2." },
  { "condition_embedder.time_proj.", "time_projection.1." },
  { "proj_out.", "head.head." },
};

static int
w_starts_with (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

int
dit_model_key_map (const char *key, char *buf, size_t bufsize)
{
  const char *k = key;
  char out[256];
  int changed = 0;

  if (w_starts_with (k, "model.")) {
    k += 6;
    changed = 1;
  }
  snprintf (out, sizeof out, "%s", k);

  if (w_starts_with (k, "blocks.")) {
    const char *p = k + 7;
    size_t digits = strspn (p, "0123456789");
    if (digits && p[digits] == '.') {
      const char *rest = p + digits + 1;
      int head = (int) (rest - k);
      if (strcmp (rest, "scale_shift_table") == 0) {
        snprintf (out, sizeof out, "%.*smodulation", head, k);
        changed = 1;
      } else {
        for (size_t i = 0; i < sizeof w_block_renames / sizeof w_block_renames[0]; i++) {
          const w_rename *r = &w_block_renames[i];
          if (w_starts_with (rest, r->from)) {
            snprintf (out, sizeof out, "%.*s%s%s", head, k, r->to,
                rest + strlen (r->from));
            changed = 1;
            break;
          }
        }
      }
    }
  } else if (strcmp (k, "scale_shift_table") == 0) {
    snprintf (out, sizeof out, "head.modulation");
    changed = 1;
  } else {
    for (size_t i = 0; i < sizeof w_top_renames / sizeof w_top_renames[0]; i++) {
      const w_rename *r = &w_top_renames[i];
      if (w_starts_with (k, r->from)) {
        snprintf (out, sizeof out, "%s%s", r->to, k + strlen (r->from));
        changed = 1;
        break;
      }
    }
  }
  if (!changed || strlen (out) + 1 > bufsize)
    return 0;
  memcpy (buf, out, strlen (out) + 1);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* checks */

/* Checks the set against specs; on success match[i] is the checkpoint
 * tensor for specs[i] (when match is not NULL). */
static dit_status
w_check (const dit_safetensors *st, const char *path, const dit_param_spec *specs,
    size_t count, dit_key_map_fn map, const dit_st_tensor **match)
{
  size_t n = dit_safetensors_count (st);
  const dit_st_tensor **found = calloc (count + 1, sizeof *found);
  size_t *idx = w_sort_specs_by_name (specs, count);
  size_t n_unexpected = 0, n_missing = 0;
  const dit_st_tensor *first_unexpected = NULL;
  const char *first_missing = NULL;
  dit_status status = DIT_OK;
  char mapped[256], sa[256], sb[256];

  if (!found || !idx) {
    free (found);
    free (idx);
    return dit_error (DIT_ERR_NOMEM, "out of memory checking %s", path);
  }
  for (size_t i = 0; i < n; i++) {
    const dit_st_tensor *t = dit_safetensors_at (st, i);
    const char *name = t->name;
    if (map && map (t->name, mapped, sizeof mapped))
      name = mapped;
    size_t s = w_find_spec (specs, idx, count, name);
    if (s == SIZE_MAX) {
      if (!n_unexpected++)
        first_unexpected = t;
      continue;
    }
    if (found[s]) {
      if (status == DIT_OK)
        status = dit_error (DIT_ERR_FORMAT, "%s: keys '%s' and '%s' both name '%s'",
            t->file, found[s]->name, t->name, specs[s].name);
      continue;
    }
    found[s] = t;
    if (status != DIT_OK)
      continue;
    char as[300] = "";
    if (name == mapped)
      snprintf (as, sizeof as, " (as '%s')", mapped);
    dit_dtype dt;
    if (!dit_st_dtype_to_dit (t->dtype, &dt)) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: key '%s'%s: dtype %s is not a float type (F32, BF16, F16)", t->file,
          t->name, as, dit_st_dtype_name (t->dtype));
      continue;
    }
    int same = t->ndim == specs[s].ndim;
    for (int d = 0; same && d < t->ndim; d++)
      same = t->shape[d] == specs[s].shape[d];
    if (!same)
      status = dit_error (DIT_ERR_FORMAT,
          "%s: key '%s'%s: shape %s does not match expected %s", t->file, t->name, as,
          w_shape_str (sa, sizeof sa, t->ndim, t->shape),
          w_shape_str (sb, sizeof sb, specs[s].ndim, specs[s].shape));
  }
  for (size_t s = 0; s < count; s++)
    if (!found[s] && !n_missing++)
      first_missing = specs[s].name;

  /* One message, most specific first: a key that should not be there, then
   * a key with the wrong contents, then keys that are absent. */
  if (n_unexpected) {
    char more[64] = "";
    if (n_unexpected > 1)
      snprintf (more, sizeof more, " (and %zu more)", n_unexpected - 1);
    status = dit_error (DIT_ERR_FORMAT, "%s: unexpected key '%s'%s", first_unexpected->file,
        first_unexpected->name, more);
  } else if (status == DIT_OK && n_missing) {
    char more[64] = "";
    if (n_missing > 1)
      snprintf (more, sizeof more, " (and %zu more)", n_missing - 1);
    status = dit_error (DIT_ERR_FORMAT, "%s: missing key '%s'%s", path, first_missing,
        more);
  }
  if (status == DIT_OK && match)
    memcpy (match, found, count * sizeof *found);
  free (found);
  free (idx);
  return status;
}

dit_status
dit_weights_check (const dit_safetensors *st, const char *path,
    const dit_param_spec *specs, size_t count, dit_key_map_fn map)
{
  return w_check (st, path, specs, count, map, NULL);
}

/* ------------------------------------------------------------------------ */
/* allocation, fingerprint, lookup */

static dit_status
w_alloc (const dit_param_spec *specs, size_t count, dit_dtype dtype,
    dit_backend *be, weights_impl **out)
{
  weights_impl *w = calloc (1, sizeof *w);
  if (!w)
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  w->pub.backend = be;
  w->pub.dtype = dtype;
  w->pub.specs = malloc ((count + 1) * sizeof *w->pub.specs);
  w->pub.tensors = calloc (count + 1, sizeof *w->pub.tensors);
  w->by_name = w_sort_specs_by_name (specs, count);
  if (!w->pub.specs || !w->pub.tensors || !w->by_name) {
    dit_weights_free (&w->pub);
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  }
  memcpy (w->pub.specs, specs, count * sizeof *specs);
  for (size_t i = 0; i < count; i++) {
    const dit_param_spec *s = &specs[i];
    size_t bytes = (size_t) w_spec_numel (s) * dit_dtype_size (dtype);
    void *p = be->ops->alloc (be, bytes ? bytes : 1);
    if (!p) {
      char sb[256];
      dit_weights_free (&w->pub);
      return dit_error (DIT_ERR_NOMEM,
          "weights: cannot allocate %zu bytes on backend '%s' for '%s' %s", bytes,
          be->ops->name, s->name, w_shape_str (sb, sizeof sb, s->ndim, s->shape));
    }
    if (s->ndim <= DIT_MAX_DIMS) {
      w->pub.tensors[i] = dit_tensor_make (p, dtype, be->ops->device, s->ndim, s->shape);
    } else {
      int64_t flat[2] = { s->shape[0], w_spec_numel (s) / (s->shape[0] ? s->shape[0] : 1) };
      w->pub.tensors[i] = dit_tensor_make (p, dtype, be->ops->device, 2, flat);
    }
    w->pub.count = i + 1;
  }
  *out = w;
  return DIT_OK;
}

static dit_status
w_fingerprint (dit_weights *w)
{
  uint64_t h = W_FNV_OFFSET;
  unsigned char sample[2 * W_SAMPLE_BYTES];
  dit_backend *be = w->backend;

  for (size_t i = 0; i < w->count; i++) {
    const dit_param_spec *s = &w->specs[i];
    const dit_tensor *t = &w->tensors[i];
    size_t bytes = dit_tensor_nbytes (t), n;
    h = w_fnv1a (h, s->name, strlen (s->name) + 1);
    h = w_fnv1a_u64 (h, (uint64_t) s->ndim);
    for (int d = 0; d < s->ndim; d++)
      h = w_fnv1a_u64 (h, (uint64_t) s->shape[d]);
    h = w_fnv1a_u64 (h, (uint64_t) w->dtype);
    if (bytes <= sizeof sample) {
      DIT_TRY (be->ops->download (be, sample, t->data, bytes));
      n = bytes;
    } else {
      DIT_TRY (be->ops->download (be, sample, t->data, W_SAMPLE_BYTES));
      DIT_TRY (be->ops->download (be, sample + W_SAMPLE_BYTES,
          (const char *) t->data + bytes - W_SAMPLE_BYTES, W_SAMPLE_BYTES));
      n = sizeof sample;
    }
    h = w_fnv1a (h, sample, n);
  }
  w->fingerprint = h;
  return DIT_OK;
}

const dit_tensor *
dit_weights_get (const dit_weights *w, const char *name)
{
  const weights_impl *wi = (const weights_impl *) w;
  size_t i = w_find_spec (w->specs, wi->by_name, w->count, name);
  return i == SIZE_MAX ? NULL : &w->tensors[i];
}

dit_status
dit_weights_require (const dit_weights *w, const char *name, const dit_tensor **out)
{
  const dit_tensor *t = dit_weights_get (w, name);
  *out = t;
  if (!t)
    return dit_error (DIT_ERR_INVALID, "weights: no tensor named '%s'", name);
  return DIT_OK;
}

void
dit_weights_free (dit_weights *w)
{
  weights_impl *wi = (weights_impl *) w;
  if (!w)
    return;
  for (size_t i = 0; w->tensors && i < w->count; i++)
    if (w->tensors[i].data)
      w->backend->ops->free (w->backend, w->tensors[i].data);
  free (w->specs);
  free (w->tensors);
  free (wi->by_name);
  free (wi);
}

/* ------------------------------------------------------------------------ */
/* loading */

/* Every matched tensor's bytes into w: read in file order with large
 * sequential reads, uploaded while reading, dtype conversion on the backend
 * (dit_stream_load.h).  The mapped data is never touched, so nothing is
 * paged in through faults. */
static dit_status
w_load_data (const dit_safetensors *st, const dit_st_tensor **match,
    dit_weights *w, dit_backend *be)
{
  (void) st;
  dit_load_item *items = calloc (w->count + 1, sizeof *items);
  if (!items)
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  for (size_t i = 0; i < w->count; i++) {
    const dit_st_tensor *t = match[i];
    dit_dtype src_dt;
    dit_st_dtype_to_dit (t->dtype, &src_dt);
    items[i].file = t->file;
    items[i].offset = t->file_offset;
    items[i].bytes = t->nbytes;
    items[i].src_dtype = src_dt;
    items[i].dst = &w->tensors[i];
    items[i].index = i;
  }
  dit_status status = dit_stream_load (be, items, w->count, NULL, NULL, NULL);
  free (items);
  return status;
}

dit_status
dit_weights_load (const char *path, const dit_param_spec *specs, size_t count,
    dit_key_map_fn map, dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  dit_safetensors *st = NULL;
  const dit_st_tensor **match = NULL;
  weights_impl *w = NULL;
  dit_status status;

  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "%s: no backend to load weights into", path);
  if ((status = dit_safetensors_open (path, &st)) != DIT_OK)
    return status;
  match = calloc (count + 1, sizeof *match);
  if (!match) {
    status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  if ((status = w_check (st, path, specs, count, map, match)) != DIT_OK)
    goto out;
  if ((status = w_alloc (specs, count, dtype, be, &w)) != DIT_OK)
    goto out;
  if ((status = w_load_data (st, match, &w->pub, be)) != DIT_OK)
    goto out;
  if ((status = w_fingerprint (&w->pub)) != DIT_OK) {
    dit_error_prefix (status, "%s: fingerprint", path);
    goto out;
  }
  *out = &w->pub;
  w = NULL;

out:
  if (w)
    dit_weights_free (&w->pub);
  free (match);
  dit_safetensors_close (st);
  return status;
}

/* ------------------------------------------------------------------------ */
/* synthetic weights */

static int
w_ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n >= m && strcmp (s + n - m, suffix) == 0;
}

/* value = scale * N(0,1) + offset, by the rules in dit_weights.h. */
static void
w_synth_rule (const dit_param_spec *s, double *scale, double *offset)
{
  *offset = 0.0;
  if (strstr (s->name, "modulation")) {
    *scale = 1.0 / sqrt ((double) s->shape[s->ndim - 1]);
  } else if (s->ndim >= 2 && strstr (s->name, "weight")) {
    double fan_in = 1.0;
    for (int d = 1; d < s->ndim; d++)
      fan_in *= (double) s->shape[d];
    *scale = 1.0 / sqrt (fan_in);
  } else if (w_ends_with (s->name, "bias")) {
    *scale = 0.02;
  } else if (strstr (s->name, "norm") || strstr (s->name, "gamma")) {
    *scale = 0.1;
    *offset = 1.0;
  } else {
    *scale = 0.02;
  }
}

static uint64_t
w_synth_stream (const dit_param_spec *spec)
{
  return w_fnv1a (W_FNV_OFFSET, spec->name, strlen (spec->name));
}

void
dit_weights_synthetic_fill (const dit_param_spec *spec, uint64_t seed,
    int64_t begin, int64_t n, dit_dtype dtype, void *dst)
{
  double scale, offset;
  uint64_t stream = w_synth_stream (spec);
  w_synth_rule (spec, &scale, &offset);

  /* Walk in pairs: one Philox call gives elements 2p and 2p+1. */
  int64_t i = 0;
  while (i < n) {
    uint64_t e = (uint64_t) (begin + i);
    float z[2];
    dit_philox_normal_pair (seed, stream, e >> 1, &z[0], &z[1]);
    for (int k = (int) (e & 1); k < 2 && i < n; k++, i++)
      dit_store_f32 (dst, dtype, (size_t) i, (float) ((double) z[k] * scale + offset));
  }
}

dit_status
dit_weights_synthetic_fill_backend (const dit_param_spec *spec, uint64_t seed,
    int64_t begin, int64_t n, dit_dtype dtype, dit_backend *be, void *dst)
{
  if (!be || !be->ops->synthetic_normal)
    return dit_error (DIT_ERR_UNSUPPORTED, "weights: backend '%s' cannot make "
        "synthetic values", be ? be->ops->name : "(none)");
  double scale, offset;
  w_synth_rule (spec, &scale, &offset);
  return be->ops->synthetic_normal (be, dst, dtype, begin, n, seed,
      w_synth_stream (spec), scale, offset);
}

dit_status
dit_weights_synthetic (const dit_param_spec *specs, size_t count, uint64_t seed,
    dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  weights_impl *w = NULL;
  void *stage;
  size_t dsz = dit_dtype_size (dtype);
  dit_status status;

  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "weights: no backend for synthetic weights");
  if (!(stage = malloc (W_STAGE_ELEMS * dsz)))
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  if ((status = w_alloc (specs, count, dtype, be, &w)) != DIT_OK) {
    free (stage);
    return status;
  }
  for (size_t i = 0; i < count && status == DIT_OK; i++) {
    int64_t n = w_spec_numel (&specs[i]);
    if (be->ops->synthetic_normal) {
      /* Same values made in backend memory (the 14B set in seconds). */
      double scale, offset;
      w_synth_rule (&specs[i], &scale, &offset);
      status = be->ops->synthetic_normal (be, w->pub.tensors[i].data, dtype, 0,
          n, seed, w_synth_stream (&specs[i]), scale, offset);
      if (status != DIT_OK)
        dit_error_prefix (status, "weights: synthetic '%s'", specs[i].name);
      continue;
    }
    for (int64_t o = 0; o < n && status == DIT_OK; o += (int64_t) W_STAGE_ELEMS) {
      int64_t m = n - o < (int64_t) W_STAGE_ELEMS ? n - o : (int64_t) W_STAGE_ELEMS;
      dit_weights_synthetic_fill (&specs[i], seed, o, m, dtype, stage);
      status = be->ops->upload (be, (char *) w->pub.tensors[i].data + (size_t) o * dsz,
          stage, (size_t) m * dsz);
      if (status != DIT_OK)
        dit_error_prefix (status, "weights: synthetic '%s'", specs[i].name);
    }
  }
  if (status == DIT_OK)
    status = w_fingerprint (&w->pub);
  free (stage);
  if (status != DIT_OK) {
    dit_weights_free (&w->pub);
    return status;
  }
  *out = &w->pub;
  return DIT_OK;
}

typedef struct w_mapped_ctx {
  const dit_param_spec *full;
  dit_weights_map_fn map;
  void *user;
  uint64_t seed;
} w_mapped_ctx;

static dit_status
w_mapped_fill (void *user, size_t index, int64_t begin, int64_t n,
    dit_dtype dtype, void *dst)
{
  const w_mapped_ctx *c = user;
  size_t dsz = dit_dtype_size (dtype);
  for (int64_t i = 0; i < n;) {
    int64_t run;
    int64_t f = c->map (c->user, index, begin + i, &run);
    if (run > n - i)
      run = n - i;
    dit_weights_synthetic_fill (&c->full[index], c->seed, f, run, dtype,
        (char *) dst + (size_t) i * dsz);
    i += run;
  }
  return DIT_OK;
}

dit_status
dit_weights_synthetic_mapped (const dit_param_spec *specs,
    const dit_param_spec *full, size_t count, dit_weights_map_fn map,
    void *user, uint64_t seed, dit_dtype dtype, dit_backend *be,
    dit_weights **out)
{
  w_mapped_ctx ctx = { full, map, user, seed };
  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "weights: no backend for synthetic weights");
  if (!be->ops->synthetic_normal)
    return dit_weights_from_fill (specs, count, dtype, be, w_mapped_fill, &ctx, out);

  weights_impl *w = NULL;
  size_t dsz = dit_dtype_size (dtype);
  DIT_TRY (w_alloc (specs, count, dtype, be, &w));
  dit_status status = DIT_OK;
  for (size_t i = 0; i < count && status == DIT_OK; i++) {
    double scale, offset;
    uint64_t stream = w_synth_stream (&full[i]);
    w_synth_rule (&full[i], &scale, &offset);
    int64_t n = w_spec_numel (&specs[i]);
    for (int64_t e = 0; e < n && status == DIT_OK;) {
      int64_t run;
      int64_t f = map (user, i, e, &run);
      if (run > n - e)
        run = n - e;
      status = be->ops->synthetic_normal (be, (char *) w->pub.tensors[i].data
          + (size_t) e * dsz, dtype, f, run, seed, stream, scale, offset);
      e += run;
    }
    if (status != DIT_OK)
      dit_error_prefix (status, "weights: synthetic '%s'", specs[i].name);
  }
  if (status == DIT_OK)
    status = w_fingerprint (&w->pub);
  if (status != DIT_OK) {
    dit_weights_free (&w->pub);
    return status;
  }
  *out = &w->pub;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* saving */

typedef struct w_save_ctx {
  const dit_weights *w;
  dit_dtype dtype;
  void *stage;
} w_save_ctx;

static dit_status
w_save_fill (void *user, size_t index, void *dst, size_t nbytes)
{
  w_save_ctx *c = user;
  const dit_weights *w = c->w;
  dit_backend *be = w->backend;
  const dit_tensor *t = &w->tensors[index];
  size_t n = (size_t) dit_tensor_numel (t);
  size_t ssz = dit_dtype_size (w->dtype), dsz = dit_dtype_size (c->dtype);

  (void) nbytes;
  if (w->dtype == c->dtype)
    return be->ops->download (be, dst, t->data, n * dsz);
  for (size_t o = 0; o < n; o += W_STAGE_ELEMS) {
    size_t m = n - o < W_STAGE_ELEMS ? n - o : W_STAGE_ELEMS;
    DIT_TRY (be->ops->download (be, c->stage, (const char *) t->data + o * ssz, m * ssz));
    dit_convert ((char *) dst + o * dsz, c->dtype, c->stage, w->dtype, m);
  }
  return DIT_OK;
}

dit_status
dit_weights_save (const dit_weights *w, const char *path, dit_dtype dtype,
    const char *const *metadata)
{
  dit_st_write_tensor *wt = calloc (w->count + 1, sizeof *wt);
  w_save_ctx ctx = { w, dtype, malloc (W_STAGE_ELEMS * sizeof (float)) };
  dit_status status;

  if (!wt || !ctx.stage) {
    free (wt);
    free (ctx.stage);
    return dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
  }
  for (size_t i = 0; i < w->count; i++) {
    wt[i].name = w->specs[i].name;
    wt[i].dtype = dtype;
    wt[i].ndim = w->specs[i].ndim;
    wt[i].shape = w->specs[i].shape;
  }
  status = dit_safetensors_write_fn (path, wt, w->count, metadata, w_save_fill, &ctx);
  free (ctx.stage);
  free (wt);
  return status;
}

/* ------------------------------------------------------------------------ */
/* weights from a caller's fill function (tensor-parallel shards) */

dit_status
dit_weights_from_fill (const dit_param_spec *specs, size_t count,
    dit_dtype dtype, dit_backend *be, dit_weights_fill_fn fill, void *user,
    dit_weights **out)
{
  weights_impl *w = NULL;
  size_t dsz = dit_dtype_size (dtype);
  void *stage;
  dit_status status;

  *out = NULL;
  if (!be || !fill)
    return dit_error (DIT_ERR_INVALID, "weights: no backend or fill function");
  if (!(stage = malloc (W_STAGE_ELEMS * dsz)))
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  if ((status = w_alloc (specs, count, dtype, be, &w)) != DIT_OK) {
    free (stage);
    return status;
  }
  for (size_t i = 0; i < count && status == DIT_OK; i++) {
    int64_t n = w_spec_numel (&specs[i]);
    for (int64_t o = 0; o < n && status == DIT_OK; o += (int64_t) W_STAGE_ELEMS) {
      int64_t m = n - o < (int64_t) W_STAGE_ELEMS ? n - o : (int64_t) W_STAGE_ELEMS;
      status = fill (user, i, o, m, dtype, stage);
      if (status == DIT_OK)
        status = be->ops->upload (be,
            (char *) w->pub.tensors[i].data + (size_t) o * dsz, stage,
            (size_t) m * dsz);
      if (status != DIT_OK)
        dit_error_prefix (status, "weights: '%s'", specs[i].name);
    }
  }
  if (status == DIT_OK)
    status = w_fingerprint (&w->pub);
  free (stage);
  if (status != DIT_OK) {
    dit_weights_free (&w->pub);
    return status;
  }
  *out = &w->pub;
  return DIT_OK;
}
