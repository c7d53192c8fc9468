// The chat page: wires the DOM of index.html to a RoomcastClient (roomcast.js).
//
// Every string that comes from a user or the server reaches the page through textContent or an
// attribute, never as markup: this file does not use innerHTML at all.

import { RoomcastClient, LIMITS, charCount } from './roomcast.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  statusText: $('status-text'),
  errorBanner: $('error-banner'),
  errorText: $('error-text'),
  errorDismiss: $('error-dismiss'),
  joinForm: $('join-form'),
  username: $('username'),
  usernameHint: $('username-hint'),
  room: $('room'),
  joinButton: $('join-button'),
  joinError: $('join-error'),
  chat: $('chat'),
  tabs: $('room-tabs'),
  leaveButton: $('leave-button'),
  roomTitle: $('room-title'),
  logs: $('logs'),
  typing: $('typing'),
  sendForm: $('send-form'),
  message: $('message'),
  messageCount: $('message-count'),
  users: $('users'),
  usersRoom: $('users-room'),
  statSent: $('stat-sent'),
  statReceived: $('stat-received'),
  statUptime: $('stat-uptime'),
  statLatency: $('stat-latency'),
};

const client = new RoomcastClient();
// room -> { tab, badge, panel, log, unread }, in the order the rooms were joined.
const views = new Map();
let currentRoom = null;
let nextViewId = 1;

// ---- Small DOM helpers ----------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeElement(timestamp) {
  const date = new Date(Number.isFinite(timestamp) ? timestamp : Date.now());
  const node = element('time', 'time', date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  node.dateTime = date.toISOString();
  node.title = date.toLocaleString();
  return node;
}

