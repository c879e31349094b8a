-- wrk script for V2 requests in the binary tensor data extension: POSTs the bodies of files in
-- turn (each a JSON header followed by the raw tensor bytes; a file's name ends with
-- "-<header length>.bin"), and prints the same JSON line as wrk.lua.
--   wrk -t1 -c8 -d10s -s loadtest/wrk_binary.lua URL -- PATH FILE...

local common = dofile(debug.getinfo(1, "S").source:sub(2):gsub("wrk_binary%.lua$", "wrk_common.lua"))
done = common.done

function init(args)
  local requests = {}
  for i = 2, #args do
    local file = assert(io.open(args[i], "rb"))
    local body = file:read("*a")
    file:close()
    requests[#requests + 1] = wrk.format("POST", args[1], {
      ["Content-Type"] = "application/octet-stream",
      ["Inference-Header-Content-Length"] = args[i]:match("%-(%d+)%.bin$"),
    }, body)
  end
  common.cycle(requests)
end
