// Drives GET /status in headless Chromium for tests/status_page.rs.
//
// Usage: node status_page.mjs BASE_URL REFRESH_MS
// Conversation with the Rust test, one line each way per step:
//   stdout "READY healthy"     -> stdin "redis-refused"  (the Redis proxy now refuses)
//   stdout "READY redis-down"  -> stdin "server-stopped" (the server is gone)
//   then, with answers faked in the browser, the details of the newer /health ("checks");
//   stdout "RESULT {json}" and exit 0; any failure: a message on stderr and exit 1.
// Uses the system Chromium (never downloads one) with a throwaway profile.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const [base, refreshArg] = process.argv.slice(2);
if (!base || !refreshArg) {
  console.error('usage: node status_page.mjs BASE_URL REFRESH_MS');
  process.exit(2);
}
const origin = new URL(base).origin;
const refreshMs = Number(refreshArg);
// Generous: "shows it within a refresh and a probe interval", not a benchmark.
const SHOW_WITHIN_MS = 10_000;

const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function handshake(phase, expected) {
  console.log(`READY ${phase}`);
  const { value, done } = await input.next();
  if (done || value.trim() !== expected) {
    throw new Error(`after ${phase} expected "${expected}" on stdin, got ${done ? 'end of input' : JSON.stringify(value)}`);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const requests = [];
const problems = [];
const profile = await mkdtemp(join(tmpdir(), 'modelgate-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  // Every request of every page and worker, including ones the page did not mean to make.
  context.on('request', (request) => requests.push(request.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // CSP violations never reach the network, so they show up here only.
    if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });

  const loadStarted = Date.now();
  const response = await page.goto(`${base}/status`);
  check(response && response.status() === 200, `GET /status answered ${response && response.status()}`);
  check(/default-src 'none'/.test(response.headers()['content-security-policy'] ?? ''), 'no CSP header');
  const rendered = await page.locator('meta[name="modelgate-refresh-ms"]').getAttribute('content');
  check(Number(rendered) === refreshMs, `page refreshes every ${rendered} ms, server configured ${refreshMs}`);

  // Phase 1: everything up.
  await page.waitForSelector('body[data-last-refresh="ok"]', { timeout: SHOW_WITHIN_MS });
  const firstRender = Date.now() - loadStarted;
  const overall = page.locator('#overall');
  const overallState = await overall.getAttribute('data-state');
  check(['healthy', 'degraded'].includes(overallState), `overall state ${overallState}`);
  check((await overall.innerText()).toLowerCase().includes(overallState), 'overall state has no text label');
  for (const name of ['database', 'models', 'redis']) {
    const row = page.locator(`#deps tr[data-dependency="${name}"]`);
    check((await row.count()) === 1, `no ${name} row`);
    check((await row.getAttribute('data-state')) === 'healthy', `${name} row is ${await row.getAttribute('data-state')}`);
    check(/healthy/i.test(await row.innerText()), `${name} row has no text label`);
  }
  // The Rust side made predictions before starting us.
  await page.waitForFunction(() => /^[1-9]\d* requests? in/.test(document.getElementById('requests').textContent), null, { timeout: SHOW_WITHIN_MS });
  const stats = {
    rate: await page.locator('#rate').innerText(),
    p99: await page.locator('#p99').innerText(),
    errors: await page.locator('#errors').innerText(),
    requests: await page.locator('#requests').innerText(),
  };
  check(/^\d+(\.\d+)?$/.test(stats.rate) && Number(stats.rate) > 0, `requests per second: ${stats.rate}`);
  check(/^\d+(\.\d+)? ms$/.test(stats.p99), `p99: ${stats.p99}`);
  check(stats.errors === '0.00 %', `error rate: ${stats.errors}`);

  // Phase 2: Redis (the incident's dependency) refuses connections.
  await handshake('healthy', 'redis-refused');
  const faultAt = Date.now();
  const refreshesBefore = Number(await page.locator('body').getAttribute('data-refreshes'));
  await page.waitForSelector('#deps tr[data-dependency="redis"][data-state="unhealthy"]', { timeout: SHOW_WITHIN_MS });
  const redisShownDownMs = Date.now() - faultAt;
  const refreshesDuring = Number(await page.locator('body').getAttribute('data-refreshes')) - refreshesBefore;
  // One refresh per period, not a retry storm: at most the periods elapsed, plus two.
  check(refreshesDuring <= Math.ceil(redisShownDownMs / refreshMs) + 2,
    `${refreshesDuring} refreshes in ${redisShownDownMs} ms at one per ${refreshMs} ms`);
  // Redis is optional: the service is degraded, not down, and the row says what users lose.
  check((await overall.getAttribute('data-state')) === 'degraded', 'overall not degraded with Redis down');
  check(await page.locator('#connection').isHidden(), 'a dependency outage is news, not a connection failure');
  const redisRow = await page.locator('#deps tr[data-dependency="redis"]').innerText();
  for (const expected of ['Unhealthy', 'optional', 'shared auth cache off']) {
    check(redisRow.includes(expected), `redis row lacks "${expected}": ${redisRow}`);
  }

  // Phase 3: the server itself is gone.
  await handshake('redis-down', 'server-stopped');
  const stoppedAt = Date.now();
  await page.waitForSelector('body[data-last-refresh="failed"]', { timeout: SHOW_WITHIN_MS });
  const unreachableShownMs = Date.now() - stoppedAt;
  const alert = await page.locator('#connection').innerText();
  check(/unreachable|no answer/i.test(alert), `connection alert: ${alert}`);
  check((await overall.getAttribute('data-state')) === 'unreachable', 'overall state not unreachable');

  // Phase 4: a /health with per-dependency checks (faked here, as this server may predate
  // them) shows since, latency, breaker, impact and the last error.
  const serverNow = Date.now();
  const ago = (seconds) => new Date(serverNow - seconds * 1000).toISOString();
  const detailed = {
    status: 'degraded', version: 'test', timestamp: new Date(serverNow).toISOString(), uptime_s: 90,
    services: { database: 'healthy', redis: 'unhealthy', models: 'healthy' },
    checks: {
      database: { status: 'healthy', required: true, latency_ms: 1.25, since: ago(90), last_success: ago(1), last_error: null, breaker: 'closed', impact: 'Keys are checked.' },
      redis: { status: 'unhealthy', required: false, latency_ms: null, since: ago(125), last_success: ago(130), last_error: 'connection refused <b>', breaker: 'open', impact: 'Instances share no key cache.' },
      models: { status: 'healthy', required: true, latency_ms: null, since: ago(90), last_success: null, last_error: null, breaker: null, impact: 'Predictions are served.' },
    },
  };
  await page.route('**/health', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(detailed) }));
  await page.route('**/status/stats', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ window_s: 60, requests: 200, requests_per_s: 3.33, p99_ms: 12.5, error_ratio: 0.1, errors_5xx: 20 }) }));
  await page.waitForSelector('body[data-last-refresh="ok"] #deps[data-detail="on"]', { timeout: SHOW_WITHIN_MS });
  check((await overall.getAttribute('data-state')) === 'degraded', 'overall not degraded');
  const redis = await page.locator('#deps tr[data-dependency="redis"]').innerText();
  for (const expected of ['Redis', 'optional', 'Unhealthy', 'for 2m 5s', 'Open', 'Instances share no key cache.', 'connection refused <b>']) {
    check(redis.includes(expected), `redis row lacks "${expected}": ${redis}`);
  }
  const database = await page.locator('#deps tr[data-dependency="database"]').innerText();
  for (const expected of ['required', 'Healthy', '1.25 ms', 'Closed', 'none']) {
    check(database.includes(expected), `database row lacks "${expected}": ${database}`);
  }
  check(await page.locator('#deps b').count() === 0, 'an error message was rendered as HTML');
  check((await page.locator('#errors-tile').getAttribute('data-state')) === 'unhealthy', 'a 10 % error rate is not flagged');
  check(await page.locator('#p99').innerText() === '12.5 ms', 'p99 not shown');

  const foreign = requests.filter((url) => new URL(url).origin !== origin);
  check(foreign.length === 0, `requests to other hosts: ${foreign.join(', ')}`);
  check(problems.length === 0, problems.join('\n'));
  const paths = [...new Set(requests.map((url) => new URL(url).pathname))].sort();
  console.log('RESULT ' + JSON.stringify({ firstRender, redisShownDownMs, refreshesDuring, unreachableShownMs, requests: requests.length, paths, stats }));
} catch (error) {
  console.error(`status page check failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
  process.exit(process.exitCode ?? 0);
}
