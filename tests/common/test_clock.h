/* test_clock — wall time for the test and lab programs that print or
 * bound how long a step took. */
#ifndef DIT_TEST_CLOCK_H
#define DIT_TEST_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in milliseconds: only differences mean anything. */
static inline double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

#endif
