/* dit_t5_bucket — the T5 relative-position bucket (spec §6.4), shared by the
 * CPU and CUDA attention kernels and the umT5 encoder.
 *
 * rel = key position - query position.  Bidirectional (the encoder): half of
 * the buckets are for keys after the query (offset num_buckets / 2), the
 * other half for keys at or before it; within a half, distances below
 * max_exact = half / 2 get one bucket each and larger ones share
 * logarithmically spaced buckets up to max_distance, the last bucket taking
 * everything beyond.  For 32 buckets and max distance 128 the distance part
 * is: 0-7 -> 0-7, 8-11 -> 8, 12-15 -> 9, 16-22 -> 10, 23-31 -> 11,
 * 32-45 -> 12, 46-63 -> 13, 64-90 -> 14, >= 91 -> 15.
 *
 * Precision: the reference computes log(a / max_exact) / log(max_distance /
 * max_exact) * (half - max_exact) in float32 and truncates.  At a = 16, 32,
 * 64 the real value is an integer, which float32 happens to hit exactly; in
 * f64 the quotient can land one ulp below it.  The 1e-6 nudge before the
 * truncation puts those boundaries in the upper bucket (as the reference
 * does) and is far smaller than the distance of any other integer distance
 * from a bucket boundary (the closest, a = 91, is 0.015 away).
 */
#ifndef DIT_T5_BUCKET_H
#define DIT_T5_BUCKET_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DIT_T5_FN static __host__ __device__ __forceinline__
#else
#define DIT_T5_FN static inline
#endif

DIT_T5_FN int
dit_t5_bucket (int64_t rel, int num_buckets, int max_distance, int bidirectional)
{
  int ret = 0;
  int64_t a;
  if (bidirectional) {
    num_buckets /= 2;
    if (rel > 0)
      ret = num_buckets;
    a = rel < 0 ? -rel : rel;
  } else {
    a = rel < 0 ? -rel : 0;
  }
  const int max_exact = num_buckets / 2;
  if (a < max_exact)
    return ret + (int) a;
  double v = log ((double) a / max_exact) / log ((double) max_distance / max_exact)
      * (double) (num_buckets - max_exact) + 1e-6;
  int large = max_exact + (v < (double) num_buckets ? (int) v : num_buckets);
  if (large > num_buckets - 1)
    large = num_buckets - 1;
  return ret + large;
}

#undef DIT_T5_FN
#endif
