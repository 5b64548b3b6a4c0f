-- putback: give leased messages back, when their lease token is still current.
--   mode "release": due at once, this delivery not counted (deliveries - 1)
--   mode "requeue": due after delay, this delivery counted
--   mode "retry":   due after delay, attempt + 1, deliveries reset to 0
-- The message keeps its score, so once due it goes before messages enqueued after it.
--
-- KEYS per queue group: {q}:ready ZSET, {q}:delayed ZSET, {q}:leased ZSET, {q}:meta HASH,
--                       {q}:notify LIST, {q}:waiters SET (see enqueue.lua)
-- ARGV: mode, delay seconds, then per delivery: queue index (1-based), id, token
-- Returns one 0/1 per delivery, then the wake-up lists the client must ring.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local mode, delay = ARGV[1], tonumber(ARGV[2])
local out = {}
local rung = {}
for i = 3, #ARGV, 3 do
  local k = (tonumber(ARGV[i]) - 1) * 6
  local id, token = ARGV[i + 1], ARGV[i + 2]
  local m = redis.call('HGET', KEYS[k + 4], id)
  local score, deliveries, attempt, lease
  if m then
    score, deliveries, attempt, lease = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  end
  if m and lease == token then
    deliveries, attempt = tonumber(deliveries), tonumber(attempt)
    if mode == 'release' then
      deliveries = math.max(0, deliveries - 1)
    elseif mode == 'retry' then
      deliveries, attempt = 0, attempt + 1
    end
    redis.call('HSET', KEYS[k + 4], id, score .. '|' .. deliveries .. '|' .. attempt .. '|')
    redis.call('ZREM', KEYS[k + 3], id)
    redis.call('ZREM', KEYS[k + 1], id)
    if delay > 0 and mode ~= 'release' then
      redis.call('ZADD', KEYS[k + 2], now + delay, id)
    else
      redis.call('ZADD', KEYS[k + 1], tonumber(score), id)
      if redis.call('LLEN', KEYS[k + 5]) == 0 then redis.call('LPUSH', KEYS[k + 5], 1) end
      for _, w in ipairs(redis.call('SMEMBERS', KEYS[k + 6])) do rung[#rung + 1] = w end
      redis.call('DEL', KEYS[k + 6])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for _, w in ipairs(rung) do out[#out + 1] = w end
return out
