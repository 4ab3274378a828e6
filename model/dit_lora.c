/* dit_lora — LoRA files, validation and application (see dit_lora.h).
 *
 * Reading: every key of the file is classified (kohya "lora_unet_*" or a
 * module path, with its suffix: lora_down/lora_A, lora_up/lora_B, alpha,
 * diff, diff_b), its module mapped to the model's canonical name, and the
 * pieces of a module gathered into targets.  The file stays mapped; values
 * are converted from it when they are uploaded, so a LoRA costs no host
 * copy.
 *
 * Device state: every tensor an applied set touches is a "layer" with the
 * set's low-rank factors stacked along the rank (A [R, in], B [out, R],
 * each LoRA's block padded to a multiple of 8 so rows stay 16-byte aligned
 * for cuBLASLt and the padding contributes exact zeros) and Bs = B ·
 * diag(c), c the per-column coefficient of the LoRA owning that column
 * (strength · alpha / rank).  Bs is made on the device by one residual
 * pass (0 + c ⊙ B) from the coefficients, all uploaded at once.
 *   live:  the weight's storage becomes W_cat = [W | Bs] (l_fold), Bs
 *          copied into its last R columns after every rescale; the model
 *          runs [x | x Aᵀ] W_catᵀ, or u = x Aᵀ, y += u Bsᵀ where a layer
 *          cannot fold (dit_model.c);
 *   merge: W = base + Bs · A as one GEMM per layer (accumulating into W
 *          after the base is copied back, or into the merged W with the
 *          coefficient differences when no base is kept), the deltas by a
 *          residual pass with a gate of the strength; FP8 weights go
 *          through an f32 scratch: dequantize, merge, quantize again.
 */
#include "dit_lora.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* small helpers */

/* printf into a fixed buffer, truncating (names here are checked against
 * the model's own, which fit). */
static void __attribute__ ((format (printf, 3, 4)))
l_fmt (char *dst, size_t size, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (dst, size, fmt, ap);
  va_end (ap);
}

const char *
dit_lora_format_name (dit_lora_format f)
{
  switch (f) {
    case DIT_LORA_FORMAT_KOHYA: return "kohya";
    case DIT_LORA_FORMAT_PEFT: return "peft";
    case DIT_LORA_FORMAT_DIFFUSERS: return "diffusers";
    default: return "synthetic";
  }
}

dit_status
dit_lora_mode_parse (const char *s, dit_lora_mode *out)
{
  if (s && strcmp (s, "merge") == 0)
    *out = DIT_LORA_MERGE;
  else if (s && strcmp (s, "live") == 0)
    *out = DIT_LORA_LIVE;
  else
    return dit_error (DIT_ERR_INVALID, "lora mode '%s' is not merge or live",
        s ? s : "(null)");
  return DIT_OK;
}

const char *
dit_lora_mode_name (dit_lora_mode m)
{
  return m == DIT_LORA_LIVE ? "live" : "merge";
}

/* ------------------------------------------------------------------------ */
/* keys */

enum { K_DOWN, K_UP, K_ALPHA, K_DIFF, K_DIFF_B };
enum { SP_NONE, SP_AB, SP_DOWNUP };
enum { NAMING_KOHYA, NAMING_PLAIN, NAMING_DIFFUSERS };

static const struct {
  const char *suffix;
  int kind, spelling;
} l_suffixes[] = {
  { ".lora_down.weight", K_DOWN, SP_DOWNUP },
  { ".lora_up.weight", K_UP, SP_DOWNUP },
  { ".lora_A.weight", K_DOWN, SP_AB },
  { ".lora_B.weight", K_UP, SP_AB },
  { ".alpha", K_ALPHA, SP_NONE },
  { ".diff_b", K_DIFF_B, SP_NONE },
  { ".diff", K_DIFF, SP_NONE },
};

/* Modules inside "blocks.N." and at the top level: the names a kohya key
 * spells with '_' (spec §3.2). */
static const char *const l_block_modules[] = {
  "self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
  "self_attn.norm_q", "self_attn.norm_k", "cross_attn.q", "cross_attn.k",
  "cross_attn.v", "cross_attn.o", "cross_attn.norm_q", "cross_attn.norm_k",
  "norm3", "ffn.0", "ffn.2", "modulation",
};
static const char *const l_top_modules[] = {
  "patch_embedding", "text_embedding.0", "text_embedding.2",
  "time_embedding.0", "time_embedding.2", "time_projection.1", "head.head",
  "head.modulation",
};

static int
l_kohya_match (const char *kohya, size_t n, const char *module)
{
  if (strlen (module) != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = module[i] == '.' ? '_' : module[i];
    if (kohya[i] != c)
      return 0;
  }
  return 1;
}

/* "blocks_3_self_attn_q" -> "blocks.3.self_attn.q" */
static int
l_kohya_decode (const char *k, size_t n, char *out, size_t size)
{
  if (n > 7 && strncmp (k, "blocks_", 7) == 0) {
    size_t d = 0;
    while (7 + d < n && isdigit ((unsigned char) k[7 + d]))
      d++;
    if (d == 0 || 7 + d >= n || k[7 + d] != '_')
      return 0;
    const char *rest = k + 8 + d;
    size_t rn = n - 8 - d;
    for (size_t i = 0; i < sizeof l_block_modules / sizeof l_block_modules[0]; i++)
      if (l_kohya_match (rest, rn, l_block_modules[i])) {
        snprintf (out, size, "blocks.%.*s.%s", (int) d, k + 7, l_block_modules[i]);
        return 1;
      }
    return 0;
  }
  for (size_t i = 0; i < sizeof l_top_modules / sizeof l_top_modules[0]; i++)
    if (l_kohya_match (k, n, l_top_modules[i])) {
      snprintf (out, size, "%s", l_top_modules[i]);
      return 1;
    }
  return 0;
}

typedef struct l_key {
  char module[96];
  int kind, spelling, naming;
} l_key;

/* A module name of the DiT: "blocks.N.<block module>" or a top one. */
static int
l_known_module (const char *m)
{
  if (dit_str_starts_with (m, "blocks.")) {
    const char *p = m + 7;
    size_t d = strspn (p, "0123456789");
    if (!d || p[d] != '.')
      return 0;
    for (size_t i = 0; i < sizeof l_block_modules / sizeof l_block_modules[0]; i++)
      if (strcmp (p + d + 1, l_block_modules[i]) == 0)
        return 1;
    return 0;
  }
  for (size_t i = 0; i < sizeof l_top_modules / sizeof l_top_modules[0]; i++)
    if (strcmp (m, l_top_modules[i]) == 0)
      return 1;
  return 0;
}

/* Classify one file key; 0 when it is not a LoRA key of the DiT. */
static int
l_parse_key (const char *key, l_key *k)
{
  size_t n = strlen (key);
  int found = -1;
  for (size_t i = 0; i < sizeof l_suffixes / sizeof l_suffixes[0]; i++)
    if (dit_str_ends_with (key, l_suffixes[i].suffix)) {
      found = (int) i;
      break;
    }
  if (found < 0)
    return 0;
  k->kind = l_suffixes[found].kind;
  k->spelling = l_suffixes[found].spelling;
  size_t mn = n - strlen (l_suffixes[found].suffix);
  char raw[256];
  if (mn == 0 || mn >= sizeof raw)
    return 0;
  memcpy (raw, key, mn);
  raw[mn] = '\0';
  const char *m = raw;
  if (dit_str_starts_with (m, "lora_unet_")) {
    k->naming = NAMING_KOHYA;
    return l_kohya_decode (m + 10, strlen (m + 10), k->module, sizeof k->module);
  }
  /* the prefixes trainers put in front of the model's own names */
  static const char *const prefixes[] = { "base_model.model.", "transformer.",
    "diffusion_model.", "model." };
  for (int again = 1; again;) {
    again = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
      if (dit_str_starts_with (m, prefixes[i])) {
        m += strlen (prefixes[i]);
        again = 1;
      }
  }
  char w[300], mapped[300];
  snprintf (w, sizeof w, "%s.weight", m);
  if (dit_model_key_map (w, mapped, sizeof mapped)
      && dit_str_ends_with (mapped, ".weight")) {
    k->naming = NAMING_DIFFUSERS;
    snprintf (k->module, sizeof k->module, "%.*s",
        (int) (strlen (mapped) - strlen (".weight")), mapped);
  } else {
    k->naming = NAMING_PLAIN;
    l_fmt (k->module, sizeof k->module, "%s", m);
  }
  return l_known_module (k->module);
}

/* ------------------------------------------------------------------------ */
/* reading */

typedef struct l_entry {
  char module[96];
  const dit_st_tensor *t[5];   /* by K_* */
} l_entry;

static int
l_float_dtype (dit_st_dtype dt)
{
  return dt == DIT_ST_F32 || dt == DIT_ST_BF16 || dt == DIT_ST_F16
      || dt == DIT_ST_F64;
}

