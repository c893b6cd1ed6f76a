/* admin_request_fuzz.c: requests to the admin endpoint, as sidecar/admin/admin.c
 * reads them: http_parser with the endpoint's caps (ms_admin_request_*: a
 * 2048-byte target, 8 KiB of head, 64 KiB of body), fed at fuzzer-chosen
 * split points, then ms_admin_route_match on the target and the error
 * answers that need no server (ms_admin_target_refusal: 404 with the list of
 * paths, 405 with Allow; and 400), which echo the request's path into JSON.
 *
 * The properties checked: the route's path is a NUL-terminated prefix of the
 * request's path; an error body is JSON whose "path" is that path; nothing
 * is answered for a request the caps refuse; the query lies inside the
 * target and /stats' parameters decode within their room
 * (ms_admin_query_get).
 *
 * Input: two bytes seeding the split points, then the bytes a client sent. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <http_parser.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "sidecar/admin/admin_json.h"

typedef struct admin_state {
  ms_admin_request request; /* the endpoint's caps, as sidecar/admin/admin.c counts them */
  int requests;
} admin_state;

static int on_message_begin(http_parser *p) {
  ms_admin_request_reset(&((admin_state *)p->data)->request);
  return 0;
}
static int on_url(http_parser *p, const char *at, size_t len) {
  return ms_admin_request_add_url(&((admin_state *)p->data)->request, at, len);
}
static int on_header_data(http_parser *p, const char *at, size_t len) {
  return ms_admin_request_count_head(&((admin_state *)p->data)->request, len);
}
static int on_headers_complete(http_parser *p) {
  return ms_admin_request_check_length(&((admin_state *)p->data)->request, p);
}
static int on_body(http_parser *p, const char *at, size_t len) {
  return ms_admin_request_count_body(&((admin_state *)p->data)->request, len);
}

static void check_error_body(int status, const ms_admin_target *target) {
  ms_admin_response response;
  if (ms_admin_respond_error(status, ms_admin_status_message(status), target, &response) != 0)
    return;
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
  const ms_admin_request *request = &state->request;
  ms_admin_target target;
  if (ms_admin_route_match((enum http_method)p->method, request->url, request->url_len, &target) !=
      0) {
    check_error_body(400, NULL);
    return -1; /* the connection closes after a 400 */
  }
  size_t path_len = strnlen(target.path, sizeof(target.path));
  FUZZ_CHECK(path_len < sizeof(target.path));
  FUZZ_CHECK(path_len <= request->url_len);
  FUZZ_CHECK(target.route >= MS_ADMIN_ROUTE_NOT_FOUND && target.route < MS_ADMIN_ROUTE_COUNT);
  int refusal = ms_admin_target_refusal(&target);
  FUZZ_CHECK(refusal == 0 || refusal == 404 || refusal == 405);
  FUZZ_CHECK((refusal == 404) == (target.route == MS_ADMIN_ROUTE_NOT_FOUND));
  if (refusal != 0) check_error_body(refusal, &target);
  /* The query, as /stats reads it: inside the target, and a value found is
   * NUL-terminated within the room given. */
  FUZZ_CHECK(!target.query || (target.query >= request->url &&
                               target.query + target.query_len <= request->url + request->url_len));
  char value[257];
  static const char *const names[] = {"filter", "format"};
  for (size_t i = 0; i < 2; i++) {
    int found = ms_admin_query_get(&target, names[i], value, sizeof(value));
    FUZZ_CHECK(found == -EINVAL || found == 0 || found == 1);
    if (found == 1) FUZZ_CHECK(strnlen(value, sizeof(value)) < sizeof(value));
  }
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
