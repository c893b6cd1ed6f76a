#include "sidecar/event/events.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MS_EVENTS_PER_BATCH 256

/* The epoll data of libuv's own descriptor in the set. */
static ms_event_source libuv_marker;

static uint32_t bits_of(uint32_t epoll_events) {
  uint32_t bits = 0;
  if (epoll_events & EPOLLIN) bits |= MS_EVENT_READ;
  if (epoll_events & EPOLLOUT) bits |= MS_EVENT_WRITE;
  if (epoll_events & (EPOLLRDHUP | EPOLLHUP)) bits |= MS_EVENT_HUP;
  if (epoll_events & EPOLLERR) bits |= MS_EVENT_ERROR;
  return bits;
}

static void unlink_posted(ms_events *events, ms_event_source *source) {
  if (source->posted_prev)
    source->posted_prev->posted_next = source->posted_next;
  else
    events->posted_head = source->posted_next;
  if (source->posted_next)
    source->posted_next->posted_prev = source->posted_prev;
  else
    events->posted_tail = source->posted_prev;
  source->posted_prev = source->posted_next = NULL;
  source->posted = false;
}

/* Delivers what was posted before this turn; what those calls post waits
 * for the next turn, so a source that keeps posting cannot starve the
 * loop. */
static void deliver_posted(ms_events *events) {
  uint64_t turn = ++events->turn;
  while (events->posted_head && events->posted_head->posted_turn < turn) {
    ms_event_source *source = events->posted_head;
    unlink_posted(events, source);
    source->on_event(source, MS_EVENT_POSTED);
  }
}

int ms_events_init(ms_events *events) {
  events->posted_head = events->posted_tail = NULL;
  events->turn = 0;
  events->epfd = epoll_create1(EPOLL_CLOEXEC);
  return events->epfd < 0 ? -errno : 0;
}

void ms_events_run(ms_events *events, uv_loop_t *loop) {
  /* libuv registers its descriptors in its own set during uv_run: one run
   * first, then its set joins ours (level-triggered: readable while libuv
   * has events waiting). */
  if (uv_run(loop, UV_RUN_NOWAIT) == 0) return;
  struct epoll_event member = {.events = EPOLLIN, .data.ptr = &libuv_marker};
  if (epoll_ctl(events->epfd, EPOLL_CTL_ADD, uv_backend_fd(loop), &member) != 0) {
    uv_run(loop, UV_RUN_DEFAULT); /* cannot nest: libuv alone, data plane dead */
    return;
  }
  struct epoll_event batch[MS_EVENTS_PER_BATCH];
  for (;;) {
    int timeout = events->posted_head ? 0 : uv_backend_timeout(loop);
    int n = epoll_wait(events->epfd, batch, MS_EVENTS_PER_BATCH, timeout);
    if (n < 0 && errno != EINTR) n = 0;
    uv_update_time(loop);
    bool libuv_due = n == 0 && timeout > 0; /* a timer, most likely */
    for (int i = 0; i < n; i++) {
      ms_event_source *source = batch[i].data.ptr;
      if (source == &libuv_marker)
        libuv_due = true;
      else
        source->on_event(source, bits_of(batch[i].events));
    }
    deliver_posted(events);
    /* Close callbacks free connections: only now, after the batch. */
    if (libuv_due || uv_backend_timeout(loop) == 0) {
      if (uv_run(loop, UV_RUN_NOWAIT) == 0) return;
    }
  }
}

void ms_events_cleanup(ms_events *events) {
  if (events->epfd >= 0) close(events->epfd);
  events->epfd = -1;
}

void ms_event_source_init(ms_event_source *source, ms_event_cb on_event, void *data) {
  memset(source, 0, sizeof(*source));
  source->on_event = on_event;
  source->data = data;
}

int ms_events_add(ms_events *events, int fd, ms_event_source *source) {
  struct epoll_event event = {
      .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
      .data.ptr = source,
  };
  return epoll_ctl(events->epfd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

void ms_events_post(ms_events *events, ms_event_source *source) {
  if (source->posted) return;
  source->posted = true;
  source->posted_turn = events->turn;
  source->posted_next = NULL;
  source->posted_prev = events->posted_tail;
  if (events->posted_tail)
    events->posted_tail->posted_next = source;
  else
    events->posted_head = source;
  events->posted_tail = source;
}

void ms_events_unpost(ms_events *events, ms_event_source *source) {
  if (source->posted) unlink_posted(events, source);
}
