-- Every limit of one request, decided atomically, all or nothing (mirrors core/gcra.py).
-- KEYS: one per limit (they share a hash tag). ARGV: per limit, 3 values: interval, tolerance, cost
-- (seconds, seconds, units); then ARGV[3n+1] = 1 to only look (shadow/peek), else 0.
-- Redis TIME is the only clock. Returns {allowed, now, tat_1, ..., tat_n} (TATs before this request).
-- Times are seconds since 1,700,000,000 (Nov 2023): small enough that tostring's 14 significant
-- digits keep microseconds (string.format would cost half the script's time).
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
local n = #KEYS
local allowed, before, after = 1, {}, {}
for i = 1, n do
  local interval, tolerance, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local raw = redis.call('GET', KEYS[i])
  local tat = tonumber(raw)
  before[i] = tat and raw or ''
  local current = now
  if tat and tat > now then current = tat end
  local new_tat = current + cost * interval
  if new_tat - tolerance > now + 1e-9 then allowed = 0 end
  after[i] = new_tat
end
if allowed == 1 and ARGV[3 * n + 1] ~= '1' then
  for i = 1, n do
    local ms = math.max(math.ceil((after[i] - now) * 1000), 1000)
    redis.call('SET', KEYS[i], tostring(after[i]), 'PX', ms)
  end
end
local reply = {allowed, tostring(now)}
for i = 1, n do reply[i + 2] = before[i] end
return reply
