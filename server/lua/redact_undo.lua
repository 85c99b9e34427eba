-- redact_undo.lua — a registry script (server/registry_redact.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, room, message id, mark.
--
-- Takes back a mark redact.lua recorded, when the rest of the redaction
-- (the MySQL tombstone, the redaction event) failed, so that the request
-- can be repeated from the start. Only that very mark: one recorded by
-- another request is left alone. Returns 1 when removed, else 0.
local red = rkey(ARGV[2], 'red')
if redis.call('HGET', red, ARGV[3]) == ARGV[4] then
  redis.call('HDEL', red, ARGV[3])
  return 1
end
return 0
