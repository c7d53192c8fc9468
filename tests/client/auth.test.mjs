// web/roomcast.js and tokens, against the real server: getToken before every connection and
// before expiry (in-band refresh), and no reconnect loop on the close codes that mean the
// credentials are bad (4001, 4002) or that the server's backend removed the user (4003, POST
// /api/disconnect). Tokens are HS256 JWTs made here with node:crypto.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLOSE_AUTH_FAILED, CLOSE_DISCONNECTED, CLOSE_TOKEN_EXPIRED, tokenExpiresAt } from '../../web/roomcast.js';
import { nextEvent, startWithClients, within } from './server.mjs';

const TEST_TIMEOUT_MS = 60000;
const SECRET = 'client-test-secret-0123456789abcdef';
// No clock skew tolerated, so that a token's exp is the moment of the server's 4002.
const SERVER_ARGS = ['--jwt-secret', SECRET, '--jwt-leeway', '0'];
const FAST_RECONNECT = { initialDelayMs: 50, maxDelayMs: 200 };
// Seconds a short-lived token has left when made: enough to connect and join on a loaded machine.
const SHORT_LIFE_S = 4;
// How long past a token's exp to wait for the server's close before failing.
const CLOSE_GRACE_MS = 10000;

const base64url = (text) => Buffer.from(text).toString('base64url');

function makeToken({ sub = 'user-1', name = 'ann', expiresInS = 3600, key = SECRET } = {}) {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify({ sub, name, exp: Math.floor(Date.now() / 1000) + expiresInS }));
  const signature = createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

// Records every event of the types given, in order, as [type, payload].
function record(client, types) {
  const events = [];
  for (const type of types) client.on(type, (e) => events.push([type, e]));
  return events;
}

// Waits `ms` and fails if the client tried to connect again meanwhile.
async function staysClosed(client, events, ms) {
  const before = events.length;
  await sleep(ms);
  assert.equal(client.state, 'closed');
  assert.deepEqual(events.slice(before).map(([type]) => type), [], 'no reconnect after being refused');
}

test('reads a token\'s exp without verifying it', () => {
  const token = makeToken({ expiresInS: 60 });
  const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).exp;
  assert.equal(tokenExpiresAt(token), exp * 1000);
  assert.equal(tokenExpiresAt('not-a-jwt'), null);
  assert.equal(tokenExpiresAt(`a.${base64url('{"sub":"x"}')}.c`), null);
});

test('stops reconnecting on 4001: no token for a server that requires one', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-auth-4001', { serverArgs: [...SERVER_ARGS, '--require-auth'] });
  const client = env.client({ reconnect: FAST_RECONNECT });
  const events = record(client, ['close', 'reconnecting', 'open', 'unauthorized']);
  const unauthorized = nextEvent(client, 'unauthorized');
  client.connect();
  assert.deepEqual(await unauthorized, { code: CLOSE_AUTH_FAILED, reason: 'Authentication required' });
  assert.equal(client.state, 'closed');
  const [[type, close]] = events;
  assert.equal(type, 'close');
  assert.equal(close.code, CLOSE_AUTH_FAILED);
  assert.equal(close.willReconnect, false);
  // With the fast backoff, a looping client would have tried several times by now.
  await staysClosed(client, events, 1500);
});

test('stops reconnecting on 4001: getToken gives a token the server refuses', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-auth-bad-token', { serverArgs: [...SERVER_ARGS, '--require-auth'] });
  let calls = 0;
  const client = env.client({
    reconnect: FAST_RECONNECT,
    getToken: async () => {
      calls++;
      return makeToken({ key: 'not-the-secret-not-the-secret-!!' });
    },
  });
  const events = record(client, ['close', 'reconnecting', 'open', 'unauthorized']);
  const unauthorized = nextEvent(client, 'unauthorized');
  client.connect();
  assert.deepEqual(await unauthorized, { code: CLOSE_AUTH_FAILED, reason: 'Invalid token' });
  await staysClosed(client, events, 1500);
  assert.equal(calls, 1);
  // connect() starts over, with a fresh token.
  const again = nextEvent(client, 'unauthorized');
  client.connect();
  await again;
  assert.equal(calls, 2);
});

