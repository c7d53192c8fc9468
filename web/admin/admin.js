// The admin page (/admin): live figures, rooms, nodes and the server API's actions, for whoever
// holds the server's API key. Every request for data sends the key as X-API-Key; the server
// refuses the API's data without it (docs/api.md). The key lives in sessionStorage: this tab
// only, gone when it closes.
//
// The live figures come from GET /api/stats/stream: one `stats` event a second (what
// GET /api/stats answers, its "live" rates over the server's last 10 s), made once by the
// server for all its readers. It is read with fetch, not EventSource, so that the key travels
// in a header rather than in the URL. The rooms are polled (GET /api/rooms every 2 s, with the
// presence of the busiest rooms), and GET /api/info every 5 s (in a cluster, its node
// list: every node alive). Everything shown is built from
// text nodes and SVG attributes, never from HTML strings.

const KEY_STORAGE = 'roomcast.admin.apiKey';
const STREAM_RETRY_MS = 2000;  // after the stats stream broke
const ROOMS_EVERY_MS = 2000;
const INFO_EVERY_MS = 5000;
const POINTS = 120;  // two minutes of one-second readings per chart
const PRESENCE_ROOMS = 5;  // the busiest rooms get their member lists
const ROOMS_PAGE = 1000;  // the API's largest page
const SVG = 'http://www.w3.org/2000/svg';
const CHART_W = 300;
const CHART_H = 90;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let apiKey = null;
// Bumped on every sign-in and sign-out: a loop of an earlier session stops when it sees it moved.
let session = 0;

// The response to a request with the key, or an ApiError with the server's code and message.
async function send(path, { method = 'GET', body, signal } = {}) {
  const headers = { 'X-API-Key': apiKey ?? '' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, 'network', `Cannot reach the server (${error.message})`);
  }
  if (res.ok) return res;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  throw new ApiError(res.status, data?.code ?? '', data?.message ?? `HTTP ${res.status}`);
}

async function api(path, options) {
  return (await send(path, options)).json();
}

// What a refused sign-in tells the operator.
function refusalText(error) {
  if (error.code === 'invalid_api_key') return 'The server refused this API key.';
  if (error.code === 'api_key_required') return 'Enter the API key.';
  if (error.status === 404) {
    return 'The server API is off: start roomcast with --api-key (docs/operations.md).';
  }
  return error.message;
}

function show(element, text) {
  element.textContent = text;
  element.hidden = text === '';
}

// ---- charts -------------------------------------------------------------------------------

const fixed = (digits) => (v) => v.toFixed(digits);
const plural = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const CHARTS = [
  { id: 'messages', label: 'Messages/s', format: fixed(1),
    series: [(s) => s.live?.messages_per_second ?? 0] },
  { id: 'deliveries', label: 'Deliveries/s', format: fixed(1),
    series: [(s) => s.live?.deliveries_per_second ?? 0] },
  { id: 'latency', label: 'Delivery latency p99 / p50 (ms)', format: fixed(2),
    series: [(s) => (s.live?.delivery_latency_p99_seconds ?? 0) * 1000,
      (s) => (s.live?.delivery_latency_p50_seconds ?? 0) * 1000] },
  { id: 'connections', label: 'WebSockets', format: fixed(0),
    series: [(s) => s.connections_active ?? 0],
    note: (s) => plural(s.event_streams_active ?? 0, 'event stream') },
  { id: 'errors', label: 'Errors/s', format: fixed(2),
    series: [(s) => s.live?.errors_per_second ?? 0],
    note: (s) => `error rate ${((s.live?.error_rate ?? 0) * 100).toFixed(2)} %` },
  { id: 'memory', label: 'Resident memory (MiB)', format: fixed(1),
    series: [(s) => (s.process?.resident_memory_bytes ?? 0) / (1 << 20)] },
];

