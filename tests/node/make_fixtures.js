'use strict';
// make_fixtures.js DIR: writes xDS resources encoded with Envoy's own .proto
// files into DIR, one binary protobuf per file, for our C decoder to read
// (xds/proto/xds_proto_test.c checks the values written here). Each resource also
// sets fields that our subset (xds/proto) leaves out, marked "outside" below:
// a decoder that follows protobuf's rules skips them and still reads the rest.
//
//   node tests/node/make_fixtures.js /tmp/fixtures
//
// Files: cluster_dns.pb, cluster_eds.pb (Cluster), endpoints.pb
// (ClusterLoadAssignment), listener.pb (Listener with a TcpProxy filter),
// secret_cert.pb, secret_ca.pb (Secret), response_{cds,eds,lds,sds}.pb
// (DiscoveryResponse wrapping the above in Any), request_nack.pb
// (DiscoveryRequest as an Envoy would send to reject an update).

const fs = require('fs');
const path = require('path');
const envoy = require('./envoy_protos');

// Not real keys or certificates: the bytes only need to survive the trip.
const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfixture-client-certificate\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nMIGHfixture-client-key\n-----END PRIVATE KEY-----\n';
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfixture-mesh-ca\n-----END CERTIFICATE-----\n';
const CRL_PEM = '-----BEGIN X509 CRL-----\nMIIBfixture-crl\n-----END X509 CRL-----\n';

const ADS_V3 = {ads: {}, resource_api_version: 'V3'};

const upstreamTlsWithFiles = {
  common_tls_context: {
    tls_params: {
      tls_minimum_protocol_version: 'TLSv1_2',
      tls_maximum_protocol_version: 'TLSv1_3',
      cipher_suites: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'],
      ecdh_curves: ['X25519', 'P-256'],
      signature_algorithms: ['ecdsa_secp256r1_sha256'], // outside
    },
    tls_certificates: [
      {
        certificate_chain: {filename: '/etc/sidecar/client.pem'},
        private_key: {filename: '/etc/sidecar/client.key'},
        ocsp_staple: {filename: '/etc/sidecar/client.ocsp'}, // outside
      },
    ],
    validation_context: {
      trusted_ca: {filename: '/etc/sidecar/ca.pem'},
      match_typed_subject_alt_names: [
        {san_type: 'DNS', matcher: {exact: 'backend.example'}},
        {san_type: 'URI', matcher: {prefix: 'spiffe://cluster.local/ns/prod/'}},
      ],
      match_subject_alt_names: [{suffix: '.backend.example', ignore_case: true}],
      crl: {inline_string: CRL_PEM},
      max_verify_depth: {value: 3},
      verify_certificate_spki: ['NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A='], // outside
      allow_expired_certificate: true, // outside
    },
    alpn_protocols: ['h2', 'http/1.1'],
  },
  sni: 'backend.example',
  max_session_keys: {value: 4},
  enforce_rsa_key_usage: {value: true}, // outside
};

const clusterDns = {
  name: 'backend-dns',
  type: 'STRICT_DNS',
  connect_timeout: {seconds: 2, nanos: 500000000},
  lb_policy: 'LEAST_REQUEST',
  dns_refresh_rate: {seconds: 30},
  dns_lookup_family: 'V4_ONLY',
  per_connection_buffer_limit_bytes: {value: 32768}, // outside
  health_checks: [
    // outside
    {
      timeout: {seconds: 1},
      interval: {seconds: 5},
      unhealthy_threshold: {value: 3},
      healthy_threshold: {value: 2},
      tcp_health_check: {},
    },
  ],
  circuit_breakers: {thresholds: [{priority: 'DEFAULT', max_connections: {value: 1000}}]}, // outside
  common_lb_config: {healthy_panic_threshold: {value: 50}}, // outside
  upstream_connection_options: {tcp_keepalive: {keepalive_time: {value: 300}}}, // outside
  least_request_lb_config: {choice_count: {value: 3}}, // outside (oneof lb_config)
  outlier_detection: {
    consecutive_5xx: {value: 4},
    interval: {seconds: 10},
    base_ejection_time: {seconds: 30},
    max_ejection_percent: {value: 50},
    split_external_local_origin_errors: true,
    consecutive_local_origin_failure: {value: 2},
    max_ejection_time: {seconds: 300},
    enforcing_success_rate: {value: 0}, // outside
    max_ejection_time_jitter: {seconds: 1}, // outside
  },
  transport_socket: {
    name: 'envoy.transport_sockets.tls',
    typed_config: envoy.anyOf('UpstreamTlsContext', upstreamTlsWithFiles),
  },
  load_assignment: {
    cluster_name: 'backend-dns',
    endpoints: [
      {lb_endpoints: [{endpoint: {address: {socket_address: {address: 'backend.example', port_value: 8443}}}}]},
    ],
  },
  metadata: {filter_metadata: {'envoy.lb': {fields: {canary: {boolValue: true}}}}}, // outside
};

