// A live data feed (the chapter's price_update). The table keeps one row per symbol with its
// newest price: what matters is the latest value, which is also what the server's conflation
// keeps for a reader that falls behind.

import { connectDemo, displayName, roomFromUrl, showNotice } from './common.js';

// One symbol's price per tick, 4 a second: within the budget of its own that scripts/run gives
// price_update (rate=50/10s). On a server that does not, ephemeral events spend the signal
// budget (30 per 10 s per person) and the feed is refused now and then. A backend publishing
// through the server API is not limited so.
const FEED_INTERVAL_MS = 250;
const SYMBOLS = ['ACME', 'GLOBX', 'INITECH', 'UMBRL', 'WAYNE'];
const room = roomFromUrl('tickers');
const rows = new Map();  // symbol -> { price, cells }
const tbody = document.getElementById('prices');
const received = document.getElementById('received');
const feedButton = document.getElementById('feed');
const feedState = document.getElementById('feed-state');
let updates = 0;
let feedTimer = null;

const client = await connectDemo(room, displayName('viewer'));

function rowOf(symbol) {
  let row = rows.get(symbol);
  if (row) return row;
  const tr = document.createElement('tr');
  tr.dataset.symbol = symbol;
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = symbol;
  const price = document.createElement('td');
  price.className = 'price';
  const change = document.createElement('td');
  tr.append(name, price, change);
  // Rows in symbol order, wherever a symbol first appears.
  const next = [...tbody.children].find((other) => other.dataset.symbol > symbol);
  tbody.insertBefore(tr, next ?? null);
  row = { price: null, cells: { price, change } };
  rows.set(symbol, row);
  return row;
}

client.on('price_update', ({ room: from, symbol, price }) => {
  if (from !== room || typeof symbol !== 'string' || !Number.isFinite(price)) return;
  const row = rowOf(symbol);
  const delta = row.price === null ? 0 : price - row.price;
  row.price = price;
  row.cells.price.textContent = price.toFixed(2);
  row.cells.change.textContent = delta === 0 ? '–' : `${delta > 0 ? '▲' : '▼'} ${Math.abs(delta).toFixed(2)}`;
  row.cells.change.className = delta > 0 ? 'up' : delta < 0 ? 'down' : '';
  updates += 1;
  received.textContent = `${updates} updates received`;
});

// This tab publishes a random walk for every symbol.
const walk = new Map(SYMBOLS.map((s, i) => [s, 50 + i * 37.5]));
let tick = 0;
function publishPrices() {
  const symbol = SYMBOLS[tick++ % SYMBOLS.length];
  const price = Math.max(1, walk.get(symbol) * (1 + (Math.random() - 0.5) * 0.01));
  walk.set(symbol, price);
  const sent = client.sendEvent(room, 'price_update', { symbol, price: Math.round(price * 100) / 100 });
  showNotice(sent === 'sent' ? '' : 'Not connected: the feed pauses until the connection is back.');
}

feedButton.addEventListener('click', () => {
  const on = feedTimer === null;
  if (on) {
    publishPrices();
    feedTimer = setInterval(publishPrices, FEED_INTERVAL_MS);
  } else {
    clearInterval(feedTimer);
    feedTimer = null;
  }
  feedButton.setAttribute('aria-pressed', String(on));
  feedButton.textContent = on ? 'Stop the feed' : 'Be the feed';
  feedState.textContent = on ? `Publishing a price every ${FEED_INTERVAL_MS} ms` : '';
});
