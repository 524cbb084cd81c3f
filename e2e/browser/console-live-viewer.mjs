// console-live-viewer.mjs: a viewer (server.admin_users) on Live events and
// the Event tester (see e2e/console_live_test.go): the stream works with
// the session cookie, Preview works, Send test event is disabled with a
// title saying why, and forcing it is refused by the server.
import { main, signInUser, openPage, apiStatus } from './console.mjs';

main(async ({ page, args }) => {
  await signInUser(page, args.baseURL, args.viewer, args.password);
  await openPage(page, 'Live events');
  await page.waitForFunction(() => document.querySelector('main#page').dataset.live === 'ready');
  const status = await page.locator('#live-status').textContent();

  await openPage(page, 'Event tester');
  await page.locator('#tester-destination option[value="linkedin"]').waitFor({ state: 'attached' });
  await page.getByRole('button', { name: 'Preview' }).click();
  const request = await page.getByRole('region', { name: 'Result' }).getByLabel('LinkedIn request').textContent();
  const send = page.getByRole('button', { name: 'Send test event' });
  const sendDisabled = await send.isDisabled();
  const sendTitle = await send.getAttribute('title');
  const forced = await apiStatus(page, 'POST', '/admin/api/destinations/linkedin/test-event', { event: { type: 'track', event: 'Sign Up' }, mapping: 'Sign Up' });
  return { status, request, sendDisabled, sendTitle, forced };
});
