-- publish.lua — a registry script (server/registry_log.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, room, maxlen, history ttl, checked user ('' = none), idempotency
-- key ('' = none), idempotency window ms, field, value, ...
--
-- Appends to the room's log unless the sender may not send or the message is
-- a repeat. Returns {status, id, seq, epoch, others, extra}:
--   'ok'     appended: id, seq, epoch, other servers with members;
--   'dup'    the same idempotency key from the same sender within the window:
--            nothing appended; id, seq, epoch of the first, extra = its ts;
--   'banned' / 'muted'  the checked user is banned from / muted in the room
--            (hashes room:{R}:ban, room:{R}:mute: user -> until ms, 0 = no
--            end): nothing appended; extra = until.
-- The checks, the repeat test and the append are one atomic step, so no
-- ban, mute or first copy can slip between a check and the append.
local s, room, user, ikey = ARGV[2], ARGV[3], ARGV[6], ARGV[7]
local now = nil
local function now_ms()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local function restricted(kind)
  local v = redis.call('HGET', rkey(room, kind), user)
  if not v then return nil end
  local untl = tonumber(v) or 0
  if untl ~= 0 and untl <= now_ms() then
    redis.call('HDEL', rkey(room, kind), user)
    return nil
  end
  return untl
end
if user ~= '' then
  local b = restricted('ban')
  if b then return {'banned', '', 0, 0, 0, b} end
  local m = restricted('mute')
  if m then return {'muted', '', 0, 0, 0, m} end
end
local idk = nil
if ikey ~= '' then
  local sender = ''
  for i = 9, #ARGV, 2 do
    if ARGV[i] == 's' then sender = ARGV[i + 1]; break end
  end
  idk = rkey(room, 'idem:' .. #sender .. ':' .. sender .. ':' .. ikey)
  local seen = redis.call('GET', idk)
  if seen then
    local id, q, ep, ts = string.match(seen, '^(%S+) (%d+) (%d+) (%d+)$')
    if id then return {'dup', id, q, ep, 0, ts} end
  end
end
local e = get_epoch()
local seq = redis.call('INCR', rkey(room, 'seq'))
local id = redis.call('XADD', rkey(room, 'log'), 'MAXLEN', '~', ARGV[4], '*',
                      'q', seq, 'e', e, unpack(ARGV, 9))
local n = redis.call('HLEN', rkey(room, 'srv'))
local others = n
if redis.call('HEXISTS', rkey(room, 'srv'), s) == 1 then others = n - 1 end
if n == 0 then
  redis.call('PEXPIRE', rkey(room, 'log'), ARGV[5])
  redis.call('PEXPIRE', rkey(room, 'seq'), ARGV[5])
  redis.call('PEXPIRE', rkey(room, 'red'), ARGV[5])
end
if idk then
  local ts = '0'
  for i = 9, #ARGV, 2 do
    if ARGV[i] == 't' then ts = ARGV[i + 1]; break end
  end
  redis.call('SET', idk, id .. ' ' .. seq .. ' ' .. e .. ' ' .. ts, 'PX', ARGV[8])
end
return {'ok', id, seq, e, others, 0}