function buildCharts() {
  const container = $('charts');
  container.replaceChildren();
  for (const chart of CHARTS) {
    const figure = document.createElement('figure');
    figure.className = 'chart';
    figure.dataset.chart = chart.id;
    const caption = document.createElement('figcaption');
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = chart.label;
    chart.valueEl = document.createElement('span');
    chart.valueEl.className = 'value';
    chart.valueEl.textContent = '–';
    chart.noteEl = document.createElement('span');
    chart.noteEl.className = 'note';
    caption.append(label, chart.valueEl, chart.noteEl);
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${CHART_W} ${CHART_H}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', chart.label);
    chart.lines = chart.series.map((_, i) => {
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', `line line-${i}`);
      line.setAttribute('fill', 'none');
      svg.append(line);
      return line;
    });
    chart.maxEl = document.createElement('span');
    chart.maxEl.className = 'max';
    chart.points = chart.series.map(() => []);
    const plotArea = document.createElement('div');
    plotArea.className = 'plot';
    plotArea.append(svg, chart.maxEl);
    figure.append(caption, plotArea);
    container.append(figure);
  }
}

function plot(stats) {
  for (const chart of CHARTS) {
    chart.series.forEach((read, i) => {
      const points = chart.points[i];
      points.push(Number(read(stats)) || 0);
      if (points.length > POINTS) points.shift();
    });
    const max = Math.max(...chart.points.flat(), 0);
    const top = max > 0 ? max * 1.1 : 1;
    chart.points.forEach((points, i) => {
      const offset = POINTS - points.length;
      const coords = points.map((v, j) => {
        const x = ((offset + j) / (POINTS - 1)) * CHART_W;
        const y = CHART_H - (v / top) * CHART_H;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      chart.lines[i].setAttribute('points', coords.join(' '));
    });
    const current = chart.points[0][chart.points[0].length - 1];
    chart.valueEl.textContent = chart.format(current);
    chart.valueEl.dataset.value = String(current);
    chart.noteEl.textContent = chart.note ? chart.note(stats) : '';
    chart.maxEl.textContent = `max ${chart.format(max)}`;
  }
  const span = stats.live?.window_seconds;
  $('window-note').textContent = span ? `(rates over the last ${span.toFixed(0)} s)` : '';
}

// ---- rooms and nodes ------------------------------------------------------------------------

// Each room's last seq at the previous reading: messages per second between two readings.
let lastSeqs = new Map();
let lastRoomsAt = 0;

function cell(text) {
  const td = document.createElement('td');
  td.textContent = String(text);
  return td;
}

function memberList(presence) {
  const list = document.createElement('ul');
  list.className = 'members';
  for (const member of presence.members) {
    const item = document.createElement('li');
    item.dataset.user = member.user_id;
    const name = document.createElement('span');
    name.className = 'member-name';
    name.textContent = member.username;
    const id = document.createElement('code');
    id.textContent = member.user_id;
    const count = document.createElement('span');
    count.className = 'member-connections';
    count.textContent = `${member.connections} conn`;
    const pick = document.createElement('button');
    pick.type = 'button';
    pick.className = 'link';
    pick.textContent = 'disconnect…';
    pick.setAttribute('aria-label', `Fill in the disconnect form for ${member.username}`);
    pick.addEventListener('click', () => {
      $('disconnect-user').value = member.user_id;
      $('disconnect-user').focus();
    });
    item.append(name, ' ', id, ' ', count, ' ', pick);
    list.append(item);
  }
  return list;
}

async function refreshRooms(mine) {
  const data = await api(`/api/rooms?limit=${ROOMS_PAGE}`);
  if (mine !== session) return;
  const now = performance.now();
  const seconds = lastRoomsAt ? (now - lastRoomsAt) / 1000 : 0;
  const seqs = new Map();
  const rooms = data.rooms.map((room) => {
    seqs.set(room.room, room.last_seq);
    const before = lastSeqs.get(room.room);
    const rate = seconds > 0 && before !== undefined ? Math.max(0, room.last_seq - before) / seconds : 0;
    return { ...room, rate };
  });
  lastSeqs = seqs;
  lastRoomsAt = now;
  rooms.sort((a, b) => b.rate - a.rate || b.connections - a.connections || (a.room < b.room ? -1 : 1));
  const busiest = rooms.slice(0, PRESENCE_ROOMS);
  const presences = await Promise.all(busiest.map(
    (room) => api(`/api/rooms/${encodeURIComponent(room.room)}/presence`).catch(() => null)));
  if (mine !== session) return;
  const rows = [];
  rooms.forEach((room, i) => {
    const tr = document.createElement('tr');
    tr.dataset.room = room.room;
    tr.append(cell(room.room), cell(room.rate.toFixed(1)), cell(room.users), cell(room.connections),
      cell(room.last_seq));
    rows.push(tr);
    if (presences[i]) {
      const members = document.createElement('tr');
      members.className = 'members-row';
      members.dataset.membersOf = room.room;
      const td = document.createElement('td');
      td.colSpan = 5;
      td.append(memberList(presences[i]));
      members.append(td);
      rows.push(members);
    }
  });
  $('rooms').tBodies[0].replaceChildren(...rows);
  // Under the table: that it is empty, or that it holds the first page only.
  const note = $('rooms-empty');
  note.textContent = rooms.length === 0 ? 'Nobody is in a room.' : `Showing the first ${ROOMS_PAGE} rooms.`;
  note.hidden = rooms.length > 0 && data.next === null;
}

// One node of GET /api/info's list: its name, then what it reports with its liveness (the
// server gives only the name of a node whose figures it cannot read).
function nodeItem(node, self) {
  const item = document.createElement('li');
  item.dataset.node = node.node;
  const name = document.createElement('strong');
  name.textContent = node.node;
  item.append(name);
  if (node.node === self) item.append(' (this node)');
  if (node.connections === undefined) return item;
  const uptime = Math.round(node.uptime_seconds);
  item.append(` ${plural(node.connections, 'connection')} · ${plural(node.rooms, 'room')}` +
    ` · ${node.version} (${node.commit}) · up ${uptime} s`);
  return item;
}

function showInfo(info) {
  const uptime = Math.round(info.uptime_seconds);
  $('node-line').textContent =
    `${info.node} · ${info.version} (${info.commit}) · ${info.threads} threads · up ${uptime} s`;
  // In a cluster, every node alive (each answers the same list); without Redis, this one.
  $('nodes').replaceChildren(...info.nodes.map((node) => nodeItem(node, info.node)));
  show($('nodes-note'), info.cluster_reachable === false
    ? 'Redis cannot be reached: only this node is listed.' : '');
}

// ---- the loops ------------------------------------------------------------------------------

// Runs `step` now and then every `everyMs` while the session lasts. A refused key ends the
// session; any other failure is shown and the next round tries again.
function every(everyMs, step) {
  const mine = session;
  const round = async () => {
    if (mine !== session) return;
    try {
      await step(mine);
      if (mine === session) show($('poll-error'), '');
    } catch (error) {
      if (mine !== session) return;
      if (error.status === 401 || error.status === 404) {
        signOut(refusalText(error));
        return;
      }
      show($('poll-error'), error.message);
    }
    setTimeout(round, everyMs);
  };
  round();
}

// The stream being read, to stop it on sign-out.
let statsStream = null;

// Reads the stats stream until it ends (an error: every() opens it again) or the session does.
async function readStats(mine) {
  const controller = new AbortController();
  statsStream = controller;
  const res = await send('/api/stats/stream', { signal: controller.signal });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (mine !== session) return;
      throw new ApiError(0, 'network', `The live figures' stream broke (${error.message})`);
    }
    if (mine !== session) return;
    if (chunk.done) throw new ApiError(0, 'network', "The live figures' stream ended");
    buffer += chunk.value;
    // Events end with a blank line; comments (": keep-alive") carry no data.
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const lines = buffer.slice(0, end).split('\n');
      buffer = buffer.slice(end + 2);
      const type = lines.find((line) => line.startsWith('event: '))?.slice(7);
      const data = lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6));
      if (type === 'stats' && data.length > 0) plot(JSON.parse(data.join('\n')));
    }
  }
}

