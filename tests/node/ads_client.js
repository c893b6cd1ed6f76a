// ads_client.js: a @grpc/grpc-js ADS client, with Envoy's own .proto files
// (envoy_protos.js), against xds-server (//xds-server:xds-server) over mutual TLS.
// It checks what a sidecar would notice. Prints one line per check; exits 1
// if any failed.
//
// usage: node ads_client.js --mode config|rotation --address HOST:PORT
//            --ca CA.crt --cert CRT --key KEY --status-url URL
//            [--config-dir DIR] [--certs-tool PATH --ca-dir DIR]
//        node ads_client.js --mode write-config --config-dir DIR
//
// --mode write-config writes the files --mode config starts from.
// --mode config (tests/xds_server/xds_server_test.sh, part 1):
//   subscribes to CDS, EDS, LDS and SDS ("default", "ROOTCA"), decodes every
//   response with Envoy's files and checks the resources from the JSON files,
//   the issued certificate (SPIFFE ID, signed by the CA, key matches), the
//   bundle; ACKs; edits a file and expects a new CDS version within a second;
//   NACKs it and finds the NACK in /status; sends a stale nonce and expects
//   no answer; breaks a file and finds the error in /status with the old
//   resources still served.
// --mode rotation (part 2, server started with --cert-ttl 6s --ca-overlap 3s):
//   the certificate is rotated within 4.2 s (50-70% of 6 s), signed by the
//   CA; then the CA files are replaced with a new CA (made with --certs-tool):
//   the bundle holds both CAs, the next certificate is signed by the new one,
//   and the old CA leaves the bundle after the overlap.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { execFileSync } = require('child_process');
const grpc = require('@grpc/grpc-js');
const envoy = require('./envoy_protos');
const { parseArgs, readPem } = require('./grpc_peer_common');

const args = parseArgs(process.argv.slice(2), ['mode']);
for (const name of ['address', 'ca', 'cert', 'key', 'status-url']) {
  if (args.mode !== 'write-config' && args[name] === undefined) throw new Error(`missing --${name}`);
}
const TYPE = {
  CDS: envoy.typeUrl('Cluster'),
  EDS: envoy.typeUrl('ClusterLoadAssignment'),
  LDS: envoy.typeUrl('Listener'),
  SDS: envoy.typeUrl('Secret'),
};
const NODE = {
  id: 'orders.shop',
  cluster: 'orders',
  // google.protobuf.Struct as protobufjs's bundled type spells it.
  metadata: { fields: { NAMESPACE: { stringValue: 'shop' }, SERVICE_ACCOUNT: { stringValue: 'orders' } } },
};
const SPIFFE_ID = 'spiffe://cluster.local/ns/shop/sa/orders';

