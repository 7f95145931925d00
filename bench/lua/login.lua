-- POST /login with correct credentials. One CSRF cookie/token pair (from a single GET /login)
-- is reused for every request: the token is HMAC(server key, cookie), valid for any request
-- that carries the same cookie. No session cookie is sent, so every request creates a session.
--
--   BENCH_COOKIE      "ostiary_csrf=<value>"
--   BENCH_LOGIN_BODY  urlencoded email, password, csrf_token, next; several bodies separated by
--                     newlines are sent in turn (different people signing in)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["Accept"] = "text/html"

local bodies = {}
for line in string.gmatch(os.getenv("BENCH_LOGIN_BODY"), "[^\n]+") do
  table.insert(bodies, line)
end
local turn = 0

function request()
  turn = turn + 1
  return wrk.format(nil, nil, nil, bodies[(turn % #bodies) + 1])
end
