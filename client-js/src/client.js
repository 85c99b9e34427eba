// client.js — LecternClient: a lecture-room connection that survives.
//
// One WebSocket (STOMP 1.2) to a Lectern URL, usually a load balancer in
// front of several servers. Rooms are joined with join(); each room delivers
// its messages in order, with their ids, exactly once: when the connection
// drops the client reconnects (exponential backoff with full jitter, see
// backoff.js) and re-subscribes every room with `x-since:<last id seen>`,
// so the server replays what was missed; anything seen already is dropped
// by id (ids.js). Presence comes from /presence/<room>: a snapshot, then
// join/leave events, kept as a member map. Earlier messages come over HTTP
// (history()). A redacted message is announced by a MESSAGE with
// x-redacts: it becomes a 'redact' event (not a 'message'); the message
// itself, read again (history, a replay), is a tombstone with `redacted`.
// A kick or a ban ends the room's subscription with a control MESSAGE
// (x-lectern-event): the room is left for good (no re-subscribe) and a
// 'kicked' or 'banned' event says who and why.
// Friends' online status comes from /status: contacts()
// returns a live map kept in contacts.js, re-subscribed and diffed (no
// flicker) after a reconnect like a room. State changes are events:
// connecting, online, reconnecting, offline.
//
// Sends are exactly once too: every send() carries an idempotency key
// (x-idempotency-key, random per call). When the connection drops before
// the RECEIPT, or the server answers ERROR "Message not stored" or
// "Service unavailable" (the message may or may not be stored), the SEND
// goes again after the reconnect with the same key, to whichever server
// the client reaches; the cluster stores and delivers one copy and its
// RECEIPT carries the first copy's id. So send() resolves once, with the
// message id, or rejects when the message was refused or could not be
// confirmed within sendRetryMs (kept inside the server's
// api.idempotency_window_s, after which a resend would be a new message).
//
// Tokens expire, and the server ends a session whose token has (ERROR
// "Token expired"). With a `refreshToken` callback the client asks for a
// fresh token some time before the current one's exp (read from the JWT's
// payload), hands it to the server on the open session (a SEND to /token
// with the token as passcode, docs/protocol.md), and uses it from then on
// for reconnects and history requests.
//
// It works in browsers (the global WebSocket and fetch) and in Node (pass
// `WebSocket`, e.g. from the `ws` package; Node 18+ has fetch). Against any
// STOMP-over-WebSocket server the plain subset works (join, send, receive);
// resume and presence need Lectern.

import { Backoff } from './backoff.js';
import { Contacts } from './contacts.js';
import { Emitter } from './emitter.js';
import { decodeBinary, encodeFrame, FrameReader } from './frame.js';
import { Seen } from './ids.js';

/** The exp of a JWT in ms since the epoch, or null (not a JWT, no exp). */
export function tokenExpiry(token) {
  const part = typeof token === 'string' ? token.split('.')[1] : undefined;
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** history(): requests per page while the server answers 503 with Retry-After. */
const HISTORY_TRIES = 4;

/** ERRORs after which a SEND may or may not have been stored: sent again with its key. */
const SEND_RETRY_ERRORS = new Set(['Message not stored', 'Service unavailable']);

/** A fresh idempotency key: a random UUID (122 random bits). */
export function newIdempotencyKey() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * @typedef {{id: string|undefined, room: string, body: string,
 *            sender: string|undefined, senderName: string|undefined, role: string|undefined,
 *            timestamp: number|undefined, headers: Record<string,string>,
 *            redacted?: {by: string, at: number}}} RoomMessage
 *   `redacted`: the message was redacted and this is its tombstone (empty body).
 * @typedef {{type: 'kicked'|'banned', room: string, reason: string, by: string,
 *            until?: number|null}} Removal
 *   A 'kicked' or 'banned' event: the server ended the room's subscription (the
 *   room is left; join() again after a kick, or once a ban ended). until (bans):
 *   when the ban ends, ms since the epoch; null: until lifted.
 * @typedef {{id: string, room: string, redactionId: string, by: string, at: number}} Redaction
 *   A 'redact' event: message `id` of `room` was redacted (by, at); redactionId is the
 *   redaction event's own message id.
 */

/** A redacted message's tombstone carries x-redacted-by and x-redacted-at, the event
 * that announces it x-redacts as well: {by, at} of a tombstone, else undefined. */
