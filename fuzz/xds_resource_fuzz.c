/* xds_resource_fuzz.c: one xDS resource from the control plane's bytes
 * (ms_xds_resource_decode, xds/resources/resources.h): the nesting guard, protobuf-c's
 * unpack, and the checks of a Cluster (with its UpstreamTlsContext), a
 * ClusterLoadAssignment, a Secret or a Listener (TcpProxy or
 * HttpConnectionManager with its routes) into the sidecar's structs.
 *
 * Input: a byte choosing the kind (its value modulo 4, in ms_xds_kind's
 * order: cluster, endpoints, secret, listener), then the serialized resource.
 * A decoded resource has a name; a refusal has a message. */
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "xds/resources/resources.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  ms_xds_kind kind = (ms_xds_kind)(fuzz_take_byte(&in) % 4);
  ms_xds_resource resource;
  char err[512] = "";
  if (ms_xds_resource_decode(kind, in.data, in.len, &resource, err, sizeof(err)) == 0) {
    FUZZ_CHECK(resource.kind == kind);
    FUZZ_CHECK(ms_xds_resource_name(&resource) != NULL);
    ms_xds_resource_cleanup(&resource);
  } else {
    FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
  }
  return 0;
}
