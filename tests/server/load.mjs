// tests/server/load.mjs — load test of `dsv4 serve`: N concurrent streaming chat clients (default 64), each must get
// a complete stream (role chunk, max_tokens content deltas, finish chunk, usage, [DONE]); prints the aggregate
// generated tokens per second and the wall time, then "N passed, N failed". Uses node's fetch only.
//   DSV4_URL=http://127.0.0.1:PORT node tests/server/load.mjs [CLIENTS] [MAX_TOKENS]
const base = process.env.DSV4_URL;
const clients = +(process.argv[2] || 64), maxTokens = +(process.argv[3] || 16);

async function one(i) {
  const r = await fetch(base + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: `CITIZEN ${i}:` }], max_tokens: maxTokens, stream: true,
      stream_options: { include_usage: true }, temperature: 0.8, seed: i, thinking: { type: 'disabled' }, ignore_eos: true }),
  });
  if (r.status !== 200) return { ok: false, why: 'status ' + r.status + ' ' + (await r.text()) };
  const text = await r.text();
  const data = text.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6));
  const done = data[data.length - 1] === '[DONE]';
  const usage = data.filter(d => d !== '[DONE]').map(d => JSON.parse(d)).find(c => c.usage)?.usage;
  const ok = done && usage && usage.completion_tokens === maxTokens;
  return { ok, tokens: usage ? usage.completion_tokens : 0, why: ok ? '' : text.slice(-300) };
}

const t0 = performance.now();
const res = await Promise.all(Array.from({ length: clients }, (_, i) => one(i).catch(e => ({ ok: false, why: String(e) }))));
const dt = (performance.now() - t0) / 1000;
const good = res.filter(r => r.ok).length, tokens = res.reduce((a, r) => a + (r.tokens || 0), 0);
console.log(`load: ${clients} concurrent streams x ${maxTokens} tokens: ${good} complete, ${tokens} tokens in ${dt.toFixed(2)} s ` +
            `(${(tokens / dt).toFixed(1)} tok/s aggregate)`);
for (const r of res) if (!r.ok) console.log('FAIL load: ' + r.why);
console.log(good === clients ? '1 passed, 0 failed' : '0 passed, 1 failed');
process.exit(good === clients ? 0 : 1);
