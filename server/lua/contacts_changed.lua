-- contacts_changed.lua — a registry script (server/registry_contacts.c), run
-- with EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- A user's stored contact list changed (in MySQL, committed): drop the
-- cached value, bump the change counter (so a read that began before the
-- change does not cache what it read: contacts_set.lua), and tell every
-- server (channel P contacts, payload the user id), all in one step.
--
-- ARGV: P, user, ttl_s (how long the counter is kept). Returns 1.
local user, ttl = ARGV[2], tonumber(ARGV[3])
redis.call('DEL', P .. 'contacts:' .. user)
redis.call('INCR', P .. 'contacts-v:' .. user)
redis.call('EXPIRE', P .. 'contacts-v:' .. user, ttl)
redis.call('PUBLISH', P .. 'contacts', user)
return 1
