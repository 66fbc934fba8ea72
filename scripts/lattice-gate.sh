#!/usr/bin/env bash
# The release gate run on REAL Lattice: builds adapters/lattice (an outside build that drives
# Lattice's own kernel, docs/BUILD_PROTOCOL.md) against a Lattice checkout you give it, then runs
# `verify` over the bundled corpus and `verify --repeat N` for the determinism verdicts.
#
# Usage: scripts/lattice-gate.sh [LATTICE_DIR]
#   LATTICE_DIR  a work tree of lost-tty/lattice (argument, else env LATTICE_DIR). Nothing is
#                fetched: the checkout must be there. Tested at cf716b7.
# Env:
#   TYPES     store types to verify (default "core:kvstore core:logstore")
#   REPEAT    runs per history for the determinism pass (default 3)
#   OUT_DIR   where the JSON reports go (default target/lattice-gate)
#   ADAPTER_BUILD_DIR  where the adapter is copied and built (default $TMPDIR/lattice-conform-adapter;
#                the build happens outside this repository's workspace, see adapters/lattice/Cargo.toml)
#   TMPDIR    where the adapter keeps each store's files (/dev/shm makes it ~10x faster: redb fsyncs)
# Needs: cargo and protoc (Debian package protobuf-compiler, for Lattice's prost-build).
# Exit: 0 when every verify passed, 1 when one failed, 2 on a setup error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LATTICE_DIR="${1:-${LATTICE_DIR:-}}"
[ -n "$LATTICE_DIR" ] || { echo "usage: scripts/lattice-gate.sh LATTICE_DIR (a lost-tty/lattice work tree)" >&2; exit 2; }
TYPES="${TYPES:-core:kvstore core:logstore}"
REPEAT="${REPEAT:-3}"
OUT_DIR="${OUT_DIR:-$ROOT/target/lattice-gate}"
BUILD="${ADAPTER_BUILD_DIR:-${TMPDIR:-/tmp}/lattice-conform-adapter}"

echo "== the host: lattice-conform (release)"
(cd "$ROOT" && cargo build --release --locked --quiet)
HOST="$ROOT/target/release/lattice-conform"

mkdir -p "$OUT_DIR"
BUILD_FILE="$OUT_DIR/lattice.build.json"
bash "$ROOT/scripts/lattice-adapter-build.sh" "$LATTICE_DIR" "$BUILD" "$BUILD_FILE"

rc=0
cd "$ROOT"
for t in $TYPES; do
  slug="${t//:/__}"
  echo "== verify --type $t (real Lattice)"
  "$HOST" verify --build "exec:$BUILD_FILE" --type "$t" --keep-going --quiet \
      --format json --output "$OUT_DIR/verify-$slug.json" || rc=1
  echo "== verify --type $t --repeat $REPEAT (determinism)"
  "$HOST" verify --build "exec:$BUILD_FILE" --type "$t" --keep-going --quiet --repeat "$REPEAT" \
      --format json --output "$OUT_DIR/verify-$slug-repeat$REPEAT.json" || rc=1
done
echo "== reports in $OUT_DIR; exit $rc"
exit $rc
