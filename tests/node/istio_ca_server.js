// istio_ca_server.js: an Istio CA written elsewhere, for the sidecar's
// tests: istio.v1.auth.IstioCertificateService/CreateCertificate on
// @grpc/grpc-js (xds/proto/istio/v1/auth/ca.proto loaded with
// @grpc/proto-loader), signing with the openssl CLI (`openssl ca` with an
// extension section that copies the CSR's one URI SAN once checked).
//
// Who calls: with --client-ca, the client certificate's one spiffe:// URI
// SAN (mutual TLS); with --token T, a request whose "authorization" is
// "Bearer T" is --token-identity. A CSR must ask for exactly that SPIFFE ID
// (one URI SAN, nothing else) or the call is PERMISSION_DENIED. The answer
// is [leaf, root] (Istio's convention: root last).
//
// --mode makes it misbehave, for the client's tests:
//   ok                 sign as asked (default)
//   other-identity     sign a certificate for spiffe://TD/ns/evil/sa/mallory
//   expired            sign one that expired an hour ago
//   error:CODE:TEXT    end every call with gRPC status CODE and TEXT
//   hang               never answer
//   garbage            answer with a chain that is not PEM
//   wrong-key          certify a key of our own, not the CSR's
//
// usage: node istio_ca_server.js --ca-cert CA.crt --ca-key CA.key
//          --tls-cert SERVER.crt --tls-key SERVER.key
//          [--client-ca BOOTSTRAP_CA.crt] [--token T --token-identity ID]
//          [--trust-domain cluster.local] [--mode ok] [--max-ttl 86400]
//          [--port 0]
// Prints the port on stdout (one line, digits only) once listening, then a
// JSON line per call on stderr. Runs until SIGTERM.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { parseArgs } = require('./grpc_peer_common');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'xds', 'proto');

