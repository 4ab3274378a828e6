/* dit-weights — make synthetic checkpoints, inspect checkpoints and LoRAs,
 * merge LoRAs into a checkpoint.
 *
 *   dit-weights make --preset tiny --seed 0 -o tiny.safetensors
 *   dit-weights inspect /models/Wan2.1-T2V-14B
 *   dit-weights inspect style-lora.safetensors
 *   dit-weights merge-lora /models/Wan2.1-T2V-14B style.safetensors:0.8 -o out.safetensors
 *
 * `make` streams one tensor at a time into the writer, so even a wan-14b
 * checkpoint needs only one tensor's worth of memory.  `inspect` reads the
 * headers only (the data stays mapped and untouched), detects the preset
 * from the shapes and validates keys, shapes and dtypes against it exactly
 * as the loader would, so it answers in seconds on a 57 GB checkpoint.
 * A LoRA file (recognised by its keys) is listed as a LoRA: its layout,
 * rank, alpha and targets, checked against the preset its widths name.
 * `merge-lora` loads a checkpoint (or a preset's synthetic weights), merges
 * LoRAs into it on the chosen device (W + strength · alpha / rank · B A,
 * model/dit_lora.h) and writes the result as one safetensors file.
 *
 * Model kinds are rows of `kinds` (DiT, VAE, text encoder); a new kind is one more row
 * with its presets, parameter list, detector and key map.
 *
 * Exit status: 0 success, 1 failure (including an invalid checkpoint),
 * 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_config.h"
#include "dit_loader.h"
#include "dit_lora.h"
#include "dit_taehv.h"
#include "dit_umt5.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "safetensors.h"

#define EXIT_USAGE 2

/* ------------------------------------------------------------------------ */
/* model kinds */

typedef union kind_config {
  dit_model_config dit;
  dit_vae_config vae;
  dit_umt5_config text;
  dit_taehv_config taehv;
} kind_config;

typedef struct weights_kind {
  const char *name;
  const char *description;
  const char *const *(*preset_names) (void);
  dit_status (*preset) (const char *name, kind_config *cfg);
  dit_status (*params) (const kind_config *cfg, dit_param_spec **specs, size_t *count);
  /* Preset name from the checkpoint's shapes, or NULL; `seen` describes
   * what the shapes said. */
  const char *(*detect) (const dit_safetensors *st, char *seen,
      size_t seen_size);
  dit_key_map_fn key_map;
} weights_kind;

static dit_status
dit_kind_preset (const char *name, kind_config *cfg)
{
  return dit_model_config_preset (name, &cfg->dit);
}

static dit_status
dit_kind_params (const kind_config *cfg, dit_param_spec **specs, size_t *count)
{
  return dit_model_config_params (&cfg->dit, specs, count);
}

static const char *
dit_kind_detect (const dit_safetensors *st, char *seen, size_t seen_size)
{
  return dit_checkpoint_preset_of (st, seen, seen_size);
}

static dit_status
vae_kind_preset (const char *name, kind_config *cfg)
{
  return dit_vae_config_preset (name, &cfg->vae);
}

static dit_status
vae_kind_params (const kind_config *cfg, dit_param_spec **specs, size_t *count)
{
  return dit_vae_config_params (&cfg->vae, specs, count);
}

static const char *
vae_kind_detect (const dit_safetensors *st, char *seen, size_t seen_size)
{
  const char *name = dit_vae_config_detect (st);
  snprintf (seen, seen_size, "%s", name ? name : "no WanVAE encoder.conv1 "
      "of a known width");
  return name;
}

static dit_status
text_kind_preset (const char *name, kind_config *cfg)
{
  return dit_umt5_config_preset (name, &cfg->text);
}

static dit_status
text_kind_params (const kind_config *cfg, dit_param_spec **specs, size_t *count)
{
  return dit_umt5_config_params (&cfg->text, specs, count);
}

static const char *
text_kind_detect (const dit_safetensors *st, char *seen, size_t seen_size)
{
  dit_umt5_config cfg;
  if (dit_umt5_config_detect (st, "checkpoint", &cfg) != DIT_OK) {
    snprintf (seen, seen_size, "%s", dit_last_error ());
    return NULL;
  }
  snprintf (seen, seen_size, "vocab %d, d_model %d, %d layers, d_ff %d",
      cfg.vocab, cfg.dim, cfg.num_layers, cfg.ffn_dim);
  for (const char *const *n = dit_umt5_config_preset_names (); *n; n++)
    if (strcmp (*n, cfg.name) == 0)
      return *n;
  return NULL;
}

