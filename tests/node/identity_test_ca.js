// identity_test_ca.js: a small Istio CA for the sidecar's identity agent
// tests (tests/integration/test_identity.py): @grpc/grpc-js serving
// istio.v1.auth.IstioCertificateService/CreateCertificate over TLS, signing
// with the openssl CLI (`openssl ca`, so that a lifetime of a few seconds is
// possible). It can misbehave on purpose, for the sidecar to refuse.
//
//   node identity_test_ca.js --ca CA.crt --ca-key CA.key --cert SERVER.crt
//       --key SERVER.key --work DIR --log LOG.jsonl --ready-file FILE
//       [--client-ca CLIENT_CA.crt]   (ask for a client certificate; optional)
//
// It listens on 127.0.0.1 (the CA port and a control port of its own
// choosing) and writes {"port": N, "control_port": N} to --ready-file.
//
// Control: POST http://127.0.0.1:CONTROL/mode {"queue": [MODE, ...]}: the
// next requests are answered by these modes in turn, then "ok" again:
//   ok         the CSR's URI SAN, its key, for the lifetime asked for
//   wrong_id   the CSR's key, for spiffe://evil/ns/x/sa/y
//   wrong_key  the CSR's URI SAN for another key
//   expired    the CSR's URI SAN and key, expired a minute ago
//   two_uris   the CSR's URI SAN and another one
//   untrusted  signed by a CA of its own that nobody trusts
//   unavailable  grpc status UNAVAILABLE
// GET /state {"requests": N, "queue"}
//
// --log gets one JSON object a line per request: {"event": "request",
// "mode", "uri", "ttl", "authorization" (the header as sent, or null),
// "client_certificate" (bool), "serial" (lower-case hex) | null}.
'use strict';
const childProcess = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');
const { parseArgs } = require('./grpc_peer_common');

const args = parseArgs(process.argv.slice(2), [
  'ca', 'ca-key', 'cert', 'key', 'work', 'log', 'ready-file',
]);

// Istio's messages (xds/proto/istio/v1/auth/ca.proto, without the metadata
// Struct the sidecar does not send).
const root = protobuf.parse(`
  syntax = "proto3";
  package istio.v1.auth;
  message IstioCertificateRequest { string csr = 1; int64 validity_duration = 3; }
  message IstioCertificateResponse { repeated string cert_chain = 1; }
`, { keepCase: true }).root;
const Request = root.lookupType('istio.v1.auth.IstioCertificateRequest');
const Response = root.lookupType('istio.v1.auth.IstioCertificateResponse');

const service = {
  createCertificate: {
    path: '/istio.v1.auth.IstioCertificateService/CreateCertificate',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m) => Buffer.from(Request.encode(m).finish()),
    requestDeserialize: (b) => Request.toObject(Request.decode(b), { longs: Number }),
    responseSerialize: (m) => Buffer.from(Response.encode(Response.fromObject(m)).finish()),
    responseDeserialize: (b) => Response.decode(b),
  },
};

const log = fs.openSync(args.log, 'a');
function record(event) {
  fs.writeSync(log, JSON.stringify(event) + '\n');
}

let queue = [];
let requests = 0;
let counter = 0;

function run(argv, input) {
  return childProcess.execFileSync('openssl', argv, { input, cwd: args.work, stdio: 'pipe' });
}

// A CA of our own for "untrusted", and the config `openssl ca` needs.
fs.mkdirSync(args.work, { recursive: true });
const evil = path.join(args.work, 'evil');
run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
  '-keyout', evil + '.key', '-out', evil + '.crt', '-subj', '/CN=evil-ca', '-days', '2']);
fs.writeFileSync(path.join(args.work, 'index.txt'), '');

function stamp(date) {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\..*$/, '') + 'Z';
}

function csrUri(csr) {
  const text = run(['req', '-noout', '-text'], csr).toString();
  const match = text.match(/URI:([^\s,]+)/);
  return match ? match[1] : null;
}