function startDashboard(info) {
  session++;
  lastSeqs = new Map();
  lastRoomsAt = 0;
  buildCharts();
  showInfo(info);
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  document.body.dataset.state = 'signed-in';
  every(STREAM_RETRY_MS, readStats);
  every(ROOMS_EVERY_MS, refreshRooms);
  every(INFO_EVERY_MS, async (mine) => {
    const info = await api('/api/info');
    if (mine === session) showInfo(info);
  });
}

function signOut(message = '') {
  session++;
  statsStream?.abort();
  statsStream = null;
  apiKey = null;
  sessionStorage.removeItem(KEY_STORAGE);
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('login').hidden = false;
  $('node-line').textContent = '';
  document.body.dataset.state = 'signed-out';
  show($('login-error'), message);
}

// Asks the server whether `key` is the API key (GET /api/info); only then is it kept.
async function signIn(key) {
  if (key === '') {
    signOut('Enter the API key.');
    return;
  }
  apiKey = key;
  $('login-submit').disabled = true;
  try {
    const info = await api('/api/info');
    sessionStorage.setItem(KEY_STORAGE, key);
    show($('login-error'), '');
    startDashboard(info);
  } catch (error) {
    signOut(refusalText(error));
  } finally {
    $('login-submit').disabled = false;
  }
}

