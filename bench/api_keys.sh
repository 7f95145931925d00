#!/usr/bin/env bash
# API-key load (issue 12, section 3) at concurrency 16 (CONCURRENCY to change): one
# `ostiary serve` worker pinned to core 0, wrk pinned to core 1, against 127.0.0.1 only, in one
# run so that the three rows compare:
#   verify      POST /api/v1/keys/verify: a gateway's service-account key (keys:verify) checks
#               a member's key with an IP and a model (one key row read, the owner's
#               membership and user read, permissions from the per-node RBAC cache; the
#               last_used_at write at most once a minute)
#   exchange    RFC 8693 token exchange of that key at /token (the same checks, plus an ES256
#               JWT), no client authentication
#   token       client_credentials grants (RFC 6749 section 4.4), the reference
#
#   bash bench/api_keys.sh            # SQLite
#   bash bench/api_keys.sh postgres   # PostgreSQL (a fresh database, dropped afterwards) + Redis
#
# Environment: DUR=8 (seconds per load), CONCURRENCY="16", SCENARIOS="verify exchange token",
# VENV=.venv, PORT=8193, LOG_LEVEL=warning (info: as shipped, one access line per request),
# PROFILE=DIR (py-spy, if installed in the venv, records each load of the
# server as DIR/<scenario>.txt, collapsed stacks). Figures go to bench/RESULTS.md, measured on a
# quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
PORT=${PORT:-8193}
DUR=${DUR:-8}
CONCURRENCY=${CONCURRENCY:-16}
SCENARIOS=${SCENARIOS:-verify exchange token}
DATA=$(mktemp -d)
BASE=http://127.0.0.1:$PORT
export OSTIARY_DATA_DIR=$DATA OSTIARY_ISSUER=$BASE OSTIARY_LOG_LEVEL=${LOG_LEVEL:-warning}
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
VENV=${VENV:-.venv}
OSTIARY=$VENV/bin/ostiary
json_field() { python3 -c "import json,sys;print(json.load(sys.stdin)$1)"; }
$OSTIARY migrate >/dev/null
$OSTIARY keys rotate >/dev/null
CLIENT=$($OSTIARY clients create --name bench --grant-type client_credentials --scope models:read --json)
BASIC=$(printf '%s:%s' "$(echo "$CLIENT" | json_field "['client_id']")" "$(echo "$CLIENT" | json_field "['client_secret']")" | base64 -w0)
$OSTIARY users create --email bench-member@example.com >/dev/null
ORG=$($OSTIARY orgs create --name "Bench" --owner bench-member@example.com --json | json_field "['id']")
GATEWAY=$($OSTIARY service-accounts create "$ORG" --name gateway --role admin --json | json_field "['id']")
GATEWAY_KEY=$($OSTIARY api-keys create --service-account "$GATEWAY" --permission keys:verify --json | json_field "['key']")
KEY=$($OSTIARY api-keys create --org "$ORG" --user bench-member@example.com --model gpt-bench \
  --allow-ip 127.0.0.0/8 --json | json_field "['key']")

taskset -c 0 $OSTIARY serve --host 127.0.0.1 --port "$PORT" >"$DATA/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/readyz" >/dev/null || { echo "the server did not become ready" >&2; tail -5 "$DATA/server.log" >&2; exit 1; }

script() {  # $1 name, $2 content type, $3 body, $4 Authorization -> path of a wrk script
  printf 'wrk.method="POST"\nwrk.body=[[%s]]\nwrk.headers["Content-Type"]="%s"\n' "$3" "$2" >"$DATA/$1.lua"
  [ -n "$4" ] && printf 'wrk.headers["Authorization"]="%s"\n' "$4" >>"$DATA/$1.lua"
  echo "$DATA/$1.lua"
}
EXCHANGE="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type=urn%3Aostiary%3Aparams%3Aoauth%3Atoken-type%3Aapi-key&subject_token=$KEY"
# Each scenario answers correctly once before it is loaded.
valid=$(curl -sf -H "Authorization: Bearer $GATEWAY_KEY" -H 'Content-Type: application/json' \
  -d "{\"key\": \"$KEY\", \"ip\": \"127.0.0.1\", \"model\": \"gpt-bench\"}" "$BASE/api/v1/keys/verify" | json_field "['valid']")
[ "$valid" = True ] || { echo "the key does not verify" >&2; exit 1; }
curl -sf -d "$EXCHANGE" "$BASE/token" | json_field "['access_token']" >/dev/null

echo "| scenario | backend | concurrency | requests/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for scenario in $SCENARIOS; do
  case $scenario in
    verify)
      path=api/v1/keys/verify
      lua=$(script verify application/json "{\"key\": \"$KEY\", \"ip\": \"127.0.0.1\", \"model\": \"gpt-bench\"}" "Bearer $GATEWAY_KEY") ;;
    exchange) path=token; lua=$(script exchange application/x-www-form-urlencoded "$EXCHANGE" "") ;;
    token) path=token; lua=$(script token application/x-www-form-urlencoded "grant_type=client_credentials&scope=models%3Aread" "Basic $BASIC") ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  for c in $CONCURRENCY; do
    spy=""
    if [ -n "${PROFILE:-}" ]; then
      mkdir -p "$PROFILE"
      taskset -c 1 "$VENV/bin/py-spy" record -r 250 -f raw -d "$DUR" -p "$SERVER" \
        -o "$PROFILE/$scenario.txt" >/dev/null 2>&1 &
      spy=$!
    fi
    out=$(taskset -c 1 wrk -t1 -c"$c" -d"${DUR}s" --latency -s "$lua" "$BASE/$path")
    [ -n "$spy" ] && wait "$spy" || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "| $scenario | $BACKEND | $c | $rps | $p50 | $p99 | ${bad:-0} |"
  done
done
