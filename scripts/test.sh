#!/usr/bin/env bash
# Everything CI runs: format check, clippy, unit tests, and the integration tests against a
# LocalStack this script starts (and stops again, if it started it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
port="${LOCALSTACK_PORT:-4566}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "unit tests (no network)"
cargo test --locked --lib --bins

step "policy engine against iam-simulate (1,000 seeded cases)"
./scripts/differential.sh 1000 1

step "pinned cfn-lint (for the CloudFormation export tests)"
./scripts/cfn-lint.sh --version

step "LocalStack"
started=0
if ! ./scripts/localstack.sh is-up; then
  ./scripts/localstack.sh start
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then ./scripts/localstack.sh stop; fi; }
trap cleanup EXIT

step "integration tests against LocalStack on 127.0.0.1:$port"
KMSXACCT_TEST_ENDPOINT="http://127.0.0.1:$port" cargo test --locked --test integration
