// ads_test_server.js: a real Aggregated Discovery Service server for the C
// ADS client (xds/ads/ads_client.h) to talk to: @grpc/grpc-js with Envoy's own
// .proto files (envoy_protos.js), over mutual TLS (the client must present a
// certificate signed by --ca). Used by //xds/ads:ads_client_node_test.
//
//   node ads_test_server.js --ca CA --cert CRT --key KEY --plan PLAN.json \
//       --log LOG.jsonl --port-file FILE
//
// It writes every DiscoveryRequest it receives, as Envoy's protos decode it,
// to --log (one JSON object a line, written before anything else happens):
//   {"event": "request", "stream": 1, "type_url", "version_info",
//    "response_nonce", "resource_names": [...], "error_detail": {code,
//    message} | null, "node": {id, cluster, user_agent_name,
//    user_agent_version, metadata: {key: string}} | null}
// and its progress: {"event": "stream_start" | "stream_end", "stream"},
// {"event": "step", "index", "step"}, then {"event": "plan_complete"} or
// {"event": "plan_failed", "index", "reason"}.
//
// PLAN.json is {"steps": [...]}, run in order; each step is one of:
//   {"expect": MATCH, "timeout_ms": 10000}
//       waits for a request not matched before (in arrival order) that
//       matches: every key given must be equal. Keys: type ("Cluster" or a
//       type URL), stream, version_info, response_nonce, resource_names
//       (array, in order), node (bool: carries one), error (bool: carries
//       error_detail), error_code, error_message (a substring). Later steps
//       answer on the stream of the last match.
//   {"send": {"type", "version", "nonce", "names": [...]}}
//       a DiscoveryResponse with one minimal resource per name (Cluster and
//       Listener by name, ClusterLoadAssignment by cluster_name, Secret by
//       name), encoded by Envoy's protos; "big_name_bytes": N adds one
//       more whose name is N bytes long (an oversized response).
//   {"send_garbage_hex": "0a10ab"}   these bytes as a gRPC message.
//   {"restart": {"down_ms": 1500}}
//       drops every connection and stops listening (grpc-js forceShutdown),
//       then listens again on the same port after down_ms.
//   {"finish": {"code": 14, "details": "..."}}   ends the stream with a
//       status (not OK: grpc-js sends OK only without details).
// When a step fails it logs plan_failed and stops running the plan (the
// server stays up, so the client's test times out and prints the log).
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const envoy = require('./envoy_protos');
const { parseArgs, readPem } = require('./grpc_peer_common');

const SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

const args = parseArgs(process.argv.slice(2), ['ca', 'cert', 'key', 'plan', 'log', 'port-file']);
const plan = JSON.parse(fs.readFileSync(args.plan, 'utf8'));
const pem = readPem(args);

function log(record) {
  fs.appendFileSync(args.log, JSON.stringify(record) + '\n');
}

// ---- requests in, as plain records ---------------------------------------------

const requests = []; // {record, call, consumed}
let waiter = null; // called when a request arrives
let streams = 0;

function nodeRecord(node) {
  if (!node) return null;
  const fields = (node.metadata && node.metadata.fields) || {};
  const metadata = {};
  for (const [key, value] of Object.entries(fields)) {
    metadata[key] = value.stringValue !== undefined ? value.stringValue : value.string_value;
  }
  return {
    id: node.id || '',
    cluster: node.cluster || '',
    user_agent_name: node.user_agent_name || '',
    user_agent_version: node.user_agent_version || '',
    metadata,
  };
}

function onRequest(call, stream, request) {
  const record = {
    event: 'request',
    stream,
    // proto-loader leaves out fields at their default: "" is absent.
    type_url: request.type_url || '',
    version_info: request.version_info || '',
    response_nonce: request.response_nonce || '',
    resource_names: request.resource_names || [],
    error_detail: request.error_detail
      ? { code: request.error_detail.code || 0, message: request.error_detail.message || '' }
      : null,
    node: nodeRecord(request.node),
  };
  log(record);
  console.error(`ads_test_server: request ${JSON.stringify(record)}`);
  requests.push({ record, call, consumed: false });
  if (waiter) waiter();
}

function streamAggregatedResources(call) {
  const stream = ++streams;
  log({ event: 'stream_start', stream });
  call.on('data', (request) => onRequest(call, stream, request));
  call.on('end', () => call.end());
  call.on('error', () => {});
  call.on('close', () => log({ event: 'stream_end', stream }));
}

// ---- matching ------------------------------------------------------------------

