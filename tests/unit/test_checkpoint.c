/* test_checkpoint — safetensors reader/writer, strict weight loading, key
 * mapping, synthetic weights and the JSON parser.
 *
 * Good files: the tiny preset written in F32, BF16 and F16, with "model."
 * prefixes, with Diffusers names, as an index + 2 shards, and through a
 * directory, each loaded and compared value by value.  Bad files: one per
 * failure class; each must fail with the right status and a message naming
 * the file and the key.  Bad files are built by a raw writer in this file
 * (not the library writer), so the reader is also checked against an
 * independent encoder.  Synthetic values are checked against an independent
 * evaluation of the documented rule (FNV-1a written here, Philox checked
 * against the Random123 known-answer vector).
 */
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dit_backend.h"
#include "dit_config.h"
#include "dit_loader.h"
#include "dit_philox.h"
#include "dit_umt5.h"
#include "dit_weights.h"
#include "json.h"
#include "safetensors.h"

static int failures;
static char tmpdir[64];
static dit_backend *be;

#define CHECK(cond, ...) do { \
    if (!(cond)) { \
      fprintf (stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf (stderr, __VA_ARGS__); \
      fprintf (stderr, "\n"); \
      failures++; \
    } \
  } while (0)

/* ------------------------------------------------------------------------ */
/* fixtures */

static dit_param_spec *specs;
static size_t nspecs;
static float **expect_f32;      /* synthetic values, seed SEED, per spec */
#define SEED 7u

static int64_t
numel (const dit_param_spec *s)
{
  int64_t n = 1;
  for (int d = 0; d < s->ndim; d++)
    n *= s->shape[d];
  return n;
}

static size_t
find_spec (const char *name)
{
  for (size_t i = 0; i < nspecs; i++)
    if (strcmp (specs[i].name, name) == 0)
      return i;
  fprintf (stderr, "test bug: no spec %s\n", name);
  exit (1);
}

static void
tpath (char *buf, size_t size, const char *name)
{
  snprintf (buf, size, "%s/%s", tmpdir, name);
}

/* expected value of element j of spec i after storing in dtype dt */
static float
expected (size_t i, int64_t j, dit_dtype dt)
{
  float v = expect_f32[i][j];
  switch (dt) {
    case DIT_F32: return v;
    case DIT_BF16: return dit_bf16_to_f32 (dit_f32_to_bf16 (v));
    default: return dit_f16_to_f32 (dit_f32_to_f16 (v));
  }
}

typedef const char *(*rename_fn) (const char *name, char *buf, size_t size);

/* Writes the n tensors of wt with the library writer, then frees what the
 * caller allocated for them: each tensor's data (bufs), the names and the
 * arrays. */
static dit_status
write_and_free (const char *path, dit_st_write_tensor *wt, size_t n,
    const char *const *meta, void **bufs, void *names)
{
  dit_status st = dit_safetensors_write (path, wt, n, meta);
  for (size_t i = 0; i < n; i++)
    free (bufs[i]);
  free (bufs);
  free (names);
  free (wt);
  return st;
}

/* Writes the tiny checkpoint (all specs except `skip`) with the library
 * writer in `dt`, names passed through `rn`. */
static dit_status
write_tiny (const char *path, dit_dtype dt, rename_fn rn, const char *skip,
    size_t first, size_t last)
{
  dit_st_write_tensor *wt = calloc (nspecs, sizeof *wt);
  char (*names)[160] = calloc (nspecs, sizeof *names);
  void **bufs = calloc (nspecs, sizeof *bufs);
  size_t n = 0;
  for (size_t i = first; i < last; i++) {
    if (skip && strcmp (specs[i].name, skip) == 0)
      continue;
    size_t e = (size_t) numel (&specs[i]);
    bufs[n] = malloc (e * dit_dtype_size (dt));
    dit_convert (bufs[n], dt, expect_f32[i], DIT_F32, e);
    wt[n].name = rn ? rn (specs[i].name, names[n], sizeof names[n]) : specs[i].name;
    wt[n].dtype = dt;
    wt[n].ndim = specs[i].ndim;
    wt[n].shape = specs[i].shape;
    wt[n].data = bufs[n];
    n++;
  }
  const char *meta[] = { "format", "gst-dit", "note", "quote \" and \\ and \n", NULL };
  return write_and_free (path, wt, n, meta, bufs, names);
}

/* Every element of every tensor of w equals the synthetic value rounded
 * through file dtype `file_dt` and then the compute dtype. */
static void
check_values (const dit_weights *w, dit_dtype file_dt, const char *what)
{
  int bad = 0;
  CHECK (w->count == nspecs, "%s: %zu tensors", what, w->count);
  for (size_t i = 0; i < w->count && !bad; i++) {
    const dit_tensor *t = &w->tensors[i];
    size_t e = (size_t) dit_tensor_numel (t);
    void *host = malloc (e * dit_dtype_size (w->dtype));
    CHECK (strcmp (w->specs[i].name, specs[i].name) == 0, "%s: order", what);
    CHECK (e == (size_t) numel (&specs[i]), "%s: numel of %s", what, specs[i].name);
    be->ops->download (be, host, t->data, e * dit_dtype_size (w->dtype));
    for (size_t j = 0; j < e && !bad; j++) {
      float want = expected (i, (int64_t) j, file_dt);
      if (w->dtype == DIT_BF16)
        want = dit_bf16_to_f32 (dit_f32_to_bf16 (want));
      else if (w->dtype == DIT_F16)
        want = dit_f16_to_f32 (dit_f32_to_f16 (want));
      float got = dit_load_f32 (host, w->dtype, j);
      if (memcmp (&got, &want, 4) != 0) {
        CHECK (0, "%s: %s[%zu] = %.9g, expected %.9g", what, specs[i].name, j,
            got, want);
        bad = 1;
      }
    }
    free (host);
  }
}

static int
contains (const char *hay, const char *needle)
{
  return needle == NULL || strstr (hay, needle) != NULL;
}

#define EXPECT_FAIL(expr, want_status, n1, n2, n3) do { \
    dit_clear_error (); \
    dit_status st_ = (expr); \
    const char *msg_ = dit_last_error (); \
    if (getenv ("DIT_TEST_VERBOSE")) \
      fprintf (stderr, "expected failure: %s\n", msg_); \
    CHECK (st_ == (want_status), "%s returned %s (want %s): %s", #expr, \
        dit_status_name (st_), dit_status_name (want_status), msg_); \
    CHECK (contains (msg_, n1) && contains (msg_, n2) && contains (msg_, n3), \
        "message '%s' lacks '%s' / '%s' / '%s'", msg_, n1 ? n1 : "", \
        n2 ? n2 : "", n3 ? n3 : ""); \
  } while (0)

static dit_status
load (const char *path, dit_key_map_fn map, dit_dtype dt, dit_weights **w)
{
  return dit_weights_load (path, specs, nspecs, map, dt, be, w);
}

/* load and expect failure: *out must stay NULL */
static dit_status
load_bad (const char *path)
{
  dit_weights *w = (dit_weights *) 1;
  dit_status st = load (path, dit_model_key_map, DIT_F32, &w);
  if (st == DIT_OK)
    dit_weights_free (w);
  else
    CHECK (w == NULL, "failed load left *out set");
  return st;
}

/* Loads `path` into compute dtype dt and checks every value against the
 * synthetic ones stored in file dtype file_dt. */
static void
load_and_check (const char *path, dit_key_map_fn map, dit_dtype dt,
    dit_dtype file_dt, const char *what)
{
  dit_weights *w = NULL;
  CHECK (load (path, map, dt, &w) == DIT_OK, "load %s: %s", what,
      dit_last_error ());
  if (w) {
    CHECK (w->dtype == dt && w->tensors[0].dtype == dt, "%s: compute dtype "
        "%s, tensor dtype %s", what, dit_dtype_name (w->dtype),
        dit_dtype_name (w->tensors[0].dtype));
    check_values (w, file_dt, what);
    dit_weights_free (w);
  }
}

/* ------------------------------------------------------------------------ */
/* raw writer: an independent encoder for malformed files */

typedef struct raw_tensor {
  char name[160];
  const char *dtype;
  int ndim;
  int64_t shape[5];
  int64_t begin, end;
} raw_tensor;

typedef struct raw_file {
  raw_tensor *t;
  size_t n;
  int64_t data_size;
} raw_file;

