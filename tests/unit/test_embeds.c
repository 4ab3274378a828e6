/* test_embeds — dit_stream_load_embeds: rows read back as written (f32),
 * the tensor found by name or as the only one, a
 * leading batch dim of 1 dropped; and the errors: the wrong width, too
 * many rows, no usable tensor, a missing file.  Each error must name the
 * file, and the shape error the tensor (read from the file's header: under
 * valgrind a name read after the file is closed is an invalid read).
 */
#include "dit_stream.h"
#include "safetensors.h"
#include "../common/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One tensor `name` of `ndim` dims (shape) and f32 values i * 0.25. */
static void
write_one (const char *path, const char *name, int ndim, const int64_t *shape,
    float *data)
{
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  for (int64_t i = 0; i < n; i++)
    data[i] = 0.25f * (float) i;
  dit_st_write_tensor t = { name, DIT_F32, ndim, shape, data };
  CHECK (dit_safetensors_write (path, &t, 1, NULL) == DIT_OK, "write %s: %s",
      path, dit_last_error ());
}

static void
expect_rows (const char *path, int dim, int want_rows, const char *what)
{
  float *rows = NULL;
  int n = 0;
  dit_status s = dit_stream_load_embeds (path, dim, 512, &rows, &n);
  CHECK (s == DIT_OK, "%s: %s", what, dit_last_error ());
  if (s != DIT_OK)
    return;
  CHECK (n == want_rows, "%s: %d rows, want %d", what, n, want_rows);
  for (int i = 0; i < n * dim; i++)
    if (rows[i] != 0.25f * (float) i) {
      CHECK (0, "%s: value %d is %g, want %g", what, i, rows[i], 0.25f * i);
      break;
    }
  free (rows);
}

static void
expect_error (const char *path, int dim, int len, const char *a,
    const char *b, const char *what)
{
  float *rows = NULL;
  int n = 0;
  dit_status s = dit_stream_load_embeds (path, dim, len, &rows, &n);
  const char *msg = dit_last_error ();
  CHECK (s != DIT_OK && rows == NULL, "%s: loaded", what);
  CHECK (strstr (msg, a) && (!b || strstr (msg, b)), "%s: message '%s' lacks "
      "'%s'%s%s", what, msg, a, b ? " or " : "", b ? b : "");
  free (rows);
}

int
main (void)
{
  char dir[] = "/tmp/test-embeds-XXXXXX";
  char path[256];
  float data[4 * 64 + 8];

  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (path, sizeof path, "%s/e.safetensors", dir);

  int64_t s2[2] = { 4, 64 };
  write_one (path, "prompt_embeds", 2, s2, data);
  expect_rows (path, 64, 4, "prompt_embeds [4, 64]");

  int64_t s3[3] = { 1, 3, 64 };
  write_one (path, "context", 3, s3, data);
  expect_rows (path, 64, 3, "context [1, 3, 64] (batch dim dropped)");

  write_one (path, "anything", 2, s2, data);
  expect_rows (path, 64, 4, "the only tensor, any name");

  int64_t narrow[2] = { 4, 32 };
  write_one (path, "prompt_embeds", 2, narrow, data);
  expect_error (path, 64, 512, "prompt_embeds", "last dim 32",
      "[4, 32] for width 64");

  int64_t many[2] = { 4, 64 };
  write_one (path, "embeds", 2, many, data);
  expect_error (path, 64, 3, "embeds", "rows <= 3", "4 rows for at most 3");

  /* two tensors, neither named: nothing to choose */
  {
    int64_t sa[2] = { 2, 64 }, sb[2] = { 2, 64 };
    dit_st_write_tensor t[2] = { { "a", DIT_F32, 2, sa, data },
    { "b", DIT_F32, 2, sb, data + 8 } };
    CHECK (dit_safetensors_write (path, t, 2, NULL) == DIT_OK, "write: %s",
        dit_last_error ());
    expect_error (path, 64, 512, path, "no tensor named",
        "two unnamed tensors");
  }

  unlink (path);
  expect_error (path, 64, 512, path, NULL, "missing file");
  rmdir (dir);

  if (failures) {
    printf ("test_embeds: %d failure(s)\n", failures);
    return 1;
  }
  printf ("test_embeds: ok\n");
  return 0;
}
