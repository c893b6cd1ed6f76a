// xds_test_control_plane.js: a control plane for the sidecar's integration
// tests (tests/integration/test_xds_envoy.py), driven by the test over a
// small HTTP port. The ADS side is @grpc/grpc-js with Envoy's own .proto
// files (envoy_protos.js), over mutual TLS: written elsewhere, like the
// control planes the sidecar meets in production. It answers like a
// snapshot cache (go-control-plane's): each type has a version and a set of
// resources; a stream gets them when it asks for the type, when the names it
// asks for change, and when the test sets a new version. It can also
// misbehave on purpose: responses outside the snapshot, protobuf garbage,
// oversized messages, ended streams, and a raw TLS server that speaks
// malformed HTTP/2.
//
//   node xds_test_control_plane.js --ca CA --cert CRT --key KEY \
//       --log LOG.jsonl --ready-file FILE
//
// It listens on 127.0.0.1 (ADS and control on ports of its own choosing) and
// then writes {"ads_port": N, "control_port": N} to --ready-file.
//
// Control: POST http://127.0.0.1:CONTROL/COMMAND with a JSON body; the
// answer is JSON, 200 {..} or 400 {"error": "..."}.
//   /set {"type", "version", "resources": [...]}
//       the snapshot of `type` ("Cluster", "ClusterLoadAssignment",
//       "Listener", "Secret"): pushed at once to every stream that asked
//       for the type. Answers {"sent": [{"stream", "nonce"}]}.
//   /send {"type" | "type_url", "version", "resources": [...], "stream",
//          "padding_bytes"}
//       one DiscoveryResponse outside the snapshot, on `stream` (default:
//       the newest open one). padding_bytes fills the response's
//       control_plane.identifier (a field the sidecar ignores) to make an
//       oversized but otherwise valid message. Answers {"stream", "nonce",
//       "bytes"}.
//   /garbage {"hex", "stream"}   these bytes as a gRPC message.
//   /end_streams {"code", "details"}   ends every open stream with a status.
//   /hostile_h2 {"scenario", "connections": 1}
//       stops the gRPC server and serves the ADS port with a raw TLS server
//       (ALPN h2, client certificate required) that answers the next
//       `connections` connections with `scenario` (see SCENARIOS), then
//       serves gRPC again on the same port.
//   GET /state   {"open_streams": [...], "mode": "grpc" | "hostile"}
//
// Resources are Envoy's JSON (the proto3 JSON mapping, snake_case names as
// in Envoy's YAML): Durations may be "1.5s", wrapper types plain values,
// google.protobuf.Struct plain objects, bytes base64, enums by name, Any as
// {"@type": "UpstreamTlsContext" or a type URL, ...fields}. They are turned
// into protobufjs objects (fromObject) and encoded by Envoy's .proto files;
// a key that is not a field of Envoy's message is an error. An item
// {"@raw": {"type_url", "hex"}} is sent as that Any, bytes as they are; an
// item with its own "@type" is packed as that type (a Listener in a CDS
// response, say); "@append_hex" is appended to an item's encoded bytes
// (fields protobufjs could not encode, such as 30,000 levels of Struct).
//
// --log gets one JSON object a line, written as things happen:
//   {"event": "listening", "ads_port", "control_port"}
//   {"event": "stream_start" | "stream_end", "stream", "reason"}
//   {"event": "request", "stream", "type_url", "version_info",
//    "response_nonce", "resource_names", "error_detail": {code, message} |
//    null, "node": {id, cluster, user_agent_name, user_agent_version} | null}
//   {"event": "response", "stream", "type_url", "version_info", "nonce",
//    "resource_names", "bytes", "snapshot": bool}
//   {"event": "garbage", "stream", "bytes"}
//   {"event": "hostile_listening" | "grpc_listening", "port"}
//   {"event": "hostile_connection", "index", "scenario", "alpn",
//    "client_certificate": bool}
//   {"event": "hostile_frame", "index", "type", "flags", "stream_id",
//    "length", "error_code" (GOAWAY, RST_STREAM), "debug" (GOAWAY)}
//   {"event": "hostile_sent", "index", "bytes"}
//   {"event": "hostile_closed", "index", "by": "client" | "timeout",
//    "ms", "goaway_error_code" | null}
'use strict';
const fs = require('fs');
const http = require('http');
const tls = require('tls');
const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');
const envoy = require('./envoy_protos');
const { parseArgs, readPem } = require('./grpc_peer_common');

const SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
const WILDCARD_TYPES = new Set([envoy.typeUrl('Cluster'), envoy.typeUrl('Listener')]);

const args = parseArgs(process.argv.slice(2), ['ca', 'cert', 'key', 'log', 'ready-file']);
const pem = readPem(args);

function log(record) {
  fs.appendFileSync(args.log, JSON.stringify(record) + '\n');
}

// ---- Envoy JSON -> protobufjs objects ---------------------------------------

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (w) => `.google.protobuf.${w}Value`,
  ),
);

function fullTypeUrl(name) {
  return name.includes('/') ? name : envoy.typeUrl(name);
}

function duration(text, where) {
  const match = /^(-?\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (!match) throw new Error(`${where}: "${text}" is not a duration like "1.5s"`);
  return { seconds: Number(match[1]), nanos: Number((match[2] || '').padEnd(9, '0')) };
}

// structValue turns plain JSON into a google.protobuf.Value as protobufjs's
// bundled (camelCase) well-known types want it.
function structValue(value) {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (Array.isArray(value)) return { listValue: { values: value.map(structValue) } };
  switch (typeof value) {
    case 'boolean':
      return { boolValue: value };
    case 'number':
      return { numberValue: value };
    case 'string':
      return { stringValue: value };
    default:
      return { structValue: struct(value) };
  }
}

function struct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = structValue(value);
  return { fields };
}