static raw_file
raw_tiny (void)
{
  raw_file f;
  f.t = calloc (nspecs, sizeof *f.t);
  f.n = nspecs;
  int64_t off = 0;
  for (size_t i = 0; i < nspecs; i++) {
    raw_tensor *t = &f.t[i];
    snprintf (t->name, sizeof t->name, "%s", specs[i].name);
    t->dtype = "F32";
    t->ndim = specs[i].ndim;
    memcpy (t->shape, specs[i].shape, sizeof t->shape);
    t->begin = off;
    t->end = off + numel (&specs[i]) * 4;
    off = t->end;
  }
  f.data_size = off;
  return f;
}

static raw_tensor *
raw_find (raw_file *f, const char *name)
{
  for (size_t i = 0; i < f->n; i++)
    if (strcmp (f->t[i].name, name) == 0)
      return &f->t[i];
  fprintf (stderr, "test bug: no raw tensor %s\n", name);
  exit (1);
}

static char *
raw_header (const raw_file *f)
{
  size_t cap = 64 + f->n * 256, o = 0;
  char *h = malloc (cap);
  o += (size_t) snprintf (h + o, cap - o, "{\"__metadata__\": {\"format\": \"pt\"}");
  for (size_t i = 0; i < f->n; i++) {
    const raw_tensor *t = &f->t[i];
    o += (size_t) snprintf (h + o, cap - o, ",\n \"%s\": {\"dtype\": \"%s\", \"shape\": [",
        t->name, t->dtype);
    for (int d = 0; d < t->ndim; d++)
      o += (size_t) snprintf (h + o, cap - o, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    o += (size_t) snprintf (h + o, cap - o, "], \"data_offsets\": [%" PRId64 ", %" PRId64 "]}",
        t->begin, t->end);
  }
  snprintf (h + o, cap - o, "}");
  return h;
}

/* Writes len8 (or the real header length when len8 < 0), the header and
 * data_size bytes of data (truncated to `keep` total bytes when keep >= 0). */
static void
raw_write (const char *path, const char *header, int64_t len8, int64_t data_size,
    int64_t keep)
{
  FILE *fp = fopen (path, "wb");
  uint64_t n = len8 >= 0 ? (uint64_t) len8 : strlen (header);
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char) (n >> (8 * i));
  size_t total = 8 + strlen (header) + (size_t) data_size;
  unsigned char *all = calloc (1, total);
  memcpy (all, b, 8);
  memcpy (all + 8, header, strlen (header));
  for (int64_t i = 0; i < data_size; i++)
    all[8 + strlen (header) + (size_t) i] = (unsigned char) (i * 37);
  fwrite (all, 1, keep >= 0 ? (size_t) keep : total, fp);
  fclose (fp);
  free (all);
}

/* A 1-D F32 tensor of n values, its bytes after all the others'. */
static void
raw_append (raw_file *f, const char *name, int64_t n)
{
  f->t = realloc (f->t, (f->n + 1) * sizeof *f->t);
  raw_tensor *x = &f->t[f->n++];
  memset (x, 0, sizeof *x);
  snprintf (x->name, sizeof x->name, "%s", name);
  x->dtype = "F32";
  x->ndim = 1;
  x->shape[0] = n;
  x->begin = f->data_size;
  x->end = f->data_size + 4 * n;
}

static void
raw_emit (const char *path, raw_file *f)
{
  char *h = raw_header (f);
  int64_t size = 0;
  for (size_t i = 0; i < f->n; i++)
    if (f->t[i].end > size)
      size = f->t[i].end;
  raw_write (path, h, -1, size, -1);
  free (h);
  free (f->t);
}

/* Writes f as the file `name` and expects `load_fn` to refuse it as a
 * format error naming the file, n2 and n3. */
static void
expect_raw_refused (raw_file *f, const char *name,
    dit_status (*load_fn) (const char *path), const char *n2, const char *n3)
{
  char path[256];
  tpath (path, sizeof path, name);
  raw_emit (path, f);
  EXPECT_FAIL (load_fn (path), DIT_ERR_FORMAT, name, n2, n3);
}

/* ------------------------------------------------------------------------ */
/* name transforms for writing */

static const char *
add_model_prefix (const char *name, char *buf, size_t size)
{
  snprintf (buf, size, "model.%s", name);
  return buf;
}

/* Wan -> Diffusers, written out by hand from spec §3.4 (the inverse of the
 * mapping under test). */
static const char *
to_diffusers (const char *name, char *buf, size_t size)
{
  static const struct { const char *wan, *diff; } top[] = {
    { "text_embedding.0.", "condition_embedder.text_embedder.linear_1." },
    { "text_embedding.2.", "condition_embedder.text_embedder.linear_2." },
    { "time_embedding.0.", "condition_embedder.time_embedder.linear_1." },
    { "time_embedding.2.", "condition_embedder.time_embedder.linear_2." },
    { "time_projection.1.", "condition_embedder.time_proj." },
    { "head.head.", "proj_out." },
  };
  static const struct { const char *wan, *diff; } blk[] = {
    { "self_attn.q.", "attn1.to_q." }, { "self_attn.k.", "attn1.to_k." },
    { "self_attn.v.", "attn1.to_v." }, { "self_attn.o.", "attn1.to_out.0." },
    { "self_attn.norm_q.", "attn1.norm_q." }, { "self_attn.norm_k.", "attn1.norm_k." },
    { "cross_attn.q.", "attn2.to_q." }, { "cross_attn.k.", "attn2.to_k." },
    { "cross_attn.v.", "attn2.to_v." }, { "cross_attn.o.", "attn2.to_out.0." },
    { "cross_attn.norm_q.", "attn2.norm_q." }, { "cross_attn.norm_k.", "attn2.norm_k." },
    { "norm3.", "norm2." }, { "ffn.0.", "ffn.net.0.proj." }, { "ffn.2.", "ffn.net.2." },
    { "modulation", "scale_shift_table" },
  };
  int blockno, n = 0;
  snprintf (buf, size, "%s", name);
  if (strcmp (name, "head.modulation") == 0) {
    snprintf (buf, size, "scale_shift_table");
    return buf;
  }
  if (sscanf (name, "blocks.%d.%n", &blockno, &n) == 1 && n > 0) {
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
      if (strncmp (name + n, blk[i].wan, strlen (blk[i].wan)) == 0) {
        snprintf (buf, size, "blocks.%d.%s%s", blockno, blk[i].diff,
            name + n + strlen (blk[i].wan));
        return buf;
      }
    return buf;
  }
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
    if (strncmp (name, top[i].wan, strlen (top[i].wan)) == 0) {
      snprintf (buf, size, "%s%s", top[i].diff, name + strlen (top[i].wan));
      return buf;
    }
  return buf;
}

/* ------------------------------------------------------------------------ */
/* good files */

static void
test_roundtrip (void)
{
  static const dit_dtype dts[] = { DIT_F32, DIT_BF16, DIT_F16 };
  static const char *const names[] = { "f32.safetensors", "bf16.safetensors",
    "f16.safetensors" };
  char path[256];
  for (int k = 0; k < 3; k++) {
    tpath (path, sizeof path, names[k]);
    CHECK (write_tiny (path, dts[k], NULL, NULL, 0, nspecs) == DIT_OK, "write: %s",
        dit_last_error ());
    load_and_check (path, dit_model_key_map, DIT_F32, dts[k], names[k]);
  }

  /* F32 file into a BF16 compute dtype: converted at load. */
  tpath (path, sizeof path, "f32.safetensors");
  load_and_check (path, NULL, DIT_BF16, DIT_F32, "f32 file as bf16");

  /* metadata, shapes, dtype as the reader sees them */
  dit_safetensors *st = NULL;
  tpath (path, sizeof path, "bf16.safetensors");
  CHECK (dit_safetensors_open (path, &st) == DIT_OK, "open: %s", dit_last_error ());
  if (st) {
    const char *fmt = dit_safetensors_metadata (st, "format");
    const char *note = dit_safetensors_metadata (st, "note");
    CHECK (fmt && strcmp (fmt, "gst-dit") == 0, "metadata format");
    CHECK (note && strcmp (note, "quote \" and \\ and \n") == 0, "metadata escapes");
    CHECK (dit_safetensors_metadata (st, "absent") == NULL, "absent metadata");
    CHECK (dit_safetensors_count (st) == nspecs, "count");
    const dit_st_tensor *t = dit_safetensors_find (st, "patch_embedding.weight");
    CHECK (t && t->dtype == DIT_ST_BF16 && t->ndim == 5 && t->shape[0] == 256
        && t->shape[1] == 16 && t->shape[4] == 2 && t->nbytes == 256 * 64 * 2,
        "patch_embedding.weight as read");
    CHECK (dit_safetensors_find (st, "nope") == NULL, "find absent");
    CHECK (strcmp (dit_safetensors_at (st, 0)->name, specs[0].name) == 0, "order kept");
    dit_safetensors_close (st);
  }

  /* header padded to 8 bytes with spaces */
  FILE *fp = fopen (path, "rb");
  unsigned char len8[8];
  CHECK (fp && fread (len8, 1, 8, fp) == 8, "read header length");
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = (hl << 8) | len8[i];
  CHECK (hl % 8 == 0, "header length %" PRIu64 " not a multiple of 8", hl);
  if (fp)
    fclose (fp);
}

