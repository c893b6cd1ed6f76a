'use strict';
// make_resource_fixtures.js DIR: writes xDS resources encoded with Envoy's own
// .proto files into DIR, one binary protobuf per file, for
// `xds/resources/resources_envoy_decode --envoy DIR`
// (//xds/resources:resources_envoy_test), which decodes them with
// xds/resources/resources.h and checks the result: the plain C structs for the
// resources we accept, the exact error for the ones we refuse. Fields marked
// "outside" are not in our subset (xds/proto): the decoder must skip them.
//
//   node tests/node/make_resource_fixtures.js /tmp/resource_fixtures
//
// The expected values live in xds/resources/resources_envoy_decode.c
// (test_envoy_*); keep the two in step.

const fs = require('fs');
const path = require('path');
const envoy = require('./envoy_protos');

// Not real keys or certificates: the bytes only need to survive the trip.
const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBresource-client-certificate\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nMIGHresource-client-key\n-----END PRIVATE KEY-----\n';
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBresource-mesh-ca\n-----END CERTIFICATE-----\n';
const CRL_PEM = '-----BEGIN X509 CRL-----\nMIIBresource-crl\n-----END X509 CRL-----\n';

const ADS_V3 = {ads: {}, resource_api_version: 'V3'};

// rawAny(typeUrl): an Any whose message is not in envoy_protos.js's tree
// (RawBuffer, HTTPFault...), carried as opaque bytes.
function rawAny(typeUrl, value = Buffer.alloc(0)) {
  return {type_url: typeUrl, value};
}

const tlsSocket = (context) => ({
  name: 'envoy.transport_sockets.tls',
  typed_config: envoy.anyOf('UpstreamTlsContext', context),
});

const socketAddress = (address, port) => ({socket_address: {address, port_value: port}});

// STATIC, inline TLS: every DataSource kind, typed and untyped SAN matchers.
const clusterStaticTls = {
  name: 'orders',
  type: 'STATIC',
  connect_timeout: {seconds: 1, nanos: 250000000},
  lb_policy: 'RANDOM',
  per_connection_buffer_limit_bytes: {value: 32768}, // outside
  circuit_breakers: {thresholds: [{priority: 'DEFAULT', max_connections: {value: 1000}}]}, // outside
  common_lb_config: {healthy_panic_threshold: {value: 50}}, // outside
  upstream_connection_options: {tcp_keepalive: {keepalive_time: {value: 300}}}, // outside
  outlier_detection: {
    consecutive_5xx: {value: 4},
    consecutive_gateway_failure: {value: 9},
    base_ejection_time: {seconds: 10},
    max_ejection_time: {seconds: 60},
    interval: {seconds: 10},
    enforcing_success_rate: {value: 0}, // outside
  },
  transport_socket: tlsSocket({
    common_tls_context: {
      tls_params: {
        tls_minimum_protocol_version: 'TLSv1_3',
        tls_maximum_protocol_version: 'TLSv1_3',
        cipher_suites: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'],
        ecdh_curves: ['X25519', 'P-256'],
        signature_algorithms: ['ecdsa_secp256r1_sha256'], // outside
      },
      tls_certificates: [
        {
          certificate_chain: {inline_string: CERT_PEM},
          private_key: {inline_bytes: Buffer.from(KEY_PEM)},
          password: {filename: '/etc/sidecar/key.pass'},
          ocsp_staple: {filename: '/etc/sidecar/client.ocsp'}, // outside
        },
      ],
      validation_context: {
        trusted_ca: {filename: '/etc/sidecar/ca.pem'},
        crl: {inline_bytes: Buffer.from(CRL_PEM)},
        match_typed_subject_alt_names: [
          {san_type: 'URI', matcher: {exact: 'spiffe://shop/orders'}},
          {san_type: 'DNS', matcher: {exact: 'orders.shop.svc'}},
          {san_type: 'IP_ADDRESS', matcher: {exact: '10.0.0.7'}},
          {san_type: 'EMAIL', matcher: {exact: 'ops@shop.example'}},
        ],
        match_subject_alt_names: [{exact: 'legacy.shop'}],
        max_verify_depth: {value: 3},
        verify_certificate_spki: ['NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A='], // outside
        allow_expired_certificate: true, // outside
      },
      alpn_protocols: ['h2', 'http/1.1'],
    },
    sni: 'orders.shop.svc',
    max_session_keys: {value: 0},
    enforce_rsa_key_usage: {value: true}, // outside
  }),
  load_assignment: {
    cluster_name: 'orders',
    endpoints: [
      {
        locality: {region: 'eu-west1', zone: 'eu-west1-b'},
        lb_endpoints: [
          {endpoint: {address: socketAddress('10.0.0.1', 8443)}, load_balancing_weight: {value: 3}},
          {endpoint: {address: socketAddress('10.0.0.2', 8443)}, health_status: 'UNHEALTHY'},
          {
            endpoint: {address: socketAddress('fd00::3', 9443), hostname: 'c.orders'},
            health_status: 'HEALTHY',
            metadata: {filter_metadata: {'envoy.lb': {fields: {v: {stringValue: '2'}}}}}, // outside
          },
        ],
        load_balancing_weight: {value: 10},
      },
      {priority: 1, lb_endpoints: [{endpoint: {address: socketAddress('10.9.0.1', 8443)}}]},
    ],
    policy: {overprovisioning_factor: {value: 140}}, // outside
  },
  metadata: {filter_metadata: {'envoy.lb': {fields: {canary: {boolValue: true}}}}}, // outside
};

