#!/usr/bin/env bash
# Regenerate checkpoint_pb2.py from checkpoint.proto with grpcio-tools' bundled protoc, so no
# system protoc is needed. Run from anywhere; uses the project's venv if there is one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
cd "$here"
"$py" -m grpc_tools.protoc -I. --python_out=. checkpoint.proto
echo "regenerated $here/checkpoint_pb2.py"
