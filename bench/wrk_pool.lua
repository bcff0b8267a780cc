-- wrk script: POSTs a pool of pre-signed, unique Creative Force events (one per line of
-- the file named by $CFWH_POOL: "<signature>\t<body>"). Each thread takes its own slice
-- of the pool, so an event is sent twice only once a thread has used its whole slice.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("CFWH_POOL")
  local total_threads = tonumber(os.getenv("CFWH_THREADS"))
  requests_made = 0
  pool = {}
  local index = 0
  for line in io.lines(path) do
    if index % total_threads == id then
      local tab = line:find("\t", 1, true)
      local signature, body = line:sub(1, tab - 1), line:sub(tab + 1)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-CF-Event"] = "Task completed",
        ["X-CF-Signature"] = signature,
      }
      table.insert(pool, wrk.format("POST", "/payload", headers, body))
    end
    index = index + 1
  end
  slice = #pool
end

function request()
  requests_made = requests_made + 1
  return pool[(requests_made - 1) % slice + 1]
end

function done(summary, latency, requests)
  local unique = 0
  for _, thread in ipairs(threads) do
    local made, size = thread:get("requests_made"), thread:get("slice")
    unique = unique + math.min(made, size)
  end
  local out = io.open(os.getenv("CFWH_WRK_RESULT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "unique_sent": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    unique, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
  out:close()
end
