-- status: the state of messages still in the broker, for ids without a stored result.
-- Control path, not hot path: it looks the ids up in every known queue, building the
-- queue keys from the prefix (standalone Redis; on a cluster, one call per queue).
--
-- KEYS[1]  P:queues      SET   names of the queues ever used
-- reads    {q}:meta      HASH  id -> "score|deliveries|attempt|lease"
--          {q}:leased    ZSET  id -> lease expiry
-- ARGV: prefix, then ids
-- Returns one state per id: STARTED (leased now), RETRY (waiting for its next attempt),
-- PENDING, or '' (not in any queue).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local prefix = ARGV[1]
local queues = redis.call('SMEMBERS', KEYS[1])
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local state = ''
  for _, q in ipairs(queues) do
    local m = redis.call('HGET', prefix .. ':{' .. q .. '}:meta', id)
    if m then
      local _, _, attempt = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|')
      local expiry = redis.call('ZSCORE', prefix .. ':{' .. q .. '}:leased', id)
      if expiry and tonumber(expiry) > now then
        state = 'STARTED'
      elseif tonumber(attempt) > 0 then
        state = 'RETRY'
      else
        state = 'PENDING'
      end
      break
    end
  end
  out[#out + 1] = state
end
return out
