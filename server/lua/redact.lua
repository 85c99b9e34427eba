-- redact.lua — a registry script (server/registry_redact.c), run with EVALSHA
-- after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, room, message id, mark (the JSON {"by","at"} to record).
--
-- Marks a message of the room's log as redacted: the hash room:{R}:red
-- (message id -> mark) is what every read of the log (log_range.lua)
-- consults to hand out the message's tombstone instead of the message.
-- Returns {status, mark, entry}:
--   'marked'   the log holds the message and it is marked now: mark is
--              ARGV[4]; entry = {id, fields} as the log holds it;
--   'already'  it was marked before: mark is the recorded one; entry {};
--   'absent'   the log does not hold that id (trimmed, expired, or never
--              there): nothing changed; mark ''; entry {};
--   'event'    the id is a redaction event's (x-redacts): those are not
--              redacted (they carry no body, and clients act on them).
-- The hash lives as long as the log (same TTL, or none while the room has
-- members: prelude.lua's member_add and room_cleanup, publish.lua); marks
-- of ids older than the log's oldest entry are dropped here, so the hash
-- holds at most the redactions of what the log still holds (and those
-- since the last redaction).
local room, id, mark = ARGV[2], ARGV[3], ARGV[4]
local log, red = rkey(room, 'log'), rkey(room, 'red')
local seen = redis.call('HGET', red, id)
if seen then return {'already', seen, {}} end
local e = redis.call('XRANGE', log, id, id)
if not e[1] then return {'absent', '', {}} end
local f = e[1][2]
for i = 1, #f, 2 do
  if f[i] == 'h' and string.find('\n' .. f[i + 1], '\nx%-redacts:') then return {'event', '', {}} end
end
redis.call('HSET', red, id, mark)
local ttl = redis.call('PTTL', log)
if ttl > 0 then redis.call('PEXPIRE', red, ttl) else redis.call('PERSIST', red) end
local function parts(x)
  local ms, n = string.match(x, '^(%d+)-(%d+)$')
  return tonumber(ms or '0'), tonumber(n or '0')
end
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1][1]
local fms, fn = parts(first)
for _, k in ipairs(redis.call('HKEYS', red)) do
  local ms, n = parts(k)
  if ms < fms or (ms == fms and n < fn) then redis.call('HDEL', red, k) end
end
return {'marked', mark, e[1]}
