#!/usr/bin/env bash
# Manage the pinned LocalStack used by the demo, the tests and the benchmarks.
#
#   scripts/localstack.sh install   create the venv from localstack/requirements.lock (once)
#   scripts/localstack.sh start     install if needed, start in host mode, wait for health
#   scripts/localstack.sh stop      stop the process this script started (by pid), nothing else
#   scripts/localstack.sh status    print whether it answers, and the pid we started
#   scripts/localstack.sh is-up     exit 0 if it answers with KMS, IAM and STS available, else 1
#
# The venv lives outside the repo's tracked files, in $KMSXACCT_CACHE (default ~/.cache/kmsxacct).
# Environment: LOCALSTACK_PORT (default 4566).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$here/localstack/requirements.lock"
cache="${KMSXACCT_CACHE:-$HOME/.cache/kmsxacct}"
lock_sum="$(sha256sum "$lock" | cut -c1-12)"
venv="$cache/localstack-$lock_sum"
port="${LOCALSTACK_PORT:-4566}"
run_dir="$cache/run-$port"
pid_file="$run_dir/localstack.pid"
log_file="$run_dir/localstack.log"
health="http://127.0.0.1:$port/_localstack/health"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

log() { printf 'localstack: %s\n' "$*" >&2; }

healthy() {
  python3 - "$health" <<'EOF' 2>/dev/null
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=2) as r:
    services = json.load(r).get("services", {})
ok = all(services.get(s) in ("available", "running") for s in ("kms", "iam", "sts"))
sys.exit(0 if ok else 1)
EOF
}

install() {
  if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
    return 0
  fi
  log "installing pinned LocalStack into $venv (about 30 s, once)"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --no-deps -r "$lock"
  "$venv/bin/pip" check >/dev/null || { log "pip check failed for $venv"; exit 1; }
  touch "$venv/.complete"
}

our_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if healthy; then
    log "already answering on 127.0.0.1:$port"
    return 0
  fi
  install
  mkdir -p "$run_dir"
  log "starting on 127.0.0.1:$port (log: $log_file)"
  (
    cd "$run_dir"
    GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=kms,iam,sts,cloudformation DNS_ADDRESS=0 \
      LOCALSTACK_VOLUME_DIR="$run_dir/volume" \
      exec setsid "$venv/bin/python" -m localstack.runtime.main >"$log_file" 2>&1 </dev/null
  ) &
  echo $! >"$pid_file"
  for _ in $(seq 1 120); do
    if healthy; then
      log "ready (pid $(cat "$pid_file"))"
      return 0
    fi
    if ! our_pid >/dev/null; then
      log "exited during start; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "not healthy after 60 s; see $log_file"
  stop
  exit 1
}

stop() {
  local pid
  if pid="$(our_pid)"; then
    log "stopping pid $pid"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  else
    log "no LocalStack started by this script is running on port $port"
  fi
  rm -f "$pid_file"
}

status() {
  if healthy; then echo "answering on 127.0.0.1:$port"; else echo "not answering on 127.0.0.1:$port"; fi
  if pid="$(our_pid)"; then echo "started by this script: pid $pid"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  is-up) healthy ;;
  *) echo "usage: $0 install|start|stop|status|is-up" >&2; exit 2 ;;
esac
