#!/usr/bin/env bash
# cfn-lint, pinned with every dependency by scripts/cfn-lint/requirements.lock, installed once
# into a venv in the cache (never globally). Used by the export tests on the CloudFormation
# templates kmsxacct writes. Usage: scripts/cfn-lint.sh [cfn-lint arguments...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lock=scripts/cfn-lint/requirements.lock
cache="${KMSXACCT_CACHE:-$HOME/.cache/kmsxacct}"
venv="$cache/cfn-lint-$(sha256sum "$lock" | cut -c1-12)"
if [ ! -f "$venv/.complete" ]; then
  echo "cfn-lint: installing the pinned cfn-lint into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps -r "$lock"
  "$venv/bin/pip" check >/dev/null
  touch "$venv/.complete"
fi
exec "$venv/bin/cfn-lint" "$@"
