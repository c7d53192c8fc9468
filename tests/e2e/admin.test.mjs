// The admin page (/admin) in Chromium (playwright-core driving Debian's /usr/bin/chromium)
// against the real server with --api-key; the chat traffic comes from npm `ws` clients.
// Screenshots go to $ROOMCAST_TEST_LOGS/screenshots (default build/test-logs/screenshots).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import helpers from '../integration/node/roomcast.js';
import { screenshot, useBrowser } from './browser.mjs';

const { ChatClient, isChat, roomOf, RoomcastServer } = helpers;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 20000;
const API_KEY = 'admin-test-key-7f3a';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const browser = useBrowser();

// A server (with the API key unless `serverArgs` says otherwise), the admin page open in a
// fresh browser context, and the `ws` clients the test makes; all closed after the test.
async function setup(t, name, serverArgs = ['--api-key', API_KEY]) {
  const server = await RoomcastServer.start(`e2e-admin-${name}`, serverArgs);
  const context = await browser().newContext({ viewport: DESKTOP });
  const clients = [];
  t.after(async () => {
    await context.close().catch(() => {});
    for (const c of clients) c.ws.terminate();
    await server.stopCleanly();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  page.dialogs = [];
  page.on('dialog', (dialog) => {
    page.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  await page.goto(`${server.httpUrl}/admin`);
  await page.locator('body[data-state="signed-out"]').waitFor();
  const track = (client) => {
    clients.push(client);
    return client;
  };
  return { server, page, track };
}

async function signIn(page, key) {
  await page.fill('#api-key', key);
  await page.click('#login-submit');
}

// A chart's current value (the number behind its caption), or null before the first reading.
async function chartValue(page, chart) {
  const text = await page.locator(`[data-chart="${chart}"] .value`).getAttribute('data-value');
  return text === null ? null : Number(text);
}

async function waitForChart(page, chart, pred, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await chartValue(page, chart);
    if (value !== null && pred(value)) return value;
    if (Date.now() > deadline) throw new Error(`chart ${chart}: no ${what} within ${WAIT_MS} ms (last ${value})`);
    await page.waitForTimeout(100);
  }
}

// What the server answers a request for admin data made from the page itself (same origin).
function fetchFromPage(page, url, headers = {}) {
  return page.evaluate(async ([u, h]) => {
    const res = await fetch(u, { headers: h });
    return { status: res.status, body: await res.json() };
  }, [url, headers]);
}

function assertNoScriptRan(page) {
  assert.deepEqual(page.dialogs, [], 'the page opened a dialog');
  assert.deepEqual(page.errors, [], 'the page had script errors');
}

test('the admin page shows nothing without the key, and says why a key is refused', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, page } = await setup(t, 'refuse');
  assert.equal(await page.locator('#login').isVisible(), true);
  assert.equal(await page.locator('#dashboard').isVisible(), false);

  // The server itself refuses the admin data without the key or with a wrong one.
  for (const url of ['/api/info', '/api/rooms', '/api/rooms/lobby/presence', '/api/stats/stream']) {
    const bare = await fetchFromPage(page, url);
    assert.equal(bare.status, 401, url);
    assert.equal(bare.body.code, 'api_key_required', url);
    const wrong = await fetchFromPage(page, url, { 'X-API-Key': 'not-the-key' });
    assert.equal(wrong.status, 401, url);
    assert.equal(wrong.body.code, 'invalid_api_key', url);
  }

  await signIn(page, '');
  await page.locator('#login-error', { hasText: 'Enter the API key.' }).waitFor();
  assert.equal(await page.locator('#dashboard').isVisible(), false);

  await signIn(page, 'not-the-key');
  await page.locator('#login-error', { hasText: 'The server refused this API key.' }).waitFor();
  assert.equal(await page.locator('#dashboard').isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  await screenshot(page, 'admin-refused-1280x800');

  // A user who connects to the chat still cannot see the rooms through the page's requests.
  const member = await ChatClient.connect(server);
  await member.join('lobby', 'ann');
  const rooms = await fetchFromPage(page, '/api/rooms');
  assert.equal(rooms.status, 401);
  assert.equal(JSON.stringify(rooms.body).includes('lobby'), false);
  member.ws.terminate();
  assertNoScriptRan(page);
});

test('without --api-key the page says the server API is off', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { page } = await setup(t, 'off', []);
  await signIn(page, 'anything');
  await page.locator('#login-error', { hasText: 'The server API is off' }).waitFor();
  assert.equal(await page.locator('#dashboard').isVisible(), false);
  assertNoScriptRan(page);
});

test('with the key: live figures move while clients chat, rooms with members, the node', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, page, track } = await setup(t, 'live');
  await signIn(page, API_KEY);
  await page.locator('body[data-state="signed-in"]').waitFor();
  assert.equal(await page.locator('#login').isVisible(), false);
  assert.equal(await chartValue(page, 'messages') ?? 0, 0, 'no traffic yet');

  const [ann, ben] = await roomOf(server, 'lobby', 'ann', 'ben');
  track(ann);
  track(ben);
  const third = track(await ChatClient.connect(server));
  await third.join('quiet', 'cy');

  // ann chats until the page's figures show it (the rates are over the server's last 10 s).
  let sent = 0;
  const chatter = setInterval(() => {
    ann.send({ type: 'chat_message', room: 'lobby', message: `hello ${++sent}` });
  }, 50);
  t.after(() => clearInterval(chatter));
  await waitForChart(page, 'messages', (v) => v > 0, 'messages per second');
  await waitForChart(page, 'deliveries', (v) => v > 0, 'deliveries per second');
  await waitForChart(page, 'latency', (v) => v > 0, 'delivery latency');
  await waitForChart(page, 'connections', (v) => v >= 3, 'three connections');
  // The chart's line: a point a second, and they differ (the rate rose from 0).
  await page.waitForFunction(() => {
    const points = document.querySelector('[data-chart="messages"] .line-0').getAttribute('points');
    return new Set(points.split(' ').map((p) => p.split(',')[1])).size > 1;
  });

  // Rooms by activity: the chatting room first, with its members and their connections.
  await page.waitForFunction(() => {
    const first = document.querySelector('#rooms tbody tr[data-room]');
    return first?.dataset.room === 'lobby' && Number(first.children[1].textContent) > 0;
  });
  const lobby = page.locator('#rooms tr[data-room="lobby"] td');
  assert.deepEqual((await lobby.allTextContents()).slice(2, 4), ['2', '2']);
  await page.locator('#rooms tr[data-room="quiet"]').waitFor();
  const members = page.locator('#rooms tr[data-members-of="lobby"] li');
  await members.nth(1).waitFor();
  const shown = await members.evaluateAll((items) => items.map((li) => ({
    user: li.dataset.user,
    name: li.querySelector('.member-name').textContent,
    connections: li.querySelector('.member-connections').textContent,
  })));
  assert.deepEqual(shown.sort((a, b) => a.name.localeCompare(b.name)), [
    { user: ann.userId, name: 'ann', connections: '1 conn' },
    { user: ben.userId, name: 'ben', connections: '1 conn' },
  ]);

  // The node list (a single node: standalone) and its connections.
  await page.locator('#nodes li[data-node="standalone"]').waitFor();
  await page.waitForFunction(() => /\(this node\) 3 connections/.test(document.querySelector('#nodes li').textContent));
  assert.equal(await page.locator('#nodes-note').isHidden(), true);

  await screenshot(page, 'admin-live-1280x800');
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(300);
  await screenshot(page, 'admin-live-390x844');
  clearInterval(chatter);
  assertNoScriptRan(page);
});

