// roomcast.js: a client for the roomcast chat protocol (docs/protocol.md), documented in
// docs/client.md with types in roomcast.d.ts. One plain ES module without dependencies, for
// browsers and for Node 20+ (pass a WebSocket constructor such as npm `ws`).
//
// What it adds to a bare WebSocket:
// - reconnects by itself (exponential backoff, jitter, a cap), then rejoins its rooms with
//   `since`, so the room's history fills the gap: every chat message of a room is delivered
//   once, in seq order, across reconnects and server restarts;
// - gives every chat message sent an `id` and keeps it until the server acknowledges it as
//   stored; unacknowledged ones are resent with the same id after a reconnect (the server
//   recognises the id), so a message is neither lost nor stored twice;
// - queues chat messages while offline (bounded) and sends them once the rooms are rejoined,
//   so a client's messages to a room are stored in the order sent (docs/client.md, Order);
// - resends, with the same id and a backoff, a message the server refused only for now
//   (`cluster_unavailable`: Redis unreachable; `unavailable`: storage behind or failing);
// - typed events, with the server's replies and errors tied to the request that caused them;
// - a typing helper and a round-trip latency measurement;
// - tokens: with a `getToken` function, a fresh token for every connection and, before the
//   current one expires, an in-band refresh; and no reconnect loop when the server says the
//   credentials are bad (4001, 4002), nor when the server's backend disconnected the user (4003).

/** Server-side limits (docs/protocol.md), counted in Unicode code points like the server does. */
export const LIMITS = Object.freeze({ username: 20, room: 30, message: 500 });

/** Reconnect defaults: 0.5 s, 1 s, 2 s, ... capped at 10 s, each shortened by up to 50 %. */
export const DEFAULT_RECONNECT = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 10000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
});

/**
 * Resend defaults for a message the server refused for now (a transient error): 0.5 s, 1 s,
 * 2 s, ... capped at 10 s, each shortened by up to 50 %; the count restarts with the next ack.
 */
export const DEFAULT_RESEND = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 10000,
  factor: 2,
  jitter: 0.5,
});

// Error codes with which the server refuses a chat message only for now: `unavailable` (history
// storage behind: in order, no id; or failing: names `room` and `id`, like the next) and
// `cluster_unavailable` (Redis unreachable; names the message by `room` and `id`, whenever the
// refusal happens). The message is not stored and will
// not be acked; the same frame, same id, may be sent again later.
const TRANSIENT_CODES = new Set(['unavailable', 'cluster_unavailable']);

/** Close codes that mean "your credentials are bad": reconnecting with them cannot succeed. */
export const CLOSE_AUTH_FAILED = 4001;
export const CLOSE_TOKEN_EXPIRED = 4002;
/** The server's backend disconnected this user (POST /api/disconnect): do not come back. */
export const CLOSE_DISCONNECTED = 4003;

// Error codes the server answers only a refresh with (docs/protocol.md).
const REFRESH_CODES = new Set(['not_authenticated', 'invalid_token', 'token_mismatch']);

// setTimeout fires at once for delays beyond 2^31 - 1 ms (about 24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;
// The shortest wait before asking for a token again after getToken failed during a refresh.
const MIN_REFRESH_RETRY_MS = 1000;

const DEFAULTS = Object.freeze({
  // The server expires a typing signal after 5 s without renewal, so renew well before that.
  typingIdleMs: 3000,
  typingRenewMs: 2500,
  // Messages kept while offline; beyond this send() reports 'dropped' instead of growing memory.
  maxQueuedMessages: 100,
  // Time for a socket to open and receive connection_established before it is given up.
  connectTimeoutMs: 10000,
  // Messages written but not yet acknowledged; beyond this, send() queues until acks come, so a
  // server that stops acknowledging cannot make the client hold an unbounded list.
  maxUnackedMessages: 1000,
  // With getToken: the token is refreshed this long before its `exp`, or halfway through what
  // is left of it when that is later (short-lived tokens).
  tokenRefreshMarginMs: 60000,
  // Reading rooms without a WebSocket: 'sse' (EventSource), 'poll' (long-polling with fetch),
  // 'auto' (EventSource where there is one, else long-polling) or 'none'. Used after
  // fallbackAfter connection attempts in a row whose WebSocket never opened (a proxy that breaks
  // upgrades, say), until a WebSocket opens again.
  fallback: 'none',
  fallbackAfter: 2,
  // How long one long-poll waits on the server for a message (it answers at once when there is one).
  pollTimeoutMs: 25000,
});

// The protocol's own message types that a room's event stream carries (app event types are
// added from the client's listeners).
const STREAM_TYPES = Object.freeze(['chat_message', 'system_message', 'user_list', 'typing_start', 'typing_stop']);
// The client's own event names (on(type)), which are never a stream's event type.
const CLIENT_EVENTS = new Set(['state', 'open', 'close', 'reconnecting', 'join', 'leave', 'chat', 'history',
  'ack', 'system', 'users', 'typing', 'latency', 'error', 'unauthorized', 'disconnected', 'refreshed',
  'message', 'direct', 'binary', 'transport']);
// A long-poll that failed (network, 5xx) is tried again after this long.
const POLL_RETRY_MS = 2000;
// `since` beyond any seq: the server answers at once with the room's last_seq and no messages.
const SINCE_NOW = Number.MAX_SAFE_INTEGER;

// Own chat messages awaiting their echo, kept for the latency measurement and error attribution.
const MAX_PENDING_REQUESTS = 256;
// userIds of this client's past connections, to recognise its own messages in history.
const MAX_OWN_USER_IDS = 64;

// What renders as nothing at either end of a name: Unicode whitespace, the default-ignorable
// code points (zero-width spaces and joiners, BOM, soft hyphen, bidi controls, Hangul fillers,
// ...), the interlinear annotation controls and U+2800 BRAILLE PATTERN BLANK, as the server
// trims them (docs/protocol.md, Names).
const INVISIBLE_ENDS =
  /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\u2800\uFFF9-\uFFFB]+|[\p{White_Space}\p{Default_Ignorable_Code_Point}\u2800\uFFF9-\uFFFB]+$/gu;

/**
 * A room name or username as the server keeps it: in NFC, trimmed of what renders as nothing.
 * Rooms are keyed by it, so the server's replies (which name the room so) find their room.
 */
export function nameAsKept(name) {
  return String(name).normalize('NFC').replace(INVISIBLE_ENDS, '');
}

