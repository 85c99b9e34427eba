// throwaway measurement (not committed)
import { performance } from 'node:perf_hooks';
import { startCluster, startWorker, stompClient, expectReceipt } from './helpers.mjs';
const KEY = 'measure-key-0123456789abcdef';
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2); };
const c = await startCluster({ n: 2, sets: { 'api.keys': KEY } });
const w = await startWorker({ cluster: c.cluster });
const [a, b] = c.servers;
const room = `m-${Date.now()}`;
const post = (port, body, extra = {}) => fetch(`http://127.0.0.1:${port}/api/rooms/${room}/messages`, {
  method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json', ...extra }, body: JSON.stringify(body) }).then((r) => r.json());
const { client } = await stompClient(b.wsUrl, { connectHeaders: { login: 'l' } });
client.subscribe(`/topic/${room}`, () => {});
const t = [], ids = [];
for (let i = 0; i < 300; i++) { const t0 = performance.now(); const r = await post(a.port, { body: `m${i}` }, { 'idempotency-key': `k-${i}` }); t.push(performance.now() - t0); ids.push(r.id); }
const rep = [];
for (let i = 0; i < 300; i++) { const t0 = performance.now(); const r = await post(b.port, { body: `m${i}` }, { 'idempotency-key': `k-${i}` }); rep.push(performance.now() - t0); if (r.id !== ids[i] || !r.duplicate) throw new Error('repeat'); }
const red = [];
for (let i = 0; i < 200; i++) { const t0 = performance.now(); const r = await fetch(`http://127.0.0.1:${a.port}/api/rooms/${room}/messages/${ids[i]}`, { method: 'DELETE', headers: { 'x-api-key': KEY } }); await r.json(); red.push(performance.now() - t0); }
const kick = [];
for (let i = 0; i < 200; i++) { const t0 = performance.now(); const r = await fetch(`http://127.0.0.1:${a.port}/api/rooms/${room}/mute`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body: JSON.stringify({ user: `u${i}`, duration_s: 60 }) }); await r.json(); kick.push(performance.now() - t0); }
const sub = [];
for (let i = 0; i < 200; i++) { const id = `s${i}`; const t0 = performance.now(); const p = expectReceipt(client, id); const s = client.subscribe(`/topic/${room}-${i}`, () => {}, { receipt: id }); await p; sub.push(performance.now() - t0); s.unsubscribe(); }
console.log(JSON.stringify({ publish: { p50: q(t, 0.5), p99: q(t, 0.99) }, repeat: { p50: q(rep, 0.5), p99: q(rep, 0.99) }, redact: { p50: q(red, 0.5), p99: q(red, 0.99) }, mute: { p50: q(kick, 0.5), p99: q(kick, 0.99) }, subscribe_receipt: { p50: q(sub, 0.5), p99: q(sub, 0.99) } }));
await client.deactivate(); await w.stop(); await c.stop();
process.exit(0);