function formatDuration(ms) {
  const seconds = Math.floor(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return m > 0 ? `${m}m ${s}s` : `${seconds % 60}s`;
}

/** "Ann is typing...", "Ann and Bob are typing...", "Ann, Bob and 2 others are typing..." */
function typingText(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing...`;
  if (names.length <= 3) return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing...`;
  return `${names.slice(0, 2).join(', ')} and ${names.length - 2} others are typing...`;
}

// ---- Errors ---------------------------------------------------------------------------------

// Set while the banner says a message is being retried (its ack then clears the banner).
let retryNoteShown = false;

function showError(text) {
  retryNoteShown = false;
  ui.errorText.textContent = text;
  ui.errorBanner.hidden = false;
}

function hideError() {
  ui.errorBanner.hidden = true;
  ui.errorText.textContent = '';
}

function showJoinError(text, field) {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
  for (const input of [ui.username, ui.room]) input.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function clearJoinError() {
  ui.joinError.hidden = true;
  ui.joinError.textContent = '';
  for (const input of [ui.username, ui.room]) input.removeAttribute('aria-invalid');
}

// The server's limits, checked before sending so the user learns at once. The server stays the
// authority: whatever else it refuses comes back as an error and is shown as such.
function lengthProblem(label, value, limit) {
  const count = charCount(value);
  if (count === 0) return `${label} is required.`;
  if (count > limit) return `${label} must be at most ${limit} characters (it has ${count}).`;
  return null;
}

// ---- Status and stats -----------------------------------------------------------------------

const STATUS_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting...',
  open: 'Connected',
  reconnecting: 'Reconnecting...',
  closed: 'Disconnected',
};

function renderStatus(text) {
  ui.status.dataset.state = client.state;
  ui.statusText.textContent = text ?? STATUS_TEXT[client.state];
}

function renderStats() {
  const stats = client.stats;
  ui.statSent.textContent = String(stats.messagesSent);
  ui.statReceived.textContent = String(stats.messagesReceived);
  ui.statUptime.textContent = stats.uptimeMs === null ? '–' : formatDuration(stats.uptimeMs);
  ui.statLatency.textContent = stats.latencyMs === null ? '–' : `${stats.latencyMs} ms`;
}

// ---- Rooms ----------------------------------------------------------------------------------

function ensureView(room) {
  let view = views.get(room);
  if (view) return view;
  const id = nextViewId++;
  const tab = element('button', 'room-tab');
  tab.type = 'button';
  tab.id = `tab-${id}`;
  tab.setAttribute('role', 'tab');
  tab.setAttribute('aria-controls', `panel-${id}`);
  tab.dataset.room = room;
  tab.append(element('span', 'room-name', room));
  const badge = element('span', 'badge');
  badge.hidden = true;
  tab.append(badge);
  tab.addEventListener('click', () => switchTo(room));

  const panel = element('div', 'panel');
  panel.id = `panel-${id}`;
  panel.setAttribute('role', 'tabpanel');
  panel.setAttribute('aria-labelledby', tab.id);
  panel.dataset.room = room;
  panel.hidden = true;
  const log = element('ol', 'log');
  log.setAttribute('role', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-label', `Messages in ${room}`);
  log.tabIndex = 0;
  panel.append(log);

  ui.tabs.append(tab);
  ui.logs.append(panel);
  view = { tab, badge, panel, log, unread: 0 };
  views.set(room, view);
  ui.chat.hidden = false;
  return view;
}

function switchTo(room) {
  const view = views.get(room);
  if (!view) return;
  currentRoom = room;
  for (const [name, v] of views) {
    const selected = name === room;
    v.tab.setAttribute('aria-selected', String(selected));
    v.tab.tabIndex = selected ? 0 : -1;
    v.panel.hidden = !selected;
  }
  view.unread = 0;
  view.badge.hidden = true;
  ui.roomTitle.textContent = `Room ${room}`;
  ui.leaveButton.textContent = `Leave ${room}`;
  view.log.scrollTop = view.log.scrollHeight;
  renderUsers();
  renderTyping();
}

function removeView(room) {
  const view = views.get(room);
  if (!view) return;
  view.tab.remove();
  view.panel.remove();
  views.delete(room);
  if (currentRoom !== room) return;
  currentRoom = null;
  const next = views.keys().next();
  if (!next.done) {
    switchTo(next.value);
  } else {
    ui.chat.hidden = true;
    renderUsers();
    renderTyping();
  }
}

function setUsernameLocked(locked) {
  ui.username.readOnly = locked;
  ui.usernameHint.textContent = locked
    ? 'Your name in every room of this connection'
    : 'Up to 20 characters';
}

function renderUsers() {
  ui.users.replaceChildren();
  ui.usersRoom.textContent = currentRoom ? `in ${currentRoom}` : '';
  if (!currentRoom) return;
  const users = client.users(currentRoom);
  if (users.length === 0 && client.state !== 'open') {
    ui.users.append(element('li', 'muted', 'Offline'));
    return;
  }
  for (const user of users) {
    const item = element('li', user.id === client.userId ? 'user own' : 'user', user.username);
    if (user.id === client.userId) item.append(element('span', 'you', ' (you)'));
    ui.users.append(item);
  }
}

function renderTyping() {
  ui.typing.textContent = currentRoom ? typingText(client.typists(currentRoom)) : '';
}

// ---- Messages -------------------------------------------------------------------------------

function append(room, item) {
  const view = ensureView(room);
  const log = view.log;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  if (room !== currentRoom) {
    view.unread++;
    view.badge.textContent = String(view.unread);
    view.badge.hidden = false;
    view.badge.setAttribute('aria-label', `${view.unread} unread`);
  } else if (atBottom) {
    log.scrollTop = log.scrollHeight;
  }
}

// A message from the join's history looks like a live one (data-history tells them apart).
// Our own live messages carry a mark until the server acknowledges them as stored.
function chatItem(msg) {
  const item = element('li', `msg ${msg.own ? 'own' : 'other'}`);
  item.dataset.kind = 'chat';
  if (Number.isFinite(msg.seq)) item.dataset.seq = String(msg.seq);
  if (msg.history) item.dataset.history = 'true';
  const meta = element('div', 'meta');
  meta.append(element('span', 'author', msg.username), timeElement(msg.timestamp));
  if (msg.own && !msg.history) meta.append(deliveryMark(false));
  item.append(meta, element('p', 'text', msg.message));
  return item;
}

function deliveryMark(stored) {
  const mark = element('span', `delivery ${stored ? 'stored' : 'pending'}`, stored ? '✓' : '…');
  const label = stored ? 'Saved' : 'Not saved yet';
  mark.title = label;
  mark.setAttribute('aria-label', label);
  return mark;
}

function markStored(room, seq) {
  if (!Number.isInteger(seq)) return;
  views.get(room)?.log.querySelector(`li.own[data-seq="${seq}"] .delivery.pending`)?.replaceWith(deliveryMark(true));
}

function systemItem(text, timestamp, kind = 'system') {
  const item = element('li', `msg ${kind}`);
  item.dataset.kind = kind;
  item.append(element('p', 'text', text), timeElement(timestamp));
  return item;
}

function noteInEveryRoom(text) {
  for (const room of views.keys()) append(room, systemItem(text, Date.now(), 'note'));
}

// ---- Client events --------------------------------------------------------------------------

client.on('state', () => {
  renderStatus();
  renderStats();
  renderUsers();
});
client.on('reconnecting', ({ delayMs }) => {
  renderStatus(`Reconnecting in ${Math.max(1, Math.round(delayMs / 1000))} s...`);
});
client.on('close', ({ wasOpen, willReconnect }) => {
  if (wasOpen) noteInEveryRoom(willReconnect ? 'Connection lost. Reconnecting...' : 'Disconnected.');
  renderTyping();
});
// The server refused our credentials (this page sends no token: a server with --require-auth
// refuses it with 4001). The client has stopped reconnecting; say so rather than spin.
client.on('unauthorized', ({ code }) => {
  const why = code === 4002 ? 'Your session expired' : 'This chat server requires signing in';
  showError(`${why}; the page stopped connecting. Reload the page to try again. (close ${code})`);
  renderStatus('Not signed in');
  ui.joinButton.disabled = true;
  ui.joinButton.textContent = 'Join';
});
client.on('open', ({ reconnected }) => {
  if (reconnected) noteInEveryRoom('Reconnected.');
  renderStats();
});
client.on('join', ({ room }) => {
  ensureView(room);
});
client.on('system', (msg) => {
  if (views.has(msg.room) || client.rooms.includes(msg.room)) append(msg.room, systemItem(msg.message, msg.timestamp));
});
client.on('history', ({ room, recovered }) => {
  if (!recovered && client.rooms.includes(room)) {
    append(room, systemItem('Some messages may be missing: the server could not send all you missed.', Date.now(), 'note'));
  }
});
client.on('chat', (msg) => {
  if (client.rooms.includes(msg.room)) append(msg.room, chatItem(msg));
  renderStats();
});
client.on('ack', ({ room, seq }) => {
  markStored(room, seq);
  // A message refused for now has been stored after all: the retry note is out of date.
  if (retryNoteShown) {
    retryNoteShown = false;
    hideError();
  }
});
client.on('users', ({ room }) => {
  if (room === currentRoom) renderUsers();
});
client.on('typing', ({ room }) => {
  if (room === currentRoom) renderTyping();
});
client.on('latency', renderStats);
client.on('error', (error) => {
  if (error.request?.type === 'join_room') return;  // shown by the join form
  let what = 'Server error: ';
  if (error.retrying) what = 'Message not sent yet, retrying: ';
  else if (error.request?.type === 'chat_message') what = 'Message not sent: ';
  showError(`${what}${error.message} (${error.code})`);
  retryNoteShown = error.retrying === true;
});

// ---- User actions ---------------------------------------------------------------------------

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearJoinError();
  const username = ui.username.value.trim();
  const room = ui.room.value.trim();
  const usernameProblem = lengthProblem('Username', username, LIMITS.username);
  if (usernameProblem) return showJoinError(usernameProblem, ui.username);
  const roomProblem = lengthProblem('Room', room, LIMITS.room);
  if (roomProblem) return showJoinError(roomProblem, ui.room);
  if (views.has(room)) {
    switchTo(room);
    ui.message.focus();
    return;
  }

  ui.joinButton.disabled = true;
  ui.joinButton.textContent = client.state === 'open' ? 'Joining...' : 'Waiting for connection...';
  const outcome = await client.join(room, { username });
  ui.joinButton.disabled = false;
  ui.joinButton.textContent = 'Join';
  if (!outcome.ok) {
    if (outcome.error.code === 'left') return;
    const { message, code } = outcome.error;
    const field = /username/i.test(message) ? ui.username : /'room'/.test(message) ? ui.room : null;
    showJoinError(`Could not join ${room}: ${message} (${code})`, field);
    return;
  }
  setUsernameLocked(true);
  ensureView(outcome.room);
  switchTo(outcome.room);
  ui.room.value = '';
  ui.message.focus();
});

