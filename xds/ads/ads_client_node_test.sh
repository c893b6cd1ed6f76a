#!/bin/bash
# ads_client_node_test.sh: the ADS client (xds/ads/ads_client.h) against a real
# ADS server written elsewhere: tests/node/ads_test_server.js, @grpc/grpc-js
# with Envoy's own .proto files, over mutual TLS on loopback. The server plays
# the plan below and records every DiscoveryRequest; the C driver
# (ads_client_test_driver) checks what the client reported and what the
# server recorded. Certificates come from the certs CLI at test time. Needs
# node and tests/node/node_modules (npm ci --prefix tests/node).
set -u
NAME=ads_client_node
# shellcheck source=tests/node/node_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/node/node_test_lib.sh"
DRIVER="$RUNFILES/xds/ads/ads_client_test_driver"
issue_certs spiffe://test.local/ns/shop/sa/orders

# The plan: what the server sends, and what it must receive in between (see
# ads_test_server.js). The driver ACKs everything except CDS version "2",
# and asks for the endpoints of the clusters it accepts; it takes responses
# of up to 64 KiB.
cat >"$DIR/plan.json" <<'EOF'
{"steps": [
  {"expect": {"type": "Cluster", "stream": 1, "version_info": "", "response_nonce": "", "node": true}},
  {"send": {"type": "Cluster", "version": "1", "nonce": "c1", "names": ["a", "b"]}},
  {"expect": {"type": "Listener", "stream": 1, "version_info": "", "response_nonce": "", "node": false}},
  {"send": {"type": "Listener", "version": "1", "nonce": "l1", "names": ["inbound"]}},

  {"expect": {"type": "ClusterLoadAssignment", "resource_names": ["a", "b"], "version_info": "", "response_nonce": ""}},
  {"expect": {"type": "Cluster", "version_info": "1", "response_nonce": "c1", "error": false}},
  {"expect": {"type": "Listener", "version_info": "1", "response_nonce": "l1", "error": false}},
  {"send": {"type": "ClusterLoadAssignment", "version": "1", "nonce": "e1", "names": ["a", "b"]}},
  {"expect": {"type": "ClusterLoadAssignment", "resource_names": ["a", "b"], "version_info": "1", "response_nonce": "e1", "error": false}},

  {"send": {"type": "Secret", "version": "1", "nonce": "s1", "names": ["x"]}},
  {"expect": {"type": "Secret", "version_info": "", "response_nonce": "s1", "error_code": 3, "error_message": "unexpected type"}},

  {"send": {"type": "Cluster", "version": "2", "nonce": "c2", "names": ["a", "b", "c"]}},
  {"expect": {"type": "Cluster", "version_info": "1", "response_nonce": "c2", "error_code": 3, "error_message": "cluster c: rejected by the test driver"}},

  {"send": {"type": "Cluster", "version": "3", "nonce": "c3", "names": ["a"]}},
  {"expect": {"type": "ClusterLoadAssignment", "resource_names": ["a"], "version_info": "1", "response_nonce": "e1", "error": false}},
  {"expect": {"type": "Cluster", "version_info": "3", "response_nonce": "c3", "error": false}},

  {"restart": {"down_ms": 1500}},
  {"expect": {"type": "Cluster", "stream": 2, "version_info": "3", "response_nonce": "", "node": true}},
  {"expect": {"type": "ClusterLoadAssignment", "stream": 2, "version_info": "1", "response_nonce": "", "resource_names": ["a"], "node": false}},
  {"expect": {"type": "Listener", "stream": 2, "version_info": "1", "response_nonce": "", "node": false}},

  {"send_garbage_hex": "0a10ab"},
  {"expect": {"type": "Cluster", "stream": 3, "version_info": "3", "response_nonce": "", "node": true}},
  {"send": {"type": "Cluster", "version": "4", "nonce": "c4", "names": ["a"]}},
  {"expect": {"type": "Cluster", "stream": 3, "version_info": "4", "response_nonce": "c4", "error": false}},

  {"send": {"type": "Cluster", "version": "5", "nonce": "c5", "names": ["a"], "big_name_bytes": 100000}},
  {"expect": {"type": "Cluster", "stream": 4, "version_info": "4", "response_nonce": "", "node": true}},
  {"expect": {"type": "ClusterLoadAssignment", "stream": 4, "version_info": "1", "response_nonce": ""}},
  {"expect": {"type": "Listener", "stream": 4, "version_info": "1", "response_nonce": ""}},
  {"finish": {"code": 14, "details": "plan complete"}}
]}
EOF

node "$NODE_DIR/ads_test_server.js" --ca "$DIR/ca/ca.crt" --cert "$DIR/server.crt" \
  --key "$DIR/server.key" --plan "$DIR/plan.json" --log "$DIR/requests.jsonl" \
  --port-file "$DIR/port" >"$DIR/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
if ! port=$(wait_for "$DIR/port" "$server_pid" "$WAIT_PORT"); then
  echo "FAIL: the ADS test server did not start:" >&2
  cat "$DIR/server.log" >&2
  exit 1
fi

if timeout 28 "$DRIVER" "127.0.0.1:$port" "$DIR/ca/ca.crt" "$DIR/client.crt" "$DIR/client.key" \
  "$DIR/requests.jsonl"; then
  echo "ads_client_node_test: passed"
  exit 0
fi
echo "FAIL: the ADS client against the grpc-js ADS server; the server's log:" >&2
cat "$DIR/server.log" >&2
exit 1
