-- Admit, probe or reject a call while the breaker is not closed; open -> half_open when due.
local st, now, changed = load(), now_s(), ''
if st.state == 'closed' or st.state == 'disabled' then return reply(st, '', now, 1, 0, '') end
if st.state == 'forced_open' then return reply(st, '', now, 0, 0, '') end
if st.state == 'open' then
  if now < st.open_until then return reply(st, '', now, 0, 0, tostring(st.open_until - now)) end
  changed = move(st, now, 'half_open', 0, st.trips)
end
-- The live permits (fields p:<id> of S, each its expiry), the expired ones dropped, and the earliest expiry.
local live, first = 0, nil
local fields = redis.call('HGETALL', S)
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'p:' then
    local expires = tonumber(fields[i + 1])
    if expires <= now then
      redis.call('HDEL', S, fields[i])
    else
      live = live + 1
      if not first or expires < first then first = expires end
    end
  end
end
if live + st.ok < HALF_OPEN_CALLS then
  redis.call('HSET', S, permit_field(PERMIT), string.format('%.17g', now + PERMIT_TTL))  -- S keeps its TTL
  return reply(st, changed, now, 1, 1, '')
end
local wait = 1.0
if first then wait = math.max(first - now, 0.001) end
return reply(st, changed, now, 0, 0, tostring(wait))
