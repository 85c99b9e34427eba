// emitter.js — a tiny event emitter that works in browsers and Node alike.
//
// A handler that throws does not stop the others: its error is rethrown on
// a microtask, where it shows up as an uncaught error instead of vanishing.

export class Emitter {
  constructor() { this.handlers = new Map(); }
  /** @param {string} ev @param {(arg: any) => void} fn @returns {() => void} removes the handler */
  on(ev, fn) {
    if (!this.handlers.has(ev)) this.handlers.set(ev, new Set());
    this.handlers.get(ev).add(fn);
    return () => this.off(ev, fn);
  }
  off(ev, fn) { this.handlers.get(ev)?.delete(fn); }
  emit(ev, arg) {
    for (const fn of [...(this.handlers.get(ev) || [])]) {
      try { fn(arg); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }
}
