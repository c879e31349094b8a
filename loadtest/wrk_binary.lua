-- wrk script for V2 requests in the binary tensor data extension: POSTs the bodies of a folder's
-- files in turn (each a JSON header followed by the raw tensor bytes; a file's name ends with
-- "-<header length>.bin"), and prints the same JSON line as wrk.lua.
--   wrk -t1 -c8 -d10s -s loadtest/wrk_binary.lua URL -- PATH FILE...

local requests = {}
local position = 0

function init(args)
  for i = 2, #args do
    local file = assert(io.open(args[i], "rb"))
    local body = file:read("*a")
    file:close()
    local length = args[i]:match("%-(%d+)%.bin$")
    requests[#requests + 1] = wrk.format("POST", args[1], {
      ["Content-Type"] = "application/octet-stream",
      ["Inference-Header-Content-Length"] = length,
    }, body)
  end
  position = math.random(#requests) - 1
end

function request()
  position = position % #requests + 1
  return requests[position]
end

done = dofile(debug.getinfo(1, "S").source:sub(2):gsub("wrk_binary%.lua$", "wrk_done.lua"))
