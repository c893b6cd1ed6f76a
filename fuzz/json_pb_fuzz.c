/* json_pb_fuzz.c: protobuf messages from proto3 JSON (xds/proto/json_pb.h), how
 * xds-server reads the operator's resource files: cJSON's parse, then
 * ms_json_pb_parse_any (a resource with "@type", as server_files.c reads
 * one) or ms_json_pb_parse into a chosen message type.
 *
 * The property checked: a message json_pb made packs, and the packed bytes
 * unpack again behind the nesting guard (what a sidecar does with them),
 * unless they nest deeper than the guard allows.
 *
 * Input: a byte choosing the entry (any resource, DiscoveryResponse,
 * Cluster, Listener, ClusterLoadAssignment, Secret), then the JSON text. */
#include <cjson/cJSON.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "fuzz/fuzz_util.h"
#include "xds/proto/json_pb.h"
#include "xds/proto/pb_depth.h"

static const ProtobufCMessageDescriptor *const descriptors[] = {
    NULL, /* ms_json_pb_parse_any */
    &envoy__service__discovery__v3__discovery_response__descriptor,
    &envoy__config__cluster__v3__cluster__descriptor,
    &envoy__config__listener__v3__listener__descriptor,
    &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  const ProtobufCMessageDescriptor *descriptor =
      descriptors[fuzz_take_byte(&in) % (sizeof(descriptors) / sizeof(descriptors[0]))];
  cJSON *json = cJSON_ParseWithLength((const char *)in.data, in.len);
  if (json == NULL) return 0;
  ProtobufCMessage *message = NULL;
  char err[512] = "";
  int rc = descriptor == NULL
               ? ms_json_pb_parse_any(json, "resources[0]", NULL, &message, err, sizeof(err))
               : ms_json_pb_parse(json, descriptor, "", NULL, &message, err, sizeof(err));
  cJSON_Delete(json);
  if (rc != 0) {
    FUZZ_CHECK(message == NULL && err[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(message != NULL);
  size_t len = protobuf_c_message_get_packed_size(message);
  uint8_t *packed = malloc(len > 0 ? len : 1);
  FUZZ_CHECK(packed != NULL);
  FUZZ_CHECK(protobuf_c_message_pack(message, packed) == len);
  ProtobufCMessage *again =
      ms_pb_unpack_guarded(message->descriptor, packed, len, err, sizeof(err));
  if (again == NULL) {
    if (ms_pb_check_depth(message->descriptor, packed, len) != MS_PB_TOO_DEEP) {
      fprintf(stderr, "json_pb made a %s that does not unpack: %s\n", message->descriptor->name,
              err);
      FUZZ_CHECK(0);
    }
  } else {
    FUZZ_CHECK(protobuf_c_message_get_packed_size(again) == len);
    protobuf_c_message_free_unpacked(again, NULL);
  }
  free(packed);
  protobuf_c_message_free_unpacked(message, NULL);
  return 0;
}
