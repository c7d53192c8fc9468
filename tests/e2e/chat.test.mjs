// The chat page in Chromium (playwright-core driving Debian's /usr/bin/chromium) against the real
// server. Screenshots go to $ROOMCAST_TEST_LOGS/screenshots (default build/test-logs/screenshots).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import helpers from '../integration/node/roomcast.js';
import { screenshot, useBrowser } from './browser.mjs';

const { ChatClient, RoomcastServer } = helpers;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 15000;
// Backoff tops out at 10 s (roomcast.js DEFAULT_RECONNECT), so a restart is seen within ~12 s.
const RECONNECT_WAIT_MS = 30000;
const XSS = '<img src=x onerror=alert(1)>';

const browser = useBrowser();

// Starts a server (with `serverArgs`) and returns helpers bound to it; everything is closed
// after the test.
async function setup(t, name, serverArgs = []) {
  const server = await RoomcastServer.start(`e2e-${name}`, serverArgs);
  const contexts = [];
  const observers = [];
  t.after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    for (const o of observers) o.ws.terminate();
    await server.stopCleanly();
  });

  // One user = one browser context (its own storage), with a recorder of dialogs, errors and
  // WebSocket attempts. Waits for the connection unless `waitOpen` is false.
  async function openPage(label, viewport = { width: 1100, height: 760 }, { waitOpen = true } = {}) {
    const context = await browser().newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.dialogs = [];
    page.errors = [];
    page.on('dialog', (dialog) => {
      page.dialogs.push(dialog.message());
      dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (error) => page.errors.push(error.message));
    page.sockets = [];
    page.userIds = [];  // of each connection, from its connection_established
    page.on('websocket', (ws) => {
      page.sockets.push(ws.url());
      ws.on('framereceived', ({ payload }) => {
        if (typeof payload !== 'string' || !payload.includes('"connection_established"')) return;
        const msg = JSON.parse(payload);
        if (msg.type === 'connection_established') page.userIds.push(msg.userId);
      });
    });
    await page.goto(`${server.httpUrl}/`);
    if (waitOpen) await page.locator('#status[data-state="open"]').waitFor();
    page.label = label;
    return page;
  }

  async function observer(room, username) {
    const o = await ChatClient.connect(server);
    observers.push(o);
    await o.join(room, username);
    return o;
  }

  return { server, openPage, observer };
}

// Joins room from the join form (opening it first: it collapses once a room is joined).
async function join(page, username, room) {
  if (await page.locator('#join').isHidden()) await page.click('#join-toggle');
  if (!(await page.locator('#username').evaluate((input) => input.readOnly))) {
    await page.fill('#username', username);
  }
  await page.fill('#room', room);
  await page.press('#room', 'Enter');
  await page.locator(`#room-tabs [role="tab"][aria-selected="true"][data-room="${room}"]`).waitFor();
}

// The log of a room (`where` its name) or of the direct conversation with a user (`where`
// { peer: USERNAME }) on page, as [{kind, own, history, author, text, state}].
function logOf(page, where) {
  const [key, name] = typeof where === 'string' ? ['room', where] : ['peer', where.peer];
  return page.evaluate(([key, name]) => {
    const panel = [...document.querySelectorAll('#logs .panel')].find((p) => p.dataset[key] === name);
    if (!panel) return [];
    return [...panel.querySelectorAll('li')].map((li) => ({
      kind: li.dataset.kind,
      own: li.classList.contains('own'),
      history: li.dataset.history === 'true',
      author: li.querySelector('.author')?.textContent ?? null,
      text: li.querySelector('.text')?.textContent ?? null,
      state: li.dataset.state ?? null,
    }));
  }, [key, name]);
}

async function waitForLog(page, room, pred, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const log = await logOf(page, room);
    if (log.some(pred)) return log;
    if (Date.now() > deadline) {
      throw new Error(`${page.label}: no ${what} in ${JSON.stringify(room)} within ${WAIT_MS} ms; log: ${JSON.stringify(log)}`);
    }
    await page.waitForTimeout(50);
  }
}

function usersShown(page) {
  return page.$$eval('#users li.user', (items) => items.map((li) => li.firstChild.textContent));
}

async function waitForUsers(page, expected, timeoutMs = WAIT_MS) {
  const want = [...expected].sort();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shown = (await usersShown(page)).sort();
    if (JSON.stringify(shown) === JSON.stringify(want)) return;
    if (Date.now() > deadline) {
      throw new Error(`${page.label}: user list ${JSON.stringify(shown)}, expected ${JSON.stringify(want)}`);
    }
    await page.waitForTimeout(50);
  }
}

async function waitForTyping(page, text) {
  await page.waitForFunction((want) => document.getElementById('typing').textContent === want, text);
}

function assertNoScriptRan(...pages) {
  for (const page of pages) {
    assert.deepEqual(page.dialogs, [], `${page.label} opened a dialog`);
    assert.deepEqual(page.errors, [], `${page.label} had script errors`);
  }
}

