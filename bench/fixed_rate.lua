-- fixed_rate.lua: make wrk offer a fixed request rate, the same whatever the
-- server's speed, so that two servers' latencies can be compared at the same load.
--
--   wrk -tTHREADS -cCONNS -dDURATION --latency -s bench/fixed_rate.lua URL -- RATE THREADS
--
-- Plain wrk is closed loop: each connection sends its next request as soon as
-- the previous answer arrives, so a faster server gets more load. Here each wrk
-- thread hands out send times on a fixed schedule, one every THREADS/RATE
-- seconds, and each request waits for the next free slot (wrk's delay()). The
-- rate offered is RATE as long as CONNS connections are enough to cover the
-- schedule: CONNS/RATE must stay well above the response time. When a server
-- falls behind, late requests go at once and the schedule is not moved, so the
-- rate achieved (wrk's Requests/sec) shows it. wrk measures each latency from
-- the request's send, not from its slot.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } fixed_rate_timespec;
int clock_gettime(int clock_id, fixed_rate_timespec *out);
]]
local CLOCK_MONOTONIC = 1
local now_buffer = ffi.new("fixed_rate_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) * 1e3 + tonumber(now_buffer.tv_nsec) / 1e6
end

local interval_ms -- between two slots of this thread
local next_slot_ms -- the next free slot of this thread

function init(args)
  local rate, threads = tonumber(args[1]), tonumber(args[2])
  if not rate or not threads or rate <= 0 or threads <= 0 then
    error("usage: wrk ... -s fixed_rate.lua URL -- RATE THREADS")
  end
  interval_ms = 1e3 * threads / rate
end

function delay()
  local now = now_ms()
  if next_slot_ms == nil then next_slot_ms = now end
  local slot = next_slot_ms
  next_slot_ms = next_slot_ms + interval_ms
  -- wrk's timers count whole milliseconds: round up, so no request goes early
  if slot <= now then return 0 end
  return math.ceil(slot - now)
end
