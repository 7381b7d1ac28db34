-- Release a lock for its owner only. Slots (storage/redis/scripts.py LockReleaseKeys, LockReleaseArgs):
-- KEYS: 1 lock
-- ARGV: 1 owner (the token written with SET NX PX when it was claimed), 2 keep_ms (milliseconds
--       to keep the lock as a mark instead of deleting it; 0: delete), 3 mark (its value)
-- A worker whose lock expired, and was claimed since by another, changes nothing: GET and DEL
-- (or SET) in one script, so nothing runs between them.
-- Returns 1 when the owner's lock was released, 0 when it was gone or someone else's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