test('two pages chat: users, typing, joined and left, markup shown as text', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'chat');
  const ann = await openPage('ann');
  const bob = await openPage('bob', { width: 390, height: 844 });  // phone width

  await join(ann, 'ann', 'lobby');
  await waitForLog(ann, 'lobby', (m) => m.kind === 'system' && m.text === 'Welcome to lobby!', 'welcome');
  assert.equal(await ann.evaluate(() => document.activeElement.id), 'message');
  await join(bob, 'bob', 'lobby');
  await waitForLog(ann, 'lobby', (m) => m.kind === 'system' && m.text === 'bob joined the chat', 'join notice');
  await waitForUsers(ann, ['ann', 'bob']);
  await waitForUsers(bob, ['ann', 'bob']);

  // Typing: one typist, then two (the second one a plain protocol client).
  await ann.locator('#message').pressSequentially('hello');
  await waitForTyping(bob, 'ann is typing...');
  const cy = await observer('lobby', 'cy');
  cy.send({ type: 'typing_start', room: 'lobby' });
  await waitForTyping(bob, 'ann and cy are typing...');
  await screenshot(bob, 'chat-typing-phone');

  // Enter sends; the server ends ann's typing signal.
  await ann.locator('#message').pressSequentially(' bob');
  await ann.press('#message', 'Enter');
  await waitForLog(bob, 'lobby', (m) => m.kind === 'chat' && !m.own && m.author === 'ann' && m.text === 'hello bob', 'chat from ann');
  await waitForLog(ann, 'lobby', (m) => m.kind === 'chat' && m.own && m.text === 'hello bob', 'own message');
  await waitForTyping(bob, 'cy is typing...');
  assert.equal(await ann.inputValue('#message'), '');
  cy.send({ type: 'typing_stop', room: 'lobby' });
  await waitForTyping(bob, '');

  // Markup in a message is text: shown literally, no element made, nothing run.
  await bob.fill('#message', XSS);
  await bob.click('#send-button');
  const annLog = await waitForLog(ann, 'lobby', (m) => m.kind === 'chat' && m.text === XSS, 'markup message');
  assert.equal(annLog.find((m) => m.text === XSS).author, 'bob');
  await waitForLog(bob, 'lobby', (m) => m.own && m.text === XSS, 'own markup message');
  for (const page of [ann, bob]) {
    assert.equal(await page.locator('#logs img').count(), 0);
    assert.equal(await page.locator('#logs .msg .text', { hasText: XSS }).count(), 1);
  }

  // Live stats count the chat traffic.
  await ann.waitForFunction(() => document.getElementById('stat-latency').textContent.endsWith(' ms'));
  assert.equal(await ann.textContent('#stat-sent'), '1');
  await screenshot(ann, 'chat-desktop');
  await screenshot(bob, 'chat-phone');

  // Leaving: the others see it and the list shrinks.
  await bob.click('#leave-button');
  await waitForLog(ann, 'lobby', (m) => m.kind === 'system' && m.text === 'bob left the chat', 'leave notice');
  await waitForUsers(ann, ['ann', 'cy']);
  assert.equal(await bob.locator('#chat').isHidden(), true);
  assert.equal(await bob.evaluate(() => document.activeElement.id), 'room');
  await screenshot(ann, 'chat-after-leave');
  assertNoScriptRan(ann, bob);
});

test('Chromium negotiates permessage-deflate and the page chats over compressed frames', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, openPage } = await setup(t, 'deflate');
  const ann = await openPage('ann');
  const bob = await openPage('bob');
  // What Chromium agreed to, on a connection of its own from the page.
  const extensions = await ann.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws`);
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => reject(new Error('WebSocket failed'));
  }));
  assert.match(extensions, /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/);

  await join(ann, 'ann', 'squeeze');
  await join(bob, 'bob', 'squeeze');
  const long = 'the same words again and again, '.repeat(12).trim();
  await ann.fill('#message', long);
  await ann.press('#message', 'Enter');
  await waitForLog(bob, 'squeeze', (m) => m.kind === 'chat' && m.author === 'ann' && m.text === long, 'long message');
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const sample = (name) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
  assert.ok(sample('roomcast_deflate_connections_total') >= 3, metrics);
  assert.ok(sample('roomcast_compressed_frames_total') >= 1, metrics);
  assertNoScriptRan(ann, bob);
});

test('refused names are explained, and several rooms are switchable', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'rooms');
  const page = await openPage('dee');

  // The page's own limit (the server's, counted in characters).
  await page.fill('#username', 'x'.repeat(21));
  await page.fill('#room', 'lobby');
  await page.click('#join-button');
  await page.locator('#join-error', { hasText: 'at most 20 characters' }).waitFor();

  // Markup characters and text-direction controls in a name: refused by the page, in words,
  // before anything is sent.
  await page.fill('#username', '<img src=x>');
  await page.click('#join-button');
  const error = page.locator('#join-error');
  await error.filter({ hasText: 'must not contain' }).waitFor();
  assert.match(await error.textContent(), /^Username must not contain any of < > & " ' `\.$/);
  assert.equal(await page.getAttribute('#username', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
  await page.fill('#username', 'ann\u202egnp.exe');
  await page.click('#join-button');
  await error.filter({ hasText: 'text-direction' }).waitFor();
  assert.equal(await page.locator('#room-tabs [role="tab"]').count(), 0);
  assert.equal(await page.locator('body img').count(), 0);
  await screenshot(page, 'join-refused');

  // What only the server can tell (a look-alike of a member's name) is its sentence, shown.
  await observer('mirror', 'zed');
  await page.fill('#username', 'z\u0435d');  // Cyrillic e
  await page.fill('#room', 'mirror');
  await page.click('#join-button');
  await error.filter({ hasText: 'looks like the name of someone else' }).waitFor();
  assert.equal(await page.getAttribute('#username', 'aria-invalid'), 'true');
  assert.equal(await page.locator('#room-tabs [role="tab"]').count(), 0);

  await join(page, 'dee', 'lobby');
  assert.equal(await error.isHidden(), true);
  await join(page, 'dee', 'second');
  assert.equal(await page.locator('#username').evaluate((input) => input.readOnly), true);

  // Chat messages of others in the room not shown mark its tab unread, and the tab title;
  // eve's join notice does not count.
  const eve = await observer('lobby', 'eve');
  await waitForLog(page, 'lobby', (m) => m.kind === 'system' && m.text === 'eve joined the chat', 'join notice');
  assert.equal(await page.title(), 'roomcast chat');
  eve.send({ type: 'chat_message', message: 'psst', room: 'lobby' });
  const lobbyTab = page.locator('#room-tabs [role="tab"][data-room="lobby"]');
  await lobbyTab.locator('.badge:not([hidden])').waitFor();
  assert.equal(await lobbyTab.locator('.badge').textContent(), '1');
  assert.equal(await page.title(), '(1) roomcast chat');

  // Sending goes to the room shown, only.
  await page.fill('#message', 'only in second');
  await page.press('#message', 'Enter');
  await waitForLog(page, 'second', (m) => m.own && m.text === 'only in second', 'own message in second');
  await page.locator('#room-tabs [role="tab"][aria-selected="true"]').press('ArrowLeft');
  await page.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="lobby"]').waitFor();
  assert.equal(await lobbyTab.locator('.badge').isHidden(), true);
  assert.equal(await page.title(), 'roomcast chat');
  const lobby = await waitForLog(page, 'lobby', (m) => m.text === 'psst', 'message from eve');
  assert.equal(lobby.some((m) => m.text === 'only in second'), false);
  // Where the unread began: a divider right before eve's message.
  const kinds = lobby.filter((m) => m.kind !== 'day').map((m) => m.kind);
  assert.equal(kinds[kinds.indexOf('divider') + 1], 'chat');
  assert.equal(lobby[lobby.findIndex((m) => m.kind === 'divider') + 1].text, 'psst');
  await waitForUsers(page, ['dee', 'eve']);
  await screenshot(page, 'two-rooms');

  // An overlong message is stopped by the page, which names the limit and keeps the text; so
  // is one of only invisible characters.
  await page.fill('#message', 'y'.repeat(501));
  await page.locator('#message-count.over').waitFor();
  await page.press('#message', 'Enter');
  await page.locator('#message-error', { hasText: 'limit is 500' }).waitFor();
  assert.equal(await page.inputValue('#message'), 'y'.repeat(501));
  await page.fill('#message', ' \u200b ');
  await page.press('#message', 'Enter');
  await page.locator('#message-error', { hasText: 'The message is empty' }).waitFor();
  assert.equal(await page.getAttribute('#message', 'aria-invalid'), 'true');
  assertNoScriptRan(page);
});

