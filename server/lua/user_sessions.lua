-- user_sessions.lua — a registry script (server/registry_query.c), run with
-- EVALSHA after prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, user. Where the user is connected: {connections cluster-wide,
-- {server, connections, ...} for each server holding some, the rooms where
-- the user is present}. Cost: one HGET per registered server.
local user = ARGV[2]
local total = tonumber(redis.call('HGET', P .. 'online', user) or '0')
local where = {}
for _, s in ipairs(redis.call('SMEMBERS', P .. 'servers')) do
  local k = redis.call('HGET', skey(s, 'users'), user)
  if k then
    where[#where + 1] = s
    where[#where + 1] = tonumber(k)
  end
end
return {total, where, redis.call('SMEMBERS', ukey(user))}
