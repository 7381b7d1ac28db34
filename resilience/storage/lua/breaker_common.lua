-- Shared prelude of the breaker scripts (prepended at load time). Mirrors core/breaker_state.py.
-- KEYS[1] state hash, KEYS[2] half-open permits (zset: permit id -> expiry), same hash tag.
-- ARGV: 1 name, 2 channel, 3 ttl (s), 4 open_for, 5 multiplier, 6 open_for ceiling,
--       7 half_open_calls, 8 permit ttl, 9 generation, 10 permit id, 11 outcome or manual op
local S, P = KEYS[1], KEYS[2]
local NAME, CHANNEL, TTL = ARGV[1], ARGV[2], tonumber(ARGV[3])
local HALF_OPEN_CALLS = tonumber(ARGV[7])

local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function load()
  local v = redis.call('HMGET', S, 'state', 'gen', 'open_until', 'since', 'trips', 'ok')
  local state = v[1]
  if state ~= 'open' and state ~= 'half_open' and state ~= 'forced_open' and state ~= 'disabled' then
    state = 'closed'
  end
  return {state = state, gen = tonumber(v[2]) or 0, open_until = tonumber(v[3]) or 0,
          since = tonumber(v[4]) or 0, trips = tonumber(v[5]) or 0, ok = tonumber(v[6]) or 0}
end

local function move(st, now, state, open_until, trips)
  local old = st.state
  st.state, st.gen, st.open_until, st.since, st.trips, st.ok = state, st.gen + 1, open_until, now, trips, 0
  redis.call('HSET', S, 'state', state, 'gen', st.gen, 'open_until', tostring(open_until),
             'since', tostring(now), 'trips', trips, 'ok', 0, 'name', NAME)
  redis.call('EXPIRE', S, TTL)
  redis.call('DEL', P)
  redis.call('PUBLISH', CHANNEL, NAME)
  return old
end

local function open(st, now)
  local trips = st.trips + 1
  local duration = tonumber(ARGV[4]) * tonumber(ARGV[5]) ^ math.min(trips - 1, 64)
  duration = math.min(duration, tonumber(ARGV[6]))
  return move(st, now, 'open', now + duration, trips)
end

local function reply(st, changed, now, allowed, probe, retry_after)
  return {changed, st.state, tostring(st.gen), tostring(st.open_until), tostring(st.since),
          tostring(st.trips), tostring(now), allowed, probe, retry_after}
end
