-- Hand back a half-open permit with the probe's outcome: success x N closes, failure re-opens.
local st, now = load(), now_s()
local held = redis.call('ZREM', P, ARGV[10]) == 1
if st.gen ~= tonumber(ARGV[9]) or st.state ~= 'half_open' or not held then
  return reply(st, '', now, 0, 0, '')
end
local changed = ''
if ARGV[11] == 'failure' then
  changed = open(st, now)
elseif ARGV[11] == 'success' then
  st.ok = redis.call('HINCRBY', S, 'ok', 1)
  if st.ok >= HALF_OPEN_CALLS then changed = move(st, now, 'closed', 0, 0) end
end
return reply(st, changed, now, 0, 0, '')
