#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <unistd.h>

static socklen_t sockaddr_size(const struct sockaddr *address) {
  return address->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int ms_net_listen(const struct sockaddr *address, socklen_t address_len) {
  int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, address, address_len ? address_len : sockaddr_size(address)) != 0 ||
      listen(fd, 4096) != 0) {
    int error = -errno;
    close(fd);
    return error;
  }
  return fd;
}

int ms_net_connect(const struct sockaddr *address) {
  int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, address, sockaddr_size(address)) != 0 && errno != EINPROGRESS) {
    int error = -errno;
    close(fd);
    return error;
  }
  return fd;
}

int ms_net_socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return -errno;
  return -error;
}

int ms_net_reset_on_close(int fd) {
  struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close)) != 0)
    return -errno;
  return 0;
}

void ms_net_format(const struct sockaddr *address, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)address;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)address;
    inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
    snprintf(buf, len, "%s:%u", host, ntohs(in4->sin_port));
  }
}
