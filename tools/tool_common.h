/* tool_common — argument parsing and file helpers shared by the command-line
 * tools (not part of libdit's API). */
#ifndef DIT_TOOL_COMMON_H
#define DIT_TOOL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"
#include "safetensors.h"

int tool_parse_int (const char *s, int lo, int hi, int *out);
int tool_parse_u64 (const char *s, uint64_t *out);
int tool_parse_double (const char *s, double *out);
/* "HxW" (a latent grid: --latent-size) */
int tool_parse_size (const char *s, int *h, int *w);
/* "WxH" in pixels, both positive multiples of 16 (--size everywhere) */
int tool_parse_pixel_size (const char *s, int *width, int *height);
int tool_parse_dtype (const char *s, dit_dtype *out);
/* "f32", "bf16" or "fp8" (the DiT's precision, dit_config.h) */
int tool_parse_precision (const char *s, dit_precision *out);

/* "cpu", "cuda" or "cuda:N"; NULL with dit_last_error() set on failure. */
dit_backend *tool_backend (const char *device);

/* Preset name (synthetic weights) or checkpoint path, in a precision. */
dit_status tool_load_dit (const char *model, uint64_t seed,
    dit_precision precision, dit_backend *be, dit_model_config *cfg,
    dit_weights **out);

/* Read tensor `name` of a file as f32; checks ndim and, if shape != NULL,
 * the exact shape.  *rows receives shape[0]. */
dit_status tool_read_tensor_f32 (const char *path, const char *name, int ndim,
    const int64_t *shape, float **data, int64_t *rows);

/* A CPU tensor view of `name` in an open file, shape checked. */
dit_status tool_find_tensor (const dit_safetensors *st, const char *name,
    int ndim, const int64_t *shape, dit_tensor *out);

void tool_fill_normal (float *dst, size_t n, uint64_t seed, uint64_t stream);

#endif