test('stops reconnecting on 4002 when it cannot fetch a fresh token', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-auth-4002', { serverArgs: SERVER_ARGS });
  const token = makeToken({ sub: 'u-expiring', expiresInS: SHORT_LIFE_S });
  // No getToken: the token in the URL is all the client has.
  const client = env.client({ url: `${env.server.wsUrl}/?token=${token}`, reconnect: FAST_RECONNECT });
  const events = record(client, ['close', 'reconnecting', 'open', 'unauthorized']);
  const opened = nextEvent(client, 'open');
  client.connect();
  assert.equal((await opened).userId, 'u-expiring');
  const unauthorized = await nextEvent(client, 'unauthorized', () => true,
    tokenExpiresAt(token) - Date.now() + CLOSE_GRACE_MS);
  assert.deepEqual(unauthorized, { code: CLOSE_TOKEN_EXPIRED, reason: 'Token expired' });
  assert.equal(client.state, 'closed');
  assert.deepEqual(events.map(([type]) => type), ['open', 'close', 'unauthorized']);
  assert.equal(events[1][1].willReconnect, false);
  await staysClosed(client, events, 1500);
});

test('on 4002 with getToken it reconnects once, and stops on the second 4002', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-auth-4002-retry', { serverArgs: SERVER_ARGS });
  // Every token names another user: the server refuses each refresh (token_mismatch), so each
  // connection lives exactly as long as the token it opened with.
  let calls = 0;
  const client = env.client({
    reconnect: FAST_RECONNECT,
    getToken: async () => makeToken({ sub: `u-${++calls}`, expiresInS: SHORT_LIFE_S }),
  });
  const events = record(client, ['close', 'open', 'unauthorized', 'refreshed']);
  const errors = [];
  client.on('error', (e) => errors.push(e));
  client.connect();
  const unauthorized = await nextEvent(client, 'unauthorized', () => true, 2 * (SHORT_LIFE_S * 1000 + CLOSE_GRACE_MS));
  assert.equal(unauthorized.code, CLOSE_TOKEN_EXPIRED);
  assert.deepEqual(events.map(([type]) => type), ['open', 'close', 'open', 'close', 'unauthorized']);
  assert.equal(events[0][1].userId, 'u-1');
  assert.deepEqual([events[1][1].code, events[1][1].willReconnect], [CLOSE_TOKEN_EXPIRED, true]);
  assert.deepEqual([events[3][1].code, events[3][1].willReconnect], [CLOSE_TOKEN_EXPIRED, false]);
  // Each connection tried to refresh, and was told the token was another user's.
  assert.ok(errors.length >= 2, `refresh errors: ${errors.map((e) => e.code)}`);
  for (const e of errors) {
    assert.equal(e.code, 'token_mismatch');
    assert.deepEqual(e.request, { type: 'refresh' });
  }
  await staysClosed(client, events, 1500);
});

