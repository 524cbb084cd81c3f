// console-signin.mjs (TestConsoleSignIn): the sign-in page, a wrong admin
// token refused, the right one accepted, the shell's navigation, a page
// missing from the build, the session cookie's attributes, and Sign out.
import { main, signIn, signOut, screenshot, check, apiStatus, waitConsole } from './console.mjs';

main(async ({ page, context, args }) => {
  const out = {};
  await page.goto(`${args.baseURL}/admin/`, { waitUntil: 'load' });
  await page.getByLabel('Admin token').waitFor();
  out.signInTitle = await page.title();
  out.userFields = await page.getByLabel('Username').count();
  await screenshot(page, args, 'signin');

  // A wrong token: an error, and no session.
  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert').filter({ hasText: /wrong/i });
  await alert.waitFor();
  out.wrongTokenError = (await alert.textContent()).trim();
  out.cookiesAfterFailure = (await context.cookies()).map((c) => c.name);

  // The right one.
  await signIn(page, args.baseURL, args.token);
  out.user = (await page.locator('#who-user').textContent()).trim();
  out.role = (await page.locator('#who-role').textContent()).trim();
  const cookie = (await context.cookies()).find((c) => c.name === 'capstan_session');
  check(cookie, 'no capstan_session cookie after signing in');
  out.cookie = { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure, path: cookie.path };

  // The navigation: every link, in order, each opens its page.
  const nav = page.getByRole('navigation', { name: 'Console' });
  out.links = [];
  for (const a of await nav.getByRole('link').all()) {
    const name = (await a.evaluate((el) => el.firstChild.textContent)).trim();
    const href = await a.getAttribute('href');
    await a.click();
    await page.waitForFunction((h) => location.hash === h, href);
    // The console marks the link once its hashchange handler has run,
    // which may be after the hash changed: wait for it (a link never
    // marked is reported as it is, and the test fails on it).
    const el = await a.elementHandle();
    await page.waitForFunction((e) => e.getAttribute('aria-current') === 'page', el, { timeout: 5000 }).catch(() => {});
    const current = await a.getAttribute('aria-current');
    const text = await page.locator('main#page').innerText();
    out.links.push({ name, href, current, failed: /This page failed/.test(text) });
  }

  // A page whose module is missing from the build says so.
  await page.route('**/admin/ui/pages/tester.js', (route) => route.fulfill({ status: 404, body: 'missing' }));
  // A new document (the query), not a hash change: the shell loads again, without tester.js.
  await page.goto(`${args.baseURL}/admin/?without-tester#/tester`, { waitUntil: 'load' });
  await waitConsole(page);
  out.missingPage = (await page.locator('main#page').innerText()).trim();
  await page.unroute('**/admin/ui/pages/tester.js');

  // A state-changing request with the cookie but without the CSRF token
  // is refused; with it, it gets through to the route.
  out.noCSRF = await apiStatus(page, 'POST', '/admin/api/dlq/replay', { ids: [999999] }, false);
  out.withCSRF = await apiStatus(page, 'POST', '/admin/api/dlq/replay', { ids: [999999] }, true);

  // Sign out: the DELETE's answer is kept for the Go side's message. The
  // browser applies its Set-Cookie (Max-Age=-1) to the profile's cookie
  // store on its own schedule, so the store is read until the cookie is
  // gone or 5 s have passed (a loaded machine once read it too soon).
  const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE' && new URL(r.url()).pathname === '/admin/api/session');
  await signOut(page);
  out.signOutStatus = (await deleted).status();
  for (const until = Date.now() + 5000; ;) {
    out.cookiesAfterSignOut = (await context.cookies()).map((c) => c.name);
    if (!out.cookiesAfterSignOut.includes('capstan_session') || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  out.sessionAfterSignOut = await apiStatus(page, 'GET', '/admin/api/session');
  return out;
});
