#!/usr/bin/env node
// End-to-end test of causeway's dashboard in headless Chromium.
//
//   node tests/browser/dashboard.mjs BASE_URL API_KEY SCREENSHOT_DIR
//
// Needs a running causeway (with some traffic analysed into at least one
// incident) and `npm install` in tests/browser. CHROMIUM overrides the
// browser binary (default /usr/bin/chromium). Prints one line per step and
// exits 1 on the first failure, after saving failure.png.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

// require() (unlike import) also searches NODE_PATH, so the package may be
// installed here (npm ci in tests/browser) or anywhere NODE_PATH names.
let chromium;
try {
  ({ chromium } = createRequire(import.meta.url)('playwright-core'));
} catch (e) {
  console.log(`FAIL playwright-core cannot be loaded (run \`npm ci\` in tests/browser, or set NODE_PATH): ${e.message.split('\n')[0]}`);
  process.exit(1);
}

const [baseArg, apiKey, shotDir] = process.argv.slice(2);
if (!baseArg || !apiKey || !shotDir) {
  console.error('usage: node tests/browser/dashboard.mjs BASE_URL API_KEY SCREENSHOT_DIR');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const WAIT_MS = Number(process.env.WAIT_MS) || 60_000; // the server may still be analysing
fs.mkdirSync(shotDir, { recursive: true });

const T = (sel) => `[data-testid="${sel}"]`;
let browser;
let page;
let passed = 0;
const problems = []; // uncaught page errors and CSP violations

async function step(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    passed += 1;
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''} [${Date.now() - started} ms]`);
  } catch (e) {
    // eslint-disable-next-line no-control-regex
    const [first, ...rest] = String(e?.message || e).replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => l.trim());
    console.log(`FAIL ${name}: ${first}`);
    for (const line of rest.slice(0, 8)) console.log(`     ${line.trim()}`);
    if (page) {
      try {
        const file = path.join(shotDir, 'failure.png');
        await page.screenshot({ path: file, fullPage: true });
        console.log(`     page: ${page.url()}; screenshot: ${file}`);
      } catch { /* page gone */ }
    }
    console.log(`dashboard: ${passed} passed, 1 failed`);
    await browser?.close().catch(() => {});
    process.exit(1);
  }
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(name) {
  await page.screenshot({ path: path.join(shotDir, name), fullPage: true });
  return name;
}

/** Waits for `selector` to have at least `min` matches, reloading the page between tries. */
async function pollFor(selector, { min = 1, timeout = WAIT_MS, every = 5000, what = selector } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      await page.waitForFunction(([s, n]) => document.querySelectorAll(s).length >= n, [selector, min],
        { timeout: Math.max(1000, Math.min(every, deadline - Date.now())) });
      return page.locator(selector).count();
    } catch {
      if (Date.now() >= deadline) {
        const shown = await page.locator(T('error')).first().textContent({ timeout: 500 }).catch(() => null);
        throw new Error(`no ${what} after ${Math.round(timeout / 1000)} s${shown ? `; the page says: ${shown.trim()}` : ''}`);
      }
      await page.reload({ waitUntil: 'domcontentloaded' });
    }
  }
}

/** fetch() from inside the page, with the session cookie. */
function pageFetch(url, init = {}) {
  return page.evaluate(async ([u, i]) => {
    const r = await fetch(u, { credentials: 'same-origin', ...i });
    return { status: r.status, body: await r.text() };
  }, [url, init]);
}

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] }).catch((e) => {
  console.log(`FAIL launch Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM): ${e.message.split('\n')[0]}`);
  process.exit(1);
});
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
page = await context.newPage();
page.setDefaultTimeout(30_000);
page.on('pageerror', (e) => problems.push(`uncaught error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
});

let reportId = null;

