#!/usr/bin/env bash
# Builds the Wasm guests (guests/) for wasm32-unknown-unknown, reproducibly, into guests/dist/.
#
#   scripts/build-guests.sh           rebuild and copy into guests/dist/ (then commit the result)
#   scripts/build-guests.sh --check   rebuild into a temp dir and compare with guests/dist/ byte for byte
#
# Reproducible: a fixed profile (no debug info, stripped, panic=abort, one codegen unit, LTO), the
# committed guests/Cargo.lock (--locked; registry crates such as prost are pinned by it), and a fixed build directory
# (/tmp/lattice-conform-guests, paths remapped), so the bytes depend only on the source and the
# compiler, not on where the repository is checked out. The compiler version is
# recorded in guests/dist/TOOLCHAIN: a different rustc may emit different bytes, so --check
# refuses to compare (exit 3) rather than report a false mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
dist="$root/guests/dist"
target=wasm32-unknown-unknown

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "the $target target is not installed (rustup target add $target)" >&2
  exit 3
fi

toolchain="$(rustc --version)"
if [ "$mode" = check ] && [ "$toolchain" != "$(cat "$dist/TOOLCHAIN")" ]; then
  echo "guests/dist was built with '$(cat "$dist/TOOLCHAIN")', this is '$toolchain': not comparable" >&2
  exit 3
fi

host_target="${CARGO_TARGET_DIR:-$root/target}"
# Cargo derives symbol hashes from a path dependency's absolute path, so the sources are copied to
# one fixed directory and built there: the bytes must not depend on where the repository is.
work=/tmp/lattice-conform-guests
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/crates" "$work/src/guests"
cp -r crates/lattice-logic crates/lattice-guest "$work/src/crates/"
(cd guests && cp -r Cargo.toml Cargo.lock logic_bridge.rs kvstore logstore kvstore-forget-one-head "$work/src/guests/")
export CARGO_TARGET_DIR="$work/target"
export RUSTFLAGS="--remap-path-prefix=$work/src=/lattice --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

# out-name  package  profile
guests=(
  "core-kvstore guest-kvstore release"
  "core-kvstore-small guest-kvstore release-small"
  "core-logstore guest-logstore release"
  "core-kvstore-forget-one-head guest-kvstore-forget-one-head release"
)

out="$work/dist"
mkdir -p "$out"
for g in "${guests[@]}"; do
  read -r name pkg profile <<<"$g"
  (cd "$work/src/guests" && cargo build --quiet --locked --target "$target" --profile "$profile" -p "$pkg")
  install -m 644 "$CARGO_TARGET_DIR/$target/$profile/${pkg//-/_}.wasm" "$out/$name.wasm"
done
echo "$toolchain" >"$out/TOOLCHAIN"

if [ "$mode" = check ]; then
  status=0
  for f in "$out"/*.wasm "$out/TOOLCHAIN"; do
    name="$(basename "$f")"
    if cmp -s "$f" "$dist/$name"; then
      echo "identical: guests/dist/$name"
    else
      echo "DIFFERS:   guests/dist/$name (rebuilt bytes do not match the committed file)" >&2
      status=1
    fi
  done
  exit $status
fi

mkdir -p "$dist"
rm -f "$dist"/*.wasm
cp "$out"/*.wasm "$out/TOOLCHAIN" "$dist/"
# DIGESTS: b3sum format (blake3 hex, two spaces, file name), computed by the host's own hasher.
(cd "$dist" && env -u RUSTFLAGS CARGO_TARGET_DIR="$host_target" \
  cargo run --quiet --locked --manifest-path "$root/Cargo.toml" -- wasm digest *.wasm) >"$dist/DIGESTS"
cat "$dist/DIGESTS"
