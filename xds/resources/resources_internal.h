/* resources_internal.h (private to resources_*.c): what the decoders of
 * resources.h share. An ms_xds_decoder carries the error buffer, the
 * resource's kind and name, and the path of the field being read, so that
 * every refusal reads `cluster "orders": load_assignment.endpoints[0]...:
 * what is wrong`. */
#ifndef MS_XDS_RESOURCES_INTERNAL_H
#define MS_XDS_RESOURCES_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/config_source.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "xds/resources/resources.h"

typedef Envoy__Config__Core__V3__ConfigSource ConfigSource;
typedef Envoy__Config__Core__V3__DataSource DataSource;
typedef Envoy__Config__Core__V3__SocketAddress SocketAddress;
typedef Envoy__Config__Core__V3__Address Address;
typedef Envoy__Config__Endpoint__V3__LocalityLbEndpoints LocalityLbEndpoints;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
    CertificateValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Google__Protobuf__Duration Duration;

typedef struct ms_xds_decoder {
  char *err;
  size_t err_len;
  const char *kind; /* "cluster", "endpoints", "secret", "listener" */
  char name[160];   /* the resource's name, quoted and escaped for messages; empty: unknown */
  char path[256];   /* the field being read: "transport_socket.typed_config" */
  size_t path_len;
} ms_xds_decoder;

/* ms_xds_escape copies `text` for a message as ms_log_escape does (quotes
 * and backslashes escaped, other bytes outside printable ASCII as \xNN), so
 * that a hostile name cannot forge a message or a line; cut with "..." to
 * fit `out_len` (at least 8) bytes. */
void ms_xds_escape(const char *text, char *out, size_t out_len);

/* A buffer for ms_xds_escape that fits any reasonable type URL or host. */
#define MS_XDS_ESCAPED_LEN 160

/* ms_xds_decoder_init starts a decoder for a resource of `kind` whose name is
 * not known yet. */
void ms_xds_decoder_init(ms_xds_decoder *decoder, const char *kind, char *err, size_t err_len);

/* ms_xds_decoder_set_name records the resource's name for messages. Returns 0,
 * or -1 (with the error written) when `name` is empty. */
int ms_xds_decoder_set_name(ms_xds_decoder *decoder, const char *name);

/* ms_xds_push appends ".field" (or "field" at the start) to the path and
 * returns what to give ms_xds_pop to undo it; ms_xds_push_index appends
 * "[index]". */
size_t ms_xds_push(ms_xds_decoder *decoder, const char *field);
size_t ms_xds_push_index(ms_xds_decoder *decoder, size_t index);
void ms_xds_pop(ms_xds_decoder *decoder, size_t saved);

/* ms_xds_fail writes `kind "name": path: message` into the error buffer and
 * returns -1. */
