// What the three demo pages share: one RoomcastClient, the connection status in the header,
// a display name, and errors in plain words. Each page is a plain ES module on web/roomcast.js.

import { RoomcastClient } from '../roomcast.js';

// The app event types the demos need, as the server must allow them (scripts/run does).
export const DEMO_EVENTS =
  'document_change:durable:rate=60/10s,price_update:conflate:rate=50/10s';

const STATUS_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

// A short random name for a visitor who did not pick one (kept for this tab).
export function displayName(prefix) {
  const key = `roomcast-demo-${prefix}`;
  let name = sessionStorage.getItem(key);
  if (!name) {
    name = `${prefix}-${Math.floor(1000 + Math.random() * 9000)}`;
    sessionStorage.setItem(key, name);
  }
  return name;
}

// The room named in the page's ?room= parameter, or `fallback`.
export function roomFromUrl(fallback) {
  return new URLSearchParams(location.search).get('room') || fallback;
}

// Connects, joins `room` and wires the header's #status and the #notice line; returns the
// client once joined (or after showing why the join was refused).
export async function connectDemo(room, joinOptions) {
  const client = new RoomcastClient();
  const status = document.getElementById('status');
  const statusText = document.getElementById('status-text');
  client.on('state', ({ state }) => {
    status.dataset.state = state;
    statusText.textContent = STATUS_TEXT[state] ?? state;
  });
  client.on('error', (error) => showNotice(explain(error)));
  client.connect();
  const outcome = await client.join(room, joinOptions);
  if (!outcome.ok) showNotice(`Could not join ${room}: ${explain(outcome.error)}`);
  return client;
}

// A server error as a sentence for the person looking at the page.
export function explain(error) {
  switch (error?.code) {
    case 'unknown_type':
      return 'This server does not relay this demo\'s events. Start it with ' +
        `--app-events ${DEMO_EVENTS} (scripts/run does).`;
    case 'rate_limited':
      return 'Too many updates at once: the server asked us to slow down.';
    case 'too_large':
      return 'That update is larger than the server accepts.';
    default:
      return error?.message ?? String(error);
  }
}

export function showNotice(text) {
  const notice = document.getElementById('notice');
  notice.textContent = text;
  notice.hidden = text === '';
}