static void
test_prefix_and_diffusers (void)
{
  char path[256];
  dit_weights *w = NULL;

  tpath (path, sizeof path, "prefixed.safetensors");
  CHECK (write_tiny (path, DIT_F32, add_model_prefix, NULL, 0, nspecs) == DIT_OK,
      "write: %s", dit_last_error ());
  load_and_check (path, dit_model_key_map, DIT_F32, DIT_F32, "model. prefix");
  /* without the key map the prefix is an unexpected key */
  EXPECT_FAIL (load (path, NULL, DIT_F32, &w), DIT_ERR_FORMAT, "prefixed.safetensors",
      "unexpected key 'model.", NULL);

  tpath (path, sizeof path, "diffusers.safetensors");
  CHECK (write_tiny (path, DIT_BF16, to_diffusers, NULL, 0, nspecs) == DIT_OK,
      "write: %s", dit_last_error ());
  load_and_check (path, dit_model_key_map, DIT_F32, DIT_BF16, "diffusers names");

  /* the mapper itself, on names from the Diffusers checkpoint */
  static const char *const cases[][2] = {
    { "blocks.12.attn1.to_out.0.weight", "blocks.12.self_attn.o.weight" },
    { "blocks.3.attn2.norm_k.weight", "blocks.3.cross_attn.norm_k.weight" },
    { "blocks.0.norm2.bias", "blocks.0.norm3.bias" },
    { "blocks.39.ffn.net.0.proj.bias", "blocks.39.ffn.0.bias" },
    { "blocks.7.scale_shift_table", "blocks.7.modulation" },
    { "scale_shift_table", "head.modulation" },
    { "proj_out.weight", "head.head.weight" },
    { "condition_embedder.time_proj.bias", "time_projection.1.bias" },
    { "model.blocks.0.self_attn.k.weight", "blocks.0.self_attn.k.weight" },
    { "model.condition_embedder.text_embedder.linear_2.weight", "text_embedding.2.weight" },
  };
  char buf[128];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = dit_model_key_map (cases[i][0], buf, sizeof buf);
    CHECK (r == 1 && strcmp (buf, cases[i][1]) == 0, "map %s -> %s (got %d %s)",
        cases[i][0], cases[i][1], r, r ? buf : "");
  }
  CHECK (dit_model_key_map ("blocks.0.self_attn.q.weight", buf, sizeof buf) == 0,
      "canonical name is kept");
  CHECK (dit_model_key_map ("blocks.x.norm2.weight", buf, sizeof buf) == 0,
      "non-numeric block index is not mapped");
}

static void
write_index (const char *path, size_t split, const char *shard1, const char *shard2,
    const char *odd_key, const char *odd_shard)
{
  FILE *fp = fopen (path, "w");
  fprintf (fp, "{\n  \"metadata\": {\"total_size\": 8908032},\n  \"weight_map\": {\n");
  for (size_t i = 0; i < nspecs; i++) {
    const char *shard = i < split ? shard1 : shard2;
    if (odd_key && strcmp (specs[i].name, odd_key) == 0)
      shard = odd_shard;
    fprintf (fp, "    \"%s\": \"%s\"%s\n", specs[i].name, shard, i + 1 < nspecs ? "," : "");
  }
  fprintf (fp, "  }\n}\n");
  fclose (fp);
}

static void
test_sharded_and_dirs (void)
{
  char path[256], dir[200], p1[256], p2[256];
  size_t split = nspecs / 2;

  snprintf (dir, sizeof dir, "%s/sharded", tmpdir);
  CHECK (mkdir (dir, 0755) == 0, "mkdir");
  snprintf (p1, sizeof p1, "%s/m-00001-of-00002.safetensors", dir);
  snprintf (p2, sizeof p2, "%s/m-00002-of-00002.safetensors", dir);
  CHECK (write_tiny (p1, DIT_F32, NULL, NULL, 0, split) == DIT_OK, "shard 1");
  CHECK (write_tiny (p2, DIT_F32, NULL, NULL, split, nspecs) == DIT_OK, "shard 2");
  snprintf (path, sizeof path, "%s/m.safetensors.index.json", dir);
  write_index (path, split, "m-00001-of-00002.safetensors",
      "m-00002-of-00002.safetensors", NULL, NULL);

  load_and_check (path, dit_model_key_map, DIT_F32, DIT_F32, "index");
  load_and_check (dir, dit_model_key_map, DIT_F32, DIT_F32, "index directory");

  /* a directory holding one file */
  char single[200], sp[256];
  snprintf (single, sizeof single, "%s/single", tmpdir);
  CHECK (mkdir (single, 0755) == 0, "mkdir");
  snprintf (sp, sizeof sp, "%s/model.safetensors", single);
  CHECK (write_tiny (sp, DIT_F16, NULL, NULL, 0, nspecs) == DIT_OK, "write");
  load_and_check (single, NULL, DIT_F32, DIT_F16, "single-file directory");

  /* two files and no index: ambiguous, the message lists them */
  snprintf (sp, sizeof sp, "%s/other.safetensors", single);
  CHECK (write_tiny (sp, DIT_F16, NULL, NULL, 0, 2) == DIT_OK, "write");
  EXPECT_FAIL (load_bad (single), DIT_ERR_IO, "single", "model.safetensors",
      "other.safetensors");

  /* an index naming a missing shard */
  snprintf (path, sizeof path, "%s/missing-shard.safetensors.index.json", dir);
  write_index (path, split, "m-00001-of-00002.safetensors",
      "m-00002-of-00002.safetensors", "blocks.1.ffn.2.bias", "gone.safetensors");
  EXPECT_FAIL (load_bad (path), DIT_ERR_IO, "missing-shard.safetensors.index.json",
      "gone.safetensors", "blocks.1.ffn.2.bias");

  /* an index putting a key in the wrong shard */
  snprintf (path, sizeof path, "%s/wrong-shard.safetensors.index.json", dir);
  write_index (path, split, "m-00001-of-00002.safetensors",
      "m-00002-of-00002.safetensors", "head.head.bias", "m-00001-of-00002.safetensors");
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "wrong-shard.safetensors.index.json",
      "'head.head.bias'", "m-00001-of-00002.safetensors");

  /* a shard with a tensor the index does not list */
  snprintf (path, sizeof path, "%s/extra.safetensors.index.json", dir);
  {
    FILE *fp = fopen (path, "w");
    fprintf (fp, "{\"weight_map\": {\"patch_embedding.weight\": "
        "\"m-00001-of-00002.safetensors\"}}");
    fclose (fp);
  }
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "m-00001-of-00002.safetensors",
      "patch_embedding.bias", "extra.safetensors.index.json");

  /* the directory now holds several indexes: ambiguous */
  EXPECT_FAIL (load_bad (dir), DIT_ERR_IO, "sharded", "several indexes", NULL);

  /* shard names may not leave the index directory */
  snprintf (path, sizeof path, "%s/escape.safetensors.index.json", dir);
  write_index (path, split, "../f32.safetensors", "m-00002-of-00002.safetensors",
      NULL, NULL);
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "escape.safetensors.index.json",
      "../f32.safetensors", NULL);
}

/* ------------------------------------------------------------------------ */
/* bad files */

