// console-connect.mjs: the console's Connect LinkedIn, clicked through as
// an operator would (connect_test.go): sign in, open Destinations, click
// Connect LinkedIn on the destination's card, Allow on the sandbox's
// consent page, and follow capstan's callback page back to Destinations,
// which says the destination is connected and shows it delivering.
import { main, signIn, openPage, check, screenshot } from './console.mjs';

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Destinations');
  const form = page.getByRole('form', { name: `Connect LinkedIn for ${args.destination}` });
  await form.getByRole('button', { name: 'Connect LinkedIn' }).waitFor();
  await screenshot(page, args, 'destinations-connect');
  await form.getByRole('button', { name: 'Connect LinkedIn' }).click();
  await page.getByRole('heading', { name: 'Allow access to your LinkedIn account?' }).waitFor();
  const scopes = await page.getByRole('list', { name: 'Requested permissions' }).locator('code').allTextContents();
  await Promise.all([
    page.waitForURL(/\/admin\/oauth\/callback\?/),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  const callbackMessage = await page.getByRole('status').first().textContent();
  // The callback page sends the browser on to the console.
  await page.waitForURL(/\/admin\/#\/destinations\?connected=1/, { timeout: 30000 });
  await page.waitForFunction(() => /is connected to LinkedIn/.test(document.getElementById('toast-status')?.textContent || ''));
  const toast = await page.locator('#toast-status').textContent();
  const card = page.getByRole('region', { name: args.destination });
  await card.locator('[data-health="delivering"]').waitFor({ timeout: 60000 });
  check(!(await page.getByRole('button', { name: 'Sign in' }).isVisible()), 'signed out after the callback');
  return { scopes, callbackMessage, toast };
});
