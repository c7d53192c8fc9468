// What every Chromium test file shares: Debian's Chromium launched through playwright-core,
// and screenshots in $ROOMCAST_TEST_LOGS/screenshots (default build/test-logs/screenshots).

import fs from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import helpers from '../integration/node/roomcast.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(helpers.LOG_DIR, 'screenshots');

// launch() gives the browser a fresh temporary profile (user-data dir) and deletes it on close.
export async function launchBrowser() {
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

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// One browser for a test file: launched before its first test, closed after its last. Call at
// the file's top level; returns a function giving the browser (inside tests).
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return () => browser;
}