static void
test_bad_files (void)
{
  char path[256];
  dit_weights *w = NULL;

  /* missing key: the message names the first missing key and the count */
  tpath (path, sizeof path, "missing-key.safetensors");
  write_tiny (path, DIT_F32, NULL, "head.head.bias", 0, nspecs);
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "missing-key.safetensors",
      "missing key 'head.head.bias'", NULL);
  tpath (path, sizeof path, "missing-keys.safetensors");
  write_tiny (path, DIT_F32, NULL, NULL, 0, nspecs - 4);
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "missing-keys.safetensors",
      "missing key 'blocks.1.ffn.2.bias' (and 3 more)", NULL);

  /* unexpected key */
  raw_file f = raw_tiny ();
  raw_tensor *x;
  raw_append (&f, "foo", 3);
  expect_raw_refused (&f, "unexpected-key.safetensors", load_bad,
      "unexpected key 'foo'", NULL);

  /* wrong shape, written with the library writer */
  {
    size_t q = find_spec ("blocks.0.self_attn.q.weight");
    int64_t saved = specs[q].shape[1];
    specs[q].shape[1] = 128;
    tpath (path, sizeof path, "wrong-shape.safetensors");
    write_tiny (path, DIT_F32, NULL, NULL, 0, nspecs);
    specs[q].shape[1] = saved;
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "wrong-shape.safetensors",
        "key 'blocks.0.self_attn.q.weight': shape [256, 128] does not match expected "
        "[256, 256]", NULL);
  }

  /* size-1 dims are not squeezed: [6, 256] is not [1, 6, 256] */
  f = raw_tiny ();
  x = raw_find (&f, "blocks.1.modulation");
  x->ndim = 2;
  x->shape[0] = 6;
  x->shape[1] = 256;
  expect_raw_refused (&f, "squeezed.safetensors", load_bad,
      "'blocks.1.modulation'", "[1, 6, 256]");

  /* wrong dtype */
  f = raw_tiny ();
  x = raw_find (&f, "head.head.bias");
  x->dtype = "I64";
  x->end = x->begin + 64 * 8;
  expect_raw_refused (&f, "wrong-dtype.safetensors", load_bad,
      "key 'head.head.bias': dtype I64 is not a float type (F32, BF16, F16)", NULL);

  /* unknown dtype string */
  f = raw_tiny ();
  raw_find (&f, "head.head.bias")->dtype = "F8_E8M0";
  expect_raw_refused (&f, "unknown-dtype.safetensors", load_bad,
      "'head.head.bias'", "F8_E8M0");

  /* truncated: cut inside the last tensor's data */
  {
    f = raw_tiny ();
    char *h = raw_header (&f);
    tpath (path, sizeof path, "truncated.safetensors");
    raw_write (path, h, -1, f.data_size, (int64_t) (8 + strlen (h)) + f.data_size - 100);
    free (h);
    free (f.t);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "truncated.safetensors",
        "'head.head.bias'", "out of range");
  }

  /* header length beyond the file */
  {
    f = raw_tiny ();
    char *h = raw_header (&f);
    tpath (path, sizeof path, "header-length.safetensors");
    raw_write (path, h, (int64_t) (strlen (h) + f.data_size + 1), f.data_size, -1);
    free (h);
    free (f.t);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "header-length.safetensors",
        "exceeds the file size", NULL);
  }

  /* too short to hold the length */
  tpath (path, sizeof path, "short.safetensors");
  raw_write (path, "", 0, 0, 5);
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "short.safetensors", "too short", NULL);

  /* malformed header JSON: a member without ':' */
  {
    f = raw_tiny ();
    char *h = raw_header (&f);
    char *colon = strstr (h, "\"dtype\": ");
    colon[7] = ' ';
    tpath (path, sizeof path, "malformed.safetensors");
    raw_write (path, h, -1, f.data_size, -1);
    free (h);
    free (f.t);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "malformed.safetensors",
        "malformed JSON at byte", "expected ':'");
  }

  /* offsets out of range */
  f = raw_tiny ();
  x = raw_find (&f, "blocks.0.norm3.bias");
  x->begin = f.data_size + 1024;
  x->end = x->begin + 256 * 4;
  tpath (path, sizeof path, "offsets.safetensors");
  {
    char *h = raw_header (&f);
    raw_write (path, h, -1, f.data_size, -1);
    free (h);
    free (f.t);
  }
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "offsets.safetensors",
      "'blocks.0.norm3.bias'", "out of range");

  /* overlapping offsets: k aliases q's bytes */
  f = raw_tiny ();
  {
    raw_tensor *q = raw_find (&f, "blocks.0.self_attn.q.weight");
    x = raw_find (&f, "blocks.0.self_attn.k.weight");
    x->begin = q->begin + 4;
    x->end = q->end + 4;
  }
  expect_raw_refused (&f, "overlap.safetensors", load_bad,
      "blocks.0.self_attn.k.weight", "overlap");

  /* shape / offsets size mismatch */
  f = raw_tiny ();
  x = raw_find (&f, "time_embedding.2.weight");
  x->end -= 4;
  expect_raw_refused (&f, "size-mismatch.safetensors", load_bad,
      "'time_embedding.2.weight'", "needs 262144 bytes");

  /* begin after end */
  f = raw_tiny ();
  x = raw_find (&f, "time_embedding.2.bias");
  int64_t b0 = x->begin;
  x->begin = x->end;
  x->end = b0;
  expect_raw_refused (&f, "reversed.safetensors", load_bad,
      "'time_embedding.2.bias'", NULL);

  /* duplicate key: the second head.head.bias replaces patch_embedding.bias */
  f = raw_tiny ();
  snprintf (raw_find (&f, "patch_embedding.bias")->name, sizeof f.t[0].name,
      "head.head.bias");
  raw_find (&f, "head.head.bias")->shape[0] = 256;
  raw_find (&f, "head.head.bias")->end = raw_find (&f, "head.head.bias")->begin + 1024;
  expect_raw_refused (&f, "duplicate.safetensors", load_bad,
      "duplicate key 'head.head.bias'", NULL);

  /* two checkpoint keys mapping to one name */
  f = raw_tiny ();
  snprintf (raw_find (&f, "patch_embedding.bias")->name, sizeof f.t[0].name,
      "model.blocks.0.norm3.bias");
  expect_raw_refused (&f, "double-map.safetensors", load_bad,
      "blocks.0.norm3.bias", NULL);

  /* unknown field, metadata that is not string->string, non-object root */
  {
    tpath (path, sizeof path, "field.safetensors");
    raw_write (path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], "
        "\"extra\": 1}}", -1, 4, -1);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "field.safetensors", "'a'", "'extra'");
    tpath (path, sizeof path, "meta.safetensors");
    raw_write (path, "{\"__metadata__\": {\"n\": 3}}", -1, 0, -1);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "meta.safetensors", "'n'", NULL);
    tpath (path, sizeof path, "array.safetensors");
    raw_write (path, "[1, 2]", -1, 0, -1);
    EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "array.safetensors", "object", NULL);
  }

  /* a file that does not exist */
  tpath (path, sizeof path, "does-not-exist.safetensors");
  EXPECT_FAIL (load_bad (path), DIT_ERR_IO, "does-not-exist.safetensors", NULL, NULL);
  (void) w;
}

/* ------------------------------------------------------------------------ */
/* FP8 checkpoints (model/dit_weights.h, "FP8 checkpoints and FP8 weights") */

/* How write_fp8 lays out a file. */
typedef struct fp8_layout {
  int scaled;              /* scale_weight beside every FP8 weight */
  int per_channel;         /* scale_weight [N] instead of [1] */
  int marker;              /* a "scaled_fp8" tensor */
  int scale_input;         /* a "<layer>.scale_input" beside every FP8 weight */
  const char *prefix;      /* key prefix ("model.diffusion_model.") */
  /* faults */
  const char *no_scale;    /* FP8 weight written without its scale */
  const char *bad_scale;   /* FP8 weight whose scale is bad_value */
  float bad_value;
  const char *scale_shape2; /* FP8 weight whose scale is [2] */
  const char *fp8_extra;   /* a non-linear tensor written as F8_E4M3 */
  const char *scale_on_f32; /* an F32 weight given a scale_weight */
} fp8_layout;

/* Per-tensor scale used for spec i in scaled files (a power of two times
 * 1.5, so code * scale is exact in f32). */
static float
fp8_file_scale (size_t i)
{
  return ldexpf (1.5f, -(int) (i % 5) - 6);
}

/* Per-channel scale of row r of spec i in per-channel files. */
static float
fp8_file_channel_scale (size_t i, int64_t r)
{
  return ldexpf (1.0f + (float) (r % 7) / 8.0f, -(int) (i % 3) - 7);
}

static int
fp8_written (size_t i, const fp8_layout *l)
{
  return dit_model_fp8_accept (&specs[i])
      || (l->fp8_extra && strcmp (specs[i].name, l->fp8_extra) == 0);
}

