#include "sidecar/event/port_owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TCP_LISTEN 0x0A /* the "st" column of /proc/net/tcp */

/* An IP address as 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
typedef struct ip16 {
  uint8_t bytes[16];
} ip16;

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void ip_from_v4(const void *four, ip16 *out) {
  memcpy(out->bytes, v4_prefix, 12);
  memcpy(out->bytes + 12, four, 4);
}

static bool is_v4(const ip16 *a) {
  return memcmp(a->bytes, v4_prefix, 12) == 0;
}

static bool is_zero(const uint8_t *bytes, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (bytes[i]) return false;
  return true;
}

/* overlaps: a socket listening on one address takes connections meant for
 * the other. An IPv6 wildcard may be dual-stack (it is ours: IPV6_V6ONLY is
 * not set), so it overlaps everything. */
static bool overlaps(const ip16 *a, const ip16 *b) {
  bool a_any6 = is_zero(a->bytes, 16), b_any6 = is_zero(b->bytes, 16);
  bool a_any4 = is_v4(a) && is_zero(a->bytes + 12, 4);
  bool b_any4 = is_v4(b) && is_zero(b->bytes + 12, 4);
  return memcmp(a, b, sizeof(*a)) == 0 || a_any6 || b_any6 || (a_any4 && is_v4(b)) ||
         (b_any4 && is_v4(a));
}

/* ---- descriptors -------------------------------------------------------------- */

/* An array of socket inodes. */
typedef struct inodes {
  unsigned long *items;
  size_t count, capacity;
} inodes;

static int inodes_add(inodes *set, unsigned long inode) {
  if (set->count == set->capacity) {
    size_t capacity = set->capacity ? set->capacity * 2 : 16;
    unsigned long *grown = realloc(set->items, capacity * sizeof(*grown));
    if (grown == NULL) return -1;
    set->items = grown;
    set->capacity = capacity;
  }
  set->items[set->count++] = inode;
  return 0;
}

static bool inodes_has(const inodes *set, unsigned long inode) {
  for (size_t i = 0; i < set->count; i++)
    if (set->items[i] == inode) return true;
  return false;
}

/* socket_inode: the descriptor `name` in the folder `fds` (/proc/PID/fd) is
 * a socket; its inode. */
static bool socket_inode(int fds, const char *name, unsigned long *out) {
  char target[64];
  ssize_t n = readlinkat(fds, name, target, sizeof(target) - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return sscanf(target, "socket:[%lu]", out) == 1;
}

/* process_sockets calls `found` with each socket inode of /proc/`pid`/fd
 * until it returns true; returns whether one did (false when the folder
 * cannot be read). */
static bool process_sockets(const char *pid, bool (*found)(unsigned long inode, void *arg),
                            void *arg) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%s/fd", pid);
  DIR *dir = opendir(path);
  if (dir == NULL) return false;
  bool done = false;
  struct dirent *entry;
  while (!done && (entry = readdir(dir)) != NULL) {
    unsigned long inode;
    if (entry->d_name[0] != '.' && socket_inode(dirfd(dir), entry->d_name, &inode))
      done = found(inode, arg);
  }
  closedir(dir);
  return done;
}

static bool add_own(unsigned long inode, void *arg) {
  return inodes_add(arg, inode) != 0; /* stop only when memory ran out */
}

static bool is_wanted(unsigned long inode, void *arg) {
  return inodes_has(arg, inode);
}

/* find_holder names the first process other than this one that holds one
 * of `foreign`. */
static void find_holder(const inodes *foreign, ms_port_holder *out) {
  DIR *proc = opendir("/proc");
  if (proc == NULL) return;
  int self = (int)getpid();
  struct dirent *entry;
  while ((entry = readdir(proc)) != NULL) {
    char *end;
    long pid = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    if (!process_sockets(entry->d_name, is_wanted, (void *)foreign)) continue;
    out->pid = (int)pid;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *comm = fopen(path, "re");
    if (comm != NULL) {
      if (fgets(out->name, sizeof(out->name), comm) != NULL)
        out->name[strcspn(out->name, "\n")] = '\0';
      fclose(comm);
    }
    break;
  }
  closedir(proc);
}

/* ---- /proc/net/tcp ------------------------------------------------------------ */

/* parse_address reads /proc/net/tcp's "0100007F" (one 32-bit word) or
 * tcp6's four words, each printed from the address's bytes in host order. */
static bool parse_address(const char *hex, bool v6, ip16 *out) {
  size_t words = v6 ? 4 : 1;
  if (strlen(hex) != words * 8) return false;
  uint8_t bytes[16];
  for (size_t i = 0; i < words; i++) {
    char word[9];
    memcpy(word, hex + i * 8, 8);
    word[8] = '\0';
    uint32_t value = (uint32_t)strtoul(word, NULL, 16);
    memcpy(bytes + i * 4, &value, 4);
  }
  if (v6)
    memcpy(out->bytes, bytes, 16);
  else
    ip_from_v4(bytes, out);
  return true;
}

/* listening_foreign adds to `foreign` the inode of every socket listening
 * on an address overlapping `want`:`port` in `table` that is not in `own`,
 * and sets *uid to the owner of the first. */
