-- contacts_set.lua — a registry script (server/registry_contacts.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- Cache a user's contact list read from MySQL, unless it changed since the
-- read began: `seen` is the user's change counter (P contacts-v:U, '' when
-- absent) as read together with the missing value; a write in between
-- (contacts_changed) bumped it, and the value read may be older than it.
--
-- ARGV: P, user, value, ttl_s, seen. Returns 1 when set, 0 when skipped.
local user, value, ttl, seen = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local gen = redis.call('GET', P .. 'contacts-v:' .. user) or ''
if gen ~= seen then return 0 end
redis.call('SET', P .. 'contacts:' .. user, value, 'EX', ttl)
return 1
