// Reading rooms without a WebSocket (options.fallback): a client whose WebSocket cannot open
// (a proxy that breaks upgrades, played by a WebSocket that always fails) reads its room over
// long-polls, then goes back to the WebSocket when it opens again, with every message once and
// in order. The event stream (EventSource) is tested in Chromium (tests/e2e).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import WebSocket from 'ws';
import { nextEvent, startWithClients, within } from './server.mjs';

const TEST_TIMEOUT_MS = 60000;

// A WebSocket behind a proxy that refuses upgrades while `blocked`; the real one otherwise.
class ProxiedWebSocket {
  static blocked = true;
  static attempts = 0;

  constructor(url) {
    ProxiedWebSocket.attempts++;
    if (!ProxiedWebSocket.blocked) return new WebSocket(url);
    this.readyState = 0;
    this.listeners = { open: [], message: [], close: [], error: [] };
    setTimeout(() => {
      this.readyState = 3;
      for (const listener of this.listeners.error) listener({});
      for (const listener of this.listeners.close) listener({ code: 1006, reason: '' });
    }, 5);
  }

  addEventListener(type, listener) { this.listeners[type].push(listener); }
  send() { throw new Error('not open'); }
  close() {}
}

test('long-polls read the room while the WebSocket cannot open, and the WebSocket takes over exactly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-fallback');
  const writer = await env.observer('feed', 'writer');
  const reader = env.client({
    WebSocket: ProxiedWebSocket,
    fallback: 'poll',
    fallbackAfter: 2,
    pollTimeoutMs: 2000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 300 },
  });
  const seen = [];
  reader.on('chat', (m) => seen.push([m.seq, m.message]));
  const polling = nextEvent(reader, 'transport', (e) => e.transport === 'poll');
  reader.connect();
  const joined = reader.join('feed', 'reader');
  await within(polling, 'the fallback to long-polls');
  assert.equal(reader.transport, 'poll');
  assert.ok(ProxiedWebSocket.attempts >= 2);

  // Live, while only polling: the poll starts where the room is, then each message arrives.
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const text of ['one', 'two', 'three']) writer.send({ type: 'chat_message', room: 'feed', message: text });
  await within((async () => { while (seen.length < 3) await new Promise((r) => setTimeout(r, 20)); })(), 'three polled messages');
  assert.deepEqual(seen.map(([, text]) => text), ['one', 'two', 'three']);
  const sent = reader.send('queued while polling', { room: 'feed' });
  assert.equal(sent, 'queued');

  // The proxy lets WebSockets through again: the client joins over it and resumes after the
  // last seq it read; what was written in between arrives once.
  writer.send({ type: 'chat_message', room: 'feed', message: 'four' });
  ProxiedWebSocket.blocked = false;
  await within(nextEvent(reader, 'transport', (e) => e.transport === 'websocket', 15000), 'the WebSocket back');
  assert.equal((await within(joined, 'the join')).ok, true);
  writer.send({ type: 'chat_message', room: 'feed', message: 'five' });
  await within((async () => {
    while (!seen.some(([, text]) => text === 'five')) await new Promise((r) => setTimeout(r, 20));
  })(), 'the message after the switch');
  const texts = seen.map(([, text]) => text);
  assert.deepEqual(texts.filter((text) => text !== 'queued while polling'), ['one', 'two', 'three', 'four', 'five']);
  const seqs = seen.map(([seq]) => seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length, 'a message delivered twice');
  // What was sent while polling went out over the WebSocket, once.
  await within((async () => {
    while (reader.queuedMessages + reader.unackedMessages > 0) await new Promise((r) => setTimeout(r, 20));
  })(), 'the queued message acknowledged');
  const stored = await (await fetch(`${env.server.httpUrl}/api/rooms/feed/messages`)).json();
  assert.deepEqual(stored.messages.map((m) => m.message).filter((m) => m === 'queued while polling'), ['queued while polling']);
});
