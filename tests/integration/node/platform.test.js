'use strict';
// The chapter's other half as seen by the npm `ws` client: app events (durable, ephemeral,
// no-echo), binary messages, message batches, direct messages and replies named by ref.

const test = require('node:test');
const assert = require('node:assert/strict');
const { ChatClient, isType, roomOf, startServer } = require('./roomcast');

const OPTS = { timeout: 30000 };
const EVENTS = 'document_change:durable,player_moved:no-echo:conflate';

async function withServer(t, ...flags) {
  const server = await startServer(...flags);
  t.after(() => server.stop());
  return server;
}

// Joins with the extension fields (binary, batch, ref) and waits for the welcome.
async function joinWith(client, room, username, extra) {
  client.send({ type: 'join_room', room, username, ...extra });
  await client.expect((m) => m.type === 'system_message' && m.message === `Welcome to ${room}!`);
  client.username = username;
}

test('a durable app event is relayed with the server\'s fields, numbered and acked', OPTS, async (t) => {
  const server = await withServer(t, '--app-events', EVENTS);
  const [ann, bob] = await roomOf(server, 'doc', 'ann', 'bob');
  ann.send({
    type: 'document_change', room: 'doc', id: 'c1', change: { pos: 3, insert: 'a' },
    userId: 'not-me', username: 'mallory', timestamp: 1, seq: 99,
  });
  const got = await bob.expect(isType('document_change', 'doc'));
  assert.deepEqual(got.change, { pos: 3, insert: 'a' });
  assert.equal(got.userId, ann.userId);  // the server's, never the sender's
  assert.equal(got.username, 'ann');
  assert.equal(got.seq, 1);
  assert.ok(Math.abs(got.timestamp - Date.now()) < 60000);
  assert.equal(got.id, undefined);
  const { msg: ack, skipped } = await ann.recvUntil(isType('ack'));
  assert.deepEqual(ack, { type: 'ack', room: 'doc', id: 'c1', seq: 1 });
  // The sender sees its own (echo is the default), with the same seq.
  const echo = skipped.find(isType('document_change', 'doc')) ??
    await ann.expect(isType('document_change', 'doc'));
  assert.equal(echo.seq, 1);
});

test('a no-echo ephemeral event reaches the others only, without a seq', OPTS, async (t) => {
  const server = await withServer(t, '--app-events', EVENTS);
  const [ann, bob, cy] = await roomOf(server, 'arena', 'ann', 'bob', 'cy');
  ann.send({ type: 'player_moved', room: 'arena', x: 1, y: 2 });
  for (const other of [bob, cy]) {
    const got = await other.expect(isType('player_moved', 'arena'));
    assert.equal(got.x, 1);
    assert.equal(got.seq, undefined);
  }
  ann.send({ type: 'chat_message', room: 'arena', message: 'after' });
  const { skipped } = await ann.recvUntil((m) => m.type === 'chat_message' && m.message === 'after');
  assert.equal(skipped.filter((m) => m.type === 'player_moved').length, 0);
  // A type the server does not allow is refused as before.
  ann.send({ type: 'price_update', room: 'arena', price: 1 });
  assert.equal((await ann.expect(isType('error'))).code, 'unknown_type');
});

test('binary messages reach the members that opted in, unchanged, and no one else', OPTS, async (t) => {
  const server = await withServer(t);
  const ann = await ChatClient.connect(server);
  const bob = await ChatClient.connect(server);
  const text = await ChatClient.connect(server);
  await joinWith(ann, 'game', 'ann', { binary: true });
  await joinWith(bob, 'game', 'bob', { binary: true });
  await joinWith(text, 'game', 'text-only', {});
  // The chapter's position update: type byte 1, then x, y, z as float32.
  const position = Buffer.alloc(13);
  position.writeUInt8(1, 0);
  position.writeFloatLE(1.5, 1);
  position.writeFloatLE(-2, 5);
  position.writeFloatLE(0.25, 9);
  ann.send(position);
  const got = await bob.expect((m) => m.binary !== undefined);
  assert.ok(Buffer.compare(got.binary, position) === 0);
  ann.send({ type: 'chat_message', room: 'game', message: 'sync' });
  for (const member of [ann, text]) {
    const { skipped } = await member.recvUntil((m) => m.type === 'chat_message' && m.message === 'sync');
    assert.equal(skipped.filter((m) => m.binary !== undefined).length, 0);
  }
  // From a connection in no binary room: refused, clearly.
  text.send(position);
  assert.equal((await text.expect(isType('error'))).code, 'unsupported_binary');
});

