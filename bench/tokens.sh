#!/usr/bin/env bash
# Token endpoint load at concurrency 1, 16 and 64: one `ostiary serve` worker pinned to core 0,
# wrk pinned to core 1, against 127.0.0.1 only. Scenarios:
#   token       client_credentials grants/s (RFC 6749 section 4.4, an ES256 JWT each)
#   introspect  introspections/s of that access token (RFC 7662)
#   refresh     refresh grants/s with rotation (RFC 6749 section 6): every response's new
#               refresh token is presented next (bench/lua/refresh.lua); the pool of first
#               tokens comes from the real authorization code + PKCE flow over HTTP
#               (bench/refresh_tokens.py), one token per connection
#
#   bash bench/tokens.sh            # SQLite
#   bash bench/tokens.sh postgres   # PostgreSQL (a fresh database, dropped afterwards) + Redis
#
# Environment:
#   DUR=8                               seconds per load
#   SCENARIOS="token introspect refresh" which loads to run
#   CONCURRENCY="1 16 64"               which concurrency levels
#   ID_TOKEN_ALG=RS256                  the refresh client's ID token algorithm (--id-token-alg;
#                                       unset: the deployment default, RS256); access tokens
#                                       stay ES256
#   REF=<commit>                        benchmark a committed tree (git archive of src/, put
#                                       first on PYTHONPATH) instead of the working tree
#   VENV=.venv                          the virtual environment that runs the server and CLI
#   PROFILE=<dir>                       after each scenario, one more c=16 load (not in the
#                                       table) under py-spy; raw profiles go to
#                                       <dir>/<scenario>-<backend>.txt
#   PYSPY_ARGS="--idle"                 extra py-spy arguments (--idle: off-CPU waits too)
#   WORKERS=2                           `ostiary serve --workers 2` (Redis db 7 then, as workers
#                                       need it), the server and wrk on both cores (not pinned):
#                                       what one host of this machine's size serves; the CPU
#                                       columns then describe the supervisor only
#   LOG_LEVEL=warning                   the server's OSTIARY_LOG_LEVEL; at info (one JSON access
#                                       line per request) the script stops the server at the end
#                                       and counts the access lines per route against the
#                                       responses wrk counted (bench/log_levels.sh alternates both)
#
# "server CPU" is the worker's user + system time during the load over its duration: well
# under 100% means the load waits (locks, the database) rather than computes. "other on core
# 0" is what everything else (PostgreSQL, Redis, kernel work, other users of a shared machine)
# took of the worker's core meanwhile: a load with much of it is disturbed, run it again.
# "CPU µs/req" is the worker's CPU time (all threads, from /proc/PID/task/*/schedstat) per
# response: what a request costs, which holds better than requests/s when the core is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
PORT=${PORT:-8191}
DUR=${DUR:-8}
SCENARIOS=${SCENARIOS:-token introspect refresh}
CONCURRENCY=${CONCURRENCY:-1 16 64}
PROFILE=${PROFILE:-}
DATA=$(mktemp -d)
BASE=http://127.0.0.1:$PORT
LOG_LEVEL=${LOG_LEVEL:-warning}
export OSTIARY_DATA_DIR=$DATA OSTIARY_ISSUER=$BASE OSTIARY_LOG_LEVEL=$LOG_LEVEL
export OSTIARY_SECRET_KEY
OSTIARY_SECRET_KEY=$(python3 -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())")
if [ -n "${REF:-}" ]; then
  mkdir "$DATA/ref"
  git archive "$REF" src | tar -x -C "$DATA/ref"
  export PYTHONPATH=$DATA/ref/src
fi
[ -n "$PROFILE" ] && mkdir -p "$PROFILE"
DB=""
if [ "$BACKEND" = postgres ]; then
  DB="ostiary_bench_$$"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $DB"
  export OSTIARY_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$DB"
  export OSTIARY_REDIS_URL="redis://127.0.0.1:6379/7"
