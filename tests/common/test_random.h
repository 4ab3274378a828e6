/* test_random — deterministic test data for the C test programs.  Fixed
 * generators and seeds, so a failure reproduces and a program draws the
 * same values on every machine; none of them is the code under test.
 *
 *  - frand / urand: the program's xorshift64* stream (test_rng);
 *  - lcg64_unit: a 64-bit LCG on a caller's state, for data a test makes
 *    apart from that stream (prompts, per-case inputs);
 *  - fill_uniform: a buffer from a 32-bit LCG and a seed of its own, for
 *    data that must not depend on what was drawn before (video frames).
 */
#ifndef DIT_TEST_RANDOM_H
#define DIT_TEST_RANDOM_H

#include <stdint.h>

/* xorshift64* (Vigna): 64 bits per step from a non-zero state. */
static inline uint64_t
xorshift64s (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

/* The program's stream.  A program that needs another sequence sets it in
 * main before the first draw. */
static uint64_t test_rng = 0x9e3779b97f4a7c15ull;

/* Uniform in [0, 1) from test_rng: the top 53 bits of a step. */
static inline double
urand (void)
{
  return (double) (xorshift64s (&test_rng) >> 11) / 9007199254740992.0;
}

/* Uniform in [-1, 1) from test_rng. */
static inline float
frand (void)
{
  return (float) (2.0 * urand () - 1.0);
}

/* Uniform in [0, 1) from a 64-bit LCG (Knuth's MMIX constants) on *s. */
static inline double
lcg64_unit (uint64_t *s)
{
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (double) (*s >> 11) / 9007199254740992.0;
}

/* p[0..n) uniform in [-1, 1) from a 32-bit LCG (Numerical Recipes'
 * constants) started at `seed`: the same seed gives the same buffer. */
static inline void
fill_uniform (float *p, int64_t n, uint32_t seed)
{
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float) (seed >> 8) / 8388608.0f - 1.0f;
  }
}

#endif
