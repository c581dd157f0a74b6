#!/usr/bin/env node
// The newcomer's path in headless Chromium: causeway with no API keys
// configured (the embedded default) serves the dashboard without sign-in.
//
//   node tests/browser/keyless.mjs BASE_URL SERVICE SCREENSHOT_DIR
//
// Needs a running causeway without `auth.api_keys` that has received at
// least one span of SERVICE. Prints one line per check; exits 1 on the
// first failure, after saving keyless-failure.png.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

let chromium;
try {
  ({ chromium } = createRequire(import.meta.url)('playwright-core'));
} catch (e) {
  console.log(`FAIL playwright-core cannot be loaded (run \`npm ci\` in tests/browser, or set NODE_PATH): ${e.message.split('\n')[0]}`);
  process.exit(1);
}

const [baseArg, service, shotDir] = process.argv.slice(2);
if (!baseArg || !service || !shotDir) {
  console.error('usage: node tests/browser/keyless.mjs BASE_URL SERVICE SCREENSHOT_DIR');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
fs.mkdirSync(shotDir, { recursive: true });
const T = (sel) => `[data-testid="${sel}"]`;

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] }).catch((e) => {
  console.log(`FAIL launch Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM): ${e.message.split('\n')[0]}`);
  process.exit(1);
});
const page = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));

async function check(name, fn) {
  try {
    const detail = await fn();
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${String(e?.message || e).split('\n')[0]}`);
    await page.screenshot({ path: path.join(shotDir, 'keyless-failure.png'), fullPage: true }).catch(() => {});
    await browser.close().catch(() => {});
    process.exit(1);
  }
}

await check('the dashboard opens signed in as tenant default, with no sign-in form', async () => {
  const resp = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  if (!resp || !resp.ok()) throw new Error(`GET / answered ${resp?.status()}`);
  await page.locator(T('nav-incidents')).waitFor({ state: 'visible' });
  if (await page.locator(T('signin-form')).isVisible()) throw new Error('the sign-in form is shown');
  const tenant = (await page.locator(T('tenant')).textContent())?.trim();
  if (tenant !== 'default') throw new Error(`tenant shown is ${JSON.stringify(tenant)}`);
  if (await page.locator(T('signout')).isVisible()) throw new Error('a sign-out button is shown with nothing to sign out of');
  return `tenant ${tenant}`;
});

await check(`the services page lists ${service}`, async () => {
  await page.locator(T('nav-services')).click();
  await page.waitForFunction((name) => [...document.querySelectorAll('[data-testid="service-link"]')]
    .some((a) => a.textContent.trim() === name), service);
  await page.screenshot({ path: path.join(shotDir, 'keyless-services.png'), fullPage: true });
  return 'keyless-services.png';
});

await check('no uncaught page errors', async () => {
  if (errors.length) throw new Error(errors.join('; '));
});
await browser.close();
console.log('keyless dashboard: all checks passed');