// fromEnvoyJson(type, value) rewrites the proto3 JSON forms protobufjs's
// fromObject does not take (Duration strings, bare wrapper values, plain
// Structs, short Any type names) into the forms it does.
function fromEnvoyJson(type, value, where) {
  const name = type.fullName;
  if (name === '.google.protobuf.Duration' && typeof value === 'string') {
    return duration(value, where);
  }
  if (WRAPPERS.has(name) && (value === null || typeof value !== 'object')) return { value };
  if (name === '.google.protobuf.Struct') {
    return value && value.fields ? value : struct(value);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  if (name === '.google.protobuf.Any') {
    if (!value['@type']) throw new Error(`${where}: an Any needs "@type"`);
    const url = fullTypeUrl(value['@type']);
    const inner = envoy.lookupType(url.substring(url.lastIndexOf('/') + 1));
    const rest = Object.assign({}, value);
    delete rest['@type'];
    return Object.assign({ '@type': url }, fromEnvoyJson(inner, rest, where));
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    const field = type.fields[key];
    if (!field) throw new Error(`${where}.${key}: no such field in ${name.slice(1)}`);
    const fieldType = field.resolvedType;
    if (!(fieldType instanceof protobuf.Type)) {
      out[key] = item;
    } else if (field.map) {
      out[key] = {};
      for (const [k, v] of Object.entries(item)) {
        out[key][k] = fromEnvoyJson(fieldType, v, `${where}.${key}[${k}]`);
      }
    } else if (field.repeated) {
      out[key] = item.map((v, i) => fromEnvoyJson(fieldType, v, `${where}.${key}[${i}]`));
    } else {
      out[key] = fromEnvoyJson(fieldType, item, `${where}.${key}`);
    }
  }
  return out;
}

// resourceName is what a resource is known by: a ClusterLoadAssignment's
// cluster_name, anything else's name.
function resourceName(object) {
  return object.cluster_name !== undefined ? object.cluster_name : object.name;
}

// packResource turns one item of a command's "resources" into an Any
// {type_url, value} and the name it goes by.
function packResource(typeUrl, item, where) {
  if (item['@raw']) {
    return {
      name: item['@raw'].name || '',
      any: { type_url: item['@raw'].type_url, value: Buffer.from(item['@raw'].hex, 'hex') },
    };
  }
  const url = item['@type'] ? fullTypeUrl(item['@type']) : typeUrl;
  const typeName = url.substring(url.lastIndexOf('/') + 1);
  const object = Object.assign({}, item);
  delete object['@type'];
  delete object['@append_hex'];
  const normalized = fromEnvoyJson(envoy.lookupType(typeName), object, where);
  let value = envoy.encode(typeName, normalized);
  if (item['@append_hex']) value = Buffer.concat([value, Buffer.from(item['@append_hex'], 'hex')]);
  return { name: resourceName(object) || '', any: { type_url: url, value } };
}

function packAll(typeUrl, items) {
  return (items || []).map((item, i) => packResource(typeUrl, item, `resources[${i}]`));
}

// ---- streams and the snapshot --------------------------------------------------

const snapshot = new Map(); // type URL -> {version, resources: [{name, any}]}
const streams = new Map(); // id -> {id, call, open, types: Map(type URL -> sub)}
let streamCount = 0;
let nonceCount = 0;

function newestOpenStream() {
  let newest = null;
  for (const stream of streams.values()) if (stream.open) newest = stream;
  return newest;
}

function streamFor(id) {
  const stream = id === undefined ? newestOpenStream() : streams.get(id);
  if (!stream || !stream.open) throw new Error(`no open stream ${id === undefined ? '' : id}`);
  return stream;
}

// write sends one DiscoveryResponse on `stream` and records it. The sub's
// nonce is the one an ACK or NACK must carry to count.
function write(stream, typeUrl, version, resources, extra) {
  const nonce = `n${++nonceCount}`;
  const message = {
    version_info: version,
    type_url: typeUrl,
    nonce,
    resources: resources.map((r) => r.any),
  };
  if (extra && extra.padding_bytes) {
    message.control_plane = { identifier: 'x'.repeat(extra.padding_bytes) };
  }
  const bytes = envoy.encode('DiscoveryResponse', message);
  const sub = stream.types.get(typeUrl);
  if (sub) sub.nonce = nonce;
  log({
    event: 'response',
    stream: stream.id,
    type_url: typeUrl,
    version_info: version,
    nonce,
    resource_names: resources.map((r) => r.name),
    bytes: bytes.length,
    snapshot: Boolean(extra && extra.snapshot),
  });
  stream.call.write(bytes);
  return { stream: stream.id, nonce, bytes: bytes.length };
}

// pushSnapshot sends the type's snapshot to a stream that asked for it:
// everything for a wildcard subscription, the named resources otherwise.
function pushSnapshot(stream, typeUrl) {
  const sub = stream.types.get(typeUrl);
  const snap = snapshot.get(typeUrl);
  if (!sub || !snap || !stream.open) return null;
  const wildcard = sub.names.length === 0 && WILDCARD_TYPES.has(typeUrl);
  if (!wildcard && sub.names.length === 0) return null;
  const resources = wildcard ? snap.resources : snap.resources.filter((r) => sub.names.includes(r.name));
  sub.sentVersion = snap.version;
  return write(stream, typeUrl, snap.version, resources, { snapshot: true });
}

function nodeRecord(node) {
  if (!node) return null;
  return {
    id: node.id || '',
    cluster: node.cluster || '',
    user_agent_name: node.user_agent_name || '',
    user_agent_version: node.user_agent_version || '',
  };
}

function onRequest(stream, request) {
  const typeUrl = request.type_url || '';
  const record = {
    event: 'request',
    stream: stream.id,
    type_url: typeUrl,
    version_info: request.version_info || '',
    response_nonce: request.response_nonce || '',
    resource_names: request.resource_names || [],
    error_detail: request.error_detail
      ? { code: request.error_detail.code || 0, message: request.error_detail.message || '' }
      : null,
    node: nodeRecord(request.node),
  };
  log(record);
  let sub = stream.types.get(typeUrl);
  if (!sub) {
    sub = { names: [], namesKey: null, nonce: '', sentVersion: null };
    stream.types.set(typeUrl, sub);
  }
  // A request answering an older response than the last one sent is stale:
  // ignored, as go-control-plane does.
  if (record.response_nonce !== '' && record.response_nonce !== sub.nonce) return;
  const names = record.resource_names.slice().sort();
  const namesKey = JSON.stringify(names);
  const namesChanged = namesKey !== sub.namesKey;
  sub.names = names;
  sub.namesKey = namesKey;
  const snap = snapshot.get(typeUrl);
  if (snap && (sub.sentVersion === null || namesChanged || snap.version !== sub.sentVersion)) {
    pushSnapshot(stream, typeUrl);
  }
}

function streamAggregatedResources(call) {
  const stream = { id: ++streamCount, call, open: true, types: new Map() };
  streams.set(stream.id, stream);
  log({ event: 'stream_start', stream: stream.id });
  const end = (reason) => {
    if (!stream.open) return;
    stream.open = false;
    log({ event: 'stream_end', stream: stream.id, reason });
  };
  call.on('data', (request) => onRequest(stream, request));
  call.on('end', () => {
    end('the client half-closed');
    call.end();
  });
  call.on('cancelled', () => end('cancelled by the client'));
  call.on('error', (error) => end(`error: ${error && (error.details || error.message)}`));
  call.on('close', () => end('closed'));
}

// ---- the gRPC server -----------------------------------------------------------------

function serviceDefinition() {
  const definition = envoy.loadAdsPackageDefinition()[SERVICE];
  const method = definition.StreamAggregatedResources;
  const serialize = method.responseSerialize;
  // Responses are encoded here, with Envoy's protos (and garbage is
  // garbage): Buffers go out as they are.
  method.responseSerialize = (value) => (Buffer.isBuffer(value) ? value : serialize(value));
  return definition;
}

const definition = serviceDefinition();
let grpcServer = null;
let adsPort = 0;
let mode = 'grpc';

function credentials() {
  return grpc.ServerCredentials.createSsl(pem.ca, [{ cert_chain: pem.cert, private_key: pem.key }], true);
}

// bindGrpc serves ADS on adsPort (0: any), retrying while the port is still
// held by what served it before.
function bindGrpc(attempt = 0) {
  return new Promise((resolve, reject) => {
    const server = new grpc.Server();
    server.addService(definition, { StreamAggregatedResources: streamAggregatedResources });
    server.bindAsync(`127.0.0.1:${adsPort}`, credentials(), (error, port) => {
      if (error) {
        server.forceShutdown();
        if (attempt >= 50) return reject(error);
        return setTimeout(() => bindGrpc(attempt + 1).then(resolve, reject), 100);
      }
      grpcServer = server;
      adsPort = port;
      mode = 'grpc';
      log({ event: 'grpc_listening', port });
      return resolve(port);
    });
  });
}

// ---- hostile HTTP/2 -------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7, WINDOW_UPDATE: 8 };
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;

function frame(type, flags, streamId, payload = Buffer.alloc(0), length = payload.length) {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const SETTINGS = frame(FRAME.SETTINGS, 0, 0);
const SETTINGS_ACK = frame(FRAME.SETTINGS, ACK, 0);
// HPACK: ":status: 200" (static index 8), then content-type (static name
// index 31) "application/grpc", literal without indexing.
const GRPC_RESPONSE_HEADERS = Buffer.concat([
  Buffer.from([0x88, 0x0f, 0x10, 16]),
  Buffer.from('application/grpc'),
]);

// Each scenario: `settings` (send a valid SETTINGS and acknowledge the
// client's first), `after_headers` (wait for the client's HEADERS, so that
// stream 1 exists), and the bytes to send.
const SCENARIOS = {
  // An HTTP/1.1 answer where the server's SETTINGS should be.
  http1_answer: {
    settings: false,
    bytes: () => Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
  },
  // SETTINGS whose length is not a multiple of 6.
  settings_bad_length: { settings: false, bytes: () => frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(5)) },
  // A frame header announcing 1 MiB, above SETTINGS_MAX_FRAME_SIZE.
  oversized_frame: {
    settings: true,
    after_headers: true,
    bytes: () => frame(FRAME.DATA, 0, 1, Buffer.alloc(64), 1 << 20),
  },
  // HEADERS on stream 0.
  headers_on_stream_0: {
    settings: true,
    bytes: () => frame(FRAME.HEADERS, END_HEADERS, 0, Buffer.from([0x88])),
  },
  // HEADERS for the client's stream whose block does not decode (an index
  // far past the tables).
  bad_hpack: {
    settings: true,
    after_headers: true,
    bytes: () => frame(FRAME.HEADERS, END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])),
  },
  // DATA on a stream the client never opened.
  data_on_idle_stream: {
    settings: true,
    after_headers: true,
    bytes: () => frame(FRAME.DATA, 0, 3, Buffer.from([0, 0, 0, 0, 0])),
  },
  // WINDOW_UPDATE with a zero increment on the connection.
  window_update_zero: {
    settings: true,
    bytes: () => frame(FRAME.WINDOW_UPDATE, 0, 0, Buffer.alloc(4)),
  },
  // A valid gRPC response start, then a message cut short by END_STREAM.
  truncated_grpc_message: {
    settings: true,
    after_headers: true,
    bytes: () =>
      Buffer.concat([
        frame(FRAME.HEADERS, END_HEADERS, 1, GRPC_RESPONSE_HEADERS),
        frame(FRAME.DATA, END_STREAM, 1, Buffer.from([0, 0, 0, 0, 100, 0x0a, 0x01, 0x31, 0x12, 0x02])),
      ]),
  },
};

