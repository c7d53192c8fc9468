// web/roomcast.js and the server's history (docs/protocol.md, issue 5): rejoining with `since`
// after a restart or kill -9, de-duplication by seq, acks, and resending unacknowledged messages
// with the same id. Real server, real SQLite history; every wait is bounded.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import helpers from '../integration/node/roomcast.js';
import { nextEvent, startWithClients, storedHistory, within } from './server.mjs';

const { sleep } = helpers;
const TEST_TIMEOUT_MS = 90000;
const WAIT_MS = 20000;
const FAST_RECONNECT = { initialDelayMs: 50, maxDelayMs: 300 };

function setup(t, name, serverArgs = []) {
  return startWithClients(t, name, { serverArgs, clientDefaults: { reconnect: FAST_RECONNECT } });
}

async function connectAndJoin(client, room, username) {
  const opened = nextEvent(client, 'open');
  client.connect();
  await opened;
  const outcome = await client.join(room, username);
  assert.equal(outcome.ok, true, `${username} could not join ${room}`);
}

// Polls pred every 20 ms; fails after timeoutMs with `what` and, if given, describe()'s state.
async function until(pred, what, describe = () => '', timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what} ${describe()}`);
    await sleep(20);
  }
}

// Records the chat events of room as [{seq, message, history}], in the order delivered.
function recordChat(client, room) {
  const seen = [];
  client.on('chat', (m) => { if (m.room === room) seen.push({ seq: m.seq, message: m.message, history: m.history }); });
  return seen;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('a reader resumes with since after SIGTERM and kill -9 while another client keeps sending: every seq once',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const env = await setup(t, 'history-resume');
    const room = 'feed';
    // The writer keeps writing through both outages and is back first; the reader comes back
    // about a second later and has to recover what it missed from history.
    const reader = env.client({ reconnect: { initialDelayMs: 1000, maxDelayMs: 1000, jitter: 0 } });
    const writer = env.client({ maxQueuedMessages: 10000 });
    const read = recordChat(reader, room);
    const written = recordChat(writer, room);
    const resumes = [];
    reader.on('history', (h) => { if (h.room === room) resumes.push(h); });
    await connectAndJoin(reader, room, 'reader');
    await connectAndJoin(writer, room, 'writer');

    let sent = 0;
    const outcomes = { sent: 0, queued: 0, dropped: 0 };
    const pump = setInterval(() => { outcomes[writer.send(`m${++sent}`, { room })]++; }, 8);
    t.after(() => clearInterval(pump));
    const readerCount = () => `(reader has ${read.length}, writer sent ${sent}, outcomes ${JSON.stringify(outcomes)})`;

    for (const outage of ['stopCleanly', 'kill']) {
      const before = read.length;
      await until(() => read.length >= before + 60, 'reader sees traffic', readerCount);
      const closed = nextEvent(reader, 'close');
      await env.server[outage]();
      await closed;
      await sleep(150);  // the writer queues meanwhile
      const resumed = nextEvent(reader, 'history', (h) => h.room === room, WAIT_MS);
      await env.server.start();
      const history = await resumed;
      assert.equal(history.resumed, true, `rejoined with since after ${outage}`);
    }
    await until(() => read.length >= sent - 20, 'reader catches up', readerCount);
    clearInterval(pump);
    await until(() => writer.unackedMessages === 0 && writer.queuedMessages === 0, 'every message acknowledged',
      () => `(unacked ${writer.unackedMessages}, queued ${writer.queuedMessages})`);
    assert.equal(outcomes.dropped, 0);

    const stored = await storedHistory(env.server, room);
    await until(() => reader.lastSeq(room) === stored.last_seq && writer.lastSeq(room) === stored.last_seq,
      `both clients reach seq ${stored.last_seq}`, () => `(reader ${reader.lastSeq(room)}, writer ${writer.lastSeq(room)})`);

    // Exactly the room's sequence, no gap, no duplicate: the same for both clients and the server.
    const expected = stored.messages.map((m) => ({ seq: m.seq, message: m.message }));
    assert.deepEqual(expected.map((m) => m.seq), range(1, stored.last_seq));
    for (const [name, seen] of [['reader', read], ['writer', written]]) {
      assert.deepEqual(seen.map(({ seq, message }) => ({ seq, message })), expected, `${name}'s messages`);
    }
    // Every message the writer sent is stored once (resends of unacknowledged ones included).
    assert.deepEqual(stored.messages.map((m) => m.message), range(1, sent).map((i) => `m${i}`));
    // The reader really did resume through history, and was told nothing is missing.
    assert.ok(read.some((m) => m.history), 'some messages came from history');
    assert.equal(resumes.length, 2);
    assert.ok(resumes.every((h) => h.recovered), JSON.stringify(resumes));
  });

