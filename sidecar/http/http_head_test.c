/* http_head_test.c: a head glued from http_parser's pieces (split anywhere,
 * as reads split them) and written out with the proxy's edits. */
#include "sidecar/http/http_head.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static int on_url(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_URL, at, len);
}
static int on_status(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_STATUS, at, len);
}
static int on_field(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_FIELD, at, len);
}
static int on_value(http_parser *p, const char *at, size_t len) {
  return ms_http_head_append(p->data, MS_HTTP_VALUE, at, len);
}

static const http_parser_settings settings = {.on_url = on_url,
                                              .on_status = on_status,
                                              .on_header_field = on_field,
                                              .on_header_value = on_value};

/* Parses `text` fed `step` bytes at a time into `head`. */
static void parse(ms_http_head *head, http_parser *parser, enum http_parser_type type,
                  const char *text, size_t step) {
  ms_http_head_reset(head);
  http_parser_init(parser, type);
  parser->data = head;
  size_t len = strlen(text);
  for (size_t at = 0; at < len; at += step) {
    size_t n = len - at < step ? len - at : step;
    CHECK(http_parser_execute(parser, &settings, text + at, n) == n);
  }
}

static char *written(const ms_http_out *out) {
  static char text[4096];
  CHECK(!out->failed && out->len < sizeof(text));
  memcpy(text, out->data, out->len);
  text[out->len] = '\0';
  return text;
}

static const char *request =
    "POST /orders?id=7 HTTP/1.1\r\n"
    "Host: shop.local:8080\r\n"
    "Connection: keep-alive, X-Secret\r\n"
    "X-Secret: hop\r\n"
    "Keep-Alive: timeout=5\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "TE: trailers\r\n"
    "X-Forwarded-For: 10.0.0.1\r\n"
    "X-Forwarded-Proto: https\r\n"
    "Content-Length: 5\r\n"
    "Accept: */*\r\n"
    "\r\n";

static void test_pieces_glued_whatever_the_split(void) {
  for (size_t step = 1; step <= strlen(request); step++) {
    ms_http_head head = {0};
    http_parser parser;
    parse(&head, &parser, HTTP_REQUEST, request, step);
    CHECK(head.header_count == 10);
    CHECK(ms_http_slice_is(&head, head.target, "/orders?id=7"));
    size_t len;
    const char *host = ms_http_head_get(&head, "HOST", &len);
    CHECK(host && len == 15 && memcmp(host, "shop.local:8080", 15) == 0);
    CHECK(ms_http_head_get(&head, "missing", &len) == NULL);
    ms_http_head_cleanup(&head);
  }
}

static void test_request_edits(void) {
  ms_http_head head = {0};
  http_parser parser;
  parse(&head, &parser, HTTP_REQUEST, request, 7);
  ms_http_out out = {0};
  ms_http_request_edits edits = {.method = "POST",
                                 .forwarded_for = "127.0.0.1",
                                 .has_content_length = true,
                                 .content_length = 5};
  ms_http_write_request(&out, &head, &edits);
  const char *text = written(&out);
  CHECK(strncmp(text, "POST /orders?id=7 HTTP/1.1\r\n", 28) == 0);
  CHECK(strstr(text, "Host: shop.local:8080\r\n"));
  /* Hop-by-hop headers, and the ones Connection names, stay behind. */
  CHECK(!strstr(text, "X-Secret"));
  CHECK(!strstr(text, "Keep-Alive"));
  CHECK(!strstr(text, "Proxy-Connection"));
  CHECK(!strstr(text, "TE:"));
  CHECK(strstr(text, "X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"));
  CHECK(strstr(text, "X-Forwarded-Proto: http\r\n"));
  CHECK(!strstr(text, "https"));
  CHECK(strstr(text, "Content-Length: 5\r\n"));
  CHECK(strstr(text, "Accept: */*\r\n"));
  CHECK(strstr(text, "Connection: keep-alive\r\n\r\n"));
  CHECK(strlen(text) > 4 && strcmp(text + strlen(text) - 4, "\r\n\r\n") == 0);

  /* A cluster's Host replaces the client's; chunked framing replaces the length. */
  out.len = 0;
  edits = (ms_http_request_edits){.method = "POST", .host = "orders.internal", .chunked = true};
  ms_http_write_request(&out, &head, &edits);
  text = written(&out);
  CHECK(strstr(text, "Host: orders.internal\r\n"));
  CHECK(!strstr(text, "shop.local"));
  CHECK(strstr(text, "Transfer-Encoding: chunked\r\n"));
  CHECK(!strstr(text, "Content-Length"));
  /* Without forwarded_for, X-Forwarded-* pass as they are. */
  CHECK(strstr(text, "X-Forwarded-Proto: https\r\n"));
  ms_http_out_cleanup(&out);
  ms_http_head_cleanup(&head);
}

