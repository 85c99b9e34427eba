-- bye.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, history ttl. S leaves the cluster (shutdown).
reap_server(ARGV[2], tonumber(ARGV[3]))
return 1
