// grpc_peer_server.js: a @grpc/grpc-js server for the C client to call over
// mutual TLS (the client must present a certificate signed by --ca).
// "/test.Echo/Bidi" echoes every message, except "finish:N:text" (ends with
// status N and text) and "identity" (answers the client certificate's URI
// SAN); when the client half-closes it ends with OK. Writes its port to
// --port-file once listening; runs until killed.
//
// usage: node grpc_peer_server.js --ca CA --cert CRT --key KEY --port-file FILE
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const { echoService, parseArgs, readPem } = require('./grpc_peer_common');

function bidi(call) {
  call.on('data', (message) => {
    const text = message.toString('utf8');
    if (text.startsWith('finish:')) {
      const [, code, ...rest] = text.split(':');
      call.emit('error', { code: Number(code), details: rest.join(':') });
    } else if (text === 'identity') {
      const peer = call.getAuthContext().sslPeerCertificate;
      const uri = ((peer && peer.subjectaltname) || '')
        .split(', ')
        .find((name) => name.startsWith('URI:'));
      call.write(Buffer.from(uri ? uri.slice(4) : 'none'));
    } else {
      call.write(message);
    }
  });
  call.on('end', () => call.end());
}

function main() {
  const args = parseArgs(process.argv.slice(2), ['ca', 'cert', 'key', 'port-file']);
  const pem = readPem(args);
  const server = new grpc.Server();
  server.addService(echoService, { Bidi: bidi });
  const credentials = grpc.ServerCredentials.createSsl(
    pem.ca,
    [{ cert_chain: pem.cert, private_key: pem.key }],
    true, // require and verify a client certificate
  );
  server.bindAsync('127.0.0.1:0', credentials, (error, port) => {
    if (error) {
      console.error(`grpc_peer_server: bind failed: ${error.message}`);
      process.exit(1);
    }
    fs.writeFileSync(args['port-file'] + '.tmp', String(port));
    fs.renameSync(args['port-file'] + '.tmp', args['port-file']);
    console.log(`grpc_peer_server: listening on 127.0.0.1:${port}`);
  });
  process.on('SIGTERM', () => server.forceShutdown() || process.exit(0));
}

main();
