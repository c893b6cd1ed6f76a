/* xds_state_internal.h: the state's insides, shared by xds_state.c (the
 * resources held and their updates) and xds_render.c (the configuration
 * they make). Private to those two files. */
#ifndef MS_XDS_STATE_INTERNAL_H
#define MS_XDS_STATE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "sidecar/xds/xds_state.h"
#include "xds/resources/resources.h"

typedef struct held_cluster {
  ms_xds_cluster cluster;
  uint64_t since_ms; /* when it was first seen (set by expire_warming); 0: not yet */
  bool timed_out;    /* still not live when its initial fetch timeout passed */
} held_cluster;

/* The accepted resources as they came (type URL and bytes), per kind, so a
 * state can be cloned by decoding them again (see ms_xds_state_clone). */
typedef struct raw_list {
  Google__Protobuf__Any **items;
  char **names;
  size_t count;
} raw_list;

struct ms_xds_state {
  raw_list raw[4]; /* by ms_xds_kind */
  held_cluster *clusters;
  size_t cluster_count;
  ms_xds_listener *listeners;
  size_t listener_count;
  ms_xds_endpoints *endpoints;
  size_t endpoint_count;
  ms_xds_secret *secrets;
  size_t secret_count;
  char *local_secrets[2]; /* names the identity agent answers; NULL: none */
};

/* ms_xds_state_is_local: `name` is a secret of the identity agent. */
bool ms_xds_state_is_local(const ms_xds_state *state, const char *name);

/* ms_xds_state_find_endpoints returns the EDS answer for `name`, or NULL. */
const ms_xds_endpoints *ms_xds_state_find_endpoints(const ms_xds_state *state, const char *name);

/* ms_xds_state_find_secret returns the secret `name` of `kind`, or NULL. */
const ms_xds_secret *ms_xds_state_find_secret(const ms_xds_state *state, const char *name,
                                              ms_xds_secret_kind kind);

/* ms_xds_needs_validation_secret: the cluster's trust comes (at least in
 * part) from SDS. */
bool ms_xds_needs_validation_secret(const ms_xds_upstream_tls *tls);

/* ms_xds_state_is_live: the cluster's secrets and (EDS) at least one
 * endpoint are here. */
bool ms_xds_state_is_live(const ms_xds_state *state, const held_cluster *held);

#endif
