#include "sidecar/http/http_head.h"

#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ms_http_head_reset(ms_http_head *head) {
  head->len = 0;
  head->header_count = 0;
  head->target = (ms_http_slice){0, 0};
  head->started = false;
}

void ms_http_head_cleanup(ms_http_head *head) {
  free(head->buf);
  free(head->headers);
  memset(head, 0, sizeof(*head));
}

static int reserve(ms_http_head *head, size_t more) {
  /* Allocated even for an empty piece (an empty reason phrase): slices are
   * read as buf + offset, which must never be NULL + 0. */
  if (head->buf != NULL && head->len + more <= head->capacity) return 0;
  size_t capacity = head->capacity ? head->capacity : 1024;
  while (capacity < head->len + more)
    capacity *= 2;
  char *grown = realloc(head->buf, capacity);
  if (grown == NULL) return -1;
  head->buf = grown;
  head->capacity = capacity;
  return 0;
}

static int add_header(ms_http_head *head) {
  if (head->header_count == head->header_capacity) {
    size_t capacity = head->header_capacity ? head->header_capacity * 2 : 16;
    ms_http_header *grown = realloc(head->headers, capacity * sizeof(*grown));
    if (grown == NULL) return -1;
    head->headers = grown;
    head->header_capacity = capacity;
  }
  head->headers[head->header_count++] = (ms_http_header){{(uint32_t)head->len, 0}, {0, 0}};
  return 0;
}

int ms_http_head_append(ms_http_head *head, ms_http_piece piece, const char *at, size_t len) {
  if (reserve(head, len) != 0) return -1;
  bool continues = head->started && head->last == piece;
  ms_http_slice *slice;
  if (piece == MS_HTTP_URL || piece == MS_HTTP_STATUS) {
    slice = &head->target;
    if (!continues) *slice = (ms_http_slice){(uint32_t)head->len, 0};
  } else if (piece == MS_HTTP_FIELD) {
    if (!continues && add_header(head) != 0) return -1;
    slice = &head->headers[head->header_count - 1].name;
  } else {
    slice = &head->headers[head->header_count - 1].value;
    if (!continues) *slice = (ms_http_slice){(uint32_t)head->len, 0};
  }
  memcpy(head->buf + head->len, at, len);
  head->len += len;
  slice->len += (uint32_t)len;
  head->last = piece;
  head->started = true;
  return 0;
}

/* Adds `len` bytes at the end of the buffer as *out. */
static int append_raw(ms_http_head *head, const char *bytes, size_t len, ms_http_slice *out) {
  if (reserve(head, len) != 0) return -1;
  memcpy(head->buf + head->len, bytes, len);
  *out = (ms_http_slice){(uint32_t)head->len, (uint32_t)len};
  head->len += len;
  return 0;
}

int ms_http_head_to_origin_form(ms_http_head *head) {
  uint32_t base = head->target.offset, len = head->target.len;
  if (len == 0 || head->buf[base] == '/' || (len == 1 && head->buf[base] == '*')) return 0;
  struct http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(head->buf + base, len, 0, &url) != 0 ||
      !(url.field_set & (1 << UF_SCHEMA)) || !(url.field_set & (1 << UF_HOST)))
    return -1;
  /* The authority: host (its brackets too, for IPv6) and port, no userinfo. */
  uint32_t start = url.field_data[UF_HOST].off, end = start + url.field_data[UF_HOST].len;
  if (start > 0 && head->buf[base + start - 1] == '[') start--, end++;
  if (url.field_set & (1 << UF_PORT))
    end = url.field_data[UF_PORT].off + url.field_data[UF_PORT].len;
  ms_http_slice authority = {base + start, end - start};
  /* The origin form: the path and what follows it, in place; without a
   * path, "/" and the query (if any), at the end of the buffer. */
  if (url.field_set & (1 << UF_PATH)) {
    uint32_t path = url.field_data[UF_PATH].off;
    head->target = (ms_http_slice){base + path, len - path};
  } else {
    size_t query = url.field_set & (1 << UF_QUERY) ? (size_t)url.field_data[UF_QUERY].off - 1 : len;
    ms_http_slice target;
    if (reserve(head, 1 + len - query) != 0 || append_raw(head, "/", 1, &target) != 0) return -1;
    memcpy(head->buf + head->len, head->buf + base + query, len - query);
    head->len += len - query;
    target.len += len - query;
    head->target = target;
  }
  /* Host becomes the authority (RFC 9112 3.2.2: the target's wins). */
  for (size_t i = 0; i < head->header_count; i++) {
    if (ms_http_slice_is(head, head->headers[i].name, "host")) {
      head->headers[i].value = authority;
      return 0;
    }
  }
  ms_http_slice name;
  if (append_raw(head, "Host", 4, &name) != 0 || add_header(head) != 0) return -1;
  head->headers[head->header_count - 1] = (ms_http_header){name, authority};
  return 0;
}