fi
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "$DB" ] && psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$DATA"
}
trap cleanup EXIT
VENV=${VENV:-.venv}
OSTIARY=$VENV/bin/ostiary
PYSPY=$(command -v "$VENV/bin/py-spy" .venv/bin/py-spy py-spy | head -1 || true)
json_field() { python3 -c "import json,sys;print(json.load(sys.stdin)['$1'])"; }
$OSTIARY migrate >/dev/null
$OSTIARY keys rotate >/dev/null
CLIENT=$($OSTIARY clients create --name bench --grant-type client_credentials --scope models:read --json)
BASIC=$(printf '%s:%s' "$(echo "$CLIENT" | json_field client_id)" "$(echo "$CLIENT" | json_field client_secret)" | base64 -w0)
EMAIL=bench-admin@example.com
PASSWORD=$(python3 -c "import secrets;print(secrets.token_urlsafe(18))")
REDIRECT=$BASE/bench/callback
if [[ " $SCENARIOS " == *" refresh "* ]]; then
  echo "$PASSWORD" | $OSTIARY users create --email "$EMAIL" --password-stdin >/dev/null
  RCLIENT=$($OSTIARY clients create --name bench-refresh --redirect-uri "$REDIRECT" \
    --grant-type authorization_code --grant-type refresh_token \
    --scope openid --scope offline_access --first-party \
    ${ID_TOKEN_ALG:+--id-token-alg "$ID_TOKEN_ALG"} --json)
  RID=$(echo "$RCLIENT" | json_field client_id)
  RSECRET=$(echo "$RCLIENT" | json_field client_secret)
  RBASIC=$(printf '%s:%s' "$RID" "$RSECRET" | base64 -w0)
