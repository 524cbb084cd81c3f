// console-reconcile.mjs (TestConsoleRuleStatusAndReconcile): the
// Destinations page shows each rule's status at LinkedIn (spec §22: derived
// status, enabled, value method, associated campaigns, the two callback
// times), and Reconcile now fills the reconciliation table: accepted beside
// reported, processing days, and the eventId collision mark.
import { main, signIn, openPage, screenshot, check } from './console.mjs';

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Destinations');
  const card = page.getByRole('region', { name: 'linkedin' });
  await card.waitFor();

  const rules = card.getByRole('table', { name: 'Rule status at LinkedIn' });
  await rules.waitFor();
  const orders = rules.getByRole('row').filter({ hasText: 'Orders' }).first();
  await orders.getByText('receiving').waitFor();
  const rulesText = await rules.innerText();

  // Not reconciled yet (serve waits a minute): Reconcile now.
  await card.getByText('Not reconciled yet').waitFor();
  await card.getByRole('button', { name: 'Reconcile now' }).click();
  const recon = card.getByRole('table', { name: 'Reconciliation' });
  await recon.waitFor();
  const row = recon.getByRole('row').filter({ hasText: 'Orders' }).first();
  await row.getByText('1 collision', { exact: true }).waitFor();
  check((await row.innerText()).includes('1 day, 2 accepted'), 'the Orders row does not show its processing day with 2 accepted');
  const reconText = await recon.innerText();
  await screenshot(page, args, 'destinations-reconcile');
  return { rules: rulesText, reconcile: reconText };
});