int ms_xds_fail(ms_xds_decoder *decoder, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ms_xds_fail_field is ms_xds_fail with `field` pushed for the message. */
int ms_xds_fail_field(ms_xds_decoder *decoder, const char *field, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* ms_xds_out_of_memory reports memory exhaustion; returns -1. */
int ms_xds_out_of_memory(ms_xds_decoder *decoder);

/* ms_xds_unpack unpacks `len` bytes as a message of `descriptor` behind the
 * nesting guard (xds/proto/pb_depth.h). Returns the message (the caller frees it
 * with the type's __free_unpacked), or NULL with the error written: "N bytes
 * that are not a valid <message> message" or "<message>: message nests deeper
 * than 64 levels". */
void *ms_xds_unpack(ms_xds_decoder *decoder, const ProtobufCMessageDescriptor *descriptor,
                    const uint8_t *bytes, size_t len);

/* ms_xds_has_unknown_field: whether decoding kept field `number` as unknown,
 * that is whether the sender set a field outside our subset. */
bool ms_xds_has_unknown_field(const ProtobufCMessage *message, uint32_t number);

/* A field outside our subset that would change what its message means and
 * that the sidecar cannot honour: refused by name when a resource sets it. */
typedef struct ms_xds_refused_field {
  uint32_t number;    /* Envoy's field number */
  const char *name;   /* Envoy's field name, for the path */
  const char *reason; /* the sentence after "name: " */
} ms_xds_refused_field;

/* ms_xds_refuse_unknown_fields returns 0 when decoding kept none of the
 * `count` `fields` as unknown in `message`, else fails with the first in
 * table order: "path.name: reason". */
int ms_xds_refuse_unknown_fields(ms_xds_decoder *decoder, const ProtobufCMessage *message,
                                 const ms_xds_refused_field *fields, size_t count);

/* ms_xds_strdup copies `text` (NULL for NULL or empty when `empty_is_null`).
 * Returns 0, or -1 with the error written. */
int ms_xds_strdup(ms_xds_decoder *decoder, const char *text, bool empty_is_null, char **out);

/* ms_xds_join copies `count` strings joined with `separator` into *out (NULL
 * when count is 0). Returns 0 or -1. */
int ms_xds_join(ms_xds_decoder *decoder, char *const *strings, size_t count, char separator,
                char **out);

/* ms_xds_strings_free frees `count` strings and the array. */
void ms_xds_strings_free(char **strings, size_t count);

/* ms_xds_duration_ms converts the Duration at the current path into
 * milliseconds (rounded up, saturating at UINT32_MAX); `absent` when NULL.
 * Refuses negative or malformed durations, and zero when `positive`. */
int ms_xds_duration_ms(ms_xds_decoder *decoder, const Duration *duration, uint32_t absent,
                       bool positive, uint32_t *out_ms);

/* ms_xds_socket_address formats the Address at the current path as
 * "host:port" / "[v6]:port" and parses it into `out` (ms_address_parse).
 * Refuses a non-socket address, a named port and UDP. */
int ms_xds_socket_address(ms_xds_decoder *decoder, const Address *address, ms_address *out);

/* ms_xds_lb_endpoints appends the endpoints of `localities` (priority 0,
 * healthy, weighted) to *endpoints / *count, at the current path (pushing
 * "endpoints[i].lb_endpoints[j]"). `need_ip` refuses host names. On failure
 * the endpoints already appended stay in *endpoints for the caller to free. */
int ms_xds_lb_endpoints(ms_xds_decoder *decoder, LocalityLbEndpoints *const *localities,
                        size_t locality_count, bool need_ip, ms_xds_endpoint **endpoints,
                        size_t *count);

/* ms_xds_endpoint_array_free cleans up and frees `count` endpoints. */
void ms_xds_endpoint_array_free(ms_xds_endpoint *endpoints, size_t count);

/* ms_xds_data_source_decode reads the DataSource at the current path into
 * `out` (NONE for NULL). Refuses environment_variable and an empty filename. */
int ms_xds_data_source_decode(ms_xds_decoder *decoder, const DataSource *source,
                              ms_xds_data_source *out);
void ms_xds_data_source_cleanup(ms_xds_data_source *source);

/* ms_xds_config_source_check refuses a ConfigSource (an sds_config or
 * eds_config) other than absent, ads or self: the sidecar has one ADS
 * stream. */
int ms_xds_config_source_check(ms_xds_decoder *decoder, const ConfigSource *source);

/* ms_xds_tls_certificate_decode reads a TlsCertificate at the current path:
 * certificate_chain and private_key required, password optional. */
int ms_xds_tls_certificate_decode(ms_xds_decoder *decoder, const TlsCertificate *certificate,
                                  ms_xds_tls_certificate *out);
void ms_xds_tls_certificate_cleanup(ms_xds_tls_certificate *certificate);

/* ms_xds_wipe_tls_certificate_message wipes the key and password bytes of a
 * decoded protobuf-c TlsCertificate, before it is freed. Accepts NULL. */
void ms_xds_wipe_tls_certificate_message(TlsCertificate *certificate);

/* ms_xds_validation_context_init fills the defaults: verify on, depth 100. */
void ms_xds_validation_context_init(ms_xds_validation_context *validation);

/* ms_xds_validation_context_decode reads a CertificateValidationContext at
 * the current path. `need_trusted_ca`: verification on without trusted_ca is
 * refused. */
int ms_xds_validation_context_decode(ms_xds_decoder *decoder,
                                     const CertificateValidationContext *context,
                                     bool need_trusted_ca, ms_xds_validation_context *out);
void ms_xds_validation_context_cleanup(ms_xds_validation_context *validation);

/* ms_xds_upstream_tls_decode reads a cluster's transport_socket (NULL:
 * plaintext) at the current path. */
int ms_xds_upstream_tls_decode(ms_xds_decoder *decoder,
                               const Envoy__Config__Core__V3__TransportSocket *socket,
                               ms_xds_upstream_tls *out);
void ms_xds_upstream_tls_cleanup(ms_xds_upstream_tls *tls);

/* ms_xds_http_connection_manager_decode reads the `len` bytes of an
 * HttpConnectionManager (a listener filter's typed_config value), at the
 * current path, into out's protocol (HTTP), cluster, routes and
 * request_timeout_ms (resources_http.c). On failure what it made so far stays
 * in `out` for ms_xds_listener_cleanup. */
int ms_xds_http_connection_manager_decode(ms_xds_decoder *decoder, const uint8_t *bytes, size_t len,
                                          ms_xds_listener *out);

/* ms_xds_type_name returns what follows the last '/' of a type URL (the
 * message's full name), the part Envoy selects an extension by. */
const char *ms_xds_type_name(const char *type_url);

#endif /* MS_XDS_RESOURCES_INTERNAL_H */
