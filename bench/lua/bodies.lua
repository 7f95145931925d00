-- POST the URL given to wrk with bodies taken in turn from a file, one body a line (AuthZEN
-- evaluations, bench/authzen.py). Status accounting and the summary line: common.lua.
--
--   BENCH_BODIES        the file of bodies (one a line)
--   BENCH_CONTENT_TYPE  their content type (default application/json)
--   BENCH_AUTH          the Authorization header (optional)
--   BENCH_ORG           the Ostiary-Organization header (optional)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local org = os.getenv("BENCH_ORG")
if org and org ~= "" then
  wrk.headers["Ostiary-Organization"] = org
end

local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  if line ~= "" then
    table.insert(bodies, line)
  end
end
local turn = 0

function request()
  turn = turn + 1
  return wrk.format(nil, nil, nil, bodies[(turn % #bodies) + 1])
end
