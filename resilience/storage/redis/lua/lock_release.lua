-- Release a lock for its owner only. KEYS[1] the lock; ARGV[1] the owner's token (written with
-- SET NX PX when it was claimed); ARGV[2] milliseconds to keep the lock as a mark instead of deleting
-- it (0: delete), ARGV[3] the mark's value. A worker whose lock expired, and was claimed since by
-- another, changes nothing: GET and DEL (or SET) in one script, so nothing runs between them.
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
