// Test helper (not a test file): a real redis-server on a loopback port for cluster-mode tests.
// stop() and start() again keep the port and the data (append-only file, fsync on every write),
// like a Redis restart in production.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import integration from '../integration/node/roomcast.js';
import { LOG_DIR } from './server.mjs';

const { freePort, sleep } = integration;

const REDIS_BIN = process.env.REDIS_SERVER_BIN || '/usr/bin/redis-server';
const READY_WITHIN_MS = 10000;
const STOP_GRACE_MS = 5000;

// Resolves true if a Redis answers PING on port within timeoutMs, false otherwise.
function ping(port, timeoutMs = 1000) {
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

export class RedisServer {
  constructor(port, name) {
    this.port = port;
    this.name = name;
    this.dir = path.join(LOG_DIR, `${name}-redis-${port}-${Date.now()}`);
    this.url = `redis://127.0.0.1:${port}`;
    this.proc = null;
    this.exited = null;
    this.logPath = null;
    this.runs = 0;
  }

  static available() {
    return fs.existsSync(REDIS_BIN);
  }

  static async start(name = 'cluster') {
    const redis = new RedisServer(await freePort(), name);
    await redis.start();
    return redis;
  }

  // Starts redis-server (again) on the same port and directory; resolves once it answers PING.
  async start() {
    if (!RedisServer.available()) throw new Error(`redis-server not found at ${REDIS_BIN}; set REDIS_SERVER_BIN`);
    fs.mkdirSync(this.dir, { recursive: true });
    this.runs++;
    this.logPath = path.join(LOG_DIR, `${this.name}-redis-${this.port}-run${this.runs}.log`);
    const log = fs.openSync(this.logPath, 'w');
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', '--dir', this.dir];
    const proc = spawn(REDIS_BIN, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exitInfo = null;
    this.exited.then((info) => { exitInfo = info; });

    const deadline = Date.now() + READY_WITHIN_MS;
    while (Date.now() < deadline) {
      if (exitInfo) throw new Error(`redis-server exited early (${JSON.stringify(exitInfo)}); see ${this.logPath}`);
      if (await ping(this.port)) return;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`redis-server did not answer PING within ${READY_WITHIN_MS} ms; see ${this.logPath}`);
  }

  // SIGTERM (Redis writes out its append-only file and exits), SIGKILL after 5 s. Resolves with
  // the exit { code, signal }, or null if it was not running.
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return this.exited;
    proc.kill('SIGTERM');
    const escalate = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    const info = await this.exited;
    clearTimeout(escalate);
    return info;
  }
}
