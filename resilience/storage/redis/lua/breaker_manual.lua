-- Reset, force open or disable by hand, from any state.
local st, now = load(), now_s()
local targets = {reset = 'closed', force_open = 'forced_open', disable = 'disabled'}
local target = targets[ARG]
if not target then return redis.error_reply('unknown manual operation') end
local trips = st.trips
if target == 'closed' then trips = 0 end
return reply(st, move(st, now, target, 0, trips), now, 0, 0, '')
