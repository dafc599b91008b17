-- wrk script for POST bodies: the endpoint, body and API key come from the environment,
-- set by loadtest/oha/wrk.sh. Counts non-2xx answers so a healthy run can be told at a glance.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("CASTBRICK_API_KEY")
if key and key ~= "" and os.getenv("WRK_AUTH") == "1" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status < 200 or status >= 300 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
  end
  io.write(string.format("non-2xx responses: %d\n", total_bad))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("latency p%g: %.3f ms\n", p, latency:percentile(p) / 1000))
  end
end
