#!/usr/bin/env bash
# The peer comparison extended with the hot paths built since (issue 14), in two parts:
#   1. ../shared/bench-peer/compare.sh as it is (client_credentials and introspection of
#      `ostiary serve` against node oidc-provider, both pinned to core 1, wrk on core 0, c=16,
#      three alternating rounds): its one-line result is kept. If it fails (no npm, the peer
#      does not start), that line says so and part 2 runs anyway.
#   2. bench/compare_paths.py: one `ostiary serve` as shipped (default settings, access log on)
#      pinned to core 1, wrk on core 0, c=16, three alternating rounds of a 2 s warm-up and 6 s
#      measured per phase: client_credentials (the reference), API-key verification by a
#      gateway's key, AuthZEN single and batch-of-10 evaluations (1,000 roles, 100 policies,
#      50 members) and refresh grants with rotation and an RS256 ID token; a markdown table with
#      the medians, each round, p99, CPU per request, what other processes took of the server's
#      core and the ratio to client_credentials of the same run, then the peer line.
# About 5-6 minutes (about half each part), nothing else running. Run from anywhere:
#   bash bench/compare.sh
# Environment: any OSTIARY_* variable passes through to both servers (OSTIARY_LOG_LEVEL=warning
# turns the access log off); for part 2 only, DUR=6 measured seconds per load, WARMUP=2, ROUNDS=3,
# CONCURRENCY=16, PHASES=client_credentials,verify,... (the reference first); PEER=0 skips part 1;
# PEER_SCRIPT=path of the peer comparison (default ../shared/bench-peer/compare.sh from the
# repository root); OUT=FILE writes part 2's figures and the peer line as JSON. Exit status: 1
# when a phase of part 2 failed (a check, a non-2xx answer or a socket error), 0 otherwise,
# whatever the ratios.
set -uo pipefail
OUT=${OUT:+$(realpath -m "$OUT")}  # the caller's directory, before the cd below
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
PEER=${PEER:-1}
PEER_SCRIPT=${PEER_SCRIPT:-../shared/bench-peer/compare.sh}

peer_line="not run (PEER=0)"
if [ "$PEER" != 0 ]; then
  if [ -f "$PEER_SCRIPT" ]; then
    echo "part 1: $PEER_SCRIPT (about 3 minutes)" >&2
    peer_out=$(bash "$PEER_SCRIPT" 2>&1)
    peer_rc=$?
    # Its result is its last line starting with "perf" (a failure says "perf: ..." too).
    peer_line=$(grep '^perf' <<<"$peer_out" | tail -n 1)
    if [ -z "$peer_line" ]; then
      peer_line="the peer comparison printed no result (exit $peer_rc):"
      peer_line+=" $(tail -c 300 <<<"$peer_out" | tr '\n' ' ')"
    fi
  else
    peer_line="not run: no $PEER_SCRIPT here (set PEER_SCRIPT)"
  fi
  echo "peer: $peer_line" >&2
fi

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v wrk >/dev/null || { echo "wrk is missing and could not be installed" >&2; exit 1; }
args=(--duration "${DUR:-6}" --warmup "${WARMUP:-2}" --rounds "${ROUNDS:-3}")
args+=(--concurrency "${CONCURRENCY:-16}" --peer-line "$peer_line")
[ -n "${PHASES:-}" ] && args+=(--phases "$PHASES")
[ -n "${OUT:-}" ] && args+=(--json-out "$OUT")
echo "part 2: bench/compare_paths.py" >&2
uv run -q python bench/compare_paths.py "${args[@]}"