// EDS, client certificate by SDS, combined validation context.
const clusterEdsSds = {
  name: 'payments',
  type: 'EDS',
  eds_cluster_config: {eds_config: Object.assign({initial_fetch_timeout: {seconds: 15}}, ADS_V3)},
  lb_policy: 'LEAST_REQUEST',
  least_request_lb_config: {choice_count: {value: 3}}, // outside
  outlier_detection: {split_external_local_origin_errors: true, consecutive_local_origin_failure: {value: 2}},
  transport_socket: tlsSocket({
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{name: 'client-cert', sds_config: ADS_V3}],
      combined_validation_context: {
        default_validation_context: {
          match_typed_subject_alt_names: [{san_type: 'URI', matcher: {exact: 'spiffe://shop/payments'}}],
        },
        validation_context_sds_secret_config: {name: 'mesh-ca', sds_config: {self: {transport_api_version: 'V3'}}},
      },
    },
  }),
  lrs_server: {self: {}}, // outside
};

// LOGICAL_DNS, validation by SDS only, no client certificate.
const clusterDnsSdsCa = {
  name: 'inventory',
  type: 'LOGICAL_DNS',
  dns_refresh_rate: {seconds: 45},
  dns_lookup_family: 'V4_ONLY',
  outlier_detection: {}, // Envoy's defaults
  transport_socket: tlsSocket({
    common_tls_context: {validation_context_sds_secret_config: {name: 'mesh-ca'}},
  }),
  load_assignment: {
    cluster_name: 'inventory',
    endpoints: [{lb_endpoints: [{endpoint: {address: socketAddress('inventory.shop.svc', 443)}}]}],
  },
};

// No transport socket: plaintext, left for the ADS client to refuse.
const clusterPlaintext = {
  name: 'plain',
  type: 'STRICT_DNS',
  load_assignment: {
    cluster_name: 'plain',
    endpoints: [{lb_endpoints: [{endpoint: {address: socketAddress('plain.shop.svc', 80)}}]}],
  },
};

