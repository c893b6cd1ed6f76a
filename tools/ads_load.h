/* ads_load.h: simulated ADS clients for load tests of xds-server, over
 * //xds/grpc. N streams spread over M channels (HTTP/2 connections); each
 * stream is its own node ("PREFIX-I.load": service account PREFIX-I in
 * namespace "load"), subscribes to CDS (wildcard), EDS (one name) and SDS
 * ("default", "ROOTCA"), and ACKs every response. After ms_ads_load_mark the
 * load counts, per type, the streams that received a new version, and when
 * the last one did: the time for a change to reach every stream.
 * Used by //tools:ads_load (the benchmark) and //xds-server:server_test. Everything
 * runs on the loop's thread. */
#ifndef MS_TOOLS_ADS_LOAD_H
#define MS_TOOLS_ADS_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

typedef struct ms_ads_load ms_ads_load;

/* The types a simulated stream subscribes to. */
typedef enum ms_ads_load_type {
  MS_ADS_LOAD_CDS = 0,
  MS_ADS_LOAD_EDS,
  MS_ADS_LOAD_SDS,
  MS_ADS_LOAD_TYPE_COUNT
} ms_ads_load_type;

typedef struct ms_ads_load_options {
  const char *address;     /* "127.0.0.1:18000". Required. */
  SSL_CTX *ssl_ctx;        /* client context with the bootstrap certificate. Required. */
  const char *server_name; /* NULL: "localhost" */
  int streams;             /* N, at least 1 */
  int channels;            /* M, at least 1 */
  const char *node_prefix; /* NULL: "load" */
  const char *eds_name;    /* NULL: "backend" */
} ms_ads_load_options;

typedef struct ms_ads_load_stats {
  int streams;           /* started */
  int ready;             /* received a first response of every type */
  int closed;            /* ended (by the server or a lost connection) */
  int channels_ready;    /* channels READY */
  int channels_closed;   /* channels CLOSED */
  uint64_t responses;    /* in total */
  uint64_t bad_messages; /* responses that did not decode */
  char last_close_reason[256];
} ms_ads_load_stats;

/* ms_ads_load_start opens the channels and streams and sends the
 * subscriptions; returns at once. Returns 0 and sets *out_load (closed with
 * ms_ads_load_close), or a negative errno. */
int ms_ads_load_start(uv_loop_t *loop, const ms_ads_load_options *options, ms_ads_load **out_load);

/* ms_ads_load_stats_get fills `out`. */
void ms_ads_load_stats_get(const ms_ads_load *load, ms_ads_load_stats *out);

/* ms_ads_load_mark starts a measurement: from now on a stream counts as
 * updated for a type when it receives a version of it other than the one it
 * held at the mark. */
void ms_ads_load_mark(ms_ads_load *load);

/* ms_ads_load_updated returns how many streams were updated for `type` since
 * the mark, and in *out_last_ms (may be NULL) the milliseconds from the mark
 * to the last of those updates. */
int ms_ads_load_updated(const ms_ads_load *load, ms_ads_load_type type, int64_t *out_last_ms);

/* ms_ads_load_close closes every channel (the loop must run once more to
 * free them) and frees the load. Accepts NULL. */
void ms_ads_load_close(ms_ads_load *load);

/* ---- CreateCertificate load (Istio's CA API; ads_load_csr.c) ---------------- */

typedef struct ms_csr_bench_options {
  const char *address;     /* Required. */
  SSL_CTX *ssl_ctx;        /* client context with the bootstrap certificate. Required. */
  const char *server_name; /* NULL: "localhost" */
  int sidecars;            /* N simulated sidecars, each with its own key and CSR */
  int channels;            /* M HTTP/2 connections they share */
  int concurrency;         /* calls in flight at once in the throughput phase */
  /* With jwks_out: each sidecar is service account csr-I in namespace "load"
   * with its own token (ES256, signed by a key made here whose JWKS is
   * written to jwks_out for xds-server --jwks-file), and asks for
   * spiffe://trust_domain/ns/load/sa/csr-I. Without: every CSR asks for
   * `spiffe_id`, the bootstrap certificate's (run the server with
   * --csr-rate-limit 0). */
  const char *jwks_out;
  const char *token_issuer;
  const char *token_audience;
  const char *trust_domain;
  const char *spiffe_id;
  const char *server_pid; /* NULL: no CPU figure */
  uint64_t timeout_ms;
} ms_csr_bench_options;

/* ms_csr_bench_run makes every sidecar's key and CSR (timed apart), opens the
 * channels, measures one round trip (the median of 100 sequential calls),
 * then has every sidecar ask once and measures the time until all are
 * answered, signings per second, and the server's CPU per signing; prints
 * each figure on a line of its own. Returns 0 when every call got a chain,
 * -1 otherwise (the reason printed). The loop must run afterwards to free
 * the channels. */
int ms_csr_bench_run(uv_loop_t *loop, const ms_csr_bench_options *options);

#endif
