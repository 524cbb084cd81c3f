// console-demo.mjs (TestConsoleDemo): the console URL `capstan demo`
// prints (admin token in the fragment) signs in by itself and leaves no
// token in the address bar.
import { main, waitConsole } from './console.mjs';

main(async ({ page, args }) => {
  await page.goto(args.consoleURL, { waitUntil: 'load' });
  await waitConsole(page);
  return {
    url: page.url(),
    user: (await page.locator('#who-user').textContent()).trim(),
    role: (await page.locator('#who-role').textContent()).trim(),
  };
});