ui.leaveButton.addEventListener('click', () => {
  const room = currentRoom;
  if (!room) return;
  client.leave(room);
  removeView(room);
  if (views.size === 0) {
    setUsernameLocked(false);
    ui.room.focus();
  } else {
    ui.message.focus();
  }
});

// Arrow keys move between room tabs, as in any tab list.
ui.tabs.addEventListener('keydown', (event) => {
  if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) return;
  const rooms = [...views.keys()];
  const index = rooms.indexOf(currentRoom);
  const target = event.key === 'Home' ? 0
    : event.key === 'End' ? rooms.length - 1
      : (index + (event.key === 'ArrowRight' ? 1 : -1) + rooms.length) % rooms.length;
  event.preventDefault();
  switchTo(rooms[target]);
  views.get(rooms[target]).tab.focus();
});

function renderCounter() {
  const count = charCount(ui.message.value);
  ui.messageCount.textContent = `${count}/${LIMITS.message}`;
  const over = count > LIMITS.message;
  ui.messageCount.classList.toggle('over', over);
  if (over) ui.message.setAttribute('aria-invalid', 'true');
  else ui.message.removeAttribute('aria-invalid');
}

ui.message.addEventListener('input', () => {
  renderCounter();
  if (!currentRoom) return;
  if (ui.message.value.trim()) client.typing(currentRoom);
  else client.stopTyping(currentRoom);
});

