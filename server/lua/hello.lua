-- hello.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, alive ttl. Registers S; returns {epoch, rooms Redis has S in},
-- which the replay reconciles with the mirror.
redis.call('SADD', P .. 'servers', ARGV[2])
redis.call('SET', skey(ARGV[2], 'alive'), '1', 'PX', ARGV[3])
return {get_epoch(), redis.call('SMEMBERS', skey(ARGV[2], 'rooms'))}
