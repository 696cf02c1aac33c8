-- get.lua - wrk script for the ceiling: plain GET of the URL given to wrk
-- (GET /healthz), plus one machine-readable summary line for run.sh:
--   BENCH requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N
-- (non2xx is wrk's count of answers with status > 399; errors counts
-- socket connect/read/write errors and timeouts.)

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.status,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
