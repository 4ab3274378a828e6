#include "dit_status.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char dit_error_buf[2048];

const char *
dit_last_error (void)
{
  return dit_error_buf;
}

void
dit_clear_error (void)
{
  dit_error_buf[0] = '\0';
}

dit_status
dit_error (dit_status st, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (dit_error_buf, sizeof dit_error_buf, fmt, ap);
  va_end (ap);
  return st;
}

dit_status
dit_error_prefix (dit_status st, const char *fmt, ...)
{
  char old[sizeof dit_error_buf];
  char pre[512];
  va_list ap;

  memcpy (old, dit_error_buf, sizeof old);
  va_start (ap, fmt);
  vsnprintf (pre, sizeof pre, fmt, ap);
  va_end (ap);
  /* pre is at most 511 chars, so "pre: " always fits; old is cut to fit. */
  size_t lp = strlen (pre);
  memcpy (dit_error_buf, pre, lp);
  memcpy (dit_error_buf + lp, ": ", 2);
  size_t room = sizeof dit_error_buf - lp - 3;
  size_t lo = strnlen (old, room);
  memcpy (dit_error_buf + lp + 2, old, lo);
  dit_error_buf[lp + 2 + lo] = '\0';
  return st;
}

const char *
dit_status_name (dit_status st)
{
  switch (st) {
    case DIT_OK: return "ok";
    case DIT_ERR_INVALID: return "invalid argument";
    case DIT_ERR_IO: return "i/o error";
    case DIT_ERR_FORMAT: return "format error";
    case DIT_ERR_NOMEM: return "out of memory";
    case DIT_ERR_UNSUPPORTED: return "unsupported";
    case DIT_ERR_DEVICE: return "device error";
    case DIT_ERR_STATE: return "invalid state";
  }
  return "unknown";
}
