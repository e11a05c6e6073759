#!/usr/bin/env bash
# Builds the npm package `talkback-signalr` (client-wasm/npm) into client-wasm/npm/dist and packs
# it (client-wasm/npm/talkback-signalr-<version>.tgz):
#   1. cargo rustc --crate-type cdylib --profile wasm-release --target wasm32-unknown-unknown -p talkback-wasm
#      --features js-api (opt-level z, LTO, one codegen unit, panic=abort: root Cargo.toml)
#   2. wasm-bindgen --target web (the CLI must match the wasm-bindgen crate: 0.2.130)
#   3. wasm-opt -Oz from the npm package binaryen@132 (Debian's binaryen 108 produces modules
#      that fail in Chromium), installed on first use under $CARGO_TARGET_DIR/npm-tools; set
#      WASM_OPT=none to skip it
#   4. copies the JavaScript, the TypeScript definitions and package.json, then `npm pack`.
# Prints the sizes (raw / gzip / brotli) of what the package loads.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
npm_dir=client-wasm/npm
dist="$npm_dir/dist"

# `cargo rustc --crate-type cdylib`: the crate stays an rlib for Rust users and tests.
cargo rustc --profile wasm-release --target wasm32-unknown-unknown -p talkback-wasm --features js-api \
    --lib --crate-type cdylib
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/talkback_wasm.wasm"

rm -rf "$dist"
mkdir -p "$dist"
wasm-bindgen --target web --no-typescript --out-dir "$dist" --out-name talkback_wasm "$wasm"

wasm_opt="${WASM_OPT:-}"
if [ -z "$wasm_opt" ]; then
    tools="$target_dir/npm-tools"
    wasm_opt="$tools/node_modules/.bin/wasm-opt"
    if [ ! -x "$wasm_opt" ]; then
        mkdir -p "$tools"
        (cd "$tools" && [ -f package.json ] || echo '{"private":true}' >package.json)
        npm install --prefix "$tools" --no-audit --no-fund binaryen@132.0.0 >/dev/null || true
    fi
fi
if [ "$wasm_opt" != none ] && [ -x "$wasm_opt" ]; then
    "$wasm_opt" -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
        "$dist/talkback_wasm_bg.wasm" -o "$dist/talkback_wasm_bg.wasm.opt"
    mv "$dist/talkback_wasm_bg.wasm.opt" "$dist/talkback_wasm_bg.wasm"
else
    echo "build-npm: wasm-opt not available; the wasm is not optimised further" >&2
fi

cp "$npm_dir/src/index.js" "$npm_dir/src/msgpack.js" "$npm_dir/index.d.ts" "$npm_dir/package.json" "$dist/"
[ -f "$npm_dir/README.md" ] && cp "$npm_dir/README.md" "$dist/"
(cd "$dist" && npm pack --pack-destination .. >/dev/null)

size() {
    local f=$1
    printf '%-24s %9d raw %9d gzip %9d brotli\n' "$(basename "$f")" "$(wc -c <"$f")" \
        "$(gzip -9 -c "$f" | wc -c)" "$( (brotli -c -q 11 "$f" 2>/dev/null || node -e 'process.stdout.write(require("zlib").brotliCompressSync(require("fs").readFileSync(process.argv[1])))' "$f") | wc -c)"
}
echo "talkback-signalr built in $dist:"
for f in talkback_wasm_bg.wasm talkback_wasm.js index.js msgpack.js; do size "$dist/$f"; done
cat "$dist"/talkback_wasm_bg.wasm "$dist"/*.js >"$target_dir/npm-total.bin"
size "$target_dir/npm-total.bin" | sed 's/^npm-total.bin  /total (concatenated)/'
