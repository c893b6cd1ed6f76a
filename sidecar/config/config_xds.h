/* config_xds.h (private to the config parser): the "xds" section, which
 * names the control plane and how the sidecar presents itself to it. */
#ifndef MS_CONFIG_XDS_H
#define MS_CONFIG_XDS_H

#include "sidecar/config/config.h"
#include "sidecar/config/config_schema.h"

/* ms_config_xds_init fills the defaults (nothing to free). */
void ms_config_xds_init(ms_xds_bootstrap *xds);

/* ms_config_parse_xds is the ms_schema_key parser of "xds"; `field` is an
 * ms_xds_bootstrap. */
void ms_config_parse_xds(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field);

/* ms_config_xds_cleanup releases what the parser allocated. */
void ms_config_xds_cleanup(ms_xds_bootstrap *xds);

/* From config.c: "host:port", host names allowed. */
void ms_config_parse_upstream_address(ms_schema *schema, const cJSON *value,
                                      const ms_schema_key *key, void *field);

#endif
