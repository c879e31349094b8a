-- wrk script of the benchmark: POSTs the JSON bodies of a file (one per line) in turn, and prints
-- the run's counts and latency percentiles as one JSON line.
--   wrk -t1 -c8 -d10s -s loadtest/wrk.lua URL -- bodies.jsonl
-- Each line is "PATH<TAB>BODY"; every thread starts at a different line.

local common = dofile(debug.getinfo(1, "S").source:sub(2):gsub("wrk%.lua$", "wrk_common.lua"))
done = common.done

function init(args)
  local requests = {}
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    requests[#requests + 1] = wrk.format(
      "POST", line:sub(1, tab - 1), { ["Content-Type"] = "application/json" }, line:sub(tab + 1))
  end
  common.cycle(requests)
end
