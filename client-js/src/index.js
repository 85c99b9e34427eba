// @lectern/client — see README.md.
export { LecternClient, newIdempotencyKey, Room, tokenExpiry } from './client.js';
export { Contacts } from './contacts.js';
export { Emitter } from './emitter.js';
export { Backoff } from './backoff.js';
export { compareIds, parseId, Seen } from './ids.js';
export { encodeFrame, FrameReader } from './frame.js';
