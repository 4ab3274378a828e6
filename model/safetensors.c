/* safetensors — strict reader and atomic writer (format in safetensors.h).
 *
 * Reading maps each file read-only and validates the whole header before
 * any tensor is handed out: header length within the file and below the
 * 100 MB limit the reference implementation uses, strict JSON, exactly the
 * fields dtype/shape/data_offsets per tensor, a known dtype, a shape whose
 * byte size equals end - begin, offsets inside the data section, and no two
 * tensors sharing bytes.  Gaps and trailing bytes are tolerated (they carry
 * no tensor), overlaps are not: two names aliasing the same bytes would let
 * a corrupt file pass shape checks with garbage values.
 *
 * An index set is checked in both directions: every weight_map key must be
 * in the shard it names, and every tensor in a shard must be listed for
 * that shard, so a shard from another checkpoint cannot slip in.
 *
 * Tensor data stays in the mapping; nothing is read until a caller touches
 * it, so opening a 57 GB sharded checkpoint costs only its headers.
 *
 * Writing goes to a temporary file in the destination directory which is
 * fsync'd and renamed over the target, so readers never see a half-written
 * checkpoint.  The header is padded with spaces to a multiple of 8 bytes;
 * tensors follow back to back in the order given.
 */
#include "safetensors.h"
#include "json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t) 100 * 1000 * 1000)
#define ST_MAX_INDEX ((size_t) 64 << 20)

typedef struct st_file {
  char *path;
  void *map;
  size_t map_size;
  const uint8_t *data;
  size_t data_size;
  char **meta;          /* key, value, key, value ... */
  size_t nmeta;
} st_file;

struct dit_safetensors {
  st_file *files;
  size_t nfiles;
  dit_st_tensor *tensors;
  size_t *file_of;      /* file index of tensors[i] */
  size_t count, cap;
  size_t *by_name;      /* tensor indices sorted by name */
};

/* ------------------------------------------------------------------------ */
/* dtypes */

static const struct {
  const char *name;
  dit_st_dtype dt;
  size_t size;
} st_dtypes[] = {
  { "F32", DIT_ST_F32, 4 }, { "BF16", DIT_ST_BF16, 2 }, { "F16", DIT_ST_F16, 2 },
  { "F64", DIT_ST_F64, 8 }, { "I64", DIT_ST_I64, 8 }, { "I32", DIT_ST_I32, 4 },
  { "I16", DIT_ST_I16, 2 }, { "I8", DIT_ST_I8, 1 }, { "U8", DIT_ST_U8, 1 },
  { "BOOL", DIT_ST_BOOL, 1 }, { "F8_E4M3", DIT_ST_F8_E4M3, 1 },
  { "F8_E5M2", DIT_ST_F8_E5M2, 1 },
};

#define ST_NDTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

const char *
dit_st_dtype_name (dit_st_dtype dt)
{
  for (size_t i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].dt == dt)
      return st_dtypes[i].name;
  return "?";
}

size_t
dit_st_dtype_size (dit_st_dtype dt)
{
  for (size_t i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].dt == dt)
      return st_dtypes[i].size;
  return 0;
}

int
dit_st_dtype_to_dit (dit_st_dtype st, dit_dtype *out)
{
  switch (st) {
    case DIT_ST_F32: *out = DIT_F32; return 1;
    case DIT_ST_BF16: *out = DIT_BF16; return 1;
    case DIT_ST_F16: *out = DIT_F16; return 1;
    default: return 0;
  }
}

static int
st_dtype_parse (const char *s, dit_st_dtype *dt)
{
  for (size_t i = 0; i < ST_NDTYPES; i++)
    if (strcmp (st_dtypes[i].name, s) == 0) {
      *dt = st_dtypes[i].dt;
      return 1;
    }
  return 0;
}

