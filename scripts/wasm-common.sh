# Sourced by the scripts that build and measure wasm modules (build-npm.sh, wasm-engine-floor.sh,
# wasm-marginal-size.sh, wasm-size-breakdown.sh), so that every size figure comes from the same
# build: the same std, the same wasm-opt and the same compression. Expects `target_dir` set.

# npm_tool <package@version> <binary>: prints the path of a build tool from npm, pinned and
# installed on first use under $target_dir/npm-tools ("" if it cannot be had).
npm_tool() {
    local tools="$target_dir/npm-tools" bin="$target_dir/npm-tools/node_modules/.bin/$2"
    if [ ! -x "$bin" ] || ! grep -q "\"version\": \"${1##*@}\"" "$tools/node_modules/${1%@*}/package.json" 2>/dev/null; then
        mkdir -p "$tools"
        [ -f "$tools/package.json" ] || echo '{"private":true}' >"$tools/package.json"
        # Saved to the tools' package.json: an install without it would prune the other tools.
        npm install --prefix "$tools" --no-audit --no-fund "$1" >/dev/null 2>&1 || true
    fi
    [ -x "$bin" ] && echo "$bin"
    return 0
}

# wasm_release_build <cargo subcommand and arguments>: builds for wasm32-unknown-unknown with
# the wasm-release profile, std rebuilt for size when the toolchain's rust-src can be had.
#
# The rebuilt std traps at once on a panic and keeps no source locations (RUSTC_BOOTSTRAP=1
# lets the stable compiler take `-Zbuild-std`): our modules set no panic hook, so a panic
# already ends in a trap, and this drops the panic formatting and location strings nothing
# could show, about a tenth of the package (README, "Size of the browser package"). Where
# rust-src cannot be had (or SMALL_STD=0), the prebuilt std is used, and the module works the same.
wasm_release_build() {
    local small_std=0
    if [ "${SMALL_STD:-1}" != 0 ] && { rustup component list --installed 2>/dev/null | grep -q '^rust-src' ||
        timeout 180 rustup component add rust-src >/dev/null 2>&1; }; then
        small_std=1
    fi
    if [ "$small_std" = 1 ] && RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
        cargo "$@" --profile wasm-release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort; then
        echo "std rebuilt for size (panics trap at once, no locations)" >&2
    else
        [ "$small_std" = 0 ] || echo "the size build of std failed; using the prebuilt std" >&2
        cargo "$@" --profile wasm-release --target wasm32-unknown-unknown
    fi
}

# The features every browser we test has; wasm-opt must be told it may use them.
wasm_opt_features=(--enable-bulk-memory --enable-sign-ext --enable-mutable-globals
    --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue)

# wasm_opt_for_size <in> <out> [extra wasm-opt flags]: wasm-opt -Oz from npm's binaryen@132
# (Debian's binaryen 108 produces modules that fail in Chromium). Returns 1 if it cannot be had.
wasm_opt_for_size() {
    local wasm_opt="${WASM_OPT:-$(npm_tool binaryen@132.0.0 wasm-opt)}"
    [ "$wasm_opt" != none ] && [ -x "$wasm_opt" ] || return 1
    "$wasm_opt" -Oz "${@:3}" "${wasm_opt_features[@]}" "$1" -o "$2"
}

# size_of <file>: "<raw> <gzip -9> <brotli -q 11>" (Node's zlib where the brotli command is missing).
size_of() {
    echo "$(wc -c <"$1") $(gzip -9 -c "$1" | wc -c) $( (brotli -c -q 11 "$1" 2>/dev/null ||
        node -e 'process.stdout.write(require("zlib").brotliCompressSync(require("fs").readFileSync(process.argv[1])))' "$1") | wc -c)"
}
