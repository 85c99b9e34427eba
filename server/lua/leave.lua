-- leave.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, room, user, k, history ttl.
member_remove(ARGV[3], ARGV[2], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
return 1
