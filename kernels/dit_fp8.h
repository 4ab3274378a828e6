/* dit_fp8 — the e4m3 number format and the scale rule every FP8 op shares.
 *
 * Format: OCP FP8 E4M3FN ("F8_E4M3" in safetensors, torch.float8_e4m3fn,
 * CUDA's __NV_E4M3): 1 sign, 4 exponent (bias 7) and 3 mantissa bits, no
 * infinities, one NaN pattern per sign (S.1111.111).  Normal values are
 * (1 + m/8) 2^(e-7) for e = 1..15 (largest 448 = 0x7e), subnormals m 2^-9
 * (smallest 2^-9, 0x01).
 *
 * Conversion from f32 (dit_f32_to_e4m3) is what the tensor cores' cvt does
 * with .rn.satfinite: one rounding to nearest, ties to even, directly from
 * the f32 value; anything above 448 (infinity included) saturates to ±448;
 * NaN becomes the canonical 0x7f.  e4m3 -> f32 is exact.
 *
 * Scale rule (per block of values that share a scale: an output channel of
 * a weight, 128 channels of one token of an activation):
 *   a     = max(amax of the block, DIT_FP8_AMAX_FLOOR)
 *   scale = a / 448            (what the GEMM multiplies back)
 *   q     = e4m3(x * (448 / a))
 * Both quotients are IEEE divisions, so every backend gets the same bits.
 * Because |x| <= amax, |x * 448 / a| exceeds 448 by at most one rounding,
 * which the saturation absorbs: a finite input never produces a non-finite
 * or out-of-range code, whatever its outliers (1e4 beside 1e-4 gives the
 * 1e-4 a code of 0, not a NaN).  The floor keeps 448 / a finite for an
 * all-zero block (every code 0, scale 2^-100 / 448: tiny, finite).
 */
#ifndef DIT_FP8_H
#define DIT_FP8_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_FP8_MAX 448.0f
/* 2^-100: small enough for any real block, large enough that 448 / a and
 * a / 448 stay normal f32 numbers */
#define DIT_FP8_AMAX_FLOOR 7.8886090522101181e-31f
/* Activation scales cover 128 channels of one token (one attention head). */
#define DIT_FP8_BLOCK 128

static inline uint8_t
dit_f32_to_e4m3 (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  uint8_t sign = (uint8_t) ((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u)
    return 0x7f;                    /* NaN: canonical */
  if (a > 0x43e00000u)              /* above 448 (infinity included) */
    return sign | 0x7e;
  if (a < 0x3c800000u) {            /* below 2^-6: subnormal codes m 2^-9 */
    float v;
    memcpy (&v, &a, 4);
    /* v * 512 < 8 is exact; rounding it to an integer is the e4m3 rounding
     * (8 becomes 0x08, the smallest normal, by itself) */
    return sign | (uint8_t) nearbyintf (v * 512.0f);
  }
  /* normal: rebias the exponent (127 -> 7) and round 23 mantissa bits to 3,
   * ties to even; a carry moves into the exponent as it should */
  uint32_t r = a - ((uint32_t) (127 - 7) << 23);
  r += 0x7ffffu + ((r >> 20) & 1u);
  r >>= 20;
  return sign | (uint8_t) (r > 0x7eu ? 0x7eu : r);
}

static inline float
dit_e4m3_to_f32 (uint8_t b)
{
  int e = (b >> 3) & 0xf, m = b & 7;
  float v;
  if (e == 0xf && m == 7)
    v = NAN;
  else if (e == 0)
    v = ldexpf ((float) m, -9);
  else
    v = ldexpf ((float) (8 + m), e - 10);
  return (b & 0x80) ? -v : v;
}

/* The scale of a block whose largest magnitude is amax (NaN-free amax). */
static inline float
dit_fp8_scale (float amax)
{
  float a = amax > DIT_FP8_AMAX_FLOOR ? amax : DIT_FP8_AMAX_FLOOR;
  return a / DIT_FP8_MAX;
}

/* The factor that maps the block into [-448, 448] before rounding. */
static inline float
dit_fp8_inv_scale (float amax)
{
  float a = amax > DIT_FP8_AMAX_FLOOR ? amax : DIT_FP8_AMAX_FLOOR;
  return DIT_FP8_MAX / a;
}

#ifdef __cplusplus
}
#endif
#endif
