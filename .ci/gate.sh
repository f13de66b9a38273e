#!/usr/bin/env bash
# The project's own deploy gate: start the demo endpoint, check it with `prober check`
# against .ci/expect.yaml (JUnit in out/junit-gate.xml), stop it. Exit status is check's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
mkdir -p out
rm -f out/demo.ports
"$PY" -m prober demo serve --port-file out/demo.ports &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s out/demo.ports ] && break; sleep 0.1; done
[ -s out/demo.ports ] || { echo "gate: demo endpoint did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. out/demo.ports
"$PY" -m prober check "127.0.0.1:$FRONT" --expect .ci/expect.yaml --junit out/junit-gate.xml
