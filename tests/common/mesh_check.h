/* mesh_check — what the mesh tests (test-mesh, test-runner,
 * test-lora-mesh) check alike: a mesh's latents against a reference run
 * in process, and that no worker process outlives its test.
 */
#ifndef DIT_TEST_MESH_CHECK_H
#define DIT_TEST_MESH_CHECK_H

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>

/* Fails the calling subtest: prints FAIL file:line and the message, and
 * returns 1 from the calling function. */
#define FAIL(...) do { fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf (stderr, __VA_ARGS__); fprintf (stderr, "\n"); return 1; } while (0)

/* A mesh's latents against the same rollout in process: the TP and SP sums
 * add the same products in another order, so they differ by f32 rounding,
 * relative to the largest reference value. */
#define MESH_REL_LIMIT 2e-5

/* max |a - b| over n values; *ref receives max |b|. */
static inline double
max_abs_diff (const float *a, const float *b, size_t n, double *ref)
{
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    m = fmax (m, fabs (b[i]));
    d = fmax (d, fabs ((double) a[i] - b[i]));
  }
  *ref = m;
  return d;
}

/* diff within MESH_REL_LIMIT of ref, and ref well above 0 (a reference of
 * zeros would let any output pass). */
static inline int
within_mesh_limit (double diff, double ref)
{
  return ref > 0.1 && diff <= MESH_REL_LIMIT * ref;
}

/* 1 when the test has no child process left (every worker it spawned was
 * reaped), else 0 with the pid that is left. */
static inline int
no_children_left (void)
{
  int st;
  pid_t p = waitpid (-1, &st, WNOHANG);
  if (p == -1 && errno == ECHILD)
    return 1;
  fprintf (stderr, "a child process is left (waitpid -> %d)\n", (int) p);
  return 0;
}

#endif