let hostileServer = null;
let hostileIndex = 0;

// hostileConnection plays `scenario` on one TLS connection and reports the
// frames the client sends back and how the connection ends.
function hostileConnection(socket, scenarioName, onDone) {
  const index = ++hostileIndex;
  const scenario = SCENARIOS[scenarioName];
  const started = Date.now();
  log({
    event: 'hostile_connection',
    index,
    scenario: scenarioName,
    alpn: socket.alpnProtocol || null,
    client_certificate: Boolean(socket.getPeerCertificate() && socket.getPeerCertificate().subject),
  });
  let buffer = Buffer.alloc(0);
  let prefaceSeen = false;
  let sawHeaders = false;
  let settingsAcked = false;
  let sent = false;
  let goaway = null;
  let finished = false;
  const finish = (by) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    clearTimeout(headersTimer);
    log({ event: 'hostile_closed', index, by, ms: Date.now() - started, goaway_error_code: goaway });
    socket.destroy();
    onDone();
  };
  const timer = setTimeout(() => finish('timeout'), 10000);
  let headersTimer = null;
  const attack = () => {
    if (sent || finished) return;
    sent = true;
    const bytes = scenario.bytes();
    log({ event: 'hostile_sent', index, bytes: bytes.length });
    socket.write(bytes);
  };
  const onFrame = (type, flags, streamId, payload, length) => {
    const record = { event: 'hostile_frame', index, type, flags, stream_id: streamId, length };
    if (type === FRAME.GOAWAY && payload.length >= 8) {
      record.error_code = payload.readUInt32BE(4);
      record.debug = payload.subarray(8).toString('utf8');
      goaway = record.error_code;
    }
    if (type === FRAME.RST_STREAM && payload.length >= 4) record.error_code = payload.readUInt32BE(0);
    log(record);
    if (type === FRAME.SETTINGS && !(flags & ACK) && scenario.settings && !settingsAcked) {
      settingsAcked = true;
      socket.write(SETTINGS_ACK);
    }
    if (type === FRAME.HEADERS && !sawHeaders) {
      sawHeaders = true;
      if (scenario.after_headers) attack();
    }
  };
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!prefaceSeen) {
      if (buffer.length < PREFACE.length) return;
      if (!buffer.subarray(0, PREFACE.length).equals(PREFACE)) {
        log({ event: 'hostile_bad_preface', index, hex: buffer.subarray(0, 32).toString('hex') });
        finish('bad_preface');
        return;
      }
      prefaceSeen = true;
      buffer = buffer.subarray(PREFACE.length);
      if (scenario.settings) socket.write(SETTINGS);
      if (scenario.after_headers) {
        // Should the client hold its HEADERS back, attack anyway.
        headersTimer = setTimeout(attack, 3000);
      } else {
        attack();
      }
    }
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      onFrame(buffer.readUInt8(3), buffer.readUInt8(4), buffer.readUInt32BE(5) & 0x7fffffff,
        buffer.subarray(9, 9 + length), length);
      buffer = buffer.subarray(9 + length);
    }
  });
  socket.on('end', () => finish('client'));
  socket.on('close', () => finish('client'));
  socket.on('error', () => finish('client'));
}