static double
l_st_value (const dit_st_tensor *t, int64_t i)
{
  const char *p = t->data;
  switch (t->dtype) {
    case DIT_ST_F64: {
      double d;
      memcpy (&d, p + (size_t) i * 8, 8);
      return d;
    }
    case DIT_ST_F32: {
      float f;
      memcpy (&f, p + (size_t) i * 4, 4);
      return f;
    }
    case DIT_ST_BF16: {
      uint16_t h;
      memcpy (&h, p + (size_t) i * 2, 2);
      return dit_bf16_to_f32 (h);
    }
    default: {
      uint16_t h;
      memcpy (&h, p + (size_t) i * 2, 2);
      return dit_f16_to_f32 (h);
    }
  }
}

static int64_t
l_numel (const dit_st_tensor *t)
{
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

static uint64_t
l_sample (uint64_t h, const dit_st_tensor *t)
{
  const size_t part = 4096;
  h = dit_fnv1a64 (h, t->name, strlen (t->name) + 1);
  h = dit_fnv1a64_u64 (h, (uint64_t) t->dtype);
  h = dit_fnv1a64_u64 (h, (uint64_t) t->ndim);
  for (int d = 0; d < t->ndim; d++)
    h = dit_fnv1a64_u64 (h, (uint64_t) t->shape[d]);
  if (t->nbytes <= 2 * part)
    return dit_fnv1a64 (h, t->data, t->nbytes);
  h = dit_fnv1a64 (h, t->data, part);
  return dit_fnv1a64 (h, (const char *) t->data + t->nbytes - part, part);
}

static dit_status
l_gather (dit_lora *l, l_entry **entries_out, size_t *count_out)
{
  const char *path = l->path;
  size_t n = dit_safetensors_count (l->st);
  l_entry *e = calloc (n + 1, sizeof *e);
  if (!e)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  size_t ne = 0;
  const char *first_key[3] = { NULL, NULL, NULL };   /* by naming */
  const char *spell_key[3] = { NULL, NULL, NULL };   /* by spelling */
  dit_status st = DIT_OK;
  for (size_t i = 0; i < n && st == DIT_OK; i++) {
    const dit_st_tensor *t = dit_safetensors_at (l->st, i);
    l_key k;
    if (!l_parse_key (t->name, &k)) {
      st = dit_error (DIT_ERR_INVALID, "%s: key '%s' is not a LoRA tensor of "
          "the DiT (expected <module>.lora_A.weight / .lora_B.weight / "
          ".lora_down.weight / .lora_up.weight / .alpha / .diff / .diff_b with "
          "a Wan, Diffusers or kohya lora_unet_ module name)", path, t->name);
      break;
    }
    if (!first_key[k.naming])
      first_key[k.naming] = t->name;
    if (k.spelling != SP_NONE && !spell_key[k.spelling])
      spell_key[k.spelling] = t->name;
    if (first_key[NAMING_KOHYA] && (first_key[NAMING_PLAIN]
          || first_key[NAMING_DIFFUSERS])) {
      st = dit_error (DIT_ERR_INVALID, "%s: keys '%s' and '%s' use different "
          "layouts (kohya and module names); a LoRA file uses one", path,
          first_key[NAMING_KOHYA], first_key[NAMING_PLAIN]
          ? first_key[NAMING_PLAIN] : first_key[NAMING_DIFFUSERS]);
      break;
    }
    if (spell_key[SP_AB] && spell_key[SP_DOWNUP]) {
      st = dit_error (DIT_ERR_INVALID, "%s: keys '%s' and '%s' spell the "
          "factors differently (lora_A/lora_B and lora_down/lora_up)", path,
          spell_key[SP_AB], spell_key[SP_DOWNUP]);
      break;
    }
    if (!l_float_dtype (t->dtype)) {
      st = dit_error (DIT_ERR_INVALID, "%s: key '%s' holds non-float data (%s); "
          "LoRA tensors must be F32, BF16, F16 or F64", path, t->name,
          dit_st_dtype_name (t->dtype));
      break;
    }
    size_t j = 0;
    while (j < ne && strcmp (e[j].module, k.module) != 0)
      j++;
    if (j == ne) {
      snprintf (e[ne].module, sizeof e[ne].module, "%s", k.module);
      ne++;
    }
    if (e[j].t[k.kind]) {
      st = dit_error (DIT_ERR_INVALID, "%s: keys '%s' and '%s' are the same "
          "tensor of layer '%s'", path, e[j].t[k.kind]->name, t->name,
          k.module);
      break;
    }
    e[j].t[k.kind] = t;
  }
  if (st != DIT_OK) {
    free (e);
    return st;
  }
  l->format = first_key[NAMING_KOHYA] ? DIT_LORA_FORMAT_KOHYA
      : first_key[NAMING_DIFFUSERS] ? DIT_LORA_FORMAT_DIFFUSERS
      : DIT_LORA_FORMAT_PEFT;
  l->spelling = spell_key[SP_AB] ? "lora_A/lora_B"
      : spell_key[SP_DOWNUP] ? "lora_down/lora_up" : "-";
  *entries_out = e;
  *count_out = ne;
  return DIT_OK;
}

static dit_status
l_add_target (dit_lora *l, const dit_lora_target *t)
{
  dit_lora_target *n = realloc (l->targets, (l->count + 1) * sizeof *n);
  if (!n)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  l->targets = n;
  l->targets[l->count++] = *t;
  return DIT_OK;
}

/* Targets of one module: a factor pair (with its alpha) and deltas. */
static dit_status
l_entry_targets (dit_lora *l, const l_entry *e)
{
  const char *path = l->path;
  const dit_st_tensor *down = e->t[K_DOWN], *up = e->t[K_UP];
  const dit_st_tensor *alpha = e->t[K_ALPHA];
  char sa[96], sb[96];
  if ((down != NULL) != (up != NULL)) {
    const dit_st_tensor *have = down ? down : up;
    return dit_error (DIT_ERR_INVALID, "%s: key '%s': layer '%s' has a %s "
        "factor but no %s", path, have->name, e->module, down ? "down" : "up",
        down ? "up (lora_up / lora_B)" : "down (lora_down / lora_A)");
  }
  if (alpha && !down)
    return dit_error (DIT_ERR_INVALID, "%s: key '%s': an alpha without "
        "lora_down / lora_up factors for layer '%s'", path, alpha->name,
        e->module);
  if (down) {
    dit_lora_target t;
    memset (&t, 0, sizeof t);
    snprintf (t.layer, sizeof t.layer, "%s", e->module);
    snprintf (t.param, sizeof t.param, "%s.weight", e->module);
    snprintf (t.key, sizeof t.key, "%s", down->name);
    t.kind = DIT_LORA_LOW_RANK;
    if (down->ndim != 2 || up->ndim != 2)
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': the factors of layer "
          "'%s' must be 2-D (down %s, up %s)", path, down->ndim != 2
          ? down->name : up->name, e->module,
          dit_shape_str (sa, sizeof sa, down->ndim, down->shape),
          dit_shape_str (sb, sizeof sb, up->ndim, up->shape));
    if (down->shape[0] != up->shape[1])
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': rank mismatch in "
          "layer '%s': down %s has rank %lld but up '%s' %s has rank %lld",
          path, down->name, e->module,
          dit_shape_str (sa, sizeof sa, 2, down->shape),
          (long long) down->shape[0],
          up->name, dit_shape_str (sb, sizeof sb, 2, up->shape),
          (long long) up->shape[1]);
    if (down->shape[0] < 1)
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': rank 0", path,
          down->name);
    t.rank = down->shape[0];
    t.in = down->shape[1];
    t.out = up->shape[0];
    t.down = down;
    t.up = up;
    t.alpha = (float) t.rank;
    if (alpha) {
      double a = l_numel (alpha) == 1 ? l_st_value (alpha, 0) : NAN;
      if (l_numel (alpha) != 1 || !isfinite (a))
        return dit_error (DIT_ERR_INVALID, "%s: key '%s': alpha must be one "
            "finite number (shape %s%s)", path, alpha->name,
            dit_shape_str (sa, sizeof sa, alpha->ndim, alpha->shape),
            l_numel (alpha) == 1 ? ", not finite" : "");
      t.alpha = (float) a;
      t.has_alpha = 1;
    }
    DIT_TRY (l_add_target (l, &t));
  }
  for (int k = K_DIFF; k <= K_DIFF_B; k++) {
    if (!e->t[k])
      continue;
    dit_lora_target t;
    memset (&t, 0, sizeof t);
    snprintf (t.layer, sizeof t.layer, "%s", e->module);
    snprintf (t.param, sizeof t.param, "%s.%s", e->module,
        k == K_DIFF ? "weight" : "bias");
    snprintf (t.key, sizeof t.key, "%s", e->t[k]->name);
    t.kind = k == K_DIFF ? DIT_LORA_DIFF : DIT_LORA_DIFF_B;
    t.diff = e->t[k];
    DIT_TRY (l_add_target (l, &t));
  }
  return DIT_OK;
}

static const dit_param_spec *
l_find_spec (const dit_param_spec *specs, size_t count, const char *name)
{
  for (size_t i = 0; i < count; i++)
    if (strcmp (specs[i].name, name) == 0)
      return &specs[i];
  return NULL;
}

