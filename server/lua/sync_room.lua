-- sync_room.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, room, now ms, history ttl, then (user, name, count) triples:
-- S's members of room become exactly these (joins and leaves only for real
-- differences, so a reconnect does not make presence flicker). Returns the
-- room's {epoch, seq}.
local s, room, now, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local want = {}
for i = 6, #ARGV, 3 do want[ARGV[i]] = {name = ARGV[i + 1], k = tonumber(ARGV[i + 2])} end
local have = redis.call('HGETALL', rkey(room, 'who:' .. s))
for i = 1, #have, 2 do
  local user, k = have[i], tonumber(have[i + 1])
  local w = want[user]
  local d = (w and w.k or 0) - k
  if d < 0 then member_remove(room, s, user, -d, ttl)
  elseif d > 0 then member_add(room, s, user, w.name, d, now) end
  if w then w.done = true end
end
for user, w in pairs(want) do
  if not w.done and w.k > 0 then member_add(room, s, user, w.name, w.k, now) end
end
if redis.call('HEXISTS', rkey(room, 'srv'), s) == 0 then
  redis.call('SREM', skey(s, 'rooms'), room)
end
room_cleanup(room, ttl)
return room_state(room)
