-- Hand back a half-open permit with the probe's outcome: success x N closes, failure re-opens.
local st, now = load(), now_s()
local held = redis.call('HDEL', S, permit_field(PERMIT)) == 1
if st.gen ~= GEN or st.state ~= 'half_open' or not held then
  return reply(st, '', now, 0, 0, '')
end
local changed = ''
if ARG == 'failure' then
  changed = open(st, now)
elseif ARG == 'success' then
  st.ok = redis.call('HINCRBY', S, 'ok', 1)
  if st.ok >= HALF_OPEN_CALLS then changed = move(st, now, 'closed', 0, 0) end
end
return reply(st, changed, now, 0, 0, '')