// The lines of a log that are not chat messages (welcome, joined, left, local notes).
const systemLines = async (page, room) => (await logOf(page, room)).filter((m) => m.kind === 'system' || m.kind === 'note');

test('pages reconnect by themselves after the server is killed and restarted, quietly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // The server's own rejoin grace (the test harness turns it off elsewhere): the members
  // rejoining after the restart are not announced again.
  const { server, openPage } = await setup(t, 'restart', ['--rejoin-grace', '10s']);
  const ann = await openPage('ann');
  const bob = await openPage('bob');
  await join(ann, 'ann', 'quiet');  // nobody ever speaks here
  await join(ann, 'ann', 'lobby');
  await join(bob, 'bob', 'lobby');
  await waitForUsers(ann, ['ann', 'bob']);
  await waitForUsers(bob, ['ann', 'bob']);
  const before = { ann: await systemLines(ann, 'lobby'), bob: await systemLines(bob, 'lobby'), quiet: await systemLines(ann, 'quiet') };

  await server.kill();
  for (const page of [ann, bob]) {
    await page.locator('#status[data-state="reconnecting"]').waitFor();
    assert.match(await page.locator('#status-text').textContent(), /^Connection lost, reconnecting/);
  }
  // Written while offline: a bubble waiting for the connection, sent after the page is back in
  // the room, then marked stored.
  await ann.fill('#message', 'written while offline');
  await ann.press('#message', 'Enter');
  const offline = ann.locator('#logs li.own', { hasText: 'written while offline' });
  await offline.and(ann.locator('[data-state="queued"]')).waitFor();
  assert.equal(await ann.inputValue('#message'), '');
  await screenshot(ann, 'restart-offline');

  await server.start();
  for (const page of [ann, bob]) {
    await page.locator('#status[data-state="open"]').waitFor({ timeout: RECONNECT_WAIT_MS });
  }
  await waitForUsers(ann, ['ann', 'bob'], RECONNECT_WAIT_MS);
  await waitForUsers(bob, ['ann', 'bob'], RECONNECT_WAIT_MS);
  await offline.and(ann.locator('[data-state="stored"]')).waitFor({ timeout: RECONNECT_WAIT_MS });
  await offline.locator('.delivery.stored').waitFor();

  await ann.fill('#message', 'after the restart');
  await ann.press('#message', 'Enter');
  await waitForLog(bob, 'lobby', (m) => m.author === 'ann' && m.text === 'after the restart', 'message after restart');
  await bob.fill('#message', 'welcome back');
  await bob.press('#message', 'Enter');
  const annLog = await waitForLog(ann, 'lobby', (m) => m.author === 'bob' && m.text === 'welcome back', 'reply');
  assert.equal(annLog.filter((m) => m.own && m.text === 'written while offline').length, 1);
  await waitForLog(bob, 'lobby', (m) => m.author === 'ann' && m.text === 'written while offline', 'offline message');
  // The reconnect was one status change: no "connection lost", no second welcome, no
  // "joined the chat" of members who were there all along, and no unread from it.
  assert.deepEqual(await systemLines(ann, 'lobby'), before.ann);
  assert.deepEqual(await systemLines(bob, 'lobby'), before.bob);
  assert.deepEqual(await systemLines(ann, 'quiet'), before.quiet);
  assert.equal(await ann.locator('#room-tabs [data-room="quiet"] .badge').isHidden(), true);
  assert.equal(await ann.title(), 'roomcast chat');
  await screenshot(ann, 'restart-reconnected');
  assertNoScriptRan(ann, bob);
});

