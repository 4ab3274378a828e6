/* dit_net — sockets with deadlines, shared by the CPU comm, the mesh and
 * dit-worker.
 *
 * Every call that can block takes an absolute deadline (dit_net_deadline)
 * and polls; a peer that closes is DIT_ERR_IO "closed the connection", a
 * peer that stops answering is DIT_ERR_IO "timed out".  Sockets are
 * non-blocking and close-on-exec; sends use MSG_NOSIGNAL so a dead peer
 * never raises SIGPIPE.  Listening sockets bind port 0 (the kernel picks a
 * free port) and report it, so there are no fixed ports.
 */
#ifndef DIT_NET_H
#define DIT_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic milliseconds, and now + timeout_ms (timeout <= 0: no deadline). */
int64_t dit_net_now_ms (void);
int64_t dit_net_deadline (int timeout_ms);

/* Listen on host (NULL or "" = 127.0.0.1) port *port (0 = any); *port gets
 * the bound port. */
dit_status dit_net_listen (const char *host, int *port, int *fd_out);
dit_status dit_net_accept (int listen_fd, int64_t deadline, int *fd_out);
dit_status dit_net_connect (const char *host, int port, int64_t deadline,
    int *fd_out);
/* Parse "HOST:PORT" (HOST may be empty = 127.0.0.1). */
dit_status dit_net_parse_addr (const char *addr, char *host, size_t hostsize,
    int *port);

/* Send or receive exactly n bytes before the deadline. `what` names the
 * peer and the message in errors ("rank 2 all-reduce"). */
dit_status dit_net_send_all (int fd, const void *buf, size_t n,
    int64_t deadline, const char *what);
dit_status dit_net_recv_all (int fd, void *buf, size_t n, int64_t deadline,
    const char *what);

/* Wait until fd is readable (or closed); 1 readable, 0 deadline passed. */
int dit_net_wait_readable (int fd, int64_t deadline);

void dit_net_set_nonblocking (int fd);

#ifdef __cplusplus
}
#endif
#endif
