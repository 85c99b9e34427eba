-- moderation_get.lua — a registry script (server/registry_moderation.c), run
-- with EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, room, user ('' = everyone).
--
-- The room's live bans and mutes (hashes room:{R}:ban, room:{R}:mute: user
-- -> until ms, 0 = no end; room:{R}:modinfo: <kind>:<user> -> JSON
-- {"reason","by","at"}), an expired entry dropped when met (as publish.lua
-- does). With a user: only theirs (a SUBSCRIBE's ban check).
-- Returns {bans, mutes}, each a flat list user, until, info ('' unknown), ...
local room, user = ARGV[2], ARGV[3]
local now = now_ms()
local info = rkey(room, 'modinfo')
local function live(k)
  local h = rkey(room, k)
  local flat
  if user ~= '' then
    local v = redis.call('HGET', h, user)
    flat = v and {user, v} or {}
  else
    flat = redis.call('HGETALL', h)
  end
  local out = {}
  for i = 1, #flat, 2 do
    local e = tonumber(flat[i + 1]) or 0
    if e ~= 0 and e <= now then
      redis.call('HDEL', h, flat[i])
      redis.call('HDEL', info, k .. ':' .. flat[i])
    else
      out[#out + 1] = flat[i]
      out[#out + 1] = tostring(e)
      out[#out + 1] = redis.call('HGET', info, k .. ':' .. flat[i]) or ''
    end
  end
  return out
end
return {live('ban'), live('mute')}
