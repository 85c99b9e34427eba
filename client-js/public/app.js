// app.js — the lecture-room page: pick a name and a room; recent history,
// live chat, who is present, a connection indicator, older messages when
// scrolled to the top, your messages marked delivered once the server
// confirms them. Instructor messages stand out. A friends panel shows the
// user's contacts with a live dot (online first, then by name; "last seen"
// for the others) and an "Appear offline" switch. A redacted message shows
// as "message removed", live (a 'redact' event) and in history (its
// tombstone); the redaction events themselves are not lines of the chat.
// Instructors get moderation buttons on others' lines and on the people
// present (moderation.js).
import { LecternClient } from './lectern-client.js';
import { canModerate, messageButtons, personButtons } from './moderation.js';

const $ = (s) => document.querySelector(s);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
let client, room, role, friends, oldest = null, more = true, loadingOlder = false;
const shown = new Set();

const REMOVED = 'message removed';
/** What the moderation buttons act on (read when clicked: history lines are
 * drawn before the room is joined). */
const mod = { room: null, self: null };

function messageItem(m) {
  const li = el('li', m.role === 'instructor' ? 'msg instructor' : 'msg');
  li.dataset.id = m.id || '';
  li.append(el('span', 'who', m.senderName || m.sender_name || m.sender || '?'),
    el('span', 'body', m.redacted ? REMOVED : m.body ?? ''));
  if (m.redacted) li.classList.add('removed');
  if (canModerate(role)) messageButtons(li, m, mod);
  return li;
}

/** A message was redacted: its line (if shown) says so instead. */
function markRemoved(r) {
  const li = [...$('#log').children].find((x) => x.dataset.id === r.id);
  if (!li || li.classList.contains('removed')) return;
  li.classList.add('removed');
  li.querySelector('.body').textContent = REMOVED;
  li.querySelector('.status')?.remove();
  li.querySelector('.mods')?.remove();
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
    role: h.sender_role, redacted: h.redacted });
}

/** A history page's chat lines: its redaction events are not (the messages they
 * removed are in history as tombstones already). */
const chatLines = (messages) => messages.filter((m) => m.redacts === undefined);

async function loadOlder() {
  if (!more || loadingOlder || !oldest) return;
  loadingOlder = true;
  try {
    const page = await room.history({ limit: 50, before: oldest });
    const log = $('#log');
    const h = log.scrollHeight;
    const items = chatLines(page.messages).filter((m) => !shown.has(m.id));
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
    .map((m) => {
      const li = el('li', null);
      li.dataset.user = m.id;
      li.append(el('span', 'name', m.name || m.id));
      if (canModerate(role)) personButtons(li, m, mod);
      return li;
    }));
}

/** "last seen …" for a time in ms (null: never seen). */
function lastSeen(seen) {
  if (seen === null || seen === undefined) return '';
  const s = Math.max(0, Math.round((Date.now() - seen) / 1000));
  if (s < 60) return 'last seen just now';
  if (s < 3600) return `last seen ${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `last seen ${Math.floor(s / 3600)} h ago`;
  return `last seen ${new Date(seen).toLocaleDateString()}`;
}

function showFriends() {
  const all = [...friends.list()].sort(([a, x], [b, y]) => (y.online - x.online) || a.localeCompare(b));
  $('#friends-online').textContent = String(all.filter(([, c]) => c.online).length);
  if (!all.length) {
    $('#friends').replaceChildren(el('li', 'empty', 'No contacts'));
    return;
  }
  $('#friends').replaceChildren(...all.map(([user, c]) => {
    const li = el('li');
    li.dataset.user = user;
    li.dataset.online = String(c.online);
    li.title = c.online ? 'online' : 'offline';
    li.append(el('span', 'dot'), el('span', 'name', user));
    if (!c.online && c.seen !== null) li.append(el('span', 'seen', lastSeen(c.seen)));
    return li;
  }));
}

/** Redraw the panel once per burst of events (a snapshot's diff emits several). */
let friendsDrawn = true;
function friendsChanged() {
  if (!friendsDrawn) return;
  friendsDrawn = false;
  queueMicrotask(() => { friendsDrawn = true; showFriends(); });
}

/** Where the page remembers the invisible switch (the server keeps the flag itself). */
const invisibleKey = (user) => `lectern-invisible:${user}`;

function startFriends(user) {
  // ?friends=bob,carol watches those users (x-users): what a development
  // cluster without stored lists or tokens (make run) can show. Otherwise
  // the user's own contacts (a stored list, or the token's claim).
  const named = new URLSearchParams(location.search).get('friends');
  friends = client.contacts(named ? { users: named.split(',').filter(Boolean) } : undefined);
  window.lecternFriends = friends;     // for the browser tests
  friends.on('snapshot', friendsChanged);
  friends.on('change', friendsChanged);
  friends.on('error', () => {
    if (friends.closed) $('#friends').replaceChildren(el('li', 'empty', 'Friends unavailable'));
  });
  setInterval(() => { if (friends.list().size) showFriends(); }, 30000);   // "last seen" ages
  const box = $('#invisible');
  box.checked = localStorage.getItem(invisibleKey(user)) === '1';
  client.on('state', (st) => { box.disabled = st !== 'online' || box.dataset.busy === '1'; });
  box.addEventListener('change', async () => {
    const want = box.checked;
    box.dataset.busy = '1';
    box.disabled = true;
    try {
      await client.setInvisible(want);
      localStorage.setItem(invisibleKey(user), want ? '1' : '0');
    } catch {
      box.checked = !want;               // not confirmed: show what the server has
    } finally {
      box.dataset.busy = '';
      box.disabled = client.state !== 'online';
    }
  });
}

$('#join').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target;
  const name = f.name.value.trim();
  const roomName = f.room.value;
  role = f.instructor.checked ? 'instructor' : 'student';
  // ?user=alice: a fixed login (auth.mode=none or insecure-dev), so that
  // others can name this user in their ?friends=; otherwise a fresh one.
  const login = new URLSearchParams(location.search).get('user') ||
    `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
  // ?token=<JWT> (scripts/mint-token --url): the server takes who we are
  // from it; the name and role shown for our own lines are read from it too.
  const token = new URLSearchParams(location.search).get('token') || undefined;
  let user = login;
  if (token) {
    try {
      const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      role = claims.role || 'student';
      user = claims.sub || login;
    } catch { /* the server will refuse it */ }
  }
  mod.self = user;
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
    $('#log').append(...chatLines(page.messages).map(historyItem));
    $('#log').scrollTop = $('#log').scrollHeight;
    oldest = page.messages[0]?.id ?? null;
    more = page.more;
    since = page.messages.at(-1)?.id;
  } catch {
    more = false;                      // no history service: live only
  }
  room = client.join(roomName, { since });
  mod.room = room;
  room.on('message', addLive);
  room.on('redact', markRemoved);
  const removed = (r) => {
    const what = r.type === 'banned' ? 'banned from' : 'removed from';
    $('#log').append(el('li', 'sys removed-notice', `You were ${what} this room by ${r.by}${r.reason ? `: ${r.reason}` : ''}.`));
    $('#say input').disabled = true;
  };
  room.on('kicked', removed);
  room.on('banned', removed);
  room.on('presence', showPeople);
  startFriends(user);
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
