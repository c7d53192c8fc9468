// A multiplayer board over the chapter's binary protocol. sendPositionUpdate and
// handlePositionUpdate read the chapter's 13 bytes (type 1, x, y, z as little-endian float32);
// this page appends 4 bytes naming the player, which the chapter's reader ignores. The server
// relays the frame unchanged to the room's other binary members, so a position costs 17 bytes.

import { connectDemo, displayName, roomFromUrl } from './common.js';

const POSITION_UPDATE = 1;
const CELLS = 12;
const RESEND_MS = 2000;  // a still player says where it is, for pages that came later
const GONE_MS = 6000;  // a player not heard of for this long has left the board
const room = roomFromUrl('game1');
const me = { tag: (Math.random() * 0xffffffff) >>> 0, x: 0, y: 0 };
me.x = me.tag % CELLS;
me.y = (me.tag >>> 8) % CELLS;
const others = new Map();  // tag -> { x, y, seenAt }
const canvas = document.getElementById('board');
const list = document.getElementById('players');
const name = displayName('player');

const client = await connectDemo(room, { username: name, binary: true });

function sendPositionUpdate(x, y, z) {
  const view = new DataView(new ArrayBuffer(17));
  view.setUint8(0, POSITION_UPDATE);
  view.setFloat32(1, x, true);
  view.setFloat32(5, y, true);
  view.setFloat32(9, z, true);
  view.setUint32(13, me.tag, true);
  client.sendBinary(view.buffer);
}

function handlePositionUpdate(x, y, z, tag) {
  if (tag === me.tag || !Number.isFinite(x) || !Number.isFinite(y)) return;
  others.set(tag, { x: Math.round(x), y: Math.round(y), z, seenAt: Date.now() });
  render();
}

client.on('binary', ({ data }) => {
  if (!(data instanceof ArrayBuffer) || data.byteLength < 13) return;
  const view = new DataView(data);
  if (view.getUint8(0) !== POSITION_UPDATE) return;
  const tag = data.byteLength >= 17 ? view.getUint32(13, true) : 0;
  handlePositionUpdate(view.getFloat32(1, true), view.getFloat32(5, true), view.getFloat32(9, true), tag);
});

function hue(tag) { return tag % 360; }

function render() {
  const ctx = canvas.getContext('2d');
  const cell = canvas.width / CELLS;
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  ctx.fillStyle = dark ? '#15181c' : '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = dark ? '#39404a' : '#d0d7de';
  for (let i = 1; i < CELLS; i++) {
    ctx.beginPath(); ctx.moveTo(i * cell, 0); ctx.lineTo(i * cell, canvas.height); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, i * cell); ctx.lineTo(canvas.width, i * cell); ctx.stroke();
  }
  const piece = (x, y, color, ring) => {
    ctx.beginPath();
    ctx.arc((x + 0.5) * cell, (y + 0.5) * cell, cell * 0.36, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
    if (ring) { ctx.lineWidth = 3; ctx.strokeStyle = dark ? '#ffffff' : '#1b1f24'; ctx.stroke(); ctx.lineWidth = 1; }
  };
  for (const [tag, p] of others) piece(p.x, p.y, `hsl(${hue(tag)} 70% 50%)`, false);
  piece(me.x, me.y, `hsl(${hue(me.tag)} 70% 50%)`, true);

  // The same board as text, for screen readers (and the tests).
  const items = [`You at (${me.x}, ${me.y})`, ...[...others].map(([tag, p]) => `Player ${tag.toString(16)} at (${p.x}, ${p.y})`)];
  list.replaceChildren(...items.map((text, i) => {
    const li = document.createElement('li');
    li.textContent = text;
    li.dataset.player = i === 0 ? 'me' : 'other';
    return li;
  }));
}

function move(dx, dy) {
  me.x = Math.min(CELLS - 1, Math.max(0, me.x + dx));
  me.y = Math.min(CELLS - 1, Math.max(0, me.y + dy));
  sendPositionUpdate(me.x, me.y, 0);
  render();
}

const KEYS = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
canvas.addEventListener('keydown', (event) => {
  const step = KEYS[event.key];
  if (!step) return;
  event.preventDefault();
  move(...step);
});
canvas.addEventListener('pointerdown', (event) => {
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * CELLS);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * CELLS);
  move(Math.sign(x - me.x), Math.sign(y - me.y));
});
for (const button of document.querySelectorAll('.pad button')) {
  button.addEventListener('click', () => move(Number(button.dataset.dx), Number(button.dataset.dy)));
}

setInterval(() => {
  sendPositionUpdate(me.x, me.y, 0);
  const now = Date.now();
  for (const [tag, p] of others) if (now - p.seenAt > GONE_MS) others.delete(tag);
  render();
}, RESEND_MS);
client.on('join', () => sendPositionUpdate(me.x, me.y, 0));  // after every (re)join
sendPositionUpdate(me.x, me.y, 0);
render();
