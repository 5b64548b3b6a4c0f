-- revoke: remove a revoked message from one queue unless a worker holds a live lease on
-- it. Control path: the client stores the REVOKED result first (ack.lua), then calls this
-- once per known queue (each queue is one hash slot).
--
-- KEYS[1..3]  {q}:ready, {q}:delayed, {q}:leased  ZSET
-- KEYS[4..5]  {q}:msg, {q}:meta                   HASH
-- ARGV: id
-- Returns 1 when the message was removed, 0 when it is not here or leased.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[5], id) == 0 then return 0 end
local expiry = redis.call('ZSCORE', KEYS[3], id)
if expiry and tonumber(expiry) > now then return 0 end
for i = 1, 3 do redis.call('ZREM', KEYS[i], id) end
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
return 1
