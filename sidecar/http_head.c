#include "sidecar/http_head.h"

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
    uint32_t query = url.field_set & (1 << UF_QUERY) ? url.field_data[UF_QUERY].off - 1 : len;
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

/* Whether the comma-separated `list` names the token `name`. */
static bool list_has(const char *list, size_t list_len, const char *name, size_t name_len) {
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
    if (end - start == name_len && strncasecmp(list + start, name, name_len) == 0) return true;
  }
  return false;
}

bool ms_http_hop_by_hop(const ms_http_head *head, size_t index) {
  static const char *const fixed[] = {"connection", "keep-alive",        "proxy-connection", "te",
                                      "trailer",    "transfer-encoding", "upgrade"};
  ms_http_slice name = head->headers[index].name;
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    if (ms_http_slice_is(head, name, fixed[i])) return true;
  for (size_t i = 0; i < head->header_count; i++) {
    if (!ms_http_slice_is(head, head->headers[i].name, "connection")) continue;
    ms_http_slice value = head->headers[i].value;
    if (list_has(head->buf + value.offset, value.len, head->buf + name.offset, name.len))
      return true;
  }
  return false;
}

void ms_http_out_add(ms_http_out *out, const char *data, size_t len) {
  if (out->failed) return;
  if (out->len + len > out->capacity) {
    size_t capacity = out->capacity ? out->capacity : 1024;
    while (capacity < out->len + len)
      capacity *= 2;
    char *grown = realloc(out->data, capacity);
    if (grown == NULL) {
      out->failed = true;
      return;
    }
    out->data = grown;
    out->capacity = capacity;
  }
  memcpy(out->data + out->len, data, len);
  out->len += len;
}

void ms_http_out_addf(ms_http_out *out, const char *format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  if (n < 0) {
    out->failed = true;
    return;
  }
  ms_http_out_add(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void ms_http_out_cleanup(ms_http_out *out) {
  free(out->data);
  memset(out, 0, sizeof(*out));
}

static void add_slice(ms_http_out *out, const ms_http_head *head, ms_http_slice slice) {
  ms_http_out_add(out, head->buf + slice.offset, slice.len);
}

static void add_header_line(ms_http_out *out, const ms_http_head *head, size_t i) {
  add_slice(out, head, head->headers[i].name);
  ms_http_out_add(out, ": ", 2);
  add_slice(out, head, head->headers[i].value);
  ms_http_out_add(out, "\r\n", 2);
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
  ms_http_out_addf(out, "%s ", edits->method);
  add_slice(out, head, head->target);
  ms_http_out_add(out, " HTTP/1.1\r\n", 11);
  bool host_sent = false, forwarded = false;
  for (size_t i = 0; i < head->header_count; i++) {
    ms_http_slice name = head->headers[i].name;
    if (ms_http_hop_by_hop(head, i) || ms_http_slice_is(head, name, "content-length")) continue;
    if (ms_http_slice_is(head, name, "host")) {
      if (host_sent) continue;
      host_sent = true;
      if (edits->host) {
        ms_http_out_addf(out, "Host: %s\r\n", edits->host);
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
      ms_http_out_addf(out, ", %s\r\n", edits->forwarded_for);
      continue;
    }
    add_header_line(out, head, i);
  }
  if (!host_sent && edits->host) ms_http_out_addf(out, "Host: %s\r\n", edits->host);
  if (edits->forwarded_for) {
    if (!forwarded) ms_http_out_addf(out, "X-Forwarded-For: %s\r\n", edits->forwarded_for);
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
  ms_http_out_addf(out, "HTTP/1.1 %u ", status);
  add_slice(out, head, head->target);
  ms_http_out_add(out, "\r\n", 2);
  for (size_t i = 0; i < head->header_count; i++) {
    if (ms_http_hop_by_hop(head, i) ||
        ms_http_slice_is(head, head->headers[i].name, "content-length"))
      continue;
    add_header_line(out, head, i);
  }
  add_framing(out, chunked, has_content_length, content_length);
  if (upgrade) {
    add_upgrade(out, head);
    ms_http_out_add(out, "\r\n", 2);
  } else if (close)
    ms_http_out_add(out, "Connection: close\r\n\r\n", 21);
  else
    ms_http_out_add(out, "\r\n", 2);
}
