-- user_rooms.lua — a registry script (server/registry_query.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, then users. Read-only. Returns, per user, the rooms where the
-- user is present (an empty array for one present nowhere).
local out = {}
for i = 2, #ARGV do out[#out + 1] = redis.call('SMEMBERS', ukey(ARGV[i])) end
return out
