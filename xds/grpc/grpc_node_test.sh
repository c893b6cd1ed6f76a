#!/bin/bash
# grpc_node_test.sh: our gRPC transport against a real gRPC stack written
# elsewhere, @grpc/grpc-js, over mutual TLS on loopback, both ways:
#   1. our client (grpc_peer_tool client) -> tests/node/grpc_peer_server.js
#   2. tests/node/grpc_peer_client.js -> our server (grpc_peer_tool server)
# Certificates come from the certs CLI at test time. Needs node and
# tests/node/node_modules (npm ci --prefix tests/node).
set -u
NAME=grpc_node
# shellcheck source=tests/node/node_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/node/node_test_lib.sh"
TOOL="$RUNFILES/tools/grpc_peer_tool"
URI="spiffe://test.local/ns/default/sa/peer-client"
issue_certs "$URI"

# 1. Our client against grpc-js's server.
node "$NODE_DIR/grpc_peer_server.js" --ca "$DIR/ca/ca.crt" --cert "$DIR/server.crt" \
  --key "$DIR/server.key" --port-file "$DIR/node.port" >"$DIR/node_server.log" 2>&1 &
pids+=("$!")
if port=$(wait_for "$DIR/node.port" $! "$WAIT_PORT"); then
  if timeout 60 "$TOOL" client "127.0.0.1:$port" "$DIR/ca/ca.crt" "$DIR/client.crt" \
    "$DIR/client.key" "$URI"; then
    passed=$((passed + 1))
  else
    echo "FAIL: our client against the grpc-js server (server log below)" >&2
    cat "$DIR/node_server.log" >&2
    failed=$((failed + 1))
  fi
else
  echo "FAIL: the grpc-js server did not start:" >&2
  cat "$DIR/node_server.log" >&2
  failed=$((failed + 1))
fi

# 2. grpc-js's client against our server.
"$TOOL" server "$DIR/ca/ca.crt" "$DIR/server.crt" "$DIR/server.key" "$DIR/tool.port" \
  >"$DIR/tool_server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
if port=$(wait_for "$DIR/tool.port" $server_pid "$WAIT_PORT"); then
  if timeout 60 node "$NODE_DIR/grpc_peer_client.js" --address "127.0.0.1:$port" \
    --ca "$DIR/ca/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" \
    --server-name localhost --expect-uri "$URI"; then
    passed=$((passed + 1))
  else
    echo "FAIL: the grpc-js client against our server (server log below)" >&2
    cat "$DIR/tool_server.log" >&2
    failed=$((failed + 1))
  fi
  # Our server must shut down cleanly (its loop closes, no leak under ASan).
  kill -TERM $server_pid
  if ! wait $server_pid; then
    echo "FAIL: our server did not shut down cleanly:" >&2
    cat "$DIR/tool_server.log" >&2
    failed=$((failed + 1))
  fi
else
  echo "FAIL: our server did not start:" >&2
  cat "$DIR/tool_server.log" >&2
  failed=$((failed + 1))
fi

echo "grpc_node_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
