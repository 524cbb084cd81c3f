// consent.mjs clicks through LinkedIn's (the sandbox's) consent page for
// connect_test.go, as a person would: one headless Chromium (Debian's
// /usr/bin/chromium through playwright-core) opens the authorization URL
// capstan printed, checks the page asks for the permissions, clicks the
// button named BUTTON (Allow or Cancel), follows the redirect to capstan's
// callback and prints one JSON line:
//
//	{"ok":true,"scopes":["..."],"url":"the callback page's URL","message":"its status or alert text"}
//
// or {"ok":false,"error":"..."} (exit 1).
//
// Usage: node browser/consent.mjs USER_DATA_DIR AUTH_URL BUTTON [CHROMIUM]
import { chromium } from 'playwright-core';

const [userDataDir, authURL, button, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!userDataDir || !authURL || !button) {
  console.error('usage: node browser/consent.mjs USER_DATA_DIR AUTH_URL BUTTON [CHROMIUM]');
  process.exit(2);
}

let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30000);
  await page.goto(authURL);
  await page.getByRole('heading', { name: 'Allow access to your LinkedIn account?' }).waitFor();
  const scopes = await page.getByRole('list', { name: 'Requested permissions' }).locator('code').allTextContents();
  const origin = new URL(authURL).origin;
  await Promise.all([
    page.waitForURL((u) => u.origin !== origin, { waitUntil: 'load' }),
    page.getByRole('button', { name: button, exact: true }).click(),
  ]);
  const msg = page.locator('[role=status], [role=alert]').first();
  await msg.waitFor();
  const message = await msg.textContent();
  console.log(JSON.stringify({ ok: true, scopes, url: page.url(), message }));
  await context.close();
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }));
  if (context) await context.close().catch(() => {});
  process.exit(1);
}
