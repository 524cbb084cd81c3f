// console-live.mjs: the Live events page (see e2e/console_live_test.go).
// With the page open and streaming, events are sent with the real
// @segment/analytics-node; the Sign Up event must show in the table, and
// its detail must show the LinkedIn request and, once the sandbox took it,
// the outcome "delivered". Then the filters (server-side), pause/resume and
// the skipped indicator's absence at this rate.
import { Analytics } from '@segment/analytics-node';
import { main, signIn, openPage, screenshot, check } from './console.mjs';

// track sends one call with analytics-node and resolves when capstan
// answered it (flushAt 1: one request per call).
function send(analytics, method, msg) {
  return new Promise((resolve, reject) => {
    analytics[method](msg, (err) => (err ? reject(new Error(`${method}: ${err.message ?? err}`)) : resolve(Date.now())));
  });
}

main(async ({ page, args }) => {
  const run = args.run;
  const user = `live-user-${run}`;
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Live events');
  await page.waitForFunction(() => document.querySelector('main#page').dataset.live === 'ready');
  const status = await page.locator('#live-status').textContent();

  const analytics = new Analytics({ writeKey: args.writeKey, host: args.baseURL, flushAt: 1, flushInterval: 60000, maxRetries: 0 });
  const errors = [];
  analytics.on('error', (e) => errors.push(String(e?.reason ?? e?.message ?? e)));

  // A few events first, so that the table looks like a site's traffic.
  await send(analytics, 'page', { anonymousId: `anon-${run}-1`, name: 'Pricing', properties: { path: '/pricing' } });
  await send(analytics, 'identify', { userId: `other-${run}`, traits: { plan: 'team' } });
  await send(analytics, 'page', { anonymousId: `anon-${run}-3`, name: 'Home', properties: { path: '/' } });
  await send(analytics, 'track', { anonymousId: `anon-${run}-2`, event: 'Add to Cart', properties: { sku: 'A-1' } });
  await send(analytics, 'page', { anonymousId: `anon-${run}-2`, name: 'Checkout', properties: { path: '/checkout' } });
  await send(analytics, 'group', { userId: `other-${run}`, groupId: 'acme', traits: { name: 'Acme' } });
  // The event under test: its 200, then the row.
  const answered = await send(analytics, 'track', {
    userId: user, event: 'Sign Up', messageId: `live-${run}`,
    properties: { plan: 'pro', li_fat_id: `lfi-${run}` },
  });
  const row = page.getByRole('row').filter({ hasText: user }).filter({ hasText: 'Sign Up' });
  await row.waitFor({ timeout: 10000 });
  const latencyMs = Date.now() - answered;
  await send(analytics, 'page', { userId: user, name: 'Welcome', properties: { path: '/welcome' } });
  await page.getByRole('row', { name: /Welcome/ }).waitFor({ timeout: 10000 });

  const cells = await row.getByRole('cell').allTextContents();

  // The detail: the request, then (reopened until the sandbox took it)
  // the outcome.
  await row.click();
  const detail = page.getByRole('region', { name: /^Event \d+(:\d+)?$/ });
  const request = detail.getByLabel('LinkedIn request of Sign Up');
  await request.waitFor();
  const requestText = await request.textContent();
  let outcome = '';
  for (let i = 0; i < 40; i++) {
    outcome = await detail.getByRole('listitem').first().locator('.delivery .badge').textContent().catch(() => '');
    if (outcome === 'delivered') break;
    await page.waitForTimeout(500);
    await row.click();
    await request.waitFor();
  }
  const detailText = await detail.textContent();
  const storedJSON = await detail.getByLabel('Stored event JSON').textContent();
  const skippedHidden = await page.locator('#live-skipped').isHidden();
  await screenshot(page, args, 'live');

  // Filters are applied by the server: only this user's events stream.
  await page.getByLabel('User').fill(user);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForFunction(() => document.querySelector('main#page').dataset.live === 'ready');
  await send(analytics, 'track', { userId: `someone-else-${run}`, event: 'Sign Up', properties: { li_fat_id: 'x' } });
  await send(analytics, 'track', { userId: user, event: 'Upgrade', properties: { plan: 'enterprise' } });
  await page.getByRole('row', { name: /Upgrade/ }).waitFor({ timeout: 10000 });
  const filteredRows = await page.locator('table.live tbody tr').allTextContents();
  const filterURL = page.url();

  // Pause holds new events back; Resume shows them.
  await page.getByRole('button', { name: 'Pause' }).click();
  await send(analytics, 'track', { userId: user, event: 'Downgrade' });
  await page.locator('#live-held').filter({ hasText: '1 new while paused' }).waitFor({ timeout: 10000 });
  const whilePaused = await page.getByRole('row', { name: /Downgrade/ }).count();
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.getByRole('row', { name: /Downgrade/ }).waitFor();

  await analytics.closeAndFlush({ timeout: 10000 });
  check(errors.length === 0, `analytics-node errors: ${errors.join('; ')}`);
  return { status, latencyMs, cells, requestText, outcome, detailText, storedJSON, skippedHidden, filteredRows, filterURL, whilePaused };
});
