-- prelude.lua — helpers every registry script starts with.
--
-- scripts/embed-lua puts this text in front of each script of server/lua,
-- so every EVALSHA body is self-contained (Redis scripts cannot share
-- functions). ARGV[1] is always the key prefix (registry.prefix); the
-- helpers build every key name from it (docs/architecture.md lists the
-- keys). Full-line comments are left out of what Redis receives.
local P = ARGV[1]
local function rkey(room, k) return P .. 'room:{' .. room .. '}:' .. k end
local function skey(s, k) return P .. 'srv:' .. s .. ':' .. k end
local function ukey(user) return P .. 'user:' .. user .. ':rooms' end
local function get_epoch()
  local e = redis.call('GET', P .. 'epoch')
  if not e then
    local t = redis.call('TIME')
    e = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', P .. 'epoch', e)
  end
  return e
end
local function presence_event(room, kind, info)
  local v = redis.call('INCR', rkey(room, 'pv'))
  local n = redis.call('HLEN', rkey(room, 'who'))
  redis.call('PUBLISH', P .. 'presence', cjson.encode({type = kind, room = room,
             user = info, count = n, v = v}))
end
local function room_cleanup(room, ttl)
  if redis.call('HLEN', rkey(room, 'srv')) == 0 then
    for _, u in ipairs(redis.call('HKEYS', rkey(room, 'who'))) do
      redis.call('SREM', ukey(u), room)
    end
    redis.call('DEL', rkey(room, 'who'), rkey(room, 'cnt'))
    redis.call('PEXPIRE', rkey(room, 'pv'), ttl)
    redis.call('PEXPIRE', rkey(room, 'log'), ttl)
    redis.call('PEXPIRE', rkey(room, 'seq'), ttl)
    redis.call('PEXPIRE', rkey(room, 'red'), ttl)
  end
end
local function member_add(room, s, user, name, k, now)
  redis.call('HINCRBY', rkey(room, 'srv'), s, k)
  redis.call('SADD', skey(s, 'rooms'), room)
  redis.call('PERSIST', rkey(room, 'log'))
  redis.call('PERSIST', rkey(room, 'seq'))
  redis.call('PERSIST', rkey(room, 'red'))
  redis.call('PERSIST', rkey(room, 'pv'))
  redis.call('HINCRBY', rkey(room, 'who:' .. s), user, k)
  redis.call('SADD', ukey(user), room)
  if redis.call('HINCRBY', rkey(room, 'cnt'), user, k) == k then
    local info = {id = user, name = name, since = now}
    redis.call('HSET', rkey(room, 'who'), user, cjson.encode(info))
    presence_event(room, 'join', info)
  end
end
local function member_remove(room, s, user, k, ttl)
  local have = tonumber(redis.call('HGET', rkey(room, 'who:' .. s), user) or '0')
  if k > have then k = have end
  if k > 0 then
    if have - k <= 0 then redis.call('HDEL', rkey(room, 'who:' .. s), user)
    else redis.call('HINCRBY', rkey(room, 'who:' .. s), user, -k) end
    if redis.call('HINCRBY', rkey(room, 'cnt'), user, -k) <= 0 then
      redis.call('HDEL', rkey(room, 'cnt'), user)
      redis.call('SREM', ukey(user), room)
      local info = redis.call('HGET', rkey(room, 'who'), user)
      redis.call('HDEL', rkey(room, 'who'), user)
      presence_event(room, 'leave', info and cjson.decode(info) or {id = user})
    end
    if redis.call('HINCRBY', rkey(room, 'srv'), s, -k) <= 0 then
      redis.call('HDEL', rkey(room, 'srv'), s)
      redis.call('SREM', skey(s, 'rooms'), room)
    end
  end
  room_cleanup(room, ttl)
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A user's status as their contacts see it: the hash P status holds
-- {v, on, since, seen} per user; `on` is "online and not hidden". A change
-- bumps v and is PUBLISHed to each server that watches the user (the set
-- P watch:U), on that server's own channel: nobody else hears of it.
local function status_refresh(user)
  local on = 0
  if redis.call('HEXISTS', P .. 'online', user) == 1 and
     redis.call('SISMEMBER', P .. 'hidden', user) == 0 then on = 1 end
  local cur = redis.call('HGET', P .. 'status', user)
  local st = cur and cjson.decode(cur) or {v = 0, on = 0}
  if st.on == on then return end
  local now = now_ms()
  st.v, st.on = st.v + 1, on
  if on == 1 then st.since = now else st.since, st.seen = nil, now end
  redis.call('HSET', P .. 'status', user, cjson.encode(st))
  local ev = cjson.encode({user = user, on = on, since = st.since, seen = st.seen,
                           v = st.v, e = get_epoch()})
  for _, s in ipairs(redis.call('SMEMBERS', P .. 'watch:' .. user)) do
    redis.call('PUBLISH', skey(s, 'status'), ev)
  end
end
local function online_add(user, k)
  if k == 0 then return end
  local n = redis.call('HINCRBY', P .. 'online', user, k)
  if n <= 0 then redis.call('HDEL', P .. 'online', user) end
  if (n > 0) ~= (n - k > 0) then status_refresh(user) end
end
local function room_state(room)
  return {get_epoch(), redis.call('GET', rkey(room, 'seq')) or '0'}
end
local function reap_server(s, ttl)
  for _, room in ipairs(redis.call('SMEMBERS', skey(s, 'rooms'))) do
    local h = redis.call('HGETALL', rkey(room, 'who:' .. s))
    for i = 1, #h, 2 do member_remove(room, s, h[i], tonumber(h[i + 1]), ttl) end
    redis.call('DEL', rkey(room, 'who:' .. s))
    redis.call('HDEL', rkey(room, 'srv'), s)
    room_cleanup(room, ttl)
  end
  local u = redis.call('HGETALL', skey(s, 'users'))
  for i = 1, #u, 2 do online_add(u[i], -tonumber(u[i + 1])) end
  for _, w in ipairs(redis.call('SMEMBERS', skey(s, 'watch'))) do
    redis.call('SREM', P .. 'watch:' .. w, s)
  end
  redis.call('DEL', skey(s, 'rooms'), skey(s, 'users'), skey(s, 'alive'), skey(s, 'watch'))
  redis.call('SREM', P .. 'servers', s)
end
