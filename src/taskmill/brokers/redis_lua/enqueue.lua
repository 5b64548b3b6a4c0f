-- enqueue: store a batch of messages of one queue, atomically; an id already queued is ignored.
--
-- KEYS[1] {q}:ready    ZSET  id -> score = (255 - priority) * 2^40 + seq   (due messages)
-- KEYS[2] {q}:delayed  ZSET  id -> due time, broker clock (ETA, countdown)
-- KEYS[3] {q}:msg      HASH  id -> body
-- KEYS[4] {q}:meta     HASH  id -> "score|deliveries|attempt|lease"
-- KEYS[5] {q}:notify   LIST  wake-up token for blocked reservers (at most one)
-- KEYS[6] {q}:seq      STRING insertion counter (FIFO within a priority)
-- KEYS[7] {q}:waiters  SET   wake-up lists of reservers blocked on several queues of a
--                            Redis Cluster (see reserve.lua); emptied when rung. Given
--                            on a cluster only: on one server nobody registers there.
-- ARGV: n, then n times: id, priority (-255..255), delay seconds, body
-- Returns {messages stored, 1 if the queue's seq counter started afresh, else 0, then the
-- wake-up lists the client must ring}. A fresh counter means a new queue, or a server that
-- lost its data, whose P:queues entry the client restores.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local n = tonumber(ARGV[1])
local stored, ready, fresh = 0, 0, 0
for i = 0, n - 1 do
  local base = 2 + i * 4
  local id = ARGV[base]
  if redis.call('HSETNX', KEYS[3], id, ARGV[base + 3]) == 1 then
    local seq = redis.call('INCR', KEYS[6])
    if seq == 1 then fresh = 1 end
    local score = (255 - tonumber(ARGV[base + 1])) * 1099511627776 + seq
    redis.call('HSET', KEYS[4], id, string.format('%.0f', score) .. '|0|0|')
    local delay = tonumber(ARGV[base + 2])
    if delay > 0 then
      redis.call('ZADD', KEYS[2], now + delay, id)
    else
      redis.call('ZADD', KEYS[1], score, id)
      ready = ready + 1
    end
    stored = stored + 1
  end
end
local out = {stored, fresh}
if ready > 0 then
  if redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
  if KEYS[7] then
    for _, w in ipairs(redis.call('SMEMBERS', KEYS[7])) do out[#out + 1] = w end
    if #out > 2 then redis.call('DEL', KEYS[7]) end
  end
end
return out