const endpoints = {
  cluster_name: 'payments',
  endpoints: [
    {
      locality: {region: 'eu-west1', zone: 'eu-west1-b', sub_zone: 'rack7'},
      lb_endpoints: [
        {
          endpoint: {
            address: socketAddress('10.0.1.1', 8443),
            health_check_config: {port_value: 9000}, // outside
          },
          health_status: 'HEALTHY',
          load_balancing_weight: {value: 5},
        },
        {endpoint: {address: socketAddress('10.0.1.2', 8443)}, health_status: 'DRAINING'},
        {endpoint: {address: socketAddress('10.0.1.3', 8443)}, health_status: 'UNHEALTHY'},
        {endpoint: {address: socketAddress('10.0.1.4', 8443)}, health_status: 'TIMEOUT'},
        {endpoint: {address: socketAddress('10.0.1.5', 8443)}, health_status: 'DEGRADED'},
      ],
      load_balancing_weight: {value: 100},
      proximity: {value: 1}, // outside
    },
    {
      locality: {region: 'eu-west2'},
      lb_endpoints: [{endpoint: {address: socketAddress('10.0.2.1', 8443)}, load_balancing_weight: {value: 7}}],
    },
    {locality: {region: 'us-east1'}, priority: 1, lb_endpoints: [{endpoint: {address: socketAddress('10.1.0.1', 8443)}}]},
  ],
  policy: {overprovisioning_factor: {value: 140}}, // outside
};

const secretCert = {
  name: 'client-cert',
  tls_certificate: {
    certificate_chain: {inline_string: CERT_PEM},
    private_key: {inline_bytes: Buffer.from(KEY_PEM)},
    password: {inline_string: 'hunter2'},
    ocsp_staple: {inline_bytes: Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00])}, // outside
    watched_directory: {path: '/etc/sidecar/certs'}, // outside
  },
};

const secretCertFiles = {
  name: 'client-cert-files',
  tls_certificate: {
    certificate_chain: {filename: '/etc/sidecar/client.pem'},
    private_key: {filename: '/etc/sidecar/client.key'},
  },
};

const secretCa = {
  name: 'mesh-ca',
  validation_context: {
    trusted_ca: {inline_string: CA_PEM},
    crl: {filename: '/etc/sidecar/crl.pem'},
    match_typed_subject_alt_names: [{san_type: 'DNS', matcher: {exact: 'payments.shop.svc'}}],
    max_verify_depth: {value: 2},
    verify_certificate_hash: ['df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a'], // outside
    only_verify_leaf_cert_crl: true, // outside
  },
};

const fileAccessLog = (logPath) => ({
  name: 'envoy.access_loggers.file',
  typed_config: envoy.anyOf('envoy.extensions.access_loggers.file.v3.FileAccessLog', {path: logPath}),
});

const tcpProxyFilter = (proxy) => ({
  name: 'any-name-envoy-selects-by-type', // Envoy selects the filter by typed_config's type
  typed_config: envoy.anyOf('TcpProxy', Object.assign({stat_prefix: 'tcp'}, proxy)),
});

const listenerTcp = {
  name: 'outbound-orders',
  address: socketAddress('127.0.0.1', 15001),
  stat_prefix: 'outbound', // outside
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
      name: 'only',
      filters: [
        tcpProxyFilter({
          cluster: 'orders',
          idle_timeout: {seconds: 0},
          max_connect_attempts: {value: 2},
          max_downstream_connection_duration: {seconds: 600},
          downstream_idle_timeout: {seconds: 60}, // outside
          access_log: [fileAccessLog('/var/log/tcp.log')], // outside
        }),
      ],
    },
  ],
};

const listenerDefaults = {
  name: 'outbound-v6',
  address: socketAddress('::1', 15002),
  filter_chains: [{filters: [tcpProxyFilter({cluster: 'payments'})]}],
};

const response = (typeName, version, resources) => ({
  version_info: version,
  resources: resources.map((resource) => envoy.anyOf(typeName, resource)),
  type_url: envoy.typeUrl(typeName),
  nonce: `nonce-${version}`,
});

// ---- refused ---------------------------------------------------------------

const clusterRawBuffer = {
  name: 'orders',
  transport_socket: {
    name: 'envoy.transport_sockets.raw_buffer',
    typed_config: rawAny('type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer'),
  },
};

const clusterCustomType = {
  name: 'aggregate',
  cluster_type: {
    name: 'envoy.clusters.aggregate',
    typed_config: rawAny('type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig'),
  },
};

