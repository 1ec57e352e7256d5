-- wrk script for scripts/bench.sh: every request PUTs a distinct key
-- (/data/p-<run>-<thread>-<n>?ttl=300) with a 100-byte body. The run name comes after
-- `--` on the wrk command line, then optionally the body size in bytes and a number of
-- keys per thread to overwrite in turn instead of distinct keys (the 1 MiB phase). done() prints one machine-readable line (latencies in
-- microseconds) that repram-bench parses.
local threads = 0
local body = string.rep("v", 100)
local counter = 0
local prefix = "p"

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local slots = 0

function init(args)
  prefix = "p-" .. (args[1] or "run") .. "-" .. tostring(tid) .. "-"
  if args[2] then body = string.rep("v", tonumber(args[2])) end
  slots = tonumber(args[3] or "0")
end

function request()
  counter = counter + 1
  if slots > 0 then
    return wrk.format("PUT", "/data/" .. prefix .. (counter % slots) .. "?ttl=300", nil, body)
  end
  return wrk.format("PUT", "/data/" .. prefix .. counter .. "?ttl=300", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"lat_p50_us":%d,"lat_p90_us":%d,' ..
    '"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