function sameArray(a, b) {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function matches(want, record) {
  for (const [key, value] of Object.entries(want)) {
    let ok;
    switch (key) {
      case 'type':
        ok = record.type_url === (value.includes('/') ? value : envoy.typeUrl(value));
        break;
      case 'stream':
      case 'version_info':
      case 'response_nonce':
        ok = record[key] === value;
        break;
      case 'resource_names':
        ok = sameArray(record.resource_names, value);
        break;
      case 'node':
        ok = (record.node !== null) === value;
        break;
      case 'error':
        ok = (record.error_detail !== null) === value;
        break;
      case 'error_code':
        ok = record.error_detail !== null && record.error_detail.code === value;
        break;
      case 'error_message':
        ok = record.error_detail !== null && record.error_detail.message.includes(value);
        break;
      default:
        throw new Error(`unknown expect key "${key}"`);
    }
    if (!ok) return false;
  }
  return true;
}

// expect(want, timeoutMs) resolves with the first unconsumed request that
// matches, waiting for one to arrive.
function expect(want, timeoutMs) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const found = requests.find((r) => !r.consumed && matches(want, r.record));
      if (!found) return false;
      found.consumed = true;
      clearTimeout(timer);
      waiter = null;
      resolve(found);
      return true;
    };
    const timer = setTimeout(() => {
      waiter = null;
      const pending = requests.filter((r) => !r.consumed).map((r) => r.record);
      reject(new Error(`no request matched within ${timeoutMs} ms; unmatched: ` +
        JSON.stringify(pending)));
    }, timeoutMs);
    if (!look()) waiter = look;
  });
}

// ---- responses out -------------------------------------------------------------

function resourceOf(type, name) {
  const fields = type === 'ClusterLoadAssignment' ? { cluster_name: name } : { name };
  return { type_url: envoy.typeUrl(type), value: envoy.encode(type, fields) };
}

function response(send) {
  return {
    version_info: send.version,
    type_url: envoy.typeUrl(send.type),
    nonce: send.nonce,
    resources: (send.names || [])
      .concat(send.big_name_bytes ? ['x'.repeat(send.big_name_bytes)] : [])
      .map((name) => resourceOf(send.type, name)),
  };
}

// ---- the server ----------------------------------------------------------------

let server = null;
let port = 0;
let currentCall = null; // the stream of the last expect's match

function serviceDefinition() {
  const definition = envoy.loadAdsPackageDefinition()[SERVICE];
  const method = definition.StreamAggregatedResources;
  const serialize = method.responseSerialize;
  // Raw Buffers go out as they are: the garbage step.
  method.responseSerialize = (value) => (Buffer.isBuffer(value) ? value : serialize(value));
  return definition;
}

const definition = serviceDefinition();

function listen(onListening) {
  server = new grpc.Server();
  server.addService(definition, { StreamAggregatedResources: streamAggregatedResources });
  const credentials = grpc.ServerCredentials.createSsl(
    pem.ca,
    [{ cert_chain: pem.cert, private_key: pem.key }],
    true,
  );
  server.bindAsync(`127.0.0.1:${port}`, credentials, (error, bound) => {
    if (error) {
      console.error(`ads_test_server: bind failed: ${error.message}`);
      process.exit(1);
    }
    port = bound;
    onListening();
  });
}

async function runPlan() {
  for (const [index, step] of plan.steps.entries()) {
    log({ event: 'step', index, step });
    if (step.expect) {
      const found = await expect(step.expect, step.timeout_ms || 10000);
      currentCall = found.call;
    } else if (!currentCall && !step.restart) {
      throw new Error(`step ${index} needs a stream: put an expect before it`);
    } else if (step.send) {
      currentCall.write(response(step.send));
    } else if (step.send_garbage_hex) {
      currentCall.write(Buffer.from(step.send_garbage_hex, 'hex'));
    } else if (step.finish) {
      currentCall.emit('error', { code: step.finish.code, details: step.finish.details });
    } else if (step.restart) {
      server.forceShutdown();
      currentCall = null;
      await new Promise((resolve) => setTimeout(resolve, step.restart.down_ms));
      await new Promise((resolve) => listen(resolve));
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
}

listen(() => {
  fs.writeFileSync(args['port-file'] + '.tmp', String(port));
  fs.renameSync(args['port-file'] + '.tmp', args['port-file']);
  console.error(`ads_test_server: listening on 127.0.0.1:${port}`);
  runPlan().then(
    () => log({ event: 'plan_complete' }),
    (error) => {
      log({ event: 'plan_failed', reason: error.message });
      console.error(`ads_test_server: plan failed: ${error.message}`);
    },
  );
});
process.on('SIGTERM', () => {
  if (server) server.forceShutdown();
  process.exit(0);
});