const clusterRegexSan = {
  name: 'orders',
  transport_socket: tlsSocket({
    common_tls_context: {
      validation_context: {
        trusted_ca: {filename: '/etc/ca.pem'},
        match_typed_subject_alt_names: [
          {san_type: 'DNS', matcher: {exact: 'ok.shop'}},
          {san_type: 'URI', matcher: {safe_regex: {regex: 'spiffe://shop/.*'}}},
        ],
      },
    },
  }),
};

const clusterNoValidation = {
  name: 'orders',
  transport_socket: tlsSocket({common_tls_context: {alpn_protocols: ['h2']}, sni: 'orders.shop'}),
};

const clusterTls11 = {
  name: 'orders',
  transport_socket: tlsSocket({
    common_tls_context: {
      tls_params: {tls_minimum_protocol_version: 'TLSv1_1'},
      validation_context: {trust_chain_verification: 'ACCEPT_UNTRUSTED'},
    },
  }),
};

const clusterApiSds = {
  name: 'orders',
  transport_socket: tlsSocket({
    common_tls_context: {
      tls_certificate_sds_secret_configs: [
        {
          name: 'client-cert',
          sds_config: {api_config_source: {api_type: 'GRPC', transport_api_version: 'V3'}},
        },
      ],
      validation_context_sds_secret_config: {name: 'mesh-ca'},
    },
  }),
};

const clusterMaglev = {name: 'orders', lb_policy: 'MAGLEV'};

const secretEnvKey = {
  name: 'client-cert',
  tls_certificate: {
    certificate_chain: {inline_string: CERT_PEM},
    private_key: {environment_variable: 'CLIENT_KEY'},
  },
};

const secretSessionKeys = {
  name: 'ticket-keys',
  session_ticket_keys: {keys: [{inline_bytes: Buffer.alloc(80, 7)}]},
};

// An HttpConnectionManager with an inline route_config, as a new object
// each time (the refusals below change one field each): a "*" virtual host
// with a path route and a catch-all, then a virtual host with two exact
// domains, an optional filter the decoder skips and the router.
function httpManager() {
  return {
    stat_prefix: 'ingress_http',
    codec_type: 'HTTP1',
    stream_idle_timeout: {seconds: 30},
    request_timeout: {seconds: 10}, // outside
    use_remote_address: {value: true}, // outside
    common_http_protocol_options: {idle_timeout: {seconds: 60}}, // outside
    http_protocol_options: {accept_http_10: true}, // outside
    route_config: {
      name: 'local_route',
      validate_clusters: {value: false}, // outside
      virtual_hosts: [
        {
          name: 'any',
          domains: ['*'],
          routes: [
            {
              name: 'pay',
              match: {prefix: '/pay/', case_sensitive: {value: true}},
              route: {
                cluster: 'payments',
                timeout: {seconds: 0}, // outside
                retry_policy: {retry_on: '5xx', num_retries: {value: 2}}, // outside
              },
            },
            {match: {prefix: '/'}, route: {cluster: 'orders'}, decorator: {operation: 'orders'}},
          ],
        },
        {
          name: 'payments',
          domains: ['payments.shop', 'Pay.Shop'],
          request_headers_to_add: [{header: {key: 'x-mesh', value: '1'}}], // outside
          routes: [{match: {prefix: ''}, route: {cluster: 'payments'}}],
        },
      ],
    },
    http_filters: [
      {
        name: 'envoy.filters.http.fault',
        typed_config: rawAny('type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault'),
        is_optional: true,
      },
      {name: 'envoy.filters.http.router', typed_config: envoy.anyOf('Router', {suppress_envoy_headers: true})},
    ],
  };
}

// httpListener(change): listener "web" whose HttpConnectionManager is
// httpManager() after change(manager).
function httpListener(change = () => {}) {
  const manager = httpManager();
  change(manager);
  return {
    name: 'web',
    address: socketAddress('127.0.0.1', 15080),
    per_connection_buffer_limit_bytes: {value: 65536}, // outside
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: envoy.anyOf('HttpConnectionManager', manager),
          },
        ],
      },
    ],
  };
}

