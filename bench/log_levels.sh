#!/usr/bin/env bash
# What the access log costs: client_credentials grants and introspections at c=16
# (bench/tokens.sh: one worker on core 0, wrk on core 1) with OSTIARY_LOG_LEVEL=info (one JSON
# access line per request) and =warning (none), alternated back to back ROUNDS times, each round
# a fresh server and data directory. A shared machine drifts from minute to minute: alternating
# puts both levels in the same minutes, and the medians and their ratios are what to compare:
# requests/s, and the worker's CPU time per request (all threads), which holds when other
# processes take part of the worker's core.
#
#   bash bench/log_levels.sh            # SQLite
#   bash bench/log_levels.sh postgres   # PostgreSQL + Redis
#
# Environment: ROUNDS=3, DUR=8 (seconds per load), PORT, REF, VENV (as bench/tokens.sh). Each round's
# rows (with "other on core 0": what else took the worker's core) and the access log's line
# count against wrk's responses are printed as they come; the summary comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
ROUNDS=${ROUNDS:-3}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  for level in info warning; do
    echo "round $round, $level:"
    rows=$(LOG_LEVEL=$level SCENARIOS="token introspect" CONCURRENCY=16 bash bench/tokens.sh "$BACKEND")
    echo "$rows"
    echo "$rows" | awk -v level="$level" -F'|' \
      '$2 ~ /token|introspect/ {gsub(/ /, ""); print level, $2, $5, $11, $12}' >>"$OUT"
  done
done
python3 - "$OUT" "$BACKEND" <<'PY'
import statistics, sys
runs: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
for line in open(sys.argv[1]):
    level, scenario, rps, other, us = line.split()
    runs.setdefault((scenario, level), []).append((float(rps), float(us), other))
print(
    f"\n| load ({sys.argv[2]}, c=16) | info: req/s, median (runs) | warning: req/s, median (runs) "
    "| req/s info / warning | info: CPU µs/req (runs) | warning: CPU µs/req (runs) "
    "| CPU/req info / warning | other on core 0 (info; warning) |"
)
print("|---|---|---|---|---|---|---|---|")
for scenario in ("token", "introspect"):
    info, warning = runs[(scenario, "info")], runs[(scenario, "warning")]
    def med(xs: list[tuple[float, float, str]], i: int) -> float:
        return statistics.median(x[i] for x in xs)
    def each(xs: list[tuple[float, float, str]], i: int) -> str:
        return ", ".join(f"{x[i]:,.0f}" for x in xs)
    print(
        f"| {scenario} | {med(info, 0):,.0f} ({each(info, 0)}) | {med(warning, 0):,.0f} "
        f"({each(warning, 0)}) | {med(info, 0) / med(warning, 0):.2f} "
        f"| {med(info, 1):.0f} ({each(info, 1)}) | {med(warning, 1):.0f} ({each(warning, 1)}) "
        f"| {med(info, 1) / med(warning, 1):.2f} "
        f"| {', '.join(x[2] for x in info)}; {', '.join(x[2] for x in warning)} |"
    )
PY
