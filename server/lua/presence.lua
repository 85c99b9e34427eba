-- presence.lua — a registry script (server/registry_query.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, room, max. Returns {count, version, {member json...}}.
local room, max = ARGV[2], tonumber(ARGV[3])
local count = redis.call('HLEN', rkey(room, 'who'))
local v = tonumber(redis.call('GET', rkey(room, 'pv')) or '0')
local list, cursor = {}, '0'
repeat
  local r = redis.call('HSCAN', rkey(room, 'who'), cursor, 'COUNT', 100)
  cursor = r[1]
  for i = 2, #r[2], 2 do
    if #list < max then list[#list + 1] = r[2][i] end
  end
until cursor == '0' or #list >= max
return {count, v, list}