const virtualHost = (m) => m.route_config.virtual_hosts[0];
const firstRoute = (m) => virtualHost(m).routes[0];

// Fields outside our subset that change where a request goes, each set by
// Envoy's own schema on the accepted listener: the decoder must refuse each
// naming exactly this path (which proves its field numbers are Envoy's).
// [field path under the manager, change]
const HTTP_REFUSED_FIELDS = [
  ['rds', (m) => { delete m.route_config; m.rds = {route_config_name: 'r', config_source: ADS_V3}; }],
  ['scoped_routes', (m) => { delete m.route_config; m.scoped_routes = {name: 's'}; }],
  ['route_config.vhds', (m) => { m.route_config.vhds = {config_source: ADS_V3}; }],
  ['route_config.virtual_hosts[0].matcher', (m) => { virtualHost(m).matcher = {}; }],
  ['route_config.virtual_hosts[0].require_tls', (m) => { virtualHost(m).require_tls = 'ALL'; }],
  ...[
    ['redirect', {path_redirect: '/elsewhere'}],
    ['direct_response', {status: 503}],
    ['filter_action', {}],
    ['non_forwarding_action', {}],
  ].map(([field, value]) => [`route_config.virtual_hosts[0].routes[0].${field}`, (m) => {
    delete firstRoute(m).route;
    firstRoute(m)[field] = value;
  }]),
  ...[
    ['path', '/pay/now', true],
    ['safe_regex', {regex: '/pay/.*'}, true],
    ['connect_matcher', {}, true],
    ['path_separated_prefix', '/pay', true],
    ['path_match_policy', {name: 'envoy.path.match.uri_template.uri_template_matcher'}, true],
    ['headers', [{name: 'x-canary', present_match: true}], false],
    ['query_parameters', [{name: 'canary', present_match: true}], false],
    ['grpc', {}, false],
    ['runtime_fraction', {default_value: {numerator: 50}}, false],
    ['tls_context', {presented: {value: true}}, false],
    ['dynamic_metadata', [{filter: 'envoy.lb', path: [{key: 'canary'}], value: {present_match: true}}], false],
  ].map(([field, value, inOneof]) => [`route_config.virtual_hosts[0].routes[0].match.${field}`, (m) => {
    if (inOneof) delete firstRoute(m).match.prefix;
    firstRoute(m).match[field] = value;
  }]),
  ...[
    ['cluster_header', 'x-cluster', true],
    ['weighted_clusters', {clusters: [{name: 'a', weight: {value: 1}}, {name: 'b', weight: {value: 3}}]}, true],
    ['cluster_specifier_plugin', 'picker', true],
    ['inline_cluster_specifier_plugin', {extension: {name: 'picker'}}, true],
    ['prefix_rewrite', '/v2/', false],
    ['regex_rewrite', {pattern: {regex: '^/pay'}, substitution: '/v2'}, false],
    ['path_rewrite_policy', {name: 'envoy.path.rewrite.uri_template.uri_template_rewriter'}, false],
    ['host_rewrite_literal', 'payments.internal', false],
    ['auto_host_rewrite', {value: true}, false],
    ['host_rewrite_header', 'x-host', false],
    ['host_rewrite_path_regex', {pattern: {regex: '^/(.+)/'}, substitution: '\\1'}, false],
  ].map(([field, value, inOneof]) => [`route_config.virtual_hosts[0].routes[0].route.${field}`, (m) => {
    if (inOneof) delete firstRoute(m).route.cluster;
    firstRoute(m).route[field] = value;
  }]),
];

const listenerWeighted = {
  name: 'split',
  address: socketAddress('127.0.0.1', 15003),
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: envoy.anyOf('TcpProxy', {
            stat_prefix: 'split',
            weighted_clusters: {clusters: [{name: 'a', weight: 1}, {name: 'b', weight: 3}]},
          }),
        },
      ],
    },
  ],
};

