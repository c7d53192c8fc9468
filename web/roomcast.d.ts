// Type declarations for roomcast.js, the roomcast chat client library (docs/client.md).
// Message shapes follow docs/protocol.md.

/** Server-side limits, in Unicode code points. */
export declare const LIMITS: Readonly<{ username: 20; room: 30; message: 500 }>;

export interface ReconnectOptions {
  /** Wait before the first retry. Default 500. */
  initialDelayMs?: number;
  /** Cap on the wait. Default 10000. */
  maxDelayMs?: number;
  /** Growth of the wait per failed attempt. Default 2. */
  factor?: number;
  /** Up to this fraction of each wait is taken off at random (0..1). Default 0.5. */
  jitter?: number;
  /** Retries after a connection is lost before giving up ('closed'). Default Infinity. */
  maxAttempts?: number;
}

export declare const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>>;

/** Backoff of resending a chat message the server refused for now (`unavailable`, `cluster_unavailable`). */
export interface ResendOptions {
  /** Wait before the first resend. Default 500. */
  initialDelayMs?: number;
  /** Cap on the wait. Default 10000. */
  maxDelayMs?: number;
  /** Growth of the wait per refused round. Default 2. The count restarts with the next ack. */
  factor?: number;
  /** Up to this fraction of each wait is taken off at random (0..1). Default 0.5. */
  jitter?: number;
}

export declare const DEFAULT_RESEND: Readonly<Required<ResendOptions>>;

/** The constructor shape the client needs: the browser's WebSocket, or npm `ws`. */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  binaryType?: string;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'open' | 'error', listener: (event: unknown) => void): void;
}

export interface ClientOptions {
  /** ws:// or wss:// URL of the server. Default: the page's own host, path `/`. */
  url?: string;
  /** WebSocket implementation. Default: globalThis.WebSocket (needed in Node 20: npm `ws`). */
  WebSocket?: WebSocketConstructor;
  reconnect?: ReconnectOptions;
  /** When a chat message refused for now is sent again (the connection staying open). */
  resend?: ResendOptions;
  /** Our typing signal ends after this long without a typing() call. Default 3000. */
  typingIdleMs?: number;
  /** While typing goes on, typing_start is renewed this often (the server expires it after 5 s). Default 2500. */
  typingRenewMs?: number;
  /** Chat messages kept while offline; beyond that send() returns 'dropped'. Default 100. */
  maxQueuedMessages?: number;
  /** A socket that is not greeted (connection_established) within this is dropped and retried. Default 10000. */
  connectTimeoutMs?: number;
  /** Messages written but not yet acknowledged; beyond that send() queues until acks arrive. Default 1000. */
  maxUnackedMessages?: number;
  /**
   * Fetches a token (a JWT) for the server: called before every connection (the token goes in
   * the `token` query parameter) and before the current token's `exp` (it is then sent in-band,
   * `{"type":"refresh"}`). A rejection or an empty result is reported as an 'error' with code
   * 'token_failed'; a connection is then retried with the reconnect backoff.
   */
  getToken?: () => string | Promise<string>;
  /** With getToken: refresh this long before the token's exp, or halfway through what is left when later. Default 60000. */
  tokenRefreshMarginMs?: number;
  /**
   * Reading rooms without a WebSocket, after `fallbackAfter` attempts in a row whose socket never
   * opened: 'sse' (EventSource on /api/rooms/{room}/events), 'poll' (long-polls with fetch),
   * 'auto' (EventSource where there is one, else long-polls) or 'none' (default). Receiving only:
   * sends wait in the queue; once a WebSocket opens, the rooms resume over it exactly.
   */
  fallback?: FallbackMode;
  /** Attempts in a row whose WebSocket never opened before falling back. Default 2. */
  fallbackAfter?: number;
  /** How long one long-poll waits on the server. Default 25000. */
  pollTimeoutMs?: number;
}

