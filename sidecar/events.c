#include "sidecar/events.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MS_EVENTS_PER_BATCH 256

static uint32_t bits_of(uint32_t epoll_events) {
  uint32_t bits = 0;
  if (epoll_events & EPOLLIN) bits |= MS_EVENT_READ;
  if (epoll_events & EPOLLOUT) bits |= MS_EVENT_WRITE;
  if (epoll_events & (EPOLLRDHUP | EPOLLHUP)) bits |= MS_EVENT_HUP;
  if (epoll_events & EPOLLERR) bits |= MS_EVENT_ERROR;
  return bits;
}

static void on_ready(uv_poll_t *poll, int status, int ready) {
  ms_events *events = poll->data;
  struct epoll_event batch[MS_EVENTS_PER_BATCH];
  int n;
  do
    n = epoll_wait(events->epfd, batch, MS_EVENTS_PER_BATCH, 0);
  while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++) {
    ms_event_source *source = batch[i].data.ptr;
    source->on_event(source, bits_of(batch[i].events));
  }
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
static void on_idle(uv_idle_t *idle) {
  ms_events *events = idle->data;
  uint64_t turn = ++events->turn;
  while (events->posted_head && events->posted_head->posted_turn < turn) {
    ms_event_source *source = events->posted_head;
    unlink_posted(events, source);
    source->on_event(source, MS_EVENT_POSTED);
  }
  if (events->posted_head == NULL) uv_idle_stop(&events->idle);
}

int ms_events_init(ms_events *events, uv_loop_t *loop) {
  events->posted_head = events->posted_tail = NULL;
  events->turn = 0;
  events->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (events->epfd < 0) return -errno;
  int rc = uv_poll_init(loop, &events->poll, events->epfd);
  if (rc != 0) {
    close(events->epfd);
    events->epfd = -1;
    return rc;
  }
  events->poll.data = events;
  uv_idle_init(loop, &events->idle);
  events->idle.data = events;
  return uv_poll_start(&events->poll, UV_READABLE, on_ready);
}

void ms_events_close(ms_events *events) {
  uv_close((uv_handle_t *)&events->poll, NULL);
  uv_close((uv_handle_t *)&events->idle, NULL);
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
  uv_idle_start(&events->idle, on_idle);
}

void ms_events_unpost(ms_events *events, ms_event_source *source) {
  if (source->posted) unlink_posted(events, source);
}
