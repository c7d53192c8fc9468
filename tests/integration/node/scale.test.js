'use strict';
// Fan-out to a full room of 200 `ws` connections from this one process.

const test = require('node:test');
const assert = require('node:assert/strict');
const { ChatClient, startServer } = require('./roomcast');

const CLIENTS = 200;
const ROOM = 'crowd';

test('every one of 200 members receives a message exactly once', { timeout: 120000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());

  // Connect and join in batches, so the accept backlog never matters.
  const members = [];
  for (let i = 0; i < CLIENTS; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, async (_, j) => {
      const c = await ChatClient.connect(server);
      await c.join(ROOM, `user${i + j}`);
      return c;
    }));
    members.push(...batch);
  }
  // Everybody is in once every member has seen a user_list with all of them. Messages are
  // kept in each member's inbox from here on: nothing is skipped and lost.
  for (const m of members) {
    await m.expect((msg) => msg.type === 'user_list' && msg.users.length === CLIENTS, 10000);
    m.inbox.length = 0;
  }

  const sender = members[0];
  sender.send({ type: 'chat_message', message: 'hello crowd' });
  sender.send({ type: 'chat_message', message: 'end' });
  const seqs = new Set();
  for (const m of members) {
    const { skipped } = await m.recvUntil((msg) => msg.type === 'chat_message' && msg.message === 'end', 10000);
    const hello = skipped.filter((msg) => msg.type === 'chat_message');
    assert.equal(hello.length, 1, `${m.username} got ${hello.length} chat messages before "end"`);
    assert.equal(hello[0].message, 'hello crowd');
    assert.equal(hello[0].userId, sender.userId);
    assert.equal(hello[0].room, ROOM);
    seqs.add(hello[0].seq);
  }
  assert.deepEqual([...seqs], [1], 'every member sees the same seq for the same message');
  for (const m of members) m.ws.terminate();
});
