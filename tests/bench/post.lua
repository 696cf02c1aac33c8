-- post.lua - wrk script for intake: POST /jobs of a noop job with a
-- ~200-byte JSON payload, the same request on every connection (static, so
-- wrk builds it once), plus one machine-readable summary line for run.sh:
--   BENCH requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N

wrk.method = "POST"
wrk.path = "/jobs"
wrk.headers["Content-Type"] = "application/json"
-- payload: 200 bytes of JSON
wrk.body = '{"type":"noop","payload":{"order":"A-2026-000123","customer":' ..
   '"bench@example.com","items":[{"sku":"X-1","qty":2},{"sku":"Y-22",' ..
   '"qty":1}],"note":"intake benchmark payload, about two hundred bytes' ..
   ' of JSON.............","seq":42}}'

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.status,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
