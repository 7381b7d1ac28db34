-- Read the state; start a fresh record (in a new generation) when there is none.
local st, now = load(), now_s()
return reply(st, '', now, 0, 0, '')
