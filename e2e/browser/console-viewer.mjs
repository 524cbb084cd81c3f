// console-viewer.mjs (TestConsoleViewer): with server.admin_users the
// sign-in page asks for a username and password; a wrong password is
// refused; a viewer sees operator controls disabled, and the server
// refuses the action (403) when the page forces it.
import { main, signInUser, openPage, check, apiStatus } from './console.mjs';

main(async ({ page, args }) => {
  const out = {};
  await page.goto(`${args.baseURL}/admin/`, { waitUntil: 'load' });
  out.fields = {
    username: await page.getByLabel('Username').count(),
    password: await page.getByLabel('Password').count(),
    token: await page.getByLabel('Admin token').count(),
  };
  await page.getByLabel('Username').fill(args.viewer);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert').filter({ hasText: /wrong/i });
  await alert.waitFor();
  out.wrongPassword = (await alert.innerText()).trim();

  await signInUser(page, args.baseURL, args.viewer, args.password);
  out.user = (await page.locator('#who-user').textContent()).trim();
  out.role = (await page.locator('#who-role').textContent()).trim();

  await openPage(page, 'Destinations');
  const install = page.getByRole('region', { name: 'linkedin' }).getByRole('button', { name: 'Install token' });
  await install.waitFor();
  out.installDisabled = await install.isDisabled();
  out.installTitle = await install.getAttribute('title');

  // Forced: the page sends the request anyway, with the CSRF token.
  out.forcedInstall = await apiStatus(page, 'PUT', '/admin/api/destinations/linkedin/token', { access_token: 'tok-by-viewer' });
  out.forcedReplay = await apiStatus(page, 'POST', '/admin/api/dlq/replay', { all: true });
  out.forcedDelete = await apiStatus(page, 'POST', '/admin/api/privacy/delete', { userId: 'someone' });
  out.read = await apiStatus(page, 'GET', '/admin/api/destinations');
  check(out.read.status === 200, 'a viewer could not read the destinations');
  out.read = { status: out.read.status };
  return out;
});