static void test_upgrade_kept_only_when_asked(void) {
  ms_http_head head = {0};
  http_parser parser;
  parse(&head, &parser, HTTP_REQUEST,
        "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 5);
  ms_http_out out = {0};
  ms_http_request_edits edits = {.method = "GET", .upgrade = true};
  ms_http_write_request(&out, &head, &edits);
  const char *text = written(&out);
  CHECK(strstr(text, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
  out.len = 0;
  edits.upgrade = false;
  ms_http_write_request(&out, &head, &edits);
  CHECK(!strstr(written(&out), "websocket"));
  ms_http_out_cleanup(&out);
  ms_http_head_cleanup(&head);
}

static void test_response(void) {
  ms_http_head head = {0};
  http_parser parser;
  parse(&head, &parser, HTTP_RESPONSE,
        "HTTP/1.1 200 Very OK\r\nContent-Length: 12\r\nConnection: keep-alive\r\n"
        "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        3);
  ms_http_out out = {0};
  ms_http_write_response(&out, &head, 200, true, false, 0, true, false);
  const char *text = written(&out);
  CHECK(strncmp(text, "HTTP/1.1 200 Very OK\r\n", 22) == 0);
  CHECK(strstr(text, "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n")); /* repeated headers kept */
  CHECK(strstr(text, "Transfer-Encoding: chunked\r\n"));
  CHECK(!strstr(text, "Content-Length"));
  CHECK(strstr(text, "Connection: close\r\n\r\n"));
  ms_http_out_cleanup(&out);
  ms_http_head_cleanup(&head);
}

/* Header names must be tokens; http_parser alone lets a space through. */
static void test_header_names_must_be_tokens(void) {
  ms_http_head head = {0};
  http_parser parser;
  parse(&head, &parser, HTTP_REQUEST, request, 3);
  CHECK(ms_http_head_names_valid(&head));
  parse(&head, &parser, HTTP_REQUEST,
        "GET / HTTP/1.1\r\nHost: a\r\nX-Odd_Name.~!#$%&'*+^`|: 1\r\n\r\n", 1);
  CHECK(ms_http_head_names_valid(&head));
  parse(&head, &parser, HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 2);
  CHECK(!ms_http_head_names_valid(&head));
  parse(&head, &parser, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
        64);
  CHECK(!ms_http_head_names_valid(&head));
  ms_http_head_cleanup(&head);
}

/* `target` (absolute form) becomes `path` with Host `host`. (Targets that are
 * neither a path nor a URL, like "api.shop/x", stop http_parser itself.) */
static void check_origin_form(const char *target, const char *path, const char *host) {
  ms_http_head head = {0};
  http_parser parser;
  char text[512];
  snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n", target);
  parse(&head, &parser, HTTP_REQUEST, text, 5);
  CHECK(ms_http_head_to_origin_form(&head) == 0);
  CHECK(head.target.len == strlen(path) &&
        memcmp(head.buf + head.target.offset, path, head.target.len) == 0);
  size_t len;
  const char *value = ms_http_head_get(&head, "host", &len);
  CHECK(value != NULL && len == strlen(host) && memcmp(value, host, len) == 0);
  CHECK(head.header_count == 2);
  ms_http_head_cleanup(&head);
}

static void test_absolute_form_to_origin_form(void) {
  check_origin_form("/already/origin?x", "/already/origin?x", "other");
  check_origin_form("*", "*", "other");
  check_origin_form("http://api.shop/orders?id=7", "/orders?id=7", "api.shop");
  check_origin_form("https://api.shop:8443/", "/", "api.shop:8443");
  check_origin_form("http://api.shop", "/", "api.shop");
  check_origin_form("http://api.shop?page=2", "/?page=2", "api.shop");
  check_origin_form("http://user:pw@api.shop:80/x", "/x", "api.shop:80");
  check_origin_form("http://[::1]:9/v6", "/v6", "[::1]:9");
}

int main(void) {
  test_pieces_glued_whatever_the_split();
  test_header_names_must_be_tokens();
  test_absolute_form_to_origin_form();
  test_request_edits();
  test_upgrade_kept_only_when_asked();
  test_response();
  printf("http_head_test: all passed\n");
  return 0;
}
