/* json — strict recursive-descent JSON parser (see json.h for the rules).
 *
 * Recursion depth is bounded by DIT_JSON_MAX_DEPTH, so the C stack use is
 * bounded too.  Arrays and objects collect their children in a growing
 * buffer and are shrunk to size when closed.  Duplicate keys are found by
 * sorting a pointer array of the members (n log n), because safetensors
 * headers of 14B checkpoints have over a thousand members in one object.
 */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct json_parser {
  const unsigned char *s;
  size_t len;
  size_t pos;
} json_parser;

static dit_status
json_fail (const json_parser *p, size_t at, const char *what)
{
  (void) p;
  return dit_error (DIT_ERR_FORMAT, "malformed JSON at byte %zu: %s", at, what);
}

static void
json_skip_ws (json_parser *p)
{
  while (p->pos < p->len) {
    unsigned char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    p->pos++;
  }
}

static void json_free_value (dit_json *v);

static void
json_free_value (dit_json *v)
{
  switch (v->type) {
    case DIT_JSON_STRING:
      free (v->u.str.ptr);
      break;
    case DIT_JSON_ARRAY:
      for (size_t i = 0; i < v->u.array.count; i++)
        json_free_value (&v->u.array.items[i]);
      free (v->u.array.items);
      break;
    case DIT_JSON_OBJECT:
      for (size_t i = 0; i < v->u.object.count; i++) {
        free (v->u.object.members[i].key);
        json_free_value (&v->u.object.members[i].value);
      }
      free (v->u.object.members);
      break;
    default:
      break;
  }
  v->type = DIT_JSON_NULL;
}

/* ------------------------------------------------------------------------ */
/* strings */

typedef struct json_buf {
  char *ptr;
  size_t len, cap;
} json_buf;

static int
json_buf_put (json_buf *b, const void *src, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *q = realloc (b->ptr, cap);
    if (!q)
      return 0;
    b->ptr = q;
    b->cap = cap;
  }
  memcpy (b->ptr + b->len, src, n);
  b->len += n;
  b->ptr[b->len] = '\0';
  return 1;
}

static int
json_hex4 (const json_parser *p, size_t at, uint32_t *out)
{
  uint32_t v = 0;
  if (at + 4 > p->len)
    return 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p->s[at + i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t) (c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t) (c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t) (c - 'A' + 10);
    else
      return 0;
  }
  *out = v;
  return 1;
}

static size_t
json_utf8_encode (uint32_t cp, unsigned char *o)
{
  if (cp < 0x80) {
    o[0] = (unsigned char) cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char) (0xc0 | (cp >> 6));
    o[1] = (unsigned char) (0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char) (0xe0 | (cp >> 12));
    o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char) (0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char) (0xf0 | (cp >> 18));
  o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
  o[3] = (unsigned char) (0x80 | (cp & 0x3f));
  return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF rejected). */
static size_t
json_utf8_valid (const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t need;
  uint32_t cp, min;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0) {
    need = 2; cp = c & 0x1f; min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    need = 3; cp = c & 0x0f; min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    need = 4; cp = c & 0x07; min = 0x10000;
  } else {
    return 0;
  }
  if (n < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return need;
}

