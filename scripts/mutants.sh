#!/usr/bin/env bash
# Mutation testing of the policy engine with its unit tests: cargo-mutants (pinned, installed into
# the cache, never globally) over src/policy/*.rs. Exit 1 when a mutant survives that
# tests/mutants-accepted.md does not list (by file and function, with a one-line reason).
# Usage: scripts/mutants.sh [OUTPUT_DIR] [extra cargo-mutants arguments...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=27.1.0
cache="${KMSXACCT_CACHE:-$HOME/.cache/kmsxacct}"
root="$cache/cargo-mutants-$version"
if [ ! -x "$root/bin/cargo-mutants" ]; then
  echo "mutants: installing cargo-mutants $version into $root" >&2
  cargo install --locked --quiet --version "$version" --root "$root" cargo-mutants
fi
out="${1:-target/mutants}"
shift || true
mkdir -p "$out"
status=0
"$root/bin/cargo-mutants" mutants --file 'src/policy/*.rs' --output "$out" "$@" -- --lib || status=$?
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts; anything else is a failure to run.
case "$status" in 0|2|3) ;; *) exit "$status" ;; esac
missed="$out/mutants.out/missed.txt"
unexplained=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  # "src/policy/x.rs:12:5: replace f -> bool with true" is accepted by a line of the accepted
  # list holding "src/policy/x.rs: replace f -> bool with true" (no line and column, which move).
  key=$(sed -E 's/^([^:]+):[0-9]+:[0-9]+:/\1:/' <<<"$line")
  if ! grep -qF -- "$key" tests/mutants-accepted.md; then
    echo "mutants: survived, not accepted: $line" >&2
    unexplained=$((unexplained + 1))
  fi
done < "$missed"
caught=$(wc -l < "$out/mutants.out/caught.txt")
unviable=$(wc -l < "$out/mutants.out/unviable.txt")
echo "mutants: $caught caught, $(wc -l < "$missed") missed ($unexplained not accepted), $unviable unviable"
[ "$unexplained" -eq 0 ]
