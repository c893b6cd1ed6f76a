/* admin_request_fuzz.c: requests to the admin endpoint, as common/http_server.c
 * reads them for sidecar/admin/admin.c: ms_http_reader with the default caps
 * (a 2048-byte target, 8 KiB of head, 64 KiB of body), fed at fuzzer-chosen
 * split points, then ms_admin_route_match on the target and the error
 * answers that need no server (ms_admin_target_refusal: 404 with the list of
 * paths, 405 with Allow; and 400), which echo the request's path into JSON.
 *
 * The properties checked: the route's path is a NUL-terminated prefix of the
 * request's path; an error body is JSON whose "path" is that path; nothing
 * is answered for a request the caps refuse (and a refusal is 400, 413,
 * 414 or 431); Host and Origin are kept whole or marked too long; the
 * query lies inside the target and /stats' parameters decode within their
 * room (ms_admin_query_get).
 *
 * Input: two bytes seeding the split points, then the bytes a client sent. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

#include "common/http_server.h"
#include "fuzz/fuzz_util.h"
#include "sidecar/admin/admin_json.h"

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

/* check_request does what the admin endpoint does with a whole request. */
static void check_request(const ms_http_request *request) {
  FUZZ_CHECK(request->url_len <= sizeof(request->url));
  FUZZ_CHECK(request->host_len == SIZE_MAX || request->host_len <= MS_HTTP_MAX_NAME + 1);
  FUZZ_CHECK(request->origin_len == SIZE_MAX || request->origin_len <= MS_HTTP_MAX_NAME + 1);
  ms_admin_target target;
  if (ms_admin_route_match(request->method, request->url, request->url_len, &target) != 0) {
    check_error_body(400, NULL);
    return;
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  fuzz_splitter splitter = fuzz_splitter_from(&in);
  static ms_http_reader reader; /* 2 KiB of target: not on the stack */
  ms_http_reader_init(&reader, NULL);
  while (in.len > 0) {
    size_t piece = fuzz_next_piece(&splitter, in.len), consumed = 0;
    ms_http_read_state state =
        ms_http_reader_feed(&reader, (const char *)in.data, piece, &consumed);
    FUZZ_CHECK(consumed <= piece);
    in.data += consumed;
    in.len -= consumed;
    if (state == MS_HTTP_READ_REFUSED) {
      int status = reader.refusal_status;
      FUZZ_CHECK(status == 400 || status == 413 || status == 414 || status == 431);
      check_error_body(status, NULL);
      break; /* the connection closes after the refusal */
    }
    if (state == MS_HTTP_READ_COMPLETE) {
      check_request(&reader.request);
      if (!reader.request.keep_alive) break;
      ms_http_reader_next(&reader);
    }
  }
  return 0;
}
