-- Announce a breaker name in the shared set the admin and `manage.py breakers` list, up to a bound:
-- names can come from client input (hosts of ResilientSession), and the set must not grow without end.
-- Slots (storage/redis/scripts.py NamesAddKeys, NamesAddArgs):
-- KEYS: 1 names (the set)
-- ARGV: 1 name, 2 max_names (at most this many), 3 ttl (the set's, in s)
-- Returns 1 when the name is (now) listed, 0 when the set is full.
local listed = redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1
if not listed and redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  listed = true
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return listed and 1 or 0
