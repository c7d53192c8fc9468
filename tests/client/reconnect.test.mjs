// web/roomcast.js across server restarts on the same port: reconnect, rejoin, offline queue.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import helpers from '../integration/node/roomcast.js';
import { nextEvent, startWithClients } from './server.mjs';

const { isChat, usersOf } = helpers;
const TEST_TIMEOUT_MS = 90000;
const FAST_RECONNECT = { initialDelayMs: 50, maxDelayMs: 400 };

async function setup(t, name, clientOptions) {
  const env = await startWithClients(t, name);
  return { server: env.server, client: env.client(clientOptions), observe: env.observer };
}

function joinedAll(client, rooms) {
  const waiting = new Set(rooms);
  return new Promise((resolve) => {
    const off = client.on('join', ({ room }) => {
      waiting.delete(room);
      if (waiting.size === 0) {
        off();
        resolve();
      }
    });
  });
}

test('reconnects by itself after a restart and rejoins its rooms', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, client: ann, observe } = await setup(t, 'client-restart', { reconnect: FAST_RECONNECT });
  const opened = nextEvent(ann, 'open');
  ann.connect();
  await opened;
  await ann.join('alpha', 'ann');
  await ann.join('beta');
  await ann.join('gamma');
  assert.equal(ann.leave('gamma'), true);
  const firstId = ann.userId;

  const closed = nextEvent(ann, 'close');
  const reconnecting = nextEvent(ann, 'reconnecting');
  await server.stopCleanly();  // SIGTERM: the server says goodbye with 1001
  const close = await closed;
  assert.equal(close.code, 1001);
  assert.equal(close.willReconnect, true);
  assert.ok((await reconnecting).delayMs <= FAST_RECONNECT.maxDelayMs);
  assert.equal(ann.isJoined('alpha'), false);

  const reopened = nextEvent(ann, 'open', () => true, 30000);
  const rejoined = joinedAll(ann, ['alpha', 'beta']);
  await server.start();
  assert.equal((await reopened).reconnected, true);
  await rejoined;
  assert.notEqual(ann.userId, firstId);
  assert.deepEqual(ann.rooms, ['alpha', 'beta']);  // the room it left stays left
  assert.equal(ann.stats.reconnects, 1);

  // The server agrees: ann is in both rooms again, under the same name.
  const bob = await observe('beta', 'bob');
  bob.username = 'bob';
  await bob.expectUserList('beta', [{ id: ann.userId, username: 'ann' }, ...usersOf(bob)]);
  assert.equal(ann.send('back in alpha', { room: 'alpha' }), 'sent');
  assert.equal(ann.send('back in beta', { room: 'beta' }), 'sent');
  const seen = await bob.recvUntil(isChat('beta', 'back in beta'));
  assert.equal(seen.skipped.some((m) => m.type === 'chat_message'), false);
});

test('messages sent while offline are delivered once, after the rooms are rejoined', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // A long backoff, so that the test decides when the client comes back (reconnectNow) and the
  // observer is already in the room by then.
  const slow = { initialDelayMs: 60000, maxDelayMs: 60000, jitter: 0 };
  const { server, client: ann, observe } = await setup(t, 'client-queue', { reconnect: slow });
  const opened = nextEvent(ann, 'open');
  ann.connect();
  await opened;
  await ann.join('queue', 'ann');
  const beforeAck = nextEvent(ann, 'ack');
  assert.equal(ann.send('before', { room: 'queue' }), 'sent');
  await nextEvent(ann, 'chat', (m) => m.own && m.message === 'before');
  await beforeAck;  // stored: not resent after the restart

  const closed = nextEvent(ann, 'close');
  await server.kill();  // no goodbye: the socket just breaks
  assert.equal((await closed).willReconnect, true);
  assert.equal(ann.state, 'reconnecting');
  const offline = ['one', 'two', 'three'];
  for (const text of offline) assert.equal(ann.send(text, { room: 'queue' }), 'queued');
  assert.equal(ann.send('to every room'), 'queued');
  assert.equal(ann.queuedMessages, 4);

  await server.start();
  const bob = await observe('queue', 'bob');
  const echoes = [];
  ann.on('chat', (m) => { if (m.own) echoes.push(m.message); });
  const rejoined = nextEvent(ann, 'join', (e) => e.room === 'queue', 30000);
  ann.reconnectNow();
  await rejoined;
  assert.equal(ann.queuedMessages, 0);
  const markerEcho = nextEvent(ann, 'chat', (m) => m.own && m.message === 'marker');
  assert.equal(ann.send('marker', { room: 'queue' }), 'sent');

  // Per-room order is guaranteed, so everything ann sent is in front of the marker.
  const { skipped } = await bob.recvUntil(isChat('queue', 'marker'));
  const received = skipped.filter((m) => m.type === 'chat_message').map((m) => m.message);
  assert.deepEqual(received, [...offline, 'to every room']);
  await markerEcho;
  assert.deepEqual(echoes, [...offline, 'to every room', 'marker']);
});

test('close() ends the connection for good', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { server, client: ann } = await setup(t, 'client-close', { reconnect: FAST_RECONNECT });
  const opened = nextEvent(ann, 'open');
  ann.connect();
  await opened;
  await ann.join('lobby', 'ann');
  const closed = nextEvent(ann, 'close');
  let reconnects = 0;
  ann.on('reconnecting', () => reconnects++);
  ann.close();
  assert.equal(ann.state, 'closed');
  assert.equal((await closed).willReconnect, false);
  assert.equal(ann.send('late'), 'dropped');
  // A server restart does not bring it back.
  await server.stopCleanly();
  await server.start();
  assert.equal(ann.state, 'closed');
  assert.equal(reconnects, 0);
  // ...but connect() does, into the same rooms.
  const rejoined = nextEvent(ann, 'join', (e) => e.room === 'lobby');
  ann.connect();
  await rejoined;
});
