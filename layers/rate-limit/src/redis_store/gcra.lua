-- GCRA over several buckets, all or nothing, in integer microseconds.
--
-- KEYS[i]: the buckets. ARGV[1]: now in microseconds, or 0 to read Redis
-- TIME (so the instances' clocks never matter). Then per bucket, three
-- arguments: the emission interval T, the capacity T*burst, and the cost.
--
-- Returns four integers per bucket: allowed (1 or 0), remaining, the
-- microseconds until the bucket is full again, and the microseconds until
-- the request would be allowed (0 when allowed). Buckets are written only
-- when every bucket allows; a denied check writes nothing.
--
-- Lua numbers are doubles: every value here stays below 2^53, and the
-- stored TAT is formatted with %d so it keeps every digit.

local now = tonumber(ARGV[1])
if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local pending = {}
local order = {}
local reply = {}
local all_allowed = true

for i, key in ipairs(KEYS) do
  local base = 1 + (i - 1) * 3
  local t = tonumber(ARGV[base + 1])
  local capacity = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local tat = pending[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key) or '0') or 0
  end
  local start = math.max(tat, now)
  local new_tat = start + t * cost
  local limit = now + capacity
  if new_tat <= limit then
    local room = limit - new_tat
    local remaining = math.floor(room / t)
    if remaining * t > room then
      remaining = remaining - 1
    end
    if pending[key] == nil then
      table.insert(order, key)
    end
    pending[key] = new_tat
    table.insert(reply, 1)
    table.insert(reply, remaining)
    table.insert(reply, new_tat - now)
    table.insert(reply, 0)
  else
    all_allowed = false
    table.insert(reply, 0)
    table.insert(reply, 0)
    table.insert(reply, start - now)
    table.insert(reply, new_tat - limit)
  end
end

if all_allowed then
  for _, key in ipairs(order) do
    local tat = pending[key]
    local ttl_ms = math.max(1, math.ceil((tat - now) / 1000))
    redis.call('SET', key, string.format('%d', tat), 'PX', string.format('%d', ttl_ms))
  end
end

return reply
