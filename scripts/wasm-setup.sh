#!/usr/bin/env bash
# wasm-setup.sh — make `cargo check --target wasm32-unknown-unknown` possible, idempotently and
# without prompts. Prints the rustup toolchain to use for wasm builds on its last stdout line and
# writes it to $WASM_ENV_FILE (default target/wasm-toolchain.env) as WASM_RUSTUP_TOOLCHAIN=...
#
# Two routes (WASM_TOOLCHAIN_MODE=auto|rustup|debian, default auto):
#   rustup : `rustup target add wasm32-unknown-unknown` on the active toolchain (needs the Rust
#            download server; about 2 s).
#   debian : Debian 12's rustc-web / cargo-web (bookworm-security) extracted to /opt/rust-web,
#            linked into rustup as toolchain "deb-web", with a wasm32 std built once from Debian's
#            rust-web-src (about 35 s). Needs root and the Debian apt mirror. Compiler and std
#            source versions must match exactly, so all packages are taken at one version.
#   auto   : rustup first (with a timeout), then debian.
set -euo pipefail

MODE="${WASM_TOOLCHAIN_MODE:-auto}"
RUSTUP_TIMEOUT="${WASM_RUSTUP_TIMEOUT:-180}"
WEB_PREFIX="${WASM_WEB_PREFIX:-/opt/rust-web}"
WEB_TOOLCHAIN="${WASM_WEB_TOOLCHAIN:-deb-web}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENV_FILE="${WASM_ENV_FILE:-$ROOT/target/wasm-toolchain.env}"

export DEBIAN_FRONTEND=noninteractive
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
log() { printf '[wasm-setup %s] %s\n' "$(date +%T)" "$*" >&2; }

active_toolchain() { rustup show active-toolchain | awk '{print $1}'; }

rustup_path() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "wasm32-unknown-unknown is already installed on $(active_toolchain)"
    return 0
  fi
  log "rustup target add wasm32-unknown-unknown (timeout ${RUSTUP_TIMEOUT}s)"
  timeout "$RUSTUP_TIMEOUT" rustup target add wasm32-unknown-unknown </dev/null >&2
}

debian_path() {
  local ver libstd llvm llvm_major tmp deb rlib_dir builder f
  if [ "$(id -u)" != 0 ]; then log "the Debian route needs root"; return 1; fi
  apt-get update -qq >&2
  ver=$(apt-cache policy rustc-web | awk '/Candidate:/{print $2}')
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then log "apt has no rustc-web"; return 1; fi
  libstd=$(apt-cache depends libstd-rust-web-dev | awk '/Depends: libstd-rust-web-[0-9]/{print $2; exit}')
  llvm=$(apt-cache depends "$libstd" | awk '/Depends: libllvm[0-9]+/{print $2; exit}')
  llvm_major=${llvm#libllvm}
  log "debian route: rustc-web $ver ($libstd, $llvm)"
  apt-get install -y -qq --no-install-recommends "$llvm" libgit2-1.5 "lld-$llvm_major" >/dev/null
  # rustc-web/cargo-web conflict with rustup in dpkg, so they are extracted, not installed.
  if [ ! -x "$WEB_PREFIX/usr/bin/cargo" ] || [ "$(cat "$WEB_PREFIX/.version" 2>/dev/null)" != "$ver" ]; then
    rm -rf "$WEB_PREFIX"; mkdir -p "$WEB_PREFIX"
    tmp=$(mktemp -d); chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -qq "rustc-web=$ver" "cargo-web=$ver" "libstd-rust-web-dev=$ver" \
        "$libstd=$ver" "rust-web-src=$ver" "rust-web-clippy=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$WEB_PREFIX"; done
    rm -rf "$tmp"
    echo "$ver" > "$WEB_PREFIX/.version"
  fi
  # rustup puts <toolchain>/lib on LD_LIBRARY_PATH; Debian keeps librustc_driver in lib/x86_64-linux-gnu.
  for f in "$WEB_PREFIX"/usr/lib/x86_64-linux-gnu/librustc_driver-*.so; do
    ln -sf "x86_64-linux-gnu/$(basename "$f")" "$WEB_PREFIX/usr/lib/$(basename "$f")"
  done
  # wasm32-unknown-unknown links with `rust-lld -flavor wasm`; Debian's rustc-web ships none.
  mkdir -p "$WEB_PREFIX/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin"
  ln -sf "/usr/lib/llvm-$llvm_major/bin/lld" "$WEB_PREFIX/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  rustup toolchain uninstall "$WEB_TOOLCHAIN" >/dev/null 2>&1 || true   # only drops an old link
  rustup toolchain link "$WEB_TOOLCHAIN" "$WEB_PREFIX/usr" >&2
  rlib_dir="$WEB_PREFIX/usr/lib/rustlib/wasm32-unknown-unknown/lib"
  if ! ls "$rlib_dir"/libstd-*.rlib >/dev/null 2>&1; then
    builder=$(mktemp -d)
    mkdir -p "$builder/src"
    printf '#![no_std]\n' > "$builder/src/lib.rs"
    cat > "$builder/Cargo.toml" <<'TOML'
[package]
name = "wasm-sysroot-builder"
version = "0.0.0"
edition = "2021"
publish = false
[profile.release]
opt-level = 3
debug = 0
panic = "abort"
TOML
    log "building the wasm32-unknown-unknown std from $WEB_PREFIX/usr/src (about 35 s)"
    (cd "$builder" && env -u CARGO_BUILD_TARGET -u CARGO_TARGET_DIR -u CARGO_ENCODED_RUSTFLAGS \
        RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
        cargo "+$WEB_TOOLCHAIN" build --release --quiet \
          -Zbuild-std=std,panic_abort,test,proc_macro --target wasm32-unknown-unknown >&2)
    mkdir -p "$rlib_dir"
    for f in "$builder"/target/wasm32-unknown-unknown/release/deps/lib*.rlib; do
      case "$(basename "$f")" in libwasm_sysroot_builder-*) ;; *) cp "$f" "$rlib_dir/" ;; esac
    done
    rm -rf "$builder"
  fi
}

case "$MODE" in
  rustup) rustup_path; TC=$(active_toolchain) ;;
  debian) debian_path; TC="$WEB_TOOLCHAIN" ;;
  auto)
    if rustup_path; then TC=$(active_toolchain)
    else log "rustup could not add the target; trying Debian's rustc-web"; debian_path; TC="$WEB_TOOLCHAIN"; fi ;;
  *) echo "WASM_TOOLCHAIN_MODE must be auto, rustup or debian" >&2; exit 2 ;;
esac
mkdir -p "$(dirname "$ENV_FILE")"
printf 'WASM_RUSTUP_TOOLCHAIN=%s\n' "$TC" > "$ENV_FILE"
log "wasm toolchain: $TC ($(rustc "+$TC" -V))"
echo "$TC"
