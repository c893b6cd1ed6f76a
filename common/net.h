/* net.h: addresses ("host:port" parsed, a sockaddr formatted) and the few
 * socket calls libuv 1.44 does not cover for us. */
#ifndef MS_NET_H
#define MS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A parsed "host:port" or "[v6]:port". */
typedef struct ms_address {
  char *text; /* as written */
  char *host; /* without brackets */
  uint16_t port;
  bool host_is_ip;                  /* host is an IPv4 or IPv6 literal */
  struct sockaddr_storage sockaddr; /* valid when host_is_ip */
  socklen_t sockaddr_len;
} ms_address;

/* ms_address_parse parses "host:port" / "[v6]:port" into `out` (caller
 * cleans up with ms_address_cleanup). Returns 0, or -1 with a reason in
 * `err`. */
int ms_address_parse(const char *text, ms_address *out, char *err, size_t err_len);
void ms_address_cleanup(ms_address *address);

/* ms_net_listen opens a non-blocking TCP socket with SO_REUSEPORT (so that
 * every worker binds its own socket to the same address and the kernel
 * spreads connections), binds it and listens. Returns the descriptor, or a
 * negative errno. */
int ms_net_listen(const struct sockaddr *address, socklen_t address_len);

/* ms_net_connect opens a non-blocking TCP socket with TCP_NODELAY and starts
 * connecting. Returns the descriptor (connected or in progress), or a
 * negative errno. */
int ms_net_connect(const struct sockaddr *address);

/* ms_net_socket_error returns the pending error of a socket (SO_ERROR) as a
 * negative errno, or 0. */
int ms_net_socket_error(int fd);

/* ms_net_reset_on_close makes the coming close() of `fd` an abort: with
 * SO_LINGER {1, 0} the kernel sends RST instead of FIN and drops what it has
 * not sent yet. (libuv's uv_tcp_close_reset, 1.32 and later, does the same
 * for a uv_tcp_t; the proxied sockets are not libuv handles.) Returns 0, or
 * a negative errno. */
int ms_net_reset_on_close(int fd);

/* ms_net_format writes "1.2.3.4:80" or "[::1]:80" into buf. */
void ms_net_format(const struct sockaddr *address, char *buf, size_t len);

#endif
