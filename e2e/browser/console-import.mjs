// console-import.mjs: the Import page (see e2e/console_import_test.go). An
// operator uploads a CSV as a dry run (nothing stored), then for real,
// watching the progress and reading the summary with the invalid rows by
// line, then the same file again (nothing stored twice); a viewer sees
// the imports but cannot upload.
import { main, signIn, signInUser, signOut, openPage, screenshot, apiStatus } from './console.mjs';

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Import');
  await page.locator('#import-source option').first().waitFor({ state: 'attached' });
  const sources = await page.locator('#import-source option').allTextContents();

  // runImport uploads args.csv through the form and returns what the
  // Progress and Summary regions show once the import has ended.
  let last = '';
  async function runImport(dryRun) {
    await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'deals.csv', mimeType: 'text/csv', buffer: Buffer.from(args.csv) });
    await page.getByLabel('Event name').fill('Sign Up');
    await page.getByLabel('Column mapping').fill(args.map);
    await page.getByLabel(/Dry run/).setChecked(dryRun);
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.waitForFunction((prev) => /[?&]id=/.test(location.hash) && location.hash !== prev, last);
    last = await page.evaluate(() => location.hash);
    const progress = page.getByRole('region', { name: 'Progress' });
    const seen = [];
    const summary = page.getByRole('region', { name: 'Summary' });
    // Watch the progress until the summary appears.
    for (;;) {
      seen.push(await progress.getByRole('status').textContent().catch(() => ''));
      if (await summary.isVisible()) break;
      await page.waitForTimeout(100);
    }
    await summary.getByRole('heading', { name: 'Summary' }).waitFor();
    const bar = progress.getByRole('progressbar', { name: 'Rows done' });
    const out = {
      seen,
      line: await progress.getByRole('status').textContent(),
      bar: { value: await bar.evaluate((b) => b.value), max: await bar.evaluate((b) => b.max) },
      title: await progress.getByRole('heading').first().textContent(),
      summary: await summary.textContent(),
      errorRows: await summary.getByRole('table', { name: 'Invalid rows' }).locator('tbody tr').allInnerTexts().catch(() => []),
    };
    return out;
  }

  const dry = await runImport(true);
  const afterDry = await apiStatus(page, 'GET', '/admin/api/events?source=' + encodeURIComponent(args.source) + '&limit=1000');
  const real = await runImport(false);
  await screenshot(page, args, 'import', { fullPage: true });
  const again = await runImport(false);

  // A long import, cancelled from the page while it runs.
  const big = ['userId,plan'];
  for (let i = 0; i < 300000; i++) big.push(`lead-${i},pro`);
  await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'leads.csv', mimeType: 'text/csv', buffer: Buffer.from(big.join('\n') + '\n') });
  await page.getByLabel('Event name').fill('Lead');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await page.waitForFunction((prev) => /[?&]id=/.test(location.hash) && location.hash !== prev, last);
  const progress = page.getByRole('region', { name: 'Progress' });
  await progress.getByRole('button', { name: 'Cancel import' }).click();
  const cancelDialog = await page.getByRole('dialog').textContent();
  await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
  const cancelledSummary = page.getByRole('region', { name: 'Summary' });
  await cancelledSummary.getByRole('heading', { name: 'Summary' }).waitFor({ timeout: 60000 });
  const cancelled = await cancelledSummary.textContent();

  const recent = await page.getByRole('table', { name: 'Recent imports' }).locator('tbody tr').allInnerTexts();

  // A file that cannot be imported: the message, nothing started.
  await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello\n') });
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const badFile = await page.locator('#import-error').filter({ hasText: /./ }).textContent();

  // A viewer: the list, no upload.
  await signOut(page);
  await signInUser(page, args.baseURL, args.viewer, args.viewerPassword);
  await openPage(page, 'Import');
  const viewerRows = page.getByRole('table', { name: 'Recent imports' }).locator('tbody tr');
  await viewerRows.first().getByRole('button', { name: /^Show import of / }).waitFor();
  const viewerUploadDisabled = await page.getByRole('button', { name: 'Import', exact: true }).isDisabled();
  await viewerRows.first().getByRole('button', { name: /^Show import of / }).click();
  await page.getByRole('region', { name: 'Summary' }).getByRole('heading', { name: 'Summary' }).waitFor();
  const viewerSummary = await page.getByRole('region', { name: 'Summary' }).textContent();

  return { sources, cancelDialog, cancelled, dry, afterDryCount: (afterDry.body && afterDry.body.events || []).length, real, again, recent, badFile, viewerUploadDisabled, viewerRows: await viewerRows.count(), viewerSummary };
});
