// console.mjs: the harness of the admin console's browser tests. A Go test
// in e2e/ starts the real binary (`capstan serve` or `capstan demo`), then
// runs one node script of browser/ (console-*.mjs) that imports this
// module; the script drives Debian's headless Chromium (playwright-core)
// through the console, finding controls by role and label, and prints its
// result. See e2e/console_test.go (runConsole) for the Go side:
//
//	import { main, signIn, openPage, screenshot, check } from './console.mjs';
//	main(async ({ page, args }) => {
//	  await signIn(page, args.baseURL, args.token);
//	  await openPage(page, 'Destinations');
//	  await screenshot(page, args, 'destinations');
//	  return { ... };   // printed as JSON, decoded by the Go test
//	});
//
// The script gets its arguments as JSON in the CAPSTAN_CONSOLE_ARGS
// environment variable: at least baseURL, token (the admin token),
// userDataDir, chromium and screenshotDir ("" unless CAPSTAN_SCREENSHOTS=1).
// It exits 0 after printing one JSON line {"ok":true,"result":...} on
// stdout, or 1 with {"ok":false,"error":"...","logs":[...]}: the error, and
// the page's console messages, page errors and failed requests.
import { chromium } from 'playwright-core';
import path from 'node:path';

export const VIEWPORT = { width: 1280, height: 800 };

// check throws (failing the script) with message unless cond holds.
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

// launch starts Chromium with a fresh profile in userDataDir.
export async function launch(args) {
  const context = await chromium.launchPersistentContext(args.userDataDir, {
    executablePath: args.chromium || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
    timeout: 30000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  const logs = [];
  page.on('console', (m) => logs.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => logs.push(`requestfailed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  return { context, page, logs };
}

// waitConsole waits until the console's shell has loaded the session and
// rendered its first page.
export async function waitConsole(page) {
  await page.getByRole('navigation', { name: 'Console' }).waitFor();
  await page.waitForFunction(() => document.documentElement.dataset.ready === 'true');
}

// signIn opens the console at baseURL and signs in with the admin token,
// as a person would: the "Admin token" field and the "Sign in" button.
export async function signIn(page, baseURL, token) {
  await page.goto(`${baseURL}/admin/`, { waitUntil: 'load' });
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitConsole(page);
}

// signInUser signs in with a username and password (server.admin_users).
export async function signInUser(page, baseURL, username, password) {
  await page.goto(`${baseURL}/admin/`, { waitUntil: 'load' });
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitConsole(page);
}

// signOut clicks "Sign out" and waits for the sign-in page.
export async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
}

// openPage follows the navigation link called name ("Destinations") and
// waits until the page's heading is shown.
export async function openPage(page, name) {
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name, exact: false }).first().click();
  await page.locator('main#page h1').first().waitFor();
}

// screenshot writes the viewport to args.screenshotDir/<id>.png when
// screenshots are asked for (CAPSTAN_SCREENSHOTS=1 in the Go test), after
// the page has settled; else it does nothing. It returns the path or "".
export async function screenshot(page, args, id, opts = {}) {
  if (!args.screenshotDir) return '';
  const file = path.join(args.screenshotDir, `${id}.png`);
  await page.evaluate(() => document.fonts && document.fonts.ready);
  // No toast, hover or caret in the picture.
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.querySelectorAll('.toasts [role]').forEach((t) => { t.textContent = ''; t.className = ''; }));
  await page.screenshot({ path: file, type: 'png', animations: 'disabled', caret: 'hide', fullPage: !!opts.fullPage });
  return file;
}

// apiStatus calls the admin API from the page (with its cookie and, for
// state-changing methods, the session's CSRF token unless csrf is false)
// and returns {status, body}: how a forced request fares.
export async function apiStatus(page, method, url, body, csrf = true) {
  return page.evaluate(async ({ method, url, body, csrf }) => {
    const headers = { 'Content-Type': 'application/json' };
    if (csrf && window.capstan && window.capstan.session) headers['X-CSRF-Token'] = window.capstan.session.csrf;
    const res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { /* empty */ }
    return { status: res.status, body: data };
  }, { method, url, body, csrf });
}

// main runs fn({page, context, args, logs}) and prints its result: the
// one way a console script starts and ends.
export function main(fn) {
  let args;
  try {
    args = JSON.parse(process.env.CAPSTAN_CONSOLE_ARGS || '');
  } catch (e) {
    console.error(`CAPSTAN_CONSOLE_ARGS must hold the JSON arguments: ${e.message}`);
    process.exit(2);
  }
  (async () => {
    const { context, page, logs } = await launch(args);
    let ok = false;
    try {
      const result = await fn({ page, context, args, logs });
      process.stdout.write(JSON.stringify({ ok: true, result: result ?? null, logs }) + '\n');
      ok = true;
    } catch (e) {
      // What the page showed, for the failure message.
      const text = await page.locator('body').innerText({ timeout: 2000 }).catch(() => '');
      process.stdout.write(JSON.stringify({ ok: false, error: String(e?.stack ?? e), logs, url: page.url(), text }) + '\n');
    } finally {
      await context.close().catch(() => {});
    }
    process.exit(ok ? 0 : 1);
  })().catch((e) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e?.stack ?? e), logs: [] }) + '\n');
    process.exit(1);
  });
}
