// grpc_peer_client.js: a @grpc/grpc-js client calling the C server
// (//tools:grpc_peer_tool server) over mutual TLS, checking what a user of the
// server would notice: echoed payloads (up to 1 MiB), the half-close status,
// a status and message set by the server, the server seeing our certificate,
// UNIMPLEMENTED for an unknown method, RESOURCE_EXHAUSTED over 4 MiB, 50
// concurrent streams. Prints one line per check; exits 1 if any failed.
//
// usage: node grpc_peer_client.js --address HOST:PORT --ca CA --cert CRT
//            --key KEY --server-name NAME --expect-uri URI
'use strict';
const grpc = require('@grpc/grpc-js');
const { echoService, unknownService, parseArgs, readPem } = require('./grpc_peer_common');

const args = parseArgs(process.argv.slice(2), [
  'address', 'ca', 'cert', 'key', 'server-name', 'expect-uri',
]);
const pem = readPem(args);
const credentials = grpc.credentials.createSsl(pem.ca, pem.key, pem.cert);
const options = { 'grpc.ssl_target_name_override': args['server-name'] };
const Echo = grpc.makeGenericClientConstructor(echoService, 'Echo');
const Unknown = grpc.makeGenericClientConstructor(unknownService, 'Unknown');
const echo = new Echo(args.address, credentials, options);
const unknown = new Unknown(args.address, credentials, options);

// exchange sends `messages`, half-closes unless `keepOpen`, and resolves
// with the messages received and the final status.
function exchange(client, name, messages, keepOpen) {
  return new Promise((resolve) => {
    const call = client[name]();
    const received = [];
    call.on('data', (message) => received.push(message));
    call.on('error', () => {}); // the status event carries it
    call.on('status', (status) => resolve({ received, status }));
    for (const message of messages) call.write(message);
    if (!keepOpen) call.end();
  });
}

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
}

async function main() {
  const big = Buffer.alloc(1 << 20, 'm');
  let r = await exchange(echo, 'Bidi', [Buffer.from('hello'), Buffer.from('world'), big]);
  check(
    r.received.length === 3 && r.received[0].toString() === 'hello' &&
      r.received[1].toString() === 'world' && r.received[2].equals(big),
    'echo of three messages, the last 1 MiB',
    `got ${r.received.length} messages`,
  );
  check(r.status.code === 0 && r.status.details === 'bye', 'half-close ends with OK "bye"',
    JSON.stringify(r.status));

  r = await exchange(echo, 'Bidi', [Buffer.from('finish:9:c says no, 100% sure')], true);
  check(r.status.code === 9 && r.status.details === 'c says no, 100% sure',
    'status and message set by the server', JSON.stringify(r.status));

  r = await exchange(echo, 'Bidi', [Buffer.from('identity')]);
  const uri = r.received.length ? r.received[0].toString() : '(nothing)';
  check(uri === args['expect-uri'], 'the server saw our certificate\'s URI SAN', uri);

  r = await exchange(unknown, 'Nope', [Buffer.from('x')]);
  check(r.status.code === grpc.status.UNIMPLEMENTED, 'unknown method is UNIMPLEMENTED',
    JSON.stringify(r.status));

  r = await exchange(echo, 'Bidi', [Buffer.alloc(5 << 20, 'h')], true);
  check(r.status.code === grpc.status.RESOURCE_EXHAUSTED, 'a 5 MiB message is RESOURCE_EXHAUSTED',
    JSON.stringify(r.status));

  const calls = [];
  for (let i = 0; i < 50; i++) {
    const messages = [];
    for (let m = 0; m < 10; m++) messages.push(Buffer.from(`call ${i} message ${m}`));
    calls.push(exchange(echo, 'Bidi', messages));
  }
  const results = await Promise.all(calls);
  const good = results.filter((x, i) => x.status.code === 0 && x.received.length === 10 &&
    x.received[9].toString() === `call ${i} message 9`).length;
  check(good === 50, '50 concurrent streams of 10 messages each', `${good} of 50 right`);

  echo.close();
  unknown.close();
  console.log(`node client: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((error) => {
  console.log(`FAIL: ${error.stack}`);
  process.exit(1);
});
