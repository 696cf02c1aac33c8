-- quota.lua - wrk script that submits an exact number of jobs: each wrk
-- thread POSTs QUOTA jobs of TYPE (same ~200-byte payload as post.lua) and
-- then leaves its connections idle.  When all of a thread's POSTs are
-- answered it appends one line to MARKFILE, so run.sh knows when to stop
-- wrk (SIGINT) instead of waiting for -d.
--
--   wrk -tT -cC -dMAX -s quota.lua URL -- QUOTA TYPE PRIORITY MARKFILE [WAIT [PAYLOAD]]
--
-- PRIORITY is the jobs' priority; WAIT, if given and not empty, adds
-- "Prefer: wait=WAIT" so each POST returns when its job has finished (use
-- with -c1 for "one job at a time"); PAYLOAD, if given, is the jobs'
-- payload (JSON) instead of the ~200-byte one.  Summary line for run.sh:
--   BENCH requests=N duration_us=N non2xx=N errors=N p50_us=N p99_us=N
--         s200=N s202=N sother=N

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local quota, markfile
local reserved, answered = 0, 0
s200, s202, sother = 0, 0, 0
local req

function init(args)
   quota = tonumber(args[1])
   local jtype = args[2] or "noop"
   local prio = tonumber(args[3] or "0")
   markfile = args[4]
   local headers = { ["Content-Type"] = "application/json" }
   if args[5] and args[5] ~= "" then
      headers["Prefer"] = "wait=" .. args[5]
   end
   local payload = args[6] or ('{"order":"A-2026-000123","customer":' ..
      '"bench@example.com","items":[{"sku":"X-1","qty":2},{"sku":"Y-22",' ..
      '"qty":1}],"note":"intake benchmark payload, about two hundred bytes' ..
      ' of JSON.............","seq":42}')
   local body = '{"type":"' .. jtype .. '","priority":' .. prio ..
      ',"payload":' .. payload .. '}'
   req = wrk.format("POST", "/jobs", headers, body)
end

-- delay() runs before every request on a connection: it hands out the
-- thread's quota, then parks the connection for an hour.
function delay()
   if reserved < quota then
      reserved = reserved + 1
      return 0
   end
   return 3600000
end

function request()
   return req
end

function response(status, headers, body)
   answered = answered + 1
   if status == 200 then
      s200 = s200 + 1
   elseif status == 202 then
      s202 = s202 + 1
   else
      sother = sother + 1
   end
   if answered == quota and markfile then
      local f = io.open(markfile, "a")
      if f then
         f:write("done\n")
         f:close()
      end
   end
end

function done(summary, latency, requests)
   local a, b, c = 0, 0, 0
   for _, t in ipairs(threads) do
      a = a + (t:get("s200") or 0)
      b = b + (t:get("s202") or 0)
      c = c + (t:get("sother") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d s200=%d s202=%d sother=%d\n",
      summary.requests, summary.duration, e.status,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99), a, b, c))
end
