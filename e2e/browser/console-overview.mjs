// console-overview.mjs (TestConsoleOverviewAndDeadLetters): the Overview's
// funnel, coverage and rate charts and its window and mapping selectors;
// the Dead letters page's list, detail, and Replay of one, of a selection
// and of a filter, with the navigation's count after each.
import { main, signIn, signInUser, signOut, openPage, screenshot, check, apiStatus } from './console.mjs';

// rows reads the Dead letters table.
async function rows(page) {
  return page.locator('table[aria-label="Dead letters"] tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    seq: tr.dataset.seq,
    reason: tr.children[1].innerText.trim(),
    destination: tr.children[2].innerText.trim(),
    mapping: tr.children[3].innerText.trim(),
  })));
}

async function navCount(page) {
  return (await page.locator('[data-count="dead-letters"]').textContent()).trim();
}

async function waitNavCount(page, want) {
  await page.waitForFunction((n) => document.querySelector('[data-count="dead-letters"]').textContent.trim() === n, want, { timeout: 20000 });
}

async function waitRows(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('table[aria-label="Dead letters"] tbody tr').length === n &&
    document.querySelector('table[aria-label="Dead letters"]').closest('.table-wrap').hidden === (n === 0), n, { timeout: 20000 });
}

// confirm accepts the console's confirmation dialog.
async function confirm(page) {
  const dlg = page.getByRole('dialog');
  await dlg.waitFor();
  await dlg.getByRole('button', { name: 'Confirm' }).click();
}

main(async ({ page, args }) => {
  const out = { countAfter: [], toasts: [] };
  await signIn(page, args.baseURL, args.token);

  // ---- Overview ----
  await openPage(page, 'Overview');
  const funnel = page.getByRole('img', { name: /^Delivery funnel/ });
  await funnel.waitFor();
  await page.waitForFunction(() => /Delivered 12/.test(document.querySelector('svg.chart-funnel').getAttribute('aria-label')), null, { timeout: 20000 });
  out.funnelLabel = await funnel.getAttribute('aria-label');
  out.coverageLabel = await page.getByRole('img', { name: /^Match coverage/ }).getAttribute('aria-label');
  out.rateLabel = await page.getByRole('img', { name: /^Events per second/ }).getAttribute('aria-label');
  out.tiles = await page.locator('.overview-stats').innerText();
  await screenshot(page, args, 'overview', { fullPage: true });

  await page.getByRole('radiogroup', { name: 'Window' }).getByLabel('24 h').check();
  await page.waitForFunction(() => /over 24h/.test(document.querySelector('svg.chart-funnel')?.getAttribute('aria-label') || ''), null, { timeout: 20000 });
  out.funnel24hLabel = await page.getByRole('img', { name: /^Delivery funnel/ }).getAttribute('aria-label');
  await page.getByLabel('Mapping', { exact: true }).selectOption({ label: 'Sign Up' });
  await page.waitForFunction(() => /Sign Up/.test(document.querySelector('h2.overview-title')?.textContent || ''), null, { timeout: 20000 });
  out.mappingTitle = await page.locator('h2.overview-title').innerText();

  // ---- Dead letters ----
  await openPage(page, 'Dead letters');
  await waitRows(page, 4);
  await waitNavCount(page, '4');
  out.navCount = await navCount(page);
  out.rows = await rows(page);
  const rejected = out.rows.filter((r) => r.reason === 'rejected');
  check(rejected.length === 3, `3 rejected rows, got ${JSON.stringify(out.rows)}`);

  // One opens to LinkedIn's answer, the payload and the original event.
  await page.getByRole('button', { name: `Show dead letter ${rejected[0].seq}` }).click();
  const detail = page.getByRole('region', { name: 'Dead letter' });
  await detail.getByRole('heading', { name: `Dead letter ${rejected[0].seq}` }).waitFor();
  out.answer = await detail.getByLabel("LinkedIn's answer").innerText();
  out.payload = await detail.getByLabel('Payload').innerText();
  out.event = await detail.getByLabel('Original event').innerText();
  await screenshot(page, args, 'dead-letters');

  // Replay that one.
  await detail.getByRole('button', { name: 'Replay this dead letter' }).click();
  await confirm(page);
  await waitNavCount(page, '3');
  out.countAfter.push(await navCount(page));
  await waitRows(page, 3);

  // Replay a selection: the second rejected one.
  await page.getByLabel(`Select dead letter ${rejected[1].seq}`).check();
  await page.getByRole('button', { name: 'Replay selected (1)' }).click();
  await confirm(page);
  await waitNavCount(page, '2');
  out.countAfter.push(await navCount(page));
  await waitRows(page, 2);

  // Filter by reason and replay what the filter selects.
  await page.getByLabel('Reason', { exact: true }).selectOption({ label: 'Rejected by LinkedIn' });
  await waitRows(page, 1);
  out.filtered = await rows(page);
  await page.getByRole('button', { name: /^Replay all matching/ }).click();
  await confirm(page);
  await waitNavCount(page, '1');
  out.countAfter.push(await navCount(page));
  await waitRows(page, 0);
  out.toasts.push((await page.locator('#toast-status').textContent()).trim());

  await page.getByLabel('Reason', { exact: true }).selectOption({ label: 'All reasons' });
  await waitRows(page, 1);
  out.left = await rows(page);

  // A viewer reads the dead letters and the count, but the Replay controls
  // are disabled with a title saying why, and the server refuses anyway.
  await signOut(page);
  await signInUser(page, args.baseURL, args.viewer, args.viewerPassword);
  await openPage(page, 'Dead letters');
  await waitRows(page, 1);
  await waitNavCount(page, '1');
  const all = page.getByRole('button', { name: /^Replay all/ });
  out.viewer = { count: await navCount(page), allDisabled: await all.isDisabled(), allTitle: await all.getAttribute('title') };
  await page.getByRole('button', { name: /^Show dead letter/ }).click();
  out.viewer.oneDisabled = await page.getByRole('button', { name: 'Replay this dead letter' }).isDisabled();
  out.viewer.forced = await apiStatus(page, 'POST', '/admin/api/dlq/replay', { all: true });
  return out;
});
