-- rooms_page.lua — a registry script (server/registry_query.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, after (a room name; "" from the start), limit. The live rooms
-- (those with a member on some server), in name order after `after`, at
-- most `limit` of them. Returns {more (1/0), then per room: name, members
-- (distinct users present), servers (with members)}. Cost: every server's
-- room set is read and sorted, so linear in the cluster's rooms per page.
local after, limit = ARGV[2], tonumber(ARGV[3])
local seen, names = {}, {}
for _, s in ipairs(redis.call('SMEMBERS', P .. 'servers')) do
  for _, r in ipairs(redis.call('SMEMBERS', skey(s, 'rooms'))) do
    if not seen[r] and r > after then
      seen[r] = true
      names[#names + 1] = r
    end
  end
end
table.sort(names)
local out = {#names > limit and 1 or 0}
for i = 1, math.min(#names, limit) do
  local r = names[i]
  out[#out + 1] = r
  out[#out + 1] = redis.call('HLEN', rkey(r, 'who'))
  out[#out + 1] = redis.call('HLEN', rkey(r, 'srv'))
end
return out