function tombstoneOf(headers) {
  if (!headers || headers['x-redacts'] !== undefined || headers['x-redacted-by'] === undefined) return undefined;
  return { by: headers['x-redacted-by'], at: Number(headers['x-redacted-at']) };
}

/** One joined room. Events: 'message' (RoomMessage), 'redact' (Redaction),
 * 'presence' ({type, count, members, user}), 'kicked' and 'banned' (Removal). */
export class Room extends Emitter {
  constructor(client, name, presence) {
    super();
    this.client = client;
    this.name = name;
    this.wantsPresence = presence;
    /** @type {Map<string, {id: string, name: string, since: number}>} */
    this.members = new Map();
    this.count = 0;
    this.subId = null;
    this.presenceSubId = null;
  }

  /** Send a text message; resolves with its id once the server has it stored
   * (RECEIPT), sending again after a drop with the same idempotency key. */
  send(body, headers = {}) { return this.client.send(this.name, body, headers); }

  /** A page of earlier messages (oldest first), before `before` (an id). */
  history(opts = {}) { return this.client.history(this.name, opts); }

  /* Moderation (instructors in rooms their token lists, admins): each resolves
   * once the cluster has it (docs/protocol.md "Moderation"), rejects with the
   * server's ERROR. */
  /** Redact message `id`: its body gone for everyone, a 'redact' event everywhere. */
  redact(id) { return this.client.control(this.name, { action: 'redact', id }); }
  /** Mute `user` here for o.durationS seconds (default: until unmuted). */
  mute(user, o = {}) {
    return this.client.control(this.name, { action: 'mute', user,
      ...(o.durationS ? { duration_s: o.durationS } : {}), ...(o.reason ? { reason: o.reason } : {}) });
  }
  /** Lift a mute. */
  unmute(user) { return this.client.control(this.name, { action: 'unmute', user }); }
  /** End every subscription of `user` to this room, on every server. */
  kick(user, o = {}) {
    return this.client.control(this.name, { action: 'kick', user, ...(o.reason ? { reason: o.reason } : {}) });
  }

  /** Unsubscribe for good. */
  leave() { return this.client.leave(this.name); }
}

export class LecternClient extends Emitter {
  /**
   * @param {string} url  ws:// or wss:// URL of the STOMP endpoint (…/ws)
   * @param {object} [o]
   * @param {string} [o.token]      credential sent as CONNECT passcode (and login when no login is given)
   * @param {() => Promise<string>|string} [o.refreshToken]  returns a fresh token for the same user;
   *   called before the current token's exp (see refreshMargin), and before reconnecting with an expired one
   * @param {number} [o.refreshMargin]  ms before exp to refresh (default 60000; at the latest halfway
   *   through the token's remaining life)
   * @param {string} [o.login]      user id, for servers without authentication (a token's sub wins)
   * @param {string} [o.name]       display name (x-display-name)
   * @param {string} [o.role]       x-role, believed only by a server without auth (auth.mode none, insecure-dev)
   * @param {string} [o.host]       STOMP host header (default "/")
   * @param {string} [o.httpBase]   base URL of the HTTP API (default: derived from url)
   * @param {any} [o.WebSocket]     WebSocket class (default: globalThis.WebSocket)
   * @param {typeof fetch} [o.fetch]
   * @param {{base?: number, cap?: number, maxAttempts?: number}} [o.reconnect]
   * @param {{outgoing?: number, incoming?: number}} [o.heartbeat]  ms, 0 disables
   * @param {number} [o.sendRetryMs]  how long a send() keeps trying (default 300000; keep it
   *   below the server's api.idempotency_window_s, 600 s by default)
   */
  constructor(url, o = {}) {
    super();
    this.url = url;
    this.o = o;
    this.WS = o.WebSocket || globalThis.WebSocket;
    this.fetch = o.fetch || globalThis.fetch?.bind(globalThis);
    this.httpBase = o.httpBase || url.replace(/^ws/, 'http').replace(/\/ws\/?$/, '');
    this.backoff = new Backoff(o.reconnect || {});
    this.heartbeat = { outgoing: 10000, incoming: 10000, ...(o.heartbeat || {}) };
    this.state = 'idle';
    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** @type {Set<Contacts>} */
    this.contactLists = new Set();
    this.seen = new Seen();
    this.ws = null;
    this.reader = null;
    this.nextId = 1;
    this.receipts = new Map();     // receipt id -> {resolve, reject}
    this.outbox = new Set();       // send()s not yet settled, in call order
    this.sendRetryMs = o.sendRetryMs ?? 300000;
    this.subs = new Map();         // subscription id -> {room, kind}
    this.timers = [];
    this.closing = false;
    this.token = o.token;
    this.refreshTimer = null;
    this.refreshing = null;        // the refresh under way (a Promise)
  }

