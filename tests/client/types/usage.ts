// A typed use of every part of roomcast.d.ts, checked with `tsc --strict` (tests/client/sdk.test.mjs).
// It is compiled, not run: what it proves is that the declarations let an application say what
// docs/client.md shows, and refuse what the library does not accept (the @ts-expect-error lines).

import {
  backoffDelay, charCount, CLOSE_AUTH_FAILED, CLOSE_DISCONNECTED, CLOSE_TOKEN_EXPIRED,
  DEFAULT_RECONNECT, DEFAULT_RESEND, LIMITS, nameAsKept, newMessageId, RoomcastClient,
  RoomcastError, tokenExpiresAt,
} from '../../../web/roomcast.js';
import type {
  AckEvent, AppEvent, ChatMessage, ClientOptions, ConnectionState, JoinOutcome, SendOutcome,
  Transport, User,
} from '../../../web/roomcast.js';

const options: ClientOptions = {
  url: 'ws://127.0.0.1:3000/',
  reconnect: { initialDelayMs: 250, maxAttempts: 5 },
  resend: { maxDelayMs: 5000 },
  maxQueuedMessages: 50,
  getToken: async () => 'a.b.c',
  fallback: 'auto',
  fallbackAfter: 3,
  pollTimeoutMs: 20000,
};
const client = new RoomcastClient(options);
client.connect();

const state: ConnectionState = client.state;
const who: string | null = client.userId;
const rooms: string[] = client.rooms;
const transport: Transport | null = client.transport;
client.on('transport', (e) => console.log(e.transport === 'sse', transport));

async function chat(): Promise<void> {
  const joined: JoinOutcome = await client.join('lobby', { username: 'ann', batch: true });
  if (!joined.ok) {
    const error: RoomcastError = joined.error;
    console.log(error.code, error.retrying, error.room, error.request?.type);
    return;
  }
  const outcome: SendOutcome = client.send('hello', { room: 'lobby', id: newMessageId() });
  console.log(outcome, client.lastSeq('lobby'), client.isJoined('lobby'));
  client.typing('lobby');
  client.stopTyping('lobby');
  const eventOutcome: 'sent' | 'dropped' = client.sendEvent('lobby', 'document_change', { change: { text: 'x' } });
  client.sendDirect('user-2', 'hi', { id: 'dm-1' });
  void client.directHistory('user-2', { since: 3 }).then((h) => h.messages.map((m) => m.seq));
  void client.conversations().then((list) => list.map((c) => c.lastSeq));
  client.sendBinary(new Uint8Array([1, 0, 0, 0, 0]));
  console.log(eventOutcome, client.leave('lobby'));
}

const off = client.on('chat', (m: ChatMessage) => {
  const seq: number = m.seq;
  const own: boolean = m.own;
  console.log(seq, own, m.username, m.message, m.history, m.id);
});
off();
client.on('ack', (a: AckEvent) => console.log(a.id, a.room, a.seq, a.to));
client.on('users', ({ room, users }) => users.forEach((u: User) => console.log(room, u.id, u.username)));
client.on('state', ({ state: now, previous }) => console.log(now, previous));
client.on('close', ({ code, willReconnect }) => console.log(code === CLOSE_DISCONNECTED, willReconnect));
client.on('error', (e) => {
  const waitMs: number | null = e.retryAfterMs;
  const field: string | null = e.field;
  // A direct message's refusal names its recipient.
  if (e.request?.type === 'direct_message') console.log(e.request.to, e.request.id);
  console.log(e instanceof RoomcastError, e.code, waitMs, field);
});
client.on('binary', ({ data }) => console.log(new DataView(data).getUint8(0)));
client.on('direct', (d) => console.log(d.from, d.message, d.own));
client.once('history', (h) => console.log(h.resumed, h.recovered, h.count));
// App events arrive under their own type; their fields are the sender's.
client.on('document_change', (event) => console.log(event));
const appEvent = (e: AppEvent): unknown => e['change'];
console.log(appEvent);

console.log(LIMITS.message, DEFAULT_RECONNECT.maxDelayMs, DEFAULT_RESEND.factor,
  CLOSE_AUTH_FAILED, CLOSE_TOKEN_EXPIRED, backoffDelay(3, { factor: 2 }, Math.random),
  charCount('héllo'), nameAsKept(' room '), tokenExpiresAt('a.b.c'), who, rooms, state, chat);

// What the declarations refuse.
// @ts-expect-error: a message is text
client.send(42);
// @ts-expect-error: join options have no such field
client.join('lobby', { colour: 'red' });
// @ts-expect-error: the states are a closed set
const wrong: ConnectionState = 'half-open';
console.log(wrong);
// @ts-expect-error: no such fallback
new RoomcastClient({ fallback: 'carrier-pigeon' });
// @ts-expect-error: the stats are read-only figures
client.stats = { messagesSent: 0 };
client.close(1000, 'bye');
