-- Keep one fallback's stale value within that fallback's cap of distinct live keys, atomically.
-- Slots (storage/redis/scripts.py StaleSetKeys, StaleSetArgs):
-- KEYS: 1 value; 2 index (the fallback's: a sorted set of value digests scored by their expiry in
--       milliseconds; both keys carry the fallback's hash tag).
-- ARGV: 1 sealed (the value), 2 digest (its member in the index), 3 ttl_ms (whole milliseconds),
--       4 max_keys (the cap). Redis TIME is the clock.
-- Returns 1 when kept (a new key, or one the index already holds, refreshed), 0 when refused: the
-- index already holds max_keys other live values.
local call = redis.call
local t = call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + tonumber(ARGV[3])
call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if not call('ZSCORE', KEYS[2], ARGV[2]) and call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
call('ZADD', KEYS[2], string.format('%d', expires), ARGV[2])
local last = call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
call('PEXPIREAT', KEYS[2], string.format('%d', tonumber(last[2])))
return 1