/** Length of a string as the server counts it: Unicode code points, not UTF-16 units. */
export function charCount(text) {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/**
 * The wait before reconnect attempt number `attempt` (0 for the first retry): the exponential
 * delay capped at maxDelayMs, then shortened by a random fraction of up to `jitter` so that many
 * clients dropped at once do not come back at once. `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialDelayMs, maxDelayMs, factor, jitter } = { ...DEFAULT_RECONNECT, ...options };
  const exponential = Math.min(maxDelayMs, initialDelayMs * factor ** attempt);
  return Math.round(exponential * (1 - jitter * random()));
}

/** The error of a refused request: the server's `error` message, or a local one. */
export class RoomcastError extends Error {
  constructor(code, message, request = null) {
    super(message);
    this.name = 'RoomcastError';
    this.code = code;
    this.request = request;
    // The field at fault of an invalid_field ('username', 'room', 'message', ...), else null.
    this.field = null;
    // The room a refusal names (cluster_unavailable for a chat_message), else null.
    this.room = null;
    // How long a rate_limited sender should wait before sending again, in ms, when the server
    // said (its `retryAfterMs`); null when it did not.
    this.retryAfterMs = null;
    // True when the request was a chat message refused only for now: the client keeps it and
    // sends it again by itself (after a backoff, or after a reconnect).
    this.retrying = false;
  }
}

// The error the server's `error` message `msg` makes, for `request`: its code and text, and
// what it names besides (field, retryAfterMs).
function serverError(msg, code, request, text = 'Error') {
  const error = new RoomcastError(code, String(msg.message ?? text), request);
  if (typeof msg.field === 'string') error.field = msg.field;
  if (Number.isSafeInteger(msg.retryAfterMs) && msg.retryAfterMs >= 0) error.retryAfterMs = msg.retryAfterMs;
  return error;
}

function defaultUrl() {
  const location = globalThis.location;
  if (!location || !location.host) return null;
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`;
}

const now = () => globalThis.performance?.now() ?? Date.now();

/**
 * The `exp` of a JWT in milliseconds since the epoch, read from its payload without verifying
 * anything (the server verifies); null when the token is not a JWT or has no numeric exp.
 */
export function tokenExpiresAt(token) {
  const payload = typeof token === 'string' ? token.split('.')[1] : undefined;
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4)));
    return Number.isFinite(claims?.exp) ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

// The server's URL with `token` as its token query parameter (the chapter's way, and the only
// one a browser's WebSocket has).
// The HTTP URL of `path` on the server a WebSocket URL names (ws -> http, wss -> https).
function httpUrlOf(wsUrl, path, params) {
  const u = new URL(path, wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined) u.searchParams.set(key, String(value));
  return u.toString();
}

function withToken(url, token) {
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}

/**
 * A fresh chat message id (the protocol allows 1..64 characters): a random UUID where the
 * platform offers one (browsers only in secure contexts), else 128 random bits in hex.
 */
export function newMessageId() {
  const crypto = globalThis.crypto;
  if (typeof crypto?.randomUUID === 'function') return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof crypto?.getRandomValues === 'function') crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// WebSocket readyState of an open socket, for browsers and npm `ws` alike.
const OPEN = 1;

export class RoomcastClient {
  #options;
  #reconnectOptions;
  #resendOptions;
  #listeners = new Map();
  #state = 'idle';
  #socket = null;
  #userId = null;
  #ownUserIds = new Set();  // this connection's userId and earlier ones (bounded)
  #username = null;
  #everConnected = false;
  #closedByUser = false;
  #attempt = 0;
  #reconnectTimer = null;
  #connectTimer = null;
  // room -> { joined, waiters: [resolve], since }: the rooms this client wants to be in; `since`
  // is what the current connection's join_room asked for (undefined: a plain join).
  #rooms = new Map();
  // room -> the highest seq delivered as a 'chat' event: the `since` of the next rejoin, and
  // the line below which a message is a duplicate. Forgotten on leave().
  #lastSeq = new Map();
  #users = new Map();  // room -> [{id, username}] from the latest user_list
  #typists = new Map();  // room -> Map(userId -> username)
  #typing = new Map();  // room -> { startedAt, idleTimer }: our own typing signal
  // Own chat messages as { frame, waiting, request, refused }: once written, `waiting` holds the
  // rooms whose ack is still owed (null before), `request` is its #pending entry of the latest
  // write, `refused` says the server refused that write for now (a resend is scheduled).
  #queue = [];  // not written on the current connection yet, oldest first
  #unacked = [];  // written, not yet acknowledged; resent after a reconnect, oldest first
  #pending = [];  // requests that get a reply: join_room (joined), chat_message (echo)
  // Reads answered by a reply of their own (direct_history, conversations), by `ref`: each a
  // { resolve, reject } of the promise its method returned.
  #reads = new Map();
  #lastRef = 0;  // the last request `ref` made (#newRef)
  #held = null;  // frames that came while a joined's history waits for its turn (#onJoined)
  // The unacknowledged messages are still to be written again on the current connection
  // (after a reconnect, once every rejoin is answered: see #flushQueue).
  #rewriteOwed = false;
  // While set, messages refused for now wait for it to resend them, and new ones queue behind
  // them (so that they are not stored before them).
  #resendTimer = null;
  #resendAttempt = 0;  // resend rounds since the last ack
  #stats = { messagesSent: 0, messagesReceived: 0, reconnects: 0, latencyMs: null };
  #connectedAt = null;  // Date.now() of the current connection's connection_established
  // Counts socket openings; an opening waiting for getToken gives up when it is no longer the
  // latest (close(), or another opening, came meanwhile).
  #openings = 0;
  #awaitingToken = 0;  // the opening waiting for getToken, 0 if none
  #tokenExpiresAt = null;  // exp (ms) of the token the current connection holds; null: none
  #refreshTimer = null;
  #refreshToken = null;  // the token of a refresh sent and not yet answered
  // After a 4002 the client reconnects once with a fresh token; a second 4002 without a
  // successful refresh in between stops it (no loop on tokens that keep failing).
  #expiryRetried = false;
  // Reading without a WebSocket: attempts in a row whose socket never opened, the transport
  // reading the rooms now ('websocket', or 'sse'/'poll' while falling back; null before any),
  // and room -> stop() of each fallback reader.
  #failedOpenings = 0;
  #transport = null;
  #readers = new Map();

  /** @param {import('./roomcast').ClientOptions} options */
  constructor(options = {}) {
    const url = options.url ?? defaultUrl();
    if (!url) throw new TypeError('RoomcastClient: no url given and no page location to derive it from');
    const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('RoomcastClient: no WebSocket implementation; pass options.WebSocket');
    }
    if (options.getToken !== undefined && typeof options.getToken !== 'function') {
      throw new TypeError('RoomcastClient: options.getToken must be a function returning a token');
    }
    this.#options = { ...DEFAULTS, ...options, url, WebSocket: WebSocketImpl };
    this.#reconnectOptions = { ...DEFAULT_RECONNECT, ...(options.reconnect ?? {}) };
    this.#resendOptions = { ...DEFAULT_RESEND, ...(options.resend ?? {}) };
  }

  // ---- State ----------------------------------------------------------------------------------

  /** 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() { return this.#state; }
  get url() { return this.#options.url; }
  /** The server's id for the current connection (a new one after every reconnect). */
  get userId() { return this.#userId; }
  get username() { return this.#username; }
  /** Rooms this client is in or joining, in the order they were joined. */
  get rooms() { return [...this.#rooms.keys()]; }
  isJoined(room) { return this.#rooms.get(room)?.joined === true; }
  users(room) { return this.#users.get(room) ?? []; }
  /** Usernames of the others typing in room, in the order they started. */
  typists(room) { return [...(this.#typists.get(room)?.values() ?? [])]; }
  /**
   * How rooms are read now: 'websocket', or 'sse' / 'poll' while falling back (options.fallback);
   * null before the first connection.
   */
  get transport() { return this.#transport; }
  get queuedMessages() { return this.#queue.length; }
  /** Messages written to the server and not yet acknowledged as stored. */
  get unackedMessages() { return this.#unacked.length; }
  /** The highest seq of room delivered as a 'chat' event (0 once welcomed into an empty room); null if not joined. */
  lastSeq(room) { return this.#lastSeq.get(room) ?? null; }
  get stats() {
    const uptimeMs = this.#connectedAt === null ? null : Date.now() - this.#connectedAt;
    return { ...this.#stats, connectedAt: this.#connectedAt, uptimeMs };
  }

  // ---- Events ---------------------------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  once(type, listener) {
    const off = this.on(type, (event) => {
      off();
      listener(event);
    });
    return off;
  }

  #emit(type, event) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (err) {
        // A faulty listener must not break the connection's bookkeeping; report it elsewhere.
        if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
        else setTimeout(() => { throw err; });
      }
    }
  }

  #setState(state) {
    if (state === this.#state) return;
    const previous = this.#state;
    this.#state = state;
    this.#emit('state', { state, previous });
  }

  // ---- Connection -----------------------------------------------------------------------------

  /** Opens the connection; from then on the client reconnects by itself until close(). */
  connect() {
    if (this.#socket || this.#reconnectTimer || this.#awaitingToken !== 0) return;
    this.#closedByUser = false;
    this.#attempt = 0;
    this.#expiryRetried = false;
    this.#openSocket('connecting');
  }

  /** Skips the wait of a pending reconnect (e.g. when the browser reports it is online again). */
  reconnectNow() {
    if (!this.#reconnectTimer) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#openSocket('reconnecting');
  }

  /** Closes the connection for good; queued messages stay queued for a later connect(). */
  close(code = 1000, reason = '') {
    this.#closedByUser = true;
    this.#stopFallback(null);
    this.#openings++;  // an opening waiting for its token gives up
    this.#awaitingToken = 0;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const socket = this.#socket;
    if (socket) {
      // Settle now, so that a connect() right after works; the socket's own close event is
      // then ignored as stale.
      this.#onClose(code, reason);
      socket.close(code, reason);
    }
    this.#setState('closed');
  }

  #openSocket(state) {
    this.#setState(state);
    const opening = ++this.#openings;
    if (!this.#options.getToken) {
      this.#openSocketWith(null);
      return;
    }
    // A fresh token for every connection: the last one may have expired while offline.
    this.#awaitingToken = opening;
    this.#fetchToken().then((token) => {
      if (opening !== this.#openings || this.#closedByUser) return;
      this.#awaitingToken = 0;
      if (token === null) {
        this.#scheduleReconnect();
        return;
      }
      this.#openSocketWith(token);
    });
  }

  // getToken()'s token, or null after reporting an 'error' with code token_failed.
  async #fetchToken() {
    try {
      const token = await this.#options.getToken();
      if (typeof token !== 'string' || token === '') throw new TypeError('getToken() returned no token');
      return token;
    } catch (err) {
      this.#emit('error', new RoomcastError('token_failed', `getToken failed: ${String(err?.message ?? err)}`));
      return null;
    }
  }

  #openSocketWith(token) {
    this.#tokenExpiresAt = token === null ? null : tokenExpiresAt(token);
    let socket;
    try {
      socket = new this.#options.WebSocket(token === null ? this.#options.url : withToken(this.#options.url, token));
    } catch (err) {
      this.#emit('error', new RoomcastError('connect_failed', String(err?.message ?? err)));
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    // Binary messages (rooms joined with binary) arrive as ArrayBuffers, in browsers and Node.
    try { socket.binaryType = 'arraybuffer'; } catch { /* an implementation without it */ }
    this.#connectTimer = setTimeout(() => {
      if (this.#socket === socket) socket.close();
    }, this.#options.connectTimeoutMs);
    socket.addEventListener('message', (event) => {
      if (this.#socket === socket) this.#onMessage(event.data);
    });
    socket.addEventListener('close', (event) => {
      if (this.#socket === socket) this.#onClose(event.code, event.reason);
    });
    // A failed or broken socket also reports close; nothing to do here.
    socket.addEventListener('error', () => {});
  }

  #onClose(code, reason) {
    const wasOpen = this.#connectedAt !== null;
    clearTimeout(this.#connectTimer);
    this.#socket = null;
    this.#connectedAt = null;
    this.#pending = [];
    // A read's reply cannot come on another connection: the caller asks again once open.
    for (const { reject } of this.#reads.values()) {
      reject(new RoomcastError('disconnected', 'The connection closed before the reply came'));
    }
    this.#reads.clear();
    // A reconnect writes every unacknowledged message again anyway.
    clearTimeout(this.#resendTimer);
    this.#resendTimer = null;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#refreshToken = null;
    for (const typing of this.#typing.values()) clearTimeout(typing.idleTimer);
    this.#typing.clear();
    for (const entry of this.#rooms.values()) entry.joined = false;
    // The server forgets a dropped connection's presence; so does the client.
    const typingRooms = [...this.#typists.keys()];
    this.#typists.clear();
    this.#users.clear();
    for (const room of typingRooms) this.#emit('typing', { room, typists: [] });

    // Bad credentials do not get better by retrying: 4001 always stops, and so does 4002 unless
    // getToken can fetch a fresh token (once; see #expiryRetried).
    const expired = code === CLOSE_TOKEN_EXPIRED;
    const retryExpiry = expired && !this.#closedByUser && Boolean(this.#options.getToken) && !this.#expiryRetried;
    const unauthorized = !this.#closedByUser && (code === CLOSE_AUTH_FAILED || (expired && !retryExpiry));
    const disconnected = !this.#closedByUser && code === CLOSE_DISCONNECTED;
    const willReconnect = !this.#closedByUser && !unauthorized && !disconnected &&
      (retryExpiry || this.#attempt < this.#reconnectOptions.maxAttempts);
    this.#emit('close', { code, reason, wasOpen, willReconnect });
    this.#failedOpenings = wasOpen ? 0 : this.#failedOpenings + 1;
    if (willReconnect && this.#failedOpenings >= this.#options.fallbackAfter) this.#startFallback();
    if (!willReconnect && !retryExpiry) this.#stopFallback(null);
    if (retryExpiry) {
      this.#expiryRetried = true;
      this.#openSocket('reconnecting');  // at once: the server is fine, the token was not
    } else if (willReconnect) {
      this.#scheduleReconnect();
    } else {
      this.#setState('closed');
    }
    if (unauthorized) {
      this.#closedByUser = true;  // stays closed until connect()
      this.#emit('unauthorized', { code, reason });
    }
    if (disconnected) {
      this.#closedByUser = true;  // the server removed the user: stays closed until connect()
      this.#emit('disconnected', { code, reason });
    }
  }

  #scheduleReconnect() {
    if (this.#closedByUser) return;
    if (this.#attempt >= this.#reconnectOptions.maxAttempts) {
      this.#setState('closed');
      return;
    }
    const delayMs = backoffDelay(this.#attempt, this.#reconnectOptions);
    this.#attempt++;
    this.#setState('reconnecting');
    this.#emit('reconnecting', { attempt: this.#attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#openSocket('reconnecting');
    }, delayMs);
  }

  // The server greeted a new connection: restore the rooms, then send what was queued. The
  // server handles one connection's messages in order, so the joins take effect first.
  #onEstablished(userId) {
    clearTimeout(this.#connectTimer);
    const reconnected = this.#everConnected;
    if (reconnected) this.#stats.reconnects++;
    this.#everConnected = true;
    this.#attempt = 0;
    this.#userId = userId;
    this.#ownUserIds.add(userId);
    if (this.#ownUserIds.size > MAX_OWN_USER_IDS) this.#ownUserIds.delete(this.#ownUserIds.values().next().value);
    this.#connectedAt = Date.now();
    this.#failedOpenings = 0;
    // The joins below resume each room after the last seq a fallback reader delivered.
    this.#stopFallback('websocket');
    this.#scheduleRefresh();
    for (const room of this.#rooms.keys()) this.#sendJoin(room);
    // Unacknowledged messages may or may not have been stored: the same id makes the server
    // acknowledge a stored one again instead of storing it twice. They are written once the
    // rejoins are answered (#flushQueue), before anything sent from here on, listeners of
    // 'state' included.
    this.#rewriteOwed = true;
    this.#setState('open');
    this.#flushQueue();
    this.#emit('open', { userId, reconnected });
  }

  // ---- Reading without a WebSocket ------------------------------------------------------------
  //
  // Receiving only: while falling back, rooms are read over the server's event stream
  // (GET /api/rooms/{room}/events) or long-polls (/poll), resuming after the last seq delivered;
  // what is sent waits in the queue, as offline. The reconnect loop goes on; once a WebSocket
  // opens, the readers stop and the rejoins resume each room after the last seq delivered, so
  // nothing is missed or repeated.

  #fallbackTransport() {
    const mode = this.#options.fallback;
    if (mode === 'sse') return typeof globalThis.EventSource === 'function' ? 'sse' : null;
    if (mode === 'poll') return typeof globalThis.fetch === 'function' ? 'poll' : null;
    if (mode !== 'auto') return null;
    if (typeof globalThis.EventSource === 'function') return 'sse';
    return typeof globalThis.fetch === 'function' ? 'poll' : null;
  }

  #startFallback() {
    const transport = this.#fallbackTransport();
    if (transport === null || this.#transport === transport) return;
    this.#setTransport(transport);
    for (const room of this.#rooms.keys()) this.#readRoom(room);
  }

  // Stops every fallback reader; `transport`: what reads the rooms from now on.
  #stopFallback(transport) {
    for (const stop of this.#readers.values()) stop();
    this.#readers.clear();
    if (transport !== null || this.#transport !== 'websocket') this.#setTransport(transport);
  }

  #setTransport(transport) {
    if (transport === this.#transport) return;
    this.#transport = transport;
    if (transport !== null) this.#emit('transport', { transport });
  }

  async #readRoom(room) {
    if (this.#readers.has(room)) return;
    let stopped = false;
    let stopReader = () => {};
    this.#readers.set(room, () => { stopped = true; stopReader(); });
    // The token goes in the URL: an EventSource cannot set headers.
    const token = this.#options.getToken ? await this.#fetchToken() : null;
    if (stopped) return;
    if (this.#transport === 'sse') stopReader = this.#streamRoom(room, token);
    else this.#pollRoom(room, token, () => stopped);
  }

  // A message a fallback reader brought: handled as if the WebSocket had.
  #receiveRead(room, msg) {
    if (!this.#rooms.has(room) || msg === null || typeof msg !== 'object') return;
    // A room never joined: the first message read sets where the room is.
    if (!this.#lastSeq.has(room) && Number.isInteger(msg.seq)) this.#lastSeq.set(room, msg.seq - 1);
    this.#dispatch(msg);
  }

  #streamRoom(room, token) {
    const since = this.#lastSeq.get(room);
    const source = new globalThis.EventSource(httpUrlOf(this.#options.url,
      `/api/rooms/${encodeURIComponent(room)}/events`, { since, token }));
    const onEvent = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      this.#receiveRead(room, msg);
    };
    // Named events only reach listeners of their name: the protocol's, and every app event
    // type this client listens to.
    const types = new Set([...STREAM_TYPES, ...this.#listeners.keys()].filter((type) => !CLIENT_EVENTS.has(type)));
    for (const type of types) source.addEventListener(type, onEvent);
    // EventSource reconnects by itself, resuming with Last-Event-ID.
    return () => source.close();
  }

  async #pollRoom(room, token, stopped) {
    const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
    let since = this.#lastSeq.get(room) ?? SINCE_NOW;
    while (!stopped()) {
      const timeout = `${this.#options.pollTimeoutMs}ms`;
      const url = httpUrlOf(this.#options.url, `/api/rooms/${encodeURIComponent(room)}/poll`, { since, timeout });
      let page = null;
      try {
        const response = await globalThis.fetch(url, { headers, cache: 'no-store' });
        if (response.ok) page = await response.json();
      } catch { /* the server is unreachable: try again below */ }
      if (stopped()) return;
      if (page === null || !Array.isArray(page.messages)) {
        await new Promise((resolve) => setTimeout(resolve, POLL_RETRY_MS));
        continue;
      }
      for (const msg of page.messages) this.#receiveRead(room, msg);
      const last = Number.isInteger(page.last_seq) ? page.last_seq : since;
      since = this.#lastSeq.get(room) ?? last;
      if (since === SINCE_NOW || since > last) since = last;  // where the room is now
    }
  }

  // ---- Tokens ---------------------------------------------------------------------------------

  // Plans the refresh of the current connection's token: tokenRefreshMarginMs before its exp, or
  // halfway through what is left when that is later. Nothing without getToken or an exp.
  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (!this.#options.getToken || this.#tokenExpiresAt === null) return;
    const left = this.#tokenExpiresAt - Date.now();
    const margin = Math.min(this.#options.tokenRefreshMarginMs, left / 2);
    const delayMs = Math.max(0, left - margin);
    const socket = this.#socket;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (this.#socket !== socket) return;
      if (delayMs > MAX_TIMER_MS) this.#scheduleRefresh();  // not due yet: plan again
      else this.#refresh(socket);
    }, Math.min(delayMs, MAX_TIMER_MS));
  }

  // Sends the server a fresh token for `socket`'s connection; the answer is token_refreshed, or
  // an error (then the connection closes with 4002 when its token expires).
  async #refresh(socket) {
    const token = await this.#fetchToken();
    if (this.#socket !== socket) return;  // closed meanwhile: the reconnect fetches its own
    if (token === null) {
      // Try again while the current token lasts (the waits halve as its end nears).
      const left = this.#tokenExpiresAt - Date.now();
      if (left <= MIN_REFRESH_RETRY_MS) return;
      this.#refreshTimer = setTimeout(() => {
        this.#refreshTimer = null;
        if (this.#socket === socket) this.#refresh(socket);
      }, Math.max(MIN_REFRESH_RETRY_MS, left / 2));
      return;
    }
    if (!this.#canWrite()) return;
    this.#refreshToken = token;
    socket.send(JSON.stringify({ type: 'refresh', token }));
  }

  #onTokenRefreshed(msg) {
    const token = this.#refreshToken;
    this.#refreshToken = null;
    if (token === null) return;
    this.#tokenExpiresAt = tokenExpiresAt(token);
    this.#expiryRetried = false;  // refreshing works: a later 4002 may be retried again
    this.#scheduleRefresh();
    this.#emit('refreshed', { expiresAt: Number.isFinite(msg.expiresAt) ? msg.expiresAt : null });
  }

  #canWrite() {
    return this.#state === 'open' && this.#socket.readyState === OPEN;
  }

  // Writes an own chat message; it then waits for an ack from every room it goes to.
  #write(outgoing) {
    const { frame } = outgoing;
    outgoing.waiting = new Set(frame.room === undefined ? this.#rooms.keys() : [frame.room]);
    outgoing.refused = false;
    // One ref for all writes of a message: the server's replies to any of them name it.
    frame.ref ??= this.#newRef();
    this.#socket.send(JSON.stringify(frame));
    this.#stats.messagesSent++;
    outgoing.request = { frame, sentAt: now() };
    this.#track(outgoing.request);
  }

  // Writes what may be written now, in the order it was sent: after a reconnect the
  // unacknowledged messages again, then the messages refused for now once their resend is due,
  // then the queue while the unacknowledged window has room. Nothing while the connection is
  // down or one of its joins awaits its answer: the server holds what a connection sends behind
  // a join until the room is loaded, refuses for now (`unavailable`) what exceeds its bound, and
  // takes what comes after once the room is loaded, so a message written then could be stored
  // before an earlier one's resend.
  #flushQueue() {
    if (!this.#canWrite() || this.#joining()) return;
    if (this.#rewriteOwed) {
      this.#rewriteOwed = false;
      for (const outgoing of this.#unacked) this.#write(outgoing);
    }
    if (this.#resendTimer !== null) return;
    // Refused for now and no timer: their resend is due.
    for (const outgoing of this.#unacked) if (outgoing.refused) this.#write(outgoing);
    while (this.#queue.length > 0 && this.#unacked.length < this.#options.maxUnackedMessages) {
      const outgoing = this.#queue.shift();
      this.#write(outgoing);
      this.#unacked.push(outgoing);
    }
  }

  // Whether a join of this connection awaits its answer (every room not joined has one sent
  // while the connection is open).
  #joining() {
    for (const entry of this.#rooms.values()) if (!entry.joined) return true;
    return false;
  }

  // A request's `ref`: the server echoes it on the replies the request causes (error, ack,
  // joined), so a reply is matched to its request exactly.
  #newRef() {
    this.#lastRef++;
    return `r${this.#lastRef}`;
  }

  #track(request) {
    this.#pending.push(request);
    if (this.#pending.length > MAX_PENDING_REQUESTS) this.#pending.shift();
  }

  // ---- Rooms ----------------------------------------------------------------------------------

  /**
   * Joins room (now, or as soon as connected) and stays in it across reconnects until leave().
   * Resolves with the outcome, never rejects: { ok: true, room } once the server welcomed us,
   * { ok: false, room, error } if the server refused (the room is then forgotten).
   * `options` is a username or { username }; the username is needed for the first room.
   */
  join(room, options = {}) {
    const { username, binary, batch } = typeof options === 'string' ? { username: options } : options;
    const name = nameAsKept(room);
    if (username !== undefined && this.#rooms.size === 0) this.#username = nameAsKept(username);
    const existing = this.#rooms.get(name);
    if (existing?.joined) return Promise.resolve({ ok: true, room: name });
    return new Promise((resolve) => {
      if (existing) {
        existing.waiters.push(resolve);
        return;
      }
      const entry = { joined: false, waiters: [resolve], binary: binary === true, batch: batch === true };
      if (username !== undefined) entry.username = nameAsKept(username);
      this.#rooms.set(name, entry);
      if (this.#state === 'open') this.#sendJoin(name);
      else if (this.#transport === 'sse' || this.#transport === 'poll') this.#readRoom(name);
    });
  }

  // A room already seen is rejoined with `since`: the server then sends what was missed.
  #sendJoin(room) {
    const entry = this.#rooms.get(room);
    const frame = { type: 'join_room', room };
    const username = entry.username ?? this.#username;
    if (username !== null && username !== undefined) frame.username = username;
    entry.since = this.#lastSeq.get(room);
    if (entry.since !== undefined) frame.since = entry.since;
    if (entry.binary) frame.binary = true;
    if (entry.batch) frame.batch = true;
    frame.ref = this.#newRef();
    this.#socket.send(JSON.stringify(frame));
    this.#track({ frame });
  }

  /** Leaves room; queued messages for it are dropped. Returns false if not in it. */
  leave(room) {
    const name = nameAsKept(room);
    const entry = this.#rooms.get(name);
    if (!entry) return false;
    this.stopTyping(name);
    this.#dropRoom(name);
    if (this.#state === 'open') this.#socket.send(JSON.stringify({ type: 'leave_room', room: name }));
    this.#settleJoin(entry, { ok: false, room: name, error: new RoomcastError('left', `Left ${name}`) });
    this.#emit('leave', { room: name });
    return true;
  }

  // Forgets room here (left, or removed by the server): nothing of it is kept or resent.
  #dropRoom(name) {
    this.#readers.get(name)?.();
    this.#readers.delete(name);
    const typing = this.#typing.get(name);
    if (typing) clearTimeout(typing.idleTimer);
    this.#typing.delete(name);
    this.#rooms.delete(name);
    this.#users.delete(name);
    this.#typists.delete(name);
    this.#lastSeq.delete(name);  // a later join is a fresh one: recent history, no `since`
    this.#forgetOutgoing(name);
  }

  #settleJoin(entry, outcome) {
    for (const resolve of entry.waiters.splice(0)) resolve(outcome);
  }

  // The client is no longer in room: its messages for room are dropped, and messages to every
  // room no longer wait for room's ack.
  #forgetOutgoing(room) {
    this.#queue = this.#queue.filter(({ frame }) => frame.room !== room);
    this.#unacked = this.#unacked.filter(({ frame, waiting }) => {
      if (frame.room !== undefined) return frame.room !== room;
      waiting.delete(room);
      return waiting.size > 0;
    });
    this.#flushQueue();
  }

  // ---- Sending --------------------------------------------------------------------------------

  /**
   * Sends a chat message to `room`, or to every room of the connection when room is omitted.
   * Says what happened: 'sent' (written to the socket), 'queued' (written once connected and
   * the rooms are rejoined) or 'dropped' (the client is closed or its queue is full). A message
   * sent or queued is kept until the server acknowledges it ('ack' event, with `id`).
   */
  send(message, { room, id = newMessageId() } = {}) {
    const frame = { type: 'chat_message', message: String(message), timestamp: Date.now(), id: String(id) };
    if (room !== undefined) frame.room = nameAsKept(room);
    // The server ends our typing signal when our message arrives.
    for (const typingRoom of frame.room === undefined ? [...this.#typing.keys()] : [frame.room]) {
      clearTimeout(this.#typing.get(typingRoom)?.idleTimer);
      this.#typing.delete(typingRoom);
    }
    if (this.#state === 'closed') return 'dropped';
    // Behind whatever waits, written at once if nothing does (a socket already closing would
    // drop it silently: it waits for the next one).
    const outgoing = { frame, waiting: null };
    this.#queue.push(outgoing);
    this.#flushQueue();
    if (outgoing.waiting !== null) return 'sent';
    if (this.#queue.length <= this.#options.maxQueuedMessages) return 'queued';
    this.#queue.pop();  // the queue was full
    return 'dropped';
  }

  /**
   * Sends an app event of `type` (one the server allows: --app-events) to `room`, with the
   * application's `fields`; the server adds room, userId, username, timestamp (and seq for a
   * durable type). Returns 'sent', or 'dropped' when not connected: events are state of the
   * moment and are neither queued nor resent (a durable one with `id` is acked: 'ack' event).
   */
  sendEvent(room, type, fields = {}, { id = newMessageId() } = {}) {
    if (!this.#canWrite() || !this.isJoined(room)) return 'dropped';
    // With an id, the server's refusal names it: it is not taken for another request's.
    const frame = { ...fields, type: String(type), room: nameAsKept(room), id: String(id) };
    this.#socket.send(JSON.stringify(frame));
    this.#stats.messagesSent++;
    return 'sent';
  }

  /**
   * Sends a direct message to every connection of user `to` (a userId) and this user's other
   * connections; the server numbers it in the two users' conversation (`seq`) and answers an
   * `id` with an 'ack' event { id, to, seq }. Returns 'sent' or 'dropped' (not connected); an
   * anonymous sender writing to someone not connected gets an 'error' with code user_offline
   * (and `to`). A token user's message to someone away is kept for them.
   */
  sendDirect(to, message, { id } = {}) {
    if (!this.#canWrite()) return 'dropped';
    const frame = { type: 'direct_message', to: String(to), message: String(message) };
    if (id !== undefined) frame.id = String(id);
    this.#socket.send(JSON.stringify(frame));
    this.#stats.messagesSent++;
    return 'sent';
  }

  /**
   * The conversation with user `withUser`: resolves to the server's direct_history reply
   * { with, lastSeq, messages, recovered }: with `since` (the last seq seen of it), exactly the
   * messages after it (`recovered` false if the server no longer has them all); without, the
   * recent ones. Rejects with a RoomcastError when not connected or refused.
   */
  directHistory(withUser, { since } = {}) {
    const frame = { type: 'direct_history', with: String(withUser) };
    if (since !== undefined) frame.since = since;
    return this.#read(frame);
  }

  /**
   * This user's conversations, newest first: resolves to
   * [{ with, username?, lastSeq, lastTimestamp }] (`username`: the peer's name, once they have
   * written). Rejects with a RoomcastError when not connected or refused.
   */
  async conversations() {
    return (await this.#read({ type: 'conversations' })).conversations;
  }

  // Sends a read request with a ref of its own; its reply (or error) settles the promise.
  #read(frame) {
    if (!this.#canWrite()) {
      return Promise.reject(new RoomcastError('disconnected', 'Not connected'));
    }
    frame.ref = this.#newRef();
    return new Promise((resolve, reject) => {
      this.#reads.set(frame.ref, { resolve, reject });
      this.#socket.send(JSON.stringify(frame));
    });
  }

  #onRead(msg) {
    const read = this.#reads.get(msg.ref);
    if (!read) return;
    this.#reads.delete(msg.ref);
    read.resolve(msg);
  }

  /**
   * Sends a binary message (ArrayBuffer or typed array) to the other binary members of every
   * room this connection joined with { binary: true }. Returns 'sent' or 'dropped'.
   */
  sendBinary(data) {
    if (!this.#canWrite()) return 'dropped';
    this.#socket.send(data);
    this.#stats.messagesSent++;
    return 'sent';
  }

  /**
   * Call on every keystroke in room's message box: sends typing_start when typing begins (and
   * renews it while typing goes on), and typing_stop after typingIdleMs without a call.
   */
  typing(room) {
    if (this.#state !== 'open' || !this.isJoined(room)) return;
    let typing = this.#typing.get(room);
    const at = Date.now();
    if (!typing || at - typing.startedAt >= this.#options.typingRenewMs) {
      this.#socket.send(JSON.stringify({ type: 'typing_start', room }));
      typing = { startedAt: at, idleTimer: typing?.idleTimer };
      this.#typing.set(room, typing);
    }
    clearTimeout(typing.idleTimer);
    typing.idleTimer = setTimeout(() => this.stopTyping(room), this.#options.typingIdleMs);
  }

  /** Ends our typing signal in room now (e.g. when the message box is cleared). */
  stopTyping(room) {
    const typing = this.#typing.get(room);
    if (!typing) return;
    clearTimeout(typing.idleTimer);
    this.#typing.delete(room);
    if (this.#state === 'open' && this.isJoined(room)) {
      this.#socket.send(JSON.stringify({ type: 'typing_stop', room }));
    }
  }

  // ---- Receiving ------------------------------------------------------------------------------

  #onMessage(data) {
    if (this.#held !== null) {
      this.#held.push(data);
      return;
    }
    if (typeof data !== 'string') {
      // A binary message of a room joined with binary, as the sender wrote it.
      this.#emit('binary', { data });
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#emit('error', new RoomcastError('bad_server_message', 'The server sent invalid JSON'));
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    this.#dispatch(msg);
  }

  #dispatch(msg) {
    this.#emit('message', msg);
    switch (msg.type) {
      case 'connection_established': this.#onEstablished(msg.userId); break;
      case 'system_message': this.#onSystem(msg); break;
      case 'user_list': this.#onUserList(msg); break;
      case 'chat_message': this.#onChat(msg); break;
      case 'history': this.#onHistory(msg); break;
      case 'joined': this.#onJoined(msg); break;
      case 'ack': this.#onAck(msg); break;
      case 'token_refreshed': this.#onTokenRefreshed(msg); break;
      case 'typing_start': this.#onTyping(msg, true); break;
      case 'typing_stop': this.#onTyping(msg, false); break;
      case 'error': this.#onError(msg); break;
      case 'direct_message': this.#emit('direct', { ...msg, own: this.#ownUserIds.has(msg.from) }); break;
      case 'direct_history': case 'conversations': this.#onRead(msg); break;
      case 'message_batch':
        // Each as if it had come alone, in order.
        if (this.#rooms.has(msg.room) && Array.isArray(msg.messages)) {
          for (const m of msg.messages) if (m !== null && typeof m === 'object') this.#dispatch(m);
        }
        break;
      default:
        // An app event of a room we are in (or an extension this version does not know).
        if (typeof msg.type === 'string' && typeof msg.room === 'string' && this.#rooms.has(msg.room)) {
          this.#onAppEvent(msg, false);
        }
        break;
    }
  }

  // An app event: emitted under its own type. A durable one (with seq) counts for `since`,
  // and is dropped if already delivered.
  #onAppEvent(msg, history) {
    if (!this.#advance(msg)) return;
    this.#emit(msg.type, { ...msg, own: this.#ownUserIds.has(msg.userId), history });
  }

  #onSystem(msg) {
    this.#emit('system', msg);
  }

  // The answer to our join_room (its ref): we are in the room, whose state comes with it.
  #onJoined(msg) {
    const request = typeof msg.ref === 'string' ? this.#resolvePending((r) => r.frame.ref === msg.ref) : null;
    const entry = this.#rooms.get(msg.room);
    if (!request || !entry || entry.joined) return;  // a join left meanwhile
    entry.joined = true;
    // From here on the room's messages reach us, so a rejoin with since 0 misses nothing even if
    // the room is empty now.
    if (!this.#lastSeq.has(msg.room)) this.#lastSeq.set(msg.room, 0);
    this.#flushQueue();  // what waited for the join's answer
    this.#settleJoin(entry, { ok: true, room: msg.room });
    this.#emit('join', { room: msg.room });
    if (Array.isArray(msg.users)) this.#onUserList(msg);
    // What a join without ref gets as `history`: the recent messages, or what followed `since`.
    if ((!Array.isArray(msg.messages) || msg.messages.length === 0) && msg.recovered === undefined) return;
    // Delivered once the caller of join() has had its turn (its `await`, and the listeners it
    // adds after it), and before anything the server sent after it.
    const socket = this.#socket;
    this.#held = [];
    setTimeout(() => {
      const held = this.#held;
      this.#held = null;
      if (this.#socket !== socket) return;  // reconnected meanwhile: the rejoin brings it again
      this.#onHistory(msg);
      for (const data of held) this.#onMessage(data);  // a later joined may hold the rest again
    }, 0);
  }

  #onUserList(msg) {
    if (!this.#rooms.has(msg.room)) return;  // a list racing our leave
    const users = Array.isArray(msg.users) ? msg.users : [];
    this.#users.set(msg.room, users);
    // The list is the truth: typists who are gone stop typing.
    const typists = this.#typists.get(msg.room);
    if (typists) {
      const present = new Set(users.map((u) => u.id));
      const before = typists.size;
      for (const id of typists.keys()) if (!present.has(id)) typists.delete(id);
      if (typists.size !== before) this.#emit('typing', { room: msg.room, typists: this.typists(msg.room) });
    }
    this.#emit('users', { room: msg.room, users });
  }

  #onChat(msg) {
    this.#stats.messagesReceived++;
    const fresh = this.#advance(msg);
    let id;
    if (msg.userId === this.#userId) {
      const request = this.#resolvePending((r) => r.frame.type === 'chat_message' &&
        r.frame.message === msg.message && (r.frame.room === undefined || r.frame.room === msg.room));
      if (request) {
        id = request.frame.id;
        this.#stats.latencyMs = Math.round(now() - request.sentAt);
        if (fresh) this.#emit('latency', { ms: this.#stats.latencyMs, room: msg.room });
      }
    } else {
      this.#setTypist(msg.room, msg.userId, null);
    }
    if (!fresh) return;
    const event = { ...msg, own: this.#ownUserIds.has(msg.userId), history: false };
    if (id !== undefined) event.id = id;
    this.#emit('chat', event);
  }

  // Records msg's seq for its room; false if a message with that seq was delivered already.
  // Messages of rooms the client is not in, or without a seq, pass untracked.
  #advance(msg) {
    const last = this.#lastSeq.get(msg.room);
    if (last === undefined || !this.#rooms.has(msg.room) || !Number.isInteger(msg.seq)) return true;
    if (msg.seq <= last) return false;
    this.#lastSeq.set(msg.room, msg.seq);
    return true;
  }

  // What the join missed (after `since`), or the room's recent messages on a plain join; it
  // comes before any live message of the room. Delivered as 'chat' events, minus what was seen.
  #onHistory(msg) {
    const entry = this.#rooms.get(msg.room);
    if (!entry || !Array.isArray(msg.messages)) return;
    const messages = msg.messages.filter((m) => m !== null && typeof m === 'object');
    const seen = this.#lastSeq.get(msg.room) ?? 0;
    const fresh = messages.filter((m) => !Number.isInteger(m.seq) || m.seq > seen);
    const newest = messages.reduce((top, m) => (Number.isInteger(m.seq) ? Math.max(top, m.seq) : top), 0);
    // recovered:false with nothing newer than `since`: the server's history ends below what we
    // saw (lost in a crash, or a new store), so the seqs after its newest will be reused for new
    // messages; follow the server, or they would be dropped as duplicates.
    const behind = msg.recovered === false && newest < seen;
    this.#lastSeq.set(msg.room, behind ? newest : Math.max(seen, newest));
    this.#emit('history', {
      room: msg.room,
      resumed: entry.since !== undefined,
      recovered: msg.recovered !== false,
      count: fresh.length,
    });
    for (const m of fresh) {
      // Durable app events are kept between the chat messages: each goes out under its type.
      if (m.type !== undefined && m.type !== 'chat_message') {
        this.#emit(m.type, { ...m, own: this.#ownUserIds.has(m.userId), history: true });
        continue;
      }
      this.#emit('chat', { ...m, own: this.#ownUserIds.has(m.userId), history: true });
    }
  }

  // The server has stored our message `id` in `room` as `seq`.
  #onAck(msg) {
    if (typeof msg.to === 'string') {  // a direct message's: stored in the conversation as seq
      this.#emit('ack', { id: msg.id, to: msg.to, seq: msg.seq });
      return;
    }
    this.#resendAttempt = 0;  // the server stores messages again
    const index = this.#unacked.findIndex(({ frame }) => frame.id === msg.id);
    if (index >= 0) {
      const { waiting } = this.#unacked[index];
      waiting.delete(msg.room);
      if (waiting.size === 0) this.#unacked.splice(index, 1);
    }
    // A resend the server had stored already gets no echo, only this ack: it answers the request.
    const pending = this.#pending.findIndex((r) => r.frame.type === 'chat_message' && r.frame.id === msg.id);
    if (pending >= 0) this.#pending.splice(pending, 1);
    this.#emit('ack', { id: msg.id, room: msg.room, seq: msg.seq });
    this.#flushQueue();
  }

  #onTyping(msg, typing) {
    if (msg.userId === this.#userId) return;
    this.#setTypist(msg.room, msg.userId, typing ? msg.username : null);
  }

  #setTypist(room, userId, username) {
    if (!this.#rooms.has(room)) return;
    let typists = this.#typists.get(room);
    if (!typists) this.#typists.set(room, (typists = new Map()));
    const changed = username === null ? typists.delete(userId) : !typists.has(userId);
    if (username !== null) typists.set(userId, username);
    if (changed) this.#emit('typing', { room, typists: this.typists(room) });
  }

  // An error names its request: by `ref` (the server echoes it), or, for a message refused after
  // it was accepted, by `id` and `room`. Without either (a server that does not echo refs) it
  // belongs to the oldest request still waiting for its reply: the server answers in order.
  #onError(msg) {
    const code = String(msg.code ?? 'error');
    if (code === 'removed_from_room' && typeof msg.room === 'string') {
      // Unsolicited, answering no request: the server's backend took the user out of the
      // room (POST /api/unsubscribe). Not rejoined after a reconnect.
      const entry = this.#rooms.get(msg.room);
      if (entry) this.#dropRoom(msg.room);
      const error = serverError(msg, code, null, 'Removed');
      error.room = msg.room;
      this.#emit('error', error);
      this.#emit('leave', { room: msg.room });
      return;
    }
    if (typeof msg.ref === 'string' && this.#reads.has(msg.ref)) {
      const { reject } = this.#reads.get(msg.ref);
      this.#reads.delete(msg.ref);
      reject(serverError(msg, code, null));
      return;
    }
    if (REFRESH_CODES.has(code)) {
      // Only a refresh gets these, and a refresh is no request of #pending. The current token
      // stays in force until it expires.
      this.#refreshToken = null;
      this.#emit('error', serverError(msg, code, { type: 'refresh' }));
      return;
    }
    if (typeof msg.to === 'string') {  // a direct message refused (each refusal names its `to`)
      const error = serverError(msg, code,
        { type: 'direct_message', to: msg.to, ...(typeof msg.id === 'string' ? { id: msg.id } : {}) });
      this.#emit('error', error);
      return;
    }
    if (typeof msg.id === 'string' || (code === 'cluster_unavailable' && typeof msg.room === 'string')) {
      this.#onMessageRefused(msg, code);
      return;
    }
    let request;
    const byRef = typeof msg.ref === 'string' ? this.#pending.findIndex((r) => r.frame.ref === msg.ref) : -1;
    if (byRef >= 0) {
      request = this.#pending.splice(byRef, 1)[0].frame;
    } else if (code === 'cluster_unavailable') {
      const index = this.#pending.findIndex((r) => r.frame.type === 'join_room');
      request = index >= 0 ? this.#pending.splice(index, 1)[0].frame : null;
    } else {
      request = this.#pending.shift()?.frame ?? null;
    }
    const error = serverError(msg, code, request);
    if (request?.type === 'join_room') {
      const entry = this.#rooms.get(request.room);
      if (entry && msg.code === 'already_in_room') {
        entry.joined = true;
        this.#flushQueue();
        this.#settleJoin(entry, { ok: true, room: request.room });
      } else if (entry) {
        this.#rooms.delete(request.room);
        this.#lastSeq.delete(request.room);
        if (this.#rooms.size === 0) this.#username = null;
        this.#forgetOutgoing(request.room);
        this.#settleJoin(entry, { ok: false, room: request.room, error });
      }
    } else if (request?.type === 'chat_message') {
      const outgoing = this.#unacked.find(({ frame }) => frame === request);
      if (outgoing && TRANSIENT_CODES.has(code)) {
        error.retrying = true;
        this.#scheduleResend(outgoing);
      } else {
        // Refused: it will never be acknowledged, and resending it would be refused again.
        this.#unacked = this.#unacked.filter(({ frame }) => frame !== request);
        this.#flushQueue();
      }
    }
    this.#emit('error', error);
  }

  // The server refused our message `msg.id` in `msg.room` (one error per room refused in).
  #onMessageRefused(msg, code) {
    const { id, room } = msg;
    const matches = ({ frame }) => frame.type === 'chat_message' && frame.id === id &&
      (frame.room === undefined || typeof room !== 'string' || frame.room === room);
    const outgoing = typeof id === 'string' ? this.#unacked.find(matches) ?? null : null;
    // That write gets no echo in this room: its pending entry goes, or it would be taken for the
    // request of a later in-order error.
    const tracked = outgoing ? this.#pending.indexOf(outgoing.request) : this.#pending.findIndex(matches);
    const request = tracked >= 0 ? this.#pending.splice(tracked, 1)[0].frame : null;
    const error = serverError(msg, code, outgoing?.frame ?? request);
    if (typeof room === 'string') error.room = room;
    if (outgoing && TRANSIENT_CODES.has(code)) {
      error.retrying = true;
      this.#scheduleResend(outgoing);
    } else if (outgoing) {
      // Refused for good in this room.
      outgoing.waiting?.delete(room);
      if (!outgoing.waiting || outgoing.waiting.size === 0) {
        this.#unacked = this.#unacked.filter((o) => o !== outgoing);
        this.#flushQueue();
      }
    }
    this.#emit('error', error);
  }

  // outgoing was refused for now: it stays unacknowledged and is written again, same frame and
  // id, when the resend timer fires (one timer for all refused messages, with backoff).
  #scheduleResend(outgoing) {
    outgoing.refused = true;
    if (this.#resendTimer !== null) return;
    const delayMs = backoffDelay(this.#resendAttempt, this.#resendOptions);
    this.#resendAttempt++;
    this.#resendTimer = setTimeout(() => {
      this.#resendTimer = null;
      this.#flushQueue();  // the refused messages are due again
    }, delayMs);
  }

  // Removes the first pending request matching pred, and the chat messages sent before it (their
  // echo can no longer come). Returns the request or null.
  #resolvePending(pred) {
    const index = this.#pending.findIndex(pred);
    if (index < 0) return null;
    const [request] = this.#pending.splice(index, 1);
    this.#pending = this.#pending.filter((r, i) => i >= index || r.frame.type !== 'chat_message');
    return request;
  }
}
