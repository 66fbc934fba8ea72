#!/usr/bin/env bash
# Certifies a Lattice hot fix: is the candidate checkout hash-equivalent to the baseline on every
# bundled history, their reordered deliveries, and generated cases? Both are real Lattice behind
# adapters/lattice; the certificate is bound to both adapter binaries' digests.
#
# Usage: scripts/lattice-certify.sh BASELINE_LATTICE_DIR CANDIDATE_LATTICE_DIR [certify options]
#   e.g. scripts/lattice-certify.sh ~/lattice-release ~/lattice-hotfix --cases 200 --type core:kvstore
# Env: OUT_DIR (default target/lattice-certify), TMPDIR (adapters' store files; /dev/shm is faster).
# Exit: that of `lattice-conform certify`: 0 equivalent (certificate written), 1 not equivalent
# (shrunk counterexample written), 2 unusable input.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 2 ] || { echo "usage: scripts/lattice-certify.sh BASELINE_LATTICE_DIR CANDIDATE_LATTICE_DIR [certify options]" >&2; exit 2; }
BASE="$1"; CAND="$2"; shift 2
OUT_DIR="${OUT_DIR:-$ROOT/target/lattice-certify}"
SCRATCH="${TMPDIR:-/tmp}/lattice-conform-certify"
(cd "$ROOT" && cargo build --release --locked --quiet)
bash "$ROOT/scripts/lattice-adapter-build.sh" "$BASE" "$SCRATCH/baseline" "$OUT_DIR/baseline.build.json"
bash "$ROOT/scripts/lattice-adapter-build.sh" "$CAND" "$SCRATCH/candidate" "$OUT_DIR/candidate.build.json"
cd "$OUT_DIR"
rm -f certify-counterexample.json
set +e
"$ROOT/target/release/lattice-conform" certify --baseline "exec:$OUT_DIR/baseline.build.json" \
  --candidate "exec:$OUT_DIR/candidate.build.json" --corpus "$ROOT/corpus" --out "$OUT_DIR/certificate.json" --force "$@"
rc=$?
echo "== certify exit $rc; outputs in $OUT_DIR"
exit $rc
