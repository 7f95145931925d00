-- Refresh token grants (RFC 6749 section 6) with rotation: each request presents a refresh
-- token and gets a new one; the presented one is then spent, and presenting it again would
-- be reuse (RFC 9700 section 4.14.2) and revoke its whole family. So the script chains:
--
--   request()   pops a token from this thread's pool and sends it;
--   response()  takes the new refresh_token from the JSON body and pushes it back.
--
-- Usage (tokens from bench/refresh_tokens.py, one per line; Basic credentials base64):
--   wrk -tT -cN -s bench/lua/refresh.lua http://127.0.0.1:PORT/token -- POOL_FILE BASIC T
--
-- Why the pool never runs dry: without pipelining wrk keeps at most one request in flight per
-- connection and calls request() for a connection only after response() of its previous
-- request, so tokens in the pool + requests in flight stay constant as long as every response
-- brings a new token. Each thread gets its share of the file (line i goes to thread
-- i mod threads) and needs one token per connection, plus one more on the first thread:
-- wrk calls request() once on that thread before the load starts, to check the request
-- parses, and throws that request away (the token it took stays unspent). A token is lost
-- when its response is not a 200 (counted by wrk as non-2xx) or a connection breaks with a
-- request in flight (a socket error). If the pool is empty anyway, the request goes out
-- with no token at all, so that it fails with a 400 and shows up in wrk's non-2xx count
-- rather than silently reusing a spent token; done() reports how often that happened.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("slot", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local pool = {}
local headers = {}
starved = 0
lost = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  local every = tonumber(args[3] or "1")
  local line = 0
  for token in file:lines() do
    if token ~= "" and line % every == slot then
      table.insert(pool, token)
    end
    line = line + 1
  end
  file:close()
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  headers["Authorization"] = "Basic " .. args[2]
end

function request()
  local token = table.remove(pool)
  if token == nil then
    starved = starved + 1
    token = ""
  end
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, response_headers, body)
  local token = status == 200 and string.match(body, '"refresh_token":"([^"]+)"')
  if token then
    table.insert(pool, token)
  else
    lost = lost + 1
  end
end

function done(summary, latency, requests)
  local total_starved, total_lost = 0, 0
  for _, thread in ipairs(threads) do
    total_starved = total_starved + thread:get("starved")
    total_lost = total_lost + thread:get("lost")
  end
  io.write(string.format(
    "refresh pool: %d responses without a new token, %d requests sent without a token\n",
    total_lost, total_starved))
end
