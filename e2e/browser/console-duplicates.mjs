// console-duplicates.mjs: Live events in cluster mode (see
// e2e/duplicates_test.go). With the page open, the same messageId is sent
// to two replicas at the same moment, in batches that differ otherwise,
// until both stored it; the later copy's row must carry the mark
// "Duplicate of event <pos>" (role img, found by its accessible name), the
// first copy's row none.
import { main, signIn, openPage, screenshot } from './console.mjs';

async function postBatch(url, writeKey, ids, user) {
  const batch = ids.map((id) => ({ type: 'track', event: 'Dup View', userId: user, messageId: id }));
  const res = await fetch(`${url}/v1/batch`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(writeKey + ':').toString('base64') },
    body: JSON.stringify({ batch }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

main(async ({ page, args }) => {
  await signIn(page, args.baseURL, args.token);
  await openPage(page, 'Live events');
  await page.waitForFunction(() => document.querySelector('main#page').dataset.live === 'ready');

  // Rounds are paced at 4 events per 100 ms, under the 50 events a second
  // (burst 100) a Live events client is sent: a faster loop that needs many
  // rounds has the page's newest rows sampled away ("skipped N (sampled)"),
  // the marked copy among them.
  let shared = '';
  for (let round = 0; round < 40 && !shared; round++) {
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    const id = `${args.run}-shared-${round}`;
    const [a, b] = await Promise.all([
      postBatch(args.urlA, args.writeKey, [id, `${args.run}-a-${round}`], `u-${args.run}`),
      postBatch(args.urlB, args.writeKey, [id, `${args.run}-b-${round}`], `u-${args.run}`),
    ]);
    if (!a.duplicates && !b.duplicates) shared = id;
  }
  if (!shared) return { shared };

  // A row is matched by its message id cell, exactly: a row's text runs its
  // cells together, so the text of round 1's row ("…-shared-1" then its
  // position "123:0") contains "…-shared-11" too.
  const rows = page.getByRole('row').filter({ has: page.getByRole('cell', { name: shared, exact: true }) });
  await rows.nth(1).waitFor({ timeout: 15000 });
  const mark = rows.getByRole('img', { name: /^Duplicate of event / });
  await mark.waitFor({ timeout: 15000 });
  const out = {
    shared,
    rows: await rows.count(),
    marks: await mark.count(),
    markName: await mark.first().getAttribute('aria-label'),
    markText: await mark.first().textContent(),
    markedRowPos: await rows.filter({ has: page.getByRole('img', { name: /^Duplicate of event / }) }).first().getAttribute('data-seq'),
    rowPositions: await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.seq)),
  };
  await screenshot(page, args, 'live-duplicate');
  return out;
});
