#!/usr/bin/env bash
# The ceiling of one worker (issue 14): bench/ceiling_app.py (a bare ASGI app answering a
# 640-byte JSON to a form POST) under uvicorn with uvloop + httptools, as `ostiary serve` runs,
# and under granian when it is installed in the venv (`uv pip install granian`, an A/B only: not
# a dependency), each pinned to core 0, wrk -t1 on core 1 at c=16 (CONCURRENCY), DUR seconds
# (default 8), ROUNDS alternating rounds (default 3). Prints one row per server and round.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PORT=${PORT:-8197}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-16}
LUA=$(mktemp --suffix .lua)
trap 'rm -f "$LUA"; [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true' EXIT
printf 'wrk.method="POST"\nwrk.body="grant_type=client_credentials&scope=models%%3Aread"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\n' >"$LUA"
servers="uvicorn"
[ -x "$VENV/bin/granian" ] && servers="$servers granian"
start() {
  case $1 in
    uvicorn) taskset -c 0 "$VENV/bin/uvicorn" --app-dir bench ceiling_app:app --host 127.0.0.1 \
      --port "$PORT" --loop uvloop --http httptools --no-access-log --log-level warning \
      >/dev/null 2>&1 & ;;
    granian) taskset -c 0 "$VENV/bin/granian" --interface asgi --host 127.0.0.1 --port "$PORT" \
      --workers 1 --loop uvloop --no-ws --log-level warning --working-dir bench ceiling_app:app \
      >/dev/null 2>&1 & ;;
  esac
  SERVER=$!
  for _ in $(seq 100); do curl -sf -X POST "http://127.0.0.1:$PORT/" >/dev/null && return; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
echo "| server | round | requests/s | p50 | p99 |"
echo "|---|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  for server in $servers; do
    start "$server"
    out=$(taskset -c 1 wrk -t1 -c"$CONCURRENCY" -d"${DUR}s" --latency -s "$LUA" "http://127.0.0.1:$PORT/")
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    echo "| $server | $round | $(echo "$out" | awk '/Requests\/sec/ {print $2}') | $(echo "$out" | awk '$1=="50%" {print $2}') | $(echo "$out" | awk '$1=="99%" {print $2}') |"
  done
done
