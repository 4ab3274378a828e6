/* check — the CHECK macros of the C test programs.  A failed check prints
 * "FAIL file:line: " and its message on stderr and counts a failure; the
 * program goes on, so one run lists every check that fails, and main
 * returns non-zero when `failures` is not 0.  `checks` counts the checks
 * made, for the programs that print it. */
#ifndef DIT_TEST_CHECK_H
#define DIT_TEST_CHECK_H

#include <stdio.h>

#include "dit_status.h"

static int failures, checks;

#define CHECK(cond, ...) do {                                                 \
    checks++;                                                                 \
    if (!(cond)) {                                                            \
      failures++;                                                             \
      fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
      fprintf (stderr, __VA_ARGS__);                                          \
      fprintf (stderr, "\n");                                                 \
    }                                                                         \
  } while (0)

/* expr returns a dit_status; anything but DIT_OK fails with the status
 * name and the library's last error. */
#define CHECK_OK(expr) do {                                                   \
    dit_status st_ = (expr);                                                  \
    CHECK (st_ == DIT_OK, "%s -> %s: %s", #expr, dit_status_name (st_),       \
        dit_last_error ());                                                   \
  } while (0)

#endif
