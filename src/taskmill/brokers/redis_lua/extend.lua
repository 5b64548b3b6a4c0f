-- extend: renew leases whose token is still current (also one that expired but was not
-- leased again yet: it goes back from ready to leased).
--
-- KEYS per queue group: {q}:ready ZSET, {q}:leased ZSET, {q}:meta HASH
-- ARGV: lease seconds, then per delivery: queue index (1-based), id, token
-- Returns one 0/1 per delivery.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local lease_until = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local k = (tonumber(ARGV[i]) - 1) * 3
  local id, token = ARGV[i + 1], ARGV[i + 2]
  local m = redis.call('HGET', KEYS[k + 3], id)
  if m and string.match(m, '^[^|]*|[^|]*|[^|]*|(.*)$') == token then
    redis.call('ZREM', KEYS[k + 1], id)
    redis.call('ZADD', KEYS[k + 2], lease_until, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
