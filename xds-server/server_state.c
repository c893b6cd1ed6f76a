/* server_state.c: see server_state.h. */
#include "xds-server/server_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/type_urls.h"

static const char *const type_urls[XDS_TYPE_COUNT] = {
    [XDS_TYPE_CDS] = MS_XDS_TYPE_URL_CLUSTER,
    [XDS_TYPE_EDS] = MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT,
    [XDS_TYPE_LDS] = MS_XDS_TYPE_URL_LISTENER,
    [XDS_TYPE_SDS] = MS_XDS_TYPE_URL_SECRET,
};

static const char *const type_names[XDS_TYPE_COUNT] = {"CDS", "EDS", "LDS", "SDS"};

const char *xds_type_url(xds_type type) {
  return type_urls[type];
}

const char *xds_type_name(xds_type type) {
  return type_names[type];
}

int xds_type_from_url(const char *type_url, xds_type *out_type) {
  for (int i = 0; i < XDS_TYPE_COUNT; i++) {
    if (type_url != NULL && strcmp(type_url, type_urls[i]) == 0) {
      *out_type = (xds_type)i;
      return 0;
    }
  }
  return -1;
}

bool xds_type_allows_wildcard(xds_type type) {
  return type == XDS_TYPE_CDS || type == XDS_TYPE_LDS;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t count) {
  for (size_t i = 0; i < count; i++)
    free(names[i]);
  free(names);
}

/* sorted_names copies `names` sorted, without duplicates, leaving out "*".
 * Sets *out_wildcard when "*" was there. Returns NULL only when memory ran
 * out (with *out_count 0 for an empty list, the result is a valid empty
 * allocation). */
static char **sorted_names(const char *const *names, size_t count, size_t *out_count,
                           bool *out_wildcard) {
  char **copy = calloc(count + 1, sizeof(char *));
  if (copy == NULL) return NULL;
  size_t n = 0;
  *out_wildcard = false;
  for (size_t i = 0; i < count; i++) {
    if (strcmp(names[i], "*") == 0) {
      *out_wildcard = true;
      continue;
    }
    if ((copy[n] = strdup(names[i])) == NULL) {
      free_names(copy, n);
      return NULL;
    }
    n++;
  }
  qsort(copy, n, sizeof(char *), compare_names);
  size_t unique = 0;
  for (size_t i = 0; i < n; i++) {
    if (unique > 0 && strcmp(copy[unique - 1], copy[i]) == 0)
      free(copy[i]);
    else
      copy[unique++] = copy[i];
  }
  *out_count = unique;
  return copy;
}

/* set_names replaces the subscription; returns 1 if it changed, 0 if not, -1
 * when memory ran out. */
static int set_names(xds_type_state *state, xds_type type, const char *const *names, size_t count) {
  size_t new_count = 0;
  bool wildcard = false;
  char **new_names = sorted_names(names, count, &new_count, &wildcard);
  if (new_names == NULL) return -1;
  /* CDS and LDS: no names at all is the wildcard (legacy form). */
  if (xds_type_allows_wildcard(type) && count == 0) wildcard = true;
  bool same = state->subscribed && wildcard == state->wildcard && new_count == state->name_count;
  for (size_t i = 0; same && i < new_count; i++)
    same = strcmp(new_names[i], state->names[i]) == 0;
  if (same) {
    free_names(new_names, new_count);
    return 0;
  }
  free_names(state->names, state->name_count);
  state->names = new_names;
  state->name_count = new_count;
  state->wildcard = wildcard;
  state->subscribed = true;
  return 1;
}

static void copy_text(char *out, size_t len, const char *text) {
  snprintf(out, len, "%s", text != NULL ? text : "");
}

int xds_type_state_on_request(xds_type_state *state, xds_type type, const xds_request *request,
                              int64_t now_ms, xds_request_kind *out_kind, bool *out_respond) {
  const char *nonce = request->response_nonce != NULL ? request->response_nonce : "";
  xds_request_kind kind;
  if (nonce[0] == '\0')
    kind = XDS_REQUEST_INITIAL;
  else if (!state->sent || strcmp(nonce, state->sent_nonce) != 0)
    kind = XDS_REQUEST_STALE;
  else
    kind = request->has_error ? XDS_REQUEST_NACK : XDS_REQUEST_ACK;
  *out_kind = kind;
  *out_respond = false;
  if (kind == XDS_REQUEST_STALE) return 0;

  if (kind == XDS_REQUEST_ACK) {
    copy_text(state->acked_version, sizeof(state->acked_version), request->version_info);
    state->acked_at_ms = now_ms;
    state->ack_count++;
  } else if (kind == XDS_REQUEST_NACK) {
    /* The client names its last good version; what it refused is ours. */
    copy_text(state->nacked_version, sizeof(state->nacked_version), state->sent_version);
    char *message = strdup(request->error_message != NULL ? request->error_message : "");
    if (message == NULL) return -1;
    free(state->nack_message);
    state->nack_message = message;
    state->nack_code = request->error_code;
    state->nacked_at_ms = now_ms;
    state->nack_count++;
  }
  int changed = set_names(state, type, request->names, request->name_count);
  if (changed < 0) return -1;
  *out_respond = kind == XDS_REQUEST_INITIAL || changed == 1;
  return 0;
}

void xds_type_state_on_sent(xds_type_state *state, const char *version, const char *nonce,
                            uint64_t digest, int64_t now_ms) {
  state->sent = true;
  copy_text(state->sent_version, sizeof(state->sent_version), version);
  copy_text(state->sent_nonce, sizeof(state->sent_nonce), nonce);
  state->sent_digest = digest;
  state->sent_at_ms = now_ms;
}

bool xds_type_state_wants(const xds_type_state *state, const char *name) {
  if (!state->subscribed) return false;
  if (state->wildcard) return true;
  return bsearch(&name, state->names, state->name_count, sizeof(char *), compare_names) != NULL;
}

void xds_type_state_cleanup(xds_type_state *state) {
  free_names(state->names, state->name_count);
  free(state->nack_message);
  memset(state, 0, sizeof(*state));
}