dit_status
dit_lora_check (const dit_lora *l, const dit_param_spec *specs, size_t count,
    const char *model_name)
{
  char sa[96], sb[96];
  for (size_t i = 0; i < l->count; i++) {
    dit_lora_target *t = &l->targets[i];
    const dit_param_spec *s = l_find_spec (specs, count, t->param);
    if (!s && t->kind == DIT_LORA_DIFF) {
      /* a parameter without ".weight" (a block's modulation) */
      s = l_find_spec (specs, count, t->layer);
      if (s)
        snprintf (t->param, sizeof t->param, "%s", t->layer);
    }
    if (!s)
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': target layer '%s' does "
          "not exist in model %s (no tensor '%s')", l->path, t->key, t->layer,
          model_name, t->param);
    if (t->kind == DIT_LORA_LOW_RANK) {
      if (s->ndim != 2)
        return dit_error (DIT_ERR_INVALID, "%s: key '%s': '%s' %s is not a "
            "linear weight; a LoRA factor pair applies to linear layers only",
            l->path, t->key, s->name,
            dit_shape_str (sa, sizeof sa, s->ndim, s->shape));
      if (t->in != s->shape[1] || t->out != s->shape[0])
        return dit_error (DIT_ERR_INVALID, "%s: key '%s': shape does not fit "
            "layer '%s' of model %s: down [%lld, %lld] and up [%lld, %lld] "
            "make [%lld, %lld], the weight is %s", l->path, t->key, t->layer,
            model_name, (long long) t->rank, (long long) t->in,
            (long long) t->out, (long long) t->rank, (long long) t->out,
            (long long) t->in, dit_shape_str (sb, sizeof sb, 2, s->shape));
      continue;
    }
    int same = t->diff->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++)
      same = t->diff->shape[d] == s->shape[d];
    if (!same)
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': shape does not fit: "
          "the delta is %s, '%s' of model %s is %s", l->path, t->key,
          dit_shape_str (sa, sizeof sa, t->diff->ndim, t->diff->shape), s->name,
          model_name, dit_shape_str (sb, sizeof sb, s->ndim, s->shape));
  }
  return DIT_OK;
}

dit_status
dit_lora_open (const char *path, const dit_param_spec *specs, size_t count,
    const char *model_name, dit_lora **out)
{
  *out = NULL;
  dit_lora *l = calloc (1, sizeof *l);
  if (!l || !(l->path = strdup (path))) {
    free (l);
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  }
  dit_status st = dit_safetensors_open (path, &l->st);
  l_entry *e = NULL;
  size_t ne = 0;
  if (st == DIT_OK)
    st = l_gather (l, &e, &ne);
  if (st == DIT_OK && ne == 0)
    st = dit_error (DIT_ERR_INVALID, "%s: no LoRA tensors in the file", path);
  for (size_t i = 0; st == DIT_OK && i < ne; i++)
    st = l_entry_targets (l, &e[i]);
  free (e);
  if (st == DIT_OK && specs)
    st = dit_lora_check (l, specs, count, model_name ? model_name : "?");
  if (st != DIT_OK) {
    dit_lora_free (l);
    return st;
  }
  uint64_t h = dit_fnv1a64_u64 (DIT_FNV1A64_OFFSET, (uint64_t) l->format);
  for (size_t i = 0; i < dit_safetensors_count (l->st); i++)
    h = l_sample (h, dit_safetensors_at (l->st, i));
  l->fingerprint = h;
  *out = l;
  return DIT_OK;
}

const char *
dit_lora_preset_of (const dit_lora *l)
{
  int64_t dim = 0, ffn = 0;
  for (size_t i = 0; i < l->count; i++) {
    const dit_lora_target *t = &l->targets[i];
    if (t->kind != DIT_LORA_LOW_RANK
        || !dit_str_starts_with (t->layer, "blocks."))
      continue;
    if (dit_str_ends_with (t->layer, ".ffn.0")) {
      dim = t->in;
      ffn = t->out;
    } else if (dit_str_ends_with (t->layer, ".ffn.2")) {
      dim = t->out;
      ffn = t->in;
    } else if (strstr (t->layer, "_attn.")) {
      dim = t->in;
    }
  }
  if (!dim)
    return NULL;
  for (const char *const *p = dit_model_config_preset_names (); *p; p++) {
    dit_model_config c;
    if (dit_model_config_preset (*p, &c) == DIT_OK && c.dim == dim
        && (!ffn || c.ffn_dim == ffn))
      return *p;
  }
  return NULL;
}

dit_status
dit_lora_synthetic (const dit_param_spec *specs, size_t count, int rank,
    uint64_t seed, dit_lora **out)
{
  *out = NULL;
  if (rank < 1 || rank > 4096)
    return dit_error (DIT_ERR_INVALID, "synthetic lora: rank %d must be in "
        "1..4096", rank);
  dit_lora *l = calloc (1, sizeof *l);
  char name[64];
  snprintf (name, sizeof name, "synthetic-rank-%d", rank);
  if (!l || !(l->path = strdup (name))) {
    free (l);
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  }
  l->format = DIT_LORA_FORMAT_SYNTHETIC;
  l->spelling = "-";
  l->seed = seed;
  for (size_t i = 0; i < count; i++) {
    const dit_param_spec *s = &specs[i];
    if (s->ndim != 2 || !dit_str_ends_with (s->name, ".weight"))
      continue;
    dit_lora_target t;
    memset (&t, 0, sizeof t);
    snprintf (t.layer, sizeof t.layer, "%.*s",
        (int) (strlen (s->name) - strlen (".weight")), s->name);
    snprintf (t.param, sizeof t.param, "%s", s->name);
    snprintf (t.key, sizeof t.key, "%s.lora_down.weight", t.layer);
    t.kind = DIT_LORA_LOW_RANK;
    t.rank = rank;
    t.out = s->shape[0];
    t.in = s->shape[1];
    t.alpha = 1.0f;
    t.has_alpha = 1;
    dit_status st = l_add_target (l, &t);
    if (st != DIT_OK) {
      dit_lora_free (l);
      return st;
    }
  }
  uint64_t h = dit_fnv1a64_u64 (DIT_FNV1A64_OFFSET, (uint64_t) l->format);
  h = dit_fnv1a64_u64 (h, seed);
  h = dit_fnv1a64_u64 (h, (uint64_t) rank);
  for (size_t i = 0; i < l->count; i++)
    h = dit_fnv1a64 (h, l->targets[i].param, strlen (l->targets[i].param) + 1);
  l->fingerprint = h;
  *out = l;
  return DIT_OK;
}

void
dit_lora_free (dit_lora *l)
{
  if (!l)
    return;
  if (l->st)
    dit_safetensors_close (l->st);
  free (l->targets);
  free (l->path);
  free (l);
}

/* The synthetic spec of a target's factor (its values' name and shape). */
static dit_param_spec
l_synth_spec (const dit_lora_target *t, int which)
{
  dit_param_spec s;
  memset (&s, 0, sizeof s);
  l_fmt (s.name, sizeof s.name, "%s.%s", t->layer,
      which == 0 ? "lora_down.weight" : "lora_up.weight");
  s.ndim = 2;
  s.shape[0] = which == 0 ? t->rank : t->out;
  s.shape[1] = which == 0 ? t->in : t->rank;
  return s;
}

dit_status
dit_lora_values (const dit_lora *l, const dit_lora_target *t, int which,
    int64_t begin, int64_t n, float *dst)
{
  if (!l->st) {
    dit_param_spec s = l_synth_spec (t, which);
    dit_weights_synthetic_fill (&s, l->seed, begin, n, DIT_F32, dst);
    return DIT_OK;
  }
  const dit_st_tensor *src = which == 0 ? t->down : which == 1 ? t->up : t->diff;
  for (int64_t i = 0; i < n; i++) {
    double v = l_st_value (src, begin + i);
    if (!isfinite (v))
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': element %lld is %g; "
          "LoRA values must be finite", l->path, src->name,
          (long long) (begin + i), v);
    dst[i] = (float) v;
  }
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* the user's list */

