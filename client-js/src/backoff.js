// backoff.js — reconnect delays: exponential with full jitter.
//
// Attempt n (0-based) waits a uniformly random time in [0, min(cap, base *
// 2^n)] (AWS's "full jitter"): thousands of students whose server went away
// at the same moment do not come back at the same moment. After maxAttempts
// failures in a row, next() returns null (give up, go offline); reset()
// after a successful connection starts again from base.

export class Backoff {
  /**
   * @param {{base?: number, cap?: number, maxAttempts?: number, random?: () => number}} [o]
   *   base and cap in ms (default 500 and 30000); maxAttempts default
   *   Infinity; random for tests (default Math.random).
   */
  constructor({ base = 500, cap = 30000, maxAttempts = Infinity, random = Math.random } = {}) {
    if (!(base > 0) || !(cap >= base)) throw new RangeError('need 0 < base <= cap');
    this.base = base;
    this.cap = cap;
    this.maxAttempts = maxAttempts;
    this.random = random;
    this.attempt = 0;
  }

  /** The ceiling for the current attempt (without jitter). */
  ceiling() {
    return Math.min(this.cap, this.base * 2 ** Math.min(this.attempt, 52));
  }

  /** The next delay in ms, or null once maxAttempts are used up. */
  next() {
    if (this.attempt >= this.maxAttempts) return null;
    const d = Math.floor(this.random() * (this.ceiling() + 1));
    this.attempt++;
    return Math.min(d, this.cap);
  }

  reset() {
    this.attempt = 0;
  }
}
