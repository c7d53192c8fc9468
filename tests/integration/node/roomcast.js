'use strict';
// Test helpers (not a test file itself): start the real roomcast binary on a free loopback
// port, and talk to it through the npm `ws` client. Every wait is bounded.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DEFAULT_WAIT_MS = 5000;
// Flags every test server gets unless the test sets them itself (the rate limits off; why:
// tests/test_default_flags.json, which every launcher reads).
const TEST_DEFAULT_FLAGS = JSON.parse(
  fs.readFileSync(path.join(ROOT, 'tests', 'test_default_flags.json'), 'utf8')).flags;

function withTestDefaults(extraArgs) {
  const args = [...extraArgs];
  for (const [flag, value] of Object.entries(TEST_DEFAULT_FLAGS)) {
    if (!args.includes(flag)) args.push(flag, value);
  }
  return args;
}

function binaryPath() {
  const bin = process.env.ROOMCAST_BIN || path.join(ROOT, 'build', 'src', 'roomcast');
  if (!fs.existsSync(bin)) throw new Error(`roomcast binary not found at ${bin}; set ROOMCAST_BIN`);
  return bin;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function httpStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts roomcast; resolves once GET /healthz answers 200 (at most 10 s).
async function startServer(...extraArgs) {
  const port = await freePort();
  const logDir = process.env.ROOMCAST_TEST_LOGS || '/tmp/roomcast-test-logs';
  fs.mkdirSync(logDir, { recursive: true });
  const logPath = path.join(logDir, `node-server-${port}-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'w');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-data-'));
  const proc = spawn(binaryPath(),
    ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, ...withTestDefaults(extraArgs)],
    { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });

  const server = {
    port,
    proc,
    exited,
    logPath,
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    // SIGTERM, then SIGKILL if still running after 10 s.
    async stop() {
      if (exitInfo) return exitInfo;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const info = await exited;
      clearTimeout(timer);
      fs.rmSync(dataDir, { recursive: true, force: true });
      return info;
    },
  };

  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (exitInfo) throw new Error(`roomcast exited early: ${JSON.stringify(exitInfo)}`);
    if ((await httpStatus(`${server.httpUrl}/healthz`)) === 200) return server;
    await sleep(50);
  }
  await server.stop();
  throw new Error('roomcast did not become healthy within 10 s');
}

// A `ws` connection that queues incoming JSON messages so tests can wait for the one they need.
class ChatClient {
  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    this.userId = null;
    this.username = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('message', (data, isBinary) => {
      this.inbox.push(isBinary ? { binary: data } : JSON.parse(data.toString()));
      this.waiters.splice(0).forEach((wake) => wake());
    });
    ws.on('close', () => this.waiters.splice(0).forEach((wake) => wake()));
  }

  static async connect(server, urlPath = '/') {
    const ws = new WebSocket(server.wsUrl + urlPath, { handshakeTimeout: 5000 });
    // Error events (e.g. an abrupt close by the server) are expected in some tests.
    ws.on('error', () => {});
    const client = new ChatClient(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const hello = await client.expect((m) => m.type === 'connection_established');
    client.userId = hello.userId;
    return client;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  // Resolves with { msg, skipped }: the first queued message matching pred and those before it.
  async recvUntil(pred, timeoutMs = DEFAULT_WAIT_MS) {
    const deadline = Date.now() + timeoutMs;
    const skipped = [];
    for (;;) {
      while (this.inbox.length) {
        const msg = this.inbox.shift();
        if (pred(msg)) return { msg, skipped };
        skipped.push(msg);
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(skipped)}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  async expect(pred, timeoutMs) {
    return (await this.recvUntil(pred, timeoutMs)).msg;
  }

  // Every message arriving within ms milliseconds (plus whatever was already queued).
  async collect(ms) {
    await sleep(ms);
    return this.inbox.splice(0);
  }

  async join(room, username) {
    const msg = { type: 'join_room', room };
    if (username !== undefined) msg.username = username;
    this.send(msg);
    const welcome = await this.expect(isSystem(room, `Welcome to ${room}!`));
    if (username !== undefined) this.username = username;
    return welcome;
  }

  // Waits for a user_list of room equal to expected, skipping intermediate (coalesced) ones.
  async expectUserList(room, expected, timeoutMs) {
    const { deepStrictEqual } = require('node:assert');
    const matches = (m) => {
      if (m.type !== 'user_list' || m.room !== room) return false;
      try { deepStrictEqual(m.users, expected); return true; } catch { return false; }
    };
    return this.expect(matches, timeoutMs);
  }

  close() {
    this.ws.close();
    return this.closed;
  }
}

const isType = (type, room) => (m) => m.type === type && (room === undefined || m.room === room);
const isSystem = (room, text) => (m) => m.type === 'system_message' && m.room === room && m.message === text;
const isChat = (room, text) => (m) => m.type === 'chat_message' && m.room === room && m.message === text;
const usersOf = (...clients) => clients.map((c) => ({ id: c.userId, username: c.username }));

// Connects one client per name, joins them into room in order, and waits until each has seen
// the user_list with all of them.
async function roomOf(server, room, ...names) {
  const clients = [];
  for (const name of names) {
    const c = await ChatClient.connect(server);
    await c.join(room, name);
    clients.push(c);
  }
  for (const c of clients) await c.expectUserList(room, usersOf(...clients));
  return clients;
}

module.exports = {
  ChatClient, DEFAULT_WAIT_MS, freePort, httpStatus, isChat, isSystem, isType, roomOf, sleep,
  startServer, usersOf, WebSocket, withTestDefaults,
};
