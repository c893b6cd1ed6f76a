/* http_server_test.c: ms_http_reader (http_server.h), the request reading
 * both the admin endpoint and xds-server's status page rely on: a request
 * whole in one piece or a byte at a time, pipelined requests one at a time,
 * the caps (414, 431, 413), a second Host (400), Host and Origin kept or
 * marked too long, keep-alive as the client asked; with keep_body the body
 * (chunked or not, trickled, pipelined) and Content-Type kept, and the body
 * cap still refusing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_server.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* feed gives `text` to `reader` `step` bytes at a time (0: all at once)
 * until the request is whole or refused; returns the state and sets
 * *used to the bytes taken. */
static ms_http_read_state feed(ms_http_reader *reader, const char *text, size_t step,
                               size_t *used) {
  size_t len = strlen(text), at = 0;
  ms_http_read_state state = MS_HTTP_READ_MORE;
  while (at < len && state == MS_HTTP_READ_MORE) {
    size_t piece = step == 0 || len - at < step ? len - at : step, consumed = 0;
    state = ms_http_reader_feed(reader, text + at, piece, &consumed);
    at += consumed;
  }
  *used = at;
  return state;
}

static void test_whole_and_trickled(void) {
  const char *text =
      "GET /ready?x=1 HTTP/1.1\r\nHost: 127.0.0.1:15000\r\nOrigin: http://a.b\r\n\r\n";
  for (size_t step = 0; step <= 3; step++) {
    ms_http_reader reader;
    ms_http_reader_init(&reader, NULL);
    size_t used = 0;
    CHECK(feed(&reader, text, step, &used) == MS_HTTP_READ_COMPLETE);
    CHECK(used == strlen(text));
    CHECK(reader.request.method == HTTP_GET);
    CHECK(reader.request.url_len == strlen("/ready?x=1") &&
          memcmp(reader.request.url, "/ready?x=1", reader.request.url_len) == 0);
    CHECK(reader.request.host_len == strlen("127.0.0.1:15000") &&
          memcmp(reader.request.host, "127.0.0.1:15000", reader.request.host_len) == 0);
    CHECK(reader.request.origin_len == strlen("http://a.b"));
    CHECK(reader.request.keep_alive);
  }
}

static void test_pipelined_one_at_a_time(void) {
  const char *text =
      "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n"
      "Connection: close\r\n\r\nxyz";
  ms_http_reader reader;
  ms_http_reader_init(&reader, NULL);
  size_t used = 0;
  CHECK(feed(&reader, text, 0, &used) == MS_HTTP_READ_COMPLETE);
  CHECK(used == strlen("GET /a HTTP/1.1\r\n\r\n")); /* the second waits */
  CHECK(reader.request.host_len == SIZE_MAX && reader.request.origin_len == SIZE_MAX);
  size_t more = 0;
  CHECK(ms_http_reader_feed(&reader, text + used, strlen(text) - used, &more) ==
        MS_HTTP_READ_COMPLETE);
  CHECK(more == 0); /* not until the first is answered */
  ms_http_reader_next(&reader);
  CHECK(feed(&reader, text + used, 0, &more) == MS_HTTP_READ_COMPLETE);
  CHECK(used + more == strlen(text));
  CHECK(reader.request.method == HTTP_POST);
  CHECK(reader.request.url_len == 2 && memcmp(reader.request.url, "/b", 2) == 0);
  CHECK(!reader.request.keep_alive);
}

static void check_refused(const char *text, const ms_http_server_limits *limits, int status) {
  ms_http_reader reader;
  ms_http_reader_init(&reader, limits);
  size_t used = 0;
  ms_http_read_state state = feed(&reader, text, 7, &used);
  if (state != MS_HTTP_READ_REFUSED || reader.refusal_status != status) {
    fprintf(stderr, "want %d for \"%.40s...\", got state %d status %d\n", status, text, (int)state,
            reader.refusal_status);
    failures++;
  }
}

