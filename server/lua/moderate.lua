-- moderate.lua — a registry script (server/registry_moderation.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, op ('set', 'lift' or 'kick'), kind ('ban' or 'mute'; '' for a
-- kick), room, user, duration ms (0 = no end), reason, by, at (ms, the
-- asking server's clock: when it was asked).
--
-- One moderation change, atomically:
--   'set'   the hash room:{R}:<kind> gets user -> until (Redis's clock now
--           plus the duration; 0 = no end), and room:{R}:modinfo the field
--           <kind>:<user> -> {"reason","by","at"}; a ban is also announced
--           (below);
--   'lift'  both fields go;
--   'kick'  nothing is stored; the kick is announced.
-- An announcement is PUBLISHed on the channel P moderation, which every
-- server subscribes to: {"type": "kicked" | "banned", "room", "user",
-- "reason", "by", "at", "until"}; each server ends the user's subscriptions
-- to the room (session_moderation.c). Because the ban and its announcement
-- are one step, a SUBSCRIBE that asks after it (moderation_check.lua) sees
-- the ban, and one that asked before it is ended by the announcement.
--
-- Lifetime: publish.lua and moderation_check.lua drop an expired entry when
-- they meet it; here every entry of both hashes is looked at (a room has a
-- handful), expired ones dropped with their info, and each hash expires
-- when its last entry ends (PEXPIREAT; PERSIST while one has no end).
-- modinfo lives as long as the longer of the two.
--
-- Returns {until, was, receivers}: until of the entry set (0 = no end; 0
-- for a lift or kick); was = 1 when a lift removed a live entry; receivers
-- = servers that got the announcement (0 when there was none).
local op, kind, room, user = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local dur, reason, by, at = tonumber(ARGV[6]), ARGV[7], ARGV[8], tonumber(ARGV[9])
local now = now_ms()
local info = rkey(room, 'modinfo')
local untl, was, receivers = 0, 0, 0

if op == 'set' then
  if dur > 0 then untl = now + dur end
  redis.call('HSET', rkey(room, kind), user, untl)
  redis.call('HSET', info, kind .. ':' .. user,
             cjson.encode({reason = reason, by = by, at = at}))
elseif op == 'lift' then
  local v = redis.call('HGET', rkey(room, kind), user)
  if v and (tonumber(v) == 0 or tonumber(v) > now) then was = 1 end
  redis.call('HDEL', rkey(room, kind), user)
  redis.call('HDEL', info, kind .. ':' .. user)
end

-- Expired entries go, each hash expires with its last entry; returns the
-- hash's latest end (-1: empty; 0: an entry without end).
local function tidy(k)
  local h = rkey(room, k)
  local flat = redis.call('HGETALL', h)
  local latest = -1
  for i = 1, #flat, 2 do
    local e = tonumber(flat[i + 1]) or 0
    if e ~= 0 and e <= now then
      redis.call('HDEL', h, flat[i])
      redis.call('HDEL', info, k .. ':' .. flat[i])
    elseif e == 0 or latest == 0 then
      latest = 0
    elseif e > latest then
      latest = e
    end
  end
  if latest == 0 then redis.call('PERSIST', h)
  elseif latest > 0 then redis.call('PEXPIREAT', h, latest) end
  return latest
end
local lb, lm = tidy('ban'), tidy('mute')
-- Info whose entry publish.lua dropped: nothing points at it any more.
local fields = redis.call('HKEYS', info)
for _, f in ipairs(fields) do
  local k, u = string.match(f, '^(%a+):(.*)$')
  if not k or redis.call('HEXISTS', rkey(room, k), u) == 0 then
    redis.call('HDEL', info, f)
  end
end
if lb == 0 or lm == 0 then redis.call('PERSIST', info)
elseif lb > 0 or lm > 0 then redis.call('PEXPIREAT', info, math.max(lb, lm)) end

if op == 'kick' or (op == 'set' and kind == 'ban') then
  receivers = redis.call('PUBLISH', P .. 'moderation', cjson.encode({
    type = op == 'kick' and 'kicked' or 'banned', room = room, user = user,
    reason = reason, by = by, at = at, ['until'] = untl}))
end
return {untl, was, receivers}
