-- wrk script for `make bench`: count every answer by HTTP status, print one JSON line at the end.
--
--   wrk -t2 -c64 -d5s -s bench/wrk_count.lua URL -- METHOD [BODY] [HEADER: VALUE]...
--
-- The bench counts only the expected status (200 for a status read, 202 for a start) as
-- throughput and reports the others beside it. wrk's latency histogram holds every answer
-- it completed, whatever its status (timeouts excluded): the Lua hooks cannot pair an answer
-- with its request, so the bench says which answers the percentiles include.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
   local method = args[1] or "GET"
   local body = args[2]
   if body == "" then
      body = nil
   end
   local headers = {}
   for i = 3, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      if name then
         headers[name] = value
      end
   end
   local prepared = wrk.format(method, nil, headers, body)
   request = function()
      return prepared
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

local function encode(value)
   if type(value) == "table" then
      local parts = {}
      for key, item in pairs(value) do
         table.insert(parts, string.format("%q:%s", tostring(key), encode(item)))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   return string.format("%.17g", value)
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + count
      end
   end
   local result = {
      duration_us = summary.duration,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = summary.errors,
      statuses = counts,
      latency_us = {
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         max = latency.max,
         mean = latency.mean,
      },
   }
   io.write("WRK_RESULT " .. encode(result) .. "\n")
end