test('messages sent while the server is down are queued, resent after the restart and stored once',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const env = await setup(t, 'history-queue');
    const room = 'queue';
    const ann = env.client({ reconnect: { initialDelayMs: 60000, maxDelayMs: 60000, jitter: 0 } });
    const seen = recordChat(ann, room);
    const acks = [];
    ann.on('ack', (a) => acks.push(a));
    await connectAndJoin(ann, room, 'ann');
    const firstAck = nextEvent(ann, 'ack');
    assert.equal(ann.send('before', { room, id: 'before-1' }), 'sent');
    assert.deepEqual(await firstAck, { id: 'before-1', room, seq: 1 });
    assert.equal(ann.unackedMessages, 0);

    const closed = nextEvent(ann, 'close');
    await env.server.kill();
    await closed;
    const offline = ['one', 'two', 'three', 'four', 'five'];
    for (const text of offline) assert.equal(ann.send(text, { room }), 'queued');
    assert.equal(ann.queuedMessages, offline.length);

    await env.server.start();
    const allAcked = new Promise((resolve) => {
      const off = ann.on('ack', () => { if (acks.length === 1 + offline.length) { off(); resolve(); } });
    });
    ann.reconnectNow();
    await within(allAcked, () => `all acks; got ${JSON.stringify(acks)}`);
    assert.equal(ann.queuedMessages, 0);
    assert.equal(ann.unackedMessages, 0);

    const stored = await storedHistory(env.server, room);
    assert.deepEqual(stored.messages.map((m) => m.message), ['before', ...offline]);
    assert.deepEqual(stored.messages.map((m) => m.seq), range(1, 1 + offline.length));
    // Each ack names the seq the message is stored under; the client showed each message once.
    for (const ack of acks.slice(1)) {
      assert.equal(stored.messages.find((m) => m.seq === ack.seq).message, offline[ack.seq - 2]);
    }
    await until(() => seen.length === stored.messages.length, 'own echoes', () => JSON.stringify(seen));
    assert.deepEqual(seen.map((m) => m.message), ['before', ...offline]);
  });

test('a message stored but not acknowledged before kill -9 is resent with its id and stored once',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const env = await setup(t, 'history-resend');
    const room = 'resend';
    // A network fault: once a socket is `stalled`, what the server writes to it never arrives.
    const sockets = [];
    class StallableWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        this.stalled = false;
        sockets.push(this);
      }

      addEventListener(type, listener, options) {
        if (type !== 'message') return super.addEventListener(type, listener, options);
        return super.addEventListener(type, (event) => { if (!this.stalled) listener(event); }, options);
      }
    }
    const ann = env.client({ WebSocket: StallableWebSocket });
    const seen = recordChat(ann, room);
    await connectAndJoin(ann, room, 'ann');
    const bob = await env.observer(room, 'bob');

    // ann's write reaches the server, but the echo and the ack never reach ann.
    sockets.at(-1).stalled = true;
    assert.equal(ann.send('exactly once', { room, id: 'once-1' }), 'sent');
    const delivered = await bob.expect((m) => m.type === 'chat_message' && m.message === 'exactly once');
    // bob's own acknowledged message after it proves ann's is durable (acks follow seq order).
    bob.send({ type: 'chat_message', room, message: 'after it', id: 'bob-1' });
    const bobAck = await bob.expect((m) => m.type === 'ack' && m.id === 'bob-1');
    assert.equal(bobAck.seq, delivered.seq + 1);
    assert.equal(ann.unackedMessages, 1);

    const closed = nextEvent(ann, 'close');
    await env.server.kill();
    await closed;
    assert.equal(ann.unackedMessages, 1);
    const sentBefore = ann.stats.messagesSent;

    const ack = nextEvent(ann, 'ack', (a) => a.id === 'once-1', WAIT_MS);
    await env.server.start();
    assert.deepEqual(await ack, { id: 'once-1', room, seq: delivered.seq });  // the original seq
    assert.equal(ann.stats.messagesSent, sentBefore + 1, 'resent once');
    assert.equal(ann.unackedMessages, 0);

    const stored = await storedHistory(env.server, room);
    assert.deepEqual(stored.messages.map((m) => [m.seq, m.message]),
      [[delivered.seq, 'exactly once'], [delivered.seq + 1, 'after it']]);
    // ann never read the echo; the rejoin's history brings the message, marked as her own.
    await until(() => seen.length === 2, 'history after the rejoin', () => JSON.stringify(seen));
    assert.deepEqual(seen, [
      { seq: delivered.seq, message: 'exactly once', history: true },
      { seq: delivered.seq + 1, message: 'after it', history: true },
    ]);
  });

