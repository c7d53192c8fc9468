// What the Chromium tests share (not a test file: node --test runs *.test.mjs): Debian's
// Chromium launched headless through playwright-core, and where screenshots go
// ($ROOMCAST_TEST_LOGS/screenshots, default build/test-logs/screenshots).

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import helpers from '../integration/node/roomcast.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(helpers.LOG_DIR, 'screenshots');

// launch() gives the browser a fresh temporary profile (user-data dir) and deletes it on close.
export async function launchChromium() {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60000,
  });
}
