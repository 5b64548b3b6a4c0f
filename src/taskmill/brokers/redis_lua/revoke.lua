-- revoke: store a REVOKED result if the id has no final result yet, and remove the
-- message from its queue if no worker holds a live lease on it. Control path: queue keys
-- are built from the prefix.
--
-- KEYS[1]  P:queues   SET
-- KEYS[2]  P:r:<id>   STRING  the result
-- KEYS[3]  P:w:<id>   LIST    the result, for a blocked waiter
-- touches  {q}:ready, {q}:delayed, {q}:leased ZSET; {q}:msg, {q}:meta HASH
-- ARGV: prefix, id, value, ttl ms
-- Returns 1 when the result was stored, 0 when a final result was there already.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local prefix, id, value, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not redis.call('SET', KEYS[2], value, 'PX', ttl, 'NX') then
  return 0
end
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], value)
redis.call('PEXPIRE', KEYS[3], 60000)
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = prefix .. ':{' .. q .. '}:'
  if redis.call('HEXISTS', base .. 'meta', id) == 1 then
    local expiry = redis.call('ZSCORE', base .. 'leased', id)
    if not (expiry and tonumber(expiry) > now) then
      redis.call('ZREM', base .. 'ready', id)
      redis.call('ZREM', base .. 'delayed', id)
      redis.call('ZREM', base .. 'leased', id)
      redis.call('HDEL', base .. 'msg', id)
      redis.call('HDEL', base .. 'meta', id)
    end
    break
  end
end
return 1
