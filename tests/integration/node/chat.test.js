'use strict';
// The chat protocol as seen by the npm `ws` client: chatting, membership, typing, errors.

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  ChatClient, isChat, isSystem, isType, roomOf, startServer, usersOf,
} = require('./roomcast');

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const OPTS = { timeout: 30000 };

function assertServerTimestamp(ts) {
  assert.equal(typeof ts, 'number');
  assert.ok(Math.abs(ts - Date.now()) < 60000, `timestamp ${ts} is not close to now`);
}

async function withServer(t, ...flags) {
  const server = await startServer(...flags);
  t.after(() => server.stop());
  return server;
}

test('each connection is greeted with a distinct UUID v4 userId', OPTS, async (t) => {
  const server = await withServer(t);
  const a = await ChatClient.connect(server);
  const b = await ChatClient.connect(server);
  assert.match(a.userId, UUID_V4);
  assert.match(b.userId, UUID_V4);
  assert.notEqual(a.userId, b.userId);
});

test('two users in a room both receive a chat message with all its fields', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b] = await roomOf(server, 'general', 'alice', 'bob');
  a.send({ type: 'chat_message', message: 'hi', timestamp: 123 });
  for (const member of [a, b]) {
    const msg = await member.expect(isType('chat_message'));
    const { timestamp, ...rest } = msg;
    assert.deepEqual(rest, {
      type: 'chat_message', room: 'general', userId: a.userId, username: 'alice', message: 'hi', seq: 1,
    });
    assertServerTimestamp(timestamp);
  }
});

test('joiner gets a welcome and the others are told who joined', OPTS, async (t) => {
  const server = await withServer(t);
  const [a] = await roomOf(server, 'general', 'alice');
  const b = await ChatClient.connect(server);
  const welcome = await b.join('general', 'bob');
  assert.deepEqual(Object.keys(welcome).sort(), ['message', 'room', 'timestamp', 'type']);
  assertServerTimestamp(welcome.timestamp);
  const note = await a.expect(isType('system_message', 'general'));
  assert.equal(note.message, 'bob joined the chat');
  assertServerTimestamp(note.timestamp);
});

test('user_list after a join lists every member in join order, for every member', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b] = await roomOf(server, 'general', 'alice', 'bob');
  const c = await ChatClient.connect(server);
  await c.join('general', 'carol');
  const expected = [
    { id: a.userId, username: 'alice' },
    { id: b.userId, username: 'bob' },
    { id: c.userId, username: 'carol' },
  ];
  for (const member of [a, b, c]) {
    const list = await member.expectUserList('general', expected);
    assert.deepEqual(Object.keys(list).sort(), ['room', 'type', 'users']);
  }
});

test('user_list after a leave no longer lists the member who left', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b, c] = await roomOf(server, 'general', 'alice', 'bob', 'carol');
  b.send({ type: 'leave_room', room: 'general' });
  for (const member of [a, c]) {
    await member.expect(isSystem('general', 'bob left the chat'));
    await member.expectUserList('general', usersOf(a, c));
  }
});

test('user_list after a disconnect no longer lists the disconnected member', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b] = await roomOf(server, 'general', 'alice', 'bob');
  b.ws.terminate(); // drop the socket without a closing handshake
  await a.expect(isSystem('general', 'bob left the chat'));
  await a.expectUserList('general', usersOf(a));
});

test('typing_start is relayed to the others but not echoed to the sender', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b] = await roomOf(server, 'general', 'alice', 'bob');
  a.send({ type: 'typing_start', room: 'general' });
  a.send({ type: 'chat_message', message: 'marker' });
  // Anything sent to a because of its typing would arrive before a's own chat message.
  const { skipped } = await a.recvUntil(isChat('general', 'marker'));
  assert.deepEqual(skipped.filter((m) => m.type.startsWith('typing')), []);
  const seen = await b.expect(isType('typing_start'));
  assert.deepEqual(seen, { type: 'typing_start', room: 'general', userId: a.userId, username: 'alice' });
});

test('typing_stop is relayed to the others but not echoed to the sender', OPTS, async (t) => {
  const server = await withServer(t);
  const [a, b] = await roomOf(server, 'general', 'alice', 'bob');
  a.send({ type: 'typing_start', room: 'general' });
  a.send({ type: 'typing_stop', room: 'general' });
  a.send({ type: 'chat_message', message: 'marker' });
  const { skipped } = await a.recvUntil(isChat('general', 'marker'));
  assert.deepEqual(skipped.filter((m) => m.type.startsWith('typing')), []);
  await b.expect(isType('typing_start'));
  const stop = await b.expect(isType('typing_stop'));
  assert.deepEqual(stop, { type: 'typing_stop', room: 'general', userId: a.userId, username: 'alice' });
});

test('invalid JSON gets an invalid_json error and the connection keeps working', OPTS, async (t) => {
  const server = await withServer(t);
  const [a] = await roomOf(server, 'general', 'alice');
  a.send('{"type": "chat_message", "message": ');
  const err = await a.expect(isType('error'));
  assert.deepEqual(Object.keys(err).sort(), ['code', 'message', 'type']);
  assert.equal(err.code, 'invalid_json');
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  assert.equal(a.ws.readyState, a.ws.OPEN);
  a.send({ type: 'chat_message', message: 'still here' });
  await a.expect(isChat('general', 'still here'));
});

test('chat before joining a room gets a not_in_room error and the connection keeps working', OPTS, async (t) => {
  const server = await withServer(t);
  const a = await ChatClient.connect(server);
  a.send({ type: 'chat_message', message: 'anyone?' });
  assert.equal((await a.expect(isType('error'))).code, 'not_in_room');
  await a.join('general', 'alice');
  a.send({ type: 'chat_message', message: 'now joined' });
  await a.expect(isChat('general', 'now joined'));
});

test('binary frame gets an unsupported_binary error and the connection keeps working', OPTS, async (t) => {
  const server = await withServer(t);
  const [a] = await roomOf(server, 'general', 'alice');
  a.send(Buffer.from('{"type":"chat_message","message":"as bytes"}'));
  assert.equal((await a.expect(isType('error'))).code, 'unsupported_binary');
  a.send({ type: 'chat_message', message: 'as text' });
  const msg = await a.expect(isType('chat_message'));
  assert.equal(msg.message, 'as text');
});
