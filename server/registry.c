/* registry.c — cluster state in Redis: servers, rooms, presence, room logs.
 *
 * Keys (P = registry.prefix, R = room name, S = server id). Room keys carry
 * the room in braces so that a Redis Cluster would keep them in one slot.
 *
 *   P epoch                 string  registry epoch (microseconds at creation);
 *                                   a new one means Redis lost its data
 *   P servers               set     registered server ids
 *   P srv:S:alive           string  liveness, expires after registry.ttl_ms
 *   P srv:S:rooms           set     rooms where S has members
 *   P srv:S:users           hash    user -> connections on S
 *   P online                hash    user -> connections cluster-wide
 *   P user:U:rooms          set     rooms where user U is present (U in their
 *                                   who hashes): /api/presence?users= asks
 *                                   it to answer only about users who share
 *                                   a room with the caller
 *   P room:{R}:srv          hash    server -> subscriptions to R on it
 *   P room:{R}:who          hash    user -> {"id","name","since"} (present users)
 *   P room:{R}:cnt          hash    user -> subscriptions to R cluster-wide
 *   P room:{R}:who:S        hash    user -> subscriptions to R on S (for reaping)
 *   P room:{R}:pv           string  presence version (one per change)
 *   P room:{R}:seq          string  dense message sequence (INCR)
 *   P room:{R}:log          stream  recent messages (MAXLEN ~ history_max);
 *                                   fields q e t o s n [c] [h] b
 *   channel P presence      presence events (JSON), published by the scripts
 *
 * Bounded growth: when the last member of a room anywhere leaves, its who,
 * cnt and srv hashes go away and its log, seq and pv expire after
 * registry.history_ttl_ms; logs of rooms nobody joins get the same TTL.
 * user:U:rooms mirrors the who hashes (member_add, member_remove, and
 * room_cleanup for whatever a who hash still held): it exists while U is
 * present somewhere.
 *
 * Every mutation is a Lua script (atomic). The scripts share a prelude of
 * helper functions; each receives the key prefix as ARGV[1] and builds key
 * names itself (fine on a single Redis or behind Sentinel).
 *
 * Removals take away only what this server's own records hold (who:S,
 * srv:S:users). A server cut off from Redis keeps queueing commands; when
 * the link returns, a leave it queued may run after the others reaped it
 * (its records gone) and after the same user rejoined on another server:
 * decrementing the cluster-wide counts regardless would take that other
 * connection's presence away.
 *
 * Mirror and replay: this server's rooms, members and online users are
 * mirrored locally. On every (re)connect: "hello" clears what an earlier
 * incarnation of this server id left (as a reap would), registers the
 * server, then the mirror is replayed with counts. Joins of a room's first
 * member (or the first member replayed) report the room's (epoch, seq).
 *
 * High availability: with redis.sentinels both connections (commands, and
 * the presence subscription) find the master through Sentinel and follow
 * failovers (server/redis.c). A failover looks like any reconnect here, and
 * the reconnect is what rebuilds this server's part on the new master:
 * hello, the replay of the mirror, a presence resync, and each room's
 * (epoch, seq) for the relay's catch-up.
 *
 * WAIT (redis.wait_replicas > 0). Redis replicates asynchronously: a
 * master can acknowledge a publish script (INCR of the room's seq, XADD to
 * its log) and die before the replica has it. The promoted replica then
 * hands out that seq again, to the next message; every server that already
 * saw the lost message (its own relay, the bus, a catch-up read) holds that
 * seq as delivered, and its seqbuf drops the new message as a duplicate: a
 * confirmed message silently lost for some members and its successor lost
 * for others. So each publish is followed, on the same connection (WAIT
 * covers the writes of the connection it is sent on), by WAIT <n> <timeout>,
 * and its outcome goes to the caller (delivery, bus, RECEIPT) only after
 * WAIT answered. WAIT blocks the connection while it waits, so at most one
 * is in flight: publishes sent meanwhile are covered by the next WAIT,
 * sent when the current one answers. Without replicas each batch costs
 * wait_timeout_ms, not each message. Too few replicas by the deadline: the
 * messages go on (availability first) and are counted
 * (lectern_registry_unreplicated_total). The connection lost before WAIT
 * answered: the publish fails (no RECEIPT), as when the script's own reply
 * is lost.
 */
#include "registry.h"

#include "log.h"
#include "mem.h"
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

/* --- Lua ------------------------------------------------------------------ */