test('a page joining a room sees its earlier messages, like live ones', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'history');
  const eve = await observer('archive', 'eve');
  for (const text of ['first', 'second', XSS]) eve.send({ type: 'chat_message', room: 'archive', message: text });
  await eve.expect((m) => m.type === 'chat_message' && m.message === XSS);

  const page = await openPage('fay');
  await join(page, 'fay', 'archive');
  const log = await waitForLog(page, 'archive', (m) => m.text === XSS, 'earlier messages');
  const chats = (entries) => entries.filter((m) => m.kind === 'chat').map(({ author, text, history }) => ({ author, text, history }));
  assert.deepEqual(chats(log), ['first', 'second', XSS].map((text) => ({ author: 'eve', text, history: true })));
  assert.equal(await page.locator('#logs img').count(), 0);

  // A live message afterwards, and one's own: same look as history, own marked once stored.
  eve.send({ type: 'chat_message', room: 'archive', message: 'now' });
  // Own messages show at once (before the server's echo): wait for eve's to keep the order.
  await waitForLog(page, 'archive', (m) => m.text === 'now', 'live message');
  await page.fill('#message', 'mine');
  await page.press('#message', 'Enter');
  const after = await waitForLog(page, 'archive', (m) => m.own && m.text === 'mine', 'own message');
  assert.deepEqual(chats(after).slice(3), [
    { author: 'eve', text: 'now', history: false },
    { author: 'fay', text: 'mine', history: false },
  ]);
  const classes = await page.$$eval('#logs .panel li[data-kind="chat"]', (items) => items.map((li) => li.className));
  assert.deepEqual(classes, ['msg other', 'msg other', 'msg other', 'msg other', 'msg own']);
  await page.locator('#logs li.own .delivery.stored').waitFor();
  await screenshot(page, 'history-on-join');
  assertNoScriptRan(page);
});

test('a server that requires signing in gets a message on the page, not a reconnect loop', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage } = await setup(t, 'auth', ['--jwt-secret', 'e2e-secret-0123456789abcdef', '--require-auth']);
  const page = await openPage('anonymous', undefined, { waitOpen: false });
  await page.locator('#error-banner:not([hidden])').waitFor();
  assert.match(await page.locator('#error-text').textContent(), /requires signing in.*close 4001/);
  await page.locator('#status[data-state="closed"]').waitFor();
  assert.equal(await page.locator('#status-text').textContent(), 'Not signed in');
  // The library's first retry would come within a second; none comes.
  await page.waitForTimeout(2000);
  assert.equal(page.sockets.length, 1);
  assert.equal(await page.locator('#join-button').isDisabled(), true);
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'auth-required');
});

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// Whether the element's box lies inside the viewport (no scrolling needed to see it).
async function inViewport(page, selector) {
  const box = await page.locator(selector).boundingBox();
  const { width, height } = page.viewportSize();
  return box !== null && box.x >= 0 && box.y >= 0 && box.x + box.width <= width && box.y + box.height <= height;
}

async function assertShellFits(page, what) {
  for (const selector of ['#status', '#status-text', '#message', '#send-button', '#room-tabs [aria-selected="true"]', '#leave-button']) {
    assert.ok(await inViewport(page, selector), `${page.label} ${what}: ${selector} outside the viewport`);
  }
  // The page itself never scrolls: only the log does.
  const scroll = await page.evaluate(() => ({
    scrollY: window.scrollY, doc: document.documentElement.scrollHeight, view: window.innerHeight,
  }));
  assert.equal(scroll.scrollY, 0, `${page.label} ${what}: the page scrolled`);
  assert.ok(scroll.doc <= scroll.view, `${page.label} ${what}: the page is taller than the window ${JSON.stringify(scroll)}`);
}