static dit_status
taehv_kind_preset (const char *name, kind_config *cfg)
{
  return dit_taehv_config_preset (name, &cfg->taehv);
}

static dit_status
taehv_kind_params (const kind_config *cfg, dit_param_spec **specs, size_t *count)
{
  return dit_taehv_config_params (&cfg->taehv, specs, count);
}

static const char *
taehv_kind_detect (const dit_safetensors *st, char *seen, size_t seen_size)
{
  return dit_taehv_config_detect (st, seen, seen_size);
}

static const weights_kind kinds[] = {
  { "dit", "Wan2.1 diffusion transformer", dit_model_config_preset_names,
    dit_kind_preset, dit_kind_params, dit_kind_detect, dit_model_key_map },
  { "vae", "Wan2.1 VAE", dit_vae_config_preset_names,
    vae_kind_preset, vae_kind_params, vae_kind_detect, NULL },
  { "text", "umT5 text encoder", dit_umt5_config_preset_names,
    text_kind_preset, text_kind_params, text_kind_detect, NULL },
  { "taehv", "TAEHV tiny autoencoder (taew2_1, LightTAE)",
    dit_taehv_config_preset_names, taehv_kind_preset, taehv_kind_params,
    taehv_kind_detect, NULL },
};

static const weights_kind *
find_kind (const char *name)
{
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp (kinds[i].name, name) == 0)
      return &kinds[i];
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* messages */