// hostile stops the gRPC server and serves the port with the raw TLS
// server for `connections` connections, then serves gRPC again.
async function hostile(scenario, connections) {
  if (!SCENARIOS[scenario]) throw new Error(`unknown scenario "${scenario}"; known: ${Object.keys(SCENARIOS)}`);
  if (mode !== 'grpc') throw new Error('already hostile');
  mode = 'hostile';
  grpcServer.forceShutdown();
  grpcServer = null;
  let remaining = connections;
  const server = tls.createServer({
    ca: pem.ca,
    cert: pem.cert,
    key: pem.key,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
  });
  hostileServer = server;
  server.on('tlsClientError', (error) => log({ event: 'hostile_tls_error', message: error.message }));
  server.on('secureConnection', (socket) => {
    if (remaining <= 0) {
      socket.destroy();
      return;
    }
    remaining--;
    const last = remaining === 0;
    if (last) server.close(); // no more connections; the ones open finish
    hostileConnection(socket, scenario, () => {
      if (!last) return;
      hostileServer = null;
      bindGrpc().catch((error) => {
        log({ event: 'fatal', message: `gRPC rebind failed: ${error.message}` });
        process.exit(1);
      });
    });
  });
  await new Promise((resolve, reject) => {
    const tryListen = (attempt) => {
      server.once('error', (error) => {
        if (error.code === 'EADDRINUSE' && attempt < 50) setTimeout(() => tryListen(attempt + 1), 100);
        else reject(error);
      });
      server.listen(adsPort, '127.0.0.1', () => resolve());
    };
    tryListen(0);
  });
  log({ event: 'hostile_listening', port: adsPort, scenario });
}

