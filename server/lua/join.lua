-- join.lua — a registry script (server/registry.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, S, room, user, name, now ms. One more subscription of user;
-- returns the room's {epoch, seq}.
member_add(ARGV[3], ARGV[2], ARGV[4], ARGV[5], 1, tonumber(ARGV[6]))
return room_state(ARGV[3])
