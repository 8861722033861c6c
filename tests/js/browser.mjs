// A real browser against the hub: headless Chromium (Debian's, driven by puppeteer-core)
// opens the dashboard and watches its counters follow clients that connect and subscribe,
// tails a topic and sees a published event; then opens GraphiQL, runs a subscription and sees
// a published event in the result pane. Every request the pages make must stay on 127.0.0.1.
// Screenshots go to the directory given as the second argument.
import puppeteer from 'puppeteer-core';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { hub, wsUrl, fail, metric, waitMetric, publish } from './harness.mjs';

const out = process.argv[3];
if (!out) fail('usage: node browser.mjs http://127.0.0.1:PORT OUTPUT_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'],
});
const offsite = [];
const failed = [];
async function open(path) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.hostname !== '127.0.0.1') offsite.push(request.url());
  });
  page.on('requestfailed', (request) => {
    // Streams the test itself closes end as aborted requests; anything else is a fault.
    if (!request.url().includes('/graphql') && !request.url().includes('/status')) failed.push(request.url());
  });
  page.on('pageerror', (error) => fail(`${path}: page error: ${error.message}`));
  await page.goto(`${hub}${path}`, { waitUntil: 'load' });
  return page;
}
const text = (page, testid) => page.$eval(`[data-testid="${testid}"]`, (element) => element.textContent);
async function waitText(page, testid, expected) {
  try {
    await page.waitForFunction(
      (id, want) => document.querySelector(`[data-testid="${id}"]`)?.textContent === want,
      { timeout: 10_000 },
      testid,
      expected,
    );
  } catch {
    fail(`${testid} shows ${JSON.stringify(await text(page, testid))}, expected ${JSON.stringify(expected)}`);
  }
}

try {
  // ---- the dashboard follows the hub
  const dashboard = await open('/');
  await waitText(dashboard, 'live', 'live');
  // The dashboard's own status stream is a session, counted as SSE.
  await waitText(dashboard, 'connections-total', '1');
  await waitText(dashboard, 'subscriptions', '0');

  const clients = [1, 2].map(() => createClient({ url: wsUrl, webSocketImpl: WebSocket, lazy: false }));
  const disposers = clients.map((client) =>
    client.subscribe({ query: 'subscription { events(topic: "board") { payload } }' }, { next() {}, error() {}, complete() {} }),
  );
  await waitMetric('subhub_subscriptions', 2);
  await waitText(dashboard, 'connections-total', '3');
  await waitText(dashboard, 'subscriptions', '2');
  await waitText(dashboard, 'executions', '1');
  await waitText(dashboard, 'sources-open', '1');
  console.log('dashboard: counters follow two WebSocket clients');

  // The live tail subscribes over SSE with an operation of its own: one more execution on the
  // same source.
  await dashboard.type('[data-testid="tail-topic"]', 'board');
  await dashboard.click('[data-testid="tail-start"]');
  await waitMetric('subhub_subscriptions', 3);
  await waitText(dashboard, 'subscriptions', '3');
  await waitText(dashboard, 'executions', '2');
  await waitText(dashboard, 'sources-open', '1');
  await publish('board', { hello: 'browser', n: 1 });
  await dashboard
    .waitForFunction(() => document.querySelector('[data-testid="tail-events"]')?.textContent.includes('"browser"'), {
      timeout: 10_000,
    })
    .catch(() => fail('the live tail never showed the published event'));
  const sourcesTable = await text(dashboard, 'sources');
  if (!sourcesTable.includes('board')) fail(`the sources table does not list board: ${sourcesTable}`);
  // Two more events, so the rate chart has something to draw.
  for (let n = 2; n <= 3; n++) await publish('board', { hello: 'browser', n });
  await dashboard.waitForFunction(() => document.querySelectorAll('[data-testid="tail-events"] li').length === 3);
  // A status tick that counted the three events, so the rate chart shows them.
  await dashboard.waitForFunction(
    () => document.getElementById('events-total')?.textContent.startsWith('3 '),
    { timeout: 10_000 },
  );
  await dashboard.screenshot({ path: `${out}/dashboard.png`, fullPage: true });
  console.log('dashboard: the live tail shows a published event');

  disposers.forEach((dispose) => dispose());
  await Promise.all(clients.map((client) => client.dispose()));
  await waitText(dashboard, 'subscriptions', '1');
  await dashboard.close();
  await waitMetric('subhub_subscriptions', 0);

  // ---- GraphiQL, from the binary, subscribing over the WebSocket
  const graphiql = await open('/graphiql');
  await graphiql.waitForSelector('.graphiql-execute-button', { timeout: 10_000 });
  await graphiql.click('.graphiql-execute-button');
  await waitMetric('subhub_subscriptions', 1);
  if ((await metric('subhub_connections{transport="graphql-transport-ws"}')) !== 1) {
    fail('GraphiQL did not subscribe over the WebSocket');
  }
  await publish('demo', { hello: 'graphiql' });
  await graphiql
    .waitForFunction(() => document.querySelector('.graphiql-response')?.textContent.includes('graphiql'), {
      timeout: 10_000,
    })
    .catch(() => fail('the result pane never showed the published event'));
  await graphiql.screenshot({ path: `${out}/graphiql.png` });
  console.log('GraphiQL: a subscription shows a published event');
  await graphiql.close();
} finally {
  await browser.close();
}
if (offsite.length) fail(`requests left 127.0.0.1: ${offsite.join(', ')}`);
if (failed.length) fail(`requests failed: ${failed.join(', ')}`);
console.log('no request left 127.0.0.1');
