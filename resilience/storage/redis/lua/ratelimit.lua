-- Every limit of one request, decided atomically, all or nothing (mirrors core/gcra.py).
-- KEYS: one per limit (they share a hash tag). ARGV: per limit, 2 whole numbers of microseconds,
-- the increment (cost x emission interval) and the tolerance (burst x interval).
-- Redis TIME is the only clock. Times are whole microseconds since the Unix epoch: exact in Lua's
-- doubles, returned as integers and stored with %d, so no fraction is ever formatted (tostring
-- and %f cost more than the rest of the script).
-- Returns {allowed, now, tat_1, ..., tat_n}: the TATs before this request, 0 when unset.
-- Arithmetic on ARGV and TIME's strings converts them itself, and the functions used are locals:
-- each saves a global lookup or a call (this script's own work is ~1/5 of its server time).
local call = redis.call
local t = call('TIME')
local now = t[1] * 1000000 + t[2]
local n = #KEYS
local reply, after = {1, now}, {}
for i = 1, n do
  local tat = tonumber(call('GET', KEYS[i])) or 0
  reply[i + 2] = tat
  if tat < now then tat = now end
  tat = tat + ARGV[2 * i - 1]
  if tat - ARGV[2 * i] > now then reply[1] = 0 end
  after[i] = tat
end
if reply[1] == 1 then
  local format, ceil = string.format, math.ceil
  for i = 1, n do
    local ms = ceil((after[i] - now) / 1000)
    if ms < 1000 then ms = 1000 end
    call('SET', KEYS[i], format('%d', after[i]), 'PX', ms)
  end
end
return reply
