/* resources_common_test.c: any resource from a google.protobuf.Any
 * (ms_xds_resource_decode_any, xds/resources/resources.h): kinds and type URLs, the
 * expected type against the Any's, a type this sidecar does not decode.
 *
 * The first failed check ends the process with status 1. */
#include <stdio.h>
#include <stdlib.h>

#include "xds/resources/resources_test_util.h"

static void test_any(void) {
  ms_xds_kind kind;
  CHECK_INT(ms_xds_kind_from_type_url(MS_XDS_TYPE_URL_SECRET, &kind), 0);
  CHECK_INT(kind, MS_XDS_KIND_SECRET);
  CHECK_INT(ms_xds_kind_from_type_url(MS_XDS_TYPE_URL_TCP_PROXY, &kind), -1);
  CHECK_STR(ms_xds_kind_type_url(MS_XDS_KIND_ENDPOINTS), MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT);
  CHECK_STR(ms_xds_kind_name(MS_XDS_KIND_LISTENER), "listener");

  listener_fixture f;
  listener_fixture_init(&f);
  listener_fixture_pack(&f);
  size_t len;
  uint8_t *bytes = pack(&f.listener, &len);
  Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = MS_XDS_TYPE_URL_LISTENER;
  any.value.data = bytes;
  any.value.len = len;
  ms_xds_resource resource;
  char err[MS_ERR_LEN] = "";
  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_LISTENER, &resource, err, sizeof(err)),
            0);
  CHECK_INT(resource.kind, MS_XDS_KIND_LISTENER);
  CHECK_STR(ms_xds_resource_name(&resource), "out");
  CHECK_STR(resource.as.listener.cluster, "orders");
  ms_xds_resource_cleanup(&resource);

  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_CLUSTER, &resource, err, sizeof(err)),
            -1);
  CHECK_STR(err,
            "cluster: type_url: expected type.googleapis.com/envoy.config.cluster.v3.Cluster, "
            "got type.googleapis.com/envoy.config.listener.v3.Listener");
  any.type_url = "";
  CHECK_INT(ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_LISTENER, &resource, err, sizeof(err)),
            -1);
  CHECK_STR(err,
            "listener: type_url: expected type.googleapis.com/envoy.config.listener.v3."
            "Listener, got nothing");
  CHECK_INT(
      ms_xds_resource_decode_any(&any, MS_XDS_TYPE_URL_TCP_PROXY, &resource, err, sizeof(err)), -1);
  CHECK_STR(err,
            "resource: type type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3."
            "TcpProxy is not one this sidecar decodes");
  free(bytes);
  free(f.proxy_bytes);
}

int main(void) {
  test_any();
  printf("resources_common: ok\n");
  return 0;
}
