/* test_stream_load — dit_stream_load on the CPU backend with small chunks:
 * tensors larger than a chunk, several tensors per chunk, gaps between
 * them, two files, items given out of file order, dtype conversion through
 * the staging buffer, a place hook, and the errors (missing file, a range
 * past the end of the file).  Every loaded byte is compared with what was
 * written.
 */
#include "dit_backend.h"
#include "dit_stream_load.h"
#include "../common/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t) rng;
}

/* A file of `n` f32 values; returns them (malloc). */
static float *
write_file (const char *path, size_t n)
{
  float *v = malloc (n * sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = (float) ((int32_t) rnd ()) / 65536.0f;
  FILE *f = fopen (path, "wb");
  fwrite (v, sizeof *v, n, f);
  fclose (f);
  return v;
}

typedef struct place_log {
  int calls;
  size_t last_index;
} place_log;

/* A place hook that negates (so its work is visible) and logs. */
static dit_status
place_negate (void *user, dit_backend *be, const dit_load_item *item,
    const dit_tensor *staged)
{
  place_log *log = user;
  log->calls++;
  log->last_index = item->index;
  const int64_t n = dit_tensor_numel (staged);
  for (int64_t i = 0; i < n; i++) {
    float v = dit_load_f32 (staged->data, staged->dtype, (size_t) i);
    dit_store_f32 (item->dst->data, item->dst->dtype, (size_t) i, -v);
  }
  (void) be;
  return DIT_OK;
}

int
main (void)
{
  dit_backend *be = dit_backend_cpu ();
  char dir[] = "/tmp/test-stream-load-XXXXXX";
  if (!mkdtemp (dir)) {
    printf ("cannot make a temporary directory\n");
    return 1;
  }
  char pa[256], pb[256];
  snprintf (pa, sizeof pa, "%s/a.bin", dir);
  snprintf (pb, sizeof pb, "%s/b.bin", dir);
  const size_t na = 20000, nb = 3000;
  float *va = write_file (pa, na), *vb = write_file (pb, nb);

  /* file a: t0 [0, 5000) f32 -> f32 (spans chunks of 4 KiB = 1024 floats),
   * t1 [5000, 5010) small, t2 [5010, 5100) -> bf16 (staged, converted),
   * gap, t3 [9000, 20000) f32; file b: t4 [100, 2900) f32.  Given out of
   * order. */
  struct { const char *file; size_t first, n; dit_dtype dt; } spec[5] = {
    { pb, 100, 2800, DIT_F32 }, { pa, 5010, 90, DIT_BF16 },
    { pa, 0, 5000, DIT_F32 }, { pa, 9000, 11000, DIT_F32 },
    { pa, 5000, 10, DIT_F32 },
  };
  dit_tensor dst[5];
  dit_load_item items[5];
  for (int i = 0; i < 5; i++) {
    int64_t n = (int64_t) spec[i].n;
    dit_tensor_alloc (be, &dst[i], spec[i].dt, 1, &n);
    memset (dst[i].data, 0xa5, dit_tensor_nbytes (&dst[i]));
    items[i] = (dit_load_item) { spec[i].file, spec[i].first * 4,
      spec[i].n * 4, DIT_F32, &dst[i], (size_t) i };
  }
  dit_load_stats stats;
  dit_status st = dit_stream_load_chunked (be, items, 5, NULL, NULL, 4096,
      &stats);
  CHECK (st == DIT_OK, "load: %s", dit_last_error ());
  for (int i = 0; i < 5 && st == DIT_OK; i++) {
    const float *src = (spec[i].file == pa ? va : vb) + spec[i].first;
    int same = 1;
    for (size_t k = 0; k < spec[i].n; k++) {
      float want = dit_load_f32 (src, DIT_F32, k);
      if (spec[i].dt == DIT_BF16)
        want = dit_bf16_to_f32 (dit_f32_to_bf16 (want));
      same &= dit_load_f32 (dst[i].data, spec[i].dt, k) == want;
    }
    CHECK (same, "tensor %d (%s [%zu, +%zu) as %s) differs", i,
        spec[i].file == pa ? "a" : "b", spec[i].first, spec[i].n,
        dit_dtype_name (spec[i].dt));
  }
  /* the gap 5100..9000 (15.6 KB) does not fit the 4 KiB chunk it would
   * extend: a new chunk starts at 9000 and the gap is not read (5 + 11 + 3
   * chunks for the three long tensors, the short ones join a chunk) */
  CHECK (stats.chunks >= 19 && stats.bytes == (double) (5100 + 11000 + 2800) * 4,
      "%d chunks, %.0f bytes", stats.chunks, stats.bytes);

  /* a place hook: every item is staged and placed once */
  place_log log = { 0, 0 };
  st = dit_stream_load_chunked (be, items, 5, place_negate, &log, 4096, NULL);
  CHECK (st == DIT_OK && log.calls == 5, "place: %d calls (%s)", log.calls,
      st == DIT_OK ? "ok" : dit_last_error ());
  CHECK (dit_load_f32 (dst[3].data, DIT_F32, 7) == -va[9007],
      "placed value %g, want %g", dit_load_f32 (dst[3].data, DIT_F32, 7),
      -va[9007]);

  /* errors: a range past the end, a missing file */
  dit_load_item bad = { pb, 2000 * 4, 2800 * 4, DIT_F32, &dst[0], 0 };
  st = dit_stream_load_chunked (be, &bad, 1, NULL, NULL, 4096, NULL);
  CHECK (st != DIT_OK && strstr (dit_last_error (), "b.bin")
      && strstr (dit_last_error (), "end of file"),
      "read past the end: '%s'", dit_last_error ());
  char missing[300];
  snprintf (missing, sizeof missing, "%s/none.bin", dir);
  dit_load_item gone = { missing, 0, 2800 * 4, DIT_F32, &dst[0], 0 };
  st = dit_stream_load_chunked (be, &gone, 1, NULL, NULL, 4096, NULL);
  CHECK (st == DIT_ERR_IO && strstr (dit_last_error (), "none.bin"),
      "missing file: '%s'", dit_last_error ());
  dit_load_item wrong = { pa, 0, 12, DIT_F32, &dst[0], 0 };
  st = dit_stream_load_chunked (be, &wrong, 1, NULL, NULL, 4096, NULL);
  CHECK (st == DIT_ERR_INVALID, "a byte count that does not match the "
      "destination must be refused");

  for (int i = 0; i < 5; i++)
    dit_tensor_free (be, &dst[i]);
  free (va);
  free (vb);
  unlink (pa);
  unlink (pb);
  rmdir (dir);
  printf ("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