static const char *
st_dit_dtype_name (dit_dtype dt)
{
  switch (dt) {
    case DIT_F32: return "F32";
    case DIT_BF16: return "BF16";
    case DIT_F16: return "F16";
    case DIT_F8E4M3: return "F8_E4M3";
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* small helpers */

static char *
st_strdup (const char *s)
{
  size_t n = strlen (s) + 1;
  char *d = malloc (n);
  if (d)
    memcpy (d, s, n);
  return d;
}

int
dit_str_starts_with (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

int
dit_str_ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n >= m && strcmp (s + n - m, suffix) == 0;
}

const char *
dit_shape_str (char *buf, size_t size, int ndim, const int64_t *shape)
{
  size_t o = 0;
  o += (size_t) snprintf (buf + o, size - o, "[");
  for (int i = 0; i < ndim && o < size; i++)
    o += (size_t) snprintf (buf + o, size - o, "%s%lld", i ? ", " : "",
        (long long) shape[i]);
  if (o < size)
    snprintf (buf + o, size - o, "]");
  return buf;
}

static void
st_file_clear (st_file *f)
{
  if (f->map)
    munmap (f->map, f->map_size);
  for (size_t i = 0; i < f->nmeta; i++)
    free (f->meta[i]);
  free (f->meta);
  free (f->path);
  memset (f, 0, sizeof *f);
}

void
dit_safetensors_close (dit_safetensors *st)
{
  if (!st)
    return;
  for (size_t i = 0; i < st->nfiles; i++)
    st_file_clear (&st->files[i]);
  for (size_t i = 0; i < st->count; i++)
    free ((char *) st->tensors[i].name);
  free (st->files);
  free (st->tensors);
  free (st->file_of);
  free (st->by_name);
  free (st);
}

static dit_st_tensor *
st_push_tensor (dit_safetensors *st, size_t file)
{
  if (st->count == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 256;
    dit_st_tensor *t = realloc (st->tensors, cap * sizeof *t);
    if (!t)
      return NULL;
    st->tensors = t;
    size_t *f = realloc (st->file_of, cap * sizeof *f);
    if (!f)
      return NULL;
    st->file_of = f;
    st->cap = cap;
  }
  dit_st_tensor *t = &st->tensors[st->count];
  memset (t, 0, sizeof *t);
  st->file_of[st->count] = file;
  st->count++;
  return t;
}

/* ------------------------------------------------------------------------ */
/* one .safetensors file */

static dit_status
st_parse_tensor (const char *path, const dit_json_member *m,
    const st_file *f, dit_st_tensor *t, uint64_t *begin_out,
    uint64_t *end_out)
{
  const dit_json *v = &m->value;
  const dit_json *jd, *js, *jo;
  const char *key = m->key;
  char sb[256];

  if (v->type != DIT_JSON_OBJECT)
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': expected an object, found %s",
        path, key, dit_json_type_name (v->type));
  for (size_t i = 0; i < v->u.object.count; i++) {
    const char *field = v->u.object.members[i].key;
    if (strcmp (field, "dtype") && strcmp (field, "shape")
        && strcmp (field, "data_offsets"))
      return dit_error (DIT_ERR_FORMAT, "%s: key '%s': unknown field '%s'",
          path, key, field);
  }
  jd = dit_json_get (v, "dtype");
  js = dit_json_get (v, "shape");
  jo = dit_json_get (v, "data_offsets");
  if (!jd || !js || !jo)
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': missing field '%s'", path,
        key, !jd ? "dtype" : !js ? "shape" : "data_offsets");
  if (jd->type != DIT_JSON_STRING || !st_dtype_parse (jd->u.str.ptr, &t->dtype))
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': unknown dtype %s%s%s "
        "(known: F32, BF16, F16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2)", path, key,
        jd->type == DIT_JSON_STRING ? "'" : "",
        jd->type == DIT_JSON_STRING ? jd->u.str.ptr : dit_json_type_name (jd->type),
        jd->type == DIT_JSON_STRING ? "'" : "");

  if (js->type != DIT_JSON_ARRAY)
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': shape must be an array", path, key);
  if (js->u.array.count > DIT_ST_MAX_DIMS)
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': %zu dimensions (at most %d supported)",
        path, key, js->u.array.count, DIT_ST_MAX_DIMS);
  t->ndim = (int) js->u.array.count;
  uint64_t numel = 1;
  int overflow = 0;
  for (int d = 0; d < t->ndim; d++) {
    const dit_json *e = &js->u.array.items[d];
    if (e->type != DIT_JSON_INT || e->u.integer < 0)
      return dit_error (DIT_ERR_FORMAT,
          "%s: key '%s': shape must hold non-negative integers", path, key);
    t->shape[d] = e->u.integer;
    if (e->u.integer && numel > UINT64_MAX / (uint64_t) e->u.integer)
      overflow = 1;
    else
      numel *= (uint64_t) e->u.integer;
  }
  size_t esize = dit_st_dtype_size (t->dtype);
  if (overflow || numel > UINT64_MAX / esize)
    return dit_error (DIT_ERR_FORMAT, "%s: key '%s': shape %s is too large",
        path, key, dit_shape_str (sb, sizeof sb, t->ndim, t->shape));

  if (jo->type != DIT_JSON_ARRAY || jo->u.array.count != 2
      || jo->u.array.items[0].type != DIT_JSON_INT
      || jo->u.array.items[1].type != DIT_JSON_INT
      || jo->u.array.items[0].u.integer < 0 || jo->u.array.items[1].u.integer < 0)
    return dit_error (DIT_ERR_FORMAT,
        "%s: key '%s': data_offsets must be [begin, end] with non-negative integers",
        path, key);
  uint64_t begin = (uint64_t) jo->u.array.items[0].u.integer;
  uint64_t end = (uint64_t) jo->u.array.items[1].u.integer;
  if (begin > end)
    return dit_error (DIT_ERR_FORMAT,
        "%s: key '%s': data_offsets [%llu, %llu] has begin after end", path, key,
        (unsigned long long) begin, (unsigned long long) end);
  if (end - begin != numel * esize)
    return dit_error (DIT_ERR_FORMAT,
        "%s: key '%s': shape %s %s needs %llu bytes but data_offsets [%llu, %llu] "
        "span %llu", path, key,
        dit_shape_str (sb, sizeof sb, t->ndim, t->shape),
        dit_st_dtype_name (t->dtype), (unsigned long long) (numel * esize),
        (unsigned long long) begin, (unsigned long long) end,
        (unsigned long long) (end - begin));
  if (end > f->data_size)
    return dit_error (DIT_ERR_FORMAT,
        "%s: key '%s': data_offsets [%llu, %llu] out of range: the data section "
        "holds %zu bytes (truncated file?)", path, key, (unsigned long long) begin,
        (unsigned long long) end, f->data_size);

  t->data = f->data + begin;
  t->nbytes = (size_t) (end - begin);
  t->file_offset = (uint64_t) (f->data - (const uint8_t *) f->map) + begin;
  t->file = f->path;
  *begin_out = begin;
  *end_out = end;
  return DIT_OK;
}

