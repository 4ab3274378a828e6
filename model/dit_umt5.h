/* dit_umt5 — the umT5-XXL text encoder (encoder only, spec §6), written
 * against the backend op table, so it runs on every backend.
 *
 * Presets:
 *   umt5-xxl  vocab 256384, d_model 4096, 64 heads x 64, d_ff 10240,
 *             24 layers (5.68 G parameters)
 *   tiny      vocab 640 (model/data/tiny-spm.model), d_model 64 (the tiny
 *             DiT's text_dim), 4 heads x 16, d_ff 128, 2 layers
 * Both: 32 relative-position buckets, max distance 128, a bias table per
 * layer (umT5's shared_pos = False), gated-GELU(tanh) FFN, RMS norms with
 * eps 1e-6, no biases, no 1/sqrt(d) attention scaling.
 *
 * Weights use the names of Wan's models_t5_umt5-xxl-enc-bf16.pth (spec
 * §6.5): token_embedding.weight, blocks.{l}.{norm1, attn.{q,k,v,o},
 * norm2, ffn.gate.0, ffn.fc1, ffn.fc2, pos_embedding.embedding}.weight,
 * norm.weight.
 *
 * Output: rows [0, n) for n ids (Wan keeps rows [0, L_txt)); no padding is
 * computed: with masked padded keys and a bias that depends on j - i only,
 * the rows of the real tokens do not depend on the padding, so encoding
 * the unpadded sequence gives the same rows.  The residual stream is f32,
 * GEMM inputs and the other activations are in the weight dtype.
 */
#ifndef DIT_UMT5_H
#define DIT_UMT5_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_umt5_config {
  char name[32];
  int vocab;
  int dim;
  int num_heads;
  int head_dim;
  int ffn_dim;
  int num_layers;
  int num_buckets;
  int max_distance;
  int max_tokens;    /* 512 */
  float eps;
} dit_umt5_config;

/* "umt5-xxl" or "tiny". */
dit_status dit_umt5_config_preset (const char *name, dit_umt5_config *cfg);
/* The parameter list (spec §6.5 names and shapes); malloc'd array. */
dit_status dit_umt5_config_params (const dit_umt5_config *cfg,
    dit_param_spec **specs, size_t *count);
const char *const *dit_umt5_config_preset_names (void);
/* The config of a checkpoint, from its shapes (vocab, d_model, layers,
 * d_ff, heads from the bias table); heads * head_dim = d_model assumed.
 * cfg->name is the matching preset, or "custom".  `path` names the file in
 * messages. */
dit_status dit_umt5_config_detect (const dit_safetensors *st, const char *path,
    dit_umt5_config *cfg);
dit_status dit_umt5_config_from_file (const char *path, dit_umt5_config *cfg);

/* Weights for `model`: a preset name (seeded synthetic weights, `seed`) or
 * a safetensors checkpoint (config from its shapes; a '.pth' must first be
 * converted with tools/convert-pth.py).  Fills *cfg. */
dit_status dit_umt5_load_weights (const char *model, uint64_t seed,
    dit_dtype dtype, dit_backend *be, dit_umt5_config *cfg, dit_weights **out);

typedef struct dit_umt5 dit_umt5;

/* Activation buffers for up to cfg->max_tokens tokens are allocated here. */
dit_status dit_umt5_create (const dit_umt5_config *cfg, const dit_weights *w,
    dit_backend *be, dit_umt5 **out);
void dit_umt5_free (dit_umt5 *t);

/* The same encoder with its weights resident in host memory between
 * encodes (page-locked where `be` has it): each layer is uploaded into one
 * device slot just before it runs, the prompt's embedding rows are gathered
 * on the host.  Device memory: one layer's weights plus the activations,
 * instead of every weight; each encode moves all layer weights over the
 * host bus.  `w` may live on any backend and may be freed after this
 * returns (its values are copied).  Every layer must have the shapes of
 * layer 0. */
dit_status dit_umt5_create_host_resident (const dit_umt5_config *cfg,
    const dit_weights *w, dit_backend *be, dit_umt5 **out);
/* Host bytes a host-resident encoder holds (0 for a device one). */
size_t dit_umt5_host_bytes (const dit_umt5 *t);

/* Encode ids[0, n) (host array, 1 <= n <= max_tokens, ids < vocab) into
 * out [n, dim] (any dtype; on the backend's device or on the host). */
dit_status dit_umt5_encode (dit_umt5 *t, const int32_t *ids, int n,
    dit_tensor *out);

/* Run only layers [0, num_layers) (tests: a 2-layer slice of the real
 * model); the final norm still applies.  0 = all. */
void dit_umt5_set_layer_limit (dit_umt5 *t, int num_layers);

#ifdef __cplusplus
}
#endif
#endif