#define LUA_PRELUDE \
    "local P = ARGV[1]\n" \
    "local function rkey(room, k) return P .. 'room:{' .. room .. '}:' .. k end\n" \
    "local function skey(s, k) return P .. 'srv:' .. s .. ':' .. k end\n" \
    "local function ukey(user) return P .. 'user:' .. user .. ':rooms' end\n" \
    "local function get_epoch()\n" \
    "  local e = redis.call('GET', P .. 'epoch')\n" \
    "  if not e then\n" \
    "    local t = redis.call('TIME')\n" \
    "    e = t[1] .. string.format('%06d', tonumber(t[2]))\n" \
    "    redis.call('SET', P .. 'epoch', e)\n" \
    "  end\n" \
    "  return e\n" \
    "end\n" \
    "local function presence_event(room, kind, info)\n" \
    "  local v = redis.call('INCR', rkey(room, 'pv'))\n" \
    "  local n = redis.call('HLEN', rkey(room, 'who'))\n" \
    "  redis.call('PUBLISH', P .. 'presence', cjson.encode({type = kind, room = room,\n" \
    "             user = info, count = n, v = v}))\n" \
    "end\n" \
    "local function room_cleanup(room, ttl)\n" \
    "  if redis.call('HLEN', rkey(room, 'srv')) == 0 then\n" \
    "    for _, u in ipairs(redis.call('HKEYS', rkey(room, 'who'))) do\n" \
    "      redis.call('SREM', ukey(u), room)\n" \
    "    end\n" \
    "    redis.call('DEL', rkey(room, 'who'), rkey(room, 'cnt'))\n" \
    "    redis.call('PEXPIRE', rkey(room, 'pv'), ttl)\n" \
    "    redis.call('PEXPIRE', rkey(room, 'log'), ttl)\n" \
    "    redis.call('PEXPIRE', rkey(room, 'seq'), ttl)\n" \
    "  end\n" \
    "end\n" \
    "local function member_add(room, s, user, name, k, now)\n" \
    "  redis.call('HINCRBY', rkey(room, 'srv'), s, k)\n" \
    "  redis.call('SADD', skey(s, 'rooms'), room)\n" \
    "  redis.call('PERSIST', rkey(room, 'log'))\n" \
    "  redis.call('PERSIST', rkey(room, 'seq'))\n" \
    "  redis.call('PERSIST', rkey(room, 'pv'))\n" \
    "  redis.call('HINCRBY', rkey(room, 'who:' .. s), user, k)\n" \
    "  redis.call('SADD', ukey(user), room)\n" \
    "  if redis.call('HINCRBY', rkey(room, 'cnt'), user, k) == k then\n" \
    "    local info = {id = user, name = name, since = now}\n" \
    "    redis.call('HSET', rkey(room, 'who'), user, cjson.encode(info))\n" \
    "    presence_event(room, 'join', info)\n" \
    "  end\n" \
    "end\n" \
    "local function member_remove(room, s, user, k, ttl)\n" \
    "  local have = tonumber(redis.call('HGET', rkey(room, 'who:' .. s), user) or '0')\n" \
    "  if k > have then k = have end\n" \
    "  if k > 0 then\n" \
    "    if have - k <= 0 then redis.call('HDEL', rkey(room, 'who:' .. s), user)\n" \
    "    else redis.call('HINCRBY', rkey(room, 'who:' .. s), user, -k) end\n" \
    "    if redis.call('HINCRBY', rkey(room, 'cnt'), user, -k) <= 0 then\n" \
    "      redis.call('HDEL', rkey(room, 'cnt'), user)\n" \
    "      redis.call('SREM', ukey(user), room)\n" \
    "      local info = redis.call('HGET', rkey(room, 'who'), user)\n" \
    "      redis.call('HDEL', rkey(room, 'who'), user)\n" \
    "      presence_event(room, 'leave', info and cjson.decode(info) or {id = user})\n" \
    "    end\n" \
    "    if redis.call('HINCRBY', rkey(room, 'srv'), s, -k) <= 0 then\n" \
    "      redis.call('HDEL', rkey(room, 'srv'), s)\n" \
    "      redis.call('SREM', skey(s, 'rooms'), room)\n" \
    "    end\n" \
    "  end\n" \
    "  room_cleanup(room, ttl)\n" \
    "end\n" \
    "local function online_add(user, k)\n" \
    "  if k ~= 0 and redis.call('HINCRBY', P .. 'online', user, k) <= 0 then\n" \
    "    redis.call('HDEL', P .. 'online', user)\n" \
    "  end\n" \
    "end\n" \
    "local function room_state(room)\n" \
    "  return {get_epoch(), redis.call('GET', rkey(room, 'seq')) or '0'}\n" \
    "end\n" \
    "local function reap_server(s, ttl)\n" \
    "  for _, room in ipairs(redis.call('SMEMBERS', skey(s, 'rooms'))) do\n" \
    "    local h = redis.call('HGETALL', rkey(room, 'who:' .. s))\n" \
    "    for i = 1, #h, 2 do member_remove(room, s, h[i], tonumber(h[i + 1]), ttl) end\n" \
    "    redis.call('DEL', rkey(room, 'who:' .. s))\n" \
    "    redis.call('HDEL', rkey(room, 'srv'), s)\n" \
    "    room_cleanup(room, ttl)\n" \
    "  end\n" \
    "  local u = redis.call('HGETALL', skey(s, 'users'))\n" \
    "  for i = 1, #u, 2 do online_add(u[i], -tonumber(u[i + 1])) end\n" \
    "  redis.call('DEL', skey(s, 'rooms'), skey(s, 'users'), skey(s, 'alive'))\n" \
    "  redis.call('SREM', P .. 'servers', s)\n" \
    "end\n"

/* ARGV: P, S, alive ttl. Registers S; returns {epoch, rooms Redis has S in},
 * which the replay reconciles with the mirror. */
static redis_script lua_hello = { "hello", LUA_PRELUDE
    "redis.call('SADD', P .. 'servers', ARGV[2])\n"
    "redis.call('SET', skey(ARGV[2], 'alive'), '1', 'PX', ARGV[3])\n"
    "return {get_epoch(), redis.call('SMEMBERS', skey(ARGV[2], 'rooms'))}\n", "" };

/* ARGV: P, S, room, now ms, history ttl, then (user, name, count) triples:
 * S's members of room become exactly these (joins and leaves only for real
 * differences, so a reconnect does not make presence flicker). Returns the
 * room's {epoch, seq}. */
static redis_script lua_sync_room = { "sync_room", LUA_PRELUDE
    "local s, room, now, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local want = {}\n"
    "for i = 6, #ARGV, 3 do want[ARGV[i]] = {name = ARGV[i + 1], k = tonumber(ARGV[i + 2])} end\n"
    "local have = redis.call('HGETALL', rkey(room, 'who:' .. s))\n"
    "for i = 1, #have, 2 do\n"
    "  local user, k = have[i], tonumber(have[i + 1])\n"
    "  local w = want[user]\n"
    "  local d = (w and w.k or 0) - k\n"
    "  if d < 0 then member_remove(room, s, user, -d, ttl)\n"
    "  elseif d > 0 then member_add(room, s, user, w.name, d, now) end\n"
    "  if w then w.done = true end\n"
    "end\n"
    "for user, w in pairs(want) do\n"
    "  if not w.done and w.k > 0 then member_add(room, s, user, w.name, w.k, now) end\n"
    "end\n"
    "if redis.call('HEXISTS', rkey(room, 'srv'), s) == 0 then\n"
    "  redis.call('SREM', skey(s, 'rooms'), room)\n"
    "end\n"
    "room_cleanup(room, ttl)\n"
    "return room_state(room)\n", "" };

/* ARGV: P, S, then (user, connections) pairs: S's online users become
 * exactly these, and the cluster-wide counts follow. */
static redis_script lua_sync_users = { "sync_users", LUA_PRELUDE
    "local s = ARGV[2]\n"
    "local want = {}\n"
    "for i = 3, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
    "local have, seen = redis.call('HGETALL', skey(s, 'users')), {}\n"
    "for i = 1, #have, 2 do\n"
    "  online_add(have[i], (want[have[i]] or 0) - tonumber(have[i + 1]))\n"
    "  seen[have[i]] = true\n"
    "end\n"
    "for user, k in pairs(want) do\n"
    "  if not seen[user] then online_add(user, k) end\n"
    "end\n"
    "redis.call('DEL', skey(s, 'users'))\n"
    "for user, k in pairs(want) do redis.call('HSET', skey(s, 'users'), user, k) end\n"
    "return 1\n", "" };

/* ARGV: P, S, history ttl. S leaves the cluster (shutdown). */
static redis_script lua_bye = { "bye", LUA_PRELUDE
    "reap_server(ARGV[2], tonumber(ARGV[3]))\n"
    "return 1\n", "" };

/* ARGV: P, S, alive ttl. 0 when S is not registered (it was reaped). */
static redis_script lua_heartbeat = { "heartbeat", LUA_PRELUDE
    "if redis.call('SISMEMBER', P .. 'servers', ARGV[2]) == 0 then return 0 end\n"
    "redis.call('SET', skey(ARGV[2], 'alive'), '1', 'PX', ARGV[3])\n"
    "return 1\n", "" };

/* ARGV: P, S (self), history ttl. Reaps servers whose liveness expired. */
static redis_script lua_reap = { "reap", LUA_PRELUDE
    "local dead = {}\n"
    "for _, s in ipairs(redis.call('SMEMBERS', P .. 'servers')) do\n"
    "  if s ~= ARGV[2] and redis.call('EXISTS', skey(s, 'alive')) == 0 then\n"
    "    reap_server(s, tonumber(ARGV[3]))\n"
    "    dead[#dead + 1] = s\n"
    "  end\n"
    "end\n"
    "return dead\n", "" };

