/* dit_status — how libdit reports failure.
 *
 * Every library function that can fail returns a dit_status and, on failure,
 * leaves a human-readable message in a thread-local buffer (dit_last_error).
 * The message names the thing that was wrong (file, key, shape, ...) so that
 * tools can print it and GStreamer elements can put it into
 * GST_ELEMENT_ERROR unchanged.  Library code never calls exit() or abort().
 */
#ifndef DIT_STATUS_H
#define DIT_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dit_status {
  DIT_OK = 0,
  DIT_ERR_INVALID,      /* bad argument, shape or configuration */
  DIT_ERR_IO,           /* open/read/mmap failed */
  DIT_ERR_FORMAT,       /* malformed file (header, offsets, dtype) */
  DIT_ERR_NOMEM,        /* allocation failed */
  DIT_ERR_UNSUPPORTED,  /* the backend does not support this op/dtype */
  DIT_ERR_DEVICE,       /* accelerator runtime error */
  DIT_ERR_STATE,        /* call out of order (e.g. no prompt set) */
} dit_status;

/* The message of the last failure on this thread ("" if none). */
const char *dit_last_error (void);

/* Set the thread's message and return `st`; printf-style. */
dit_status dit_error (dit_status st, const char *fmt, ...)
    __attribute__((format (printf, 2, 3)));

/* Prefix the current message with more context: "ctx: <old message>". */
dit_status dit_error_prefix (dit_status st, const char *fmt, ...)
    __attribute__((format (printf, 2, 3)));

void dit_clear_error (void);

const char *dit_status_name (dit_status st);

/* Evaluate `expr`; on failure return its status from the current function. */
#define DIT_TRY(expr) do { dit_status dit_try_st_ = (expr); \
    if (dit_try_st_ != DIT_OK) return dit_try_st_; } while (0)

#ifdef __cplusplus
}
#endif
#endif
