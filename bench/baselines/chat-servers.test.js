// Tests of the baseline chat servers, run with `node --test`: the Node.js one
// (node-chat-server.js, on npm `ws`) and, the same tests, the uWebSockets one
// (uws-chat-server.js). Each starts on a free loopback port; the clients are npm `ws`.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const http = require('node:http');
const WebSocket = require('ws');

const SERVERS = ['node-chat-server.js', 'uws-chat-server.js'];
const WAIT_MS = 5000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let port; // the server of the running describe block's

// Starts `script` with --port 0 and resolves once it prints its listening line.
function startServer(script) {
  let output = '';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, script), '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), WAIT_MS);
    const onData = (chunk) => {
      output += chunk;
      const match = /listening on http:\/\/[\d.]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, port: Number(match[1]) });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${output}`)));
  });
}

// A client that queues every parsed message so tests can await them in order.
class Client {
  constructor() {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    this.queue = [];
    this.waiters = [];
    this.ws.on('message', (data) => {
      this.queue.push(JSON.parse(data.toString()));
      this.flush();
    });
  }

  flush() {
    while (this.queue.length > 0 && this.waiters.length > 0) {
      this.waiters.shift()(this.queue.shift());
    }
  }

  // The next message, whatever it is.
  next() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a message')), WAIT_MS);
      this.waiters.push((msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      this.flush();
    });
  }

  // The next message, asserting its type.
  async expect(type) {
    const msg = await this.next();
    assert.equal(msg.type, type, `expected ${type}, got ${JSON.stringify(msg)}`);
    return msg;
  }

  send(value) {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  async connect() {
    const hello = await this.expect('connection_established');
    assert.match(hello.userId, UUID);
    this.userId = hello.userId;
    return this;
  }

  closed() {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) resolve(null);
      else this.ws.once('close', (code) => resolve(code));
    });
  }

  close() {
    this.ws.terminate();
  }
}

function usernames(userList) {
  return userList.users.map((u) => u.username).sort();
}

for (const script of SERVERS) {
  describe(script, () => {
    let server;

    before(async () => {
      ({ child: server, port } = await startServer(script));
    });

    after(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });

    test('GET /healthz answers 200', { timeout: 10000 }, async () => {
      const status = await new Promise((resolve, reject) => {
        http.get(`http://127.0.0.1:${port}/healthz`, (res) => {
          res.resume();
          resolve(res.statusCode);
        }).on('error', reject);
      });
      assert.equal(status, 200);
    });

    test('join, chat, typing, errors and leave between two clients', { timeout: 20000 }, async () => {
      const alice = await new Client().connect();
      const bob = await new Client().connect();
      try {
        alice.send({ type: 'join_room', room: 'lobby', username: 'alice' });
        assert.equal((await alice.expect('system_message')).message, 'Welcome to lobby!');
        assert.deepEqual(usernames(await alice.expect('user_list')), ['alice']);

        bob.send({ type: 'join_room', room: 'lobby', username: 'bob' });
        assert.equal((await bob.expect('system_message')).message, 'Welcome to lobby!');
        const bobList = await bob.expect('user_list');
        assert.equal(bobList.room, 'lobby');
        assert.deepEqual(usernames(bobList), ['alice', 'bob']);
        assert.equal((await alice.expect('system_message')).message, 'bob joined the chat');
        const aliceList = await alice.expect('user_list');
        assert.deepEqual(aliceList.users.find((u) => u.username === 'bob').id, bob.userId);

        // Chat reaches both, the sender included, with the benchmark's room and seq.
        alice.send({ type: 'chat_message', message: 'hello', timestamp: 1 });
        alice.send({ type: 'chat_message', message: 'again' });
        for (const client of [alice, bob]) {
          const first = await client.expect('chat_message');
          assert.equal(first.room, 'lobby');
          assert.equal(first.seq, 1);
          assert.equal(first.userId, alice.userId);
          assert.equal(first.username, 'alice');
          assert.equal(first.message, 'hello');
          assert.ok(first.timestamp > 1e12, 'server clock timestamp');
          const second = await client.expect('chat_message');
          assert.equal(second.seq, 2);
          assert.equal(second.message, 'again');
        }

        // Typing goes to the others only: the next thing alice sees is her own error reply.
        alice.send({ type: 'typing_start', room: 'lobby' });
        const typing = await bob.expect('typing_start');
        assert.deepEqual(typing, {
          type: 'typing_start', userId: alice.userId, username: 'alice', room: 'lobby',
        });
        alice.send('this is {not json');
        const error = await alice.expect('error');
        assert.equal(typeof error.message, 'string');

        // The connection survives the error.
        bob.send({ type: 'typing_stop', room: 'lobby' });
        assert.equal((await alice.expect('typing_stop')).userId, bob.userId);
        bob.send({ type: 'chat_message', message: 'still here' });
        assert.equal((await alice.expect('chat_message')).seq, 3);
        assert.equal((await bob.expect('chat_message')).username, 'bob');

        alice.send({ type: 'no_such_type' });
        await alice.expect('error');

        // A disconnect tells the others and updates the list.
        bob.close();
        assert.equal((await alice.expect('system_message')).message, 'bob left the chat');
        assert.deepEqual(usernames(await alice.expect('user_list')), ['alice']);
      } finally {
        alice.close();
        bob.close();
      }
    });

    test('SIGTERM closes clients with 1001 and exits', { timeout: 10000 }, async () => {
      const client = await new Client().connect();
      const closed = client.closed();
      const exited = new Promise((resolve) => server.once('exit', (code) => resolve(code)));
      server.kill('SIGTERM');
      assert.equal(await closed, 1001);
      assert.equal(await exited, 0);
    });
  });
}