test('a member joined with batch gets the room\'s messages in message_batch, in order', OPTS, async (t) => {
  const server = await withServer(t, '--batch-size', '3', '--batch-interval', '50ms');
  const [ann] = await roomOf(server, 'feed', 'ann');
  const reader = await ChatClient.connect(server);
  await joinWith(reader, 'feed', 'reader', { batch: true });
  for (const text of ['one', 'two', 'three']) ann.send({ type: 'chat_message', room: 'feed', message: text });
  const batch = await reader.expect(isType('message_batch', 'feed'));
  assert.deepEqual(batch.messages.map((m) => [m.type, m.message, m.seq]),
    [['chat_message', 'one', 1], ['chat_message', 'two', 2], ['chat_message', 'three', 3]]);
});

test('a direct message is stored, acked with its seq once, read back; an absent user is user_offline', OPTS, async (t) => {
  const server = await withServer(t);
  const [ann, bob] = await roomOf(server, 'lobby', 'ann', 'bob');
  ann.send({ type: 'direct_message', to: bob.userId, message: 'psst', id: 'd1' });
  const got = await bob.expect(isType('direct_message'));
  assert.equal(got.from, ann.userId);
  assert.equal(got.username, 'ann');
  assert.equal(got.message, 'psst');
  assert.equal(got.seq, 1);
  assert.deepEqual(await ann.expect(isType('ack')), { type: 'ack', to: bob.userId, id: 'd1', seq: 1 });
  // Resent: the same seq, not delivered again (the answer below comes first if it was).
  ann.send({ type: 'direct_message', to: bob.userId, message: 'psst', id: 'd1' });
  assert.deepEqual(await ann.expect(isType('ack')), { type: 'ack', to: bob.userId, id: 'd1', seq: 1 });
  ann.send({ type: 'direct_message', to: bob.userId, message: 'again', id: 'd3' });
  assert.equal((await bob.expect(isType('direct_message'))).message, 'again');
  // Read back by bob: the conversation after seq 0.
  bob.send({ type: 'direct_history', with: ann.userId, since: 0, ref: 'h' });
  const history = await bob.expect(isType('direct_history'));
  assert.deepEqual(history.messages.map((m) => [m.message, m.seq]), [['psst', 1], ['again', 2]]);
  assert.equal(history.ref, 'h');
  // Anonymous ann, and nobody of that id connected: refused, nothing kept.
  ann.send({ type: 'direct_message', to: 'nobody-here', message: 'hello?', id: 'd2' });
  const refused = await ann.expect(isType('error'));
  assert.equal(refused.code, 'user_offline');
  assert.equal(refused.to, 'nobody-here');
  assert.equal(refused.id, 'd2');
});

test('replies are named by ref: joined carries the room, errors name their request and field', OPTS, async (t) => {
  const server = await withServer(t);
  const [ann] = await roomOf(server, 'lobby', 'ann');
  ann.send({ type: 'chat_message', room: 'lobby', message: 'before' });
  await ann.expect(isType('chat_message', 'lobby'));
  const bob = await ChatClient.connect(server);
  bob.send({ type: 'join_room', room: 'lobby', username: 'bob', ref: 'j-1' });
  bob.send({ type: 'join_room', room: 'a<b', ref: 'j-2' });
  const joined = await bob.expect(isType('joined', 'lobby'));
  assert.equal(joined.ref, 'j-1');
  assert.equal(joined.lastSeq, 1);
  assert.deepEqual(joined.users.map((u) => u.username), ['ann', 'bob']);
  assert.deepEqual(joined.messages.map((m) => m.message), ['before']);
  const error = await bob.expect(isType('error'));
  assert.equal(error.ref, 'j-2');
  assert.equal(error.code, 'invalid_field');
  assert.equal(error.field, 'room');
});