/* At an opening quote; on success *str and *len own a NUL-terminated copy. */
static dit_status
json_parse_string (json_parser *p, char **str, size_t *len)
{
  json_buf b = { 0 };
  size_t start = p->pos;
  p->pos++;
  for (;;) {
    if (p->pos >= p->len) {
      free (b.ptr);
      return json_fail (p, start, "unterminated string");
    }
    unsigned char c = p->s[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20) {
      free (b.ptr);
      return json_fail (p, p->pos, "control character in string");
    }
    if (c == '\\') {
      size_t esc = p->pos;
      if (p->pos + 1 >= p->len) {
        free (b.ptr);
        return json_fail (p, esc, "unterminated escape");
      }
      unsigned char e = p->s[p->pos + 1];
      unsigned char out[4];
      size_t n = 1;
      p->pos += 2;
      switch (e) {
        case '"': out[0] = '"'; break;
        case '\\': out[0] = '\\'; break;
        case '/': out[0] = '/'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!json_hex4 (p, p->pos, &cp)) {
            free (b.ptr);
            return json_fail (p, esc, "invalid \\u escape");
          }
          p->pos += 4;
          if (cp >= 0xdc00 && cp <= 0xdfff) {
            free (b.ptr);
            return json_fail (p, esc, "lone low surrogate in \\u escape");
          }
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (p->pos + 6 > p->len || p->s[p->pos] != '\\'
                || p->s[p->pos + 1] != 'u' || !json_hex4 (p, p->pos + 2, &lo)
                || lo < 0xdc00 || lo > 0xdfff) {
              free (b.ptr);
              return json_fail (p, esc, "high surrogate not followed by a low surrogate");
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          n = json_utf8_encode (cp, out);
          break;
        }
        default:
          free (b.ptr);
          return json_fail (p, esc, "invalid escape");
      }
      if (!json_buf_put (&b, out, n)) {
        free (b.ptr);
        return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
      }
      continue;
    }
    /* a run of plain bytes */
    size_t run = p->pos;
    while (run < p->len) {
      unsigned char d = p->s[run];
      if (d == '"' || d == '\\' || d < 0x20)
        break;
      size_t n = json_utf8_valid (p->s + run, p->len - run);
      if (!n) {
        free (b.ptr);
        return json_fail (p, run, "invalid UTF-8 in string");
      }
      run += n;
    }
    if (!json_buf_put (&b, p->s + p->pos, run - p->pos)) {
      free (b.ptr);
      return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
    }
    p->pos = run;
  }
  if (!b.ptr && !json_buf_put (&b, "", 0))
    return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
  *str = b.ptr;
  *len = b.len;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* numbers */

static int
json_is_digit (unsigned char c)
{
  return c >= '0' && c <= '9';
}

static dit_status
json_parse_number (json_parser *p, dit_json *v)
{
  size_t start = p->pos, i = p->pos;
  int is_int = 1;
  if (i < p->len && p->s[i] == '-')
    i++;
  if (i >= p->len || !json_is_digit (p->s[i]))
    return json_fail (p, start, "invalid number");
  if (p->s[i] == '0') {
    i++;
    if (i < p->len && json_is_digit (p->s[i]))
      return json_fail (p, start, "leading zero in number");
  } else {
    while (i < p->len && json_is_digit (p->s[i]))
      i++;
  }
  if (i < p->len && p->s[i] == '.') {
    is_int = 0;
    i++;
    if (i >= p->len || !json_is_digit (p->s[i]))
      return json_fail (p, start, "expected a digit after '.'");
    while (i < p->len && json_is_digit (p->s[i]))
      i++;
  }
  if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
    is_int = 0;
    i++;
    if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
      i++;
    if (i >= p->len || !json_is_digit (p->s[i]))
      return json_fail (p, start, "expected a digit in exponent");
    while (i < p->len && json_is_digit (p->s[i]))
      i++;
  }

  /* The literal is copied because the text need not be NUL-terminated. */
  char small[64];
  char *tmp = small;
  size_t n = i - start;
  if (n >= sizeof small) {
    tmp = malloc (n + 1);
    if (!tmp)
      return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
  }
  memcpy (tmp, p->s + start, n);
  tmp[n] = '\0';

  v->offset = start;
  if (is_int) {
    char *end;
    errno = 0;
    long long ll = strtoll (tmp, &end, 10);
    if (errno == 0 && *end == '\0') {
      v->type = DIT_JSON_INT;
      v->u.integer = (int64_t) ll;
      goto done;
    }
  }
  v->type = DIT_JSON_NUMBER;
  v->u.number = strtod (tmp, NULL);