// Every control has an accessible name: a label, aria-label(ledby) or its own text.
function unlabelledControls(page) {
  return page.$$eval('input, textarea, button, select, [role="tab"]', (controls) => controls
    .filter((c) => {
      if (c.labels?.length > 0 && [...c.labels].some((l) => l.textContent.trim())) return false;
      if (c.getAttribute('aria-label')?.trim()) return false;
      const by = c.getAttribute('aria-labelledby');
      if (by && by.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return false;
      return !c.textContent.trim();
    })
    .map((c) => c.outerHTML.slice(0, 80)));
}

test('the app shell fills the window: status, rooms and composer in view at desktop and phone sizes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'shell');
  const eve = await observer('lobby', 'eve');
  // A long log, so that a page that scrolls as a document would push the composer away.
  for (let i = 1; i <= 40; i++) eve.send({ type: 'chat_message', room: 'lobby', message: `line ${i} https://example.com/${'a'.repeat(i)}` });
  await eve.expect((m) => m.type === 'chat_message' && m.message.startsWith('line 40 '));

  for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    const page = await openPage(label, viewport);
    assert.deepEqual(await unlabelledControls(page), []);
    // Before any room: the join form is the page, no toggle to close it.
    assert.equal(await page.locator('#join').isVisible(), true);
    assert.equal(await page.locator('#join-toggle').isHidden(), true);
    await join(page, label, 'lobby');
    await waitForLog(page, 'lobby', (m) => m.text?.startsWith('line 40 '), 'history');
    // Joined: the form has collapsed; the composer has the focus and everything is in view.
    assert.equal(await page.locator('#join').isHidden(), true);
    assert.equal(await page.getAttribute('#join-toggle', 'aria-expanded'), 'false');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'message');
    await assertShellFits(page, 'after joining');
    await page.fill('#message', 'hello from the bottom');
    await page.press('#message', 'Enter');
    await page.locator('#logs li.own .delivery.stored').waitFor();
    await page.locator('#message').focus();
    await assertShellFits(page, 'after sending');
    // The log scrolls by itself, and the newest message is in view.
    assert.ok(await inViewport(page, '#logs li.own:has-text("hello from the bottom")'), `${label}: own message not in view`);
    assert.deepEqual(await unlabelledControls(page), []);
    await screenshot(page, `shell-${label}`);

    // The join form reopens from its button, and closes again.
    await page.click('#join-toggle');
    assert.equal(await page.getAttribute('#join-toggle', 'aria-expanded'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'room');
    assert.ok(await inViewport(page, '#room'));
    assert.ok(await inViewport(page, '#send-button'), `${label}: composer pushed away by the join form`);
    await page.click('#join-toggle');
    assert.equal(await page.locator('#join').isHidden(), true);

    // Members: a column on the desktop, a drawer on the phone (closed by Escape).
    if (label === 'desktop') {
      assert.ok(await inViewport(page, '#users li.user.own'));
      assert.equal(await page.locator('#members-toggle').isHidden(), true);
    } else {
      assert.equal(await page.locator('#users').isVisible(), false);
      await page.click('#members-toggle');
      assert.equal(await page.getAttribute('#members-toggle', 'aria-expanded'), 'true');
      await page.locator('#users li.user', { hasText: 'eve' }).waitFor({ state: 'visible' });
      await page.locator('#members-panel').evaluate((el) => Promise.all(el.getAnimations().map((a) => a.finished)));
      assert.ok(await inViewport(page, '#users'));
      await screenshot(page, 'shell-phone-members');
      // The open drawer keeps the keyboard: Tab never lands on the chat it covers.
      assert.equal(await page.evaluate(() => document.activeElement.id), 'members-close');
      for (let i = 0; i < 8; i += 1) {
        await page.keyboard.press('Tab');
        const where = await page.evaluate(() => {
          const el = document.activeElement;
          return el === document.body || el.closest('#members-panel, .topbar') !== null ? 'ok' : el.outerHTML.slice(0, 80);
        });
        assert.equal(where, 'ok', `phone: Tab ${i + 1} left the open drawer`);
      }
      assert.equal(await page.locator('#chat').evaluate((el) => el.inert), true);
      await page.keyboard.press('Escape');
      await page.locator('#users').waitFor({ state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement.id), 'members-toggle');
    }
    // The statistics are behind their toggle.
    assert.equal(await page.locator('#stats-panel').isVisible(), false);
    await page.click('#stats-toggle');
    await page.locator('#stat-sent').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#stat-sent'), '1');
    await page.click('#stats-toggle');
    if (label === 'phone') await page.click('#members-close');
    assertNoScriptRan(page);
  }
});

test('the log says where the unread begins and offers a jump to the latest when scrolled up', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'jump');
  const page = await openPage('hal', DESKTOP);
  await join(page, 'hal', 'busy');
  const eve = await observer('busy', 'eve');
  for (let i = 1; i <= 40; i++) eve.send({ type: 'chat_message', room: 'busy', message: `busy line ${i}` });
  await waitForLog(page, 'busy', (m) => m.text === 'busy line 40', 'the last line');
  assert.equal(await page.locator('#jump-latest').isHidden(), true);
  // Seen as they came: nothing unread, no divider.
  assert.equal(await page.title(), 'roomcast chat');
  assert.equal(await page.locator('#logs .divider').count(), 0);

  await page.locator('#logs .panel:not([hidden]) .log').evaluate((log) => { log.scrollTop = 0; });
  await page.locator('#jump-latest:not([hidden])').waitFor();
  eve.send({ type: 'chat_message', room: 'busy', message: 'while you were up there' });
  await page.locator('#jump-latest', { hasText: '1 new' }).waitFor();
  await screenshot(page, 'jump-to-latest');
  await page.click('#jump-latest');
  await page.locator('#jump-latest').waitFor({ state: 'hidden' });
  assert.ok(await inViewport(page, '#logs li.msg:has-text("while you were up there")'));
  assertNoScriptRan(page);
});

test('a message refused by the rate limit stays, with the wait, and can be retried or edited', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage } = await setup(t, 'ratelimit', ['--rate-limit-messages', '2', '--rate-limit-window', '60s']);
  const page = await openPage('ivy', PHONE);
  await join(page, 'ivy', 'slow');
  for (const text of ['one', 'two']) {
    await page.fill('#message', text);
    await page.press('#message', 'Enter');
  }
  await page.locator('#logs li.own[data-state="stored"]', { hasText: 'two' }).waitFor();
  await page.fill('#message', 'three is too many');
  await page.press('#message', 'Enter');
  const failed = page.locator('#logs li.own[data-state="failed"]', { hasText: 'three is too many' });
  await failed.waitFor();
  const reason = await failed.locator('.reason').textContent();
  assert.match(reason, /^Not sent\. You are sending messages too fast\./);
  assert.match(reason, /2 minutes/);
  assert.doesNotMatch(reason, /rate_limited/);
  assert.equal(await failed.locator('.text').textContent(), 'three is too many');
  assert.equal(await failed.locator('button', { hasText: 'Retry' }).count(), 1);
  assert.equal(await page.locator('#error-banner').isHidden(), true);
  await screenshot(page, 'rate-limited-phone');

  // Retrying during the block is refused again, in the same bubble; Edit puts it back in the
  // composer.
  await failed.locator('button', { hasText: 'Retry' }).click();
  await page.locator('#logs li.own[data-state="failed"]', { hasText: 'three is too many' }).waitFor();
  assert.equal(await page.locator('#logs li.own', { hasText: 'three is too many' }).count(), 1);
  await page.locator('#logs li.own', { hasText: 'three is too many' }).locator('button', { hasText: 'Edit' }).click();
  assert.equal(await page.inputValue('#message'), 'three is too many');
  assert.equal(await page.locator('#logs li.own', { hasText: 'three is too many' }).count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'message');
  assertNoScriptRan(page);
});

