/* gpu_check — what the CUDA test programs in tests/gpu check alike: a
 * device result against the CPU backend's (the reference oracle) by NMSE,
 * one printed line per comparison, an exit at a failed setup step, and
 * their test data.  A program counts its failed checks in `failures` and
 * returns 1 when it is not 0; cuda_backend_or_skip (cuda_skip.h) opens
 * the device or skips with 77.
 */
#ifndef DIT_TEST_GPU_CHECK_H
#define DIT_TEST_GPU_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dit_backend.h"
#include "cuda_skip.h"

/* The failed comparisons.  The same counter as check.h's (a tentative
 * definition: a program may include both). */
static int failures;

/* A setup step that must succeed: else "FAIL what: last error" on stderr
 * and exit status 1. */
static inline void
die_if (dit_status st, const char *what)
{
  if (st != DIT_OK) {
    fprintf (stderr, "FAIL %s: %s\n", what, dit_last_error ());
    exit (1);
  }
}

/* ||a - ref||^2 / ||ref||^2 over n values (the plain squared error when
 * ref is all zeros); INFINITY when a holds a NaN or an infinity, so that
 * a non-finite result fails every limit. */
static inline double
nmse (const float *a, const float *ref, size_t n)
{
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite (a[i]))
      return INFINITY;
    const double d = (double) a[i] - ref[i];
    num += d * d;
    den += (double) ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

/* One result line: the label padded to `width` columns (each program keeps
 * its own), ok or FAIL, the NMSE and its limit; a FAIL counts. */
static inline void
report (int width, const char *label, double e, double limit)
{
  const int ok = e <= limit;
  printf ("%-*s %s (nmse %.3e, limit %.0e)\n", width, label,
      ok ? "ok" : "FAIL", e, limit);
  if (!ok)
    failures++;
}

/* A tensor of dtype dt and the given shape on be holding the host f32
 * values, rounded to dt. */
static inline dit_tensor
upload_as (dit_backend *be, const float *host, dit_dtype dt, int ndim,
    const int64_t *shape)
{
  dit_tensor t;
  die_if (dit_tensor_alloc (be, &t, dt, ndim, shape), "alloc");
  const size_t n = (size_t) dit_tensor_numel (&t);
  void *tmp = malloc (n * dit_dtype_size (dt) + 1);   /* not malloc (0) */
  dit_convert (tmp, dt, host, DIT_F32, n);
  die_if (be->ops->upload (be, t.data, tmp, n * dit_dtype_size (dt)), "upload");
  free (tmp);
  return t;
}

/* Uniform in [-1, 1) and exact in bf16, from a 64-bit LCG (Knuth's MMIX
 * constants) on *s: conv operands that the bf16 tensor-core paths and the
 * CPU's f32 conv see alike. */
static inline float
bf16_rand (uint64_t *s)
{
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return dit_bf16_to_f32 (dit_f32_to_bf16 ((float) ((*s >> 40)
              / (double) (1ull << 24)) * 2.0f - 1.0f));
}

#endif