static void listening_foreign(const char *table, bool v6, const ip16 *want, unsigned port,
                              const inodes *own, inodes *foreign, long *uid) {
  FILE *file = fopen(table, "re");
  if (file == NULL) return;
  char line[512];
  while (fgets(line, sizeof(line), file) != NULL) {
    char hex[40];
    unsigned local_port, state;
    unsigned long inode, owner;
    if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %lu %*u %lu",
               hex, &local_port, &state, &owner, &inode) != 5)
      continue; /* the header */
    ip16 have;
    if (state != TCP_LISTEN || local_port != port || inode == 0 || !parse_address(hex, v6, &have))
      continue;
    if (!overlaps(want, &have) || inodes_has(own, inode)) continue;
    if (foreign->count == 0) *uid = (long)owner;
    inodes_add(foreign, inode);
  }
  fclose(file);
}

/* probe binds a socket that shares with nobody: 0 when nobody holds the
 * address, else the negative errno. */
static int probe(const ms_address *address) {
  const struct sockaddr *sa = (const struct sockaddr *)&address->sockaddr;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                   bind(fd, sa, address->sockaddr_len) == 0
               ? 0
               : -errno;
  close(fd);
  return rc;
}

int ms_port_owner_check(const ms_address *address, ms_port_holder *out_holder, char *why,
                        size_t why_len) {
  ms_port_holder holder;
  memset(&holder, 0, sizeof(holder));
  holder.uid = -1;
  if (out_holder) *out_holder = holder;
  int rc = probe(address);
  if (rc == 0) return 0;
  if (rc != -EADDRINUSE) {
    snprintf(why, why_len, "cannot listen on %s: %s", address->text, strerror(-rc));
    return rc;
  }
  ip16 want;
  const struct sockaddr *sa = (const struct sockaddr *)&address->sockaddr;
  if (sa->sa_family == AF_INET6)
    memcpy(want.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  else
    ip_from_v4(&((const struct sockaddr_in *)sa)->sin_addr, &want);
  inodes own = {0}, foreign = {0};
  process_sockets("self", add_own, &own);
  listening_foreign("/proc/net/tcp", false, &want, address->port, &own, &foreign, &holder.uid);
  listening_foreign("/proc/net/tcp6", true, &want, address->port, &own, &foreign, &holder.uid);
  rc = 0; /* only ours, or not a listener: the bind itself will tell */
  if (foreign.count) {
    rc = -EADDRINUSE;
    find_holder(&foreign, &holder);
    if (holder.pid)
      snprintf(why, why_len, "address %s is in use by another process (pid %d, %s)", address->text,
               holder.pid, holder.name[0] ? holder.name : "?");
    else
      snprintf(why, why_len,
               "address %s is in use by another process (of uid %ld, which /proc does not name "
               "to us; `ss -ltnp` run as root does)",
               address->text, holder.uid);
    if (out_holder) *out_holder = holder;
  }
  free(own.items);
  free(foreign.items);
  return rc;
}

/* ---- the holder's configuration ----------------------------------------------- */

/* config_argument finds the value of --config (also --config=F, -c F, -cF)
 * in a NUL-separated command line. */
static const char *config_argument(const char *args, size_t len) {
  for (const char *arg = args; arg < args + len; arg += strlen(arg) + 1) {
    const char *next = arg + strlen(arg) + 1;
    bool has_next = next < args + len;
    if ((strcmp(arg, "--config") == 0 || strcmp(arg, "-c") == 0) && has_next) return next;
    if (strncmp(arg, "--config=", 9) == 0) return arg + 9;
    if (strncmp(arg, "-c", 2) == 0 && arg[2] != '\0') return arg + 2;
  }
  return NULL;
}

/* runs_config: process `pid` was started with --config naming the file
 * whose identity is `ours`. */
static bool runs_config(long pid, const struct stat *ours) {
  char path[64], args[8192];
  snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t len = read(fd, args, sizeof(args) - 1);
  close(fd);
  if (len <= 0) return false;
  args[len] = '\0';
  const char *config = config_argument(args, (size_t)len);
  if (config == NULL) return false;
  char full[PATH_MAX + 1];
  if (config[0] == '/') {
    snprintf(full, sizeof(full), "%s", config);
  } else {
    char cwd[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
    ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
    if (n <= 0) return false;
    cwd[n] = '\0';
    if ((size_t)snprintf(full, sizeof(full), "%s/%s", cwd, config) >= sizeof(full)) return false;
  }
  struct stat theirs;
  return stat(full, &theirs) == 0 && theirs.st_dev == ours->st_dev && theirs.st_ino == ours->st_ino;
}

int ms_port_config_runner(int pid, const char *config_path) {
  struct stat ours;
  if (config_path == NULL || stat(config_path, &ours) != 0) return 0;
  if (pid) return runs_config(pid, &ours) ? pid : 0;
  DIR *proc = opendir("/proc");
  if (proc == NULL) return 0;
  long self = (long)getpid(), found = 0;
  struct dirent *entry;
  while (found == 0 && (entry = readdir(proc)) != NULL) {
    char *end;
    long candidate = strtol(entry->d_name, &end, 10);
    if (*end == '\0' && candidate > 0 && candidate != self && runs_config(candidate, &ours))
      found = candidate;
  }
  closedir(proc);
  return (int)found;
}
