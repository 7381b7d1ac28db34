-- One failed login for a (username, address) pair: count it, and push the pair's cool-off TAT
-- forward by interval * 2^(failures beyond the threshold) - so waits double with each failure.
-- Slots (storage/redis/scripts.py LoginFailureKeys, LoginFailureArgs):
-- KEYS: 1 cooloff (the pair's TAT, checked by ratelimit.lua at cost 0), 2 failures (the count, same hash tag)
-- ARGV: 1 interval_us, 2 threshold (failures admitted freely), 3 window (seconds the count lives),
--       4 max_wait_us
-- Times are whole microseconds since the Unix epoch, as in ratelimit.lua.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local failures = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local step = interval * 2 ^ math.min(math.max(failures - threshold, 0), 30)
tat = math.min(tat + step, now + threshold * interval + tonumber(ARGV[4]))
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.max(math.ceil((tat - now) / 1000), 1000))
return failures