const listenerPipe = {
  name: 'unix',
  address: {pipe: {path: '/run/sidecar.sock'}},
  filter_chains: [{filters: [tcpProxyFilter({cluster: 'orders'})]}],
};

const listenerHostname = {
  name: 'named',
  address: socketAddress('localhost', 15004),
  filter_chains: [{filters: [tcpProxyFilter({cluster: 'orders'})]}],
};

const endpointsNamedPort = {
  cluster_name: 'payments',
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: '10.0.1.1', named_port: 'https'}}}}]}],
};

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node make_resource_fixtures.js DIR');
    return 2;
  }
  const dir = argv[0];
  fs.mkdirSync(dir, {recursive: true});
  const files = {
    'cluster_static_tls.pb': ['Cluster', clusterStaticTls],
    'cluster_eds_sds.pb': ['Cluster', clusterEdsSds],
    'cluster_dns_sds_ca.pb': ['Cluster', clusterDnsSdsCa],
    'cluster_plaintext.pb': ['Cluster', clusterPlaintext],
    'endpoints.pb': ['ClusterLoadAssignment', endpoints],
    'secret_cert.pb': ['Secret', secretCert],
    'secret_cert_files.pb': ['Secret', secretCertFiles],
    'secret_ca.pb': ['Secret', secretCa],
    'listener_tcp.pb': ['Listener', listenerTcp],
    'listener_defaults.pb': ['Listener', listenerDefaults],
    'listener_http.pb': ['Listener', httpListener()],
    'response_cds.pb': ['DiscoveryResponse', response('Cluster', '1', [clusterStaticTls, clusterEdsSds])],
    'response_sds.pb': ['DiscoveryResponse', response('Secret', '2', [secretCert, secretCa])],
    'refuse_cluster_raw_buffer.pb': ['Cluster', clusterRawBuffer],
    'refuse_cluster_custom_type.pb': ['Cluster', clusterCustomType],
    'refuse_cluster_regex_san.pb': ['Cluster', clusterRegexSan],
    'refuse_cluster_no_validation.pb': ['Cluster', clusterNoValidation],
    'refuse_cluster_tls11.pb': ['Cluster', clusterTls11],
    'refuse_cluster_api_sds.pb': ['Cluster', clusterApiSds],
    'refuse_cluster_maglev.pb': ['Cluster', clusterMaglev],
    'refuse_secret_env_key.pb': ['Secret', secretEnvKey],
    'refuse_secret_session_keys.pb': ['Secret', secretSessionKeys],
    'refuse_listener_rds.pb': ['Listener', httpListener(HTTP_REFUSED_FIELDS[0][1])],
    'refuse_listener_wildcard.pb': ['Listener', httpListener((m) => { virtualHost(m).domains = ['*.shop']; })],
    'refuse_listener_fault.pb': ['Listener', httpListener((m) => { m.http_filters[0].is_optional = false; })],
    'refuse_listener_weighted.pb': ['Listener', listenerWeighted],
    'refuse_listener_pipe.pb': ['Listener', listenerPipe],
    'refuse_listener_hostname.pb': ['Listener', listenerHostname],
    'refuse_endpoints_named_port.pb': ['ClusterLoadAssignment', endpointsNamedPort],
  };
  // refused_fields.txt: one line per HTTP_REFUSED_FIELDS entry, "FILE PATH".
  const manifest = HTTP_REFUSED_FIELDS.map(([field, change], i) => {
    const file = `refuse_http_field_${i}.pb`;
    files[file] = ['Listener', httpListener(change)];
    return `${file} filter_chains[0].filters[0].typed_config.${field}\n`;
  });
  fs.writeFileSync(path.join(dir, 'refused_fields.txt'), manifest.join(''));
  for (const [file, [typeName, object]] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, file), envoy.encode(typeName, object));
  }
  console.log(`wrote ${Object.keys(files).length} Envoy-encoded resources to ${dir}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
