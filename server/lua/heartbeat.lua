-- heartbeat.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, alive ttl. 0 when S is not registered (it was reaped).
if redis.call('SISMEMBER', P .. 'servers', ARGV[2]) == 0 then return 0 end
redis.call('SET', skey(ARGV[2], 'alive'), '1', 'PX', ARGV[3])
return 1