done:
  if (tmp != small)
    free (tmp);
  p->pos = i;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* values */

static dit_status json_parse_value (json_parser *p, dit_json *v, int depth);

static int
json_member_cmp (const void *a, const void *b)
{
  const dit_json_member *x = *(const dit_json_member *const *) a;
  const dit_json_member *y = *(const dit_json_member *const *) b;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  int c = memcmp (x->key, y->key, n);
  if (c)
    return c;
  return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static dit_status
json_check_duplicates (const json_parser *p, const dit_json *obj)
{
  size_t n = obj->u.object.count;
  const dit_json_member *dup = NULL;
  if (n < 2)
    return DIT_OK;
  const dit_json_member **sorted = malloc (n * sizeof *sorted);
  if (!sorted)
    return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
  for (size_t i = 0; i < n; i++)
    sorted[i] = &obj->u.object.members[i];
  qsort (sorted, n, sizeof *sorted, json_member_cmp);
  for (size_t i = 1; i < n && !dup; i++)
    if (json_member_cmp (&sorted[i - 1], &sorted[i]) == 0)
      dup = sorted[i - 1]->value.offset > sorted[i]->value.offset
          ? sorted[i - 1] : sorted[i];
  free (sorted);
  if (dup)
    return dit_error (DIT_ERR_FORMAT,
        "malformed JSON at byte %zu: duplicate key '%s'", dup->value.offset,
        dup->key);
  (void) p;
  return DIT_OK;
}

static dit_status
json_parse_container (json_parser *p, dit_json *v, int depth, int is_object)
{
  unsigned char close = is_object ? '}' : ']';
  size_t elem = is_object ? sizeof (dit_json_member) : sizeof (dit_json);
  void *items = NULL;
  size_t count = 0, cap = 0;
  dit_status st = DIT_OK;

  if (depth >= DIT_JSON_MAX_DEPTH)
    return json_fail (p, p->pos, "nesting deeper than 64 levels");
  v->type = is_object ? DIT_JSON_OBJECT : DIT_JSON_ARRAY;
  v->offset = p->pos;
  p->pos++;
  json_skip_ws (p);
  if (p->pos < p->len && p->s[p->pos] == close) {
    p->pos++;
    goto finish;
  }
  for (;;) {
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      void *q = realloc (items, ncap * elem);
      if (!q) {
        st = dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
        goto fail;
      }
      items = q;
      cap = ncap;
    }
    json_skip_ws (p);
    if (is_object) {
      dit_json_member *m = (dit_json_member *) items + count;
      if (p->pos >= p->len || p->s[p->pos] != '"') {
        st = json_fail (p, p->pos, "expected a string key");
        goto fail;
      }
      if ((st = json_parse_string (p, &m->key, &m->key_len)) != DIT_OK)
        goto fail;
      json_skip_ws (p);
      if (p->pos >= p->len || p->s[p->pos] != ':') {
        free (m->key);
        st = json_fail (p, p->pos, "expected ':'");
        goto fail;
      }
      p->pos++;
      json_skip_ws (p);
      if ((st = json_parse_value (p, &m->value, depth + 1)) != DIT_OK) {
        free (m->key);
        goto fail;
      }
    } else {
      dit_json *item = (dit_json *) items + count;
      if ((st = json_parse_value (p, item, depth + 1)) != DIT_OK)
        goto fail;
    }
    count++;
    json_skip_ws (p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->s[p->pos] == close) {
      p->pos++;
      break;
    }
    st = json_fail (p, p->pos, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    goto fail;
  }
finish:
  if (count && count < cap) {
    void *q = realloc (items, count * elem);
    if (q)
      items = q;
  }
  if (is_object) {
    v->u.object.members = items;
    v->u.object.count = count;
    if ((st = json_check_duplicates (p, v)) != DIT_OK) {
      json_free_value (v);
      return st;
    }
  } else {
    v->u.array.items = items;
    v->u.array.count = count;
  }
  return DIT_OK;

fail:
  for (size_t i = 0; i < count; i++) {
    if (is_object) {
      dit_json_member *m = (dit_json_member *) items + i;
      free (m->key);
      json_free_value (&m->value);
    } else {
      json_free_value ((dit_json *) items + i);
    }
  }
  free (items);
  v->type = DIT_JSON_NULL;
  return st;
}

static int
json_literal (json_parser *p, const char *word)
{
  size_t n = strlen (word);
  if (p->pos + n > p->len || memcmp (p->s + p->pos, word, n) != 0)
    return 0;
  p->pos += n;
  return 1;
}

static dit_status
json_parse_value (json_parser *p, dit_json *v, int depth)
{
  memset (v, 0, sizeof *v);
  json_skip_ws (p);
  if (p->pos >= p->len)
    return json_fail (p, p->pos, "unexpected end of input");
  v->offset = p->pos;
  unsigned char c = p->s[p->pos];
  switch (c) {
    case '{':
      return json_parse_container (p, v, depth, 1);
    case '[':
      return json_parse_container (p, v, depth, 0);
    case '"':
      v->type = DIT_JSON_STRING;
      return json_parse_string (p, &v->u.str.ptr, &v->u.str.len);
    case 't':
    case 'f':
      if (json_literal (p, c == 't' ? "true" : "false")) {
        v->type = DIT_JSON_BOOL;
        v->u.boolean = c == 't';
        return DIT_OK;
      }
      break;
    case 'n':
      if (json_literal (p, "null")) {
        v->type = DIT_JSON_NULL;
        return DIT_OK;
      }
      break;
    default:
      if (c == '-' || json_is_digit (c))
        return json_parse_number (p, v);
      break;
  }
  return json_fail (p, p->pos, "unexpected character");
}

dit_status
dit_json_parse (const char *text, size_t len, dit_json **out)
{
  json_parser p = { (const unsigned char *) text, len, 0 };
  dit_json *root;
  dit_status st;

  *out = NULL;
  if (len > DIT_JSON_MAX_SIZE)
    return dit_error (DIT_ERR_FORMAT, "JSON text of %zu bytes exceeds the %zu byte limit",
        len, (size_t) DIT_JSON_MAX_SIZE);
  root = calloc (1, sizeof *root);
  if (!root)
    return dit_error (DIT_ERR_NOMEM, "out of memory parsing JSON");
  if ((st = json_parse_value (&p, root, 0)) != DIT_OK) {
    free (root);
    return st;
  }
  json_skip_ws (&p);
  if (p.pos != p.len) {
    json_free_value (root);
    free (root);
    return json_fail (&p, p.pos, "unexpected data after the top-level value");
  }
  *out = root;
  return DIT_OK;
}

void
dit_json_free (dit_json *root)
{
  if (!root)
    return;
  json_free_value (root);
  free (root);
}

const dit_json *
dit_json_get (const dit_json *obj, const char *key)
{
  size_t n;
  if (!obj || obj->type != DIT_JSON_OBJECT)
    return NULL;
  n = strlen (key);
  for (size_t i = 0; i < obj->u.object.count; i++) {
    const dit_json_member *m = &obj->u.object.members[i];
    if (m->key_len == n && memcmp (m->key, key, n) == 0)
      return &m->value;
  }
  return NULL;
}

const char *
dit_json_type_name (dit_json_type t)
{
  switch (t) {
    case DIT_JSON_NULL: return "null";
    case DIT_JSON_BOOL: return "boolean";
    case DIT_JSON_INT: return "integer";
    case DIT_JSON_NUMBER: return "number";
    case DIT_JSON_STRING: return "string";
    case DIT_JSON_ARRAY: return "array";
    case DIT_JSON_OBJECT: return "object";
  }
  return "?";
}
