// istio_ca_client.js: a @grpc/grpc-js client of Istio's CA API, to check a
// CA (xds-server, or istio_ca_server.js) with a real gRPC implementation.
// It makes a P-256 key and a CSR for --spiffe-id with the openssl CLI,
// calls istio.v1.auth.IstioCertificateService/CreateCertificate over mutual
// TLS with the bootstrap certificate, and checks the answer:
//   --expect ok        a chain [leaf, ..., bundle]: the leaf certifies our
//                      key, its only SAN is URI --spiffe-id, it verifies to
//                      the last element, and lasts at most --validity s
//   --expect denied    a CSR for spiffe://.../ns/evil/sa/mallory instead:
//                      PERMISSION_DENIED naming both identities
//   --expect mismatch  the CA misbehaves: a leaf for another identity is
//                      noticed (exit 0 when it is)
//
// usage: node istio_ca_client.js --address 127.0.0.1:PORT --ca CA.crt
//          --cert BOOT.crt --key BOOT.key --spiffe-id ID
//          [--expect ok] [--validity 600] [--server-name localhost]
// Exits 0 when the answer is as expected, 1 (saying why) otherwise.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const { parseArgs, readPem } = require('./grpc_peer_common');
const { loadCaService } = require('./istio_ca_server');

function openssl(args, input) {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

function fail(why) {
  console.error(`istio_ca_client: FAIL: ${why}`);
  process.exit(1);
}

function main() {
  const args = parseArgs(process.argv.slice(2), ['address', 'ca', 'cert', 'key', 'spiffe-id']);
  const expect = args.expect || 'ok';
  const validity = Number(args.validity || 600);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'istio-ca-client-'));
  const asked = expect === 'denied' ? args['spiffe-id'].replace(/\/ns\/.*$/, '/ns/evil/sa/mallory') : args['spiffe-id'];
  openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'csr.pem'), '-subj', '/',
    '-addext', `subjectAltName=URI:${asked}`,
  ]);
  const csr = fs.readFileSync(path.join(dir, 'csr.pem'), 'utf8');
  const ourPublicKey = openssl(['pkey', '-in', path.join(dir, 'key.pem'), '-pubout']);

  const pem = readPem(args);
  const Service = loadCaService();
  const client = new Service(
    args.address,
    grpc.credentials.createSsl(pem.ca, pem.key, pem.cert),
    { 'grpc.ssl_target_name_override': args['server-name'] || 'localhost' },
  );
  const deadline = new Date(Date.now() + 15000);
  client.CreateCertificate({ csr, validity_duration: validity }, { deadline }, (error, response) => {
    client.close();
    try {
      check(error, response);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    console.log(`istio_ca_client: ${expect}: as expected`);
  });

  function check(error, response) {
    if (expect === 'denied') {
      if (!error || error.code !== grpc.status.PERMISSION_DENIED) {
        fail(`wanted PERMISSION_DENIED, got ${error ? `${error.code} ${error.details}` : 'a certificate'}`);
      }
      if (!error.details.includes(asked) || !error.details.includes(args['spiffe-id'])) {
        fail(`the refusal does not name both identities: ${error.details}`);
      }
      return;
    }
    if (error) fail(`CreateCertificate failed: ${error.code} ${error.details}`);
    const chain = response.cert_chain;
    if (!Array.isArray(chain) || chain.length < 2) fail(`a chain of ${chain && chain.length} elements`);
    fs.writeFileSync(path.join(dir, 'leaf.pem'), chain[0]);
    fs.writeFileSync(path.join(dir, 'bundle.pem'), chain[chain.length - 1]);
    fs.writeFileSync(path.join(dir, 'middle.pem'), chain.slice(1, -1).join(''));
    const sans = openssl(['x509', '-in', path.join(dir, 'leaf.pem'), '-noout', '-ext', 'subjectAltName']);
    const uris = sans.split('\n').slice(1).join(',').split(',').map((s) => s.trim()).filter((s) => s);
    if (expect === 'mismatch') {
      if (uris.length === 1 && uris[0] === `URI:${args['spiffe-id']}`) fail('the CA misbehaved, yet the leaf is right');
      return;
    }
    if (uris.length !== 1 || uris[0] !== `URI:${args['spiffe-id']}`) fail(`the leaf's SANs are ${uris.join(', ')}`);
    const leafKey = openssl(['x509', '-in', path.join(dir, 'leaf.pem'), '-noout', '-pubkey']);
    if (leafKey.trim() !== ourPublicKey.trim()) fail('the leaf certifies another key than the CSR\'s');
    const verifyArgs = ['verify', '-CAfile', path.join(dir, 'bundle.pem')];
    if (chain.length > 2) verifyArgs.push('-untrusted', path.join(dir, 'middle.pem'));
    try {
      openssl(verifyArgs.concat([path.join(dir, 'leaf.pem')]));
    } catch (e) {
      fail(`the leaf does not verify to the bundle: ${e.stdout}${e.stderr}`);
    }
    const end = openssl(['x509', '-in', path.join(dir, 'leaf.pem'), '-noout', '-enddate']);
    const lasts = (Date.parse(end.trim().replace('notAfter=', '')) - Date.now()) / 1000;
    if (lasts > validity + 5 || lasts < 0) fail(`the leaf lasts ${lasts} s; asked for ${validity}`);
  }
}

main();