test('a reload brings back the name and the rooms; left rooms are in the directory', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage } = await setup(t, 'reload');
  const page = await openPage('gus', PHONE);
  await join(page, 'gus', 'alpha');
  await join(page, 'gus', 'beta');
  await page.reload();
  await page.locator('#room-tabs [role="tab"][data-room="alpha"]').waitFor();
  await page.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="beta"]').waitFor();
  assert.equal(await page.inputValue('#username'), 'gus');
  assert.equal(await page.locator('#username').evaluate((input) => input.readOnly), true);
  await waitForUsers(page, ['gus']);
  assert.equal(await page.locator('#join').isHidden(), true);

  // Leaving beta lists it among the recent rooms, from where it is one click away.
  await page.click('#leave-button');
  await page.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="alpha"]').waitFor();
  await page.click('#join-toggle');
  const recent = page.locator('#recent-rooms button', { hasText: 'beta' });
  await recent.waitFor();
  await screenshot(page, 'room-directory-phone');
  await recent.click();
  await page.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="beta"]').waitFor();
  assert.equal(await page.locator('#recent-rooms button', { hasText: 'beta' }).count(), 0);
  assertNoScriptRan(page);
});

test('older messages load on demand, by day and grouped by author, with safe links', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage, observer } = await setup(t, 'older', ['--history-on-join', '3']);
  const eve = await observer('old', 'eve');
  const texts = [
    'first', 'second', `see https://example.com/a?b=1&c=${XSS}.`, 'javascript:alert(1) is no link',
    `"><a href="javascript:alert(2)">x</a> http://example.org/`, 'sixth', 'seventh',
  ];
  for (const text of texts) eve.send({ type: 'chat_message', room: 'old', message: text });
  await eve.expect((m) => m.type === 'chat_message' && m.message === 'seventh');

  const page = await openPage('joe', DESKTOP);
  await join(page, 'joe', 'old');
  await waitForLog(page, 'old', (m) => m.text === 'seventh', 'recent history');
  const chats = async () => (await logOf(page, 'old')).filter((m) => m.kind === 'chat').map((m) => m.text);
  assert.deepEqual(await chats(), texts.slice(4));
  const older = page.locator('#logs .panel:not([hidden]) button.older');
  await older.click();
  await page.locator('#logs .panel:not([hidden]) .older-item', { hasText: 'No older messages' }).waitFor();
  assert.deepEqual(await chats(), texts);
  assert.equal(await older.isHidden(), true);

  // One day, one separator; eve's consecutive messages share her name.
  assert.equal(await page.locator('#logs li[data-kind="day"]').count(), 1);
  const grouped = await page.$$eval('#logs li[data-kind="chat"]', (items) => items.map((li) => li.dataset.grouped === 'true'));
  assert.deepEqual(grouped, texts.map((_, i) => i > 0));

  // Links: http(s) only, as `a` elements opening safely; markup stays text.
  const links = await page.$$eval('#logs .msg .text a', (as) => as.map((a) => ({ href: a.href, rel: a.rel, target: a.target, text: a.textContent })));
  assert.deepEqual(links, [
    { href: 'https://example.com/a?b=1&c=%3Cimg', rel: 'noopener noreferrer', target: '_blank', text: 'https://example.com/a?b=1&c=' },
    { href: 'http://example.org/', rel: 'noopener noreferrer', target: '_blank', text: 'http://example.org/' },
  ].map((l) => ({ ...l, href: new URL(l.text).href })));
  assert.equal(await page.locator('#logs img').count(), 0);
  assert.equal(await page.locator('#logs a[href^="javascript"]').count(), 0);
  assert.equal(await page.locator('#logs .msg .text', { hasText: XSS }).count(), 1);
  await screenshot(page, 'older-and-links');
  assertNoScriptRan(page);
});

