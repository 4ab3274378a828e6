/* ok_or_exit — the check of the lab programs (benchmarks), which stop at
 * the first failed call: C and CUDA C++ alike.
 */
#ifndef DIT_TEST_OK_OR_EXIT_H
#define DIT_TEST_OK_OR_EXIT_H

#include <stdio.h>
#include <stdlib.h>

#include "dit_status.h"

/* x returns a dit_status; anything but DIT_OK prints "file:line: x: the
 * last error" on stderr and exits 1. */
#define OK_OR_EXIT(x)                                                         \
  do {                                                                        \
    if ((x) != DIT_OK) {                                                      \
      fprintf (stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,             \
          dit_last_error ());                                                 \
      exit (1);                                                               \
    }                                                                         \
  } while (0)

#endif