static float
fp8_scale_of (size_t i, int64_t row, const fp8_layout *l)
{
  if (!l->scaled)
    return 1.0f;
  return l->per_channel ? fp8_file_channel_scale (i, row) : fp8_file_scale (i);
}

/* The tiny checkpoint with the blocks' linear weights as F8_E4M3 codes of
 * the synthetic values (code = e4m3(value / scale)), everything else F32. */
static dit_status
write_fp8 (const char *path, const fp8_layout *l)
{
  size_t cap = 3 * nspecs + 2, n = 0;
  dit_st_write_tensor *wt = calloc (cap, sizeof *wt);
  char (*names)[200] = calloc (cap, sizeof *names);
  void **bufs = calloc (cap, sizeof *bufs);
  static const int64_t one = 1, two = 2;
  const char *pre = l->prefix ? l->prefix : "";
  for (size_t i = 0; i < nspecs; i++) {
    const dit_param_spec *sp = &specs[i];
    size_t e = (size_t) numel (sp);
    int fp8 = fp8_written (i, l);
    int64_t K = sp->ndim >= 2 ? (int64_t) e / sp->shape[0] : (int64_t) e;
    snprintf (names[n], sizeof names[n], "%s%s", pre, sp->name);
    if (fp8) {
      uint8_t *q = malloc (e);
      for (size_t j = 0; j < e; j++)
        q[j] = dit_f32_to_e4m3 (expect_f32[i][j] / fp8_scale_of (i,
            (int64_t) j / K, l));
      bufs[n] = q;
    } else {
      bufs[n] = malloc (e * 4);
      memcpy (bufs[n], expect_f32[i], e * 4);
    }
    wt[n] = (dit_st_write_tensor) { names[n], fp8 ? DIT_F8E4M3 : DIT_F32,
      sp->ndim, sp->shape, bufs[n] };
    n++;
    int want_scale = (fp8 && l->scaled && !(l->no_scale
        && strcmp (sp->name, l->no_scale) == 0))
        || (l->scale_on_f32 && strcmp (sp->name, l->scale_on_f32) == 0);
    char base[160];
    snprintf (base, sizeof base, "%.*s", (int) (strlen (sp->name)
        - strlen (".weight")), sp->name);
    if (want_scale) {
      int64_t N = sp->shape[0];
      int pc = l->per_channel && fp8;
      int bad_shape = l->scale_shape2 && strcmp (sp->name, l->scale_shape2) == 0;
      int64_t count = bad_shape ? 2 : pc ? N : 1;
      float *sc = malloc ((size_t) count * sizeof (float));
      for (int64_t r = 0; r < count; r++)
        sc[r] = fp8_scale_of (i, r, l);
      if (l->bad_scale && strcmp (sp->name, l->bad_scale) == 0)
        sc[0] = l->bad_value;
      snprintf (names[n], sizeof names[n], "%s%s.scale_weight", pre, base);
      bufs[n] = sc;
      wt[n] = (dit_st_write_tensor) { names[n], DIT_F32, 1,
        bad_shape ? &two : pc ? &specs[i].shape[0] : &one, sc };
      n++;
    }
    if (fp8 && l->scale_input) {
      float *si = malloc (sizeof (float));
      *si = 0.5f;
      snprintf (names[n], sizeof names[n], "%s%s.scale_input", pre, base);
      bufs[n] = si;
      wt[n] = (dit_st_write_tensor) { names[n], DIT_F32, 0, &one, si };
      n++;
    }
  }
  if (l->marker) {
    snprintf (names[n], sizeof names[n], "scaled_fp8");
    bufs[n] = calloc (1, 2);
    static const int64_t zero = 0;
    wt[n] = (dit_st_write_tensor) { names[n], DIT_F8E4M3, 1, &zero, bufs[n] };
    n++;
  }
  return write_and_free (path, wt, n, NULL, bufs, names);
}

static dit_status
load_fp8 (const char *path, dit_dtype dt, int keep_fp8, dit_weights **w)
{
  dit_weights_fp8 rules = { dit_model_fp8_accept,
    keep_fp8 ? dit_model_fp8_select : NULL };
  return dit_weights_load_ex (path, specs, nspecs, dit_model_key_map, dt,
      &rules, be, w);
}

static dit_status
load_fp8_bad (const char *path)
{
  dit_weights *w = (dit_weights *) 1;
  dit_status st = load_fp8 (path, DIT_F32, 1, &w);
  if (st == DIT_OK)
    dit_weights_free (w);
  else
    CHECK (w == NULL, "failed load left *out set");
  return st;
}

/* Writes the file `name` with layout l and expects the FP8 loader to
 * refuse it as a format error naming the file, n2 and n3. */
static void
expect_fp8_refused (const fp8_layout *l, const char *name, const char *n2,
    const char *n3)
{
  char path[256];
  tpath (path, sizeof path, name);
  write_fp8 (path, l);
  EXPECT_FAIL (load_fp8_bad (path), DIT_ERR_FORMAT, name, n2, n3);
}

/* Every tensor of w against the file written with layout l: FP8 weights the
 * GEMMs take (keep_fp8) hold the file's codes and its scale per channel;
 * other FP8 file tensors hold code * scale; F32 tensors the values. */
static void
check_fp8_load (const dit_weights *w, const fp8_layout *l, int keep_fp8,
    const char *what)
{
  int bad = 0;
  size_t n_fp8 = 0;
  for (size_t i = 0; i < w->count && bad < 3; i++) {
    const dit_param_spec *sp = &specs[i];
    const dit_tensor *t = &w->tensors[i];
    int64_t e = numel (sp), K = sp->ndim >= 2 ? e / sp->shape[0] : e;
    int file_fp8 = fp8_written (i, l);
    int kept = file_fp8 && keep_fp8 && dit_model_fp8_select (sp);
    if (kept != (t->dtype == DIT_F8E4M3)) {
      CHECK (0, "%s: '%s' stored as %s", what, sp->name, dit_dtype_name (t->dtype));
      bad++;
      continue;
    }
    n_fp8 += kept;
    void *host = malloc ((size_t) e * dit_dtype_size (t->dtype));
    float *sc = kept ? malloc ((size_t) sp->shape[0] * sizeof (float)) : NULL;
    be->ops->download (be, host, t->data, (size_t) e * dit_dtype_size (t->dtype));
    if (kept)
      be->ops->download (be, sc, w->scales[i].data,
          (size_t) sp->shape[0] * sizeof (float));
    for (int64_t j = 0; j < e && bad < 3; j++) {
      float s = fp8_scale_of (i, j / K, l);
      uint8_t code = dit_f32_to_e4m3 (expect_f32[i][j] / s);
      if (kept) {
        if (((uint8_t *) host)[j] != code || sc[j / K] != s) {
          CHECK (0, "%s: '%s'[%lld]: code 0x%02x scale %g, want 0x%02x %g", what,
              sp->name, (long long) j, ((uint8_t *) host)[j], sc[j / K], code, s);
          bad++;
        }
      } else {
        float want = file_fp8 ? dit_e4m3_to_f32 (code) * s : expect_f32[i][j];
        if (w->dtype == DIT_BF16)
          want = dit_bf16_to_f32 (dit_f32_to_bf16 (want));
        float got = dit_load_f32 (host, t->dtype, (size_t) j);
        if (got != want) {
          CHECK (0, "%s: '%s'[%lld] = %.9g, want %.9g", what, sp->name,
              (long long) j, got, want);
          bad++;
        }
      }
    }
    free (host);
    free (sc);
  }
  CHECK (n_fp8 == w->fp8_count, "%s: %zu FP8 tensors, the set says %zu", what,
      n_fp8, w->fp8_count);
}

/* Loads the file of layout l into compute dtype dt, FP8 kept for the GEMMs
 * when keep_fp8, and checks every tensor against the layout. */
static void
load_fp8_and_check (const char *path, const fp8_layout *l, dit_dtype dt,
    int keep_fp8, const char *what)
{
  dit_weights *w = NULL;
  CHECK (load_fp8 (path, dt, keep_fp8, &w) == DIT_OK, "load %s: %s", what,
      dit_last_error ());
  if (w) {
    check_fp8_load (w, l, keep_fp8, what);
    dit_weights_free (w);
  }
}

