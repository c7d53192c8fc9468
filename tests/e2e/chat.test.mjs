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
    page.on('websocket', (ws) => page.sockets.push(ws.url()));
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

async function join(page, username, room) {
  if (!(await page.locator('#username').evaluate((input) => input.readOnly))) {
    await page.fill('#username', username);
  }
  await page.fill('#room', room);
  await page.press('#room', 'Enter');
  await page.locator(`#room-tabs [role="tab"][aria-selected="true"][data-room="${room}"]`).waitFor();
}

// The log of room on page, as [{kind, own, history, author, text}].
function logOf(page, room) {
  return page.evaluate((name) => {
    const panel = [...document.querySelectorAll('#logs .panel')].find((p) => p.dataset.room === name);
    if (!panel) return [];
    return [...panel.querySelectorAll('li')].map((li) => ({
      kind: li.dataset.kind,
      own: li.classList.contains('own'),
      history: li.dataset.history === 'true',
      author: li.querySelector('.author')?.textContent ?? null,
      text: li.querySelector('.text')?.textContent ?? null,
    }));
  }, room);
}

async function waitForLog(page, room, pred, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const log = await logOf(page, room);
    if (log.some(pred)) return log;
    if (Date.now() > deadline) {
      throw new Error(`${page.label}: no ${what} in ${room} within ${WAIT_MS} ms; log: ${JSON.stringify(log)}`);
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

  // The server's refusal of markup characters in a name, shown as it is.
  await page.fill('#username', '<img src=x>');
  await page.click('#join-button');
  const error = page.locator('#join-error');
  await error.filter({ hasText: 'must not contain' }).waitFor();
  assert.match(await error.textContent(), /username.*invalid_field/);
  assert.equal(await page.getAttribute('#username', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
  assert.equal(await page.locator('#room-tabs [role="tab"]').count(), 0);
  assert.equal(await page.locator('body img').count(), 0);
  await screenshot(page, 'join-refused');

  await join(page, 'dee', 'lobby');
  assert.equal(await error.isHidden(), true);
  await join(page, 'dee', 'second');
  assert.equal(await page.locator('#username').evaluate((input) => input.readOnly), true);

  // Messages in the room not shown mark its tab unread.
  const eve = await observer('lobby', 'eve');
  eve.send({ type: 'chat_message', message: 'psst', room: 'lobby' });
  const lobbyTab = page.locator('#room-tabs [role="tab"][data-room="lobby"]');
  await lobbyTab.locator('.badge').waitFor();  // eve's join notice and her message: 2 unread
  await lobbyTab.locator('.badge', { hasText: '2' }).waitFor();

  // Sending goes to the room shown, only.
  await page.fill('#message', 'only in second');
  await page.press('#message', 'Enter');
  await waitForLog(page, 'second', (m) => m.own && m.text === 'only in second', 'own message in second');
  await page.locator('#room-tabs [role="tab"][aria-selected="true"]').press('ArrowLeft');
  await page.locator('#room-tabs [role="tab"][aria-selected="true"][data-room="lobby"]').waitFor();
  assert.equal(await lobbyTab.locator('.badge').isHidden(), true);
  const lobby = await waitForLog(page, 'lobby', (m) => m.text === 'psst', 'message from eve');
  assert.equal(lobby.some((m) => m.text === 'only in second'), false);
  await waitForUsers(page, ['dee', 'eve']);
  await screenshot(page, 'two-rooms');

  // An overlong message is stopped by the page, which names the limit.
  await page.fill('#message', 'y'.repeat(501));
  await page.locator('#message-count.over').waitFor();
  await page.press('#message', 'Enter');
  await page.locator('#error-banner', { hasText: 'limit is 500' }).waitFor();
  assertNoScriptRan(page);
});

test('pages reconnect by themselves after the server is killed and restarted', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, openPage } = await setup(t, 'restart');
  const ann = await openPage('ann');
  const bob = await openPage('bob');
  await join(ann, 'ann', 'lobby');
  await join(bob, 'bob', 'lobby');
  await waitForUsers(ann, ['ann', 'bob']);
  await waitForUsers(bob, ['ann', 'bob']);

  await server.kill();
  for (const page of [ann, bob]) {
    await page.locator('#status[data-state="reconnecting"]').waitFor();
    await waitForLog(page, 'lobby', (m) => m.kind === 'note' && m.text.startsWith('Connection lost'), 'lost note');
  }
  // Written while offline: queued, sent after the page is back in the room.
  await ann.fill('#message', 'written while offline');
  await ann.press('#message', 'Enter');
  await waitForLog(ann, 'lobby', (m) => m.kind === 'note' && m.text.startsWith('Offline'), 'offline note');
  await screenshot(ann, 'restart-offline');

  await server.start();
  for (const page of [ann, bob]) {
    await page.locator('#status[data-state="open"]').waitFor({ timeout: RECONNECT_WAIT_MS });
  }
  await waitForUsers(ann, ['ann', 'bob'], RECONNECT_WAIT_MS);
  await waitForUsers(bob, ['ann', 'bob'], RECONNECT_WAIT_MS);

  await ann.fill('#message', 'after the restart');
  await ann.press('#message', 'Enter');
  await waitForLog(bob, 'lobby', (m) => m.author === 'ann' && m.text === 'after the restart', 'message after restart');
  await bob.fill('#message', 'welcome back');
  await bob.press('#message', 'Enter');
  const annLog = await waitForLog(ann, 'lobby', (m) => m.author === 'bob' && m.text === 'welcome back', 'reply');
  assert.equal(annLog.filter((m) => m.own && m.text === 'written while offline').length, 1);
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
