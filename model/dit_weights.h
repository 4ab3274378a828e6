/* dit_weights — a named set of parameter tensors on a backend, loaded from
 * a checkpoint strictly against an expected parameter list, or made by the
 * seeded synthetic initializer.
 *
 * Loading rules:
 *  - every expected name must be present (after key mapping), with exactly
 *    the expected shape (size-1 dims are NOT squeezed), and a float dtype
 *    (F32/BF16/F16), converted to the requested compute dtype at load;
 *  - every checkpoint key must map to an expected name (unexpected key =
 *    error), so a partial or mismatched checkpoint never loads silently;
 *  - errors name the file and the key: "<file>: key '<k>': shape [..]
 *    does not match expected [..]".
 *
 * Key mapping: a dit_key_map_fn rewrites a checkpoint key into the canonical
 * name (or returns 0 to keep it).  The DiT uses it to strip "model." and to
 * map Diffusers names (spec §3.4).
 *
 * Synthetic weights are a pure function of (seed, name, element index)
 * (Philox), so a slice of a tensor can be generated on its own and every
 * backend and machine gets identical values.
 */
#ifndef DIT_WEIGHTS_H
#define DIT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tensors keep the spec's shape; specs of more than DIT_MAX_DIMS dims (the
 * 5-D patch_embedding.weight) are viewed as 2-D [shape[0], prod(shape[1:])],
 * the GEMM layout of that convolution. */
typedef struct dit_weights {
  dit_backend *backend;
  dit_dtype dtype;
  size_t count;
  dit_param_spec *specs;   /* owned copy */
  dit_tensor *tensors;     /* tensors[i] matches specs[i]; backend memory */
  uint64_t fingerprint;    /* digest of names, shapes, dtype, sampled values */
  /* FP8 linear weights: tensors[i] of dtype f8e4m3 (codes [N, K]) has its
   * per-output-channel f32 scales [N] in scales[i] (data NULL otherwise);
   * see kernels/dit_ops.h, "FP8".  NULL when no tensor is FP8. */
  dit_tensor *scales;
  size_t fp8_count;        /* tensors stored as FP8 */
} dit_weights;

/* FP8 checkpoints and FP8 weights.
 *
 * Checkpoint tensors of dtype F8_E4M3 are accepted where `accept` says so
 * (the DiT: the blocks' linear weights), in the two published layouts:
 *  - plain cast: the codes alone, scale 1;
 *  - scaled: "<layer>.scale_weight" beside "<layer>.weight", one f32/bf16/
 *    f16 scale of shape [] or [1] (per tensor) or [N] (per output channel),
 *    value = code * scale; an optional "scaled_fp8" marker tensor and
 *    optional "<layer>.scale_input" (a static activation scale, unused:
 *    activation scales are computed per token) are accepted.
 * Refused, naming the file and key: F8_E5M2; an FP8 tensor where `accept`
 * does not allow one (embeddings, patch embedding, head, modulation, norms,
 * biases); in a scaled file an FP8 weight without its scale; a scale beside
 * a weight that is not FP8; a scale of another shape; a scale that is NaN,
 * infinite, zero or negative.
 *
 * Tensors `select` picks are kept as FP8 codes with per-output-channel
 * scales (FP8 checkpoint tensors as stored, the scale broadcast to every
 * channel; other sources quantized on the backend, kernels/dit_fp8.h);
 * every other FP8 checkpoint tensor is dequantized into the compute dtype. */
typedef int (*dit_fp8_select_fn) (const dit_param_spec *spec);

typedef struct dit_weights_fp8 {
  dit_fp8_select_fn accept;   /* may be F8_E4M3 in a checkpoint; NULL: none */
  dit_fp8_select_fn select;   /* kept as FP8 codes; NULL: none */
} dit_weights_fp8;

/* Returns 1 and writes the canonical name into buf when it rewrote `key`;
 * 0 to keep `key` unchanged. */
typedef int (*dit_key_map_fn) (const char *key, char *buf, size_t bufsize);

dit_status dit_weights_load (const char *path, const dit_param_spec *specs,
    size_t count, dit_key_map_fn map, dit_dtype dtype, dit_backend *be,
    dit_weights **out);
/* The same with FP8 checkpoint tensors and FP8 weights (fp8 may be NULL). */
dit_status dit_weights_load_ex (const char *path, const dit_param_spec *specs,
    size_t count, dit_key_map_fn map, dit_dtype dtype,
    const dit_weights_fp8 *fp8, dit_backend *be, dit_weights **out);

/* The checks of dit_weights_load (key set, shapes, dtypes, FP8 scales) on an
 * open set, without reading tensor data other than FP8 scales; `path` names
 * the set in messages.  accept: as dit_weights_fp8.accept. */
dit_status dit_weights_check (const dit_safetensors *st, const char *path,
    const dit_param_spec *specs, size_t count, dit_key_map_fn map);
dit_status dit_weights_check_fp8 (const dit_safetensors *st, const char *path,
    const dit_param_spec *specs, size_t count, dit_key_map_fn map,
    dit_fp8_select_fn accept);

/* The scale of row `row` of F8_E4M3 checkpoint tensor t (a weight that
 * passed dit_weights_check_fp8): its scale_weight's value for that row, or
 * 1 in a plain-cast file. */
float dit_checkpoint_fp8_scale (const dit_safetensors *st,
    const dit_st_tensor *t, int64_t row);

