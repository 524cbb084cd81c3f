// demo.mjs drives the page of `capstan demo` for demo_test.go: one headless
// Chromium (Debian's /usr/bin/chromium through playwright-core) with a
// 1280x900 window, plus the demo site's "back end", which sends server-side
// events with the real @segment/analytics-node. It speaks the line protocol
// of driver.mjs (one JSON command per line on stdin, one JSON answer per
// line on stdout, {"ok":false,"error":"..."} on failure), so the Go test
// reuses browser_test.go's browser type; the extra commands are:
//
//	{"op":"fill","selector":"#email","value":"..."}   -> types into a field as a user would
//	{"op":"check","selector":"#consent","checked":false}
//	{"op":"click","selector":"#submit"}
//	{"op":"waitFor","expr":"window.lastSignUp"}        -> the first truthy value of expr (15 s at most)
//	{"op":"screenshot","path":"/.../demo.png"}         -> PNG of the 1280x900 viewport
//	{"op":"newContext","userDataDir":"/tmp/..."}       -> closes the browser, starts a fresh one (new profile: no cookies, no storage)
//	{"op":"segmentTrack","host":"http://...","writeKey":"...","userId":"...","event":"...","properties":{}}
//	                                                   -> {"event": the event as analytics-node sent it, "status": HTTP status}
//
// Usage: node browser/demo.mjs USER_DATA_DIR [CHROMIUM]
import { out, serve } from './protocol.mjs';
import { chromium } from 'playwright-core';
import { Analytics } from '@segment/analytics-node';

const [firstDataDir, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!firstDataDir) {
  console.error('usage: node browser/demo.mjs USER_DATA_DIR [CHROMIUM]');
  process.exit(2);
}

const logs = [];
let context;
let page;

async function launch(userDataDir) {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
    timeout: 30000,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on('console', (m) => logs.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => logs.push(`requestfailed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
}

// segmentTrack sends one track call with analytics-node, as a back end would.
async function segmentTrack(cmd) {
  const analytics = new Analytics({
    writeKey: cmd.writeKey,
    host: cmd.host,
    flushAt: 1,
    maxRetries: 0, // a failure must show, not be retried away
    httpRequestTimeout: 10000,
  });
  let event = null;
  let status = 0;
  const errors = [];
  analytics.on('http_request', (r) => { event = JSON.parse(r.body).batch[0]; });
  analytics.on('http_response', (r) => { status = r.status; });
  analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)));
  analytics.track({ userId: cmd.userId, event: cmd.event, properties: cmd.properties ?? {} }, (err) => {
    if (err) errors.push(String(err?.message ?? err));
  });
  await analytics.closeAndFlush({ timeout: 15000 });
  if (errors.length > 0) throw new Error(`analytics-node: ${errors.join('; ')}`);
  return { event, status };
}

await launch(firstDataDir);


async function run(cmd) {
  switch (cmd.op) {
    case 'goto':
      await page.goto(cmd.url, { waitUntil: 'load' });
      return null;
    case 'reload':
      await page.reload({ waitUntil: 'load' });
      return null;
    case 'eval':
      return await page.evaluate(cmd.expr);
    case 'waitFor': {
      const h = await page.waitForFunction(cmd.expr, null, { timeout: cmd.timeout ?? 15000, polling: 50 });
      return await h.jsonValue();
    }
    case 'fill':
      await page.fill(cmd.selector, cmd.value);
      return null;
    case 'check':
      await page.setChecked(cmd.selector, cmd.checked);
      return null;
    case 'click':
      await page.click(cmd.selector);
      return null;
    case 'screenshot':
      await page.screenshot({ path: cmd.path, type: 'png', animations: 'disabled', caret: 'hide' });
      return null;
    case 'cookies':
      return await context.cookies();
    case 'logs':
      return logs.splice(0);
    case 'newContext':
      await context.close();
      await launch(cmd.userDataDir);
      return null;
    case 'segmentTrack':
      return await segmentTrack(cmd);
    case 'close':
      await context.close();
      return null;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

serve(run, () => context.close());
