// Test helpers (not a test file) for the client library's tests: a server with clients of both
// kinds that are all ended after the test, and bounded waits. The servers themselves come from
// the harness, tests/integration/node/roomcast.js (used by tests/e2e too).

import assert from 'node:assert/strict';

import WebSocket from 'ws';
// The harness is CommonJS, imported whole.
import harness from '../integration/node/roomcast.js';
import { RoomcastClient } from '../../web/roomcast.js';

const { ChatClient, RoomcastServer } = harness;

/**
 * Resolves with the first event of `type` from an emitter with on(type, fn) -> off (such as
 * RoomcastClient) for which pred holds; rejects after timeoutMs.
 */
export function nextEvent(emitter, type, pred = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${type}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = emitter.on(type, (event) => {
      if (!pred(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/**
 * Starts a server for test `t` and returns it with two ways to talk to it, all ended after the
 * test: client(options) makes a web/roomcast.js client (with `clientDefaults` under `options`),
 * observer(room, username) a plain `ws` client already joined to `room`.
 */
export async function startWithClients(t, name, { serverArgs = [], clientDefaults = {} } = {}) {
  const server = await RoomcastServer.start(name, serverArgs);
  const clients = [];
  const observers = [];
  t.after(async () => {
    for (const c of clients) c.close();
    for (const o of observers) o.ws.terminate();
    await server.stopCleanly();
  });
  return {
    server,
    client(options = {}) {
      const c = new RoomcastClient({ url: `${server.wsUrl}/`, WebSocket, ...clientDefaults, ...options });
      clients.push(c);
      return c;
    },
    async observer(room, username) {
      const o = await ChatClient.connect(server);
      observers.push(o);
      await o.join(room, username);
      return o;
    },
  };
}

// Resolves like promise, or rejects after timeoutMs naming `what` (a string, or a function
// called only on timeout, for descriptions that show the state at that moment).
export async function within(promise, what, timeoutMs = 20000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`not within ${timeoutMs} ms: ${typeof what === 'function' ? what() : what}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// The room's whole retained history from GET /api/rooms/{room}/messages.
export async function storedHistory(server, room) {
  const res = await fetch(`${server.httpUrl}/api/rooms/${encodeURIComponent(room)}/messages?since=0&limit=1000`);
  assert.equal(res.status, 200);
  return res.json();
}
