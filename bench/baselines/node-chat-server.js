#!/usr/bin/env node
// Baseline chat server for the roomcast benchmarks.
//
// This is "the server a team would otherwise deploy": the book chapter's Node.js chat server
// on the npm `ws` package, with the chapter's protocol and semantics, written the plain,
// idiomatic way the chapter writes it. The benchmarks run it side by side with roomcast and
// report ratios, so it is deliberately NOT optimized: one JSON.stringify per room per message,
// one ws.send per recipient, and the full user_list to the whole room on every join and leave
// (uncoalesced, quadratic in the room's size; that is part of what is being compared).
//
// Usage: node bench/baselines/node-chat-server.js [--port 3001] [--host 127.0.0.1]
//        (PORT in the environment also works; --port 0 picks a free port.)
// Prints "listening on http://HOST:PORT" once ready; GET /healthz answers 200.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');
const { parseServerOptions } = require('./server-options');

const options = parseServerOptions(process.argv.slice(2), 3001);
const HEARTBEAT_INTERVAL_MS = 15000;

const clients = new Map(); // client id -> { ws, userId, username, rooms: Set<string> }
const rooms = new Map(); // room name -> Set<client id>
const roomSeqs = new Map(); // room name -> last seq sent (benchmark extension, see below)

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('Not found');
});

const wss = new WebSocketServer({ server });

function send(ws, payload) {
  if (ws.readyState === WebSocket.OPEN) ws.send(payload);
}

function sendJson(ws, message) {
  send(ws, JSON.stringify(message));
}

function isNonEmptyString(value) {
  return typeof value === 'string' && value.length > 0;
}

// Sends one message to every member of a room, optionally skipping one client.
function broadcastToRoom(room, message, excludeId) {
  const members = rooms.get(room);
  if (!members) return;
  const payload = JSON.stringify(message);
  for (const id of members) {
    if (id === excludeId) continue;
    const client = clients.get(id);
    if (client) send(client.ws, payload);
  }
}

function sendUserList(room) {
  const members = rooms.get(room);
  if (!members) return;
  const users = [];
  for (const id of members) {
    const client = clients.get(id);
    if (client) users.push({ id: client.userId, username: client.username });
  }
  broadcastToRoom(room, { type: 'user_list', room, users });
}

function systemMessage(text) {
  return { type: 'system_message', message: text, timestamp: Date.now() };
}

function joinRoom(clientId, room, username) {
  const client = clients.get(clientId);
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(clientId);
  client.rooms.add(room);
  client.username = username;

  sendJson(client.ws, systemMessage(`Welcome to ${room}!`));
  broadcastToRoom(room, systemMessage(`${username} joined the chat`), clientId);
  sendUserList(room);
}

function leaveRoom(clientId, room) {
  const client = clients.get(clientId);
  const members = rooms.get(room);
  if (!client || !members || !members.has(clientId)) return;
  members.delete(clientId);
  client.rooms.delete(room);

  if (members.size === 0) {
    rooms.delete(room);
    roomSeqs.delete(room);
    return;
  }
  broadcastToRoom(room, systemMessage(`${client.username} left the chat`));
  sendUserList(room);
}

function handleChatMessage(clientId, text) {
  const client = clients.get(clientId);
  for (const room of client.rooms) {
    const seq = (roomSeqs.get(room) || 0) + 1;
    roomSeqs.set(room, seq);
    broadcastToRoom(room, {
      type: 'chat_message',
      // `room` and `seq` are roomcast extensions, added here only so that the benchmark
      // harness can treat this server and roomcast alike. The chapter's server omits them.
      room,
      seq,
      userId: client.userId,
      username: client.username,
      message: text,
      timestamp: Date.now(),
    });
  }
}

function handleTyping(clientId, type, room) {
  const client = clients.get(clientId);
  if (!client.rooms.has(room)) return;
  broadcastToRoom(room, { type, userId: client.userId, username: client.username, room }, clientId);
}

function handleMessage(clientId, data) {
  const ws = clients.get(clientId).ws;
  const fail = (message) => sendJson(ws, { type: 'error', message });
  let msg;
  try {
    msg = JSON.parse(data.toString());
  } catch (err) {
    return fail('Invalid message format');
  }
  if (!msg || typeof msg !== 'object') return fail('Invalid message format');

  switch (msg.type) {
    case 'join_room':
      if (!isNonEmptyString(msg.room) || !isNonEmptyString(msg.username)) {
        return fail('join_room needs room and username');
      }
      return joinRoom(clientId, msg.room, msg.username);
    case 'leave_room':
      return leaveRoom(clientId, msg.room);
    case 'chat_message':
      if (!isNonEmptyString(msg.message)) return fail('chat_message needs a message');
      return handleChatMessage(clientId, msg.message);
    case 'typing_start':
    case 'typing_stop':
      return handleTyping(clientId, msg.type, msg.room);
    default:
      return fail(`Unknown message type: ${msg.type}`);
  }
}

wss.on('connection', (ws) => {
  const clientId = crypto.randomUUID();
  clients.set(clientId, { ws, userId: clientId, username: null, rooms: new Set() });

  ws.isAlive = true;
  ws.on('pong', () => {
    ws.isAlive = true;
  });
  ws.on('message', (data) => handleMessage(clientId, data));
  ws.on('close', () => {
    const client = clients.get(clientId);
    for (const room of [...client.rooms]) leaveRoom(clientId, room);
    clients.delete(clientId);
  });
  ws.on('error', (err) => console.error(`client ${clientId}: ${err.message}`));

  sendJson(ws, { type: 'connection_established', userId: clientId });
});

// Heartbeat as in the chapter: ping everyone every 15 s; whoever has not answered the
// previous ping with a pong by now is gone.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_INTERVAL_MS);

function shutdown(signal) {
  console.log(`${signal}: closing ${wss.clients.size} connections`);
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.close(1001, 'Server shutting down');
  wss.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref(); // don't wait forever for slow closers
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(options.port, options.host, () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});
