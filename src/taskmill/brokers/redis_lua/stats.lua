-- stats: message counts of one queue. Control path: the client calls it once per known
-- queue (each queue is one hash slot).
--
-- KEYS[1..4]  {q}:ready, {q}:delayed, {q}:leased, {q}:dead  ZSET
-- Returns {ready, delayed, in flight, dead}; due delayed messages and expired leases
-- count as ready.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local ready = redis.call('ZCARD', KEYS[1])
  + redis.call('ZCOUNT', KEYS[2], '-inf', now)
  + redis.call('ZCOUNT', KEYS[3], '-inf', now)
local delayed = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local in_flight = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
return {ready, delayed, in_flight, redis.call('ZCARD', KEYS[4])}