static void
test_fp8_files (void)
{
  char path[256];
  dit_weights *w = NULL;
  size_t n_select = 0;
  for (size_t i = 0; i < nspecs; i++)
    n_select += (size_t) dit_model_fp8_select (&specs[i]);
  CHECK (n_select == 2 * 8, "tiny: %zu FP8 GEMM weights, want 16 (8 per block)",
      n_select);

  /* plain cast: codes alone, scale 1 */
  fp8_layout plain = { 0 };
  tpath (path, sizeof path, "fp8-plain.safetensors");
  CHECK (write_fp8 (path, &plain) == DIT_OK, "write: %s", dit_last_error ());
  load_fp8_and_check (path, &plain, DIT_F32, 1, "plain, fp8");
  load_fp8_and_check (path, &plain, DIT_BF16, 0, "plain, dequantized to bf16");

  /* scaled, ComfyUI key prefix, marker and input scales */
  fp8_layout scaled = { .scaled = 1, .marker = 1, .scale_input = 1,
    .prefix = "model.diffusion_model." };
  tpath (path, sizeof path, "fp8-scaled.safetensors");
  CHECK (write_fp8 (path, &scaled) == DIT_OK, "write: %s", dit_last_error ());
  load_fp8_and_check (path, &scaled, DIT_F32, 1, "scaled, fp8");
  load_fp8_and_check (path, &scaled, DIT_F32, 0, "scaled, dequantized to f32");

  /* per-channel scales [N] */
  fp8_layout channel = { .scaled = 1, .per_channel = 1 };
  tpath (path, sizeof path, "fp8-channel.safetensors");
  CHECK (write_fp8 (path, &channel) == DIT_OK, "write: %s", dit_last_error ());
  load_fp8_and_check (path, &channel, DIT_F32, 1, "per-channel, fp8");

  /* an FP8 checkpoint through the plain loader (no FP8 rules) is refused */
  tpath (path, sizeof path, "fp8-plain.safetensors");
  EXPECT_FAIL (load_bad (path), DIT_ERR_FORMAT, "fp8-plain.safetensors",
      "key 'blocks.0.self_attn.q.weight'", "dtype F8_E4M3 where only");

  /* a 16/32-bit checkpoint loaded as FP8: each selected weight quantized
   * per output channel by the documented rule */
  tpath (path, sizeof path, "f32-for-fp8.safetensors");
  write_tiny (path, DIT_F32, NULL, NULL, 0, nspecs);
  CHECK (load_fp8 (path, DIT_F32, 1, &w) == DIT_OK, "f32 as fp8: %s",
      dit_last_error ());
  if (w) {
    int bad = 0;
    CHECK (w->fp8_count == n_select, "f32 as fp8: %zu FP8 tensors", w->fp8_count);
    for (size_t i = 0; i < nspecs && !bad; i++) {
      if (!dit_model_fp8_select (&specs[i]))
        continue;
      int64_t N = specs[i].shape[0], K = specs[i].shape[1];
      uint8_t *q = malloc ((size_t) (N * K));
      float *sc = malloc ((size_t) N * sizeof (float));
      be->ops->download (be, q, w->tensors[i].data, (size_t) (N * K));
      be->ops->download (be, sc, w->scales[i].data, (size_t) N * sizeof (float));
      for (int64_t r = 0; r < N && !bad; r++) {
        float amax = 0.0f;
        for (int64_t k = 0; k < K; k++)
          amax = fmaxf (amax, fabsf (expect_f32[i][r * K + k]));
        if (sc[r] != amax / 448.0f)
          bad = 1;
        for (int64_t k = 0; k < K && !bad; k++)
          bad = q[r * K + k] != dit_f32_to_e4m3 (expect_f32[i][r * K + k]
              * (448.0f / amax));
      }
      CHECK (!bad, "f32 as fp8: '%s' codes or scales differ from the per-channel "
          "rule", specs[i].name);
      free (q);
      free (sc);
    }
    dit_weights_free (w);
  }

  /* refusals, one per class, each naming the file and the key */
  fp8_layout l;

  l = (fp8_layout) { .scaled = 1, .no_scale = "blocks.1.ffn.2.weight" };
  expect_fp8_refused (&l, "fp8-missing-scale.safetensors",
      "missing key 'blocks.1.ffn.2.scale_weight'", "without one");

  static const struct { float v; const char *label, *text; } bad[] = {
    { NAN, "nan", "scale nan" }, { 0.0f, "zero", "scale 0 " },
    { INFINITY, "inf", "scale inf" }, { -0.5f, "negative", "scale -0.5" },
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    char file[64];
    l = (fp8_layout) { .scaled = 1, .bad_scale = "blocks.0.cross_attn.o.weight",
      .bad_value = bad[k].v };
    snprintf (file, sizeof file, "fp8-scale-%s.safetensors", bad[k].label);
    expect_fp8_refused (&l, file, "key 'blocks.0.cross_attn.o.scale_weight'",
        bad[k].text);
  }

  l = (fp8_layout) { .scaled = 1, .scale_shape2 = "blocks.0.ffn.0.weight" };
  expect_fp8_refused (&l, "fp8-scale-shape.safetensors",
      "key 'blocks.0.ffn.0.scale_weight': shape [2]", "per output channel");

  l = (fp8_layout) { .fp8_extra = "head.head.weight" };
  expect_fp8_refused (&l, "fp8-head.safetensors",
      "key 'head.head.weight'", "F8_E4M3 where only F32, BF16 or F16");

  /* a scale beside a weight that is not FP8 (a mix the loader does not
   * support): text_embedding is not a block linear, so its scale_weight is
   * an unexpected key; a block linear written F32 with a scale is named */
  l = (fp8_layout) { .scaled = 1, .scale_on_f32 = "text_embedding.0.weight" };
  expect_fp8_refused (&l, "fp8-scale-on-embedding.safetensors",
      "unexpected key 'text_embedding.0.scale_weight'", NULL);
  {
    /* blocks.0.self_attn.v.weight stored F32 beside its scale_weight */
    raw_file f = raw_tiny ();
    raw_append (&f, "blocks.0.self_attn.v.scale_weight", 1);
    expect_raw_refused (&f, "fp8-scale-on-f32.safetensors", load_fp8_bad,
        "key 'blocks.0.self_attn.v.scale_weight'", "which is F32, not F8_E4M3");
  }

  /* e5m2 and an FP8 tensor of the wrong shape, through the raw writer */
  {
    raw_file f = raw_tiny ();
    raw_tensor *x = raw_find (&f, "blocks.1.self_attn.k.weight");
    x->dtype = "F8_E5M2";
    x->end = x->begin + numel (&specs[find_spec (x->name)]);
    expect_raw_refused (&f, "fp8-e5m2.safetensors", load_fp8_bad,
        "key 'blocks.1.self_attn.k.weight'", "F8_E5M2 is not supported");
  }
  {
    raw_file f = raw_tiny ();
    raw_tensor *x = raw_find (&f, "blocks.0.ffn.2.weight");
    x->dtype = "F8_E4M3";
    x->shape[1] = 256;
    x->end = x->begin + 256 * 256;
    expect_raw_refused (&f, "fp8-shape.safetensors", load_fp8_bad,
        "key 'blocks.0.ffn.2.weight'", "shape [256, 256] does not match expected "
        "[256, 512]");
  }
}

/* ------------------------------------------------------------------------ */
/* synthetic weights */

static uint64_t
fnv1a64 (const char *s)
{
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++) {
    h ^= (unsigned char) *s;
    h *= 1099511628211ull;
  }
  return h;
}

