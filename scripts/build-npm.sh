#!/usr/bin/env bash
# Builds the npm package `talkback-signalr` (client-wasm/npm) into client-wasm/npm/dist and packs
# it (client-wasm/npm/talkback-signalr-<version>.tgz):
#   1. cargo rustc --crate-type cdylib --profile wasm-release --target wasm32-unknown-unknown -p talkback-wasm
#      --features js-api (opt-level z, LTO, one codegen unit, panic=abort: root Cargo.toml), with std
#      rebuilt for size when the rust-src component can be had (see below; SMALL_STD=0 skips it)
#   2. wasm-bindgen --target web (the CLI must match the wasm-bindgen crate: 0.2.130)
#   3. wasm-opt -Oz from the npm package binaryen@132 (Debian's binaryen 108 produces modules
#      that fail in Chromium), installed on first use under $CARGO_TARGET_DIR/npm-tools; set
#      WASM_OPT=none to skip it
#   4. copies the JavaScript (minified by esbuild@0.28.2, from npm like binaryen, keeping
#      names so the error classes keep theirs; set MINIFY=0 to ship it as written), the
#      TypeScript definitions and package.json;
#   5. bundles the package for classic <script> tags, as the official dist/browser/signalr.js is
#      (esbuild --format=iife --global-name=signalR): dist/browser/talkback-signalr.js (readable)
#      and talkback-signalr.min.js, with a copy of the wasm module beside them, where the bundle
#      looks for it (next to the running script); then `npm pack`.
# Prints the sizes (raw / gzip / brotli) of what the package loads, beside the official client's,
# and of the script-tag bundle (an alternative to the ES module, not an addition to it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
npm_dir=client-wasm/npm
dist="$npm_dir/dist"

. scripts/wasm-common.sh
# `cargo rustc --crate-type cdylib`: the crate stays an rlib for Rust users and tests. The std
# is rebuilt for size where it can be (wasm_release_build in wasm-common.sh).
wasm_release_build rustc -p talkback-wasm --features js-api --lib --crate-type cdylib
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/talkback_wasm.wasm"

rm -rf "$dist"
mkdir -p "$dist"
wasm-bindgen --target web --no-typescript --out-dir "$dist" --out-name talkback_wasm "$wasm"

if ! wasm_opt_for_size "$dist/talkback_wasm_bg.wasm" "$dist/talkback_wasm_bg.wasm.opt" --converge --strip-producers; then
    echo "build-npm: wasm-opt not available; the wasm is not optimised further" >&2
else
    mv "$dist/talkback_wasm_bg.wasm.opt" "$dist/talkback_wasm_bg.wasm"
fi

cp "$npm_dir/src/index.js" "$npm_dir/src/msgpack.js" "$npm_dir/index.d.ts" "$npm_dir/package.json" "$dist/"
esbuild="$(npm_tool esbuild@0.28.2 esbuild)"
[ -n "$esbuild" ] || { echo "build-npm: esbuild@0.28.2 could not be installed from npm; it bundles dist/browser" >&2; exit 1; }

# The script-tag bundle, from the JavaScript as written (before it is minified below). Its entry
# re-exports the package and adds `protocols.msgpack`, which the official MessagePack add-on
# (signalr-protocol-msgpack.js) puts on the same global: `signalR.protocols.msgpack.
# MessagePackHubProtocol` and `.VERSION`. `var signalR = ...` at the top of a classic script is
# a property of the page's (or worker's) global object, as the official UMD bundle's is. The
# bundle finds its wasm module next to itself (index.js: `import.meta` is empty in an iife, so
# `document.currentScript` in a page, a stack trace in a worker), hence the copy in browser/.
browser_entry='export * from "./index.js";
import { MessagePackHubProtocol, VERSION } from "./index.js";
export const protocols = { msgpack: { MessagePackHubProtocol, VERSION } };'
mkdir -p "$dist/browser"
for min in "" --minify; do
    out="$PWD/$dist/browser/talkback-signalr${min:+.min}.js"
    (cd "$dist" && printf '%s\n' "$browser_entry" | "$esbuild" --bundle --format=iife --global-name=signalR \
        --platform=browser --target=es2022 --sourcefile=talkback-signalr.js $min ${min:+--keep-names} \
        --log-override:empty-import-meta=silent --log-level=warning --outfile="$out")
done
cp "$dist/talkback_wasm_bg.wasm" "$dist/browser/"

if [ "${MINIFY:-1}" != 0 ]; then
    for f in index.js msgpack.js talkback_wasm.js; do
        "$esbuild" "$dist/$f" --minify --keep-names --format=esm --target=es2022 --log-level=warning \
            --outfile="$dist/$f.min" && mv "$dist/$f.min" "$dist/$f"
    done
fi
[ -f "$npm_dir/README.md" ] && cp "$npm_dir/README.md" "$dist/"
(cd "$dist" && npm pack --pack-destination .. >/dev/null)

size() { printf '%-24s %9d raw %9d gzip %9d brotli\n' "$(basename "$1")" $(size_of "$1"); }
echo "talkback-signalr built in $dist:"
total_raw=0 total_gz=0 total_br=0
for f in talkback_wasm_bg.wasm talkback_wasm.js index.js msgpack.js; do
    line="$(size "$dist/$f")"
    echo "$line"
    set -- $line
    total_raw=$((total_raw + $2)) total_gz=$((total_gz + $4)) total_br=$((total_br + $6))
done
printf '%-24s %9d raw %9d gzip %9d brotli   (each file compressed on its own, as served)\n' \
    "total" "$total_raw" "$total_gz" "$total_br"
echo "official @microsoft/signalr 10: signalr.min.js 47,668 raw / 13,724 gzip; with signalr-protocol-msgpack 22,419 gzip"
echo "or, from a <script> tag (instead of the ES module above; the same wasm module):"
set -- $(size_of "$dist/browser/talkback-signalr.min.js") $(size_of "$dist/browser/talkback_wasm_bg.wasm")
size "$dist/browser/talkback-signalr.min.js"
printf '%-24s %9d raw %9d gzip %9d brotli   (with talkback_wasm_bg.wasm)\n' "total" $(($1 + $4)) $(($2 + $5)) $(($3 + $6))
