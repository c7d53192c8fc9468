// web/roomcast.js and the chapter's other half, against the real server: app events (sendEvent,
// on(type)), durable ones recovered from history after a reconnect, direct messages
// (sendDirect, 'direct'), binary messages (sendBinary, 'binary') and message_batch (delivered
// as single events).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextEvent, startWithClients, within } from './server.mjs';

const TEST_TIMEOUT_MS = 60000;
const SERVER_ARGS = ['--app-events', 'document_change:durable,player_moved:no-echo'];

async function joined(env, room, username, options = {}) {
  const client = env.client();
  client.connect();
  const outcome = await within(client.join(room, { username, ...options }), `${username} joins ${room}`);
  assert.equal(outcome.ok, true);
  return client;
}

test('app events: sent with sendEvent, received under their type with the server fields', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-events', { serverArgs: SERVER_ARGS });
  const ann = await joined(env, 'doc', 'ann');
  const bob = await joined(env, 'doc', 'bob');
  const change = nextEvent(bob, 'document_change');
  assert.equal(ann.sendEvent('doc', 'document_change', { change: { insert: 'hi', at: 0 } }), 'sent');
  const got = await within(change, 'document_change reaches bob');
  assert.deepEqual(got.change, { insert: 'hi', at: 0 });
  assert.equal(got.userId, ann.userId);
  assert.equal(got.username, 'ann');
  assert.equal(got.seq, 1);
  assert.equal(got.own, false);
  assert.equal(got.history, false);
  // A later client gets it from history, under its type, and no 'chat' for it.
  const carl = env.client();
  const chats = [];
  carl.on('chat', (m) => chats.push(m));
  const fromHistory = nextEvent(carl, 'document_change');
  carl.connect();
  await within(carl.join('doc', 'carl'), 'carl joins');
  const old = await within(fromHistory, 'history event');
  assert.equal(old.history, true);
  assert.deepEqual(old.change, { insert: 'hi', at: 0 });
  assert.deepEqual(chats, []);
  assert.equal(carl.lastSeq('doc'), 1);
  // no-echo: the others only.
  const moved = nextEvent(bob, 'player_moved');
  let echoed = false;
  ann.on('player_moved', () => { echoed = true; });
  ann.sendEvent('doc', 'player_moved', { x: 3 });
  assert.equal((await within(moved, 'player_moved reaches bob')).x, 3);
  // A chat round trip after it: anything of the event for Ann would have come before.
  const mark = nextEvent(ann, 'chat', (m) => m.message === 'mark');
  ann.send('mark', { room: 'doc' });
  await within(mark, 'chat echo');
  assert.equal(echoed, false);
});

test('direct messages reach the user, are read back, and a refusal names the recipient', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-direct', { serverArgs: SERVER_ARGS });
  const ann = await joined(env, 'lobby', 'ann');
  const bob = await joined(env, 'lobby', 'bob');
  const direct = nextEvent(bob, 'direct');
  const ack = nextEvent(ann, 'ack', (a) => a.to === bob.userId);
  ann.sendDirect(bob.userId, 'psst', { id: 'd1' });
  const got = await within(direct, 'direct message');
  assert.equal(got.from, ann.userId);
  assert.equal(got.username, 'ann');
  assert.equal(got.message, 'psst');
  assert.equal(got.seq, 1);
  const acked = await within(ack, 'ack of the direct message');
  assert.equal(acked.id, 'd1');
  assert.equal(acked.seq, 1);
  // The conversation, read back: listed, and its messages after a seq.
  const list = await within(bob.conversations(), 'conversations');
  assert.deepEqual(list.map((c) => [c.with, c.username, c.lastSeq]), [[ann.userId, 'ann', 1]]);
  const history = await within(bob.directHistory(ann.userId, { since: 0 }), 'direct history');
  assert.equal(history.recovered, true);
  assert.deepEqual(history.messages.map((m) => [m.from, m.message, m.seq]), [[ann.userId, 'psst', 1]]);
  // A refusal rejects the promise.
  await assert.rejects(bob.directHistory('not an id'), (e) => e.code === 'invalid_field' && e.field === 'with');
  const refused = nextEvent(ann, 'error', (e) => e.code === 'user_offline');
  ann.sendDirect('nobody-here', 'hello?');
  const error = await within(refused, 'user_offline');
  assert.equal(error.request.to, 'nobody-here');
});

test('binary messages go to the binary members of the room, unchanged', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-binary', { serverArgs: SERVER_ARGS });
  const ann = await joined(env, 'board', 'ann', { binary: true });
  const bob = await joined(env, 'board', 'bob', { binary: true });
  const received = nextEvent(bob, 'binary');
  // The chapter's position update: a type byte, then x, y, z as float32.
  const update = new ArrayBuffer(13);
  const view = new DataView(update);
  view.setUint8(0, 1);
  view.setFloat32(1, 1.5, true);
  view.setFloat32(5, -2, true);
  view.setFloat32(9, 3.25, true);
  assert.equal(ann.sendBinary(update), 'sent');
  const { data } = await within(received, 'binary message');
  assert.ok(data instanceof ArrayBuffer);
  const got = new DataView(data);
  assert.equal(data.byteLength, 13);
  assert.equal(got.getUint8(0), 1);
  assert.deepEqual([got.getFloat32(1, true), got.getFloat32(5, true), got.getFloat32(9, true)], [1.5, -2, 3.25]);
});

test('a batching client still gets one chat event per message, in order', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-batch', { serverArgs: [...SERVER_ARGS, '--batch-size', '3'] });
  const ann = await joined(env, 'r', 'ann');
  const bob = await joined(env, 'r', 'bob', { batch: true });
  const batches = [];
  bob.on('message', (m) => { if (m.type === 'message_batch') batches.push(m); });
  const texts = [];
  const all = new Promise((resolve) => {
    bob.on('chat', (m) => {
      texts.push(m.message);
      if (texts.length === 7) resolve();
    });
  });
  for (let i = 0; i < 7; i++) ann.send(`m${i}`, { room: 'r' });
  await within(all, 'seven chat events');
  assert.deepEqual(texts, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  assert.ok(batches.length >= 3, `batches: ${batches.length}`);
  assert.ok(batches.every((b) => b.messages.length <= 3));
});
