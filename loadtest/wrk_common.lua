-- What both wrk scripts of the benchmark do: send their prepared requests in turn (each thread
-- starting at a different one) and print, when the run is done, its counts and latency
-- percentiles as one JSON object, read by loadtest/benchmark.py.

local common = {}

-- Sets wrk's `request` to hand out `requests` in turn.
function common.cycle(requests)
  local position = math.random(#requests) - 1
  function request()
    position = position % #requests + 1
    return requests[position]
  end
end

function common.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end

return common
