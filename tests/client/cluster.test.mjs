// web/roomcast.js and cluster mode (docs/protocol.md, cluster_unavailable): a chat message the
// server refuses only for now is kept and resent with its id until it is stored, once.
// First against a scripted socket (the library's own bookkeeping, fake timers), then two real
// roomcast nodes on a real redis-server that is stopped and restarted. Every wait is bounded.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import helpers from '../integration/node/roomcast.js';
import { DEFAULT_RESEND, RoomcastClient } from '../../web/roomcast.js';
import { nextEvent, recordErrors, ScriptedSocket, scriptedClient, storedHistory, within } from './server.mjs';

const { httpStatus, RedisServer, RoomcastServer, sleep } = helpers;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 20000;

const refusal = (room, id) => ({
  type: 'error', code: 'cluster_unavailable', message: 'cluster unavailable: Redis cannot be reached right now', room, id,
});
const ack = (room, id, seq) => ({ type: 'ack', room, id, seq });

test('a cluster_unavailable naming a message keeps it, out of turn, and resends the same frame', async (t) => {
  const { client, socket } = await scriptedClient(t, { resend: { jitter: 0 } });
  const errors = recordErrors(client);
  assert.equal(client.send('one', { room: 'lobby', id: 'm1' }), 'sent');
  assert.equal(client.send('two', { room: 'lobby', id: 'm2' }), 'sent');
  const [one, two] = socket.take();
  const refusedJoin = client.join('elsewhere');
  assert.equal(socket.take()[0].type, 'join_room');

  // Redis drops: m2's refusal comes first, then the in-order refusal of the join; m1 is still
  // in flight. Neither may be taken for the other.
  socket.receive(refusal('lobby', 'm2'));
  socket.receive({ type: 'error', code: 'cluster_unavailable', message: 'cluster unavailable: no room' });
  const joinOutcome = await refusedJoin;
  assert.equal(joinOutcome.ok, false);
  assert.equal(joinOutcome.error.code, 'cluster_unavailable');
  assert.equal(joinOutcome.error.request.type, 'join_room');
  assert.equal(joinOutcome.error.retrying, false);
  assert.deepEqual(client.rooms, ['lobby']);
  assert.equal(errors.length, 2);
  assert.equal(errors[0].code, 'cluster_unavailable');
  assert.equal(errors[0].retrying, true);
  assert.equal(errors[0].room, 'lobby');
  assert.equal(errors[0].request.id, 'm2');
  assert.equal(client.unackedMessages, 2);

  // A message sent meanwhile waits behind the refused one.
  assert.equal(client.send('three', { room: 'lobby', id: 'm3' }), 'queued');
  t.mock.timers.tick(DEFAULT_RESEND.initialDelayMs - 1);
  assert.deepEqual(socket.take(), []);
  t.mock.timers.tick(1);
  const resent = socket.take();
  assert.deepEqual(resent.map((f) => f.id), ['m2', 'm3']);
  assert.deepEqual(resent[0], two);  // the same frame: same id, text and timestamp
  assert.equal(client.queuedMessages, 0);

  // m1's echo and ack, then m2's and m3's: all stored, each acked once.
  socket.receive({ type: 'chat_message', room: 'lobby', userId: 'u1', username: 'ann', message: 'one', timestamp: 2, seq: 1 });
  socket.receive(ack('lobby', 'm1', 1));
  socket.receive(ack('lobby', 'm2', 2));
  socket.receive(ack('lobby', 'm3', 3));
  assert.equal(client.unackedMessages, 0);
  assert.equal(one.id, 'm1');
  t.mock.timers.tick(60000);
  assert.deepEqual(socket.take(), []);
});

test('resends back off from 500 ms, doubling to 10 s, and start over after an ack', async (t) => {
  const { client, socket } = await scriptedClient(t, { resend: { jitter: 0 } });
  recordErrors(client);
  client.send('again and again', { room: 'lobby', id: 'r1' });
  socket.take();
  const gaps = [];
  for (let round = 0; round < 7; round++) {
    socket.receive(refusal('lobby', 'r1'));
    let waited = 0;
    while (socket.sent.length === 0 && waited < 20000) {
      t.mock.timers.tick(100);
      waited += 100;
    }
    assert.deepEqual(socket.take().map((f) => f.id), ['r1']);
    gaps.push(waited);
  }
  assert.deepEqual(gaps, [500, 1000, 2000, 4000, 8000, 10000, 10000]);

  // An ack: the server stores again, so the next refusal waits the first delay again.
  socket.receive(ack('lobby', 'r1', 1));
  client.send('later', { room: 'lobby', id: 'r2' });
  socket.take();
  socket.receive(refusal('lobby', 'r2'));
  t.mock.timers.tick(500);
  assert.deepEqual(socket.take().map((f) => f.id), ['r2']);
});

