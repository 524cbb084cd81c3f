// console-destinations.mjs (TestConsoleDestinations): the Destinations page
// shows the destination delivering, its conversion rule with the LinkedIn
// id, its rate-limit use; a new token installed with the form makes it use
// that token, and an expiry within 14 days shows as a warning.
import { main, signIn, openPage, screenshot, check } from './console.mjs';

async function card(page, name) {
  const c = page.getByRole('region', { name });
  await c.waitFor();
  return c;
}

async function state(c) {
  return {
    health: (await c.locator('[data-health]').first().getAttribute('data-health')),
    text: await c.innerText(),
    today: Number(await c.getByRole('meter', { name: 'Requests today' }).getAttribute('aria-valuenow')),
    minute: Number(await c.getByRole('meter', { name: 'Requests this minute' }).getAttribute('aria-valuenow')),
  };
}

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Destinations');
  const c = await card(page, 'linkedin');
  await c.getByText('Delivering').waitFor();
  const before = await state(c);

  await c.getByLabel('Access token').fill(args.newToken);
  await c.getByLabel('Expires at (UTC, optional)').fill(args.expiresAt);
  await c.getByRole('button', { name: 'Install token' }).click();
  const toast = page.getByRole('status').filter({ hasText: 'New access token installed' });
  await toast.waitFor();
  await c.getByText('Degraded').waitFor();
  check(await c.getByLabel('Access token').inputValue() === '', 'the token field was not cleared');

  // A conversion sent now counts against the new token: the page shows
  // it within its 5 s refresh.
  const res = await fetch(`${args.baseURL}/v1/track`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(args.writeKey + ':').toString('base64') },
    body: JSON.stringify({ type: 'track', event: 'Sign Up', userId: 'console-dest-new', messageId: 'console-dest-new', context: { traits: { email: 'new@example.com' } } }),
  });
  check(res.status === 200, `POST /v1/track: ${res.status}`);
  await page.waitForFunction(() => {
    const m = document.querySelector('[role="meter"][aria-label="Requests today"]');
    return m && Number(m.getAttribute('aria-valuenow')) >= 1;
  }, null, { timeout: 30000 });
  const after = await state(c);
  await toast.waitFor({ state: 'detached' }).catch(() => {});
  await screenshot(page, args, 'destinations');
  return { before, after, toast: 'New access token installed' };
});
