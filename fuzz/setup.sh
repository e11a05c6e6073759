#!/usr/bin/env bash
# Installs what the fuzz targets need: a nightly toolchain (minimal profile) and cargo-fuzz.
# Idempotent: each step is skipped when already done, so running it again is cheap. Not part of
# CI (fuzzing is not in scripts/test.sh); run it once before fuzz/run.sh.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null || { echo "rustup not found: install Rust with rustup first" >&2; exit 1; }
if rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "nightly: $(rustup run nightly rustc --version)"
else
  rustup toolchain install nightly --profile minimal
fi
if cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz: $(cargo fuzz --version)"
else
  cargo install cargo-fuzz --locked
fi