static void
test_synthetic (void)
{
  /* Philox4x32-10 known answer (Random123 kat_vectors: zero counter, key). */
  dit_philox_out o = dit_philox4x32_10 (0, 0, 0, 0, 0, 0);
  CHECK (o.v[0] == 0x6627e8d5u && o.v[1] == 0xe169c58du && o.v[2] == 0xbc57ac4cu
      && o.v[3] == 0x9b00dbd8u, "philox KAT: %08x %08x %08x %08x", o.v[0], o.v[1],
      o.v[2], o.v[3]);
  CHECK (fnv1a64 ("a") == 0xaf63dc4c8601ec8cull, "fnv1a64 test vector");

  /* the rule of dit_weights.h, evaluated independently */
  static const struct { const char *name; double scale, offset; } rules[] = {
    { "blocks.0.modulation", 1.0 / 16.0, 0.0 },         /* 1/sqrt(256) */
    { "head.modulation", 1.0 / 16.0, 0.0 },
    { "patch_embedding.weight", 1.0 / 8.0, 0.0 },       /* fan_in 16*1*2*2 */
    { "blocks.1.ffn.2.weight", 1.0 / sqrt (512.0), 0.0 },
    { "text_embedding.0.weight", 1.0 / 8.0, 0.0 },      /* fan_in 64 */
    { "blocks.0.norm3.weight", 0.1, 1.0 },
    { "blocks.1.cross_attn.norm_k.weight", 0.1, 1.0 },
    { "blocks.0.norm3.bias", 0.02, 0.0 },
    { "time_projection.1.bias", 0.02, 0.0 },
  };
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    size_t i = find_spec (rules[r].name);
    int64_t n = numel (&specs[i]);
    double sum = 0, sum2 = 0;
    for (int64_t j = 0; j < n; j++) {
      float z = dit_philox_normal (SEED, fnv1a64 (rules[r].name), (uint64_t) j);
      float want = (float) ((double) z * rules[r].scale + rules[r].offset);
      if (memcmp (&want, &expect_f32[i][j], 4) != 0) {
        CHECK (0, "%s[%" PRId64 "] = %.9g, rule gives %.9g", rules[r].name, j,
            expect_f32[i][j], want);
        break;
      }
      double c = (expect_f32[i][j] - rules[r].offset) / rules[r].scale;
      sum += c;
      sum2 += c * c;
    }
    double mean = sum / (double) n, var = sum2 / (double) n - mean * mean;
    CHECK (fabs (mean) < 6.0 / sqrt ((double) n) && fabs (var - 1.0) < 0.3,
        "%s: normalised mean %g var %g", rules[r].name, mean, var);
  }

  /* slices: any [begin, begin+n) equals the same range of the full fill */
  size_t q = find_spec ("blocks.0.ffn.0.weight");
  int64_t n = numel (&specs[q]);
  float *part = malloc ((size_t) n * sizeof *part);
  dit_weights_synthetic_fill (&specs[q], SEED, 0, 3, DIT_F32, part);
  dit_weights_synthetic_fill (&specs[q], SEED, 3, 1000, DIT_F32, part + 3);
  dit_weights_synthetic_fill (&specs[q], SEED, 1003, n - 1003, DIT_F32, part + 1003);
  CHECK (memcmp (part, expect_f32[q], (size_t) n * 4) == 0, "slice fill == full fill");
  uint16_t h[5];
  dit_weights_synthetic_fill (&specs[q], SEED, 77, 5, DIT_BF16, h);
  for (int j = 0; j < 5; j++)
    CHECK (h[j] == dit_f32_to_bf16 (expect_f32[q][77 + j]), "bf16 slice %d", j);
  free (part);

  /* dit_weights_synthetic: same seed same bytes, other seed differs */
  dit_weights *a = NULL, *b = NULL, *c = NULL;
  CHECK (dit_weights_synthetic (specs, nspecs, SEED, DIT_F32, be, &a) == DIT_OK, "%s",
      dit_last_error ());
  CHECK (dit_weights_synthetic (specs, nspecs, SEED, DIT_F32, be, &b) == DIT_OK, "%s",
      dit_last_error ());
  CHECK (dit_weights_synthetic (specs, nspecs, SEED + 1, DIT_F32, be, &c) == DIT_OK, "%s",
      dit_last_error ());
  if (a && b && c) {
    check_values (a, DIT_F32, "synthetic");
    int same_ab = 1, same_ac = 1;
    for (size_t i = 0; i < nspecs; i++) {
      size_t bytes = dit_tensor_nbytes (&a->tensors[i]);
      same_ab &= memcmp (a->tensors[i].data, b->tensors[i].data, bytes) == 0;
      same_ac &= memcmp (a->tensors[i].data, c->tensors[i].data, bytes) == 0;
    }
    CHECK (same_ab && a->fingerprint == b->fingerprint, "same seed, same weights");
    CHECK (!same_ac && a->fingerprint != c->fingerprint, "other seed, other weights");

    /* lookup; the 5-D patch embedding is a 2-D [D, 64] view */
    const dit_tensor *t = NULL;
    CHECK (dit_weights_require (a, "patch_embedding.weight", &t) == DIT_OK && t
        && t->ndim == 2 && t->shape[0] == 256 && t->shape[1] == 64,
        "patch_embedding.weight view");
    t = dit_weights_get (a, "blocks.1.modulation");
    CHECK (t && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 6 && t->shape[2] == 256,
        "modulation keeps [1, 6, 256]");
    CHECK (dit_weights_get (a, "blocks.2.modulation") == NULL, "get absent");
    EXPECT_FAIL (dit_weights_require (a, "blocks.2.modulation", &t), DIT_ERR_INVALID,
        "weights: no tensor named 'blocks.2.modulation'", NULL, NULL);

    /* save -> load gives the same values and fingerprint */
    char path[256];
    dit_weights *l = NULL;
    tpath (path, sizeof path, "saved.safetensors");
    const char *meta[] = { "format", "gst-dit", NULL };
    CHECK (dit_weights_save (a, path, DIT_F32, meta) == DIT_OK, "save: %s",
        dit_last_error ());
    CHECK (load (path, NULL, DIT_F32, &l) == DIT_OK, "load saved: %s", dit_last_error ());
    if (l) {
      check_values (l, DIT_F32, "saved f32");
      CHECK (l->fingerprint == a->fingerprint, "fingerprint survives save/load");
      dit_weights_free (l);
    }
    tpath (path, sizeof path, "saved-bf16.safetensors");
    CHECK (dit_weights_save (a, path, DIT_BF16, NULL) == DIT_OK, "save bf16: %s",
        dit_last_error ());
    l = NULL;
    CHECK (load (path, NULL, DIT_F32, &l) == DIT_OK, "load saved bf16: %s",
        dit_last_error ());
    if (l) {
      check_values (l, DIT_BF16, "saved bf16");
      CHECK (l->fingerprint != a->fingerprint, "bf16 values differ from f32");
      dit_weights_free (l);
    }
  }
  dit_weights_free (a);
  dit_weights_free (b);
  dit_weights_free (c);
}

/* "demo" (dit_loader.h) names the demo model's files: from $DIT_DEMO_DIR
 * when set.  Without the file the error names it and the commands that
 * make it; with a demo-shaped DiT there (synthetic values), "demo" loads
 * it as the `demo` config, resolves to it without tensor data, and the
 * VAE and text model ask for their own files. */
static void
test_demo_files (void)
{
  char dir[96], path[4096];
  dit_model_config cfg;
  dit_weights *w = NULL;
  int checkpoint = -1;
  const char *saved = getenv ("DIT_DEMO_DIR");
  char *keep = saved ? strdup (saved) : NULL;

  snprintf (dir, sizeof dir, "%s/demo", tmpdir);
  CHECK (mkdir (dir, 0700) == 0, "mkdir %s", dir);
  setenv ("DIT_DEMO_DIR", dir, 1);
  CHECK (dit_demo_path (DIT_DEMO_DIT, path, sizeof path) == DIT_ERR_IO,
      "no demo-dit.safetensors in an empty directory");
  CHECK (dit_load_model (DIT_DEMO, SEED, DIT_F32, be, &cfg, &w) == DIT_ERR_IO
      && w == NULL && strstr (dit_last_error (), "demo-dit.safetensors")
      && strstr (dit_last_error (), dir)
      && strstr (dit_last_error (), "tools/train/run-gpu.sh")
      && strstr (dit_last_error (), "tools/train/install-weights.sh"),
      "load of \"demo\" without its file: %s", dit_last_error ());
  dit_vae_config vc;
  CHECK (dit_load_vae (DIT_DEMO, SEED, DIT_F32, be, &vc, &w) == DIT_ERR_IO
      && strstr (dit_last_error (), "demo-vae.safetensors"),
      "VAE \"demo\" without its file: %s", dit_last_error ());

  /* a demo-shaped DiT with synthetic values as the file */
  dit_param_spec *demo_specs;
  size_t n;
  CHECK (dit_model_config_preset ("demo", &cfg) == DIT_OK
      && dit_model_config_params (&cfg, &demo_specs, &n) == DIT_OK,
      "demo specs");
  CHECK (dit_weights_synthetic (demo_specs, n, SEED, DIT_F32, be, &w)
      == DIT_OK, "demo synthetic");
  free (demo_specs);
  snprintf (path, sizeof path, "%s/%s", dir, dit_demo_file (DIT_DEMO_DIT));
  CHECK (w && dit_weights_save (w, path, DIT_F32, NULL) == DIT_OK, "save: %s",
      dit_last_error ());
  dit_weights_free (w);
  w = NULL;
  memset (&cfg, 0, sizeof cfg);
  CHECK (dit_load_model (DIT_DEMO, SEED, DIT_F32, be, &cfg, &w) == DIT_OK
      && w && strcmp (cfg.name, "demo") == 0, "load of \"demo\": %s",
      dit_last_error ());
  dit_weights_free (w);
  CHECK (dit_model_config_resolve (DIT_DEMO, &cfg, &checkpoint) == DIT_OK
      && checkpoint == 1 && strcmp (cfg.name, "demo") == 0,
      "resolve \"demo\": %s", dit_last_error ());
  const char *m;
  char buf[4096];
  CHECK (dit_model_name_resolve (DIT_DEMO, DIT_DEMO_DIT, buf, sizeof buf, &m)
      == DIT_OK && strcmp (m, path) == 0, "\"demo\" is %s", m);
  CHECK (dit_model_name_resolve ("tiny", DIT_DEMO_DIT, buf, sizeof buf, &m)
      == DIT_OK && strcmp (m, "tiny") == 0, "tiny stays tiny");
  dit_umt5_config tc;
  CHECK (dit_umt5_load_weights (DIT_DEMO, SEED, DIT_F32, be, &tc, &w)
      == DIT_ERR_IO && strstr (dit_last_error (), "demo-umt5.safetensors"),
      "text model \"demo\" without its file: %s", dit_last_error ());
  unlink (path);
  rmdir (dir);
  if (keep)
    setenv ("DIT_DEMO_DIR", keep, 1);
  else
    unsetenv ("DIT_DEMO_DIR");
  free (keep);
}

