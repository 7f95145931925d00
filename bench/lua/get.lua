-- GET the URL given to wrk, optionally with a Cookie header (BENCH_COOKIE), e.g.
-- "ostiary_session=...; ostiary_csrf=..." for the account page.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
wrk.headers["Accept"] = "text/html,application/json"
