#include "dit_loader.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

/* ------------------------------------------------------------------------ */
/* the demo model's files */

#ifndef DIT_DATA_SOURCE_DIR
#define DIT_DATA_SOURCE_DIR "model/data"
#endif

const char *
dit_demo_file (dit_demo_part part)
{
  switch (part) {
    case DIT_DEMO_DIT:
      return "demo-dit.safetensors";
    case DIT_DEMO_VAE:
      return "demo-vae.safetensors";
    case DIT_DEMO_TEXT:
      return "demo-umt5.safetensors";
  }
  return "demo-?.safetensors";
}

dit_status
dit_demo_path (dit_demo_part part, char *path, size_t size)
{
  const char *file = dit_demo_file (part);
  const char *env = getenv ("DIT_DEMO_DIR");
  const char *dirs[2] = { NULL, NULL };
  char where[1024];

  if (env && *env) {
    dirs[0] = env;
  } else {
    /* the checkout first: a build tree runs with the files it was built
     * beside, an installed plugin whose checkout is gone finds its own */
    dirs[0] = DIT_DATA_SOURCE_DIR;
#ifdef DIT_DATA_INSTALLED_DIR
    dirs[1] = DIT_DATA_INSTALLED_DIR;
#endif
  }
  for (int i = 0; i < 2 && dirs[i]; i++) {
    if ((size_t) snprintf (path, size, "%s/%s", dirs[i], file) >= size)
      return dit_error (DIT_ERR_INVALID, "demo model: path of %s too long",
          file);
    if (access (path, R_OK) == 0)
      return DIT_OK;
  }
  snprintf (where, sizeof where, "%s%s%s%s", dirs[0],
      env && *env ? " ($DIT_DEMO_DIR)" : "", dirs[1] ? " nor " : "",
      dirs[1] ? dirs[1] : "");
  return dit_error (DIT_ERR_IO, "the demo model's %s is not installed (not "
      "in %s): train it with `bash tools/train/run-gpu.sh LOG OUTDIR` (one "
      "GPU) and install it with `sh tools/train/install-weights.sh OUTDIR` "
      "(docs/demo-model.md), or name other weights (the preset tiny: seeded "
      "random weights)", file, where);
}

dit_status
dit_model_name_resolve (const char *model, dit_demo_part part, char *buf,
    size_t size, const char **out)
{
  *out = model;
  if (!model || strcmp (model, DIT_DEMO) != 0)
    return DIT_OK;
  DIT_TRY (dit_demo_path (part, buf, size));
  *out = buf;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */

/* Whether name is one of a NULL-terminated list of preset names: the
 * names with synthetic weights, so not a file to open. */
static int
name_listed (const char *const *names, const char *name)
{
  for (const char *const *n = names; name && *n; n++)
    if (strcmp (*n, name) == 0)
      return 1;
  return 0;
}

int
dit_model_is_preset (const char *model)
{
  return name_listed (dit_model_config_preset_names (), model);
}

dit_status
dit_model_path_check (const char *model, const char *kind,
    const char *const *presets)
{
  struct stat sb;
  char list[256] = "";
  size_t len = 0;

  if (stat (model, &sb) == 0)
    return DIT_OK;
  /* the demo model (trained weights) first, then the synthetic presets */
  len = (size_t) snprintf (list, sizeof list, "%s", DIT_DEMO);
  for (const char *const *n = presets; *n && len < sizeof list; n++)
    len += (size_t) snprintf (list + len, sizeof list - len, ", %s", *n);
  return dit_error (DIT_ERR_IO, "%s '%s' is neither a preset (%s) nor an "
      "existing file or directory", kind, model, list);
}

const char *
dit_checkpoint_preset_of (const dit_safetensors *st, char *seen,
    size_t seen_size)
{
  long long dim = -1, ffn = -1, text_dim = -1;
  int layers = 0;
  char buf[256];

  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    const dit_st_tensor *t = dit_safetensors_at (st, i);
    const char *name = dit_model_key_map (t->name, buf, sizeof buf) ? buf : t->name;
    int block, end = 0;
    if (strcmp (name, "patch_embedding.weight") == 0 && t->ndim >= 1)
      dim = t->shape[0];
    else if (strcmp (name, "blocks.0.ffn.0.weight") == 0 && t->ndim >= 1)
      ffn = t->shape[0];
    else if (strcmp (name, "text_embedding.0.weight") == 0 && t->ndim == 2)
      text_dim = t->shape[1];
    else if (sscanf (name, "blocks.%d.modulation%n", &block, &end) == 1
        && end && name[end] == '\0')
      layers++;
  }
  if (seen)
    snprintf (seen, seen_size, "dim %lld, %d layers, ffn %lld, text_dim %lld",
        dim, layers, ffn, text_dim);
  if (dim < 0 || ffn < 0 || text_dim < 0 || dim > INT32_MAX || ffn > INT32_MAX
      || text_dim > INT32_MAX)
    return NULL;
  return dit_model_config_detect ((int) dim, layers, (int) ffn, (int) text_dim);
}