export type FallbackMode = 'sse' | 'poll' | 'auto' | 'none';
/** How rooms are read: over the WebSocket, or a fallback transport. */
export type Transport = 'websocket' | 'sse' | 'poll';

/** Close codes meaning the credentials are bad: the client stops reconnecting ('unauthorized'). */
export declare const CLOSE_AUTH_FAILED: 4001;
export declare const CLOSE_TOKEN_EXPIRED: 4002;
/** The server's backend disconnected the user (POST /api/disconnect): the client stops ('disconnected'). */
export declare const CLOSE_DISCONNECTED: 4003;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * What send() did with a message. 'queued' also while a join of the connection awaits its
 * answer, the unacknowledged window is full or a message refused for now waits for its resend
 * (the new one then goes after it).
 */
export type SendOutcome = 'sent' | 'queued' | 'dropped';

export interface User {
  id: string;
  username: string;
}

/**
 * A chat message as the server delivers it, plus `own` (sent by this client, on this connection
 * or an earlier one), `history` and, on the echo of a message this connection sent, its `id`.
 */
export interface ChatMessage {
  type: 'chat_message';
  room: string;
  userId: string;
  username: string;
  message: string;
  /** Server clock, ms since the Unix epoch. */
  timestamp: number;
  /** Strictly increasing per room. */
  seq: number;
  own: boolean;
  /** Delivered from a `history` message (on join, or what a reconnect missed), not live. */
  history: boolean;
  /** The id send() gave it, on the live echo of our own message when the client can tell. */
  id?: string;
}

/** Before the chat events of a join's history: what the join recovered. */
export interface HistoryEvent {
  room: string;
  /** The join asked for what followed the last seq seen (a rejoin after a reconnect). */
  resumed: boolean;
  /** false: the server could not give everything since then; some messages may be missing. */
  recovered: boolean;
  /** The 'chat' events (history: true) that follow, duplicates of earlier ones left out. */
  count: number;
}

/**
 * The server stored our message (or durable app event) `id` in `room` as `seq` (one per room it
 * went to); for a direct message, `to` instead of room: `seq` is its place in the conversation.
 */
export interface AckEvent {
  id: string;
  room?: string;
  seq?: number;
  to?: string;
}

/** An app event (server --app-events), emitted under its own type. */
export interface AppEvent {
  type: string;
  room: string;
  userId: string;
  username: string;
  /** The server's clock. */
  timestamp: number;
  /** Durable types only. */
  seq?: number;
  /** Sent by this client (this connection or an earlier one of it). */
  own: boolean;
  /** From a join's history (durable types). */
  history: boolean;
  /** The sender's own fields. */
  [field: string]: unknown;
}

export interface DirectMessage {
  type: 'direct_message';
  from: string;
  username: string;
  to: string;
  message: string;
  timestamp: number;
  /** Its place in the conversation of `from` and `to` (1, 2, 3, ...). */
  seq: number;
  /** Sent by this user (a copy for the sender's other connections). */
  own: boolean;
}

/** A conversation, as directHistory() gets it (the server's direct_history reply). */
export interface DirectHistory {
  type: 'direct_history';
  with: string;
  /** The conversation's last seq (0: never written). */
  lastSeq: number;
  /** Oldest first; without `own` (compare `from` with your userId). */
  messages: Omit<DirectMessage, 'own'>[];
  /** Only when asked with since: whether these are all the messages after it. */
  recovered?: boolean;
}

/** One of this user's conversations, as conversations() lists them. */
export interface ConversationSummary {
  with: string;
  /** The peer's name, once they have written in the conversation. */
  username?: string;
  lastSeq: number;
  lastTimestamp: number;
}

export interface SystemMessage {
  type: 'system_message';
  room: string;
  message: string;
  timestamp: number;
}

/** The requests whose errors the client can attribute (the protocol's error has no request id). */
export type AttributedRequest =
  | { type: 'join_room'; room: string; username?: string }
  | { type: 'refresh' }
  | { type: 'chat_message'; message: string; timestamp: number; id: string; room?: string }
  | { type: 'direct_message'; to: string; id?: string };

