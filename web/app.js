// The chat page: wires the DOM of index.html to a RoomcastClient (roomcast.js).
//
// Every string that comes from a user or the server reaches the page through textContent, a
// text node or an attribute, never as markup: this file does not use innerHTML at all (links in
// messages are `a` elements built node by node, linkify()).

import { RoomcastClient, LIMITS, charCount, nameAsKept, newMessageId } from './roomcast.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  statusText: $('status-text'),
  errorBanner: $('error-banner'),
  errorText: $('error-text'),
  errorDismiss: $('error-dismiss'),
  joinToggle: $('join-toggle'),
  join: $('join'),
  joinForm: $('join-form'),
  username: $('username'),
  usernameHint: $('username-hint'),
  room: $('room'),
  joinButton: $('join-button'),
  joinError: $('join-error'),
  directory: $('directory'),
  recentRooms: $('recent-rooms'),
  chat: $('chat'),
  empty: $('empty'),
  tabs: $('room-tabs'),
  leaveButton: $('leave-button'),
  roomTitle: $('room-title'),
  logs: $('logs'),
  jumpLatest: $('jump-latest'),
  typing: $('typing'),
  sendForm: $('send-form'),
  message: $('message'),
  messageError: $('message-error'),
  messageCount: $('message-count'),
  membersToggle: $('members-toggle'),
  membersCount: $('members-count'),
  announcer: $('announcer'),
  membersPanel: $('members-panel'),
  membersClose: $('members-close'),
  users: $('users'),
  usersRoom: $('users-room'),
  statsToggle: $('stats-toggle'),
  statsPanel: $('stats-panel'),
  statSent: $('stat-sent'),
  statReceived: $('stat-received'),
  statUptime: $('stat-uptime'),
  statLatency: $('stat-latency'),
};

const client = new RoomcastClient();
// The rooms and the direct conversations, each a tab and a log (ensureView): room name (or
// dmKey(username)) -> view, in the order they were opened.
const views = new Map();
// The key of the view shown, and the room shown last (whose members the panel lists while a
// conversation is shown).
let currentKey = null;
let lastRoom = null;
// A conversation's key: no room can have it, room names never contain control characters
// (docs/protocol.md, Names).
const DM_PREFIX = '\u0001@';
const dmKey = (username) => DM_PREFIX + username;
const isDm = (key) => typeof key === 'string' && key.startsWith(DM_PREFIX);
const roomKeys = () => [...views.keys()].filter((key) => !isDm(key));
let nextViewId = 1;
const PAGE_TITLE = document.title;
// Consecutive messages of one author within this long share one header.
const GROUP_WITHIN_MS = 5 * 60 * 1000;
const OLDER_PAGE = 50;

// ---- Remembered between visits (localStorage) -----------------------------------------------

const STORE_KEY = 'roomcast.chat';
const MAX_RECENT = 8;

function loadSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) ?? '{}');
    return {
      username: typeof saved.username === 'string' ? saved.username : '',
      rooms: Array.isArray(saved.rooms) ? saved.rooms.filter((r) => typeof r === 'string') : [],
      current: typeof saved.current === 'string' ? saved.current : null,
      recent: Array.isArray(saved.recent) ? saved.recent.filter((r) => typeof r === 'string') : [],
      stats: saved.stats === true,
    };
  } catch {
    return { username: '', rooms: [], current: null, recent: [], stats: false };
  }
}

const saved = loadSaved();
// What to rejoin, read before anything is saved again.
const restore = { username: saved.username, rooms: [...saved.rooms], current: saved.current };

// Conversations are not remembered: the page's users are anonymous, with a new userId on every
// connection, so the conversations the server keeps are not theirs after a reload.
function persist() {
  saved.rooms = roomKeys();
  saved.current = isDm(currentKey) ? lastRoom : currentKey;
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(saved));
  } catch {
    // Storage full or disabled (a private window): the page works, it just will not remember.
  }
}

function rememberRoom(room) {
  saved.recent = [room, ...saved.recent.filter((r) => r !== room)].slice(0, MAX_RECENT);
  persist();
  renderDirectory();
}

// ---- Small DOM helpers ----------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className, text, onClick) {
  const node = element('button', className, text);
  node.type = 'button';
  node.addEventListener('click', onClick);
  return node;
}

const validTime = (timestamp) => (Number.isFinite(timestamp) ? timestamp : Date.now());