const clusterEds = {
  name: 'backend-eds',
  type: 'EDS',
  eds_cluster_config: {
    eds_config: Object.assign({initial_fetch_timeout: {seconds: 15}}, ADS_V3),
    service_name: 'backend-eds-service',
  },
  connect_timeout: {seconds: 1},
  lb_policy: 'RANDOM',
  transport_socket: {
    name: 'envoy.transport_sockets.tls',
    typed_config: envoy.anyOf('UpstreamTlsContext', {
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{name: 'client-cert', sds_config: ADS_V3}],
        combined_validation_context: {
          default_validation_context: {
            match_typed_subject_alt_names: [{san_type: 'IP_ADDRESS', matcher: {exact: '10.0.0.7'}}],
          },
          validation_context_sds_secret_config: {
            name: 'mesh-ca',
            sds_config: {self: {transport_api_version: 'V3'}},
          },
        },
      },
    }),
  },
  lrs_server: {self: {}}, // outside
};

const endpoints = {
  cluster_name: 'backend-eds-service',
  endpoints: [
    {
      locality: {region: 'eu-west1', zone: 'eu-west1-b', sub_zone: 'rack7'},
      lb_endpoints: [
        {
          endpoint: {
            address: {socket_address: {address: '10.0.0.1', port_value: 8443}},
            health_check_config: {port_value: 9000}, // outside
          },
          health_status: 'HEALTHY',
          load_balancing_weight: {value: 3},
          metadata: {filter_metadata: {'envoy.lb': {fields: {version: {stringValue: 'v2'}}}}}, // outside
        },
        {
          endpoint: {
            address: {socket_address: {address: '10.0.0.2', port_value: 8444}},
            hostname: 'b.backend.example',
          },
          health_status: 'DRAINING',
          load_balancing_weight: {value: 1},
        },
      ],
      load_balancing_weight: {value: 100},
      proximity: {value: 1}, // outside
    },
    {
      locality: {region: 'eu-west2'},
      lb_endpoints: [{endpoint: {address: {socket_address: {address: '10.1.0.1', port_value: 8443}}}}],
      priority: 1,
    },
  ],
  policy: {overprovisioning_factor: {value: 140}}, // outside
};

const fileAccessLog = (logPath) => ({
  name: 'envoy.access_loggers.file',
  typed_config: envoy.anyOf('envoy.extensions.access_loggers.file.v3.FileAccessLog', {path: logPath}),
});

const listener = {
  name: 'inbound-15001',
  address: {socket_address: {address: '0.0.0.0', port_value: 15001}},
  stat_prefix: 'inbound', // outside
  listener_filters: [
    // outside
    {
      name: 'envoy.filters.listener.tls_inspector',
      typed_config: envoy.anyOf('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', {}),
    },
  ],
  access_log: [fileAccessLog('/dev/stdout')], // outside
  filter_chains: [
    {
      name: 'mtls',
      filter_chain_match: {server_names: ['app.example']}, // outside
      filters: [
        {
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: envoy.anyOf('TcpProxy', {
            stat_prefix: 'inbound_tcp',
            cluster: 'local-app',
            idle_timeout: {seconds: 3600},
            max_connect_attempts: {value: 2},
            downstream_idle_timeout: {seconds: 60}, // outside
            access_log: [fileAccessLog('/var/log/tcp.log')], // outside
          }),
        },
      ],
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        // A message outside our subset altogether: it stays an opaque Any.
        typed_config: envoy.anyOf('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
          require_client_certificate: {value: true},
        }),
      },
    },
  ],
};

