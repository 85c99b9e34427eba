/* status.c — /status subscriptions and the watched users behind them.
 *
 * Two tables. Entries: one per user some subscription here watches, with
 * that user's last known status and the subscriptions watching it.
 * Subscriptions: each holds links to its entries. A watch_link is kept on both
 * sides with the other side's index, so linking and unlinking are O(1)
 * (swap with the last), and a status change reaches exactly the
 * subscriptions that watch the user: one MESSAGE, encoded once, shared.
 *
 * An entry is "known" once the registry answered its watch (or an event
 * came first). A subscription is "live" once it has had its snapshot;
 * until then it gets no events: it counts its links to unknown entries,
 * and the snapshot goes out, built from the entries' current statuses,
 * when that count reaches zero. Invariant: every entry of a live
 * subscription is known. So an event that changed an entry before a
 * snapshot is in the snapshot, and never sent again.
 *
 * Statuses compare by (epoch, v). Events apply only when newer; a watch's
 * answer is authoritative across epochs (Redis lost its data: versions
 * start again), so a resync (status_resync: re-watch everything, reset
 * first) repairs whatever was missed. Subscribers hear of a change only
 * when `online` flips.
 *
 * Lists come from contacts.h; a list may contain duplicates (a claim), so
 * each resolution stamps the entries it links and skips stamped ones.
 * Registry calls carry at most cfg.chunk users (pipelined: the calls of
 * one list go out together), so a 5,000-contact login costs a few calls,
 * not 5,000, and contacts already watched here cost none.
 */
#include "status.h"

#include "contacts.h"
#include "log.h"
#include "mem.h"
#include "msg.h"
#include "registry_status.h"
#include "stomp.h"
#include "userid.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct entry entry;

typedef struct watch_link {
    entry *e;
    uint32_t at;               /* index in e->w */
} watch_link;

typedef struct watcher_ref {
    status_sub *ss;
    uint32_t at;               /* index in ss->links */
} watcher_ref;

struct entry {
    UT_hash_handle hh;
    registry_status st;
    bool known;
    uint64_t stamp;            /* the last resolution that linked it */
    watcher_ref *w;
    uint32_t nw, cap;
    char user[];
};

/* A user's subscriptions on this server (for contact-list changes). */
typedef struct owner {
    UT_hash_handle hh;
    status_sub *subs;
    char user[];
} owner;

struct status_sub {
    status *st;
    subscriber *sub;
    owner *own;
    status_sub *next_of_owner;
    char **claim, **xusers;
    size_t nclaim, nx;
    bool any;
    bool live;                 /* snapshot sent */
    contacts_req *req;         /* a list lookup in flight */
    watch_link *links;
    uint32_t n, cap;
    uint32_t unknown;          /* links to entries not yet known */
};

struct status {
    status_config cfg;
    status_hooks hooks;
    metrics *m;
    struct registry *reg;
    struct contacts *contacts;
    entry *entries;
    owner *owners;
    size_t nentries, nsubs;
    uint64_t stamp;
    uint64_t msg_seq;          /* message ids */
};

/* A batch of users for one registry call each cfg.chunk. */
typedef struct batch {
    const char **users;
    size_t n, cap;
} batch;

static void batch_add(batch *b, const char *user)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->users = xrealloc(b->users, b->cap * sizeof *b->users);
    }
    b->users[b->n++] = user;
}

status *status_create(const status_config *cfg, const status_hooks *hooks, metrics *m)
{
    status *st = xcalloc(1, sizeof *st);
    st->cfg = *cfg;
    if (st->cfg.chunk < 1)
        st->cfg.chunk = 1;
    st->hooks = *hooks;
    st->m = m;
    return st;
}

void status_attach(status *st, struct registry *reg, struct contacts *cs)
{
    st->reg = reg;
    st->contacts = cs;
}

void status_destroy(status *st)
{
    if (!st)
        return;
    entry *e, *et;
    HASH_ITER(hh, st->entries, e, et) {
        HASH_DEL(st->entries, e);
        free(e->w);
        free(e);
    }
    owner *o, *ot;
    HASH_ITER(hh, st->owners, o, ot) {
        HASH_DEL(st->owners, o);
        free(o);
    }
    free(st);
}

size_t status_watched(const status *st)
{
    return st->nentries;
}

size_t status_subscriptions(const status *st)
{
    return st->nsubs;
}

/* --- messages ------------------------------------------------------------------ */

static json_t *status_ms_json(int64_t ms)
{
    return ms >= 0 ? json_integer((json_int_t)ms) : json_null();
}

