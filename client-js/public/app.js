// app.js — the lecture-room page: pick a name and a room; recent history,
// live chat, who is present, a connection indicator, older messages when
// scrolled to the top, your messages marked delivered once the server
// confirms them. Instructor messages stand out.
import { LecternClient } from './lectern-client.js';

const $ = (s) => document.querySelector(s);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
let client, room, role, oldest = null, more = true, loadingOlder = false;
const shown = new Set();

function messageItem(m) {
  const li = el('li', m.role === 'instructor' ? 'msg instructor' : 'msg');
  li.dataset.id = m.id || '';
  li.append(el('span', 'who', m.senderName || m.sender_name || m.sender || '?'), el('span', 'body', m.body ?? ''));
  return li;
}

function addLive(m) {
  if (m.id && shown.has(m.id)) return;
  if (m.id) shown.add(m.id);
  const mine = m.headers?.['x-client-ref'] && $(`#log li[data-ref="${m.headers['x-client-ref']}"]`);
  if (mine) {                          // our own message: it is that line
    mine.dataset.id = m.id;
    return;
  }
  const log = $('#log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 5;
  log.append(messageItem(m));
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function historyItem(h) {
  return messageItem({ id: h.id, body: h.body ?? '[binary]', sender: h.sender, senderName: h.sender_name,
    role: h.sender_role });
}

async function loadOlder() {
  if (!more || loadingOlder || !oldest) return;
  loadingOlder = true;
  try {
    const page = await room.history({ limit: 50, before: oldest });
    const log = $('#log');
    const h = log.scrollHeight;
    const items = page.messages.filter((m) => !shown.has(m.id));
    for (const m of items) shown.add(m.id);
    log.prepend(...items.map(historyItem));
    log.scrollTop += log.scrollHeight - h;
    if (page.messages.length) oldest = page.messages[0].id;
    more = page.more;
  } finally {
    loadingOlder = false;
  }
}

function showState(s) {
  const names = { connecting: 'connecting…', online: 'online', reconnecting: 'reconnecting…', offline: 'offline',
    idle: 'not connected', denied: 'access refused' };
  if (s === 'offline' && client?.denied) s = 'denied';   // a refused token or room: no retry
  $('#state').dataset.state = s;
  $('#state').textContent = names[s] || s;
}

function showPeople(p) {
  $('#count').textContent = String(p.count);
  $('#people').replaceChildren(...[...p.members.values()]
    .sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id))
    .map((m) => el('li', null, m.name || m.id)));
}

$('#join').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target;
  const name = f.name.value.trim();
  const roomName = f.room.value;
  role = f.instructor.checked ? 'instructor' : 'student';
  const login = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
  // ?token=<JWT> (scripts/mint-token --url): the server takes who we are
  // from it; the name and role shown for our own lines are read from it too.
  const token = new URLSearchParams(location.search).get('token') || undefined;
  if (token) {
    try {
      const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      role = claims.role || 'student';
    } catch { /* the server will refuse it */ }
  }
  client = new LecternClient(wsUrl, { login, name, role, token });
  window.lectern = client;             // for the browser tests and the curious
  client.on('state', showState);
  $('#room-title').textContent = roomName;
  $('#join').hidden = true;
  $('#room').hidden = false;
  // Recent history first; the live subscription starts right after its
  // newest message, so nothing is missed or shown twice.
  let since;
  try {
    const page = await client.history(roomName, { limit: 50 });
    for (const m of page.messages) shown.add(m.id);
    $('#log').append(...page.messages.map(historyItem));
    $('#log').scrollTop = $('#log').scrollHeight;
    oldest = page.messages[0]?.id ?? null;
    more = page.more;
    since = page.messages.at(-1)?.id;
  } catch {
    more = false;                      // no history service: live only
  }
  room = client.join(roomName, { since });
  room.on('message', addLive);
  room.on('presence', showPeople);
  await client.connect();
  $('#say input').focus();
});

$('#log').addEventListener('scroll', () => {
  if ($('#log').scrollTop < 40) loadOlder();
});

let refs = 0;
$('#say').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = e.target.text;
  const text = input.value;
  if (!text) return;
  input.value = '';
  const ref = `${Date.now().toString(36)}-${refs++}`;
  const li = messageItem({ body: text, senderName: client.o.name, role });
  li.classList.add('mine');
  li.dataset.ref = ref;
  const status = el('span', 'status', '…');
  li.append(status);
  $('#log').append(li);
  $('#log').scrollTop = $('#log').scrollHeight;
  try {
    await room.send(text, { 'x-client-ref': ref });
    li.classList.add('delivered');
    status.textContent = '✓ delivered';
  } catch (err) {
    status.textContent = `not sent (${err.message})`;
  }
});