// loadCaService returns IstioCertificateService's definition from our .proto.
function loadCaService() {
  const definition = protoLoader.loadSync('istio/v1/auth/ca.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).istio.v1.auth.IstioCertificateService;
}

function openssl(args, input) {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

// csrSans returns the CSR's SANs as ["URI:spiffe://...", "DNS:x", ...],
// after checking its self-signature; throws on a CSR that does not parse.
function csrSans(csrPem) {
  const text = openssl(['req', '-noout', '-verify', '-text'], csrPem);
  const match = /X509v3 Subject Alternative Name:[^\n]*\n\s*([^\n]*)/.exec(text);
  const sans = match ? match[1].split(', ').map((s) => s.trim()) : [];
  return { sans, asksCa: /CA:TRUE/.test(text) };
}

// asn1Time formats a Date as openssl ca's YYYYMMDDHHMMSSZ.
function asn1Time(date) {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

// sign signs `csrPem` for `uri` from `notBefore` to `notAfter` with
// `openssl ca` in a directory of its own; returns the leaf PEM.
function sign(args, csrPem, uri, notBefore, notAfter) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'istio-ca-'));
  try {
    fs.writeFileSync(path.join(dir, 'index.txt'), '');
    fs.writeFileSync(path.join(dir, 'csr.pem'), csrPem);
    fs.writeFileSync(
      path.join(dir, 'ca.cnf'),
      [
        '[ ca ]',
        'default_ca = d',
        '[ d ]',
        `database = ${dir}/index.txt`,
        `new_certs_dir = ${dir}`,
        'default_md = sha256',
        'policy = p',
        'unique_subject = no',
        'copy_extensions = none',
        'rand_serial = yes',
        '[ p ]',
        'commonName = optional',
        '[ leaf ]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth,clientAuth',
        `subjectAltName = URI:${uri}`,
        '',
      ].join('\n'),
    );
    openssl([
      'ca', '-batch', '-notext', '-config', path.join(dir, 'ca.cnf'),
      '-in', path.join(dir, 'csr.pem'), '-out', path.join(dir, 'leaf.pem'),
      '-cert', args['ca-cert'], '-keyfile', args['ca-key'], '-extensions', 'leaf',
      '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter),
    ]);
    return fs.readFileSync(path.join(dir, 'leaf.pem'), 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// newCsr makes a key and a CSR for `uri` of our own (mode wrong-key).
function newCsr(uri) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'istio-ca-key-'));
  try {
    openssl([
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'csr.pem'), '-subj', '/',
      '-addext', `subjectAltName=URI:${uri}`,
    ]);
    return fs.readFileSync(path.join(dir, 'csr.pem'), 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// callerIdentity returns the SPIFFE ID the caller proved, or throws a gRPC
// UNAUTHENTICATED error.
function callerIdentity(args, call) {
  const auth = call.metadata.get('authorization')[0];
  if (args.token !== undefined && auth === `Bearer ${args.token}`) return args['token-identity'];
  const peer = call.getAuthContext().sslPeerCertificate;
  const uris = ((peer && peer.subjectaltname) || '')
    .split(', ')
    .filter((name) => name.startsWith('URI:spiffe://'));
  if (uris.length === 1) return uris[0].slice(4);
  throw { code: grpc.status.UNAUTHENTICATED, details: 'no client certificate with one SPIFFE ID and no valid token' };
}

function createCertificate(args, root, call, callback) {
  const mode = args.mode;
  const log = { at: new Date().toISOString(), mode, validity_duration: call.request.validity_duration };
  const done = (error, response) => {
    log.status = error ? error.code : 0;
    if (error) log.details = error.details;
    console.error(JSON.stringify(log));
    callback(error, response);
  };
  if (mode === 'hang') return;
  if (mode.startsWith('error:')) {
    const [, code, ...text] = mode.split(':');
    return done({ code: Number(code), details: text.join(':') });
  }
  let identity;
  try {
    identity = callerIdentity(args, call);
  } catch (error) {
    return done(error);
  }
  log.identity = identity;
  let asked;
  try {
    asked = csrSans(call.request.csr);
  } catch (error) {
    return done({ code: grpc.status.INVALID_ARGUMENT, details: 'the CSR does not parse' });
  }
  log.asked = asked.sans;
  if (asked.sans.length !== 1 || asked.sans[0] !== `URI:${identity}` || asked.asksCa) {
    return done({
      code: grpc.status.PERMISSION_DENIED,
      details: `the CSR asks for ${asked.sans.join(', ') || 'nothing'}; the caller proved ${identity}`,
    });
  }
  const maxTtl = Number(args['max-ttl']);
  const ttl = call.request.validity_duration > 0 ? Math.min(call.request.validity_duration, maxTtl) : maxTtl;
  const now = Date.now();
  let notBefore = new Date(now - 60 * 1000);
  let notAfter = new Date(now + ttl * 1000);
  let uri = identity;
  let csr = call.request.csr;
  if (mode === 'other-identity') uri = `spiffe://${args['trust-domain']}/ns/evil/sa/mallory`;
  if (mode === 'expired') {
    notBefore = new Date(now - 2 * 3600 * 1000);
    notAfter = new Date(now - 3600 * 1000);
  }
  if (mode === 'wrong-key') csr = newCsr(uri);
  if (mode === 'garbage') return done(null, { cert_chain: ['not a certificate', root] });
  let leaf;
  try {
    leaf = sign(args, csr, uri, notBefore, notAfter);
  } catch (error) {
    return done({ code: grpc.status.INTERNAL, details: `openssl failed: ${error.message}` });
  }
  log.signed = uri;
  done(null, { cert_chain: [leaf, root] });
}

function main() {
  const args = parseArgs(process.argv.slice(2), ['ca-cert', 'ca-key', 'tls-cert', 'tls-key']);
  args.mode = args.mode || 'ok';
  args['trust-domain'] = args['trust-domain'] || 'cluster.local';
  args['max-ttl'] = args['max-ttl'] || '86400';
  if (args.token !== undefined && args['token-identity'] === undefined) {
    throw new Error('--token needs --token-identity');
  }
  const root = fs.readFileSync(args['ca-cert'], 'utf8');
  const server = new grpc.Server();
  server.addService(loadCaService().service, {
    CreateCertificate: (call, callback) => createCertificate(args, root, call, callback),
  });
  const clientCa = args['client-ca'] !== undefined ? fs.readFileSync(args['client-ca']) : null;
  const credentials = grpc.ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: fs.readFileSync(args['tls-cert']), private_key: fs.readFileSync(args['tls-key']) }],
    clientCa !== null, // mutual TLS when a client CA is given; a token otherwise
  );
  server.bindAsync(`127.0.0.1:${args.port || 0}`, credentials, (error, port) => {
    if (error) {
      console.error(`istio_ca_server: bind failed: ${error.message}`);
      process.exit(1);
    }
    console.log(String(port));
  });
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

if (require.main === module) main();

module.exports = { loadCaService };
