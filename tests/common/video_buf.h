/* video_buf — host f32 video tensors for the autoencoder tests (WanVAE,
 * TAEHV): pixels [3, T, H, W] and latents [16, T, h, w], channels first,
 * frames as dimension 1, and the peak RSS the bounded-memory checks read.
 */
#ifndef DIT_TEST_VIDEO_BUF_H
#define DIT_TEST_VIDEO_BUF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_tensor.h"

typedef struct buf4 {
  float *data;     /* zeroed; the caller frees it */
  dit_tensor t;    /* [c, t, h, w] over data */
  int64_t n;       /* c * t * h * w */
} buf4;

static inline buf4
video_buf (int64_t c, int64_t t, int64_t h, int64_t w)
{
  buf4 b;
  int64_t s[4] = { c, t, h, w };
  b.n = c * t * h * w;
  b.data = calloc ((size_t) b.n, sizeof (float));
  b.t = dit_tensor_make (b.data, DIT_F32, DIT_DEVICE_CPU, 4, s);
  return b;
}

/* frames [f0, f0 + n) of a [C, T, H, W] tensor, as a view */
static inline dit_tensor
frame_range (const dit_tensor *t, int64_t f0, int64_t n)
{
  dit_tensor s = *t;
  s.data = (float *) t->data + f0 * t->stride[1];
  s.shape[1] = n;
  return s;
}

/* The process's peak resident set (VmHWM) in kB, -1 when unknown. */
static inline long
peak_rss_kb (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f)
    return -1;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, "VmHWM:", 6) == 0)
      kb = strtol (line + 6, NULL, 10);
  fclose (f);
  return kb;
}

#endif
