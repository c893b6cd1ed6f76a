/* malloc_probe.c: preloaded (LD_PRELOAD) into the sidecar by test_faults to
 * tell the memory the sidecar uses from the pages glibc's malloc keeps for
 * reuse. After a burst of connections VmRSS stays at its peak even when
 * everything was freed (free chunks in the middle of a worker's arena are
 * not returned), so RSS alone cannot show a leak.
 *
 * With MALLOC_PROBE_FIFO=path set (a FIFO the test made), a thread of its
 * own waits for a line on the FIFO; for each, it reads mallinfo2() (bytes
 * allocated in every arena plus mmapped chunks), calls malloc_trim(0) (the
 * free pages go back to the system), and writes "in_use N" to path.out
 * (written to path.tmp, then renamed). The thread blocks every signal, so
 * the sidecar's handling of signals is unchanged. Without the variable it
 * does nothing. */
#ifndef _GNU_SOURCE /* the build may define it already */
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void answer(const char *fifo) {
  struct mallinfo2 info = mallinfo2();
  malloc_trim(0);
  char tmp[4096], out[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", fifo);
  snprintf(out, sizeof(out), "%s.out", fifo);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) return;
  fprintf(f, "in_use %zu\n", info.uordblks + info.hblkhd);
  if (fclose(f) == 0) rename(tmp, out);
}

static void *serve(void *arg) {
  const char *fifo = arg;
  for (;;) {
    int fd = open(fifo, O_RDONLY | O_CLOEXEC); /* blocks until the test writes */
    if (fd < 0) return NULL;
    char line[64];
    ssize_t n = read(fd, line, sizeof(line));
    close(fd);
    if (n > 0) answer(fifo);
  }
}

__attribute__((constructor)) static void malloc_probe_start(void) {
  const char *fifo = getenv("MALLOC_PROBE_FIFO");
  if (fifo == NULL || *fifo == '\0') return;
  char *copy = strdup(fifo);
  if (copy == NULL) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  if (pthread_create(&thread, NULL, serve, copy) == 0) pthread_detach(thread);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}