// WCAG 2 contrast of every visible text against the background it is drawn on (the first
// opaque background up its ancestors). Returns the pairs under 4.5:1.
function lowContrast(page) {
  return page.evaluate(() => {
    const rgb = (css) => {
      const m = css.match(/rgba?\(([\d.]+),? ([\d.]+),? ([\d.]+)(?:,? \/?\s*([\d.]+))?\)/);
      return m ? { r: +m[1], g: +m[2], b: +m[3], a: m[4] === undefined ? 1 : +m[4] } : null;
    };
    const luminance = ({ r, g, b }) => {
      const lin = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const background = (el) => {
      for (let node = el; node; node = node.parentElement) {
        const bg = rgb(getComputedStyle(node).backgroundColor);
        if (bg && bg.a === 1) return bg;
      }
      return rgb(getComputedStyle(document.documentElement).backgroundColor) ?? { r: 255, g: 255, b: 255, a: 1 };
    };
    const bad = [];
    let checked = 0;
    for (const el of document.body.querySelectorAll('*')) {
      const hasText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
      if (!hasText || !el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
      const rect = el.getBoundingClientRect();
      if (rect.width <= 1 || rect.height <= 1) continue;  // visually hidden text
      const fg = rgb(getComputedStyle(el).color);
      const bg = background(el);
      const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      checked++;
      if (ratio < 4.5) bad.push({ text: el.textContent.trim().slice(0, 30), tag: el.tagName, cls: el.className, ratio: ratio.toFixed(2) });
    }
    return { checked, bad };
  });
}

test('dark mode follows the system, and every text has AA contrast in both schemes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, openPage, observer } = await setup(t, 'contrast', ['--rate-limit-messages', '2']);
  const page = await openPage('kim', DESKTOP);
  await join(page, 'kim', 'colors');
  await join(page, 'kim', 'other');
  const eve = await observer('colors', 'eve');
  eve.send({ type: 'chat_message', room: 'colors', message: 'a link: https://example.com/ and text' });
  await page.locator('#room-tabs [data-room="colors"] .badge:not([hidden])').waitFor();
  await page.click('#room-tabs [data-room="colors"]');
  for (const text of ['mine', 'mine again', 'one too many']) {
    await page.fill('#message', text);
    await page.press('#message', 'Enter');
  }
  await page.locator('#logs li.own[data-state="failed"]').waitFor();
  await page.locator('#logs li.own[data-state="stored"]', { hasText: 'mine again' }).waitFor();
  await page.click('#stats-toggle');
  await page.click('#join-toggle');
  await page.fill('#room', '<bad>');
  await page.click('#join-button');
  await page.locator('#join-error:not([hidden])').waitFor();
  // A local note and the error banner, in both schemes too.
  await page.evaluate(() => document.getElementById('error-banner').hidden = false);
  await page.evaluate(() => { document.getElementById('error-text').textContent = 'An error, for the contrast check'; });
  const phone = await openPage('kim-phone', PHONE);
  await join(phone, 'lee', 'colors');
  await phone.fill('#message', 'from the phone');
  await phone.press('#message', 'Enter');
  await phone.locator('#logs li.own[data-state="stored"]').waitFor();
  await server.stop();
  for (const p of [page, phone]) await p.locator('#status[data-state="reconnecting"]').waitFor();

  // The check itself sees a low contrast: the old amber of the notes (3.1:1) is caught.
  await page.emulateMedia({ colorScheme: 'light' });
  await page.evaluate(() => {
    const probe = document.createElement('p');
    probe.id = 'probe';
    probe.style.color = '#c77c02';
    probe.textContent = 'amber probe';
    document.querySelector('.room-bar').append(probe);
  });
  assert.deepEqual((await lowContrast(page)).bad.map((b) => b.text), ['amber probe']);
  await page.evaluate(() => document.getElementById('probe').remove());

  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const body = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(body, scheme === 'dark' ? 'rgb(17, 21, 28)' : 'rgb(243, 245, 248)');
    const { checked, bad } = await lowContrast(page);
    assert.ok(checked >= 30, `only ${checked} texts checked`);
    assert.deepEqual(bad, [], `${scheme}: text under 4.5:1`);
    await screenshot(page, `chat-${scheme}`);
  }
  await phone.emulateMedia({ colorScheme: 'dark' });
  assert.deepEqual((await lowContrast(phone)).bad, []);
  await screenshot(phone, 'chat-dark-phone');
  assertNoScriptRan(page, phone);
  await server.start();  // stopCleanly() after the test wants a running server
});

