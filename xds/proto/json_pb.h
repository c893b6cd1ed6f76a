/* json_pb.h: protobuf messages from their proto3 JSON form, for any message
 * protobuf-c compiled, driven by its ProtobufCMessageDescriptor. It is how
 * xds-server reads the operator's files: Envoy's own resource JSON, as in
 * Envoy's documentation, pasted as is.
 *
 * What the proto3 JSON mapping says, and what is accepted here:
 * - field names as in the .proto (snake_case) or in lowerCamelCase;
 * - null for any field: the field is left unset;
 * - strings; bools; numbers for every integer type, and decimal strings too
 *   (the form of 64-bit integers); floats as numbers or "NaN", "Infinity",
 *   "-Infinity"; bytes as base64 (standard or URL-safe, padding optional);
 * - enums by value name ("STRICT_DNS") or number;
 * - repeated fields as arrays, maps as objects, oneofs (two members of one
 *   oneof is an error);
 * - google.protobuf.Any as {"@type": "type.googleapis.com/NAME", fields...}
 *   (or {"@type": ..., "value": ...} for a well-known type with a special
 *   form), the type resolved with a resolver (below), packed into the Any;
 * - google.protobuf.Duration as "1.5s", "-2s", "0.000001s";
 * - the wrappers (UInt32Value, BoolValue, StringValue, ...) as plain values;
 * - google.protobuf.Struct, Value, ListValue as any JSON; Empty as {}.
 * google.protobuf.Timestamp and FieldMask are not supported (an error says
 * so). A member that is not a field of the message is an error.
 *
 * Errors are one line: the JSON path of the offending value, then what is
 * wrong, e.g.
 *   resources[0].connect_timeout: "5 s" is not a duration (like "5s" or "0.25s")
 *   resources[1].lb_policy: "FASTEST" is not a value of envoy.config.cluster.v3.Cluster.LbPolicy
 *   resources[2].typo: no field "typo" in envoy.config.cluster.v3.Cluster
 */
#ifndef MS_JSON_PB_H
#define MS_JSON_PB_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

/* Finds the message type a "@type" URL names ("type.googleapis.com/" and the
 * message's full name; only the part after the last '/' is looked at).
 * Returns NULL for a type it does not know. */
typedef const ProtobufCMessageDescriptor *(*ms_json_pb_resolver)(const char *type_url);

/* ms_json_pb_envoy_resolver knows every message of //xds/proto:envoy_proto (Envoy's
 * subset and the well-known types): the resolver xds-server uses. */
const ProtobufCMessageDescriptor *ms_json_pb_envoy_resolver(const char *type_url);

/* ms_json_pb_parse converts `json` into a new message of type `descriptor`.
 * `path` names `json` in error messages ("resources[0]"; NULL or "" for the
 * top); `resolver` resolves Any's "@type" (NULL: ms_json_pb_envoy_resolver).
 * Returns 0 and sets *out_message (the caller frees it with
 * protobuf_c_message_free_unpacked(message, NULL)), or -1 with one line in
 * `err` (at most err_len bytes, NUL-terminated) and *out_message untouched. */
int ms_json_pb_parse(const cJSON *json, const ProtobufCMessageDescriptor *descriptor,
                     const char *path, ms_json_pb_resolver resolver, ProtobufCMessage **out_message,
                     char *err, size_t err_len);

/* ms_json_pb_parse_any converts `json`, an object with "@type", into the
 * message it names, like ms_json_pb_parse. Returns 0 and sets *out_message
 * (freed as above) or -1 with the reason in `err` (an unknown or missing
 * "@type" included). */
int ms_json_pb_parse_any(const cJSON *json, const char *path, ms_json_pb_resolver resolver,
                         ProtobufCMessage **out_message, char *err, size_t err_len);

#endif