static dit_status
st_parse_metadata (const char *path, const dit_json *v, st_file *f)
{
  if (v->type != DIT_JSON_OBJECT)
    return dit_error (DIT_ERR_FORMAT, "%s: __metadata__ must be an object, found %s",
        path, dit_json_type_name (v->type));
  f->meta = calloc (2 * v->u.object.count + 1, sizeof *f->meta);
  if (!f->meta)
    return dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < v->u.object.count; i++) {
    const dit_json_member *m = &v->u.object.members[i];
    if (m->value.type != DIT_JSON_STRING)
      return dit_error (DIT_ERR_FORMAT,
          "%s: __metadata__ key '%s': value must be a string, found %s", path,
          m->key, dit_json_type_name (m->value.type));
    f->meta[f->nmeta] = st_strdup (m->key);
    f->meta[f->nmeta + 1] = st_strdup (m->value.u.str.ptr);
    f->nmeta += 2;
    if (!f->meta[f->nmeta - 2] || !f->meta[f->nmeta - 1])
      return dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
  }
  return DIT_OK;
}

typedef struct st_span {
  uint64_t begin, end;
  size_t tensor;
} st_span;

static int
st_span_cmp (const void *a, const void *b)
{
  const st_span *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* Map `path`, validate its header, append its tensors to `st` (file index
 * `fi`, which must already hold `path`). */
static dit_status
st_load_file (dit_safetensors *st, size_t fi)
{
  st_file *f = &st->files[fi];
  const char *path = f->path;
  struct stat sb;
  dit_json *root = NULL;
  st_span *spans = NULL;
  size_t nspans = 0;
  dit_status status = DIT_OK;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return dit_error (DIT_ERR_IO, "%s: cannot open: %s", path, strerror (errno));
  if (fstat (fd, &sb) != 0 || !S_ISREG (sb.st_mode)) {
    int err = errno;
    close (fd);
    return dit_error (DIT_ERR_IO, "%s: not a regular file%s%s", path,
        err ? ": " : "", err ? strerror (err) : "");
  }
  if (sb.st_size < 8) {
    close (fd);
    return dit_error (DIT_ERR_FORMAT,
        "%s: file is %lld bytes, too short for the 8-byte safetensors header length",
        path, (long long) sb.st_size);
  }
  f->map_size = (size_t) sb.st_size;
  f->map = mmap (NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close (fd);
  if (f->map == MAP_FAILED) {
    f->map = NULL;
    return dit_error (DIT_ERR_IO, "%s: mmap failed: %s", path, strerror (errno));
  }

  const uint8_t *b = f->map;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | b[i];
  if (n > f->map_size - 8)
    return dit_error (DIT_ERR_FORMAT,
        "%s: header length %llu exceeds the file size (%zu bytes after the length "
        "field); truncated or not a safetensors file", path, (unsigned long long) n,
        f->map_size - 8);
  if (n > ST_MAX_HEADER)
    return dit_error (DIT_ERR_FORMAT, "%s: header length %llu exceeds the %llu byte limit",
        path, (unsigned long long) n, (unsigned long long) ST_MAX_HEADER);
  if (n < 2)
    return dit_error (DIT_ERR_FORMAT, "%s: header length %llu is too small for a JSON object",
        path, (unsigned long long) n);
  f->data = b + 8 + n;
  f->data_size = f->map_size - 8 - (size_t) n;

  if ((status = dit_json_parse ((const char *) b + 8, (size_t) n, &root)) != DIT_OK)
    return dit_error_prefix (status, "%s: header", path);
  if (root->type != DIT_JSON_OBJECT) {
    status = dit_error (DIT_ERR_FORMAT, "%s: header must be a JSON object, found %s",
        path, dit_json_type_name (root->type));
    goto out;
  }
  spans = malloc ((root->u.object.count + 1) * sizeof *spans);
  if (!spans) {
    status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < root->u.object.count; i++) {
    const dit_json_member *m = &root->u.object.members[i];
    if (strcmp (m->key, "__metadata__") == 0) {
      if ((status = st_parse_metadata (path, &m->value, f)) != DIT_OK)
        goto out;
      continue;
    }
    if (strlen (m->key) != m->key_len) {
      status = dit_error (DIT_ERR_FORMAT, "%s: tensor name '%s' contains a NUL byte",
          path, m->key);
      goto out;
    }
    dit_st_tensor *t = st_push_tensor (st, fi);
    if (!t) {
      status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
      goto out;
    }
    if (!(t->name = st_strdup (m->key))) {
      status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
      goto out;
    }
    st_span *sp = &spans[nspans++];
    sp->tensor = st->count - 1;
    if ((status = st_parse_tensor (path, m, f, t, &sp->begin, &sp->end)) != DIT_OK)
      goto out;
  }

  /* Overlap check: sorted by begin, each tensor must start at or after the
   * previous one's end.  Empty tensors own no bytes. */
  qsort (spans, nspans, sizeof *spans, st_span_cmp);
  const st_span *prev = NULL;
  for (size_t i = 0; i < nspans; i++) {
    if (spans[i].begin == spans[i].end)
      continue;
    if (prev && spans[i].begin < prev->end) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: key '%s': data_offsets [%llu, %llu] overlap key '%s' [%llu, %llu]",
          path, st->tensors[spans[i].tensor].name,
          (unsigned long long) spans[i].begin, (unsigned long long) spans[i].end,
          st->tensors[prev->tensor].name, (unsigned long long) prev->begin,
          (unsigned long long) prev->end);
      goto out;
    }
    prev = &spans[i];
  }
out:
  free (spans);
  dit_json_free (root);
  return status;
}