static void
test_param_counts (void)
{
  dit_model_config cfg;
  CHECK (dit_model_config_preset ("wan-14b", &cfg) == DIT_OK, "preset");
  CHECK (dit_model_config_param_count (&cfg) == 14288491584ll, "14B count %lld",
      (long long) dit_model_config_param_count (&cfg));
  CHECK (dit_model_config_preset ("wan-1.3b", &cfg) == DIT_OK, "preset");
  CHECK (dit_model_config_param_count (&cfg) == 1418996800ll, "1.3B count %lld",
      (long long) dit_model_config_param_count (&cfg));
  CHECK (dit_model_config_preset ("tiny", &cfg) == DIT_OK, "preset");
  CHECK (dit_model_config_param_count (&cfg) == 2227008ll, "tiny count");
  /* the demo model's shape: detected from a checkpoint's shapes, but no
   * synthetic preset ("demo" names the trained file, test_demo_files) */
  const char *demo = dit_model_config_detect (256, 4, 1024, 64);
  CHECK (demo && strcmp (demo, "demo") == 0, "demo shape detected as %s",
      demo ? demo : "(none)");
  CHECK (dit_model_config_preset ("demo", &cfg) == DIT_OK && cfg.num_layers == 4
      && cfg.ffn_dim == 1024 && cfg.num_heads == 2 && cfg.head_dim == 128
      && cfg.text_dim == 64, "demo config");
  CHECK (!dit_model_is_preset ("demo"), "demo is not a synthetic preset");
  /* spec §3.2: 1095 keys for 14B */
  dit_param_spec *s;
  size_t n;
  CHECK (dit_model_config_preset ("wan-14b", &cfg) == DIT_OK, "preset");
  CHECK (dit_model_config_params (&cfg, &s, &n) == DIT_OK && n == 1095, "14B keys %zu", n);
  free (s);
}

/* ------------------------------------------------------------------------ */
/* JSON */

static void
json_bad (const char *text, const char *needle)
{
  dit_json *j = NULL;
  dit_status st = dit_json_parse (text, strlen (text), &j);
  CHECK (st == DIT_ERR_FORMAT && j == NULL && strstr (dit_last_error (), needle),
      "'%s' should fail with '%s', got %s '%s'", text, needle, dit_status_name (st),
      dit_last_error ());
  dit_json_free (j);
}

static void
test_json (void)
{
  const char *text = "{\"a\": [1, -0, 9223372036854775807, -9223372036854775808, "
      "1.5e3, 18446744073709551616], \"s\": \"\\u00e9\\ud83d\\ude00\\n\\\"\\/\", "
      "\"t\": true, \"f\": false, \"n\": null, \"e\": {}, \"\\u0000k\": []}";
  dit_json *j = NULL;
  CHECK (dit_json_parse (text, strlen (text), &j) == DIT_OK, "%s", dit_last_error ());
  if (j) {
    const dit_json *a = dit_json_get (j, "a");
    CHECK (a && a->type == DIT_JSON_ARRAY && a->u.array.count == 6, "array");
    if (a && a->u.array.count == 6) {
      CHECK (a->u.array.items[0].type == DIT_JSON_INT && a->u.array.items[0].u.integer == 1, "1");
      CHECK (a->u.array.items[2].u.integer == INT64_MAX, "int64 max exact");
      CHECK (a->u.array.items[3].u.integer == INT64_MIN, "int64 min exact");
      CHECK (a->u.array.items[4].type == DIT_JSON_NUMBER
          && a->u.array.items[4].u.number == 1500.0, "1.5e3");
      CHECK (a->u.array.items[5].type == DIT_JSON_NUMBER, "2^64 is not an int64");
    }
    const dit_json *s = dit_json_get (j, "s");
    CHECK (s && s->type == DIT_JSON_STRING
        && s->u.str.len == 9
        && memcmp (s->u.str.ptr, "\xc3\xa9\xf0\x9f\x98\x80\n\"/", 9) == 0, "escapes");
    CHECK (dit_json_get (j, "t")->u.boolean == 1 && dit_json_get (j, "n")->type
        == DIT_JSON_NULL, "literals");
    CHECK (j->u.object.members[6].key_len == 2, "key with \\u0000");
    dit_json_free (j);
  }
  json_bad ("{\"a\" 1}", "at byte 5: expected ':'");
  json_bad ("[1, 2,]", "unexpected character");
  json_bad ("[01]", "leading zero");
  json_bad ("{\"a\": 1, \"a\": 2}", "duplicate key 'a'");
  json_bad ("\"\\ud800\"", "surrogate");
  json_bad ("\"\\udc00\"", "surrogate");
  json_bad ("\"\xc0\xaf\"", "UTF-8");
  json_bad ("\"a\tb\"", "control character");
  json_bad ("[1] x", "after the top-level value");
  json_bad ("", "unexpected end");
  json_bad ("[NaN]", "unexpected character");
  char deep[201];
  memset (deep, '[', 100);
  memset (deep + 100, ']', 100);
  deep[200] = '\0';
  json_bad (deep, "nesting deeper than 64");
  /* 64 levels are fine */
  memset (deep, '[', 64);
  memset (deep + 64, ']', 64);
  CHECK (dit_json_parse (deep, 128, &j) == DIT_OK, "64 levels: %s", dit_last_error ());
  dit_json_free (j);
}

/* ------------------------------------------------------------------------ */

static int
rm_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void) sb; (void) flag; (void) ftw;
  return remove (path);
}

int
main (void)
{
  dit_model_config cfg;
  snprintf (tmpdir, sizeof tmpdir, "/tmp/dit-ckpt-XXXXXX");
  if (!mkdtemp (tmpdir)) {
    perror ("mkdtemp");
    return 1;
  }
  be = dit_backend_cpu ();
  if (!be || dit_model_config_preset ("tiny", &cfg) != DIT_OK
      || dit_model_config_params (&cfg, &specs, &nspecs) != DIT_OK) {
    fprintf (stderr, "setup: %s\n", dit_last_error ());
    return 1;
  }
  expect_f32 = calloc (nspecs, sizeof *expect_f32);
  for (size_t i = 0; i < nspecs; i++) {
    expect_f32[i] = malloc ((size_t) numel (&specs[i]) * sizeof (float));
    dit_weights_synthetic_fill (&specs[i], SEED, 0, numel (&specs[i]), DIT_F32,
        expect_f32[i]);
  }

  test_json ();
  test_param_counts ();
  test_demo_files ();
  test_synthetic ();
  test_roundtrip ();
  test_prefix_and_diffusers ();
  test_sharded_and_dirs ();
  test_bad_files ();
  test_fp8_files ();

  for (size_t i = 0; i < nspecs; i++)
    free (expect_f32[i]);
  free (expect_f32);
  free (specs);
  nftw (tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (failures) {
    fprintf (stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf ("checkpoint: all checks passed\n");
  return 0;
}