/* ARGV: P, S, room, user, name, now ms. One more subscription of user;
 * returns the room's {epoch, seq}. */
static redis_script lua_join = { "join", LUA_PRELUDE
    "member_add(ARGV[3], ARGV[2], ARGV[4], ARGV[5], 1, tonumber(ARGV[6]))\n"
    "return room_state(ARGV[3])\n", "" };

/* ARGV: P, S, room, user, k, history ttl. */
static redis_script lua_leave = { "leave", LUA_PRELUDE
    "member_remove(ARGV[3], ARGV[2], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))\n"
    "return 1\n", "" };

/* ARGV: P, S, user, k (negative: connections closed). */
static redis_script lua_online = { "online", LUA_PRELUDE
    "local s, user, k = ARGV[2], ARGV[3], tonumber(ARGV[4])\n"
    "if k < 0 then\n"
    "  local have = tonumber(redis.call('HGET', skey(s, 'users'), user) or '0')\n"
    "  if -k > have then k = -have end\n"
    "end\n"
    "if k ~= 0 then\n"
    "  if redis.call('HINCRBY', skey(s, 'users'), user, k) <= 0 then\n"
    "    redis.call('HDEL', skey(s, 'users'), user)\n"
    "  end\n"
    "  online_add(user, k)\n"
    "end\n"
    "return 1\n", "" };

/* ARGV: P, S, room, maxlen, history ttl, field, value, ... Appends to the
 * room's log; returns {id, seq, epoch, other servers with members}. */
static redis_script lua_publish = { "publish", LUA_PRELUDE
    "local s, room = ARGV[2], ARGV[3]\n"
    "local e = get_epoch()\n"
    "local seq = redis.call('INCR', rkey(room, 'seq'))\n"
    "local id = redis.call('XADD', rkey(room, 'log'), 'MAXLEN', '~', ARGV[4], '*',\n"
    "                      'q', seq, 'e', e, unpack(ARGV, 6))\n"
    "local n = redis.call('HLEN', rkey(room, 'srv'))\n"
    "local others = n\n"
    "if redis.call('HEXISTS', rkey(room, 'srv'), s) == 1 then others = n - 1 end\n"
    "if n == 0 then\n"
    "  redis.call('PEXPIRE', rkey(room, 'log'), ARGV[5])\n"
    "  redis.call('PEXPIRE', rkey(room, 'seq'), ARGV[5])\n"
    "end\n"
    "return {id, seq, e, others}\n", "" };

/* ARGV: P, room, max. Returns {count, version, {member json...}}. */
static redis_script lua_presence = { "presence", LUA_PRELUDE
    "local room, max = ARGV[2], tonumber(ARGV[3])\n"
    "local count = redis.call('HLEN', rkey(room, 'who'))\n"
    "local v = tonumber(redis.call('GET', rkey(room, 'pv')) or '0')\n"
    "local list, cursor = {}, '0'\n"
    "repeat\n"
    "  local r = redis.call('HSCAN', rkey(room, 'who'), cursor, 'COUNT', 100)\n"
    "  cursor = r[1]\n"
    "  for i = 2, #r[2], 2 do\n"
    "    if #list < max then list[#list + 1] = r[2][i] end\n"
    "  end\n"
    "until cursor == '0' or #list >= max\n"
    "return {count, v, list}\n", "" };

/* ARGV: P, then users. Read-only. Returns, per user, the rooms where the
 * user is present (an empty array for one present nowhere). */
static redis_script lua_user_rooms = { "user_rooms", LUA_PRELUDE
    "local out = {}\n"
    "for i = 2, #ARGV do out[#out + 1] = redis.call('SMEMBERS', ukey(ARGV[i])) end\n"
    "return out\n", "" };

/* ARGV: P, room, 'a' (ascending) | 'd' (descending), low, high, count,
 * max bytes. Read-only. Returns {the log's oldest entry (id, q and e only;
 * or an empty array), the entries of [low, high] in the asked order, cut}:
 * at most count entries, and no more than max bytes of field values (the
 * first entry whatever its size); cut is 1 when an entry was left out for
 * bytes. Bounds use XRANGE syntax ("(" for exclusive, "-" and "+"). The
 * range is read in growing chunks, so the script itself never holds more
 * than the answer and one chunk. */
static redis_script lua_log_range = { "log_range", LUA_PRELUDE
    "local key = rkey(ARGV[2], 'log')\n"
    "local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)\n"
    "if first[1] then\n"
    "  local f, keep = first[1][2], {}\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'q' or f[i] == 'e' then keep[#keep + 1] = f[i]; keep[#keep + 1] = f[i + 1] end\n"
    "  end\n"
    "  first = {{first[1][1], keep}}\n"
    "end\n"
    "local asc, low, high = ARGV[3] == 'a', ARGV[4], ARGV[5]\n"
    "local count, maxb = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local out, bytes, cut, chunk = {}, 0, 0, 16\n"
    "while #out < count and cut == 0 do\n"
    "  local want = math.min(chunk, count - #out)\n"
    "  local r\n"
    "  if asc then r = redis.call('XRANGE', key, low, high, 'COUNT', want)\n"
    "  else r = redis.call('XREVRANGE', key, high, low, 'COUNT', want) end\n"
    "  for _, e in ipairs(r) do\n"
    "    local size = 0\n"
    "    for j = 2, #e[2], 2 do size = size + #e[2][j] end\n"
    "    if #out > 0 and bytes + size > maxb then cut = 1; break end\n"
    "    out[#out + 1] = e\n"
    "    bytes = bytes + size\n"
    "    if asc then low = '(' .. e[1] else high = '(' .. e[1] end\n"
    "  end\n"
    "  if #r < want then break end\n"
    "  chunk = math.min(chunk * 2, 1024)\n"
    "end\n"
    "return {first, out, cut}\n", "" };

static redis_script *const registry_scripts[] = {
    &lua_hello, &lua_bye, &lua_sync_room, &lua_sync_users, &lua_heartbeat, &lua_reap, &lua_join,
    &lua_leave, &lua_online, &lua_publish, &lua_presence, &lua_log_range, &lua_user_rooms,
};

/* --- the mirror ------------------------------------------------------------ */

/* Mirror entries hold their strings in the same allocation (one malloc
 * per member and per user: they are per-connection memory). */
typedef struct reg_member {
    uint32_t count;
    UT_hash_handle hh;
    char user[];               /* user NUL name NUL: see member_name() */
} reg_member;

static const char *member_name(const reg_member *m)
{
    return m->user + m->hh.keylen + 1;
}

typedef struct reg_room {
    char *name;
    reg_member *members;
    uint32_t total;
    UT_hash_handle hh;
} reg_room;

typedef struct reg_user {
    uint32_t count;
    UT_hash_handle hh;
    char user[];
} reg_user;

