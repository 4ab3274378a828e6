/* dit_text_clean — Wan's prompt cleaning before SentencePiece (spec §6.2):
 * UTF-8 validation, HTML unescape applied twice, whitespace collapse.
 *
 * The unescape follows CPython's html.unescape: the reference pattern
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?), numeric
 * references with its replacement rules, named references from a subset of
 * the HTML5 table (see dit_tokenizer.h), and its longest-prefix rule for the
 * legacy names that may appear without ';' ("&ampx" -> "&x").  Whitespace is
 * Python's str.isspace set, which `re.sub(r"\s+", " ")` and str.strip() use.
 * ftfy.fix_text is not reproduced.  The test compares against CPython's own
 * html.unescape and re on the prompt corpus.
 */
#include "dit_tokenizer.h"

#include <stdlib.h>
#include <string.h>

dit_status
dit_text_check_utf8 (const char *text, size_t len)
{
  const unsigned char *s = (const unsigned char *) text;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    int n;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1; cp = c & 0x1f; min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2; cp = c & 0x0f; min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3; cp = c & 0x07; min = 0x10000;
    } else {
      return dit_error (DIT_ERR_INVALID, "prompt is not valid UTF-8: byte "
          "0x%02x at offset %zu cannot start a character", c, i);
    }
    if (i + (size_t) n >= len)
      return dit_error (DIT_ERR_INVALID, "prompt is not valid UTF-8: "
          "character at offset %zu is cut short", i);
    for (int k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return dit_error (DIT_ERR_INVALID, "prompt is not valid UTF-8: byte "
            "0x%02x at offset %zu is not a continuation byte", s[i + k], i + k);
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return dit_error (DIT_ERR_INVALID, "prompt is not valid UTF-8: "
          "overlong, surrogate or out-of-range sequence at offset %zu", i);
    i += (size_t) n + 1;
  }
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* growable output */

typedef struct text_buf {
  char *p;
  size_t n, cap;
  int oom;
} text_buf;

static void
buf_put (text_buf *b, const char *s, size_t n)
{
  if (b->oom)
    return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc (b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy (b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void
buf_put_cp (text_buf *b, uint32_t cp)
{
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char) cp; n = 1;
  } else if (cp < 0x800) {
    u[0] = (char) (0xc0 | (cp >> 6)); u[1] = (char) (0x80 | (cp & 0x3f)); n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char) (0xe0 | (cp >> 12)); u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char) (0x80 | (cp & 0x3f)); n = 3;
  } else {
    u[0] = (char) (0xf0 | (cp >> 18)); u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char) (0x80 | ((cp >> 6) & 0x3f)); u[3] = (char) (0x80 | (cp & 0x3f));
    n = 4;
  }
  buf_put (b, u, n);
}

/* ------------------------------------------------------------------------ */
/* HTML unescape */

typedef struct entity {
  const char *name;
  uint32_t cp;
  int legacy;   /* also recognised without ';' */
} entity;

static const entity entities[] = {
  { "amp", '&', 1 }, { "lt", '<', 1 }, { "gt", '>', 1 }, { "quot", '"', 1 },
  { "AMP", '&', 1 }, { "LT", '<', 1 }, { "GT", '>', 1 }, { "QUOT", '"', 1 },
  { "COPY", 0xa9, 1 }, { "REG", 0xae, 1 },
  { "apos", '\'', 0 }, { "nbsp", 0xa0, 1 }, { "copy", 0xa9, 1 },
  { "reg", 0xae, 1 }, { "trade", 0x2122, 0 }, { "hellip", 0x2026, 0 },
  { "mdash", 0x2014, 0 }, { "ndash", 0x2013, 0 }, { "lsquo", 0x2018, 0 },
  { "rsquo", 0x2019, 0 }, { "ldquo", 0x201c, 0 }, { "rdquo", 0x201d, 0 },
  { "laquo", 0xab, 1 }, { "raquo", 0xbb, 1 }, { "middot", 0xb7, 1 },
  { "deg", 0xb0, 1 }, { "euro", 0x20ac, 0 }, { "pound", 0xa3, 1 },
  { "yen", 0xa5, 1 }, { "cent", 0xa2, 1 }, { "sect", 0xa7, 1 },
  { "para", 0xb6, 1 }, { "bull", 0x2022, 0 },
};

/* U+00C0 .. U+00FF in order; all legacy names (times and divide included) */
static const char *const latin1_names[64] = {
  "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil",
  "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml",
  "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times",
  "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig",
  "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
  "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml",
  "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide",
  "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
};

/* Look up name[0, n); legacy_only restricts to names valid without ';'.
 * Returns the code point or 0. */
static uint32_t
entity_find (const char *name, size_t n, int legacy_only)
{
  for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
    const entity *e = &entities[i];
    if (strlen (e->name) == n && memcmp (e->name, name, n) == 0
        && (e->legacy || !legacy_only))
      return e->cp;
  }
  for (int i = 0; i < 64; i++)
    if (strlen (latin1_names[i]) == n && memcmp (latin1_names[i], name, n) == 0)
      return 0xc0 + (uint32_t) i;
  return 0;
}

