/* dit_philox — counter-based random numbers shared by every backend.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11) maps a 128-bit counter and a 64-bit key to four 32-bit words.
 * Because element i's value depends only on (key, counter), the CPU loop and
 * a CUDA thread per element produce the same bits, and any slice can be made
 * without the rest.
 *
 * Normal stream used by libdit (noise and synthetic weights):
 *   key      = seed (64 bits: low word k0, high word k1)
 *   counter  = { pair index lo, pair index hi, stream lo, stream hi }
 *   element 2p and 2p+1 come from pair p's first two words x0, x1:
 *     u1 = (x0 + 1) * 2^-32          in (0, 1]
 *     u2 = x1 * 2^-32                in [0, 1)
 *     r  = sqrt(-2 ln u1)            (f64)
 *     z0 = r cos(2π u2), z1 = r sin(2π u2), each rounded to f32
 * The header is usable from C and from CUDA (__host__ __device__).
 */
#ifndef DIT_PHILOX_H
#define DIT_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DIT_HD __host__ __device__ __forceinline__
#else
#define DIT_HD static inline
#endif

typedef struct dit_philox_out {
  uint32_t v[4];
} dit_philox_out;

DIT_HD uint32_t
dit_mulhilo32 (uint32_t a, uint32_t b, uint32_t *hi)
{
  uint64_t p = (uint64_t) a * (uint64_t) b;
  *hi = (uint32_t) (p >> 32);
  return (uint32_t) p;
}

DIT_HD dit_philox_out
dit_philox4x32_10 (uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
    uint32_t k0, uint32_t k1)
{
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = dit_mulhilo32 (0xD2511F53u, c0, &hi0);
    uint32_t lo1 = dit_mulhilo32 (0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  dit_philox_out o;
  o.v[0] = c0; o.v[1] = c1; o.v[2] = c2; o.v[3] = c3;
  return o;
}

/* The two normals of pair p in stream `stream` under key `seed`. */
DIT_HD void
dit_philox_normal_pair (uint64_t seed, uint64_t stream, uint64_t p,
    float *z0, float *z1)
{
  dit_philox_out o = dit_philox4x32_10 ((uint32_t) p, (uint32_t) (p >> 32),
      (uint32_t) stream, (uint32_t) (stream >> 32),
      (uint32_t) seed, (uint32_t) (seed >> 32));
  double u1 = ((double) o.v[0] + 1.0) * 2.3283064365386963e-10;
  double u2 = (double) o.v[1] * 2.3283064365386963e-10;
  double r = sqrt (-2.0 * log (u1));
  double a = 6.283185307179586 * u2;
  *z0 = (float) (r * cos (a));
  *z1 = (float) (r * sin (a));
}

/* Element i of the normal stream. */
DIT_HD float
dit_philox_normal (uint64_t seed, uint64_t stream, uint64_t i)
{
  float z0, z1;
  dit_philox_normal_pair (seed, stream, i >> 1, &z0, &z1);
  return (i & 1) ? z1 : z0;
}

#endif
