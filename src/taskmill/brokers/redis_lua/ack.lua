-- ack: store results (the first final result of an id wins), then remove the acknowledged
-- messages whose lease token is still current. One atomic step: a message is never gone
-- without its result. On Redis Cluster, where a script may touch one hash slot only, the
-- client calls it once per slot: the results of one id (nq = 0) first, then one queue's
-- deliveries (nr = 0).
--
-- KEYS: nr result pairs, then nq queue groups:
--   P:r:{<id>}   STRING  state "\n" body, expiring with the result's TTL
--   P:w:{<id>}   LIST    the same value, for a client blocked in BLPOP (expires in 60 s)
--   {q}:ready, {q}:delayed, {q}:leased  ZSET   (the message is removed from all three)
--   {q}:msg, {q}:meta                   HASH
-- ARGV: nr, nq, then nr times: value, ttl ms; then per delivery: queue index (1-based), id, token
-- Returns one 0/1 per delivery: 1 acknowledged, 0 stale lease or already gone.
local nr = tonumber(ARGV[1])
local nq = tonumber(ARGV[2])
for i = 0, nr - 1 do
  local value, ttl = ARGV[3 + i * 2], ARGV[4 + i * 2]
  if redis.call('SET', KEYS[1 + i * 2], value, 'PX', ttl, 'NX') then
    redis.call('DEL', KEYS[2 + i * 2])
    redis.call('RPUSH', KEYS[2 + i * 2], value)
    redis.call('PEXPIRE', KEYS[2 + i * 2], 60000)
  end
end
local out = {}
local base = 3 + nr * 2
for i = base, #ARGV, 3 do
  local k = nr * 2 + (tonumber(ARGV[i]) - 1) * 5
  local id, token = ARGV[i + 1], ARGV[i + 2]
  local m = redis.call('HGET', KEYS[k + 5], id)
  if m and string.match(m, '^[^|]*|[^|]*|[^|]*|(.*)$') == token then
    redis.call('HDEL', KEYS[k + 4], id)
    redis.call('HDEL', KEYS[k + 5], id)
    -- a message is in one zset at a time: leased, unless its lease ran out and a
    -- reserve made it ready again
    if redis.call('ZREM', KEYS[k + 3], id) == 0 then
      redis.call('ZREM', KEYS[k + 1], id)
      redis.call('ZREM', KEYS[k + 2], id)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
