// ids.js — message ids and exactly-once bookkeeping.
//
// Lectern's message ids are "<ms>-<n>" (a room log entry id); within a room
// they grow with the room's order. One id serves live delivery, history and
// resume, so a client needs only, per room, the greatest id it has handed to
// the application: a message at or below it is a duplicate (a replay after
// a reconnect, a history page overlapping live messages), and after a
// reconnect the subscription resumes from it (SUBSCRIBE x-since).

/** Parse "<ms>-<n>" into [ms, n] BigInts, or null. */
export function parseId(id) {
  const m = /^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$/.exec(String(id));
  return m ? [BigInt(m[1]), BigInt(m[2])] : null;
}

/** Compare two ids: negative, 0 or positive. Throws on a malformed id. */
export function compareIds(a, b) {
  const x = parseId(a), y = parseId(b);
  if (!x || !y) throw new TypeError(`not a message id: ${!x ? a : b}`);
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
  return 0;
}

/**
 * Per-room high-water marks: what was delivered to the application.
 */
export class Seen {
  constructor() {
    /** @type {Map<string, string>} */
    this.last = new Map();
  }

  /** The greatest id delivered in room, or undefined. */
  lastId(room) {
    return this.last.get(room);
  }

  /**
   * Should a message with this id be delivered? Records it if so. Messages
   * without a valid id are always delivered (a foreign STOMP server).
   */
  accept(room, id) {
    if (!parseId(id)) return true;
    const prev = this.last.get(room);
    if (prev !== undefined && compareIds(id, prev) <= 0) return false;
    this.last.set(room, id);
    return true;
  }

  /** Forget a room (left for good). */
  forget(room) {
    this.last.delete(room);
  }
}
