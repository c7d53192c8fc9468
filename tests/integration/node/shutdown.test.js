'use strict';
// Graceful shutdown, as seen by `ws` clients.

const test = require('node:test');
const assert = require('node:assert/strict');
const { ChatClient, roomOf, startServer } = require('./roomcast');

const GOING_AWAY = 1001;

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test('SIGTERM closes every connected client with code 1001', { timeout: 30000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const clients = await roomOf(server, 'general', 'alice', 'bob');
  clients.push(await ChatClient.connect(server)); // connected but in no room
  server.proc.kill('SIGTERM');
  const closes = await within(5000, Promise.all(clients.map((c) => c.closed)), 'closing every client');
  assert.deepEqual(closes.map((c) => c.code), [GOING_AWAY, GOING_AWAY, GOING_AWAY]);
});

test('SIGTERM with clients connected makes the process exit with code 0 within 5 s', { timeout: 30000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  await roomOf(server, 'general', 'alice', 'bob');
  server.proc.kill('SIGTERM');
  const { code, signal } = await within(5000, server.exited, 'process exit');
  assert.equal(signal, null);
  assert.equal(code, 0);
});