export declare class RoomcastError extends Error {
  constructor(code: string, message: string, request?: AttributedRequest | null);
  /**
   * The server's error code (invalid_json, unknown_type, invalid_field, not_in_room,
   * already_in_room, username_mismatch, unsupported_binary, unavailable, cluster_unavailable,
   * forbidden_room, too_many_rooms, rate_limited, user_offline; for a refresh: not_authenticated,
   * invalid_token, token_mismatch), or a local one: 'left' (a join cancelled by leave()),
   * 'connect_failed', 'bad_server_message', 'token_failed' (getToken failed).
   */
  readonly code: string;
  /** The request that caused it, when the client can tell; null otherwise. */
  readonly request: AttributedRequest | null;
  /** The field at fault of an invalid_field ('username', 'room', 'message', ...); null otherwise. */
  readonly field: string | null;
  /** The room the server's error names (cluster_unavailable for a chat_message); null otherwise. */
  readonly room: string | null;
  /**
   * For rate_limited: how long, in milliseconds, the server will go on refusing this sender
   * (its `retryAfterMs`); null when the server did not say (older servers).
   */
  readonly retryAfterMs: number | null;
  /**
   * true: a chat message refused only for now (unavailable, cluster_unavailable). The client
   * keeps it unacknowledged and sends it again by itself, same id, after a backoff (or after a
   * reconnect); its 'ack' says when it is stored. false for every other error.
   */
  readonly retrying: boolean;
}

export type JoinOutcome =
  | { ok: true; room: string }
  | { ok: false; room: string; error: RoomcastError };

export interface JoinOptions {
  /** Needed for the connection's first room; a connection keeps one username. */
  username?: string;
  /** Take part in the room's binary messages ('binary' events, sendBinary). */
  binary?: boolean;
  /** Receive the room's messages in server batches (still delivered one event each). */
  batch?: boolean;
}

export interface ClientStats {
  /** chat_message frames written to the socket (queued ones once flushed, resends too). */
  messagesSent: number;
  /** Live chat_message frames received, our own echoes included (not history). */
  messagesReceived: number;
  /** Successful reconnections so far. */
  reconnects: number;
  /** Round trip of our last message: from writing it to receiving its echo. null until one. */
  latencyMs: number | null;
  /** Date.now() when the current connection was greeted; null while disconnected. */
  connectedAt: number | null;
  /** Age of the current connection; null while disconnected. */
  uptimeMs: number | null;
}

export interface ClientEvents {
  /** Every state change. */
  state: { state: ConnectionState; previous: ConnectionState };
  /** Greeted by the server; rooms are being rejoined and the queue has been flushed. */
  open: { userId: string; reconnected: boolean };
  /** The socket closed; willReconnect says whether a retry is scheduled. */
  close: { code: number; reason: string; wasOpen: boolean; willReconnect: boolean };
  /** A retry is scheduled in delayMs. */
  reconnecting: { attempt: number; delayMs: number };
  /** The server welcomed us into room (also after every reconnect). */
  join: { room: string };
  /** leave() was called for room. */
  leave: { room: string };
  /** Every chat message once, in seq order per room: live, or from a join's history. */
  chat: ChatMessage;
  history: HistoryEvent;
  ack: AckEvent;
  system: SystemMessage;
  /** The room's latest membership (presence is coalesced by the server; the latest list wins). */
  users: { room: string; users: User[] };
  /** The usernames of the others typing in room changed. */
  typing: { room: string; typists: string[] };
  latency: { ms: number; room: string };
  error: RoomcastError;
  /**
   * The server closed with 4001 (authentication failed) or 4002 (token expired, and no fresh
   * token could take over): the client has stopped reconnecting (state 'closed') until connect().
   */
  unauthorized: { code: number; reason: string };
  /**
   * The server closed with 4003: its backend disconnected the user (a ban, a logout). The client
   * has stopped reconnecting (state 'closed') until connect().
   */
  disconnected: { code: number; reason: string };
  /** The server accepted a refreshed token; it now closes the connection at expiresAt (null: never). */
  refreshed: { expiresAt: number | null };
  /** Every message from the server, parsed, before the typed events (for extensions). */
  message: { type: string; [field: string]: unknown };
  /** A direct message to this user, or a copy of one this user sent from another connection. */
  direct: DirectMessage;
  /** A binary message from another member of a room joined with binary. */
  binary: { data: ArrayBuffer };
  /** Rooms are now read over another transport (a fallback started, or the WebSocket is back). */
  transport: { transport: Transport };
  /** App events arrive under their own type name: on('document_change', ...). */
  [appEventType: string]: unknown;
}

