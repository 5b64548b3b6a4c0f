-- reserve: lease up to max_count due messages across queues, highest priority first, FIFO
-- within a priority. Due delayed messages and expired leases become ready first (reclaim).
--
-- On Redis Cluster the client calls it once per queue (one hash slot), in the order given.
--
-- For each queue i (7 keys each, in this order):
--   {q}:ready    ZSET  id -> score (priority, seq)
--   {q}:delayed  ZSET  id -> due time
--   {q}:leased   ZSET  id -> lease expiry, broker clock
--   {q}:msg      HASH  id -> body
--   {q}:meta     HASH  id -> "score|deliveries|attempt|lease"
--   {q}:notify   LIST  wake-up token
--   {q}:waiters  SET   wake-up lists of reservers blocked on several queues (cluster)
-- ARGV: max_count, lease seconds, lease token, and optionally a wake-up list: a reserver
-- about to block on several queues of a cluster names its own list, which is added to
-- the waiters of each queue it found empty, in the same atomic step as finding it empty,
-- so an enqueue after it rings that list.
-- Returns {hint, then per delivery: queue index (1-based), id, body, deliveries, attempt}.
-- hint: seconds until a delayed message or a lease comes due (-1: none), when nothing
-- was leased; 0 otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local max_count = tonumber(ARGV[1])
local lease_until = now + tonumber(ARGV[2])
local token = ARGV[3]
local waker = ARGV[4]
local nq = #KEYS / 7

local function promote(zset, ready, meta)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local m = redis.call('HGET', meta, id)
    if m then
      redis.call('ZADD', ready, tonumber(string.match(m, '^([^|]*)')), id)
    end
    redis.call('ZREM', zset, id)
  end
end

for q = 0, nq - 1 do
  local k = q * 7
  promote(KEYS[k + 2], KEYS[k + 1], KEYS[k + 5])
  promote(KEYS[k + 3], KEYS[k + 1], KEYS[k + 5])
end

local out = {0}
local taken = 0
while taken < max_count do
  local best, best_score, best_id = nil, nil, nil
  for q = 0, nq - 1 do
    local head = redis.call('ZRANGE', KEYS[q * 7 + 1], 0, 0, 'WITHSCORES')
    if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
      best, best_score, best_id = q, tonumber(head[2]), head[1]
    end
  end
  if best == nil then break end
  local k = best * 7
  redis.call('ZREM', KEYS[k + 1], best_id)
  local m = redis.call('HGET', KEYS[k + 5], best_id)
  local body = redis.call('HGET', KEYS[k + 4], best_id)
  if m and body then
    local score, deliveries, attempt = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|')
    deliveries = tonumber(deliveries) + 1
    redis.call('HSET', KEYS[k + 5], best_id,
      score .. '|' .. deliveries .. '|' .. attempt .. '|' .. token)
    redis.call('ZADD', KEYS[k + 3], lease_until, best_id)
    out[#out + 1] = best + 1
    out[#out + 1] = best_id
    out[#out + 1] = body
    out[#out + 1] = deliveries
    out[#out + 1] = tonumber(attempt)
    taken = taken + 1
  end
end

for q = 0, nq - 1 do
  local k = q * 7
  -- more remains: pass the wake-up on, so the next blocked reserver takes it
  if redis.call('ZCARD', KEYS[k + 1]) > 0 and redis.call('LLEN', KEYS[k + 6]) == 0 then
    redis.call('LPUSH', KEYS[k + 6], 1)
  end
end

if taken == 0 then
  if waker then
    for q = 0, nq - 1 do redis.call('SADD', KEYS[q * 7 + 7], waker) end
  end
  local hint = -1
  for q = 0, nq - 1 do
    local k = q * 7
    for _, zset in ipairs({KEYS[k + 2], KEYS[k + 3]}) do
      local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
      if first[1] then
        local wait = tonumber(first[2]) - now
        if hint < 0 or wait < hint then hint = wait end
      end
    end
  end
  out[1] = tostring(hint)
end
return out
