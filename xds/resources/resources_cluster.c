/* resources_cluster.c: Cluster (CDS) into ms_xds_cluster. The transport
 * socket is resources_tls.c's, the load_assignment's endpoints
 * resources_endpoints.c's. */
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "xds/resources/resources_internal.h"

typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Cluster__V3__OutlierDetection OutlierDetection;

/* Cluster field number of cluster_type (a custom cluster), outside our
 * subset: it shares the oneof with `type`. */
#define CLUSTER_CLUSTER_TYPE 38

/* Envoy's defaults. */
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_DNS_REFRESH_MS 5000
#define DEFAULT_CONSECUTIVE_FAILURES 5
#define DEFAULT_BASE_EJECTION_MS 30000
#define DEFAULT_MAX_EJECTION_MS 300000

static int discovery_type(ms_xds_decoder *decoder, const Cluster *cluster,
                          ms_xds_discovery_type *out) {
  if (cluster->cluster_discovery_type_case ==
      ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE__NOT_SET) {
    if (ms_xds_has_unknown_field(&cluster->base, CLUSTER_CLUSTER_TYPE)) {
      return ms_xds_fail_field(decoder, "cluster_type",
                               "custom cluster types are not supported; use type STATIC, "
                               "STRICT_DNS, LOGICAL_DNS or EDS");
    }
    *out = MS_XDS_DISCOVERY_STATIC; /* Envoy's default */
    return 0;
  }
  switch (cluster->type) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
      *out = MS_XDS_DISCOVERY_STATIC;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS:
      *out = MS_XDS_DISCOVERY_DNS;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS:
      *out = MS_XDS_DISCOVERY_EDS;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST:
      return ms_xds_fail_field(decoder, "type",
                               "ORIGINAL_DST is not supported; use STATIC, STRICT_DNS, "
                               "LOGICAL_DNS or EDS");
    default:
      return ms_xds_fail_field(decoder, "type",
                               "unknown value %d; use STATIC, STRICT_DNS, LOGICAL_DNS or EDS",
                               (int)cluster->type);
  }
}

static int lb_policy(ms_xds_decoder *decoder, const Cluster *cluster, ms_xds_lb_policy *out) {
  static const char *const names[] = {
      [ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH] = "RING_HASH",
      [ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV] = "MAGLEV",
      [ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED] = "CLUSTER_PROVIDED",
      [ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LOAD_BALANCING_POLICY_CONFIG] =
          "LOAD_BALANCING_POLICY_CONFIG",
  };
  switch (cluster->lb_policy) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
      *out = MS_XDS_LB_ROUND_ROBIN;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
      *out = MS_XDS_LB_LEAST_REQUEST;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
      *out = MS_XDS_LB_RANDOM;
      return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LOAD_BALANCING_POLICY_CONFIG:
      return ms_xds_fail_field(decoder, "lb_policy",
                               "%s is not supported; use ROUND_ROBIN, LEAST_REQUEST or RANDOM",
                               names[cluster->lb_policy]);
    default:
      return ms_xds_fail_field(decoder, "lb_policy",
                               "unknown value %d; use ROUND_ROBIN, LEAST_REQUEST or RANDOM",
                               (int)cluster->lb_policy);
  }
}

/* outlier_detection: the sidecar counts consecutive failures to connect or
 * handshake, which Envoy calls local-origin failures; without
 * split_external_local_origin_errors Envoy counts them as 5xx. So the
 * threshold is consecutive_local_origin_failure when set, else
 * consecutive_5xx, else consecutive_gateway_failure, else Envoy's 5. */
static int outlier_detection(ms_xds_decoder *decoder, const OutlierDetection *outlier,
                             ms_xds_outlier_detection *out) {
  out->consecutive_failures = 0; /* no outlier_detection: Envoy ejects nothing */
  out->base_ejection_ms = DEFAULT_BASE_EJECTION_MS;
  out->max_ejection_ms = DEFAULT_MAX_EJECTION_MS;
  if (outlier == NULL) return 0;
  size_t saved = ms_xds_push(decoder, "outlier_detection");
  int rc = -1;
  if (outlier->consecutive_local_origin_failure != NULL) {
    out->consecutive_failures = outlier->consecutive_local_origin_failure->value;
  } else if (outlier->consecutive_5xx != NULL) {
    out->consecutive_failures = outlier->consecutive_5xx->value;
  } else if (outlier->consecutive_gateway_failure != NULL) {
    out->consecutive_failures = outlier->consecutive_gateway_failure->value;
  } else {
    out->consecutive_failures = DEFAULT_CONSECUTIVE_FAILURES;
  }
  size_t saved_field = ms_xds_push(decoder, "base_ejection_time");
  rc = ms_xds_duration_ms(decoder, outlier->base_ejection_time, DEFAULT_BASE_EJECTION_MS, true,
                          &out->base_ejection_ms);
  ms_xds_pop(decoder, saved_field);
  if (rc == 0) {
    saved_field = ms_xds_push(decoder, "max_ejection_time");
    rc = ms_xds_duration_ms(decoder, outlier->max_ejection_time, DEFAULT_MAX_EJECTION_MS, true,
                            &out->max_ejection_ms);
    if (rc == 0 && out->max_ejection_ms < out->base_ejection_ms) {
      rc = ms_xds_fail(decoder, "must not be shorter than base_ejection_time");
    }
    ms_xds_pop(decoder, saved_field);
  }
  ms_xds_pop(decoder, saved);
  return rc;
}

