// Test helpers (not a test file) for the client library's tests: a server with clients of both
// kinds that are all ended after the test, bounded waits, and a scripted socket on which the
// test plays the server (for what a real server cannot be made to send on cue). The servers themselves come from
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

// ---- A scripted WebSocket: the test plays the server ------------------------------------------

export class ScriptedSocket {
  static last = null;

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.joinRefs = new Map();  // room -> the ref of the last join_room written
    this.listeners = new Map();
    ScriptedSocket.last = this;
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  send(data) {
    const frame = JSON.parse(data);
    if (frame.type === 'join_room') this.joinRefs.set(frame.room, frame.ref);
    this.sent.push(frame);
  }

  close() {
    this.drop(1000);
  }

  // Test side: the server greets, answers, or the connection breaks.
  greet(userId) {
    this.readyState = 1;
    this.receive({ type: 'connection_established', userId });
  }

  receive(msg) {
    for (const listener of this.listeners.get('message') ?? []) listener({ data: JSON.stringify(msg) });
  }

  drop(code = 1006) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    for (const listener of this.listeners.get('close') ?? []) listener({ code, reason: '' });
  }

  // The server answers the last join of room, as it does a join with a ref.
  welcome(room) {
    this.receive({ type: 'system_message', room, message: `Welcome to ${room}!`, timestamp: 1 });
    this.receive({ type: 'joined', room, ref: this.joinRefs.get(room), lastSeq: 0, users: [], messages: [] });
  }

  // The frames written since the last call, without their refs (the library's own business:
  // client.test.mjs checks them against the real server).
  take() {
    return this.sent.splice(0).map(({ ref, ...frame }) => frame);
  }
}

// A client on a scripted socket, greeted and in `room`; timers are mocked (t.mock.timers).
export async function scriptedClient(t, options = {}, room = 'lobby') {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const client = new RoomcastClient({ url: 'ws://scripted/', WebSocket: ScriptedSocket, ...options });
  t.after(() => client.close());
  client.connect();
  const socket = ScriptedSocket.last;
  socket.greet('u1');
  const joined = client.join(room, 'ann');
  assert.deepEqual(socket.take(), [{ type: 'join_room', room, username: 'ann' }]);
  socket.welcome(room);
  assert.equal((await joined).ok, true);
  return { client, socket };
}

export function recordErrors(client) {
  const errors = [];
  client.on('error', (e) => errors.push(e));
  return errors;
}
