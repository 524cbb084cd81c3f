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
  const after = await state(c);
  check(await c.getByLabel('Access token').inputValue() === '', 'the token field was not cleared');
  await toast.waitFor({ state: 'detached' }).catch(() => {});
  await screenshot(page, args, 'destinations');
  return { before, after, toast: 'New access token installed' };
});
