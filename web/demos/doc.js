// Collaborative editing (the chapter's document_change). Each change carries the whole text
// and its author's version: the newest change wins, so a page that joins late needs only the
// newest change in the room's history, and two pages converge on the text of the last edit.
// (Merging concurrent edits character by character — OT or CRDTs — is the application's
// choice, not the transport's.)

import { connectDemo, displayName, roomFromUrl, showNotice } from './common.js';

// One event per pause in typing, not one per keystroke. scripts/run gives document_change a
// budget of its own (rate=60/10s), which this stays well within; on a server that does not,
// durable events spend the sender's chat budget (10 a minute by default) and edits are refused
// sooner.
const SEND_DELAY_MS = 300;
const room = roomFromUrl('doc1');
const editor = document.getElementById('doc');
const meta = document.getElementById('doc-meta');
document.getElementById('doc-name').textContent = `(room ${room})`;

let sendTimer = null;
let lastAuthor = null;

const client = await connectDemo(room, displayName('writer'));

function describe() {
  const editors = client.users(room).length;
  const by = lastAuthor ? `last edit by ${lastAuthor}` : 'no edits yet';
  meta.textContent = `${editors} editing · ${by}`;
}

// Someone else's text replaces ours; the caret stays where it was, as far as the text allows.
function apply(text) {
  if (typeof text !== 'string' || text === editor.value) return;
  const focused = document.activeElement === editor;
  const start = editor.selectionStart;
  const end = editor.selectionEnd;
  editor.value = text;
  if (focused) editor.setSelectionRange(Math.min(start, text.length), Math.min(end, text.length));
}

client.on('document_change', ({ room: from, change, own, username }) => {
  if (from !== room || change === null || typeof change !== 'object') return;
  lastAuthor = username;
  // Our own edits come back (the type echoes) after we typed on: they are not applied again.
  if (!own) apply(change.text);
  describe();
});
client.on('users', describe);

editor.addEventListener('input', () => {
  clearTimeout(sendTimer);
  sendTimer = setTimeout(() => {
    const outcome = client.sendEvent(room, 'document_change', { change: { text: editor.value } });
    showNotice(outcome === 'sent' ? '' : 'Not connected: this edit is sent when you type again.');
  }, SEND_DELAY_MS);
});
describe();
