#!/usr/bin/env bash
# Builds adapters/lattice (real Lattice behind the build protocol) against a Lattice checkout and
# writes a build file for `--build exec:FILE` naming it. Fetches nothing.
#
# Usage: scripts/lattice-adapter-build.sh LATTICE_DIR BUILD_DIR BUILD_FILE
#   LATTICE_DIR  a lost-tty/lattice work tree (tested at cf716b7)
#   BUILD_DIR    where the adapter is copied and built: outside this repository, because Lattice's
#                crates inherit settings from their own workspace root (adapters/lattice/Cargo.toml)
#   BUILD_FILE   the exec build file written (program = the built adapter)
# Needs cargo and protoc (Debian package protobuf-compiler). CARGO_TARGET_DIR is honoured.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 3 ] || { echo "usage: scripts/lattice-adapter-build.sh LATTICE_DIR BUILD_DIR BUILD_FILE" >&2; exit 2; }
LATTICE_DIR="$(cd "$1" && pwd)" || { echo "$1: no such directory" >&2; exit 2; }
BUILD="$2"
[ -f "$LATTICE_DIR/lattice-kernel/Cargo.toml" ] || { echo "$LATTICE_DIR is not a Lattice checkout (no lattice-kernel/Cargo.toml)" >&2; exit 2; }
command -v protoc >/dev/null || { echo "protoc is missing (apt-get install protobuf-compiler)" >&2; exit 2; }
case "$(cd "$(dirname "$BUILD")" 2>/dev/null && pwd)/" in
  "$ROOT"/*) echo "$BUILD is inside this repository; build the adapter outside it" >&2; exit 2 ;;
esac
echo "== adapter: building in $BUILD against $LATTICE_DIR ($(git -C "$LATTICE_DIR" rev-parse --short HEAD 2>/dev/null || echo 'not a git work tree'))" >&2
mkdir -p "$BUILD"
rm -rf "$BUILD/src" "$BUILD/lattice-build-protocol"
cp -r "$ROOT/adapters/lattice/Cargo.toml" "$ROOT/adapters/lattice/Cargo.lock" "$ROOT/adapters/lattice/src" "$BUILD/"
cp -r "$ROOT/crates/lattice-build-protocol" "$BUILD/lattice-build-protocol"
sed -i 's|path = "../../crates/lattice-build-protocol"|path = "lattice-build-protocol"|' "$BUILD/Cargo.toml"
ln -sfn "$LATTICE_DIR" "$BUILD/lattice-src"
(cd "$BUILD" && cargo build --release --locked --quiet)
# Copied out of the target directory: two builds sharing a CARGO_TARGET_DIR keep their own binary.
cp "$(cd "${CARGO_TARGET_DIR:-$BUILD/target}" && pwd)/release/lattice-build-adapter" "$BUILD/lattice-build-adapter"
ADAPTER="$(cd "$BUILD" && pwd)/lattice-build-adapter"
mkdir -p "$(dirname "$3")"
printf '{"format":"lattice-conform/exec-build","format_version":1,"program":"%s","args":[]}\n' "$ADAPTER" > "$3"
echo "== adapter: $ADAPTER (build file $3)" >&2
