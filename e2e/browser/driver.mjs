// driver.mjs runs one headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) and obeys commands from a Go test, one JSON object per
// line on stdin; it answers one JSON line per command on stdout:
//
//	{"id":1,"op":"goto","url":"http://..."}          -> {"id":1,"ok":true,"result":null}
//	{"id":2,"op":"eval","expr":"document.title"}     -> {"id":2,"ok":true,"result":"..."}
//	{"id":3,"op":"reload"}
//	{"id":3,"op":"waitForURL","url":"http://..."}   -> after a navigation the page started itself
//	{"id":4,"op":"cookies"}                           -> every cookie of the context
//	{"id":5,"op":"logs"}                              -> console messages, page errors, failed requests so far
//	{"id":6,"op":"close"}                             -> closes the browser and exits
//
// "eval" evaluates an expression in the page and awaits it when it is a
// Promise. A failed command answers {"ok":false,"error":"..."}.
//
// Usage: node browser/driver.mjs USER_DATA_DIR [CHROMIUM]
import { out, serve } from './protocol.mjs';
import { chromium } from 'playwright-core';

const [userDataDir, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!userDataDir) {
  console.error('usage: node browser/driver.mjs USER_DATA_DIR [CHROMIUM]');
  process.exit(2);
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  timeout: 30000,
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(15000);

const logs = [];
page.on('console', (m) => logs.push(`console.${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
page.on('requestfailed', (r) => logs.push(`requestfailed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));


async function run(cmd) {
  switch (cmd.op) {
    case 'goto':
      await page.goto(cmd.url, { waitUntil: 'load' });
      return null;
    case 'waitForURL':
      await page.waitForURL(cmd.url, { waitUntil: 'load' });
      return null;
    case 'reload':
      await page.reload({ waitUntil: 'load' });
      return null;
    case 'eval':
      return await page.evaluate(cmd.expr);
    case 'cookies':
      return await context.cookies();
    case 'logs':
      return logs.splice(0);
    case 'close':
      await context.close();
      return null;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

serve(run, () => context.close());
