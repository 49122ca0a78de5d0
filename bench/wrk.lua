-- bench/wrk.lua: the wrk script of bench/capbench.py.
--
-- Configured through the environment (wrk passes no options to scripts but argv):
--   BENCH_METHOD   GET (default) or POST
--   BENCH_PATH     request path, or several separated by "|" (taken in turn); a path with a
--                  format such as "%04d" gets a random number in [0, BENCH_RANGE) through it
--   BENCH_RANGE    see BENCH_PATH (default 1)
--   BENCH_BODY     request body; every "%s" in it is replaced by a name unique to this run
--                  (BENCH_PREFIX, the wrk thread number and a counter: a DNS label)
--   BENCH_PREFIX   see BENCH_BODY (default "w")
-- Headers (Authorization, Content-Type) come from wrk -H.
-- done() prints one line "BENCHJSON {...}" with the request count, errors and latency
-- percentiles in microseconds, which capbench.py parses.

local method = os.getenv("BENCH_METHOD") or "GET"
local paths = {}
for p in string.gmatch(os.getenv("BENCH_PATH") or "/", "[^|]+") do
   table.insert(paths, p)
end
local range = tonumber(os.getenv("BENCH_RANGE") or "1")
local body = os.getenv("BENCH_BODY")
local prefix = os.getenv("BENCH_PREFIX") or "w"
local nthreads = 0
local counter = 0
local turn = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("tid", nthreads)
end

function init(args)
   math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
   turn = turn + 1
   local p = paths[(turn - 1) % #paths + 1]
   if string.find(p, "%%") then
      p = string.format(p, math.random(0, range - 1))
   end
   local b = body
   if b and string.find(b, "%%s") then
      counter = counter + 1
      local name = string.format("%s%d-%d", prefix, tid or 0, counter)
      b = string.gsub(b, "%%s", name)
   end
   return wrk.format(method, p, nil, b)
end

function done(summary, latency, requests)
   local e = summary.errors
   local ps = {}
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(ps, string.format('"%s": %d', tostring(p), latency:percentile(p)))
   end
   io.write(string.format(
      'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, "p": {%s}}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev, table.concat(ps, ", ")))
end
