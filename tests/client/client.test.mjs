// web/roomcast.js against the real server: joining, chatting, errors, typing, latency.
// Observers are the plain `ws` clients of tests/integration/node/roomcast.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import helpers from '../integration/node/roomcast.js';
import { RoomcastClient, backoffDelay, charCount, DEFAULT_RECONNECT } from '../../web/roomcast.js';
import { nextEvent, recordErrors, scriptedClient, startWithClients } from './server.mjs';

const { isChat, isType } = helpers;
const TEST_TIMEOUT_MS = 60000;

// A started server and a way to make library clients on it; everything is ended after the test.
function setup(t, name) {
  return startWithClients(t, name);
}

async function connected(client) {
  const opened = nextEvent(client, 'open');
  client.connect();
  return opened;
}

test('backoff grows exponentially, is capped and jittered', () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 };
  const noJitter = () => 0;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 40].map((a) => backoffDelay(a, options, noJitter)),
    [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(backoffDelay(2, options, () => 0.999999), 200);  // at most half taken off
  assert.equal(backoffDelay(0, {}, noJitter), DEFAULT_RECONNECT.initialDelayMs);
});

test('limits count code points, like the server', () => {
  assert.equal(charCount('ann'), 3);
  assert.equal(charCount('😀😀'), 2);
});

test('sends before the connection are queued, with a bound, and say so', () => {
  const client = new RoomcastClient({ url: 'ws://127.0.0.1:9/', WebSocket, maxQueuedMessages: 2 });
  assert.equal(client.state, 'idle');
  assert.deepEqual([client.send('a'), client.send('b'), client.send('c')], ['queued', 'queued', 'dropped']);
  assert.equal(client.queuedMessages, 2);
  client.close();
  assert.equal(client.send('d'), 'dropped');
});

test('joins rooms, chats, sees the user list and measures latency', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'client-chat');
  const ann = env.client();
  const hello = await connected(ann);
  assert.equal(hello.reconnected, false);
  assert.equal(ann.state, 'open');

  assert.deepEqual(await ann.join('  lobby ', 'ann'), { ok: true, room: 'lobby' });
  assert.deepEqual(await ann.join('side'), { ok: true, room: 'side' });
  assert.deepEqual(ann.rooms, ['lobby', 'side']);
  assert.equal(ann.username, 'ann');

  const usersSeen = nextEvent(ann, 'users', (e) => e.room === 'lobby' && e.users.length === 2);
  const bob = await env.observer('lobby', 'bob');
  const { users } = await usersSeen;
  assert.deepEqual(users.map((u) => u.username).sort(), ['ann', 'bob']);
  assert.deepEqual(ann.users('lobby'), users);

  const echo = nextEvent(ann, 'chat', (m) => m.own);
  const latency = nextEvent(ann, 'latency');
  assert.equal(ann.send('hello bob', { room: 'lobby' }), 'sent');
  const got = await bob.expect(isChat('lobby', 'hello bob'));
  assert.equal(got.username, 'ann');
  assert.equal(got.userId, ann.userId);
  const own = await echo;
  assert.equal(own.room, 'lobby');
  assert.equal(typeof own.seq, 'number');
  const { ms } = await latency;
  assert.ok(Number.isFinite(ms) && ms >= 0);
  assert.equal(ann.stats.latencyMs, ms);
  assert.equal(ann.stats.messagesSent, 1);

  const fromBob = nextEvent(ann, 'chat', (m) => !m.own);
  bob.send({ type: 'chat_message', message: '<img src=x onerror=alert(1)>' });
  const other = await fromBob;
  assert.equal(other.message, '<img src=x onerror=alert(1)>');
  assert.equal(other.username, 'bob');
  assert.ok(ann.stats.messagesReceived >= 2);
  assert.ok(ann.stats.uptimeMs >= 0);
});

test('a refused join is reported with the server error and forgotten', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'client-errors');
  const ann = env.client();
  await connected(ann);

  const errorEvent = nextEvent(ann, 'error');
  const refused = await ann.join('lobby', '<b>ann</b>');
  assert.equal(refused.ok, false);
  assert.equal(refused.error.code, 'invalid_field');
  assert.equal(refused.error.field, 'username');  // named by the server, not read from the text
  const error = await errorEvent;
  assert.equal(error.code, 'invalid_field');
  assert.equal(error.request.type, 'join_room');
  assert.deepEqual(ann.rooms, []);
  assert.equal(ann.username, null);

  // The connection is still usable, and the username may be chosen again.
  assert.equal((await ann.join('lobby', 'ann')).ok, true);
  const mismatch = await ann.join('other', 'someone-else');
  assert.equal(mismatch.error.code, 'username_mismatch');
  assert.deepEqual(ann.rooms, ['lobby']);

  const tooLong = nextEvent(ann, 'error');
  assert.equal(ann.send('x'.repeat(501), { room: 'lobby' }), 'sent');
  const refusedChat = await tooLong;
  assert.equal(refusedChat.code, 'invalid_field');
  assert.equal(refusedChat.field, 'message');
  assert.equal(refusedChat.request.type, 'chat_message');
});

