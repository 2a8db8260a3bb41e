// tests/server/browser.mjs — the chat page in headless Chromium (run by tests/server/server.sh; the DevTools
// WebSocket is node's own where it has one, else the `ws` package). Opens http://SERVER/#q=ROMEO: (the page sends it at once), then asks
// the page over the DevTools protocol until the streamed reply is complete, and checks the user and assistant
// messages and the meta line (finish reason, token counts). Prints "N passed, N failed".
//   DSV4_URL=http://127.0.0.1:PORT CHROMIUM=chromium node tests/server/browser.mjs
import { spawn } from 'node:child_process';
import WS from 'ws';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.DSV4_URL + '/#q=' + encodeURIComponent('ROMEO:');
const dir = mkdtempSync(join(tmpdir(), 'dsv4-chromium-'));
const chrome = spawn(process.env.CHROMIUM || 'chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--remote-debugging-port=0', '--user-data-dir=' + dir, url], { stdio: 'ignore' });
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
let pass = 0, fail = 0;
const check = (name, cond, detail) => {
  if (cond) { pass++; console.log('ok   browser: ' + name); } else { fail++; console.log('FAIL browser: ' + name + ' -- ' + JSON.stringify(detail)); }
};
try {
  let port = 0;
  for (let i = 0; i < 100 && !port; i++) {
    const f = join(dir, 'DevToolsActivePort');
    if (existsSync(f)) port = +readFileSync(f, 'utf8').split('\n')[0];
    else await sleep(100);
  }
  if (!port) throw new Error('chromium did not start');
  let target;
  for (let i = 0; i < 50 && !target; i++) {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    target = list.find(t => t.type === 'page' && t.url.startsWith(process.env.DSV4_URL));
    if (!target) await sleep(100);
  }
  const ws = new (globalThis.WebSocket || WS)(target.webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => { const j = JSON.parse(m.data); if (pending.has(j.id)) { pending.get(j.id)(j); pending.delete(j.id); } };
  const evaluate = (expr) => new Promise(res => { pending.set(++id, res); ws.send(JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression: expr, returnByValue: true } })); });
  let state = null;
  for (let i = 0; i < 300; i++) {
    const r = await evaluate(`JSON.stringify({ user: document.querySelector('.user')?.textContent,
      done: document.querySelector('.assistant')?.dataset.done, text: document.querySelector('.assistant > div')?.textContent,
      meta: document.querySelector('.meta')?.textContent })`);
    state = JSON.parse(r.result.result.value);
    if (state.done || /error/.test(state.meta || '')) break;
    await sleep(100);
  }
  ws.close();
  check('the page sent the message', state.user === 'ROMEO:', state);
  check('the streamed reply completed with text', state.done === '1' && state.text.length > 0, state);
  check('the meta line shows finish reason and usage', /^(length|stop) · \d+ prompt tokens \(\d+ cached\), [1-8] generated/.test(state.meta), state);
} catch (e) {
  fail++; console.log('FAIL browser: ' + e);
} finally {
  chrome.kill('SIGKILL');
  await sleep(200);
  try { rmSync(dir, { recursive: true, force: true }); } catch {}
}
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