static void
usage (FILE *f)
{
  fprintf (f,
      "Usage: dit-weights COMMAND [OPTIONS]\n"
      "\n"
      "Commands:\n"
      "  make --preset NAME -o FILE [--seed N] [--dtype f32|bf16|f16] [--kind KIND]\n"
      "       [--device cpu|cuda[:N]]\n"
      "      Write a synthetic checkpoint (seeded, reproducible) as safetensors.\n"
      "      --seed defaults to 0, --dtype to f32.  --device cuda makes the\n"
      "      values on that GPU (the same bits, seconds for a 14B set).\n"
      "  inspect PATH [--kind KIND] [--preset NAME]\n"
      "      List the tensors of a .safetensors file, an index .json or a\n"
      "      directory, detect the preset and validate the checkpoint against it\n"
      "      (headers only; tensor data is not read).  Exit status 1 if invalid.\n"
      "      KIND defaults to what the keys say: vae, taehv, text, lora or dit.\n"
      "      A LoRA (kind lora) is listed with its layout (kohya, peft,\n"
      "      diffusers), rank, alpha and targets and checked against the\n"
      "      preset of its widths, or --preset NAME.\n"
      "  merge-lora BASE LORA[:S]... -o OUT [--dtype f32|bf16|f16] [--seed N]\n"
      "       [--device cpu|cuda[:N]]\n"
      "      Merge LoRAs (strength S, default 1) into BASE (a checkpoint or a\n"
      "      preset's synthetic weights under --seed) and write OUT.  --dtype\n"
      "      defaults to the base's (f32 for a preset).\n"
      "\n"
      "Options:\n"
      "  --kind KIND   model kind (default dit):");
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    fprintf (f, " %s (%s)", kinds[i].name, kinds[i].description);
  fprintf (f, "\n  -h, --help    show this help\n");
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    fprintf (f, "%s%s", i ? "\n" : "\nPresets:\n", "  ");
    fprintf (f, "%-6s", kinds[i].name);
    for (const char *const *p = kinds[i].preset_names (); *p; p++)
      fprintf (f, " %s", *p);
  }
  fprintf (f, "\n\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

static int
usage_error (const char *fmt, const char *arg)
{
  fprintf (stderr, "dit-weights: ");
  fprintf (stderr, fmt, arg);
  fprintf (stderr, "\nTry 'dit-weights --help' for more information.\n");
  return EXIT_USAGE;
}

static int
fail (void)
{
  fprintf (stderr, "dit-weights: %s\n", dit_last_error ());
  return 1;
}

static int
parse_dtype (const char *s, dit_dtype *dt)
{
  if (strcmp (s, "f32") == 0)
    *dt = DIT_F32;
  else if (strcmp (s, "bf16") == 0)
    *dt = DIT_BF16;
  else if (strcmp (s, "f16") == 0)
    *dt = DIT_F16;
  else
    return 0;
  return 1;
}

static int
parse_u64 (const char *s, uint64_t *v)
{
  char *end;
  if (!s[0] || s[0] == '-' || s[0] == '+')
    return 0;
  errno = 0;
  unsigned long long x = strtoull (s, &end, 0);
  if (errno || *end)
    return 0;
  *v = (uint64_t) x;
  return 1;
}

static int64_t
spec_numel (const dit_param_spec *s)
{
  int64_t n = 1;
  for (int d = 0; d < s->ndim; d++)
    n *= s->shape[d];
  return n;
}

static const char *
shape_str (char *buf, size_t size, int ndim, const int64_t *shape)
{
  size_t o = 0;
  o += (size_t) snprintf (buf + o, size - o, "[");
  for (int i = 0; i < ndim && o < size; i++)
    o += (size_t) snprintf (buf + o, size - o, "%s%" PRId64, i ? ", " : "", shape[i]);
  if (o < size)
    snprintf (buf + o, size - o, "]");
  return buf;
}

/* ------------------------------------------------------------------------ */
/* make */

typedef struct make_ctx {
  const dit_param_spec *specs;
  uint64_t seed;
  dit_dtype dtype;
  dit_backend *be;      /* --device: values made there, then downloaded */
  void *dev;            /* MAKE_DEVICE_CHUNK elements of dtype */
} make_ctx;

#define MAKE_DEVICE_CHUNK (64 << 20)

static dit_status
make_fill (void *user, size_t index, void *dst, size_t nbytes)
{
  const make_ctx *c = user;
  const dit_param_spec *spec = &c->specs[index];
  const int64_t n = spec_numel (spec);
  const size_t es = dit_dtype_size (c->dtype);
  (void) nbytes;
  if (!c->be) {
    dit_weights_synthetic_fill (spec, c->seed, 0, n, c->dtype, dst);
    return DIT_OK;
  }
  for (int64_t o = 0; o < n; o += MAKE_DEVICE_CHUNK) {
    int64_t m = n - o < MAKE_DEVICE_CHUNK ? n - o : MAKE_DEVICE_CHUNK;
    DIT_TRY (dit_weights_synthetic_fill_backend (spec, c->seed, o, m, c->dtype,
        c->be, c->dev));
    DIT_TRY (dit_download (c->be, (char *) dst + (size_t) o * es,
        c->dev, (size_t) m * es));
  }
  return DIT_OK;
}

static int
cmd_make (int argc, char **argv)
{
  static const struct option opts[] = {
    { "preset", required_argument, NULL, 'p' },
    { "seed", required_argument, NULL, 's' },
    { "dtype", required_argument, NULL, 'd' },
    { "output", required_argument, NULL, 'o' },
    { "kind", required_argument, NULL, 'k' },
    { "device", required_argument, NULL, 'D' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *preset = NULL, *output = NULL, *kind_name = "dit";
  const char *device = NULL;
  uint64_t seed = 0;
  dit_dtype dtype = DIT_F32;
  const char *dtype_name = "f32";
  int c;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'p': preset = optarg; break;
      case 's':
        if (!parse_u64 (optarg, &seed))
          return usage_error ("make: --seed needs a non-negative integer, got '%s'", optarg);
        break;
      case 'd':
        dtype_name = optarg;
        if (!parse_dtype (optarg, &dtype))
          return usage_error ("make: --dtype must be f32, bf16 or f16, got '%s'", optarg);
        break;
      case 'o': output = optarg; break;
      case 'k': kind_name = optarg; break;
      case 'D': device = optarg; break;
      case 'h': usage (stdout); return 0;
      case ':': return usage_error ("make: option '%s' needs a value", argv[optind - 1]);
      default: return usage_error ("make: unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return usage_error ("make: unexpected argument '%s'", argv[optind]);
  if (device && strcmp (device, "cpu") != 0 && strncmp (device, "cuda", 4) != 0)
    return usage_error ("make: --device must be cpu, cuda or cuda:N, got '%s'",
        device);
  if (!preset)
    return usage_error ("make: %s", "--preset is required");
  if (!output)
    return usage_error ("make: %s", "-o FILE is required");
  const weights_kind *kind = find_kind (kind_name);
  if (!kind)
    return usage_error ("make: unknown --kind '%s'", kind_name);

  kind_config cfg;
  if (kind->preset (preset, &cfg) != DIT_OK) {
    fprintf (stderr, "dit-weights: make: %s\n", dit_last_error ());
    return EXIT_USAGE;
  }
  dit_param_spec *specs;
  size_t count;
  if (kind->params (&cfg, &specs, &count) != DIT_OK)
    return fail ();

  dit_st_write_tensor *wt = calloc (count + 1, sizeof *wt);
  if (!wt) {
    free (specs);
    fprintf (stderr, "dit-weights: out of memory\n");
    return 1;
  }
  int64_t params = 0;
  for (size_t i = 0; i < count; i++) {
    wt[i].name = specs[i].name;
    wt[i].dtype = dtype;
    wt[i].ndim = specs[i].ndim;
    wt[i].shape = specs[i].shape;
    params += spec_numel (&specs[i]);
  }
  char seed_buf[32];
  snprintf (seed_buf, sizeof seed_buf, "%" PRIu64, seed);
  /* a TAEHV file says which latents its decoder takes (LightTAE: raw) */
  const int taehv = strcmp (kind->name, "taehv") == 0;
  const char *meta[] = { "format", "gst-dit", "kind", kind->name, "preset", preset,
    "seed", seed_buf, taehv ? "latents" : NULL,
    taehv && cfg.taehv.latent_raw ? "raw" : "normalised", NULL };
  make_ctx ctx = { specs, seed, dtype, NULL, NULL };
  if (device && strncmp (device, "cuda", 4) == 0) {
    int index = device[4] == ':' ? atoi (device + 5) : 0;
    ctx.be = dit_backend_create ("cuda", index);
    if (ctx.be)
      ctx.dev = dit_backend_alloc (ctx.be, (size_t) MAKE_DEVICE_CHUNK
          * dit_dtype_size (dtype));
    if (!ctx.be || !ctx.dev) {
      fprintf (stderr, "dit-weights: make: --device %s: %s\n", device,
          ctx.be ? "cannot allocate the device buffer" : dit_last_error ());
      if (ctx.be)
        dit_backend_destroy (ctx.be);
      free (wt);
      free (specs);
      return 1;
    }
  }
  dit_status st = dit_safetensors_write_fn (output, wt, count, meta, make_fill, &ctx);
  if (ctx.be) {
    dit_backend_free (ctx.be, ctx.dev);
    dit_backend_destroy (ctx.be);
  }
  free (wt);
  free (specs);
  if (st != DIT_OK)
    return fail ();
  printf ("wrote %s: %s %s, seed %" PRIu64 ", %s, %zu tensors, %" PRId64 " parameters\n",
      output, kind->name, preset, seed, dtype_name, count, params);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* LoRA files */

/* Whether the keys are a LoRA's (the suffixes and prefix of dit_lora.h). */
static int
looks_like_lora (const dit_safetensors *st)
{
  static const char *const suffixes[] = { ".lora_down.weight",
    ".lora_up.weight", ".lora_A.weight", ".lora_B.weight", ".diff", ".diff_b" };
  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    const char *k = dit_safetensors_at (st, i)->name;
    size_t n = strlen (k);
    if (strncmp (k, "lora_unet_", 10) == 0)
      return 1;
    for (size_t j = 0; j < sizeof suffixes / sizeof suffixes[0]; j++) {
      size_t m = strlen (suffixes[j]);
      if (n >= m && strcmp (k + n - m, suffixes[j]) == 0)
        return 1;
    }
  }
  return 0;
}

static const char *
lora_kind_name (dit_lora_kind k)
{
  return k == DIT_LORA_LOW_RANK ? "low-rank" : k == DIT_LORA_DIFF ? "diff"
      : "diff_b";
}

static int
inspect_lora (const char *path, const char *preset)
{
  dit_lora *l;
  if (dit_lora_open (path, NULL, 0, NULL, &l) != DIT_OK) {
    printf ("%s\ninvalid: %s\n", path, dit_last_error ());
    return fail ();
  }
  int64_t rmin = 0, rmax = 0;
  double amin = 0, amax = 0;
  int low = 0, with_alpha = 0, deltas = 0;
  for (size_t i = 0; i < l->count; i++) {
    const dit_lora_target *t = &l->targets[i];
    if (t->kind != DIT_LORA_LOW_RANK) {
      deltas++;
      continue;
    }
    if (!low++ || t->rank < rmin)
      rmin = t->rank;
    if (t->rank > rmax)
      rmax = t->rank;
    if (t->has_alpha) {
      if (!with_alpha++ || t->alpha < amin)
        amin = t->alpha;
      if (!amax || t->alpha > amax)
        amax = t->alpha;
    }
  }
  printf ("%s\n", path);
  printf ("lora: format %s", dit_lora_format_name (l->format));
  if (strcmp (l->spelling, "-") != 0)
    printf (" (%s)", l->spelling);
  printf (", %zu targets (%d low-rank, %d full-tensor deltas)\n", l->count, low,
      deltas);
  if (low) {
    if (rmin == rmax)
      printf ("rank: %lld\n", (long long) rmin);
    else
      printf ("rank: %lld..%lld\n", (long long) rmin, (long long) rmax);
    if (!with_alpha)
      printf ("alpha: absent (= rank, scale = strength)\n");
    else if (amin == amax && with_alpha == low)
      printf ("alpha: %g%s\n", amin, rmin == rmax ? "" : " (scale = strength "
          "· alpha / rank per layer)");
    else
      printf ("alpha: %g..%g on %d of %d layers (absent = rank)\n", amin, amax,
          with_alpha, low);
    if (with_alpha && amin == amax && with_alpha == low && rmin == rmax)
      printf ("scale: %g × strength\n", amin / (double) rmin);
  }
  printf ("targets:\n");
  for (size_t i = 0; i < l->count; i++) {
    const dit_lora_target *t = &l->targets[i];
    if (t->kind == DIT_LORA_LOW_RANK)
      printf ("  %-32s %-8s rank %-4lld [%lld, %lld] alpha %g%s  (%s)\n",
          t->layer, lora_kind_name (t->kind), (long long) t->rank,
          (long long) t->out, (long long) t->in, (double) t->alpha,
          t->has_alpha ? "" : " (= rank)", t->key);
    else
      printf ("  %-32s %-8s (%s)\n", t->param, lora_kind_name (t->kind), t->key);
  }
  const char *name = preset ? preset : dit_lora_preset_of (l);
  int rc = 0;
  if (!name) {
    printf ("preset: none matches the widths of the targets\n");
    printf ("invalid: no DiT preset has these widths (use --preset NAME)\n");
    fprintf (stderr, "dit-weights: %s: no DiT preset matches the LoRA's "
        "widths\n", path);
    rc = 1;
  } else {
    dit_model_config cfg;
    dit_param_spec *specs = NULL;
    size_t count = 0;
    printf ("preset: %s%s\n", name, preset ? " (--preset)" : " (from the widths)");
    if (dit_model_config_preset (name, &cfg) != DIT_OK
        || dit_model_config_params (&cfg, &specs, &count) != DIT_OK) {
      rc = fail ();
    } else if (dit_lora_check (l, specs, count, cfg.name) != DIT_OK) {
      printf ("invalid: %s\n", dit_last_error ());
      rc = fail ();
    } else {
      printf ("valid LoRA for %s\n", name);
    }
    free (specs);
  }
  dit_lora_free (l);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* inspect */

static int
cmd_inspect (int argc, char **argv)
{
  static const struct option opts[] = {
    { "kind", required_argument, NULL, 'k' },
    { "preset", required_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *kind_name = NULL;   /* NULL: the VAE if its keys are there */
  const char *lora_preset = NULL;
  int c;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case 'k': kind_name = optarg; break;
      case 'p': lora_preset = optarg; break;
      case 'h': usage (stdout); return 0;
      case ':': return usage_error ("inspect: option '%s' needs a value", argv[optind - 1]);
      default: return usage_error ("inspect: unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc)
    return usage_error ("inspect: %s", "a checkpoint PATH is required");
  if (optind + 1 < argc)
    return usage_error ("inspect: unexpected argument '%s'", argv[optind + 1]);
  const char *path = argv[optind];
  if (kind_name && strcmp (kind_name, "lora") != 0 && !find_kind (kind_name))
    return usage_error ("inspect: unknown --kind '%s'", kind_name);
  if (lora_preset && kind_name && strcmp (kind_name, "lora") != 0)
    return usage_error ("inspect: --preset is for a LoRA (kind lora), not "
        "kind '%s'", kind_name);
  if (kind_name && strcmp (kind_name, "lora") == 0)
    return inspect_lora (path, lora_preset);

  dit_safetensors *st;
  if (dit_safetensors_open (path, &st) != DIT_OK)
    return fail ();
  if (!kind_name && looks_like_lora (st)) {
    dit_safetensors_close (st);
    return inspect_lora (path, lora_preset);
  }
  if (lora_preset) {
    dit_safetensors_close (st);
    return usage_error ("inspect: --preset is for a LoRA; '%s' is none",
        path);
  }
  if (!kind_name) {
    if (dit_safetensors_find (st, "encoder.conv1.weight")
        || dit_safetensors_find (st, "decoder.head.2.weight"))
      kind_name = "vae";
    else if (dit_safetensors_find (st, "decoder.22.weight")
        || dit_safetensors_find (st, "encoder.17.weight"))
      kind_name = "taehv";
    else if (dit_safetensors_find (st, "token_embedding.weight"))
      kind_name = "text";
    else
      kind_name = "dit";
  }
  const weights_kind *kind = find_kind (kind_name);

  static const char *const meta_keys[] = { "format", "kind", "preset", "seed",
    "latents" };
  int any_meta = 0;
  printf ("%s\n", path);
  for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++) {
    const char *v = dit_safetensors_metadata (st, meta_keys[i]);
    if (v) {
      printf ("%s%s=%s", any_meta ? " " : "metadata: ", meta_keys[i], v);
      any_meta = 1;
    }
  }
  if (any_meta)
    printf ("\n");

  int64_t params = 0;
  uint64_t bytes = 0;
  size_t n = dit_safetensors_count (st);
  for (size_t i = 0; i < n; i++) {
    const dit_st_tensor *t = dit_safetensors_at (st, i);
    char mapped[256], sb[128];
    int is_mapped = kind->key_map && kind->key_map (t->name, mapped, sizeof mapped);
    int64_t e = 1;
    for (int d = 0; d < t->ndim; d++)
      e *= t->shape[d];
    params += e;
    bytes += t->nbytes;
    printf ("  %-40s %-22s %s", is_mapped ? mapped : t->name,
        shape_str (sb, sizeof sb, t->ndim, t->shape), dit_st_dtype_name (t->dtype));
    if (is_mapped)
      printf ("  (from %s)", t->name);
    printf ("\n");
  }
  printf ("tensors: %zu\n", n);
  printf ("parameters: %" PRId64 "\n", params);
  printf ("bytes: %" PRIu64 "\n", bytes);

  char seen[160];
  const char *preset = kind->detect (st, seen, sizeof seen);
  int rc = 0;
  if (!preset) {
    const char *looks = dit_checkpoint_kind_of (st);
    char also[160] = "";
    if (looks)
      snprintf (also, sizeof also, "; it looks like %s", looks);
    printf ("preset: none matches (%s)\n", seen);
    printf ("invalid: no %s preset matches these shapes%s\n", kind->name, also);
    fprintf (stderr, "dit-weights: %s: no %s preset matches (%s)%s\n", path,
        kind->name, seen, also);
    rc = 1;
  } else {
    kind_config cfg;
    dit_param_spec *specs = NULL;
    size_t count = 0;
    printf ("preset: %s (%s)\n", preset, seen);
    if (kind->preset (preset, &cfg) != DIT_OK
        || kind->params (&cfg, &specs, &count) != DIT_OK) {
      rc = fail ();
    } else if (dit_weights_check (st, path, specs, count, kind->key_map) != DIT_OK) {
      printf ("invalid: %s\n", dit_last_error ());
      rc = fail ();
    } else {
      printf ("valid %s checkpoint\n", preset);
    }
    free (specs);
  }
  dit_safetensors_close (st);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* merge-lora */

/* The dtype of the base's first DiT weight, for the output (f32 when it is
 * a preset or FP8). */
static dit_dtype
base_dtype (const char *base)
{
  dit_safetensors *st;
  dit_dtype dt = DIT_F32;
  if (dit_model_is_preset (base) || dit_safetensors_open (base, &st) != DIT_OK)
    return dt;
  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    const dit_st_tensor *t = dit_safetensors_at (st, i);
    if (strstr (t->name, "blocks.0.") && dit_st_dtype_to_dit (t->dtype, &dt))
      break;
  }
  dit_safetensors_close (st);
  return dt;
}

static int
cmd_merge_lora (int argc, char **argv)
{
  static const struct option opts[] = {
    { "output", required_argument, NULL, 'o' },
    { "dtype", required_argument, NULL, 'd' },
    { "seed", required_argument, NULL, 's' },
    { "device", required_argument, NULL, 'D' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *output = NULL, *device = "cpu", *dtype_name = NULL;
  dit_dtype dtype = DIT_F32;
  uint64_t seed = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'o': output = optarg; break;
      case 'd':
        dtype_name = optarg;
        if (!parse_dtype (optarg, &dtype))
          return usage_error ("merge-lora: --dtype must be f32, bf16 or f16, "
              "got '%s'", optarg);
        break;
      case 's':
        if (!parse_u64 (optarg, &seed))
          return usage_error ("merge-lora: --seed needs a non-negative "
              "integer, got '%s'", optarg);
        break;
      case 'D': device = optarg; break;
      case 'h': usage (stdout); return 0;
      case ':': return usage_error ("merge-lora: option '%s' needs a value", argv[optind - 1]);
      default: return usage_error ("merge-lora: unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc)
    return usage_error ("merge-lora: %s", "a BASE checkpoint or preset is required");
  if (optind + 1 >= argc)
    return usage_error ("merge-lora: %s", "at least one LORA[:S] is required");
  if (!output)
    return usage_error ("merge-lora: %s", "-o OUT is required");
  if (strcmp (device, "cpu") != 0 && strncmp (device, "cuda", 4) != 0)
    return usage_error ("merge-lora: --device must be cpu, cuda or cuda:N, "
        "got '%s'", device);
  const char *base = argv[optind];
  char list[8192] = "";
  size_t o = 0;
  for (int i = optind + 1; i < argc && o < sizeof list; i++)
    o += (size_t) snprintf (list + o, sizeof list - o, "%s%s",
        i > optind + 1 ? "|" : "", argv[i]);
  dit_lora_spec spec;
  if (dit_lora_spec_parse (list, &spec) != DIT_OK) {
    fprintf (stderr, "dit-weights: merge-lora: %s\n", dit_last_error ());
    return EXIT_USAGE;
  }
  if (!dtype_name)
    dtype = base_dtype (base);

  dit_backend *be = strcmp (device, "cpu") == 0 ? dit_backend_cpu ()
      : dit_backend_create ("cuda", device[4] == ':' ? atoi (device + 5) : 0);
  if (!be)
    return fail ();
  dit_model_config cfg;
  dit_weights *w = NULL;
  dit_lora_set *set = NULL;
  int rc = 1;
  /* merged in f32 on the CPU, in the output dtype on a GPU */
  dit_dtype work = be == dit_backend_cpu () ? DIT_F32 : dtype;
  if (dit_load_model (base, seed, work, be, &cfg, &w) != DIT_OK
      || dit_lora_set_create (w, &cfg, DIT_LORA_MERGE, 0, NULL, &set) != DIT_OK
      || dit_lora_set_update (set, &spec) != DIT_OK) {
    rc = fail ();
  } else {
    char text[8192];
    dit_lora_spec_format (&spec, text, sizeof text);
    const char *meta[] = { "format", "gst-dit", "kind", "dit", "preset",
      cfg.name, "lora", text, NULL };
    if (dit_weights_save (w, output, dtype, meta) != DIT_OK) {
      rc = fail ();
    } else {
      printf ("wrote %s: %s with %d LoRA%s merged (%s), %s\n", output,
          cfg.name, spec.count, spec.count == 1 ? "" : "s", text,
          dit_dtype_name (dtype));
      rc = 0;
    }
  }
  dit_lora_set_free (set);
  dit_weights_free (w);
  if (be != dit_backend_cpu ())
    dit_backend_destroy (be);
  return rc;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return usage_error ("%s", "missing command (make, inspect or merge-lora)");
  const char *cmd = argv[1];
  if (strcmp (cmd, "-h") == 0 || strcmp (cmd, "--help") == 0 || strcmp (cmd, "help") == 0) {
    usage (stdout);
    return 0;
  }
  if (strcmp (cmd, "make") == 0)
    return cmd_make (argc - 1, argv + 1);
  if (strcmp (cmd, "inspect") == 0)
    return cmd_inspect (argc - 1, argv + 1);
  if (strcmp (cmd, "merge-lora") == 0)
    return cmd_merge_lora (argc - 1, argv + 1);
  if (cmd[0] == '-')
    return usage_error ("unknown option '%s'", cmd);
  return usage_error ("unknown command '%s' (expected make, inspect or "
      "merge-lora)", cmd);
}
