-- hide.lua — a registry script (server/registry_status.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, user, 1 (hide: appear offline to everyone) or 0 (be seen).
-- Kept in the set P hidden until changed; the user's watchers hear of the
-- change like of any other. Returns 1.
if ARGV[3] == '1' then
  redis.call('SADD', P .. 'hidden', ARGV[2])
else
  redis.call('SREM', P .. 'hidden', ARGV[2])
end
status_refresh(ARGV[2])
return 1
