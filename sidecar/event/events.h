/* events.h: a worker's edge-triggered readiness for proxied sockets.
 *
 * libuv 1.44's uv_poll costs system calls a proxy cannot afford: each new
 * handle probes its descriptor with an epoll ADD and DEL and sets O_NONBLOCK
 * again, and each change of interest is an epoll DEL and ADD. A proxied
 * connection changes interest many times (connect, handshake, back-pressure),
 * which came to about fifteen epoll_ctl(2) calls per connection.
 *
 * So, as nginx does, each socket is registered once, edge-triggered, for
 * everything (in, out, peer hang-up), and the connection keeps its own
 * "may still be readable" flags: one epoll_ctl(2) per socket for its whole
 * life, none on close.
 *
 * The worker's loop is this set's (ms_events_run): one epoll_wait(2) per
 * turn. libuv keeps the timers and the wake-up async: its own epoll
 * descriptor is a member of the set, and uv_run(UV_RUN_NOWAIT) runs only
 * when that descriptor is readable or libuv has something due (a timer,
 * handles closing). Nesting the other way round (the set as a uv_poll in
 * libuv's loop) cost a second epoll_wait(2) on every turn, which is most of
 * a request's system calls when a turn carries one request.
 *
 * Edge-triggered means an event is reported when something changes, not
 * while it stays true: a source that stops reading before the socket said
 * EAGAIN must come back by itself, which is what ms_events_post is for (it
 * also defers work past the batch of events being handled, so an event
 * fetched for a closed descriptor cannot reach its successor).
 *
 * Lifetimes: ms_events lives in its worker; a source lives in its owner (a
 * connection), which must ms_events_unpost it before freeing it and must
 * not free it while a batch that may name it is being handled (connections
 * are freed in libuv close callbacks, which run after the batch). Closing a
 * descriptor removes it from the set. Worker thread only. */
#ifndef MS_EVENTS_H
#define MS_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Bits given to a source's callback. */
#define MS_EVENT_READ 1u    /* data, or the peer's FIN */
#define MS_EVENT_WRITE 2u   /* room to write; a connect finished */
#define MS_EVENT_HUP 4u     /* the peer closed its side (RDHUP) or both (HUP) */
#define MS_EVENT_ERROR 8u   /* an error is pending on the socket */
#define MS_EVENT_POSTED 16u /* ms_events_post asked for this call */

typedef struct ms_event_source ms_event_source;
typedef void (*ms_event_cb)(ms_event_source *source, uint32_t events);

struct ms_event_source {
  ms_event_cb on_event;
  void *data;
  ms_event_source *posted_prev, *posted_next;
  uint64_t posted_turn;
  bool posted;
};

typedef struct ms_events {
  int epfd;
  ms_event_source *posted_head, *posted_tail;
  uint64_t turn;
} ms_events;

/* ms_event_source_init readies `source` to be added or posted. */
void ms_event_source_init(ms_event_source *source, ms_event_cb on_event, void *data);

/* ms_events_init makes the epoll set. Returns 0 or a negative errno. */
int ms_events_init(ms_events *events);

/* ms_events_run is the worker's loop: the set's events, what was posted,
 * and libuv's `loop` (timers, async, close callbacks) when it has
 * something to do. Returns when `loop` has nothing alive left (the worker
 * closed everything). */
void ms_events_run(ms_events *events, uv_loop_t *loop);

/* ms_events_cleanup closes the set. */
void ms_events_cleanup(ms_events *events);

/* ms_events_add watches `fd` (non-blocking) for `source`, edge-triggered,
 * until the descriptor is closed. Whatever is already true of the socket is
 * reported at once. Returns 0 or a negative errno. */
int ms_events_add(ms_events *events, int fd, ms_event_source *source);

/* ms_events_post calls `source` with MS_EVENT_POSTED on a later turn of the
 * loop, after the events being handled now. Posting twice is one call. */
void ms_events_post(ms_events *events, ms_event_source *source);

/* ms_events_unpost takes back a post not yet delivered. */
void ms_events_unpost(ms_events *events, ms_event_source *source);

#endif