/* html.unescape's table for references to C1 controls and NUL/CR */
static const uint16_t cp1252_c1[32] = {
  0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
  0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
  0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
};

static void
put_numeric (text_buf *b, uint64_t num)
{
  if (num == 0) {
    buf_put_cp (b, 0xfffd);
  } else if (num == 0x0d) {
    buf_put (b, "\r", 1);
  } else if (num >= 0x80 && num <= 0x9f) {
    buf_put_cp (b, cp1252_c1[num - 0x80]);
  } else if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) {
    buf_put_cp (b, 0xfffd);
  } else if ((num >= 0x1 && num <= 0x8) || num == 0xb
      || (num >= 0xe && num <= 0x1f) || (num >= 0x7f && num <= 0x9f)
      || (num >= 0xfdd0 && num <= 0xfdef) || (num & 0xfffe) == 0xfffe) {
    /* html.unescape's _invalid_codepoints: dropped */
  } else {
    buf_put_cp (b, (uint32_t) num);
  }
}

static int
is_hex (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
hex_val (char c)
{
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int
is_name_char (char c)
{
  return c != '\0' && c != '\t' && c != '\n' && c != '\f' && c != ' '
      && c != '<' && c != '&' && c != '#' && c != ';';
}

static void
html_unescape (const char *s, text_buf *b)
{
  size_t i = 0, n = strlen (s);
  while (i < n) {
    const char *amp = memchr (s + i, '&', n - i);
    if (!amp) {
      buf_put (b, s + i, n - i);
      break;
    }
    size_t a = (size_t) (amp - s);
    buf_put (b, s + i, a - i);
    i = a;
    const char *p = s + a + 1;
    if (p[0] == '#') {
      int hex = p[1] == 'x' || p[1] == 'X';
      const char *d = p + 1 + hex;
      size_t nd = 0;
      uint64_t num = 0;
      while (hex ? is_hex (d[nd]) : (d[nd] >= '0' && d[nd] <= '9')) {
        int v = hex ? hex_val (d[nd]) : d[nd] - '0';
        if (num < 0x100000000ull)
          num = num * (hex ? 16 : 10) + (uint64_t) v;  /* saturates above U+10FFFF */
        nd++;
      }
      if (nd == 0) {
        buf_put (b, "&", 1);
        i = a + 1;
        continue;
      }
      put_numeric (b, num);
      i = (size_t) (d + nd - s) + (d[nd] == ';');
      continue;
    }
    size_t nn = 0;
    while (nn < 32 && is_name_char (p[nn]))
      nn++;
    if (nn == 0) {
      buf_put (b, "&", 1);
      i = a + 1;
      continue;
    }
    int semi = p[nn] == ';';
    uint32_t cp = entity_find (p, nn, !semi);
    if (cp) {
      buf_put_cp (b, cp);
      i = a + 1 + nn + (size_t) semi;
      continue;
    }
    /* longest legacy prefix of at least 2 characters, the rest kept */
    size_t k;
    for (k = nn - (semi ? 0 : 1); k >= 2; k--) {
      if ((cp = entity_find (p, k, 1)))
        break;
    }
    if (k >= 2 && cp) {
      buf_put_cp (b, cp);
      i = a + 1 + k;   /* the rest of the name (and ';') is copied as text */
      continue;
    }
    buf_put (b, "&", 1);
    i = a + 1;
  }
}

/* ------------------------------------------------------------------------ */
/* whitespace */

/* Length of the whitespace character at s (0 when not whitespace). */
static size_t
space_len (const unsigned char *s)
{
  if ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))
    return 1;
  if (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
    return 2;
  if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80)      /* U+1680 */
    return 3;
  if (s[0] == 0xe2 && s[1] == 0x80
      && ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9
          || s[2] == 0xaf))                              /* U+2000-200A, 2028, 2029, 202F */
    return 3;
  if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f)      /* U+205F */
    return 3;
  if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80)      /* U+3000 */
    return 3;
  return 0;
}

static void
collapse_space (const char *s, text_buf *b)
{
  const unsigned char *u = (const unsigned char *) s;
  int pending = 0;
  while (*u) {
    size_t w = space_len (u);
    if (w) {
      pending = b->n > 0;
      u += w;
      continue;
    }
    if (pending)
      buf_put (b, " ", 1);
    pending = 0;
    buf_put (b, (const char *) u, 1);
    u++;
  }
}

dit_status
dit_text_clean (const char *text, char **out)
{
  *out = NULL;
  if (!text)
    text = "";
  DIT_TRY (dit_text_check_utf8 (text, strlen (text)));
  text_buf once = { 0 }, twice = { 0 }, clean = { 0 };
  buf_put (&once, "", 0);
  html_unescape (text, &once);
  if (!once.oom)
    html_unescape (once.p, &twice);
  buf_put (&twice, "", 0);
  if (!twice.oom)
    collapse_space (twice.p, &clean);
  buf_put (&clean, "", 0);
  int oom = once.oom || twice.oom || clean.oom;
  free (once.p);
  free (twice.p);
  if (oom) {
    free (clean.p);
    return dit_error (DIT_ERR_NOMEM, "prompt cleaning: out of memory");
  }
  *out = clean.p;
  return DIT_OK;
}