dit_status
dit_lora_spec_parse (const char *s, dit_lora_spec *out)
{
  memset (out, 0, sizeof *out);
  if (!s)
    return DIT_OK;
  const char *p = s;
  while (*p == ' ')
    p++;
  if (!*p)
    return DIT_OK;
  for (;;) {
    const char *end = strchr (p, '|');
    size_t n = end ? (size_t) (end - p) : strlen (p);
    while (n && p[n - 1] == ' ')
      n--;
    while (n && *p == ' ') {
      p++;
      n--;
    }
    if (out->count == DIT_LORA_MAX)
      return dit_error (DIT_ERR_INVALID, "lora '%s': more than %d LoRAs", s,
          DIT_LORA_MAX);
    dit_lora_spec_item *it = &out->items[out->count];
    char item[1100];
    if (n >= sizeof item || n >= sizeof it->path)
      return dit_error (DIT_ERR_INVALID, "lora: item '%.40s...' is too long", p);
    memcpy (item, p, n);
    item[n] = '\0';
    it->strength = 1.0f;
    char *colon = strrchr (item, ':');
    /* "@synthetic:R" has a colon of its own */
    if (colon && dit_str_starts_with (item, DIT_LORA_SYNTHETIC_PREFIX)
        && colon == item + strlen (DIT_LORA_SYNTHETIC_PREFIX) - 1)
      colon = NULL;
    if (colon) {
      char *e;
      errno = 0;
      double v = strtod (colon + 1, &e);
      if (colon[1] && !*e && !errno) {
        if (!isfinite (v))
          return dit_error (DIT_ERR_INVALID, "lora item '%s': strength %s is "
              "not a finite number", item, colon + 1);
        it->strength = (float) v;
        *colon = '\0';
      } else if (!strchr (colon + 1, '/') && !strchr (colon + 1, '.')) {
        /* "file:abc": meant as a strength, not part of the path */
        return dit_error (DIT_ERR_INVALID, "lora item '%s': strength '%s' is "
            "not a number", item, colon + 1);
      }
    }
    if (!item[0])
      return dit_error (DIT_ERR_INVALID, "lora '%s': item %d has no file", s,
          out->count + 1);
    l_fmt (it->path, sizeof it->path, "%s", item);
    out->count++;
    if (!end)
      break;
    p = end + 1;
  }
  return DIT_OK;
}

void
dit_lora_spec_format (const dit_lora_spec *spec, char *buf, size_t size)
{
  size_t o = 0;
  if (size)
    buf[0] = '\0';
  for (int i = 0; i < spec->count && o < size; i++) {
    /* short where that reads back as the same float (a mesh sends this
     * text and every rank must parse the strengths bit for bit) */
    char num[32];
    const float v = spec->items[i].strength;
    snprintf (num, sizeof num, "%g", (double) v);
    if ((float) strtod (num, NULL) != v)
      snprintf (num, sizeof num, "%.9g", (double) v);
    o += (size_t) snprintf (buf + o, size - o, "%s%s:%s", i ? "|" : "",
        spec->items[i].path, num);
  }
}

/* ------------------------------------------------------------------------ */
/* device state */

#define L_PAD 8

typedef struct l_layer {
  size_t index;                 /* tensor of w */
  char layer[96];
  int64_t rows, cols;           /* the local tensor as 2-D (1-D: [1, n]) */
  /* low-rank stack (R = 0: none) */
  int64_t R;
  int64_t col[DIT_LORA_MAX], r[DIT_LORA_MAX];
  float factor[DIT_LORA_MAX];   /* alpha / rank */
  const dit_lora_target *low[DIT_LORA_MAX];
  dit_tensor a, b, bs;          /* [R, cols], [rows, R], [rows, R] */
  int64_t scale_off;            /* into s->scales */
  dit_lora_side side;
  /* full-tensor deltas per use */
  const dit_lora_target *diff[DIT_LORA_MAX];
  /* merge */
  dit_tensor base, base_scale;  /* keep_base copies (base_scale: FP8) */
  float merged[DIT_LORA_MAX];   /* strengths in w now (no base kept) */
} l_layer;

struct dit_lora_state {
  dit_weights *w;
  dit_backend *be;
  dit_lora_mode mode;
  int keep_base;
  dit_lora_shard *shards;       /* NULL: unsharded */
  dit_lora_use uses[DIT_LORA_MAX];
  int n;
  l_layer *layers;
  size_t nlayers;
  dit_tensor scales;            /* f32, every layer's R coefficients */
  float *host_scales;
  int64_t scale_count;
  int64_t max_rank;
  uint64_t generation, digest;
  /* merge scratch */
  dit_tensor tmp_t;             /* [cols, R] compute dtype: Aᵀ */
  dit_tensor tmp_f;             /* [rows, cols] f32: FP8 weights, deltas */
  dit_tensor tmp_g;             /* [cols] f32: a delta's gate */
  dit_tensor tmp_d;             /* [rows, cols] f32: a delta */
};

static dit_status
l_ensure (dit_backend *be, dit_tensor *t, dit_dtype dt, int64_t numel)
{
  if (t->data && dit_tensor_numel (t) >= numel && t->dtype == dt)
    return DIT_OK;
  dit_tensor_free (be, t);
  int64_t n = numel > 0 ? numel : 1;
  return dit_tensor_alloc (be, t, dt, 1, &n);
}

