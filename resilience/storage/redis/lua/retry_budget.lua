-- Retry budget shared by every worker: add this worker's pending call count, then (optionally)
-- take one retry if retries stay within ratio * calls + floor over the window. Redis TIME is the clock.
-- Slots (storage/redis/scripts.py RetryBudgetKeys, RetryBudgetArgs):
-- KEYS: 1 budget (hash; fields c:<second>, r:<second>)
-- ARGV: 1 pending_calls, 2 want_retry (0/1), 3 ratio, 4 floor (retries per window), 5 window (s)
local key = KEYS[1]
local now = tonumber(redis.call('TIME')[1])
local window = tonumber(ARGV[5])
if tonumber(ARGV[1]) > 0 then redis.call('HINCRBY', key, 'c:' .. now, ARGV[1]) end
local calls, retries = 0, 0
local fields = redis.call('HGETALL', key)
for i = 1, #fields, 2 do
  local kind, second = string.sub(fields[i], 1, 1), tonumber(string.sub(fields[i], 3))
  if second == nil or second <= now - window then
    redis.call('HDEL', key, fields[i])
  elseif kind == 'c' then
    calls = calls + tonumber(fields[i + 1])
  else
    retries = retries + tonumber(fields[i + 1])
  end
end
local granted = 0
if ARGV[2] == '1' and retries + 1 <= tonumber(ARGV[3]) * calls + tonumber(ARGV[4]) then
  redis.call('HINCRBY', key, 'r:' .. now, 1)
  granted = 1
end
redis.call('EXPIRE', key, window * 2)
return granted