typedef struct publish_call publish_call;

/* Publishes waiting for a WAIT, in the order they were sent. */
typedef struct publish_list {
    publish_call *head, **tail;
} publish_list;

struct registry {
    uv_loop_t *loop;
    registry_events ev;
    void *ctx;
    char *host, *prefix, *server_id;
    int port, heartbeat_ms, ttl_ms, reap_ms, history_max, history_ttl_ms, presence_max;
    int wait_replicas, wait_timeout_ms;
    redis_sentinels *sentinels; /* NULL: a single Redis at host:port */
    redis *cmd;                /* commands and scripts */
    redis *sub;                /* presence events */
    publish_list wait_cur;     /* covered by the WAIT in flight */
    publish_list wait_next;    /* sent after it: the next WAIT covers them */
    bool wait_inflight;
    bool unreplicated;         /* the last WAIT came back short (logged once) */
    bool registered;           /* hello done and mirror replayed */
    bool registering;
    uv_timer_t heartbeat, reap;
    reg_room *rooms;
    reg_user *users;
    registry_stats stats;
    int closing;               /* timers still closing */
};

static void registry_register(registry *g);

static void registry_set_up(registry *g, bool up)
{
    if (g->registered == up)
        return;
    g->registered = up;
    if (g->ev.on_state)
        g->ev.on_state(g->ctx, up);
}

/* --- argv helpers ----------------------------------------------------------- */

/* Arguments for one call. Strings are borrowed; numbers are formatted into
 * slots owned by the builder, which grow as needed (pointers to them are
 * resolved when the call is sent, so growth never leaves one dangling). */
typedef struct argv_builder {
    const char **v;
    size_t *l;
    int *num;                 /* -1, or the number slot argument i refers to */
    char (*nums)[24];
    int n, cap, nnum, numcap;
} argv_builder;

static void ab_grow(argv_builder *a)
{
    if (a->n < a->cap)
        return;
    a->cap = a->cap ? a->cap * 2 : 16;
    a->v = xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    a->l = xrealloc(a->l, (size_t)a->cap * sizeof *a->l);
    a->num = xrealloc(a->num, (size_t)a->cap * sizeof *a->num);
}

static void ab_bytes(argv_builder *a, const void *p, size_t len)
{
    ab_grow(a);
    a->v[a->n] = p ? p : "";
    a->l[a->n] = len;
    a->num[a->n++] = -1;
}

static void ab_str(argv_builder *a, const char *s)
{
    ab_bytes(a, s, strlen(s));
}

static void ab_num(argv_builder *a, long long x)
{
    if (a->nnum == a->numcap) {
        a->numcap = a->numcap ? a->numcap * 2 : 8;
        a->nums = xrealloc(a->nums, (size_t)a->numcap * sizeof *a->nums);
    }
    int slot = a->nnum++;
    int len = snprintf(a->nums[slot], sizeof a->nums[0], "%lld", x);
    ab_grow(a);
    a->v[a->n] = NULL;
    a->l[a->n] = (size_t)len;
    a->num[a->n++] = slot;
}

/* Every call is EVALSHA <sha> 0 P ...: the first three slots are EVALSHA's
 * own (the sha is filled in by ab_eval), then the key prefix. */
static void ab_init(argv_builder *a, registry *g)
{
    memset(a, 0, sizeof *a);
    ab_str(a, "EVALSHA");
    ab_str(a, "");
    ab_str(a, "0");
    ab_str(a, g->prefix);
}

/* Resolve number slots; the arrays are ready to send. */
static void ab_seal(argv_builder *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->num[i] >= 0)
            a->v[i] = a->nums[a->num[i]];
}

static void ab_free(argv_builder *a)
{
    free(a->v);
    free(a->l);
    free(a->num);
    free(a->nums);
}

/* EVALSHA script with the builder's arguments, then free the builder. */
static int ab_eval(registry *g, argv_builder *a, const redis_script *script, redis_reply_fn fn,
                   void *privdata)
{
    ab_seal(a);
    a->v[1] = script->sha;
    a->l[1] = strlen(script->sha);
    int rc = redis_argv(g->cmd, fn, privdata, a->n, a->v, a->l);
    ab_free(a);
    return rc;
}

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t reply_u64(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static bool reply_ok(const redisReply *r, const char *what)
{
    if (!r)
        return false;
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("registry_error", "call=%s error=\"%s\"", what, r->str);
        return false;
    }
    return true;
}

/* --- joins and room sync ----------------------------------------------------- */

typedef struct join_call {
    registry *g;
    bool report;             /* pass the room's (epoch, seq) to on_room_sync */
    char room[];
} join_call;

static join_call *join_call_new(registry *g, const char *room, bool report)
{
    size_t rl = strlen(room);
    join_call *c = xmalloc(sizeof *c + rl + 1);
    c->g = g;
    c->report = report;
    memcpy(c->room, room, rl + 1);
    return c;
}

/* Reply {epoch, seq} for a room (join, sync_room, status). The room is
 * looked up by name: it may have been left while the call was in flight. */
static void registry_on_room_state(void *privdata, redisReply *r)
{
    join_call *c = privdata;
    registry *g = c->g;
    if (reply_ok(r, "room_state") && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && c->report) {
        reg_room *rm = NULL;
        HASH_FIND_STR(g->rooms, c->room, rm);
        if (rm && g->ev.on_room_sync)
            g->ev.on_room_sync(g->ctx, c->room, reply_u64(r->element[0]), reply_u64(r->element[1]));
    }
    free(c);
}

static void registry_on_done(void *privdata, redisReply *r)
{
    reply_ok(r, privdata);
}

void registry_join(registry *g, const char *room, const char *user, const char *name)
{
    reg_room *rm = NULL;
    HASH_FIND_STR(g->rooms, room, rm);
    bool first = !rm;
    if (!rm) {
        rm = xcalloc(1, sizeof *rm);
        rm->name = xstrdup(room);
        HASH_ADD_KEYPTR(hh, g->rooms, rm->name, strlen(rm->name), rm);
    }
    reg_member *m = NULL;
    HASH_FIND_STR(rm->members, user, m);
    if (!m) {
        size_t ul = strlen(user), nl = strlen(name);
        m = xcalloc(1, sizeof *m + ul + nl + 2);
        memcpy(m->user, user, ul + 1);
        memcpy(m->user + ul + 1, name, nl + 1);
        HASH_ADD_KEYPTR(hh, rm->members, m->user, ul, m);
    }
    m->count++;
    rm->total++;
    if (!g->registered)
        return;             /* the replay after registration sends it */
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_str(&a, room);
    ab_str(&a, user);
    ab_str(&a, member_name(m));
    ab_num(&a, (long long)realtime_ms());
    join_call *c = join_call_new(g, room, first);
    if (ab_eval(g, &a, &lua_join, registry_on_room_state, c) < 0)
        free(c);
}

static void member_free(reg_member *m)
{
    free(m);
}