test('publish reaches a WebSocket member; disconnect closes the user with 4003', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, page, track } = await setup(t, 'actions');
  await signIn(page, API_KEY);
  await page.locator('body[data-state="signed-in"]').waitFor();
  // The key is kept for the tab: a reload stays signed in.
  await page.reload();
  await page.locator('body[data-state="signed-in"]').waitFor();

  const dana = track(await ChatClient.connect(server));
  await dana.join('ops', 'dana');
  const text = 'Deploy at 5 <b>not bold</b>';
  await page.fill('#publish-room', 'ops');
  await page.fill('#publish-username', 'Deploy bot');
  await page.fill('#publish-message', text);
  await page.click('#publish-form button[type="submit"]');
  const got = await dana.expect(isChat('ops', text), WAIT_MS);
  assert.equal(got.userId, 'roomcast:server');
  assert.equal(got.username, 'Deploy bot');
  await page.locator('#publish-result[data-outcome="ok"]', { hasText: `as seq ${got.seq}` }).waitFor();

  // A refused publication says why (a room name the chat does not allow).
  await page.fill('#publish-room', ' ');
  await page.fill('#publish-message', 'x');
  await page.click('#publish-form button[type="submit"]');
  await page.locator('#publish-result[data-outcome="error"]').waitFor();

  // Pick dana from the room's member list, then disconnect her.
  await page.locator(`#rooms li[data-user="${dana.userId}"] button`).click();
  assert.equal(await page.inputValue('#disconnect-user'), dana.userId);
  await page.fill('#disconnect-reason', 'Banned by the admin test');
  await page.click('#disconnect-form button[type="submit"]');
  const closed = await Promise.race([
    dana.closed,
    new Promise((_, reject) => setTimeout(() => reject(new Error('dana was not closed')), WAIT_MS)),
  ]);
  assert.deepEqual(closed, { code: 4003, reason: 'Banned by the admin test' });
  await page.locator('#disconnect-result[data-outcome="ok"][data-connections="1"]').waitFor();
  await screenshot(page, 'admin-actions-1280x800');
  assertNoScriptRan(page);
});
