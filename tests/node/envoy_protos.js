'use strict';
// envoy_protos.js: Envoy's own xDS v3 .proto files, as shipped by
// @grpc/grpc-js-xds (deps/envoy-api, deps/xds, deps/googleapis,
// deps/protoc-gen-validate), loaded at run time with protobufjs, the library
// under @grpc/proto-loader. protoc cannot compile this tree (its validate.proto
// is older than its Envoy protos); protobufjs ignores options, so it can.
//
// This is the independent side of the wire-compatibility tests: what it
// encodes is what Envoy's schema says, not what our subset in xds/proto says.
//
//   const envoy = require('./envoy_protos');
//   const bytes = envoy.encode('Cluster', {name: 'backend', type: 'STATIC'});
//   const object = envoy.decode('Cluster', bytes);    // plain JSON-able object
//
// Field names are the .proto names (snake_case). In objects given to encode,
// a google.protobuf.Any is written as {'@type': TYPE_URL, ...fields}, enums by
// name, Durations as {seconds, nanos}, a google.protobuf.Struct as
// {fields: {KEY: {stringValue | numberValue | boolValue | ...}}} (protobufjs's
// bundled well-known types use camelCase names); a key that is not a field of Envoy's
// message is an error (protobufjs alone would drop it silently).

const fs = require('fs');
const path = require('path');
const protobuf = require('protobufjs');

const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

// protobufjs bundles most well-known types itself and ships the rest
// (google/protobuf/descriptor.proto, imported by validate.proto) as files.
const PROTOBUFJS_DIR = path.dirname(require.resolve('protobufjs/package.json'));

// The include folders, in the order protoc would take them: also what
// @grpc/proto-loader's loadSync wants as `includeDirs` for a gRPC peer.
const INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
  path.join(DEPS, d),
);

// The files whose messages the tests use (their imports come along).
const FILES = [
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/service/discovery/v3/ads.proto',
];

// Short names for the messages the tests exchange with our C code.
const TYPES = {
  Cluster: 'envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'envoy.config.listener.v3.Listener',
  TcpProxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  HttpConnectionManager:
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  Router: 'envoy.extensions.filters.http.router.v3.Router',
  Secret: 'envoy.extensions.transport_sockets.tls.v3.Secret',
  UpstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  DiscoveryRequest: 'envoy.service.discovery.v3.DiscoveryRequest',
  DiscoveryResponse: 'envoy.service.discovery.v3.DiscoveryResponse',
};

const TYPE_URL_PREFIX = 'type.googleapis.com/';

// typeUrl('Cluster') is "type.googleapis.com/envoy.config.cluster.v3.Cluster".
function typeUrl(name) {
  return TYPE_URL_PREFIX + (TYPES[name] || name);
}

// loadRoot(includeDirs, files) loads .proto files into a fresh protobufjs Root,
// resolving imports against includeDirs like protoc's -I. Throws on a missing
// file or an unresolvable type.
function loadRoot(includeDirs, files) {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs.concat(PROTOBUFJS_DIR)) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`${target} (imported by ${origin || 'the caller'}) is in none of ${includeDirs}`);
  };
  root.loadSync(files, {keepCase: true});
  root.resolveAll();
  return root;
}

let envoyRoot = null;

// root() is Envoy's tree, loaded once.
function root() {
  if (!envoyRoot) envoyRoot = loadRoot(INCLUDE_DIRS, FILES);
  return envoyRoot;
}

// lookupType('Cluster') or lookupType('envoy.config.cluster.v3.Cluster').
function lookupType(name) {
  return root().lookupType(TYPES[name] || name);
}

// checkKeys throws if `object` has a key that is not a field of `type`,
// anywhere inside it (following '@type' into Any).
function checkKeys(type, object, where) {
  if (object === null || typeof object !== 'object' || Buffer.isBuffer(object)) return;
  if (type.fullName === '.google.protobuf.Any' && object['@type']) {
    const url = object['@type'];
    type = root().lookupType(url.substring(url.lastIndexOf('/') + 1));
  }
  for (const [key, value] of Object.entries(object)) {
    if (key === '@type') continue;
    const field = type.fields[key];
    if (!field) throw new Error(`${where}.${key}: no such field in ${type.fullName.slice(1)}`);
    if (!(field.resolvedType instanceof protobuf.Type)) continue;
    let items = [value];
    if (field.map) items = Object.values(value);
    else if (field.repeated) items = value;
    items.forEach((item, i) => checkKeys(field.resolvedType, item, `${where}.${key}[${i}]`));
  }
}

// encode(name, object) is the wire bytes of `object` as Envoy's message
// `name`, as a Buffer.
function encode(name, object) {
  const type = lookupType(name);
  checkKeys(type, object, name);
  const problem = type.verify(type.fromObject(object));
  if (problem) throw new Error(`${name}: ${problem}`);
  return Buffer.from(type.encode(type.fromObject(object)).finish());
}

// anyOf(name, object) is a google.protobuf.Any holding Envoy's message `name`,
// in the form encode() takes.
function anyOf(name, object) {
  return Object.assign({'@type': typeUrl(name)}, object);
}

// decode(name, bytes) parses bytes as Envoy's message `name` and returns a
// plain object: fields that were set only, 64-bit numbers and enums as
// strings, bytes as base64, Any unpacked with its '@type'.
function decode(name, bytes) {
  const type = lookupType(name);
  return type.toObject(type.decode(bytes), {
    longs: String,
    enums: String,
    bytes: String,
    json: true,
  });
}

// loadAdsPackageDefinition() is Envoy's Aggregated Discovery Service for
// @grpc/grpc-js (grpc.loadPackageDefinition), via @grpc/proto-loader.
function loadAdsPackageDefinition() {
  const protoLoader = require('@grpc/proto-loader');
  return protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    includeDirs: INCLUDE_DIRS,
  });
}

module.exports = {
  INCLUDE_DIRS,
  TYPES,
  anyOf,
  decode,
  encode,
  loadAdsPackageDefinition,
  loadRoot,
  lookupType,
  root,
  typeUrl,
};
