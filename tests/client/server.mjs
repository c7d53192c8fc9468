// Test helpers (not a test file): run the real roomcast binary on a loopback port that survives
// restarts, and wait for things with a bound. Used by tests/client and tests/e2e.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';
// The port and health probes are the integration tests' (CommonJS, imported whole).
import integration from '../integration/node/roomcast.js';
import { RoomcastClient } from '../../web/roomcast.js';

const { ChatClient, freePort, httpStatus, sleep, withTestDefaults } = integration;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LOG_DIR = process.env.ROOMCAST_TEST_LOGS || path.join(ROOT, 'build', 'test-logs');
const BINARY = process.env.ROOMCAST_BIN || path.join(ROOT, 'build', 'src', 'roomcast');
const HEALTHY_WITHIN_MS = 15000;
const STOP_GRACE_MS = 5000;

/**
 * One roomcast server on a fixed port: start() it, stop() (SIGTERM, SIGKILL after 5 s) or kill()
 * (SIGKILL) it, and start() it again on the same port. Each run logs to its own file; every run
 * of one server shares one history directory (under LOG_DIR), so a restart keeps history.
 */
export class RoomcastServer {
  // extraArgs: more command-line options for every run (e.g. ['--history-size', '5']).
  constructor(port, name, extraArgs = []) {
    this.port = port;
    this.name = name;
    this.extraArgs = extraArgs;
    this.proc = null;
    this.exited = null;
    this.logPath = null;
    this.runs = 0;
    this.dataDir = path.join(LOG_DIR, `${name}-data-${port}-${Date.now()}`);
    this.httpUrl = `http://127.0.0.1:${port}`;
    // No trailing slash, like tests/integration/node/roomcast.js, whose ChatClient appends a path.
    this.wsUrl = `ws://127.0.0.1:${port}`;
  }

  static async start(name = 'client', extraArgs = []) {
    const server = new RoomcastServer(await freePort(), name, extraArgs);
    await server.start();
    return server;
  }

  async start() {
    if (!fs.existsSync(BINARY)) throw new Error(`roomcast binary not found at ${BINARY}; set ROOMCAST_BIN`);
    fs.mkdirSync(LOG_DIR, { recursive: true });
    this.runs++;
    const logPath = path.join(LOG_DIR, `${this.name}-server-${this.port}-run${this.runs}.log`);
    this.logPath = logPath;
    const log = fs.openSync(logPath, 'w');
    const args = ['--host', '127.0.0.1', '--port', String(this.port), '--web-root', path.join(ROOT, 'web'),
      '--data-dir', this.dataDir, ...withTestDefaults(this.extraArgs)];
    const proc = spawn(BINARY, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exitInfo = null;
    this.exited.then((info) => { exitInfo = info; });

    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    while (Date.now() < deadline) {
      if (exitInfo) throw new Error(`roomcast exited early (${JSON.stringify(exitInfo)}); see ${logPath}`);
      if ((await httpStatus(`${this.httpUrl}/healthz`)) === 200) return;
      await sleep(50);
    }
    await this.kill();
    throw new Error(`roomcast was not healthy within ${HEALTHY_WITHIN_MS} ms; see ${logPath}`);
  }

  async stop() {
    return this.#end('SIGTERM');
  }

  // stop(), and fails unless the server exited by itself with status 0 (a crash or a sanitizer
  // report on the way out is a test failure, not noise).
  async stopCleanly() {
    const info = await this.stop();
    if (info && (info.code !== 0 || info.signal !== null)) {
      throw new Error(`roomcast did not shut down cleanly: ${JSON.stringify(info)}; see ${this.logPath}`);
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
