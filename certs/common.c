/* common.c: error messages, wiping memory BIOs, and the per-SSL state
 * shared by the files of certs/. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>

#include "certs/internal.h"

int ms_tls_problem(ms_tls_problems *problems, const char *key, const char *fmt, ...) {
  char message[MS_ERR_LEN];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof(message), fmt, args);
  va_end(args);
  if (problems->report != NULL)
    problems->report(problems->arg, key, message);
  else if (problems->count == 0)
    ms_err_set(problems->err, problems->err_len, "%s", message);
  problems->count++;
  return -1;
}

const char *ms_err_reason(char *buf, size_t len) {
  uint32_t first = ERR_get_error();
  uint32_t code;
  while ((code = ERR_get_error()) != 0) {
  }
  if (len == 0) return buf;
  const char *reason = first == 0 ? NULL : ERR_reason_error_string(first);
  if (first == 0) {
    buf[0] = '\0';
  } else if (reason != NULL) {
    snprintf(buf, len, "%s", reason);
  } else {
    snprintf(buf, len, "error %08x", (unsigned)first);
  }
  return buf;
}

const char *ms_quote_untrusted(const char *text, char *buf, size_t len) {
  enum { shown_max = 64 };
  if (len == 0) return buf;
  size_t used = 0, shown = 0;
  const char *p = text != NULL ? text : "";
  buf[used++] = '"';
  for (; *p != '\0' && shown < shown_max && used + 2 < len; p++, shown++) {
    unsigned char c = (unsigned char)*p;
    buf[used++] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
  }
  if (used + 1 < len) buf[used++] = '"';
  buf[used] = '\0';
  if (*p != '\0' && used + 3 < len) memcpy(buf + used, "...", 4);
  return buf;
}

void ms_bio_free_wiped(BIO *bio) {
  const uint8_t *data = NULL;
  size_t len = 0;
  if (bio != NULL && BIO_mem_contents(bio, &data, &len) && len > 0) {
    OPENSSL_cleanse((void *)data, len);
  }
  BIO_free(bio);
}

static int state_index = -1;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                       void *argp) {
  free(ptr);
}

static void state_index_init(void) {
  state_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, state_free);
}

ms_ssl_state *ms_ssl_state_get(const SSL *ssl, bool create) {
  pthread_once(&state_once, state_index_init);
  if (state_index < 0 || ssl == NULL) return NULL;
  ms_ssl_state *state = SSL_get_ex_data(ssl, state_index);
  if (state != NULL || !create) return state;
  state = calloc(1, sizeof(*state));
  if (state == NULL) return NULL;
  state->alert_sent = -1;
  state->alert_received = -1;
  /* The info and verify callbacks get a const SSL; the object itself is not
   * const, and ex_data is the per-connection storage BoringSSL provides. */
  if (!SSL_set_ex_data((SSL *)ssl, state_index, state)) {
    free(state);
    return NULL;
  }
  return state;
}