static msg *status_message(status *st, const char *kind, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = strlen(text);
    char id[48];
    snprintf(id, sizeof id, "status-%s-%llu", kind, (unsigned long long)++st->msg_seq);
    buf b;
    buf_init(&b);
    buf_printf(&b, "destination:/status\nmessage-id:%s\ncontent-type:application/json\n"
                   "content-length:%zu\n", id, len);
    stomp_put_body(&b, text, len);
    msg *m = msg_create(MSG_MESSAGE, &b);
    msg_set_id(m, id, strlen(id));
    buf_deinit(&b);
    free(text);
    return m;
}

json_t *status_entry_json(const char *user, const registry_status *s)
{
    return json_pack("{s:s, s:b, s:o, s:o}", "user", user, "online", (int)s->online, "since",
                     status_ms_json(s->online ? s->since : -1), "seen", status_ms_json(s->seen));
}

static void status_send_snapshot(status *st, status_sub *ss)
{
    json_t *list = json_array();
    for (uint32_t i = 0; i < ss->n; i++) {
        const entry *e = ss->links[i].e;
        json_array_append_new(list, status_entry_json(e->user, &e->st));
    }
    json_t *body = json_pack("{s:s, s:o}", "type", "snapshot", "contacts", list);
    msg *m = status_message(st, "snapshot", body);
    json_decref(body);
    ss->live = true;
    st->m->status_snapshots++;
    st->hooks.deliver(ss->sub, m);
    msg_unref(m);
}

/* e's online flag flipped: tell its live subscribers, with one message. */
static void status_send_change(status *st, entry *e)
{
    json_t *body = e->st.online
        ? json_pack("{s:s, s:s, s:o}", "type", "online", "user", e->user, "since",
                    status_ms_json(e->st.since))
        : json_pack("{s:s, s:s, s:o}", "type", "offline", "user", e->user, "seen",
                    status_ms_json(e->st.seen));
    msg *m = NULL;
    for (uint32_t i = 0; i < e->nw; i++) {
        status_sub *ss = e->w[i].ss;
        if (!ss->live)
            continue;       /* its snapshot, still to come, will say it */
        if (!m)
            m = status_message(st, e->st.online ? "online" : "offline", body);
        st->m->status_deliveries++;
        st->hooks.deliver(ss->sub, m);
    }
    json_decref(body);
    msg_unref(m);
}

/* --- entries --------------------------------------------------------------------- */

static bool status_newer(const registry_status *a, const registry_status *b, bool answer)
{
    if (a->epoch != b->epoch)
        return answer || a->epoch > b->epoch;
    return a->v > b->v;
}

/* A status for e, from a watch's answer or an event. */
static void entry_apply(status *st, entry *e, const registry_status *s, bool answer)
{
    if (e->known && !status_newer(s, &e->st, answer))
        return;
    bool was_known = e->known, was_online = e->st.online;
    e->st = *s;
    e->known = true;
    if (!was_known) {
        for (uint32_t i = 0; i < e->nw; i++) {
            status_sub *ss = e->w[i].ss;
            if (!ss->live && --ss->unknown == 0)
                status_send_snapshot(st, ss);
        }
    } else if (was_online != e->st.online) {
        status_send_change(st, e);
    }
}

static entry *entry_find(status *st, const char *user)
{
    entry *e;
    HASH_FIND_STR(st->entries, user, e);
    return e;
}

/* --- registry calls ------------------------------------------------------------ */

/* One watch call in flight: the users it asked about (copied, as their
 * entries may go before the answer). */
typedef struct watch_call {
    status *st;
    size_t n;
    char *users[];
} watch_call;

static void status_on_watched(void *ctx, const registry_status *s, size_t n, bool ok)
{
    watch_call *c = ctx;
    status *st = c->st;
    if (!ok)
        log_warn("status_watch_failed", "users=%zu", c->n);
    for (size_t i = 0; ok && i < n && i < c->n; i++) {
        entry *e = entry_find(st, c->users[i]);
        if (e)
            entry_apply(st, e, &s[i], true);
    }
    for (size_t i = 0; i < c->n; i++)
        free(c->users[i]);
    free(c);
}

/* Watch b's users (chunked); reset: first forget every user watched. */
static void status_watch(status *st, const batch *b, bool reset)
{
    size_t chunk = (size_t)st->cfg.chunk;
    size_t i = 0;
    do {
        size_t k = b->n - i < chunk ? b->n - i : chunk;
        watch_call *c = xmalloc(sizeof *c + k * sizeof c->users[0]);
        c->st = st;
        c->n = k;
        for (size_t j = 0; j < k; j++)
            c->users[j] = xstrdup(b->users[i + j]);
        if (registry_status_watch(st->reg, b->users + i, k, reset, status_on_watched, c) < 0) {
            /* Not up: the resync after the reconnect watches them. */
            for (size_t j = 0; j < k; j++)
                free(c->users[j]);
            free(c);
        }
        reset = false;
        i += k;
    } while (i < b->n);
}

static void status_unwatch(status *st, const batch *b)
{
    size_t chunk = (size_t)st->cfg.chunk;
    for (size_t i = 0; i < b->n; i += chunk)
        registry_status_unwatch(st->reg, b->users + i, b->n - i < chunk ? b->n - i : chunk);
}

/* --- links ------------------------------------------------------------------------ */

static void link_add(status_sub *ss, entry *e)
{
    if (ss->n == ss->cap) {
        ss->cap = ss->cap ? 2 * ss->cap : 8;
        ss->links = xrealloc(ss->links, ss->cap * sizeof *ss->links);
    }
    if (e->nw == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 2;
        e->w = xrealloc(e->w, e->cap * sizeof *e->w);
    }
    ss->links[ss->n] = (watch_link){ e, e->nw };
    e->w[e->nw++] = (watcher_ref){ ss, ss->n };
    ss->n++;
}

/* Cut links[0..n) from their entries. An entry has at most one watch_link per
 * subscription, so an entry's moved reference always belongs to another
 * subscription (or to another of these links' own array). Entries nobody
 * watches any more are added to `idle` (still in the table: a new list
 * may take them again; status_drop_idle removes the rest). */
static void links_cut(watch_link *links, uint32_t n, batch *idle)
{
    for (uint32_t i = 0; i < n; i++) {
        entry *e = links[i].e;
        uint32_t at = links[i].at;
        e->w[at] = e->w[--e->nw];
        if (at < e->nw)
            e->w[at].ss->links[e->w[at].at].at = at;
        if (e->nw == 0)
            batch_add(idle, e->user);
    }
}

static entry *entry_of(const char *user)
{
    return (entry *)(void *)(user - offsetof(entry, user));
}

/* Entries of `idle` still watched by nobody: unwatch (chunked) and free. */
static void status_drop_idle(status *st, batch *idle)
{
    batch gone = { 0 };
    for (size_t i = 0; i < idle->n; i++) {
        entry *e = entry_of(idle->users[i]);
        if (e->nw)
            continue;
        HASH_DEL(st->entries, e);
        st->nentries--;
        batch_add(&gone, e->user);
    }
    if (gone.n)
        status_unwatch(st, &gone);
    for (size_t i = 0; i < gone.n; i++) {
        entry *e = entry_of(gone.users[i]);
        free(e->w);
        free(e);
    }
    free(gone.users);
    free(idle->users);
}

/* ss watches exactly users[0..n) from now on (a first list, or a changed
 * one): cut the old links, watch_link the new, ask the registry about users
 * nobody here watched, drop entries nobody watches any more, and snapshot
 * once every entry is known. */
static void status_set_list(status *st, status_sub *ss, const char *const *users, size_t n)
{
    batch idle = { 0 }, fresh = { 0 };
    links_cut(ss->links, ss->n, &idle);
    ss->n = 0;
    ss->live = false;
    ss->unknown = 0;
    uint64_t stamp = ++st->stamp;
    if (n > (size_t)st->cfg.max_contacts)
        n = (size_t)st->cfg.max_contacts;
    for (size_t i = 0; i < n; i++) {
        entry *e = entry_find(st, users[i]);
        if (!e) {
            size_t len = strlen(users[i]);
            e = xcalloc(1, sizeof *e + len + 1);
            memcpy(e->user, users[i], len + 1);
            e->st = (registry_status){ 0, 0, false, -1, -1 };
            HASH_ADD_KEYPTR(hh, st->entries, e->user, len, e);
            st->nentries++;
            batch_add(&fresh, e->user);
        }
        if (e->stamp == stamp)
            continue;       /* listed twice */
        e->stamp = stamp;
        link_add(ss, e);
        if (!e->known)
            ss->unknown++;
    }
    status_drop_idle(st, &idle);
    if (fresh.n)
        status_watch(st, &fresh, false);
    free(fresh.users);
    if (ss->unknown == 0)
        status_send_snapshot(st, ss);
}

/* --- subscriptions ------------------------------------------------------------------ */