test('direct messages: a conversation opened from the members list, delivered and answered; a user gone is said so', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openPage } = await setup(t, 'direct');
  const ann = await openPage('ann', DESKTOP);
  const bob = await openPage('bob', PHONE);
  await join(ann, 'ann', 'lobby');
  await join(bob, 'bob', 'lobby');
  await waitForUsers(ann, ['ann', 'bob']);
  await waitForUsers(bob, ['ann', 'bob']);

  // Others can be messaged from the members list, oneself not.
  assert.equal(await ann.locator('#users li.own button').count(), 0);
  const messageBob = ann.locator('#users li.user', { hasText: 'bob' }).getByRole('button', { name: 'Message bob directly' });
  await messageBob.click();
  const annTab = ann.locator('#room-tabs [role="tab"][data-peer="bob"]');
  await annTab.and(ann.locator('[aria-selected="true"]')).waitFor();
  assert.equal(await annTab.locator('.room-name').textContent(), '@bob');
  assert.equal(await ann.textContent('#room-title'), '@bob');
  assert.equal(await ann.getAttribute('#leave-button', 'aria-label'), 'Close the conversation with bob');
  assert.equal(await ann.evaluate(() => document.activeElement.id), 'message');
  // Said in the conversation: nothing of it is kept.
  const notKept = await logOf(ann, { peer: 'bob' });
  assert.match(notKept.find((m) => m.kind === 'note').text, /^Direct messages are not kept.*a reload empties this conversation\.$/);
  // The room's members stay listed (and messageable) while the conversation is shown.
  await waitForUsers(ann, ['ann', 'bob']);

  await ann.fill('#message', 'hi bob, just you');
  await ann.press('#message', 'Enter');
  assert.equal(await ann.inputValue('#message'), '');

  // bob, in the room, gets a conversation tab of its own, badged, counted in the title.
  const bobTab = bob.locator('#room-tabs [role="tab"][data-peer="ann"]');
  await bobTab.locator('.badge:not([hidden])').waitFor();
  assert.equal(await bobTab.locator('.badge').textContent(), '1');
  assert.equal(await bob.title(), '(1) roomcast chat');
  assert.equal(await bob.getAttribute('#room-tabs [role="tab"][aria-selected="true"]', 'data-room'), 'lobby');
  await waitForLog(bob, { peer: 'ann' }, (m) => m.kind === 'chat' && !m.own && m.author === 'ann' && m.text === 'hi bob, just you', 'direct message');
  assert.equal((await logOf(bob, 'lobby')).some((m) => m.text === 'hi bob, just you'), false);
  await bob.locator('#announcer', { hasText: 'Direct message from ann' }).waitFor({ state: 'attached' });
  // The ack: handed to bob.
  await waitForLog(ann, { peer: 'bob' }, (m) => m.own && m.text === 'hi bob, just you' && m.state === 'delivered', 'delivered mark');
  assert.equal(await ann.locator('#logs li.own .delivery.delivered').getAttribute('aria-label'), 'Delivered');

  // bob goes to it by keyboard (the tabs: rooms, then conversations) and answers.
  await bob.locator('#room-tabs [role="tab"][aria-selected="true"]').press('ArrowRight');
  await bobTab.and(bob.locator('[aria-selected="true"]')).waitFor();
  assert.equal(await bobTab.locator('.badge').isHidden(), true);
  assert.equal(await bob.title(), 'roomcast chat');
  await bob.fill('#message', 'hello ann');
  await bob.press('#message', 'Enter');
  await waitForLog(ann, { peer: 'bob' }, (m) => m.kind === 'chat' && !m.own && m.author === 'bob' && m.text === 'hello ann', 'answer');
  await waitForLog(bob, { peer: 'ann' }, (m) => m.own && m.text === 'hello ann' && m.state === 'delivered', 'delivered answer');
  // Seen as it came: ann was looking.
  assert.equal(await ann.title(), 'roomcast chat');

  // Markup is text here too.
  await ann.fill('#message', XSS);
  await ann.press('#message', 'Enter');
  await waitForLog(bob, { peer: 'ann' }, (m) => m.author === 'ann' && m.text === XSS, 'markup message');
  for (const page of [ann, bob]) {
    assert.equal(await page.locator('#logs img').count(), 0);
    assert.equal(await page.locator('#logs .msg .text', { hasText: XSS }).count(), 1);
  }
  await screenshot(ann, 'dm-desktop');
  await screenshot(bob, 'dm-phone');

  // On the phone the members drawer is the way in too: it closes on the way to the conversation.
  await bob.locator('#room-tabs [role="tab"][data-room="lobby"]').click();
  await bob.click('#members-toggle');
  await bob.getByRole('button', { name: 'Message ann directly' }).click();
  await bobTab.and(bob.locator('[aria-selected="true"]')).waitFor();
  await bob.locator('#users').waitFor({ state: 'hidden' });
  assert.equal(await bob.getAttribute('#members-toggle', 'aria-expanded'), 'false');
  assert.equal(await bob.evaluate(() => document.activeElement.id), 'message');
  assertNoScriptRan(ann, bob);

  // bob goes: a message to him fails in words, and stays retryable.
  await bob.context().close();
  await waitForUsers(ann, ['ann']);
  await ann.fill('#message', 'are you there?');
  await ann.press('#message', 'Enter');
  const failed = ann.locator('#logs li.own[data-state="failed"]', { hasText: 'are you there?' });
  await failed.waitFor();
  assert.equal(await failed.locator('.reason').textContent(), 'bob is offline; nothing was sent.');
  // A retry is a new send (a new id), refused again in the same bubble.
  const firstId = await failed.getAttribute('data-id');
  await failed.getByRole('button', { name: 'Retry' }).click();
  await ann.locator(`#logs li.own[data-state="failed"]:not([data-id="${firstId}"])`, { hasText: 'are you there?' }).waitFor();
  assert.equal(await ann.locator('#logs li.own', { hasText: 'are you there?' }).count(), 1);
  assert.equal(await failed.locator('.reason').textContent(), 'bob is offline; nothing was sent.');
  await screenshot(ann, 'dm-offline-desktop');

  // Closing the conversation goes back to the room.
  await ann.click('#leave-button');
  await ann.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="lobby"]').waitFor();
  assert.equal(await annTab.count(), 0);
  assertNoScriptRan(ann);
});

test('a direct message written offline fails to retry, and reaches the peer under the new userId the restart gave them', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, openPage } = await setup(t, 'direct-restart');
  const ann = await openPage('ann', DESKTOP);
  const bob = await openPage('bob', DESKTOP);
  await join(ann, 'ann', 'lobby');
  await join(bob, 'bob', 'lobby');
  await waitForUsers(ann, ['ann', 'bob']);
  await ann.locator('#users li.user', { hasText: 'bob' }).getByRole('button', { name: 'Message bob directly' }).click();
  await ann.locator('#room-tabs [role="tab"][aria-selected="true"][data-peer="bob"]').waitFor();

  await server.kill();
  await ann.locator('#status[data-state="reconnecting"]').waitFor();
  await ann.fill('#message', 'sent while the server was away');
  await ann.press('#message', 'Enter');
  const failed = ann.locator('#logs li.own[data-state="failed"]', { hasText: 'sent while the server was away' });
  await failed.waitFor();
  assert.equal(await failed.locator('.reason').textContent(), 'Not sent: there is no connection to the server. Retry once it is back.');

  await server.start();
  for (const page of [ann, bob]) await page.locator('#status[data-state="open"]').waitFor({ timeout: RECONNECT_WAIT_MS });
  await waitForUsers(ann, ['ann', 'bob'], RECONNECT_WAIT_MS);
  await failed.getByRole('button', { name: 'Retry' }).click();
  await waitForLog(ann, { peer: 'bob' }, (m) => m.own && m.text === 'sent while the server was away' && m.state === 'delivered', 'delivered after the restart');
  await waitForLog(bob, { peer: 'ann' }, (m) => m.author === 'ann' && m.text === 'sent while the server was away', 'the message, on bob\'s page');
  assert.equal(await ann.locator('#logs li.own', { hasText: 'sent while the server was away' }).count(), 1);
  // The conversation outlived bob's userId: it is with a name.
  assert.equal(bob.userIds.length, 2);
  assert.notEqual(bob.userIds[0], bob.userIds[1]);
  assertNoScriptRan(ann, bob);
});