void registry_leave(registry *g, const char *room, const char *user)
{
    reg_room *rm = NULL;
    reg_member *m = NULL;
    HASH_FIND_STR(g->rooms, room, rm);
    if (rm)
        HASH_FIND_STR(rm->members, user, m);
    if (!m)
        return;
    if (g->registered) {
        argv_builder a;
        ab_init(&a, g);
        ab_str(&a, g->server_id);
        ab_str(&a, room);
        ab_str(&a, user);
        ab_num(&a, 1);
        ab_num(&a, g->history_ttl_ms);
        ab_eval(g, &a, &lua_leave, registry_on_done, (void *)"leave");
    }
    rm->total--;
    if (--m->count == 0) {
        HASH_DEL(rm->members, m);
        member_free(m);
    }
    if (rm->total == 0) {
        HASH_DEL(g->rooms, rm);
        free(rm->name);
        free(rm);
    }
}

static void registry_send_online(registry *g, const char *user, long long k)
{
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_str(&a, user);
    ab_num(&a, k);
    ab_eval(g, &a, &lua_online, registry_on_done, (void *)"online");
}

void registry_online(registry *g, const char *user)
{
    reg_user *u = NULL;
    HASH_FIND_STR(g->users, user, u);
    if (!u) {
        size_t ul = strlen(user);
        u = xcalloc(1, sizeof *u + ul + 1);
        memcpy(u->user, user, ul + 1);
        HASH_ADD_KEYPTR(hh, g->users, u->user, ul, u);
    }
    u->count++;
    if (g->registered)
        registry_send_online(g, user, 1);
}

void registry_offline(registry *g, const char *user)
{
    reg_user *u = NULL;
    HASH_FIND_STR(g->users, user, u);
    if (!u)
        return;
    if (g->registered)
        registry_send_online(g, user, -1);
    if (--u->count == 0) {
        HASH_DEL(g->users, u);
        free(u);
    }
}

/* --- registration, heartbeat, reaping -------------------------------------- */

/* Make Redis's view of one room match the mirror (absent: no members). */
static void registry_sync_room(registry *g, const char *room, const reg_room *rm)
{
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_str(&a, room);
    ab_num(&a, (long long)realtime_ms());
    ab_num(&a, g->history_ttl_ms);
    for (const reg_member *m = rm ? rm->members : NULL; m; m = m->hh.next) {
        ab_str(&a, m->user);
        ab_str(&a, member_name(m));
        ab_num(&a, m->count);
    }
    join_call *c = join_call_new(g, room, rm != NULL);
    if (ab_eval(g, &a, &lua_sync_room, registry_on_room_state, c) < 0)
        free(c);
}

