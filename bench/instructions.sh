#!/usr/bin/env bash
# Instructions per request of `ostiary serve` (one worker, SQLite), counted by valgrind's callgrind:
# a count, not a time, so it does not move with whatever else the machine runs (machines here are
# shared; throughput figures move 20-30 % from run to run). For A/B comparisons of the hot paths.
#
#   bash bench/instructions.sh [SRC_DIR]   # SRC_DIR: the `src` of another tree (default ./src)
#   N=300 WARMUP=100 SCENARIOS="token introspect verify"
#
# verify: POST /api/v1/keys/verify as bench/api_keys.sh loads it (a gateway service account's
# keys:verify key checks a member's key with an address and a model).
#
# The server runs under callgrind; after WARMUP requests of a scenario (sequentially, on one
# keep-alive connection) a dump resets the counters, and the dump after N more holds their cost
# (all threads: the log writer included; at the default log level).
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-$PWD/src}"
export PORT="${PORT:-9241}"; N="${N:-300}"; WARMUP="${WARMUP:-100}"; SCENARIOS="${SCENARIOS:-token introspect}"
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
py="$PWD/.venv/bin/python"
work="$(mktemp -d)"; trap 'kill $server 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work" >&2' EXIT
export OSTIARY_DATA_DIR="$work/data" OSTIARY_ISSUER="http://127.0.0.1:${PORT}" PYTHONPATH="$src"
export OSTIARY_SECRET_KEY="$("$py" -c 'import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())')"
mkdir -p "$OSTIARY_DATA_DIR"
"$py" -m ostiary migrate >/dev/null
"$py" -m ostiary keys rotate --lead-seconds 0 >/dev/null
creds="$("$py" -m ostiary clients create --name bench --grant-type client_credentials --scope api:read --json)"
keys="{}"
if [[ " $SCENARIOS " == *" verify "* ]]; then
  field() { "$py" -c "import json,sys;print(json.load(sys.stdin)$1)"; }
  "$py" -m ostiary users create --email bench-member@example.com >/dev/null
  org="$("$py" -m ostiary orgs create --name Bench --owner bench-member@example.com --json | field "['id']")"
  gateway="$("$py" -m ostiary service-accounts create "$org" --name gateway --role admin --json | field "['id']")"
  gateway_key="$("$py" -m ostiary api-keys create --service-account "$gateway" --permission keys:verify --json | field "['key']")"
  member_key="$("$py" -m ostiary api-keys create --org "$org" --user bench-member@example.com --model gpt-bench --allow-ip 127.0.0.0/8 --json | field "['key']")"
  keys="{\"gateway\": \"$gateway_key\", \"member\": \"$member_key\"}"
fi
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
  "$py" -m ostiary serve --host 127.0.0.1 --port ${PORT} >"$work/server.log" 2>&1 &
server=$!
"$py" - "$creds" "$server" "$N" "$WARMUP" "$SCENARIOS" "$work" "$keys" <<'PY'
import base64, glob, http.client, json, os, subprocess, sys, time
creds, pid, n, warmup, scenarios, work = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(), sys.argv[6]
keys = json.loads(sys.argv[7])
basic = "Basic " + base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
headers = {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}
deadline = time.monotonic() + 1800
while True:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(os.environ["PORT"]), timeout=600)
        conn.request("GET", "/readyz"); r = conn.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    if time.monotonic() > deadline: sys.exit("server not ready")
    time.sleep(1)
def post(path, body, headers=headers):
    conn.request("POST", path, body=body, headers=headers); r = conn.getresponse(); data = r.read()
    assert r.status == 200, (r.status, data[:200]); return data
token = json.loads(post("/token", "grant_type=client_credentials&scope=api%3Aread"))["access_token"]
bodies = {"token": ("/token", "grant_type=client_credentials&scope=api%3Aread"), "introspect": ("/introspect", "token=" + token)}
scenario_headers = {}
if keys:
    bodies["verify"] = ("/api/v1/keys/verify", json.dumps({"key": keys["member"], "ip": "127.0.0.1", "model": "gpt-bench"}))
    scenario_headers["verify"] = {"Authorization": "Bearer " + keys["gateway"], "Content-Type": "application/json"}
    assert json.loads(post(*bodies["verify"], scenario_headers["verify"]))["valid"] is True
def dump(label):
    """Ask callgrind for a dump (which also resets its counters) and wait until it is written."""
    before = set(glob.glob(f"{work}/cg.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", label, pid], check=True, capture_output=True)
    while True:
        new = set(glob.glob(f"{work}/cg.{pid}.*")) - before
        if new:
            time.sleep(0.5)
            return new.pop()
        time.sleep(0.2)
def summary(path):
    for line in open(path):
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"no summary in {path}")
for name in scenarios:
    path, body = bodies[name]
    h = scenario_headers.get(name, headers)
    for _ in range(warmup): post(path, body, h)
    dump(f"{name}-warm")
    for _ in range(n): post(path, body, h)
    total = summary(dump(name))
    print(f"{name}: {total / n:,.0f} instructions per request ({n} requests, all threads)")
PY
