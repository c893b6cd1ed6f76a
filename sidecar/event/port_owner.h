/* port_owner.h: one owner per listen address.
 *
 * Listeners bind one socket per worker with SO_REUSEPORT, which lets the
 * kernel spread connections over the workers, and would as well let a
 * second process of the same user bind the same address and silently take
 * part of the traffic. So before a listener is bound, its address is probed
 * with a bind that does not share (SO_REUSEADDR only): when that fails, the
 * sockets listening there (/proc/net/tcp and tcp6, wildcard addresses
 * overlapping specific ones) are compared with this process's own
 * (/proc/self/fd): ours (a listener renamed or moved on reload) may share
 * the address, another process's may not. The holder is named from
 * /proc/PID/fd where the system lets us read it (the same user, or root).
 * Main thread; Linux only. */
#ifndef MS_PORT_OWNER_H
#define MS_PORT_OWNER_H

#include <stdbool.h>
#include <stddef.h>

#include "sidecar/config/config.h"

/* The process that listens on an address, as far as the system tells. */
typedef struct ms_port_holder {
  int pid;       /* 0: not known (another user's process, or one that hides its descriptors) */
  char name[16]; /* its /proc/PID/comm when pid is known */
  long uid;      /* the socket's owner; -1 when not known */
} ms_port_holder;

/* ms_port_owner_check tells whether `address` (an IP address and port to
 * listen on) may be bound by this process. Returns 0 when nobody listens
 * there or only this process does. Returns -EADDRINUSE when another process
 * listens there, with `why` ("address 127.0.0.1:15001 is in use by another
 * process (pid 1234, sidecar)") and, when out_holder is not NULL, the holder
 * (pid 0 when not known). Returns another negative errno with `why` when
 * the address cannot be bound at all (EACCES for a port below 1024,
 * EADDRNOTAVAIL for an address this machine does not have). */
int ms_port_owner_check(const ms_address *address, ms_port_holder *out_holder, char *why,
                        size_t why_len);

/* ms_port_config_runner returns the pid of a process other than this one
 * started with --config naming the same file as `config_path` (the sidecar
 * that a validated file will be reloaded into), `pid` itself when it is
 * such a process (0: look at every process), or 0 when there is none. */
int ms_port_config_runner(int pid, const char *config_path);

#endif
