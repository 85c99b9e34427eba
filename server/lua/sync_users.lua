-- sync_users.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, then (user, connections) pairs: S's online users become
-- exactly these, and the cluster-wide counts follow.
local s = ARGV[2]
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
local have, seen = redis.call('HGETALL', skey(s, 'users')), {}
for i = 1, #have, 2 do
  online_add(have[i], (want[have[i]] or 0) - tonumber(have[i + 1]))
  seen[have[i]] = true
end
for user, k in pairs(want) do
  if not seen[user] then online_add(user, k) end
end
redis.call('DEL', skey(s, 'users'))
for user, k in pairs(want) do redis.call('HSET', skey(s, 'users'), user, k) end
return 1
