-- tests/soak/mix.lua - the wrk half of the soak (tests/soak/run.sh).
--
-- Every request picks one of these, by weight (percent of requests):
--   POST /jobs noop                                  30
--   POST /jobs echo (a ~100-byte payload)            15
--   POST /jobs fail (max_attempts 2: one retry)       7
--   POST /jobs sleep 0.05 s                           1
--   GET  /jobs/<a recent id>                         25
--   GET  /jobs/<a recent id>?wait=1 (long-poll)       3
--   GET  /jobs listings (with and without filters)   12
--   GET  /healthz, /readyz, /metrics                  7
-- Recent ids come from the 202 answers (a ring of 256 per thread).
-- delay() paces each connection (SOAK_DELAY_MS, given by run.sh through
-- the script's arguments), so that the load is one the daemon can sustain:
-- a soak looks for growth, not for the ceiling.
--
-- done() prints one machine-readable line for run.sh:
--   SOAK requests=N duration_us=N s200=N s202=N s4xx=N s5xx=N other=N
--        errors=N p50_us=N p99_us=N max_us=N

local json = { ["Content-Type"] = "application/json" }
local posts = {
   noop = '{"type":"noop"}',
   echo = '{"type":"echo","payload":{"order":"A-2026-000123","items":' ..
      '[{"sku":"X-1","qty":2},{"sku":"Y-22","qty":1}],"note":"soak"}}',
   fail = '{"type":"fail","max_attempts":2}',
   sleep = '{"type":"sleep","payload":{"seconds":0.05}}',
}
local lists = {
   "/jobs", "/jobs?limit=20", "/jobs?status=queued&limit=10",
   "/jobs?type=echo&limit=50", "/jobs?status=failed&limit=5",
   "/jobs?status=succeeded&type=noop&limit=100",
}
local ops = { "/healthz", "/readyz", "/metrics" }

local RING = 256
local ids = {}
local nids, head = 0, 0
local pace = 0

-- per-thread counters, read by done() through thread:get()
s200, s202, s4xx, s5xx, other = 0, 0, 0, 0, 0

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   pace = tonumber(args[1] or "0") or 0
   math.randomseed(os.time() * 100 + (tid or 0))
end

function delay()
   return pace
end

local function recent()
   if nids == 0 then
      return nil
   end
   return ids[math.random(nids)]
end

function request()
   local r = math.random(100)
   if r <= 30 then
      return wrk.format("POST", "/jobs", json, posts.noop)
   elseif r <= 45 then
      return wrk.format("POST", "/jobs", json, posts.echo)
   elseif r <= 52 then
      return wrk.format("POST", "/jobs", json, posts.fail)
   elseif r <= 53 then
      return wrk.format("POST", "/jobs", json, posts.sleep)
   elseif r <= 78 then
      local id = recent()
      if id then
         return wrk.format("GET", "/jobs/" .. id)
      end
      return wrk.format("GET", "/healthz")
   elseif r <= 81 then
      local id = recent()
      if id then
         return wrk.format("GET", "/jobs/" .. id .. "?wait=1")
      end
      return wrk.format("GET", "/healthz")
   elseif r <= 93 then
      return wrk.format("GET", lists[math.random(#lists)])
   end
   return wrk.format("GET", ops[math.random(#ops)])
end

function response(status, headers, body)
   if status == 202 then
      s202 = s202 + 1
      local id = body and body:match('"id":"([0-9a-f%-]+)"')
      if id then
         head = head % RING + 1
         ids[head] = id
         if nids < RING then
            nids = nids + 1
         end
      end
   elseif status == 200 then
      s200 = s200 + 1
   elseif status >= 400 and status < 500 then
      s4xx = s4xx + 1
   elseif status >= 500 then
      s5xx = s5xx + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local t = { s200 = 0, s202 = 0, s4xx = 0, s5xx = 0, other = 0 }
   for _, thread in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + (thread:get(k) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      "SOAK requests=%d duration_us=%d s200=%d s202=%d s4xx=%d s5xx=%d " ..
      "other=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, t.s200, t.s202, t.s4xx, t.s5xx,
      t.other, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