await step('open the dashboard: sign-in form shown', async () => {
  const resp = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  check(resp && resp.ok(), `GET / answered ${resp?.status()}`);
  const csp = resp.headers()['content-security-policy'] || '';
  check(/default-src 'self'/.test(csp), `GET / has no Content-Security-Policy with default-src 'self' (got ${JSON.stringify(csp)})`);
  await page.locator(T('signin-form')).waitFor({ state: 'visible' });
  return 'CSP present';
});

await step('a wrong API key is refused', async () => {
  await page.locator(T('signin-key')).fill(`not-${apiKey}`);
  await page.locator(T('signin-submit')).click();
  await page.locator(T('signin-error')).waitFor({ state: 'visible' });
  check(await page.locator(T('signin-form')).isVisible(), 'the sign-in form went away');
});

await step('sign in with the API key', async () => {
  await page.locator(T('signin-key')).fill(apiKey);
  await page.locator(T('signin-submit')).click();
  await page.waitForSelector(`${T('signout')}:visible, ${T('signin-error')}:visible`);
  const refused = await page.locator(T('signin-error')).isVisible();
  check(!refused, `the key was refused: ${(await page.locator(T('signin-error')).textContent())?.trim()}`);
  return `tenant ${(await page.locator(T('tenant')).textContent())?.trim()}`;
});

await step('the session cookie is HttpOnly and SameSite=Strict', async () => {
  const visible = await page.evaluate(() => document.cookie);
  check(!/causeway_session/.test(visible), `document.cookie exposes the session: ${visible}`);
  const cookies = await context.cookies(BASE);
  const c = cookies.find((x) => x.name === 'causeway_session');
  check(c, `no causeway_session cookie was set (cookies: ${cookies.map((x) => x.name).join(', ') || 'none'})`);
  check(c.httpOnly, 'causeway_session is not HttpOnly');
  check(c.sameSite === 'Strict', `causeway_session is SameSite=${c.sameSite}`);
});

await step('incident list shows at least one incident', async () => {
  const n = await pollFor(T('incident-row'), { what: 'incident row' });
  // The screenshot is better with the most likely cause listed; the first
  // analysis pass may still be running.
  const analysed = await pollFor(`${T('incident-row')}[data-rca="yes"]`, { timeout: 30_000, what: 'analysed incident' })
    .catch(() => 0);
  return `${n} rows (${analysed} analysed), ${await shot('incidents.png')}`;
});