static int eds_service_name(ms_xds_decoder *decoder, const Cluster *cluster, char **out) {
  const char *name = cluster->name;
  if (cluster->eds_cluster_config != NULL) {
    size_t saved = ms_xds_push(decoder, "eds_cluster_config.eds_config");
    int rc = ms_xds_config_source_check(decoder, cluster->eds_cluster_config->eds_config);
    ms_xds_pop(decoder, saved);
    if (rc != 0) return -1;
    if (cluster->eds_cluster_config->service_name[0] != '\0') {
      name = cluster->eds_cluster_config->service_name;
    }
  }
  return ms_xds_strdup(decoder, name, false, out);
}

static int decode(ms_xds_decoder *decoder, const Cluster *cluster, ms_xds_cluster *out) {
  if (ms_xds_decoder_set_name(decoder, cluster->name) != 0 ||
      ms_xds_strdup(decoder, cluster->name, false, &out->name) != 0 ||
      discovery_type(decoder, cluster, &out->type) != 0 ||
      lb_policy(decoder, cluster, &out->lb_policy) != 0 ||
      outlier_detection(decoder, cluster->outlier_detection, &out->outlier_detection) != 0) {
    return -1;
  }
  size_t saved = ms_xds_push(decoder, "connect_timeout");
  int rc = ms_xds_duration_ms(decoder, cluster->connect_timeout, DEFAULT_CONNECT_TIMEOUT_MS, true,
                              &out->connect_timeout_ms);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;
  saved = ms_xds_push(decoder, "dns_refresh_rate");
  rc = ms_xds_duration_ms(decoder, cluster->dns_refresh_rate, DEFAULT_DNS_REFRESH_MS, true,
                          &out->dns_refresh_ms);
  ms_xds_pop(decoder, saved);
  if (rc != 0) return -1;

  if (out->type == MS_XDS_DISCOVERY_EDS) {
    /* Envoy ignores load_assignment in an EDS cluster; so do we. */
    if (eds_service_name(decoder, cluster, &out->eds_service_name) != 0) return -1;
  } else if (cluster->load_assignment != NULL) {
    saved = ms_xds_push(decoder, "load_assignment");
    rc = ms_xds_lb_endpoints(
        decoder, cluster->load_assignment->endpoints, cluster->load_assignment->n_endpoints,
        out->type == MS_XDS_DISCOVERY_STATIC, &out->endpoints, &out->endpoint_count);
    ms_xds_pop(decoder, saved);
    if (rc != 0) return -1;
  }

  saved = ms_xds_push(decoder, "transport_socket");
  rc = ms_xds_upstream_tls_decode(decoder, cluster->transport_socket, &out->tls);
  ms_xds_pop(decoder, saved);
  return rc;
}

int ms_xds_cluster_decode(const uint8_t *bytes, size_t len, ms_xds_cluster *out, char *err,
                          size_t err_len) {
  ms_xds_decoder decoder;
  ms_xds_decoder_init(&decoder, "cluster", err, err_len);
  Cluster *message =
      ms_xds_unpack(&decoder, &envoy__config__cluster__v3__cluster__descriptor, bytes, len);
  if (message == NULL) return -1;
  ms_xds_cluster result;
  memset(&result, 0, sizeof(result));
  int rc = decode(&decoder, message, &result);
  /* The UpstreamTlsContext's bytes may hold an inline private key. */
  if (message->transport_socket != NULL && message->transport_socket->typed_config != NULL) {
    ProtobufCBinaryData *value = &message->transport_socket->typed_config->value;
    if (value->data != NULL) OPENSSL_cleanse(value->data, value->len);
  }
  envoy__config__cluster__v3__cluster__free_unpacked(message, NULL);
  if (rc != 0) {
    ms_xds_cluster_cleanup(&result);
    return -1;
  }
  *out = result;
  return 0;
}

void ms_xds_cluster_cleanup(ms_xds_cluster *cluster) {
  free(cluster->name);
  free(cluster->eds_service_name);
  ms_xds_endpoint_array_free(cluster->endpoints, cluster->endpoint_count);
  ms_xds_upstream_tls_cleanup(&cluster->tls);
  memset(cluster, 0, sizeof(*cluster));
}
