-- Cut the entries of expired stories (whose record is gone) from the head of a packed
-- posting key, as long as its head is still what the caller read. Lookups skip such entries
-- anyway: cutting them bounds a key to the stories still open. Built by `sweep_call` in
-- stored.py; every key is declared.
-- KEYS: 1 the posting key, then the records of the stories of its first entries, in order
-- ARGV: 1 the key's first entries as read (after its header), 2 an entry's size (bytes)
-- Reply: the number of entries cut
local key, head, step = KEYS[1], ARGV[1], tonumber(ARGV[2])
if #head == 0 or redis.call('GETRANGE', key, 4, 3 + #head) ~= head then return 0 end
local drop = 0
while drop < #KEYS - 1 and redis.call('EXISTS', KEYS[drop + 2]) == 0 do drop = drop + 1 end
if drop > 0 then
  local s = redis.call('GET', key)
  redis.call('SET', key, string.sub(s, 1, 4) .. string.sub(s, 5 + drop * step), 'KEEPTTL')
end
return drop
