#!/usr/bin/env node
// uWebSockets baseline chat server for the roomcast benchmarks.
//
// The chapter's chat protocol, as bench/baselines/node-chat-server.js speaks it (the same test,
// chat-servers.test.js, runs against both: connection_established, join_room with its
// welcome and user_list, chat_message to every room of the sender, typing to the others,
// leave and close), on
// uWebSockets.js (the npm package @trufflesuite/uws-js-unofficial: uWebSockets.js v20.30 with
// its prebuilt binaries on the npm registry; the newer @btc-vision/uwebsockets.js v20.57 needs
// glibc 2.38, Debian 12 has 2.36), written the way uWebSockets is meant to be used: a room is a
// pub/sub topic, and a message is one app.publish, which uWebSockets frames once and writes,
// corked, to every subscriber. No history, no rate limits, no auth: it is the reference for
// what a fan-out costs with nothing else in the way (issue 19: memory mode against it).
//
// Usage: node bench/baselines/uws-chat-server.js [--port 3002] [--host 127.0.0.1]
// Prints "listening on http://HOST:PORT" once ready; GET /healthz answers 200.
'use strict';

const crypto = require('crypto');
const uWS = require('@trufflesuite/uws-js-unofficial');
const { parseServerOptions } = require('./server-options');

const options = parseServerOptions(process.argv.slice(2), 3002);
const decoder = new TextDecoder();
const sockets = new Set(); // open WebSockets, closed with 1001 on SIGTERM
const rooms = new Map(); // room name -> Map(user id -> username)
const roomSeqs = new Map(); // room name -> last seq (as the Node baseline: for the harness)

const app = uWS.App();

function systemMessage(text) {
  return JSON.stringify({ type: 'system_message', message: text, timestamp: Date.now() });
}

function publishUserList(room) {
  const members = rooms.get(room);
  const users = [...members].map(([id, username]) => ({ id, username }));
  app.publish(room, JSON.stringify({ type: 'user_list', room, users }));
}

function joinRoom(ws, room, username) {
  const user = ws.getUserData();
  if (!rooms.has(room)) rooms.set(room, new Map());
  rooms.get(room).set(user.id, username);
  user.rooms.add(room);
  user.username = username;
  ws.send(systemMessage(`Welcome to ${room}!`));
  ws.subscribe(room);
  ws.publish(room, systemMessage(`${username} joined the chat`)); // the others
  publishUserList(room);
}

function leaveRoom(user, room) {
  const members = rooms.get(room);
  if (!members || !members.delete(user.id)) return;
  user.rooms.delete(room);
  if (members.size === 0) {
    rooms.delete(room);
    roomSeqs.delete(room);
    return;
  }
  app.publish(room, systemMessage(`${user.username} left the chat`));
  publishUserList(room);
}

function chat(user, text) {
  for (const room of user.rooms) {
    const seq = (roomSeqs.get(room) || 0) + 1;
    roomSeqs.set(room, seq);
    app.publish(room, JSON.stringify({
      type: 'chat_message', room, seq, userId: user.id, username: user.username,
      message: text, timestamp: Date.now(),
    }));
  }
}

app.ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 16 * 1024 * 1024,
  idleTimeout: 120,
  open: (ws) => {
    const user = ws.getUserData();
    user.id = crypto.randomUUID();
    user.username = null;
    user.rooms = new Set();
    sockets.add(ws);
    ws.send(JSON.stringify({ type: 'connection_established', userId: user.id }));
  },
  message: (ws, data) => {
    const fail = (message) => ws.send(JSON.stringify({ type: 'error', message }));
    let msg;
    try {
      msg = JSON.parse(decoder.decode(data)); // data is valid only in this call
    } catch (err) {
      return fail('Invalid message format');
    }
    if (!msg || typeof msg !== 'object') return fail('Invalid message format');
    const user = ws.getUserData();
    switch (msg.type) {
      case 'join_room':
        if (typeof msg.room !== 'string' || !msg.room || typeof msg.username !== 'string' ||
            !msg.username) {
          return fail('join_room needs room and username');
        }
        return joinRoom(ws, msg.room, msg.username);
      case 'leave_room':
        ws.unsubscribe(String(msg.room));
        return leaveRoom(user, msg.room);
      case 'typing_start':
      case 'typing_stop':
        if (!user.rooms.has(msg.room)) return undefined;
        return ws.publish(msg.room, JSON.stringify({  // the others
          type: msg.type, userId: user.id, username: user.username, room: msg.room,
        }));
      case 'chat_message':
        if (typeof msg.message !== 'string' || !msg.message) {
          return fail('chat_message needs a message');
        }
        return chat(user, msg.message);
      default:
        return fail(`Unknown message type: ${msg.type}`);
    }
  },
  close: (ws) => {
    // uWebSockets has already taken the socket out of its topics.
    const user = ws.getUserData();
    sockets.delete(ws);
    for (const room of [...user.rooms]) leaveRoom(user, room);
  },
});

app.get('/healthz', (res) => {
  res.writeHeader('Content-Type', 'application/json').end('{"status":"ok"}');
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end('Not found');
});

let listening = null;
app.listen(options.host, options.port, (token) => {
  if (!token) {
    console.error(`cannot listen on ${options.host}:${options.port}`);
    process.exit(1);
  }
  listening = token;
  console.log(`listening on http://${options.host}:${uWS.us_socket_local_port(token)}`);
});

function shutdown(signal) {
  console.log(`${signal}: closing ${sockets.size} connections`);
  if (listening) uWS.us_listen_socket_close(listening);
  for (const ws of [...sockets]) ws.end(1001, 'Server shutting down');
  setTimeout(() => process.exit(0), 100); // the close frames go out first
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
