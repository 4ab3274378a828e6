/* free_port — a loopback TCP port that was free a moment ago (the kernel's
 * pick), for tests that start a mesh or a worker on an address of their
 * own.  Another process may take it before the caller binds it; the tests
 * that use it fail loudly then rather than hang. */
#ifndef DIT_TEST_FREE_PORT_H
#define DIT_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int
free_port (void)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int port = 0, fd = socket (AF_INET, SOCK_STREAM, 0);
  memset (&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (fd >= 0 && bind (fd, (struct sockaddr *) &sa, sizeof sa) == 0
      && getsockname (fd, (struct sockaddr *) &sa, &len) == 0)
    port = ntohs (sa.sin_port);
  if (fd >= 0)
    close (fd);
  return port;
}

#endif