// Enter sends; Shift+Enter starts a new line; an input method's Enter is left alone.
ui.message.addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  ui.sendForm.requestSubmit();
});

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (!currentRoom || !text.trim()) return;
  const count = charCount(text);
  if (count > LIMITS.message) {
    showError(`Message not sent: it has ${count} characters; the limit is ${LIMITS.message}.`);
    return;
  }
  const outcome = client.send(text, { room: currentRoom });
  if (outcome === 'dropped') {
    showError('Message not sent: too many messages are waiting for the connection.');
    return;
  }
  if (outcome === 'queued') {
    const note = client.state === 'open'
      ? 'Waiting: your message will be sent once the server has answered a join, or stored the earlier ones.'
      : 'Offline: your message will be sent when the connection is back.';
    append(currentRoom, systemItem(note, Date.now(), 'note'));
  }
  ui.message.value = '';
  renderCounter();
  renderStats();
  ui.message.focus();
});

ui.errorDismiss.addEventListener('click', () => {
  hideError();
  (currentRoom ? ui.message : ui.username).focus();
});

// The browser knows when the network is back before the backoff timer does.
window.addEventListener('online', () => client.reconnectNow());
setInterval(renderStats, 1000);

renderStatus();
renderStats();
client.connect();
ui.username.focus();
