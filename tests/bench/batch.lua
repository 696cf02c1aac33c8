-- batch.lua - wrk script for batch intake: POST /jobs with a JSON array of
-- N noop jobs (the ~200-byte payload of post.lua each), the same request on
-- every connection, plus one machine-readable summary line for run.sh:
--   BENCH requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N
-- Jobs = requests x N.  Usage: wrk ... -s batch.lua URL -- N

local job = '{"type":"noop","payload":{"order":"A-2026-000123","customer":' ..
   '"bench@example.com","items":[{"sku":"X-1","qty":2},{"sku":"Y-22",' ..
   '"qty":1}],"note":"intake benchmark payload, about two hundred bytes' ..
   ' of JSON.............","seq":42}}'

local n = 100

function init(args)
   if args[1] ~= nil then n = tonumber(args[1]) end
   local parts = {}
   for i = 1, n do parts[i] = job end
   wrk.method = "POST"
   wrk.path = "/jobs"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.status,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
