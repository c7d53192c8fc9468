'use strict';
// The JavaScript test harness (not a test file itself), used by tests/integration/node,
// tests/client and tests/e2e alike: the launchers of the real roomcast binary and of
// redis-server on loopback ports, the free-port helper, the test-default flags
// (tests/test_default_flags.json, which the Python harness reads too), and a chat client on
// the npm `ws` package. Every wait is bounded.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..', '..');
// Server and Redis logs, and the servers' history directories (kept for a look after a failure).
const LOG_DIR = process.env.ROOMCAST_TEST_LOGS || path.join(ROOT, 'build', 'test-logs');
const DEFAULT_WAIT_MS = 5000;
const HEALTHY_WITHIN_MS = 15000;
const STOP_GRACE_MS = 5000;  // SIGKILL after this long without an exit
// Flags every test server gets unless the test sets them itself (the rate limits off; why:
// tests/test_default_flags.json).
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

/**
 * A child process that can be started, stopped (SIGTERM, SIGKILL after STOP_GRACE_MS) or
 * killed (SIGKILL), and started again with the same arguments; each run logs to its own file
 * in LOG_DIR. Subclasses say what to run (command()) and when it is ready (ready()).
 */
class ManagedProcess {
  constructor(port, name, kind) {
    this.port = port;
    this.name = name;
    this.kind = kind;  // names the log files and the errors: 'server', 'redis'
    this.proc = null;
    this.exited = null;
    this.logPath = null;
    this.runs = 0;
  }

  // Starts the process (again); resolves once ready() holds, at most HEALTHY_WITHIN_MS.
  async start() {
    const [bin, args] = this.command();
    fs.mkdirSync(LOG_DIR, { recursive: true });
    this.runs++;
    const logPath = path.join(LOG_DIR, `${this.name}-${this.kind}-${this.port}-run${this.runs}.log`);
    this.logPath = logPath;
    const log = fs.openSync(logPath, 'w');
    const proc = spawn(bin, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exitInfo = null;
    this.exited.then((info) => { exitInfo = info; });

    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    while (Date.now() < deadline) {
      if (exitInfo) throw new Error(`${path.basename(bin)} exited early (${JSON.stringify(exitInfo)}); see ${logPath}`);
      if (await this.ready()) return this;
      await sleep(50);
    }
    await this.kill();
    throw new Error(`${path.basename(bin)} was not ready within ${HEALTHY_WITHIN_MS} ms; see ${logPath}`);
  }

  // SIGTERM, SIGKILL after STOP_GRACE_MS. Resolves with the exit { code, signal }, or null if it
  // was not started.
  async stop() {
    return this.#end('SIGTERM');
  }

  // stop(), and fails unless the process exited by itself with status 0 (a crash or a sanitizer
  // report on the way out is a test failure, not noise).
  async stopCleanly() {
    const info = await this.stop();
    if (info && (info.code !== 0 || info.signal !== null)) {
      throw new Error(`${this.name} did not shut down cleanly: ${JSON.stringify(info)}; see ${this.logPath}`);
    }
  }

  async kill() {
    return this.#end('SIGKILL');
  }

  async #end(signal) {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return this.exited;
    proc.kill(signal);
    const escalate = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    const info = await this.exited;
    clearTimeout(escalate);
    return info;
  }
}

/**
 * One roomcast server on a fixed loopback port, with the test-default flags and the repository's
 * web/ as its web root. Every run of one server shares one history directory (in LOG_DIR), so a
 * restart keeps history.
 */
class RoomcastServer extends ManagedProcess {
  // extraArgs: more command-line options for every run (e.g. ['--history-size', '5']).
  constructor(port, name, extraArgs = []) {
    super(port, name, 'server');
    this.extraArgs = extraArgs;
    this.dataDir = path.join(LOG_DIR, `${name}-data-${port}-${Date.now()}`);
    this.httpUrl = `http://127.0.0.1:${port}`;
    // No trailing slash: ChatClient.connect appends a path.
    this.wsUrl = `ws://127.0.0.1:${port}`;
  }

  static async start(name = 'test', extraArgs = []) {
    return new RoomcastServer(await freePort(), name, extraArgs).start();
  }

  command() {
    return [binaryPath(), ['--host', '127.0.0.1', '--port', String(this.port), '--web-root', path.join(ROOT, 'web'),
      '--data-dir', this.dataDir, ...withTestDefaults(this.extraArgs)]];
  }

  async ready() {
    return (await httpStatus(`${this.httpUrl}/healthz`)) === 200;
  }
}

// Starts a roomcast with these extra flags on a free port; resolves once /healthz answers 200.
function startServer(...extraArgs) {
  return RoomcastServer.start('node', extraArgs);
}

const REDIS_BIN = process.env.REDIS_SERVER_BIN || '/usr/bin/redis-server';

// Resolves true if a Redis answers PING on port within timeoutMs, false otherwise.
function redisPing(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

/**
 * A real redis-server on a loopback port for cluster-mode tests. stop() and start() again keep
 * the port and the data (append-only file, fsync on every write), like a Redis restart in
 * production.
 */
class RedisServer extends ManagedProcess {
  constructor(port, name) {
    super(port, name, 'redis');
    this.dir = path.join(LOG_DIR, `${name}-redis-${port}-${Date.now()}`);
    this.url = `redis://127.0.0.1:${port}`;
  }

  static available() {
    return fs.existsSync(REDIS_BIN);
  }

  static async start(name = 'cluster') {
    return new RedisServer(await freePort(), name).start();
  }

  command() {
    if (!RedisServer.available()) throw new Error(`redis-server not found at ${REDIS_BIN}; set REDIS_SERVER_BIN`);
    fs.mkdirSync(this.dir, { recursive: true });
    return [REDIS_BIN, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', '--dir', this.dir]];
  }

  async ready() {
    return redisPing(this.port);
  }
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

  // wsOptions: more options of the ws client (perMessageDeflate: false does not offer it).
  static async connect(server, urlPath = '/', wsOptions = {}) {
    const ws = new WebSocket(server.wsUrl + urlPath, { handshakeTimeout: 5000, ...wsOptions });
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
  ChatClient, DEFAULT_WAIT_MS, freePort, httpStatus, isChat, isSystem, isType, LOG_DIR, RedisServer,
  roomOf, RoomcastServer, ROOT, sleep, startServer, usersOf, WebSocket, withTestDefaults,
};
