// The WebSocket double the client tests play the server with: each socket
// the client opens records the STOMP frames it sends (parsed), opens on the
// next microtask, and lets the test deliver frames to the client.
// It lives outside test/ because `node --test test/` runs every module
// under test/ as a test file, and this one holds no test.
import { FrameReader, encodeFrame } from '../src/frame.js';

/** A WebSocket double: records sent frames; the test plays the server.
 * Returns the class to hand the client as `WebSocket` and the sockets it
 * has opened so far, oldest first. */
export function fakeServer() {
  const sockets = [];
  class FakeWS {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.reader = new FrameReader();
      sockets.push(this);
      queueMicrotask(() => { this.readyState = 1; this.onopen?.(); });
    }
    send(text) { this.sent.push(...this.reader.push(text).filter((f) => f.command)); }
    close() { this.readyState = 3; queueMicrotask(() => this.onclose?.()); }
    deliver(command, headers, body = '') { this.onmessage?.({ data: encodeFrame(command, headers, body) }); }
  }
  return { FakeWS, sockets };
}