test('the transient unavailable (in order, no id) is retried; other refusals still drop the message', async (t) => {
  const { client, socket } = await scriptedClient(t, { resend: { initialDelayMs: 50, jitter: 0 } });
  const errors = recordErrors(client);
  client.send('too long for the server', { room: 'lobby', id: 'bad' });
  client.send('storage behind', { room: 'lobby', id: 'slow' });
  socket.take();
  socket.receive({ type: 'error', code: 'invalid_field', message: 'Message too long' });
  socket.receive({ type: 'error', code: 'unavailable', message: 'History storage is not keeping up' });
  assert.deepEqual(errors.map((e) => [e.code, e.request?.id, e.retrying]),
    [['invalid_field', 'bad', false], ['unavailable', 'slow', true]]);
  assert.equal(client.unackedMessages, 1);
  t.mock.timers.tick(50);
  assert.deepEqual(socket.take().map((f) => f.id), ['slow']);
});

test('a message to every room refused in one room is resent until that room acks too', async (t) => {
  const { client, socket } = await scriptedClient(t, { resend: { initialDelayMs: 50, jitter: 0 } });
  const side = client.join('side');
  socket.take();
  socket.welcome('side');
  await side;
  client.send('to all', { id: 'all' });
  socket.take();
  socket.receive(ack('lobby', 'all', 1));
  socket.receive(refusal('side', 'all'));
  assert.equal(client.unackedMessages, 1);
  t.mock.timers.tick(50);
  assert.deepEqual(socket.take().map((f) => [f.id, f.room]), [['all', undefined]]);
  socket.receive(ack('lobby', 'all', 1));  // the server recognises the id where it is stored
  assert.equal(client.unackedMessages, 1);
  socket.receive(ack('side', 'all', 1));
  assert.equal(client.unackedMessages, 0);
});

test('a reconnect resends a refused message once, without the pending resend', async (t) => {
  const { client, socket } = await scriptedClient(t, { resend: { initialDelayMs: 1000, jitter: 0 },
    reconnect: { initialDelayMs: 10, jitter: 0 } });
  recordErrors(client);
  client.send('across a reconnect', { room: 'lobby', id: 'x1' });
  socket.take();
  socket.receive(refusal('lobby', 'x1'));
  socket.drop();
  t.mock.timers.tick(10);
  const next = ScriptedSocket.last;
  assert.notEqual(next, socket);
  next.greet('u2');
  assert.deepEqual(next.take().map((f) => f.type === 'join_room' ? `join ${f.room}` : f.id), ['join lobby']);
  next.welcome('lobby');
  assert.deepEqual(next.take().map((f) => f.id), ['x1']);
  t.mock.timers.tick(5000);
  assert.deepEqual(next.take(), []);  // the old connection's resend does not fire
  next.receive(ack('lobby', 'x1', 1));
  assert.equal(client.unackedMessages, 0);
});

// The server holds what a connection sends behind a join until the room is loaded, up to a bound
// (256 messages); beyond it, it refuses messages for now but takes those that arrive after the
// room is loaded, which would then be stored before the refused ones' resends. So the client
// writes no chat message while a join awaits its answer.
const written = (socket) => socket.take().map((f) => f.type === 'join_room' ? `join ${f.room}` : f.id);

