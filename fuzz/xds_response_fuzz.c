/* xds_response_fuzz.c: a whole DiscoveryResponse, as the sidecar's ADS
 * client takes it (xds/ads/ads_client.c on_message, then sidecar/xds/xds_source.c):
 * unpacked behind the nesting guard, its type_url mapped to a kind, every
 * resource (an Any) decoded and put in force in the xDS state
 * (ms_xds_state_update: unique names, EDS and SDS names wanted by clusters),
 * the state cloned (decoded again from the bytes it keeps), and the result
 * rendered into the sidecar's own JSON configuration and loaded by
 * ms_config_parse, as a configuration the data plane would run. A render
 * that the configuration loader refuses is allowed (the sidecar NACKs
 * then); a crash, leak or a render that is not JSON is not. */
#include <cjson/cJSON.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "fuzz/fuzz_util.h"
#include "sidecar/config/config.h"
#include "sidecar/xds/xds_state.h"
#include "xds/proto/pb_depth.h"

static const char static_json[] =
    "{\"listeners\": [], \"clusters\": [], "
    "\"xds\": {\"address\": \"127.0.0.1:15010\", \"node_id\": \"fuzz\", \"cluster\": \"fuzz\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  Envoy__Service__Discovery__V3__DiscoveryResponse *response = (void *)ms_pb_unpack_guarded(
      &envoy__service__discovery__v3__discovery_response__descriptor, data, size, err, sizeof(err));
  if (response == NULL) return 0;
  ms_xds_kind kind;
  if (ms_xds_kind_from_type_url(response->type_url, &kind) != 0) {
    envoy__service__discovery__v3__discovery_response__free_unpacked(response, NULL);
    return 0;
  }
  ms_xds_state *state = ms_xds_state_new();
  FUZZ_CHECK(state != NULL);
  if (ms_xds_state_update(state, kind, (const Google__Protobuf__Any *const *)response->resources,
                          response->n_resources, err, sizeof(err)) == 0) {
    ms_xds_state *clone = ms_xds_state_clone(state);
    FUZZ_CHECK(clone != NULL);
    size_t clusters, warming, listeners;
    ms_xds_state_counts(clone, &clusters, &warming, &listeners);
    size_t count;
    free(ms_xds_state_wanted(clone, MS_XDS_KIND_ENDPOINTS, &count));
    free(ms_xds_state_wanted(clone, MS_XDS_KIND_SECRET, &count));
    char *rendered = ms_xds_state_render(clone, static_json, NULL, NULL, err, sizeof(err));
    if (rendered != NULL) {
      cJSON *parsed = cJSON_Parse(rendered);
      FUZZ_CHECK(parsed != NULL);
      cJSON_Delete(parsed);
      ms_config *config = NULL;
      ms_config_errors errors;
      if (ms_config_parse(rendered, "/etc/mtls-sidecar/sidecar.json", &config, &errors) == 0)
        ms_config_free(config);
      ms_config_errors_cleanup(&errors);
      free(rendered);
    }
    ms_xds_state_free(clone);
  } else {
    FUZZ_CHECK(err[0] != '\0');
  }
  ms_xds_state_free(state);
  envoy__service__discovery__v3__discovery_response__free_unpacked(response, NULL);
  return 0;
}
