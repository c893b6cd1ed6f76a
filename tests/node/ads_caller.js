// ads_caller.js: one caller of xds-server's ADS stream, as a sidecar or an
// attacker would be, with @grpc/grpc-js and Envoy's own .proto files. It
// opens the stream with the given credentials, sends one DiscoveryRequest for
// the SDS secrets "default" and "ROOTCA" as the given node, and prints one
// JSON line with what came back:
//   {"status": CODE|null, "details": "...", "secrets": [{"name", "has_key",
//    "uri_sans"}]}
// (status null: the stream was still open when it stopped waiting). With
// --hold SECONDS it prints that line as soon as the first response arrives
// and keeps the stream open that long (a node that stays connected).
//
// usage: node ads_caller.js --address HOST:PORT --ca CA.crt
//            [--cert CRT --key KEY] [--token FILE] --node-id ID
//            [--namespace NS] [--service-account SA] [--wait SECONDS]
//            [--hold SECONDS]
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const envoy = require('./envoy_protos');
const { parseArgs } = require('./grpc_peer_common');

const args = parseArgs(process.argv.slice(2), ['address', 'ca', 'node-id']);
const SDS = envoy.typeUrl('Secret');

function credentials() {
  const ca = fs.readFileSync(args.ca);
  const channel = args.cert
    ? grpc.credentials.createSsl(ca, fs.readFileSync(args.key), fs.readFileSync(args.cert))
    : grpc.credentials.createSsl(ca);
  return channel;
}

function metadata() {
  const md = new grpc.Metadata();
  if (args.token) md.set('authorization', `Bearer ${fs.readFileSync(args.token, 'utf8').trim()}`);
  return md;
}

function describeSecret(any) {
  const secret = envoy.decode('Secret', any.value);
  const tls = secret.tls_certificate;
  const out = { name: secret.name, has_key: false, uri_sans: [] };
  if (tls) {
    out.has_key = Boolean(tls.private_key && tls.private_key.inline_bytes);
    const pem = Buffer.from(tls.certificate_chain.inline_bytes, 'base64').toString();
    const cert = new crypto.X509Certificate(pem);
    out.uri_sans = (cert.subjectAltName || '').split(', ')
      .filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  }
  return out;
}

function main() {
  const pkg = grpc.loadPackageDefinition(envoy.loadAdsPackageDefinition());
  const Ads = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  const client = new Ads(args.address, credentials(), {
    'grpc.ssl_target_name_override': args['server-name'] || 'xds.local',
  });
  const call = client.StreamAggregatedResources(metadata());
  const result = { status: null, details: '', secrets: [] };
  let printed = false;
  const finish = () => {
    if (!printed) console.log(JSON.stringify(result));
    printed = true;
    call.cancel();
    client.close();
  };
  call.on('data', (response) => {
    for (const any of response.resources) result.secrets.push(describeSecret(any));
    if (args.hold) {
      console.log(JSON.stringify(result));
      printed = true;
      setTimeout(finish, Number(args.hold) * 1000);
    }
  });
  call.on('error', () => {});
  call.on('status', (status) => {
    if (status.code !== grpc.status.CANCELLED || result.status === null) {
      result.status = status.code;
      result.details = status.details;
    }
    finish();
  });
  const fields = {};
  if (args.namespace) fields.NAMESPACE = { stringValue: args.namespace };
  if (args['service-account']) fields.SERVICE_ACCOUNT = { stringValue: args['service-account'] };
  call.write({
    node: { id: args['node-id'], cluster: 'test', metadata: { fields } },
    type_url: SDS,
    resource_names: ['default', 'ROOTCA'],
    version_info: '',
    response_nonce: '',
  });
  if (!args.hold) setTimeout(finish, Number(args.wait || 3) * 1000);
}

main();
