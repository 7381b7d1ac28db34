-- Admit, probe or reject a call while the breaker is not closed; open -> half_open when due.
local st, now, changed = load(), now_s(), ''
if st.state == 'closed' or st.state == 'disabled' then return reply(st, '', now, 1, 0, '') end
if st.state == 'forced_open' then return reply(st, '', now, 0, 0, '') end
if st.state == 'open' then
  if now < st.open_until then return reply(st, '', now, 0, 0, tostring(st.open_until - now)) end
  changed = move(st, now, 'half_open', 0, st.trips)
end
redis.call('ZREMRANGEBYSCORE', P, '-inf', now)
if redis.call('ZCARD', P) + st.ok < HALF_OPEN_CALLS then
  redis.call('ZADD', P, now + PERMIT_TTL, PERMIT)
  redis.call('EXPIRE', P, TTL)
  return reply(st, changed, now, 1, 1, '')
end
local first = redis.call('ZRANGE', P, 0, 0, 'WITHSCORES')
local wait = 1.0
if first[2] then wait = math.max(tonumber(first[2]) - now, 0.001) end
return reply(st, changed, now, 0, 0, tostring(wait))
