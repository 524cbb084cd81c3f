// The line protocol the Go tests speak with the Chromium drivers: one JSON
// command per line on stdin ({id, op, ...}), one JSON answer per line on
// stdout ({id, ok, result} or {id, ok: false, error}). Commands run one at a
// time, in order; "close" or the end of stdin ends the process.
import readline from 'node:readline';

export const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

// serve answers commands with run(cmd) and calls closeBrowser at the end.
export function serve(run, closeBrowser) {
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      let cmd;
      try {
        cmd = JSON.parse(line);
      } catch (e) {
        out({ ok: false, error: `bad command: ${e.message}` });
        return;
      }
      try {
        const result = await run(cmd);
        out({ id: cmd.id, ok: true, result: result === undefined ? null : result });
      } catch (e) {
        out({ id: cmd.id, ok: false, error: String(e?.stack ?? e) });
      }
      if (cmd.op === 'close') process.exit(0);
    });
  });
  rl.on('close', () => {
    chain.then(() => closeBrowser()).finally(() => process.exit(0));
  });
}
