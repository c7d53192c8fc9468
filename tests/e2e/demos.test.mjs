// The three demo pages (web/demos) in Chromium against the real server, started as scripts/run
// starts it for them (--app-events document_change:durable:rate=60/10s,price_update:conflate:rate=50/10s) on top of the
// server's own defaults otherwise. Screenshots: $ROOMCAST_TEST_LOGS/screenshots/demo-*.png.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import helpers from '../integration/node/roomcast.js';
import { screenshot, useBrowser } from './browser.mjs';

const { ChatClient, RoomcastServer } = helpers;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 15000;
const DEMO_EVENTS = ['--app-events', 'document_change:durable:rate=60/10s,price_update:conflate:rate=50/10s'];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const browser = useBrowser();

// A server with the demos' event types; pages open `demos/NAME.html` and wait for the join.
async function setup(t, name, serverArgs = DEMO_EVENTS) {
  const server = await RoomcastServer.start(`e2e-demo-${name}`, serverArgs);
  const contexts = [];
  const clients = [];
  t.after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    for (const c of clients) c.ws.terminate();
    await server.stopCleanly();
  });
  async function openDemo(page, label, viewport = DESKTOP) {
    const context = await browser().newContext({ viewport });
    contexts.push(context);
    const tab = await context.newPage();
    tab.setDefaultTimeout(WAIT_MS);
    tab.errors = [];
    tab.on('pageerror', (error) => tab.errors.push(error.message));
    tab.label = label;
    await tab.goto(`${server.httpUrl}/demos/${page}.html`);
    await tab.locator('#status[data-state="open"]').waitFor();
    // Open is before the join's answer; the document page listens to its editor only once
    // joined (it then says who is editing), so typing before that would go nowhere.
    if (page === 'doc') await tab.locator('#doc-meta', { hasText: 'editing' }).waitFor();
    return tab;
  }
  async function wsClient() {
    const c = await ChatClient.connect(server);
    clients.push(c);
    return c;
  }
  return { server, openDemo, wsClient };
}

function assertNoScriptErrors(...pages) {
  for (const page of pages) assert.deepEqual(page.errors, [], `${page.label} had script errors`);
}

async function waitForValue(page, selector, want) {
  await page.waitForFunction(([s, w]) => document.querySelector(s)?.value === w, [selector, want]);
}

test('two pages edit one document, and a page opened later shows the same text', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openDemo } = await setup(t, 'doc');
  const ann = await openDemo('doc', 'ann');
  const bob = await openDemo('doc', 'bob', PHONE);
  await ann.locator('#doc').pressSequentially('Hello from Ann.');
  await waitForValue(bob, '#doc', 'Hello from Ann.');
  await bob.locator('#doc').press('End');
  await bob.locator('#doc').pressSequentially(' And Bob.');
  await waitForValue(ann, '#doc', 'Hello from Ann. And Bob.');
  await ann.waitForFunction(() => document.getElementById('doc-meta').textContent.includes('2 editing'));

  // A third page, opened after the edits, catches up from the room's history.
  const cy = await openDemo('doc', 'cy');
  await waitForValue(cy, '#doc', 'Hello from Ann. And Bob.');
  await screenshot(ann, 'demo-doc-desktop');
  await screenshot(bob, 'demo-doc-phone');
  assertNoScriptErrors(ann, bob, cy);
});

test('the ticker shows each symbol\'s latest price from a feed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openDemo, wsClient } = await setup(t, 'ticker');
  const viewer = await openDemo('ticker', 'viewer', PHONE);

  // A backend's feed: a plain WebSocket client publishing price_update events.
  const feed = await wsClient();
  await feed.join('tickers', 'feed');
  for (const price of [101.25, 102.5, 99.75]) feed.send({ type: 'price_update', room: 'tickers', symbol: 'ACME', price });
  await viewer.waitForFunction(() => document.querySelector('tr[data-symbol="ACME"] td.price')?.textContent === '99.75');
  assert.equal(await viewer.locator('tr[data-symbol="ACME"] td.down').count(), 1);

  // A tab can be the feed: another page sees its five symbols move.
  const feeder = await openDemo('ticker', 'feeder');
  await feeder.click('#feed');
  await viewer.waitForFunction(() => document.querySelectorAll('#prices tr').length === 5);
  const first = await viewer.textContent('#received');
  await viewer.waitForFunction((before) => document.getElementById('received').textContent !== before, first);
  await feeder.click('#feed');
  assert.equal(await feeder.getAttribute('#feed', 'aria-pressed'), 'false');
  await screenshot(viewer, 'demo-ticker-phone');
  await screenshot(feeder, 'demo-ticker-desktop');
  assertNoScriptErrors(viewer, feeder);
});

test('two game pages see each other move through binary position updates', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openDemo, wsClient } = await setup(t, 'game');
  const p1 = await openDemo('game', 'p1');
  const p2 = await openDemo('game', 'p2', PHONE);
  // A text-only member of the game room never gets a binary frame.
  const textOnly = await wsClient();
  await textOnly.join('game1', 'watcher');

  const others = (page) => page.$$eval('#players li[data-player="other"]', (items) => items.map((li) => li.textContent));
  const mine = (page) => page.textContent('#players li[data-player="me"]');
  await p2.waitForFunction(() => document.querySelectorAll('#players li[data-player="other"]').length === 1);

  // p1 moves (arrow keys on the focused board); p2 sees p1's piece where p1 says it is.
  await p1.focus('#board');
  const before = await mine(p1);
  const atLeftEdge = before.includes('(0,');
  await p1.keyboard.press(atLeftEdge ? 'ArrowRight' : 'ArrowLeft');
  const after = await mine(p1);
  assert.notEqual(after, before);
  const where = after.replace('You at ', '');
  await p2.waitForFunction((w) => [...document.querySelectorAll('#players li[data-player="other"]')]
    .some((li) => li.textContent.endsWith(`at ${w}`)), where);
  // And the other way, with the on-screen buttons (phone).
  await p2.click('.pad button[aria-label="Down"]');
  await p2.click('.pad button[aria-label="Up"]');
  const p2Where = (await mine(p2)).replace('You at ', '');
  await p1.waitForFunction((w) => [...document.querySelectorAll('#players li[data-player="other"]')]
    .some((li) => li.textContent.endsWith(`at ${w}`)), p2Where);
  assert.equal((await others(p1)).length, 1);
  await screenshot(p1, 'demo-game-desktop');
  await screenshot(p2, 'demo-game-phone');
  assert.ok(!textOnly.inbox.some((m) => m.binary !== undefined), 'a text-only member got a binary frame');
  assertNoScriptErrors(p1, p2);
});

test('a server that does not allow the demo events says how to start it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { openDemo } = await setup(t, 'refused', []);
  const page = await openDemo('doc', 'ann');
  await page.locator('#doc').pressSequentially('x');
  await page.locator('#notice').waitFor();
  assert.match(await page.textContent('#notice'), /--app-events document_change:durable/);
  assertNoScriptErrors(page);
});
