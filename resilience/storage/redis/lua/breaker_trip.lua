-- Open a breaker that is still closed in the generation the caller measured.
local st, now = load(), now_s()
if st.gen ~= GEN or st.state ~= 'closed' then return reply(st, '', now, 0, 0, '') end
return reply(st, open(st, now), now, 0, 0, '')