/* Store the tensors `select` picks as FP8 codes with per-output-channel
 * scales, quantized on the set's backend (each 2-D [N, K] tensor in turn,
 * freeing its original); the fingerprint is recomputed.  DIT_ERR_UNSUPPORTED
 * (dit_fp8_check's message) when the backend cannot run FP8. */
dit_status dit_weights_to_fp8 (dit_weights *w, dit_fp8_select_fn select);

/* The DiT's FP8 rules (spec §3.2 names): accept = the blocks' linear weights
 * (self- and cross-attention q, k, v, o, FFN 0 and 2); select = those of
 * them that run as FP8 GEMMs: all but cross-attention k and v (computed
 * once per prompt), with an input width that is a multiple of 128. */
int dit_model_fp8_accept (const dit_param_spec *spec);
int dit_model_fp8_select (const dit_param_spec *spec);

/* Seeded synthetic values for every spec.  Initialisation by name, first
 * matching rule wins:
 *  - "modulation": N(0,1) / sqrt(last dim)  (as WanModel initialises it)
 *  - ndim >= 2 "weight" (linear/conv): N(0, 1/fan_in), fan_in = prod(shape[1:])
 *  - names ending in "bias": 0.02 N(0,1)
 *  - names containing "norm" or "gamma" (norm scales): 1 + 0.1 N(0,1)
 *  - anything else: 0.02 N(0,1)
 * N(0,1) element i is dit_philox_normal (seed, FNV-1a-64 (name), i); the
 * value is computed in f64 and rounded once to f32, then to `dtype`. */
dit_status dit_weights_synthetic (const dit_param_spec *specs, size_t count,
    uint64_t seed, dit_dtype dtype, dit_backend *be, dit_weights **out);

/* Fill host buffer `dst` (dtype) with elements [begin, begin+n) of the
 * synthetic tensor `spec` (the same values dit_weights_synthetic gives). */
void dit_weights_synthetic_fill (const dit_param_spec *spec, uint64_t seed,
    int64_t begin, int64_t n, dit_dtype dtype, void *dst);

/* The same elements made in backend memory `dst` by the backend's
 * synthetic_normal entry (bit-identical to the host fill); DIT_ERR_UNSUPPORTED
 * on a backend without it. */
dit_status dit_weights_synthetic_fill_backend (const dit_param_spec *spec,
    uint64_t seed, int64_t begin, int64_t n, dit_dtype dtype, dit_backend *be,
    void *dst);

/* A set whose values come from `fill`: for tensor `index` (of specs),
 * write elements [begin, begin + n) in `dtype` into host memory `dst`
 * (at most 1 Mi elements per call).  Used for tensor-parallel shards, whose
 * slices come from a mapped checkpoint or from dit_weights_synthetic_fill
 * of the full tensor (mesh/dit_tp.c). */
typedef dit_status (*dit_weights_fill_fn) (void *user, size_t index,
    int64_t begin, int64_t n, dit_dtype dtype, void *dst);
dit_status dit_weights_from_fill (const dit_param_spec *specs, size_t count,
    dit_dtype dtype, dit_backend *be, dit_weights_fill_fn fill, void *user,
    dit_weights **out);

/* Synthetic values of the full tensors full[i] restricted to a shard: shard
 * element e of tensor i (specs[i]) is element map (user, i, e, &run) of
 * full[i], and so are the next run - 1 (a contiguous run of the full
 * tensor).  Values equal dit_weights_synthetic's for full[i] bit for bit;
 * made in backend memory, one synthetic_normal call per run, when the
 * backend has that entry, else on the host and uploaded. */
typedef int64_t (*dit_weights_map_fn) (void *user, size_t index, int64_t e,
    int64_t *run);
dit_status dit_weights_synthetic_mapped (const dit_param_spec *specs,
    const dit_param_spec *full, size_t count, dit_weights_map_fn map,
    void *user, uint64_t seed, dit_dtype dtype, dit_backend *be,
    dit_weights **out);

/* 64-bit FNV-1a, the hash of the weights' and the LoRAs' fingerprints:
 * h continued over n bytes, or over v as 8 little-endian bytes; a hash
 * starts at DIT_FNV1A64_OFFSET. */
#define DIT_FNV1A64_OFFSET 0xcbf29ce484222325ull
uint64_t dit_fnv1a64 (uint64_t h, const void *data, size_t n);
uint64_t dit_fnv1a64_u64 (uint64_t h, uint64_t v);

const dit_tensor *dit_weights_get (const dit_weights *w, const char *name);
/* Like get, but a DIT_ERR_INVALID naming the key when absent. */
dit_status dit_weights_require (const dit_weights *w, const char *name,
    const dit_tensor **out);

/* Tensor `name` as host f32 (malloc'd; the caller frees *host), downloaded
 * and converted from its dtype, for code that reorders or folds weights on
 * the host before it uploads them (dit_vae, dit_taehv).  Messages name the
 * tensor; callers prefix them with what they build. */
dit_status dit_weights_read_f32 (const dit_weights *w, const char *name,
    float **host);

void dit_weights_free (dit_weights *w);

/* Write weights (downloaded to host) as one safetensors file in `dtype`
 * (FP8 weights are dequantized into it). */
dit_status dit_weights_save (const dit_weights *w, const char *path,
    dit_dtype dtype, const char *const *metadata);

/* The DiT key mapper: strips a leading "model." and maps Diffusers names. */
int dit_model_key_map (const char *key, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif
