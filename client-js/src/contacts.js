// contacts.js — friends' online status: a live map of the caller's contacts.
//
// A Contacts object is one subscription to Lectern's /status destination
// (docs/protocol.md), made by LecternClient.contacts(). The server sends a
// snapshot first (every contact: online or not, since when, last seen),
// then one event per change anywhere in the cluster, and a fresh snapshot
// whenever the caller's contact list changes. This module keeps the map
// (user -> {online, since, seen}) and turns frames into events; the client
// owns the wire (it subscribes, re-subscribes after a reconnect with the
// same options, and routes this subscription's MESSAGEs here).
//
// Exactly once, no flicker. The first snapshot fills the map and emits
// only `snapshot`. Every later snapshot — the one that follows a reconnect,
// or one sent because the contact list changed — is diffed against the map:
// only real differences become events (`online`, `offline`, `added`,
// `removed`, and `change` for each of them), then `snapshot`. The map is
// never cleared in between, so a reconnect that changed nothing emits
// nothing but `snapshot`. A live event that does not change the map (the
// user is already in that state) emits nothing.
//
// Invariants: events of a subscription count only after its snapshot (a
// re-subscription's events before its snapshot are ignored: the snapshot
// holds their effect); the map changes only in whole steps (a snapshot's
// diff is applied completely before its events are emitted); entries are
// replaced, never mutated, so an entry an app kept stays as it was.

import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';

/** A timestamp in ms, or null. */
const ms = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** A snapshot entry as kept in the map. */
const entry = (c) => ({ online: c.online === true, since: c.online === true ? ms(c.since) : null, seen: ms(c.seen) });
const same = (a, b) => a.online === b.online && a.since === b.since && a.seen === b.seen;

/** Check opts.users: user ids of 1..128 characters, no ',' and no control characters. */
function checkUsers(users) {
  if (!Array.isArray(users) || users.length === 0) throw new TypeError('contacts: users must be a non-empty array');
  for (const u of users) {
    // eslint-disable-next-line no-control-regex
    if (typeof u !== 'string' || u.length < 1 || u.length > 128 || /[,\u0000-\u001f\u007f]/.test(u))
      throw new TypeError(`contacts: not a user id: ${JSON.stringify(u)}`);
  }
  return [...users];
}

/**
 * The live status of the caller's contacts. Events: `snapshot` (the map),
 * `online` ({user, since}), `offline` ({user, seen}), `added` ({user,
 * online, since, seen}), `removed` ({user}), `change` ({type, user, online,
 * since, seen}: any of those, type 'online', 'offline', 'added', 'removed'
 * or 'update' for a new since/seen without a change of state), `error`.
 */
export class Contacts extends Emitter {
  /**
   * Made by LecternClient.contacts(), not by applications.
   * @param {{users?: string[]}} opts
   * @param {{detach: (list: Contacts) => void, subscribe: (list: Contacts) => void}} link
   *   the client's part of close(), and a subscription now if online
   */
  constructor(opts, link) {
    super();
    this.users = opts.users === undefined ? null : checkUsers(opts.users);
    /** @type {Map<string, {online: boolean, since: number|null, seen: number|null}>} */
    this.map = new Map();
    this.link = link;
    this.retry = new Backoff({ base: 1000, cap: 60000 });
    this.waiting = null;       // a timer: subscribe again after a busy server refused
    this.filled = false;       // a snapshot has been taken in
    this.subId = null;         // the current subscription (set by the client)
    this.synced = false;       // its snapshot has arrived
    this.closed = false;
    /** @type {Error|null} the ERROR that ended this subscription, if one did */
    this.error = null;
  }

  /** The map user -> {online, since, seen}: the same Map object for the object's life. */
  list() { return this.map; }

  /** Unsubscribe for good: no more events, no re-subscription after a reconnect. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.waiting);
    this.waiting = null;
    this.link.detach(this);
  }

  /** The SUBSCRIBE headers (the client adds id and receipt). @internal */
  headers() {
    return { destination: '/status', 'x-users': this.users ? this.users.join(',') : undefined };
  }

  /** The client subscribed anew with this id: wait for its snapshot. @internal */
  subscribed(id) {
    this.subId = id;
    this.synced = false;
  }

  /**
   * The server refused the subscription (an ERROR naming its receipt; the
   * server then closes the connection). A busy server ("Service
   * unavailable") is asked again, but not by the reconnect that follows:
   * after a backoff of its own (1 s doubling to 1 min, full jitter), so the
   * rooms get their connection back meanwhile. Anything else (an x-users
   * list the token does not allow, a server without /status) would only be
   * refused again: the object closes (before its `error` event, so a
   * handler sees `closed`).
   * @internal
   */
  refused(err) {
    if (err.message !== 'Service unavailable') {
      this.error = err;
      this.close();
    } else if (!this.closed && !this.waiting) {
      this.waiting = setTimeout(() => {
        this.waiting = null;
        if (!this.closed) this.link.subscribe(this);
      }, this.retry.next());
    }
    this.emit('error', err);
  }

  /** A MESSAGE body of this subscription. @internal */
  message(body) {
    if (this.closed) return;
    let ev;
    try { ev = JSON.parse(body); } catch { return; }
    if (!ev || typeof ev !== 'object') return;
    if (ev.type === 'snapshot') {
      this.#snapshot(ev.contacts);
      return;
    }
    if (!this.synced || (ev.type !== 'online' && ev.type !== 'offline')) return;
    const old = this.map.get(ev.user);
    if (!old) return;                                  // not (or no longer) a contact
    const next = ev.type === 'online'
      ? { online: true, since: ms(ev.since), seen: old.seen }
      : { online: false, since: null, seen: ms(ev.seen) ?? old.seen };
    if (same(old, next)) return;
    this.map.set(ev.user, next);
    this.#changed(ev.user, old, next);
  }

  #snapshot(contacts) {
    if (!Array.isArray(contacts)) return;
    this.retry.reset();
    const next = new Map();
    for (const c of contacts)
      if (c && typeof c.user === 'string' && !next.has(c.user)) next.set(c.user, entry(c));
    this.synced = true;
    const steps = [];
    if (this.filled) {
      for (const [user, e] of next) {
        const old = this.map.get(user);
        if (!old) steps.push([user, undefined, e]);
        else if (same(old, e)) next.set(user, old);   // unchanged: keep the very entry
        else steps.push([user, old, e]);
      }
      for (const [user, old] of this.map) if (!next.has(user)) steps.push([user, old, undefined]);
    }
    this.filled = true;
    this.map.clear();
    for (const [user, e] of next) this.map.set(user, e);
    for (const [user, old, e] of steps) this.#changed(user, old, e);
    this.emit('snapshot', this.map);
  }

  /** Emit the events of one entry's change (old or next undefined: added or removed). */
  #changed(user, old, next) {
    let type;
    if (!next) {
      this.emit('removed', { user });
      this.emit('change', { type: 'removed', user });
      return;
    }
    if (!old) {
      type = 'added';
      this.emit('added', { user, ...next });
    } else if (old.online !== next.online) {
      type = next.online ? 'online' : 'offline';
      this.emit(type, next.online ? { user, since: next.since } : { user, seen: next.seen });
    } else {
      type = 'update';
    }
    this.emit('change', { type, user, ...next });
  }
}
