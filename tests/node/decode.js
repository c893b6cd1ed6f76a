'use strict';
// decode.js TYPE FILE [EXPECTED.json]: reads FILE, a binary protobuf that our
// C code encoded, with Envoy's own .proto files and prints it as JSON (field
// names as in the .proto files, enums by name, 64-bit numbers as strings,
// bytes as base64, Any unpacked with its "@type"). With EXPECTED.json, also
// compares the result with it and exits 1 on any difference.
//
// TYPE is a short name (Cluster, ClusterLoadAssignment, Listener, TcpProxy,
// Secret, UpstreamTlsContext, DiscoveryRequest, DiscoveryResponse) or a full
// message name.
//
//   node tests/node/decode.js DiscoveryRequest /tmp/request.pb

const assert = require('assert');
const fs = require('fs');
const envoy = require('./envoy_protos');

function main(argv) {
  if (argv.length < 2 || argv.length > 3) {
    console.error('usage: node decode.js TYPE FILE [EXPECTED.json]');
    return 2;
  }
  const [typeName, file, expectedFile] = argv;
  const decoded = envoy.decode(typeName, fs.readFileSync(file));
  console.log(JSON.stringify(decoded, null, 2));
  if (expectedFile === undefined) return 0;
  const expected = JSON.parse(fs.readFileSync(expectedFile, 'utf8'));
  try {
    // Through JSON, so that both sides are plain objects.
    assert.deepStrictEqual(JSON.parse(JSON.stringify(decoded)), expected);
  } catch (error) {
    console.error(`${file}: Envoy's ${typeName} differs from ${expectedFile}:\n${error.message}`);
    return 1;
  }
  console.error(`${file}: Envoy's ${typeName} equals ${expectedFile}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
