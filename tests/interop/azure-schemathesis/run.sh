#!/usr/bin/env bash
# Property-based sweep of the fixture's Azure REST API from its own OpenAPI document, with
# schemathesis (PyPI). Not part of scripts/test.sh (it installs a Python tool and runs ~2 min).
#
#   tests/interop/azure-schemathesis/run.sh [extra `st run` options]
#
# Starts `talkback-fixture --azure --service-mode serverless` on a free port (the binary from
# $TALKBACK_FIXTURE_BIN or target/debug), signs every request with a token for its URL
# (azure_hooks.py, HS256 with Python's hmac), and runs the examples, coverage and fuzzing phases.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${TALKBACK_FIXTURE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/talkback-fixture}"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'schemathesis>=4,<5'; }
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
log="$(mktemp)"
timeout 600 "$bin" --port 0 --azure --azure-access-key "$key" --service-mode serverless >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q 'listening on' "$log" && break; sleep 0.1; done
url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)"
cd "$here"
SCHEMATHESIS_HOOKS=azure_hooks PYTHONPATH="$here" "$venv/bin/st" run "$url/api/openapi.json" \
  --url "$url" --phases examples,coverage,fuzzing --max-examples 20 "$@"
