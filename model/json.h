/* json — a small strict JSON parser for checkpoint headers and index files.
 *
 * RFC 8259 only: no comments, no trailing commas, no NaN/Infinity, no
 * leading zeros, strings must be valid UTF-8 without raw control characters,
 * \uXXXX escapes are decoded (surrogate pairs joined, lone surrogates
 * rejected), duplicate keys inside one object are rejected.  Integers that
 * fit in int64 keep their exact value (DIT_JSON_INT); other numbers are
 * doubles.  Nesting is limited to DIT_JSON_MAX_DEPTH and the text to
 * DIT_JSON_MAX_SIZE bytes, so a hostile header cannot exhaust the stack.
 *
 * Errors carry the byte offset: "malformed JSON at byte 1234: expected ':'".
 * The result is a DOM: object members keep their order in the text.
 */
#ifndef DIT_JSON_H
#define DIT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_JSON_MAX_DEPTH 64
#define DIT_JSON_MAX_SIZE ((size_t) 1 << 30)

typedef enum dit_json_type {
  DIT_JSON_NULL,
  DIT_JSON_BOOL,
  DIT_JSON_INT,     /* integer literal that fits in int64 */
  DIT_JSON_NUMBER,  /* any other number */
  DIT_JSON_STRING,
  DIT_JSON_ARRAY,
  DIT_JSON_OBJECT,
} dit_json_type;

typedef struct dit_json dit_json;
typedef struct dit_json_member dit_json_member;

struct dit_json {
  dit_json_type type;
  size_t offset;            /* byte offset of the value in the text */
  union {
    int boolean;
    int64_t integer;
    double number;
    struct { char *ptr; size_t len; } str;    /* NUL-terminated, may hold \0 */
    struct { dit_json *items; size_t count; } array;
    struct { dit_json_member *members; size_t count; } object;
  } u;
};

struct dit_json_member {
  char *key;                /* NUL-terminated */
  size_t key_len;
  dit_json value;
};

/* Parse `len` bytes of `text` (need not be NUL-terminated).  On success
 * *out is the root value; free it with dit_json_free. */
dit_status dit_json_parse (const char *text, size_t len, dit_json **out);
void dit_json_free (dit_json *root);

/* Member `key` of an object, or NULL (also when `obj` is not an object). */
const dit_json *dit_json_get (const dit_json *obj, const char *key);

const char *dit_json_type_name (dit_json_type t);

#ifdef __cplusplus
}
#endif
#endif