export declare class RoomcastClient {
  constructor(options?: ClientOptions);

  readonly state: ConnectionState;
  readonly url: string;
  readonly userId: string | null;
  readonly username: string | null;
  /** Rooms the client is in or joining, in join order. */
  readonly rooms: string[];
  /** Messages never written on the current connection: offline, window full, or behind one refused for now. */
  /** How rooms are read now; null before the first connection. */
  readonly transport: Transport | null;
  readonly queuedMessages: number;
  /** Messages written and not yet acknowledged as stored (refused-for-now ones too); resent after a reconnect. */
  readonly unackedMessages: number;
  readonly stats: ClientStats;

  isJoined(room: string): boolean;
  /** The highest seq of room delivered as a 'chat' event (0 once welcomed into an empty room); null if not joined. */
  lastSeq(room: string): number | null;
  users(room: string): User[];
  typists(room: string): string[];

  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  once<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): void;

  /** Connects; from then on reconnects by itself until close(). */
  connect(): void;
  /** Skips the wait of a scheduled retry. */
  reconnectNow(): void;
  /** Closes for good (no reconnect); connect() starts again with the same rooms and queue. */
  close(code?: number, reason?: string): void;

  /** Joins room now or once connected, and rejoins it after every reconnect until leave(). Never rejects. */
  join(room: string, options?: string | JoinOptions): Promise<JoinOutcome>;
  /** Leaves room and drops queued messages for it; false if not in it. */
  leave(room: string): boolean;

  /**
   * Sends to room, or to every room of the connection when room is omitted. The message keeps
   * `id` (default: a new random one) until acknowledged, and is resent with it after a reconnect.
   */
  send(message: string, options?: { room?: string; id?: string }): SendOutcome;
  /** Call on each edit of the message box for room. */
  typing(room: string): void;
  stopTyping(room: string): void;
  /** An app event of an allowed type to room (joined); not queued or resent. `id` defaults to newMessageId(). */
  sendEvent(room: string, type: string, fields?: Record<string, unknown>, options?: { id?: string }): 'sent' | 'dropped';
  /** A direct message to every connection of user `to`. */
  sendDirect(to: string, message: string, options?: { id?: string }): 'sent' | 'dropped';
  /** The conversation with user `withUser`: after `since`, or the recent messages. */
  directHistory(withUser: string, options?: { since?: number }): Promise<DirectHistory>;
  /** This user's conversations, newest first. */
  conversations(): Promise<ConversationSummary[]>;
  /** A binary message to the rooms joined with binary. */
  sendBinary(data: ArrayBuffer | ArrayBufferView): 'sent' | 'dropped';
}

/** A fresh random message id (a UUID where the platform has randomUUID). */
export declare function newMessageId(): string;

/** A JWT's `exp` in ms since the epoch, read without verification; null if it has none. */
export declare function tokenExpiresAt(token: string): number | null;

/** Length as the server counts it: Unicode code points. */
export declare function charCount(text: string): number;

/** The wait before retry number `attempt` (0-based); `random` returns [0, 1). */
export declare function backoffDelay(attempt: number, options?: ReconnectOptions, random?: () => number): number;

/** A room name or username as the server keeps it: in NFC, trimmed of what renders as nothing. */
export declare function nameAsKept(name: string): string;
