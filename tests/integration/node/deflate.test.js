'use strict';
// permessage-deflate (RFC 7692) with the npm `ws` client as the independent peer: every window
// size and context takeover setting it can offer, compressed fragmented messages, text and
// binary through /echo, a chat room mixing peers that negotiated it with peers that did not,
// and a decompression bomb cut off at --max-message-size.

const test = require('node:test');
const assert = require('node:assert/strict');
const { ChatClient, startServer, WebSocket } = require('./roomcast');

const OPTS = { timeout: 30000 };
const TEXT = 'The quick brown fox jumps over the lazy dog; the lazy dog sleeps on. ';

async function withServer(t, ...flags) {
  const server = await startServer(...flags);
  t.after(() => server.stop());
  return server;
}

// Opens /echo with `perMessageDeflate` (ws's options; threshold 0: ws compresses every
// message) and resolves with the socket and its message queue.
async function openEcho(server, perMessageDeflate, extra = {}) {
  const ws = new WebSocket(`${server.wsUrl}/echo`, { handshakeTimeout: 5000, perMessageDeflate, ...extra });
  ws.on('error', () => {});
  const inbox = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    inbox.push({ data, isBinary });
    waiters.splice(0).forEach((wake) => wake());
  });
  const closed = new Promise((resolve) => ws.on('close', (code) => {
    waiters.splice(0).forEach((wake) => wake());
    resolve(code);
  }));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const next = async () => {
    const deadline = Date.now() + 5000;
    while (!inbox.length) {
      if (ws.readyState === WebSocket.CLOSED) throw new Error('closed while waiting for a message');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no echo within 5 s');
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return inbox.shift();
  };
  return { ws, next, closed };
}

function deflateParams(ws) {
  const ext = ws._extensions['permessage-deflate'];  // ws keeps the negotiated extension here
  return ext ? ext.params : null;
}

const OFFERS = [
  { threshold: 0 },
  { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true },
  ...[9, 10, 11, 12, 13, 14, 15].map((bits) => ({ threshold: 0, clientMaxWindowBits: bits })),
  ...[9, 12, 15].map((bits) => ({ threshold: 0, serverMaxWindowBits: bits })),
];

for (const offer of OFFERS) {
  test(`ws round-trips through /echo with perMessageDeflate ${JSON.stringify(offer)}`, OPTS, async (t) => {
    const server = await withServer(t, '--echo-endpoint');
    const { ws, next } = await openEcho(server, offer);
    const params = deflateParams(ws);
    assert.ok(params, 'permessage-deflate was not negotiated');
    // Our answer always carries both no_context_takeover parameters (docs/protocol.md).
    assert.equal(params.server_no_context_takeover, true);
    assert.equal(params.client_no_context_takeover, true);
    if (offer.serverMaxWindowBits) assert.equal(params.server_max_window_bits, offer.serverMaxWindowBits);

    for (const text of ['hi', TEXT.repeat(40), TEXT.repeat(1500), 'κόσμε 😀 '.repeat(500)]) {
      ws.send(text);
      const { data, isBinary } = await next();
      assert.equal(isBinary, false);
      assert.equal(data.toString(), text);
    }
    const binary = Buffer.alloc(70000, 7);
    ws.send(binary);
    const echoed = await next();
    assert.equal(echoed.isBinary, true);
    assert.ok(echoed.data.equals(binary));

    // A fragmented compressed message: ws sets RSV1 on its first frame only.
    ws.send(TEXT.repeat(10), { fin: false });
    ws.send('middle', { fin: false });
    ws.send(TEXT.repeat(20), { fin: true });
    assert.equal((await next()).data.toString(), `${TEXT.repeat(10)}middle${TEXT.repeat(20)}`);
    ws.close();
  });
}

test('a chat room mixing deflate peers and plain peers: everyone gets every message once', OPTS, async (t) => {
  const server = await withServer(t);
  const members = [];
  for (let i = 0; i < 6; i += 1) {
    const c = await ChatClient.connect(server, '/', { perMessageDeflate: i % 2 === 0 });
    assert.equal(deflateParams(c.ws) !== null, i % 2 === 0);
    await c.join('mixed', `m${i}`);
    members.push(c);
  }
  const texts = Array.from({ length: 10 }, (_, i) => `${i}: ${TEXT.repeat(3)}`);
  for (const [i, text] of texts.entries()) {
    members[i % members.length].send({ type: 'chat_message', message: text });
  }
  for (const m of members) {
    const got = [];
    while (got.length < texts.length) {
      const msg = await m.expect((x) => x.type === 'chat_message');
      got.push(msg.message);
    }
    assert.deepEqual(got.sort(), [...texts].sort());
    assert.deepEqual((await m.collect(200)).filter((x) => x.type === 'chat_message'), []);
  }
});

test('a decompression bomb from ws is closed with 1009 at --max-message-size', OPTS, async (t) => {
  const server = await withServer(t, '--echo-endpoint', '--max-message-size', '100000');
  const { ws, next, closed } = await openEcho(server, { threshold: 0 });
  ws.send('a'.repeat(100000));
  assert.equal((await next()).data.length, 100000);
  ws.send('a'.repeat(16 << 20));  // about 16 KiB once compressed
  assert.equal(await closed, 1009);
});

const DEDICATED_OFFERS = [
  { threshold: 0 }, { threshold: 0, serverMaxWindowBits: 10 }, { threshold: 0, serverNoContextTakeover: true },
];
for (const offer of DEDICATED_OFFERS) {
  test(`--compression dedicated: ws reads our context across messages, ${JSON.stringify(offer)}`, OPTS, async (t) => {
    const server = await withServer(t, '--echo-endpoint', '--compression', 'dedicated');
    const { ws, next } = await openEcho(server, offer);
    const params = deflateParams(ws);
    assert.ok(params, 'permessage-deflate was not negotiated');
    // Context takeover unless the client asked us not to keep one.
    assert.equal(params.server_no_context_takeover === true, offer.serverNoContextTakeover === true);
    for (let i = 0; i < 30; i += 1) {
      const text = `${i} ${TEXT.repeat(1 + (i % 7) * 20)}`;
      ws.send(text);
      assert.equal((await next()).data.toString(), text);
    }
    ws.close();
  });
}
