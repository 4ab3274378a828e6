/* dit_clock — the one clock gst-dit times itself with: Stage 0 and
 * generator stats, mesh deadlines and rank times, load progress and the
 * benchmarks.  Monotonic (a wall-clock step cannot make a chunk look
 * negative or a deadline pass early), in milliseconds as a double
 * (nanosecond resolution for the next hundred days of uptime). */
#ifndef DIT_CLOCK_H
#define DIT_CLOCK_H

#include <time.h>

static inline double
dit_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

#endif
