-- unwatch.lua — a registry script (server/registry_status.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, then users S no longer watches. Returns 1.
local s = ARGV[2]
for i = 3, #ARGV do
  redis.call('SREM', P .. 'watch:' .. ARGV[i], s)
  redis.call('SREM', skey(s, 'watch'), ARGV[i])
end
return 1