dit_status
dit_lora_state_create (dit_weights *w, dit_lora_mode mode, int keep_base,
    const dit_lora_shard *shards, dit_lora_state **out)
{
  *out = NULL;
  dit_lora_state *s = calloc (1, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  s->w = w;
  s->be = w->backend;
  s->mode = mode;
  s->keep_base = mode == DIT_LORA_MERGE && keep_base;
  if (shards) {
    s->shards = malloc ((w->count + 1) * sizeof *s->shards);
    if (!s->shards) {
      free (s);
      return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
    }
    memcpy (s->shards, shards, w->count * sizeof *s->shards);
  }
  *out = s;
  return DIT_OK;
}

static void
l_layers_free (dit_lora_state *s, l_layer *layers, size_t n, int keep_bases)
{
  for (size_t i = 0; i < n; i++) {
    l_layer *L = &layers[i];
    dit_tensor_free (s->be, &L->a);
    dit_tensor_free (s->be, &L->b);
    dit_tensor_free (s->be, &L->bs);
    if (!keep_bases) {
      dit_tensor_free (s->be, &L->base);
      dit_tensor_free (s->be, &L->base_scale);
    }
  }
  free (layers);
}

static dit_status l_refold_all (dit_lora_state *s);

void
dit_lora_state_free (dit_lora_state *s)
{
  if (!s)
    return;
  if (s->mode == DIT_LORA_LIVE) {
    /* the folded weights back to their contiguous storage (best effort:
     * a weight left folded is still a valid view of its values) */
    l_layers_free (s, s->layers, s->nlayers, 0);
    s->layers = NULL;
    s->nlayers = 0;
    (void) l_refold_all (s);
  }
  l_layers_free (s, s->layers, s->nlayers, 0);
  dit_tensor_free (s->be, &s->scales);
  dit_tensor_free (s->be, &s->tmp_t);
  dit_tensor_free (s->be, &s->tmp_f);
  dit_tensor_free (s->be, &s->tmp_g);
  dit_tensor_free (s->be, &s->tmp_d);
  free (s->host_scales);
  free (s->shards);
  free (s);
}

dit_lora_mode
dit_lora_state_mode (const dit_lora_state *s)
{
  return s->mode;
}

uint64_t
dit_lora_state_generation (const dit_lora_state *s)
{
  return s ? s->generation : 0;
}

int64_t
dit_lora_state_max_rank (const dit_lora_state *s)
{
  return s && s->mode == DIT_LORA_LIVE ? s->max_rank : 0;
}

const dit_lora_side *
dit_lora_state_side (const dit_lora_state *s, const char *layer)
{
  if (!s || s->mode != DIT_LORA_LIVE)
    return NULL;
  for (size_t i = 0; i < s->nlayers; i++)
    if (s->layers[i].R > 0 && strcmp (s->layers[i].layer, layer) == 0)
      return &s->layers[i].side;
  return NULL;
}

uint64_t
dit_lora_set_digest (dit_lora_mode mode, const dit_lora_use *uses, int n)
{
  if (n == 0)
    return 0;
  uint64_t h = dit_fnv1a64_u64 (DIT_FNV1A64_OFFSET, (uint64_t) mode);
  for (int i = 0; i < n; i++) {
    uint32_t bits;
    memcpy (&bits, &uses[i].strength, 4);
    h = dit_fnv1a64_u64 (h, uses[i].lora->fingerprint);
    h = dit_fnv1a64_u64 (h, bits);
  }
  return h ? h : 1;
}

uint64_t
dit_lora_state_digest (const dit_lora_state *s)
{
  return s ? s->digest : 0;
}

/* The shard of tensor i (whole when unsharded). */
static dit_lora_shard
l_shard (const dit_lora_state *s, size_t i)
{
  dit_lora_shard sh = { -1, 0, 0 };
  return s->shards ? s->shards[i] : sh;
}

static size_t
l_tensor_index (const dit_weights *w, const char *name)
{
  const dit_tensor *t = dit_weights_get (w, name);
  return t ? (size_t) (t - w->tensors) : SIZE_MAX;
}

/* The layer of tensor `index` in the list being built (appended). */
static l_layer *
l_layer_of (l_layer **layers, size_t *n, const dit_weights *w, size_t index,
    const char *layer)
{
  for (size_t i = 0; i < *n; i++)
    if ((*layers)[i].index == index)
      return &(*layers)[i];
  l_layer *nl = realloc (*layers, (*n + 1) * sizeof *nl);
  if (!nl)
    return NULL;
  *layers = nl;
  l_layer *L = &nl[(*n)++];
  memset (L, 0, sizeof *L);
  L->index = index;
  snprintf (L->layer, sizeof L->layer, "%s", layer);
  const dit_tensor *t = &w->tensors[index];
  L->rows = t->ndim >= 2 ? t->shape[0] : 1;
  L->cols = dit_tensor_numel (t) / (L->rows ? L->rows : 1);
  return L;
}

/* Host staging: f32 values of one factor into a [rows, cols] block (row
 * stride ld) of `dst`, sliced by the shard. */
static dit_status
l_fill_down (const dit_lora *lo, const dit_lora_target *t, dit_lora_shard sh,
    float *dst, int64_t ld)
{
  /* A [rank, in]: a row-parallel layer (columns split) takes its columns */
  int64_t c0 = sh.dim == 1 ? sh.begin : 0, nc = sh.dim == 1 ? sh.count : t->in;
  for (int64_t j = 0; j < t->rank; j++)
    DIT_TRY (dit_lora_values (lo, t, 0, j * t->in + c0, nc, dst + j * ld));
  return DIT_OK;
}

static dit_status
l_fill_up (const dit_lora *lo, const dit_lora_target *t, dit_lora_shard sh,
    float *dst, int64_t ld, float *row)
{
  /* B [out, rank]: a column-parallel layer (rows split) takes its rows */
  int64_t r0 = sh.dim == 0 ? sh.begin : 0, nr = sh.dim == 0 ? sh.count : t->out;
  for (int64_t o = 0; o < nr; o++) {
    DIT_TRY (dit_lora_values (lo, t, 1, (r0 + o) * t->rank, t->rank, row));
    memcpy (dst + o * ld, row, (size_t) t->rank * sizeof (float));
  }
  return DIT_OK;
}

static dit_status
l_upload_f32 (dit_lora_state *s, dit_tensor *dst, const float *src,
    int64_t n, void *conv)
{
  dit_convert (conv, dst->dtype, src, DIT_F32, (size_t) n);
  return dit_upload (s->be, dst->data, conv,
      (size_t) n * dit_dtype_size (dst->dtype));
}

/* Upload the stacked factors of L (allocated here). */
static dit_status
l_layer_upload (dit_lora_state *s, l_layer *L)
{
  const dit_dtype dt = s->w->dtype;
  const dit_lora_shard sh = l_shard (s, L->index);
  int64_t sa[2] = { L->R, L->cols }, sb[2] = { L->rows, L->R };
  DIT_TRY (dit_tensor_alloc (s->be, &L->a, dt, 2, sa));
  DIT_TRY (dit_tensor_alloc (s->be, &L->b, dt, 2, sb));
  DIT_TRY (dit_tensor_alloc (s->be, &L->bs, dt, 2, sb));
  /* a synthetic factor alone in its stack is made where it lives */
  int uses = 0, k = -1;
  for (int u = 0; u < DIT_LORA_MAX; u++)
    if (L->low[u]) {
      uses++;
      k = u;
    }
  if (uses == 1 && !s->uses[k].lora->st && L->r[k] == L->R && sh.dim != 1) {
    const dit_lora_target *t = L->low[k];
    dit_param_spec ds = l_synth_spec (t, 0), us = l_synth_spec (t, 1);
    int64_t r0 = sh.dim == 0 ? sh.begin : 0;
    dit_status st = dit_weights_synthetic_fill_backend (&ds, s->uses[k].lora->seed,
        0, L->R * L->cols, dt, s->be, L->a.data);
    if (st == DIT_OK)
      st = dit_weights_synthetic_fill_backend (&us, s->uses[k].lora->seed,
          r0 * L->R, L->rows * L->R, dt, s->be, L->b.data);
    if (st != DIT_ERR_UNSUPPORTED)
      return st;
  }
  size_t na = (size_t) (L->R * L->cols), nb = (size_t) (L->rows * L->R);
  size_t big = na > nb ? na : nb;
  float *host = calloc (big + 1, sizeof (float));
  float *row = malloc ((size_t) L->R * sizeof (float) + 16);
  void *conv = malloc (big * dit_dtype_size (dt) + 16);
  dit_status st = host && row && conv ? DIT_OK
      : dit_error (DIT_ERR_NOMEM, "lora: out of memory staging layer '%s'",
          L->layer);
  for (int u = 0; st == DIT_OK && u < DIT_LORA_MAX; u++)
    if (L->low[u])
      st = l_fill_down (s->uses[u].lora, L->low[u], sh, host + L->col[u] * L->cols,
          L->cols);
  if (st == DIT_OK)
    st = l_upload_f32 (s, &L->a, host, (int64_t) na, conv);
  if (st == DIT_OK)
    memset (host, 0, nb * sizeof (float));
  for (int u = 0; st == DIT_OK && u < DIT_LORA_MAX; u++)
    if (L->low[u])
      st = l_fill_up (s->uses[u].lora, L->low[u], sh, host + L->col[u], L->R,
          row);
  if (st == DIT_OK)
    st = l_upload_f32 (s, &L->b, host, (int64_t) nb, conv);
  free (host);
  free (row);
  free (conv);
  return st;
}

/* The deltas' values are checked before anything is merged, so a bad value
 * cannot leave a half-applied set. */
static dit_status
l_check_diff (const dit_lora *lo, const dit_lora_target *t)
{
  const int64_t n = l_numel (t->diff), chunk = 1 << 16;
  float *buf = malloc ((size_t) chunk * sizeof (float));
  if (!buf)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  dit_status st = DIT_OK;
  for (int64_t o = 0; st == DIT_OK && o < n; o += chunk)
    st = dit_lora_values (lo, t, 2, o, n - o < chunk ? n - o : chunk, buf);
  free (buf);
  return st;
}

/* Build the layers of a new set (nothing in the weights changes here). */
static dit_status
l_build (dit_lora_state *s, const dit_lora_use *uses, int n, l_layer **out,
    size_t *nout)
{
  l_layer *layers = NULL;
  size_t nl = 0;
  dit_status st = DIT_OK;
  for (int u = 0; u < n && st == DIT_OK; u++) {
    const dit_lora *lo = uses[u].lora;
    for (size_t i = 0; i < lo->count && st == DIT_OK; i++) {
      const dit_lora_target *t = &lo->targets[i];
      if (t->kind != DIT_LORA_LOW_RANK && s->mode == DIT_LORA_LIVE) {
        st = dit_error (DIT_ERR_INVALID, "%s: key '%s': a full-tensor delta "
            "changes the base weights; it applies in lora-mode=merge only",
            lo->path, t->key);
        break;
      }
      size_t idx = l_tensor_index (s->w, t->param);
      if (idx == SIZE_MAX) {
        st = dit_error (DIT_ERR_INVALID, "%s: key '%s': the weights have no "
            "tensor '%s'", lo->path, t->key, t->param);
        break;
      }
      l_layer *L = l_layer_of (&layers, &nl, s->w, idx, t->layer);
      if (!L) {
        st = dit_error (DIT_ERR_NOMEM, "lora: out of memory");
        break;
      }
      if (t->kind != DIT_LORA_LOW_RANK) {
        L->diff[u] = t;
        st = l_check_diff (lo, t);
        continue;
      }
      /* the shard's local shape must be the cut of the full one */
      dit_lora_shard sh = l_shard (s, idx);
      int64_t out_l = sh.dim == 0 ? sh.count : t->out;
      int64_t in_l = sh.dim == 1 ? sh.count : t->in;
      if (s->w->tensors[idx].ndim != 2 || L->rows != out_l || L->cols != in_l) {
        st = dit_error (DIT_ERR_INVALID, "%s: key '%s': layer '%s' is [%lld, "
            "%lld] here, the LoRA makes [%lld, %lld]", lo->path, t->key,
            t->layer, (long long) L->rows, (long long) L->cols,
            (long long) out_l, (long long) in_l);
        break;
      }
      L->low[u] = t;
      L->r[u] = t->rank;
      L->factor[u] = t->alpha / (float) t->rank;
    }
  }
  /* stack offsets, padded */
  int64_t off = 0;
  for (size_t i = 0; i < nl && st == DIT_OK; i++) {
    l_layer *L = &layers[i];
    int64_t R = 0;
    for (int u = 0; u < n; u++)
      if (L->low[u]) {
        L->col[u] = R;
        R += (L->r[u] + L_PAD - 1) / L_PAD * L_PAD;
      }
    L->R = R;
    if (R == 0)
      continue;
    L->scale_off = off;
    off += R;
    if (R > s->max_rank)
      s->max_rank = R;
  }
  s->scale_count = off;
  /* keep the new layers' factors on the device */
  for (size_t i = 0; i < nl && st == DIT_OK; i++)
    if (layers[i].R > 0)
      st = l_layer_upload (s, &layers[i]);
  if (st != DIT_OK) {
    l_layers_free (s, layers, nl, 0);
    return st;
  }
  *out = layers;
  *nout = nl;
  return DIT_OK;
}

/* Coefficients of every stacked column: c = strength · alpha / rank for a
 * LoRA's own columns, 0 for padding; uploaded in one copy. */
static dit_status
l_upload_scales (dit_lora_state *s, const float *strength)
{
  DIT_TRY (l_ensure (s->be, &s->scales, DIT_F32, s->scale_count));
  float *h = realloc (s->host_scales, ((size_t) s->scale_count + 1)
      * sizeof (float));
  if (!h)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  s->host_scales = h;
  memset (h, 0, (size_t) s->scale_count * sizeof (float));
  for (size_t i = 0; i < s->nlayers; i++) {
    l_layer *L = &s->layers[i];
    int active = 0;
    for (int u = 0; u < DIT_LORA_MAX && L->R; u++) {
      if (!L->low[u])
        continue;
      float c = strength[u] * L->factor[u];
      for (int64_t j = 0; j < L->r[u]; j++)
        h[L->scale_off + L->col[u] + j] = c;
      active |= c != 0.0f;
    }
    L->side.active = active;
  }
  if (s->scale_count == 0)
    return DIT_OK;
  return dit_upload (s->be, s->scales.data, h,
      (size_t) s->scale_count * sizeof (float));
}

/* bs = b · diag(c): zero, then += c ⊙ b (one rounding). */
static dit_status
l_rescale (dit_lora_state *s, l_layer *L)
{
  dit_tensor g = dit_tensor_2d ((float *) s->scales.data + L->scale_off,
      DIT_F32, s->scales.device, 1, L->R);
  DIT_TRY (dit_memset_zero (s->be, L->bs.data,
      dit_tensor_nbytes (&L->bs)));
  dit_residual_params p = { .x = &L->bs, .y = &L->b, .gate = &g,
    .rows_per_group = L->rows };
  return dit_residual (s->be, &p);
}

/* The weight of L as an [rows, cols] view. */
static dit_tensor
l_weight2d (const dit_lora_state *s, const l_layer *L)
{
  const dit_tensor *t = &s->w->tensors[L->index];
  return dit_tensor_2d (t->data, t->dtype, t->device, L->rows, L->cols);
}

/* An FP8 tensor's codes as f32 words, so that a copy moves them bit for bit
 * (a copy as 16-bit floats would go through a conversion); FP8 weights
 * have a multiple of 128 elements. */
static dit_tensor
l_as_words (const dit_tensor *t)
{
  return dit_tensor_1d (t->data, DIT_F32, t->device, dit_tensor_numel (t) / 4);
}

static dit_status
l_copy_fp8 (dit_lora_state *s, const dit_tensor *codes_from,
    const dit_tensor *codes_to, const dit_tensor *scale_from,
    const dit_tensor *scale_to)
{
  dit_tensor a = l_as_words (codes_from), b = l_as_words (codes_to);
  dit_copy_params cc = { .x = &a, .y = &b };
  DIT_TRY (dit_copy (s->be, &cc));
  dit_copy_params cs = { .x = scale_from, .y = (dit_tensor *) scale_to };
  return dit_copy (s->be, &cs);
}

static dit_status
l_keep_base (dit_lora_state *s, l_layer *L)
{
  if (L->base.data)
    return DIT_OK;
  dit_tensor wt = l_weight2d (s, L);
  int64_t shape[2] = { L->rows, L->cols };
  DIT_TRY (dit_tensor_alloc (s->be, &L->base, wt.dtype, 2, shape));
  if (wt.dtype != DIT_F8E4M3) {
    dit_copy_params cp = { .x = &wt, .y = &L->base };
    return dit_copy (s->be, &cp);
  }
  if (dit_tensor_numel (&wt) % 4)
    return dit_error (DIT_ERR_INVALID, "lora: FP8 tensor '%s' has %lld "
        "elements, not a multiple of 4", L->layer,
        (long long) dit_tensor_numel (&wt));
  const dit_tensor *sc = &s->w->scales[L->index];
  int64_t n = dit_tensor_numel (sc);
  DIT_TRY (dit_tensor_alloc (s->be, &L->base_scale, DIT_F32, 1, &n));
  dit_tensor scv = dit_tensor_1d (sc->data, DIT_F32, sc->device, n);
  return l_copy_fp8 (s, &wt, &L->base, &scv, &L->base_scale);
}

/* Copy the kept base back into the weight. */
static dit_status
l_restore (dit_lora_state *s, l_layer *L)
{
  dit_tensor wt = l_weight2d (s, L);
  if (wt.dtype != DIT_F8E4M3) {
    dit_copy_params cp = { .x = &L->base, .y = &wt };
    return dit_copy (s->be, &cp);
  }
  const dit_tensor *sc = &s->w->scales[L->index];
  dit_tensor scv = dit_tensor_1d (sc->data, DIT_F32, sc->device,
      dit_tensor_numel (sc));
  return l_copy_fp8 (s, &L->base, &wt, &L->base_scale, &scv);
}

/* y += s_u · delta_u for every delta of L with a nonzero coefficient. */
static dit_status
l_add_deltas (dit_lora_state *s, l_layer *L, dit_tensor *y, const float *coef)
{
  const dit_lora_shard sh = l_shard (s, L->index);
  for (int u = 0; u < DIT_LORA_MAX; u++) {
    const dit_lora_target *t = L->diff[u];
    if (!t || coef[u] == 0.0f)
      continue;
    const dit_lora *lo = s->uses[u].lora;
    const int64_t n = L->rows * L->cols;
    float *host = malloc ((size_t) (n > L->cols ? n : L->cols) * sizeof (float));
    if (!host)
      return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
    /* the delta has the full tensor's shape; take this shard's part (a
     * 1-D tensor, viewed as one row, is cut along its columns) */
    const int one_d = s->w->tensors[L->index].ndim == 1;
    const int cut_cols = sh.dim == 1 || (sh.dim == 0 && one_d);
    const int64_t full_cols = cut_cols ? (one_d ? l_numel (t->diff)
        : l_numel (t->diff) / L->rows) : L->cols;
    const int64_t r0 = sh.dim == 0 && !one_d ? sh.begin : 0;
    const int64_t c0 = cut_cols ? sh.begin : 0;
    dit_status st = DIT_OK;
    for (int64_t r = 0; r < L->rows && st == DIT_OK; r++)
      st = dit_lora_values (lo, t, 2, (r0 + r) * full_cols + c0, L->cols,
          host + r * L->cols);
    if (st == DIT_OK)
      st = l_ensure (s->be, &s->tmp_d, DIT_F32, n);
    if (st == DIT_OK)
      st = dit_upload (s->be, s->tmp_d.data, host,
          (size_t) n * sizeof (float));
    for (int64_t c = 0; st == DIT_OK && c < L->cols; c++)
      host[c] = coef[u];
    if (st == DIT_OK)
      st = l_ensure (s->be, &s->tmp_g, DIT_F32, L->cols);
    if (st == DIT_OK)
      st = dit_upload (s->be, s->tmp_g.data, host,
          (size_t) L->cols * sizeof (float));
    if (st == DIT_OK) {
      dit_tensor d = dit_tensor_2d (s->tmp_d.data, DIT_F32, s->tmp_d.device,
          L->rows, L->cols);
      dit_tensor g = dit_tensor_2d (s->tmp_g.data, DIT_F32, s->tmp_g.device,
          1, L->cols);
      dit_residual_params p = { .x = y, .y = &d, .gate = &g,
        .rows_per_group = L->rows };
      st = dit_residual (s->be, &p);
    }
    /* the upload buffer is reused by the next delta */
    if (st == DIT_OK)
      st = dit_synchronize (s->be);
    free (host);
    if (st != DIT_OK)
      return dit_error_prefix (st, "lora: delta '%s'", t->key);
  }
  return DIT_OK;
}

/* y += Bs A, Bs holding this merge's coefficients (l_rescale). */
static dit_status
l_add_low_rank (dit_lora_state *s, l_layer *L, dit_tensor *y)
{
  DIT_TRY (l_rescale (s, L));
  DIT_TRY (l_ensure (s->be, &s->tmp_t, s->w->dtype, L->cols * L->R));
  dit_tensor at = dit_tensor_2d (s->tmp_t.data, s->w->dtype, s->tmp_t.device,
      L->cols, L->R);
  /* Aᵀ: a transposed view of A copied into a contiguous [cols, R] */
  dit_tensor av = L->a;
  av.shape[0] = L->cols;
  av.shape[1] = L->R;
  av.stride[0] = 1;
  av.stride[1] = L->cols;
  dit_copy_params cp = { .x = &av, .y = &at };
  DIT_TRY (dit_copy (s->be, &cp));
  dit_gemm_params g = { .x = &L->bs, .w = &at, .y = y, .accumulate = 1 };
  return dit_gemm (s->be, &g);
}

/* Merge layer L for strengths `to`, from what the weight holds now. */
static dit_status
l_merge_layer (dit_lora_state *s, l_layer *L, const float *to)
{
  float lr[DIT_LORA_MAX], dd[DIT_LORA_MAX], coef[DIT_LORA_MAX];
  int any_lr = 0, any_d = 0, any_to = 0;
  for (int u = 0; u < DIT_LORA_MAX; u++) {
    float from = s->keep_base ? 0.0f : L->merged[u];
    coef[u] = to[u] - from;
    lr[u] = L->low[u] ? coef[u] : 0.0f;
    dd[u] = L->diff[u] ? coef[u] : 0.0f;
    any_lr |= lr[u] != 0.0f;
    any_d |= dd[u] != 0.0f;
    any_to |= (L->low[u] || L->diff[u]) && to[u] != 0.0f;
  }
  if (s->keep_base) {
    DIT_TRY (l_keep_base (s, L));
    DIT_TRY (l_restore (s, L));
    if (!any_to)
      return DIT_OK;   /* strength 0: the base, bit for bit */
  } else if (!any_lr && !any_d) {
    return DIT_OK;
  }
  /* the coefficients of this merge into the layer's scale slots (0 for
   * the padding columns) */
  if (L->R)
    memset (s->host_scales + L->scale_off, 0, (size_t) L->R * sizeof (float));
  for (int u = 0; u < DIT_LORA_MAX && L->R; u++)
    if (L->low[u])
      for (int64_t j = 0; j < L->r[u]; j++)
        s->host_scales[L->scale_off + L->col[u] + j] = lr[u] * L->factor[u];
  if (L->R)
    DIT_TRY (dit_upload (s->be, (float *) s->scales.data + L->scale_off,
        s->host_scales + L->scale_off, (size_t) L->R * sizeof (float)));
  dit_tensor wt = l_weight2d (s, L);
  if (wt.dtype != DIT_F8E4M3) {
    if (any_lr)
      DIT_TRY (l_add_low_rank (s, L, &wt));
    if (any_d)
      DIT_TRY (l_add_deltas (s, L, &wt, dd));
  } else {
    /* FP8: dequantize into f32, merge, quantize with fresh channel scales */
    const dit_tensor *sc = &s->w->scales[L->index];
    DIT_TRY (l_ensure (s->be, &s->tmp_f, DIT_F32, L->rows * L->cols));
    dit_tensor f = dit_tensor_2d (s->tmp_f.data, DIT_F32, s->tmp_f.device,
        L->rows, L->cols);
    dit_tensor sc2 = dit_tensor_2d (sc->data, DIT_F32, sc->device, 1, L->rows);
    dit_dequantize_fp8_params dq = { &wt, &sc2, L->cols, &f };
    DIT_TRY (dit_dequantize_fp8 (s->be, &dq));
    if (any_lr)
      DIT_TRY (l_add_low_rank (s, L, &f));
    if (any_d)
      DIT_TRY (l_add_deltas (s, L, &f, dd));
    dit_quantize_fp8_params qp = { &f, &wt, &sc2, L->cols };
    DIT_TRY (dit_quantize_fp8 (s->be, &qp));
  }
  for (int u = 0; u < DIT_LORA_MAX; u++)
    L->merged[u] = (L->low[u] || L->diff[u]) ? to[u] : 0.0f;
  return DIT_OK;
}

static dit_status
l_merge_all (dit_lora_state *s, const float *to)
{
  for (size_t i = 0; i < s->nlayers; i++) {
    dit_status st = l_merge_layer (s, &s->layers[i], to);
    if (st != DIT_OK)
      return dit_error_prefix (st, "lora: merging '%s'", s->layers[i].layer);
  }
  return dit_synchronize (s->be);
}

/* Bs into the last R columns of the folded weight's storage. */
static dit_status
l_copy_bs (dit_lora_state *s, l_layer *L)
{
  dit_tensor dst = dit_tensor_cols (&L->side.w_cat, L->cols, L->R);
  dit_copy_params cp = { .x = &L->bs, .y = &dst };
  return dit_copy (s->be, &cp);
}

/* Give 2-D weight tensor `index` storage of row stride cols + R (R = 0:
 * contiguous, as loaded), its values copied over: the tensor stays an
 * [rows, cols] view of the first cols columns.  The new storage is made
 * before the old one is freed, one tensor at a time, so a fold costs at
 * most one extra layer's weight at its peak. */
static dit_status
l_restride (dit_lora_state *s, size_t index, int64_t R)
{
  dit_tensor *t = &s->w->tensors[index];
  const int64_t rows = t->shape[0], cols = t->shape[1];
  if (t->stride[0] == cols + R)
    return DIT_OK;
  int64_t shape[2] = { rows, cols + R };
  dit_tensor nt;
  DIT_TRY (dit_tensor_alloc (s->be, &nt, t->dtype, 2, shape));
  dit_tensor dst = dit_tensor_cols (&nt, 0, cols);
  dit_copy_params cp = { .x = t, .y = &dst };
  dit_status st = dit_copy (s->be, &cp);
  /* the old storage goes once the copy is ordered behind it */
  if (st == DIT_OK)
    st = dit_synchronize (s->be);
  if (st != DIT_OK) {
    dit_tensor_free (s->be, &nt);
    return dit_error_prefix (st, "lora: restriding '%s'",
        s->w->specs[index].name);
  }
  dit_backend_free (s->be, t->data);
  *t = dst;
  return DIT_OK;
}

/* Fold every active layer of the applied set (l_restride to cols + R, Bs
 * copied in) and return every other folded weight to contiguous storage:
 * a layer whose strengths are all 0 is stored as loaded again, so strength
 * 0 everywhere runs the no-LoRA GEMMs with their own shapes and strides on
 * every backend (bit for bit, whatever algorithm a stride would pick).
 * FP8 weights are never folded (live mode refuses them in the model).  A
 * layer whose fold fails keeps w_cat empty: the model runs its side path,
 * which reads the weight view, whatever its stride, and `bs`. */
static dit_status
l_refold_all (dit_lora_state *s)
{
  dit_status first = DIT_OK;
  for (size_t i = 0; i < s->w->count; i++) {
    dit_tensor *t = &s->w->tensors[i];
    if (t->ndim != 2 || t->stride[0] == t->shape[1])
      continue;
    int kept = 0;
    for (size_t j = 0; j < s->nlayers && !kept; j++)
      kept = s->layers[j].index == i && s->layers[j].R > 0
          && s->layers[j].side.active;
    dit_status st = kept ? DIT_OK : l_restride (s, i, 0);
    if (first == DIT_OK)
      first = st;
  }
  for (size_t j = 0; j < s->nlayers; j++) {
    l_layer *L = &s->layers[j];
    memset (&L->side.w_cat, 0, sizeof L->side.w_cat);
    if (!L->R || !L->side.active
        || s->w->tensors[L->index].dtype == DIT_F8E4M3)
      continue;
    dit_status st = l_restride (s, L->index, L->R);
    if (st == DIT_OK) {
      const dit_tensor *t = &s->w->tensors[L->index];
      L->side.w_cat = dit_tensor_2d (t->data, t->dtype, t->device, L->rows,
          L->cols + L->R);
      st = l_copy_bs (s, L);
      if (st != DIT_OK)
        memset (&L->side.w_cat, 0, sizeof L->side.w_cat);
    }
    if (first == DIT_OK)
      first = st;
  }
  return first;
}

static dit_status
l_live_rescale (dit_lora_state *s, const float *to)
{
  DIT_TRY (l_upload_scales (s, to));
  for (size_t i = 0; i < s->nlayers; i++) {
    l_layer *L = &s->layers[i];
    if (!L->R)
      continue;
    DIT_TRY (l_rescale (s, L));
    L->side.a = L->a;
    L->side.bs = L->bs;
    L->side.rank = L->R;
  }
  return DIT_OK;
}

dit_status
dit_lora_state_apply (dit_lora_state *s, const dit_lora_use *uses, int n)
{
  if (n < 0 || n > DIT_LORA_MAX)
    return dit_error (DIT_ERR_INVALID, "lora: %d LoRAs; at most %d are "
        "allowed", n, DIT_LORA_MAX);
  float to[DIT_LORA_MAX] = { 0 };
  for (int u = 0; u < n; u++) {
    if (!uses[u].lora)
      return dit_error (DIT_ERR_INVALID, "lora: entry %d has no LoRA", u);
    if (!isfinite (uses[u].strength))
      return dit_error (DIT_ERR_INVALID, "lora '%s': strength %g is not "
          "finite", uses[u].lora->path, (double) uses[u].strength);
    to[u] = uses[u].strength;
  }
  int same = n == s->n;
  for (int u = 0; same && u < n; u++)
    same = uses[u].lora == s->uses[u].lora;
  const uint64_t digest = dit_lora_set_digest (s->mode, uses, n);

  if (!same) {
    l_layer *layers = NULL;
    size_t nl = 0;
    const int64_t old_count = s->scale_count, old_max = s->max_rank;
    s->max_rank = 0;
    /* the new layers see the new uses while their values are read */
    dit_lora_use old_uses[DIT_LORA_MAX];
    memcpy (old_uses, s->uses, sizeof old_uses);
    memset (s->uses, 0, sizeof s->uses);
    memcpy (s->uses, uses, (size_t) n * sizeof *uses);
    dit_status st = l_build (s, uses, n, &layers, &nl);
    if (st != DIT_OK) {
      memcpy (s->uses, old_uses, sizeof old_uses);
      s->scale_count = old_count;
      s->max_rank = old_max;
      return st;
    }
    if (s->mode == DIT_LORA_MERGE && s->nlayers) {
      /* take the old set out first: its layers still hold its factors */
      float zero[DIT_LORA_MAX] = { 0 };
      memcpy (s->uses, old_uses, sizeof old_uses);
      const int64_t new_count = s->scale_count;
      s->scale_count = old_count;
      st = l_merge_all (s, zero);
      s->scale_count = new_count;
      memset (s->uses, 0, sizeof s->uses);
      memcpy (s->uses, uses, (size_t) n * sizeof *uses);
      if (st != DIT_OK) {
        l_layers_free (s, layers, nl, 0);
        return st;
      }
    }
    /* kept bases of tensors the new set still touches carry over */
    for (size_t i = 0; i < s->nlayers; i++) {
      l_layer *O = &s->layers[i];
      int moved = 0;
      for (size_t j = 0; j < nl && !moved; j++)
        if (layers[j].index == O->index && O->base.data) {
          layers[j].base = O->base;
          layers[j].base_scale = O->base_scale;
          moved = 1;
        }
      if (moved) {
        memset (&O->base, 0, sizeof O->base);
        memset (&O->base_scale, 0, sizeof O->base_scale);
      }
    }
    l_layers_free (s, s->layers, s->nlayers, 0);
    s->layers = layers;
    s->nlayers = nl;
    s->n = n;
  }
  dit_status st;
  if (s->mode == DIT_LORA_LIVE) {
    st = l_live_rescale (s, to);
    /* fold the active layers (Bs into their storage), unfold the rest:
     * what a new set no longer touches and layers now at strength 0 */
    if (st == DIT_OK)
      st = l_refold_all (s);
  } else {
    st = l_ensure (s->be, &s->scales, DIT_F32, s->scale_count);
    if (st == DIT_OK) {
      float *h = realloc (s->host_scales, ((size_t) s->scale_count + 1)
          * sizeof (float));
      if (!h)
        st = dit_error (DIT_ERR_NOMEM, "lora: out of memory");
      else
        s->host_scales = h;
    }
    if (st == DIT_OK)
      st = l_merge_all (s, to);
  }
  if (st != DIT_OK)
    return st;
  for (int u = 0; u < n; u++)
    s->uses[u].strength = to[u];
  s->digest = digest;
  s->generation++;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* a set of files by name */

struct dit_lora_set {
  dit_model_config cfg;
  dit_param_spec *specs;
  size_t count;
  dit_lora_state *state;
  dit_lora_spec spec;
  dit_lora *open[DIT_LORA_MAX];   /* open[i] serves spec.items[i] */
};

dit_status
dit_lora_set_create (dit_weights *w, const dit_model_config *cfg,
    dit_lora_mode mode, int keep_base, const dit_lora_shard *shards,
    dit_lora_set **out)
{
  *out = NULL;
  dit_lora_set *s = calloc (1, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  s->cfg = *cfg;
  dit_status st = dit_model_config_params (cfg, &s->specs, &s->count);
  if (st == DIT_OK)
    st = dit_lora_state_create (w, mode, keep_base, shards, &s->state);
  if (st != DIT_OK) {
    dit_lora_set_free (s);
    return st;
  }
  *out = s;
  return DIT_OK;
}

void
dit_lora_set_free (dit_lora_set *s)
{
  if (!s)
    return;
  dit_lora_state_free (s->state);
  /* a LoRA listed twice is open once */
  for (int i = 0; i < DIT_LORA_MAX; i++) {
    int first = 1;
    for (int j = 0; j < i; j++)
      first &= s->open[j] != s->open[i];
    if (first)
      dit_lora_free (s->open[i]);
  }
  free (s->specs);
  free (s);
}

/* The LoRA of one list item: an open one of the same name, else opened. */
static dit_status
l_set_open (dit_lora_set *s, const char *path, dit_lora *const *also, int nalso,
    dit_lora **out, int *opened)
{
  *opened = 0;
  for (int i = 0; i < s->spec.count; i++)
    if (s->open[i] && strcmp (s->spec.items[i].path, path) == 0) {
      *out = s->open[i];
      return DIT_OK;
    }
  for (int i = 0; i < nalso; i++)
    if (also[i] && strcmp (also[i]->path, path) == 0) {
      *out = also[i];
      return DIT_OK;
    }
  *opened = 1;
  if (dit_str_starts_with (path, DIT_LORA_SYNTHETIC_PREFIX)) {
    const char *r = path + strlen (DIT_LORA_SYNTHETIC_PREFIX);
    char *end;
    long rank = strtol (r, &end, 10);
    if (!*r || *end || rank < 1 || rank > 4096)
      return dit_error (DIT_ERR_INVALID, "lora '%s': the rank of a synthetic "
          "LoRA must be a number in 1..4096", path);
    DIT_TRY (dit_lora_synthetic (s->specs, s->count, (int) rank, 0, out));
    /* named as listed, so that the next list finds it */
    free ((*out)->path);
    (*out)->path = strdup (path);
    if (!(*out)->path) {
      dit_lora_free (*out);
      return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
    }
    return DIT_OK;
  }
  return dit_lora_open (path, s->specs, s->count, s->cfg.name, out);
}

dit_status
dit_lora_set_update (dit_lora_set *s, const dit_lora_spec *spec)
{
  dit_lora *next[DIT_LORA_MAX] = { 0 };
  int fresh[DIT_LORA_MAX] = { 0 };
  dit_lora_use uses[DIT_LORA_MAX];
  dit_status st = DIT_OK;
  if (spec->count < 0 || spec->count > DIT_LORA_MAX)
    return dit_error (DIT_ERR_INVALID, "lora: %d LoRAs; at most %d are "
        "allowed", spec->count, DIT_LORA_MAX);
  for (int i = 0; i < spec->count && st == DIT_OK; i++) {
    st = l_set_open (s, spec->items[i].path, next, i, &next[i], &fresh[i]);
    uses[i].lora = next[i];
    uses[i].strength = spec->items[i].strength;
  }
  if (st == DIT_OK)
    st = dit_lora_state_apply (s->state, uses, spec->count);
  if (st != DIT_OK) {
    /* the previous list stays: close only what this call opened */
    for (int i = 0; i < spec->count; i++)
      if (fresh[i])
        dit_lora_free (next[i]);
    return st;
  }
  /* close what the new list no longer uses */
  for (int i = 0; i < s->spec.count; i++) {
    int kept = 0;
    for (int j = 0; j < spec->count; j++)
      kept |= next[j] == s->open[i];
    for (int j = 0; j < i; j++)
      kept |= s->open[j] == s->open[i];   /* closed already */
    if (!kept)
      dit_lora_free (s->open[i]);
  }
  memset (s->open, 0, sizeof s->open);
  memcpy (s->open, next, sizeof next);
  s->spec = *spec;
  return DIT_OK;
}

dit_status
dit_lora_spec_digest (const dit_lora_spec *spec, dit_lora_mode mode,
    const dit_model_config *cfg, uint64_t *digest)
{
  *digest = 0;
  if (spec->count < 0 || spec->count > DIT_LORA_MAX)
    return dit_error (DIT_ERR_INVALID, "lora: %d LoRAs; at most %d are "
        "allowed", spec->count, DIT_LORA_MAX);
  if (spec->count == 0)
    return DIT_OK;
  /* a set without weights: only its opening rules */
  dit_lora_set *s = calloc (1, sizeof *s);
  if (!s)
    return dit_error (DIT_ERR_NOMEM, "lora: out of memory");
  s->cfg = *cfg;
  dit_lora_use uses[DIT_LORA_MAX];
  dit_status st = dit_model_config_params (cfg, &s->specs, &s->count);
  for (int i = 0; i < spec->count && st == DIT_OK; i++) {
    int fresh;
    st = l_set_open (s, spec->items[i].path, s->open, i, &s->open[i], &fresh);
    uses[i].lora = s->open[i];
    uses[i].strength = spec->items[i].strength;
    for (size_t t = 0; st == DIT_OK && mode == DIT_LORA_LIVE
        && t < s->open[i]->count; t++)
      if (s->open[i]->targets[t].kind != DIT_LORA_LOW_RANK)
        st = dit_error (DIT_ERR_INVALID, "%s: key '%s': a full-tensor delta "
            "changes the base weights; it applies in lora-mode=merge only",
            s->open[i]->path, s->open[i]->targets[t].key);
  }
  if (st == DIT_OK)
    *digest = dit_lora_set_digest (mode, uses, spec->count);
  dit_lora_set_free (s);
  return st;
}

const dit_lora_spec *
dit_lora_set_spec (const dit_lora_set *s)
{
  return &s->spec;
}

const dit_lora_state *
dit_lora_set_state (const dit_lora_set *s)
{
  return s->state;
}

uint64_t
dit_lora_set_digest_of (const dit_lora_set *s)
{
  return dit_lora_state_digest (s->state);
}