test('replies are matched to requests by ref: a join resolves with the room state', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'client-ref');
  const bob = await env.observer('lobby', 'bob');
  bob.send({ type: 'chat_message', room: 'lobby', message: 'before ann' });
  await bob.expect(isChat('lobby', 'before ann'));
  const ann = env.client();
  await connected(ann);
  const history = [];
  ann.on('chat', (m) => { if (m.history) history.push(m.message); });
  // Several requests in flight at once; each answer names its own.
  const [lobby, bad, other] = await Promise.all([
    ann.join('lobby', 'ann'), ann.join('x<y'), ann.join('other'),
  ]);
  assert.equal(lobby.ok, true);
  assert.equal(other.ok, true);
  assert.equal(bad.ok, false);
  assert.equal(bad.error.field, 'room');
  assert.equal(bad.error.request.room, 'x<y');
  // The join's answer carried the room's state: members and history are known at once.
  assert.deepEqual(ann.users('lobby').map((u) => u.username), ['bob', 'ann']);
  assert.deepEqual(history, ['before ann']);
  assert.equal(ann.lastSeq('lobby'), 1);
  assert.equal(ann.lastSeq('other'), 0);
});

test('names are kept as the server keeps them: NFC, without invisible ends', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'client-names');
  const ann = env.client();
  await connected(ann);
  // Decomposed "é" and a word joiner: the server welcomes us to "café", and so does the client.
  assert.deepEqual(await ann.join('\u2060cafe\u0301 ', '\u200bZoe\u0308'), { ok: true, room: 'caf\u00e9' });
  assert.deepEqual(ann.rooms, ['caf\u00e9']);
  assert.equal(ann.username, 'Zo\u00eb');
  const bob = await env.observer('caf\u00e9', 'bob');
  assert.equal(ann.send('salut', { room: 'cafe\u0301' }), 'sent');
  const got = await bob.expect(isChat('caf\u00e9', 'salut'));
  assert.equal(got.username, 'Zo\u00eb');
  // A name of nothing visible is refused by the server, and the join says so.
  const invisible = await ann.join('\u200b\u3164');
  assert.equal(invisible.ok, false);
  assert.equal(invisible.error.code, 'invalid_field');
});

test('typing helper starts once and stops on idle or on send', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t, 'client-typing');
  const ann = env.client({ typingIdleMs: 300 });
  await connected(ann);
  await ann.join('lobby', 'ann');
  const bob = await env.observer('lobby', 'bob');

  ann.typing('lobby');
  ann.typing('lobby');
  ann.typing('lobby');
  const started = await bob.recvUntil(isType('typing_start', 'lobby'));
  assert.equal(started.msg.username, 'ann');
  // Stopped by the idle timer; no second typing_start before it.
  const stopped = await bob.recvUntil(isType('typing_stop', 'lobby'));
  assert.equal(stopped.skipped.filter((m) => m.type === 'typing_start').length, 0);

  ann.typing('lobby');
  await bob.expect(isType('typing_start', 'lobby'));
  ann.send('done', { room: 'lobby' });
  const beforeChat = await bob.recvUntil(isChat('lobby', 'done'));
  const afterStart = [...beforeChat.skipped, ...(await bob.collect(0))];
  // The server ends the signal because of the message (its typing_stop may come either side).
  if (!afterStart.some((m) => m.type === 'typing_stop')) await bob.expect(isType('typing_stop', 'lobby'));

  // Others typing show up in typists(room) and 'typing' events.
  const typingEvent = nextEvent(ann, 'typing', (e) => e.typists.includes('bob'));
  bob.send({ type: 'typing_start', room: 'lobby' });
  assert.deepEqual((await typingEvent).typists, ['bob']);
  const typingEnd = nextEvent(ann, 'typing', (e) => e.typists.length === 0);
  bob.send({ type: 'typing_stop', room: 'lobby' });
  await typingEnd;
  assert.deepEqual(ann.typists('lobby'), []);
});

// A server that says how long its rate limit blocks (retryAfterMs, docs/protocol.md) is read by
// the error; one that does not leaves it null. Played on a scripted socket, whatever this
// server build sends.
test('a rate_limited error carries the server\'s retryAfterMs, or null when it gives none', async (t) => {
  const { client, socket } = await scriptedClient(t);
  const errors = recordErrors(client);
  assert.equal(client.send('too fast', { room: 'lobby', id: 'r1' }), 'sent');
  const [frame] = socket.sent.splice(0);
  socket.receive({ type: 'error', code: 'rate_limited', message: 'Rate limit exceeded. Please slow down.', ref: frame.ref, retryAfterMs: 117250 });
  assert.equal(client.send('again', { room: 'lobby', id: 'r2' }), 'sent');
  const [second] = socket.sent.splice(0);
  socket.receive({ type: 'error', code: 'rate_limited', message: 'Rate limit exceeded. Please slow down.', ref: second.ref });
  // A direct message's refusal names its recipient, and the wait.
  assert.equal(client.sendDirect('u9', 'psst', { id: 'd1' }), 'sent');
  socket.receive({ type: 'error', code: 'rate_limited', message: 'Rate limit exceeded. Please slow down.', to: 'u9', id: 'd1', retryAfterMs: 5000 });
  // Nonsense from a server is not a wait.
  socket.receive({ type: 'error', code: 'rate_limited', message: 'x', retryAfterMs: '5000' });
  socket.receive({ type: 'error', code: 'rate_limited', message: 'x', retryAfterMs: -1 });
  socket.receive({ type: 'error', code: 'rate_limited', message: 'x', retryAfterMs: 1.5 });

  assert.deepEqual(errors.map((e) => [e.code, e.request?.id ?? null, e.retryAfterMs]), [
    ['rate_limited', 'r1', 117250],
    ['rate_limited', 'r2', null],
    ['rate_limited', 'd1', 5000],
    ['rate_limited', null, null],
    ['rate_limited', null, null],
    ['rate_limited', null, null],
  ]);
  assert.equal(errors[2].request.type, 'direct_message');
  assert.equal(errors[2].request.to, 'u9');
  assert.equal(errors[0].retrying, false);
  assert.equal(client.unackedMessages, 0);  // refused for good: not kept
});
