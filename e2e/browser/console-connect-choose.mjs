// console-connect-choose.mjs: Connect LinkedIn for a destination without an
// ad account (connect_test.go): after Allow, capstan's page lists the
// member's ad accounts, those they may write to as buttons and those they
// can only read greyed with the reason; one click chooses, and the page
// shows the line to add to the configuration.
import { main, signIn, openPage, check, screenshot } from './console.mjs';

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Destinations');
  const form = page.getByRole('form', { name: `Connect LinkedIn for ${args.destination}` });
  await form.getByRole('button', { name: 'Connect LinkedIn' }).click();
  await page.getByRole('heading', { name: 'Allow access to your LinkedIn account?' }).waitFor();
  await Promise.all([
    page.waitForURL(/\/admin\/oauth\/callback\?/),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  const writable = page.getByRole('region', { name: 'Ad accounts the member may write to' });
  const readOnly = page.getByRole('region', { name: 'Ad accounts the member can only read' });
  await writable.waitFor();
  const writableButtons = await writable.getByRole('button').allTextContents();
  const readOnlyButtons = [];
  for (const b of await readOnly.getByRole('button').all()) {
    check(await b.isDisabled(), 'a read-only account can be chosen');
    readOnlyButtons.push({ name: await b.textContent(), reason: await b.getAttribute('aria-describedby').then((id) => readOnly.locator('#' + id).textContent()) });
  }
  await screenshot(page, args, 'connect-choose-account');
  await Promise.all([
    page.waitForURL(/\/admin\/oauth\/choose$/),
    writable.getByRole('button', { name: `Use ad account ${args.account}` }).click(),
  ]);
  const message = await page.getByRole('status').first().textContent();
  const config = await page.getByLabel('Configuration to add').textContent();
  await screenshot(page, args, 'connect-chosen-account');
  await page.getByRole('link', { name: 'Back to Destinations' }).click();
  const card = page.getByRole('region', { name: args.destination });
  await card.locator('[data-health="delivering"]').waitFor({ timeout: 60000 });
  return { writable: writableButtons, readOnly: readOnlyButtons, message, config };
});
