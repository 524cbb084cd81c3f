// console-tester.mjs: the Event tester page (see e2e/console_live_test.go).
// A pasted event is previewed into its LinkedIn request; an event without
// any identifier shows the validation errors; text that is not JSON, an
// event no trigger matches and a stored event picked from the recent list
// are handled; Send test event asks for confirmation, then sends for real
// and shows LinkedIn's answer.
import { main, signIn, openPage, screenshot } from './console.mjs';

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Event tester');
  const dest = page.getByLabel('Destination');
  await page.locator('#tester-destination option[value="linkedin"]').waitFor({ state: 'attached' });
  const mappings = await page.locator('#tester-mapping option').allTextContents();
  const result = page.getByRole('region', { name: 'Result' });
  const editor = page.getByLabel('Event (JSON)');

  async function preview(text) {
    await editor.fill(text);
    await page.getByRole('button', { name: 'Preview' }).click();
    await result.locator('.badge, .error-box').first().waitFor();
    return result.textContent();
  }

  // A valid event: the request.
  const good = JSON.stringify({
    type: 'track', event: 'Sign Up', userId: 'tester-1', messageId: 'tester-good',
    timestamp: new Date().toISOString(), properties: { li_fat_id: 'tester-lfi', plan: 'pro' },
    context: { traits: { email: 'Tester@Example.com' } },
  }, null, 2);
  await preview(good);
  const request = await result.getByLabel('LinkedIn request').textContent();
  const goodText = await result.textContent();
  await screenshot(page, args, 'tester');

  // No identifier: the validation errors.
  const badText = await preview(JSON.stringify({ type: 'track', event: 'Sign Up', userId: 'tester-2', properties: { plan: 'pro' } }));
  const badAlert = await result.getByRole('alert').textContent();

  // Not JSON; no trigger matched; an event ingest drops.
  const notJSON = await preview('{"type": "track",');
  const notMatched = await preview(JSON.stringify({ type: 'page', name: 'Home', userId: 'tester-3' }));
  const dropped = await preview(JSON.stringify({ type: 'track', userId: 'tester-4' }));

  // A stored event from the recent list.
  await page.getByRole('button', { name: 'Refresh' }).click();
  const use = page.getByRole('button', { name: /^Use event \d+(:\d+)?$/ }).first();
  await use.waitFor();
  await use.click();
  const stored = await editor.inputValue();
  await page.getByRole('button', { name: 'Preview' }).click();
  await result.locator('.badge, .error-box').first().waitFor();
  const storedResult = await result.textContent();

  // Send test event: confirmation, then LinkedIn's answer (the sandbox's 201).
  await editor.fill(good);
  const sendBtn = page.getByRole('button', { name: 'Send test event' });
  const sendDisabled = await sendBtn.isDisabled();
  await sendBtn.click();
  const dialog = page.getByRole('dialog');
  const dialogText = await dialog.textContent();
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await result.getByText('sent for real').waitFor();
  const sendText = await result.textContent();

  return { destination: await dest.inputValue(), mappings, request, goodText, badText, badAlert, notJSON, notMatched, dropped, stored, storedResult, sendDisabled, dialogText, sendText };
});