test('after a reconnect the unacknowledged messages, then the queue, are written once every rejoin is answered', async (t) => {
  const { client, socket } = await scriptedClient(t, { reconnect: { initialDelayMs: 10, jitter: 0 } });
  const side = client.join('side');
  socket.take();
  socket.welcome('side');
  await side;
  assert.equal(client.send('one', { room: 'lobby', id: 'm1' }), 'sent');
  assert.equal(client.send('two', { room: 'side', id: 'm2' }), 'sent');
  socket.take();
  socket.drop();
  assert.equal(client.send('three', { room: 'lobby', id: 'm3' }), 'queued');
  t.mock.timers.tick(10);
  const next = ScriptedSocket.last;
  next.greet('u2');
  assert.deepEqual(written(next), ['join lobby', 'join side']);
  assert.equal(client.send('four', { room: 'side', id: 'm4' }), 'queued');
  next.welcome('lobby');
  assert.deepEqual(written(next), []);  // side's rejoin is not answered yet
  next.welcome('side');
  assert.deepEqual(written(next), ['m1', 'm2', 'm3', 'm4']);
  assert.equal(client.queuedMessages, 0);
  assert.equal(client.send('five', { room: 'lobby', id: 'm5' }), 'sent');
});

test('a message sent while a join awaits its answer is queued and written once it is answered, welcome or refusal', async (t) => {
  const { client, socket } = await scriptedClient(t);
  const slow = client.join('slow');
  assert.deepEqual(written(socket), ['join slow']);
  assert.equal(client.send('meanwhile', { room: 'lobby', id: 'w1' }), 'queued');
  assert.deepEqual(written(socket), []);
  socket.welcome('slow');
  assert.equal((await slow).ok, true);
  assert.deepEqual(written(socket), ['w1']);

  const refused = client.join('refused');
  assert.deepEqual(written(socket), ['join refused']);
  assert.equal(client.send('again', { room: 'lobby', id: 'w2' }), 'queued');
  // The join's answer comes in order; the chat message written before it is answered first.
  socket.receive({ type: 'chat_message', room: 'lobby', userId: 'u1', username: 'ann', message: 'meanwhile', timestamp: 2, seq: 1 });
  socket.receive({ type: 'error', code: 'forbidden_room', message: 'Your token does not allow this room' });
  assert.equal((await refused).ok, false);
  assert.deepEqual(written(socket), ['w2']);
});

// ---- Two real nodes on a real Redis ------------------------------------------------------------

