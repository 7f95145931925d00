#!/usr/bin/env bash
# Token endpoint load: client_credentials grants/s and introspections/s at concurrency 1, 16, 64,
# one `ostiary serve` worker pinned to core 0, wrk pinned to core 1, against 127.0.0.1 only.
#   bash bench/tokens.sh            # SQLite
#   bash bench/tokens.sh postgres   # PostgreSQL (a fresh database, dropped afterwards) + Redis
# Each load is bounded: DUR seconds (default 8) per concurrency level.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
PORT=${PORT:-8191}
DUR=${DUR:-8}
DATA=$(mktemp -d)
export OSTIARY_DATA_DIR=$DATA OSTIARY_ISSUER=http://127.0.0.1:$PORT OSTIARY_LOG_LEVEL=warning
export OSTIARY_SECRET_KEY
OSTIARY_SECRET_KEY=$(python3 -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())")
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
uv run ostiary migrate >/dev/null
uv run ostiary keys rotate >/dev/null
CLIENT=$(uv run ostiary clients create --name bench --grant-type client_credentials --scope models:read --json)
read -r CID SECRET < <(echo "$CLIENT" | python3 -c "import json,sys;d=json.load(sys.stdin);print(d['client_id'],d['client_secret'])")
BASIC=$(printf '%s:%s' "$CID" "$SECRET" | base64 -w0)
taskset -c 0 .venv/bin/ostiary serve --host 127.0.0.1 --port "$PORT" >"$DATA/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -H "Authorization: Basic $BASIC" -d grant_type=client_credentials "http://127.0.0.1:$PORT/token" | python3 -c "import json,sys;print(json.load(sys.stdin)['access_token'])")
lua() {  # $1 body -> script path
  printf 'wrk.method="POST"\nwrk.body="%s"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"\nwrk.headers["Authorization"]="Basic %s"\n' "$1" "$BASIC" >"$DATA/$2.lua"
  echo "$DATA/$2.lua"
}
CC=$(lua "grant_type=client_credentials&scope=models%3Aread" cc)
IN=$(lua "token=$TOKEN" introspect)
echo "| endpoint | backend | concurrency | requests/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for path in token introspect; do
  script=$CC; [ "$path" = introspect ] && script=$IN
  for c in 1 16 64; do
    out=$(taskset -c 1 wrk -t1 -c"$c" -d"${DUR}s" --latency -s "$script" "http://127.0.0.1:$PORT/$path")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "| /$path | $BACKEND | $c | $rps | $p50 | $p99 | ${bad:-0} |"
  done
done
