-- dead_letter: move a leased message to the dead-letter store with its reason, and store
-- its result (the first final result wins), when its lease token is still current. On
-- Redis Cluster the client stores the result first, with ack.lua, and leaves KEYS[9..10]
-- and the result out here.
--
-- KEYS[1..5] {q}:ready, {q}:delayed, {q}:leased ZSET; {q}:msg, {q}:meta HASH
-- KEYS[6]    {q}:dead      ZSET  id -> dead-at time
-- KEYS[7]    {q}:deadmsg   HASH  id -> body
-- KEYS[8]    {q}:deadinfo  HASH  id -> "dead_at|deliveries|attempt|reason"
-- KEYS[9]    P:r:{<id>}    STRING  the result (only with a result)
-- KEYS[10]   P:w:{<id>}    LIST    the result, for a blocked waiter (only with a result)
-- ARGV: id, token, reason, and optionally the result value and its TTL in ms
-- Returns 1 when moved, 0 for a stale lease.
local id, token, reason = ARGV[1], ARGV[2], ARGV[3]
local m = redis.call('HGET', KEYS[5], id)
if not m then return 0 end
local _, deliveries, attempt, lease = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
if lease ~= token then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('HSET', KEYS[7], id, redis.call('HGET', KEYS[4], id) or '')
redis.call('HSET', KEYS[8], id, string.format('%.6f', now) .. '|' .. deliveries .. '|' .. attempt .. '|' .. reason)
redis.call('ZADD', KEYS[6], now, id)
for i = 1, 3 do redis.call('ZREM', KEYS[i], id) end
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
if ARGV[4] and redis.call('SET', KEYS[9], ARGV[4], 'PX', ARGV[5], 'NX') then
  redis.call('DEL', KEYS[10])
  redis.call('RPUSH', KEYS[10], ARGV[4])
  redis.call('PEXPIRE', KEYS[10], 60000)
end
return 1