// Polls pred every 50 ms; fails after timeoutMs with `what` and, if given, describe()'s state.
async function until(pred, what, describe = () => '', timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what} ${describe()}`);
    await sleep(50);
  }
}

// Records the chat events of room as [{seq, message}], in the order delivered.
function recordChat(client, room) {
  const seen = [];
  client.on('chat', (m) => { if (m.room === room) seen.push({ seq: m.seq, message: m.message }); });
  return seen;
}

const count = (list, text) => list.filter((m) => m.message === text).length;

test('messages refused while Redis is down are kept, resent once it is back, and stored once',
  { timeout: TEST_TIMEOUT_MS, skip: RedisServer.available() ? false : 'no redis-server' }, async (t) => {
    const room = 'lobby';
    const N = 6;
    const clients = [];
    const nodes = [];
    let redis = null;
    // One cleanup, in order: clients, nodes, then Redis; each step runs even if one before failed.
    t.after(async () => {
      for (const c of clients) c.close();
      const failures = [];
      for (const node of nodes) {
        try { await node.stopCleanly(); } catch (err) { failures.push(err); }
      }
      if (redis) await redis.stop();
      if (failures.length > 0) throw failures[0];
    });

    redis = await RedisServer.start('cluster');
    const clusterArgs = (id) => ['--redis', redis.url, '--node-id', id, '--cluster-node-ttl', '2s'];
    for (const id of ['n1', 'n2']) {
      const node = new RoomcastServer(await helpers.freePort(), `cluster-${id}`, clusterArgs(id));
      nodes.push(node);
      await node.start();
    }
    const [node1, node2] = nodes;
    const clientOn = (node) => {
      const c = new RoomcastClient({ url: `${node.wsUrl}/`, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 300 },
        resend: { initialDelayMs: 100, maxDelayMs: 800 } });
      clients.push(c);
      return c;
    };
    const ann = clientOn(node1);
    const bob = clientOn(node2);
    for (const [c, name] of [[ann, 'ann'], [bob, 'bob']]) {
      const opened = nextEvent(c, 'open');
      c.connect();
      await opened;
      assert.equal((await c.join(room, name)).ok, true, `${name} could not join`);
    }
    const annSeen = recordChat(ann, room);
    const bobSeen = recordChat(bob, room);
    const acks = new Map();  // id -> seq
    ann.on('ack', (a) => { if (a.room === room) acks.set(a.id, a.seq); });
    const errors = recordErrors(ann);

    // The cluster works: a first message reaches the other node.
    const firstAck = nextEvent(ann, 'ack', () => true, WAIT_MS);
    ann.send('before the outage', { room, id: 'before' });
    await firstAck;
    await until(() => count(bobSeen, 'before the outage') === 1, 'bob sees the first message');

    // Redis goes away; both nodes notice.
    await redis.stop();
    for (const node of nodes) {
      await until(async () => (await httpStatus(`${node.httpUrl}/healthz`)) === 503, `${node.name} reports Redis down`);
    }

    const texts = Array.from({ length: N }, (_, i) => `while down ${i + 1}`);
    const ids = texts.map((_, i) => `down-${i + 1}`);
    // One tick: nothing can be refused in between, so every one is written at once.
    const outcomes = texts.map((text, i) => ann.send(text, { room, id: ids[i] }));
    assert.deepEqual(outcomes, texts.map(() => 'sent'));
    await until(() => ids.every((id) => errors.some((e) => e.request?.id === id)),
      'each message refused at least once', () => JSON.stringify(errors.map((e) => [e.code, e.request?.id])));
    for (const e of errors) {
      assert.equal(e.code, 'cluster_unavailable');
      assert.equal(e.retrying, true);
      assert.equal(e.room, room);
      assert.ok(ids.includes(e.request.id));
    }
    assert.ok(ann.unackedMessages > 0);
    assert.equal(ann.unackedMessages, N);

    // A join to a room node 1 has not loaded is refused in order, and fails; the out-of-turn
    // refusals around it are not taken for its answer, nor it for theirs.
    const refusedJoin = await within(ann.join('not-loaded'), 'the join to a room not loaded is answered');
    assert.equal(refusedJoin.ok, false);
    assert.equal(refusedJoin.error.code, 'cluster_unavailable');
    assert.equal(refusedJoin.error.request.type, 'join_room');
    assert.equal(refusedJoin.error.retrying, false);
    assert.deepEqual(ann.rooms, [room]);
    assert.equal(ann.unackedMessages, N);
    await sleep(300);  // a few resend rounds while Redis is still down
    assert.equal(ann.unackedMessages, N);
    for (const text of texts) {
      assert.equal(count(annSeen, text), 0, `${text} delivered while Redis was down`);
      assert.equal(count(bobSeen, text), 0, `${text} delivered while Redis was down`);
    }

    // Redis is back (same port, same data): every message is acked, delivered and stored once.
    await redis.start();
    await until(() => ids.every((id) => acks.has(id)) && ann.unackedMessages === 0, 'every message acked',
      () => `(acked ${[...acks.keys()]}; unacked ${ann.unackedMessages}; node logs ${node1.logPath})`, 30000);
    // A marker after them: per-room order puts any duplicate in front of it.
    ann.send('after the outage', { room, id: 'after' });
    const bothSawMarker = () => count(annSeen, 'after the outage') === 1 && count(bobSeen, 'after the outage') === 1;
    await until(bothSawMarker, 'both clients see the marker',
      () => `(ann ${JSON.stringify(annSeen)} bob ${JSON.stringify(bobSeen)})`);

    for (const text of texts) {
      assert.equal(count(annSeen, text), 1, `ann received "${text}" once`);
      assert.equal(count(bobSeen, text), 1, `bob received "${text}" once`);
    }
    assert.deepEqual(annSeen, bobSeen, 'both clients saw the same messages in the same order');
    const seqs = annSeen.map((m) => m.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(seqs).size, seqs.length);
    // Each ack named the seq the message was delivered under.
    for (const [i, id] of ids.entries()) {
      assert.equal(acks.get(id), annSeen.find((m) => m.message === texts[i]).seq, `ack of ${id}`);
    }

    t.diagnostic(`${errors.length} refusals; ${ann.stats.messagesSent} chat frames written for ${N + 2} messages; ` +
      `order stored: ${annSeen.map((m) => m.message).join(' | ')}`);
    for (const node of nodes) {
      const stored = await storedHistory(node, room);
      const messages = stored.messages.map((m) => ({ seq: m.seq, message: m.message }));
      for (const text of texts) assert.equal(count(messages, text), 1, `${node.name} stores "${text}" once`);
      assert.deepEqual(messages, annSeen, `${node.name}'s history is what the clients saw`);
    }
  });