// ---- actions --------------------------------------------------------------------------------

// Sends one server API action from a form and shows its outcome in `result`: `done(answer)`
// says what happened, `failed` what did not. A refused key ends the session.
async function act(result, path, body, { pending, failed, done }) {
  result.dataset.outcome = 'pending';
  result.textContent = pending;
  try {
    const answer = await api(path, { method: 'POST', body });
    result.dataset.outcome = 'ok';
    result.textContent = done(answer);
  } catch (error) {
    if (error.status === 401) return signOut(refusalText(error));
    result.dataset.outcome = 'error';
    result.textContent = `${failed}: ${error.message}`;
  }
}

// The form's optional field `id`, trimmed, into body[name] unless empty.
function optional(body, name, id) {
  const value = $(id).value.trim();
  if (value !== '') body[name] = value;
  return body;
}

function publish(event) {
  event.preventDefault();
  const body = { room: $('publish-room').value.trim(), message: $('publish-message').value };
  act($('publish-result'), '/api/publish', optional(body, 'username', 'publish-username'), {
    pending: 'Publishing…',
    failed: 'Not published',
    done: (answer) => {
      $('publish-message').value = '';
      return `Published to ${answer.room} as seq ${answer.seq}.`;
    },
  });
}

function disconnect(event) {
  event.preventDefault();
  const body = { user: $('disconnect-user').value.trim() };
  const result = $('disconnect-result');
  act(result, '/api/disconnect', optional(body, 'reason', 'disconnect-reason'), {
    pending: 'Disconnecting…',
    failed: 'Not disconnected',
    done: (answer) => {
      result.dataset.connections = String(answer.connections);
      // In a cluster, `connections` is this node's; the others close theirs on their own.
      const cluster = answer.nodes === undefined ? ''
        : ` here; sent to ${plural(answer.nodes, 'node')}`;
      return `Closed ${plural(answer.connections, 'connection')} of ${answer.user}${cluster}.`;
    },
  });
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  signIn($('api-key').value);
  $('api-key').value = '';
});
$('sign-out').addEventListener('click', () => signOut());
$('publish-form').addEventListener('submit', publish);
$('disconnect-form').addEventListener('submit', disconnect);

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  signIn(saved);
} else {
  document.body.dataset.state = 'signed-out';
}
