/* config_http.h: the HTTP keys of listeners ("http") and clusters
 * ("host_header", "http_pool", "retries"), for config.c's key tables.
 * Private to the config library. */
#ifndef MS_CONFIG_HTTP_H
#define MS_CONFIG_HTTP_H

#include <cjson/cJSON.h>

#include "sidecar/config/config.h"
#include "sidecar/config/config_schema.h"

/* ms_config_http_listener_init fills the defaults of a listener's "http"
 * (nothing to free). */
void ms_config_http_listener_init(ms_http_listener_config *http);
/* ms_config_parse_http_listener is the parser of a listener's "http"; `field`
 * is an ms_http_listener_config. validate_listeners checks the routes'
 * clusters once every cluster is known. */
void ms_config_parse_http_listener(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                   void *field);
/* ms_config_http_listener_cleanup releases the routes and the access log. */
void ms_config_http_listener_cleanup(ms_http_listener_config *http);
/* ms_config_http_cluster_init fills the defaults of a cluster's
 * host_header, http_pool and retries (nothing to free). */
void ms_config_http_cluster_init(ms_cluster_config *cluster);
/* Parsers of a cluster's "host_header" (char *), "http_pool"
 * (ms_http_pool_config) and "retries" (ms_http_retry_config). */
void ms_config_parse_host_header(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                 void *field);
void ms_config_parse_http_pool(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                               void *field);
void ms_config_parse_http_retries(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                  void *field);

#endif
