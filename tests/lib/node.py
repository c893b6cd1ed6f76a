"""node.py: the Node.js test peers (tests/node): a real gRPC implementation
(@grpc/grpc-js) and Envoy's own .proto files. node_modules is not a Bazel
input; it is found next to the real tests/node/package.json in the source
tree (`npm ci --prefix tests/node`, which tools/install-deps.sh runs)."""

import os
import shutil

from tests.lib.support import REPO_ROOT


def node_dir():
    """node_dir is the source tree's tests/node, where node_modules lives:
    under `bazel test` the script's runfile is a symlink into it."""
    script = os.path.join("tests", "node", "package.json")
    for base in (os.getcwd(), REPO_ROOT):
        candidate = os.path.join(base, script)
        if os.path.isfile(candidate):
            return os.path.dirname(os.path.realpath(candidate))
    raise AssertionError(f"{script} not found under {os.getcwd()} or {REPO_ROOT}")


def node_setup():
    """node_setup returns (node binary, tests/node folder), or fails saying
    how to install what is missing: a suite that skips must not pass."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not installed (tools/install-deps.sh installs it)")
    folder = node_dir()
    for package in ("@grpc/grpc-js", "@grpc/grpc-js-xds/deps/envoy-api", "@grpc/proto-loader",
                    "protobufjs"):
        if not os.path.isdir(os.path.join(folder, "node_modules", package)):
            raise AssertionError(f"{folder}/node_modules lacks {package}: run "
                                 "`npm ci --prefix tests/node` first (tools/install-deps.sh "
                                 "does it)")
    return node, folder


def node_script(name):
    """node_script returns [node, tests/node/NAME] to start a peer with."""
    node, folder = node_setup()
    return [node, os.path.join(folder, name)]
