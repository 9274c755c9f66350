#!/usr/bin/env bash
# The whole story on two LocalStack sandbox accounts: A (111111111111) owns the key, B
# (222222222222) uses it. Starts LocalStack if needed (stops it again if it started it), builds
# kmsxacct, then runs setup -> verify -> teardown, printing each step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost"
export AWS_CONFIG_FILE="$repo/localstack/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$repo/localstack/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_REGION

started=0
if ! ./scripts/localstack.sh is-up; then
  ./scripts/localstack.sh start
  started=1
fi
work="$(mktemp -d)"
cleanup() {
  rm -rf "$work"
  if [ "$started" = 1 ]; then ./scripts/localstack.sh stop; fi
}
trap cleanup EXIT

echo "==> building kmsxacct"
cargo build --quiet --locked
bin="$repo/target/debug/kmsxacct"

run() {
  printf '\n$ kmsxacct %s\n' "$*"
  (cd "$work" && "$bin" "$@")
}

run plan --owner A --user B
run setup --owner A --user B --pending-window-days 7
run setup --owner A --user B --pending-window-days 7
run verify
run status
run rotate
run verify
run teardown
run status
run restore
run verify
run teardown
printf '\ndemo finished: plan, setup, verify, status, rotate, teardown and restore all succeeded\n'