dit_status
dit_checkpoint_detect_preset (const char *path, dit_model_config *cfg)
{
  dit_safetensors *st;
  char seen[160], demo[4096];
  DIT_TRY (dit_model_name_resolve (path, DIT_DEMO_DIT, demo, sizeof demo,
          &path));
  DIT_TRY (dit_model_path_check (path, "DiT model",
          dit_model_config_preset_names ()));
  DIT_TRY (dit_safetensors_open (path, &st));
  const char *preset = dit_checkpoint_preset_of (st, seen, sizeof seen);
  dit_safetensors_close (st);
  if (!preset) {
    dit_safetensors *probe = NULL;
    const char *kind = NULL;
    if (dit_safetensors_open (path, &probe) == DIT_OK)
      kind = dit_checkpoint_kind_of (probe);
    dit_status s = kind && strcmp (kind, DIT_CHECKPOINT_DIT) != 0
        ? dit_error (DIT_ERR_FORMAT, "%s: not a Wan2.1 DiT checkpoint: it looks "
            "like %s", path, kind)
        : dit_error (DIT_ERR_FORMAT, "%s: not a known Wan2.1 DiT checkpoint "
            "(%s; known shapes: wan-14b, wan-1.3b, tiny, tiny-tp, demo)", path, seen);
    dit_safetensors_close (probe);
    return s;
  }
  return dit_model_config_preset (preset, cfg);
}

dit_status
dit_load_model (const char *model, uint64_t synthetic_seed, dit_dtype dtype,
    dit_backend *be, dit_model_config *cfg, dit_weights **out)
{
  return dit_load_model_precision (model, synthetic_seed,
      dit_precision_of (dtype, 0), be, cfg, out);
}

dit_status
dit_load_model_precision (const char *model, uint64_t synthetic_seed,
    dit_precision precision, dit_backend *be, dit_model_config *cfg,
    dit_weights **out)
{
  dit_param_spec *specs;
  size_t n;
  dit_status st;
  const int fp8 = precision == DIT_PRECISION_FP8;
  const dit_dtype dtype = dit_precision_compute_dtype (precision);
  dit_weights_fp8 rules = { dit_model_fp8_accept,
    fp8 ? dit_model_fp8_select : NULL };
  char demo[4096];

  *out = NULL;
  DIT_TRY (dit_model_name_resolve (model, DIT_DEMO_DIT, demo, sizeof demo,
          &model));
  if (fp8 && be)
    DIT_TRY (dit_fp8_check (be));
  if (dit_model_is_preset (model))
    DIT_TRY (dit_model_config_preset (model, cfg));
  else
    DIT_TRY (dit_checkpoint_detect_preset (model, cfg));
  DIT_TRY (dit_model_config_params (cfg, &specs, &n));
  if (dit_model_is_preset (model)) {
    st = dit_weights_synthetic (specs, n, synthetic_seed, dtype, be, out);
    if (st == DIT_OK && fp8 && (st = dit_weights_to_fp8 (*out,
            dit_model_fp8_select)) != DIT_OK) {
      dit_weights_free (*out);
      *out = NULL;
    }
  } else {
    st = dit_weights_load_ex (model, specs, n, dit_model_key_map, dtype, &rules,
        be, out);
  }
  free (specs);
  return st;
}

dit_status
dit_load_spec_weights (const char *model, int preset, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_param_spec *specs, size_t n,
    dit_weights **out)
{
  dit_status st = preset
      ? dit_weights_synthetic (specs, n, synthetic_seed, dtype, be, out)
      : dit_weights_load (model, specs, n, NULL, dtype, be, out);
  free (specs);
  return st;
}

