/* config_identity.h (private to the config parser): the "identity" section,
 * the sidecar as its own identity agent (sidecar/identity/identity.h). */
#ifndef MS_CONFIG_IDENTITY_H
#define MS_CONFIG_IDENTITY_H

#include "sidecar/config/config.h"
#include "sidecar/config/config_schema.h"

/* ms_config_identity_init fills the defaults that need no memory. */
void ms_config_identity_init(ms_identity_config *identity);

/* ms_config_parse_identity is the ms_schema_key parser of "identity";
 * `field` is an ms_identity_config. */
void ms_config_parse_identity(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                              void *field);

/* ms_config_identity_finish fills the defaults that need memory and checks
 * the section against the rest of `config` (a CA to ask: ca_address and tls,
 * or an xds section to borrow them from). */
void ms_config_identity_finish(ms_schema *schema, ms_config *config);

/* ms_config_identity_cleanup releases what the parser allocated. */
void ms_config_identity_cleanup(ms_identity_config *identity);

#endif
