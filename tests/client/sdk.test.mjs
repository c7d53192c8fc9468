// The client library as a package (web/package.json, "roomcast-client"): its declarations
// (roomcast.d.ts) are checked with `tsc --strict` against a typed use (types/usage.ts) and
// against what roomcast.js really exports; `npm pack` makes a tarball that installs into a fresh
// project, resolves its types there, and chats with the real server from Node 20.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import * as library from '../../web/roomcast.js';
import harness from '../integration/node/roomcast.js';

const { ROOT, RoomcastServer } = harness;
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const WEB = path.join(ROOT, 'web');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const TEST_TIMEOUT_MS = 120000;

function tsc(project) {
  const run = spawnSync(process.execPath, [TSC, '-p', project], { encoding: 'utf8' });
  assert.equal(run.status, 0, `tsc -p ${project}:\n${run.stdout}${run.stderr}`);
}

// The names roomcast.d.ts exports, and the members it declares on RoomcastClient.
function declared() {
  const file = path.join(WEB, 'roomcast.d.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const values = new Set();
  const clientMembers = new Set();
  const isExported = (node) => node.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const node of source.statements) {
    if (!isExported(node)) continue;
    if (ts.isVariableStatement(node)) {
      for (const d of node.declarationList.declarations) values.add(d.name.getText(source));
    } else if (ts.isFunctionDeclaration(node) || ts.isClassDeclaration(node)) {
      values.add(node.name.getText(source));
    }
    if (ts.isClassDeclaration(node) && node.name.getText(source) === 'RoomcastClient') {
      for (const member of node.members) {
        if (member.name && !ts.isConstructorDeclaration(member)) clientMembers.add(member.name.getText(source));
      }
    }
  }
  return { values, clientMembers };
}

test('roomcast.d.ts passes tsc --strict against a typed use of the whole library', { timeout: TEST_TIMEOUT_MS }, () => {
  tsc(path.join(HERE, 'types'));
});

test('roomcast.d.ts declares exactly what roomcast.js exports, and every client member', () => {
  const { values, clientMembers } = declared();
  assert.deepEqual([...values].sort(), Object.keys(library).sort());
  const proto = library.RoomcastClient.prototype;
  const runtime = Object.getOwnPropertyNames(proto).filter((name) => name !== 'constructor');
  assert.deepEqual([...clientMembers].sort(), runtime.sort());
});

test('the package version is the server\'s (one version, CMakeLists.txt)', () => {
  const cmake = fs.readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8');
  const version = /project\(roomcast VERSION (\d+\.\d+\.\d+)/.exec(cmake)?.[1];
  const pkg = JSON.parse(fs.readFileSync(path.join(WEB, 'package.json'), 'utf8'));
  assert.equal(pkg.version, version);
  assert.equal(pkg.name, 'roomcast-client');
});

test('npm pack: the tarball installs into a fresh project, types resolve, and it chats from Node', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-sdk-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: WEB, encoding: 'utf8' }));
  assert.deepEqual(packed[0].files.map((f) => f.path).sort(), ['package.json', 'roomcast.d.ts', 'roomcast.js']);
  const tarball = path.join(dir, packed[0].filename);

  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // The package has no dependencies: it installs without the registry.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app });
  // Node 20 has no WebSocket of its own: the application brings npm `ws` (ours, linked).
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'ws'), path.join(app, 'node_modules', 'ws'), 'dir');

  // Types through the package's `exports`, as an application compiles them.
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], types: [] },
    files: ['check.ts'],
  }));
  fs.writeFileSync(path.join(app, 'check.ts'), [
    "import { RoomcastClient, type SendOutcome } from 'roomcast-client';",
    "const client = new RoomcastClient({ url: 'ws://127.0.0.1:1/' });",
    "const outcome: SendOutcome = client.send('hi', { room: 'r' });",
    'console.log(outcome);',
    '',
  ].join('\n'));
  tsc(app);

  const server = await RoomcastServer.start('sdk-pack');
  t.after(() => server.stopCleanly());
  fs.writeFileSync(path.join(app, 'chat.mjs'), `
    import WebSocket from 'ws';
    import { RoomcastClient } from 'roomcast-client';
    const client = new RoomcastClient({ url: process.argv[2], WebSocket });
    const timer = setTimeout(() => { console.error('timed out'); process.exit(2); }, 20000);
    client.on('ack', ({ id, seq }) => {
      if (id !== 'from-the-package') return;
      console.log(JSON.stringify({ seq }));
      clearTimeout(timer);
      client.close();
    });
    client.connect();
    const joined = await client.join('sdk', 'packaged');
    if (!joined.ok) { console.error(joined.error.message); process.exit(1); }
    client.send('installed and working', { room: 'sdk', id: 'from-the-package' });
  `);
  const run = spawnSync(process.execPath, ['chat.mjs', `${server.wsUrl}/`], { cwd: app, encoding: 'utf8', timeout: 30000 });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), { seq: 1 });
});
