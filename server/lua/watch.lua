-- watch.lua — a registry script (server/registry_status.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, reset (1: first forget every user S watched), then users.
-- S watches each user from now on (their status changes are PUBLISHed on
-- S's status channel). Returns {epoch, then per user their status JSON
-- ({v, on, since, seen}) or "" when they never had one}. Atomic with the
-- registration, so no change falls between the answer and the events.
local s = ARGV[2]
if ARGV[3] == '1' then
  for _, w in ipairs(redis.call('SMEMBERS', skey(s, 'watch'))) do
    redis.call('SREM', P .. 'watch:' .. w, s)
  end
  redis.call('DEL', skey(s, 'watch'))
end
local out = {get_epoch()}
for i = 4, #ARGV do
  local u = ARGV[i]
  redis.call('SADD', P .. 'watch:' .. u, s)
  redis.call('SADD', skey(s, 'watch'), u)
  out[#out + 1] = redis.call('HGET', P .. 'status', u) or ''
end
return out