function timeElement(timestamp) {
  const date = new Date(validTime(timestamp));
  const node = element('time', 'time', date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  node.dateTime = date.toISOString();
  node.title = date.toLocaleString();
  return node;
}

const dayKey = (timestamp) => new Date(validTime(timestamp)).toDateString();

function dayLabel(timestamp) {
  const date = new Date(validTime(timestamp));
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return 'Today';
  if (date.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return date.toLocaleDateString([], { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
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

// http(s) URLs in running text; punctuation that usually ends a sentence is not part of one.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const URL_TRAILER = /[.,;:!?)\]}]+$/;

/**
 * The message text as nodes: text nodes, and an `a` for every http(s) URL in it (parsed by
 * URL, so the href is exactly what the browser will open; never markup from the message).
 */
function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const raw = match[0].replace(URL_TRAILER, '');
    let url;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const link = element('a', 'link', raw);
    link.href = url.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    nodes.push(link);
    last = match.index + raw.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

// ---- Errors in plain language ---------------------------------------------------------------

function showError(text) {
  ui.errorText.textContent = text;
  ui.errorBanner.hidden = false;
}

function hideError() {
  ui.errorBanner.hidden = true;
  ui.errorText.textContent = '';
}

function rateLimitSentence(error) {
  const ms = error.retryAfterMs;
  if (ms !== null && ms > 0) {
    const seconds = Math.ceil(ms / 1000);
    return `You are sending messages too fast. Wait ${seconds < 90 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`}, then retry.`;
  }
  // The error says nothing of the block's length; the server's default is 10 messages a
  // minute, and a sender who goes over is paused for twice that window (docs/protocol.md).
  return 'You are sending messages too fast. The server pauses a sender who goes over its limit ' +
    'for a while (2 minutes with its default settings): wait, then retry.';
}

/** What an error code means for the person at the keyboard. */
function plainError(error) {
  switch (error.code) {
    case 'rate_limited': return rateLimitSentence(error);
    case 'not_in_room': return 'You are not in that room any more. Join it again to send there.';
    case 'too_many_rooms': return 'You are in as many rooms as this server allows. Leave one first.';
    case 'username_mismatch': return 'You already have a name on this connection; leave every room to choose another.';
    case 'forbidden_room': return 'You are not allowed in that room.';
    case 'already_in_room': return 'You are already in that room.';
    case 'unavailable':
    case 'cluster_unavailable': return 'The server cannot store messages right now.';
    case 'removed_from_room': return 'The server took you out of this room.';
    // invalid_field and the rest: the server's own sentence says what was wrong.
    default: return error.message;
  }
}

/** Why a direct message to `peer` was not sent, as a sentence for the failed bubble. */
function directFailure(error, peer) {
  switch (error.code) {
    case 'user_offline': return `${peer} is offline; nothing was sent.`;
    case 'not_in_room': return 'Not sent. Join a room first: it gives you the name others see.';
    default: return `Not sent. ${plainError(error)}`;
  }
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

function showMessageError(text) {
  ui.messageError.textContent = text;
  ui.messageError.hidden = false;
  ui.message.setAttribute('aria-invalid', 'true');
}

function clearMessageError() {
  ui.messageError.hidden = true;
  ui.messageError.textContent = '';
  renderCounter();
}

// The server's rules for names (docs/protocol.md, Names), checked before sending so the user
// learns at once. The server stays the authority (look-alikes, NFC): whatever else it refuses
// comes back as an error and is shown as such.
const MARKUP = /[<>&"'`]/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;

function nameProblem(label, value, limit) {
  if (BIDI.test(value)) return `${label} must not contain text-direction control characters.`;
  if (CONTROL.test(value)) return `${label} must not contain control characters or line breaks.`;
  if (MARKUP.test(value)) return `${label} must not contain any of < > & " ' \`.`;
  const count = charCount(nameAsKept(value));
  if (count === 0) return `${label} is required.`;
  if (count > limit) return `${label} must be at most ${limit} characters (it has ${count}).`;
  return null;
}

function messageProblem(text) {
  if (nameAsKept(text) === '') return 'The message is empty.';
  const count = charCount(text);
  if (count > LIMITS.message) return `The message has ${count} characters; the limit is ${LIMITS.message}.`;
  return null;
}

// ---- Status, stats, title -------------------------------------------------------------------

const STATUS_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting...',
  open: 'Connected',
  reconnecting: 'Connection lost, reconnecting...',
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

function renderTitle() {
  let unread = 0;
  for (const view of views.values()) unread += view.unread;
  document.title = unread > 0 ? `(${unread}) ${PAGE_TITLE}` : PAGE_TITLE;
}

// ---- Panels: join form, members drawer, stats -----------------------------------------------

function setJoinOpen(open) {
  ui.join.hidden = !open;
  ui.joinToggle.setAttribute('aria-expanded', String(open));
  ui.joinToggle.textContent = open ? 'Close' : 'Join room';
  if (open) ui.joinToggle.setAttribute('aria-label', 'Close the join form');
  else ui.joinToggle.removeAttribute('aria-label');
  // Nothing to go back to before the first room: the form is the page.
  ui.joinToggle.hidden = views.size === 0;
}

function setMembersOpen(open) {
  ui.membersPanel.classList.toggle('open', open);
  ui.membersToggle.setAttribute('aria-expanded', String(open));
  trapDrawerFocus();
}

// Below 1100px the members pane is a drawer over the rooms and the chat (the top bar stays over
// it): while it is open, what it covers is inert, so Tab and a screen reader stay in the drawer
// and the top bar instead of wandering behind it. From 1100px it is a column: nothing is inert.
const drawerWidth = window.matchMedia('(max-width: 1099px)');
function trapDrawerFocus() {
  const trap = drawerWidth.matches && ui.membersPanel.classList.contains('open');
  const covered = [...ui.membersPanel.parentElement.children].filter((el) => el !== ui.membersPanel);
  for (const el of [...covered, document.querySelector('.skip-link')]) el.inert = trap;
}
drawerWidth.addEventListener('change', trapDrawerFocus);

function setStatsOpen(open) {
  ui.statsPanel.hidden = !open;
  ui.statsToggle.setAttribute('aria-expanded', String(open));
  saved.stats = open;
  persist();
}

function renderDirectory() {
  const rooms = saved.recent.filter((room) => !views.has(room));
  ui.recentRooms.replaceChildren(...rooms.map((room) => {
    const item = element('li');
    item.append(button('recent-room', room, () => {
      ui.room.value = room;
      ui.joinForm.requestSubmit();
    }));
    return item;
  }));
  ui.directory.hidden = rooms.length === 0;
}

// ---- Rooms and conversations ----------------------------------------------------------------

/**
 * The view of `key` (a room's name, or dmKey(peer) for the direct conversation with `peer`),
 * made on first use: a tab and a panel holding the log.
 */
function ensureView(key, { peer = null } = {}) {
  let view = views.get(key);
  if (view) return view;
  const dm = isDm(key);
  const label = dm ? `@${peer}` : key;
  const id = nextViewId++;
  const tab = element('button', dm ? 'room-tab dm-tab' : 'room-tab');
  tab.type = 'button';
  tab.id = `tab-${id}`;
  tab.setAttribute('role', 'tab');
  tab.setAttribute('aria-controls', `panel-${id}`);
  if (dm) {
    tab.dataset.peer = peer;
    tab.title = `Direct messages with ${peer}`;
  } else {
    tab.dataset.room = key;
  }
  tab.append(element('span', 'room-name', label));
  const badge = element('span', 'badge');
  badge.hidden = true;
  tab.append(badge);
  tab.addEventListener('click', () => switchTo(key));

  const panel = element('div', 'panel');
  panel.id = `panel-${id}`;
  panel.setAttribute('role', 'tabpanel');
  panel.setAttribute('aria-labelledby', tab.id);
  if (dm) panel.dataset.peer = peer;
  else panel.dataset.room = key;
  panel.hidden = true;
  const log = element('ol', 'log');
  log.setAttribute('role', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-label', dm ? `Direct messages with ${peer}` : `Messages in ${key}`);
  log.tabIndex = 0;
  let older = null;
  let olderItem = null;
  if (!dm) {
    older = button('older', 'Load older messages', () => loadOlder(key));
    older.hidden = true;
    olderItem = element('li', 'older-item');
    olderItem.dataset.kind = 'older';
    olderItem.append(older);
    log.append(olderItem);
  }
  log.addEventListener('scroll', () => {
    if (key === currentKey) renderJump();
  });
  panel.append(log);

  // Rooms first, then the conversations.
  if (dm) ui.tabs.append(tab);
  else ui.tabs.insertBefore(tab, ui.tabs.querySelector('.dm-tab'));
  ui.logs.append(panel);
  view = {
    key, label, tab, badge, panel, log, older, olderItem,
    room: dm ? null : key,
    peer,             // a conversation's: the other person's username
    peerId: null,     // ... and the userId they had when last seen (peerIdOf)
    unread: 0,        // chat messages of others not seen yet
    newBelow: 0,      // ... of which arrived while the log was scrolled up
    welcomed: false,  // the server's "Welcome to ROOM!" shown once; the rejoins' are not news
    countHistory: false,
    welcomeItem: null,
    members: [],      // usernames of the last user_list (the client forgets them on a drop)
  };
  views.set(key, view);
  ui.chat.hidden = false;
  ui.empty.hidden = true;
  if (dm) {
    append(key, systemItem('Direct messages are not kept on this page: you are anonymous, with a new id on ' +
      'every connection, so a reload empties this conversation.', Date.now(), 'note'));
  }
  return view;
}

function switchTo(key) {
  const view = views.get(key);
  if (!view) return;
  const previous = views.get(currentKey);
  // What was new in the view left behind has been seen.
  if (previous && previous !== view) removeDivider(previous);
  currentKey = key;
  if (view.room) lastRoom = view.room;
  for (const [name, v] of views) {
    const selected = name === key;
    v.tab.setAttribute('aria-selected', String(selected));
    v.tab.tabIndex = selected ? 0 : -1;
    v.panel.hidden = !selected;
  }
  const divider = view.log.querySelector('.divider');
  setUnread(view, 0);
  view.newBelow = 0;
  ui.roomTitle.textContent = view.label;
  ui.leaveButton.textContent = view.room ? 'Leave' : 'Close';
  ui.leaveButton.setAttribute('aria-label', view.room ? `Leave ${view.room}` : `Close the conversation with ${view.peer}`);
  ui.message.placeholder = placeholder();
  if (divider) divider.scrollIntoView({ block: 'start' });
  else view.log.scrollTop = view.log.scrollHeight;
  persist();
  renderUsers();
  renderTyping();
  renderJump();
}

function removeView(key) {
  const view = views.get(key);
  if (!view) return;
  view.tab.remove();
  view.panel.remove();
  views.delete(key);
  if (lastRoom === key) lastRoom = null;
  renderTitle();
  if (currentKey === key) {
    currentKey = null;
    // Back to the room shown last (a closed conversation), else the first view left.
    const next = views.has(lastRoom) ? lastRoom : views.keys().next().value;
    if (next !== undefined) {
      switchTo(next);
    } else {
      ui.chat.hidden = true;
      ui.empty.hidden = false;
      renderUsers();
      renderTyping();
    }
  }
  persist();
  renderDirectory();
}

function setUnread(view, count) {
  view.unread = count;
  view.badge.textContent = count > 0 ? String(count) : '';
  view.badge.hidden = count === 0;
  if (count > 0) view.badge.setAttribute('aria-label', `${count} unread`);
  renderTitle();
}

function removeDivider(view) {
  view.log.querySelector('.divider')?.remove();
}

function setUsernameLocked(locked) {
  ui.username.readOnly = locked;
  ui.usernameHint.textContent = locked
    ? 'Your name in every room (leave them all to change it)'
    : 'Up to 20 characters';
}

// The room whose members the panel lists: the room shown, or while a conversation is shown the
// room shown before it.
function membersRoom() {
  if (!isDm(currentKey)) return currentKey;
  return views.has(lastRoom) ? lastRoom : null;
}

function renderUsers() {
  const room = membersRoom();
  ui.users.replaceChildren();
  ui.usersRoom.textContent = room ? `in ${room}` : '';
  ui.membersCount.textContent = '';
  if (!room) return;
  const users = client.users(room);
  if (users.length === 0 && client.state !== 'open') {
    ui.users.append(element('li', 'muted', 'Offline'));
    return;
  }
  ui.membersCount.textContent = String(users.length);
  for (const user of users) {
    const own = user.id === client.userId;
    const item = element('li', own ? 'user own' : 'user', user.username);
    if (own) {
      item.append(element('span', 'you', ' (you)'));
    } else {
      const message = button('ghost dm-button', 'Message', () => openConversation(user.username, user.id));
      message.setAttribute('aria-label', `Message ${user.username} directly`);
      item.append(message);
    }
    ui.users.append(item);
  }
}

function renderTyping() {
  // Conversations have no typing signal (the protocol's is per room).
  ui.typing.textContent = currentKey && !isDm(currentKey) ? typingText(client.typists(currentKey)) : '';
}

const isAtBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < 40;

function renderJump() {
  const view = views.get(currentKey);
  const show = Boolean(view) && !isAtBottom(view.log);
  if (view && !show) view.newBelow = 0;
  ui.jumpLatest.hidden = !show;
  ui.jumpLatest.textContent = view?.newBelow > 0 ? `${view.newBelow} new, jump to latest` : 'Jump to latest';
}

ui.jumpLatest.addEventListener('click', () => {
  const view = views.get(currentKey);
  if (!view) return;
  view.log.scrollTop = view.log.scrollHeight;
  view.newBelow = 0;
  renderJump();
  ui.message.focus();
});

// ---- Messages -------------------------------------------------------------------------------

const isMessage = (node) => ['chat', 'system', 'note'].includes(node.dataset.kind);

// The message item (chat, system, note) before `node` (from the end: null), for grouping and
// date separators.
function previousMessage(log, node = null) {
  for (let n = node ? node.previousElementSibling : log.lastElementChild; n; n = n.previousElementSibling) {
    if (isMessage(n)) return n;
  }
  return null;
}
const lastItem = (log) => previousMessage(log);

// Puts item right before the message `ref` (older messages; a join's history above its
// welcome), redoing the separators and grouping around it.
function insertBefore(log, item, ref) {
  const separator = ref.previousElementSibling?.dataset.kind === 'day' ? ref.previousElementSibling : null;
  separator?.remove();
  const before = previousMessage(log, ref);
  log.insertBefore(item, ref);
  decorate(log, item, before);
  decorate(log, ref, item);
}

// A date separator when `item` starts a new day after `before`; consecutive messages of one
// author (within GROUP_WITHIN_MS) share the first one's header.
function decorate(log, item, before, insertBefore = null) {
  const time = Number(item.dataset.time);
  if (!before || dayKey(Number(before.dataset.time)) !== dayKey(time)) {
    const separator = element('li', 'day', dayLabel(time));
    separator.dataset.kind = 'day';
    separator.setAttribute('role', 'separator');
    log.insertBefore(separator, insertBefore ?? item);
  }
  const grouped = item.dataset.kind === 'chat' && before?.dataset.kind === 'chat' &&
    before.dataset.author === item.dataset.author && dayKey(Number(before.dataset.time)) === dayKey(time) &&
    time - Number(before.dataset.time) < GROUP_WITHIN_MS;
  if (grouped) item.dataset.grouped = 'true';
  else delete item.dataset.grouped;
}

/** Appends item to room's log; counts it as unread when `unread` and the user is not looking. */
function append(room, item, { unread = false } = {}) {
  const view = ensureView(room);
  const log = view.log;
  const atBottom = isAtBottom(log);
  const before = lastItem(log);
  log.append(item);
  decorate(log, item, before);
  const looking = room === currentKey && !document.hidden;
  if (unread && !looking) {
    if (view.unread === 0) {
      removeDivider(view);
      const divider = element('li', 'divider', 'New messages');
      divider.dataset.kind = 'divider';
      divider.setAttribute('role', 'separator');
      log.insertBefore(divider, item.previousElementSibling?.dataset.kind === 'day' ? item.previousElementSibling : item);
    }
    setUnread(view, view.unread + 1);
  }
  if (room === currentKey) {
    if (atBottom) log.scrollTop = log.scrollHeight;
    else if (unread) view.newBelow++;
    renderJump();
  }
}

// A chat message, from history or live, own or others' (or a direct message). Own ones show
// their delivery state: queued (offline), sending, stored (acked; a direct message: delivered),
// failed (refused, with retry).
function chatItem(msg) {
  const item = element('li', `msg ${msg.own ? 'own' : 'other'}`);
  item.dataset.kind = 'chat';
  item.dataset.author = msg.username;
  item.dataset.time = String(validTime(msg.timestamp));
  if (Number.isFinite(msg.seq)) item.dataset.seq = String(msg.seq);
  if (msg.history) item.dataset.history = 'true';
  const meta = element('div', 'meta');
  meta.append(element('span', 'author', msg.username), timeElement(msg.timestamp));
  const text = element('p', 'text');
  text.append(...linkify(msg.message));
  item.append(meta, text);
  return item;
}

const DELIVERY = {
  queued: ['🕓', 'Waiting for the connection'],
  sending: ['…', 'Sending'],
  retrying: ['…', 'Not sent yet, retrying'],
  stored: ['✓', 'Saved'],
  delivered: ['✓', 'Delivered'],
  failed: ['!', 'Not sent'],
};

function setDelivery(item, state, reason) {
  item.dataset.state = state;
  item.querySelector('.delivery')?.remove();
  item.querySelector('.failure')?.remove();
  const [symbol, label] = DELIVERY[state];
  const mark = element('span', `delivery ${state}`, symbol);
  mark.title = label;
  mark.setAttribute('aria-label', label);
  if (state === 'queued' || state === 'retrying') mark.append(element('span', 'delivery-text', ` ${label}`));
  item.querySelector('.meta').append(mark);
  if (state === 'failed') {
    const failure = element('div', 'failure');
    failure.append(element('p', 'reason', reason));
    failure.append(
      button('retry', 'Retry', () => retry(item)),
      button('ghost edit', 'Edit', () => edit(item)),
    );
    item.append(failure);
  }
}

function ownBubble(room, text, id) {
  const item = chatItem({ own: true, username: client.username ?? ui.username.value, message: text, timestamp: Date.now() });
  item.dataset.id = id;
  item.dataset.room = room;
  return item;
}

// Own bubbles not stored yet, by message id.
const pendingById = new Map();

function findOwnPending(room, text) {
  for (const item of pendingById.values()) {
    if (item.dataset.room === room && item.querySelector('.text').textContent === text) return item;
  }
  return null;
}

function sendText(room, text, item = null) {
  const id = newMessageId();
  const outcome = client.send(text, { room, id });
  if (outcome === 'dropped') return { outcome };
  if (item) {
    pendingById.delete(item.dataset.id);
    item.dataset.id = id;
  } else {
    item = ownBubble(room, text, id);
    append(room, item);
  }
  pendingById.set(id, item);
  setDelivery(item, outcome === 'queued' && client.state !== 'open' ? 'queued' : 'sending');
  return { outcome, item };
}

function retry(item) {
  if (item.dataset.peer !== undefined) return retryDirect(item);
  const room = item.dataset.room;
  if (!client.rooms.includes(room)) return showError(`You are no longer in ${room}: join it again to send there.`);
  const { outcome } = sendText(room, item.querySelector('.text').textContent, item);
  if (outcome === 'dropped') showError('Not sent: too many messages are waiting for the connection.');
  else ui.message.focus();
}

function edit(item) {
  ui.message.value = item.querySelector('.text').textContent;
  pendingById.delete(item.dataset.id);
  directById.delete(item.dataset.id);
  item.remove();
  renderCounter();
  ui.message.focus();
}

function markStored(id, seq) {
  const item = pendingById.get(id);
  if (!item) return;
  pendingById.delete(id);
  if (Number.isInteger(seq)) item.dataset.seq = String(seq);
  setDelivery(item, 'stored');
}

// ---- Direct messages ------------------------------------------------------------------------

// Own direct messages not acknowledged yet, by id. The ack says the server stored them for the
// recipient (an anonymous sender's only reach someone connected); there is no resend.
const directById = new Map();

/**
 * The conversation with `peer` (a username), shown. A conversation is with a name: anonymous
 * users get a new userId on every connection, so each message goes to the userId that name has
 * now (peerIdOf).
 */
function openConversation(peer, userId) {
  const view = ensureView(dmKey(peer), { peer });
  if (userId) view.peerId = userId;
  switchTo(view.key);
  if (ui.membersPanel.classList.contains('open')) setMembersOpen(false);
  ui.message.focus();
}

// The userId to send `view`'s messages to: the member of that name in one of our rooms (the
// room of the members panel first), else the one of the last message from them.
function peerIdOf(view) {
  const rooms = [membersRoom(), ...client.rooms].filter(Boolean);
  for (const room of rooms) {
    const user = client.users(room).find((u) => u.username === view.peer && u.id !== client.userId);
    if (user) {
      view.peerId = user.id;
      break;
    }
  }
  return view.peerId;
}

// The username of userId in one of our rooms, or null.
function usernameOf(userId) {
  for (const room of client.rooms) {
    const user = client.users(room).find((u) => u.id === userId);
    if (user) return user.username;
  }
  return null;
}

function failDirect(item, reason) {
  directById.delete(item.dataset.id);
  setDelivery(item, 'failed', reason);
}

/** Sends text to view's peer, in a new bubble or again in `item` (a retry). */
function sendDirectText(view, text, item = null) {
  const id = newMessageId();
  if (item) {
    directById.delete(item.dataset.id);
    item.dataset.id = id;
  } else {
    item = ownBubble(view.key, text, id);
    delete item.dataset.room;
    item.dataset.peer = view.peer;
    append(view.key, item);
  }
  directById.set(id, item);
  const to = peerIdOf(view);
  // Direct messages are not queued (the library writes them only while connected, and the
  // server remembers no id to recognise a resend by), so offline is a failure to retry.
  if (to === null) failDirect(item, `${view.peer} is offline; nothing was sent.`);
  else if (client.sendDirect(to, text, { id }) === 'dropped') failDirect(item, 'Not sent: there is no connection to the server. Retry once it is back.');
  else setDelivery(item, 'sending');
  renderStats();
  return item;
}

function retryDirect(item) {
  const view = views.get(dmKey(item.dataset.peer));
  if (!view) return;
  sendDirectText(view, item.querySelector('.text').textContent, item);
  ui.message.focus();
}

// Says something to screen readers without moving the focus (what happens off screen).
function announce(text) {
  // Emptied first, so that the same sentence twice is read twice.
  ui.announcer.textContent = '';
  setTimeout(() => { ui.announcer.textContent = text; }, 50);
}

function systemItem(text, timestamp, kind = 'system') {
  const item = element('li', `msg ${kind}`);
  item.dataset.kind = kind;
  item.dataset.time = String(validTime(timestamp));
  item.append(element('p', 'text', text), timeElement(timestamp));
  return item;
}

// The oldest seq shown in a room's log, or null.
function oldestSeq(view) {
  const first = view.log.querySelector('li[data-kind="chat"][data-seq]');
  return first ? Number(first.dataset.seq) : null;
}

function renderOlder(view) {
  const oldest = oldestSeq(view);
  view.older.hidden = !(oldest > 1);
}

// "Load older": the HTTP history API has no "before", so the page asks for the page of seqs
// that ends just below the oldest one shown (seqs are consecutive in a room, but a store that
// lost its numbering jumps: whatever is not below the oldest is dropped).
async function loadOlder(room) {
  const view = views.get(room);
  const oldest = view ? oldestSeq(view) : null;
  if (!view || !(oldest > 1)) return;
  const limit = Math.min(OLDER_PAGE, oldest - 1);
  const since = oldest - 1 - limit;
  view.older.disabled = true;
  view.older.textContent = 'Loading...';
  try {
    // The page has no token (it connects anonymously): a server that requires one refuses
    // the WebSocket as well, and the page says so (unauthorized).
    const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/messages?since=${since}&limit=${limit}`);
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(body?.message ?? `HTTP ${response.status}`);
    const messages = (body?.messages ?? []).filter((m) => (m.type === undefined || m.type === 'chat_message') &&
      Number.isInteger(m.seq) && m.seq < oldest && typeof m.message === 'string');
    const heightBefore = view.log.scrollHeight;
    let first = view.olderItem.nextElementSibling;
    while (first && !isMessage(first)) first = first.nextElementSibling;
    for (const m of messages) {
      const item = chatItem({ ...m, own: m.userId === client.userId || m.username === client.username, history: true });
      if (first) insertBefore(view.log, item, first);
      else append(room, item);
    }
    // What was in view stays in view.
    view.log.scrollTop += view.log.scrollHeight - heightBefore;
    if (messages.length === 0 || since === 0) {
      view.older.hidden = true;
      const none = element('p', 'muted', 'No older messages.');
      view.olderItem.append(none);
    }
  } catch (error) {
    showError(`Could not load older messages of ${room}: ${error.message}`);
  } finally {
    view.older.disabled = false;
    view.older.textContent = 'Load older messages';
    if (!view.older.hidden) renderOlder(view);
  }
}

// ---- Client events --------------------------------------------------------------------------

// Others who were only reconnecting are not announced again: the server's rejoin grace
// (--rejoin-grace) says nothing of a return, nor of the joins right after it restarted.
client.on('state', () => {
  renderStatus();
  renderStats();
  renderUsers();
});
client.on('reconnecting', ({ delayMs }) => {
  renderStatus(`Connection lost, reconnecting in ${Math.max(1, Math.round(delayMs / 1000))} s...`);
});
client.on('close', () => {
  renderTyping();
  // A direct message not acknowledged now never will be: the ack was for that connection.
  for (const item of [...directById.values()]) {
    failDirect(item, `The connection dropped before the server confirmed it: it may not have reached ${item.dataset.peer}. Retry to send it again.`);
  }
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
client.on('open', () => {
  renderStats();
});
client.on('join', ({ room }) => {
  ensureView(room);
  // Rejoined: what waited for the connection is on its way.
  for (const item of pendingById.values()) {
    if (item.dataset.room === room && item.dataset.state === 'queued') setDelivery(item, 'sending');
  }
});
client.on('system', (msg) => {
  const view = views.get(msg.room);
  if (!view && !client.rooms.includes(msg.room)) return;
  const target = ensureView(msg.room);
  // Our own rejoin after a reconnect: the connection status said it all.
  if (msg.message === `Welcome to ${msg.room}!`) {
    if (target.welcomed) return;
    target.welcomed = true;
  }
  const item = systemItem(msg.message, msg.timestamp);
  if (msg.message === `Welcome to ${msg.room}!`) target.welcomeItem = item;
  append(msg.room, item);
});
client.on('history', ({ room, recovered, resumed }) => {
  const view = views.get(room);
  if (view) view.countHistory = resumed;
  if (!recovered && client.rooms.includes(room)) {
    append(room, systemItem('Some messages may be missing: the server could not send all you missed.', Date.now(), 'note'));
  }
});
client.on('chat', (msg) => {
  if (!client.rooms.includes(msg.room)) return;
  // Our own message, shown since it was sent: it gets its seq (and, once acked, its mark).
  let item = msg.id !== undefined ? pendingById.get(msg.id) : null;
  if (!item && msg.own) item = findOwnPending(msg.room, msg.message);
  if (item) {
    if (Number.isInteger(msg.seq)) item.dataset.seq = String(msg.seq);
    if (msg.history) markStored(item.dataset.id, msg.seq);  // in history: stored
    return;
  }
  const view = ensureView(msg.room);
  const counts = !msg.own && (!msg.history || view.countHistory);
  // A first join's history is older than the welcome that came before it.
  if (msg.history && !view.countHistory && view.welcomeItem?.isConnected) {
    insertBefore(view.log, chatItem(msg), view.welcomeItem);
    if (view.room === currentKey) view.log.scrollTop = view.log.scrollHeight;
  } else {
    append(msg.room, chatItem(msg), { unread: counts });
  }
  if (msg.history) renderOlder(view);
  renderStats();
});
client.on('ack', ({ id, seq, to }) => {
  if (to === undefined) return markStored(id, seq);
  // A direct message handed to every connection of its recipient.
  const item = directById.get(id);
  if (!item) return;
  directById.delete(id);
  setDelivery(item, 'delivered');
});
client.on('direct', (msg) => {
  if (typeof msg.message !== 'string' || typeof msg.username !== 'string') return;
  // A copy of one we sent from another connection of ours (token users) is ours, to `to`.
  const peer = msg.own ? usernameOf(msg.to) : msg.username;
  if (peer === null || (!msg.own && msg.from === client.userId)) return;
  const key = dmKey(peer);
  const view = ensureView(key, { peer });
  view.peerId = msg.own ? msg.to : msg.from;
  append(key, chatItem({ ...msg, history: false }), { unread: !msg.own });
  if (!msg.own && (key !== currentKey || document.hidden)) announce(`Direct message from ${peer}`);
  renderStats();
});
client.on('users', ({ room, users }) => {
  const view = views.get(room);
  if (view) view.members = users.map((u) => u.username);
  if (room === membersRoom()) renderUsers();
});
client.on('typing', ({ room }) => {
  if (room === currentKey) renderTyping();
});
client.on('latency', renderStats);
client.on('leave', ({ room }) => {
  // The server took us out (removed_from_room); a leave of our own has removed the view already.
  if (views.has(room)) removeView(room);
});
client.on('error', (error) => {
  const request = error.request;
  if (request?.type === 'join_room') return;  // shown by the join form
  if (request?.type === 'direct_message') {
    // Shown in its bubble; a conversation closed meanwhile has nowhere to show it.
    const item = directById.get(request.id);
    if (item) failDirect(item, directFailure(error, item.dataset.peer));
    return;
  }
  if (request?.type === 'chat_message' && pendingById.has(request.id)) {
    const item = pendingById.get(request.id);
    if (error.retrying) {
      setDelivery(item, 'retrying');
      return;
    }
    setDelivery(item, 'failed', `Not sent. ${plainError(error)}`);
    const view = views.get(item.dataset.room);
    if (view && item.dataset.room === currentKey && isAtBottom(view.log) === false) item.scrollIntoView({ block: 'nearest' });
    return;
  }
  showError(plainError(error));
});

// ---- User actions ---------------------------------------------------------------------------

async function joinRoom(rawRoom, rawUsername, { focus = true } = {}) {
  const room = nameAsKept(rawRoom);
  if (views.has(room)) {
    switchTo(room);
    if (focus) ui.message.focus();
    return true;
  }
  ui.joinButton.disabled = true;
  ui.joinButton.textContent = client.state === 'open' ? 'Joining...' : 'Waiting for connection...';
  const outcome = await client.join(room, { username: rawUsername });
  ui.joinButton.disabled = false;
  ui.joinButton.textContent = 'Join';
  if (!outcome.ok) {
    if (outcome.error.code === 'left') return false;
    const field = { username: ui.username, room: ui.room }[outcome.error.field] ?? null;
    setJoinOpen(true);
    showJoinError(`Could not join ${room}: ${plainError(outcome.error)}`, field);
    return false;
  }
  saved.username = client.username ?? nameAsKept(rawUsername);
  setUsernameLocked(true);
  ensureView(outcome.room);
  rememberRoom(outcome.room);
  if (focus || currentKey === null) switchTo(outcome.room);
  persist();
  return true;
}

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearJoinError();
  const username = ui.username.value;
  const room = ui.room.value;
  if (!ui.username.readOnly) {
    const usernameProblem = nameProblem('Username', username, LIMITS.username);
    if (usernameProblem) return showJoinError(usernameProblem, ui.username);
  }
  const roomProblem = nameProblem('Room', room, LIMITS.room);
  if (roomProblem) return showJoinError(roomProblem, ui.room);
  if (await joinRoom(room, nameAsKept(username))) {
    ui.room.value = '';
    setJoinOpen(false);
    ui.message.focus();
  }
});

ui.joinToggle.addEventListener('click', () => {
  const open = ui.join.hidden;
  setJoinOpen(open);
  if (open) (ui.username.readOnly ? ui.room : ui.username).focus();
  else ui.message.focus();
});

ui.leaveButton.addEventListener('click', () => {
  const key = currentKey;
  if (!key) return;
  if (isDm(key)) {
    // Closing a conversation throws it away (nothing of it is kept anywhere).
    const { peer } = views.get(key);
    for (const [id, item] of directById) if (item.dataset.peer === peer) directById.delete(id);
  } else {
    client.leave(key);
    for (const [id, item] of pendingById) if (item.dataset.room === key) pendingById.delete(id);
  }
  removeView(key);
  // Out of every room, the connection has no name any more (conversations or not).
  if (roomKeys().length === 0) setUsernameLocked(false);
  if (views.size === 0) {
    setJoinOpen(true);
    ui.room.focus();
  } else {
    ui.message.focus();
  }
});

ui.membersToggle.addEventListener('click', () => {
  const open = !ui.membersPanel.classList.contains('open');
  setMembersOpen(open);
  if (open) ui.membersClose.focus();
});
ui.membersClose.addEventListener('click', () => {
  setMembersOpen(false);
  ui.membersToggle.focus();
});
ui.statsToggle.addEventListener('click', () => {
  const open = ui.statsPanel.hidden;
  setStatsOpen(open);
  // On a phone the panel lives in the members drawer.
  if (open && phone.matches) setMembersOpen(true);
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && ui.membersPanel.classList.contains('open')) {
    setMembersOpen(false);
    ui.membersToggle.focus();
  }
});

// Arrow keys move between the tabs (rooms, then conversations), as in any tab list (up and
// down too: a column on desktops).
ui.tabs.addEventListener('keydown', (event) => {
  const forward = ['ArrowRight', 'ArrowDown'].includes(event.key);
  if (!forward && !['ArrowLeft', 'ArrowUp', 'Home', 'End'].includes(event.key)) return;
  const order = [...ui.tabs.children];
  const keys = order.map((tab) => [...views.values()].find((v) => v.tab === tab).key);
  const index = keys.indexOf(currentKey);
  const target = event.key === 'Home' ? 0
    : event.key === 'End' ? keys.length - 1
      : (index + (forward ? 1 : -1) + keys.length) % keys.length;
  event.preventDefault();
  switchTo(keys[target]);
  views.get(keys[target]).tab.focus();
});

function renderCounter() {
  const count = charCount(ui.message.value);
  ui.messageCount.textContent = `${count}/${LIMITS.message}`;
  const over = count > LIMITS.message;
  ui.messageCount.classList.toggle('over', over);
  if (over || !ui.messageError.hidden) ui.message.setAttribute('aria-invalid', 'true');
  else ui.message.removeAttribute('aria-invalid');
}

ui.message.addEventListener('input', () => {
  if (!ui.messageError.hidden) clearMessageError();
  renderCounter();
  if (!currentKey || isDm(currentKey)) return;
  if (ui.message.value.trim()) client.typing(currentKey);
  else client.stopTyping(currentKey);
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
  if (!currentKey) return;
  if (text === '') return;
  const problem = messageProblem(text);
  if (problem) {
    showMessageError(`Not sent: ${problem}`);
    return;
  }
  const view = views.get(currentKey);
  removeDivider(view);
  if (view.room) {
    if (sendText(view.room, text).outcome === 'dropped') {
      showMessageError('Not sent: too many messages are waiting for the connection. Try again once it is back.');
      return;
    }
  } else {
    // Whatever becomes of it shows in its bubble (Retry when it fails).
    sendDirectText(view, text);
  }
  view.log.scrollTop = view.log.scrollHeight;
  renderJump();
  ui.message.value = '';
  clearMessageError();
  renderStats();
  ui.message.focus();
});

ui.errorDismiss.addEventListener('click', () => {
  hideError();
  (currentKey ? ui.message : ui.username).focus();
});

// The composer's hint: the keys on a keyboard, just "Message" on a phone.
const phone = window.matchMedia('(max-width: 759px)');
function placeholder() {
  if (phone.matches) return currentKey ? `Message ${views.get(currentKey)?.label ?? ''}` : 'Message';
  return 'Message (Enter sends, Shift+Enter for a new line)';
}
phone.addEventListener('change', () => {
  ui.message.placeholder = placeholder();
});

// Unread in the room shown counts while the page is hidden (another tab); seen once it is back.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  const view = views.get(currentKey);
  if (view) setUnread(view, 0);
});

// The browser knows when the network is back before the backoff timer does.
window.addEventListener('online', () => client.reconnectNow());
setInterval(renderStats, 1000);

renderStatus();
renderStats();
setStatsOpen(saved.stats);
ui.message.placeholder = placeholder();
renderDirectory();
client.connect();
if (restore.username && restore.rooms.length > 0) {
  // Back where we were: the rooms of the last visit, under the same name.
  ui.username.value = restore.username;
  setJoinOpen(true);
  const { current, rooms } = restore;
  (async () => {
    for (const room of rooms) await joinRoom(room, restore.username, { focus: room === current });
    setJoinOpen(views.size === 0);
    if (current && views.has(current)) switchTo(current);
    ui.message.focus();
  })();
} else {
  if (saved.username) ui.username.value = saved.username;
  setJoinOpen(true);
  (saved.username ? ui.room : ui.username).focus();
}
