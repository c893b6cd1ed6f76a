/* config_tls.h (private to config.c): a cluster's "tls" object, parsed into
 * ms_cluster_tls_config and the ms_tls_settings the TLS layer builds its
 * context from. */
#ifndef MS_CONFIG_TLS_H
#define MS_CONFIG_TLS_H

#include "sidecar/config/config.h"
#include "sidecar/config/config_schema.h"

/* ms_config_tls_init fills the defaults that need no memory: verify on,
 * verify_depth 4, SNI on, TLS 1.2 to 1.3, session reuse on. */
void ms_config_tls_init(ms_cluster_tls_config *tls);

/* ms_config_parse_tls is the ms_schema_key parser of "tls"; `field` is an
 * ms_cluster_tls_config. Checks the keys against each other too (verify
 * needs trusted_ca, certificate and private_key go together). */
void ms_config_parse_tls(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field);

/* ms_config_tls_finish fills the defaults that need memory (the protocols
 * list) once parsing is done. */
void ms_config_tls_finish(ms_schema *schema, ms_cluster_tls_config *tls);

/* ms_config_tls_cleanup releases every string `tls` and its settings own. */
void ms_config_tls_cleanup(ms_cluster_tls_config *tls);

#endif