/* ------------------------------------------------------------------------ */
/* sets */

/* qsort has no context argument; the set being indexed is passed through
 * a thread-local for the duration of the sort. */
static _Thread_local const dit_safetensors *st_cmp_ctx;

static int
st_name_cmp (const void *a, const void *b)
{
  size_t x = *(const size_t *) a, y = *(const size_t *) b;
  int c = strcmp (st_cmp_ctx->tensors[x].name, st_cmp_ctx->tensors[y].name);
  if (c)
    return c;
  return x < y ? -1 : x > y;
}

static dit_status
st_build_index (dit_safetensors *st)
{
  st->by_name = malloc ((st->count + 1) * sizeof *st->by_name);
  if (!st->by_name)
    return dit_error (DIT_ERR_NOMEM, "out of memory indexing tensors");
  for (size_t i = 0; i < st->count; i++)
    st->by_name[i] = i;
  st_cmp_ctx = st;
  qsort (st->by_name, st->count, sizeof *st->by_name, st_name_cmp);
  st_cmp_ctx = NULL;
  return DIT_OK;
}

/* First position in by_name whose name is >= `name`. */
static size_t
st_lower_bound (const dit_safetensors *st, const char *name)
{
  size_t lo = 0, hi = st->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp (st->tensors[st->by_name[mid]].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static dit_status
st_add_file (dit_safetensors *st, const char *path, size_t *index)
{
  st_file *files = realloc (st->files, (st->nfiles + 1) * sizeof *files);
  if (!files)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  st->files = files;
  memset (&files[st->nfiles], 0, sizeof files[0]);
  if (!(files[st->nfiles].path = st_strdup (path)))
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  *index = st->nfiles++;
  return DIT_OK;
}

/* Shard file names must stay inside the index's directory. */
static int
st_shard_name_ok (const char *name)
{
  if (!name[0] || name[0] == '/')
    return 0;
  for (const char *p = name; *p;) {
    const char *slash = strchr (p, '/');
    size_t n = slash ? (size_t) (slash - p) : strlen (p);
    if ((n == 2 && p[0] == '.' && p[1] == '.') || n == 0)
      return 0;
    p += n + (slash ? 1 : 0);
  }
  return 1;
}

static dit_status
st_read_small_file (const char *path, char **text, size_t *len)
{
  FILE *fp = fopen (path, "rb");
  if (!fp)
    return dit_error (DIT_ERR_IO, "%s: cannot open: %s", path, strerror (errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc (cap);
  if (!buf) {
    fclose (fp);
    return dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
  }
  for (;;) {
    if (n == cap) {
      if (cap >= ST_MAX_INDEX) {
        free (buf);
        fclose (fp);
        return dit_error (DIT_ERR_FORMAT, "%s: index file larger than %zu bytes",
            path, ST_MAX_INDEX);
      }
      char *q = realloc (buf, cap * 2);
      if (!q) {
        free (buf);
        fclose (fp);
        return dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
      }
      buf = q;
      cap *= 2;
    }
    size_t r = fread (buf + n, 1, cap - n, fp);
    n += r;
    if (r == 0) {
      if (ferror (fp)) {
        free (buf);
        fclose (fp);
        return dit_error (DIT_ERR_IO, "%s: read failed", path);
      }
      break;
    }
  }
  fclose (fp);
  *text = buf;
  *len = n;
  return DIT_OK;
}

static dit_status
st_open_index (dit_safetensors *st, const char *index_path)
{
  char *text = NULL, *dir = NULL;
  size_t len = 0;
  dit_json *root = NULL;
  const dit_json *wm;
  size_t *shard_of = NULL;     /* weight_map entry -> file index */
  unsigned char *listed = NULL;
  dit_status status;

  if ((status = st_read_small_file (index_path, &text, &len)) != DIT_OK)
    return status;
  status = dit_json_parse (text, len, &root);
  free (text);
  if (status != DIT_OK)
    return dit_error_prefix (status, "%s", index_path);

  if (root->type != DIT_JSON_OBJECT
      || !(wm = dit_json_get (root, "weight_map")) || wm->type != DIT_JSON_OBJECT) {
    status = dit_error (DIT_ERR_FORMAT,
        "%s: not a safetensors index (expected an object with a \"weight_map\" object)",
        index_path);
    goto out;
  }
  if (wm->u.object.count == 0) {
    status = dit_error (DIT_ERR_FORMAT, "%s: weight_map is empty", index_path);
    goto out;
  }

  const char *slash = strrchr (index_path, '/');
  size_t dlen = slash ? (size_t) (slash - index_path) + 1 : 0;
  shard_of = calloc (wm->u.object.count, sizeof *shard_of);
  dir = malloc (dlen + 1);
  if (!shard_of || !dir) {
    status = dit_error (DIT_ERR_NOMEM, "out of memory");
    goto out;
  }
  memcpy (dir, index_path, dlen);
  dir[dlen] = '\0';

  /* Each shard is opened once, in order of first mention. */
  for (size_t i = 0; i < wm->u.object.count; i++) {
    const dit_json_member *m = &wm->u.object.members[i];
    if (m->value.type != DIT_JSON_STRING) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: weight_map key '%s': shard must be a string, found %s", index_path,
          m->key, dit_json_type_name (m->value.type));
      goto out;
    }
    const char *shard = m->value.u.str.ptr;
    if (!st_shard_name_ok (shard) || strlen (shard) != m->value.u.str.len) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: weight_map key '%s': shard '%s' must be a relative path inside the "
          "index directory", index_path, m->key, shard);
      goto out;
    }
    size_t plen = dlen + strlen (shard) + 1;
    char *full = malloc (plen);
    if (!full) {
      status = dit_error (DIT_ERR_NOMEM, "out of memory");
      goto out;
    }
    snprintf (full, plen, "%s%s", dir, shard);
    size_t fi = st->nfiles;
    for (size_t k = 0; k < st->nfiles; k++)
      if (strcmp (st->files[k].path, full) == 0)
        fi = k;
    if (fi == st->nfiles) {
      if (access (full, R_OK) != 0)
        status = dit_error (DIT_ERR_IO,
            "%s: weight_map key '%s' names shard '%s' which cannot be opened: %s",
            index_path, m->key, full, strerror (errno));
      else if ((status = st_add_file (st, full, &fi)) == DIT_OK)
        status = st_load_file (st, fi);
    }
    free (full);
    if (status != DIT_OK)
      goto out;
    shard_of[i] = fi;
  }

  if ((status = st_build_index (st)) != DIT_OK)
    goto out;
  listed = calloc (st->count + 1, 1);
  if (!listed) {
    status = dit_error (DIT_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < wm->u.object.count; i++) {
    const char *key = wm->u.object.members[i].key;
    size_t pos = st_lower_bound (st, key), hit = SIZE_MAX;
    for (; pos < st->count && strcmp (st->tensors[st->by_name[pos]].name, key) == 0; pos++)
      if (st->file_of[st->by_name[pos]] == shard_of[i])
        hit = st->by_name[pos];
    if (hit == SIZE_MAX) {
      status = dit_error (DIT_ERR_FORMAT,
          "%s: key '%s' is mapped to shard '%s' but that shard does not contain it",
          index_path, key, st->files[shard_of[i]].path);
      goto out;
    }
    listed[hit] = 1;
  }
  for (size_t i = 0; i < st->count; i++) {
    if (listed[i])
      continue;
    status = dit_error (DIT_ERR_FORMAT,
        "%s: key '%s' is not listed for this shard in the weight_map of %s",
        st->files[st->file_of[i]].path, st->tensors[i].name, index_path);
    goto out;
  }

out:
  free (listed);
  free (shard_of);
  free (dir);
  dit_json_free (root);
  return status;
}

static int
st_str_cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* A directory: its one index, else its one .safetensors file. */
static dit_status
st_resolve_dir (const char *dir, char **out)
{
  DIR *d = opendir (dir);
  char **found = NULL;
  size_t nfound = 0, nindex = 0, nfile = 0;
  const char *pick_index = NULL, *pick_file = NULL;
  dit_status status = DIT_OK;
  struct dirent *e;

  if (!d)
    return dit_error (DIT_ERR_IO, "%s: cannot open directory: %s", dir, strerror (errno));
  while ((e = readdir (d))) {
    int is_index = dit_str_ends_with (e->d_name, ".safetensors.index.json");
    int is_file = dit_str_ends_with (e->d_name, ".safetensors");
    if (!is_index && !is_file)
      continue;
    char **q = realloc (found, (nfound + 1) * sizeof *q);
    if (!q || !(q[nfound] = st_strdup (e->d_name))) {
      found = q ? q : found;
      status = dit_error (DIT_ERR_NOMEM, "out of memory");
      break;
    }
    found = q;
    nfound++;
  }
  closedir (d);
  if (status == DIT_OK) {
    qsort (found, nfound, sizeof *found, st_str_cmp);
    for (size_t i = 0; i < nfound; i++) {
      if (dit_str_ends_with (found[i], ".safetensors.index.json")) {
        nindex++;
        pick_index = found[i];
      } else {
        nfile++;
        pick_file = found[i];
      }
    }
    const char *pick = nindex == 1 ? pick_index
        : nindex == 0 && nfile == 1 ? pick_file : NULL;
    if (pick) {
      size_t n = strlen (dir) + strlen (pick) + 2;
      *out = malloc (n);
      if (*out)
        snprintf (*out, n, "%s%s%s", dir,
            dit_str_ends_with (dir, "/") ? "" : "/", pick);
      else
        status = dit_error (DIT_ERR_NOMEM, "out of memory");
    } else {
      char list[1024];
      size_t o = 0;
      list[0] = '\0';
      for (size_t i = 0; i < nfound && o < sizeof list; i++)
        o += (size_t) snprintf (list + o, sizeof list - o, "%s%s", i ? ", " : "", found[i]);
      status = dit_error (DIT_ERR_IO,
          "%s: expected exactly one *.safetensors.index.json or one *.safetensors "
          "file, found %s%s", dir, nfound ? list : "none",
          nindex > 1 ? " (several indexes)" : "");
    }
  }
  for (size_t i = 0; i < nfound; i++)
    free (found[i]);
  free (found);
  return status;
}

dit_status
dit_safetensors_open (const char *path, dit_safetensors **out)
{
  dit_safetensors *st;
  char *resolved = NULL;
  struct stat sb;
  dit_status status;

  *out = NULL;
  if (!path || !path[0])
    return dit_error (DIT_ERR_INVALID, "safetensors: empty path");
  if (stat (path, &sb) != 0)
    return dit_error (DIT_ERR_IO, "%s: cannot open: %s", path, strerror (errno));
  if (S_ISDIR (sb.st_mode)) {
    DIT_TRY (st_resolve_dir (path, &resolved));
    path = resolved;
  }
  st = calloc (1, sizeof *st);
  if (!st) {
    free (resolved);
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  }
  if (dit_str_ends_with (path, ".json")) {
    status = st_open_index (st, path);
  } else {
    size_t fi;
    status = st_add_file (st, path, &fi);
    if (status == DIT_OK)
      status = st_load_file (st, fi);
    if (status == DIT_OK)
      status = st_build_index (st);
  }
  free (resolved);
  if (status != DIT_OK) {
    dit_safetensors_close (st);
    return status;
  }
  *out = st;
  return DIT_OK;
}

size_t
dit_safetensors_count (const dit_safetensors *st)
{
  return st->count;
}

const dit_st_tensor *
dit_safetensors_at (const dit_safetensors *st, size_t i)
{
  return i < st->count ? &st->tensors[i] : NULL;
}

const dit_st_tensor *
dit_safetensors_find (const dit_safetensors *st, const char *name)
{
  size_t pos = st_lower_bound (st, name);
  if (pos < st->count && strcmp (st->tensors[st->by_name[pos]].name, name) == 0)
    return &st->tensors[st->by_name[pos]];
  return NULL;
}

const char *
dit_safetensors_metadata (const dit_safetensors *st, const char *key)
{
  if (!st->nfiles)
    return NULL;
  const st_file *f = &st->files[0];
  for (size_t i = 0; i + 1 < f->nmeta; i += 2)
    if (strcmp (f->meta[i], key) == 0)
      return f->meta[i + 1];
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* writer */

typedef struct st_strbuf {
  char *p;
  size_t len, cap;
  int oom;
} st_strbuf;

static void
st_put (st_strbuf *b, const char *s, size_t n)
{
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *q = realloc (b->p, cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy (b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void
st_puts (st_strbuf *b, const char *s)
{
  st_put (b, s, strlen (s));
}

static void
st_put_json_string (st_strbuf *b, const char *s)
{
  st_put (b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
    char esc[8];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\';
      esc[1] = (char) *c;
      st_put (b, esc, 2);
    } else if (*c < 0x20) {
      snprintf (esc, sizeof esc, "\\u%04x", *c);
      st_put (b, esc, 6);
    } else {
      st_put (b, (const char *) c, 1);
    }
  }
  st_put (b, "\"", 1);
}

static dit_status
st_write_all (int fd, const char *tmp, const void *p, size_t n)
{
  const char *c = p;
  while (n) {
    size_t chunk = n > ((size_t) 1 << 30) ? (size_t) 1 << 30 : n;
    ssize_t w = write (fd, c, chunk);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return dit_error (DIT_ERR_IO, "%s: write failed: %s", tmp, strerror (errno));
    }
    c += w;
    n -= (size_t) w;
  }
  return DIT_OK;
}

static int
st_write_name_cmp (const void *a, const void *b)
{
  const dit_st_write_tensor *x = *(const dit_st_write_tensor *const *) a;
  const dit_st_write_tensor *y = *(const dit_st_write_tensor *const *) b;
  return strcmp (x->name, y->name);
}

static dit_status
st_write_check (const char *path, const dit_st_write_tensor *tensors, size_t count,
    const char *const *metadata, size_t *sizes)
{
  for (size_t i = 0; i < count; i++) {
    const dit_st_write_tensor *t = &tensors[i];
    if (!t->name || !t->name[0] || strcmp (t->name, "__metadata__") == 0)
      return dit_error (DIT_ERR_INVALID, "%s: tensor %zu has an invalid name", path, i);
    if (!st_dit_dtype_name (t->dtype))
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': invalid dtype", path, t->name);
    if (t->ndim < 0 || t->ndim > DIT_ST_MAX_DIMS || (t->ndim && !t->shape))
      return dit_error (DIT_ERR_INVALID, "%s: key '%s': %d dimensions", path,
          t->name, t->ndim);
    size_t n = dit_dtype_size (t->dtype);
    for (int d = 0; d < t->ndim; d++) {
      if (t->shape[d] < 0)
        return dit_error (DIT_ERR_INVALID, "%s: key '%s': negative dimension",
            path, t->name);
      if (t->shape[d] && n > SIZE_MAX / (size_t) t->shape[d])
        return dit_error (DIT_ERR_INVALID, "%s: key '%s': tensor too large", path, t->name);
      n *= (size_t) t->shape[d];
    }
    sizes[i] = n;
  }
  for (size_t i = 0; metadata && metadata[i]; i += 2)
    if (!metadata[i + 1])
      return dit_error (DIT_ERR_INVALID, "%s: metadata key '%s' has no value", path,
          metadata[i]);

  if (count > 1) {
    const dit_st_write_tensor **sorted = malloc (count * sizeof *sorted);
    const char *dup = NULL;
    if (!sorted)
      return dit_error (DIT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
      sorted[i] = &tensors[i];
    qsort (sorted, count, sizeof *sorted, st_write_name_cmp);
    for (size_t i = 1; i < count && !dup; i++)
      if (strcmp (sorted[i - 1]->name, sorted[i]->name) == 0)
        dup = sorted[i]->name;
    free (sorted);
    if (dup)
      return dit_error (DIT_ERR_INVALID, "%s: duplicate key '%s'", path, dup);
  }
  return DIT_OK;
}

dit_status
dit_safetensors_write_fn (const char *path, const dit_st_write_tensor *tensors,
    size_t count, const char *const *metadata, dit_st_fill_fn fill, void *user)
{
  st_strbuf h = { 0 };
  size_t *sizes = NULL;
  char *tmp = NULL;
  void *buf = NULL;
  size_t bufsize = 0;
  int fd = -1;
  dit_status status;

  sizes = calloc (count + 1, sizeof *sizes);
  if (!sizes)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  if ((status = st_write_check (path, tensors, count, metadata, sizes)) != DIT_OK)
    goto out;

  st_puts (&h, "{");
  if (metadata && metadata[0]) {
    st_puts (&h, "\"__metadata__\":{");
    for (size_t i = 0; metadata[i]; i += 2) {
      if (i)
        st_puts (&h, ",");
      st_put_json_string (&h, metadata[i]);
      st_puts (&h, ":");
      st_put_json_string (&h, metadata[i + 1]);
    }
    st_puts (&h, "}");
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < count; i++) {
    const dit_st_write_tensor *t = &tensors[i];
    char num[64];
    if (i || (metadata && metadata[0]))
      st_puts (&h, ",");
    st_put_json_string (&h, t->name);
    st_puts (&h, ":{\"dtype\":\"");
    st_puts (&h, st_dit_dtype_name (t->dtype));
    st_puts (&h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf (num, sizeof num, "%s%lld", d ? "," : "", (long long) t->shape[d]);
      st_puts (&h, num);
    }
    snprintf (num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
        (unsigned long long) offset, (unsigned long long) (offset + sizes[i]));
    st_puts (&h, num);
    offset += sizes[i];
  }
  st_puts (&h, "}");
  while (h.len % 8)
    st_puts (&h, " ");
  if (h.oom) {
    status = dit_error (DIT_ERR_NOMEM, "%s: out of memory building the header", path);
    goto out;
  }

  size_t tlen = strlen (path) + 16;
  if (!(tmp = malloc (tlen))) {
    status = dit_error (DIT_ERR_NOMEM, "out of memory");
    goto out;
  }
  snprintf (tmp, tlen, "%s.tmp-XXXXXX", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0) {
    status = dit_error (DIT_ERR_IO, "%s: cannot create a temporary file: %s", path,
        strerror (errno));
    free (tmp);
    tmp = NULL;
    goto out;
  }
  (void) fchmod (fd, 0644);

  uint8_t len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (uint8_t) ((uint64_t) h.len >> (8 * i));
  if ((status = st_write_all (fd, tmp, len8, 8)) != DIT_OK
      || (status = st_write_all (fd, tmp, h.p, h.len)) != DIT_OK)
    goto out;
  for (size_t i = 0; i < count; i++) {
    const void *src = tensors[i].data;
    if (fill) {
      if (sizes[i] > bufsize) {
        free (buf);
        bufsize = sizes[i];
        if (!(buf = malloc (bufsize))) {
          bufsize = 0;
          status = dit_error (DIT_ERR_NOMEM, "%s: out of memory for key '%s'", path,
              tensors[i].name);
          goto out;
        }
      }
      if ((status = fill (user, i, buf, sizes[i])) != DIT_OK) {
        dit_error_prefix (status, "%s: key '%s'", path, tensors[i].name);
        goto out;
      }
      src = buf;
    } else if (sizes[i] && !src) {
      status = dit_error (DIT_ERR_INVALID, "%s: key '%s': no data", path, tensors[i].name);
      goto out;
    }
    if ((status = st_write_all (fd, tmp, src, sizes[i])) != DIT_OK)
      goto out;
  }
  if (fsync (fd) != 0) {
    status = dit_error (DIT_ERR_IO, "%s: fsync failed: %s", tmp, strerror (errno));
    goto out;
  }
  if (close (fd) != 0) {
    fd = -1;
    status = dit_error (DIT_ERR_IO, "%s: close failed: %s", tmp, strerror (errno));
    goto out;
  }
  fd = -1;
  if (rename (tmp, path) != 0) {
    status = dit_error (DIT_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
        strerror (errno));
    goto out;
  }
  free (tmp);
  tmp = NULL;

out:
  if (fd >= 0)
    close (fd);
  if (tmp) {
    unlink (tmp);
    free (tmp);
  }
  free (buf);
  free (h.p);
  free (sizes);
  return status;
}

dit_status
dit_safetensors_write (const char *path, const dit_st_write_tensor *tensors,
    size_t count, const char *const *metadata)
{
  return dit_safetensors_write_fn (path, tensors, count, metadata, NULL, NULL);
}