// ---- control ----------------------------------------------------------------------------

const commands = {
  set(body) {
    if (!body.type || body.version === undefined) throw new Error('set needs "type" and "version"');
    const typeUrl = fullTypeUrl(body.type);
    snapshot.set(typeUrl, { version: String(body.version), resources: packAll(typeUrl, body.resources) });
    const sent = [];
    for (const stream of streams.values()) {
      const result = pushSnapshot(stream, typeUrl);
      if (result) sent.push(result);
    }
    return { sent };
  },
  send(body) {
    const typeUrl = body.type_url || fullTypeUrl(body.type);
    const stream = streamFor(body.stream);
    return write(stream, typeUrl, String(body.version || ''), packAll(typeUrl, body.resources), {
      padding_bytes: body.padding_bytes || 0,
    });
  },
  garbage(body) {
    const stream = streamFor(body.stream);
    const bytes = Buffer.from(body.hex, 'hex');
    log({ event: 'garbage', stream: stream.id, bytes: bytes.length });
    stream.call.write(bytes);
    return { stream: stream.id };
  },
  end_streams(body) {
    const ended = [];
    for (const stream of streams.values()) {
      if (!stream.open) continue;
      stream.call.emit('error', { code: body.code || grpc.status.UNAVAILABLE, details: body.details || 'ended by the test' });
      ended.push(stream.id);
    }
    return { ended };
  },
  async hostile_h2(body) {
    await hostile(body.scenario, body.connections || 1);
    return { port: adsPort };
  },
};

function state() {
  return {
    mode,
    open_streams: [...streams.values()].filter((s) => s.open).map((s) => s.id),
    ads_port: adsPort,
  };
}

function control(request, response) {
  let body = '';
  request.on('data', (chunk) => (body += chunk));
  request.on('end', async () => {
    const reply = (status, object) => {
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(object));
    };
    try {
      const name = request.url.replace(/^\//, '');
      if (request.method === 'GET' && name === 'state') return reply(200, state());
      const command = commands[name];
      if (request.method !== 'POST' || !command) throw new Error(`unknown command ${request.method} ${request.url}`);
      return reply(200, await command(body ? JSON.parse(body) : {}));
    } catch (error) {
      log({ event: 'control_error', url: request.url, message: error.message });
      return reply(400, { error: error.message });
    }
  });
}

async function main() {
  await bindGrpc();
  const controlServer = http.createServer(control);
  await new Promise((resolve) => controlServer.listen(0, '127.0.0.1', resolve));
  const controlPort = controlServer.address().port;
  log({ event: 'listening', ads_port: adsPort, control_port: controlPort });
  const readyFile = args['ready-file'];
  fs.writeFileSync(readyFile + '.tmp', JSON.stringify({ ads_port: adsPort, control_port: controlPort }));
  fs.renameSync(readyFile + '.tmp', readyFile);
}

process.on('SIGTERM', () => {
  if (grpcServer) grpcServer.forceShutdown();
  if (hostileServer) hostileServer.close();
  process.exit(0);
});

main().catch((error) => {
  console.error(`xds_test_control_plane: ${error.stack || error.message}`);
  process.exit(1);
});