static void test_caps(void) {
  char *text = malloc(20000);
  /* A target one byte over MS_HTTP_MAX_URL; one at it passes. */
  for (int over = 0; over <= 1; over++) {
    size_t n = MS_HTTP_MAX_URL + (size_t)over - 1;
    int len = sprintf(text, "GET /");
    memset(text + len, 'a', n);
    strcpy(text + len + n, " HTTP/1.1\r\n\r\n");
    if (over) {
      check_refused(text, NULL, 414);
    } else {
      ms_http_reader reader;
      ms_http_reader_init(&reader, NULL);
      size_t used = 0;
      CHECK(feed(&reader, text, 0, &used) == MS_HTTP_READ_COMPLETE);
    }
  }
  /* 8 KiB of headers by default; the limit given instead. */
  int len = sprintf(text, "GET / HTTP/1.1\r\nX: ");
  memset(text + len, 'b', 9000);
  strcpy(text + len + 9000, "\r\n\r\n");
  check_refused(text, NULL, 431);
  ms_http_server_limits big = {.max_head_bytes = 16384};
  ms_http_reader reader;
  ms_http_reader_init(&reader, &big);
  size_t used = 0;
  CHECK(feed(&reader, text, 0, &used) == MS_HTTP_READ_COMPLETE);
  /* A body announced too large, and one that grows too large in chunks. */
  check_refused("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", NULL, 413);
  ms_http_server_limits small = {.max_body_bytes = 4};
  check_refused(
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
      &small, 413);
  free(text);
}

static void test_hosts(void) {
  check_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", NULL, 400);
  check_refused("GARBAGE\r\n\r\n", NULL, 400);
  char text[1024];
  int len = sprintf(text, "GET / HTTP/1.1\r\nHost: ");
  memset(text + len, 'h', MS_HTTP_MAX_NAME + 1);
  strcpy(text + len + MS_HTTP_MAX_NAME + 1, "\r\n\r\n");
  ms_http_reader reader;
  ms_http_reader_init(&reader, NULL);
  size_t used = 0;
  CHECK(feed(&reader, text, 5, &used) == MS_HTTP_READ_COMPLETE);
  CHECK(reader.request.host_len == MS_HTTP_MAX_NAME + 1); /* too long: no check allows it */
  /* A header whose name only starts like Host is not Host. */
  ms_http_reader_init(&reader, NULL);
  CHECK(feed(&reader, "GET / HTTP/1.1\r\nHostile: x\r\nHost: y\r\n\r\n", 3, &used) ==
        MS_HTTP_READ_COMPLETE);
  CHECK(reader.request.host_len == 1 && reader.request.host[0] == 'y');
  /* An upgrade is answered, then the connection closes. */
  ms_http_reader_init(&reader, NULL);
  CHECK(feed(&reader, "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 0, &used) ==
        MS_HTTP_READ_COMPLETE);
  CHECK(!reader.request.keep_alive);
}

static void test_kept_body(void) {
  const char *text =
      "POST /inject?timeout=10s HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\n"
      "Content-Length: 11\r\n\r\n{\"a\": true}"
      "POST /validate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
  for (size_t step = 0; step <= 2; step++) {
    ms_http_reader reader;
    ms_http_reader_init(&reader, NULL);
    reader.keep_body = true;
    size_t used = 0;
    CHECK(feed(&reader, text, step, &used) == MS_HTTP_READ_COMPLETE);
    CHECK(reader.request.body_len == 11 && memcmp(reader.request.body, "{\"a\": true}", 11) == 0);
    CHECK(reader.request.content_type_len == strlen("application/json; charset=utf-8") &&
          memcmp(reader.request.content_type, "application/json; charset=utf-8",
                 reader.request.content_type_len) == 0);
    ms_http_reader_next(&reader);
    size_t more = 0;
    CHECK(feed(&reader, text + used, step, &more) == MS_HTTP_READ_COMPLETE);
    CHECK(reader.request.body_len == 5 && memcmp(reader.request.body, "[1,2]", 5) == 0);
    CHECK(reader.request.content_type_len == SIZE_MAX); /* none on the second request */
    ms_http_reader_cleanup(&reader);
  }
  /* Without keep_body nothing is kept. */
  ms_http_reader reader;
  ms_http_reader_init(&reader, NULL);
  size_t used = 0;
  CHECK(feed(&reader, text, 0, &used) == MS_HTTP_READ_COMPLETE);
  CHECK(reader.request.body == NULL && reader.request.body_len == 0 && reader.body == NULL);
  /* The cap holds for a kept body, announced or chunked. */
  ms_http_server_limits small = {.max_body_bytes = 4};
  const char *chunked =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  ms_http_reader_init(&reader, &small);
  reader.keep_body = true;
  CHECK(feed(&reader, chunked, 1, &used) == MS_HTTP_READ_REFUSED && reader.refusal_status == 413);
  CHECK(reader.body_capacity <= 4);
  ms_http_reader_cleanup(&reader);
}

int main(void) {
  test_kept_body();
  test_whole_and_trickled();
  test_pipelined_one_at_a_time();
  test_caps();
  test_hosts();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("http_server_test: ok\n");
  return 0;
}
