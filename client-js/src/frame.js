// frame.js — STOMP 1.2 frames for the browser and Node (pure: no I/O).
//
// A WebSocket message may carry several frames (Lectern packs every frame
// queued for a connection into one message) or a part of one (a large frame
// arrives fragmented). A FrameReader therefore takes text in any split and
// returns the whole frames it completes; heart-beats (bare EOLs) come back
// as {command: null}. Bodies are text: the reader honours content-length
// (counted in UTF-8 bytes, as the spec says) so a body may hold NULs.

const ESCAPES = { '\\n': '\n', '\\r': '\r', '\\c': ':', '\\\\': '\\' };

/** Undo STOMP 1.2 header escaping. */
export function unescapeHeader(s) {
  return s.replace(/\\[nrc\\]/g, (m) => ESCAPES[m]);
}

/** STOMP 1.2 header escaping. */
export function escapeHeader(s) {
  return String(s).replace(/[\\\r\n:]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\r' ? '\\r' : c === '\n' ? '\\n' : '\\c');
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/**
 * Encode one frame. Header values are escaped (except for CONNECT, as the
 * spec requires); content-length is added for a non-empty body.
 * @param {string} command
 * @param {Record<string, string|number>} [headers]
 * @param {string} [body]
 * @returns {string}
 */
export function encodeFrame(command, headers = {}, body = '') {
  const raw = command === 'CONNECT' || command === 'STOMP';
  let out = command + '\n';
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || v === null) continue;
    out += (raw ? k : escapeHeader(k)) + ':' + (raw ? String(v) : escapeHeader(v)) + '\n';
  }
  if (body.length && !('content-length' in headers))
    out += 'content-length:' + utf8.encode(body).length + '\n';
  return out + '\n' + body + '\0';
}

/**
 * @typedef {{command: string|null, headers: Record<string,string>, body: string}} Frame
 */

export class FrameReader {
  constructor({ maxFrame = 16 * 1024 * 1024 } = {}) {
    this.buf = '';
    this.maxFrame = maxFrame;
  }

  /**
   * Add received text; return the frames it completes, in order. Throws on
   * a malformed frame (the connection should be dropped).
   * @param {string} text
   * @returns {Frame[]}
   */
  push(text) {
    this.buf += text;
    const frames = [];
    for (;;) {
      const f = this.#next();
      if (!f) break;
      frames.push(f);
    }
    if (this.buf.length > this.maxFrame) throw new Error('STOMP frame too large');
    return frames;
  }

  #next() {
    const b = this.buf;
    let i = 0;
    // a CR at the very end may be the first half of a CRLF: wait for it
    while (i < b.length && (b[i] === '\n' || (b[i] === '\r' && i + 1 < b.length))) i++;
    if (i > 0) {
      this.buf = b.slice(i);
      return { command: null, headers: {}, body: '' };
    }
    const headEnd = b.search(/\r?\n\r?\n/);
    if (headEnd < 0) return null;
    const lines = b.slice(0, headEnd).split(/\r?\n/);
    const command = lines[0];
    const headers = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c <= 0) throw new Error(`malformed header line: ${line.slice(0, 40)}`);
      const k = unescapeHeader(line.slice(0, c));
      if (!(k in headers)) headers[k] = unescapeHeader(line.slice(c + 1));   // first wins
    }
    const sep = b.slice(headEnd).match(/^\r?\n\r?\n/)[0].length;
    const bodyStart = headEnd + sep;
    let bodyEnd;
    if (headers['content-length'] !== undefined) {
      const want = Number(headers['content-length']);
      if (!Number.isInteger(want) || want < 0) throw new Error('bad content-length');
      // content-length counts bytes: walk UTF-8 lengths over the text
      let bytes = 0, j = bodyStart;
      while (bytes < want && j < b.length) {
        const cp = b.codePointAt(j);
        bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        j += cp > 0xffff ? 2 : 1;
      }
      if (bytes < want || j >= b.length) return null;
      if (b[j] !== '\0') throw new Error('frame body longer than content-length');
      bodyEnd = j;
    } else {
      bodyEnd = b.indexOf('\0', bodyStart);
      if (bodyEnd < 0) return null;
    }
    this.buf = b.slice(bodyEnd + 1);
    return { command, headers, body: b.slice(bodyStart, bodyEnd) };
  }
}

/** Decode a binary WebSocket message to text (bodies are UTF-8). */
export function decodeBinary(data) {
  return utf8d.decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
}