static char **status_copy(const char *const *v, size_t n)
{
    if (!v || !n)
        return NULL;
    char **c = xmalloc(n * sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}

static void status_free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void status_on_list(void *ctx, const char *const *users, size_t n, bool ok);

/* Ask for ss's contact list (or use its explicit list when it may watch
 * anyone). The answer may come at once. */
static void status_resolve(status *st, status_sub *ss)
{
    if (ss->xusers && ss->any) {
        status_set_list(st, ss, (const char *const *)ss->xusers, ss->nx);
        return;
    }
    contacts_cancel(ss->req);
    ss->req = NULL;
    contacts_req *r = contacts_get(st->contacts, ss->own->user, (const char *const *)ss->claim,
                                   ss->nclaim, status_on_list, ss);
    if (r)
        ss->req = r;   /* not answered yet (when answered at once, ss may be gone) */
}

static void status_on_list(void *ctx, const char *const *users, size_t n, bool ok)
{
    status_sub *ss = ctx;
    status *st = ss->st;
    ss->req = NULL;
    if (!ok) {
        st->hooks.fail(ss->sub, STATUS_FAIL_UNAVAILABLE, "");
        return;
    }
    if (!ss->xusers) {
        status_set_list(st, ss, users, n);
        return;
    }
    /* x-users: each must be one of the contacts. */
    const char *missing = userid_first_missing(users, n, (const char *const *)ss->xusers, ss->nx);
    if (missing) {
        st->hooks.fail(ss->sub, STATUS_FAIL_FORBIDDEN, missing);
        return;
    }
    status_set_list(st, ss, (const char *const *)ss->xusers, ss->nx);
}

status_sub *status_subscribe(status *st, subscriber *sub, const char *user,
                             const char *const *claim, size_t nclaim,
                             const char *const *xusers, size_t nx, bool any)
{
    if (!st->reg || !registry_up(st->reg))
        return NULL;
    status_sub *ss = xcalloc(1, sizeof *ss);
    ss->st = st;
    ss->sub = sub;
    ss->claim = status_copy(claim, nclaim);
    ss->nclaim = ss->claim ? nclaim : 0;
    ss->xusers = xusers ? status_copy(xusers, nx) : NULL;
    ss->nx = ss->xusers ? nx : 0;
    if (xusers && !nx)
        ss->xusers = xcalloc(1, sizeof *ss->xusers);    /* an explicit empty list */
    ss->any = any;
    owner *o;
    HASH_FIND_STR(st->owners, user, o);
    if (!o) {
        size_t len = strlen(user);
        o = xcalloc(1, sizeof *o + len + 1);
        memcpy(o->user, user, len + 1);
        HASH_ADD_KEYPTR(hh, st->owners, o->user, len, o);
    }
    ss->own = o;
    ss->next_of_owner = o->subs;
    o->subs = ss;
    st->nsubs++;
    status_resolve(st, ss);
    return ss;
}

void status_unsubscribe(status_sub *ss)
{
    if (!ss)
        return;
    status *st = ss->st;
    contacts_cancel(ss->req);
    batch idle = { 0 };
    links_cut(ss->links, ss->n, &idle);
    ss->n = 0;
    status_drop_idle(st, &idle);
    owner *o = ss->own;
    for (status_sub **pp = &o->subs; *pp; pp = &(*pp)->next_of_owner) {
        if (*pp == ss) {
            *pp = ss->next_of_owner;
            break;
        }
    }
    if (!o->subs) {
        HASH_DEL(st->owners, o);
        free(o);
    }
    st->nsubs--;
    status_free_list(ss->claim, ss->nclaim);
    status_free_list(ss->xusers, ss->nx);
    free(ss->links);
    free(ss);
}

/* --- from the registry and contacts --------------------------------------------------- */

void status_on_event(status *st, const char *json, size_t len)
{
    registry_status_event ev;
    if (registry_status_event_parse(json, len, &ev) < 0) {
        log_warn("status_event_malformed", "len=%zu", len);
        return;
    }
    st->m->status_events++;
    entry *e = entry_find(st, ev.user);
    if (e)
        entry_apply(st, e, &ev.st, false);
    registry_status_event_free(&ev);
}

void status_resync(status *st)
{
    if (!st->reg)
        return;
    batch all = { 0 };
    for (entry *e = st->entries; e; e = e->hh.next)
        batch_add(&all, e->user);
    status_watch(st, &all, true);
    free(all.users);
}

void status_contacts_changed(status *st, const char *user)
{
    owner *o;
    HASH_FIND_STR(st->owners, user, o);
    if (!o)
        return;
    /* status_resolve may answer at once, and a failure may end a
     * subscription later, never inside this loop (status_hooks.fail). */
    for (status_sub *ss = o->subs; ss; ss = ss->next_of_owner)
        if (!(ss->xusers && ss->any))
            status_resolve(st, ss);
}