test('getToken is called before connecting and before expiry, and the connection outlives its first token', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await startWithClients(t, 'client-auth-refresh', { serverArgs: SERVER_ARGS });
  const tokens = [];
  const client = env.client({
    reconnect: FAST_RECONNECT,
    getToken: async () => {
      tokens.push(makeToken({ sub: 'u-refresh', name: 'rita', expiresInS: SHORT_LIFE_S }));
      return tokens.at(-1);
    },
  });
  const events = record(client, ['close', 'open', 'unauthorized', 'refreshed', 'error']);
  const opened = nextEvent(client, 'open');
  client.connect();
  // The token reached the upgrade: the server knows the user by its sub.
  assert.equal((await opened).userId, 'u-refresh');
  assert.equal(tokens.length, 1);
  const firstExpiry = tokenExpiresAt(tokens[0]);
  await client.join('lobby');

  // Before the first token expires, a second one is fetched and accepted in-band.
  const refreshed = await nextEvent(client, 'refreshed', () => true, firstExpiry - Date.now() + CLOSE_GRACE_MS);
  assert.ok(tokens.length >= 2);
  assert.equal(refreshed.expiresAt, tokenExpiresAt(tokens[1]));

  // Past the first token's exp (and past a later one's, as refreshes go on), still the same
  // connection, and it still chats.
  await sleep(Math.max(0, firstExpiry - Date.now()) + 1500);
  assert.equal(client.state, 'open');
  assert.equal(client.stats.reconnects, 0);
  const acked = nextEvent(client, 'ack');
  assert.equal(client.send('still here', { room: 'lobby' }), 'sent');
  await within(acked, 'the ack of a message sent past the first token\'s exp');
  assert.deepEqual(events.filter(([type]) => ['close', 'unauthorized', 'error'].includes(type)), []);
  assert.ok(events.filter(([type]) => type === 'refreshed').length >= 1);
});

test('stops reconnecting on 4003: the backend disconnected the user', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const apiKey = 'client-test-api-key';
  const env = await startWithClients(t, 'client-auth-4003', { serverArgs: [...SERVER_ARGS, '--api-key', apiKey] });
  const client = env.client({ reconnect: FAST_RECONNECT, getToken: async () => makeToken({ sub: 'u-banned', name: 'ban' }) });
  const events = record(client, ['close', 'reconnecting', 'open', 'disconnected']);
  const opened = nextEvent(client, 'open');
  client.connect();
  await opened;
  const disconnected = nextEvent(client, 'disconnected');
  const res = await fetch(`${env.server.httpUrl}/api/disconnect`, {
    method: 'POST',
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: 'u-banned', reason: 'Banned' }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { user: 'u-banned', connections: 1 });
  assert.deepEqual(await within(disconnected, '4003'), { code: CLOSE_DISCONNECTED, reason: 'Banned' });
  assert.equal(client.state, 'closed');
  const close = events.find(([type]) => type === 'close')[1];
  assert.equal(close.code, CLOSE_DISCONNECTED);
  assert.equal(close.willReconnect, false);
  await staysClosed(client, events, 1500);
});

test('forgets a room the backend removed the user from, and keeps the others', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const apiKey = 'client-test-api-key';
  const env = await startWithClients(t, 'client-auth-unsubscribe', { serverArgs: [...SERVER_ARGS, '--api-key', apiKey] });
  const client = env.client({ reconnect: FAST_RECONNECT, getToken: async () => makeToken({ sub: 'u-moved', name: 'moe' }) });
  client.connect();
  assert.equal((await within(client.join('kept', 'moe'), 'join kept')).ok, true);
  assert.equal((await within(client.join('gone'), 'join gone')).ok, true);
  const error = nextEvent(client, 'error');
  const left = nextEvent(client, 'leave');
  const res = await fetch(`${env.server.httpUrl}/api/unsubscribe`, {
    method: 'POST',
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: 'u-moved', room: 'gone', reason: 'Moderated' }),
  });
  assert.deepEqual(await res.json(), { user: 'u-moved', room: 'gone', connections: 1 });
  const removed = await within(error, 'removed_from_room');
  assert.equal(removed.code, 'removed_from_room');
  assert.equal(removed.room, 'gone');
  assert.equal(removed.message, 'Moderated');
  assert.deepEqual(await within(left, 'leave'), { room: 'gone' });
  assert.deepEqual(client.rooms, ['kept']);
  // The next request is answered as its own (the removal answered none of them).
  const mine = nextEvent(client, 'ack');
  client.send('still chatting', { room: 'kept' });
  assert.equal((await within(mine, 'ack')).room, 'kept');
});
