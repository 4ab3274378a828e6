/* dit_loader — resolve a user's "model" string into a config and weights.
 *
 * The string is either a preset name (tiny, wan-1.3b, wan-14b), which gives
 * seeded synthetic weights, or a checkpoint path (file, sharded index JSON
 * or directory), whose preset is detected from its shapes and which is then
 * loaded strictly against that preset's parameter list.  This is the one
 * place tools and elements turn a `model` / `vae-model` string into weights.
 */
#ifndef DIT_LOADER_H
#define DIT_LOADER_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The weights that a NULL or "" model string means: the defaults of the
 * elements' model, vae-model and text-model properties and of the tools'
 * --model / --vae options. */
#define DIT_DEFAULT_MODEL "tiny"
#define DIT_DEFAULT_VAE "tiny"
#define DIT_DEFAULT_TEXT_MODEL "tiny"

/* The demo model (docs/demo-model.md): gst-dit's own small Wan2.1 model,
 * trained on a procedural video world by tools/train.  "demo" as a DiT,
 * VAE or text model names one of its three files; the shape of its DiT is
 * the `demo` config (dit_config.h), its VAE and umT5 the `tiny` ones.  The
 * files are looked for in $DIT_DEMO_DIR when it is set, else in the
 * checkout's model/data (where install-weights.sh puts them), else in the
 * installed DATADIR/gst-dit. */
#define DIT_DEMO "demo"
typedef enum
{
  DIT_DEMO_DIT,                 /* demo-dit.safetensors */
  DIT_DEMO_VAE,                 /* demo-vae.safetensors */
  DIT_DEMO_TEXT,                /* demo-umt5.safetensors */
} dit_demo_part;

/* The file name of a part (no directory). */
const char *dit_demo_file (dit_demo_part part);
/* The path of `part`'s file into `path`; DIT_ERR_IO naming the file, where
 * it was looked for and how to make it when no copy exists. */
dit_status dit_demo_path (dit_demo_part part, char *path, size_t size);
/* `model` as a loader reads it: for "demo" the path of `part`'s file (in
 * `buf`, or the error of dit_demo_path), anything else as it is. */
dit_status dit_model_name_resolve (const char *model, dit_demo_part part,
    char *buf, size_t size, const char **out);

int dit_model_is_preset (const char *model);

/* DIT_OK when `model` names an existing file or directory; otherwise an
 * error "KIND 'MODEL' is neither a preset (a, b, ...) nor an existing file
 * or directory" listing `presets` (NULL-terminated), which says more about
 * a misspelled preset name than "cannot open".  Call it for a string that
 * is not one of the presets. */
dit_status dit_model_path_check (const char *model, const char *kind,
    const char *const *presets);

/* The DiT preset an open checkpoint's shapes name (keys mapped with
 * dit_model_key_map), or NULL; `seen` (may be NULL) receives what the
 * shapes said, for messages.  No tensor data is read. */
const char *dit_checkpoint_preset_of (const dit_safetensors *st, char *seen,
    size_t seen_size);
/* The same from a path, as a config or an error naming the path. */
dit_status dit_checkpoint_detect_preset (const char *path, dit_model_config *cfg);

/* The config of `model` without its weights: a preset's, or the preset a
 * checkpoint's shapes name (no tensor data is read).  *checkpoint: 1 for a
 * path.  NULL or "" is DIT_DEFAULT_MODEL. */
dit_status dit_model_config_resolve (const char *model, dit_model_config *cfg,
    int *checkpoint);

dit_status dit_load_model (const char *model, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_model_config *cfg, dit_weights **out);
/* The same for a precision (dit_config.h): fp8 stores the linear weights the
 * FP8 GEMMs take (dit_model_fp8_select) as FP8, quantized on `be` or kept as
 * an FP8 checkpoint stores them; DIT_ERR_UNSUPPORTED naming the device when
 * `be` cannot run FP8 (dit_fp8_check), before any weight is read.  Every
 * precision loads FP8 checkpoints (dit_weights.h, dequantizing what stays
 * 16/32-bit). */
dit_status dit_load_model_precision (const char *model, uint64_t synthetic_seed,
    dit_precision precision, dit_backend *be, dit_model_config *cfg,
    dit_weights **out);

/* The same for the VAE: a preset (tiny, wan) or a checkpoint path. */
dit_status dit_load_vae (const char *model, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_vae_config *cfg, dit_weights **out);

/* The same for a TAEHV tiny autoencoder: a preset (taew2_1, lighttaew2_1,
 * taehv-tiny) or a checkpoint path (dit_taehv_config_of_path). */
dit_status dit_load_taehv (const char *model, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_taehv_config *cfg, dit_weights **out);
int dit_taehv_is_preset (const char *model);

/* The weights of `specs` (a config's parameter list, freed here in every
 * case): synthetic for a preset, else read from the checkpoint `model`,
 * whose keys are the spec names (the VAE, TAEHV and umT5 files). */
dit_status dit_load_spec_weights (const char *model, int preset,
    uint64_t synthetic_seed, dit_dtype dtype, dit_backend *be,
    dit_param_spec *specs, size_t n, dit_weights **out);

/* What kind of model an open checkpoint holds, from its key names alone,
 * for messages ("<file>: not a WanVAE checkpoint: it looks like a TAEHV
 * tiny autoencoder"): one of the DIT_CHECKPOINT_* strings, or NULL. */
#define DIT_CHECKPOINT_VAE "a Wan2.1 VAE (WanVAE; use it as vae-model)"
#define DIT_CHECKPOINT_TAEHV "a TAEHV tiny autoencoder (taew2_1 or LightTAE; " \
    "use it as decoder-model / encoder-model)"
#define DIT_CHECKPOINT_TEXT "a umT5 text encoder"
#define DIT_CHECKPOINT_DIT "a Wan2.1 diffusion transformer (use it as model)"
const char *dit_checkpoint_kind_of (const dit_safetensors *st);

#ifdef __cplusplus
}
#endif
#endif
