// grpc_peer_common.js: what the gRPC interop peers share: argument parsing,
// the generic "/test.Echo/Bidi" service with raw Buffer messages (no
// protobuf: serialize and deserialize are the identity), and credentials
// from PEM files.
'use strict';
const fs = require('fs');

const identity = (buffer) => buffer;

function method(path) {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

// The service both peers speak, and one method nobody serves.
const echoService = { Bidi: method('/test.Echo/Bidi') };
const unknownService = { Nope: method('/test.Echo/Nope') };

// parseArgs turns "--name value" pairs into an object; names in `required`
// must be present.
function parseArgs(argv, required) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument "${argv[i]}": expected --name value pairs`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of required) {
    if (args[name] === undefined) throw new Error(`missing --${name}`);
  }
  return args;
}

function readPem(args) {
  return {
    ca: fs.readFileSync(args.ca),
    cert: fs.readFileSync(args.cert),
    key: fs.readFileSync(args.key),
  };
}

module.exports = { echoService, unknownService, parseArgs, readPem };