await step('open the first incident: RCA with summary and evidenced hypotheses', async () => {
  // The first incident, preferring one whose analysis is already listed.
  const analysed = page.locator(`${T('incident-row')}[data-rca="yes"] ${T('incident-link')}`);
  const link = (await analysed.count()) ? analysed.first() : page.locator(`${T('incident-row')} ${T('incident-link')}`).first();
  await link.click();
  await page.waitForURL(/#\/incidents\/[^/]+$/);
  await pollFor(`${T('hypothesis')} ${T('evidence')}`, { what: 'hypothesis with evidence (RCA still pending?)' });
  const summary = (await page.locator(T('rca-summary')).textContent())?.trim();
  check(summary, 'the RCA summary is empty');
  reportId = await page.locator(T('rca')).getAttribute('data-report-id');
  check(reportId, 'the RCA section has no data-report-id');
  const hyps = await page.locator(T('hypothesis')).count();
  const barWidth = await page.locator(`${T('hypothesis')} ${T('confidence')} .fill`).first()
    .evaluate((el) => el.getBoundingClientRect().width);
  check(barWidth > 0, 'the confidence bar of the top hypothesis is empty');
  return `report ${reportId}, ${hyps} hypotheses, "${summary.slice(0, 60)}", ${await shot('rca.png')}`;
});

await step('example trace link opens the span waterfall', async () => {
  let hrefs = await page.locator(`${T('evidence')} ${T('trace-link')}`).evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  if (!hrefs.length) hrefs = await page.locator(T('trace-link')).evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  check(hrefs.length, 'the incident page shows no example trace link');
  const tried = [];
  for (const [i, href] of [...new Set(hrefs)].slice(0, 5).entries()) {
    if (i === 0) await page.locator(`a[href="${href}"]`).first().click();
    else await page.goto(`${BASE}/${href}`);
    await page.waitForFunction(() => document.querySelector('[data-testid="span-bar"], [data-testid="error"]'));
    if (await page.locator(T('span-bar')).count()) {
      const bars = await page.locator(T('span-bar')).count();
      return `${href}, ${bars} spans, ${await shot('trace.png')}`;
    }
    tried.push(`${href}: ${(await page.locator(T('error')).textContent())?.trim()}`);
  }
  throw new Error(`no example trace could be shown: ${tried.join('; ')}`);
});

await step('service graph draws at least one edge', async () => {
  await page.locator(T('nav-graph')).click();
  await page.waitForURL(/#\/graph/);
  try {
    await page.waitForSelector(`${T('graph-svg')} ${T('graph-edge')}`, { state: 'attached', timeout: 10_000 });
  } catch {
    // The traffic may be older than the default range.
    await page.goto(`${BASE}/#/graph?range=24h`);
  }
  const n = await pollFor(`${T('graph-svg')} ${T('graph-edge')}`, { what: 'graph edge' });
  const nodes = await page.locator(T('graph-node')).count();
  return `${nodes} services, ${n} edges, ${await shot('graph.png')}`;
});

await step('a service RED page draws its charts', async () => {
  await page.locator(T('nav-services')).click();
  await pollFor(T('service-link'), { what: 'service' });
  await page.locator(T('service-link')).first().click();
  await page.waitForURL(/#\/services\/.+/);
  try {
    await page.waitForSelector(`${T('red-chart')} svg path`, { state: 'attached', timeout: 10_000 });
  } catch {
    // The traffic may be older than the default range.
    await page.goto(`${page.url().split('?')[0]}?range=24h`);
  }
  await pollFor(`${T('red-chart')} svg path`, { min: 3, what: 'RED charts' });
  const charts = await page.locator(T('red-chart')).count();
  const options = await page.locator(`${T('operation-select')} option`).count();
  return `${charts} charts, ${options} operations, ${await shot('red.png')}`;
});

await step('a POST without the CSRF header is refused (403)', async () => {
  const body = JSON.stringify({ rank: 0, confirmed: true, comment: 'csrf probe' });
  const url = `/api/v1/rca/${encodeURIComponent(reportId)}/feedback`;
  const bare = await pageFetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  check(bare.status === 403, `without X-CSRF-Token: expected 403, got ${bare.status} ${bare.body}`);
  const wrong = await pageFetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'deadbeef' }, body });
  check(wrong.status === 403, `with a wrong X-CSRF-Token: expected 403, got ${wrong.status} ${wrong.body}`);
  // With the right token it gets past the check: rank 0 never exists, so
  // this is a 400 and no feedback is recorded.
  const session = JSON.parse((await pageFetch('/api/v1/session')).body);
  const right = await pageFetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token }, body });
  check(right.status === 400, `with the right X-CSRF-Token: expected 400 (no rank 0), got ${right.status} ${right.body}`);
  return 'missing 403, wrong 403, right token passes';
});

await step('sign out: the API answers 401 afterwards', async () => {
  await page.locator(T('signout')).click();
  await page.locator(T('signin-form')).waitFor({ state: 'visible' });
  const r = await pageFetch('/api/v1/incidents');
  check(r.status === 401, `GET /api/v1/incidents after sign-out answered ${r.status}`);
  const s = await pageFetch('/api/v1/session');
  check(s.status === 401, `GET /api/v1/session after sign-out answered ${s.status}`);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.locator(T('signin-form')).waitFor({ state: 'visible' });
});

await step('no uncaught page errors or CSP violations', async () => {
  check(!problems.length, problems.join(' | '));
});

console.log(`dashboard: ${passed} passed, 0 failed`);
await browser.close();