const secretCert = {
  name: 'client-cert',
  tls_certificate: {
    certificate_chain: {inline_string: CERT_PEM},
    private_key: {inline_bytes: Buffer.from(KEY_PEM)},
    password: {environment_variable: 'KEY_PASSWORD'},
    ocsp_staple: {inline_bytes: Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00])}, // outside
    watched_directory: {path: '/etc/sidecar/certs'}, // outside
  },
};

const secretCa = {
  name: 'mesh-ca',
  validation_context: {
    trusted_ca: {inline_string: CA_PEM},
    match_typed_subject_alt_names: [
      {san_type: 'URI', matcher: {exact: 'spiffe://cluster.local/ns/prod/sa/backend'}},
      {san_type: 'EMAIL', matcher: {contains: '@example', ignore_case: true}},
    ],
    crl: {filename: '/etc/sidecar/crl.pem'},
    trust_chain_verification: 'ACCEPT_UNTRUSTED',
    max_verify_depth: {value: 2},
    verify_certificate_hash: ['df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a'], // outside
    only_verify_leaf_cert_crl: true, // outside
  },
};

const response = (typeName, version, resources) => ({
  version_info: version,
  resources: resources.map((resource) => envoy.anyOf(typeName, resource)),
  type_url: envoy.typeUrl(typeName),
  nonce: `nonce-${version}`,
  control_plane: {identifier: 'xds-server-0'},
});

const requestNack = {
  version_info: '6',
  node: {
    id: 'sidecar~10.0.0.5~app-7d9f~prod.svc.cluster.local',
    cluster: 'app',
    metadata: {fields: {MESH_ID: {stringValue: 'mesh-1'}, replicas: {numberValue: 3}}},
    locality: {zone: 'eu-west1-b'},
    user_agent_name: 'envoy',
    user_agent_build_version: {version: {major_number: 1, minor_number: 28, patch: 0}}, // outside (in a oneof)
    extensions: [{name: 'envoy.filters.network.tcp_proxy', category: 'envoy.filters.network'}], // outside
    client_features: ['envoy.lb.does_not_support_overprovisioning'],
  },
  resource_names: ['backend-eds-service'],
  type_url: envoy.typeUrl('ClusterLoadAssignment'),
  response_nonce: 'nonce-7',
  error_detail: {code: 3, message: 'endpoint 10.0.0.9: port 0 is out of range'},
};

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node make_fixtures.js DIR');
    return 2;
  }
  const dir = argv[0];
  fs.mkdirSync(dir, {recursive: true});
  const files = {
    'cluster_dns.pb': ['Cluster', clusterDns],
    'cluster_eds.pb': ['Cluster', clusterEds],
    'endpoints.pb': ['ClusterLoadAssignment', endpoints],
    'listener.pb': ['Listener', listener],
    'secret_cert.pb': ['Secret', secretCert],
    'secret_ca.pb': ['Secret', secretCa],
    'response_cds.pb': ['DiscoveryResponse', response('Cluster', '7', [clusterDns, clusterEds])],
    'response_eds.pb': ['DiscoveryResponse', response('ClusterLoadAssignment', '8', [endpoints])],
    'response_lds.pb': ['DiscoveryResponse', response('Listener', '9', [listener])],
    'response_sds.pb': ['DiscoveryResponse', response('Secret', '10', [secretCert, secretCa])],
    'request_nack.pb': ['DiscoveryRequest', requestNack],
  };
  for (const [file, [typeName, object]] of Object.entries(files)) {
    const bytes = envoy.encode(typeName, object);
    fs.writeFileSync(path.join(dir, file), bytes);
  }
  console.log(`wrote ${Object.keys(files).length} Envoy-encoded fixtures to ${dir}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
