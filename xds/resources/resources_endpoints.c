/* resources_endpoints.c: ClusterLoadAssignment (EDS) into ms_xds_endpoints,
 * and the lb_endpoints reader a Cluster's load_assignment shares. */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment ClusterLoadAssignment;
typedef Envoy__Config__Endpoint__V3__LbEndpoint LbEndpoint;

/* The weights the sidecar's balancer takes: 1..1000. */
#define MAX_WEIGHT 1000

/* Envoy sends no new connections to these. DEGRADED hosts are kept: Envoy
 * still uses them, after healthy ones. */
static bool is_serving(Envoy__Config__Core__V3__HealthStatus status) {
  return status != ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNHEALTHY &&
         status != ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__DRAINING &&
         status != ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__TIMEOUT;
}

void ms_xds_endpoint_array_free(ms_xds_endpoint *endpoints, size_t count) {
  if (endpoints == NULL) return;
  for (size_t i = 0; i < count; i++)
    ms_address_cleanup(&endpoints[i].address);
  free(endpoints);
}

/* lb_endpoint reads one LbEndpoint at the current path into `out`. */
static int lb_endpoint(ms_xds_decoder *decoder, const LbEndpoint *lb, bool need_ip,
                       ms_xds_endpoint *out) {
  memset(out, 0, sizeof(*out));
  if (lb->host_identifier_case !=
      ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT) {
    return ms_xds_fail_field(decoder, "endpoint",
                             "required (endpoint_name references are not supported)");
  }
  uint32_t weight = 1;
  if (lb->load_balancing_weight != NULL) {
    weight = lb->load_balancing_weight->value;
    if (weight < 1 || weight > MAX_WEIGHT) {
      return ms_xds_fail_field(decoder, "load_balancing_weight", "%u is out of range 1..%d", weight,
                               MAX_WEIGHT);
    }
  }
  size_t saved = ms_xds_push(decoder, "endpoint.address");
  int rc = ms_xds_socket_address(decoder, lb->endpoint->address, &out->address);
  if (rc == 0 && need_ip && !out->address.host_is_ip) {
    char host[MS_XDS_ESCAPED_LEN];
    ms_xds_escape(out->address.host, host, sizeof(host));
    ms_xds_fail(decoder,
                "\"%s\" is not an IP address; a STATIC cluster needs IP addresses (use "
                "STRICT_DNS for host names)",
                host);
    ms_address_cleanup(&out->address);
    rc = -1;
  }
  ms_xds_pop(decoder, saved);
  out->weight = weight;
  return rc;
}

int ms_xds_lb_endpoints(ms_xds_decoder *decoder, LocalityLbEndpoints *const *localities,
                        size_t locality_count, bool need_ip, ms_xds_endpoint **endpoints,
                        size_t *count) {
  size_t total = *count;
  for (size_t i = 0; i < locality_count; i++) {
    if (localities[i]->priority == 0) total += localities[i]->n_lb_endpoints;
  }
  if (total == *count) return 0;
  ms_xds_endpoint *grown = realloc(*endpoints, total * sizeof(*grown));
  if (grown == NULL) return ms_xds_out_of_memory(decoder);
  *endpoints = grown;
  for (size_t i = 0; i < locality_count; i++) {
    const LocalityLbEndpoints *locality = localities[i];
    /* Priority 0 only: the sidecar has no priority failover (Envoy moves
     * traffic to priority 1 only when priority 0 is unhealthy). */
    if (locality->priority != 0) continue;
    size_t saved = ms_xds_push(decoder, "endpoints");
    ms_xds_push_index(decoder, i);
    for (size_t j = 0; j < locality->n_lb_endpoints; j++) {
      const LbEndpoint *lb = locality->lb_endpoints[j];
      if (!is_serving(lb->health_status)) continue;
      size_t saved_endpoint = ms_xds_push(decoder, "lb_endpoints");
      ms_xds_push_index(decoder, j);
      int rc = lb_endpoint(decoder, lb, need_ip, &grown[*count]);
      ms_xds_pop(decoder, saved_endpoint);
      if (rc != 0) {
        ms_xds_pop(decoder, saved);
        return -1;
      }
      (*count)++;
    }
    ms_xds_pop(decoder, saved);
  }
  return 0;
}

int ms_xds_endpoints_decode(const uint8_t *bytes, size_t len, ms_xds_endpoints *out, char *err,
                            size_t err_len) {
  ms_xds_decoder decoder;
  ms_xds_decoder_init(&decoder, "endpoints", err, err_len);
  ClusterLoadAssignment *message = ms_xds_unpack(
      &decoder, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor, bytes, len);
  if (message == NULL) return -1;
  ms_xds_endpoints result;
  memset(&result, 0, sizeof(result));
  int rc = -1;
  if (ms_xds_decoder_set_name(&decoder, message->cluster_name) == 0 &&
      ms_xds_strdup(&decoder, message->cluster_name, false, &result.cluster_name) == 0 &&
      ms_xds_lb_endpoints(&decoder, message->endpoints, message->n_endpoints, false,
                          &result.endpoints, &result.endpoint_count) == 0) {
    rc = 0;
  }
  envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(message, NULL);
  if (rc != 0) {
    ms_xds_endpoints_cleanup(&result);
    return -1;
  }
  *out = result;
  return 0;
}

void ms_xds_endpoints_cleanup(ms_xds_endpoints *endpoints) {
  free(endpoints->cluster_name);
  ms_xds_endpoint_array_free(endpoints->endpoints, endpoints->endpoint_count);
  memset(endpoints, 0, sizeof(*endpoints));
}
