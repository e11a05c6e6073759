#!/usr/bin/env bash
# Where the npm package's wasm goes, by crate and module: run after scripts/build-npm.sh (same
# CARGO_TARGET_DIR). Rebinds the module that build built with its names kept, optimises it as
# the package's (wasm-opt -Oz, with -g so names survive: the same code, plus a name section),
# and sums function sizes with scripts/wasm-size-breakdown.py. Arguments go to that script
# (`--top 30` lists the largest functions too).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/talkback_wasm.wasm"
. scripts/wasm-common.sh
[ -f "$wasm" ] && [ -x "$target_dir/npm-tools/node_modules/.bin/wasm-opt" ] || { echo "run scripts/build-npm.sh first" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --no-typescript --keep-debug --out-dir "$work" --out-name named "$wasm"
wasm_opt_for_size "$work/named_bg.wasm" "$work/named.wasm" -g
python3 scripts/wasm-size-breakdown.py "$work/named.wasm" "$@"