static void registry_on_hello(void *privdata, redisReply *r)
{
    registry *g = privdata;
    g->registering = false;
    if (!reply_ok(r, "hello") || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return;         /* the connection is gone, or worse; on_up retries */

    /* Reconcile: every room of the mirror, and every room Redis still
     * attributes to this server (an earlier incarnation, or commands lost
     * in a disconnect). Replies come in order, all after hello's. */
    const redisReply *known = r->element[1];
    for (size_t i = 0; i < known->elements; i++) {
        const char *room = known->element[i]->str;
        reg_room *rm = NULL;
        if (known->element[i]->type != REDIS_REPLY_STRING)
            continue;
        HASH_FIND_STR(g->rooms, room, rm);
        if (!rm)
            registry_sync_room(g, room, NULL);
    }
    for (reg_room *rm = g->rooms; rm; rm = rm->hh.next)
        registry_sync_room(g, rm->name, rm);
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    for (reg_user *u = g->users; u; u = u->hh.next) {
        ab_str(&a, u->user);
        ab_num(&a, u->count);
    }
    ab_eval(g, &a, &lua_sync_users, registry_on_done, (void *)"sync_users");

    log_info("registry_registered", "server=%s rooms=%u users=%u epoch=%s", g->server_id,
             HASH_COUNT(g->rooms), HASH_COUNT(g->users),
             r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "?");
    registry_set_up(g, true);
}

static void registry_register(registry *g)
{
    if (g->registering || !redis_up(g->cmd))
        return;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_num(&a, g->ttl_ms);
    if (ab_eval(g, &a, &lua_hello, registry_on_hello, g) == 0)
        g->registering = true;
}

static void registry_on_heartbeat(void *privdata, redisReply *r)
{
    registry *g = privdata;
    if (!reply_ok(r, "heartbeat") || r->type != REDIS_REPLY_INTEGER || r->integer != 0)
        return;
    /* Someone reaped us (our heartbeats stalled past the TTL): our members
     * were made to leave. Register again; the replay puts them back. */
    log_warn("registry_reaped", "server=%s action=reregister", g->server_id);
    g->stats.reregistrations++;
    registry_set_up(g, false);
    registry_register(g);
}

static void registry_on_heartbeat_timer(uv_timer_t *t)
{
    registry *g = t->data;
    if (!g->registered)
        return;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_num(&a, g->ttl_ms);
    ab_eval(g, &a, &lua_heartbeat, registry_on_heartbeat, g);
}

static void registry_on_reap(void *privdata, redisReply *r)
{
    registry *g = privdata;
    if (!reply_ok(r, "reap") || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        g->stats.reaped_servers++;
        log_warn("registry_reaped_server", "server=%s dead=%s", g->server_id, r->element[i]->str);
    }
}

static void registry_on_reap_timer(uv_timer_t *t)
{
    registry *g = t->data;
    if (!g->registered)
        return;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_num(&a, g->history_ttl_ms);
    ab_eval(g, &a, &lua_reap, registry_on_reap, g);
}

static void registry_on_cmd_up(void *ctx)
{
    registry *g = ctx;
    g->stats.reconnects = redis_reconnects(g->cmd);
    registry_register(g);
}

static void registry_on_cmd_down(void *ctx, const char *why)
{
    (void)why;
    registry *g = ctx;
    g->registering = false;
    registry_set_up(g, false);
}

static void registry_on_event(void *ctx, const char *payload, size_t len)
{
    registry *g = ctx;
    json_error_t err;
    json_t *v = json_loadb(payload, len, 0, &err);
    const char *room = v ? json_string_value(json_object_get(v, "room")) : NULL;
    json_int_t pv = v ? json_integer_value(json_object_get(v, "v")) : 0;
    if (room && g->ev.on_presence)
        g->ev.on_presence(g->ctx, room, pv > 0 ? (uint64_t)pv : 0, payload, len);
    json_decref(v);
}

static void registry_on_sub_up(void *ctx)
{
    registry *g = ctx;
    if (g->ev.on_presence_resync)
        g->ev.on_presence_resync(g->ctx);
}

registry *registry_create(uv_loop_t *loop, const registry_config *cfg, const registry_events *ev,
                          void *ctx, char *err, size_t errlen)
{
    redis_sentinels *sentinels = NULL;
    if (cfg->sentinels && *cfg->sentinels) {
        char why[200];
        sentinels = redis_sentinels_create(loop, cfg->sentinels, cfg->sentinel_master,
                                           cfg->backoff_min_ms, cfg->backoff_max_ms, why,
                                           sizeof why);
        if (!sentinels) {
            snprintf(err, errlen, "redis.sentinels: %s", why);
            return NULL;
        }
    }
    registry *g = xcalloc(1, sizeof *g);
    g->sentinels = sentinels;
    g->wait_replicas = cfg->wait_replicas;
    g->wait_timeout_ms = cfg->wait_timeout_ms > 0 ? cfg->wait_timeout_ms : 1;
    g->wait_cur.tail = &g->wait_cur.head;
    g->wait_next.tail = &g->wait_next.head;
    g->loop = loop;
    g->ev = *ev;
    g->ctx = ctx;
    g->host = xstrdup(cfg->host);
    g->port = cfg->port;
    g->prefix = xstrdup(cfg->prefix);
    g->server_id = xstrdup(cfg->server_id);
    g->heartbeat_ms = cfg->heartbeat_ms;
    g->ttl_ms = cfg->ttl_ms;
    g->reap_ms = cfg->reap_ms;
    g->history_max = cfg->history_max;
    g->history_ttl_ms = cfg->history_ttl_ms;
    g->presence_max = cfg->presence_max;

    redis_events cmd_ev = { registry_on_cmd_up, registry_on_cmd_down, NULL };
    g->cmd = redis_create(loop, "registry", cfg->host, cfg->port, cfg->backoff_min_ms,
                          cfg->backoff_max_ms, &cmd_ev, g);
    for (size_t i = 0; i < sizeof registry_scripts / sizeof registry_scripts[0]; i++)
        redis_add_script(g->cmd, registry_scripts[i]);
    /* A WAIT holds every command behind it for up to wait_timeout_ms. */
    redis_set_reply_timeout(g->cmd, cfg->reply_timeout_ms +
                                    (cfg->wait_replicas > 0 ? cfg->wait_timeout_ms : 0));
    redis_set_auth(g->cmd, cfg->user, cfg->password);
    if (g->sentinels)
        redis_use_sentinels(g->cmd, g->sentinels);

    redis_events sub_ev = { registry_on_sub_up, NULL, registry_on_event };
    g->sub = redis_create(loop, "presence", cfg->host, cfg->port, cfg->backoff_min_ms,
                          cfg->backoff_max_ms, &sub_ev, g);
    char channel[256];
    snprintf(channel, sizeof channel, "%spresence", cfg->prefix);
    redis_subscribe(g->sub, channel);
    redis_set_auth(g->sub, cfg->user, cfg->password);
    if (g->sentinels)
        redis_use_sentinels(g->sub, g->sentinels);
    if (g->sentinels) {
        char list[512], name[128];
        log_info("registry_sentinels", "sentinels=%s master=%s wait_replicas=%d",
                 log_q(list, sizeof list, cfg->sentinels, strlen(cfg->sentinels)),
                 log_q(name, sizeof name, cfg->sentinel_master, strlen(cfg->sentinel_master)),
                 g->wait_replicas);
    }

    uv_timer_init(loop, &g->heartbeat);
    g->heartbeat.data = g;
    uv_timer_start(&g->heartbeat, registry_on_heartbeat_timer, (uint64_t)g->heartbeat_ms,
                   (uint64_t)g->heartbeat_ms);
    uv_timer_init(loop, &g->reap);
    g->reap.data = g;
    uv_timer_start(&g->reap, registry_on_reap_timer, (uint64_t)g->reap_ms, (uint64_t)g->reap_ms);
    return g;
}

static void registry_free(registry *g)
{
    reg_room *rm, *rt;
    HASH_ITER(hh, g->rooms, rm, rt) {
        reg_member *m, *mt;
        HASH_ITER(hh, rm->members, m, mt) {
            HASH_DEL(rm->members, m);
            member_free(m);
        }
        HASH_DEL(g->rooms, rm);
        free(rm->name);
        free(rm);
    }
    reg_user *u, *ut;
    HASH_ITER(hh, g->users, u, ut) {
        HASH_DEL(g->users, u);
        free(u);
    }
    free(g->host);
    free(g->prefix);
    free(g->server_id);
    free(g);
}

static void registry_on_timer_closed(uv_handle_t *h)
{
    registry *g = h->data;
    if (--g->closing == 0)
        registry_free(g);
}

void registry_destroy(registry *g)
{
    if (!g)
        return;
    g->registered = false;
    redis_destroy(g->cmd);     /* pending calls complete with NULL now */
    redis_destroy(g->sub);
    redis_sentinels_destroy(g->sentinels);     /* after its users */
    g->cmd = g->sub = NULL;
    g->sentinels = NULL;
    g->closing = 2;
    uv_close((uv_handle_t *)&g->heartbeat, registry_on_timer_closed);
    uv_close((uv_handle_t *)&g->reap, registry_on_timer_closed);
}

typedef struct goodbye_call {
    void (*done)(void *ctx);
    void *ctx;
} goodbye_call;

static void registry_on_goodbye(void *privdata, redisReply *r)
{
    goodbye_call *c = privdata;
    reply_ok(r, "bye");
    c->done(c->ctx);
    free(c);
}

void registry_goodbye(registry *g, void (*done)(void *ctx), void *ctx)
{
    if (!g || !g->registered) {
        done(ctx);
        return;
    }
    g->registered = false;      /* no more commands after this one */
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_num(&a, g->history_ttl_ms);
    goodbye_call *c = xmalloc(sizeof *c);
    c->done = done;
    c->ctx = ctx;
    if (ab_eval(g, &a, &lua_bye, registry_on_goodbye, c) < 0) {
        free(c);
        done(ctx);
        return;
    }
    log_info("registry_goodbye", "server=%s", g->server_id);
}

bool registry_up(const registry *g)
{
    return g->registered;
}

void registry_get_stats(const registry *g, registry_stats *out)
{
    *out = g->stats;
}

/* --- publish ------------------------------------------------------------------ */

/* One publish. Its outcome is taken from the script's reply at once (hiredis
 * frees the reply when the callback returns); with WAIT it is held in a
 * publish_list until the WAIT after it answered. */
struct publish_call {
    publish_call *next;
    envelope *env;
    registry_publish_fn fn;
    void *ctx;
    int others;
    bool answered;             /* the script's reply came; ok says how it went */
    bool ok;
    bool held;                 /* in a publish_list: registry_on_wait completes it */
    bool lost;                 /* the connection went before its WAIT answered */
};

static void publish_finish(publish_call *c)
{
    c->fn(c->ctx, c->env, c->others, c->ok && !c->lost);
    free(c);
}

static void publish_list_add(publish_list *l, publish_call *c)
{
    c->next = NULL;
    *l->tail = c;
    l->tail = &c->next;
}

/* Take the whole list (it is left empty). */
static publish_call *publish_list_take(publish_list *l)
{
    publish_call *head = l->head;
    l->head = NULL;
    l->tail = &l->head;
    return head;
}

static void registry_on_publish(void *privdata, redisReply *r)
{
    publish_call *c = privdata;
    c->answered = true;
    c->ok = reply_ok(r, "publish") && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            r->element[0]->type == REDIS_REPLY_STRING;
    if (c->ok) {
        free(c->env->id);
        c->env->id = xstrndup(r->element[0]->str, r->element[0]->len);
        c->env->seq = reply_u64(r->element[1]);
        c->env->epoch = reply_u64(r->element[2]);
        c->others = (int)reply_u64(r->element[3]);
    }
    if (!c->held)
        publish_finish(c);
}

/* The connection is going (a WAIT could not be sent, or was lost): the
 * held publishes fail; one not answered yet completes with its reply,
 * which is NULL then. */
static void registry_release(publish_call *c)
{
    while (c) {
        publish_call *next = c->next;
        c->held = false;
        c->lost = true;
        if (c->answered)
            publish_finish(c);
        c = next;
    }
}

static void registry_on_wait(void *privdata, redisReply *r);

/* WAIT for the publishes in wait_cur (sent before it on this connection). */
static void registry_send_wait(registry *g)
{
    char n[16], t[16];
    snprintf(n, sizeof n, "%d", g->wait_replicas);
    snprintf(t, sizeof t, "%d", g->wait_timeout_ms);
    const char *argv[3] = { "WAIT", n, t };
    if (redis_argv(g->cmd, registry_on_wait, g, 3, argv, NULL) == 0) {
        g->wait_inflight = true;
        return;
    }
    registry_release(publish_list_take(&g->wait_cur));
}

static void registry_on_wait(void *privdata, redisReply *r)
{
    registry *g = privdata;
    g->wait_inflight = false;
    /* Lists first, callbacks after: a callback may publish again. */
    publish_call *batch = publish_list_take(&g->wait_cur);
    if (g->wait_next.head) {
        g->wait_cur = g->wait_next;            /* tail points into the last call */
        publish_list_take(&g->wait_next);
        registry_send_wait(g);
    }
    if (!r) {
        registry_release(batch);
        return;
    }
    bool enough = r->type == REDIS_REPLY_INTEGER && r->integer >= g->wait_replicas;
    if (!enough && !g->unreplicated) {
        if (r->type == REDIS_REPLY_INTEGER)
            log_warn("registry_unreplicated", "replicas=%lld wanted=%d timeout_ms=%d",
                     r->integer, g->wait_replicas, g->wait_timeout_ms);
        else
            log_warn("registry_unreplicated", "wanted=%d error=\"%s\"", g->wait_replicas,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    } else if (enough && g->unreplicated) {
        log_info("registry_replicated", "replicas=%lld wanted=%d", r->integer, g->wait_replicas);
    }
    g->unreplicated = !enough;
    while (batch) {
        publish_call *c = batch;
        batch = c->next;
        c->held = false;
        if (!c->answered) {
            /* Cannot be: replies come in order, the script's before the
             * WAIT's. Were it so, the script's reply completes it. */
            c->lost = true;
            continue;
        }
        if (!enough && c->ok)
            g->stats.unreplicated++;
        publish_finish(c);
    }
}

int registry_publish(registry *g, envelope *env, registry_publish_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, g->server_id);
    ab_str(&a, env->room);
    ab_num(&a, g->history_max);
    ab_num(&a, g->history_ttl_ms);
    env->ts_ms = realtime_ms();
    ab_str(&a, "t");
    ab_num(&a, (long long)env->ts_ms);
    ab_str(&a, "o");
    ab_str(&a, env->origin);
    ab_str(&a, "s");
    ab_str(&a, env->sender ? env->sender : "");
    ab_str(&a, "n");
    ab_str(&a, env->sender_name ? env->sender_name : "");
    if (env->content_type) {
        ab_str(&a, "c");
        ab_str(&a, env->content_type);
    }
    if (env->headers_len) {
        ab_str(&a, "h");
        ab_bytes(&a, env->headers, env->headers_len);
    }
    ab_str(&a, "b");
    ab_bytes(&a, env->body, env->body_len);

    publish_call *c = xcalloc(1, sizeof *c);
    c->env = env;
    c->fn = fn;
    c->ctx = ctx;
    if (ab_eval(g, &a, &lua_publish, registry_on_publish, c) < 0) {
        free(c);
        return -1;
    }
    if (g->wait_replicas > 0) {
        /* Pipelined right behind the script (see the essay). */
        c->held = true;
        if (g->wait_inflight) {
            publish_list_add(&g->wait_next, c);
        } else {
            publish_list_add(&g->wait_cur, c);
            registry_send_wait(g);
        }
    }
    return 0;
}

/* --- reading the log ------------------------------------------------------------ */

/* One stream entry [id, [field, value, ...]] -> envelope. */
static bool registry_entry(const char *room, const redisReply *e, envelope *out)
{
    memset(out, 0, sizeof *out);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    out->room = xstrdup(room);
    out->id = xstrndup(e->element[0]->str, e->element[0]->len);
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        switch (k->str[0]) {
        case 'q': out->seq = strtoull(v->str, NULL, 10); break;
        case 'e': out->epoch = strtoull(v->str, NULL, 10); break;
        case 't': out->ts_ms = strtoull(v->str, NULL, 10); break;
        case 'o': free(out->origin); out->origin = xstrndup(v->str, v->len); break;
        case 's': free(out->sender); out->sender = xstrndup(v->str, v->len); break;
        case 'n': free(out->sender_name); out->sender_name = xstrndup(v->str, v->len); break;
        case 'c': free(out->content_type); out->content_type = xstrndup(v->str, v->len); break;
        case 'h':
            free(out->headers);
            out->headers = xstrndup(v->str, v->len);
            out->headers_len = v->len;
            break;
        case 'b':
            free(out->body);
            out->body = v->len ? xstrndup(v->str, v->len) : NULL;
            out->body_len = v->len;
            break;
        default: break;
        }
    }
    if (!out->origin)
        out->origin = xstrdup("");
    return out->seq != 0;
}

