-- Move the entries of a posting key of the layout before 2026-12 into today's keys, in front
-- of the entries written there since (they are older), and delete it. Built by `move_call` in
-- stored.py, which groups the entries by today's key.
-- KEYS: 1 the earlier key, then today's keys its entries go to
-- ARGV: 1 the earlier key's header when read, 2 its length when read, then per key of today
--       (in the order of KEYS) its entries, packed
-- Reply: 1 when moved, 0 when the earlier key changed since it was read (a replica of the
--        earlier version wrote it: read it again) or is gone
local earlier = KEYS[1]
local header = redis.call('GETRANGE', earlier, 0, 3)
if header ~= ARGV[1] or redis.call('STRLEN', earlier) ~= tonumber(ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', earlier)
for i = 2, #KEYS do
  local key = KEYS[i]
  local current = redis.call('GET', key)
  local keep = math.max(ttl, redis.call('PTTL', key))
  if current then
    local latest = string.sub(current, 1, 4)
    if num(header, 1) > num(latest, 1) then latest = header end
    redis.call('SET', key, latest .. ARGV[i + 1] .. string.sub(current, 5))
  else
    redis.call('SET', key, header .. ARGV[i + 1])
  end
  if keep > 0 then redis.call('PEXPIRE', key, keep) end
end
redis.call('DEL', earlier)
return 1
