-- status_get.lua — a registry script (server/registry_status.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, then users. Read only: {epoch, then per user their status JSON
-- or ""}, as watch.lua answers, without watching.
local out = {get_epoch()}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('HGET', P .. 'status', ARGV[i]) or ''
end
return out