  #setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  /** Connect (and stay connected until disconnect()). Resolves once online. */
  connect() {
    this.closing = false;
    this.denied = null;
    if (this.state === 'online') return Promise.resolve();
    const p = new Promise((resolve, reject) => {
      const off = this.on('state', (s) => {
        if (s === 'online') { off(); resolve(); }
        if (s === 'offline') { off(); reject(new Error('could not connect')); }
      });
    });
    if (this.state === 'idle' || this.state === 'offline') this.#open('connecting');
    return p;
  }

  async #open(state) {
    this.#setState(state);
    // A token that has run out would only be refused: get a fresh one first.
    const exp = tokenExpiry(this.token);
    if (this.o.refreshToken && exp !== null && exp - Date.now() < 1000) await this.#fetchToken();
    if (this.closing) { this.#setState('offline'); return; }
    this.reader = new FrameReader();
    let ws;
    try {
      ws = new this.WS(this.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
    } catch (e) {
      this.#lost(e);
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      const o = this.o;
      const hb = `${this.heartbeat.outgoing},${this.heartbeat.incoming}`;
      this.#raw(encodeFrame('CONNECT', {
        'accept-version': '1.2', host: o.host || '/', 'heart-beat': hb,
        login: o.login ?? this.token, passcode: this.token, 'x-display-name': o.name, 'x-role': o.role,
      }));
    };
    ws.onmessage = (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : decodeBinary(ev.data);
      let frames;
      try {
        frames = this.reader.push(text);
      } catch (e) {
        ws.close();
        return;
      }
      this.lastRx = Date.now();
      for (const f of frames) this.#frame(f);
    };
    ws.onclose = () => this.#lost(new Error('connection closed'));
    ws.onerror = () => {};          // onclose follows
  }

  #raw(text) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(text);
  }

  #frame(f) {
    if (!f.command) return;          // heart-beat
    switch (f.command) {
      case 'CONNECTED': return this.#online(f);
      case 'MESSAGE': return this.#message(f);
      case 'RECEIPT': {
        const r = this.receipts.get(f.headers['receipt-id']);
        if (r) { this.receipts.delete(f.headers['receipt-id']); r.resolve(f.headers['message-id']); }
        return;
      }
      case 'ERROR': {
        const err = new Error(f.headers.message || 'STOMP ERROR');
        err.details = f.body;
        const r = f.headers['receipt-id'] && this.receipts.get(f.headers['receipt-id']);
        if (r) { this.receipts.delete(f.headers['receipt-id']); r.reject(err); }
        // A /status subscription refused after its RECEIPT (its contact
        // list is read first): the ERROR names it. Only that list is
        // refused; the rooms reconnect as usual.
        const s = f.headers.subscription && this.subs.get(f.headers.subscription);
        if (!r && s && s.kind === 'status') {
          s.list.refused(err);
          this.emit('error', err);
          return;
        }
        this.emit('error', err);
        // A refused token or room stays refused: reconnecting would only
        // repeat it. Anything else: the server closes; onclose reconnects.
        if (err.message === 'Access refused') this.denied = err;
        return;
      }
      default:
    }
  }

  #online(f) {
    this.backoff.reset();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const [sx, sy] = (f.headers['heart-beat'] || '0,0').split(',').map(Number);
    const send = this.heartbeat.outgoing && sy ? Math.max(this.heartbeat.outgoing, sy) : 0;
    const recv = this.heartbeat.incoming && sx ? Math.max(this.heartbeat.incoming, sx) : 0;
    if (send) this.timers.push(setInterval(() => this.#raw('\n'), send));
    if (recv) {
      this.lastRx = Date.now();
      this.timers.push(setInterval(() => {
        if (Date.now() - this.lastRx > 2 * recv) this.ws?.close();
      }, recv));
    }
    this.subs.clear();
    for (const room of this.rooms.values()) this.#subscribe(room);
    for (const list of this.contactLists) if (!list.waiting) this.#subscribeContacts(list);
    for (const out of this.outbox) this.#transmit(out);   // again, same keys, same order
    this.#setState('online');
    this.#scheduleRefresh();
  }

  /** Ask refreshToken for a token (one call at a time); true when it gave one. */
  #fetchToken() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const t = await this.o.refreshToken();
          if (typeof t !== 'string' || !t) throw new Error('refreshToken gave no token');
          this.token = t;
          return true;
        } catch (e) {
          const err = new Error(`token refresh failed: ${e.message}`);
          err.cause = e;
          this.emit('error', err);
          return false;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /** Refresh refreshMargin before exp, or halfway through what is left, whichever is later. */
  #scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const exp = tokenExpiry(this.token);
    if (!this.o.refreshToken || exp === null || this.closing) return;
    const left = exp - Date.now();
    const margin = this.o.refreshMargin ?? 60000;
    const delay = Math.max(left - margin, left / 2, 250);
    this.refreshTimer = setTimeout(() => this.#refresh(), delay);
  }

  /** Get a fresh token and give it to the server (SEND to /token, confirmed by RECEIPT). */
  async #refresh() {
    this.refreshTimer = null;
    const before = this.token;
    if (!(await this.#fetchToken()) || this.closing) {
      if (!this.closing) this.#scheduleRefresh();       // try again, sooner
      return;
    }
    if (this.state === 'online' && this.token !== before) {
      const receipt = `t${this.nextId++}`;
      const p = new Promise((resolve, reject) => this.receipts.set(receipt, { resolve, reject }));
      this.#raw(encodeFrame('SEND', { destination: '/token', passcode: this.token, receipt }));
      try {
        await p;
        this.emit('token', this.token);
      } catch {
        return;     // refused (the server closes) or the connection dropped: see #lost
      }
    }
    this.#scheduleRefresh();
  }

  #subscribe(room) {
    const id = `s${this.nextId++}`;
    room.subId = id;
    this.subs.set(id, { room: room.name, kind: 'topic' });
    const since = this.seen.lastId(room.name);
    this.#raw(encodeFrame('SUBSCRIBE', {
      id, destination: `/topic/${room.name}`, ack: 'auto', 'x-since': since,
    }));
    if (room.wantsPresence) {
      const pid = `p${this.nextId++}`;
      room.presenceSubId = pid;
      this.subs.set(pid, { room: room.name, kind: 'presence' });
      this.#raw(encodeFrame('SUBSCRIBE', { id: pid, destination: `/presence/${room.name}` }));
    }
  }

  #message(f) {
    const sub = this.subs.get(f.headers.subscription);
    if (!sub) return;
    if (sub.kind === 'status') return sub.list.message(f.body);
    const room = this.rooms.get(sub.room);
    if (!room) return;
    if (sub.kind === 'presence') {
      let ev;
      try { ev = JSON.parse(f.body); } catch { return; }
      if (ev.type === 'snapshot') {
        room.members = new Map((ev.members || []).map((m) => [m.id, m]));
      } else if (ev.type === 'join' && ev.user) {
        room.members.set(ev.user.id, ev.user);
      } else if (ev.type === 'leave' && ev.user) {
        room.members.delete(ev.user.id);
      }
      room.count = ev.count ?? room.members.size;
      room.emit('presence', { type: ev.type, count: room.count, members: room.members, user: ev.user });
      return;
    }
    const event = f.headers['x-lectern-event'];
    if (event === 'kicked' || event === 'banned') {
      // The server ended this subscription (a kick or a ban): the room is
      // left for good, never re-subscribed, and the control MESSAGE is no
      // place in the room (its id is not a message id: never a resume point).
      if (f.headers.subscription !== room.subId) return;
      let body = {};
      try { body = JSON.parse(f.body); } catch { /* the headers say it all */ }
      /** @type {Removal} */
      const r = { type: event, room: room.name, reason: f.headers['x-reason'] ?? body.reason ?? '',
        by: f.headers['x-by'] ?? body.by };
      if (event === 'banned') r.until = body.until ?? null;
      this.leave(room.name);
      room.emit(event, r);
      this.emit(event, r);
      return;
    }
    const id = f.headers['message-id'];
    if (!this.seen.accept(room.name, id)) return;      // a replay: seen already
    const target = f.headers['x-redacts'];
    if (target !== undefined) {
      // A redaction event: not a chat message, but a place in the room
      // (seen above, so a resume starts after it).
      /** @type {Redaction} */
      const r = { id: target, room: room.name, redactionId: id, by: f.headers['x-redacted-by'],
        at: Number(f.headers['x-redacted-at']) };
      room.emit('redact', r);
      this.emit('redact', r);
      return;
    }
    /** @type {RoomMessage} */
    const m = {
      id, room: room.name, body: f.body, sender: f.headers.sender,
      senderName: f.headers['sender-name'], role: f.headers['sender-role'],
      timestamp: f.headers.timestamp ? Number(f.headers.timestamp) : undefined,
      headers: f.headers,
    };
    const redacted = tombstoneOf(f.headers);
    if (redacted) m.redacted = redacted;
    room.emit('message', m);
    this.emit('message', m);
  }

  #lost(err) {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.ws) { this.ws.onclose = this.ws.onmessage = this.ws.onopen = null; }
    this.ws = null;
    for (const r of this.receipts.values()) r.reject(err);
    this.receipts.clear();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.closing || this.denied) { this.#offline(err); return; }
    const delay = this.backoff.next();
    if (delay === null) { this.#offline(err); return; }
    this.#setState('reconnecting');
    this.timers.push(setTimeout(() => {
      if (!this.closing) this.#open('reconnecting');
    }, delay));
  }

  /** No more connections: the sends still waiting fail with err. */
  #offline(err) {
    for (const out of this.outbox) this.#settle(out, err);
    this.#setState('offline');
  }

  /**
   * Join a room: its messages arrive as 'message' events on the Room.
   * @param {string} name
   * @param {{presence?: boolean, since?: string}} [o]  since: the id of the
   *   last message the app already has (e.g. the newest of a history page):
   *   the subscription starts right after it, with nothing missed between.
   * @returns {Room}
   */
  join(name, o = {}) {
    let room = this.rooms.get(name);
    if (room) return room;
    if (o.since) this.seen.accept(name, o.since);
    room = new Room(this, name, o.presence !== false);
    this.rooms.set(name, room);
    if (this.state === 'online') this.#subscribe(room);
    return room;
  }

  /** Leave a room. */
  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.rooms.delete(name);
    this.seen.forget(name);
    for (const id of [room.subId, room.presenceSubId]) {
      if (!id) continue;
      this.subs.delete(id);
      this.#raw(encodeFrame('UNSUBSCRIBE', { id }));
    }
  }

  /**
   * Send to a room; resolves with the message id once the server has stored
   * it (its RECEIPT). The SEND carries an idempotency key (headers'
   * x-idempotency-key, or a random one); after a drop before the RECEIPT, or
   * ERROR "Message not stored" / "Service unavailable", it goes again with
   * that key once reconnected, and the cluster keeps one copy. Rejects on any
   * other ERROR (refused: nothing stored), when the client goes offline, or
   * after sendRetryMs without a RECEIPT (it may or may not be stored then).
   * While reconnecting, a send waits for the connection.
   */
  send(room, body, headers = {}) {
    if (this.state !== 'online' && this.state !== 'reconnecting' && this.state !== 'connecting')
      return Promise.reject(new Error(`not online (${this.state})`));
    const out = {
      headers: {
        ...headers, destination: `/topic/${room}`, 'content-type': headers['content-type'] || 'text/plain',
        'x-idempotency-key': headers['x-idempotency-key'] || newIdempotencyKey(),
      },
      body: String(body), done: false,
    };
    const p = new Promise((resolve, reject) => { out.resolve = resolve; out.reject = reject; });
    out.timer = setTimeout(() => this.#settle(out, new Error(
      `not confirmed within ${this.sendRetryMs} ms (sendRetryMs): it may or may not have been stored`)),
    this.sendRetryMs);
    this.outbox.add(out);
    if (this.state === 'online') this.#transmit(out);
    return p;
  }

  /** Put one send() on the wire (again), with a fresh receipt id and its key. */
  #transmit(out) {
    const receipt = `r${this.nextId++}`;
    this.receipts.set(receipt, {
      resolve: (id) => this.#settle(out, null, id),
      // An ERROR naming the SEND (it has details) refuses it, unless it may
      // have been stored; a drop (no details) leaves it for the reconnect.
      reject: (e) => { if ('details' in e && !SEND_RETRY_ERRORS.has(e.message)) this.#settle(out, e); },
    });
    this.#raw(encodeFrame('SEND', { ...out.headers, receipt }, out.body));
  }

  /** A send() is over: resolved with id, or rejected with err. Once. */
  #settle(out, err, id) {
    if (out.done) return;
    out.done = true;
    clearTimeout(out.timer);
    this.outbox.delete(out);
    if (err) out.reject(err);
    else out.resolve(id);
  }

  /**
   * A moderation frame for `room` (docs/protocol.md, "Moderation"): body is
   * {action, ...}; resolves on its RECEIPT. Room.redact, mute, unmute and
   * kick are the usual way in.
   */
  control(room, body) {
    return this.#sendReceipted({ destination: `/control/${room}`, 'content-type': 'application/json' },
      JSON.stringify(body));
  }

  /** A SEND that resolves on its RECEIPT, rejects on ERROR, a dropped connection, or when not online. */
  #sendReceipted(headers, body) {
    if (this.state !== 'online') return Promise.reject(new Error(`not online (${this.state})`));
    const receipt = `r${this.nextId++}`;
    const p = new Promise((resolve, reject) => this.receipts.set(receipt, { resolve, reject }));
    this.#raw(encodeFrame('SEND', { ...headers, receipt }, body));
    return p;
  }

  /**
   * The live online status of the caller's contacts (or of opts.users, an
   * explicit list the caller may watch): see contacts.js. Re-subscribed
   * after every reconnect with the same options, until its close().
   * @param {{users?: string[]}} [opts]
   * @returns {Contacts}
   */
  contacts(opts = {}) {
    const list = new Contacts(opts, {
      detach: (l) => {
        this.contactLists.delete(l);
        if (l.subId && this.subs.delete(l.subId)) this.#raw(encodeFrame('UNSUBSCRIBE', { id: l.subId }));
      },
      subscribe: (l) => { if (this.state === 'online') this.#subscribeContacts(l); },
    });
    this.contactLists.add(list);
    if (this.state === 'online') this.#subscribeContacts(list);
    return list;
  }

  #subscribeContacts(list) {
    const id = `c${this.nextId++}`;
    this.subs.set(id, { kind: 'status', list });
    list.subscribed(id);
    // The receipt tells a refused subscription (an ERROR naming it) from
    // one merely cut short by a dropped connection (no ERROR details).
    this.receipts.set(id, { resolve() {}, reject: (e) => { if ('details' in e) list.refused(e); } });
    this.#raw(encodeFrame('SUBSCRIBE', { ...list.headers(), id, receipt: id }));
  }

  /**
   * Appear offline to everyone (true) or not (false). Kept by the server
   * across sessions until changed; resolves on the server's RECEIPT.
   */
  setInvisible(invisible) {
    return this.#sendReceipted({ destination: '/status', 'content-type': 'application/json' },
      JSON.stringify({ invisible: Boolean(invisible) }));
  }

  /**
   * Earlier messages of a room over HTTP, oldest first.
   * @param {string} room
   * @param {{before?: string, after?: string, limit?: number}} [o]
   * @returns {Promise<{messages: object[], more: boolean, before?: string, after?: string}>}
   */
  async history(room, o = {}) {
    const q = new URLSearchParams();
    for (const k of ['limit', 'before', 'after']) if (o[k] !== undefined) q.set(k, String(o[k]));
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
    const url = `${this.httpBase}/api/rooms/${encodeURIComponent(room)}/messages${q.size ? '?' + q : ''}`;
    for (let attempt = 1; ; attempt++) {
      const r = await this.fetch(url, { headers });
      // A busy server (all its history reads taken: 503 with Retry-After)
      // is asked again after the time it names, a few times.
      const after = r.status === 503 ? Number(r.headers?.get?.('retry-after') ?? NaN) : NaN;
      if (after >= 0 && after <= 30 && attempt < HISTORY_TRIES) {
        await new Promise((res) => setTimeout(res, after * 1000 + Math.random() * 250));
        continue;
      }
      const j = await r.json();
      if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
      // A redaction event names the message it removed (that message is
      // in history as its tombstone, with `redacted`).
      for (const m of j.messages || []) if (m.headers?.['x-redacts'] !== undefined) m.redacts = m.headers['x-redacts'];
      return j;
    }
  }

  /** Close for good (no reconnect). */
  disconnect() {
    this.closing = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    for (const t of this.timers) clearInterval(t);   // intervals and timeouts alike
    this.timers = [];
    if (this.ws) {
      this.#raw(encodeFrame('DISCONNECT', {}));
      this.ws.close();
    } else {
      this.#offline(new Error('disconnected'));
    }
  }
}
