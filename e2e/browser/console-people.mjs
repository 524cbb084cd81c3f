// console-people.mjs (TestConsolePeople): a person an event identified is
// found by userId and by email (hashed in the browser: only the hash is
// sent), then deleted after confirmation; the Audit log shows it.
import { main, signIn, openPage, screenshot, check } from './console.mjs';

main(async ({ page, args }) => {
  const out = {};
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'People');

  // By userId.
  await page.getByLabel('Look up by').selectOption('userId');
  await page.getByLabel('User ID').fill(args.userId);
  await page.getByRole('button', { name: 'Look up' }).click();
  const person = page.getByRole('region', { name: /^Person u\./ });
  await person.waitFor();
  out.byUserId = await person.innerText();
  await screenshot(page, args, 'people');

  // By email: typed with spaces and capitals; the request carries only the
  // SHA-256 of the normalised email.
  const urls = [];
  page.on('request', (r) => { if (r.url().includes('/admin/api/')) urls.push(r.url()); });
  await page.getByLabel('Look up by').selectOption('email');
  await page.getByLabel('Email', { exact: true }).fill(`  ${args.email.toUpperCase()} `);
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByText(/profiles? for email/).waitFor();
  out.byEmail = await page.locator('.people-results').innerText();
  out.emailURLs = urls.splice(0);

  // Delete, after confirmation: Cancel first changes nothing.
  await page.getByRole('region', { name: /^Person u\./ }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  check(await page.getByRole('region', { name: /^Person u\./ }).count() === 1, 'Cancel removed the person');
  await page.getByRole('region', { name: /^Person u\./ }).getByRole('button', { name: 'Delete' }).click();
  out.dialog = await page.getByRole('dialog').innerText();
  await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
  const done = page.locator('.people-results [role="status"]');
  await done.waitFor({ timeout: 60000 });
  out.deleted = await done.innerText();
  out.deleteURLs = urls.splice(0);

  // Looked up again: nobody.
  await page.getByLabel('Look up by').selectOption('userId');
  await page.getByLabel('User ID').fill(args.userId);
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByText(/Nobody found/).waitFor();

  // The audit log shows the deletion, newest first.
  await openPage(page, 'Audit log');
  const rows = page.getByRole('table', { name: 'Audit log' }).locator('tbody tr');
  await rows.first().waitFor();
  out.audit = await rows.allInnerTexts();
  await screenshot(page, args, 'audit');
  return out;
});
