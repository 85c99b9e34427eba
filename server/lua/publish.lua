-- publish.lua — a registry script (server/registry_log.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, room, maxlen, history ttl, field, value, ... Appends to the
-- room's log; returns {id, seq, epoch, other servers with members}.
local s, room = ARGV[2], ARGV[3]
local e = get_epoch()
local seq = redis.call('INCR', rkey(room, 'seq'))
local id = redis.call('XADD', rkey(room, 'log'), 'MAXLEN', '~', ARGV[4], '*',
                      'q', seq, 'e', e, unpack(ARGV, 6))
local n = redis.call('HLEN', rkey(room, 'srv'))
local others = n
if redis.call('HEXISTS', rkey(room, 'srv'), s) == 1 then others = n - 1 end
if n == 0 then
  redis.call('PEXPIRE', rkey(room, 'log'), ARGV[5])
  redis.call('PEXPIRE', rkey(room, 'seq'), ARGV[5])
end
return {id, seq, e, others}
