#!/usr/bin/env bash
# redis-setup.sh — installs Debian's redis-server for the Redis backplane tests
# (server-fixture/tests/backplane_*.rs) and `scripts/run.sh --redis`, idempotently and without
# prompts. Installing needs root and the Debian mirror. The package's own service is not used:
# the tests start their own redis-server on a free loopback port, so a system service (if apt
# started one) is stopped again to keep port 6379 and the CPU free.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
log() { printf '[redis-setup %s] %s\n' "$(date +%T)" "$*" >&2; }

if command -v redis-server >/dev/null; then
  log "redis-server is installed: $(redis-server --version | awk '{print $3}')"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then log "installing redis-server needs root"; exit 1; fi
log "apt-get install redis-server"
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# apt may have started the packaged service; the tests run their own instances.
if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
log "redis-server $(redis-server --version | awk '{print $3}')"
