/* cuda_skip — the CUDA backend for a program that needs a GPU, or its
 * visible skip: without a CUDA device (or a build without the backend)
 * the program prints why and exits 77, which meson counts as a skip, not
 * a pass.
 */
#ifndef DIT_TEST_CUDA_SKIP_H
#define DIT_TEST_CUDA_SKIP_H

#include <stdio.h>
#include <stdlib.h>

#include "dit_backend.h"

/* The CUDA backend on device 0; else "SKIP: no CUDA device (why)" on
 * stdout and exit status 77. */
static inline dit_backend *
cuda_backend_or_skip (void)
{
  dit_backend *be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("SKIP: no CUDA device (%s)\n", dit_last_error ());
    exit (77);
  }
  return be;
}

#endif
