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

uint64_t
dit_fnv1a64 (uint64_t h, const void *data, size_t n)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t
dit_fnv1a64_u64 (uint64_t h, uint64_t v)
{
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char) (v >> (8 * i));
  return dit_fnv1a64 (h, b, 8);
}

static int64_t
w_spec_numel (const dit_param_spec *s)
{
  int64_t n = 1;
  for (int d = 0; d < s->ndim; d++)
    n *= s->shape[d];
  return n;
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

int
dit_model_key_map (const char *key, char *buf, size_t bufsize)
{
  const char *k = key;
  char out[256];
  int changed = 0;

  if (dit_str_starts_with (k, "model.")) {
    k += 6;
    changed = 1;
  }
  /* ComfyUI's layout ("model.diffusion_model.blocks..."), which most
   * published FP8 checkpoints use */
  if (dit_str_starts_with (k, "diffusion_model.")) {
    k += 16;
    changed = 1;
  }
  snprintf (out, sizeof out, "%s", k);

  if (dit_str_starts_with (k, "blocks.")) {
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
          if (dit_str_starts_with (rest, r->from)) {
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
      if (dit_str_starts_with (k, r->from)) {
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

/* FP8 side keys (dit_weights.h): "<layer>.scale_weight" and
 * "<layer>.scale_input" belong to "<layer>.weight" (written to `base`);
 * "scaled_fp8" marks the scaled layout. */
enum { W_KEY_TENSOR, W_KEY_SCALE, W_KEY_SCALE_INPUT, W_KEY_MARKER };

static int
w_side_key (const char *name, char *base, size_t size)
{
  static const struct { const char *suffix; int kind; } side[] = {
    { ".scale_weight", W_KEY_SCALE }, { ".scale_input", W_KEY_SCALE_INPUT },
  };
  if (strcmp (name, "scaled_fp8") == 0)
    return W_KEY_MARKER;
  for (size_t i = 0; i < sizeof side / sizeof side[0]; i++)
    if (dit_str_ends_with (name, side[i].suffix)) {
      size_t n = strlen (name) - strlen (side[i].suffix);
      snprintf (base, size, "%.*s.weight", (int) n, name);
      return side[i].kind;
    }
  return W_KEY_TENSOR;
}

/* "<prefix>.scale_weight" for a checkpoint key "<prefix>.weight". */
static const char *
w_scale_key (const char *weight_key, char *buf, size_t size)
{
  size_t n = strlen (weight_key);
  if (dit_str_ends_with (weight_key, ".weight"))
    n -= strlen (".weight");
  snprintf (buf, size, "%.*s.scale_weight", (int) n, weight_key);
  return buf;
}

/* Element i of a float checkpoint tensor (any alignment). */
static float
w_st_value (const dit_st_tensor *t, int64_t i)
{
  dit_dtype dt;
  unsigned char b[4];
  dit_st_dtype_to_dit (t->dtype, &dt);
  memcpy (b, (const char *) t->data + (size_t) i * dit_dtype_size (dt),
      dit_dtype_size (dt));
  return dit_load_f32 (b, dt, 0);
}

static int64_t
w_st_numel (const dit_st_tensor *t)
{
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

/* The FP8 rules of dit_weights.h for one expected tensor: its checkpoint
 * tensor f, the scale_weight sc and scale_input in found beside it (may be
 * NULL); `scaled` says the file uses the scaled layout. */
static dit_status
w_check_fp8_tensor (const dit_param_spec *spec, const dit_st_tensor *f,
    const dit_st_tensor *sc, const dit_st_tensor *in, int scaled)
{
  char sa[256], key[300];
  dit_dtype dt;
  if (!sc) {
    if (f->dtype == DIT_ST_F8_E4M3 && scaled)
      return dit_error (DIT_ERR_FORMAT, "%s: missing key '%s': this checkpoint "
          "stores FP8 scales (scale_weight) and '%s' is F8_E4M3 without one",
          f->file, w_scale_key (f->name, key, sizeof key), f->name);
  } else {
    if (f->dtype != DIT_ST_F8_E4M3)
      return dit_error (DIT_ERR_FORMAT, "%s: key '%s': a scale for '%s', which "
          "is %s, not F8_E4M3 (only FP8 weights carry a scale_weight)", sc->file,
          sc->name, f->name, dit_st_dtype_name (f->dtype));
    if (!dit_st_dtype_to_dit (sc->dtype, &dt))
      return dit_error (DIT_ERR_FORMAT, "%s: key '%s': dtype %s; an FP8 scale "
          "is F32, BF16 or F16", sc->file, sc->name, dit_st_dtype_name (sc->dtype));
    int64_t n = w_st_numel (sc);
    int per_tensor = n == 1 && sc->ndim <= 1;
    int per_channel = sc->ndim == 1 && sc->shape[0] == spec->shape[0];
    if (!per_tensor && !per_channel)
      return dit_error (DIT_ERR_FORMAT, "%s: key '%s': shape %s; an FP8 scale "
          "is [] or [1] (per tensor) or [%lld] (per output channel of '%s')",
          sc->file, sc->name,
          dit_shape_str (sa, sizeof sa, sc->ndim, sc->shape),
          (long long) spec->shape[0], f->name);
    for (int64_t i = 0; i < n; i++) {
      float v = w_st_value (sc, i);
      if (!isfinite (v) || !(v > 0.0f))
        return dit_error (DIT_ERR_FORMAT, "%s: key '%s': scale %g (element "
            "%lld) is not a positive finite number", sc->file, sc->name,
            (double) v, (long long) i);
    }
  }
  if (in && f->dtype != DIT_ST_F8_E4M3)
    return dit_error (DIT_ERR_FORMAT, "%s: unexpected key '%s' (an input scale "
        "beside '%s', which is not F8_E4M3)", in->file, in->name, f->name);
  return DIT_OK;
}

/* Checks the set against specs; on success match[i] is the checkpoint
 * tensor for specs[i] (when match is not NULL). */
static dit_status
w_check (const dit_safetensors *st, const char *path, const dit_param_spec *specs,
    size_t count, dit_key_map_fn map, dit_fp8_select_fn accept,
    const dit_st_tensor **match)
{
  size_t n = dit_safetensors_count (st);
  const dit_st_tensor **found = calloc (3 * (count + 1), sizeof *found);
  const dit_st_tensor **scale_of = found + count + 1, **input_of = scale_of + count + 1;
  size_t *idx = w_sort_specs_by_name (specs, count);
  size_t n_unexpected = 0, n_missing = 0;
  const dit_st_tensor *first_unexpected = NULL, *marker = NULL;
  const char *first_missing = NULL;
  dit_status status = DIT_OK;
  char mapped[256], base[256], sa[256], sb[256];

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
    int kind = accept ? w_side_key (name, base, sizeof base) : W_KEY_TENSOR;
    if (kind == W_KEY_MARKER) {
      marker = t;
      continue;
    }
    size_t s = w_find_spec (specs, idx, count, kind == W_KEY_TENSOR ? name : base);
    if (s == SIZE_MAX || (kind != W_KEY_TENSOR && !accept (&specs[s]))) {
      if (!n_unexpected++)
        first_unexpected = t;
      continue;
    }
    if (kind != W_KEY_TENSOR) {
      const dit_st_tensor **slot = kind == W_KEY_SCALE ? &scale_of[s] : &input_of[s];
      if (*slot && status == DIT_OK)
        status = dit_error (DIT_ERR_FORMAT, "%s: keys '%s' and '%s' are both "
            "scales of '%s'", t->file, (*slot)->name, t->name, specs[s].name);
      *slot = t;
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
    if (t->dtype == DIT_ST_F8_E5M2) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: key '%s'%s: dtype F8_E5M2 is not supported (FP8 weights must be "
          "F8_E4M3; convert the checkpoint to e4m3 or bf16)", t->file, t->name, as);
      continue;
    }
    if (t->dtype == DIT_ST_F8_E4M3) {
      if (!accept || !accept (&specs[s])) {
        status = dit_error (DIT_ERR_FORMAT,
            "%s: key '%s'%s: dtype F8_E4M3 where only F32, BF16 or F16 is "
            "accepted (FP8 is for the blocks' linear weights; embeddings, patch "
            "embedding, head, modulation, norms and biases stay 16/32-bit)",
            t->file, t->name, as);
        continue;
      }
    } else if (!dit_st_dtype_to_dit (t->dtype, &dt)) {
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
          dit_shape_str (sa, sizeof sa, t->ndim, t->shape),
          dit_shape_str (sb, sizeof sb, specs[s].ndim, specs[s].shape));
  }
  for (size_t s = 0; s < count; s++)
    if (!found[s] && !n_missing++)
      first_missing = specs[s].name;

  /* One message, most specific first: a key that should not be there, then
   * a key with the wrong contents, then keys that are absent, then the FP8
   * scales. */
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
  int scaled = marker != NULL;
  for (size_t s = 0; s < count; s++)
    scaled |= scale_of[s] != NULL;
  for (size_t s = 0; status == DIT_OK && s < count; s++)
    status = w_check_fp8_tensor (&specs[s], found[s], scale_of[s], input_of[s],
        scaled);
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
  return w_check (st, path, specs, count, map, NULL, NULL);
}

dit_status
dit_weights_check_fp8 (const dit_safetensors *st, const char *path,
    const dit_param_spec *specs, size_t count, dit_key_map_fn map,
    dit_fp8_select_fn accept)
{
  return w_check (st, path, specs, count, map, accept, NULL);
}

float
dit_checkpoint_fp8_scale (const dit_safetensors *st, const dit_st_tensor *t,
    int64_t row)
{
  char key[300];
  const dit_st_tensor *sc = dit_safetensors_find (st,
      w_scale_key (t->name, key, sizeof key));
  if (!sc)
    return 1.0f;
  return w_st_value (sc, w_st_numel (sc) == 1 ? 0 : row);
}

/* ---- the DiT's FP8 rules ---------------------------------------------------- */

/* "blocks.<i>.<rest>" -> rest, or NULL. */
static const char *
w_block_rest (const char *name)
{
  if (!dit_str_starts_with (name, "blocks."))
    return NULL;
  const char *p = name + 7;
  size_t digits = strspn (p, "0123456789");
  return digits && p[digits] == '.' ? p + digits + 1 : NULL;
}

int
dit_model_fp8_accept (const dit_param_spec *spec)
{
  static const char *const linears[] = {
    "self_attn.q.weight", "self_attn.k.weight", "self_attn.v.weight",
    "self_attn.o.weight", "cross_attn.q.weight", "cross_attn.k.weight",
    "cross_attn.v.weight", "cross_attn.o.weight", "ffn.0.weight", "ffn.2.weight",
  };
  const char *rest = w_block_rest (spec->name);
  if (!rest || spec->ndim != 2)
    return 0;
  for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++)
    if (strcmp (rest, linears[i]) == 0)
      return 1;
  return 0;
}

int
dit_model_fp8_select (const dit_param_spec *spec)
{
  const char *rest = w_block_rest (spec->name);
  if (!dit_model_fp8_accept (spec) || strcmp (rest, "cross_attn.k.weight") == 0
      || strcmp (rest, "cross_attn.v.weight") == 0)
    return 0;
  return spec->shape[1] % DIT_FP8_BLOCK == 0;
}

/* ------------------------------------------------------------------------ */
/* allocation, fingerprint, lookup */

/* Backend memory for tensor i: FP8 codes and [N] scales when fp8 is set
 * (a 2-D [N, K] spec), else the compute dtype. */
static dit_status
w_alloc_one (weights_impl *w, size_t i, int fp8)
{
  dit_backend *be = w->pub.backend;
  const dit_param_spec *s = &w->pub.specs[i];
  dit_dtype dt = fp8 ? DIT_F8E4M3 : w->pub.dtype;
  size_t bytes = (size_t) w_spec_numel (s) * dit_dtype_size (dt);
  char sb[256];
  void *q = NULL;
  if (fp8) {
    if (!w->pub.scales && !(w->pub.scales = calloc (w->pub.count + 1,
          sizeof *w->pub.scales)))
      return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
    if (!(q = dit_backend_alloc (be, (size_t) s->shape[0] * sizeof (float))))
      return dit_error (DIT_ERR_NOMEM, "weights: cannot allocate the FP8 "
          "scales of '%s' on backend '%s'", s->name, dit_backend_name (be));
  }
  void *p = dit_backend_alloc (be, bytes ? bytes : 1);
  if (!p) {
    if (q)
      dit_backend_free (be, q);
    return dit_error (DIT_ERR_NOMEM,
        "weights: cannot allocate %zu bytes on backend '%s' for '%s' %s", bytes,
        dit_backend_name (be), s->name,
        dit_shape_str (sb, sizeof sb, s->ndim, s->shape));
  }
  if (s->ndim <= DIT_MAX_DIMS) {
    w->pub.tensors[i] = dit_tensor_make (p, dt, dit_backend_device (be), s->ndim, s->shape);
  } else {
    int64_t flat[2] = { s->shape[0], w_spec_numel (s) / (s->shape[0] ? s->shape[0] : 1) };
    w->pub.tensors[i] = dit_tensor_make (p, dt, dit_backend_device (be), 2, flat);
  }
  if (fp8) {
    w->pub.scales[i] = dit_tensor_1d (q, DIT_F32, dit_backend_device (be), s->shape[0]);
    w->pub.fp8_count++;
  }
  return DIT_OK;
}

/* fp8[i] != 0: tensor i is stored as FP8 (NULL: none). */
static dit_status
w_alloc (const dit_param_spec *specs, size_t count, dit_dtype dtype,
    const unsigned char *fp8, dit_backend *be, weights_impl **out)
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
  w->pub.count = count;
  for (size_t i = 0; i < count; i++) {
    dit_status st = w_alloc_one (w, i, fp8 && fp8[i]);
    if (st != DIT_OK) {
      dit_weights_free (&w->pub);
      return st;
    }
  }
  *out = w;
  return DIT_OK;
}

/* FNV-1a of the first and last 4 KiB of t (all of it when small). */
static dit_status
w_sample (dit_backend *be, const dit_tensor *t, uint64_t *h)
{
  unsigned char sample[2 * W_SAMPLE_BYTES];
  size_t bytes = dit_tensor_nbytes (t), n;
  if (bytes <= sizeof sample) {
    DIT_TRY (dit_download (be, sample, t->data, bytes));
    n = bytes;
  } else {
    DIT_TRY (dit_download (be, sample, t->data, W_SAMPLE_BYTES));
    DIT_TRY (dit_download (be, sample + W_SAMPLE_BYTES,
        (const char *) t->data + bytes - W_SAMPLE_BYTES, W_SAMPLE_BYTES));
    n = sizeof sample;
  }
  *h = dit_fnv1a64 (*h, sample, n);
  return DIT_OK;
}

/* An FP8 tensor adds its storage dtype and a sample of its scales after
 * the sample of its codes, so FP8 and 16-bit sets never share a digest
 * while the digest of a set without FP8 tensors is what it always was. */
static dit_status
w_fingerprint (dit_weights *w)
{
  uint64_t h = DIT_FNV1A64_OFFSET;
  dit_backend *be = w->backend;

  for (size_t i = 0; i < w->count; i++) {
    const dit_param_spec *s = &w->specs[i];
    const dit_tensor *t = &w->tensors[i];
    h = dit_fnv1a64 (h, s->name, strlen (s->name) + 1);
    h = dit_fnv1a64_u64 (h, (uint64_t) s->ndim);
    for (int d = 0; d < s->ndim; d++)
      h = dit_fnv1a64_u64 (h, (uint64_t) s->shape[d]);
    h = dit_fnv1a64_u64 (h, (uint64_t) w->dtype);
    DIT_TRY (w_sample (be, t, &h));
    if (t->dtype == DIT_F8E4M3) {
      h = dit_fnv1a64_u64 (h, (uint64_t) t->dtype);
      DIT_TRY (w_sample (be, &w->scales[i], &h));
    }
  }
  w->fingerprint = h;
  return DIT_OK;
}

/* The last step of every way of making a set: its fingerprint, then *out,
 * or the set freed when `status` (or the fingerprint) failed. */
static dit_status
w_finish (weights_impl *w, dit_status status, dit_weights **out)
{
  if (status == DIT_OK)
    status = w_fingerprint (&w->pub);
  if (status != DIT_OK) {
    dit_weights_free (&w->pub);
    return status;
  }
  *out = &w->pub;
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

dit_status
dit_weights_read_f32 (const dit_weights *w, const char *name, float **host)
{
  const dit_tensor *t;
  DIT_TRY (dit_weights_require (w, name, &t));
  if (!dit_tensor_is_contiguous (t))
    return dit_error (DIT_ERR_INVALID, "weight '%s' is not contiguous", name);
  const size_t n = (size_t) dit_tensor_numel (t);
  const size_t nb = n * dit_dtype_size (t->dtype);
  void *raw = malloc (nb ? nb : 1);
  float *f = malloc ((n ? n : 1) * sizeof *f);
  if (!raw || !f) {
    free (raw);
    free (f);
    return dit_error (DIT_ERR_NOMEM, "out of memory reading '%s'", name);
  }
  dit_status st = dit_download (w->backend, raw, t->data, nb);
  if (st != DIT_OK) {
    free (raw);
    free (f);
    return dit_error_prefix (st, "reading '%s'", name);
  }
  dit_convert (f, DIT_F32, raw, t->dtype, n);
  free (raw);
  *host = f;
  return DIT_OK;
}

void
dit_weights_free (dit_weights *w)
{
  weights_impl *wi = (weights_impl *) w;
  if (!w)
    return;
  for (size_t i = 0; w->tensors && i < w->count; i++) {
    if (w->tensors[i].data)
      dit_backend_free (w->backend, w->tensors[i].data);
    if (w->scales && w->scales[i].data)
      dit_backend_free (w->backend, w->scales[i].data);
  }
  free (w->scales);
  free (w->specs);
  free (w->tensors);
  free (wi->by_name);
  free (wi);
}

/* ------------------------------------------------------------------------ */
/* loading */

/* How each matched tensor reaches w (dit_weights_load_ex). */
enum {
  W_LOAD_CONVERT,       /* 16/32-bit file tensor into the compute dtype */
  W_LOAD_QUANTIZE,      /* 16/32-bit file tensor into FP8 codes + scales */
  W_LOAD_FP8,           /* F8_E4M3 file tensor kept as stored */
  W_LOAD_DEQUANTIZE,    /* F8_E4M3 file tensor into the compute dtype */
};

typedef struct w_place_ctx {
  dit_weights *w;
  const unsigned char *how;
} w_place_ctx;

/* dit_stream_load's place hook: the staged file values of a 16/32-bit
 * tensor quantized per output channel on the backend (the weight never
 * exists in the compute dtype), or converted (dit_copy) as without a hook. */
static dit_status
w_place (void *user, dit_backend *be, const dit_load_item *item,
    const dit_tensor *staged)
{
  const w_place_ctx *c = user;
  const size_t i = item->index;
  if (c->how[i] != W_LOAD_QUANTIZE) {
    dit_copy_params cp = { .x = staged, .y = item->dst };
    return dit_copy (be, &cp);
  }
  dit_tensor *codes = &c->w->tensors[i];
  const int64_t N = codes->shape[0], K = dit_tensor_numel (codes) / N;
  dit_tensor x = dit_tensor_2d (staged->data, staged->dtype, staged->device, N, K);
  dit_tensor q = dit_tensor_2d (codes->data, DIT_F8E4M3, codes->device, N, K);
  dit_tensor sc = dit_tensor_2d (c->w->scales[i].data, DIT_F32,
      codes->device, 1, N);
  dit_quantize_fp8_params qp = { &x, &q, &sc, K };
  return dit_quantize_fp8 (be, &qp);
}

/* The matched tensors whose `how` is one of the two given, streamed into w:
 * read in file order with large sequential reads, uploaded while reading,
 * dtype conversion or quantization on the backend (dit_stream_load.h).  The
 * mapped data is never touched, so nothing is paged in through faults. */
static dit_status
w_load_stream (const dit_st_tensor **match, dit_weights *w, dit_backend *be,
    const unsigned char *how, int a, int b, int place)
{
  dit_load_item *items = calloc (w->count + 1, sizeof *items);
  size_t n = 0;
  if (!items)
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  for (size_t i = 0; i < w->count; i++) {
    if (how[i] != a && how[i] != b)
      continue;
    const dit_st_tensor *t = match[i];
    dit_dtype src_dt = DIT_F8E4M3;
    if (t->dtype != DIT_ST_F8_E4M3)
      dit_st_dtype_to_dit (t->dtype, &src_dt);
    items[n].file = t->file;
    items[n].offset = t->file_offset;
    items[n].bytes = t->nbytes;
    items[n].src_dtype = src_dt;
    items[n].dst = &w->tensors[i];
    items[n].index = i;
    n++;
  }
  w_place_ctx ctx = { w, how };
  dit_status status = n ? dit_stream_load (be, items, n, place ? w_place : NULL,
      &ctx, NULL) : DIT_OK;
  free (items);
  return status;
}

/* The [N] channel scales of FP8 checkpoint tensor t kept as FP8: its scale
 * (per tensor or per channel) broadcast to every channel. */
static dit_status
w_upload_fp8_scales (dit_backend *be, const dit_safetensors *st,
    const dit_st_tensor *t, const dit_tensor *scales)
{
  const int64_t N = scales->shape[0];
  float *h = malloc ((size_t) N * sizeof (float));
  if (!h)
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  for (int64_t r = 0; r < N; r++)
    h[r] = dit_checkpoint_fp8_scale (st, t, r);
  dit_status status = dit_upload (be, scales->data, h,
      (size_t) N * sizeof (float));
  /* pageable memory: staged by the runtime before upload returns */
  free (h);
  return status;
}

/* FP8 checkpoint tensor t dequantized (code * row scale, f32) into the
 * compute dtype, on the host from the mapping (the uncommon case: an FP8
 * checkpoint run in bf16/f32, or cross-attention k/v). */
static dit_status
w_upload_dequantized (dit_backend *be, const dit_safetensors *st,
    const dit_st_tensor *t, const dit_tensor *dst)
{
  const int64_t n = dit_tensor_numel (dst);
  const int64_t K = t->ndim >= 2 ? n / t->shape[0] : n;
  const uint8_t *codes = t->data;
  size_t dsz = dit_dtype_size (dst->dtype);
  float *stage_f32 = malloc (W_STAGE_ELEMS * sizeof (float));
  void *stage_dst = malloc (W_STAGE_ELEMS * dsz);
  dit_status status = stage_f32 && stage_dst ? DIT_OK
      : dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  for (int64_t o = 0; status == DIT_OK && o < n; o += (int64_t) W_STAGE_ELEMS) {
    int64_t m = n - o < (int64_t) W_STAGE_ELEMS ? n - o : (int64_t) W_STAGE_ELEMS;
    int64_t row = -1;
    float sc = 1.0f;
    for (int64_t i = 0; i < m; i++) {
      if ((o + i) / K != row) {
        row = (o + i) / K;
        sc = dit_checkpoint_fp8_scale (st, t, row);
      }
      stage_f32[i] = dit_e4m3_to_f32 (codes[o + i]) * sc;
    }
    dit_convert (stage_dst, dst->dtype, stage_f32, DIT_F32, (size_t) m);
    status = dit_upload (be, (char *) dst->data + (size_t) o * dsz,
        stage_dst, (size_t) m * dsz);
  }
  free (stage_f32);
  free (stage_dst);
  return status;
}

dit_status
dit_weights_load (const char *path, const dit_param_spec *specs, size_t count,
    dit_key_map_fn map, dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  return dit_weights_load_ex (path, specs, count, map, dtype, NULL, be, out);
}

dit_status
dit_weights_load_ex (const char *path, const dit_param_spec *specs,
    size_t count, dit_key_map_fn map, dit_dtype dtype,
    const dit_weights_fp8 *fp8, dit_backend *be, dit_weights **out)
{
  dit_safetensors *st = NULL;
  const dit_st_tensor **match = NULL;
  unsigned char *how = NULL, *keep = NULL;
  weights_impl *w = NULL;
  dit_status status;
  dit_fp8_select_fn accept = fp8 ? fp8->accept : NULL;
  dit_fp8_select_fn select = fp8 ? fp8->select : NULL;

  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "%s: no backend to load weights into", path);
  if (select)
    DIT_TRY (dit_fp8_check (be));
  if ((status = dit_safetensors_open (path, &st)) != DIT_OK)
    return status;
  match = calloc (count + 1, sizeof *match);
  how = calloc (count + 1, 1);
  keep = calloc (count + 1, 1);
  if (!match || !how || !keep) {
    status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  if ((status = w_check (st, path, specs, count, map, accept, match)) != DIT_OK)
    goto out;
  int any_quantize = 0;
  for (size_t i = 0; i < count; i++) {
    const int f8 = match[i]->dtype == DIT_ST_F8_E4M3;
    keep[i] = select && select (&specs[i]);
    how[i] = f8 ? (keep[i] ? W_LOAD_FP8 : W_LOAD_DEQUANTIZE)
        : (keep[i] ? W_LOAD_QUANTIZE : W_LOAD_CONVERT);
    any_quantize |= how[i] == W_LOAD_QUANTIZE;
  }
  if ((status = w_alloc (specs, count, dtype, keep, be, &w)) != DIT_OK)
    goto out;
  /* FP8 codes as stored go straight to their tensors; 16/32-bit tensors
   * through the staging buffer, converted or quantized there */
  status = w_load_stream (match, &w->pub, be, how, W_LOAD_FP8, W_LOAD_FP8, 0);
  if (status == DIT_OK)
    status = w_load_stream (match, &w->pub, be, how, W_LOAD_CONVERT,
        W_LOAD_QUANTIZE, any_quantize);
  for (size_t i = 0; status == DIT_OK && i < count; i++) {
    if (how[i] == W_LOAD_FP8)
      status = w_upload_fp8_scales (be, st, match[i], &w->pub.scales[i]);
    else if (how[i] == W_LOAD_DEQUANTIZE)
      status = w_upload_dequantized (be, st, match[i], &w->pub.tensors[i]);
    if (status != DIT_OK)
      dit_error_prefix (status, "%s: key '%s'", match[i]->file, match[i]->name);
  }
  if (status != DIT_OK)
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
  free (keep);
  free (how);
  free (match);
  dit_safetensors_close (st);
  return status;
}

/* ------------------------------------------------------------------------ */
/* FP8 weights from 16/32-bit ones */

dit_status
dit_weights_to_fp8 (dit_weights *w, dit_fp8_select_fn select)
{
  weights_impl *wi = (weights_impl *) w;
  dit_backend *be = w->backend;
  DIT_TRY (dit_fp8_check (be));
  for (size_t i = 0; i < w->count; i++) {
    const dit_param_spec *s = &w->specs[i];
    dit_tensor src = w->tensors[i];
    if (src.dtype == DIT_F8E4M3 || !select (s))
      continue;
    if (src.ndim != 2 || s->shape[0] <= 0)
      return dit_error (DIT_ERR_INVALID, "weights: '%s' is not a 2-D linear "
          "weight and cannot be stored as FP8", s->name);
    DIT_TRY (w_alloc_one (wi, i, 1));
    int64_t N = src.shape[0], K = src.shape[1];
    dit_tensor sc = dit_tensor_2d (w->scales[i].data, DIT_F32, src.device, 1, N);
    dit_quantize_fp8_params p = { &src, &w->tensors[i], &sc, K };
    dit_status st = dit_quantize_fp8 (be, &p);
    /* the original goes once the quantization is ordered behind it */
    if (st == DIT_OK)
      st = dit_synchronize (be);
    if (st != DIT_OK) {
      dit_backend_free (be, src.data);
      return dit_error_prefix (st, "weights: quantizing '%s' to FP8", s->name);
    }
    dit_backend_free (be, src.data);
  }
  return w_fingerprint (w);
}

/* ------------------------------------------------------------------------ */
/* synthetic weights */

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
  } else if (dit_str_ends_with (s->name, "bias")) {
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
  return dit_fnv1a64 (DIT_FNV1A64_OFFSET, spec->name, strlen (spec->name));
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
  if (!dit_backend_has_synthetic_normal (be))
    return dit_error (DIT_ERR_UNSUPPORTED, "weights: backend '%s' cannot make "
        "synthetic values", be ? dit_backend_name (be) : "(none)");
  double scale, offset;
  w_synth_rule (spec, &scale, &offset);
  return dit_synthetic_normal (be, dst, dtype, begin, n, seed,
      w_synth_stream (spec), scale, offset);
}

/* Tensor values from fill, made on the host one stage buffer at a time and
 * uploaded; `what` goes before the tensor name in messages. */
static dit_status
w_fill_upload (const dit_param_spec *specs, size_t count, dit_dtype dtype,
    dit_backend *be, dit_weights_fill_fn fill, void *user, const char *what,
    dit_weights **out)
{
  weights_impl *w = NULL;
  size_t dsz = dit_dtype_size (dtype);
  void *stage;
  dit_status status;

  if (!(stage = malloc (W_STAGE_ELEMS * dsz)))
    return dit_error (DIT_ERR_NOMEM, "weights: out of memory");
  if ((status = w_alloc (specs, count, dtype, NULL, be, &w)) != DIT_OK) {
    free (stage);
    return status;
  }
  for (size_t i = 0; i < count && status == DIT_OK; i++) {
    int64_t n = w_spec_numel (&specs[i]);
    for (int64_t o = 0; o < n && status == DIT_OK; o += (int64_t) W_STAGE_ELEMS) {
      int64_t m = n - o < (int64_t) W_STAGE_ELEMS ? n - o : (int64_t) W_STAGE_ELEMS;
      status = fill (user, i, o, m, dtype, stage);
      if (status == DIT_OK)
        status = dit_upload (be,
            (char *) w->pub.tensors[i].data + (size_t) o * dsz, stage,
            (size_t) m * dsz);
      if (status != DIT_OK)
        dit_error_prefix (status, "weights: %s'%s'", what, specs[i].name);
    }
  }
  free (stage);
  return w_finish (w, status, out);
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

/* The map of a set that is the full tensors themselves: element e is e. */
static int64_t
w_identity_map (void *user, size_t index, int64_t e, int64_t *run)
{
  (void) user;
  (void) index;
  *run = INT64_MAX;
  return e;
}

/* dit_weights_synthetic_mapped; `host_what` names the tensors in the
 * messages of the host path (where the backend makes no synthetic values). */
static dit_status
w_synthetic (const dit_param_spec *specs, const dit_param_spec *full,
    size_t count, dit_weights_map_fn map, void *user, uint64_t seed,
    dit_dtype dtype, dit_backend *be, const char *host_what,
    dit_weights **out)
{
  w_mapped_ctx ctx = { full, map, user, seed };
  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "weights: no backend for synthetic weights");
  if (!dit_backend_has_synthetic_normal (be))
    return w_fill_upload (specs, count, dtype, be, w_mapped_fill, &ctx,
        host_what, out);

  /* Same values made in backend memory (the 14B set in seconds). */
  weights_impl *w = NULL;
  size_t dsz = dit_dtype_size (dtype);
  DIT_TRY (w_alloc (specs, count, dtype, NULL, be, &w));
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
      status = dit_synthetic_normal (be, (char *) w->pub.tensors[i].data
          + (size_t) e * dsz, dtype, f, run, seed, stream, scale, offset);
      e += run;
    }
    if (status != DIT_OK)
      dit_error_prefix (status, "weights: synthetic '%s'", specs[i].name);
  }
  return w_finish (w, status, out);
}

dit_status
dit_weights_synthetic (const dit_param_spec *specs, size_t count, uint64_t seed,
    dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  return w_synthetic (specs, specs, count, w_identity_map, NULL, seed, dtype,
      be, "synthetic ", out);
}

dit_status
dit_weights_synthetic_mapped (const dit_param_spec *specs,
    const dit_param_spec *full, size_t count, dit_weights_map_fn map,
    void *user, uint64_t seed, dit_dtype dtype, dit_backend *be,
    dit_weights **out)
{
  return w_synthetic (specs, full, count, map, user, seed, dtype, be, "", out);
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
  if (t->dtype == DIT_F8E4M3) {
    /* codes row by row, each times its channel's scale */
    int64_t N = t->shape[0], K = (int64_t) n / N;
    float *sc = malloc ((size_t) N * sizeof (float));
    uint8_t *row = malloc ((size_t) K);
    float *v = malloc ((size_t) K * sizeof (float));
    dit_status st = sc && row && v ? DIT_OK
        : dit_error (DIT_ERR_NOMEM, "weights: out of memory saving '%s'",
            w->specs[index].name);
    if (st == DIT_OK)
      st = dit_download (be, sc, w->scales[index].data,
          (size_t) N * sizeof (float));
    for (int64_t r = 0; st == DIT_OK && r < N; r++) {
      st = dit_download (be, row, (const uint8_t *) t->data + r * K,
          (size_t) K);
      for (int64_t k = 0; k < K; k++)
        v[k] = dit_e4m3_to_f32 (row[k]) * sc[r];
      dit_convert ((char *) dst + (size_t) (r * K) * dsz, c->dtype, v, DIT_F32,
          (size_t) K);
    }
    free (sc);
    free (row);
    free (v);
    return st;
  }
  if (w->dtype == c->dtype)
    return dit_download (be, dst, t->data, n * dsz);
  for (size_t o = 0; o < n; o += W_STAGE_ELEMS) {
    size_t m = n - o < W_STAGE_ELEMS ? n - o : W_STAGE_ELEMS;
    DIT_TRY (dit_download (be, c->stage, (const char *) t->data + o * ssz, m * ssz));
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
  *out = NULL;
  if (!be || !fill)
    return dit_error (DIT_ERR_INVALID, "weights: no backend or fill function");
  return w_fill_upload (specs, count, dtype, be, fill, user, "", out);
}