bool ms_http_slice_is(const ms_http_head *head, ms_http_slice slice, const char *text) {
  size_t n = strlen(text);
  return slice.len == n && strncasecmp(head->buf + slice.offset, text, n) == 0;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool ms_http_head_names_valid(const ms_http_head *head) {
  for (size_t i = 0; i < head->header_count; i++) {
    ms_http_slice name = head->headers[i].name;
    if (name.len == 0) return false;
    for (uint32_t j = 0; j < name.len; j++)
      if (!is_tchar((unsigned char)head->buf[name.offset + j])) return false;
  }
  return true;
}

const char *ms_http_head_get(const ms_http_head *head, const char *name, size_t *len) {
  for (size_t i = 0; i < head->header_count; i++) {
    if (ms_http_slice_is(head, head->headers[i].name, name)) {
      *len = head->headers[i].value.len;
      return head->buf + head->headers[i].value.offset;
    }
  }
  return NULL;
}

/* ---- hop-by-hop headers ---------------------------------------------------- */

/* A header name as bytes and length, for sorting and searching. */
typedef struct name_ref {
  const char *text;
  size_t len;
} name_ref;

/* The names of the headers that concern one connection only (RFC 9110
 * 7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, and every header the Connection header
 * names), collected once per head and sorted, so that dropping them is one
 * pass over the headers with a binary search each, however many headers
 * and Connection tokens a client sends. */
typedef struct hop_names {
  const ms_http_head *head;
  name_ref *names; /* `local`, or the heap once it is full */
  size_t count, capacity;
  name_ref local[16];
} hop_names;

static void hop_names_cleanup(hop_names *names);

static int compare_names(const void *a, const void *b) {
  const name_ref *x = a, *y = b;
  int c = strncasecmp(x->text, y->text, x->len < y->len ? x->len : y->len);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static int add_name(hop_names *names, const char *text, size_t len) {
  if (names->count == names->capacity) {
    size_t capacity = names->capacity * 2;
    name_ref *grown = malloc(capacity * sizeof(*grown));
    if (grown == NULL) return -1;
    memcpy(grown, names->names, names->count * sizeof(*grown));
    if (names->names != names->local) free(names->names);
    names->names = grown;
    names->capacity = capacity;
  }
  names->names[names->count++] = (name_ref){text, len};
  return 0;
}

/* Adds each token of the comma-separated `list`. */
static int add_list(hop_names *names, const char *list, size_t list_len) {
  size_t i = 0;
  while (i < list_len) {
    while (i < list_len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
      i++;
    size_t start = i;
    while (i < list_len && list[i] != ',')
      i++;
    size_t end = i;
    while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
      end--;
    if (end > start && add_name(names, list + start, end - start) != 0) return -1;
  }
  return 0;
}

static int hop_names_init(hop_names *names, const ms_http_head *head) {
  static const char *const fixed[] = {"connection", "keep-alive",        "proxy-connection", "te",
                                      "trailer",    "transfer-encoding", "upgrade"};
  names->head = head;
  names->names = names->local;
  names->count = 0;
  names->capacity = sizeof(names->local) / sizeof(names->local[0]);
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    add_name(names, fixed[i], strlen(fixed[i])); /* fits in `local` */
  for (size_t i = 0; i < head->header_count; i++) {
    if (!ms_http_slice_is(head, head->headers[i].name, "connection")) continue;
    ms_http_slice value = head->headers[i].value;
    if (add_list(names, head->buf + value.offset, value.len) != 0) {
      hop_names_cleanup(names);
      return -1;
    }
  }
  qsort(names->names, names->count, sizeof(name_ref), compare_names);
  return 0;
}

static void hop_names_cleanup(hop_names *names) {
  if (names->names != names->local) free(names->names);
  names->names = names->local;
  names->count = 0;
}

/* Whether header `index` of the head is in `names`. */
static bool is_hop_by_hop(const hop_names *names, size_t index) {
  const ms_http_head *head = names->head;
  ms_http_slice name = head->headers[index].name;
  name_ref key = {head->buf + name.offset, name.len};
  return bsearch(&key, names->names, names->count, sizeof(name_ref), compare_names) != NULL;
}

/* ---- output ------------------------------------------------------------------ */

/* Makes room for `more` bytes after out->len. Returns 0, or -1 (and marks
 * `out` failed) when memory ran out. */
static int out_reserve(ms_http_out *out, size_t more) {
  if (out->failed) return -1;
  if (out->len + more <= out->capacity) return 0;
  size_t capacity = out->capacity ? out->capacity : 1024;
  while (capacity < out->len + more)
    capacity *= 2;
  char *grown = realloc(out->data, capacity);
  if (grown == NULL) {
    out->failed = true;
    return -1;
  }
  out->data = grown;
  out->capacity = capacity;
  return 0;
}

void ms_http_out_add(ms_http_out *out, const char *data, size_t len) {
  if (out_reserve(out, len) != 0) return;
  memcpy(out->data + out->len, data, len);
  out->len += len;
}

/* Formats straight into the buffer, at the length the text needs. */
void ms_http_out_addf(ms_http_out *out, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsnprintf(NULL, 0, format, args);
  va_end(args);
  if (n < 0) out->failed = true;
  if (n < 0 || out_reserve(out, (size_t)n + 1) != 0) return;
  va_start(args, format);
  vsnprintf(out->data + out->len, (size_t)n + 1, format, args);
  va_end(args);
  out->len += (size_t)n;
}

void ms_http_out_cleanup(ms_http_out *out) {
  free(out->data);
  memset(out, 0, sizeof(*out));
}

static void add_slice(ms_http_out *out, const ms_http_head *head, ms_http_slice slice) {
  ms_http_out_add(out, head->buf + slice.offset, slice.len);
}

/* "name: value\r\n", at their exact lengths. */
static void add_line(ms_http_out *out, const char *name, size_t name_len, const char *value,
                     size_t value_len) {
  ms_http_out_add(out, name, name_len);
  ms_http_out_add(out, ": ", 2);
  ms_http_out_add(out, value, value_len);
  ms_http_out_add(out, "\r\n", 2);
}

static void add_header_line(ms_http_out *out, const ms_http_head *head, size_t i) {
  ms_http_slice name = head->headers[i].name, value = head->headers[i].value;
  add_line(out, head->buf + name.offset, name.len, head->buf + value.offset, value.len);
}

/* "Connection: upgrade" and the head's own Upgrade header. */
static void add_upgrade(ms_http_out *out, const ms_http_head *head) {
  ms_http_out_add(out, "Connection: upgrade\r\n", 21);
  for (size_t i = 0; i < head->header_count; i++)
    if (ms_http_slice_is(head, head->headers[i].name, "upgrade")) add_header_line(out, head, i);
}

static void add_framing(ms_http_out *out, bool chunked, bool has_length, uint64_t length) {
  if (chunked)
    ms_http_out_add(out, "Transfer-Encoding: chunked\r\n", 28);
  else if (has_length)
    ms_http_out_addf(out, "Content-Length: %llu\r\n", (unsigned long long)length);
}

void ms_http_write_request(ms_http_out *out, const ms_http_head *head,
                           const ms_http_request_edits *edits) {
  hop_names hop;
  if (hop_names_init(&hop, head) != 0) {
    out->failed = true;
    return;
  }
  ms_http_out_add(out, edits->method, strlen(edits->method));
  ms_http_out_add(out, " ", 1);
  add_slice(out, head, head->target);
  ms_http_out_add(out, " HTTP/1.1\r\n", 11);
  bool host_sent = false, forwarded = false;
  size_t host_len = edits->host ? strlen(edits->host) : 0;
  size_t peer_len = edits->forwarded_for ? strlen(edits->forwarded_for) : 0;
  for (size_t i = 0; i < head->header_count; i++) {
    ms_http_slice name = head->headers[i].name;
    if (is_hop_by_hop(&hop, i) || ms_http_slice_is(head, name, "content-length")) continue;
    if (ms_http_slice_is(head, name, "host")) {
      if (host_sent) continue;
      host_sent = true;
      if (edits->host) {
        add_line(out, "Host", 4, edits->host, host_len);
        continue;
      }
    } else if (edits->forwarded_for && ms_http_slice_is(head, name, "x-forwarded-proto")) {
      continue; /* ours replaces it: the client spoke plain HTTP to us */
    } else if (edits->forwarded_for && !forwarded &&
               ms_http_slice_is(head, name, "x-forwarded-for")) {
      forwarded = true;
      add_slice(out, head, name);
      ms_http_out_add(out, ": ", 2);
      add_slice(out, head, head->headers[i].value);
      ms_http_out_add(out, ", ", 2);
      ms_http_out_add(out, edits->forwarded_for, peer_len);
      ms_http_out_add(out, "\r\n", 2);
      continue;
    }
    add_header_line(out, head, i);
  }
  hop_names_cleanup(&hop);
  if (!host_sent && edits->host) add_line(out, "Host", 4, edits->host, host_len);
  if (edits->forwarded_for) {
    if (!forwarded) add_line(out, "X-Forwarded-For", 15, edits->forwarded_for, peer_len);
    ms_http_out_add(out, "X-Forwarded-Proto: http\r\n", 25);
  }
  add_framing(out, edits->chunked, edits->has_content_length, edits->content_length);
  if (edits->upgrade) {
    add_upgrade(out, head);
    ms_http_out_add(out, "\r\n", 2);
  } else {
    ms_http_out_add(out, "Connection: keep-alive\r\n\r\n", 26);
  }
}

void ms_http_write_response(ms_http_out *out, const ms_http_head *head, unsigned status,
                            bool chunked, bool has_content_length, uint64_t content_length,
                            bool close, bool upgrade) {
  hop_names hop;
  if (hop_names_init(&hop, head) != 0) {
    out->failed = true;
    return;
  }
  ms_http_out_addf(out, "HTTP/1.1 %u ", status);
  add_slice(out, head, head->target);
  ms_http_out_add(out, "\r\n", 2);
  for (size_t i = 0; i < head->header_count; i++) {
    if (is_hop_by_hop(&hop, i) || ms_http_slice_is(head, head->headers[i].name, "content-length"))
      continue;
    add_header_line(out, head, i);
  }
  hop_names_cleanup(&hop);
  add_framing(out, chunked, has_content_length, content_length);
  if (upgrade) {
    add_upgrade(out, head);
    ms_http_out_add(out, "\r\n", 2);
  } else if (close)
    ms_http_out_add(out, "Connection: close\r\n\r\n", 21);
  else
    ms_http_out_add(out, "\r\n", 2);
}

/* ---- the proxy's decisions -------------------------------------------------- */

#define NO_LENGTH UINT64_MAX /* http_parser's content_length without the header */

static const struct {
  unsigned status;
  const char *phrase, *body;
} request_verdicts[] = {
    [MS_HTTP_REQUEST_PROXY] = {0, NULL, NULL},
    [MS_HTTP_REQUEST_BAD_HEADER_NAME] =
        {400, "Bad Request",
         "bad request: a header name that is not a token (a space before the colon?)"},
    [MS_HTTP_REQUEST_HOST_TWICE] = {400, "Bad Request", "bad request: more than one Host header"},
    [MS_HTTP_REQUEST_NO_HOST] = {400, "Bad Request",
                                 "bad request: an HTTP/1.1 request without a Host header"},
    [MS_HTTP_REQUEST_BAD_TARGET] =
        {400, "Bad Request",
         "bad request: a request target that is neither a path nor an absolute URL"},
    [MS_HTTP_REQUEST_BODY_TOO_LARGE] = {413, "Content Too Large",
                                        "request body over max_request_body_bytes"},
    [MS_HTTP_REQUEST_CONNECT] = {405, "Method Not Allowed", "CONNECT is not proxied"},
    [MS_HTTP_REQUEST_HEAD_TIMEOUT] = {408, "Request Timeout",
                                      "request head not received whole within "
                                      "request_headers_timeout_ms"},
};

unsigned ms_http_request_verdict_answer(ms_http_request_verdict verdict, const char **out_phrase,
                                        const char **out_body) {
  *out_phrase = request_verdicts[verdict].phrase;
  *out_body = request_verdicts[verdict].body;
  return request_verdicts[verdict].status;
}

ms_http_request_verdict ms_http_request_check(const http_parser *parser, ms_http_head *head) {
  if (!ms_http_head_names_valid(head)) return MS_HTTP_REQUEST_BAD_HEADER_NAME;
  size_t hosts = 0;
  for (size_t i = 0; i < head->header_count; i++)
    if (ms_http_slice_is(head, head->headers[i].name, "host")) hosts++;
  if (hosts > 1) return MS_HTTP_REQUEST_HOST_TWICE;
  if (hosts == 0 && parser->http_major == 1 && parser->http_minor >= 1)
    return MS_HTTP_REQUEST_NO_HOST;
  if (parser->method != HTTP_CONNECT && ms_http_head_to_origin_form(head) != 0)
    return MS_HTTP_REQUEST_BAD_TARGET;
  return MS_HTTP_REQUEST_PROXY;
}

ms_http_framing ms_http_request_framing(const http_parser *parser) {
  if (parser->flags & F_CHUNKED) return MS_HTTP_FRAMING_CHUNKED;
  if (parser->content_length != NO_LENGTH && parser->content_length > 0)
    return MS_HTTP_FRAMING_LENGTH;
  return MS_HTTP_FRAMING_NONE;
}

ms_http_request_verdict ms_http_request_plan(const http_parser *parser, ms_http_framing framing,
                                             uint64_t max_body_bytes,
                                             ms_http_request_edits *out_edits) {
  if (max_body_bytes && framing == MS_HTTP_FRAMING_LENGTH &&
      parser->content_length > max_body_bytes)
    return MS_HTTP_REQUEST_BODY_TOO_LARGE;
  if (parser->upgrade && parser->method == HTTP_CONNECT) return MS_HTTP_REQUEST_CONNECT;
  *out_edits = (ms_http_request_edits){
      .method = http_method_str(parser->method),
      .chunked = framing == MS_HTTP_FRAMING_CHUNKED,
      .has_content_length = framing == MS_HTTP_FRAMING_LENGTH,
      .content_length = parser->content_length,
      .upgrade = parser->upgrade,
  };
  return MS_HTTP_REQUEST_PROXY;
}

/* Whether a response head announces a body (a Content-Length above 0, or
 * chunked): a 1xx or a 204 must not (RFC 9110 8.6, 6.4.1). */
static bool announces_body(const http_parser *parser) {
  return (parser->flags & F_CHUNKED) ||
         (parser->content_length != NO_LENGTH && parser->content_length > 0);
}

void ms_http_response_decide(const http_parser *parser, const ms_http_head *head,
                             const http_parser *request, bool close, ms_http_response_plan *out) {
  unsigned status = parser->status_code;
  *out = (ms_http_response_plan){.status = status, .framing = MS_HTTP_FRAMING_NONE};
  if (!ms_http_head_names_valid(head)) {
    out->kind = MS_HTTP_RESPONSE_BAD_HEADER_NAME;
    out->refused = "a header name that is not a token";
    return;
  }
  if (status == 101) {
    out->kind = request->upgrade ? MS_HTTP_RESPONSE_UPGRADE : MS_HTTP_RESPONSE_UPGRADE_UNASKED;
    return;
  }
  if (status >= 100 && status < 200) {
    /* 100 Continue and other interim answers pass as they are. */
    out->kind = MS_HTTP_RESPONSE_INTERIM;
    out->bodiless = true;
    out->upstream_in_doubt = announces_body(parser);
    return;
  }
  out->kind = MS_HTTP_RESPONSE_FINAL;
  bool head_request = request->method == HTTP_HEAD;
  bool client_11 = request->http_major == 1 && request->http_minor >= 1;
  bool has_length = parser->content_length != NO_LENGTH;
  out->bodiless = head_request || status == 204 || status == 304;
  out->upstream_in_doubt = status == 204 && announces_body(parser);
  if (out->bodiless)
    out->framing = MS_HTTP_FRAMING_NONE;
  else if (!(parser->flags & F_CHUNKED) && has_length)
    out->framing = MS_HTTP_FRAMING_LENGTH;
  else if (client_11)
    out->framing = MS_HTTP_FRAMING_CHUNKED;
  else
    out->framing = MS_HTTP_FRAMING_UNTIL_CLOSE;
  out->has_content_length = out->framing == MS_HTTP_FRAMING_LENGTH || (head_request && has_length);
  out->content_length = parser->content_length;
  out->close = close || out->framing == MS_HTTP_FRAMING_UNTIL_CLOSE;
}

void ms_http_write_planned_response(ms_http_out *out, const ms_http_head *head,
                                    const ms_http_response_plan *plan) {
  ms_http_write_response(out, head, plan->status, plan->framing == MS_HTTP_FRAMING_CHUNKED,
                         plan->has_content_length, plan->content_length, plan->close,
                         plan->kind == MS_HTTP_RESPONSE_UPGRADE);
}

size_t ms_http_chunk_line(size_t len, char line[MS_HTTP_CHUNK_LINE_MAX]) {
  return (size_t)snprintf(line, MS_HTTP_CHUNK_LINE_MAX, "%zx\r\n", len);
}

void ms_http_out_add_chunk(ms_http_out *out, const char *data, size_t len) {
  char line[MS_HTTP_CHUNK_LINE_MAX];
  ms_http_out_add(out, line, ms_http_chunk_line(len, line));
  ms_http_out_add(out, data, len);
  ms_http_out_add(out, "\r\n", 2);
}
