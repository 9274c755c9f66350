#!/usr/bin/env bash
# Benchmarks kmsxacct against the AWS CLI and boto3 doing the same job, on the harness LocalStack.
# Writes bench/RESULTS.md. Usage: scripts/bench.sh [RUNS] (default 10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
runs="${1:-10}"

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost"
export AWS_CONFIG_FILE="$repo/localstack/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$repo/localstack/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION

cache="${KMSXACCT_CACHE:-$HOME/.cache/kmsxacct}"
venv="$cache/bench-$(sha256sum bench/requirements.lock | cut -c1-12)"
if [ ! -f "$venv/.complete" ]; then
  echo "bench: installing pinned awscli and boto3 into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps -r bench/requirements.lock
  touch "$venv/.complete"
fi

# A LocalStack of the bench's own (fresh state, its own port): a long-lived one slows down as
# tests fill it with keys and roles, which would skew the comparison.
export LOCALSTACK_PORT="${BENCH_LOCALSTACK_PORT:-4599}"
export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT"
started=0
if ! ./scripts/localstack.sh is-up; then
  ./scripts/localstack.sh start
  started=1
fi
trap 'if [ "$started" = 1 ]; then ./scripts/localstack.sh stop; fi' EXIT

pid_file="$cache/run-$LOCALSTACK_PORT/localstack.pid"
pid_args=()
if [ -f "$pid_file" ]; then pid_args=(--localstack-pid "$(cat "$pid_file")"); fi

echo "bench: building the release binary" >&2
cargo build --release --locked --quiet
PATH="$venv/bin:$PATH" "$venv/bin/python" scripts/bench.py \
  --binary "$repo/target/release/kmsxacct" --runs "$runs" --out bench/RESULTS.md --peers scripts/peers "${pid_args[@]}"

# The policy engine against iam-simulate: 10,000 seeded cases, both engines' speed.
echo "bench: the policy engine against iam-simulate (10,000 cases)" >&2
summary="$(./scripts/differential.sh 10000 1 target/release/kmsxacct)"
summary="$(printf '%s\n' "$summary" | sed -n '1,2p')"
{
  printf '\n## Policy engine against iam-simulate\n\n'
  printf '`scripts/differential.sh 10000 1` with the release binary: each engine decides the 10,000 cases five times over in one process (kmsxacct: one `explain --batch` process, its start included):\n\n'
  printf '%s\n' "$summary" | sed 's/^/    /'
} >> bench/RESULTS.md

# Key policy size per mode (fleet scale): listed accounts against an organisation grant.
echo "bench: key policy size per mode" >&2
size() {
  target/release/kmsxacct --output json policies --owner-account 111111111111 "$@" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_policy_bytes"])'
}
accounts() { for i in $(seq 1 "$1"); do printf -- '--user-account %012d ' $((200000000000 + i)); done; }
{
  printf '\n## Key policy size per mode\n\n'
  printf 'The whole key policy of a new key, in bytes as kmsxacct renders and sends it (`policies --output json`, `key_policy_bytes`; AWS limit: 32,768, which `plan` enforces).\n\n'
  printf '| user accounts | listed (--grant-to account) | listed (--grant-to role) | --org-id |\n| --- | --- | --- | --- |\n'
  for n in 10 50 200 1000; do
    # shellcheck disable=SC2046
    printf '| %s | %s | %s | %s |\n' "$n" "$(size $(accounts "$n"))" "$(size $(accounts "$n") --grant-to role)" \
      "$(size $(accounts "$n") --org-id o-a1b2c3d4e5)"
  done
} >> bench/RESULTS.md

# Fleet scale: setup rolling the roles out through a StackSet to 10, 50 and 200 accounts, and
# verify with its default sample. The integration harness provides the accounts (each with its
# StackSet execution role) and the proxy answering what LocalStack lacks for StackSets.
echo "bench: fleet setup through a StackSet (10, 50, 200 accounts)" >&2
fleet_rows="$(mktemp)"
KMSXACCT_TEST_ENDPOINT="$AWS_ENDPOINT_URL" KMSXACCT_BENCH_BINARY="$repo/target/release/kmsxacct" \
  KMSXACCT_BENCH_FLEET="$fleet_rows" \
  cargo test --locked --quiet --test integration stacksets::bench_fleet -- --ignored --exact >&2
{
  printf '\n## Fleet scale: StackSet rollout\n\n'
  printf '`setup --stackset-admin --org-id --accounts ...` (3 runs each, fresh accounts every run: setup'"'"'s figures from its median run, verify'"'"'s wall time the median, peak RSS the largest; after an unmeasured rollout to one account: LocalStack loads its CloudFormation provider on first use) and then `verify` (default `--sample 3`: static checks in every account, live round trips by role chaining in 3), release binary, through the test proxy that answers what LocalStack lacks for StackSets. StackSets operations: from the call that starts the first operation to the end of the last wait on one; on LocalStack, CreateStackInstances deploys every stack within the call. kmsxacct'"'"'s own share: the rest of the wall time (start-up, reads, key, alias, key policy, CreateStackSet, the record).\n\n'
  printf '| accounts | setup wall | StackSets operations | kmsxacct'"'"'s own share | setup AWS calls | setup peak RSS | verify wall | verify AWS calls | verify peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
  cat "$fleet_rows"
} >> bench/RESULTS.md
rm -f "$fleet_rows"
