-- reap.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S (self), history ttl. Reaps servers whose liveness expired.
local dead = {}
for _, s in ipairs(redis.call('SMEMBERS', P .. 'servers')) do
  if s ~= ARGV[2] and redis.call('EXISTS', skey(s, 'alive')) == 0 then
    reap_server(s, tonumber(ARGV[3]))
    dead[#dead + 1] = s
  end
end
return dead
