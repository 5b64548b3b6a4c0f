-- status: the state of messages of one queue, for ids without a stored result. Control
-- path: the client calls it once per known queue (each queue is one hash slot).
--
-- KEYS[1]  {q}:meta    HASH  id -> "score|deliveries|attempt|lease"
-- KEYS[2]  {q}:leased  ZSET  id -> lease expiry
-- ARGV: ids
-- Returns one state per id: STARTED (leased now), RETRY (waiting for its next attempt),
-- PENDING, or '' (not in this queue).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local state = ''
  local m = redis.call('HGET', KEYS[1], id)
  if m then
    local _, _, attempt = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|')
    local expiry = redis.call('ZSCORE', KEYS[2], id)
    if expiry and tonumber(expiry) > now then
      state = 'STARTED'
    elseif tonumber(attempt) > 0 then
      state = 'RETRY'
    else
      state = 'PENDING'
    end
  end
  out[#out + 1] = state
end
return out
