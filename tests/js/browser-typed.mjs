// GraphiQL on a hub with a typed schema, in headless Chromium: the documentation explorer shows
// the SDL's subscription fields and types, read by GraphiQL's own introspection of the hub.
import puppeteer from 'puppeteer-core';
import { hub, fail } from './harness.mjs';

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => fail(`page error: ${error.message}`));
  const introspected = page.waitForResponse(
    (response) => response.url().endsWith('/graphql') && (response.request().postData() || '').includes('__schema'),
    { timeout: 10_000 },
  );
  await page.goto(`${hub}/graphiql`, { waitUntil: 'load' });
  const schema = await (await introspected).text();
  if (!schema.includes('"orderUpdated"') || !schema.includes('"Order"')) fail('the introspection lacks the typed schema');
  await page.waitForSelector('.graphiql-sidebar button', { timeout: 10_000 });
  // The documentation explorer: Subscription, then its fields.
  await page.click('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]');
  await page.waitForFunction(() => document.querySelector('.graphiql-doc-explorer')?.textContent.includes('Subscription'), {
    timeout: 10_000,
  });
  const clicked = await page.evaluate(() => {
    const link = [...document.querySelectorAll('.graphiql-doc-explorer a')].find((a) => a.textContent === 'Subscription');
    link?.click();
    return Boolean(link);
  });
  if (!clicked) fail('no Subscription root in the documentation explorer');
  await page
    .waitForFunction(() => document.querySelector('.graphiql-doc-explorer')?.textContent.includes('orderUpdated'), {
      timeout: 10_000,
    })
    .catch(() => fail('the documentation explorer does not show orderUpdated'));
  console.log('GraphiQL shows the typed schema');
} finally {
  await browser.close();
}