let passed = 0;
let failed = 0;
function check(ok, what, detail) {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAIL: ${what}: ${detail}`);
  }
  return ok;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function getStatus() {
  return new Promise((resolve, reject) => {
    http.get(`${args['status-url']}/status`, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`/status is not JSON: ${body.slice(0, 200)}`));
        }
      });
    }).on('error', reject);
  });
}

// An ADS stream: responses are decoded with Envoy's files and queued per
// type; next(type, ms) waits for the next one.
class AdsStream {
  constructor() {
    const pkg = grpc.loadPackageDefinition(envoy.loadAdsPackageDefinition());
    const Ads = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
    const pem = readPem(args);
    this.client = new Ads(args.address, grpc.credentials.createSsl(pem.ca, pem.key, pem.cert), {
      'grpc.ssl_target_name_override': 'localhost',
    });
    this.call = this.client.StreamAggregatedResources();
    this.queues = {};
    this.waiters = {};
    this.closed = null;
    this.call.on('data', (response) => this.onResponse(response));
    this.call.on('error', () => {});
    this.call.on('status', (status) => (this.closed = status));
    this.first = true;
  }

  onResponse(response) {
    // Re-decode the raw bytes with envoy_protos for the plain-object form.
    const decoded = {
      version_info: response.version_info,
      nonce: response.nonce,
      type_url: response.type_url,
      received_at: Date.now(),
      resources: response.resources.map((any) => {
        const name = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
        return { type_url: any.type_url, value: envoy.decode(name, any.value) };
      }),
    };
    const type = response.type_url;
    (this.queues[type] = this.queues[type] || []).push(decoded);
    const waiter = this.waiters[type];
    if (waiter) {
      delete this.waiters[type];
      waiter();
    }
  }

  // next resolves with the next response of `type`, or null after `ms`.
  async next(type, ms) {
    const queue = (this.queues[type] = this.queues[type] || []);
    if (queue.length === 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.waiters[type] = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return queue.length ? queue.shift() : null;
  }

  send(request) {
    const message = Object.assign({ resource_names: [] }, request);
    if (this.first) message.node = NODE;
    this.first = false;
    this.call.write(message);
  }

  subscribe(type, names) {
    this.send({ type_url: type, resource_names: names, version_info: '', response_nonce: '' });
  }

  ack(type, response, names) {
    this.send({ type_url: type, resource_names: names, version_info: response.version_info,
      response_nonce: response.nonce });
  }

  nack(type, response, lastGoodVersion, names, message) {
    this.send({ type_url: type, resource_names: names, version_info: lastGoodVersion,
      response_nonce: response.nonce, error_detail: { code: 3, message } });
  }

  close() {
    this.call.end();
    this.client.close();
  }
}

// secrets maps a SDS response's secrets by name.
function secrets(response) {
  const out = {};
  for (const r of response ? response.resources : []) out[r.value.name] = r.value;
  return out;
}

// certificateOf checks a "default" secret: SPIFFE ID, key matches, signed by
// one of `cas`. Returns the X509Certificate or null.
function certificateOf(secret, cas, what) {
  if (!check(secret && secret.tls_certificate, `${what}: a tls_certificate`, JSON.stringify(secret))) return null;
  const chainPem = Buffer.from(secret.tls_certificate.certificate_chain.inline_bytes, 'base64');
  const keyPem = Buffer.from(secret.tls_certificate.private_key.inline_bytes, 'base64');
  const cert = new crypto.X509Certificate(chainPem);
  const key = crypto.createPrivateKey(keyPem);
  check((cert.subjectAltName || '').includes(`URI:${SPIFFE_ID}`), `${what}: URI SAN ${SPIFFE_ID}`,
    cert.subjectAltName);
  check(cert.checkPrivateKey(key), `${what}: the private key matches the certificate`, '');
  check(key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails.namedCurve === 'prime256v1',
    `${what}: ECDSA P-256 key`, JSON.stringify(key.asymmetricKeyDetails));
  const signer = cas.find((ca) => cert.verify(ca.publicKey));
  check(signer !== undefined, `${what}: signed by the CA`, cert.issuer);
  return cert;
}

function bundleOf(secret) {
  if (!secret || !secret.validation_context) return [];
  const pem = Buffer.from(secret.validation_context.trusted_ca.inline_bytes, 'base64').toString();
  return (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) || []).map(
    (block) => new crypto.X509Certificate(block));
}

function writeAtomic(file, text) {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

function clusterFile(timeout) {
  return JSON.stringify({
    resources: [
      {
        '@type': TYPE.CDS,
        name: 'backend',
        type: 'EDS',
        connect_timeout: timeout,
        eds_cluster_config: { eds_config: { ads: {} } },
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': envoy.typeUrl('UpstreamTlsContext'),
            sni: 'backend.shop.svc',
            common_tls_context: {
              tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {} } }],
              validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { ads: {} } },
            },
          },
        },
      },
      {
        '@type': TYPE.EDS,
        cluster_name: 'backend',
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8443 } } },
          load_balancing_weight: 3 }] }],
      },
      {
        '@type': TYPE.EDS,
        cluster_name: 'unrequested',
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.2', port_value: 1 } } } }] }],
      },
    ],
  }, null, 2);
}

async function configMode() {
  const dir = args['config-dir'];
  const caPem = fs.readFileSync(args.ca);
  const ca = new crypto.X509Certificate(caPem);
  const ads = new AdsStream();
  ads.subscribe(TYPE.CDS, []);
  ads.subscribe(TYPE.EDS, ['backend']);
  ads.subscribe(TYPE.LDS, []);
  ads.subscribe(TYPE.SDS, ['default', 'ROOTCA']);

  const cds = await ads.next(TYPE.CDS, 5000);
  const eds = await ads.next(TYPE.EDS, 5000);
  const lds = await ads.next(TYPE.LDS, 5000);
  const sds = await ads.next(TYPE.SDS, 5000);
  if (!check(cds && eds && lds && sds, 'a response for each of CDS, EDS, LDS, SDS',
    `CDS ${!!cds} EDS ${!!eds} LDS ${!!lds} SDS ${!!sds} ${JSON.stringify(ads.closed)}`)) return;

  const cluster = cds.resources.find((r) => r.value.name === 'backend');
  check(cluster && cluster.value.type === 'EDS' && cluster.value.connect_timeout.seconds === '1' &&
    cluster.value.connect_timeout.nanos === 500000000,
    'CDS: cluster "backend" from the files (type EDS, connect_timeout 1.5s)', JSON.stringify(cluster));
  const tls = cluster && cluster.value.transport_socket.typed_config;
  check(tls && tls['@type'] === envoy.typeUrl('UpstreamTlsContext') && tls.sni === 'backend.shop.svc' &&
    tls.common_tls_context.tls_certificate_sds_secret_configs[0].name === 'default',
  'CDS: the Any transport socket decodes as Envoy\'s UpstreamTlsContext', JSON.stringify(tls));
  check(eds.resources.length === 1 && eds.resources[0].value.cluster_name === 'backend',
    'EDS: only the requested ClusterLoadAssignment', JSON.stringify(eds.resources.map((r) => r.value.cluster_name)));
  const lb = eds.resources[0] && eds.resources[0].value.endpoints[0].lb_endpoints[0];
  check(lb && lb.endpoint.address.socket_address.port_value === 8443 && lb.load_balancing_weight.value === 3,
    'EDS: endpoint 127.0.0.1:8443 with weight 3 (a UInt32Value)', JSON.stringify(lb));
  const listener = lds.resources.find((r) => r.value.name === 'egress');
  const filter = listener && listener.value.filter_chains[0].filters[0];
  check(filter && filter.typed_config['@type'] === envoy.typeUrl('TcpProxy') && filter.typed_config.cluster === 'backend',
    'LDS: listener "egress" with a TcpProxy to "backend"', JSON.stringify(listener));

  const got = secrets(sds);
  check(Object.keys(got).sort().join(',') === 'ROOTCA,default', 'SDS: exactly the secrets asked for',
    Object.keys(got).join(','));
  const cert = certificateOf(got.default, [ca], 'SDS "default"');
  const bundle = bundleOf(got.ROOTCA);
  check(bundle.length === 1 && bundle[0].fingerprint256 === ca.fingerprint256,
    'SDS "ROOTCA": the bundle is the CA', `${bundle.length} certificates`);
  if (cert) {
    const ttl = (Date.parse(cert.validTo) - Date.now()) / 1000;
    check(ttl > 3500 && ttl <= 3601, 'the certificate lives 1 h (default --cert-ttl)', `${ttl} s left`);
  }
  ads.ack(TYPE.CDS, cds, []);
  ads.ack(TYPE.EDS, eds, ['backend']);
  ads.ack(TYPE.LDS, lds, []);
  ads.ack(TYPE.SDS, sds, ['default', 'ROOTCA']);

  let status = await (async () => {
    for (let i = 0; i < 20; i++) {
      const s = await getStatus();
      const node = s.nodes.find((n) => n.id === NODE.id);
      if (node && node.types.SDS && node.types.SDS.acked_version === sds.version_info) return s;
      await sleep(50);
    }
    return getStatus();
  })();
  let node = status.nodes.find((n) => n.id === NODE.id);
  check(node && node.cluster === 'orders' && node.spiffe_id === SPIFFE_ID &&
    node.bootstrap_spiffe_id === SPIFFE_ID &&
    /^127\.0\.0\.1:\d+$/.test(node.peer_address) && node.connected_since,
  '/status: the node, its cluster, peer address, bootstrap and issued SPIFFE IDs', JSON.stringify(node));
  check(node && ['CDS', 'EDS', 'LDS', 'SDS'].every((t) => node.types[t].synced),
    '/status: every type ACKed at the version sent', JSON.stringify(node && node.types));
  // One version per resource set: what the node ACKed is the set's version.
  check(node && [['CDS', cds], ['EDS', eds], ['LDS', lds]].every(([t, r]) =>
    status.resources[t].version === r.version_info && node.types[t].acked_version === r.version_info),
  '/status: each file set\'s version is the version_info sent and ACKed',
  JSON.stringify({ resources: status.resources, types: node && node.types }));
  check(node && cert && node.certificate.serial_number === cert.serialNumber.toLowerCase(),
    '/status: the issued certificate\'s serial', JSON.stringify(node && node.certificate));

  // An edit reaches the stream within a second.
  const edited = Date.now();
  writeAtomic(path.join(dir, 'backend.json'), clusterFile('2s'));
  const cds2 = await ads.next(TYPE.CDS, 3000);
  const elapsed = Date.now() - edited;
  const cluster2 = cds2 && cds2.resources.find((r) => r.value.name === 'backend');
  check(cds2 && cds2.version_info !== cds.version_info && cluster2.value.connect_timeout.seconds === '2' &&
    elapsed < 1000, `an edited file is a new CDS version within a second (${elapsed} ms)`,
  JSON.stringify(cds2 && cluster2));
  const noEds = await ads.next(TYPE.EDS, 300);
  check(noEds === null, 'EDS unchanged: nothing sent', JSON.stringify(noEds));

  // NACK the new version; /status shows it, and the version is not resent.
  if (cds2) {
    ads.nack(TYPE.CDS, cds2, cds.version_info, [], 'test NACK: connect_timeout too long');
    const again = await ads.next(TYPE.CDS, 500);
    check(again === null, 'a NACKed version is not sent again', JSON.stringify(again));
    status = await getStatus();
    node = status.nodes.find((n) => n.id === NODE.id);
    const nack = node && node.types.CDS.last_nack;
    check(nack && nack.message === 'test NACK: connect_timeout too long' && nack.version === cds2.version_info &&
      node.types.CDS.acked_version === cds.version_info,
    '/status: the last NACK (message, refused version), the ACKed version kept', JSON.stringify(node && node.types.CDS));
  }

  // A stale nonce is ignored, even with new names.
  ads.send({ type_url: TYPE.EDS, resource_names: ['backend', 'unrequested'], version_info: eds.version_info,
    response_nonce: 'no-such-nonce' });
  const stale = await ads.next(TYPE.EDS, 500);
  check(stale === null, 'a request with a stale nonce is ignored', JSON.stringify(stale));
  // The current nonce with new names is answered with just those.
  ads.ack(TYPE.EDS, eds, ['backend', 'unrequested']);
  const eds2 = await ads.next(TYPE.EDS, 2000);
  check(eds2 && eds2.resources.map((r) => r.value.cluster_name).sort().join(',') === 'backend,unrequested',
    'new EDS names are answered with exactly those', JSON.stringify(eds2 && eds2.resources.length));

  // An invalid file is reported; its last good version stays.
  writeAtomic(path.join(dir, 'backend.json'), '{"resources": [{"@type": "' + TYPE.CDS + '", "name": "backend", "conect_timeout": "1s"}]}');
  let fileError = null;
  for (let i = 0; i < 40 && !fileError; i++) {
    await sleep(50);
    status = await getStatus();
    fileError = status.file_errors.find((e) => e.file === 'backend.json');
  }
  check(fileError && fileError.error.includes('resources[0].conect_timeout') && fileError.serving_last_good_version,
    '/status: the invalid file, the JSON path of the problem, last good version kept', JSON.stringify(status.file_errors));
  check(status.resources.CDS.names.includes('backend') && status.resources.EDS.names.includes('backend'),
    'the resources of the invalid file are still served', JSON.stringify(status.resources));
  const noChange = await ads.next(TYPE.CDS, 300);
  check(noChange === null, 'nothing pushed for an invalid file', JSON.stringify(noChange));

  ads.close();
}

async function rotationMode() {
  const caPem = fs.readFileSync(args.ca);
  const oldCa = new crypto.X509Certificate(caPem);
  const ads = new AdsStream();
  ads.subscribe(TYPE.SDS, ['default', 'ROOTCA']);
  const first = await ads.next(TYPE.SDS, 5000);
  if (!check(first, 'an SDS response', JSON.stringify(ads.closed))) return;
  const cert1 = certificateOf(secrets(first).default, [oldCa], 'first certificate');
  ads.ack(TYPE.SDS, first, ['default', 'ROOTCA']);

  // 50-70% of 6 s: between 3 and 4.2 s after issuance.
  const second = await ads.next(TYPE.SDS, 6000);
  const after = second ? (second.received_at - first.received_at) / 1000 : -1;
  const cert2 = second ? certificateOf(secrets(second).default, [oldCa], 'rotated certificate') : null;
  check(cert1 && cert2 && cert2.serialNumber !== cert1.serialNumber && after >= 2.5 && after <= 4.5,
    `a new certificate (new serial) pushed within 4.2 s (${after.toFixed(2)} s)`,
    `${cert1 && cert1.serialNumber} -> ${cert2 && cert2.serialNumber}`);
  if (second) ads.ack(TYPE.SDS, second, ['default', 'ROOTCA']);

  // CA rotation: replace the CA files with a new CA.
  const fresh = path.join(path.dirname(args['ca-dir']), 'new-ca');
  execFileSync(args['certs-tool'], ['ca', '--out', fresh, '--cn', 'rotated CA']);
  const newCa = new crypto.X509Certificate(fs.readFileSync(path.join(fresh, 'ca.crt')));
  fs.copyFileSync(path.join(fresh, 'ca.key'), path.join(args['ca-dir'], 'ca.key.tmp'));
  fs.copyFileSync(path.join(fresh, 'ca.crt'), path.join(args['ca-dir'], 'ca.crt.tmp'));
  fs.renameSync(path.join(args['ca-dir'], 'ca.key.tmp'), path.join(args['ca-dir'], 'ca.key'));
  fs.renameSync(path.join(args['ca-dir'], 'ca.crt.tmp'), path.join(args['ca-dir'], 'ca.crt'));
  const rotatedAt = Date.now();
  let both = null;
  let signedByNew = null;
  let oldGone = null;
  while (Date.now() - rotatedAt < 9000 && !(both && signedByNew && oldGone)) {
    const r = await ads.next(TYPE.SDS, 9000 - (Date.now() - rotatedAt));
    if (!r) break;
    ads.ack(TYPE.SDS, r, ['default', 'ROOTCA']);
    const fingerprints = bundleOf(secrets(r).ROOTCA).map((c) => c.fingerprint256);
    const cert = new crypto.X509Certificate(
      Buffer.from(secrets(r).default.tls_certificate.certificate_chain.inline_bytes, 'base64'));
    if (!both && fingerprints.length === 2 && fingerprints.includes(oldCa.fingerprint256) &&
        fingerprints.includes(newCa.fingerprint256)) both = Date.now() - rotatedAt;
    if (!signedByNew && cert.verify(newCa.publicKey)) signedByNew = { at: Date.now() - rotatedAt, secret: secrets(r).default };
    if (both && !oldGone && fingerprints.length === 1 && fingerprints[0] === newCa.fingerprint256) oldGone = Date.now() - rotatedAt;
  }
  check(both !== null && both < 2000, `after a CA rotation the bundle holds the old and the new CA (${both} ms)`, '');
  check(signedByNew !== null, `the next certificate is signed by the new CA (${signedByNew && signedByNew.at} ms)`, '');
  if (signedByNew) certificateOf(signedByNew.secret, [newCa], 'certificate from the new CA');
  check(oldGone !== null && oldGone >= 2900, `the old CA leaves the bundle after --ca-overlap 3s (${oldGone} ms)`, '');
  const status = await getStatus();
  check(status.ca.rotations === 1 && status.ca.current.sha256_fingerprint === newCa.fingerprint256.replace(/:/g, '').toLowerCase(),
    '/status: one CA rotation, the new CA current', JSON.stringify(status.ca.current));
  ads.close();
}

// writeConfig writes the files the config mode expects the server to start
// with: backend.json (a cluster and two endpoint sets) and egress.json (one
// listener, a single resource with "@type").
function writeConfig() {
  const dir = args['config-dir'];
  writeAtomic(path.join(dir, 'backend.json'), clusterFile('1.5s'));
  writeAtomic(path.join(dir, 'egress.json'), JSON.stringify({
    '@type': TYPE.LDS,
    name: 'egress',
    address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': envoy.typeUrl('TcpProxy'), stat_prefix: 'egress', cluster: 'backend',
        idle_timeout: '300s', max_connect_attempts: 2 } }] }],
  }, null, 2));
}

async function main() {
  if (args.mode === 'write-config') {
    writeConfig();
    process.exit(0);
  }
  if (args.mode === 'config') await configMode();
  else if (args.mode === 'rotation') await rotationMode();
  else throw new Error(`unknown --mode ${args.mode}`);
  console.log(`ads_client ${args.mode}: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack}`);
  process.exit(1);
});
