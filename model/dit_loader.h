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
#include "dit_vae.h"
#include "dit_weights.h"

#ifdef __cplusplus
extern "C" {
#endif

int dit_model_is_preset (const char *model);

/* Detect the DiT preset of a checkpoint from its shapes (no data read). */
dit_status dit_checkpoint_detect_preset (const char *path, dit_model_config *cfg);

dit_status dit_load_model (const char *model, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_model_config *cfg, dit_weights **out);

/* The same for the VAE: a preset (tiny, wan) or a checkpoint path. */
dit_status dit_load_vae (const char *model, uint64_t synthetic_seed,
    dit_dtype dtype, dit_backend *be, dit_vae_config *cfg, dit_weights **out);

#ifdef __cplusplus
}
#endif
#endif