typedef struct fetch_call {
    registry_fetch_fn fn;
    void *ctx;
    char room[];
} fetch_call;

static void registry_on_fetch(void *privdata, redisReply *r)
{
    fetch_call *c = privdata;
    if (!reply_ok(r, "fetch") || r->type != REDIS_REPLY_ARRAY) {
        c->fn(c->ctx, NULL, 0, false);
        free(c);
        return;
    }
    envelope *msgs = r->elements ? xcalloc(r->elements, sizeof *msgs) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        /* XREVRANGE answers newest first: store oldest first. */
        const redisReply *e = r->element[r->elements - 1 - i];
        if (registry_entry(c->room, e, &msgs[n]))
            n++;
        else
            envelope_free(&msgs[n]);
    }
    c->fn(c->ctx, msgs, n, true);
    for (size_t i = 0; i < n; i++)
        envelope_free(&msgs[i]);
    free(msgs);
    free(c);
}

int registry_fetch_before(registry *g, const char *room, const char *before, size_t count,
                          registry_fetch_fn fn, void *ctx)
{
    char key[512], bound[64], cnt[24];
    snprintf(key, sizeof key, "%sroom:{%s}:log", g->prefix, room);
    if (before)
        snprintf(bound, sizeof bound, "(%s", before);
    else
        snprintf(bound, sizeof bound, "+");        /* the newest */
    snprintf(cnt, sizeof cnt, "%zu", count);
    const char *argv[6] = { "XREVRANGE", key, bound, "-", "COUNT", cnt };
    size_t rl = strlen(room);
    fetch_call *c = xmalloc(sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (!g->registered || redis_argv(g->cmd, registry_on_fetch, c, 6, argv, NULL) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

typedef struct range_call {
    registry_range_fn fn;
    void *ctx;
    char room[];
} range_call;

/* Stream entries (array of [id, fields]) -> envelopes, in reply order. */
static envelope *registry_entries(const char *room, const redisReply *arr, size_t *n)
{
    *n = 0;
    if (!arr || arr->type != REDIS_REPLY_ARRAY || !arr->elements)
        return NULL;
    envelope *msgs = xcalloc(arr->elements, sizeof *msgs);
    for (size_t i = 0; i < arr->elements; i++) {
        if (registry_entry(room, arr->element[i], &msgs[*n]))
            (*n)++;
        else
            envelope_free(&msgs[*n]);
    }
    return msgs;
}

static void registry_on_range(void *privdata, redisReply *r)
{
    range_call *c = privdata;
    registry_range range = { 0 };
    envelope *oldest = NULL;
    size_t no = 0;
    bool ok = reply_ok(r, "log_range") && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              r->element[2]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        oldest = registry_entries(c->room, r->element[0], &no);
        range.oldest = no ? oldest : NULL;
        range.msgs = registry_entries(c->room, r->element[1], &range.n);
        range.cut = r->element[2]->integer != 0;
    }
    c->fn(c->ctx, ok ? &range : NULL);
    if (no)
        envelope_free(oldest);
    free(oldest);
    for (size_t i = 0; i < range.n; i++)        /* what the callee did not take */
        envelope_free(&range.msgs[i]);
    free(range.msgs);
    free(c);
}

int registry_log_range(registry *g, const char *room, bool ascending, const char *low,
                       const char *high, size_t count, size_t max_bytes, registry_range_fn fn,
                       void *ctx)
{
    if (!g->registered)
        return -1;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, room);
    ab_str(&a, ascending ? "a" : "d");
    ab_str(&a, low);
    ab_str(&a, high);
    ab_num(&a, (long long)count);
    ab_num(&a, (long long)max_bytes);
    size_t rl = strlen(room);
    range_call *c = xmalloc(sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (ab_eval(g, &a, &lua_log_range, registry_on_range, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int registry_room_status(registry *g, const char *room)
{
    char ekey[256], skey[512];
    snprintf(ekey, sizeof ekey, "%sepoch", g->prefix);
    snprintf(skey, sizeof skey, "%sroom:{%s}:seq", g->prefix, room);
    const char *argv[3] = { "MGET", ekey, skey };
    join_call *c = join_call_new(g, room, true);
    if (!g->registered || redis_argv(g->cmd, registry_on_room_state, c, 3, argv, NULL) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

/* --- presence queries ------------------------------------------------------------ */

typedef struct json_call {
    registry_json_fn fn;
    void *ctx;
    size_t n;
    char **users;          /* users_online: the names asked for */
    char room[];
} json_call;

static void json_call_free(json_call *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->users[i]);
    free(c->users);
    free(c);
}

/* A call answering about users[0..n) (copied). */
static json_call *json_call_users(registry_json_fn fn, void *ctx, const char *const *users,
                                  size_t n)
{
    json_call *c = xcalloc(1, sizeof *c + 1);
    c->fn = fn;
    c->ctx = ctx;
    c->n = n;
    c->users = xcalloc(n, sizeof *c->users);
    for (size_t k = 0; k < n; k++)
        c->users[k] = xstrdup(users[k]);
    return c;
}

static void registry_on_presence(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (reply_ok(r, "presence") && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_ARRAY) {
        json_t *members = json_array();
        const redisReply *list = r->element[2];
        for (size_t i = 0; i < list->elements; i++) {
            if (list->element[i]->type != REDIS_REPLY_STRING)
                continue;
            json_t *m = json_loadb(list->element[i]->str, list->element[i]->len, 0, NULL);
            if (m)
                json_array_append_new(members, m);
        }
        uint64_t count = reply_u64(r->element[0]);
        out = json_pack("{s:s, s:s, s:I, s:o, s:b, s:I}", "type", "snapshot", "room", c->room,
                        "count", (json_int_t)count, "members", members, "truncated",
                        (int)(json_array_size(members) < count), "v",
                        (json_int_t)reply_u64(r->element[1]));
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_presence(registry *g, const char *room, registry_json_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    argv_builder a;
    ab_init(&a, g);
    ab_str(&a, room);
    ab_num(&a, g->presence_max);
    size_t rl = strlen(room);
    json_call *c = xcalloc(1, sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (ab_eval(g, &a, &lua_presence, registry_on_presence, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}

static void registry_on_online(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (reply_ok(r, "online") && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        json_t *map = json_object();
        for (size_t i = 0; i < c->n; i++)
            json_object_set_new(map, c->users[i],
                                json_boolean(r->element[i]->type != REDIS_REPLY_NIL));
        out = json_pack("{s:o}", "online", map);
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

static void registry_on_user_rooms(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (reply_ok(r, "user_rooms") && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        json_t *map = json_object();
        for (size_t i = 0; i < c->n; i++) {
            json_t *rooms = json_array();
            const redisReply *e = r->element[i];
            for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k < e->elements; k++)
                if (e->element[k]->type == REDIS_REPLY_STRING)
                    json_array_append_new(rooms, json_stringn(e->element[k]->str,
                                                              e->element[k]->len));
            json_object_set_new(map, c->users[i], rooms);
        }
        out = json_pack("{s:o}", "rooms", map);
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_users_rooms(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                         void *ctx)
{
    if (!g->registered || n == 0)
        return -1;
    argv_builder a;
    ab_init(&a, g);
    json_call *c = json_call_users(fn, ctx, users, n);
    for (size_t i = 0; i < n; i++)
        ab_str(&a, c->users[i]);
    if (ab_eval(g, &a, &lua_user_rooms, registry_on_user_rooms, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}

int registry_users_online(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                          void *ctx)
{
    if (!g->registered || n == 0)
        return -1;
    char key[256];
    snprintf(key, sizeof key, "%sonline", g->prefix);
    const char **argv = xmalloc((n + 2) * sizeof *argv);
    argv[0] = "HMGET";
    argv[1] = key;
    json_call *c = json_call_users(fn, ctx, users, n);
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = c->users[i];
    int rc = redis_argv(g->cmd, registry_on_online, c, (int)n + 2, argv, NULL);
    free(argv);
    if (rc < 0)
        json_call_free(c);
    return rc;
}