test('a burst cut by kill -9 is stored exactly once after the resends', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'history-burst');
  const room = 'burst';
  const ann = env.client({ maxQueuedMessages: 1000 });
  // More than the server holds behind a join while its room loads (256): were they written
  // before the rejoin is answered, some would be refused for now and, resent later, stored
  // after later ones.
  const errors = [];
  ann.on('error', (e) => errors.push(`${e.code} ${e.request?.message}`));
  await connectAndJoin(ann, room, 'ann');
  const texts = range(1, 300).map((i) => `b${i}`);
  const outcomes = [];
  // Half now, the server dies with some written, stored or acknowledged and some not, the rest
  // while it is down.
  for (const text of texts.slice(0, 150)) outcomes.push(ann.send(text, { room }));
  await env.server.kill();
  for (const text of texts.slice(150)) outcomes.push(ann.send(text, { room }));
  assert.ok(!outcomes.includes('dropped'));
  await env.server.start();
  await until(() => ann.state === 'open' && ann.unackedMessages === 0 && ann.queuedMessages === 0,
    'every message acknowledged', () => `(unacked ${ann.unackedMessages}, queued ${ann.queuedMessages})`);
  const stored = await storedHistory(env.server, room);
  assert.deepEqual(stored.messages.map((m) => m.message), texts);
  assert.deepEqual(stored.messages.map((m) => m.seq), range(1, texts.length));
  assert.deepEqual(errors, []);
});

test('a plain join gets recent history as chat events; leave forgets the room\'s seq', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'history-join');
  const room = 'past';
  const bob = await env.observer(room, 'bob');
  for (const text of ['first', 'second', 'third']) bob.send({ type: 'chat_message', room, message: text });
  await bob.expect((m) => m.type === 'chat_message' && m.message === 'third');

  const ann = env.client();
  const seen = recordChat(ann, room);
  const history = nextEvent(ann, 'history');
  await connectAndJoin(ann, room, 'ann');
  assert.deepEqual(await history, { room, resumed: false, recovered: true, count: 3 });
  assert.deepEqual(seen.map((m) => [m.seq, m.message, m.history]),
    [[1, 'first', true], [2, 'second', true], [3, 'third', true]]);
  assert.equal(ann.lastSeq(room), 3);

  const live = nextEvent(ann, 'chat', (m) => m.message === 'live');
  bob.send({ type: 'chat_message', room, message: 'live' });
  assert.equal((await live).history, false);
  assert.equal(ann.lastSeq(room), 4);

  ann.leave(room);
  assert.equal(ann.lastSeq(room), null);
});

test('a message to every room is kept until each room has acknowledged it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'history-every-room');
  const ann = env.client();
  await connectAndJoin(ann, 'one', 'ann');
  assert.equal((await ann.join('two')).ok, true);
  const acks = [];
  const unackedAfter = [];
  const both = new Promise((resolve) => {
    ann.on('ack', (a) => {
      acks.push(a);
      unackedAfter.push(ann.unackedMessages);
      if (acks.length === 2) resolve();
    });
  });
  assert.equal(ann.send('to both', { id: 'both-1' }), 'sent');
  await within(both, () => `two acks; got ${JSON.stringify(acks)}`);
  assert.deepEqual(unackedAfter, [1, 0], 'kept after the first room\'s ack');
  assert.deepEqual(acks.map((a) => [a.id, a.room, a.seq]).sort(), [['both-1', 'one', 1], ['both-1', 'two', 1]]);
  assert.equal(ann.unackedMessages, 0);
});

