-- Round-robin of three pages a browser and a relying party would fetch, for the RSS check:
--   GET /account               with the session and CSRF cookies (BENCH_SESSION_COOKIE)
--   GET /.well-known/jwks.json without cookies
--   GET /login                 with the CSRF cookie only (BENCH_CSRF_COOKIE), so it renders
-- All three answer 200. Stop after BENCH_MAX_REQUESTS responses (common.lua).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local session_cookie = os.getenv("BENCH_SESSION_COOKIE")
local csrf_cookie = os.getenv("BENCH_CSRF_COOKIE")
local requests = nil
local counter = 0

function init(args)
  requests = {
    wrk.format("GET", "/account", { Cookie = session_cookie, Accept = "text/html" }),
    wrk.format("GET", "/.well-known/jwks.json", { Accept = "application/json" }),
    wrk.format("GET", "/login", { Cookie = csrf_cookie, Accept = "text/html" }),
  }
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
