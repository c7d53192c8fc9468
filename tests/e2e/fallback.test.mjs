// Server-sent events in Chromium: a page's own EventSource reads a room live, and the library
// (web/roomcast.js, fallback: 'auto') falls back to it when WebSockets cannot open (a proxy
// that breaks upgrades, played by a page whose WebSocket always fails), then resumes over the
// WebSocket exactly once it opens again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import helpers from '../integration/node/roomcast.js';
import { screenshot, useBrowser } from './browser.mjs';

const { ChatClient, RoomcastServer } = helpers;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 15000;

const browser = useBrowser();

// Replaces the page's WebSocket with one that fails while window.blockWebSockets is true.
function blockWebSockets() {
  const Real = window.WebSocket;
  window.blockWebSockets = true;
  window.WebSocket = function ProxiedWebSocket(url, protocols) {
    if (!window.blockWebSockets) return new Real(url, protocols);
    return new Real('ws://127.0.0.1:9/refused');  // nothing listens on the discard port
  };
  window.WebSocket.OPEN = Real.OPEN;
}

test('EventSource reads a room live, and the library falls back to it and back', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await RoomcastServer.start('e2e-fallback');
  const context = await browser().newContext({ viewport: { width: 1280, height: 800 } });
  const writer = await ChatClient.connect(server);
  t.after(async () => {
    await context.close().catch(() => {});
    writer.ws.terminate();
    await server.stopCleanly();
  });
  await context.addInitScript(blockWebSockets);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const streams = [];
  page.on('request', (request) => {
    if (request.url().includes('/events')) streams.push(request.url());
  });
  await page.goto(`${server.httpUrl}/healthz`);
  await writer.join('live', 'writer');

  // The browser's own EventSource, as docs/api.md shows it.
  await page.evaluate(() => {
    window.native = [];
    const source = new EventSource('/api/rooms/live/events');
    source.addEventListener('chat_message', (e) => window.native.push([Number(e.lastEventId), JSON.parse(e.data).message]));
    return new Promise((resolve) => { source.onopen = resolve; });
  });
  // The library, whose WebSockets fail.
  await page.evaluate(async () => {
    const { RoomcastClient } = await import('/roomcast.js');
    window.seen = [];
    const client = new RoomcastClient({ fallback: 'auto', fallbackAfter: 2, reconnect: { initialDelayMs: 50, maxDelayMs: 300 } });
    client.on('chat', (m) => window.seen.push([m.seq, m.message]));
    client.on('transport', (e) => { window.transport = e.transport; });
    client.connect();
    window.joined = client.join('live', 'reader');
    window.client = client;
  });
  await page.waitForFunction(() => window.transport === 'sse');
  await page.waitForTimeout(300);  // the stream's head is written before the first message

  for (const text of ['one', 'two', 'three']) writer.send({ type: 'chat_message', room: 'live', message: text });
  await page.waitForFunction(() => window.seen.length === 3 && window.native.length === 3);
  const native = await page.evaluate(() => window.native);
  assert.deepEqual(native.map(([, text]) => text), ['one', 'two', 'three']);
  assert.deepEqual(native.map(([seq]) => seq), [1, 2, 3], 'id: is the seq');
  assert.ok(streams.some((url) => url.includes('/api/rooms/live/events')), 'the library opened an event stream');

  // WebSockets work again: the library joins and resumes after what the stream delivered.
  writer.send({ type: 'chat_message', room: 'live', message: 'four' });
  await page.evaluate(() => { window.blockWebSockets = false; });
  await page.waitForFunction(() => window.transport === 'websocket');
  assert.equal(await page.evaluate(async () => (await window.joined).ok), true);
  writer.send({ type: 'chat_message', room: 'live', message: 'five' });
  await page.waitForFunction(() => window.seen.some(([, text]) => text === 'five'));
  const seen = await page.evaluate(() => window.seen);
  assert.deepEqual(seen, [[1, 'one'], [2, 'two'], [3, 'three'], [4, 'four'], [5, 'five']]);
  await screenshot(page, 'fallback-sse');
  assert.deepEqual(errors, []);
});