test('a rejoin beyond the retained history is told that messages may be missing', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'history-trimmed', ['--history-size', '5']);
  const room = 'short';
  const ann = env.client();
  const seen = recordChat(ann, room);
  await connectAndJoin(ann, room, 'ann');
  assert.equal(ann.lastSeq(room), 0);  // welcomed into an empty room: nothing missed so far
  ann.close();

  const bob = await env.observer(room, 'bob');
  for (let i = 1; i <= 10; i++) bob.send({ type: 'chat_message', room, message: `n${i}` });
  await bob.expect((m) => m.type === 'chat_message' && m.message === 'n10');

  const history = nextEvent(ann, 'history');
  ann.connect();
  assert.deepEqual(await history, { room, resumed: true, recovered: false, count: 5 });
  assert.deepEqual(seen.map((m) => [m.seq, m.message]), [[6, 'n6'], [7, 'n7'], [8, 'n8'], [9, 'n9'], [10, 'n10']]);
});

test('a server whose history ends below what the client saw is followed, not ignored', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'history-behind');
  const room = 'reset';
  const ann = env.client();
  const seen = recordChat(ann, room);
  await connectAndJoin(ann, room, 'ann');
  for (const text of ['a', 'b', 'c']) ann.send(text, { room });
  await until(() => ann.lastSeq(room) === 3 && ann.unackedMessages === 0, 'three messages stored');

  // The same server with an empty history (as after losing its data): seq starts again at 1.
  const closed = nextEvent(ann, 'close');
  await env.server.stopCleanly();
  await closed;
  env.server.dataDir += '-empty';
  const history = nextEvent(ann, 'history', () => true, WAIT_MS);
  await env.server.start();
  assert.deepEqual(await history, { room, resumed: true, recovered: false, count: 0 });
  assert.equal(ann.lastSeq(room), 0);

  const fresh = nextEvent(ann, 'chat', (m) => m.message === 'after the reset');
  ann.send('after the reset', { room });
  assert.equal((await fresh).seq, 1);
  assert.deepEqual(seen.map((m) => [m.seq, m.message]), [[1, 'a'], [2, 'b'], [3, 'c'], [1, 'after the reset']]);
});

// The server delivers a message only once it is durable, so whatever a reader saw live survives
// a kill -9 under the same seq, and the sender's resend of it is recognised by its id.
test('messages seen live are neither lost nor doubled across kill -9',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const env = await setup(t, 'history-seen');
    for (let attempt = 1; attempt <= 5; attempt++) {
      const room = `seen${attempt}`;
      const reader = env.client();
      const writer = env.client({ maxQueuedMessages: 1000 });
      const read = recordChat(reader, room);
      await connectAndJoin(reader, room, 'reader');
      await connectAndJoin(writer, room, 'writer');
      // SIGKILL the moment the reader has seen part of the burst (kill() signals synchronously).
      const killed = new Promise((resolve) => {
        const off = reader.on('chat', () => { if (read.length === 50) { off(); resolve(env.server.kill()); } });
      });
      for (let i = 1; i <= 300; i++) writer.send(`s${i}`, { room });
      await within(killed, () => `the reader seeing the burst; saw ${read.length}`);
      await env.server.start();
      await until(() => writer.state === 'open' && writer.unackedMessages === 0 && writer.queuedMessages === 0,
        'writer acknowledged');
      const stored = await storedHistory(env.server, room);
      await until(() => reader.lastSeq(room) === stored.last_seq, 'reader catches up');
      assert.deepEqual(read.map(({ seq, message }) => ({ seq, message })),
        stored.messages.map(({ seq, message }) => ({ seq, message })), `attempt ${attempt}`);
      reader.close();
      writer.close();
    }
  });
