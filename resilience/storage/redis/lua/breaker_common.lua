-- Shared prelude of the breaker scripts (prepended at load time). Mirrors core/breaker_state.py.
-- Slots as packed by storage/redis/scripts.py (BreakerKeys, BreakerArgs), named once here:
-- KEYS: 1 state (hash: state, gen, open_until, since, trips, ok, name, and one field p:<permit id>
--       per half-open permit, its expiry). One key: while its slot migrates, the node it leaves runs
--       the script as long as it holds S and answers ASK once S has left, and the importing node runs
--       it after ASKING, S there or not. (Two keys, one missing: both nodes refused it, TRYAGAIN.)
-- ARGV: 1 name, 2 channel, 3 ttl (s), 4 open_for, 5 multiplier, 6 open_for_max,
--       7 half_open_calls, 8 permit_ttl, 9 gen (the caller's: expected, or last known),
--       10 permit (id), 11 arg (the probe's outcome, or the manual operation)
local S = KEYS[1]
local NAME, CHANNEL, TTL = ARGV[1], ARGV[2], tonumber(ARGV[3])
local OPEN_FOR, MULTIPLIER, OPEN_FOR_MAX = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local HALF_OPEN_CALLS, PERMIT_TTL = tonumber(ARGV[7]), tonumber(ARGV[8])
local GEN, PERMIT, ARG = tonumber(ARGV[9]), ARGV[10], ARGV[11]
local CLOCK = redis.call('TIME')
local NOW_US = tonumber(CLOCK[1]) * 1000000 + tonumber(CLOCK[2])  -- exact: a double holds 2^53

local function now_s()
  return tonumber(CLOCK[1]) + tonumber(CLOCK[2]) / 1000000
end

-- Integers as digits: tostring() keeps only 14 significant digits, a generation has 16.
local function int(n)
  return string.format('%.0f', n)
end

-- next_generation() of core/breaker_state.py: above the previous one and at least the clock in µs.
local function next_gen(previous)
  return math.max(previous + 1, NOW_US)
end

-- A half-open permit's field in S; its value is the permit's expiry (s, every digit: '%.17g').
local function permit_field(id)
  return 'p:' .. id
end

-- Drop every half-open permit, once the record's own fields are written. Field by field, S never
-- empty: a node whose slot is migrating away refuses to write a key it does not hold (S deleted and
-- written again), and the script would stop halfway, the record gone.
local function drop_permits()
  for _, field in ipairs(redis.call('HKEYS', S)) do
    if string.sub(field, 1, 2) == 'p:' then redis.call('HDEL', S, field) end
  end
end

local function load()
  local v = redis.call('HMGET', S, 'state', 'gen', 'open_until', 'since', 'trips', 'ok')
  local gen = tonumber(v[2])
  if not gen then
    -- No record: first use, or the state was lost (Redis restarted empty, the key evicted or
    -- deleted). A fresh one starts above the caller's generation and at the clock, so no generation
    -- repeats and no window, call or permit of the lost state can match it.
    gen = next_gen(GEN or -1)
    redis.call('HSET', S, 'state', 'closed', 'gen', int(gen), 'open_until', '0', 'since', '0',
               'trips', 0, 'ok', 0, 'name', NAME)
    drop_permits()  -- a hash without a generation keeps nothing of this record
    redis.call('EXPIRE', S, TTL)
    redis.call('PUBLISH', CHANNEL, NAME)
    return {state = 'closed', gen = gen, open_until = 0, since = 0, trips = 0, ok = 0}
  end
  local state = v[1]
  if state ~= 'open' and state ~= 'half_open' and state ~= 'forced_open' and state ~= 'disabled' then
    state = 'closed'
  end
  return {state = state, gen = gen, open_until = tonumber(v[3]) or 0,
          since = tonumber(v[4]) or 0, trips = tonumber(v[5]) or 0, ok = tonumber(v[6]) or 0}
end

local function move(st, now, state, open_until, trips)
  local old = st.state
  st.state, st.gen, st.open_until, st.since, st.trips, st.ok = state, next_gen(st.gen), open_until, now, trips, 0
  redis.call('HSET', S, 'state', state, 'gen', int(st.gen), 'open_until', tostring(open_until),
             'since', tostring(now), 'trips', trips, 'ok', 0, 'name', NAME)
  drop_permits()  -- they belong to the period that ends
  redis.call('EXPIRE', S, TTL)
  redis.call('PUBLISH', CHANNEL, NAME)
  return old
end

local function open(st, now)
  local trips = st.trips + 1
  local duration = OPEN_FOR * MULTIPLIER ^ math.min(trips - 1, 64)
  duration = math.min(duration, OPEN_FOR_MAX)
  return move(st, now, 'open', now + duration, trips)
end

local function reply(st, changed, now, allowed, probe, retry_after)
  return {changed, st.state, int(st.gen), tostring(st.open_until), tostring(st.since),
          tostring(st.trips), tostring(now), allowed, probe, retry_after, int(NOW_US)}
end
