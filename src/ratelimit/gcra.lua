-- GCRA admission of one request, atomically: the twin of `Quota::admit` in gcra.rs.
-- KEYS[1]  the key's theoretical arrival time (TAT), in microseconds of Redis's clock
-- ARGV[1]  emission interval: the microseconds one request costs (period / limit)
-- ARGV[2]  window: how far ahead of now the TAT may run (interval * limit)
-- Returns {admitted (1 or 0), the TAT after the decision, now}.
--
-- `now` is Redis's own clock, so every instance measures against the same one: skew between
-- instances cannot hand out extra requests. (Scripts may write after TIME since Redis 5,
-- which replicates their effects rather than the script.)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
local next = tat + interval
if next - now > window then
  return {0, tat, now}
end
-- '%.0f': Lua's default number format keeps only 14 digits. The entry expires when the TAT
-- passes, when a missing entry means the same: a full allowance.
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
return {1, next, now}
