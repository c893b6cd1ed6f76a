#include "sidecar/event/tls_to_plaintext.h"

#include "certs/certs.h"
#include "common/log.h"

#define LOG_INTERVAL_MS 1000

bool ms_tls_to_plaintext_check(ms_worker *worker, ms_listener_sockets *sockets, const void *bytes,
                               size_t len, const char *action) {
  if (ms_tls_record_type(bytes, len) != 22) return false;
  MS_LISTENER_STAT_ADD(worker, sockets, downstream_cx_tls_to_plaintext, 1);
  uint64_t count =
      ms_log_limit_tick(&worker->tls_hello_log, uv_now(&worker->loop), LOG_INTERVAL_MS);
  if (count)
    ms_log(MS_LOG_WARN,
           "listener=%s: a client sent a TLS handshake to this plaintext listener (%llu "
           "connection%s); %s; hint: " MS_TLS_TO_PLAINTEXT_HINT,
           sockets->name, (unsigned long long)count, count == 1 ? "" : "s since the last line",
           action);
  return true;
}
