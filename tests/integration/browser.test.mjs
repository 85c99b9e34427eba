// The lecture-room page in headless Chromium (Debian chromium, driven by
// playwright-core) through haproxy in front of two servers: two students
// chat, presence shows both, a late joiner sees the history, and when the
// server one page is on is killed, the page reconnects to the other and
// shows every message exactly once. The friends panel follows contacts
// coming and going on another server, and "Appear offline" makes the
// viewer offline on a friend's page. Screenshots of the page are kept in
// tests/artifacts/ (not committed).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { metric, repoRoot, sleep, startCluster, startHaproxy, startWorker, stompClient, waitFor } from './helpers.mjs';

const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = path.join(repoRoot, 'tests', 'artifacts');

async function joinRoom(browser, url, name, room, instructor = false) {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#join input[name=name]', name);
  await page.fill('#join input[name=room]', room);
  if (instructor) await page.check('#join input[name=instructor]');
  await page.click('#join button');
  await page.waitForSelector('#state[data-state=online]', { timeout: 15000 });
  return page;
}

const bodies = (page) => page.$$eval('#log li .body', (els) => els.map((e) => e.textContent));

/** An HS256 JWT for key k1 (claims as scripts/mint-token writes them, plus any, e.g. contacts). */
function signJwt(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'k1' })}.${b64({ role: 'student', iat: now, exp: now + 3600, ...claims })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The friends panel: [user, online ('true'/'false'), last-seen text] per line, in its order. */
const friendsOf = (page) => page.$$eval('#friends li[data-user]', (l) => l.map((e) =>
  [e.dataset.user, e.dataset.online, e.querySelector('.seen')?.textContent ?? '']));
const dot = (page, user, online) =>
  page.waitForSelector(`#friends li[data-user="${user}"][data-online="${online}"]`, { timeout: 10000 });

async function say(page, text) {
  await page.fill('#say input[name=text]', text);
  await page.click('#say button');
}

describe('lecture-room page in Chromium', () => {
  test('two pages chat through haproxy, presence, history for a late joiner, exactly once across a server kill', async () => {
    assert.ok(existsSync(browserPath), `Chromium not found at ${browserPath} (make deps installs it)`);
    const c = await startCluster({ n: 2, sets: { 'http.static_dir': path.join(repoRoot, 'client-js', 'public') } });
    const worker = await startWorker({ cluster: c.cluster });   // the history schema, and storage
    const lb = await startHaproxy(c.servers.map((s) => s.port));
    const browser = await chromium.launch({
      executablePath: browserPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const url = `http://127.0.0.1:${lb.port}/`;
    const room = `e2e-${Date.now().toString(36)}`;
    try {
      const ada = await joinRoom(browser, url, 'Ada', room, true);
      // the server Ada's page is on: the only one with a connection now
      const conns = await Promise.all(c.servers.map((s) => metric(s.port, 'lectern_connections')));
      assert.deepEqual(conns.slice().sort(), [0, 1]);
      const adaServer = conns.indexOf(1);
      await ada.evaluate(() => {
        window.states = [];
        window.lectern.on('state', (st) => window.states.push(st));
      });
      const bob = await joinRoom(browser, url, 'Bob', room);
      await waitFor(async () => (await ada.textContent('#count')) === '2' &&
        (await bob.textContent('#count')) === '2', { what: 'presence 2 on both pages' });
      assert.deepEqual((await bob.$$eval('#people li', (l) => l.map((e) => e.textContent))).sort(), ['Ada', 'Bob']);

      await say(ada, 'Welcome to physics');
      await say(bob, 'Hello!');
      await waitFor(async () => (await bodies(bob)).includes('Welcome to physics') &&
        (await bodies(ada)).includes('Hello!'), { what: 'both messages on both pages' });
      await ada.waitForSelector('#log li.mine.delivered', { timeout: 5000 });
      assert.equal(await bob.$$eval('#log li.instructor', (l) => l.length), 1, 'the instructor message stands out');

      const cleo = await joinRoom(browser, url, 'Cleo', room);
      await waitFor(async () => {
        const b = await bodies(cleo);
        return b.includes('Welcome to physics') && b.includes('Hello!');
      }, { what: 'the late joiner sees the history' });
      await waitFor(async () => (await ada.textContent('#count')) === '3', { what: 'presence 3' });

      // Kill the server Ada's page is on; Bob keeps talking meanwhile.
      c.servers[adaServer].proc.kill('SIGKILL');
      const sent = [];
      const other = adaServer === 0 ? 1 : 0;
      const talker = (await metric(c.servers[other].port, 'lectern_connections')) > 0 ? [bob, cleo] : [bob];
      for (let i = 0; i < 10; i++) {
        const p = talker[i % talker.length];
        if ((await p.getAttribute('#state', 'data-state')) !== 'online') continue;
        await say(p, `during ${i}`);
        sent.push(`during ${i}`);
        await sleep(100); // spreads the talk over the outage
      }
      await waitFor(async () => (await ada.evaluate(() => window.states)).includes('reconnecting'),
        { what: "Ada's page notices the loss" });
      await ada.waitForSelector('#state[data-state=online]', { timeout: 20000 });
      assert.deepEqual(await ada.evaluate(() => window.states), ['reconnecting', 'online'],
        'the indicator showed the reconnect');
      for (let i = 0; i < 3; i++) {
        await say(ada, `after ${i}`);
        sent.push(`after ${i}`);
      }
      await waitFor(async () => {
        const b = await bodies(ada);
        return sent.every((t) => b.includes(t));
      }, { timeout: 20000, what: 'Ada sees everything said while she was away' });
      // One more line, after all of them: a duplicate would show before it.
      await say(ada, 'last');
      await waitFor(async () => (await bodies(ada)).includes('last'), { what: 'the last line on Ada\'s page' });
      const final = await bodies(ada);
      for (const t of ['Welcome to physics', 'Hello!', ...sent, 'last'])
        assert.equal(final.filter((x) => x === t).length, 1, `"${t}" exactly once on Ada's page`);
      mkdirSync(artifacts, { recursive: true });
      await ada.screenshot({ path: path.join(artifacts, 'lecture-room.png'), fullPage: true });
    } finally {
      await browser.close();
      await lb.stop();
      await c.stop();
      await worker.stop();
    }
  });

  test('with auth.mode=jwt the page takes its token from ?token=: the token\'s name and role are shown, history loads with it, a bad token stays offline', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-page-'));
    const keys = path.join(dir, 'keys');
    writeFileSync(keys, 'k1 HS256 page-test-secret-0123456789abcdef012345\n');
    const mint = (...a) => execFileSync(path.join(repoRoot, 'scripts', 'mint-token'), ['--keys', keys, ...a]).toString().trim();
    const room = `jwt-${Date.now().toString(36)}`;
    const s = (await startCluster({ n: 1, sets: {
      'http.static_dir': path.join(repoRoot, 'client-js', 'public'), 'auth.mode': 'jwt', 'auth.keys': keys,
    } })).servers[0];
    const worker = await startWorker({ cluster: s.cluster });
    const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const url = (tok) => `http://127.0.0.1:${s.port}/?token=${tok}`;
      // The instructor, by token: her lines are highlighted on the student's page.
      const prof = await joinRoom(browser, url(mint('--sub', 'prof', '--name', 'Prof', '--role', 'instructor', '--rooms', room)), 'ignored', room);
      await say(prof, 'Quiz tomorrow');
      const stu = await joinRoom(browser, url(mint('--sub', 'stu', '--name', 'Stu', '--rooms', room)), 'Mallory', room);
      await waitFor(async () => (await bodies(stu)).includes('Quiz tomorrow'), { what: 'history with the token' });
      assert.deepEqual(await stu.$$eval('#log li.instructor .who', (l) => l.map((e) => e.textContent)), ['Prof']);
      await say(stu, 'ok');
      await waitFor(async () => (await bodies(prof)).includes('ok'), { what: 'the student\'s line' });
      assert.ok((await prof.$$eval('#log li .who', (l) => l.map((e) => e.textContent))).includes('Stu'),
        'the name comes from the token, not the form');
      // A token for another room: the page never gets online.
      const page = await browser.newPage();
      await page.goto(url(mint('--sub', 'eve', '--rooms', 'elsewhere')));
      await page.fill('#join input[name=name]', 'Eve');
      await page.fill('#join input[name=room]', room);
      await page.click('#join button');
      await page.waitForSelector('#state[data-state=denied]', { timeout: 10000 });
      assert.ok(!(await bodies(page)).includes('Quiz tomorrow'), 'no history without permission');
    } finally {
      await browser.close();
      await worker.stop();
      await s.stop();
    }
  });

  test('friends panel: dots follow contacts across servers, online first then by name, last seen, "Appear offline" shows the viewer offline to a friend, "No contacts" for a user without any', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-friends-'));
    const keys = path.join(dir, 'keys');
    const secret = 'friends-test-secret-0123456789abcdef0123456';
    writeFileSync(keys, `k1 HS256 ${secret}\n`);
    const room = `friends-${Date.now().toString(36)}`;
    // Contacts come from the token's claim (no stored lists in this test).
    const token = (sub, contacts) => signJwt(secret, { sub, name: sub, rooms: [room], ...(contacts ? { contacts } : {}) });
    const c = await startCluster({ n: 2, sets: {
      'http.static_dir': path.join(repoRoot, 'client-js', 'public'), 'auth.mode': 'jwt', 'auth.keys': keys,
    } });
    const worker = await startWorker({ cluster: c.cluster });   // the schema the contact lists live in
    const [s1, s2] = c.servers;
    const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox', '--disable-gpu'] });
    const url = (s, tok) => `http://127.0.0.1:${s.port}/?token=${tok}`;
    let cleo = null;
    try {
      // Ada, on server 1, watches bob, cleo and dan; none of them is online.
      const ada = await joinRoom(browser, url(s1, token('ada', ['dan', 'cleo', 'bob'])), 'Ada', room);
      await waitFor(async () => (await friendsOf(ada)).length === 3, { what: "Ada's snapshot in the panel" });
      assert.deepEqual(await friendsOf(ada), [['bob', 'false', ''], ['cleo', 'false', ''], ['dan', 'false', '']],
        'all offline, by name, never seen');
      assert.equal(await ada.textContent('#friends-online'), '0');

      // Cleo comes online on the other server (a plain STOMP client: any connection counts).
      ({ client: cleo } = await stompClient(s2.wsUrl, { connectHeaders: { passcode: token('cleo', []) } }));
      await dot(ada, 'cleo', 'true');
      assert.deepEqual((await friendsOf(ada)).map(([u, on]) => `${u}:${on}`), ['cleo:true', 'bob:false', 'dan:false'],
        'online first');

      // Bob opens the page on server 2: both see each other online.
      const bob = await joinRoom(browser, url(s2, token('bob', ['ada'])), 'Bob', room);
      await dot(ada, 'bob', 'true');
      await dot(bob, 'ada', 'true');
      assert.deepEqual((await friendsOf(ada)).map(([u, on]) => `${u}:${on}`), ['bob:true', 'cleo:true', 'dan:false']);
      assert.equal(await ada.textContent('#friends-online'), '2');

      // Cleo leaves: her dot goes grey with a last-seen time.
      await cleo.deactivate();
      cleo = null;
      await dot(ada, 'cleo', 'false');
      assert.deepEqual(await friendsOf(ada), [['bob', 'true', ''], ['cleo', 'false', 'last seen just now'], ['dan', 'false', '']]);

      // Ada appears offline: Bob's page shows her offline, while her own
      // page stays connected; switched back, she is online for Bob again.
      await ada.check('#invisible');
      await ada.waitForSelector('#invisible:checked:enabled', { timeout: 10000 });   // the server confirmed it
      await dot(bob, 'ada', 'false');
      assert.equal(await ada.getAttribute('#state', 'data-state'), 'online');
      mkdirSync(artifacts, { recursive: true });
      await ada.screenshot({ path: path.join(artifacts, 'friends-panel.png'), fullPage: true });
      await ada.uncheck('#invisible');
      await ada.waitForSelector('#invisible:not(:checked):enabled', { timeout: 10000 });
      await dot(bob, 'ada', 'true');

      // Bob closes his page: Ada sees him go.
      await bob.close();
      await dot(ada, 'bob', 'false');

      // Eve has no contacts at all: an empty panel that says so, and the room works.
      const eve = await joinRoom(browser, url(s1, token('eve')), 'Eve', room);
      await eve.waitForSelector('#friends li.empty', { timeout: 10000 });
      assert.equal(await eve.textContent('#friends'), 'No contacts');
      assert.equal(await eve.textContent('#friends-online'), '0');
      await say(eve, 'anyone?');
      await waitFor(async () => (await bodies(ada)).includes('anyone?'), { what: "Eve's line on Ada's page" });
    } finally {
      if (cleo) await cleo.deactivate();
      await browser.close();
      await worker.stop();
      await c.stop();
    }
  });
  test('moderation buttons: an instructor removes a student\'s line and mutes and kicks her from the page; students get no buttons', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-mod-page-'));
    const keys = path.join(dir, 'keys');
    const secret = 'moderation-page-secret-0123456789abcdef01234';
    writeFileSync(keys, `k1 HS256 ${secret}\n`);
    const room = `mod-${Date.now().toString(36)}`;
    const token = (sub, role) => signJwt(secret, { sub, name: sub, role, rooms: [room] });
    const c = await startCluster({ n: 2, sets: {
      'http.static_dir': path.join(repoRoot, 'client-js', 'public'), 'auth.mode': 'jwt', 'auth.keys': keys,
    } });
    const worker = await startWorker({ cluster: c.cluster });
    const [s1, s2] = c.servers;
    const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox', '--disable-gpu'] });
    const url = (s, tok) => `http://127.0.0.1:${s.port}/?token=${tok}`;
    const line = (page, text) => `#log li:has(.body:text-is("${text}"))`;
    try {
      const prof = await joinRoom(browser, url(s1, token('prof', 'instructor')), 'Prof', room);
      const stu = await joinRoom(browser, url(s2, token('stu', 'student')), 'Stu', room);
      await waitFor(async () => (await prof.textContent('#count')) === '2', { what: 'both present' });

      await say(stu, 'a rude remark');
      await say(stu, 'a fine question');
      await prof.waitForSelector(`${line(prof, 'a fine question')} .mods button.remove`, { timeout: 10000 });
      assert.equal(await stu.$$eval('.mods', (l) => l.length), 0, 'a student has no moderation buttons');
      assert.equal(await prof.$$eval('#people li[data-user=prof] .mods', (l) => l.length), 0, 'none for oneself');

      // Remove: the line says "message removed" on both pages, live, and in a late joiner's history.
      await prof.click(`${line(prof, 'a rude remark')} button.remove`);
      for (const p of [prof, stu])
        await p.waitForSelector('#log li.removed .body:text-is("message removed")', { timeout: 10000 });
      assert.deepEqual(await bodies(stu), ['message removed', 'a fine question']);
      const late = await joinRoom(browser, url(s1, token('late', 'student')), 'Late', room);
      await waitFor(async () => (await bodies(late)).length === 2, { what: "the late joiner's history" });
      assert.deepEqual(await bodies(late), ['message removed', 'a fine question'], 'the tombstone, never the body');

      // Mute from the people list: her next line is not sent, and nobody gets it.
      await prof.click('#people li[data-user=stu] button.mute');
      await prof.waitForSelector('#people li[data-user=stu] button.mute.done', { timeout: 10000 });
      await say(stu, 'can I still talk?');
      await stu.waitForSelector(`${line(stu, 'can I still talk?')} .status:text-matches("not sent")`, { timeout: 10000 });
      await sleep(300);
      assert.ok(!(await bodies(prof)).includes('can I still talk?'), 'a muted line reached the room');

      // Kick: her page says she was removed, and she no longer receives the room.
      await prof.click('#people li[data-user=stu] button.kick');
      await stu.waitForSelector('#log li.removed-notice', { timeout: 10000 });
      assert.match(await stu.textContent('#log li.removed-notice'), /removed from this room by prof/);
      await say(prof, 'after the kick');
      await waitFor(async () => (await bodies(late)).includes('after the kick'), { what: 'the room goes on' });
      assert.ok(!(await bodies(stu)).includes('after the kick'));
      mkdirSync(artifacts, { recursive: true });
      await prof.screenshot({ path: path.join(artifacts, 'moderation.png'), fullPage: true });
    } finally {
      await browser.close();
      await worker.stop();
      await c.stop();
    }
  });
});