// sign issues a certificate for the CSR `csr` (PEM) naming `uris`.
function sign(csr, uris, notBefore, notAfter, caCert, caKey) {
  const n = ++counter;
  const conf = path.join(args.work, `ca-${n}.cnf`);
  fs.writeFileSync(conf, [
    '[ca]', 'default_ca = mini', '[mini]', 'database = ./index.txt', 'new_certs_dir = .',
    'rand_serial = yes', 'default_md = sha256', 'policy = anything', 'unique_subject = no',
    'copy_extensions = none', '[anything]', '[ext]', 'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = serverAuth,clientAuth',
    'subjectAltName = ' + uris.map((u) => 'URI:' + u).join(','), '',
  ].join('\n'));
  const csrPath = path.join(args.work, `req-${n}.csr`);
  const out = path.join(args.work, `cert-${n}.crt`);
  fs.writeFileSync(csrPath, csr);
  run(['ca', '-batch', '-config', conf, '-cert', caCert, '-keyfile', caKey, '-in', csrPath,
    '-out', out, '-notext', '-subj', '/O=mesh', '-startdate', stamp(notBefore), '-enddate',
    stamp(notAfter), '-extfile', conf, '-extensions', 'ext']);
  return fs.readFileSync(out, 'utf8');
}

function otherCsr(uri) {
  const n = ++counter;
  const key = path.join(args.work, `other-${n}.key`);
  return run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-subj', '/', '-addext', 'subjectAltName=URI:' + uri]).toString();
}

function serialOf(pem) {
  const text = run(['x509', '-noout', '-serial'], pem).toString();
  return text.trim().replace(/^serial=/, '').toLowerCase().replace(/^0+/, '');
}

function createCertificate(call, callback) {
  requests++;
  const current = queue.length ? queue.shift() : 'ok';
  const auth = call.metadata.get('authorization');
  const event = {
    event: 'request', mode: current, ttl: call.request.validity_duration,
    authorization: auth.length ? String(auth[0]) : null,
    client_certificate: Boolean(call.getPeer && call.getAuthContext &&
      call.getAuthContext() && call.getAuthContext().sslPeerCertificate),
    uri: null, serial: null,
  };
  try {
    const csr = call.request.csr;
    const uri = csrUri(csr);
    event.uri = uri;
    if (current === 'unavailable') {
      record(event);
      callback({ code: grpc.status.UNAVAILABLE, details: 'the CA is resting' });
      return;
    }
    const now = Date.now();
    const ttl = Math.max(1, Number(call.request.validity_duration) || 3600);
    let notBefore = new Date(now - 1000);
    let notAfter = new Date(now + ttl * 1000);
    let request = csr;
    let uris = [uri];
    let caCert = args.ca;
    let caKey = args['ca-key'];
    if (current === 'wrong_id') uris = ['spiffe://evil/ns/x/sa/y'];
    if (current === 'two_uris') uris = [uri, 'spiffe://evil/ns/x/sa/y'];
    if (current === 'wrong_key') request = otherCsr(uri);
    if (current === 'expired') {
      notBefore = new Date(now - 3600 * 1000);
      notAfter = new Date(now - 60 * 1000);
    }
    if (current === 'untrusted') {
      caCert = evil + '.crt';
      caKey = evil + '.key';
    }
    const leaf = sign(request, uris, notBefore, notAfter, caCert, caKey);
    event.serial = serialOf(leaf);
    record(event);
    callback(null, { cert_chain: [leaf, fs.readFileSync(args.ca, 'utf8')] });
  } catch (e) {
    event.error = String(e.stderr || e);
    record(event);
    callback({ code: grpc.status.INTERNAL, details: String(e).slice(0, 200) });
  }
}

const clientCa = args['client-ca'] ? fs.readFileSync(args['client-ca']) : null;
const credentials = grpc.ServerCredentials.createSsl(
  clientCa,
  [{ cert_chain: fs.readFileSync(args.cert), private_key: fs.readFileSync(args.key) }],
  false,
);
const server = new grpc.Server();
server.addService(service, { createCertificate });

const control = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    res.setHeader('Content-Type', 'application/json');
    if (req.method === 'POST' && req.url === '/mode') {
      queue = JSON.parse(body || '{}').queue || [];
      res.end(JSON.stringify({ queue }));
    } else if (req.url === '/state') {
      res.end(JSON.stringify({ requests, queue }));
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ error: 'unknown command' }));
    }
  });
});

server.bindAsync('127.0.0.1:0', credentials, (error, port) => {
  if (error) throw error;
  control.listen(0, '127.0.0.1', () => {
    const controlPort = control.address().port;
    fs.writeFileSync(args['ready-file'], JSON.stringify({ port, control_port: controlPort }));
    record({ event: 'listening', port, control_port: controlPort });
  });
});
