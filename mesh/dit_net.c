/* dit_net — deadline-bounded socket helpers (see dit_net.h). */
#include "dit_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t
dit_net_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
dit_net_deadline (int timeout_ms)
{
  return timeout_ms > 0 ? dit_net_now_ms () + timeout_ms : INT64_MAX;
}

static int
net_poll_ms (int64_t deadline)
{
  if (deadline == INT64_MAX)
    return -1;
  int64_t left = deadline - dit_net_now_ms ();
  if (left < 0)
    return 0;
  return left > 1000000 ? 1000000 : (int) left;
}

void
dit_net_set_nonblocking (int fd)
{
  int fl = fcntl (fd, F_GETFL, 0);
  if (fl >= 0)
    fcntl (fd, F_SETFL, fl | O_NONBLOCK);
  fcntl (fd, F_SETFD, FD_CLOEXEC);
}

static void
net_tune (int fd)
{
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static dit_status
net_resolve (const char *host, int port, struct sockaddr_in *sa)
{
  memset (sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons ((uint16_t) port);
  if (!host || !*host)
    host = "127.0.0.1";
  if (inet_pton (AF_INET, host, &sa->sin_addr) == 1)
    return DIT_OK;
  struct addrinfo hints = { 0 }, *res = NULL;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo (host, NULL, &hints, &res);
  if (rc != 0 || !res)
    return dit_error (DIT_ERR_IO, "cannot resolve host '%s': %s", host,
        gai_strerror (rc));
  sa->sin_addr = ((struct sockaddr_in *) res->ai_addr)->sin_addr;
  freeaddrinfo (res);
  return DIT_OK;
}

dit_status
dit_net_parse_addr (const char *addr, char *host, size_t hostsize, int *port)
{
  const char *colon = addr ? strrchr (addr, ':') : NULL;
  if (!colon || (size_t) (colon - addr) >= hostsize)
    return dit_error (DIT_ERR_INVALID, "address '%s' is not HOST:PORT",
        addr ? addr : "(null)");
  char *end = NULL;
  long p = strtol (colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535)
    return dit_error (DIT_ERR_INVALID, "address '%s': bad port", addr);
  memcpy (host, addr, (size_t) (colon - addr));
  host[colon - addr] = '\0';
  *port = (int) p;
  return DIT_OK;
}

dit_status
dit_net_listen (const char *host, int *port, int *fd_out)
{
  struct sockaddr_in sa;
  DIT_TRY (net_resolve (host, *port, &sa));
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return dit_error (DIT_ERR_IO, "socket: %s", strerror (errno));
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (fd, 64) < 0) {
    int e = errno;
    close (fd);
    return dit_error (DIT_ERR_IO, "cannot listen on %s:%d: %s",
        host && *host ? host : "127.0.0.1", *port, strerror (e));
  }
  socklen_t len = sizeof sa;
  getsockname (fd, (struct sockaddr *) &sa, &len);
  *port = ntohs (sa.sin_port);
  dit_net_set_nonblocking (fd);
  *fd_out = fd;
  return DIT_OK;
}

int
dit_net_wait_readable (int fd, int64_t deadline)
{
  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int rc = poll (&p, 1, net_poll_ms (deadline));
    if (rc > 0)
      return 1;
    if (rc == 0)
      return 0;
    if (errno != EINTR)
      return 1;  /* let the following read report the error */
  }
}

dit_status
dit_net_accept (int listen_fd, int64_t deadline, int *fd_out)
{
  for (;;) {
    int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      net_tune (fd);
      *fd_out = fd;
      return DIT_OK;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return dit_error (DIT_ERR_IO, "accept: %s", strerror (errno));
    if (!dit_net_wait_readable (listen_fd, deadline))
      return dit_error (DIT_ERR_IO, "timed out waiting for a connection");
  }
}

dit_status
dit_net_connect (const char *host, int port, int64_t deadline, int *fd_out)
{
  struct sockaddr_in sa;
  DIT_TRY (net_resolve (host, port, &sa));
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return dit_error (DIT_ERR_IO, "socket: %s", strerror (errno));
  int rc = connect (fd, (struct sockaddr *) &sa, sizeof sa);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    do
      rc = poll (&p, 1, net_poll_ms (deadline));
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      close (fd);
      return dit_error (DIT_ERR_IO, "timed out connecting to %s:%d",
          host && *host ? host : "127.0.0.1", port);
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = err ? -1 : 0;
    errno = err;
  }
  if (rc < 0) {
    int e = errno;
    close (fd);
    return dit_error (DIT_ERR_IO, "cannot connect to %s:%d: %s",
        host && *host ? host : "127.0.0.1", port, strerror (e));
  }
  net_tune (fd);
  *fd_out = fd;
  return DIT_OK;
}

dit_status
dit_net_send_all (int fd, const void *buf, size_t n, int64_t deadline,
    const char *what)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t k = send (fd, p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= (size_t) k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pf = { .fd = fd, .events = POLLOUT };
      int rc = poll (&pf, 1, net_poll_ms (deadline));
      if (rc == 0)
        return dit_error (DIT_ERR_IO, "%s: timed out sending", what);
      continue;
    }
    return dit_error (DIT_ERR_IO, "%s: connection lost while sending (%s)",
        what, k < 0 ? strerror (errno) : "closed");
  }
  return DIT_OK;
}

dit_status
dit_net_recv_all (int fd, void *buf, size_t n, int64_t deadline,
    const char *what)
{
  char *p = buf;
  while (n > 0) {
    ssize_t k = recv (fd, p, n, 0);
    if (k > 0) {
      p += k;
      n -= (size_t) k;
      continue;
    }
    if (k == 0)
      return dit_error (DIT_ERR_IO, "%s: peer closed the connection", what);
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!dit_net_wait_readable (fd, deadline))
        return dit_error (DIT_ERR_IO, "%s: timed out waiting for data", what);
      continue;
    }
    return dit_error (DIT_ERR_IO, "%s: connection lost (%s)", what,
        strerror (errno));
  }
  return DIT_OK;
}
