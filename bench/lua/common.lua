-- Shared by the scenario scripts (loaded with dofile): status accounting, an optional cap on
-- the number of responses, and one machine-readable summary line for bench/run.py.
--
-- Environment (set by run.py):
--   BENCH_EXPECT_STATUS  the status every response must have (default 200)
--   BENCH_MAX_REQUESTS   stop after this many responses (0: run for -d). The thread stops and
--                        prints BENCH_DONE; run.py then sends wrk SIGINT, which ends the run
--                        (wrk's main thread otherwise sleeps for the whole -d).

expected_status = tonumber(os.getenv("BENCH_EXPECT_STATUS") or "200")
max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")

-- Per-thread counters (each wrk thread runs its own copy of this script).
responses = 0
unexpected = 0
last_unexpected_status = 0

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= expected_status then
    unexpected = unexpected + 1
    last_unexpected_status = status
  end
  if max_requests > 0 and responses == max_requests then
    io.write("BENCH_DONE\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total, bad, bad_status = 0, 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("responses")
    bad = bad + thread:get("unexpected")
    local status = thread:get("last_unexpected_status")
    if status ~= 0 then
      bad_status = status
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"responses":%d,"unexpected_status":%d,"last_unexpected_status":%d,' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    total, bad, bad_status,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
