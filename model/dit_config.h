/* dit_config — Wan2.1 DiT model configurations, presets and the parameter
 * list (names and shapes) a checkpoint must contain.
 *
 * Presets:
 *   wan-14b   D 5120, 40 heads, 40 layers, ffn 13824, text_dim 4096
 *   wan-1.3b  D 1536, 12 heads, 30 layers, ffn 8960,  text_dim 4096
 *   tiny      D 256,   2 heads,  2 layers, ffn 512,   text_dim 64
 *   tiny-tp   D 512,   4 heads,  2 layers, ffn 1024,  text_dim 64
 *             (tensor-parallel tests up to 4 ranks)
 *   demo      D 256,   2 heads,  4 layers, ffn 1024,  text_dim 64
 *             (the shape of the trained demo model's checkpoints; detected
 *             from a file, never synthetic, not in the preset names)
 * Every preset has head_dim 128 (so the 22/21/21 RoPE split is exercised as
 * in the real model), freq_dim 256, in/out 16 channels, patch (1,2,2),
 * text_len 512, eps 1e-6.
 */
#ifndef DIT_CONFIG_H
#define DIT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"

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

/* A parameter list being built (the config_params functions of the DiT,
 * the VAE and TAEHV): start from { 0 }; an add that runs out of memory
 * sets oom and later adds do nothing, so the builder checks once, at the
 * end (then frees v). */
typedef struct dit_param_list {
  dit_param_spec *v;
  size_t n, cap;
  int oom;
} dit_param_list;

/* Appends [shape[0], .., shape[ndim - 1]] named by the printf format. */
void dit_param_list_add (dit_param_list *l, int ndim, const int64_t *shape,
    const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

/* Identify a preset from a checkpoint's shapes (dim, layers, ffn, text_dim).
 * Returns the preset name or NULL when nothing matches. */
const char *dit_model_config_detect (int dim, int num_layers, int ffn_dim,
    int text_dim);

/* The precision a DiT runs in (--dtype of the tools, the dtype property of
 * ditgenerate; docs/precision.md):
 *   f32   weights and activations f32 (the reference);
 *   bf16  weights and activations bf16, f32 residual stream and accumulation;
 *   fp8   bf16, with the blocks' linear layers (self-attention q/k/v/o,
 *         cross-attention q/o, FFN up/down) as FP8 e4m3 GEMMs: per-channel
 *         weight scales, per-(token, 128 channels) activation scales.
 * The values are the dit_dtype of those linear weights, so a precision can
 * travel where a dtype does (the mesh's join message). */
typedef enum dit_precision {
  DIT_PRECISION_F32 = DIT_F32,
  DIT_PRECISION_BF16 = DIT_BF16,
  DIT_PRECISION_FP8 = DIT_F8E4M3,
} dit_precision;

/* "f32", "bf16" or "fp8"; DIT_ERR_INVALID naming the value otherwise. */
dit_status dit_precision_parse (const char *s, dit_precision *out);
const char *dit_precision_name (dit_precision p);
/* The dtype of weights and activations outside the FP8 GEMMs. */
dit_dtype dit_precision_compute_dtype (dit_precision p);
/* The precision of a compute dtype and an FP8 flag (the inverse). */
dit_precision dit_precision_of (dit_dtype compute, int fp8);

#ifdef __cplusplus
}
#endif
#endif
