/* admin_request_fuzz.c: requests to the admin endpoint, as sidecar/admin.c
 * reads them: http_parser with the endpoint's caps (a 2048-byte target, 8 KiB
 * of head, 64 KiB of body), fed at fuzzer-chosen split points, then
 * ms_admin_route_match on the target and the error answers that need no
 * server (400, 404 with the list of paths, 405 with Allow), which echo the
 * request's path into JSON.
 *
 * The properties checked: the route's path is a NUL-terminated prefix of the
 * request's path; an error body is JSON whose "path" is that path; nothing
 * is answered for a request the caps refuse.
 *
 * Input: two bytes seeding the split points, then the bytes a client sent. */
#include <cjson/cJSON.h>
#include <http_parser.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "sidecar/admin_json.h"

#define MAX_URL 2048
#define MAX_HEADER_BYTES (8 * 1024)
#define MAX_BODY_BYTES 65536

typedef struct admin_state {
  char url[MAX_URL];
  size_t url_len, header_bytes, body_bytes;
  int requests;
} admin_state;

static int count_header_bytes(admin_state *state, size_t len) {
  state->header_bytes += len;
  return state->header_bytes <= MAX_HEADER_BYTES ? 0 : -1;
}
static int on_message_begin(http_parser *p) {
  admin_state *state = p->data;
  state->url_len = state->header_bytes = state->body_bytes = 0;
  return 0;
}
static int on_url(http_parser *p, const char *at, size_t len) {
  admin_state *state = p->data;
  if (state->url_len + len > sizeof(state->url)) return -1; /* 414 */
  memcpy(state->url + state->url_len, at, len);
  state->url_len += len;
  return count_header_bytes(state, len);
}
static int on_header_data(http_parser *p, const char *at, size_t len) {
  return count_header_bytes(p->data, len);
}
static int on_headers_complete(http_parser *p) {
  return (p->flags & F_CONTENTLENGTH) && p->content_length > MAX_BODY_BYTES ? -1 : 0;
}
static int on_body(http_parser *p, const char *at, size_t len) {
  admin_state *state = p->data;
  state->body_bytes += len;
  return state->body_bytes <= MAX_BODY_BYTES ? 0 : -1;
}

static void check_error_body(int status, const char *message, const ms_admin_target *target) {
  ms_admin_response response;
  if (ms_admin_respond_error(status, message, target, &response) != 0) return;
  FUZZ_CHECK(response.status == status && strlen(response.body) == response.body_len);
  cJSON *json = cJSON_Parse(response.body);
  FUZZ_CHECK(json != NULL);
  if (target) {
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(json, "path");
    FUZZ_CHECK(cJSON_IsString(path) && strcmp(path->valuestring, target->path) == 0);
  }
  cJSON_Delete(json);
  ms_admin_response_cleanup(&response);
}

static int on_message_complete(http_parser *p) {
  admin_state *state = p->data;
  state->requests++;
  ms_admin_target target;
  if (ms_admin_route_match((enum http_method)p->method, state->url, state->url_len, &target) != 0) {
    check_error_body(400, "bad request", NULL);
    return -1; /* the connection closes after a 400 */
  }
  size_t path_len = strnlen(target.path, sizeof(target.path));
  FUZZ_CHECK(path_len < sizeof(target.path));
  FUZZ_CHECK(path_len <= state->url_len);
  FUZZ_CHECK(target.route >= MS_ADMIN_ROUTE_NOT_FOUND && target.route < MS_ADMIN_ROUTE_COUNT);
  if (target.route == MS_ADMIN_ROUTE_NOT_FOUND)
    check_error_body(404, "no such path", &target);
  else if (!target.method_allowed)
    check_error_body(405, "method not allowed", &target);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_data,
    .on_header_value = on_header_data,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  admin_state state = {0};
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &state;
  while (in.len > 0) {
    size_t piece = fuzz_next_piece(&splitter, in.len);
    http_parser_execute(&parser, &settings, (const char *)in.data, piece);
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) break;
    in.data += piece;
    in.len -= piece;
  }
  return 0;
}
