-- online.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, user, k (negative: connections closed).
local s, user, k = ARGV[2], ARGV[3], tonumber(ARGV[4])
if k < 0 then
  local have = tonumber(redis.call('HGET', skey(s, 'users'), user) or '0')
  if -k > have then k = -have end
end
if k ~= 0 then
  if redis.call('HINCRBY', skey(s, 'users'), user, k) <= 0 then
    redis.call('HDEL', skey(s, 'users'), user)
  end
  online_add(user, k)
end
return 1
