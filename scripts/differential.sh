#!/usr/bin/env bash
# Differential test of kmsxacct's policy engine against an independent evaluator,
# @cloud-copilot/iam-simulate (pinned by scripts/differential/package-lock.json, installed into
# the cache with `npm ci`, never globally), on N seeded random KMS requests and policies.
# Usage: scripts/differential.sh [N] [SEED] [BINARY]   (defaults: 10000, 1, target/debug/kmsxacct)
# Exit 1 when a disagreement is not explained by a rule of tests/differential-known.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-10000}"
seed="${2:-1}"
binary="${3:-target/debug/kmsxacct}"

cache="${KMSXACCT_CACHE:-$HOME/.cache/kmsxacct}"
dir="$cache/differential-$(sha256sum scripts/differential/package-lock.json | cut -c1-12)"
if [ ! -f "$dir/.complete" ]; then
  echo "differential: installing the pinned iam-simulate into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  cp scripts/differential/package.json scripts/differential/package-lock.json "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --silent)
  touch "$dir/.complete"
fi
if [ "$binary" = target/debug/kmsxacct ]; then
  cargo build --locked --quiet
fi
# ES modules resolve packages from the script's own folder: run the driver from the install.
cp scripts/differential/driver.mjs "$dir/driver.mjs"
exec node --expose-gc "$dir/driver.mjs" --binary "$(realpath "$binary")" --cases "$n" --seed "$seed" ${DIFFERENTIAL_JSON:+--json "$DIFFERENTIAL_JSON"}
