/* dit_config — Wan2.1 DiT model configurations, presets and the parameter
 * list (names and shapes) a checkpoint must contain.
 *
 * Presets:
 *   wan-14b   D 5120, 40 heads, 40 layers, ffn 13824, text_dim 4096
 *   wan-1.3b  D 1536, 12 heads, 30 layers, ffn 8960,  text_dim 4096
 *   tiny      D 256,   2 heads,  2 layers, ffn 512,   text_dim 64
 *   tiny-tp   D 512,   4 heads,  2 layers, ffn 1024,  text_dim 64
 *             (tensor-parallel tests up to 4 ranks)
 * Every preset has head_dim 128 (so the 22/21/21 RoPE split is exercised as
 * in the real model), freq_dim 256, in/out 16 channels, patch (1,2,2),
 * text_len 512, eps 1e-6.
 */
#ifndef DIT_CONFIG_H
#define DIT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_model_config {
  char name[32];
  int dim;
  int ffn_dim;
  int freq_dim;
  int num_heads;
  int head_dim;
  int num_layers;
  int text_len;
  int text_dim;
  int in_dim;
  int out_dim;
  float eps;
} dit_model_config;

/* Fill `cfg` for a preset name; DIT_ERR_INVALID listing the known names. */
dit_status dit_model_config_preset (const char *name, dit_model_config *cfg);
/* NULL-terminated list of preset names. */
const char *const *dit_model_config_preset_names (void);

/* One expected checkpoint tensor. */
typedef struct dit_param_spec {
  char name[96];
  int ndim;
  int64_t shape[5];
} dit_param_spec;

/* The full list of parameters of a config (spec §3.2 names), in a stable
 * order.  Returns a malloc'd array (free with free()) and its length. */
dit_status dit_model_config_params (const dit_model_config *cfg,
    dit_param_spec **specs, size_t *count);

int64_t dit_model_config_param_count (const dit_model_config *cfg);

/* Identify a preset from a checkpoint's shapes (dim, layers, ffn, text_dim).
 * Returns the preset name or NULL when nothing matches. */
const char *dit_model_config_detect (int dim, int num_layers, int ffn_dim,
    int text_dim);

#ifdef __cplusplus
}
#endif
#endif