dit_status
dit_load_vae (const char *model, uint64_t synthetic_seed, dit_dtype dtype,
    dit_backend *be, dit_vae_config *cfg, dit_weights **out)
{
  dit_param_spec *specs;
  size_t n;
  char demo[4096];

  *out = NULL;
  DIT_TRY (dit_model_name_resolve (model, DIT_DEMO_VAE, demo, sizeof demo,
          &model));
  const int preset = name_listed (dit_vae_config_preset_names (), model);
  if (preset)
    DIT_TRY (dit_vae_config_preset (model, cfg));
  else {
    dit_safetensors *probe;
    DIT_TRY (dit_model_path_check (model, "VAE model",
            dit_vae_config_preset_names ()));
    DIT_TRY (dit_safetensors_open (model, &probe));
    const char *name = dit_vae_config_detect (probe);
    const char *kind = dit_checkpoint_kind_of (probe);
    dit_safetensors_close (probe);
    if (!name && kind && strcmp (kind, DIT_CHECKPOINT_VAE) != 0)
      return dit_error (DIT_ERR_FORMAT, "%s: not a WanVAE checkpoint: it looks "
          "like %s", model, kind);
    if (!name)
      return dit_error (DIT_ERR_FORMAT,
          "%s: not a WanVAE checkpoint of a known configuration "
          "(encoder.conv1.weight must be [96|8|16, 3, 3, 3, 3]: the presets wan, "
          "tiny or the demo model's shape)",
          model);
    DIT_TRY (dit_vae_config_preset (name, cfg));
  }
  DIT_TRY (dit_vae_config_params (cfg, &specs, &n));
  return dit_load_spec_weights (model, preset, synthetic_seed, dtype, be,
      specs, n, out);
}

int
dit_taehv_is_preset (const char *model)
{
  return name_listed (dit_taehv_config_preset_names (), model);
}

dit_status
dit_load_taehv (const char *model, uint64_t synthetic_seed, dit_dtype dtype,
    dit_backend *be, dit_taehv_config *cfg, dit_weights **out)
{
  dit_param_spec *specs;
  size_t n;
  const int preset = dit_taehv_is_preset (model);

  *out = NULL;
  if (!model || !*model)
    return dit_error (DIT_ERR_INVALID, "taehv: no model named");
  if (preset)
    DIT_TRY (dit_taehv_config_preset (model, cfg));
  else
    DIT_TRY (dit_taehv_config_of_path (model, cfg));
  DIT_TRY (dit_taehv_config_params (cfg, &specs, &n));
  return dit_load_spec_weights (model, preset, synthetic_seed, dtype, be,
      specs, n, out);
}

const char *
dit_checkpoint_kind_of (const dit_safetensors *st)
{
  if (dit_safetensors_find (st, "encoder.conv1.weight")
      || dit_safetensors_find (st, "decoder.head.2.weight"))
    return DIT_CHECKPOINT_VAE;
  if (dit_safetensors_find (st, "decoder.22.weight")
      || dit_safetensors_find (st, "encoder.17.weight"))
    return DIT_CHECKPOINT_TAEHV;
  if (dit_safetensors_find (st, "token_embedding.weight"))
    return DIT_CHECKPOINT_TEXT;
  char buf[256];
  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    const dit_st_tensor *t = dit_safetensors_at (st, i);
    const char *name = dit_model_key_map (t->name, buf, sizeof buf) ? buf : t->name;
    if (strcmp (name, "patch_embedding.weight") == 0)
      return DIT_CHECKPOINT_DIT;
  }
  return NULL;
}

dit_status
dit_model_config_resolve (const char *model, dit_model_config *cfg,
    int *checkpoint)
{
  const char *m = model && *model ? model : DIT_DEFAULT_MODEL;
  char demo[4096];
  DIT_TRY (dit_model_name_resolve (m, DIT_DEMO_DIT, demo, sizeof demo, &m));
  *checkpoint = !dit_model_is_preset (m);
  return *checkpoint ? dit_checkpoint_detect_preset (m, cfg)
      : dit_model_config_preset (m, cfg);
}
