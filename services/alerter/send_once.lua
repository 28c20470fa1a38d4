-- Record an alert and publish it on `alerts` and `{alerts}.<topic>` in one atomic step, so a
-- redelivered event or a second replica can never send it twice, nor a crash between the
-- steps lose it. A new alert is guarded by its `sent` key (SET NX); an update by the story's
-- update number (it must still be the one the update was computed from). Alerts older than
-- the retention (by the server's clock, which stamps entry ids) leave both streams.
-- KEYS: 1 the alert's `sent` mark, 2 alerts, 3 the topic's alert stream, 4 the story's
--       alert state (hash)
-- ARGV: 1 the alert (JSON), 2 the story event's id, 3 the state's TTL (s), 4 the streams'
--       data field, 5 the topic's state field, 6 the state after this alert, 7 the update
--       number expected ('' for a new alert), 8 the topic's update-number field, 9 this
--       alert's update number, 10 the retention (ms)
-- Returns 1 if the alert was published, 0 if it had been already (or was superseded).
local sent, alerts, topic_alerts, story = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local alert, event_id, ttl_seconds, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state_field, state, expected = ARGV[5], ARGV[6], ARGV[7]
local number_field, number, retention_ms = ARGV[8], ARGV[9], tonumber(ARGV[10])

if expected == '' then
  if not redis.call('SET', sent, event_id, 'NX', 'EX', ttl_seconds) then return 0 end
elseif redis.call('HGET', story, number_field) ~= expected then
  return 0
end
redis.call('HSET', story, state_field, state, number_field, number)
redis.call('EXPIRE', story, ttl_seconds)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local floor = string.format('%.0f', math.max(0, now_ms - retention_ms)) .. '-0'
redis.call('XADD', alerts, 'MINID', floor, '*', field, alert)
redis.call('XADD', topic_alerts, 'MINID', floor, '*', field, alert)
return 1
