-- stats: message counts per known queue. Control path: queue keys are built from the prefix.
--
-- KEYS[1]  P:queues  SET
-- reads    {q}:ready, {q}:delayed, {q}:leased, {q}:dead ZSET
-- ARGV: prefix
-- Returns per queue: name, ready, delayed, in flight, dead.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local prefix = ARGV[1]
local out = {}
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = prefix .. ':{' .. q .. '}:'
  local ready = redis.call('ZCARD', base .. 'ready')
    + redis.call('ZCOUNT', base .. 'delayed', '-inf', now)
    + redis.call('ZCOUNT', base .. 'leased', '-inf', now)
  local delayed = redis.call('ZCOUNT', base .. 'delayed', '(' .. now, '+inf')
  local in_flight = redis.call('ZCOUNT', base .. 'leased', '(' .. now, '+inf')
  local dead = redis.call('ZCARD', base .. 'dead')
  if ready + delayed + in_flight + dead > 0 then
    for _, v in ipairs({q, ready, delayed, in_flight, dead}) do out[#out + 1] = v end
  end
end
return out
