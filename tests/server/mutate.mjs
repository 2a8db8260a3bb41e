// tests/server/mutate.mjs — robustness of `dsv4 serve` against mangled requests: N (default 300) mutations of
// valid Chat Completions / Messages / Responses / Completions bodies (values replaced by wrong types, extremes,
// NUL, lone surrogates, empty containers; keys deleted; bodies cut short; invalid UTF-8 bytes) from a fixed seed.
// Every reply must be 200, or 4xx with a JSON error body; the server must stay healthy. Prints the status counts
// and "N passed, N failed".   DSV4_URL=http://127.0.0.1:PORT node tests/server/mutate.mjs [N]
const base = process.env.DSV4_URL, N = +(process.argv[2] || 300);
let s = 12345;
const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296);
const pick = (a) => a[Math.floor(rnd() * a.length)];
const tools = [{ type: 'function', function: { name: 'calculator', parameters: { type: 'object' } } }];
const seeds = [
  ['/v1/chat/completions', { messages: [{ role: 'system', content: 's' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] },
    { role: 'assistant', content: null, reasoning_content: 'r', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'calculator', arguments: '{"a":1}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '2' }], tools, tool_choice: 'auto', max_tokens: 3, stop: ['x'], logprobs: true,
    top_logprobs: 2, response_format: { type: 'json_object' }, thinking: { type: 'enabled' }, reasoning_effort: 'max' }],
  ['/v1/messages', { max_tokens: 3, system: [{ type: 'text', text: 's' }], messages: [{ role: 'user', content: 'q' },
    { role: 'assistant', content: [{ type: 'thinking', thinking: 't' }, { type: 'tool_use', id: 'u1', name: 'calculator', input: { a: 1 } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'u1', content: [{ type: 'text', text: '2' }] }] }],
    tools: [{ name: 'calculator', input_schema: { type: 'object' } }], tool_choice: { type: 'auto' }, thinking: { type: 'enabled', budget_tokens: 10 }, stop_sequences: ['z'] }],
  ['/v1/responses', { instructions: 'i', input: [{ role: 'user', content: [{ type: 'input_text', text: 'q' }] },
    { type: 'reasoning', summary: [{ type: 'summary_text', text: 'r' }] }, { type: 'function_call', call_id: 'f1', name: 'calculator', arguments: '{}' },
    { type: 'function_call_output', call_id: 'f1', output: '3' }], tools: [{ type: 'function', name: 'calculator', parameters: { type: 'object' } }],
    reasoning: { effort: 'high' }, max_output_tokens: 3 }],
  ['/v1/completions', { prompt: 'abc', max_tokens: 3, stop: 'q' }],
];
const vals = [null, true, false, 0, -1, 1e308, -1e308, 3.5, '', 'x', '\u0000', '\ud800', [], {}, [1], { a: null }, 'max', 'none', 2 ** 53, [[]]];
function mutate(o) {
  if (Array.isArray(o)) {
    o = o.slice();
    if (o.length && rnd() < 0.3) { const i = Math.floor(rnd() * o.length); o[i] = rnd() < 0.5 ? pick(vals) : mutate(o[i]); }
    return o;
  }
  if (o && typeof o === 'object') {
    o = { ...o };
    const keys = Object.keys(o);
    if (keys.length && rnd() < 0.3) { const k = pick(keys); o[k] = rnd() < 0.5 ? pick(vals) : mutate(o[k]); }
    if (keys.length && rnd() < 0.1) delete o[pick(keys)];
    return o;
  }
  return rnd() < 0.2 ? pick(vals) : o;
}
const codes = {};
let bad = 0;
for (let i = 0; i < N; i++) {
  const [path, seed] = pick(seeds);
  const m = mutate(mutate(seed));
  // a missing or null token limit is a valid request that would generate up to the context: keep it short
  if (m && typeof m === 'object' && !Array.isArray(m))
    for (const k of ['max_tokens', 'max_output_tokens']) if (k in seed && (m[k] === null || m[k] === undefined || m[k] === 2 ** 53)) m[k] = 3;
  let body = Buffer.from(JSON.stringify(m));
  if (rnd() < 0.1) body = body.subarray(0, Math.floor(rnd() * body.length));
  if (rnd() < 0.05) { const k = body.indexOf(34); if (k >= 0) { body = Buffer.from(body); body[k] = 0xff; } }
  const t0 = performance.now();
  const r = await fetch(base + path, { method: "POST", body, headers: { "Content-Type": "application/json" } });
  const text = await r.text();
  codes[r.status] = (codes[r.status] || 0) + 1;
  if (process.env.MUTATE_SLOW && performance.now() - t0 > 300) console.log("slow", (performance.now() - t0).toFixed(0), path, body.toString().slice(0, 400));
  let ok = r.status === 200;
  if (r.status >= 400 && r.status < 500) { try { ok = !!JSON.parse(text).error; } catch { ok = false; } }
  if (!ok) { bad++; console.log(`FAIL mutate: ${path} -> ${r.status} ${text.slice(0, 200)} for ${body.toString().slice(0, 300)}`); }
}
// (a slot may be released a moment after its reply ended, e.g. an earlier check's connection: wait up to 5 s)
let h = await (await fetch(base + '/health')).json();
for (let i = 0; i < 50 && h.slots_busy !== 0; i++) {
  await new Promise(r => setTimeout(r, 100));
  h = await (await fetch(base + '/health')).json();
}
console.log('mutate: ' + JSON.stringify(codes) + ', health ' + h.status);
const ok = bad === 0 && h.status === 'ok' && h.slots_busy === 0;
console.log(ok ? '1 passed, 0 failed' : '0 passed, 1 failed');
process.exit(ok ? 0 : 1);
