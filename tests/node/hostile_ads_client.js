// hostile_ads_client.js: an attacker's ADS client against xds-server, on
// Node's own http2 module (no gRPC library: it sends what it likes), with
// DiscoveryRequests encoded by hand. Prints one JSON line with what it saw;
// tests/xds_server/xds_server_hostile_test.sh judges it.
//
// usage: node hostile_ads_client.js --mode MODE --address HOST:PORT
//            --ca CA.crt --cert CRT --key KEY [--id NODE_ID] [--streams N]
//            [--depth N] [--seconds S]
//   served   one well-formed stream (node --id) subscribing to CDS: ok when
//            a response arrives
//   deep     node.metadata nests a Value/ListValue --depth levels (30,000):
//            reports the stream's grpc-status and grpc-message
//   streams  --streams (1,000) streams opened at once on one connection,
//            before the server's SETTINGS are known: how many are answered,
//            refused (RST_STREAM REFUSED_STREAM) or left waiting
//   noread   --streams streams that subscribe to CDS again every 20 ms (a
//            request without a nonce is always answered) and never read a
//            byte: reports when the server closed the connection
'use strict';
const http2 = require('http2');
const { parseArgs, readPem } = require('./grpc_peer_common');

const args = parseArgs(process.argv.slice(2), ['mode', 'address', 'ca', 'cert', 'key']);
const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

// ---- protobuf by hand -------------------------------------------------------

function varint(n) {
  const bytes = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

// A length-delimited field.
function ld(number, payload) {
  return Buffer.concat([varint((number << 3) | 2), varint(payload.length), payload]);
}

const str = (number, text) => ld(number, Buffer.from(text));

// Struct { fields { key value } } entries with string values.
function stringEntry(key, value) {
  return ld(1, Buffer.concat([str(1, key), ld(2, str(3, value))]));
}

// A google.protobuf.Value `depth` levels deep: Value { list_value { values {
// ... { null_value } } } }, built inside out without copying it each level.
function deepValue(depth) {
  let inner = Buffer.from([0x08, 0x00]);
  let length = inner.length;
  const prefixes = [];
  for (let level = 1; level < depth; level++) {
    const number = level % 2 === 1 ? 1 : 6; // ListValue.values, Value.list_value
    const prefix = Buffer.concat([varint((number << 3) | 2), varint(length)]);
    prefixes.push(prefix);
    length += prefix.length;
  }
  prefixes.reverse();
  return Buffer.concat([...prefixes, inner]);
}

// A DiscoveryRequest: node (id, cluster, metadata NAMESPACE/SERVICE_ACCOUNT
// and maybe a deep entry), type_url, resource_names.
function discoveryRequest({ id, names = [], deep = 0 }) {
  const metadata = [stringEntry('NAMESPACE', 'hostile'), stringEntry('SERVICE_ACCOUNT', 'tester')];
  if (deep > 0) {
    const value = deepValue(deep % 2 === 1 ? deep : deep + 1);
    metadata.push(ld(1, Buffer.concat([str(1, 'deep'), ld(2, value)])));
  }
  const node = Buffer.concat([str(1, id), str(2, 'hostile'), ld(3, Buffer.concat(metadata))]);
  return Buffer.concat([
    ld(2, node),
    ...names.map((name) => str(3, name)),
    str(4, CDS),
  ]);
}

function frame(message) {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

// ---- http2 ------------------------------------------------------------------

function connect(options = {}) {
  const pem = readPem(args);
  const session = http2.connect(`https://${args.address}`, {
    ca: pem.ca,
    cert: pem.cert,
    key: pem.key,
    servername: 'localhost',
    ...options,
  });
  session.on('error', () => {});
  return session;
}

function openStream(session) {
  const stream = session.request({
    ':method': 'POST',
    ':path': ADS_PATH,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  return stream;
}

// Calls onStatus(status, message) from the trailers or a trailers-only
// response.
function onGrpcStatus(stream, onStatus) {
  const take = (headers) => {
    if (headers['grpc-status'] === undefined) return;
    onStatus(Number(headers['grpc-status']), decodeURIComponent(headers['grpc-message'] || ''));
  };
  stream.on('response', take);
  stream.on('trailers', take);
}

function finish(result) {
  console.log(JSON.stringify(result));
  process.exit(0);
}

const seconds = Number(args.seconds || 10);
setTimeout(() => finish({ timeout: true }), seconds * 1000).unref();

if (args.mode === 'served') {
  const session = connect();
  const stream = openStream(session);
  stream.write(frame(discoveryRequest({ id: args.id || 'served-hostile' })));
  stream.on('data', () => finish({ served: true }));
  onGrpcStatus(stream, (status, message) => finish({ served: false, status, message }));
} else if (args.mode === 'deep') {
  const session = connect();
  const stream = openStream(session);
  const message = discoveryRequest({ id: 'deep-hostile', deep: Number(args.depth || 30000) });
  stream.write(frame(message));
  onGrpcStatus(stream, (status, text) => finish({ bytes: message.length, status, message: text }));
} else if (args.mode === 'streams') {
  const count = Number(args.streams || 1000);
  // As if the server had allowed that many: the requests leave at once.
  const session = connect({ peerMaxConcurrentStreams: count * 2 });
  let answered = 0;
  let refused = 0;
  let other = 0;
  const report = () => {
    if (answered + refused + other === count) finish({ answered, refused, other, waiting: 0 });
  };
  for (let i = 0; i < count; i++) {
    const stream = openStream(session);
    let seen = false;
    stream.write(frame(discoveryRequest({ id: `s${i}-hostile` })));
    stream.on('data', () => {
      if (seen) return;
      seen = true;
      answered++;
      report();
    });
    stream.on('close', () => {
      if (seen) return;
      seen = true;
      if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) refused++;
      else other++;
      report();
    });
  }
  // Those neither answered nor refused wait for a slot: report after a while.
  setTimeout(() => finish({ answered, refused, other, waiting: count - answered - refused - other }),
    Math.min(seconds, 5) * 1000);
} else if (args.mode === 'noread') {
  const count = Number(args.streams || 50);
  // A small window, never widened: the server can send 64 KiB, then must queue.
  const session = connect({ settings: { initialWindowSize: 65535 } });
  const started = Date.now();
  session.on('close', () => finish({ closed_by_server: true, after_ms: Date.now() - started }));
  const streams = [];
  for (let i = 0; i < count; i++) {
    const stream = openStream(session);
    stream.pause(); // never read
    stream.write(frame(discoveryRequest({ id: `noread${i}-hostile` })));
    streams.push(stream);
  }
  // A request without a nonce is an initial one, always answered in full.
  setInterval(() => {
    for (const stream of streams) {
      if (!stream.destroyed) stream.write(frame(discoveryRequest({ id: 'ignored' })));
    }
  }, 20);
} else {
  throw new Error(`unknown --mode ${args.mode}`);
}