fi
WORKERS=${WORKERS:-1}
SERVER_CPUS=0 WRK_CPUS=1
if [ "$WORKERS" != 1 ]; then
  SERVER_CPUS=0,1 WRK_CPUS=0,1
  export OSTIARY_REDIS_URL=${OSTIARY_REDIS_URL:-redis://127.0.0.1:6379/7}
fi
taskset -c "$SERVER_CPUS" $OSTIARY serve --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
  >"$DATA/server.log" 2>&1 &
SERVER=$!
# Up to 60 s: a shared machine can take that long to start a worker confined to one core.
for _ in $(seq 600); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/readyz" >/dev/null || { echo "the server did not become ready" >&2; tail -5 "$DATA/server.log" >&2; exit 1; }
if [ "$WORKERS" != 1 ]; then
  # /readyz answers once one worker is up: give the others time to load, then warm them all.
  sleep 5
  static_warm=$(mktemp --suffix .lua)
  printf 'wrk.method="POST"\nwrk.body="grant_type=client_credentials"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\nwrk.headers["Authorization"]="Basic %s"\n' "$BASIC" >"$static_warm"
  wrk -t1 -c16 -d3s -s "$static_warm" "$BASE/token" >/dev/null
  rm -f "$static_warm"
fi

static_script() {  # $1 body, $2 name -> path of a wrk script POSTing that form
  printf 'wrk.method="POST"\nwrk.body="%s"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\nwrk.headers["Authorization"]="Basic %s"\n' "$1" "$BASIC" >"$DATA/$2.lua"
  echo "$DATA/$2.lua"
}
refresh_pool() {  # $1 connections -> path of a file with one fresh refresh token per line
  # One per connection, plus the one wrk takes to check the script (see refresh.lua), plus
  # one spare.
  local file
  file=$(mktemp -p "$DATA" pool.XXXXXX)
  echo "$PASSWORD" | "$VENV/bin/python" bench/refresh_tokens.py --base-url "$BASE" \
    --client-id "$RID" --client-secret "$RSECRET" --redirect-uri "$REDIRECT" \
    --email "$EMAIL" --count $(($1 + 2)) >"$file"
  echo "$file"
}
prepare() {  # $1 scenario, $2 concurrency: sets POOL for the refresh load
  POOL=""
  if [ "$1" = refresh ]; then POOL=$(refresh_pool "$2"); fi
}
load() {  # $1 scenario, $2 concurrency -> wrk's output
  local path=token
  [ "$1" = introspect ] && path=introspect
  if [ "$1" = refresh ]; then
    taskset -c "$WRK_CPUS" wrk -t1 -c"$2" -d"${DUR}s" --latency -s bench/lua/refresh.lua \
      "$BASE/token" -- "$POOL" "$RBASIC" 1
  else
    taskset -c "$WRK_CPUS" wrk -t1 -c"$2" -d"${DUR}s" --latency -s "$SCRIPT" "$BASE/$path"
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
# The worker's CPU time in ns over all its threads (the log writer's too), from the scheduler:
# finer than the ticks above, and what a request costs even when the core is shared.
cpu_ns() { cat /proc/"$SERVER"/task/*/schedstat | awk '{n += $1} END {printf "%d", n}'; }
core0_ticks() { awk '$1 == "cpu0" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
TICKS=$(getconf CLK_TCK)

declare -A WRK_RESPONSES
echo "| scenario | backend | concurrency | requests/s | p50 ms | p99 ms | non-2xx | socket errors | server CPU | other on core 0 | CPU µs/req |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for scenario in $SCENARIOS; do
  case $scenario in
    token) SCRIPT=$(static_script "grant_type=client_credentials&scope=models%3Aread" cc) ;;
    introspect)
      TOKEN=$(curl -sf -H "Authorization: Basic $BASIC" -d grant_type=client_credentials "$BASE/token" | json_field access_token)
      SCRIPT=$(static_script "token=$TOKEN" introspect)
      active=$(curl -sf -H "Authorization: Basic $BASIC" -d "token=$TOKEN" "$BASE/introspect" | json_field active)
      [ "$active" = True ] || { echo "introspection says the token is not active" >&2; exit 1; }
      ;;
    refresh) ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  for c in $CONCURRENCY; do
    prepare "$scenario" "$c"
    before=$(cpu_ticks)
    core0_before=$(core0_ticks)
    ns_before=$(cpu_ns)
    out=$(load "$scenario" "$c")
    server_ns=$(( $(cpu_ns) - ns_before ))
    server_ticks=$(( $(cpu_ticks) - before ))
    cpu=$(( server_ticks * 100 / (TICKS * DUR) ))
    other=$(( ($(core0_ticks) - core0_before - server_ticks) * 100 / (TICKS * DUR) ))
    (( other < 0 )) && other=0  # the two tick counts are sampled apart
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    responses=$(echo "$out" | awk '/requests in/ {print $1}')
    WRK_RESPONSES[$scenario]=$(( ${WRK_RESPONSES[$scenario]:-0} + responses ))
    socket=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10}')
    us_per_request=$(( server_ns / 1000 / (responses > 0 ? responses : 1) ))
    echo "| $scenario | $BACKEND | $c | $rps | $p50 | $p99 | ${bad:-0} | ${socket:-0} | $cpu% | $other% | $us_per_request |"
    pool_line=$(echo "$out" | grep '^refresh pool:' || true)
    if [ -n "$pool_line" ] && [ "$pool_line" != "refresh pool: 0 responses without a new token, 0 requests sent without a token" ]; then
      echo "  ($pool_line)"
    fi
  done
  if [ -n "$PROFILE" ]; then
    out_file=$PROFILE/$scenario-$BACKEND.txt
    prepare "$scenario" 16
    load "$scenario" 16 >/dev/null &
    loading=$!
    sleep 1
    taskset -c 1 "$PYSPY" record -r 200 -d $((DUR > 3 ? DUR - 2 : 1)) --format raw ${PYSPY_ARGS:-} \
      -o "$out_file" -p "$SERVER" >/dev/null 2>&1 || echo "  (py-spy failed)"
    wait "$loading"
    echo "  (py-spy profile of $scenario at c=16: $out_file)"
  fi
done
if [ "$LOG_LEVEL" = info ] || [ "$LOG_LEVEL" = debug ]; then
  # A graceful stop (SIGTERM) must flush every access line. wrk counts the responses it read;
  # requests still in flight when a load ends (at most c) and the set-up requests (curl, the
  # refresh pool) are answered and logged too, so lines >= responses, and never fewer.
  kill -TERM "$SERVER"
  wait "$SERVER" || true
  SERVER=""
  total=0
  for scenario in $SCENARIOS; do total=$(( total + ${WRK_RESPONSES[$scenario]:-0} )); done
  python3 - "$DATA/server.log" "$total" <<'PY'
import json, sys
lines = bad = 0
for raw in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        record = json.loads(raw)
    except ValueError:
        bad += 1
        continue
    lines += isinstance(record, dict) and record.get("event") == "request"
print(f"  (access log: {lines} request lines, {bad} lines not JSON; wrk read {sys.argv[2]} responses)")
PY
fi
